//! Heap allocations per query on the hot path, counted with a counting global allocator through
//! exactly the dispatch a UDP worker runs (`Offline` builds the same tables without sockets).
//! Counts, unlike times, do not depend on the machine: these bounds are the documented cost of a
//! query (see `src/plugin.rs` and `src/server/dispatch.rs`), and a change that adds an
//! allocation to the hot path fails here.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use clusterdns::dns::{Proto, RecordType, build_query};
use clusterdns::server::build::Offline;
use clusterdns::server::dispatch::{Handled, Meta};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations per query for `name`/`qtype` through `corefile`, after a warm-up that lets
/// metrics series and buffers settle.
fn per_query(corefile: &str, name: &str, qtype: RecordType) -> usize {
    // The count is global: tests measure one at a time.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _guard = rt.enter();
    let offline = Offline::new(corefile).unwrap();
    let query = build_query(0x4242, name, qtype, Some((1232, 0, false)));
    let client: SocketAddr = "127.0.0.1:53535".parse().unwrap();
    let mut out = Vec::with_capacity(4096);
    let mut ask = || {
        let meta = Meta { client, local: client, proto: Proto::Udp, received: Instant::now() };
        assert!(matches!(offline.table.handle(&query, meta, &mut out), Handled::Reply));
    };
    for _ in 0..100 {
        ask();
    }
    const N: usize = 1000;
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..N {
        ask();
    }
    let total = ALLOCATIONS.load(Ordering::Relaxed) - before;
    // The count is global: another thread of the test harness may allocate a few times meanwhile.
    assert!(total % N < 20, "{total} allocations in {N} queries: not the same for every query");
    total / N
}

/// One box for the chain's future, one per plugin hop, and the response's record vectors.
#[test]
fn allocations_per_query_on_the_hot_path() {
    let whoami = per_query("one.test {\n    whoami\n}\n", "a.one.test.", RecordType::A);
    let hosts = per_query(
        "one.test {\n    errors\n    prometheus 127.0.0.1:0\n    hosts {\n        10.0.0.1 a.one.test\n    }\n}\n",
        "a.one.test.",
        RecordType::A,
    );
    // whoami: the chain's future, whoami's future, the additional section's vector.
    assert_eq!(whoami, 3, "whoami");
    // errors + prometheus + hosts: the chain's future, three hops, the answer's vector.
    assert_eq!(hosts, 5, "errors, prometheus, hosts");
}

/// A cache hit, the hottest path of a cluster, allocates no more than the hosts plugin's answer
/// behind the same plugins (issue 9): its answer is kept encoded and shared, so nothing is
/// allocated beyond the chain's future and the hops'.
#[test]
fn a_cache_hit_allocates_no_more_than_the_hosts_answer() {
    let hosts = per_query(
        "one.test {\n    errors\n    prometheus 127.0.0.1:0\n    hosts {\n        10.0.0.1 a.one.test\n    }\n}\n",
        "a.one.test.",
        RecordType::A,
    );
    let hit = per_query(
        "one.test {\n    errors\n    prometheus 127.0.0.1:0\n    cache 30\n    hosts {\n        10.0.0.1 a.one.test\n    }\n}\n",
        "a.one.test.",
        RecordType::A,
    );
    // errors + prometheus + cache: the chain's future, three hops; no section is allocated.
    assert_eq!(hit, 4, "errors, prometheus, cache hit");
    assert!(hit <= hosts, "a cache hit ({hit}) allocates more than the hosts answer ({hosts})");
    // kubeadm's Corefile has loadbalance in front of the cache: a hit of one record has nothing
    // to reorder and stays encoded (below); one of several becomes records to be shuffled, one
    // vector per non-empty section, as the hosts answer has.
    let balanced = |backend: &str| {
        let corefile = format!(
            "one.test {{\n    errors\n    prometheus 127.0.0.1:0\n    loadbalance\n    {backend}\n    hosts {{\n        10.0.0.1 a.one.test\n    }}\n}}\n"
        );
        per_query(&corefile, "a.one.test.", RecordType::A)
    };
    let (hosts, hit) = (balanced(""), balanced("cache 30"));
    assert_eq!((hosts, hit), (6, 5), "loadbalance in front: hosts, cache hit of one record");
    let balanced = |backend: &str| {
        let corefile = format!(
            "one.test {{\n    errors\n    prometheus 127.0.0.1:0\n    loadbalance\n    {backend}\n    hosts {{\n        10.0.0.1 a.one.test\n        10.0.0.2 a.one.test\n    }}\n}}\n"
        );
        per_query(&corefile, "a.one.test.", RecordType::A)
    };
    let (hosts, hit) = (balanced(""), balanced("cache 30"));
    assert_eq!((hosts, hit), (6, 6), "loadbalance in front: hosts, cache hit of two records");
}
