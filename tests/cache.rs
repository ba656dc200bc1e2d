//! cache over real sockets: hits and their TTLs counting down (and `keepttl`), the client's case,
//! truncation to the client's size, the DO and CD bits, denials cached apart for the SOA minimum,
//! `servfail`, `prefetch`, `serve_stale` while the plugin after the cache fails, `disable`,
//! evictions, CoreDNS's known failures (coredns#8261, #6642, #7956, #4324, #7963), metrics with
//! CoreDNS's names and labels, reloads, and the kubeadm Corefile's `cache` lines.

mod common;
mod upstreams;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use clusterdns::corefile::{Args, Directive, Error, once};
use clusterdns::dns::{Name, RData, Rcode, Record, Request, Response, Soa, build_query};
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

// A plugin for the tests below, behind the cache, standing in for a forwarder and its upstream:
// `script SWITCH` answers as its switch's mode says, and counts the queries that reach it.

/// Switches by name (the directive's argument), so tests running side by side keep apart.
static SWITCHES: LazyLock<Mutex<HashMap<String, Arc<Switch>>>> = LazyLock::new(Default::default);

/// What the scripted upstream answers.
const ANSWER: u8 = 0; // `NAME. TTL IN A 10.0.0.N`, N counting its answers; AD as a validator sets it
const NXDOMAIN: u8 = 1; // NXDOMAIN, `example. 300 IN SOA ...` with minimum TTL
const SERVFAIL: u8 = 2; // a SERVFAIL answer
const DOWN: u8 = 3; // no answer at all: an error, as forward's "no healthy upstreams"

struct Switch {
    mode: AtomicU8,
    /// The answer's TTL, or the SOA minimum of a denial.
    ttl: AtomicU32,
    /// Milliseconds to wait before answering.
    delay_ms: AtomicU64,
    /// Queries that reached it.
    calls: AtomicUsize,
    answers: AtomicUsize,
}

impl Default for Switch {
    fn default() -> Switch {
        Switch {
            mode: AtomicU8::new(ANSWER),
            ttl: AtomicU32::new(1),
            delay_ms: AtomicU64::new(0),
            calls: AtomicUsize::new(0),
            answers: AtomicUsize::new(0),
        }
    }
}

impl Switch {
    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

fn switch(name: &str) -> Arc<Switch> {
    SWITCHES.lock().unwrap().entry(name.to_string()).or_default().clone()
}

#[derive(Debug, PartialEq)]
struct ScriptConfig(String);

fn parse_script(dirs: &[Directive], _: &ParseCtx<'_>) -> Result<Box<dyn DynConfig>, Error> {
    let mut args = Args::new("script", once("script", dirs)?);
    let name = args.required("a switch name")?.text.clone();
    Ok(Box::new(ScriptConfig(name)))
}

impl PluginConfig for ScriptConfig {
    fn build(&self, _: &mut SetupCtx<'_>) -> Result<Option<Arc<dyn DynPlugin>>, Error> {
        Ok(Some(Arc::new(Script(switch(&self.0)))))
    }
}

struct Script(Arc<Switch>);

impl Plugin for Script {
    fn name(&self) -> &'static str {
        "script"
    }

    async fn serve<'a>(&'a self, req: &'a mut Request, _: Next<'a>) -> Result<Response, ServeError> {
        let sw = &self.0;
        sw.calls.fetch_add(1, Ordering::SeqCst);
        let delay = sw.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let ttl = sw.ttl.load(Ordering::SeqCst);
        match sw.mode.load(Ordering::SeqCst) {
            ANSWER => {
                let n = sw.answers.fetch_add(1, Ordering::SeqCst) + 1;
                let mut resp = Response::new("script");
                resp.recursion_available = true;
                // A validating resolver sets AD only for queries with AD or DO (RFC 6840 5.8).
                resp.authentic_data = req.authentic_data() || req.dnssec_ok();
                let ip = std::net::Ipv4Addr::new(10, 0, 0, n as u8);
                resp.answer.push(Record::new(req.qname().clone(), ttl, RData::A(ip)));
                Ok(resp)
            }
            NXDOMAIN => {
                let mut resp = Response::with_rcode("script", Rcode::NXDOMAIN);
                resp.recursion_available = true;
                let soa = Soa {
                    mname: Name::parse("ns.example.").unwrap(),
                    rname: Name::parse("hostmaster.example.").unwrap(),
                    serial: 1,
                    refresh: 7200,
                    retry: 3600,
                    expire: 1209600,
                    minimum: ttl,
                };
                resp.authority.push(Record::new(Name::parse("example.").unwrap(), 300, RData::Soa(Box::new(soa))));
                Ok(resp)
            }
            SERVFAIL => Ok(Response::with_rcode("script", Rcode::SERVFAIL)),
            _ => Err(ServeError::new("script", ErrorKind::Upstream, "no healthy upstreams")),
        }
    }
}

static WITH_SCRIPT: PluginSet = PluginSet {
    order: &[
        PluginEntry { name: "prometheus", parse: clusterdns::plugins::prometheus::parse },
        PluginEntry { name: "cache", parse: clusterdns::plugins::cache::parse },
        PluginEntry { name: "script", parse: parse_script },
    ],
    known_elsewhere: &[],
};

/// A server of `WITH_SCRIPT`'s plugins, stopped on drop.
struct ScriptServer {
    server: Server,
    rt: Option<tokio::runtime::Runtime>,
    _dir: tempfile::TempDir,
}

impl ScriptServer {
    fn start(corefile: &str) -> ScriptServer {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("Corefile");
        std::fs::write(&conf, corefile).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let opts = Options {
            conf: Some(conf),
            quiet: true,
            udp_workers: Some(1),
            loopback_ephemeral: true,
            plugins: &WITH_SCRIPT,
            ..Options::default()
        };
        let server = rt.block_on(Server::start(opts)).unwrap_or_else(|e| panic!("{e}"));
        ScriptServer { server, rt: Some(rt), _dir: dir }
    }

    fn addr(&self) -> SocketAddr {
        self.rt.as_ref().unwrap().block_on(self.server.dns_addrs())[0].1
    }

    fn metric(&self, name: &str) -> f64 {
        self.metric_with(name, &[])
    }

    fn metric_with(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric(&self.server.metrics().render(clusterdns::metrics::Format::Text), name, labels)
    }
}

impl Drop for ScriptServer {
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
    let s = ScriptServer::start(
        ". {\n    prometheus :9153\n    cache {\n        success 1024 1 0\n        serve_stale\n    }\n    script immediate\n}\n",
    );
    let out = dig(s.addr(), &["up.example.", "A"]);
    assert!(out.contains("up.example.\t\t1\tIN\tA\t10.0.0.1"), "{out}");
    sw.set(DOWN);
    // Once the second is over, the stale entry is served, TTL 0, with EDE 3.
    let out = dig_until(s.addr(), "up.example.", |o| o.contains("EDE: 3 (Stale Answer)"));
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(out.contains("up.example.\t\t0\tIN\tA\t10.0.0.1"), "{out}");
    assert!(s.metric("coredns_cache_served_stale_total") >= 1.0);
    // Back up: a stale answer refreshes in the background, and the next ones are fresh.
    sw.set(ANSWER);
    let out = dig_until(s.addr(), "up.example.", |o| o.contains("IN\tA\t10.0.0.2"));
    assert!(!out.contains("EDE"), "{out}");
    assert!(s.metric("coredns_cache_prefetch_total") >= 1.0);
}

#[test]
fn serve_stale_verify_answers_fresh_as_soon_as_the_plugin_after_answers() {
    let sw = switch("verify");
    let s = ScriptServer::start(
        ". {\n    cache {\n        success 1024 1 0\n        serve_stale 1h verify\n    }\n    script verify\n}\n",
    );
    dig(s.addr(), &["v.example.", "A"]);
    sw.set(DOWN);
    dig_until(s.addr(), "v.example.", |o| o.contains("EDE: 3 (Stale Answer)"));
    sw.set(ANSWER);
    // verify asks first: the very next query gets the new answer.
    let out = dig(s.addr(), &["v.example.", "A"]);
    assert!(out.contains("IN\tA\t10.0.0.2") && !out.contains("EDE"), "{out}");
}

#[test]
fn without_serve_stale_a_failure_after_expiry_is_servfail() {
    let sw = switch("plain");
    let s = ScriptServer::start(". {\n    cache {\n        success 1024 1 0\n    }\n    script plain\n}\n");
    dig(s.addr(), &["p.example.", "A"]);
    sw.set(DOWN);
    let out = dig_until(s.addr(), "p.example.", |o| o.contains("status: SERVFAIL"));
    assert!(!out.contains("EDE: 3"), "{out}");
}

/// Asks `name` A from a socket of its own, with EDNS when `dnssec_ok` is given, and AD set when
/// `ad`.
fn ask(addr: SocketAddr, name: &str, dnssec_ok: Option<bool>, ad: bool) -> Message {
    let mut q = build_query(fastrand::u16(..), name, clusterdns::dns::RecordType::A, dnssec_ok.map(|d| (1232, 0, d)));
    if ad {
        q[3] |= 0x20;
    }
    udp_from_new_port(addr, &q)
}

/// The one A record of `m`, as `(TTL, address)`.
fn a_record(m: &Message) -> (u32, String) {
    assert_eq!(m.answers.len(), 1, "{:?}", rrs(&m.answers));
    let r = &m.answers[0];
    (r.ttl, r.data.to_string())
}

/// TTLs count down in the answers served from the cache; with `keepttl` they stay as stored.
#[test]
fn ttls_count_down_in_served_answers_and_keepttl_keeps_them() {
    let (down, kept) = (switch("countdown"), switch("keepttl"));
    down.ttl.store(60, Ordering::SeqCst);
    kept.ttl.store(60, Ordering::SeqCst);
    let s = ScriptServer::start(". {\n    cache\n    script countdown\n}\n");
    let k = ScriptServer::start(". {\n    cache {\n        keepttl\n    }\n    script keepttl\n}\n");
    assert_eq!(a_record(&ask(s.addr(), "t.example.", None, false)), (60, "10.0.0.1".into()));
    assert_eq!(a_record(&ask(k.addr(), "t.example.", None, false)), (60, "10.0.0.1".into()));
    std::thread::sleep(Duration::from_millis(2100));
    let (ttl, ip) = a_record(&ask(s.addr(), "t.example.", None, false));
    assert!((56..=58).contains(&ttl) && ip == "10.0.0.1", "{ttl} {ip}");
    assert_eq!(a_record(&ask(k.addr(), "t.example.", None, false)), (60, "10.0.0.1".into()));
    assert_eq!((down.calls(), kept.calls()), (1, 1), "both served from the cache");
}

/// RFC 2308 5: a denial is cached for the lower of the SOA's TTL and its minimum, apart from
/// positive answers, and counted as a denial.
#[test]
fn rfc2308_denials_are_cached_apart_for_the_soa_minimum() {
    let sw = switch("denial");
    sw.set(NXDOMAIN);
    sw.ttl.store(7, Ordering::SeqCst);
    let s = ScriptServer::start(". {\n    prometheus :9153\n    cache\n    script denial\n}\n");
    for _ in 0..2 {
        let m = ask(s.addr(), "nx.example.", Some(false), false);
        assert_eq!(m.response_code, ResponseCode::NXDomain);
        assert_eq!(m.authorities.len(), 1);
        assert!(m.authorities[0].ttl <= 7 && m.authorities[0].ttl >= 6, "{:?}", rrs(&m.authorities));
    }
    sw.set(ANSWER);
    sw.ttl.store(60, Ordering::SeqCst);
    for _ in 0..2 {
        assert_eq!(a_record(&ask(s.addr(), "ok.example.", Some(false), false)).1, "10.0.0.1");
    }
    // The denial is still there, beside the positive answer.
    assert_eq!(ask(s.addr(), "nx.example.", Some(false), false).response_code, ResponseCode::NXDomain);
    assert_eq!(sw.calls(), 2);
    for (kind, entries, hits) in [("denial", 1.0, 2.0), ("success", 1.0, 1.0)] {
        let m = |name| s.metric_with(name, &[("type", kind)]);
        assert_eq!((m("coredns_cache_entries"), m("coredns_cache_hits_total")), (entries, hits), "{kind}");
    }
    // Past the SOA minimum it is asked again.
    sw.set(NXDOMAIN);
    std::thread::sleep(Duration::from_millis(7100));
    assert_eq!(ask(s.addr(), "nx.example.", Some(false), false).response_code, ResponseCode::NXDomain);
    assert_eq!(sw.calls(), 3);
}

/// A SERVFAIL is cached for `servfail` (default 5s), and not at all with `servfail 0`.
#[test]
fn servfail_is_cached_for_the_servfail_duration_only() {
    let (sw, off) = (switch("servfail"), switch("servfail-off"));
    sw.set(SERVFAIL);
    off.set(SERVFAIL);
    let s = ScriptServer::start(". {\n    cache {\n        servfail 1s\n    }\n    script servfail\n}\n");
    let o = ScriptServer::start(". {\n    cache {\n        servfail 0\n    }\n    script servfail-off\n}\n");
    for _ in 0..3 {
        assert_eq!(ask(s.addr(), "f.example.", None, false).response_code, ResponseCode::ServFail);
        assert_eq!(ask(o.addr(), "f.example.", None, false).response_code, ResponseCode::ServFail);
    }
    assert_eq!((sw.calls(), off.calls()), (1, 3));
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(ask(s.addr(), "f.example.", None, false).response_code, ResponseCode::ServFail);
    assert_eq!(sw.calls(), 2, "asked again once the second is over");
}

/// `prefetch 1 1m 50%`: an entry asked for within the last half of its TTL is refreshed in the
/// background, so the next clients get the new answer without a miss.
#[test]
fn prefetch_refreshes_a_popular_entry_before_it_expires() {
    let sw = switch("prefetch");
    sw.ttl.store(4, Ordering::SeqCst);
    let s = ScriptServer::start(
        ". {\n    prometheus :9153\n    cache {\n        prefetch 1 1m 50%\n    }\n    script prefetch\n}\n",
    );
    assert_eq!(a_record(&ask(s.addr(), "p.example.", None, false)), (5, "10.0.0.1".into()), "5s minimum TTL");
    // At 5s, the refresh starts once 2s or less are left.
    std::thread::sleep(Duration::from_millis(3100));
    assert_eq!(a_record(&ask(s.addr(), "p.example.", None, false)).1, "10.0.0.1", "served, then refreshed");
    let refreshed = eventually(TIMEOUT, || {
        let (ttl, ip) = a_record(&ask(s.addr(), "p.example.", None, false));
        (ip == "10.0.0.2").then_some(ttl)
    });
    assert!(refreshed.is_some_and(|ttl| ttl >= 4), "{refreshed:?}");
    assert_eq!(s.metric("coredns_cache_misses_total"), 1.0);
    assert!(s.metric("coredns_cache_prefetch_total") >= 1.0);
}

/// coredns#7956: a SERVFAIL fetched while a good answer is cached (here by a prefetch) is cached
/// too, but never hides the good answer while it is servable.
#[test]
fn regression_coredns_7956_a_cached_servfail_never_hides_the_positive_answer() {
    let sw = switch("7956");
    sw.ttl.store(4, Ordering::SeqCst);
    let s = ScriptServer::start(
        ". {\n    prometheus :9153\n    cache {\n        prefetch 1 1m 50%\n    }\n    script 7956\n}\n",
    );
    assert_eq!(a_record(&ask(s.addr(), "g.example.", None, false)).1, "10.0.0.1");
    sw.set(SERVFAIL);
    std::thread::sleep(Duration::from_millis(3100));
    assert_eq!(a_record(&ask(s.addr(), "g.example.", None, false)).1, "10.0.0.1");
    eventually(TIMEOUT, || (s.metric_with("coredns_cache_entries", &[("type", "denial")]) == 1.0).then_some(()))
        .expect("the prefetched SERVFAIL is cached");
    assert_eq!(sw.calls(), 2);
    for _ in 0..5 {
        let m = ask(s.addr(), "g.example.", None, false);
        assert_eq!((m.response_code, a_record(&m).1), (ResponseCode::NoError, "10.0.0.1".into()));
    }
    assert_eq!(sw.calls(), 2, "the good answer was served from the cache");
}

/// coredns#6642: the cache asks with AD, so an entry holds AD as the validator said it, and each
/// client gets AD only when it asked with AD or DO (RFC 6840 5.8), whichever client filled it.
#[test]
fn regression_coredns_6642_ad_is_answered_per_client_whoever_filled_the_entry() {
    let sw = switch("6642");
    sw.ttl.store(60, Ordering::SeqCst);
    let s = ScriptServer::start(". {\n    cache\n    script 6642\n}\n");
    let ad = |dnssec_ok, ad| ask(s.addr(), "ad.example.", dnssec_ok, ad).authentic_data;
    assert!(!ad(Some(false), false), "filled by a client without AD or DO: no AD for it");
    assert!(ad(Some(false), true), "a client asking with AD gets it from the same entry");
    assert!(!ad(None, false));
    assert_eq!(sw.calls(), 1);
    assert!(ad(Some(true), false), "DO: its own entry, with AD");
    assert!(ad(Some(true), true));
    assert_eq!(sw.calls(), 2);
}

/// Sends `n` queries for `name` at once, each from its own socket; their replies.
fn burst(addr: SocketAddr, name: &str, n: usize) -> Vec<Message> {
    std::thread::scope(|scope| {
        let asks: Vec<_> = (0..n).map(|_| scope.spawn(|| ask(addr, name, Some(false), false))).collect();
        asks.into_iter().map(|t| t.join().unwrap()).collect()
    })
}

/// coredns#4324, #7963: however many queries find an entry due for a refresh while one is in
/// flight, the name is asked once: `serve_stale` (immediate: all get the stale answer at once;
/// verify: all wait for the same refresh) and `prefetch`.
#[test]
fn regression_coredns_4324_7963_a_name_is_refreshed_once_however_many_ask() {
    let cases = [
        ("4324-immediate", "serve_stale", "10.0.0.1"),
        ("4324-verify", "serve_stale 1h verify", "10.0.0.2"),
        ("7963-prefetch", "prefetch 1 1m 90%", "10.0.0.1"),
    ];
    for (name, option, want) in cases {
        let sw = switch(name);
        // Fresh for 1s with serve_stale (no minimum), for 10s with prefetch (refreshed after 1s).
        let ttl = if option.starts_with("prefetch") { 10 } else { 1 };
        sw.ttl.store(ttl, Ordering::SeqCst);
        let s = ScriptServer::start(&format!(
            ". {{\n    cache {{\n        success 1024 3600 0\n        {option}\n    }}\n    script {name}\n}}\n"
        ));
        assert_eq!(a_record(&ask(s.addr(), "r.example.", Some(false), false)).1, "10.0.0.1");
        std::thread::sleep(Duration::from_millis(1100));
        sw.delay_ms.store(700, Ordering::SeqCst);
        let replies = burst(s.addr(), "r.example.", 20);
        for m in &replies {
            assert_eq!(a_record(m).1, want, "{name}");
        }
        assert_eq!(sw.calls(), 2, "{name}: one refresh for 20 queries");
        // The refresh lands: the new answer is served.
        eventually(TIMEOUT, || {
            (a_record(&ask(s.addr(), "r.example.", Some(false), false)).1 == "10.0.0.2").then_some(())
        })
        .unwrap_or_else(|| panic!("{name}: never refreshed"));
    }
}

/// `disable denial ZONE` passes denials under ZONE on uncached (every query reaches the plugin
/// after), while positive answers there and denials elsewhere are cached.
#[test]
fn disable_denial_leaves_denials_of_its_zones_uncached() {
    let sw = switch("disable");
    let s = ScriptServer::start(
        ". {\n    cache {\n        disable denial uncached.example\n    }\n    script disable\n}\n",
    );
    sw.ttl.store(60, Ordering::SeqCst);
    for _ in 0..2 {
        assert_eq!(a_record(&ask(s.addr(), "a.uncached.example.", None, false)).1, "10.0.0.1");
    }
    assert_eq!(sw.calls(), 1, "positive answers are cached");
    sw.set(NXDOMAIN);
    for _ in 0..3 {
        assert_eq!(ask(s.addr(), "nx.uncached.example.", None, false).response_code, ResponseCode::NXDomain);
        assert_eq!(ask(s.addr(), "nx.cached.example.", None, false).response_code, ResponseCode::NXDomain);
    }
    assert_eq!(sw.calls(), 1 + 3 + 1);
}

/// A full cache pushes entries out to make room, counts them, and holds at most its capacity.
#[test]
fn a_full_cache_evicts_and_counts_its_evictions() {
    let sw = switch("evict");
    sw.ttl.store(600, Ordering::SeqCst);
    let s = ScriptServer::start(
        ". {\n    prometheus :9153\n    cache {\n        success 1024\n    }\n    script evict\n}\n",
    );
    for i in 0..1500 {
        let m = ask(s.addr(), &format!("n{i}.example."), None, false);
        assert_eq!(m.response_code, ResponseCode::NoError);
    }
    let entries = s.metric_with("coredns_cache_entries", &[("type", "success")]);
    let evicted = s.metric_with("coredns_cache_evictions_total", &[("type", "success")]);
    assert!(entries <= 1024.0 && evicted >= 1500.0 - 1024.0, "{entries} entries, {evicted} evicted");
    assert_eq!(entries + evicted, 1500.0);
}

/// Plugins in front that read answers (log, loadbalance: kubeadm's Corefile has loadbalance) get
/// a hit as records read back from the entry's bytes, and the client gets them all.
#[test]
fn hits_reach_plugins_in_front_that_read_answers_as_records() {
    let hosts: String = (1..=4).map(|i| format!("10.0.2.{i} lb.example.org\n")).collect();
    let s = start_with_hosts(&hosts, ". {\n    log\n    loadbalance\n    cache 30\n    hosts example.hosts\n}\n");
    let mut orders = BTreeSet::new();
    for _ in 0..20 {
        let m = query_udp(s.addr(), "LB.example.org.", RecordType::A);
        let mut got = rrs(&m.answers);
        orders.insert(got.clone());
        got.sort();
        let want: Vec<String> =
            (1..=4).map(|i| format!("LB.example.org. {} IN A 10.0.2.{i}", m.answers[0].ttl)).collect();
        assert_eq!(got, want);
        assert!(m.answers[0].ttl <= 30);
    }
    assert!(orders.len() > 1, "loadbalance shuffled the cached records");
}

/// kubeadm's Corefile lines for names outside the cluster, unchanged, in front of a real
/// upstream (knot serving a signed zone): answers and denials cached for at most 30 seconds,
/// counting down, each client's spelling, DNSSEC records kept for DO clients.
#[test]
fn kubeadm_forward_cache_loop_lines_cache_a_real_upstreams_answers() {
    let knot = upstreams::Knot::start("");
    let corefile = format!(
        ".:53 {{\n    errors\n    prometheus :9153\n    forward . {} {{\n       max_concurrent 1000\n    }}\n    \
         cache 30\n    loop\n    loadbalance\n}}\n",
        knot.addr
    );
    let s = TestServer::start(&corefile);
    let m = query_udp(s.addr(), "www.example.test.", RecordType::A);
    assert_eq!(rrs(&m.answers), ["www.example.test. 30 IN A 192.0.2.1"], "capped at 30 from knot's 300");
    let m = query_udp(s.addr(), "WWW.Example.TEST.", RecordType::A);
    let got = rrs(&m.answers);
    assert!(
        got.len() == 1 && got[0].starts_with("WWW.Example.TEST. ") && got[0].ends_with(" IN A 192.0.2.1"),
        "{got:?}"
    );
    // A denial: knot's SOA (TTL and minimum 300) capped at 30.
    for _ in 0..2 {
        let m = query_udp(s.addr(), "nx.example.test.", RecordType::A);
        assert_eq!(m.response_code, ResponseCode::NXDomain);
        let soa = m.authorities.iter().find(|r| r.record_type() == RecordType::SOA).expect("an SOA");
        assert!(soa.ttl <= 30, "{:?}", rrs(&m.authorities));
    }
    // DO: an entry of its own, with knot's signatures, served again from the cache.
    for _ in 0..2 {
        let mut q = query_message("www.example.test.", RecordType::A);
        q.edns.as_mut().unwrap().set_dnssec_ok(true);
        let m = exchange_udp(s.addr(), &q);
        assert!(m.answers.iter().any(|r| r.record_type() == RecordType::RRSIG), "{:?}", rrs(&m.answers));
        assert!(m.answers.iter().all(|r| r.ttl <= 30));
    }
    let text = s.metrics();
    // The misses: the loop plugin's probe at start (HINFO for a random name, which knot refuses:
    // not cached), www, nx, and www with DO.
    assert_eq!(metric(&text, "coredns_cache_misses_total", &[]), 4.0, "{text}");
    assert_eq!(metric(&text, "coredns_cache_entries", &[("type", "denial")]), 1.0);
    assert_eq!(metric(&text, "coredns_cache_hits_total", &[("type", "success")]), 2.0);
    assert_eq!(metric(&text, "coredns_cache_hits_total", &[("type", "denial")]), 1.0);
}
