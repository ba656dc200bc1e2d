//! Reload with the real binary: the reload plugin's check, SIGUSR1, broken Corefiles, listeners
//! kept, closed and opened, and no query lost across a swap. The reload plugin's rules that need
//! no clock (what counts as a failure, what is retried) are checked in-process at the end.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

/// The binary running `corefile` (`{P}`, `{M}` ... already substituted) from a temp dir.
struct Running {
    process: Process,
    _dir: tempfile::TempDir,
    corefile: PathBuf,
}

impl Running {
    fn start(corefile: &str, wait_for: SocketAddr) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Corefile");
        std::fs::write(&path, corefile).unwrap();
        let process = Process::spawn(dir.path(), &["-conf", "Corefile"]);
        let up = eventually(TIMEOUT, || try_query(wait_for, "up.example.org."));
        assert!(up.is_some(), "not answering on {wait_for}:\n{}", process.lines().join("\n"));
        Running { process, _dir: dir, corefile: path }
    }

    fn write(&self, corefile: &str) {
        // Write aside and rename, as a ConfigMap update does: the server never reads half a file.
        let tmp = self.corefile.with_extension("new");
        std::fs::write(&tmp, corefile).unwrap();
        std::fs::rename(&tmp, &self.corefile).unwrap();
    }

    fn count(&self, pred: impl Fn(&str) -> bool) -> usize {
        self.process.lines().iter().filter(|l| pred(l)).count()
    }

    /// Waits until `n` lines satisfy `pred`.
    fn wait_lines(&self, n: usize, timeout: Duration, pred: impl Fn(&str) -> bool) {
        let ok = eventually(timeout, || (self.count(&pred) >= n).then_some(()));
        assert!(ok.is_some(), "expected {n} matching lines within {timeout:?}:\n{}", self.process.lines().join("\n"));
    }
}

/// A UDP query, or `None` if no reply came within a second.
fn try_query(addr: SocketAddr, name: &str) -> Option<Message> {
    let q = query_message(name, RecordType::A);
    let reply = raw_udp_wait(addr, &q.to_vec().unwrap(), Duration::from_secs(1))?;
    Some(Message::from_vec(&reply).expect("a decodable reply"))
}

fn rcode(addr: SocketAddr, name: &str) -> Option<ResponseCode> {
    try_query(addr, name).map(|m| m.response_code)
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn metric(http: SocketAddr, name: &str) -> Option<f64> {
    let (status, body) = http_get(http, "/metrics");
    assert_eq!(status, 200);
    body.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn the_plugin_applies_an_edit_and_keeps_serving_through_a_broken_one() {
    let (p, m) = (free_port(), free_port());
    let corefile = |zone: &str, extra: &str| {
        format!(
            "{zone}:{p} {{\n    bind 127.0.0.1\n    reload 2s 1s\n    prometheus 127.0.0.1:{m}\n    whoami\n{extra}}}\n"
        )
    };
    let r = Running::start(&corefile("example.org", ""), local(p));
    let (dns, http) = (local(p), local(m));
    r.wait_lines(1, TIMEOUT, |l| l.starts_with("[INFO] plugin/reload: Running configuration SHA512 = "));
    assert_eq!(rcode(dns, "example.net."), Some(ResponseCode::Refused));

    // An edit is applied within the interval (2s, moved by at most 0.5s).
    let edited = Instant::now();
    r.write(&corefile("example.net", ""));
    let applied =
        eventually(Duration::from_secs(6), || (rcode(dns, "a.example.net.")? == ResponseCode::NoError).then_some(()));
    assert!(applied.is_some(), "edit not applied:\n{}", r.process.lines().join("\n"));
    // At most 2.5s; twice that on a loaded machine.
    assert!(edited.elapsed() < Duration::from_secs(5), "took {:?}", edited.elapsed());
    assert_eq!(rcode(dns, "example.org."), Some(ResponseCode::Refused));
    r.wait_lines(1, TIMEOUT, |l| l == "[INFO] Reloading complete");
    r.wait_lines(2, TIMEOUT, |l| l.starts_with("[INFO] plugin/reload: Running configuration SHA512 = "));
    assert_eq!(metric(http, "coredns_reload_failed_total"), Some(0.0));

    // A broken edit: logged with its position, counted, and the running configuration stays.
    r.write(&corefile("example.com", "    bogus\n"));
    r.wait_lines(1, Duration::from_secs(6), |l| {
        l == "[ERROR] plugin/reload: Corefile changed but reload failed: Corefile:6:5: unknown directive 'bogus'"
    });
    assert_eq!(metric(http, "coredns_reload_failed_total"), Some(1.0));
    assert_eq!(rcode(dns, "b.example.net."), Some(ResponseCode::NoError));
    assert_eq!(rcode(dns, "example.com."), Some(ResponseCode::Refused));

    // Fixing it reloads again.
    r.write(&corefile("example.com", ""));
    let fixed =
        eventually(Duration::from_secs(6), || (rcode(dns, "c.example.com.")? == ResponseCode::NoError).then_some(()));
    assert!(fixed.is_some(), "fix not applied:\n{}", r.process.lines().join("\n"));
    assert_eq!(metric(http, "coredns_reload_failed_total"), Some(1.0));
}

#[test]
fn no_query_is_lost_across_a_reload() {
    let p = free_port();
    let corefile = |zones: &str| format!("{zones} {{\n    bind 127.0.0.1\n    reload 2s 1s\n    whoami\n}}\n");
    let r = Running::start(&corefile(&format!("example.org:{p}")), local(p));
    let dns = local(p);

    // Queries one after the other, each waiting for its answer, from before the reload until
    // well after it; an unanswered one is lost.
    let reloaded = || r.count(|l| l == "[INFO] Reloading complete") > 0;
    let (mut sent, mut lost, mut before, mut after) = (0, 0, 0, 0);
    let start = Instant::now();
    while (after < 1500 || sent < 3000) && start.elapsed() < Duration::from_secs(30) {
        if sent == 1500 {
            r.write(&corefile(&format!("example.org:{p} example.net:{p}")));
            r.process.signal(libc::SIGUSR1);
        }
        let q = query_message("www.example.org.", RecordType::A);
        match raw_udp_wait(dns, &q.to_vec().unwrap(), Duration::from_secs(2)) {
            Some(reply) => assert_eq!(Message::from_vec(&reply).unwrap().response_code, ResponseCode::NoError),
            None => lost += 1,
        }
        sent += 1;
        if reloaded() { after += 1 } else { before += 1 }
    }
    assert!(reloaded(), "no reload within 30s:\n{}", r.process.lines().join("\n"));
    assert_eq!(lost, 0, "{lost} of {sent} queries lost ({before} before the reload, {after} after)");
    assert!(before >= 1500 && after >= 1500, "{before} before, {after} after");
    assert_eq!(rcode(dns, "www.example.net."), Some(ResponseCode::NoError));
}

#[test]
fn sigusr1_reloads_without_the_plugin() {
    let p = free_port();
    let corefile = |zone: &str| format!("{zone}:{p} {{\n    bind 127.0.0.1\n    whoami\n}}\n");
    let r = Running::start(&corefile("example.org"), local(p));
    r.write(&corefile("example.net"));
    assert_eq!(rcode(local(p), "example.net."), Some(ResponseCode::Refused));
    r.process.signal(libc::SIGUSR1);
    r.wait_lines(1, TIMEOUT, |l| l == "[INFO] Reloading complete");
    assert_eq!(rcode(local(p), "example.net."), Some(ResponseCode::NoError));
    let lines = r.process.lines();
    let at = |want: &str| lines.iter().position(|l| l == want).unwrap_or_else(|| panic!("no {want:?} in {lines:#?}"));
    assert!(at("[INFO] SIGUSR1: Reloading") < at("[INFO] Reloading"));

    // A broken file on SIGUSR1: logged with its position, not counted, old configuration kept.
    r.write(&format!("example.com:{p} {{\n    bind 127.0.0.1\n    whoami extra\n}}\n"));
    r.process.signal(libc::SIGUSR1);
    r.wait_lines(1, TIMEOUT, |l| l == "[ERROR] SIGUSR1: Corefile:3:12: whoami: unexpected argument 'extra'");
    assert_eq!(rcode(local(p), "example.net."), Some(ResponseCode::NoError));
}

#[test]
fn unchanged_listeners_keep_their_sockets_removed_ones_close_new_ones_open() {
    let (a, b, c) = (free_port(), free_port(), free_port());
    let corefile = |second: u16| {
        format!(
            "example.org:{a} {{\n    bind 127.0.0.1\n    whoami\n}}\nexample.net:{second} {{\n    bind 127.0.0.1\n    whoami\n}}\n"
        )
    };
    let r = Running::start(&corefile(b), local(a));
    assert_eq!(rcode(local(b), "x.example.net."), Some(ResponseCode::NoError));
    // A TCP connection to the listener that stays, opened before the reload.
    let mut kept = TcpStream::connect_timeout(&local(a), TIMEOUT).unwrap();
    kept.set_read_timeout(Some(TIMEOUT)).unwrap();
    let tcp_query = |s: &mut TcpStream, name: &str| -> ResponseCode {
        let bytes = query_message(name, RecordType::A).to_vec().unwrap();
        s.write_all(&(bytes.len() as u16).to_be_bytes()).unwrap();
        s.write_all(&bytes).unwrap();
        Message::from_vec(&read_tcp_message(s).expect("an answer on the kept connection")).unwrap().response_code
    };
    assert_eq!(tcp_query(&mut kept, "before.example.org."), ResponseCode::NoError);

    r.write(&corefile(c));
    r.process.signal(libc::SIGUSR1);
    r.wait_lines(1, TIMEOUT, |l| l == "[INFO] Reloading complete");

    assert_eq!(tcp_query(&mut kept, "after.example.org."), ResponseCode::NoError);
    assert_eq!(rcode(local(a), "udp.example.org."), Some(ResponseCode::NoError));
    assert_eq!(rcode(local(c), "y.example.net."), Some(ResponseCode::NoError));
    assert_eq!(rcode(local(b), "x.example.net."), None, "the removed listener still answers UDP");
    assert!(TcpStream::connect_timeout(&local(b), TIMEOUT).is_err(), "the removed listener still accepts TCP");
}

// The reload check's rules, driven directly.

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn failed(s: &TestServer) -> String {
    s.metrics().lines().find(|l| l.starts_with("coredns_reload_failed_total ")).unwrap().to_string()
}

fn version(s: &TestServer) -> Vec<String> {
    s.metrics().lines().filter(|l| l.starts_with("coredns_reload_version_info{")).map(String::from).collect()
}

#[test]
fn a_broken_file_is_tried_once_and_an_unparsable_one_is_not_a_failure() {
    let good = ". {\n    reload 2s 1s\n    whoami\n}\n";
    let s = TestServer::start(good);
    let check = || s.block_on(s.server.reload(true));
    assert_eq!(check().ok(), Some(false), "unchanged");
    let running = version(&s);
    assert_eq!(running.len(), 1, "{running:?}");
    assert!(running[0].starts_with("coredns_reload_version_info{hash=\"sha512\",value=\""), "{running:?}");

    // Comments and spacing are not changes.
    write(&s.corefile, "# tuned\n. {\n  reload 2s 1s   # check often\n  whoami\n}\n");
    assert_eq!(check().ok(), Some(false));

    // Not parsable: an error each time, never counted, version unchanged.
    write(&s.corefile, ". {\n    reload 2s 1s\n    whoami\n");
    assert!(check().unwrap_err().to_string().contains("Corefile"));
    assert!(check().is_err());
    assert_eq!(failed(&s), "coredns_reload_failed_total 0");
    assert_eq!(version(&s), running);

    // Parsable but rejected: counted once; the version names the file tried.
    write(&s.corefile, ". {\n    reload 2s 1s\n    whoami\n    bogus\n}\n");
    let e = check().unwrap_err().to_string();
    assert!(e.ends_with("Corefile:4:5: unknown directive 'bogus'"), "{e}");
    assert_eq!(check().ok(), Some(false), "the same broken file is not tried again");
    assert_eq!(failed(&s), "coredns_reload_failed_total 1");
    let tried = version(&s);
    assert_eq!(tried.len(), 1);
    assert_ne!(tried, running);

    // SIGUSR1 tries whatever the file holds, and does not count its failures.
    assert!(s.reload().is_err());
    assert_eq!(failed(&s), "coredns_reload_failed_total 1");

    write(&s.corefile, good);
    assert_eq!(check().ok(), Some(true));
    assert_eq!(version(&s), running);
}

#[test]
fn no_reload_once_shutdown_began() {
    let s = TestServer::start(". {\n    health {\n        lameduck 1s\n    }\n    ready\n    whoami\n}\n");
    let (health, ready) = (s.http(":8080"), s.http(":8181"));
    let server = s.server.clone();
    s.block_on(async {
        tokio::spawn(async move { server.shutdown().await });
    });
    let shutting = eventually(TIMEOUT, || (http_get(ready, "/ready").0 == 503).then_some(()));
    assert!(shutting.is_some());
    write(&s.corefile, ". {\n    whoami\n}\n");
    assert_eq!(s.reload(), Ok(false));
    assert_eq!(s.block_on(s.server.reload(true)).ok(), Some(false));
    assert_eq!(http_get(health, "/health"), (200, "OK".to_string()));
}
