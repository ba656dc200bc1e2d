//! The `clusterdns-apiserver` binary as a person or a script runs it: start it on a gen-cluster
//! file, wait for the kubeconfig, point a client at it.

use std::path::Path;
use std::time::{Duration, Instant};

mod common;

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ListParams};

/// The binary as a child process, killed on drop.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Objects of `kind` in a gen-cluster file (`{"Kind": [object, ...]}`).
fn count_in_fixture(fixture: &Path, kind: &str) -> usize {
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
    file[kind].as_array().map_or(0, Vec::len)
}

/// A client that starts the moment the kubeconfig appears must find the whole cluster: the
/// binary writes the kubeconfig only after loading its objects (it once wrote it first, and a
/// DNS server started on it synced an empty cluster).
///
/// The file is large enough (20 000 Services beside the small cluster) that loading it takes far
/// longer than a client needs to connect, so a kubeconfig written first would be caught.
#[tokio::test]
async fn the_kubeconfig_appears_once_the_objects_are_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let small: serde_json::Value = serde_json::from_slice(
        &std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/gen-cluster-small.json")).unwrap(),
    )
    .unwrap();
    let mut cluster = small.as_object().unwrap().clone();
    let services = cluster.get_mut("Service").unwrap().as_array_mut().unwrap();
    services.extend(common::services(20_000).into_iter().map(|s| {
        let mut v = serde_json::to_value(s).unwrap();
        v["apiVersion"] = "v1".into();
        v["kind"] = "Service".into();
        v
    }));
    let fixture = dir.path().join("objects.json");
    std::fs::write(&fixture, serde_json::to_vec(&cluster).unwrap()).unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let _child = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_clusterdns-apiserver"))
            .arg("--objects")
            .arg(&fixture)
            .args(["--port", "0", "--kubeconfig-out"])
            .arg(&kubeconfig)
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start clusterdns-apiserver"),
    );
    let start = Instant::now();
    while !kubeconfig.exists() {
        assert!(start.elapsed() < Duration::from_secs(30), "no kubeconfig after 30 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig).unwrap(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let services = Api::<Service>::all(client.clone()).list(&ListParams::default()).await.unwrap();
    let pods = Api::<Pod>::all(client).list(&ListParams::default()).await.unwrap();
    assert_eq!(services.items.len(), count_in_fixture(&fixture, "Service"));
    assert_eq!(pods.items.len(), count_in_fixture(&fixture, "Pod"));
    assert!(!services.items.is_empty() && !pods.items.is_empty());
}
