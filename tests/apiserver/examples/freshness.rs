//! Freshness: how long after the API server accepts a change clusterdns answers it, under a
//! steady rate of changes.
//!
//! ```sh
//! bench/gen-cluster --namespaces 20 --services 10000 --pods-per-service 3 --headless-fraction 0.1 \
//!     --externalname-fraction 0.05 --seed 1 --out /tmp/c10k
//! cargo build --release --bin clusterdns -p clusterdns -p clusterdns-test-apiserver --example freshness
//! taskset -c 1 target/release/examples/freshness --objects /tmp/c10k/objects.json --rate 1000 --seconds 20
//! ```
//!
//! The test API server runs in this process with the gen-cluster objects; clusterdns is started
//! (`taskset -c 0`, one core) with `errors`, `prometheus` and `kubernetes cluster.local in-addr.arpa
//! ip6.arpa { pods insecure; ttl 30 }` watching it. Once clusterdns has synced, `--rate` changes a
//! second for `--seconds`, taking turns among the kinds of `--changes` (default
//! `update,create,endpoints`): `update` gives a ClusterIP service of the cluster a new ClusterIP
//! (the answer for its name must be that address), `create` makes a new service with a new
//! ClusterIP, `endpoints` gives the first endpoint of a headless service's EndpointSlice a new
//! address (the answer for the service must include it). Each change is
//! timed from the moment the server's store accepted it (its watchers are woken then) to the first
//! UDP answer from clusterdns that carries the new address; every outstanding change is asked
//! again every `--poll-us` (default 1000 µs, so the figures are up to that much late). A change not
//! answered within `--timeout-ms` counts as missed. Reports p50/p90/p99/max and clusterdns's CPU.
//!
//! `--dns 127.0.0.1:PORT --kubeconfig-out PATH` measures a server started by hand instead
//! (`kubeconfig PATH` in its Corefile; the run waits for it to answer).

use std::collections::{HashMap, HashSet};
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clusterdns_test_apiserver::{ClusterObject, TestApiServer};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::{EndpointConditions, EndpointSlice};
use serde_json::value::RawValue;

struct Args {
    objects: PathBuf,
    clusterdns: PathBuf,
    dns: Option<SocketAddr>,
    kubeconfig_out: Option<PathBuf>,
    port: u16,
    cpu: String,
    rate: u64,
    seconds: u64,
    poll: Duration,
    timeout: Duration,
    changes: Vec<ChangeKind>,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum ChangeKind {
    Update,
    Create,
    Endpoints,
}

impl ChangeKind {
    fn name(self) -> &'static str {
        match self {
            ChangeKind::Update => "update",
            ChangeKind::Create => "create",
            ChangeKind::Endpoints => "endpoints",
        }
    }
}

fn args() -> Args {
    let default_bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/release/clusterdns");
    let mut args = Args {
        objects: PathBuf::new(),
        clusterdns: default_bin,
        dns: None,
        kubeconfig_out: None,
        port: 5397,
        cpu: "0".to_owned(),
        rate: 1000,
        seconds: 20,
        poll: Duration::from_millis(1),
        timeout: Duration::from_millis(5000),
        changes: vec![ChangeKind::Update, ChangeKind::Create, ChangeKind::Endpoints],
    };
    let mut it = std::env::args().skip(1);
    let usage = "see the example's documentation (tests/apiserver/examples/freshness.rs)";
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value; {usage}"));
        let number = |v: String| v.parse::<u64>().unwrap_or_else(|_| panic!("{v:?} is not a number; {usage}"));
        match arg.as_str() {
            "--objects" => args.objects = value().into(),
            "--clusterdns" => args.clusterdns = value().into(),
            "--dns" => args.dns = Some(value().parse().expect("--dns takes IP:PORT")),
            "--kubeconfig-out" => args.kubeconfig_out = Some(value().into()),
            "--port" => args.port = number(value()) as u16,
            "--cpu" => args.cpu = value(),
            "--rate" => args.rate = number(value()).max(1),
            "--seconds" => args.seconds = number(value()).clamp(1, 600),
            "--poll-us" => args.poll = Duration::from_micros(number(value()).clamp(50, 100_000)),
            "--timeout-ms" => args.timeout = Duration::from_millis(number(value()).clamp(10, 60_000)),
            "--changes" => {
                args.changes = value()
                    .split(',')
                    .map(|k| match k {
                        "update" => ChangeKind::Update,
                        "create" => ChangeKind::Create,
                        "endpoints" => ChangeKind::Endpoints,
                        other => panic!("--changes takes update, create, endpoints; not {other:?}"),
                    })
                    .collect()
            }
            other => panic!("unknown argument {other:?}; {usage}"),
        }
    }
    assert!(!args.objects.as_os_str().is_empty(), "--objects FILE is required; {usage}");
    args
}

/// The ClusterIP services (no headless, no ExternalName) of a gen-cluster objects file, and the
/// EndpointSlices of its headless services.
fn cluster_objects(path: &PathBuf) -> (Vec<Service>, Vec<EndpointSlice>) {
    let text = std::fs::read_to_string(path).expect("read --objects");
    let kinds: HashMap<String, Vec<Box<RawValue>>> = serde_json::from_str(&text).expect("a gen-cluster objects file");
    let objects = |kind: &str| kinds.get(kind).map(|v| v.as_slice()).unwrap_or_default();
    let services: Vec<Service> = objects("Service")
        .iter()
        .map(|raw| serde_json::from_str::<Service>(raw.get()).expect("a Service"))
        .filter(|s| s.spec.as_ref().and_then(|s| s.type_.as_deref()).unwrap_or("ClusterIP") == "ClusterIP")
        .collect();
    let ip = |s: &Service| s.spec.as_ref().and_then(|s| s.cluster_ip.clone()).unwrap_or_default();
    let headless: HashSet<(String, String)> = services
        .iter()
        .filter(|s| ip(s) == "None")
        .map(|s| (s.metadata.namespace.clone().unwrap_or_default(), s.metadata.name.clone().unwrap_or_default()))
        .collect();
    let slices = objects("EndpointSlice")
        .iter()
        .map(|raw| serde_json::from_str::<EndpointSlice>(raw.get()).expect("an EndpointSlice"))
        .filter(|e| {
            let service = e.metadata.labels.as_ref().and_then(|l| l.get("kubernetes.io/service-name"));
            e.address_type == "IPv4"
                && e.endpoints.as_ref().is_some_and(|e| !e.is_empty())
                && service.is_some_and(|svc| {
                    headless.contains(&(e.metadata.namespace.clone().unwrap_or_default(), svc.clone()))
                })
        })
        .collect();
    let services = services.into_iter().filter(|s| ip(s).parse::<Ipv4Addr>().is_ok()).collect();
    (services, slices)
}

/// A change: the object to write, and the name and address clusterdns must then answer.
struct Change {
    kind: ChangeKind,
    object: ClusterObject,
    query: Vec<u8>,
    address: Ipv4Addr,
}

/// The address of the `i`th change: 172.16.0.0/12, which gen-cluster does not use.
fn new_address(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(172, 16, 0, 0)) + i as u32 + 1)
}

fn with_address(mut service: Service, address: Ipv4Addr) -> Service {
    let spec = service.spec.as_mut().expect("a ClusterIP service has a spec");
    spec.cluster_ip = Some(address.to_string());
    spec.cluster_ips = Some(vec![address.to_string()]);
    service.metadata.resource_version = None;
    service
}

fn changes(services: &[Service], slices: &[EndpointSlice], count: usize, kinds: &[ChangeKind]) -> Vec<Change> {
    (0..count)
        .map(|i| {
            let address = new_address(i);
            let kind = kinds[i % kinds.len()];
            // Each kind walks its own objects, so a run revisits an object as late as possible.
            let turn = i / kinds.len();
            let (object, namespace, name) = match kind {
                ChangeKind::Update | ChangeKind::Create => {
                    let mut service = services[turn % services.len()].clone();
                    if kind == ChangeKind::Create {
                        service.metadata.name = Some(format!("fresh-{i}"));
                        service.metadata.uid = None;
                        service.metadata.creation_timestamp = None;
                    }
                    let (ns, name) = (service.metadata.namespace.clone(), service.metadata.name.clone());
                    (ClusterObject::from(with_address(service, address)), ns, name)
                }
                ChangeKind::Endpoints => {
                    let mut slice = slices[turn % slices.len()].clone();
                    let first = &mut slice.endpoints.as_mut().expect("a slice with endpoints")[0];
                    first.addresses = vec![address.to_string()];
                    first.conditions = Some(EndpointConditions { ready: Some(true), ..Default::default() });
                    slice.metadata.resource_version = None;
                    let labels = slice.metadata.labels.as_ref();
                    let service = labels.and_then(|l| l.get("kubernetes.io/service-name")).cloned();
                    let ns = slice.metadata.namespace.clone();
                    (ClusterObject::from(slice), ns, service)
                }
            };
            let name = format!("{}.{}.svc.cluster.local", name.unwrap(), namespace.unwrap());
            Change { kind, object, query: query(&name), address }
        })
        .collect()
}

/// A DNS query for `name` A, with recursion desired and ID 0 (set when sent).
fn query(name: &str) -> Vec<u8> {
    let mut m = Message::new(0, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).expect("a DNS name"), RecordType::A));
    m.to_vec().expect("an encodable query")
}

/// The response's ID, rcode and A addresses.
fn parse(m: &[u8]) -> Option<(u16, ResponseCode, Vec<Ipv4Addr>)> {
    let m = Message::from_vec(m).ok()?;
    let addresses = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    Some((m.id, m.response_code, addresses))
}

/// Asks `name` A until the answer's rcode is one of `rcodes` or `limit` passes.
fn wait_for(socket: &UdpSocket, server: SocketAddr, name: &str, rcodes: &[ResponseCode], limit: Duration) -> bool {
    let started = Instant::now();
    let q = query(name);
    let mut buf = [0u8; 4096];
    while started.elapsed() < limit {
        let _ = socket.send_to(&q, server);
        let until = Instant::now() + Duration::from_millis(200);
        while Instant::now() < until {
            if let Ok(n) = socket.recv(&mut buf)
                && let Some((0, rcode, _)) = parse(&buf[..n])
                && rcodes.contains(&rcode)
            {
                return true;
            }
        }
    }
    false
}

/// utime + stime of a process, in clock ticks (100 a second on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    fields.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + fields.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

struct Outstanding {
    index: usize,
    accepted: Instant,
    last_sent: Option<Instant>,
}

/// Applies the changes at the rate and measures each; returns (latencies with the index of their
/// change, missed).
fn measure(
    api: &TestApiServer,
    socket: &UdpSocket,
    server: SocketAddr,
    changes: &[Change],
    args: &Args,
) -> (Vec<(Duration, usize)>, usize) {
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let mut outstanding: HashMap<u16, Outstanding> = HashMap::new();
    let mut latencies = Vec::with_capacity(changes.len());
    let mut missed = 0;
    let mut next = 0;
    let mut buf = [0u8; 4096];
    let started = Instant::now();
    socket.set_nonblocking(true).expect("a non-blocking socket");
    while next < changes.len() || !outstanding.is_empty() {
        let now = Instant::now();
        while next < changes.len() && started + interval * next as u32 <= now {
            api.apply(changes[next].object.clone()).expect("the store takes the object");
            let accepted = Instant::now();
            let id = (next % 65536) as u16;
            assert!(outstanding.insert(id, Outstanding { index: next, accepted, last_sent: None }).is_none());
            next += 1;
        }
        let now = Instant::now();
        outstanding.retain(|id, o| {
            if now - o.accepted > args.timeout {
                missed += 1;
                return false;
            }
            if o.last_sent.is_none_or(|t| now - t >= args.poll) {
                let mut q = changes[o.index].query.clone();
                q[..2].copy_from_slice(&id.to_be_bytes());
                let _ = socket.send_to(&q, server);
                o.last_sent = Some(now);
            }
            true
        });
        // Read answers until the next change or poll is due (at most the poll interval). The
        // socket does not block: a receive timeout (SO_RCVTIMEO) counts in jiffies, 4 ms here,
        // while a sleep is a high-resolution timer.
        let until = Instant::now() + interval.min(args.poll);
        loop {
            let idle = match socket.recv(&mut buf) {
                Ok(n) => {
                    let received = Instant::now();
                    if let Some((id, _, addresses)) = parse(&buf[..n])
                        && let Some(o) = outstanding.get(&id)
                        && addresses.contains(&changes[o.index].address)
                    {
                        latencies.push((received - o.accepted, o.index));
                        outstanding.remove(&id);
                    }
                    false
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => true,
                Err(e) => panic!("recv: {e}"),
            };
            let now = Instant::now();
            if now >= until {
                break;
            }
            if idle {
                std::thread::sleep((until - now).min(Duration::from_micros(100)));
            }
        }
    }
    (latencies, missed)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

struct Stop(Option<Child>);

impl Drop for Stop {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args();
    let (services, slices) = cluster_objects(&args.objects);
    assert!(!services.is_empty(), "no ClusterIP services in {}", args.objects.display());
    assert!(
        slices.len() >= 2 || !args.changes.contains(&ChangeKind::Endpoints),
        "no EndpointSlices of headless services in {} for --changes endpoints",
        args.objects.display()
    );
    let count = (args.rate * args.seconds) as usize;
    assert!(count <= 60_000, "at most 60,000 changes in a run (IDs must stay unique)");
    let changes = changes(&services, &slices, count, &args.changes);

    let mut builder = TestApiServer::builder();
    if let Some(path) = &args.kubeconfig_out {
        builder = builder.kubeconfig_path(path);
    }
    let api = builder.start().await?;
    let summary = api.load_objects_file(&args.objects).await?;
    eprintln!(
        "loaded {} objects; {} ClusterIP services, {} EndpointSlices of headless services",
        summary.total(),
        services.len(),
        slices.len()
    );

    let dir = tempfile::tempdir()?;
    let (server, child) = match args.dns {
        Some(addr) => (addr, Stop(None)),
        None => {
            let corefile = dir.path().join("Corefile");
            std::fs::write(
                &corefile,
                format!(
                    ".:{port} {{\n    bind 127.0.0.1\n    errors\n    prometheus 127.0.0.1:0\n    \
                     kubernetes cluster.local in-addr.arpa ip6.arpa {{\n        kubeconfig {kc}\n        \
                     pods insecure\n        ttl 30\n    }}\n}}\n",
                    port = args.port,
                    kc = api.kubeconfig_path().display()
                ),
            )?;
            let child = Command::new("taskset")
                .args(["-c", &args.cpu])
                .arg(&args.clusterdns)
                .arg("-conf")
                .arg(&corefile)
                .arg("-quiet")
                .stdout(Stdio::null())
                .spawn()?;
            (SocketAddr::from(([127, 0, 0, 1], args.port)), Stop(Some(child)))
        }
    };
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(Duration::from_millis(50)))?;
    // Synced: a name that does not exist is NXDOMAIN (SERVFAIL until every watch has synced).
    let started = Instant::now();
    if !wait_for(
        &socket,
        server,
        "absent-freshness.default.svc.cluster.local",
        &[ResponseCode::NXDomain],
        Duration::from_secs(120),
    ) {
        return Err(format!("{server} did not answer NXDOMAIN for an absent service within 120 s").into());
    }
    eprintln!("{server} synced after {:.2?}", started.elapsed());

    let pid = child.0.as_ref().map(Child::id);
    let (ticks, wall) = (pid.map(cpu_ticks), Instant::now());
    let (latencies, missed) = tokio::task::block_in_place(|| measure(&api, &socket, server, &changes, &args));
    let cpu = pid.zip(ticks).map(|(pid, t)| (cpu_ticks(pid) - t) as f64 / 100.0 / wall.elapsed().as_secs_f64());
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
    let kinds: Vec<&str> = args.changes.iter().map(|k| k.name()).collect();
    println!(
        "{} changes ({}) at {}/s for {} s: {} answered, {} missed (no answer within {}); poll every {}",
        changes.len(),
        kinds.join(","),
        args.rate,
        args.seconds,
        latencies.len(),
        missed,
        ms(args.timeout),
        ms(args.poll)
    );
    let line = |what: &str, kind: Option<ChangeKind>| {
        let mut of: Vec<Duration> =
            latencies.iter().filter(|(_, i)| kind.is_none_or(|k| changes[*i].kind == k)).map(|(d, _)| *d).collect();
        of.sort();
        println!(
            "{what:<10} change accepted -> new answer ({} answered): p50 {}  p90 {}  p99 {}  max {}",
            of.len(),
            ms(percentile(&of, 0.50)),
            ms(percentile(&of, 0.90)),
            ms(percentile(&of, 0.99)),
            ms(percentile(&of, 1.0)),
        );
    };
    line("all", None);
    if args.changes.len() > 1 {
        for &kind in &args.changes {
            line(kind.name(), Some(kind));
        }
    }
    if let Some(cpu) = cpu {
        println!("clusterdns CPU during the changes: {:.0} %", cpu * 100.0);
    }
    drop(child);
    Ok(())
}
