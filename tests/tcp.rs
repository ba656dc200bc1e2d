//! DNS over TCP over real sockets (RFC 7766): pipelining, CoreDNS's timeouts and `maxtcpqueries`
//! (the `timeouts` plugin), and connection limits that one client cannot monopolise: when full,
//! the longest-idle connection is closed for the newcomer (RFC 7766 6.2.3).
//!
//! Clients come from many addresses of 127.0.0.0/8 (all on the loopback interface), so the
//! per-client-address limit sees them as different clients.

mod common;

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The value of the series of `name` whose labels include every one of `labels`, summed.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

/// `n` connections from `from`, each asked one query and answered, then idle.
fn idle_connections(from: &str, to: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            let mut s = connect_from(ip(from), to).unwrap_or_else(|e| panic!("connection {i} from {from}: {e}"));
            let m = ask_on(&mut s, "held.example.", RecordType::A).unwrap_or_else(|| panic!("connection {i} closed"));
            assert_eq!(m.response_code, ResponseCode::NoError);
            s
        })
        .collect()
}

/// RFC 7766 6.2.1.1: many queries in one write on one connection are all answered.
#[test]
fn rfc7766_pipelined_queries_are_each_answered() {
    let s = TestServer::start(".:53 {\n    whoami\n}\n");
    let mut conn = TcpStream::connect(s.addr()).unwrap();
    conn.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut ids = std::collections::BTreeSet::new();
    let mut batch = Vec::new();
    for i in 0..200 {
        let q = query_message(&format!("q{i}.example."), RecordType::A);
        ids.insert(q.id);
        let bytes = q.to_vec().unwrap();
        batch.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        batch.extend_from_slice(&bytes);
    }
    conn.write_all(&batch).unwrap();
    for _ in 0..200 {
        let m = Message::from_vec(&read_tcp_message(&mut conn).expect("a reply")).unwrap();
        assert!(ids.remove(&m.id), "reply {} twice or never asked", m.id);
    }
    assert!(ids.is_empty());
}

/// The issue this pins: 1,000 connections from one address, idle or sending a query every few
/// seconds, locked every other client out of TCP. Now one address may fill the listener and
/// still not keep another out: its longest-idle connections are closed for newcomers, and its
/// busy keep-alive connections are left alone.
#[test]
fn one_address_with_thousands_of_idle_and_keepalive_connections_cannot_lock_others_out() {
    raise_descriptor_limit(10_000);
    let s = TestServer::start(
        ".:53 {\n    timeouts {\n        idle 1m\n        maxtcpconns 2000\n        maxtcpconnsperclient 2000\n    }\n    whoami\n}\n",
    );
    let addr = s.addr();
    // 127.0.0.2 fills the listener: 1,000 connections that keep asking (the first opened) and
    // 1,000 that stay idle once answered.
    let mut keepalive = idle_connections("127.0.0.2", addr, 1000);
    let idle = idle_connections("127.0.0.2", addr, 1000);
    let ping = |conns: &mut Vec<TcpStream>| {
        conns.iter_mut().map(|c| ask_on(c, "alive.example.", RecordType::A)).filter(Option::is_none).count()
    };
    assert_eq!(ping(&mut keepalive), 0);
    assert_eq!(metric(&s.metrics(), "coredns_dns_tcp_open_connections", &[]), 2000.0);
    // They go on asking, round after round, while newcomers arrive.
    let stop = Arc::new(AtomicBool::new(false));
    let (rounds, lost) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let pinger = {
        let (stop, rounds, lost) = (stop.clone(), rounds.clone(), lost.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                lost.fetch_add(ping(&mut keepalive), Ordering::Relaxed);
                rounds.fetch_add(1, Ordering::Relaxed);
            }
            keepalive
        })
    };

    // Newcomers from other addresses are answered, each at once.
    let mut slowest = Duration::ZERO;
    let mut newcomers = Vec::new();
    for i in 0..50 {
        let started = Instant::now();
        let mut c = connect_from(ip(&format!("127.0.0.{}", 3 + i % 5)), addr).unwrap();
        let m = ask_on(&mut c, "newcomer.example.", RecordType::A).expect("the newcomer is answered");
        assert_eq!(m.response_code, ResponseCode::NoError);
        slowest = slowest.max(started.elapsed());
        newcomers.push(c);
    }
    assert!(slowest < Duration::from_secs(1), "a newcomer waited {slowest:?}");
    // One more whole round of keep-alive queries after the last newcomer, then stop.
    let seen = rounds.load(Ordering::Relaxed);
    assert!(
        eventually(Duration::from_secs(30), || (rounds.load(Ordering::Relaxed) >= seen + 2).then_some(())).is_some()
    );
    stop.store(true, Ordering::Relaxed);
    let _keepalive = pinger.join().unwrap();

    // The room came from the idle connections, the longest idle first; the keep-alive ones,
    // though opened earlier, lost nothing.
    assert_eq!(lost.load(Ordering::Relaxed), 0, "keep-alive connections were closed");
    let text = s.metrics();
    assert_eq!(metric(&text, "coredns_dns_tcp_evicted_connections_total", &[("reason", "limit")]), 50.0);
    assert_eq!(metric(&text, "coredns_dns_tcp_refused_connections_total", &[]), 0.0);
    assert_eq!(metric(&text, "coredns_dns_tcp_open_connections", &[]), 2000.0);
    let closed: Vec<usize> = idle
        .into_iter()
        .enumerate()
        .take(100)
        .filter_map(|(i, mut c)| ask_on(&mut c, "x.example.", RecordType::A).is_none().then_some(i))
        .collect();
    assert_eq!(closed, (0..50).collect::<Vec<_>>(), "the 50 longest idle are the ones closed");
}

/// One address past its own limit (`maxtcpconnsperclient`) closes its own longest-idle
/// connections, never another client's, and is refused only while all of its own are busy.
#[test]
fn a_client_past_its_limit_gives_up_its_own_idle_connections() {
    raise_descriptor_limit(10_000);
    let s = TestServer::start(
        ".:53 {\n    timeouts {\n        idle 1m\n        maxtcpconnsperclient 300\n    }\n    whoami\n}\n",
    );
    let addr = s.addr();
    let mut other = idle_connections("127.0.0.9", addr, 1).pop().unwrap();
    let mut first = idle_connections("127.0.0.2", addr, 300);
    let latest = idle_connections("127.0.0.2", addr, 700);
    let text = s.metrics();
    assert_eq!(metric(&text, "coredns_dns_tcp_evicted_connections_total", &[("reason", "client_limit")]), 700.0);
    assert_eq!(metric(&text, "coredns_dns_tcp_open_connections", &[]), 301.0);
    assert!(ask_on(&mut other, "other.example.", RecordType::A).is_some(), "another client's connection was closed");
    assert!(ask_on(&mut first[0], "first.example.", RecordType::A).is_none(), "the oldest is closed");
    drop(latest);
}

/// CoreDNS's timeouts, each closing a connection: `read` one that never sends its first query,
/// `idle` one that stopped asking, `write` one whose client does not read its replies; and
/// `maxtcpqueries` closes a connection after that many queries, once they are answered.
#[test]
fn timeouts_and_maxtcpqueries_close_connections() {
    let s = TestServer::start(
        ".:53 {\n    timeouts {\n        read 1s\n        idle 2s\n        write 1s\n        maxtcpqueries 3\n    }\n    whoami\n}\n",
    );
    let addr = s.addr();
    let started = Instant::now();
    let mut silent = connect_from(ip("127.0.0.2"), addr).unwrap();
    let mut idle = connect_from(ip("127.0.0.3"), addr).unwrap();
    assert!(ask_on(&mut idle, "a.example.", RecordType::A).is_some());

    // maxtcpqueries 3: five pipelined queries, three answers, then the end of the stream.
    let mut limited = connect_from(ip("127.0.0.4"), addr).unwrap();
    let mut batch = Vec::new();
    for i in 0..5 {
        let bytes = query_message(&format!("m{i}.example."), RecordType::A).to_vec().unwrap();
        batch.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        batch.extend_from_slice(&bytes);
    }
    limited.write_all(&batch).unwrap();
    let answered = std::iter::from_fn(|| read_tcp_message(&mut limited)).count();
    assert_eq!(answered, 3);

    // A client that sends and never reads: the server stops reading from it once its replies
    // back up, then closes it `write` after the last byte the client took.
    let unread = connect_from(ip("127.0.0.5"), addr).unwrap();
    let flood = std::thread::spawn(move || {
        let mut unread = unread;
        let bytes = query_message("flood.example.", RecordType::A).to_vec().unwrap();
        let mut one = (bytes.len() as u16).to_be_bytes().to_vec();
        one.extend_from_slice(&bytes);
        let many: Vec<u8> = one.iter().copied().cycle().take(one.len() * 1000).collect();
        unread.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        let until = Instant::now() + Duration::from_secs(20);
        // Ends with an error once the server has closed the connection.
        while Instant::now() < until && unread.write_all(&many).is_ok() {}
        Instant::now() < until
    });

    // The silent one is closed after about `read`, the idle one after about `idle` (each
    // within the sweep's second).
    assert!(read_tcp_message(&mut silent).is_none());
    let silent_for = started.elapsed();
    assert!(read_tcp_message(&mut idle).is_none());
    let idle_for = started.elapsed();
    // The table keeps time in whole milliseconds, so a timeout may end up to 1 ms early.
    assert!(silent_for >= Duration::from_millis(999) && silent_for < Duration::from_millis(3500), "{silent_for:?}");
    assert!(idle_for >= Duration::from_millis(1999) && idle_for < Duration::from_millis(4500), "{idle_for:?}");
    assert!(flood.join().unwrap(), "the client that never reads was not closed");
}
