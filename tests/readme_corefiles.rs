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

/// What the first server block of `corefile` must answer, and for which name: CoreDNS's rules
/// for the plugins shipped. hosts answers its inline entries; a name it does not have goes on
/// with `fallthrough`, else gets SERVFAIL (CoreDNS: hosts has no SOA for an NXDOMAIN); whoami
/// answers anything with the client's address; forward answers what its upstream answers,
/// which depends on the machine's network (SERVFAIL when unreachable, NXDOMAIN from a resolver
/// without the internet), so any answer but REFUSED will do; a chain with none answers SERVFAIL.
enum Want {
    Address(String, Vec<String>),
    Whoami(String),
    Forwarded(String),
    ServFail(String),
}

fn want(corefile: &clusterdns::corefile::Corefile, zone: &str) -> Want {
    let default = if zone == "." { "example.org.".to_string() } else { format!("www.{zone}") };
    let mut passes = true;
    for d in &corefile.blocks[0].directives {
        match d.name.text.as_str() {
            "hosts" => {
                let lines = d.block.as_ref().map(|b| b.lines.as_slice()).unwrap_or_default();
                if let Some(entry) = lines.iter().find(|l| l.name.text.parse::<std::net::Ipv4Addr>().is_ok()) {
                    // Every IPv4 entry of that name may answer (loadbalance may shuffle and cut them).
                    let name = &entry.args[0].text;
                    let addrs = lines
                        .iter()
                        .filter(|l| l.args.iter().any(|a| a.text == *name))
                        .filter(|l| l.name.text.parse::<std::net::Ipv4Addr>().is_ok())
                        .map(|l| l.name.text.clone())
                        .collect();
                    return Want::Address(format!("{name}."), addrs);
                }
                passes = lines.iter().any(|l| l.name.text == "fallthrough");
                if !passes {
                    return Want::ServFail(default);
                }
            }
            "whoami" if passes => return Want::Whoami(default),
            "forward" if passes => return Want::Forwarded(default),
            _ => {}
        }
    }
    Want::ServFail(default)
}

#[test]
fn every_readme_corefile_starts_and_answers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let blocks = readme_corefiles(root);
    // Counted apart from the extractor: every fence opening a corefile block in a README.
    let mut fences = 0;
    for dir in std::fs::read_dir(root.join("src/plugins")).unwrap() {
        let Ok(text) = std::fs::read_to_string(dir.unwrap().path().join("README.md")) else { continue };
        fences += text.lines().filter(|l| ["```corefile", "~~~ corefile", "~~~corefile"].contains(&l.trim())).count();
    }
    assert!(fences >= 25, "{fences} corefile blocks in the plugin READMEs");
    assert_eq!(blocks.len(), fences, "blocks extracted vs fences counted");
    let (mut answered, mut servfail) = (0, 0);
    for block in &blocks {
        let text = String::from_utf8(block.data.clone()).expect("UTF-8");
        let s = TestServer::try_start(&text).unwrap_or_else(|e| panic!("{} does not start:\n{text}\n{e}", block.name));
        // A name in the first zone of the first block, on each of its listeners, gets what
        // that block's chain answers.
        let corefile = parse_str("Corefile", &text, &|k| std::env::var(k).ok()).unwrap();
        let planned = plan(&corefile, 53).unwrap();
        let want = want(&corefile, &planned.blocks[0].zones[0].to_string());
        for (_, addr) in s.block_on(s.server.dns_addrs()) {
            let name = match &want {
                Want::Address(n, _) | Want::Whoami(n) | Want::Forwarded(n) | Want::ServFail(n) => n.clone(),
            };
            let m = query_udp(addr, &name, RecordType::A);
            let what = format!("{}: {name} on {addr}: {m:?}", block.name);
            assert_eq!(m.queries[0].name().to_string(), name, "{what}");
            match &want {
                Want::Address(_, addrs) => {
                    assert_eq!(m.response_code, ResponseCode::NoError, "{what}");
                    let got = rrs(&m.answers);
                    let ours = |r: &String| addrs.iter().any(|a| r.ends_with(&format!(" IN A {a}")));
                    assert!(!got.is_empty() && got.iter().all(ours), "hosts: want only {addrs:?}: {what}");
                    answered += 1;
                }
                Want::Whoami(_) => {
                    assert_eq!(m.response_code, ResponseCode::NoError, "{what}");
                    // TTL 0 from whoami; 5, the minimum, when a cache keeps it.
                    let client = rrs(&m.additionals).iter().any(|r| {
                        r.strip_prefix(&format!("{name} ")).and_then(|r| r.split_once(' ')).map(|(_, r)| r)
                            == Some("IN A 127.0.0.1")
                    });
                    assert!(client, "whoami did not give the client's address: {what}");
                    answered += 1;
                }
                Want::Forwarded(_) => {
                    assert_ne!(m.response_code, ResponseCode::Refused, "{what}");
                    servfail += (m.response_code == ResponseCode::ServFail) as usize;
                }
                Want::ServFail(_) => {
                    assert_eq!(m.response_code, ResponseCode::ServFail, "{what}");
                    servfail += 1;
                }
            }
        }
    }
    // Most examples have a plugin that answers; those that have none are the other plugins'.
    assert!(answered >= 20 && servfail >= 3, "{answered} answered, {servfail} SERVFAIL");
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
