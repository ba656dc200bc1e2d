//! The forward plugin's metrics: CoreDNS 1.11+'s `coredns_proxy_*` and `coredns_forward_*`
//! families, and the pre-1.11 `coredns_forward_*` names the CoreDNS mixin's forward alerts still
//! query (CoreDNS 1.10's `plugin/forward/metrics.go`: same help texts, labels and buckets).
//!
//! Series are looked up once per upstream and kept; the rcode-labelled ones once per upstream
//! and rcode, when that rcode is first seen (so only rcodes that happened have series, as in
//! CoreDNS).

use std::sync::{Arc, OnceLock};

use crate::dns::Rcode;
use crate::metrics::dns::TIME_BUCKETS;
use crate::metrics::{Counter, Family, Histogram, Registry};

/// The transport one exchange uses: the `proto` label of the connection cache metrics, and what
/// the upstream dials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// `proxy_name` of every series: the plugin's name, as CoreDNS labels them.
const PROXY_NAME: &str = "forward";

/// The families, shared by every upstream.
#[derive(Clone)]
pub struct Families {
    duration: Arc<Family<Histogram>>,
    hc_failures: Arc<Family<Counter>>,
    conn_hits: Arc<Family<Counter>>,
    conn_misses: Arc<Family<Counter>>,
    legacy_requests: Arc<Family<Counter>>,
    legacy_responses: Arc<Family<Counter>>,
    legacy_duration: Arc<Family<Histogram>>,
    legacy_hc_failures: Arc<Family<Counter>>,
    pub healthcheck_broken: Arc<Counter>,
    pub max_concurrent_rejects: Arc<Counter>,
}

impl Families {
    pub fn new(r: &Registry) -> Families {
        Families {
            duration: r.histogram(
                "coredns_proxy_request_duration_seconds",
                "Histogram of the time each request took.",
                &["proxy_name", "to", "rcode"],
                &TIME_BUCKETS,
            ),
            hc_failures: r.counter(
                "coredns_proxy_healthcheck_failures_total",
                "Counter of the number of failed healthchecks.",
                &["proxy_name", "to"],
            ),
            conn_hits: r.counter(
                "coredns_proxy_conn_cache_hits_total",
                "Counter of connection cache hits per upstream and protocol.",
                &["proxy_name", "to", "proto"],
            ),
            conn_misses: r.counter(
                "coredns_proxy_conn_cache_misses_total",
                "Counter of connection cache misses per upstream and protocol.",
                &["proxy_name", "to", "proto"],
            ),
            legacy_requests: r.counter(
                "coredns_forward_requests_total",
                "Counter of requests made per upstream.",
                &["to"],
            ),
            legacy_responses: r.counter(
                "coredns_forward_responses_total",
                "Counter of responses received per upstream.",
                &["rcode", "to"],
            ),
            legacy_duration: r.histogram(
                "coredns_forward_request_duration_seconds",
                "Histogram of the time each request took.",
                &["to", "rcode"],
                &TIME_BUCKETS,
            ),
            legacy_hc_failures: r.counter(
                "coredns_forward_healthcheck_failures_total",
                "Counter of the number of failed healthchecks.",
                &["to"],
            ),
            healthcheck_broken: r
                .counter(
                    "coredns_forward_healthcheck_broken_total",
                    "Counter of the number of complete failures of the healthchecks.",
                    &[],
                )
                .with(&[]),
            max_concurrent_rejects: r
                .counter(
                    "coredns_forward_max_concurrent_rejects_total",
                    "Counter of the number of queries rejected because the concurrent queries were at maximum.",
                    &[],
                )
                .with(&[]),
        }
    }

    /// The series of one upstream; `tls` for DNS over TLS (`proto="tcp-tls"`).
    pub fn upstream(&self, to: &str, tls: bool) -> UpstreamMetrics {
        let stream = if tls { "tcp-tls" } else { "tcp" };
        UpstreamMetrics {
            families: self.clone(),
            to: to.to_string(),
            requests: self.legacy_requests.with(&[to]),
            hc_failures: self.hc_failures.with(&[PROXY_NAME, to]),
            legacy_hc_failures: self.legacy_hc_failures.with(&[to]),
            tcp_hits: self.conn_hits.with(&[PROXY_NAME, to, stream]),
            tcp_misses: self.conn_misses.with(&[PROXY_NAME, to, stream]),
            udp_hits: self.conn_hits.with(&[PROXY_NAME, to, "udp"]),
            udp_misses: self.conn_misses.with(&[PROXY_NAME, to, "udp"]),
            by_rcode: std::array::from_fn(|_| OnceLock::new()),
        }
    }
}

/// One upstream's series.
pub struct UpstreamMetrics {
    families: Families,
    to: String,
    requests: Arc<Counter>,
    hc_failures: Arc<Counter>,
    legacy_hc_failures: Arc<Counter>,
    tcp_hits: Arc<Counter>,
    tcp_misses: Arc<Counter>,
    udp_hits: Arc<Counter>,
    udp_misses: Arc<Counter>,
    /// The rcode-labelled series of rcodes below [`CACHED_RCODES`], made on first use.
    by_rcode: [OnceLock<RcodeSeries>; CACHED_RCODES],
}

/// Rcodes whose series are kept per upstream (every rcode miekg/dns names).
const CACHED_RCODES: usize = 24;

struct RcodeSeries {
    duration: Arc<Histogram>,
    legacy_duration: Arc<Histogram>,
    legacy_responses: Arc<Counter>,
}

impl UpstreamMetrics {
    /// A query sent (`coredns_forward_requests_total`).
    pub fn request(&self) {
        self.requests.inc();
    }

    /// An answer received after `secs`.
    pub fn answered(&self, rcode: Rcode, secs: f64) {
        let make = || {
            let rc = rcode_label(rcode);
            RcodeSeries {
                duration: self.families.duration.with(&[PROXY_NAME, &self.to, &rc]),
                legacy_duration: self.families.legacy_duration.with(&[&self.to, &rc]),
                legacy_responses: self.families.legacy_responses.with(&[&rc, &self.to]),
            }
        };
        let made;
        let series = match self.by_rcode.get(rcode.0 as usize) {
            Some(cell) => cell.get_or_init(make),
            None => {
                made = make();
                &made
            }
        };
        series.duration.observe(secs);
        series.legacy_duration.observe(secs);
        series.legacy_responses.inc();
    }

    pub fn healthcheck_failed(&self) {
        self.hc_failures.inc();
        self.legacy_hc_failures.inc();
    }

    /// A pooled connection (or UDP socket) reused.
    pub fn conn_hit(&self, t: Transport) {
        match t {
            Transport::Tcp => self.tcp_hits.inc(),
            Transport::Udp => self.udp_hits.inc(),
        }
    }

    /// A new connection (or UDP socket, with a new source port) made. TCP counts under
    /// `tcp-tls` for a DNS-over-TLS upstream.
    pub fn conn_miss(&self, t: Transport) {
        match t {
            Transport::Tcp => self.tcp_misses.inc(),
            Transport::Udp => self.udp_misses.inc(),
        }
    }
}

/// The rcode as CoreDNS's `dns.RcodeToString` spells it (`NOERROR`, `NXDOMAIN`), or its number.
fn rcode_label(rcode: Rcode) -> String {
    rcode.name().map_or_else(|| rcode.0.to_string(), str::to_string)
}
