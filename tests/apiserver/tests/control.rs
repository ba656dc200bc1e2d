//! The control endpoint, as another process drives it: plain HTTP requests that inject faults
//! and change objects while clients watch over HTTPS.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use clusterdns_test_apiserver::{Kind, TestApiServer};
use common::*;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams};
use kube::runtime::watcher::{self, Event};

/// One HTTP/1.1 request; (status, body).
fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// `request` from a blocking thread, so the server's runtime goes on serving.
async fn control(addr: SocketAddr, method: &'static str, path: &'static str, body: String) -> (u16, serde_json::Value) {
    let (status, body) = tokio::task::spawn_blocking(move || request(addr, method, path, &body)).await.unwrap();
    let json = serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{body}: {e}"));
    (status, json)
}

const ONE_SERVICE: &str = r#"{"Service": [{"apiVersion": "v1", "kind": "Service",
  "metadata": {"name": "web", "namespace": "apps"},
  "spec": {"clusterIP": "10.96.0.12", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}]}"#;

#[tokio::test]
async fn objects_are_applied_and_deleted_from_another_process() {
    let api = TestApiServer::builder().control(([127, 0, 0, 1], 0).into()).start().await.unwrap();
    let addr = api.control_addr().unwrap();
    let services: Api<Service> = Api::all(api.kube_client().await.unwrap());

    let (status, json) = control(addr, "POST", "/apply", ONE_SERVICE.into()).await;
    assert_eq!((status, &json["applied"]), (200, &serde_json::json!(1)), "{json}");
    let listed = services.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items[0].metadata.name.as_deref(), Some("web"));

    let (status, json) = control(addr, "GET", "/status", String::new()).await;
    assert_eq!((status, &json["objects"]["Service"]), (200, &serde_json::json!(1)), "{json}");

    let (status, json) = control(addr, "POST", "/delete", ONE_SERVICE.into()).await;
    assert_eq!((status, &json["deleted"]), (200, &serde_json::json!(1)), "{json}");
    assert_eq!(api.count(Kind::Service), 0);

    let (status, json) = control(addr, "POST", "/apply", "{\"Gadget\": []}".into()).await;
    assert_eq!(status, 400, "{json}");
    let (status, _) = control(addr, "POST", "/nothing", String::new()).await;
    assert_eq!(status, 404);
    let (status, _) = control(addr, "GET", "/compact", String::new()).await;
    assert_eq!(status, 405);
}

/// The faults a benchmark needs against a running DNS server: an outage, and a relist forced by
/// dropping watches, compacting and resuming.
#[tokio::test]
async fn faults_from_another_process() {
    let api = TestApiServer::builder().control(([127, 0, 0, 1], 0).into()).start().await.unwrap();
    let addr = api.control_addr().unwrap();
    api.apply_batch(services(3)).unwrap();
    let services: Api<Service> = Api::all(api.kube_client().await.unwrap());
    // kube retries 503s (15 times, backing off up to minutes); see the bare answer.
    let mut no_retry = api.kube_config().await.unwrap();
    no_retry.default_retry = false;
    let once: Api<Service> = Api::all(kube::Client::try_from(no_retry).unwrap());

    assert_eq!(control(addr, "POST", "/pause?mode=unavailable", String::new()).await.0, 200);
    let err = once.list(&ListParams::default()).await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 503), "{err:?}");
    assert_eq!(control(addr, "POST", "/resume", String::new()).await.0, 200);
    assert_eq!(services.list(&ListParams::default()).await.unwrap().items.len(), 3);

    // A watcher synced, then: hold, drop its watch, change, compact, resume: it relists.
    let mut events = watcher::watcher(services.clone(), watcher::Config::default()).boxed();
    until("InitDone", &mut events, |e| matches!(e, Ok(Event::InitDone))).await;
    for path in ["/pause?mode=hold", "/drop-watches"] {
        assert_eq!(control(addr, "POST", path, String::new()).await.0, 200);
    }
    control(addr, "POST", "/apply", ONE_SERVICE.into()).await;
    control(addr, "POST", "/compact", String::new()).await;
    control(addr, "POST", "/resume", String::new()).await;
    let seen = until("a relist", &mut events, |e| matches!(e, Ok(Event::InitDone))).await;
    assert!(seen.iter().any(|e| matches!(e, Ok(Event::Init))), "{seen:?}");

    assert_eq!(control(addr, "POST", "/latency?ms=20", String::new()).await.0, 200);
    let start = std::time::Instant::now();
    services.list(&ListParams::default()).await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(20));
    assert_eq!(control(addr, "POST", "/latency?ms=x", String::new()).await.0, 400);
    assert_eq!(control(addr, "POST", "/streaming-lists?mode=ignore", String::new()).await.0, 200);
    assert_eq!(control(addr, "POST", "/streaming-lists?mode=sometimes", String::new()).await.0, 400);
}

/// The binary's `--control-port`: the address it prints answers.
#[test]
fn the_binary_serves_the_control_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_clusterdns-apiserver"))
        .args(["--port", "0", "--control-port", "0", "--kubeconfig-out"])
        .arg(dir.path().join("kubeconfig"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stderr = child.stderr.take().unwrap();
    let _child = Kill(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.split("control endpoint on http://").nth(1) {
                let _ = tx.send(addr.trim().to_string());
            }
        }
    });
    let addr: SocketAddr = rx.recv_timeout(WAIT).expect("the control address is printed").parse().unwrap();
    let (status, body) = request(addr, "POST", "/apply", ONE_SERVICE);
    assert_eq!(status, 200, "{body}");
    let (_, body) = request(addr, "GET", "/status", "");
    assert!(body.contains("\"Service\":1"), "{body}");
}
