//! *prometheus*: serves the process's metrics on `/metrics` (over HTTPS with `tls`, see
//! `webconfig.rs`) and, as a link of the chain, counts every query the plugins after it answer,
//! as CoreDNS's `vars.Report` does.
//!
//! Recording is shaped for the hot path. At build, the plugin makes one [`ZoneRecorder`] per
//! (listen address, zone) of its server block, indexed by the query's [`Route`](crate::dns::Route),
//! each knowing the plugins that may answer; a recorder looks each series up once, on first
//! use. A query then costs a few atomic adds: no map lookup, no string, no allocation. The size
//! of the reply is known only once the server has encoded it: the plugin observes it as the
//! block's [`ReplyObserver`].

use std::sync::Arc;

use crate::dns::{Request, Response};
use crate::http::{HttpHandler, HttpRequest, HttpResponse};
use crate::metrics::dns::ZoneRecorder;
use crate::metrics::{Format, Registry};
use crate::plugin::{Next, Plugin, ReplyObserver, ServeError};

mod setup;
mod webconfig;
pub use setup::parse;

pub const NAME: &str = "prometheus";
/// The fixed path of the endpoint.
pub const PATH: &str = "/metrics";

/// The chain link: records the answer of the rest of the chain.
pub struct Prometheus {
    /// `[server * zones + zone]`, as [`Route`](crate::dns::Route) indexes the block.
    recorders: Box<[ZoneRecorder]>,
    zones: usize,
}

impl Prometheus {
    /// The recorders of a block with listen labels `servers` and `zones`, for answers made by
    /// `plugins` (those after this one in the chain).
    pub fn new(
        metrics: &Arc<crate::metrics::dns::DnsMetrics>,
        servers: &[String],
        zones: &[String],
        plugins: &[&'static str],
    ) -> Prometheus {
        let recorders = servers
            .iter()
            .flat_map(|s| zones.iter().map(move |z| (s, z)))
            .map(|(s, z)| ZoneRecorder::new(metrics.clone(), s, z, plugins.to_vec()))
            .collect();
        Prometheus { recorders, zones: zones.len() }
    }
}

impl Prometheus {
    fn recorder(&self, req: &Request) -> Option<&ZoneRecorder> {
        let route = req.route();
        self.recorders.get(route.server as usize * self.zones + route.zone as usize)
    }
}

impl Plugin for Prometheus {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Only the rcode and the plugin that answered are counted; answers pass as they are.
    fn reads_answers(&self) -> bool {
        false
    }

    async fn serve<'a>(&'a self, req: &'a mut Request, next: Next<'a>) -> Result<Response, ServeError> {
        let result = next.run(req).await;
        if let Some(rec) = self.recorder(req) {
            // The rcode the client gets: the response's, or the one its error maps to, in which
            // case the server made the reply and no plugin is named (as in CoreDNS).
            let (rcode, plugin) = match &result {
                Ok(resp) => (resp.rcode, resp.plugin()),
                Err(e) => (e.rcode(), ""),
            };
            rec.record_answer(req, rcode, plugin);
        }
        result
    }
}

impl ReplyObserver for Prometheus {
    fn reply_written(&self, req: &Request, len: usize) {
        if let Some(rec) = self.recorder(req) {
            rec.record_reply_size(req, len);
        }
    }
}

/// The `/metrics` endpoint: the whole registry, in the format the scraper asks for.
pub struct MetricsEndpoint {
    registry: Arc<Registry>,
}

impl HttpHandler for MetricsEndpoint {
    fn handle(&self, req: &HttpRequest<'_>) -> HttpResponse {
        let format = Format::negotiate(req.accept);
        HttpResponse {
            status: 200,
            content_type: format.content_type(),
            body: self.registry.render(format).into_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::{Rcode, RecordType, Route};
    use crate::metrics::dns::DnsMetrics;
    use crate::plugin::{DynPlugin, ErrorKind, testing};

    fn run(chain: Vec<Arc<dyn DynPlugin>>, req: &mut Request) -> Result<Response, ServeError> {
        testing::run(&testing::chain(chain), req)
    }

    #[test]
    fn records_answers_and_errors_under_the_routed_server_and_zone() {
        let registry = Registry::new();
        let metrics = Arc::new(DnsMetrics::new(&registry));
        let servers = ["dns://:53".to_string(), "dns://:1053".to_string()];
        let zones = ["example.org.".to_string(), "example.net.".to_string()];
        let p = Arc::new(Prometheus::new(&metrics, &servers, &zones, &["answer", "fail"]));

        let mut req = Request::synthetic("a.example.net.", RecordType::A);
        req.set_route(Route { zone: 1, server: 1 });
        let resp = run(vec![p.clone(), testing::rcode("answer", Rcode::NXDOMAIN)], &mut req).unwrap();
        assert_eq!(resp.rcode, Rcode::NXDOMAIN);
        p.reply_written(&req, 61);

        let mut req = Request::synthetic("b.example.org.", RecordType::AAAA);
        let err = run(vec![p.clone(), testing::fail("fail", ErrorKind::Refused, "no")], &mut req).unwrap_err();
        assert_eq!(err.rcode(), Rcode::REFUSED);
        p.reply_written(&req, 31);

        let text = registry.render(Format::Text);
        for want in [
            "coredns_dns_responses_total{plugin=\"answer\",rcode=\"NXDOMAIN\",server=\"dns://:1053\",view=\"\",zone=\"example.net.\"} 1",
            "coredns_dns_responses_total{plugin=\"\",rcode=\"REFUSED\",server=\"dns://:53\",view=\"\",zone=\"example.org.\"} 1",
            "coredns_dns_requests_total{family=\"1\",proto=\"udp\",server=\"dns://:53\",type=\"AAAA\",view=\"\",zone=\"example.org.\"} 1",
            "coredns_dns_response_size_bytes_sum{proto=\"udp\",server=\"dns://:1053\",view=\"\",zone=\"example.net.\"} 61",
            "coredns_dns_response_size_bytes_sum{proto=\"udp\",server=\"dns://:53\",view=\"\",zone=\"example.org.\"} 31",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
    }

    #[test]
    fn endpoint_negotiates_the_format() {
        let registry = Arc::new(Registry::new());
        registry.counter("coredns_t_total", "T.", &[]);
        let e = MetricsEndpoint { registry };
        let text = e.handle(&HttpRequest { path: PATH, accept: None });
        assert_eq!(text.content_type, "text/plain; version=0.0.4; charset=utf-8");
        assert!(String::from_utf8(text.body).unwrap().contains("coredns_t_total 0\n"));
        let accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
        let om = e.handle(&HttpRequest { path: PATH, accept: Some(accept) });
        assert_eq!(om.content_type, "application/openmetrics-text; version=1.0.0; charset=utf-8");
        assert!(String::from_utf8(om.body).unwrap().ends_with("# EOF\n"));
    }
}
