//! loadbalance over real sockets.
//!
//! No plugin here answers with several addresses yet (hosts and kubernetes will), so shuffling
//! itself is tested at unit level through the real chain (`src/plugins/loadbalance/mod.rs`).
//! These tests check what is visible over the wire with whoami: the plugin sits in the chain and
//! groups sections (whoami's additional section is A then SRV; grouped, the SRV comes first), and
//! the weighted policy's file handling in the real binary.

mod common;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

fn additional(addr: std::net::SocketAddr) -> Vec<String> {
    let m = query_udp(addr, "example.org.", RecordType::A);
    assert_eq!(m.response_code, ResponseCode::NoError);
    rrs(&m.additionals)
}

#[test]
fn sections_are_grouped_addresses_last() {
    let plain = TestServer::start(".:53 {\n    whoami\n}\n");
    let add = additional(plain.addr());
    assert_eq!(add[0], "example.org. 0 IN A 127.0.0.1");
    let s = TestServer::start(".:53 {\n    loadbalance\n    whoami\n}\n");
    for _ in 0..20 {
        let add = additional(s.addr());
        assert!(add[0].starts_with("_udp.example.org. 0 IN SRV 0 0 "), "{add:?}");
        assert_eq!(add[1], "example.org. 0 IN A 127.0.0.1");
    }
}

/// With `prefer`, answer and additional sections end up CNAMEs, addresses, MX, others (as in
/// CoreDNS, whose prefer step groups differently from its shuffle step).
#[test]
fn preferred_addresses_come_before_other_records() {
    let s =
        TestServer::start(".:53 {\n    loadbalance round_robin {\n        prefer 127.0.0.0/8\n    }\n    whoami\n}\n");
    for _ in 0..20 {
        let add = additional(s.addr());
        assert_eq!(add[0], "example.org. 0 IN A 127.0.0.1");
        assert!(add[1].starts_with("_udp.example.org. 0 IN SRV 0 0 "), "{add:?}");
    }
}

#[test]
fn weighted_reads_and_reloads_its_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("db.weights"), "example.org\n127.0.0.1 3\n").unwrap();
    let b = Binary::start_in(
        dir,
        ".:PORT {\n    bind 127.0.0.1\n    loadbalance weighted db.weights {\n        reload 1s\n    }\n    whoami\n}\n",
    );
    let loaded = "[INFO] plugin/loadbalance: Successfully reloaded weight file db.weights";
    assert_eq!(b.wait_lines(loaded, 1), [loaded]);
    assert_eq!(additional(b.addr)[1], "example.org. 0 IN A 127.0.0.1");

    // A broken file is logged and the weights stay; a good one is taken.
    std::fs::write(b.dir().join("db.weights"), "example.org\n127.0.0.1 0\n").unwrap();
    assert_eq!(
        b.wait_lines("[ERROR] plugin/loadbalance:", 1),
        ["[ERROR] plugin/loadbalance: weight file db.weights:2: invalid weight '0': expected 1 to 255"]
    );
    std::fs::write(b.dir().join("db.weights"), "example.org\n127.0.0.1 5\n").unwrap();
    assert_eq!(b.wait_lines(loaded, 2).len(), 2);
    assert_eq!(additional(b.addr)[1], "example.org. 0 IN A 127.0.0.1");
}

#[test]
fn a_missing_weight_file_waits_for_the_next_reload() {
    let b = Binary::start(
        ".:PORT {\n    bind 127.0.0.1\n    loadbalance weighted db.weights {\n        reload 1s\n    }\n    whoami\n}\n",
    );
    let warning = &b.wait_lines("[WARNING] plugin/loadbalance:", 1)[0];
    assert_eq!(
        warning,
        "[WARNING] plugin/loadbalance: Failed to open weight file db.weights: No such file or directory (os error 2). \
         Will try again in 1s"
    );
    assert_eq!(additional(b.addr)[1], "example.org. 0 IN A 127.0.0.1");
    std::fs::write(b.dir().join("db.weights"), "example.org\n127.0.0.1 2\n").unwrap();
    b.wait_lines("[INFO] plugin/loadbalance: Successfully reloaded weight file db.weights", 1);
}

#[test]
fn weight_file_errors_stop_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.weights"), "# weights\n10.0.0.1 2\n").unwrap();
    let path = dir.path().join("broken.weights");
    let e = TestServer::try_start(&format!(". {{\n    loadbalance weighted {}\n    whoami\n}}\n", path.display()))
        .err()
        .expect("an error");
    assert!(
        e.ends_with(&format!(
            "Corefile:2:26: loadbalance: weight file {}:2: an address before any name",
            path.display()
        )),
        "{e}"
    );
    let e = TestServer::try_start(". {\n    loadbalance weighted /nonexistent/w {\n        reload 0s\n    }\n}\n")
        .err()
        .expect("an error");
    assert!(
        e.ends_with(
            "Corefile:2:26: loadbalance: cannot read weight file /nonexistent/w: No such file or directory (os error 2)"
        ),
        "{e}"
    );
}
