//! hosts over real sockets: answers, fallthrough, zones, reload, metrics and setup errors.

mod common;

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

const HOSTS: &str = "\
# a hosts file as operators write them
127.0.0.1       localhost
10.0.0.1        web.example.org web   # the canonical name, then an alias
10.0.0.2        db.example.org
fd00::1         web.example.org
::ffff:10.0.0.3 mapped.example.org
fe80::1%eth0    router.example.org
";

/// Starts `corefile` from a directory that holds `files` (name, contents).
fn start_with(files: &[(&str, &str)], corefile: &str) -> TestServer {
    TestServer::try_start_in(dir_with(files), corefile).unwrap_or_else(|e| panic!("server did not start:\n{e}"))
}

fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

fn answers(m: &Message) -> Vec<String> {
    rrs(&m.answers)
}

#[test]
fn a_aaaa_and_ptr_over_udp_and_tcp() {
    let s = start_with(&[("example.hosts", HOSTS)], ". {\n    hosts example.hosts\n}\n");
    for query in [query_udp, query_tcp] {
        let m = query(s.addr(), "web.example.org.", RecordType::A);
        assert_eq!(m.response_code, ResponseCode::NoError);
        assert!(m.authoritative);
        assert_eq!(answers(&m), ["web.example.org. 3600 IN A 10.0.0.1"]);

        let m = query(s.addr(), "web.example.org.", RecordType::AAAA);
        assert_eq!(answers(&m), ["web.example.org. 3600 IN AAAA fd00::1"]);

        let m = query(s.addr(), "1.0.0.10.in-addr.arpa.", RecordType::PTR);
        assert!(m.authoritative);
        assert_eq!(
            answers(&m),
            ["1.0.0.10.in-addr.arpa. 3600 IN PTR web.example.org.", "1.0.0.10.in-addr.arpa. 3600 IN PTR web."]
        );
        let m = query(
            s.addr(),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.",
            RecordType::PTR,
        );
        assert_eq!(answers(&m).len(), 1);
        assert!(answers(&m)[0].ends_with(" 3600 IN PTR web.example.org."), "{:?}", answers(&m));
    }
}

#[test]
fn mapped_and_scoped_addresses() {
    let s = start_with(&[("example.hosts", HOSTS)], ". {\n    hosts example.hosts\n}\n");
    let m = query_udp(s.addr(), "mapped.example.org.", RecordType::A);
    assert_eq!(answers(&m), ["mapped.example.org. 3600 IN A 10.0.0.3"]);
    let m = query_udp(s.addr(), "3.0.0.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(answers(&m), ["3.0.0.10.in-addr.arpa. 3600 IN PTR mapped.example.org."]);
    let m = query_udp(s.addr(), "router.example.org.", RecordType::AAAA);
    assert_eq!(answers(&m), ["router.example.org. 3600 IN AAAA fe80::1"]);
}

#[test]
fn hickory_client_and_dig_agree() {
    let s = start_with(&[("example.hosts", HOSTS)], ". {\n    hosts example.hosts\n}\n");
    for tcp in [false, true] {
        let m = hickory_query(s.addr(), "db.example.org.", RecordType::A, tcp);
        assert_eq!(answers(&m), ["db.example.org. 3600 IN A 10.0.0.2"]);
    }
    let out = dig(s.addr(), &["WEB.Example.ORG", "A"]);
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(out.contains("flags: qr aa rd;"), "{out}");
    // The answer carries the client's spelling of the name.
    assert!(out.contains("WEB.Example.ORG.\t3600\tIN\tA\t10.0.0.1"), "{out}");
    let out = dig(s.addr(), &["-x", "10.0.0.2", "+tcp"]);
    assert!(out.contains("2.0.0.10.in-addr.arpa.\t3600\tIN\tPTR\tdb.example.org."), "{out}");
}

#[test]
fn a_name_with_other_records_gets_nodata_and_an_unknown_name_servfail() {
    let s = start_with(&[("example.hosts", HOSTS)], ". {\n    hosts example.hosts\n}\n");
    for qtype in [RecordType::AAAA, RecordType::MX, RecordType::TXT] {
        let m = query_udp(s.addr(), "db.example.org.", qtype);
        assert_eq!(m.response_code, ResponseCode::NoError, "{qtype}");
        assert!(m.authoritative && m.answers.is_empty() && m.authorities.is_empty(), "{qtype}: {m:?}");
    }
    // CoreDNS answers SERVFAIL, not NXDOMAIN: it has no SOA to deny the name with.
    let m = query_udp(s.addr(), "nothere.example.org.", RecordType::A);
    assert_eq!(m.response_code, ResponseCode::ServFail);
    assert!(!m.authoritative && m.answers.is_empty() && m.authorities.is_empty());
}

#[test]
fn no_reverse_passes_ptr_queries_on() {
    let s = start_with(
        &[("example.hosts", HOSTS)],
        ". {\n    hosts example.hosts {\n        no_reverse\n    }\n    whoami\n}\n",
    );
    let m = query_udp(s.addr(), "1.0.0.10.in-addr.arpa.", RecordType::PTR);
    assert!(m.answers.is_empty());
    assert_eq!(rrs(&m.additionals)[0], "1.0.0.10.in-addr.arpa. 0 IN A 127.0.0.1", "whoami answered");
    // Forward names are still served.
    assert_eq!(
        answers(&query_udp(s.addr(), "web.example.org.", RecordType::A)),
        ["web.example.org. 3600 IN A 10.0.0.1"]
    );
}

#[test]
fn fallthrough_hands_unknown_names_to_the_next_plugin() {
    let s = start_with(
        &[("example.hosts", HOSTS)],
        ". {\n    hosts example.hosts {\n        fallthrough example.org\n    }\n    whoami\n}\n",
    );
    let m = query_udp(s.addr(), "nothere.example.org.", RecordType::A);
    assert_eq!(rrs(&m.additionals)[0], "nothere.example.org. 0 IN A 127.0.0.1", "whoami answered");
    // Outside the fallthrough zones: SERVFAIL from hosts.
    let m = query_udp(s.addr(), "nothere.example.net.", RecordType::A);
    assert_eq!(m.response_code, ResponseCode::ServFail);
    // A name hosts has is answered by hosts, NODATA included.
    let m = query_udp(s.addr(), "db.example.org.", RecordType::AAAA);
    assert!(m.answers.is_empty() && m.additionals.is_empty() && m.authoritative);
}

#[test]
fn zones_restrict_the_names_served() {
    let s = start_with(
        &[("example.hosts", "10.0.0.1 a.example.org\n10.0.0.2 b.example.net\n")],
        ". {\n    hosts example.hosts example.org\n    whoami\n}\n",
    );
    assert_eq!(answers(&query_udp(s.addr(), "a.example.org.", RecordType::A)), ["a.example.org. 3600 IN A 10.0.0.1"]);
    // In the file but outside the zones: the next plugin answers.
    let m = query_udp(s.addr(), "b.example.net.", RecordType::A);
    assert!(m.answers.is_empty());
    assert_eq!(rrs(&m.additionals)[0], "b.example.net. 0 IN A 127.0.0.1");
    // Inside the zones and missing: SERVFAIL (no fallthrough).
    assert_eq!(query_udp(s.addr(), "c.example.org.", RecordType::A).response_code, ResponseCode::ServFail);
    // Reverse names are answered though outside the zones, for names inside them.
    let m = query_udp(s.addr(), "1.0.0.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(answers(&m), ["1.0.0.10.in-addr.arpa. 3600 IN PTR a.example.org."]);
    let m = query_udp(s.addr(), "2.0.0.10.in-addr.arpa.", RecordType::PTR);
    assert!(m.answers.is_empty(), "b.example.net was not read");
}

#[test]
fn zones_default_to_the_server_blocks() {
    let s = start_with(
        &[("example.hosts", "10.0.0.1 a.example.org\n10.0.0.2 b.example.net\n")],
        "example.org 10.0.0.0/8 {\n    hosts example.hosts\n    whoami\n}\n",
    );
    assert_eq!(answers(&query_udp(s.addr(), "a.example.org.", RecordType::A)), ["a.example.org. 3600 IN A 10.0.0.1"]);
    let m = query_udp(s.addr(), "1.0.0.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(answers(&m), ["1.0.0.10.in-addr.arpa. 3600 IN PTR a.example.org."]);
    // b.example.net is outside the block's zones, so it was not read: whoami answers its PTR.
    let m = query_udp(s.addr(), "2.0.0.10.in-addr.arpa.", RecordType::PTR);
    assert!(m.answers.is_empty());
    assert_eq!(rrs(&m.additionals)[0], "2.0.0.10.in-addr.arpa. 0 IN A 127.0.0.1");
}

#[test]
fn ttl_applies_to_forward_and_reverse_records() {
    let s = start_with(&[("example.hosts", HOSTS)], ". {\n    hosts example.hosts {\n        ttl 60\n    }\n}\n");
    assert_eq!(answers(&query_udp(s.addr(), "db.example.org.", RecordType::A)), ["db.example.org. 60 IN A 10.0.0.2"]);
    assert_eq!(
        answers(&query_udp(s.addr(), "2.0.0.10.in-addr.arpa.", RecordType::PTR)),
        ["2.0.0.10.in-addr.arpa. 60 IN PTR db.example.org."]
    );
}

#[test]
fn inline_entries_join_the_files_and_are_served_without_one() {
    let corefile = ". {\n    hosts example.hosts {\n        10.0.0.9 web.example.org inline.example.org\n        \
                    10.0.0.1 web.example.org\n    }\n}\n";
    let s = start_with(&[("example.hosts", HOSTS)], corefile);
    // The file's address first, then the Corefile's; the repeated 10.0.0.1 once.
    assert_eq!(
        answers(&query_udp(s.addr(), "web.example.org.", RecordType::A)),
        ["web.example.org. 3600 IN A 10.0.0.1", "web.example.org. 3600 IN A 10.0.0.9"]
    );
    assert_eq!(
        answers(&query_udp(s.addr(), "9.0.0.10.in-addr.arpa.", RecordType::PTR)),
        [
            "9.0.0.10.in-addr.arpa. 3600 IN PTR web.example.org.",
            "9.0.0.10.in-addr.arpa. 3600 IN PTR inline.example.org."
        ]
    );

    // No file at all: a warning, and the inline entries are served.
    let s = TestServer::start(". {\n    hosts missing.hosts {\n        10.0.0.9 inline.example.org\n    }\n}\n");
    assert_eq!(
        answers(&query_udp(s.addr(), "inline.example.org.", RecordType::A)),
        ["inline.example.org. 3600 IN A 10.0.0.9"]
    );
}

#[test]
fn an_edited_file_is_served_within_the_reload_interval() {
    let s = start_with(
        &[("example.hosts", "10.0.0.1 web.example.org\n")],
        ". {\n    hosts example.hosts {\n        reload 100ms\n        fallthrough\n    }\n    whoami\n}\n",
    );
    assert_eq!(
        answers(&query_udp(s.addr(), "web.example.org.", RecordType::A)),
        ["web.example.org. 3600 IN A 10.0.0.1"]
    );
    std::fs::write(s.dir().join("example.hosts"), "10.0.0.2 web.example.org\n10.0.0.3 new.example.org\n").unwrap();
    let got = eventually(TIMEOUT, || {
        let a = answers(&query_udp(s.addr(), "new.example.org.", RecordType::A));
        (!a.is_empty()).then_some(a)
    });
    assert_eq!(got.expect("the edit is served within 5s"), ["new.example.org. 3600 IN A 10.0.0.3"]);
    assert_eq!(
        answers(&query_udp(s.addr(), "web.example.org.", RecordType::A)),
        ["web.example.org. 3600 IN A 10.0.0.2"]
    );

    // Deleted: the entries last read stay.
    std::fs::remove_file(s.dir().join("example.hosts")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300)); // three polls; nothing to await
    assert_eq!(
        answers(&query_udp(s.addr(), "new.example.org.", RecordType::A)),
        ["new.example.org. 3600 IN A 10.0.0.3"]
    );
}

/// `reload 0` never reads the file again. Beside it a block polling every second shows edits
/// are seen at all, and the check waits past the default interval (5s): a `reload 0` taken as
/// "the default" or as a short interval would have read the edit by then.
#[test]
fn reload_zero_reads_the_file_once() {
    let s = start_with(
        &[("once.hosts", "10.0.0.1 web.example.org\n"), ("polled.hosts", "10.0.0.1 web.example.net\n")],
        "example.org {\n    hosts once.hosts {\n        reload 0\n    }\n}\n\
         example.net {\n    hosts polled.hosts {\n        reload 1s\n    }\n}\n",
    );
    let written = std::time::Instant::now();
    std::fs::write(s.dir().join("once.hosts"), "10.0.0.2 web.example.org\n# longer now\n").unwrap();
    std::fs::write(s.dir().join("polled.hosts"), "10.0.0.2 web.example.net\n# longer now\n").unwrap();
    let polled = eventually(TIMEOUT, || {
        (answers(&query_udp(s.addr(), "web.example.net.", RecordType::A)) == ["web.example.net. 3600 IN A 10.0.0.2"])
            .then_some(())
    });
    assert!(polled.is_some(), "the block polling every second never read its edit");
    std::thread::sleep(std::time::Duration::from_millis(5_500).saturating_sub(written.elapsed()));
    assert_eq!(
        answers(&query_udp(s.addr(), "web.example.org.", RecordType::A)),
        ["web.example.org. 3600 IN A 10.0.0.1"]
    );
}

/// A reload that leaves the file, zones and entries alone keeps the table: a file gone for the
/// moment does not empty it (a rebuilt plugin would serve nothing), and a file that changed is
/// read again, as CoreDNS reads it at every reload.
#[test]
fn a_corefile_reload_that_keeps_the_file_keeps_its_table() {
    let s = start_with(
        &[("example.hosts", "10.0.0.1 web.example.org\n")],
        ". {\n    hosts example.hosts {\n        reload 0\n    }\n}\n",
    );
    let file = s.dir().join("example.hosts");
    std::fs::remove_file(&file).unwrap();
    s.write_corefile(". {\n    hosts example.hosts {\n        reload 0\n        ttl 60\n    }\n}\n");
    assert_eq!(s.reload(), Ok(true));
    assert_eq!(answers(&query_udp(s.addr(), "web.example.org.", RecordType::A)), ["web.example.org. 60 IN A 10.0.0.1"]);

    std::fs::write(&file, "10.0.0.2 web.example.org\n").unwrap();
    s.write_corefile(". {\n    hosts example.hosts {\n        reload 0\n        ttl 30\n    }\n}\n");
    assert_eq!(s.reload(), Ok(true));
    assert_eq!(answers(&query_udp(s.addr(), "web.example.org.", RecordType::A)), ["web.example.org. 30 IN A 10.0.0.2"]);
}

#[test]
fn a_corefile_reload_replaces_the_plugin_and_stops_its_poller() {
    let s = start_with(
        &[("a.hosts", "10.0.0.1 web.example.org\n"), ("b.hosts", "10.0.0.2 web.example.org\n")],
        ". {\n    hosts a.hosts {\n        reload 50ms\n    }\n}\n",
    );
    let a = s.dir().join("a.hosts");
    let entries_of_a = || {
        let prefix = format!("coredns_hosts_entries{{hostsfile=\"{}\"}} ", a.display());
        s.metrics().lines().find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
    };
    assert_eq!(entries_of_a().as_deref(), Some("2"));

    s.write_corefile(". {\n    hosts b.hosts {\n        ttl 60\n    }\n}\n");
    assert_eq!(s.reload(), Ok(true));
    assert_eq!(answers(&query_udp(s.addr(), "web.example.org.", RecordType::A)), ["web.example.org. 60 IN A 10.0.0.2"]);

    // The old configuration's poller is gone: an edit of a.hosts is never read again.
    std::fs::write(&a, "10.0.0.1 web.example.org\n10.0.0.3 more.example.org\n").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300)); // six old polls; nothing to await
    assert_eq!(entries_of_a().as_deref(), Some("2"));
}

#[test]
fn a_malformed_line_is_skipped_and_the_rest_served() {
    let file = "10.0.0.1 before.example.org\nnot-an-address x.example.org\n10.0.0.300 y.example.org\n10.0.0.4\n\
                10.0.0.5 bad..name.example.org ok.example.org\n10.0.0.2 after.example.org\n";
    let s = start_with(&[("example.hosts", file)], ". {\n    hosts example.hosts\n}\n");
    for (name, want) in [
        ("before.example.org.", "before.example.org. 3600 IN A 10.0.0.1"),
        ("after.example.org.", "after.example.org. 3600 IN A 10.0.0.2"),
        ("ok.example.org.", "ok.example.org. 3600 IN A 10.0.0.5"),
    ] {
        assert_eq!(answers(&query_udp(s.addr(), name, RecordType::A)), [want]);
    }
    assert_eq!(query_udp(s.addr(), "x.example.org.", RecordType::A).response_code, ResponseCode::ServFail);
}

#[test]
fn metrics_count_entries_per_file_and_the_reload_time() {
    let s = start_with(
        &[("example.hosts", HOSTS)],
        ". {\n    hosts example.hosts {\n        10.0.0.9 inline.example.org\n    }\n}\n",
    );
    let path = s.dir().join("example.hosts");
    let text = s.metrics();
    assert!(text.contains("# HELP coredns_hosts_entries The combined number of entries in hosts and Corefile.\n"));
    assert!(text.contains("# TYPE coredns_hosts_entries gauge\n"));
    // 7 (name, address) pairs in the file and 1 inline, each with its reverse pair.
    assert!(text.contains(&format!("coredns_hosts_entries{{hostsfile=\"{}\"}} 16\n", path.display())), "{text}");
    assert!(
        text.contains(
            "# HELP coredns_hosts_reload_timestamp_seconds The timestamp of the last reload of hosts file.\n"
        )
    );
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap().duration_since(std::time::UNIX_EPOCH).unwrap();
    let line = text.lines().find(|l| l.starts_with("coredns_hosts_reload_timestamp_seconds ")).expect("the gauge");
    let value: f64 = line.split(' ').nth(1).unwrap().parse().unwrap();
    assert!((value - mtime.as_secs_f64()).abs() < 1e-3, "{line} vs {mtime:?}");
}

#[test]
fn bad_options_are_positioned_errors() {
    let cases = [
        ("ttl x", "Corefile:3:13: hosts: ttl must be 1 to 65535 seconds, got 'x'"),
        ("reload -1s", "Corefile:3:16: hosts: reload cannot be negative, got '-1s' (0 disables it)"),
        ("podz", "Corefile:3:9: hosts: unknown property 'podz'"),
        ("no_reverse now", "Corefile:3:20: hosts: unexpected argument 'now'"),
        ("ttl 30 60", "Corefile:3:16: hosts: unexpected argument '60'"),
    ];
    for (line, want) in cases {
        let err = TestServer::try_start(&format!(". {{\n    hosts {{\n        {line}\n    }}\n}}\n"))
            .err()
            .unwrap_or_else(|| panic!("'{line}' started"));
        assert!(err.lines().any(|l| l.ends_with(want)), "{line}: {err}");
    }
    let err = TestServer::try_start(". {\n    hosts\n    hosts\n}\n").err().expect("hosts twice");
    assert!(err.contains("Corefile:3:5: hosts: this plugin can only be used once per Server Block"), "{err}");
}
