//! The plugin contract over real sockets, with plugins built outside the crate
//! (`common/plugins.rs`): what passes through a request and a response, questions asked on a
//! client's behalf, state across reloads, warm-up before a swap, work after the answer, names
//! resolved through the server's own chains, hooks once serving, a fatal stop, and typed handles
//! between plugins.

mod common;

use std::time::{Duration, Instant};

use common::plugins::TEST_PLUGINS;
use common::*;
use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{RData, RecordType};

fn start(corefile: &str) -> TestServer {
    try_start(corefile).unwrap_or_else(|e| panic!("server did not start:\n{e}"))
}

fn try_start(corefile: &str) -> Result<TestServer, String> {
    TestServer::try_start_with(tempfile::tempdir().unwrap(), corefile, &TEST_PLUGINS)
}

/// The strings of the first TXT record of the answer.
fn txt(m: &Message) -> String {
    match m.answers.iter().find_map(|r| match &r.data {
        RData::TXT(t) => Some(t.to_string()),
        _ => None,
    }) {
        Some(t) => t,
        None => panic!("no TXT in {m:?}"),
    }
}

fn ask_txt(addr: std::net::SocketAddr, name: &str) -> String {
    txt(&query_udp(addr, name, RecordType::TXT))
}

/// The CD bit and every EDNS option (a cookie, an unknown option) reach the plugin, which
/// returns them; its extended error reaches the client; dig agrees.
#[test]
fn edns_options_and_the_cd_bit_reach_a_plugin_and_come_back() {
    let s = start(". {\n    echo\n}\n");
    let mut q = query_message("Echo.Example.", RecordType::TXT);
    q.metadata.checking_disabled = true;
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.set_dnssec_ok(true);
    edns.options_mut().insert(EdnsOption::Unknown(10, b"clientcookie".to_vec()));
    edns.options_mut().insert(EdnsOption::Unknown(65001, vec![1, 2, 3]));
    q.edns = Some(edns);
    for reply in [exchange_udp(s.addr(), &q), exchange_tcp(s.addr(), &q)] {
        assert_eq!(txt(&reply), "cd=1 do=1");
        assert!(reply.metadata.checking_disabled, "CD is echoed");
        assert_eq!(reply.queries[0].name().to_string(), "Echo.Example.");
        let opts = reply.edns.as_ref().expect("an OPT record").options();
        let option = |code: u16| match opts.get(EdnsCode::from(code)) {
            Some(EdnsOption::Unknown(_, data)) => Some(data.clone()),
            other => panic!("option {code}: {other:?}"),
        };
        assert_eq!(option(65001), Some(vec![1, 2, 3]));
        assert_eq!(option(10), Some(b"clientcookie".to_vec()));
        assert_eq!(option(15), Some(b"\x00\x12echoed".to_vec()));
    }
    let out = dig(s.addr(), &["+cdflag", "+ednsopt=65001:0a0b", "echo.example.", "TXT"]);
    assert!(out.contains("\"cd=1 do=0\""), "{out}");
    assert!(out.contains("; OPT=65001: 0a 0b"), "{out}");
    assert!(out.contains("EDE: 18 (Prohibited): (echoed)"), "{out}");
}

/// A record of a type the codec does not model goes out byte for byte, with the extended
/// error beside it.
#[test]
fn an_opaque_record_and_an_extended_error_round_trip_byte_exact() {
    let rdata = "00010203fffe7f80";
    let s = start(&format!(". {{\n    opaque 65534 {rdata}\n}}\n"));
    let q = query_message("x.example.", RecordType::Unknown(65534));
    let wire = raw_udp(s.addr(), &q.to_vec().unwrap()).expect("a reply");
    let want_rdata: Vec<u8> =
        (0..rdata.len()).step_by(2).map(|i| u8::from_str_radix(&rdata[i..i + 2], 16).unwrap()).collect();
    // The one answer: a pointer to the question, type, class, TTL 300, RDLENGTH, RDATA.
    let mut record = vec![0xc0, 12, 0xff, 0xfe, 0, 1, 0, 0, 1, 44, 0, want_rdata.len() as u8];
    record.extend_from_slice(&want_rdata);
    let at = 12 + "x.example.".len() + 1 + 4;
    assert_eq!(&wire[at..at + record.len()], &record[..]);
    // Then the OPT record carrying the extended error: option 15, INFO-CODE 0, the text.
    let mut ede = vec![0, 15, 0, 13, 0, 0];
    ede.extend_from_slice(b"opaque here");
    assert_eq!(&wire[wire.len() - ede.len()..], &ede[..]);
    let m = Message::from_vec(&wire).unwrap();
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].ttl, 300);
}

/// An upstream's whole message, as a forwarder receives it (built and compressed by hickory),
/// decoded and passed on: the client gets every record as the upstream wrote it, the opaque
/// ones (an RRSIG, a private type) byte for byte, the AD bit, and the extended error.
#[test]
fn an_upstream_message_with_an_extended_error_passes_through_byte_exact() {
    use hickory_proto::op::{MessageType, OpCode, Query};
    use hickory_proto::rr::rdata::{A, CNAME, NULL, SOA};
    use hickory_proto::rr::{Name, Record};
    let name = |s: &str| Name::from_ascii(s).unwrap();
    let raw =
        |code: u16, bytes: &[u8]| RData::Unknown { code: RecordType::from(code), rdata: NULL::with(bytes.to_vec()) };
    // RRSIG RDATA: type covered A, algorithm 13, 3 labels, TTL, two times, key tag, the
    // signer's name uncompressed (RFC 4034 3.1.7), a signature.
    let mut rrsig = vec![0, 1, 13, 3, 0, 0, 0, 60, 0x67, 0, 0, 0, 0x66, 0, 0, 0, 0x30, 0x39];
    rrsig.extend_from_slice(b"\x07example\x00");
    rrsig.extend_from_slice(&[0xab; 64]);
    let mut up = Message::new(0x4242, MessageType::Response, OpCode::Query);
    up.metadata.recursion_desired = true;
    up.metadata.recursion_available = true;
    up.metadata.authentic_data = true;
    up.add_query(Query::query(name("www.example."), RecordType::A));
    up.add_answer(Record::from_rdata(name("www.example."), 60, RData::CNAME(CNAME(name("target.example.")))));
    up.add_answer(Record::from_rdata(name("target.example."), 60, RData::A(A::new(192, 0, 2, 7))));
    up.add_answer(Record::from_rdata(name("target.example."), 60, raw(46, &rrsig)));
    up.add_answer(Record::from_rdata(name("target.example."), 60, raw(65534, &[0, 1, 2, 0xc0, 12])));
    up.add_authority(Record::from_rdata(
        name("example."),
        300,
        RData::SOA(SOA::new(name("ns.example."), name("admin.example."), 7, 3600, 600, 86400, 30)),
    ));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.options_mut().insert(EdnsOption::Unknown(15, [&[0u8, 3][..], b"stale answer"].concat()));
    up.edns = Some(edns);
    let wire: String = up.to_vec().unwrap().iter().map(|b| format!("{b:02x}")).collect();
    let s = start(&format!(". {{\n    relay {wire}\n}}\n"));

    let got = query_udp(s.addr(), "WWW.Example.", RecordType::A);
    assert_eq!(got.queries[0].name().to_ascii(), "WWW.Example.", "the client's own spelling");
    assert!(got.metadata.authentic_data, "AD passes through");
    assert_eq!(got.answers, up.answers, "every answer record, opaque RDATA byte for byte");
    assert_eq!(got.authorities, up.authorities);
    let opts = got.edns.as_ref().expect("an OPT record").options();
    let ede = opts.get(EdnsCode::from(15)).cloned();
    assert_eq!(ede, Some(EdnsOption::Unknown(15, [&[0u8, 3][..], b"stale answer"].concat())));
}

/// A plugin asks the rest of the chain another question, as autopath does; the client gets
/// its own question back, in its own spelling.
#[test]
fn a_plugin_asks_another_question_and_the_client_gets_its_own() {
    let s = start(
        ". {\n    requestion target.example.\n    hosts {\n        10.0.0.7 target.example\n        fallthrough\n    }\n}\n",
    );
    for tcp in [false, true] {
        let m = hickory_query(s.addr(), "ALIAS.Example.", RecordType::A, tcp);
        assert_eq!(m.queries[0].name().to_string(), "ALIAS.Example.");
        assert_eq!(m.queries[0].query_type(), RecordType::A);
        // Names are compressed against the question whatever their case, so the target may
        // read `target.Example.`: the same name (RFC 4343).
        let answers: Vec<String> = rrs(&m.answers).iter().map(|r| r.to_lowercase()).collect();
        assert_eq!(answers, ["alias.example. 0 in cname target.example.", "target.example. 3600 in a 10.0.0.7"]);
        assert!(rrs(&m.answers)[0].starts_with("ALIAS.Example. "));
    }
}

/// A reload keeps the state of a plugin whose key is unchanged and rebuilds the one whose key
/// changed.
#[test]
fn a_reload_keeps_unchanged_state_and_rebuilds_changed_state() {
    let s = start("a.test {\n    counter kept\n}\nb.test {\n    counter one\n}\n");
    assert_eq!(ask_txt(s.addr(), "x.a.test."), "kept 1");
    assert_eq!(ask_txt(s.addr(), "x.a.test."), "kept 2");
    assert_eq!(ask_txt(s.addr(), "x.b.test."), "one 1");
    s.write_corefile("a.test {\n    counter kept\n}\nb.test {\n    counter two\n}\nc.test {\n    whoami\n}\n");
    assert_eq!(s.reload(), Ok(true));
    assert_eq!(ask_txt(s.addr(), "x.a.test."), "kept 3", "unchanged: the count goes on");
    assert_eq!(ask_txt(s.addr(), "x.b.test."), "two 1", "changed: new state");
    // The old key's state is gone with the old configuration: asking for it again starts over.
    s.write_corefile("a.test {\n    counter kept\n}\nb.test {\n    counter one\n}\n");
    assert_eq!(s.reload(), Ok(true));
    assert_eq!(ask_txt(s.addr(), "x.b.test."), "one 1");
    assert_eq!(ask_txt(s.addr(), "x.a.test."), "kept 4");
}

/// A new configuration that is slow to warm up holds the swap while the running one answers;
/// once ready it answers.
#[test]
fn a_slow_plugin_holds_the_swap_and_the_old_configuration_answers_meanwhile() {
    let s = start(". {\n    slow_ready old 0s\n}\n");
    assert_eq!(ask_txt(s.addr(), "a.example."), "old");
    s.write_corefile(". {\n    slow_ready new 1500ms\n}\n");
    let server = s.server.clone();
    let addr = s.addr();
    let reload = std::thread::spawn({
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        move || {
            let started = Instant::now();
            rt.block_on(server.reload(false)).unwrap();
            started.elapsed()
        }
    });
    // While the new configuration warms up, the old one answers every query.
    let until = Instant::now() + Duration::from_millis(1000);
    let mut answered = 0;
    while Instant::now() < until {
        assert_eq!(ask_txt(addr, "a.example."), "old");
        answered += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(answered >= 10);
    let took = reload.join().unwrap();
    assert!(took >= Duration::from_millis(1400), "the swap waited for the warm-up: {took:?}");
    assert_eq!(ask_txt(addr, "a.example."), "new");
}

/// Past its bound, the warm-up stops holding the swap: the new configuration answers.
#[test]
fn a_warm_up_past_its_bound_swaps_anyway() {
    let s = start(". {\n    slow_ready old 0s\n}\n");
    s.write_corefile(". {\n    slow_ready new 60s 300ms\n}\n");
    let started = Instant::now();
    assert_eq!(s.reload(), Ok(true));
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(10), "{took:?}");
    assert_eq!(ask_txt(s.addr(), "a.example."), "new");
}

/// A plugin answers and then runs the rest of the chain in a task: the client has its answer
/// before the rest runs, and the rest does run.
#[test]
fn a_background_task_runs_the_rest_of_the_chain_after_the_answer() {
    let s = start(". {\n    background\n    record\n}\n");
    // The answer is the background plugin's own: the rest had not run when it was made.
    assert_eq!(ask_txt(s.addr(), "later.example."), "answered");
    let seen = eventually(TIMEOUT, || {
        let seen = ask_txt(s.addr(), "now.example.");
        (!seen.is_empty()).then_some(seen)
    });
    assert_eq!(seen.as_deref(), Some("later.example."));
}

/// A plugin resolves a name through the server's own chains: another server block answers it.
#[test]
fn a_plugin_resolves_a_name_through_another_server_block() {
    let s =
        start("a.test {\n    resolve www.b.test.\n}\nb.test {\n    hosts {\n        10.9.8.7 www.b.test\n    }\n}\n");
    let m = query_udp(s.addr(), "x.a.test.", RecordType::A);
    assert_eq!(m.response_code, ResponseCode::NoError);
    assert_eq!(rrs(&m.answers), ["www.b.test. 3600 IN A 10.9.8.7"]);
}

/// A name that resolves back to itself stops at the depth bound with SERVFAIL instead of
/// looping; a name no block serves comes back REFUSED.
#[test]
fn resolving_in_a_loop_ends_and_unserved_names_are_refused() {
    let s = start("a.test {\n    resolve x.a.test.\n}\nb.test {\n    resolve elsewhere.example.\n}\n");
    let m = query_udp(s.addr(), "x.a.test.", RecordType::A);
    assert_eq!(m.response_code, ResponseCode::ServFail);
    let m = query_udp(s.addr(), "x.b.test.", RecordType::A);
    assert_eq!(m.response_code, ResponseCode::Refused);
}

/// Once serving, a hook is told the bound addresses and can query its own listener, as the
/// loop plugin's probe does.
#[test]
fn a_hook_runs_once_serving_with_the_bound_addresses() {
    let s = start(". {\n    probe\n    whoami\n}\n");
    let want = format!("NOERROR from {}", s.addr());
    let got = eventually(TIMEOUT, || {
        let t = ask_txt(s.addr(), "status.example.");
        (t != "pending").then_some(t)
    });
    assert_eq!(got, Some(want));
}

/// A plugin stops the server with an error: the server reports it and run_until_signal ends
/// with the fatal status (exit 1).
#[test]
fn a_plugin_stops_the_server_with_an_error() {
    let s = start(". {\n    stop_on_serving loop detected\n}\n");
    let addr = s.addr();
    let stopped = s.block_on(async {
        tokio::time::timeout(TIMEOUT, s.server.run_until_signal()).await.expect("stopped").expect("signals")
    });
    assert_eq!(stopped, clusterdns::server::Stopped::Fatal);
    assert_eq!(stopped.exit_code(), 1);
    assert_eq!(s.server.fatal_error().as_deref(), Some("plugin/stop_on_serving: loop detected"));
    let query = query_message("a.", RecordType::A).to_vec().unwrap();
    assert!(raw_udp_wait(addr, &query, Duration::from_millis(300)).is_none(), "still answering");
}

/// A plugin gets a typed handle from one after it in its block; without the provider, the
/// Corefile fails to start with the position of the consumer.
#[test]
fn plugins_reach_each_other_through_typed_handles() {
    let s = start(". {\n    provider hello\n    consumer\n}\n");
    assert_eq!(ask_txt(s.addr(), "a.example."), "hello");
    let err = try_start(". {\n    whoami\n    consumer\n}\n").err().expect("an error");
    assert!(err.ends_with("Corefile:3:5: consumer: needs the provider plugin in this server block"), "{err}");
}
