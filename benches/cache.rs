//! The cache's hit path: what a hit costs through the server's dispatch, against the hosts
//! plugin's answer, and the two ways a cached answer could be kept.
//!
//! * `dispatch/*`: whole queries through real Corefiles ([`Offline`], as a UDP worker runs
//!   them: decode, route, chain, encode): hosts answering, and the cache answering a hit for the
//!   same name with hosts behind it; then a forwarded-size answer (a CNAME, four addresses and
//!   an authority section) cached from a plugin that builds it.
//! * `reply/*`: the part of a hit that differs between the two ways of keeping an answer:
//!   **records** (clone a stored [`Response`], set its TTLs, and let the server encode it, name
//!   compression and all) and **wire** (what the cache does: a [`Response`] sharing a
//!   [`WireAnswer`] encoded once, which the server copies after the client's question, patching
//!   the TTLs). Both through the server's own `encode_response`, checked to write the same
//!   bytes. The rest of a hit (decode, route, the chain's hops, the lookup) is the same for both.
//! * `store/*`: one lookup in moka, against a sharded `RwLock<HashMap>` as CoreDNS keeps its
//!   cache.
//!
//! Before the timings, it prints the allocations per query of each path, counted by the global
//! allocator of this binary (mimalloc, as the server's, wrapped in a counter).
//!
//! `cargo bench --bench cache`

use std::alloc::{GlobalAlloc, Layout};
use std::collections::HashMap;
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use clusterdns::dns::decode::decode_query;
use clusterdns::dns::encode::encode_response;
use clusterdns::dns::{Name, Proto, RData, Record, RecordType, Request, Response, Soa, WireAnswer, build_query};
use clusterdns::plugin::Plugin;
use clusterdns::server::build::Offline;
use clusterdns::server::dispatch::{Handled, Meta};
use criterion::{Criterion, criterion_group, criterion_main};

/// mimalloc, counting allocations.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded as given.
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as given.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded as given.
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations per call of `f`, over many calls.
fn allocations_per_call(mut f: impl FnMut()) -> f64 {
    const N: u64 = 10_000;
    for _ in 0..100 {
        f();
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..N {
        f();
    }
    (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / N as f64
}

const HOSTS: &str = "one.test {\n    hosts {\n        10.0.0.1 a.one.test\n    }\n}\n";
const CACHE_HOSTS: &str = "one.test {\n    cache\n    hosts {\n        10.0.0.1 a.one.test\n    }\n}\n";

/// Answers like a forwarder relaying a recursive resolver: `www.one.test` is a CNAME to
/// `web.cdn.one.test` with four addresses, and the zone's NS records in the authority section.
struct Forwarded;

fn forwarded_answer(qname: &Name) -> Response {
    let cdn = Name::parse("web.cdn.one.test.").unwrap();
    let mut resp = Response::new("forwarded");
    resp.recursion_available = true;
    resp.answer.push(Record::new(qname.clone(), 300, RData::Cname(cdn.clone())));
    for i in 1..=4 {
        resp.answer.push(Record::new(cdn.clone(), 60, RData::A([192, 0, 2, i].into())));
    }
    for ns in ["ns1.one.test.", "ns2.one.test."] {
        resp.authority.push(Record::new(Name::parse("one.test.").unwrap(), 3600, RData::Ns(Name::parse(ns).unwrap())));
    }
    resp
}

impl Plugin for Forwarded {
    fn name(&self) -> &'static str {
        "forwarded"
    }

    async fn serve<'a>(
        &'a self,
        req: &'a mut Request,
        _next: clusterdns::plugin::Next<'a>,
    ) -> Result<Response, clusterdns::plugin::ServeError> {
        Ok(forwarded_answer(req.qname()))
    }
}

fn meta() -> Meta {
    let client: SocketAddr = "127.0.0.1:53535".parse().unwrap();
    Meta { client, local: client, proto: Proto::Udp, received: Instant::now() }
}

/// One query through `offline`'s dispatch into `out`.
fn dispatch_once(offline: &Offline, query: &[u8], out: &mut Vec<u8>) -> usize {
    match offline.table.handle(black_box(query), meta(), out) {
        Handled::Reply => out.len(),
        _ => panic!("no immediate reply"),
    }
}

/// A chain of the cache in front of the forwarded-answer plugin, as a dispatch would run it
/// (the server's own Offline builds only compiled-in plugins).
fn cache_forwarded() -> clusterdns::plugin::Chain {
    let parsed = clusterdns::corefile::parse_str("Corefile", "one.test {\n    cache\n}\n", &|_| None).unwrap();
    let zones = [Name::parse("one.test.").unwrap()];
    let config = clusterdns::plugins::cache::parse(
        &parsed.blocks[0].directives,
        &clusterdns::plugin::setup::ParseCtx { zones: &zones },
    )
    .unwrap();
    let config: &clusterdns::plugins::cache::Config = config.as_any().downcast_ref().unwrap();
    let registry = clusterdns::metrics::Registry::new();
    let metrics = clusterdns::plugins::cache::Metrics::new(&registry, &["dns://:53".into()], &zones);
    let cache = clusterdns::plugins::cache::Cache::new(config.clone(), metrics);
    clusterdns::plugin::testing::chain(vec![Arc::new(cache), Arc::new(Forwarded)])
}

/// Runs `chain` on the decoded `query` and encodes the reply, as the dispatch does.
fn chain_once(chain: &clusterdns::plugin::Chain, query: &[u8], out: &mut Vec<u8>) -> usize {
    let client: SocketAddr = "127.0.0.1:53535".parse().unwrap();
    let mut req = Request::new(decode_query(black_box(query)).unwrap(), client, client, Proto::Udp, Instant::now());
    let mut fut = clusterdns::plugin::Next::chain(chain).run(&mut req);
    let waker = std::task::Waker::noop();
    match fut.as_mut().poll(&mut std::task::Context::from_waker(waker)) {
        std::task::Poll::Ready(Ok(resp)) => {
            drop(fut);
            encode_response(out, &req, &resp).len
        }
        _ => panic!("a cache hit does not wait"),
    }
}

fn records_reply(stored: &Response, req: &Request, ttl: u32, out: &mut Vec<u8>) -> usize {
    let mut resp = stored.clone();
    for r in resp.answer.iter_mut().chain(&mut resp.authority).chain(&mut resp.additional) {
        r.ttl = ttl;
    }
    encode_response(out, req, &resp).len
}

/// `stored` kept as the cache keeps it: its header bits, and its sections encoded once after
/// `qname`.
struct Wire {
    head: Response,
    sections: Arc<WireAnswer>,
}

impl Wire {
    fn new(stored: &Response, qname: &Name) -> Wire {
        let mut head = stored.clone();
        let sections = [
            std::mem::take(&mut head.answer),
            std::mem::take(&mut head.authority),
            std::mem::take(&mut head.additional),
        ];
        Wire { sections: WireAnswer::new(qname, sections), head }
    }
}

fn wire_reply(stored: &Wire, req: &Request, ttl: u32, out: &mut Vec<u8>) -> usize {
    let mut resp =
        Response::with_rcode(stored.head.plugin(), stored.head.rcode).with_wire(stored.sections.clone(), Some(ttl));
    resp.authoritative = stored.head.authoritative;
    resp.recursion_available = stored.head.recursion_available;
    encode_response(out, req, &resp).len
}

/// The name the cache would have stored the entry under: the question as first asked, here in
/// lower case, so that the client's spelling differs.
fn stored_name(_stored: &Response, req: &Request) -> Name {
    Name::parse(&req.qname().to_string().to_ascii_lowercase()).unwrap()
}

fn request(query: &[u8]) -> Request {
    let client: SocketAddr = "127.0.0.1:53535".parse().unwrap();
    Request::new(decode_query(query).unwrap(), client, client, Proto::Udp, Instant::now())
}

fn report_allocations() {
    let rt = clusterdns::plugin::testing::runtime();
    let _guard = rt.enter();
    let query = build_query(0x4242, "a.one.test.", RecordType::A, None);
    let www = build_query(0x4242, "www.one.test.", RecordType::A, Some((1232, 0, false)));
    let mut out = Vec::with_capacity(512);
    let hosts = Offline::new(HOSTS).unwrap();
    let cached = Offline::new(CACHE_HOSTS).unwrap();
    dispatch_once(&cached, &query, &mut out);
    let forwarded = cache_forwarded();
    chain_once(&forwarded, &www, &mut out);
    let stored = forwarded_answer(&Name::parse("www.one.test.").unwrap());
    let req = request(&www);
    let wire = Wire::new(&stored, req.qname());
    println!("allocations per query:");
    println!(
        "  dispatch/hosts answer                {:.2}",
        allocations_per_call(|| {
            black_box(dispatch_once(&hosts, &query, &mut out));
        })
    );
    println!(
        "  dispatch/cache hit (hosts behind)    {:.2}",
        allocations_per_call(|| {
            black_box(dispatch_once(&cached, &query, &mut out));
        })
    );
    println!(
        "  chain/cache hit, forwarded answer    {:.2}",
        allocations_per_call(|| {
            black_box(chain_once(&forwarded, &www, &mut out));
        })
    );
    println!(
        "  reply/records, forwarded answer      {:.2}",
        allocations_per_call(|| {
            black_box(records_reply(&stored, &req, 300, &mut out));
        })
    );
    println!(
        "  reply/wire, forwarded answer         {:.2}",
        allocations_per_call(|| {
            black_box(wire_reply(&wire, &req, 300, &mut out));
        })
    );
}

fn dispatch(c: &mut Criterion) {
    report_allocations();
    let rt = clusterdns::plugin::testing::runtime();
    let _guard = rt.enter();
    let query = build_query(0x4242, "a.one.test.", RecordType::A, None);
    let mut out = Vec::with_capacity(512);
    let mut group = c.benchmark_group("dispatch");
    for (name, corefile) in [("hosts answer", HOSTS), ("cache hit, hosts behind", CACHE_HOSTS)] {
        let offline = Offline::new(corefile).unwrap();
        dispatch_once(&offline, &query, &mut out);
        group.bench_function(name, |b| b.iter(|| dispatch_once(&offline, &query, &mut out)));
    }
    let www = build_query(0x4242, "www.one.test.", RecordType::A, Some((1232, 0, false)));
    let forwarded = cache_forwarded();
    chain_once(&forwarded, &www, &mut out);
    group.bench_function("cache hit, forwarded answer (chain+encode)", |b| {
        b.iter(|| chain_once(&forwarded, &www, &mut out))
    });
    group.finish();
}

fn reply(c: &mut Criterion) {
    let mut group = c.benchmark_group("reply");
    let mut out = Vec::with_capacity(1232);
    for (name, query, stored) in [
        ("one A record", build_query(7, "A.One.Test.", RecordType::A, None), {
            let mut r = Response::authoritative("hosts");
            r.answer.push(Record::new(Name::parse("a.one.test.").unwrap(), 3600, RData::A([10, 0, 0, 1].into())));
            r
        }),
        (
            "forwarded answer",
            build_query(7, "WWW.one.test.", RecordType::A, Some((1232, 0, false))),
            forwarded_answer(&Name::parse("www.one.test.").unwrap()),
        ),
        ("NXDOMAIN with SOA", build_query(7, "nx.one.test.", RecordType::A, None), {
            let mut r = Response::with_rcode("forwarded", clusterdns::dns::Rcode::NXDOMAIN);
            let n = Name::parse("one.test.").unwrap();
            let soa = Soa {
                mname: Name::parse("ns1.one.test.").unwrap(),
                rname: Name::parse("hostmaster.one.test.").unwrap(),
                serial: 1,
                refresh: 2,
                retry: 3,
                expire: 4,
                minimum: 60,
            };
            r.authority.push(Record::new(n, 60, RData::Soa(Box::new(soa))));
            r
        }),
    ] {
        let req = request(&query);
        let wire = Wire::new(&stored, &stored_name(&stored, &req));
        let mut check = Vec::new();
        records_reply(&stored, &req, 30, &mut check);
        wire_reply(&wire, &req, 30, &mut out);
        assert_eq!(check, out, "{name}: both ways write the same reply");
        group.bench_function(format!("records: {name}"), |b| {
            b.iter(|| records_reply(&stored, black_box(&req), 30, &mut out))
        });
        group.bench_function(format!("records, clone and drop only: {name}"), |b| b.iter(|| black_box(stored.clone())));
        group.bench_function(format!("records, encode only: {name}"), |b| {
            b.iter(|| encode_response(&mut out, black_box(&req), &stored).len)
        });
        group.bench_function(format!("wire: {name}"), |b| b.iter(|| wire_reply(&wire, black_box(&req), 30, &mut out)));
    }
    group.finish();
}

fn store(c: &mut Criterion) {
    const N: u64 = 10_000;
    let value = Arc::new([0u8; 64]);
    let hasher = foldhash::fast::RandomState::default();
    let moka: moka::sync::Cache<u64, Arc<[u8; 64]>, _> =
        moka::sync::Cache::builder().max_capacity(N).build_with_hasher(hasher.clone());
    type Shard = RwLock<HashMap<u64, Arc<[u8; 64]>, foldhash::fast::RandomState>>;
    let shards: Vec<Shard> = (0..256).map(|_| RwLock::new(HashMap::with_hasher(hasher.clone()))).collect();
    for k in 0..N {
        moka.insert(k, value.clone());
        shards[(k & 255) as usize].write().unwrap().insert(k, value.clone());
    }
    moka.run_pending_tasks();
    let mut group = c.benchmark_group("store");
    let mut k = 0u64;
    group.bench_function("moka get", |b| {
        b.iter(|| {
            k = (k + 7919) % N;
            moka.get(black_box(&k)).is_some()
        })
    });
    group.bench_function("sharded RwLock<HashMap> get", |b| {
        b.iter(|| {
            k = (k + 7919) % N;
            shards[(k & 255) as usize].read().unwrap().get(black_box(&k)).cloned().is_some()
        })
    });
    group.finish();
}

criterion_group!(benches, dispatch, reply, store);
criterion_main!(benches);
