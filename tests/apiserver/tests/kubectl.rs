//! The real kubectl against the test API server: discovery, lists across namespaces, and a watch
//! while objects change. kubectl is `$KUBECTL`, or `kubectl` on the PATH.

mod common;

use std::collections::BTreeSet;
use std::process::Stdio;

use clusterdns_test_apiserver::{Kind, TestApiServer};
use common::*;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// kubectl with the server's kubeconfig and a discovery cache of its own.
struct Kubectl {
    kubeconfig: std::path::PathBuf,
    cache: tempfile::TempDir,
}

impl Kubectl {
    fn new(api: &TestApiServer) -> Self {
        Kubectl { kubeconfig: api.kubeconfig_path().to_owned(), cache: tempfile::tempdir().unwrap() }
    }

    fn command(&self, args: &[&str]) -> Command {
        let program = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
        let mut command = Command::new(&program);
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// Runs kubectl to completion; its stdout, or the test fails with its stderr.
    async fn run(&self, args: &[&str]) -> String {
        let child =
            self.command(args).spawn().unwrap_or_else(|e| panic!("cannot run kubectl (set KUBECTL to its path): {e}"));
        let output = within(&format!("kubectl {args:?}"), child.wait_with_output()).await.unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "kubectl {args:?} failed: {stderr}");
        assert!(!stderr.contains("rror"), "kubectl {args:?} complained: {stderr}");
        String::from_utf8(output.stdout).unwrap()
    }

    /// Starts a long-running kubectl; it is killed when the returned child drops.
    fn spawn(&self, args: &[&str]) -> (Child, Lines<BufReader<ChildStdout>>) {
        let mut child =
            self.command(args).spawn().unwrap_or_else(|e| panic!("cannot run kubectl (set KUBECTL to its path): {e}"));
        let stdout = child.stdout.take().unwrap();
        (child, BufReader::new(stdout).lines())
    }
}

/// The `namespace/name`s of one kind in the checked-in gen-cluster file.
fn fixture_names(kind: &str) -> BTreeSet<String> {
    let file: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(SMALL_CLUSTER).unwrap()).unwrap();
    file[kind]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            format!("{}/{}", o["metadata"]["namespace"].as_str().unwrap(), o["metadata"]["name"].as_str().unwrap())
        })
        .collect()
}

/// The first two columns of a `get -A` table, as `namespace/name`, after checking its header.
fn table_names(output: &str) -> BTreeSet<String> {
    let mut lines = output.lines();
    let header: Vec<_> = lines.next().expect("a header").split_whitespace().collect();
    assert_eq!(header[..2], ["NAMESPACE", "NAME"], "{output}");
    lines
        .map(|line| {
            let columns: Vec<_> = line.split_whitespace().collect();
            format!("{}/{}", columns[0], columns[1])
        })
        .collect()
}

#[tokio::test]
async fn get_across_namespaces() {
    let api = TestApiServer::builder().objects_file(SMALL_CLUSTER).token("kubectl-token").start().await.unwrap();
    let kubectl = Kubectl::new(&api);

    let services = table_names(&kubectl.run(&["get", "svc", "-A"]).await);
    assert_eq!(services, fixture_names("Service"));
    assert!(services.contains("default/kubernetes"));
    let slices = table_names(&kubectl.run(&["get", "endpointslices", "-A"]).await);
    assert_eq!(slices, fixture_names("EndpointSlice"));
    let pods = table_names(&kubectl.run(&["get", "pods", "--all-namespaces"]).await);
    assert_eq!(pods, fixture_names("Pod"));

    let namespaces = kubectl.run(&["get", "namespaces", "-o", "name"]).await;
    assert_eq!(namespaces.lines().count(), 5);
    assert!(namespaces.lines().any(|l| l == "namespace/kube-system"));
    let one = kubectl.run(&["get", "svc", "-n", "default", "kubernetes", "-o", "jsonpath={.spec.clusterIP}"]).await;
    assert_eq!(one, "10.96.0.1");
    let version = kubectl.run(&["version", "-o", "json"]).await;
    assert!(version.contains("\"gitVersion\": \"v1.37.0+clusterdns-test\""), "{version}");

    // And it is refused with a wrong token.
    let text = std::fs::read_to_string(api.kubeconfig_path()).unwrap().replace("kubectl-token", "wrong");
    let wrong = kubectl.cache.path().join("wrong-kubeconfig");
    std::fs::write(&wrong, text).unwrap();
    let output = within(
        "kubectl with a wrong token",
        Command::new(std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into()))
            .args([
                "--kubeconfig",
                wrong.to_str().unwrap(),
                "--cache-dir",
                kubectl.cache.path().to_str().unwrap(),
                "get",
                "svc",
                "-A",
            ])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Unauthorized") || stderr.contains("must be logged in"), "{stderr}");
}

#[tokio::test]
async fn get_pods_watch_prints_changes_as_they_happen() {
    let api = TestApiServer::builder().objects_file(SMALL_CLUSTER).start().await.unwrap();
    let kubectl = Kubectl::new(&api);
    let in_team: Vec<String> =
        fixture_names("Pod").into_iter().filter_map(|p| p.strip_prefix("team/").map(String::from)).collect();
    assert!(!in_team.is_empty());

    let (_child, mut lines) = kubectl.spawn(&["get", "pods", "-n", "team", "-w", "--output-watch-events"]);
    let mut next_line = async || -> (String, String) {
        let line =
            within("a line from kubectl get -w", lines.next_line()).await.unwrap().expect("kubectl kept running");
        let columns: Vec<_> = line.split_whitespace().map(String::from).collect();
        (columns[0].clone(), columns[1].clone())
    };
    assert_eq!(next_line().await, ("EVENT".into(), "NAME".into()));
    let mut initial = BTreeSet::new();
    for _ in 0..in_team.len() {
        let (event, name) = next_line().await;
        assert_eq!(event, "ADDED");
        initial.insert(name);
    }
    assert_eq!(initial, in_team.iter().cloned().collect());
    // kubectl lists, then watches from the list's resourceVersion; change things once it does.
    let watching = |log: &[clusterdns_test_apiserver::RequestRecord]| {
        log.iter().any(|r| r.path == "/api/v1/namespaces/team/pods" && r.query.contains("watch=true"))
    };
    assert!(api.wait_for_requests(watching, WAIT).await);

    api.apply(pod("team", "fresh", "10.128.9.1", "node-1")).unwrap();
    assert_eq!(next_line().await, ("ADDED".into(), "fresh".into()));
    api.apply(pod("team", "fresh", "10.128.9.2", "node-1")).unwrap();
    assert_eq!(next_line().await, ("MODIFIED".into(), "fresh".into()));
    api.apply(pod("elsewhere", "unseen", "10.128.9.3", "node-1")).unwrap();
    api.delete(Kind::Pod, "team", &in_team[0]).unwrap();
    assert_eq!(next_line().await, ("DELETED".into(), in_team[0].clone()), "a pod in another namespace is not shown");
}
