//! The loop plugin: a server that forwards to itself stops at start with CoreDNS's error; one
//! that forwards elsewhere keeps serving.

mod common;
mod upstreams;

use std::time::Duration;

use common::*;
use hickory_proto::rr::RecordType;

/// `forward . 127.0.0.1:PORT` on the server's own port is a loop: `[FATAL] plugin/loop: Loop
/// (...) detected for zone "."` and exit status 1.
#[test]
fn forwarding_to_itself_stops_the_server_naming_the_loop() {
    let mut b = Binary::start(".:PORT {\n    bind 127.0.0.1\n    loop\n    forward . 127.0.0.1:PORT\n}\n");
    let code = b.process.wait_exit(Duration::from_secs(20));
    assert_eq!(code, Some(1), "{}", b.process.lines().join("\n"));
    let lines = b.process.all_lines(TIMEOUT);
    let fatal = lines.iter().find(|l| l.contains("[FATAL]")).unwrap_or_else(|| panic!("{}", lines.join("\n")));
    let want = "[FATAL] plugin/loop: Loop (127.0.0.1:";
    assert!(fatal.starts_with(want), "{fatal}");
    assert!(fatal.contains(&format!(" -> {}) detected for zone \".\"", b.addr)), "{fatal}");
    assert!(fatal.contains("Query: \"HINFO "), "{fatal}");
}

/// The same Corefile forwarding to a real upstream keeps running and answering.
#[test]
fn forwarding_elsewhere_keeps_serving() {
    let knot = upstreams::Knot::start("");
    let b = Binary::start(&format!(".:PORT {{\n    bind 127.0.0.1\n    loop\n    forward . {}\n}}\n", knot.addr));
    // Past the probe and the 2 s the plugin keeps counting.
    std::thread::sleep(Duration::from_secs(3));
    let mut process = b.process;
    assert!(process.child.try_wait().unwrap().is_none(), "exited:\n{}", process.lines().join("\n"));
    let reply = query_udp(b.addr, "www.example.test.", RecordType::A);
    assert_eq!(rrs(&reply.answers), ["www.example.test. 300 IN A 192.0.2.1"]);
    assert!(!process.lines().iter().any(|l| l.contains("[FATAL]")));
    let _ = process.child.kill();
}
