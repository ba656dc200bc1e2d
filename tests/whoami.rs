//! whoami over real sockets, with every client the project tests with.

mod common;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

const COREFILE: &str = "example.org {\n    whoami\n}\n";

#[test]
fn whoami_over_udp_and_tcp() {
    let s = TestServer::start(COREFILE);
    for (m, transport) in [
        (query_udp(s.addr(), "a.example.org.", RecordType::A), "_udp"),
        (query_tcp(s.addr(), "a.example.org.", RecordType::A), "_tcp"),
    ] {
        assert_eq!(m.response_code, ResponseCode::NoError);
        assert!(m.authoritative);
        assert!(m.answers.is_empty());
        let add = rrs(&m.additionals);
        assert_eq!(add[0], "a.example.org. 0 IN A 127.0.0.1");
        assert!(add[1].starts_with(&format!("{transport}.a.example.org. 0 IN SRV 0 0 ")), "{add:?}");
    }
}

#[test]
fn whoami_with_hickory_client() {
    let s = TestServer::start(COREFILE);
    for tcp in [false, true] {
        let m = hickory_query(s.addr(), "x.example.org.", RecordType::AAAA, tcp);
        assert_eq!(m.response_code, ResponseCode::NoError);
        assert_eq!(rrs(&m.additionals)[0], "x.example.org. 0 IN A 127.0.0.1");
    }
}

#[test]
fn whoami_with_dig_and_kdig() {
    let s = TestServer::start(COREFILE);
    let out = dig(s.addr(), &["b.example.org", "A"]);
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(out.contains("flags: qr aa rd;"), "{out}");
    assert!(out.contains("_udp.b.example.org.\t0\tIN\tSRV\t0 0 "), "{out}");
    let out = dig(s.addr(), &["b.example.org", "A", "+tcp"]);
    assert!(out.contains("_tcp.b.example.org.\t0\tIN\tSRV\t0 0 "), "{out}");
    let out = kdig(s.addr(), &["c.example.org", "TXT"]);
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(out.contains("c.example.org.      \t0\tIN\tA\t127.0.0.1"), "{out}");
}

#[test]
fn names_outside_the_zone_are_refused() {
    let s = TestServer::start(COREFILE);
    let m = query_udp(s.addr(), "example.net.", RecordType::A);
    assert_eq!(m.response_code, ResponseCode::Refused);
}
