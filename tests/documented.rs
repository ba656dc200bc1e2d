//! Behaviour the READMEs promise, over real sockets: a panicking plugin costs one SERVFAIL and
//! nothing else; queries in flight when shutdown starts are answered; of several `lameduck`
//! periods the longest applies, of several `reload` intervals the shortest; an edit to an
//! imported file is a change that reloads.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::plugins::TEST_PLUGINS;
use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

fn start(corefile: &str) -> TestServer {
    TestServer::try_start_with(tempfile::tempdir().unwrap(), corefile, &TEST_PLUGINS)
        .unwrap_or_else(|e| panic!("server did not start:\n{e}"))
}

fn send_tcp(conn: &mut TcpStream, name: &str) -> u16 {
    let m = query_message(name, RecordType::A);
    let bytes = m.to_vec().unwrap();
    conn.write_all(&(bytes.len() as u16).to_be_bytes()).unwrap();
    conn.write_all(&bytes).unwrap();
    m.metadata.id
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()).unwrap_or(0.0)
}

/// errors README / server: a plugin that panics is answered SERVFAIL, logged, counted in
/// `coredns_panics_total`, and the server, the listener and the very TCP connection go on
/// answering.
#[test]
fn a_panicking_plugin_costs_one_servfail_over_udp_and_tcp() {
    let s = start(". {\n    prometheus 127.0.0.1:0\n    boom\n    whoami\n}\n");
    let before = metric(&s.metrics(), "coredns_panics_total");
    let m = query_udp(s.addr(), "boom.example.", RecordType::A);
    assert_eq!(m.response_code, ResponseCode::ServFail);
    assert_eq!(query_udp(s.addr(), "fine.example.", RecordType::A).response_code, ResponseCode::NoError);

    let mut conn = TcpStream::connect(s.addr()).unwrap();
    conn.set_read_timeout(Some(TIMEOUT)).unwrap();
    for (name, want) in [("boom.example.", ResponseCode::ServFail), ("after.example.", ResponseCode::NoError)] {
        let id = send_tcp(&mut conn, name);
        let reply = Message::from_vec(&read_tcp_message(&mut conn).expect("a reply on the same connection")).unwrap();
        assert_eq!((reply.metadata.id, reply.response_code), (id, want), "{name}");
    }
    assert_eq!(metric(&s.metrics(), "coredns_panics_total") - before, 2.0);
}

/// server: shutdown stops the listeners, then gives queries in flight up to 5 s to finish; their
/// replies go out, over UDP and on the TCP connection they came on.
#[test]
fn queries_in_flight_at_shutdown_are_answered() {
    let s = start(". {\n    slow 1500\n}\n");
    let addr = s.addr();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(TIMEOUT)).unwrap();
    let q = query_message("inflight.example.", RecordType::A);
    udp.send_to(&q.to_vec().unwrap(), addr).unwrap();
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(TIMEOUT)).unwrap();
    let tcp_id = send_tcp(&mut conn, "inflight-tcp.example.");
    std::thread::sleep(Duration::from_millis(300)); // both are in the slow plugin now

    let started = Instant::now();
    let server = s.server.clone();
    s.block_on(async move { server.shutdown().await });
    let took = started.elapsed();
    // Shutdown returned only once both replies were sent (the process exits right after it):
    // they are waiting in the client sockets now, and reading them does not wait.
    udp.set_nonblocking(true).unwrap();
    conn.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1500];
    let n = udp.recv(&mut buf).expect("the UDP query in flight was answered before shutdown returned");
    let reply = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!((reply.metadata.id, reply.response_code), (q.metadata.id, ResponseCode::NoError));
    let reply = read_tcp_message(&mut conn).expect("the TCP query in flight was answered before shutdown returned");
    let reply = Message::from_vec(&reply).unwrap();
    assert_eq!((reply.metadata.id, reply.response_code), (tcp_id, ResponseCode::NoError));
    // They had about 1.2 s to go; shutdown gives them at most 5 s.
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(5), "{took:?}");
    // The listeners are gone: a new query is not answered.
    let late = raw_udp_wait(
        addr,
        &query_message("late.example.", RecordType::A).to_vec().unwrap(),
        Duration::from_millis(500),
    );
    assert!(late.is_none());
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// health README: with several `lameduck` periods (one per health address here), SIGTERM
/// waits the longest one, and says so.
#[test]
fn the_longest_lameduck_applies() {
    let (dns, h1, h2) = (free_port(), free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let corefile = format!(
        "a.example:{dns} {{\n    bind 127.0.0.1\n    health 127.0.0.1:{h1} {{\n        lameduck 1s\n    }}\n    whoami\n}}\n\
         b.example:{dns} {{\n    bind 127.0.0.1\n    health 127.0.0.1:{h2} {{\n        lameduck 3s\n    }}\n    whoami\n}}\n"
    );
    std::fs::write(dir.path().join("Corefile"), corefile).unwrap();
    let mut p = Process::spawn(dir.path(), &["-conf", "Corefile"]);
    let up = eventually(TIMEOUT, || {
        raw_udp_wait(
            local(dns),
            &query_message("x.a.example.", RecordType::A).to_vec().unwrap(),
            Duration::from_millis(200),
        )
    });
    assert!(up.is_some(), "{}", p.lines().join("\n"));
    let signalled = Instant::now();
    p.signal(libc::SIGTERM);
    // Still answering past the shorter period.
    std::thread::sleep(Duration::from_millis(1_800));
    assert_eq!(query_udp(local(dns), "x.b.example.", RecordType::A).response_code, ResponseCode::NoError);
    assert_eq!(p.wait_exit(Duration::from_secs(10)), Some(0));
    let took = signalled.elapsed();
    assert!(took >= Duration::from_secs(3) && took < Duration::from_secs(8), "{took:?}");
    assert!(p.lines().iter().any(|l| l == "[INFO] plugin/health: Going into lameduck mode for 3s"), "{:?}", p.lines());
}

/// reload README: the shortest interval of the blocks' `reload` applies, and an edit to an
/// imported file is a change. The imported file lives in another directory, which the Corefile's
/// directory watch does not see: only the interval check (2s, not the other block's 1m) finds it.
#[test]
fn an_edited_import_reloads_at_the_shortest_interval() {
    let dns = free_port();
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let import = other.path().join("entries.conf");
    let entries = |addr: &str| format!("hosts {{\n    {addr} which.example\n}}\n");
    std::fs::write(&import, entries("10.0.0.1")).unwrap();
    let corefile = format!(
        "example:{dns} {{\n    bind 127.0.0.1\n    reload 1m 0\n    import {}\n}}\n\
         other.test:{dns} {{\n    bind 127.0.0.1\n    reload 2s 0\n    whoami\n}}\n",
        import.display()
    );
    std::fs::write(dir.path().join("Corefile"), corefile).unwrap();
    let p = Process::spawn(dir.path(), &["-conf", "Corefile"]);
    let answer = || {
        let q = query_message("which.example.", RecordType::A).to_vec().unwrap();
        let reply = raw_udp_wait(local(dns), &q, Duration::from_millis(300))?;
        rrs(&Message::from_vec(&reply).ok()?.answers).first().cloned()
    };
    let first = eventually(TIMEOUT, answer);
    assert_eq!(first.as_deref(), Some("which.example. 3600 IN A 10.0.0.1"));
    let edited = Instant::now();
    std::fs::write(&import, entries("10.0.0.2")).unwrap();
    let served = eventually(Duration::from_secs(6), || answer().filter(|a| a.ends_with("10.0.0.2")));
    assert!(served.is_some(), "the edit of the imported file was not served within 6 s:\n{}", p.lines().join("\n"));
    // Within two intervals of 2s; the 1m block's interval would have been far longer.
    assert!(edited.elapsed() < Duration::from_secs(5), "{:?}", edited.elapsed());
}
