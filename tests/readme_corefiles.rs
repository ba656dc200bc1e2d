//! The docs are tests: every ```` ```corefile ```` block of every plugin README (and of the
//! top-level README, if there is one) starts as written and answers a query.

mod common;

use std::path::Path;

use clusterdns::corefile::parse_str;
use clusterdns::fuzzing::seeds::readme_corefiles;
use clusterdns::server::config::plan;
use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

#[test]
fn every_readme_corefile_starts_and_answers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let blocks = readme_corefiles(root);
    // whoami and bind have three between them; a README losing its examples should be noticed.
    assert!(blocks.len() >= 3, "{} corefile blocks found", blocks.len());
    for block in &blocks {
        let text = String::from_utf8(block.data.clone()).expect("UTF-8");
        let s = TestServer::try_start(&text).unwrap_or_else(|e| panic!("{} does not start:\n{text}\n{e}", block.name));
        // Ask for a name in the first zone of the first block, on each of its listeners.
        let corefile = parse_str("Corefile", &text, &|k| std::env::var(k).ok()).unwrap();
        let planned = plan(&corefile, 53).unwrap();
        let zone = planned.blocks[0].zones[0].to_string();
        let name = if zone == "." { "example.org.".to_string() } else { format!("www.{zone}") };
        for (_, addr) in s.block_on(s.server.dns_addrs()) {
            let m = query_udp(addr, &name, RecordType::A);
            assert_eq!(m.queries[0].name().to_string(), name, "{}", block.name);
            assert_ne!(m.response_code, ResponseCode::Refused, "{}: {name} not served on {addr}", block.name);
        }
    }
}

/// The README's first command runs `Corefile.example`; it must start and answer as the README says.
#[test]
fn corefile_example_runs_as_the_readme_says() {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Corefile.example")).unwrap();
    let s = TestServer::start(&text);
    let m = query_udp(s.addr(), "web.example.test.", RecordType::A);
    let mut answers = rrs(&m.answers);
    answers.sort();
    assert_eq!(answers, ["web.example.test. 3600 IN A 10.0.0.1", "web.example.test. 3600 IN A 10.0.0.2"]);
    // whoami answers the rest (loadbalance puts its SRV record before the address, as CoreDNS's does).
    let m = query_udp(s.addr(), "anything.else.", RecordType::A);
    assert!(rrs(&m.additionals).contains(&"anything.else. 0 IN A 127.0.0.1".to_string()), "{m:?}");
    assert_eq!(http_get(s.http("127.0.0.1:8080"), "/health"), (200, "OK".to_string()));
    assert_eq!(http_get(s.http("127.0.0.1:8181"), "/ready"), (200, "OK".to_string()));
    let (status, metrics) = http_get(s.http("127.0.0.1:9153"), "/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("coredns_dns_requests_total{"), "{metrics}");
}
