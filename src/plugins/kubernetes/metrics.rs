//! The plugin's metrics: CoreDNS's (`coredns_kubernetes_dns_programming_duration_seconds`, the
//! API client's `coredns_kubernetes_rest_client_*`) and our own, which make the watches' health
//! visible on a dashboard: objects indexed, relists, watch restarts, and how long since the API
//! server last sent anything for each kind.

use std::sync::Arc;

use super::object::Kind;
use crate::metrics::{Counter, Family, Gauge, Histogram, Registry};

/// 1 ms to about 17 minutes, doubling: CoreDNS's buckets for the programming latency.
static PROGRAMMING_BUCKETS: [f64; 20] = {
    let mut b = [0.0; 20];
    let mut i = 0;
    let mut v = 0.001;
    while i < 20 {
        b[i] = v;
        v *= 2.0;
        i += 1;
    }
    b
};

/// Prometheus's default buckets, which client-go's request metrics use.
static DEFAULT_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The `service_kind` of a service, as the programming latency metric labels it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceKindLabel {
    ClusterIp,
    HeadlessWithSelector,
    HeadlessWithoutSelector,
}

impl ServiceKindLabel {
    fn as_str(self) -> &'static str {
        match self {
            ServiceKindLabel::ClusterIp => "cluster_ip",
            ServiceKindLabel::HeadlessWithSelector => "headless_with_selector",
            ServiceKindLabel::HeadlessWithoutSelector => "headless_without_selector",
        }
    }
}

/// The plugin's metric families. CoreDNS's series appear when first written, as client_golang's
/// do; ours appear for the kinds watched.
pub struct Metrics {
    programming: Arc<Family<Histogram>>,
    pub request_duration: Arc<Family<Histogram>>,
    pub rate_limiter_duration: Arc<Family<Histogram>>,
    pub requests: Arc<Family<Counter>>,
    objects: Arc<Family<Gauge>>,
    relists: Arc<Family<Counter>>,
    restarts: Arc<Family<Counter>>,
    since_last_event: Arc<Family<Gauge>>,
}

impl Metrics {
    pub fn new(r: &Registry) -> Metrics {
        Metrics {
            programming: r.histogram(
                "coredns_kubernetes_dns_programming_duration_seconds",
                "Histogram of the time (in seconds) it took to program a dns instance.",
                &["service_kind"],
                &PROGRAMMING_BUCKETS,
            ),
            request_duration: r.histogram(
                "coredns_kubernetes_rest_client_request_duration_seconds",
                "Request latency in seconds. Broken down by verb and host.",
                &["verb", "host"],
                &DEFAULT_BUCKETS,
            ),
            rate_limiter_duration: r.histogram(
                "coredns_kubernetes_rest_client_rate_limiter_duration_seconds",
                "Client side rate limiter latency in seconds. Broken down by verb and host.",
                &["verb", "host"],
                &DEFAULT_BUCKETS,
            ),
            requests: r.counter(
                "coredns_kubernetes_rest_client_requests_total",
                "Number of HTTP requests, partitioned by status code, method, and host.",
                &["code", "method", "host"],
            ),
            objects: r.gauge(
                "coredns_kubernetes_objects",
                "Objects of each kind in the kubernetes plugin's index.",
                &["kind"],
            ),
            relists: r.counter(
                "coredns_kubernetes_relists_total",
                "Lists of each kind after the first: after 410 Gone, or a watch that could not resume.",
                &["kind"],
            ),
            restarts: r.counter(
                "coredns_kubernetes_watch_restarts_total",
                "Failed list or watch requests of each kind, each retried after a backoff.",
                &["kind"],
            ),
            since_last_event: r.gauge(
                "coredns_kubernetes_seconds_since_last_event",
                "Seconds since the API server last sent anything (an object or a bookmark) for each kind.",
                &["kind"],
            ),
        }
    }

    /// Makes the per-kind series of a watched kind exist, at zero.
    pub fn watching(&self, kind: Kind) {
        let k = [kind.resource()];
        self.objects.with(&k);
        self.relists.with(&k);
        self.restarts.with(&k);
        self.since_last_event.with(&k);
    }

    pub fn programmed(&self, kind: ServiceKindLabel, seconds: f64) {
        self.programming.with(&[kind.as_str()]).observe(seconds);
    }

    pub fn set_objects(&self, kind: Kind, n: usize) {
        self.objects.with(&[kind.resource()]).set(n as f64);
    }

    pub fn relisted(&self, kind: Kind) {
        self.relists.with(&[kind.resource()]).inc();
    }

    pub fn restarted(&self, kind: Kind) {
        self.restarts.with(&[kind.resource()]).inc();
    }

    pub fn set_since_last_event(&self, kind: Kind, seconds: f64) {
        self.since_last_event.with(&[kind.resource()]).set(seconds);
    }
}
