//! The forward plugin over real sockets: a real Knot DNS server as the upstream, and scripted
//! upstreams that misbehave on purpose. CoreDNS's known failures are tests named after them.

mod common;
mod upstreams;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::serialize::binary::BinEncodable;
use upstreams::{Act, Knot, Scripted, a_records, answer};

/// A server forwarding everything to `to`, with one UDP worker: pooled connections are kept per
/// runtime (each UDP worker has its own), so the counts of reused ones are exact only with one.
fn forward_to(to: &str, options: &str) -> TestServer {
    TestServer::try_start_configured(
        tempfile::tempdir().unwrap(),
        &format!(". {{\n    forward . {to} {{\n{options}\n    }}\n}}\n"),
        |o| o.udp_workers = Some(1),
    )
    .unwrap()
}

/// A query with EDNS (1232) and the DO bit.
fn dnssec_query(name: &str, qtype: RecordType) -> Message {
    let mut q = query_message(name, qtype);
    q.edns.as_mut().unwrap().set_dnssec_ok(true);
    q
}

fn metric(s: &TestServer, prefix: &str) -> f64 {
    s.metrics()
        .lines()
        .filter(|l| l.starts_with(prefix))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

/// Knot's signed answers reach the client record for record and byte for byte: the RRSIGs,
/// the DNSKEY set and the NSEC proof of a name that does not exist, with the DO bit set.
#[test]
fn dnssec_records_from_knot_pass_through_byte_exact() {
    let knot = Knot::start("");
    let s = forward_to(&knot.addr.to_string(), "");
    for (name, qtype) in [
        ("www.example.test.", RecordType::A),
        ("example.test.", RecordType::DNSKEY),
        ("nothere.example.test.", RecordType::A),
        ("www.example.test.", RecordType::MX),
    ] {
        for tcp in [false, true] {
            let q = dnssec_query(name, qtype);
            let via = if tcp { exchange_tcp(s.addr(), &q) } else { exchange_udp(s.addr(), &q) };
            let direct = if tcp { exchange_tcp(knot.addr, &q) } else { exchange_udp(knot.addr, &q) };
            assert_eq!(via.response_code, direct.response_code, "{name} {qtype}");
            assert_eq!(via.authoritative, direct.authoritative, "{name} {qtype}");
            for (a, b) in [(&via.answers, &direct.answers), (&via.authorities, &direct.authorities)] {
                let bytes = |rs: &Vec<hickory_proto::rr::Record>| -> Vec<Vec<u8>> {
                    rs.iter().map(|r| r.to_bytes().unwrap()).collect()
                };
                assert_eq!(bytes(a), bytes(b), "{name} {qtype}");
            }
            let types: Vec<RecordType> = via.answers.iter().chain(&via.authorities).map(|r| r.record_type()).collect();
            assert!(types.contains(&RecordType::RRSIG), "{name} {qtype}: {types:?}");
        }
    }
}

/// An upstream's extended DNS error (RFC 8914) and an option nobody here knows reach the
/// client as the upstream sent them; its COOKIE, which belongs to the hop, does not.
#[test]
fn extended_errors_and_options_pass_through_byte_exact() {
    let up = Scripted::start(|q, _| {
        vec![Act::Reply(answer(q, |r| {
            r.metadata.response_code = ResponseCode::ServFail;
            let opts = r.edns.as_mut().unwrap().options_mut();
            opts.insert(EdnsOption::Unknown(15, b"\x00\x16no reachable authority".to_vec()));
            opts.insert(EdnsOption::Unknown(65001, vec![9, 8, 7]));
            opts.insert(EdnsOption::Unknown(10, vec![1; 24]));
        }))]
    });
    let s = forward_to(&up.addr.to_string(), "");
    let reply = exchange_udp(s.addr(), &query_message("broken.example.", RecordType::A));
    assert_eq!(reply.response_code, ResponseCode::ServFail);
    let opts = reply.edns.as_ref().expect("an OPT record").options();
    let option = |code: u16| match opts.get(EdnsCode::from(code)) {
        Some(EdnsOption::Unknown(_, data)) => Some(data.clone()),
        None => None,
        other => panic!("option {code}: {other:?}"),
    };
    assert_eq!(option(15), Some(b"\x00\x16no reachable authority".to_vec()));
    assert_eq!(option(65001), Some(vec![9, 8, 7]));
    assert_eq!(option(10), None, "the upstream's cookie is not the client's");
    let out = dig(s.addr(), &["broken.example.", "A"]);
    assert!(out.contains("EDE: 22 (No Reachable Authority): (no reachable authority)"), "{out}");
}

/// coredns#4183: a truncated UDP answer is asked again over TCP, so a client with room for it
/// gets the whole answer, and a client without EDNS gets what fits in 512 bytes with TC set.
#[test]
fn coredns_4183_truncated_answer_is_retried_over_tcp() {
    let up = Scripted::start(|q, tcp| {
        if tcp {
            vec![Act::Reply(a_records(q, 60))]
        } else {
            vec![Act::Reply(answer(q, |r| r.metadata.truncation = true))]
        }
    });
    let s = forward_to(&up.addr.to_string(), "");
    let full = exchange_udp(s.addr(), &{
        let mut q = query_message("big.example.", RecordType::A);
        q.edns.as_mut().unwrap().set_max_payload(4096);
        q
    });
    assert!(!full.truncation);
    assert_eq!(full.answers.len(), 60);
    assert!(up.tcp_count() >= 1);

    let mut plain = query_message("big2.example.", RecordType::A);
    plain.edns = None;
    let bytes = raw_udp(s.addr(), &plain.to_vec().unwrap()).expect("a reply");
    assert!(bytes.len() <= 512, "{} bytes", bytes.len());
    let cut = Message::from_vec(&bytes).unwrap();
    assert!(cut.truncation, "TC set when the answer does not fit");
    assert!(cut.answers.len() < 60);
    // dig retries over TCP on TC and gets everything.
    let out = dig(s.addr(), &["+noedns", "big3.example.", "A"]);
    assert_eq!(out.matches("\tIN\tA\t10.0.").count(), 60, "{out}");
}

/// coredns#2636: a late answer with another ID (a reused source port), an answer to another
/// question, garbage and a datagram from another port are all ignored; the client gets the
/// real answer, never a FORMERR.
#[test]
fn coredns_2636_late_and_spoofed_answers_are_ignored_not_formerr() {
    let up = Scripted::start(|q, _| {
        let mut wrong_id = q.clone();
        wrong_id.metadata.id = q.id.wrapping_add(1);
        let mut wrong_q = q.clone();
        wrong_q.queries[0].set_name(hickory_proto::rr::Name::from_ascii("other.example.").unwrap());
        vec![
            Act::Reply(a_records(&wrong_id, 1)),
            Act::Reply(a_records(&wrong_q, 1)),
            Act::Raw(vec![0xde, 0xad, 0xbe, 0xef]),
            // The right ID and question, from the wrong port: the kernel drops it.
            Act::Spoof(a_records(q, 3)),
            Act::Wait(Duration::from_millis(50)),
            Act::Reply(a_records(q, 2)),
        ]
    });
    let s = forward_to(&up.addr.to_string(), "");
    for i in 0..5 {
        let reply = query_udp(s.addr(), &format!("q{i}.example."), RecordType::A);
        assert_eq!(reply.response_code, ResponseCode::NoError);
        assert_eq!(
            rrs(&reply.answers),
            [format!("q{i}.example. 60 IN A 10.0.0.0"), format!("q{i}.example. 60 IN A 10.0.0.1")]
        );
    }
}

/// A UDP upstream on loopback that records the source port and name of every query and answers
/// each with one A record, except names starting with `drop`, which it ignores. Ends 500 ms after
/// the last query; join it for the record.
fn recording_upstream() -> (SocketAddr, std::thread::JoinHandle<Vec<(u16, String)>>) {
    let rec = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = rec.local_addr().unwrap();
    rec.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let t = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = rec.recv_from(&mut buf) {
            let q = Message::from_vec(&buf[..n]).unwrap();
            let name = q.queries[0].name().to_ascii();
            if !name.starts_with("drop") {
                let _ = rec.send_to(&a_records(&q, 1), from);
            }
            seen.push((from.port(), name));
        }
        seen
    });
    (addr, t)
}

/// UDP sockets are pooled like TCP connections (CoreDNS does too), but one carries at most 64
/// queries: the source port keeps changing. Counted as connection cache hits and misses.
#[test]
fn udp_sockets_are_pooled_for_at_most_64_queries() {
    let (addr, t) = recording_upstream();
    let s = forward_to(&addr.to_string(), "");
    for i in 0..150 {
        assert_eq!(query_udp(s.addr(), &format!("p{i}.example."), RecordType::A).answers.len(), 1);
    }
    let seen = t.join().unwrap();
    assert_eq!(seen.len(), 150);
    let mut per_port = std::collections::BTreeMap::<u16, usize>::new();
    for (port, _) in &seen {
        *per_port.entry(*port).or_default() += 1;
    }
    // Sequential queries take the one idle socket until it has carried its 64.
    assert_eq!(per_port.values().copied().max(), Some(64), "{per_port:?}");
    assert_eq!(per_port.len(), 3, "{per_port:?}");
    let label =
        |m: &str| format!("coredns_proxy_conn_cache_{m}_total{{proto=\"udp\",proxy_name=\"forward\",to=\"{addr}\"}}");
    assert_eq!((metric(&s, &label("misses")), metric(&s, &label("hits"))), (3.0, 147.0), "{}", s.metrics());
}

/// A socket whose query timed out is closed, not pooled: its late answer can never meet the next
/// query, which leaves from another port.
#[test]
fn a_udp_socket_whose_query_timed_out_is_not_reused() {
    let (addr, t) = recording_upstream();
    let s = forward_to(&addr.to_string(), "        read_timeout 200ms");
    assert_eq!(query_udp(s.addr(), "before.example.", RecordType::A).answers.len(), 1);
    assert_eq!(query_udp(s.addr(), "drop.example.", RecordType::A).response_code, ResponseCode::ServFail);
    assert_eq!(query_udp(s.addr(), "after.example.", RecordType::A).answers.len(), 1);
    let seen = t.join().unwrap();
    let port = |name: &str| seen.iter().find(|(_, n)| n == name).map(|(p, _)| *p).unwrap();
    assert_eq!(port("before.example."), port("drop.example."), "the pooled socket was reused: {seen:?}");
    for (p, n) in &seen {
        if n.starts_with("drop") {
            assert_ne!(*p, port("after.example."), "a timed-out socket was reused: {seen:?}");
        }
    }
}

/// coredns#2636, on a pooled socket: the upstream answers twice, and the duplicate arrives on
/// the socket after it went back to the pool. The next query on it reads the stale answer first
/// (another ID, another question), drops it and gets its own.
#[test]
fn coredns_2636_a_stale_answer_on_a_pooled_socket_is_dropped() {
    let up = Scripted::start(|q, _| {
        vec![Act::Reply(a_records(q, 1)), Act::Wait(Duration::from_millis(30)), Act::Reply(a_records(q, 2))]
    });
    let s = forward_to(&up.addr.to_string(), "");
    for i in 0..10 {
        let reply = query_udp(s.addr(), &format!("d{i}.example."), RecordType::A);
        assert_eq!(reply.response_code, ResponseCode::NoError);
        assert_eq!(rrs(&reply.answers), [format!("d{i}.example. 60 IN A 10.0.0.0")]);
        std::thread::sleep(Duration::from_millis(50));
    }
    let hits =
        format!("coredns_proxy_conn_cache_hits_total{{proto=\"udp\",proxy_name=\"forward\",to=\"{}\"}}", up.addr);
    assert_eq!(metric(&s, &hits), 9.0, "{}", s.metrics());
}

/// A silent upstream: the query moves on to the next after the read timeout, health checks
/// mark the silent one down, and later queries go straight to the healthy one.
#[test]
fn a_silent_upstream_is_marked_down_and_traffic_moves_to_the_other() {
    let silent = Scripted::start(|_, _| vec![]);
    let good = Scripted::start(|q, _| vec![Act::Reply(a_records(q, 1))]);
    let s = forward_to(
        &format!("{} {}", silent.addr, good.addr),
        "        policy sequential\n        read_timeout 300ms\n        health_check 100ms\n        max_fails 1",
    );
    let t = Instant::now();
    let reply = query_udp(s.addr(), "first.example.", RecordType::A);
    assert_eq!(reply.answers.len(), 1);
    assert!(t.elapsed() >= Duration::from_millis(300), "the silent upstream was asked first");
    // Checks every 100 ms; down after more than one failure (each waits 300 ms).
    let fast = eventually(Duration::from_secs(5), || {
        let t = Instant::now();
        let reply = query_udp(s.addr(), &format!("n{}.example.", fastrand_u16()), RecordType::A);
        (reply.answers.len() == 1 && t.elapsed() < Duration::from_millis(200)).then_some(())
    });
    assert!(fast.is_some(), "queries still wait for the silent upstream");
    let failures = metric(
        &s,
        &format!("coredns_proxy_healthcheck_failures_total{{proxy_name=\"forward\",to=\"{}\"}}", silent.addr),
    );
    assert!(failures >= 2.0, "{}", s.metrics());
    assert!(metric(&s, &format!("coredns_forward_healthcheck_failures_total{{to=\"{}\"}}", silent.addr)) >= 2.0);
}

fn fastrand_u16() -> u16 {
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed) as u16
}

/// coredns#5897: with every upstream failing fast, a query makes a bounded number of attempts
/// (and, once they are marked down, one), instead of looping against them until its deadline.
#[test]
fn coredns_5897_all_upstreams_down_is_servfail_not_a_query_storm() {
    // Each accepts a TCP connection and closes it at once: the fastest failure there is.
    let a = Scripted::start(|_, _| vec![Act::Close]);
    let b = Scripted::start(|_, _| vec![Act::Close]);
    let s = forward_to(&format!("{} {}", a.addr, b.addr), "        force_tcp");
    let ask = |name: &str| {
        let t = Instant::now();
        let reply = query_udp(s.addr(), name, RecordType::A);
        assert_eq!(reply.response_code, ResponseCode::ServFail);
        assert!(t.elapsed() < Duration::from_secs(1), "SERVFAIL took {:?}", t.elapsed());
    };
    // Before the health checks have marked them down: two attempts per upstream at most.
    for i in 0..10 {
        let before = a.count() + b.count();
        ask(&format!("s{i}.example."));
        let sent = a.count() + b.count() - before;
        assert!(sent <= 4 + 2, "{sent} upstream queries for one query");
    }
    // Once both are down (three failed checks each, 0.5 s apart): one attempt per query.
    let down = eventually(TIMEOUT, || {
        ask("wait.example.");
        std::thread::sleep(Duration::from_millis(100));
        (metric(&s, "coredns_forward_healthcheck_broken_total") >= 1.0).then_some(())
    });
    assert!(down.is_some(), "{}", s.metrics());
    let before = a.count() + b.count();
    let queries = 30;
    for i in 0..queries {
        ask(&format!("d{i}.example."));
    }
    let sent = a.count() + b.count() - before;
    // One per query, and the health checks running meanwhile.
    assert!(sent <= queries + 8, "{sent} upstream queries for {queries}");
}

/// With `failfast_all_unhealthy_upstreams`, nothing is sent once every upstream is down.
#[test]
fn failfast_sends_nothing_when_all_are_down() {
    let a = Scripted::start(|_, _| vec![Act::Close]);
    let s = forward_to(
        &a.addr.to_string(),
        "        force_tcp\n        health_check 50ms\n        max_fails 1\n        failfast_all_unhealthy_upstreams",
    );
    query_udp(s.addr(), "first.example.", RecordType::A);
    assert!(
        eventually(TIMEOUT, || (metric(&s, "coredns_forward_healthcheck_broken_total") > 0.0 || {
            query_udp(s.addr(), "probe.example.", RecordType::A);
            false
        })
        .then_some(()))
        .is_some()
    );
    let before = a.count();
    for i in 0..10 {
        let reply = query_udp(s.addr(), &format!("ff{i}.example."), RecordType::A);
        assert_eq!(reply.response_code, ResponseCode::ServFail);
    }
    // Health checks (NS .) may still arrive; client queries do not.
    let after: Vec<String> =
        a.queries.lock().unwrap()[before..].iter().map(|(_, q)| q.queries[0].name().to_string()).collect();
    assert!(after.iter().all(|n| n == "."), "{after:?}");
}

/// Open file descriptors of this process (the server runs in it).
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// CPU seconds this process has used.
fn cpu_seconds() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// coredns#6090: a wrong upstream address (nothing listening, or nothing answering) leaks no
/// sockets and does not spin.
#[test]
fn coredns_6090_a_wrong_upstream_address_leaks_no_sockets_and_does_not_spin() {
    let closed = free_port();
    let silent = Scripted::start(|_, _| vec![]);
    let s = TestServer::start(&format!(
        "refused.example {{\n    forward . 127.0.0.1:{closed}\n}}\n\
         silent.example {{\n    forward . {} {{\n        read_timeout 100ms\n    }}\n}}\n",
        silent.addr
    ));
    // Warm up (the runtime's own descriptors), then measure.
    query_udp(s.addr(), "w.refused.example.", RecordType::A);
    let before = open_fds();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let addr = s.addr();
            std::thread::spawn(move || {
                for i in 0..25 {
                    let zone = if i % 2 == 0 { "refused" } else { "silent" };
                    let r = query_udp(addr, &format!("x{t}-{i}.{zone}.example."), RecordType::A);
                    assert_eq!(r.response_code, ResponseCode::ServFail);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let settled = eventually(TIMEOUT, || (open_fds() <= before + 4).then_some(()));
    assert!(settled.is_some(), "descriptors: {before} before, {} after", open_fds());
    // Idle afterwards: health checks every 0.5 s cost next to nothing.
    let cpu = cpu_seconds();
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_seconds() - cpu;
    assert!(used < 0.25, "{used} CPU seconds in one idle second");
}

/// `max_concurrent`: queries beyond the limit are answered REFUSED at once and counted.
#[test]
fn max_concurrent_refuses_beyond_the_limit() {
    let slow = Scripted::start(|q, _| vec![Act::Wait(Duration::from_millis(700)), Act::Reply(a_records(q, 1))]);
    let s = forward_to(&slow.addr.to_string(), "        max_concurrent 2");
    let addr = s.addr();
    let threads: Vec<_> = (0..6)
        .map(|i| std::thread::spawn(move || query_udp(addr, &format!("c{i}.example."), RecordType::A).response_code))
        .collect();
    let codes: Vec<ResponseCode> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let refused = codes.iter().filter(|c| **c == ResponseCode::Refused).count();
    let answered = codes.iter().filter(|c| **c == ResponseCode::NoError).count();
    assert_eq!((refused, answered), (4, 2), "{codes:?}");
    assert_eq!(metric(&s, "coredns_forward_max_concurrent_rejects_total"), 4.0);
}

/// A UDP worker finishes its forwarded queries itself, on its own runtime: while dozens of them
/// wait on an upstream that never answers, the same worker still reads its socket and answers
/// everything else at once.
#[test]
fn queries_waiting_upstream_do_not_hold_up_the_workers_other_answers() {
    let silent = Scripted::start(|_, _| vec![]);
    let corefile = format!(
        "slow.example {{\n    forward . {} {{\n        read_timeout 2s\n    }}\n}}\n. {{\n    whoami\n}}\n",
        silent.addr
    );
    let s =
        TestServer::try_start_configured(tempfile::tempdir().unwrap(), &corefile, |o| o.udp_workers = Some(1)).unwrap();
    let waiting = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..32 {
        let q = query_message(&format!("w{i}.slow.example."), RecordType::A);
        waiting.send_to(&q.to_vec().unwrap(), s.addr()).unwrap();
    }
    // The last of them has reached the upstream, so all 32 wait in the worker.
    assert!(
        eventually(TIMEOUT, || (silent.count() >= 32).then_some(())).is_some(),
        "{} reached the upstream",
        silent.count()
    );
    for i in 0..5 {
        let t = Instant::now();
        let reply = query_udp(s.addr(), &format!("other{i}.example."), RecordType::A);
        assert_eq!(reply.response_code, ResponseCode::NoError);
        assert!(t.elapsed() < Duration::from_millis(500), "answered after {:?}", t.elapsed());
    }
    // And they were still waiting all along.
    waiting.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 512];
    assert!(waiting.recv(&mut buf).is_err(), "a forwarded query was answered before its read timeout");
}

/// Identical queries in flight at once cost the upstream one query.
#[test]
fn identical_inflight_misses_are_coalesced() {
    let slow = Scripted::start(|q, _| vec![Act::Wait(Duration::from_millis(300)), Act::Reply(a_records(q, 2))]);
    let s = forward_to(&slow.addr.to_string(), "");
    let addr = s.addr();
    let threads: Vec<_> = (0..10)
        .map(|_| std::thread::spawn(move || rrs(&query_udp(addr, "same.example.", RecordType::A).answers)))
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), ["same.example. 60 IN A 10.0.0.0", "same.example. 60 IN A 10.0.0.1"]);
    }
    assert_eq!(slow.count(), 1);
}

/// TCP connections are pooled: one connection serves sequential queries until it expires.
#[test]
fn tcp_connections_are_reused_until_they_expire() {
    let knot = Knot::start("");
    let s = forward_to(&knot.addr.to_string(), "        force_tcp\n        expire 500ms");
    for _ in 0..5 {
        let reply = query_udp(s.addr(), "www.example.test.", RecordType::A);
        assert_eq!(rrs(&reply.answers), ["www.example.test. 300 IN A 192.0.2.1"]);
    }
    let label = |m: &str| {
        format!("coredns_proxy_conn_cache_{m}_total{{proto=\"tcp\",proxy_name=\"forward\",to=\"{}\"}}", knot.addr)
    };
    assert_eq!((metric(&s, &label("misses")), metric(&s, &label("hits"))), (1.0, 4.0), "{}", s.metrics());
    std::thread::sleep(Duration::from_millis(800));
    query_udp(s.addr(), "www.example.test.", RecordType::A);
    assert_eq!(metric(&s, &label("misses")), 2.0);
}

/// A UDP client's forwarded query is finished on its UDP worker's own runtime, a TCP client's on
/// the shared one, and a pooled connection is only ever handed back to the runtime that watches
/// it: taken by the other, it would never be woken and the query would wait out its read
/// timeout. Each runtime reuses its own connection.
#[test]
fn pooled_connections_stay_with_the_runtime_that_watches_them() {
    let knot = Knot::start("");
    let s = forward_to(&knot.addr.to_string(), "        force_tcp\n        read_timeout 1s");
    for (i, over_tcp) in [false, true, false, true, false].into_iter().enumerate() {
        let t = Instant::now();
        let reply = if over_tcp {
            query_tcp(s.addr(), "www.example.test.", RecordType::A)
        } else {
            query_udp(s.addr(), "www.example.test.", RecordType::A)
        };
        assert_eq!(rrs(&reply.answers), ["www.example.test. 300 IN A 192.0.2.1"], "query {i}");
        assert!(t.elapsed() < Duration::from_millis(500), "query {i} (tcp: {over_tcp}) took {:?}", t.elapsed());
    }
    let label = |m: &str| {
        format!("coredns_proxy_conn_cache_{m}_total{{proto=\"tcp\",proxy_name=\"forward\",to=\"{}\"}}", knot.addr)
    };
    // A connection for the shared runtime and one for the UDP worker, reused from then on.
    assert_eq!((metric(&s, &label("misses")), metric(&s, &label("hits"))), (2.0, 3.0), "{}", s.metrics());
}

/// A reload that leaves an upstream's settings alone keeps its pooled connections.
#[test]
fn a_reload_keeps_the_connection_pool() {
    let knot = Knot::start("");
    let s = forward_to(&knot.addr.to_string(), "        force_tcp");
    query_udp(s.addr(), "www.example.test.", RecordType::A);
    s.write_corefile(&format!(
        ". {{\n    forward . {} {{\n        force_tcp\n        max_concurrent 100\n    }}\n}}\n",
        knot.addr
    ));
    assert_eq!(s.reload(), Ok(true));
    query_udp(s.addr(), "www.example.test.", RecordType::A);
    let label = |m: &str| {
        format!("coredns_proxy_conn_cache_{m}_total{{proto=\"tcp\",proxy_name=\"forward\",to=\"{}\"}}", knot.addr)
    };
    assert_eq!((metric(&s, &label("misses")), metric(&s, &label("hits"))), (1.0, 1.0), "{}", s.metrics());
}

/// An upstream that closes TCP halfway through its answer: the next upstream answers.
#[test]
fn closing_tcp_mid_answer_moves_on_to_the_next_upstream() {
    let broken = Scripted::start(|q, _| {
        let full = a_records(q, 5);
        let mut half = (full.len() as u16).to_be_bytes().to_vec();
        half.extend_from_slice(&full[..full.len() / 2]);
        vec![Act::Raw(half), Act::Close]
    });
    let knot = Knot::start("");
    let s = forward_to(&format!("{} {}", broken.addr, knot.addr), "        force_tcp\n        policy sequential");
    let reply = query_udp(s.addr(), "www.example.test.", RecordType::A);
    assert_eq!(rrs(&reply.answers), ["www.example.test. 300 IN A 192.0.2.1"]);
    assert!(broken.count() >= 1);
    // Alone, it is a SERVFAIL.
    let s = forward_to(&broken.addr.to_string(), "        force_tcp");
    assert_eq!(query_udp(s.addr(), "www.example.test.", RecordType::A).response_code, ResponseCode::ServFail);
}

/// `failover SERVFAIL` asks the next upstream; `next NXDOMAIN` hands the query to the next
/// forward line.
#[test]
fn failover_and_next_rcodes() {
    let failing =
        Scripted::start(|q, _| vec![Act::Reply(answer(q, |r| r.metadata.response_code = ResponseCode::ServFail))]);
    let nx = Scripted::start(|q, _| vec![Act::Reply(answer(q, |r| r.metadata.response_code = ResponseCode::NXDomain))]);
    let knot = Knot::start("");
    let s =
        forward_to(&format!("{} {}", failing.addr, knot.addr), "        policy sequential\n        failover SERVFAIL");
    let reply = query_udp(s.addr(), "www.example.test.", RecordType::A);
    assert_eq!(rrs(&reply.answers), ["www.example.test. 300 IN A 192.0.2.1"]);
    // Without failover, the SERVFAIL stands.
    let s = forward_to(&format!("{} {}", failing.addr, knot.addr), "        policy sequential");
    assert_eq!(query_udp(s.addr(), "www.example.test.", RecordType::A).response_code, ResponseCode::ServFail);

    let s = TestServer::start(&format!(
        ". {{\n    forward . {} {{\n        next NXDOMAIN\n    }}\n    forward . {}\n}}\n",
        nx.addr, knot.addr
    ));
    let reply = query_udp(s.addr(), "www.example.test.", RecordType::A);
    assert_eq!(rrs(&reply.answers), ["www.example.test. 300 IN A 192.0.2.1"]);
    assert_eq!(nx.count(), 1);
}

/// Names outside FROM or under `except` go on to the next plugin (whoami here).
#[test]
fn except_and_from_hand_names_on() {
    let knot = Knot::start("");
    let s = TestServer::start(&format!(
        ". {{\n    forward example.test {} {{\n        except skip.example.test\n    }}\n    whoami\n}}\n",
        knot.addr
    ));
    let forwarded = query_udp(s.addr(), "www.example.test.", RecordType::A);
    assert_eq!(rrs(&forwarded.answers), ["www.example.test. 300 IN A 192.0.2.1"]);
    for name in ["a.skip.example.test.", "elsewhere.example."] {
        let r = query_udp(s.addr(), name, RecordType::A);
        assert!(r.answers.is_empty() && !r.additionals.is_empty(), "{name}: whoami answers: {r:?}");
    }
}

/// The health check asks `domain NS` without RD under `no_rec`.
#[test]
fn health_check_query_follows_no_rec_and_domain() {
    // Silent to the first query, answering afterwards.
    let first = Arc::new(AtomicUsize::new(0));
    let seen = first.clone();
    let up = Scripted::start(move |q, _| {
        if seen.fetch_add(1, Ordering::Relaxed) == 0 { vec![] } else { vec![Act::Reply(a_records(q, 0))] }
    });
    let s = forward_to(
        &up.addr.to_string(),
        "        read_timeout 200ms\n        max_connect_attempts 1\n        health_check 100ms no_rec domain health.example.",
    );
    assert_eq!(query_udp(s.addr(), "x.example.", RecordType::A).response_code, ResponseCode::ServFail);
    let check = eventually(TIMEOUT, || {
        up.queries.lock().unwrap().iter().find(|(_, q)| q.queries[0].query_type() == RecordType::NS).cloned()
    })
    .expect("a health check");
    assert_eq!(check.1.queries[0].name().to_string(), "health.example.");
    assert!(!check.1.recursion_desired);
}

/// Upstream metrics under CoreDNS's current names and the pre-1.11 ones the mixin's alerts use.
#[test]
fn metrics_have_corednss_names() {
    let knot = Knot::start("");
    let s = forward_to(&knot.addr.to_string(), "");
    for _ in 0..3 {
        query_udp(s.addr(), "www.example.test.", RecordType::A);
    }
    query_udp(s.addr(), "nothere.example.test.", RecordType::A);
    let to = knot.addr;
    let m = s.metrics();
    let want = [
        (
            format!(
                "coredns_proxy_request_duration_seconds_count{{proxy_name=\"forward\",rcode=\"NOERROR\",to=\"{to}\"}}"
            ),
            3.0,
        ),
        (
            format!(
                "coredns_proxy_request_duration_seconds_count{{proxy_name=\"forward\",rcode=\"NXDOMAIN\",to=\"{to}\"}}"
            ),
            1.0,
        ),
        (format!("coredns_forward_requests_total{{to=\"{to}\"}}"), 4.0),
        (format!("coredns_forward_responses_total{{rcode=\"NOERROR\",to=\"{to}\"}}"), 3.0),
        (format!("coredns_forward_request_duration_seconds_count{{rcode=\"NXDOMAIN\",to=\"{to}\"}}"), 1.0),
        (format!("coredns_proxy_conn_cache_misses_total{{proto=\"udp\",proxy_name=\"forward\",to=\"{to}\"}}"), 1.0),
        (format!("coredns_proxy_conn_cache_hits_total{{proto=\"udp\",proxy_name=\"forward\",to=\"{to}\"}}"), 3.0),
    ];
    for (series, value) in want {
        assert_eq!(metric(&s, &series), value, "{series}\n{m}");
    }
    for family in ["coredns_forward_healthcheck_broken_total 0", "coredns_forward_max_concurrent_rejects_total 0"] {
        assert!(m.contains(family), "{family}\n{m}");
    }
}

/// kubeadm's Corefile forward line, `forward . /etc/resolv.conf { max_concurrent 1000 }`, with
/// a resolv.conf of the test's: its nameservers are the upstreams.
#[test]
fn kubeadm_forward_line_reads_resolv_conf() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("resolv.conf"),
        "search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver 127.0.0.1\noptions ndots:5\n",
    )
    .unwrap();
    let corefile = format!(
        ".:53 {{\n    errors\n    health {{\n       lameduck 5s\n    }}\n    ready\n    prometheus :9153\n    \
         forward . {}/resolv.conf {{\n       max_concurrent 1000\n    }}\n    loop\n    reload\n    loadbalance\n}}\n",
        dir.path().display()
    );
    let s = TestServer::try_start_in(tempfile::tempdir().unwrap(), &corefile).unwrap();
    query_udp(s.addr(), "www.example.test.", RecordType::A);
    assert!(metric(&s, "coredns_forward_requests_total{to=\"127.0.0.1:53\"}") >= 1.0, "{}", s.metrics());
    // A resolv.conf that is not there is an error at its position.
    let err = TestServer::try_start(". {\n    forward . /nonexistent/resolv.conf\n}\n").err().unwrap();
    assert!(err.contains(":2:15: forward: not an IP address or file: '/nonexistent/resolv.conf'"), "{err}");
}

/// The CoreDNS mixin's forward alerts, run by `promtool test rules` on series scraped from
/// clusterdns: the pre-1.11 names they query are exported with the labels they need.
#[test]
fn coredns_mixin_forward_alerts_fire_on_our_series() {
    let up = Scripted::start(|q, _| {
        let bad = q.queries[0].name().to_string().starts_with("bad");
        vec![Act::Reply(answer(q, |r| {
            if bad {
                r.metadata.response_code = ResponseCode::ServFail;
            }
        }))]
    });
    let closed = free_port();
    let s = TestServer::start(&format!(
        ". {{\n    forward . {}\n}}\nbroken.example {{\n    forward . 127.0.0.1:{closed} {{\n        health_check 50ms\n        max_fails 1\n    }}\n}}\n",
        up.addr
    ));
    for i in 0..4 {
        query_udp(s.addr(), &format!("good{i}.example."), RecordType::A);
        query_udp(s.addr(), &format!("bad{i}.example."), RecordType::A);
    }
    let broken = eventually(TIMEOUT, || {
        query_udp(s.addr(), "x.broken.example.", RecordType::A);
        (metric(&s, "coredns_forward_healthcheck_broken_total") > 0.0).then_some(())
    });
    assert!(broken.is_some(), "{}", s.metrics());

    // `name{labels} value` lines of the families the alerts read, as promtool input series.
    let scrape = s.metrics();
    let mut input = String::new();
    for line in scrape.lines().filter(|l| {
        [
            "coredns_forward_responses_total{",
            "coredns_forward_healthcheck_failures_total{",
            "coredns_forward_healthcheck_broken_total ",
        ]
        .iter()
        .any(|p| l.starts_with(p))
    }) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = value.parse().unwrap();
        let pod = "job=\"kube-dns\",instance=\"10.244.0.5:9153\",namespace=\"kube-system\",pod=\"coredns-abcde\"";
        let series = match series.split_once('{') {
            Some((name, labels)) => format!("{name}{{{pod},{labels}"),
            None => format!("{series}{{{pod}}}"),
        };
        input.push_str(&format!("      - series: '{series}'\n        values: '0+{value}x20'\n"));
    }
    let to = up.addr;
    let errors = |severity: &str| {
        format!(
            "          - exp_labels:\n              severity: {severity}\n              job: kube-dns\n              \
             namespace: kube-system\n              to: \"{to}\"\n            exp_annotations:\n              \
             summary: CoreDNS is returning SERVFAIL for forward requests.\n              \
             description: CoreDNS is returning SERVFAIL for 50% of forward requests to {to}.\n              \
             runbook_url: https://github.com/povilasv/coredns-mixin/tree/master/runbook.md#alert-name-corednsforwarderrorshigh\n"
        )
    };
    let dead = format!("127.0.0.1:{closed}");
    let rules =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/compat/rules/coredns-mixin-alerts.yaml");
    let test = format!(
        "rule_files:\n  - {rules}\n\nevaluation_interval: 1m\n\ntests:\n\
         \x20 - interval: 1m\n    input_series:\n{input}    alert_rule_test:\n\
         \x20     - eval_time: 15m\n        alertname: CoreDNSForwardErrorsHigh\n        exp_alerts:\n{crit}{warn}\
         \x20     - eval_time: 15m\n        alertname: CoreDNSForwardHealthcheckFailureCount\n        exp_alerts:\n\
         \x20         - exp_labels:\n              severity: warning\n              job: kube-dns\n              \
         namespace: kube-system\n              to: \"{dead}\"\n            exp_annotations:\n              \
         summary: CoreDNS health checks have failed to upstream server.\n              \
         description: CoreDNS health checks have failed to upstream server {dead}.\n              \
         runbook_url: https://github.com/povilasv/coredns-mixin/tree/master/runbook.md#alert-name-corednsforwardhealthcheckfailurecount\n\
         \x20     - eval_time: 15m\n        alertname: CoreDNSForwardHealthcheckBrokenCount\n        exp_alerts:\n\
         \x20         - exp_labels:\n              severity: warning\n              job: kube-dns\n              \
         namespace: kube-system\n            exp_annotations:\n              \
         summary: CoreDNS health checks have failed for all upstream servers.\n              \
         description: CoreDNS health checks have failed for all upstream servers.\n              \
         runbook_url: https://github.com/povilasv/coredns-mixin/tree/master/runbook.md#alert-name-corednsforwardhealthcheckbrokencount\n",
        rules = rules.canonicalize().unwrap().display(),
        crit = errors("critical"),
        warn = errors("warning"),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("forward-alerts.test.yaml");
    std::fs::write(&file, &test).unwrap();
    let out = std::process::Command::new("promtool")
        .args(["test", "rules", file.to_str().unwrap()])
        .output()
        .expect("promtool (install prometheus: .ci/setup)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "promtool test rules failed:\n{text}\n\ntest file:\n{test}");
}

/// The query goes upstream as the client sent it: CD, the OPT record's payload size, DO bit and
/// options (a client subnet, an unknown one).
#[test]
fn the_clients_flags_and_edns_reach_the_upstream() {
    let up = Scripted::start(|q, _| vec![Act::Reply(a_records(q, 1))]);
    let s = forward_to(&up.addr.to_string(), "");
    let mut q = dnssec_query("Mixed.Example.", RecordType::A);
    q.metadata.checking_disabled = true;
    let edns = q.edns.as_mut().unwrap();
    edns.set_max_payload(3000);
    edns.options_mut().insert(EdnsOption::Unknown(8, vec![0, 1, 24, 0, 192, 0, 2]));
    edns.options_mut().insert(EdnsOption::Unknown(65002, b"opaque".to_vec()));
    let reply = exchange_udp(s.addr(), &q);
    assert_eq!(reply.answers.len(), 1);
    let (_, sent) = up.queries.lock().unwrap()[0].clone();
    assert_eq!(sent.queries[0].name().to_string(), "Mixed.Example.");
    assert!(sent.checking_disabled && sent.recursion_desired);
    let e = sent.edns.as_ref().expect("OPT upstream");
    assert_eq!((e.max_payload(), e.flags().dnssec_ok), (3000, true));
    let opt = |code: u16| match e.options().get(EdnsCode::from(code)) {
        Some(EdnsOption::Unknown(_, data)) => Some(data.clone()),
        Some(other) => Some(Vec::<u8>::try_from(other).unwrap_or_default()),
        None => None,
    };
    assert_eq!(opt(65002), Some(b"opaque".to_vec()));
    assert!(opt(8).is_some(), "the client subnet option");
}

/// The transport: the client's by default, TCP with `force_tcp`, UDP with `prefer_udp`.
#[test]
fn force_tcp_and_prefer_udp_choose_the_upstream_transport() {
    let up = Scripted::start(|q, _| vec![Act::Reply(a_records(q, 1))]);
    let cases =
        [("", false, false), ("", true, true), ("        force_tcp", false, true), ("        prefer_udp", true, false)];
    for (options, client_tcp, want_tcp) in cases {
        let s = forward_to(&up.addr.to_string(), options);
        let before = up.tcp_count();
        let name = format!("t{}.example.", fastrand_u16());
        let r = if client_tcp {
            query_tcp(s.addr(), &name, RecordType::A)
        } else {
            query_udp(s.addr(), &name, RecordType::A)
        };
        assert_eq!(r.answers.len(), 1);
        assert_eq!(up.tcp_count() > before, want_tcp, "{options:?} client tcp {client_tcp}");
    }
}

/// `policy round_robin` takes turns; `sequential` always asks the first; `random` spreads.
#[test]
fn policies_order_the_upstreams() {
    let a = Scripted::start(|q, _| vec![Act::Reply(a_records(q, 1))]);
    let b = Scripted::start(|q, _| vec![Act::Reply(a_records(q, 1))]);
    for (policy, check) in [
        ("round_robin", (|a: usize, b: usize| a == 10 && b == 10) as fn(usize, usize) -> bool),
        ("sequential", |a, b| a == 20 && b == 0),
        ("random", |a, b| a >= 2 && b >= 2),
    ] {
        let (a0, b0) = (a.count(), b.count());
        let s = forward_to(&format!("{} {}", a.addr, b.addr), &format!("        policy {policy}"));
        for i in 0..20 {
            query_udp(s.addr(), &format!("{policy}{i}.example."), RecordType::A);
        }
        let (na, nb) = (a.count() - a0, b.count() - b0);
        assert!(check(na, nb), "{policy}: {na} and {nb}");
    }
}

/// `max_idle_conns` bounds the TCP connections kept after a burst; without it all are kept.
#[test]
fn max_idle_conns_bounds_the_pool() {
    let up = Scripted::start(|q, _| vec![Act::Wait(Duration::from_millis(200)), Act::Reply(a_records(q, 1))]);
    let burst = |s: &TestServer, n: usize, tag: &str| {
        let addr = s.addr();
        let threads: Vec<_> = (0..n)
            .map(|i| {
                let name = format!("{tag}{i}.example.");
                std::thread::spawn(move || query_udp(addr, &name, RecordType::A).answers.len())
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), 1);
        }
    };
    for (limit, hits_after) in [("1", 1.0), ("0", 2.0)] {
        let s = forward_to(&up.addr.to_string(), &format!("        force_tcp\n        max_idle_conns {limit}"));
        burst(&s, 4, &format!("a{limit}-"));
        let label = |m: &str| {
            format!("coredns_proxy_conn_cache_{m}_total{{proto=\"tcp\",proxy_name=\"forward\",to=\"{}\"}}", up.addr)
        };
        assert_eq!(metric(&s, &label("misses")), 4.0, "{limit}");
        burst(&s, 2, &format!("b{limit}-"));
        assert_eq!(metric(&s, &label("hits")), hits_after, "max_idle_conns {limit}");
    }
}

/// An upstream that truncates over UDP and has no TCP: the truncated answer reaches the client
/// with TC set (it may retry over TCP itself), rather than a SERVFAIL.
#[test]
fn a_truncated_answer_without_tcp_is_passed_on_with_tc() {
    let up = Scripted::start(|q, tcp| {
        if tcp { vec![Act::Close] } else { vec![Act::Reply(answer(q, |r| r.metadata.truncation = true))] }
    });
    let s = forward_to(&up.addr.to_string(), "");
    let r = query_udp(s.addr(), "tc.example.", RecordType::A);
    assert_eq!(r.response_code, ResponseCode::NoError);
    assert!(r.truncation);
}

/// An upstream marked down stays down through a reload that leaves its settings alone: the
/// first query after the reload does not wait for it.
#[test]
fn a_reload_keeps_health_state() {
    let silent = Scripted::start(|_, _| vec![]);
    let good = Scripted::start(|q, _| vec![Act::Reply(a_records(q, 1))]);
    let options =
        "        policy sequential\n        read_timeout 300ms\n        health_check 100ms\n        max_fails 1";
    let s = forward_to(&format!("{} {}", silent.addr, good.addr), options);
    query_udp(s.addr(), "first.example.", RecordType::A);
    let down = eventually(Duration::from_secs(5), || {
        let t = Instant::now();
        query_udp(s.addr(), &format!("d{}.example.", fastrand_u16()), RecordType::A);
        (t.elapsed() < Duration::from_millis(200)).then_some(())
    });
    assert!(down.is_some());
    s.write_corefile(&format!(
        ". {{\n    forward . {} {} {{\n{options}\n        max_concurrent 50\n    }}\n}}\n",
        silent.addr, good.addr
    ));
    assert_eq!(s.reload(), Ok(true));
    let t = Instant::now();
    assert_eq!(query_udp(s.addr(), "after.example.", RecordType::A).answers.len(), 1);
    assert!(t.elapsed() < Duration::from_millis(200), "waited {:?} for the down upstream", t.elapsed());
}
