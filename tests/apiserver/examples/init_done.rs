//! How long a big cluster takes to reach kube-rs watchers' InitDone, and the server's memory.
//!
//! ```sh
//! ../shared/bench/gen-cluster --namespaces 50 --services 100000 --pods-per-service 3 --out /tmp/c100k
//! # The server in this process (its RSS then includes the watchers' caches; see the figure
//! # printed after loading for the server alone):
//! cargo run --release -p clusterdns-test-apiserver --example init_done -- --objects /tmp/c100k/objects.json
//! # Or against the binary, to read its memory on its own:
//! clusterdns-apiserver --objects /tmp/c100k/objects.json --port 0 --kubeconfig-out /tmp/kc & pid=$!
//! cargo run --release -p clusterdns-test-apiserver --example init_done -- --kubeconfig /tmp/kc --server-pid $pid
//! ```
//! Add `--streaming` for `sendInitialEvents` streaming lists instead of paginated ones.

use std::fmt::Debug;
use std::hash::Hash;
use std::time::{Duration, Instant};

use clusterdns_test_apiserver::TestApiServer;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, reflector};
use serde::de::DeserializeOwned;

#[derive(Default)]
struct Args {
    objects: Option<String>,
    kubeconfig: Option<String>,
    server_pid: Option<u32>,
    streaming: bool,
}

fn args() -> Args {
    let mut args = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--objects" => args.objects = it.next(),
            "--kubeconfig" => args.kubeconfig = it.next(),
            "--server-pid" => args.server_pid = it.next().and_then(|p| p.parse().ok()),
            "--streaming" => args.streaming = true,
            other => panic!("unknown argument {other:?}; see the example's documentation"),
        }
    }
    args
}

/// VmRSS and VmHWM of a process, in MiB.
fn memory(pid: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or("?".to_owned(), |kib| format!("{} MiB", kib / 1024))
    };
    format!("RSS {} (peak {})", field("VmRSS:"), field("VmHWM:"))
}

/// Watches `api` into a reflector until InitDone; returns how long that took and the objects held.
async fn until_init_done<K>(api: Api<K>, config: watcher::Config, started: Instant) -> (Duration, usize)
where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let mut events = reflector::reflector(writer, watcher::watcher(api, config)).default_backoff().boxed();
    loop {
        match events.next().await {
            Some(Ok(Event::InitDone)) => return (started.elapsed(), reader.state().len()),
            Some(Err(error)) => eprintln!("watcher error: {error}"),
            Some(Ok(_)) => {}
            None => panic!("watch stream ended"),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args();
    let (_server, client, server_pid) = match (&args.objects, &args.kubeconfig) {
        (Some(objects), None) => {
            let started = Instant::now();
            let api = TestApiServer::builder().start().await?;
            let summary = api.load_objects_file(objects).await?;
            println!("loaded {} objects in {:.2?}; server {}", summary.total(), started.elapsed(), memory("self"));
            let client = api.kube_client().await?;
            (Some(api), client, "self".to_owned())
        }
        (None, Some(kubeconfig)) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig)?;
            let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
            let pid = args.server_pid.map_or("?".to_owned(), |p| p.to_string());
            (None, kube::Client::try_from(config)?, pid)
        }
        _ => return Err("give --objects FILE, or --kubeconfig PATH [--server-pid PID]".into()),
    };

    let config = if args.streaming { watcher::Config::default().streaming_lists() } else { watcher::Config::default() };
    let started = Instant::now();
    let (services, pods, slices, namespaces) = tokio::join!(
        until_init_done(Api::<Service>::all(client.clone()), config.clone(), started),
        until_init_done(Api::<Pod>::all(client.clone()), config.clone(), started),
        until_init_done(Api::<EndpointSlice>::all(client.clone()), config.clone(), started),
        until_init_done(Api::<Namespace>::all(client.clone()), config.clone(), started),
    );
    let strategy = if args.streaming { "streaming list" } else { "paginated list (limit=500)" };
    println!("InitDone, four concurrent kube-rs watchers with reflectors, {strategy}:");
    for (kind, (took, n)) in
        [("Services", services), ("Pods", pods), ("EndpointSlices", slices), ("Namespaces", namespaces)]
    {
        println!("  {kind:<15} {n:>7} objects in {took:.2?}");
    }
    println!("server process ({server_pid}): {}", memory(&server_pid));
    if server_pid != "self" {
        println!("this process (the watchers' caches): {}", memory("self"));
    }
    Ok(())
}
