//! IPv6 over real sockets: a block bound to ::1 and 127.0.0.1 answers both families over UDP and
//! TCP, whoami sees each client's own address, and metrics count each family apart.

mod common;

use std::net::SocketAddr;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

#[test]
fn both_families_over_udp_and_tcp() {
    let (port, metrics) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let corefile =
        format!("example.org:{port} {{\n    bind ::1 127.0.0.1\n    prometheus 127.0.0.1:{metrics}\n    whoami\n}}\n");
    std::fs::write(dir.path().join("Corefile"), corefile).unwrap();
    let p = Process::spawn(dir.path(), &["-conf", "Corefile"]);
    p.wait_for_line(TIMEOUT, |l| l == format!("example.org.:{port} on ::1"));
    p.wait_for_line(TIMEOUT, |l| l == format!("example.org.:{port} on 127.0.0.1"));

    let v6: SocketAddr = format!("[::1]:{port}").parse().unwrap();
    let v4: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for (addr, own, transport) in [
        (v6, "a.example.org. 0 IN AAAA ::1", "udp"),
        (v6, "a.example.org. 0 IN AAAA ::1", "tcp"),
        (v4, "a.example.org. 0 IN A 127.0.0.1", "udp"),
        (v4, "a.example.org. 0 IN A 127.0.0.1", "tcp"),
    ] {
        let m = match transport {
            "udp" => query_udp(addr, "a.example.org.", RecordType::A),
            _ => query_tcp(addr, "a.example.org.", RecordType::A),
        };
        assert_eq!(m.response_code, ResponseCode::NoError, "{addr} {transport}");
        let additional = rrs(&m.additionals);
        assert_eq!(additional[0], own, "{addr} {transport}");
        assert!(additional[1].starts_with(&format!("_{transport}.a.example.org. 0 IN SRV 0 0 ")), "{additional:?}");
    }
    // dig over IPv6, as an operator would.
    let out = dig(v6, &["-6", "b.example.org", "AAAA"]);
    assert!(out.contains("status: NOERROR") && out.contains("b.example.org.\t\t0\tIN\tAAAA\t::1"), "{out}");

    let (status, text) = http_get(format!("127.0.0.1:{metrics}").parse().unwrap(), "/metrics");
    assert_eq!(status, 200);
    for (server, family) in [(format!("dns://[::1]:{port}"), "2"), (format!("dns://127.0.0.1:{port}"), "1")] {
        let series = format!(
            "coredns_dns_requests_total{{family=\"{family}\",proto=\"udp\",server=\"{server}\",type=\"A\",view=\"\",zone=\"example.org.\"}} 1"
        );
        assert!(text.contains(&series), "missing {series} in\n{text}");
    }
}
