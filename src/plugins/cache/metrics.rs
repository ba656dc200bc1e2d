//! CoreDNS's cache metrics (`plugin/cache/metrics.go`), with its names, help texts and labels.
//!
//! `server` is the listen address the query arrived on, `zones` the cache's zones joined by
//! commas, `view` empty (clusterdns has no *view* plugin). Each series is looked up once, when
//! the plugin is built: counting on the hit path is an atomic add.

use std::sync::Arc;

use crate::dns::Name;
use crate::metrics::{Counter, Gauge, Registry};

/// The two kinds of entry, the `type` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Success = 0,
    Denial = 1,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Success => "success",
            Kind::Denial => "denial",
        }
    }
}

/// The series of one listen address.
pub struct ServerMetrics {
    pub requests: Arc<Counter>,
    pub hits: [Arc<Counter>; 2],
    pub misses: Arc<Counter>,
    pub prefetch: Arc<Counter>,
    pub drops: Arc<Counter>,
    pub served_stale: Arc<Counter>,
    pub evictions: [Arc<Counter>; 2],
    pub entries: [Arc<Gauge>; 2],
}

/// The series of a cache, one set per listen address of its server block
/// ([`Route::server`](crate::dns::Route) indexes them).
pub struct Metrics {
    servers: Box<[ServerMetrics]>,
}

impl Metrics {
    pub fn new(r: &Registry, servers: &[String], zones: &[Name]) -> Metrics {
        const SZV: &[&str] = &["server", "zones", "view"];
        const STZV: &[&str] = &["server", "type", "zones", "view"];
        let entries = r.gauge("coredns_cache_entries", "The number of elements in the cache.", STZV);
        let requests = r.counter("coredns_cache_requests_total", "The count of cache requests.", SZV);
        let hits = r.counter("coredns_cache_hits_total", "The count of cache hits.", STZV);
        let misses = r.counter(
            "coredns_cache_misses_total",
            "The count of cache misses. Deprecated, derive misses from cache hits/requests counters.",
            SZV,
        );
        let prefetch = r.counter(
            "coredns_cache_prefetch_total",
            "The number of times the cache has prefetched a cached item.",
            SZV,
        );
        let drops = r.counter(
            "coredns_cache_drops_total",
            "The number responses that are not cached, because the reply is malformed.",
            SZV,
        );
        let served_stale = r.counter(
            "coredns_cache_served_stale_total",
            "The number of requests served from stale cache entries.",
            SZV,
        );
        let evictions = r.counter("coredns_cache_evictions_total", "The count of cache evictions.", STZV);

        let zones = zones.iter().map(|z| z.to_string()).collect::<Vec<_>>().join(",");
        let zones = zones.as_str();
        // A block always has a listen address; tests and benchmarks that build a plugin by hand
        // may pass none, and get one unnamed set.
        let fallback = [String::new()];
        let servers = if servers.is_empty() { &fallback[..] } else { servers };
        let servers = servers
            .iter()
            .map(|s| {
                let s = s.as_str();
                let typed = |family: &Arc<crate::metrics::Family<Counter>>| {
                    [family.with(&[s, "success", zones, ""]), family.with(&[s, "denial", zones, ""])]
                };
                ServerMetrics {
                    requests: requests.with(&[s, zones, ""]),
                    hits: typed(&hits),
                    misses: misses.with(&[s, zones, ""]),
                    prefetch: prefetch.with(&[s, zones, ""]),
                    drops: drops.with(&[s, zones, ""]),
                    served_stale: served_stale.with(&[s, zones, ""]),
                    evictions: typed(&evictions),
                    entries: [entries.with(&[s, "success", zones, ""]), entries.with(&[s, "denial", zones, ""])],
                }
            })
            .collect();
        Metrics { servers }
    }

    /// The series of the listener with index `server`.
    pub fn server(&self, server: u16) -> &ServerMetrics {
        self.servers.get(server as usize).unwrap_or(&self.servers[0])
    }

    /// Sets `coredns_cache_entries{type}` of every listener: the cache is the block's, whichever
    /// listener filled it.
    pub fn set_entries(&self, kind: Kind, n: u64) {
        for s in self.servers.iter() {
            s.entries[kind as usize].set(n as f64);
        }
    }
}
