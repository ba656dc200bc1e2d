//! A pod's-eye view: clusterdns run as `deploy/`'s Deployment runs it, resolved through by the
//! clients a pod has.
//!
//! The test builds its own small cluster out of network namespaces:
//!
//! ```text
//!  pod netns                 node netns                                upstream netns
//!  10.253.0.2  <-- veth -->  10.253.0.1   clusterdns :53, 8080, 8181, 9153
//!  resolv.conf as kubelet                 the test API server 127.0.0.1  10.253.1.1 <-- veth --> 10.253.1.2
//!  writes it                              /etc/resolv.conf -> 10.253.1.2                           example.test
//! ```
//!
//! clusterdns runs with the Deployment's args and the ConfigMap's Corefile, unchanged, laid out
//! as kubelet lays out a ConfigMap volume at `/etc/coredns`, with the service account's token and
//! CA where a pod has them, `KUBERNETES_SERVICE_HOST`/`_PORT` in its environment, the node's
//! resolv.conf (`dnsPolicy: Default`), uid 65532 with only `NET_BIND_SERVICE`. The API server is
//! the tests' own (`tests/apiserver`), the upstream the project's own server with `hosts`.
//! Real clients in the pod netns then resolve through it: libc (`getent`), `nslookup`,
//! `dig +search`, `kdig` over TCP. It needs root (network and mount namespaces).

mod common;

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use clusterdns_test_apiserver::{ClusterObject, TestApiServer};
use serde_json::json;

const NODE: Ipv4Addr = Ipv4Addr::new(10, 253, 0, 1);
const POD: Ipv4Addr = Ipv4Addr::new(10, 253, 0, 2);
const UPSTREAM: Ipv4Addr = Ipv4Addr::new(10, 253, 1, 2);

/// A network namespace of the test's own, deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new(name: String) -> Netns {
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        run(ns.cmd("ip").args(["link", "set", "lo", "up"]));
        ns
    }

    /// `program` run inside the namespace (`ip netns exec`, which also bind-mounts
    /// `/etc/netns/NAME/*` over `/etc`).
    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs `f` on a thread that has entered the namespace: sockets it opens live there.
    fn within<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: setns on a valid namespace file descriptor, for this thread only.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
        let _ = fs::remove_dir_all(format!("/etc/netns/{}", self.name));
    }
}

fn run(c: &mut Command) -> Output {
    let out = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert!(
        out.status.success(),
        "{c:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A veth pair from `a` (address `a_ip`) to `b` (`b_ip`), both /24.
fn veth(a: &Netns, a_ip: Ipv4Addr, b: &Netns, b_ip: Ipv4Addr, tag: &str, id: &str) {
    let (ea, eb) = (format!("cd{tag}a{id}"), format!("cd{tag}b{id}"));
    run(Command::new("ip").args(["link", "add", &ea, "type", "veth", "peer", "name", &eb]));
    run(Command::new("ip").args(["link", "set", &ea, "netns", &a.name]));
    run(Command::new("ip").args(["link", "set", &eb, "netns", &b.name]));
    for (ns, dev, ip) in [(a, &ea, a_ip), (b, &eb, b_ip)] {
        run(ns.cmd("ip").args(["addr", "add", &format!("{ip}/24"), "dev", dev]));
        run(ns.cmd("ip").args(["link", "set", dev, "up"]));
    }
}

/// The three namespaces, wired.
struct Cluster {
    pod: Netns,
    node: Netns,
    upstream: Netns,
}

impl Cluster {
    fn new() -> Cluster {
        // Unique on the machine: this process, and this test within it (interface names have
        // at most 15 bytes).
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("{}x{n}", std::process::id() % 100_000);
        let c = Cluster {
            pod: Netns::new(format!("cdns-pod-{id}")),
            node: Netns::new(format!("cdns-node-{id}")),
            upstream: Netns::new(format!("cdns-up-{id}")),
        };
        veth(&c.node, NODE, &c.pod, POD, "p", &id);
        veth(&c.node, Ipv4Addr::new(10, 253, 1, 1), &c.upstream, UPSTREAM, "u", &id);
        // The resolv.conf kubelet writes for a pod in namespace `default` (ClusterFirst), with
        // clusterdns as the nameserver, as the kube-dns Service's address would reach it.
        let etc = PathBuf::from(format!("/etc/netns/{}", c.pod.name));
        fs::create_dir_all(&etc).unwrap();
        fs::write(
            etc.join("resolv.conf"),
            format!(
                "search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver {NODE}\noptions ndots:5\n"
            ),
        )
        .unwrap();
        c
    }
}

/// The Deployment's container, as a process in the node netns: the ConfigMap's Corefile in a
/// kubelet volume layout at `/etc/coredns`, the node's resolv.conf, the service account.
struct Container {
    child: Child,
    stage: tempfile::TempDir,
}

impl Container {
    fn start(node: &Netns, corefile: &str, api: &TestApiServer, args: &[String]) -> Container {
        let stage = tempfile::Builder::new().prefix("cdns-pod").tempdir().unwrap();
        let s = stage.path();
        // kubelet's ConfigMap volume: a timestamped directory, `..data` pointing at it, and the
        // key as a link through `..data`.
        let data = s.join("etc/coredns/..2026_12_04_00_00_00.000000001");
        fs::create_dir_all(&data).unwrap();
        fs::write(data.join("Corefile"), corefile).unwrap();
        std::os::unix::fs::symlink("..2026_12_04_00_00_00.000000001", s.join("etc/coredns/..data")).unwrap();
        std::os::unix::fs::symlink("..data/Corefile", s.join("etc/coredns/Corefile")).unwrap();
        fs::write(s.join("etc/resolv.conf"), format!("nameserver {UPSTREAM}\n")).unwrap();
        let sa = s.join("sa");
        fs::create_dir_all(&sa).unwrap();
        fs::write(sa.join("token"), api.token()).unwrap();
        fs::write(sa.join("ca.crt"), api.ca_pem().expect("an HTTPS API server")).unwrap();
        fs::write(sa.join("namespace"), "kube-system").unwrap();
        chmod_readable(s);

        let bin = env!("CARGO_BIN_EXE_clusterdns");
        // A private /etc and /run (ip netns exec gave the process its own mount namespace), then
        // the binary as uid 65532 with NET_BIND_SERVICE alone, as the securityContext asks.
        let script = format!(
            "set -e; mount -t tmpfs -o mode=0755 tmpfs /etc; mount -t tmpfs -o mode=0755 tmpfs /run; \
             cp -a {s}/etc/. /etc/; mkdir -p /run/secrets/kubernetes.io/serviceaccount; \
             cp -a {s}/sa/. /run/secrets/kubernetes.io/serviceaccount/; \
             exec setpriv --reuid 65532 --regid 65532 --clear-groups --inh-caps -all,+net_bind_service \
             --ambient-caps +net_bind_service --bounding-set -all,+net_bind_service {bin} \"$@\"",
            s = s.display()
        );
        let log = fs::File::create(s.join("log")).unwrap();
        let child = node
            .cmd("sh")
            .arg("-c")
            .arg(script)
            .arg("clusterdns")
            .args(args)
            .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
            .env("KUBERNETES_SERVICE_PORT", api.addr().port().to_string())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Container { child, stage }
    }

    /// What it printed, stdout and stderr.
    fn log(&self) -> String {
        fs::read_to_string(self.stage.path().join("log")).unwrap_or_default()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process killed on drop, with the directory it runs from (removed after).
struct Killed(Child, #[allow(dead_code)] tempfile::TempDir);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Everyone may read the staged files (the server runs as 65532).
fn chmod_readable(dir: &Path) {
    run(Command::new("chmod").args(["-R", "a+rX"]).arg(dir));
}

/// The ConfigMap's Corefile and the container's args, from `deploy/`.
fn deployment() -> (String, Vec<String>) {
    let read = |f: &str| -> serde_json::Value {
        let text = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy").join(f)).unwrap();
        serde_yaml_ng::from_str(&text).unwrap()
    };
    let corefile = read("configmap.yaml")["data"]["Corefile"].as_str().unwrap().to_string();
    let args = read("deployment.yaml")["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    (corefile, args)
}

/// The cluster's objects: `web` (ClusterIP, port http) and the `kubernetes` Service in
/// `default`; a headless `db` StatefulSet of two in `apps`.
fn objects() -> Vec<serde_json::Value> {
    let ns = |name: &str| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    let svc = |ns: &str, name: &str, ip: &str, port: i32| {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
               "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip],
                        "ports": [{"name": "http", "port": port, "protocol": "TCP"}]}})
    };
    let slice = |ns: &str, svc: &str, endpoints: serde_json::Value| {
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
               "metadata": {"name": format!("{svc}-abcde"), "namespace": ns,
                            "labels": {"kubernetes.io/service-name": svc}},
               "addressType": "IPv4", "endpoints": endpoints,
               "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]})
    };
    let member = |ip: &str, host: &str| json!({"addresses": [ip], "hostname": host, "conditions": {"ready": true}});
    vec![
        ns("default"),
        ns("apps"),
        svc("default", "kubernetes", "10.96.0.1", 443),
        svc("default", "web", "10.96.1.1", 80),
        slice("default", "web", json!([{"addresses": ["10.244.2.5"], "conditions": {"ready": true}}])),
        svc("apps", "db", "None", 5432),
        slice("apps", "db", json!([member("10.244.1.5", "db-0"), member("10.244.1.6", "db-1")])),
    ]
}

/// A UDP query for `name` A from the pod netns; the rcode and the A records, or None on timeout.
fn ask(name: &str) -> Option<(u8, Vec<Ipv4Addr>)> {
    let q = common::query_message(name, hickory_proto::rr::RecordType::A).to_vec().unwrap();
    let s = UdpSocket::bind((POD, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    s.send_to(&q, SocketAddr::from((NODE, 53))).unwrap();
    let mut buf = [0u8; 1500];
    let n = s.recv(&mut buf).ok()?;
    let m = hickory_proto::op::Message::from_vec(&buf[..n]).ok()?;
    let ips = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            hickory_proto::rr::RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    Some((u16::from(m.metadata.response_code) as u8, ips))
}

/// The HTTP status of GET `path`, None while nothing listens.
fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).ok()?;
    reply.split(' ').nth(1)?.parse().ok()
}

fn output(c: &mut Command) -> String {
    let out = c.output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Everything else is one cluster: the namespaces, the API server, the upstream, and the
/// Deployment's container, ready.
struct Setup {
    cluster: Cluster,
    api: TestApiServer,
    _api_rt: tokio::runtime::Runtime,
    _upstream: Killed,
    container: Container,
    corefile: String,
    args: Vec<String>,
}

fn setup() -> Setup {
    assert!(
        unsafe { libc::geteuid() } == 0,
        "the pod's-eye test needs root for its network and mount namespaces (CI runs as root)"
    );
    let cluster = Cluster::new();
    // The API server in the node netns: its runtime's threads start from a thread in there.
    let (api, api_rt) = cluster.node.within(|| {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let api = rt.block_on(TestApiServer::builder().start()).unwrap();
        (api, rt)
    });
    for o in objects() {
        api.apply(ClusterObject::from_json(o).unwrap()).unwrap();
    }
    // The upstream: the project's own server answering example.test, in its own netns.
    let up_dir = tempfile::tempdir().unwrap();
    fs::write(
        up_dir.path().join("Corefile"),
        format!(
            "example.test:53 {{\n    bind {UPSTREAM}\n    hosts {{\n        192.0.2.10 www.example.test\n    }}\n}}\n"
        ),
    )
    .unwrap();
    let upstream = Killed(
        cluster
            .upstream
            .cmd(env!("CARGO_BIN_EXE_clusterdns"))
            .arg("-conf")
            .arg(up_dir.path().join("Corefile"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        up_dir,
    );
    let (corefile, args) = deployment();
    let container = Container::start(&cluster.node, &corefile, &api, &args);
    let ready = cluster.pod.within(|| {
        common::eventually(Duration::from_secs(15), || {
            (http_status(SocketAddr::from((NODE, 8181)), "/ready") == Some(200)).then_some(())
        })
    });
    assert!(ready.is_some(), "not ready within 15 s:\n{}", container.log());
    Setup { cluster, api, _api_rt: api_rt, _upstream: upstream, container, corefile, args }
}

#[test]
fn a_pod_resolves_through_clusterdns_as_through_coredns() {
    let s = setup();
    let pod = &s.cluster.pod;

    // libc, with kubelet's search path and ndots:5.
    let hosts = output(pod.cmd("getent").args(["hosts", "web"]));
    assert!(hosts.starts_with("10.96.1.1 "), "getent hosts web: {hosts}");
    let hosts = output(pod.cmd("getent").args(["ahosts", "db.apps"]));
    assert!(hosts.contains("10.244.1.5") && hosts.contains("10.244.1.6"), "getent ahosts db.apps: {hosts}");
    let hosts = output(pod.cmd("getent").args(["hosts", "db-0.db.apps"]));
    assert!(hosts.starts_with("10.244.1.5 "), "a StatefulSet member: {hosts}");
    let hosts = output(pod.cmd("getent").args(["hosts", "kubernetes.default"]));
    assert!(hosts.starts_with("10.96.0.1 "), "getent hosts kubernetes.default: {hosts}");
    // An external name: three search names NXDOMAIN from the cluster zone, then forwarded.
    let hosts = output(pod.cmd("getent").args(["hosts", "www.example.test"]));
    assert!(hosts.starts_with("192.0.2.10 "), "an external name through the search path: {hosts}");
    let missing = pod.cmd("getent").args(["hosts", "nosuch"]).status().unwrap();
    assert_eq!(missing.code(), Some(2), "a name that is nowhere is not found");

    // nslookup and dig with the search path, kdig over TCP.
    let out = output(pod.cmd("nslookup").arg("web"));
    assert!(out.contains("web.default.svc.cluster.local") && out.contains("10.96.1.1"), "nslookup web: {out}");
    let out = output(pod.cmd("dig").args(["+search", "+short", "web"]));
    assert_eq!(out.trim(), "10.96.1.1", "dig +search web");
    let out = output(pod.cmd("kdig").args(["+tcp", "+short", &format!("@{NODE}"), "db-1.db.apps.svc.cluster.local"]));
    assert_eq!(out.trim(), "10.244.1.6", "kdig +tcp");
    let out = output(pod.cmd("dig").args(["+short", "_http._tcp.web.default.svc.cluster.local", "SRV"]));
    assert_eq!(out.trim(), "0 100 80 web.default.svc.cluster.local.", "SRV");
    let out = output(pod.cmd("dig").args(["+short", "-x", "10.96.1.1"]));
    assert_eq!(out.trim(), "web.default.svc.cluster.local.", "PTR");
    let out = output(pod.cmd("dig").args(["+short", "-x", "10.244.1.5"]));
    assert_eq!(out.trim(), "db-0.db.apps.svc.cluster.local.", "PTR of a headless member");

    // The metrics port the Service names answers with CoreDNS's metrics.
    let metrics = pod.within(|| common::http_get(SocketAddr::from((NODE, 9153)), "/metrics"));
    assert_eq!(metrics.0, 200);
    assert!(metrics.1.contains("coredns_dns_requests_total"), "{}", metrics.1);
    let health = pod.within(|| common::http_get(SocketAddr::from((NODE, 8080)), "/health"));
    assert_eq!(health.0, 200);
}

/// Two instances behind one address (SO_REUSEPORT), one stopped with SIGTERM while a pod
/// queries in a bounded loop: no query goes unanswered. The client asks again once after a
/// second without an answer, as libc does (after its 5 s): a datagram queued on the stopping
/// instance's socket in the instant it closes is the kernel's to drop, and only a retry sees it.
#[test]
fn a_rolling_restart_loses_no_query() {
    let s = setup();
    let second = Container::start(&s.cluster.node, &s.corefile, &s.api, &s.args);
    // Both serve: the second prints its banner once its listeners are bound (its ready port is
    // shared with the first, so /ready cannot tell them apart).
    let both = common::eventually(Duration::from_secs(15), || second.log().contains("clusterdns-").then_some(()));
    assert!(both.is_some(), "the second instance did not start:\n{}", second.log());
    // And both have their index: 100 answers in a row, each from a new source port, which
    // SO_REUSEPORT hashes across the two.
    let warm = s.cluster.pod.within(|| {
        common::eventually(Duration::from_secs(15), || {
            (0..100)
                .all(|_| matches!(ask("web.default.svc.cluster.local"), Some((0, ips)) if !ips.is_empty()))
                .then_some(())
        })
    });
    assert!(warm.is_some(), "the two instances did not both answer:\n{}", second.log());
    let first = &s.container;
    let pid = first.child.id() as i32;
    let (answered, retried, failed, after_exit) = s.cluster.pod.within(move || {
        let (mut answered, mut retried, mut failed, mut after_exit) = (0u32, 0u32, Vec::new(), None);
        let start = Instant::now();
        // Until a thousand queries after the first instance has exited (its lameduck, 5 s in
        // kubeadm's Corefile, then its drain), bounded by a minute.
        for i in 0u32.. {
            if i == 1000 {
                // SAFETY: kill on our own child's pid.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            if after_exit.is_none() && i > 1000 && exited(pid) {
                after_exit = Some(i);
            }
            if after_exit.is_some_and(|at| i >= at + 1000) || start.elapsed() > Duration::from_secs(60) {
                break;
            }
            let reply = ask("web.default.svc.cluster.local").or_else(|| {
                retried += 1;
                ask("web.default.svc.cluster.local")
            });
            match reply {
                Some((0, ips)) if ips == [Ipv4Addr::new(10, 96, 1, 1)] => answered += 1,
                other => failed.push((i, other)),
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        (answered, retried, failed, after_exit)
    });
    eprintln!(
        "rolling restart: {answered} answered, {retried} asked twice, {} failed; first instance gone after query {after_exit:?}",
        failed.len()
    );
    assert!(after_exit.is_some(), "the first instance did not exit within the loop:\n{}", first.log());
    assert!(failed.is_empty(), "{answered} answered, {} failed: {:?}", failed.len(), &failed[..failed.len().min(10)]);
}

/// Whether `pid` has exited (gone, or a zombie waiting to be reaped).
fn exited(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

/// kubelet updates the ConfigMap volume (a new timestamped directory, `..data` swapped to it):
/// the pod is answered by the new Corefile within two seconds.
#[test]
fn a_configmap_update_is_served_within_two_seconds() {
    let s = setup();
    let edited = s.corefile.replacen(
        "    ready\n",
        "    ready\n    hosts {\n        10.9.9.9 swapped.example.test\n        fallthrough\n    }\n",
        1,
    );
    assert_ne!(edited, s.corefile, "the ConfigMap's Corefile has a `ready` line to insert after");
    let staged = s.container.stage.path().join("Corefile.new");
    fs::write(&staged, &edited).unwrap();
    chmod_readable(s.container.stage.path());
    let before = s.cluster.pod.within(|| ask("swapped.example.test"));
    assert!(matches!(before, Some((rcode, _)) if rcode != 0 || before.as_ref().unwrap().1.is_empty()), "{before:?}");

    // As kubelet's atomic writer does it, inside the container's mount namespace.
    let swap = format!(
        "set -e; cd /etc/coredns; mkdir ..2026_12_04_00_01_00.000000002; \
         cp {} ..2026_12_04_00_01_00.000000002/Corefile; chmod -R a+rX ..2026_12_04_00_01_00.000000002; \
         ln -s ..2026_12_04_00_01_00.000000002 ..data_tmp; mv -T ..data_tmp ..data; \
         rm -rf ..2026_12_04_00_00_00.000000001",
        staged.display()
    );
    let pid = s.container.child.id().to_string();
    let swapped = Instant::now();
    run(Command::new("nsenter").args(["--target", &pid, "--mount", "--", "sh", "-c", &swap]));
    let served = s.cluster.pod.within(move || {
        common::eventually(Duration::from_secs(10), || match ask("swapped.example.test") {
            Some((0, ips)) if ips == [Ipv4Addr::new(10, 9, 9, 9)] => Some(swapped.elapsed()),
            _ => None,
        })
    });
    let served = served.unwrap_or_else(|| panic!("the new Corefile is not served:\n{}", s.container.log()));
    eprintln!("ConfigMap swap to the new Corefile answering: {served:?}");
    assert!(served < Duration::from_secs(2), "{served:?}");
    // And the rest of the Corefile still answers as before.
    assert_eq!(
        s.cluster.pod.within(|| ask("web.default.svc.cluster.local")),
        Some((0, vec![Ipv4Addr::new(10, 96, 1, 1)]))
    );
}

/// Not a check but a measurement, run by hand (`cargo test --release --test pod_eye -- --ignored
/// --nocapture`): the latency a pod sees through libc (`getaddrinfo`, AF_UNSPEC as applications
/// call it, kubelet's search path and ndots:5) for a service's short name and for an external
/// name, from clusterdns and then from unbound serving the same names at the same address.
#[test]
#[ignore]
fn latency_through_libc_against_unbound() {
    let s = setup();
    let script = "import socket, sys, time\n\
        for name in sys.argv[1:]:\n\
        \x20   socket.getaddrinfo(name, None)\n\
        \x20   lat = []\n\
        \x20   for _ in range(2000):\n\
        \x20       t = time.perf_counter(); socket.getaddrinfo(name, None); lat.append((time.perf_counter() - t) * 1e6)\n\
        \x20   lat.sort()\n\
        \x20   print(f'{name}: p50 {lat[len(lat)//2]:.0f} us, p99 {lat[len(lat)*99//100]:.0f} us')\n";
    let measure = |who: &str| {
        let out = output(s.cluster.pod.cmd("python3").args(["-c", script, "web", "www.example.test"]));
        eprintln!("{who}:\n{out}");
    };
    measure("clusterdns");
    drop(s.container);

    // unbound at the same address: the cluster names as local data, the rest forwarded to the
    // same upstream; its cache answers the external name after the first query, as
    // clusterdns's does.
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("unbound.conf");
    fs::write(
        &conf,
        format!(
            "server:\n  interface: {NODE}\n  port: 53\n  access-control: 10.253.0.0/16 allow\n  chroot: \"\"\n  \
             username: \"\"\n  directory: \"{d}\"\n  pidfile: \"\"\n  use-syslog: no\n  num-threads: 1\n  \
             module-config: \"iterator\"\n  do-not-query-localhost: no\n  \
             local-zone: \"test.\" nodefault\n  local-zone: \"cluster.local.\" static\n  \
             local-data: \"web.default.svc.cluster.local. 30 IN A 10.96.1.1\"\n\
             forward-zone:\n  name: \".\"\n  forward-addr: {UPSTREAM}\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    let _unbound = Killed(
        s.cluster
            .node
            .cmd("unbound")
            .args(["-d", "-c"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        dir,
    );
    let up =
        s.cluster.pod.within(|| common::eventually(Duration::from_secs(10), || ask("web.default.svc.cluster.local")));
    assert!(up.is_some(), "unbound did not answer");
    measure("unbound");
}
