//! CoreDNS's own metric families (`plugin/metrics/vars` of CoreDNS 1.14), with the same names,
//! help texts, labels and buckets, so dashboards and alerts written for CoreDNS keep working.

use std::sync::{Arc, OnceLock};

use super::{Counter, Family, Gauge, Histogram, Registry};
use crate::dns::{Rcode, RecordType, Request};

/// CoreDNS's `plugin.TimeBuckets`: 0.25 ms doubling to 8.192 s.
pub static TIME_BUCKETS: [f64; 16] =
    [0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192];

/// CoreDNS's size buckets for requests and responses, in bytes.
pub static SIZE_BUCKETS: [f64; 14] =
    [0.0, 100.0, 200.0, 300.0, 400.0, 511.0, 1023.0, 2047.0, 4095.0, 8291.0, 16e3, 32e3, 48e3, 64e3];

/// Query types CoreDNS counts by name in `coredns_dns_requests_total{type}` (its
/// `vars/monitor.go`, with HTTPS since 1.11); the rest are counted as `other`.
static MONITORED_TYPES: [RecordType; 18] = [
    RecordType::AAAA,
    RecordType::A,
    RecordType::CNAME,
    RecordType::DNSKEY,
    RecordType::DS,
    RecordType::MX,
    RecordType::NSEC3,
    RecordType::NSEC,
    RecordType::NS,
    RecordType::PTR,
    RecordType::RRSIG,
    RecordType::SOA,
    RecordType::SRV,
    RecordType::TXT,
    RecordType::HTTPS,
    // Meta types.
    RecordType::IXFR,
    RecordType::AXFR,
    RecordType::ANY,
];
const OTHER_TYPE: usize = MONITORED_TYPES.len();

/// The slot of each query type below 256 (all monitored types are): an index into
/// [`MONITORED_TYPES`], or [`OTHER_TYPE`]. A lookup instead of a scan on every query.
static TYPE_SLOT: [u8; 256] = {
    let mut slots = [OTHER_TYPE as u8; 256];
    let mut i = 0;
    while i < MONITORED_TYPES.len() {
        slots[MONITORED_TYPES[i].0 as usize] = i as u8;
        i += 1;
    }
    slots
};

fn type_slot(t: RecordType) -> usize {
    TYPE_SLOT.get(t.0 as usize).map_or(OTHER_TYPE, |&s| s as usize)
}

/// Rcodes 0..=23 (NOERROR to BADCOOKIE, the ones with names) have a slot in [`ZoneRecorder`].
const RCODE_SLOTS: usize = 24;

/// The `zone` label of queries dropped before any block handled them (no zone matched).
pub const DROPPED_ZONE: &str = "dropped";

/// The families every server reports into.
pub struct DnsMetrics {
    pub requests: Arc<Family<Counter>>,
    pub do_requests: Arc<Family<Counter>>,
    pub duration: Arc<Family<Histogram>>,
    pub request_size: Arc<Family<Histogram>>,
    pub response_size: Arc<Family<Histogram>>,
    pub responses: Arc<Family<Counter>>,
    pub panics: Arc<Family<Counter>>,
    pub plugin_enabled: Arc<Family<Gauge>>,
    pub build_info: Arc<Family<Gauge>>,
}

impl DnsMetrics {
    pub fn new(r: &Registry) -> DnsMetrics {
        DnsMetrics {
            requests: r.counter(
                "coredns_dns_requests_total",
                "Counter of DNS requests made per zone, protocol and family.",
                &["server", "zone", "view", "proto", "family", "type"],
            ),
            do_requests: r.counter(
                "coredns_dns_do_requests_total",
                "Counter of DNS requests with DO bit set per zone.",
                &["server", "zone", "view"],
            ),
            duration: r.histogram(
                "coredns_dns_request_duration_seconds",
                "Histogram of the time (in seconds) each request took per zone.",
                &["server", "zone", "view"],
                &TIME_BUCKETS,
            ),
            request_size: r.histogram(
                "coredns_dns_request_size_bytes",
                "Size of the EDNS0 UDP buffer in bytes (64K for TCP) per zone and protocol.",
                &["server", "zone", "view", "proto"],
                &SIZE_BUCKETS,
            ),
            response_size: r.histogram(
                "coredns_dns_response_size_bytes",
                "Size of the returned response in bytes.",
                &["server", "zone", "view", "proto"],
                &SIZE_BUCKETS,
            ),
            responses: r.counter(
                "coredns_dns_responses_total",
                "Counter of response status codes.",
                &["server", "zone", "view", "rcode", "plugin"],
            ),
            panics: r.counter("coredns_panics_total", "A metrics that counts the number of panics.", &[]),
            plugin_enabled: r.gauge(
                "coredns_plugin_enabled",
                "A metric that indicates whether a plugin is enabled on per server and zone basis.",
                &["server", "zone", "view", "name"],
            ),
            build_info: r.gauge(
                "coredns_build_info",
                "A metric with a constant '1' value labeled by version, revision, and goversion from which CoreDNS was built.",
                &["version", "revision", "goversion"],
            ),
        }
    }
}

/// What one response contributes to the metrics.
pub struct Outcome {
    pub rcode: Rcode,
    /// The plugin that answered; empty when the server made the reply.
    pub plugin: &'static str,
    pub size: usize,
}

/// The series of one (server, zone), looked up once and kept: recording a query is then a few
/// atomic operations and no lookups.
pub struct ZoneRecorder {
    metrics: Arc<DnsMetrics>,
    server: String,
    zone: String,
    /// Plugin names that may answer in this zone (index + 1 in `responses`; 0 is "").
    plugins: Vec<&'static str>,
    requests: [[[OnceLock<Arc<Counter>>; OTHER_TYPE + 1]; 2]; 2],
    do_requests: OnceLock<Arc<Counter>>,
    duration: OnceLock<Arc<Histogram>>,
    request_size: [OnceLock<Arc<Histogram>>; 2],
    response_size: [OnceLock<Arc<Histogram>>; 2],
    /// [plugin index (0 is "")][rcode]; rcodes without a slot are looked up.
    responses: Vec<[OnceLock<Arc<Counter>>; RCODE_SLOTS]>,
}

impl ZoneRecorder {
    pub fn new(metrics: Arc<DnsMetrics>, server: &str, zone: &str, plugins: Vec<&'static str>) -> ZoneRecorder {
        let responses = (0..=plugins.len()).map(|_| std::array::from_fn(|_| OnceLock::new())).collect();
        ZoneRecorder {
            metrics,
            server: server.to_string(),
            zone: zone.to_string(),
            plugins,
            requests: Default::default(),
            do_requests: OnceLock::new(),
            duration: OnceLock::new(),
            request_size: Default::default(),
            response_size: Default::default(),
            responses,
        }
    }

    /// Records one answered query, as CoreDNS's `vars.Report` does.
    pub fn record(&self, req: &Request, outcome: &Outcome) {
        self.record_answer(req, outcome.rcode, outcome.plugin);
        self.record_reply_size(req, outcome.size);
    }

    /// Records everything about one answered query but the size of its reply, which is known
    /// only once the server has encoded it ([`record_reply_size`](Self::record_reply_size)).
    /// `plugin` is the plugin that answered, empty when the reply is the server's (an error's
    /// rcode).
    ///
    /// After the first query of each label combination this is a handful of atomic operations:
    /// no lookups, no allocation.
    pub fn record_answer(&self, req: &Request, rcode: Rcode, plugin: &'static str) {
        let proto = req.proto() as usize;
        let proto_label = req.proto().as_str();
        let family = (req.family() - 1) as usize;
        let qtype = type_slot(req.qtype());
        let (s, z) = (self.server.as_str(), self.zone.as_str());
        let m = &self.metrics;

        if req.dnssec_ok() {
            self.do_requests.get_or_init(|| m.do_requests.with(&[s, z, ""])).inc();
        }
        self.requests[proto][family][qtype]
            .get_or_init(|| {
                let t = if qtype == OTHER_TYPE { "other".to_string() } else { req.qtype().to_string() };
                m.requests.with(&[s, z, "", proto_label, if family == 0 { "1" } else { "2" }, &t])
            })
            .inc();
        let elapsed = req.received().elapsed().as_secs_f64();
        self.duration.get_or_init(|| m.duration.with(&[s, z, ""])).observe(elapsed);
        self.request_size[proto]
            .get_or_init(|| m.request_size.with(&[s, z, "", proto_label]))
            .observe(req.len() as f64);

        let slot = match plugin {
            "" => Some(0),
            // Plugin names are the same `&'static str` the plugin reports, so the pointer
            // usually settles it; the text comparison covers a name spelled twice.
            _ => self.plugins.iter().position(|p| std::ptr::eq(*p, plugin) || *p == plugin).map(|i| i + 1),
        };
        match slot {
            Some(i) if (rcode.0 as usize) < RCODE_SLOTS => {
                self.responses[i][rcode.0 as usize]
                    .get_or_init(|| {
                        let name = if i == 0 { "" } else { self.plugins[i - 1] };
                        m.responses.with(&[s, z, "", &rcode.to_string(), name])
                    })
                    .inc();
            }
            // A plugin not known at build time, or an rcode without a name: rare, so look the series
            // up directly.
            _ => m.responses.with(&[s, z, "", &rcode.to_string(), plugin]).inc(),
        }
    }

    /// Records the size of the reply written for `req`: `coredns_dns_response_size_bytes`.
    pub fn record_reply_size(&self, req: &Request, len: usize) {
        let proto = req.proto();
        let m = &self.metrics;
        self.response_size[proto as usize]
            .get_or_init(|| m.response_size.with(&[&self.server, &self.zone, "", proto.as_str()]))
            .observe(len as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Format;

    #[test]
    fn records_like_coredns() {
        let reg = Registry::new();
        let m = Arc::new(DnsMetrics::new(&reg));
        let rec = ZoneRecorder::new(m.clone(), "dns://:53", "example.org.", vec!["whoami"]);
        let req = Request::synthetic("a.example.org.", RecordType::A);
        rec.record(&req, &Outcome { rcode: Rcode::NOERROR, plugin: "whoami", size: 80 });
        rec.record(&req, &Outcome { rcode: Rcode::SERVFAIL, plugin: "", size: 30 });
        let other = Request::synthetic("a.example.org.", RecordType(65000));
        rec.record(&other, &Outcome { rcode: Rcode(3000), plugin: "whoami", size: 30 });
        let text = reg.render(Format::Text);
        for want in [
            "coredns_dns_requests_total{family=\"1\",proto=\"udp\",server=\"dns://:53\",type=\"A\",view=\"\",zone=\"example.org.\"} 2",
            "coredns_dns_requests_total{family=\"1\",proto=\"udp\",server=\"dns://:53\",type=\"other\",view=\"\",zone=\"example.org.\"} 1",
            "coredns_dns_responses_total{plugin=\"whoami\",rcode=\"NOERROR\",server=\"dns://:53\",view=\"\",zone=\"example.org.\"} 1",
            "coredns_dns_responses_total{plugin=\"\",rcode=\"SERVFAIL\",server=\"dns://:53\",view=\"\",zone=\"example.org.\"} 1",
            "coredns_dns_responses_total{plugin=\"whoami\",rcode=\"3000\",server=\"dns://:53\",view=\"\",zone=\"example.org.\"} 1",
            "coredns_dns_response_size_bytes_bucket{proto=\"udp\",server=\"dns://:53\",view=\"\",zone=\"example.org.\",le=\"100\"} 3",
            "coredns_dns_request_duration_seconds_count{server=\"dns://:53\",view=\"\",zone=\"example.org.\"} 3",
            "coredns_panics_total 0",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
    }

    /// CoreDNS's README: A, AAAA, MX, SOA, CNAME, PTR, TXT, NS, SRV, DS, DNSKEY, RRSIG, NSEC,
    /// NSEC3, HTTPS, IXFR, AXFR and ANY by name, every other type as `other`.
    #[test]
    fn the_type_label_names_the_types_coredns_names() {
        let named = [
            "A", "AAAA", "MX", "SOA", "CNAME", "PTR", "TXT", "NS", "SRV", "DS", "DNSKEY", "RRSIG", "NSEC", "NSEC3",
            "HTTPS", "IXFR", "AXFR", "ANY",
        ];
        let reg = Registry::new();
        let rec = ZoneRecorder::new(Arc::new(DnsMetrics::new(&reg)), "dns://:53", "example.org.", vec![]);
        for t in (0..=u16::MAX).map(RecordType) {
            rec.record(
                &Request::synthetic("a.example.org.", t),
                &Outcome { rcode: Rcode::NOERROR, plugin: "", size: 1 },
            );
        }
        let text = reg.render(Format::Text);
        let series = |t: &str| {
            format!(
                "coredns_dns_requests_total{{family=\"1\",proto=\"udp\",server=\"dns://:53\",type=\"{t}\",view=\"\",zone=\"example.org.\"}}"
            )
        };
        for t in named {
            assert!(text.contains(&format!("{} 1\n", series(t))), "{t} is not counted by name in\n{text}");
        }
        // Every one of the 65536 types but those (SVCB, CAA, unassigned ones ...).
        assert!(text.contains(&format!("{} 65518\n", series("other"))), "{text}");
        assert_eq!(text.matches("coredns_dns_requests_total{").count(), named.len() + 1, "{text}");
    }
}
