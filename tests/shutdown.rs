//! Graceful shutdown of the real binary: SIGTERM and SIGINT start the lameduck period (health
//! 200, ready 503, queries answered), then the process exits 0; a second SIGINT forces exit 2.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

struct Ports {
    dns: u16,
    health: u16,
    ready: u16,
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The binary with `health { lameduck 2s }` and ready, answering.
fn start() -> (Process, tempfile::TempDir, Ports) {
    let ports = Ports { dns: free_port(), health: free_port(), ready: free_port() };
    let corefile = format!(
        ".:{} {{\n    bind 127.0.0.1\n    health 127.0.0.1:{} {{\n        lameduck 2s\n    }}\n    ready 127.0.0.1:{}\n    whoami\n}}\n",
        ports.dns, ports.health, ports.ready
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Corefile"), corefile).unwrap();
    let p = Process::spawn(dir.path(), &["-conf", "Corefile"]);
    let up = eventually(TIMEOUT, || {
        let q = query_message("up.example.", RecordType::A).to_vec().unwrap();
        raw_udp_wait(local(ports.dns), &q, Duration::from_millis(200))
    });
    assert!(up.is_some(), "not answering:\n{}", p.lines().join("\n"));
    assert_eq!(http_get(local(ports.ready), "/ready"), (200, "OK".to_string()));
    (p, dir, ports)
}

#[test]
fn sigterm_drains_for_the_lameduck_period_then_exits_0() {
    let (mut p, _dir, ports) = start();
    // A TCP client connected before the signal keeps being answered during the lameduck period.
    let mut conn = TcpStream::connect_timeout(&local(ports.dns), TIMEOUT).unwrap();
    conn.set_read_timeout(Some(TIMEOUT)).unwrap();

    let signalled = Instant::now();
    p.signal(libc::SIGTERM);
    let shutting = eventually(TIMEOUT, || Some(http_get(local(ports.ready), "/ready")).filter(|r| r.0 == 503));
    assert_eq!(shutting, Some((503, "Shutting down".to_string())));
    assert_eq!(http_get(local(ports.health), "/health"), (200, "OK".to_string()));
    let m = query_udp(local(ports.dns), "during.example.", RecordType::A);
    assert_eq!(m.response_code, ResponseCode::NoError);
    assert_eq!(rrs(&m.additionals)[0], "during.example. 0 IN A 127.0.0.1");
    let bytes = query_message("tcp.example.", RecordType::A).to_vec().unwrap();
    conn.write_all(&(bytes.len() as u16).to_be_bytes()).unwrap();
    conn.write_all(&bytes).unwrap();
    let reply = Message::from_vec(&read_tcp_message(&mut conn).expect("an answer during lameduck")).unwrap();
    assert_eq!(reply.response_code, ResponseCode::NoError);
    assert!(signalled.elapsed() < Duration::from_secs(2), "checks ran past the lameduck period");

    assert_eq!(p.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(signalled.elapsed() >= Duration::from_secs(2), "exited before the lameduck period ended");
    let lines = p.lines();
    let at = |want: &str| lines.iter().position(|l| l == want).unwrap_or_else(|| panic!("no {want:?} in {lines:#?}"));
    assert!(
        at("[INFO] SIGTERM: Shutting down servers then terminating")
            < at("[INFO] plugin/health: Going into lameduck mode for 2s")
    );
    // The kept connection was closed once the listeners stopped.
    assert!(read_tcp_message(&mut conn).is_none());
}

#[test]
fn sigint_shuts_down_gracefully_and_a_second_forces_exit_2() {
    let (mut p, _dir, ports) = start();
    p.signal(libc::SIGINT);
    assert!(eventually(TIMEOUT, || (http_get(local(ports.ready), "/ready").0 == 503).then_some(())).is_some());
    p.signal(libc::SIGINT);
    let forced = Instant::now();
    assert_eq!(p.wait_exit(TIMEOUT), Some(2));
    assert!(forced.elapsed() < Duration::from_secs(2), "the second SIGINT waited for the lameduck period");
    let lines = p.lines();
    assert!(lines.iter().any(|l| l == "[INFO] SIGINT: Shutting down"), "{lines:#?}");
    assert!(lines.iter().any(|l| l == "[INFO] SIGINT: Force quit"), "{lines:#?}");
}

#[test]
fn sigint_alone_exits_0() {
    let (mut p, _dir, _ports) = start();
    p.signal(libc::SIGINT);
    assert_eq!(p.wait_exit(Duration::from_secs(10)), Some(0));
}

#[test]
fn sighup_is_ignored() {
    let (p, _dir, ports) = start();
    p.signal(libc::SIGHUP);
    // Still serving after the signal was handled: a reload-free round trip through HTTP and DNS.
    assert_eq!(http_get(local(ports.health), "/health"), (200, "OK".to_string()));
    assert_eq!(query_udp(local(ports.dns), "a.example.", RecordType::A).response_code, ResponseCode::NoError);
    let mut p = p;
    assert!(p.child.try_wait().unwrap().is_none(), "SIGHUP ended the process:\n{}", p.lines().join("\n"));
}
