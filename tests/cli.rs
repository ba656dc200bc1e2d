//! The real binary's command line, as CoreDNS's: flags, exit codes, files it writes, and what
//! it serves with and without a Corefile.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use clusterdns::dns::{RecordType, build_query};
use clusterdns::plugins::ORDER;
use common::*;
use hickory_proto::op::{Message, ResponseCode};

/// Runs the binary in `dir` to completion: (exit code, stdout, stderr).
fn run(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out =
        Command::new(env!("CARGO_BIN_EXE_clusterdns")).args(args).current_dir(dir).output().expect("run clusterdns");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits until something answers `name` on 127.0.0.1:`port` over UDP; the reply.
fn wait_answer(p: &Process, port: u16, name: &str) -> Message {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let query = build_query(0x0c11, name, RecordType::A, None);
    let reply = eventually(TIMEOUT, || raw_udp_wait(addr, &query, Duration::from_millis(100)))
        .unwrap_or_else(|| panic!("nothing answers on {addr}; output:\n{}", p.lines().join("\n")));
    Message::from_vec(&reply).expect("a DNS reply")
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

#[test]
fn version() {
    let (code, out, _) = run(&std::env::temp_dir(), &["-version"]);
    assert_eq!(code, Some(0));
    let want = format!(
        "clusterdns-{}\n{}/{}, rust\n",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH
    );
    assert_eq!(out, want);
}

#[test]
fn plugins_in_execution_order() {
    let (code, out, _) = run(&std::env::temp_dir(), &["-plugins"]);
    assert_eq!(code, Some(0));
    let mut want = String::from("Server types:\n  dns\n\nPlugins, in execution order:\n");
    for p in ORDER {
        want.push_str(&format!("  dns.{}\n", p.name));
    }
    assert_eq!(out, want);
    // bind configures the listener before whoami answers, as in CoreDNS's plugin.cfg.
    assert!(out.find("dns.bind").unwrap() < out.find("dns.whoami").unwrap());
}

#[test]
fn validate_a_good_corefile() {
    let dir = tempdir();
    std::fs::write(
        dir.path().join("Corefile"),
        "example.org {\n    whoami\n}\n. {\n    bind 127.0.0.1\n    whoami\n}\n",
    )
    .unwrap();
    let (code, out, err) = run(dir.path(), &["-validate"]);
    assert_eq!((code, out.as_str(), err.as_str()), (Some(0), "Corefile: valid, 2 server block(s)\n", ""));
}

#[test]
fn validate_prints_every_error_with_its_position() {
    let dir = tempdir();
    let corefile =
        "a.org {\n    whoami extra\n}\n\nb.org:99999 {\n    bogus\n}\n\nc.org {\n    bind\n    whoami\n    whoami\n}\n";
    std::fs::write(dir.path().join("my.conf"), corefile).unwrap();
    let (code, out, err) = run(dir.path(), &["-validate", "-conf", "my.conf"]);
    assert_eq!(code, Some(1));
    assert_eq!(out, "");
    assert_eq!(
        err,
        "my.conf:2:12: whoami: unexpected argument 'extra'\n\
         my.conf:5:1: port out of range in key 'b.org:99999'\n\
         my.conf:6:5: unknown directive 'bogus'\n\
         my.conf:10:9: bind: expected an address or interface name\n\
         my.conf:12:5: whoami: this plugin can only be used once per Server Block\n"
    );
}

/// With no `-conf` and no `./Corefile` the server starts on its built-in default, so that is
/// what `-validate` checks (it failed on the missing file while the server started).
#[test]
fn validate_without_a_corefile_checks_the_built_in_default() {
    let dir = tempdir();
    let (code, out, err) = run(dir.path(), &["-validate", "-dns.port", "1053"]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (Some(0), "the built-in default Corefile: valid, 1 server block(s)\n", "")
    );
    // A named file that is missing is still an error, as is a `-conf` Corefile that is.
    let (code, _, err) = run(dir.path(), &["-validate", "-conf", "Corefile"]);
    assert_eq!(code, Some(1));
    assert_eq!(err, "Corefile: cannot read the Corefile: No such file or directory (os error 2)\n");
}

#[test]
fn validate_names_a_missing_file() {
    let (code, _, err) = run(&std::env::temp_dir(), &["-validate", "-conf", "/nonexistent/Corefile"]);
    assert_eq!(code, Some(1));
    assert_eq!(err, "/nonexistent/Corefile: cannot read the Corefile: No such file or directory (os error 2)\n");
}

#[test]
fn conf_with_two_dashes_and_the_banner() {
    let dir = tempdir();
    let port = free_port();
    let conf = dir.path().join("dns.conf");
    std::fs::write(&conf, format!("example.org:{port} {{\n    bind 127.0.0.1\n    whoami\n}}\n")).unwrap();
    let conf = conf.to_string_lossy().into_owned();
    let p = Process::spawn(dir.path(), &["--conf", &conf]);
    let m = wait_answer(&p, port, "www.example.org");
    assert_eq!(m.response_code, ResponseCode::NoError);
    assert!(m.authoritative);
    // CoreDNS's banner: zone:port and where, then the version.
    p.wait_for_line(TIMEOUT, |l| l == format!("example.org.:{port} on 127.0.0.1"));
    p.wait_for_line(TIMEOUT, |l| l == format!("clusterdns-{}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn quiet_suppresses_the_banner() {
    for (args, banner) in [(&["-quiet"][..], false), (&[][..], true)] {
        let dir = tempdir();
        let port = free_port();
        let corefile = format!("example.org:{port} {{\n    bind 127.0.0.1\n    whoami\n}}\n");
        std::fs::write(dir.path().join("Corefile"), corefile).unwrap();
        let mut p = Process::spawn(dir.path(), args);
        wait_answer(&p, port, "example.org");
        p.signal(libc::SIGTERM);
        assert_eq!(p.wait_exit(TIMEOUT), Some(0));
        let lines = p.all_lines(TIMEOUT);
        let printed = lines.contains(&format!("example.org.:{port} on 127.0.0.1"))
            && lines.contains(&format!("clusterdns-{}", env!("CARGO_PKG_VERSION")));
        assert_eq!(printed, banner, "{args:?}: {lines:?}");
    }
}

#[test]
fn dns_port_and_p_give_keys_without_a_port_their_port() {
    for flag in ["-dns.port", "-p"] {
        let dir = tempdir();
        let port = free_port();
        let other = free_port();
        // A key without a port takes the flag's; a key with one keeps it.
        let corefile = format!("example.org example.net:{other} {{\n    bind 127.0.0.1\n    whoami\n}}\n");
        std::fs::write(dir.path().join("Corefile"), corefile).unwrap();
        let p = Process::spawn(dir.path(), &[flag, &port.to_string(), "-quiet"]);
        assert_eq!(wait_answer(&p, port, "a.example.org").response_code, ResponseCode::NoError, "{flag}");
        assert_eq!(wait_answer(&p, other, "a.example.net").response_code, ResponseCode::NoError, "{flag}");
        // Each zone only where its key put it.
        assert_eq!(wait_answer(&p, port, "a.example.net").response_code, ResponseCode::Refused, "{flag}");
    }
}

#[test]
fn pidfile_is_written_and_removed_on_sigterm() {
    let dir = tempdir();
    let port = free_port();
    std::fs::write(dir.path().join("Corefile"), format!(".:{port} {{\n    bind 127.0.0.1\n    whoami\n}}\n")).unwrap();
    let pidfile = dir.path().join("run/clusterdns.pid");
    std::fs::create_dir(dir.path().join("run")).unwrap();
    let mut p = Process::spawn(dir.path(), &["-pidfile", pidfile.to_str().unwrap(), "-quiet"]);
    wait_answer(&p, port, "example.org");
    let written = eventually(TIMEOUT, || std::fs::read_to_string(&pidfile).ok()).expect("pidfile written");
    assert_eq!(written, format!("{}\n", p.child.id()));
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(TIMEOUT), Some(0));
    assert!(!pidfile.exists(), "pidfile left behind");
}

/// CoreDNS without a Corefile serves `.:PORT { whoami log }` (log when compiled in).
#[test]
fn no_corefile_serves_whoami_on_dns_port() {
    let dir = tempdir();
    let port = free_port();
    let p = Process::spawn(dir.path(), &["-dns.port", &port.to_string()]);
    let m = wait_answer(&p, port, "anything.example.net");
    assert_eq!(m.response_code, ResponseCode::NoError);
    assert_eq!(rrs(&m.additionals)[0], "anything.example.net. 0 IN A 127.0.0.1");
    p.wait_for_line(TIMEOUT, |l| l == format!(".:{port}"));
}

#[test]
fn unknown_flag_exits_2_with_usage() {
    let (code, out, err) = run(&std::env::temp_dir(), &["-bogus"]);
    assert_eq!(code, Some(2));
    assert_eq!(out, "");
    assert!(err.starts_with("flag provided but not defined: -bogus\nUsage of clusterdns:\n  -conf string\n"), "{err}");
    let (code, _, err) = run(&std::env::temp_dir(), &["-dns.port", "http"]);
    assert_eq!(code, Some(2));
    assert!(err.starts_with("invalid value \"http\" for flag -dns.port: not a port\nUsage of clusterdns:"), "{err}");
}

#[test]
fn conf_of_a_missing_file_names_it() {
    let dir = tempdir();
    let mut p = Process::spawn(dir.path(), &["-conf", "missing.conf", "-dns.port", &free_port().to_string()]);
    assert_eq!(p.wait_exit(TIMEOUT), Some(1));
    p.wait_for_line(TIMEOUT, |l| l == "missing.conf: cannot read the Corefile: No such file or directory (os error 2)");
}
