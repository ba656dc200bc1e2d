//! cache over real sockets: hits and their TTLs, the client's case, truncation to the client's
//! size, the DO and CD bits, serve_stale while the plugin after the cache fails, metrics with
//! CoreDNS's names and labels, reloads, and the kubeadm Corefile's `cache` lines.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use clusterdns::corefile::{Args, Directive, Error, once};
use clusterdns::dns::{RData, Record, Request, Response, build_query};
use clusterdns::plugin::registry::{PluginEntry, PluginSet};
use clusterdns::plugin::setup::{DynConfig, ParseCtx, PluginConfig, SetupCtx};
use clusterdns::plugin::{DynPlugin, ErrorKind, Next, Plugin, ServeError};
use clusterdns::server::{Options, Server};
use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, RecordType};

const HOSTS: &str = "10.0.0.1 web.example.org\n10.0.0.2 db.example.org\n";

fn start_with_hosts(hosts: &str, corefile: &str) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("example.hosts"), hosts).unwrap();
    TestServer::try_start_in(dir, corefile).unwrap_or_else(|e| panic!("server did not start:\n{e}"))
}

/// The labels of a sample line, and its value.
fn sample(line: &str) -> (&str, BTreeMap<&str, &str>, f64) {
    let (series, value) = line.rsplit_once(' ').expect("a value");
    let (name, mut rest) = series.split_once('{').unwrap_or((series, "}"));
    let mut labels = BTreeMap::new();
    while let Some((key, after)) = rest.split_once("=\"") {
        let (value, after) = after.split_once('"').expect("a closing quote");
        labels.insert(key.trim_start_matches(','), value);
        rest = after;
    }
    (name, labels, value.parse().expect("a number"))
}

/// The value of the sample of `name` whose labels include `labels` (0 if there is none).
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(sample)
        .find(|(n, l, _)| *n == name && labels.iter().all(|(k, v)| l.get(k) == Some(v)))
        .map_or(0.0, |(_, _, v)| v)
}

/// Sends `wire` from a socket of its own, so each query has another client port.
fn udp_from_new_port(addr: SocketAddr, wire: &[u8]) -> Message {
    Message::from_vec(&raw_udp(addr, wire).expect("a reply")).expect("a decodable reply")
}

#[test]
fn a_hit_is_the_answer_another_client_got_and_counts_as_the_caches() {
    let s = TestServer::start(". {\n    prometheus :9153\n    cache\n    whoami\n}\n");
    // whoami answers with the client's port: a second client getting the first one's port got
    // the cached answer.
    let query = build_query(1, "example.org.", clusterdns::dns::RecordType::A, Some((1232, 0, false)));
    let first = udp_from_new_port(s.addr(), &query);
    let second = udp_from_new_port(s.addr(), &query);
    let srv = |m: &Message| rrs(&m.additionals).into_iter().find(|r| r.contains(" SRV ")).unwrap();
    assert_eq!(srv(&first), srv(&second));
    // whoami's TTL 0 is kept for CoreDNS's 5 second minimum, on the miss and on the hit.
    assert!(srv(&first).starts_with("_udp.example.org. 5 IN SRV 0 0 "), "{}", srv(&first));
    assert!(second.additionals.iter().all(|r| r.ttl <= 5));
    let text = s.metrics();
    let block = [("zones", "."), ("view", "")];
    assert_eq!(metric(&text, "coredns_cache_requests_total", &block), 2.0);
    assert_eq!(metric(&text, "coredns_cache_misses_total", &block), 1.0);
    assert_eq!(metric(&text, "coredns_cache_hits_total", &[("type", "success"), ("zones", ".")]), 1.0);
    assert_eq!(metric(&text, "coredns_cache_hits_total", &[("type", "denial"), ("zones", ".")]), 0.0);
    assert_eq!(metric(&text, "coredns_cache_entries", &[("type", "success"), ("zones", ".")]), 1.0);
    // The responses counter names the plugin that made each answer, as CoreDNS's does.
    let by = |plugin: &str| metric(&text, "coredns_dns_responses_total", &[("plugin", plugin), ("rcode", "NOERROR")]);
    assert_eq!((by("whoami"), by("cache")), (1.0, 1.0));
}

#[test]
fn ttls_count_down_and_each_client_reads_its_own_case() {
    let s = start_with_hosts(HOSTS, ". {\n    cache 30\n    hosts example.hosts\n}\n");
    let out = dig(s.addr(), &["Web.Example.ORG", "A"]);
    assert!(out.contains("Web.Example.ORG.\t30\tIN\tA\t10.0.0.1"), "{out}");
    let out = dig(s.addr(), &["wEB.eXAMPLE.org", "A"]);
    assert!(out.contains("flags: qr aa rd;"), "the answer keeps its AA bit: {out}");
    let ttl: u32 = out
        .lines()
        .find(|l| l.starts_with("wEB.eXAMPLE.org.\t"))
        .unwrap_or_else(|| panic!("the answer in the second client's case: {out}"))
        .split('\t')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(ttl <= 30, "{out}");
    // On the wire, the owner is a pointer to the question (offset 12).
    let reply = raw_udp(s.addr(), &build_query(3, "WEB.example.ORG.", clusterdns::dns::RecordType::A, None)).unwrap();
    let answer_at = 12 + "WEB.example.ORG.".len() + 1 + 4;
    assert_eq!(&reply[answer_at..answer_at + 2], &[0xc0, 12]);
    assert_eq!(&reply[12..12 + 17], b"\x03WEB\x07example\x03ORG\x00");
}

/// A cached answer is kept whole and cut to each client's size when written: RFC 2181 9, TC
/// set when answer records are left out.
#[test]
fn rfc2181_9_a_cached_answer_too_big_for_the_client_is_truncated_with_tc() {
    let hosts: String = (1..=40).map(|i| format!("10.0.1.{i} big.example.org\n")).collect();
    let s = start_with_hosts(&hosts, ". {\n    prometheus :9153\n    cache\n    hosts example.hosts\n}\n");
    let m = query_tcp(s.addr(), "big.example.org.", RecordType::A);
    assert_eq!((m.answers.len(), m.metadata.truncation), (40, false));
    let wire = raw_udp(s.addr(), &build_query(4, "big.example.org.", clusterdns::dns::RecordType::A, None)).unwrap();
    assert!(wire.len() <= 512, "{} bytes", wire.len());
    let m = Message::from_vec(&wire).unwrap();
    assert!(m.metadata.truncation);
    assert_eq!(m.answers.len(), (512 - 12 - 21) / 16);
    let m = query_udp(s.addr(), "big.example.org.", RecordType::A);
    assert_eq!((m.answers.len(), m.metadata.truncation), (40, false), "1232 bytes of EDNS hold them all");
    let m = query_tcp(s.addr(), "big.example.org.", RecordType::A);
    assert_eq!((m.answers.len(), m.metadata.truncation), (40, false));
    assert_eq!(metric(&s.metrics(), "coredns_cache_hits_total", &[("type", "success")]), 3.0);
}

#[test]
fn dnssec_ok_and_checking_disabled_queries_are_cached_apart() {
    let s = start_with_hosts(HOSTS, ". {\n    prometheus :9153\n    cache\n    hosts example.hosts\n}\n");
    for _ in 0..2 {
        for flags in [&[][..], &["+dnssec"], &["+cd"], &["+dnssec", "+cd"]] {
            let mut args = vec!["web.example.org", "A"];
            args.extend_from_slice(flags);
            let out = dig(s.addr(), &args);
            assert!(out.contains("10.0.0.1"), "{out}");
        }
    }
    let text = s.metrics();
    assert_eq!(metric(&text, "coredns_cache_misses_total", &[]), 4.0);
    assert_eq!(metric(&text, "coredns_cache_hits_total", &[("type", "success")]), 4.0);
}

/// coredns#8261: a class's answer must never answer another class. The server refuses classes
/// other than IN before any plugin runs (so a CH query cannot reach the cache at all; the unit
/// tests check the key with CH queries); here the refusal leaves the IN entry alone.
#[test]
fn regression_coredns_8261_another_class_never_gets_or_poisons_the_in_answer() {
    let s = start_with_hosts(HOSTS, ". {\n    cache\n    hosts example.hosts\n}\n");
    let mut ch = query_message("web.example.org.", RecordType::A);
    ch.queries[0].set_query_class(DNSClass::CH);
    assert_eq!(exchange_udp(s.addr(), &ch).response_code, ResponseCode::Refused);
    for _ in 0..2 {
        let m = query_udp(s.addr(), "web.example.org.", RecordType::A);
        assert_eq!(rrs(&m.answers), ["web.example.org. 3600 IN A 10.0.0.1"]);
    }
    assert_eq!(exchange_udp(s.addr(), &ch).response_code, ResponseCode::Refused);
}

/// kubeadm's Corefile: `cache 30` with the cluster zone's answers left to the kubernetes plugin
/// (here hosts stands in for it) and every other name cached.
#[test]
fn the_kubeadm_cache_lines_leave_the_cluster_zone_uncached() {
    let corefile = ".:53 {
    prometheus :9153
    cache 30 {
        disable success cluster.local
        disable denial cluster.local
    }
    hosts example.hosts {
        fallthrough
    }
}
";
    let s = start_with_hosts("10.96.0.10 kube-dns.kube-system.svc.cluster.local\n10.0.0.1 web.example.org\n", corefile);
    for _ in 0..3 {
        let m = query_udp(s.addr(), "kube-dns.kube-system.svc.cluster.local.", RecordType::A);
        assert_eq!(rrs(&m.answers), ["kube-dns.kube-system.svc.cluster.local. 3600 IN A 10.96.0.10"]);
        // Capped at 30 and counting down, from the cache after the first.
        let m = query_udp(s.addr(), "web.example.org.", RecordType::A);
        assert!(m.answers[0].ttl <= 30, "{:?}", rrs(&m.answers));
    }
    let text = s.metrics();
    assert_eq!(metric(&text, "coredns_cache_hits_total", &[("type", "success")]), 2.0);
    assert_eq!(metric(&text, "coredns_cache_entries", &[("type", "success")]), 1.0);
}

/// A reload starts with an empty cache, as CoreDNS's does (the plugins after it may answer
/// differently now: that is often why the Corefile changed).
#[test]
fn a_reload_starts_with_an_empty_cache() {
    let s = TestServer::start(". {\n    cache 300\n    whoami\n}\n");
    let query = build_query(1, "example.org.", clusterdns::dns::RecordType::A, None);
    let port = |m: &Message| rrs(&m.additionals).into_iter().find(|r| r.contains(" SRV ")).unwrap();
    let first = port(&udp_from_new_port(s.addr(), &query));
    assert_eq!(port(&udp_from_new_port(s.addr(), &query)), first, "cached");
    s.write_corefile(". {\n    cache 600\n    whoami\n}\n");
    assert_eq!(s.reload(), Ok(true));
    let after = port(&udp_from_new_port(s.addr(), &query));
    assert_ne!(after, first, "answered anew after the reload");
}

/// Every `coredns_cache_*` series has CoreDNS 1.14's name and exact label set.
#[test]
fn metrics_have_coredns_names_and_labels() {
    let s = TestServer::start("example.org:53 example.net:53 {\n    prometheus :9153\n    cache\n    whoami\n}\n");
    query_udp(s.addr(), "a.example.org.", RecordType::A);
    let tsv =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/compat/coredns-1.14-metrics.tsv"))
            .unwrap();
    let want: BTreeMap<&str, BTreeSet<&str>> = tsv
        .lines()
        .filter(|l| l.starts_with("coredns_cache_"))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0], f[2].split(',').collect())
        })
        .collect();
    assert_eq!(want.len(), 8);
    let text = s.metrics();
    let mut seen = BTreeSet::new();
    for line in text.lines().filter(|l| l.starts_with("coredns_cache_")) {
        let (name, labels, _) = sample(line);
        assert_eq!(Some(&labels.keys().copied().collect()), want.get(name), "{line}");
        assert_eq!(labels["zones"], "example.org.,example.net.", "{line}");
        assert_eq!(labels["view"], "", "{line}");
        seen.insert(name);
    }
    assert_eq!(seen, want.keys().copied().collect(), "every family is exported:\n{text}");
}

// A plugin for the tests below, behind the cache: answers `NAME. 1 IN A 10.0.0.N` (N counting
// its answers), or fails as an unreachable upstream does while its switch says it is down.

/// Switches by name (the directive's argument), so tests running side by side keep apart.
static SWITCHES: LazyLock<Mutex<HashMap<String, Arc<Switch>>>> = LazyLock::new(Default::default);

#[derive(Default)]
struct Switch {
    down: AtomicBool,
    answers: AtomicUsize,
}

fn switch(name: &str) -> Arc<Switch> {
    SWITCHES.lock().unwrap().entry(name.to_string()).or_default().clone()
}

#[derive(Debug, PartialEq)]
struct FlakyConfig(String);

fn parse_flaky(dirs: &[Directive], _: &ParseCtx<'_>) -> Result<Box<dyn DynConfig>, Error> {
    let mut args = Args::new("flaky", once("flaky", dirs)?);
    let name = args.required("a switch name")?.text.clone();
    Ok(Box::new(FlakyConfig(name)))
}

impl PluginConfig for FlakyConfig {
    fn build(&self, _: &mut SetupCtx<'_>) -> Result<Option<Arc<dyn DynPlugin>>, Error> {
        Ok(Some(Arc::new(Flaky(switch(&self.0)))))
    }
}

struct Flaky(Arc<Switch>);

impl Plugin for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }

    async fn serve<'a>(&'a self, req: &'a mut Request, _: Next<'a>) -> Result<Response, ServeError> {
        if self.0.down.load(Ordering::SeqCst) {
            return Err(ServeError::new("flaky", ErrorKind::Upstream, "no healthy upstreams"));
        }
        let n = self.0.answers.fetch_add(1, Ordering::SeqCst) + 1;
        let mut resp = Response::new("flaky");
        let ip = std::net::Ipv4Addr::new(10, 0, 0, n as u8);
        resp.answer.push(Record::new(req.qname().clone(), 1, RData::A(ip)));
        Ok(resp)
    }
}

static WITH_FLAKY: PluginSet = PluginSet {
    order: &[
        PluginEntry { name: "prometheus", parse: clusterdns::plugins::prometheus::parse },
        PluginEntry { name: "cache", parse: clusterdns::plugins::cache::parse },
        PluginEntry { name: "flaky", parse: parse_flaky },
    ],
    known_elsewhere: &[],
};

/// A server of `WITH_FLAKY`'s plugins, stopped on drop.
struct FlakyServer {
    server: Server,
    rt: Option<tokio::runtime::Runtime>,
    _dir: tempfile::TempDir,
}

impl FlakyServer {
    fn start(corefile: &str) -> FlakyServer {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("Corefile");
        std::fs::write(&conf, corefile).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let opts = Options {
            conf: Some(conf),
            quiet: true,
            udp_workers: Some(1),
            loopback_ephemeral: true,
            plugins: &WITH_FLAKY,
            ..Options::default()
        };
        let server = rt.block_on(Server::start(opts)).unwrap_or_else(|e| panic!("{e}"));
        FlakyServer { server, rt: Some(rt), _dir: dir }
    }

    fn addr(&self) -> SocketAddr {
        self.rt.as_ref().unwrap().block_on(self.server.dns_addrs())[0].1
    }

    fn metric(&self, name: &str) -> f64 {
        metric(&self.server.metrics().render(clusterdns::metrics::Format::Text), name, &[])
    }
}

impl Drop for FlakyServer {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.block_on(self.server.shutdown());
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

/// Asks until `done` holds for the dig output (each try is a query), at most [`TIMEOUT`].
fn dig_until(addr: SocketAddr, name: &str, done: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    eventually(TIMEOUT, || {
        last = dig(addr, &[name, "A"]);
        done(&last).then_some(())
    })
    .unwrap_or_else(|| panic!("never got there; last:\n{last}"));
    last
}

#[test]
fn serve_stale_answers_with_the_stale_answer_error_while_the_plugin_after_fails() {
    let sw = switch("immediate");
    // Entries fresh for one second (TTL 1, no minimum), servable for an hour after.
    let s = FlakyServer::start(
        ". {\n    prometheus :9153\n    cache {\n        success 1024 1 0\n        serve_stale\n    }\n    flaky immediate\n}\n",
    );
    let out = dig(s.addr(), &["up.example.", "A"]);
    assert!(out.contains("up.example.\t\t1\tIN\tA\t10.0.0.1"), "{out}");
    sw.down.store(true, Ordering::SeqCst);
    // Once the second is over, the stale entry is served, TTL 0, with EDE 3.
    let out = dig_until(s.addr(), "up.example.", |o| o.contains("EDE: 3 (Stale Answer)"));
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(out.contains("up.example.\t\t0\tIN\tA\t10.0.0.1"), "{out}");
    assert!(s.metric("coredns_cache_served_stale_total") >= 1.0);
    // Back up: a stale answer refreshes in the background, and the next ones are fresh.
    sw.down.store(false, Ordering::SeqCst);
    let out = dig_until(s.addr(), "up.example.", |o| o.contains("IN\tA\t10.0.0.2"));
    assert!(!out.contains("EDE"), "{out}");
    assert!(s.metric("coredns_cache_prefetch_total") >= 1.0);
}

#[test]
fn serve_stale_verify_answers_fresh_as_soon_as_the_plugin_after_answers() {
    let sw = switch("verify");
    let s = FlakyServer::start(
        ". {\n    cache {\n        success 1024 1 0\n        serve_stale 1h verify\n    }\n    flaky verify\n}\n",
    );
    dig(s.addr(), &["v.example.", "A"]);
    sw.down.store(true, Ordering::SeqCst);
    dig_until(s.addr(), "v.example.", |o| o.contains("EDE: 3 (Stale Answer)"));
    sw.down.store(false, Ordering::SeqCst);
    // verify asks first: the very next query gets the new answer.
    let out = dig(s.addr(), &["v.example.", "A"]);
    assert!(out.contains("IN\tA\t10.0.0.2") && !out.contains("EDE"), "{out}");
}

#[test]
fn without_serve_stale_a_failure_after_expiry_is_servfail() {
    let sw = switch("plain");
    let s = FlakyServer::start(". {\n    cache {\n        success 1024 1 0\n    }\n    flaky plain\n}\n");
    dig(s.addr(), &["p.example.", "A"]);
    sw.down.store(true, Ordering::SeqCst);
    let out = dig_until(s.addr(), "p.example.", |o| o.contains("status: SERVFAIL"));
    assert!(!out.contains("EDE: 3"), "{out}");
}
