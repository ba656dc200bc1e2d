//! Descriptor limits with the real binary, started under a low `ulimit -n`: it raises its soft
//! limit to the hard one as Go's runtime does for CoreDNS, holds DNS connections up to that
//! limit less a reserve, and keeps the reserve for its HTTP endpoints and files, so `/health`,
//! `/ready` and `/metrics` answer and files are read while DNS connections are at their limit.
//!
//! The tests here hold thousands of descriptors each, so they take turns.

mod common;

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Mutex;

use clusterdns::server::descriptor_budget;
use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// One test at a time: each holds thousands of descriptors.
static TURN: Mutex<()> = Mutex::new(());

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Sets the child's open-file limits to (`soft`, `hard`) before it runs.
fn with_limits(cmd: &mut Command, soft: u64, hard: u64) {
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit { rlim_cur: soft, rlim_max: hard };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The sum of the series of `name` on `/metrics` at `http`.
fn metric(http: SocketAddr, name: &str) -> f64 {
    let (status, body) = http_get(http, "/metrics");
    assert_eq!(status, 200);
    body.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

/// `n` connections spread over the client addresses 127.0.0.2 ..., each answered once for
/// `name`.
fn connections(to: SocketAddr, n: usize, addresses: usize, name: &str) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            let from: IpAddr = format!("127.0.0.{}", 2 + i % addresses).parse().unwrap();
            let mut s = connect_from(from, to).unwrap_or_else(|e| panic!("connection {i}: {e}"));
            let m = ask_on(&mut s, name, RecordType::A).unwrap_or_else(|| panic!("connection {i} closed"));
            assert_eq!(m.response_code, ResponseCode::NoError);
            s
        })
        .collect()
}

/// Started with a soft limit of 1,024 (a shell's default) and a hard one of at least 20,000,
/// the server holds 15,000 connections from many addresses, every one still answering.
#[test]
fn fifteen_thousand_connections_are_held_when_started_with_a_soft_limit_of_1024() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let hard = raise_descriptor_limit(20_000);
    let n = 15_000;
    assert!(descriptor_budget(hard) >= n);
    let (dns, http) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let corefile = format!(
        ".:{dns} {{\n    bind 127.0.0.1\n    timeouts {{\n        idle 5m\n    }}\n    prometheus 127.0.0.1:{http}\n    whoami\n}}\n"
    );
    std::fs::write(dir.path().join("Corefile"), corefile).unwrap();
    let p = Process::spawn_with(dir.path(), &["-conf", "Corefile", "-quiet"], |c| with_limits(c, 1024, hard));
    assert!(
        eventually(TIMEOUT, || TcpStream::connect(local(http)).ok()).is_some(),
        "not up:\n{}",
        p.lines().join("\n")
    );

    // 16 addresses: under the default per-client limit (a tenth of 17,500).
    let mut held = connections(local(dns), n, 16, "held.example.");
    assert_eq!(metric(local(http), "coredns_dns_tcp_open_connections"), n as f64);
    assert_eq!(metric(local(http), "coredns_dns_tcp_evicted_connections_total"), 0.0);
    assert_eq!(metric(local(http), "coredns_dns_tcp_refused_connections_total"), 0.0);
    // Every hundredth still answers: held, not merely counted.
    for (i, c) in held.iter_mut().enumerate().step_by(100) {
        assert!(ask_on(c, "again.example.", RecordType::A).is_some(), "connection {i} was closed");
    }
}

/// At a hard limit of 1,024 the server holds 768 DNS connections and closes the longest idle
/// for newer ones; the 256 descriptors it keeps back serve `/health`, `/ready` and `/metrics`,
/// the hosts file's re-read and a reload's read of the Corefile. (Before, 1,300 connections
/// took all of them: a liveness probe would have killed the pod.)
#[test]
fn at_the_descriptor_limit_health_ready_metrics_and_file_reads_still_work() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    raise_descriptor_limit(2_000);
    let (dns, health, ready, prom) = (free_port(), free_port(), free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let corefile = |zones: &str| {
        format!(
            "{zones} {{\n    bind 127.0.0.1\n    timeouts {{\n        idle 5m\n        maxtcpconnsperclient 1000\n    }}\n    \
             health 127.0.0.1:{health}\n    ready 127.0.0.1:{ready}\n    prometheus 127.0.0.1:{prom}\n    \
             hosts extra.hosts {{\n        reload 100ms\n        fallthrough\n    }}\n    whoami\n}}\n"
        )
    };
    std::fs::write(dir.path().join("extra.hosts"), "10.0.0.1 before.example.org\n").unwrap();
    std::fs::write(dir.path().join("Corefile"), corefile(&format!("example.org:{dns}"))).unwrap();
    let p = Process::spawn_with(dir.path(), &["-conf", "Corefile"], |c| with_limits(c, 1024, 1024));
    assert!(
        eventually(TIMEOUT, || TcpStream::connect(local(prom)).ok()).is_some(),
        "not up:\n{}",
        p.lines().join("\n")
    );

    // Past the budget of 768: the oldest idle give way, nothing is refused.
    let _held = connections(local(dns), 900, 1, "held.example.org.");
    assert_eq!(metric(local(prom), "coredns_dns_tcp_open_connections"), 768.0);
    assert_eq!(metric(local(prom), "coredns_dns_tcp_evicted_connections_total"), 132.0);
    assert_eq!(metric(local(prom), "coredns_dns_tcp_refused_connections_total"), 0.0);
    p.wait_for_line(TIMEOUT, |l| {
        l.starts_with(&format!("[WARNING] dns://127.0.0.1:{dns}: 768 TCP connections open, the most this server holds"))
    });

    for _ in 0..20 {
        assert_eq!(http_get(local(health), "/health"), (200, "OK".to_string()));
        assert_eq!(http_get(local(ready), "/ready"), (200, "OK".to_string()));
    }
    // The hosts file is re-read.
    std::fs::write(dir.path().join("extra.hosts"), "10.0.0.2 after.example.org\n").unwrap();
    let read = eventually(TIMEOUT, || {
        let m = query_udp(local(dns), "after.example.org.", RecordType::A);
        (!m.answers.is_empty()).then_some(rrs(&m.answers))
    });
    assert_eq!(read, Some(vec!["after.example.org. 3600 IN A 10.0.0.2".to_string()]));
    // A reload reads the Corefile and applies it; the held connections keep their listener.
    std::fs::write(dir.path().join("Corefile"), corefile(&format!("example.org:{dns} example.net:{dns}"))).unwrap();
    p.signal(libc::SIGUSR1);
    p.wait_for_line(TIMEOUT, |l| l == "[INFO] Reloading complete");
    assert_eq!(query_udp(local(dns), "www.example.net.", RecordType::A).response_code, ResponseCode::NoError);
    assert_eq!(metric(local(prom), "coredns_dns_tcp_open_connections"), 768.0);
    // And a new TCP client is still let in.
    let mut late = connect_from("127.0.0.3".parse().unwrap(), local(dns)).unwrap();
    assert!(ask_on(&mut late, "late.example.org.", RecordType::A).is_some());
}
