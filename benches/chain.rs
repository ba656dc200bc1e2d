//! Per-query cost of the server's dispatch: decode, route to the block, run its chain, encode,
//! exactly as a UDP worker does it ([`Offline`] builds the tables without sockets).
//!
//! * `dispatch/*`: whole queries through real Corefiles: whoami alone, and the three-plugin
//!   chains the benchmark against knot uses (errors and prometheus in front of whoami or hosts).
//! * `hop/*`: the cost of one more plugin in a chain (a plugin that only calls `next`), so the
//!   boxed future per hop is measured rather than guessed.
//!
//! `cargo bench --bench chain`

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use clusterdns::dns::{Proto, Rcode, RecordType, Request, build_query};
use clusterdns::plugin::testing::{self, Relay};
use clusterdns::plugin::{DynPlugin, Next};
use clusterdns::server::build::Offline;
use clusterdns::server::dispatch::{Handled, Meta};
use criterion::{Criterion, criterion_group, criterion_main};

const WHOAMI: &str = "one.test {\n    whoami\n}\n";
const ERRORS_PROMETHEUS_WHOAMI: &str = "one.test {\n    errors\n    prometheus 127.0.0.1:0\n    whoami\n}\n";
const ERRORS_PROMETHEUS_HOSTS: &str =
    "one.test {\n    errors\n    prometheus 127.0.0.1:0\n    hosts {\n        10.0.0.1 a.one.test\n    }\n}\n";

fn dispatch(c: &mut Criterion) {
    let rt = testing::runtime();
    let _guard = rt.enter();
    let query = build_query(0x4242, "a.one.test.", RecordType::A, None);
    let client: SocketAddr = "127.0.0.1:53535".parse().unwrap();
    let mut group = c.benchmark_group("dispatch");
    for (name, corefile) in [
        ("whoami", WHOAMI),
        ("errors+prometheus+whoami", ERRORS_PROMETHEUS_WHOAMI),
        ("errors+prometheus+hosts", ERRORS_PROMETHEUS_HOSTS),
    ] {
        let offline = Offline::new(corefile).unwrap();
        let mut out = Vec::with_capacity(512);
        group.bench_function(name, |b| {
            b.iter(|| {
                let meta = Meta { client, local: client, proto: Proto::Udp, received: Instant::now() };
                match offline.table.handle(black_box(&query), meta, &mut out) {
                    Handled::Reply => black_box(out.len()),
                    _ => panic!("{name}: no immediate reply"),
                }
            })
        });
    }
    group.finish();
}

fn hop(c: &mut Criterion) {
    let mut group = c.benchmark_group("hop");
    let waker = std::task::Waker::noop();
    for passes in [0usize, 1, 4] {
        let mut plugins: Vec<Arc<dyn DynPlugin>> = (0..passes).map(|_| Arc::new(Relay) as Arc<dyn DynPlugin>).collect();
        plugins.push(testing::rcode("answer", Rcode::NOERROR));
        let chain = testing::chain(plugins);
        let mut req = Request::synthetic("a.one.test.", RecordType::A);
        group.bench_function(format!("{passes} passes + answer"), |b| {
            b.iter(|| {
                let mut fut = Next::chain(&chain).run(&mut req);
                let mut cx = std::task::Context::from_waker(waker);
                match fut.as_mut().poll(&mut cx) {
                    std::task::Poll::Ready(r) => black_box(r.is_ok()),
                    std::task::Poll::Pending => unreachable!("nothing here waits"),
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, dispatch, hop);
criterion_main!(benches);
