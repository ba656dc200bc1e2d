//! errors over real sockets: the real binary, what it answers and what it prints.

mod common;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// No plugin after `errors` answers, so every query fails at the end of the chain.
const NOTHING_ANSWERS: &str = ".:PORT {\n    bind 127.0.0.1\n    errors\n}\n";

#[test]
fn failures_are_answered_servfail_and_logged_as_coredns_does() {
    let b = Binary::start(NOTHING_ANSWERS);
    let m = query_udp(b.addr, "WWW.Example.org.", RecordType::AAAA);
    assert_eq!(m.response_code, ResponseCode::ServFail);
    let m = query_tcp(b.addr, "example.org.", RecordType::MX);
    assert_eq!(m.response_code, ResponseCode::ServFail);
    assert_eq!(
        b.wait_lines("[ERROR]", 2),
        [
            "[ERROR] plugin/errors: 2 www.example.org. AAAA: plugin/errors: no next plugin found",
            "[ERROR] plugin/errors: 2 example.org. MX: plugin/errors: no next plugin found",
        ]
    );
}

/// Three failures within the period: no line each, one count when the period ends.
#[test]
fn consolidated_errors_become_one_line_per_period() {
    let b = Binary::start(
        ".:PORT {\n    bind 127.0.0.1\n    errors {\n        consolidate 3s \"no next plugin found$\" warning\n    }\n}\n",
    );
    for name in ["a.example.org.", "b.example.org.", "c.example.org."] {
        assert_eq!(query_udp(b.addr, name, RecordType::A).response_code, ResponseCode::ServFail);
    }
    assert_eq!(
        b.wait_lines("[WARNING] plugin/errors:", 1),
        ["[WARNING] plugin/errors: 3 errors like 'no next plugin found$' occurred in last 3s"]
    );
    assert_eq!(b.lines_starting("[ERROR]"), Vec::<String>::new());
}

/// show_first: the first failure at once, then the count of the period.
#[test]
fn show_first_prints_the_first_failure_then_the_count() {
    let b = Binary::start(
        ".:PORT {\n    bind 127.0.0.1\n    errors {\n        consolidate 3s \"^plugin/errors\" error show_first\n    }\n}\n",
    );
    for name in ["a.example.org.", "b.example.org."] {
        assert_eq!(query_udp(b.addr, name, RecordType::A).response_code, ResponseCode::ServFail);
    }
    assert_eq!(
        b.wait_lines("[ERROR] plugin/errors:", 2),
        [
            "[ERROR] plugin/errors: 2 a.example.org. A: plugin/errors: no next plugin found",
            "[ERROR] plugin/errors: 2 errors like '^plugin/errors' occurred in last 3s",
        ]
    );
}

#[test]
fn configuration_errors_name_their_position() {
    let e =
        TestServer::try_start(". {\n    errors {\n        consolidate 5m \"(\"\n    }\n}\n").err().expect("an error");
    assert!(e.contains("Corefile:3:24: errors: invalid regular expression: regex parse error:"), "{e}");
    let e = TestServer::try_start(". {\n    errors\n    errors\n}\n").err().expect("an error");
    assert!(e.ends_with("Corefile:3:5: errors: this plugin can only be used once per Server Block"), "{e}");
}
