//! loadbalance over real sockets.
//!
//! Shuffling, weighting and `limit_answers` are tested over the wire against a hosts block that
//! answers ten addresses for one name; the unit tests (`src/plugins/loadbalance/mod.rs`) cover
//! CNAMEs, MX and the other sections. With whoami, these tests check that the plugin groups
//! sections (whoami's additional section is A then SRV; grouped, the SRV comes first), and the
//! weighted policy's file handling in the real binary.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// A block answering `www.example.org.` with 10.0.0.1 to 10.0.0.10, in that order, with
/// `loadbalance` configured as `lb`.
fn ten_addresses(lb: &str) -> String {
    let entries: String = (1..=10).map(|i| format!("        10.0.0.{i} www.example.org\n")).collect();
    format!("example.org {{\n    hosts {{\n{entries}    }}\n    {lb}\n}}\n")
}

/// The answer section for `www.example.org. A`.
fn answer(addr: std::net::SocketAddr) -> Vec<String> {
    let m = query_udp(addr, "www.example.org.", RecordType::A);
    assert_eq!(m.response_code, ResponseCode::NoError);
    rrs(&m.answers)
}

fn all_ten() -> BTreeSet<String> {
    (1..=10).map(|i| format!("www.example.org. 3600 IN A 10.0.0.{i}")).collect()
}

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

/// Without loadbalance hosts answers in file order; with it the order changes from reply to
/// reply and every address comes first at some point.
#[test]
fn round_robin_shuffles_the_addresses_of_a_hosts_answer() {
    let plain = TestServer::start(&ten_addresses(""));
    let ordered: Vec<String> = (1..=10).map(|i| format!("www.example.org. 3600 IN A 10.0.0.{i}")).collect();
    assert_eq!(answer(plain.addr()), ordered);

    let s = TestServer::start(&ten_addresses("loadbalance"));
    let mut firsts = BTreeSet::new();
    for _ in 0..200 {
        let got = answer(s.addr());
        assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), all_ten());
        firsts.insert(got[0].clone());
    }
    assert_eq!(firsts, all_ten(), "every address should come first in 200 replies");
}

/// `limit_answers 3`: every reply carries three different addresses of the ten, and over 100
/// replies all ten are handed out; dig sees the same.
#[test]
fn limit_answers_keeps_the_first_shuffled_records() {
    let s = TestServer::start(&ten_addresses("loadbalance round_robin {\n        limit_answers 3\n    }"));
    let mut seen = BTreeSet::new();
    for _ in 0..100 {
        let got = answer(s.addr());
        assert_eq!(got.len(), 3, "{got:?}");
        let distinct: BTreeSet<String> = got.into_iter().collect();
        assert_eq!(distinct.len(), 3);
        assert!(distinct.is_subset(&all_ten()), "{distinct:?}");
        seen.extend(distinct);
    }
    assert_eq!(seen, all_ten());
    let out = dig(s.addr(), &["www.example.org", "A", "+short"]);
    assert_eq!(out.lines().filter(|l| l.starts_with("10.0.0.")).count(), 3, "{out}");
    assert_eq!(query_tcp(s.addr(), "www.example.org.", RecordType::A).answers.len(), 3);
}

/// weighted with `limit_answers 1`: the one address kept is drawn by weight (255 against nine
/// addresses of weight 1: about 97% of replies carry 10.0.0.7).
#[test]
fn limit_answers_with_weights_keeps_the_drawn_address() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("db.weights");
    std::fs::write(&weights, "www.example.org\n10.0.0.7 255\n").unwrap();
    let lb = format!("loadbalance weighted {} {{\n        limit_answers 1\n    }}", weights.display());
    let s = TestServer::start(&ten_addresses(&lb));
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..100 {
        let got = answer(s.addr());
        assert_eq!(got.len(), 1, "{got:?}");
        *counts.entry(got[0].clone()).or_default() += 1;
    }
    assert!(counts["www.example.org. 3600 IN A 10.0.0.7"] >= 80, "{counts:?}");
}
