//! Helpers shared by the integration tests.

#![allow(dead_code, reason = "each test binary uses a different part")]

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Pod, PodSpec, PodStatus, Service, ServiceSpec};

/// How long any single awaited thing may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// The gen-cluster file checked in for tests: 5 namespaces, 32 services, 29 EndpointSlices, 56 pods.
pub const SMALL_CLUSTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/gen-cluster-small.json");

pub fn labels(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

pub fn service(ns: &str, name: &str, cluster_ip: &str) -> Service {
    let mut svc = Service::default();
    svc.metadata.name = Some(name.into());
    svc.metadata.namespace = Some(ns.into());
    svc.metadata.labels = labels(&[("app", name)]);
    svc.spec = Some(ServiceSpec {
        cluster_ip: Some(cluster_ip.into()),
        type_: Some("ClusterIP".into()),
        ..ServiceSpec::default()
    });
    svc
}

pub fn pod(ns: &str, name: &str, ip: &str, node: &str) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.name = Some(name.into());
    pod.metadata.namespace = Some(ns.into());
    pod.metadata.labels = labels(&[("app", "web")]);
    pod.spec = Some(PodSpec { node_name: Some(node.into()), ..PodSpec::default() });
    pod.status = Some(PodStatus { pod_ip: Some(ip.into()), phase: Some("Running".into()), ..PodStatus::default() });
    pod
}

/// `n` services spread over namespaces `ns-0`..`ns-4`, named `svc-00000`...
pub fn services(n: usize) -> Vec<Service> {
    (0..n)
        .map(|i| service(&format!("ns-{}", i % 5), &format!("svc-{i:05}"), &format!("10.96.{}.{}", i / 250, i % 250)))
        .collect()
}

/// Awaits `future`, failing the test after [`WAIT`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

/// Polls `stream` until `done` holds for an item, returning the items seen up to it; fails the
/// test after [`WAIT`] or if the stream ends first.
pub async fn until<S, T>(what: &str, stream: &mut S, mut done: impl FnMut(&T) -> bool) -> Vec<T>
where
    S: Stream<Item = T> + Unpin,
{
    within(what, async {
        let mut seen = Vec::new();
        loop {
            let item = stream.next().await.unwrap_or_else(|| panic!("stream ended while waiting for {what}"));
            let finished = done(&item);
            seen.push(item);
            if finished {
                return seen;
            }
        }
    })
    .await
}
