//! The running server: listeners, the configuration they serve, reload and shutdown.
//!
//! A configuration is applied in three steps, and only the last is visible to queries:
//!
//! 1. **plan** ([`config::plan`]): parse every directive; nothing is opened.
//! 2. **build aside**: bind the listen addresses that are new, build every block's plugins
//!    (reading files, registering HTTP endpoints, spawning their tasks) and the zone table of
//!    every listener. Any error drops everything built so far and leaves the running
//!    configuration untouched.
//! 3. **swap**: each listener whose address is unchanged atomically switches to its new zone
//!    table (its sockets never close, so no query is lost); new listeners start; listeners no
//!    longer configured stop after finishing their batch; HTTP listeners switch routes likewise;
//!    the old configuration's tasks end.
//!
//! Reload, as CoreDNS does it: SIGUSR1 re-reads and applies the Corefile whatever it holds; with
//! the *reload* plugin the server also checks the file every interval and applies it when the
//! SHA-512 of its parse differs from the last one tried. A Corefile that does not parse is a
//! warning and is retried at the next check; one that parses but cannot be built or bound is a
//! failed reload (`coredns_reload_failed_total`), logged with every error's position, and is not
//! retried until it changes again. Either way the running configuration goes on serving.
//!
//! Shutdown (SIGTERM, SIGINT): `/ready` turns 503 at once, queries are answered for the lameduck
//! period (`health { lameduck }`), then listeners stop and in-flight queries get up to 5 s to
//! finish. No reload starts once shutdown has begun.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use sha2::{Digest, Sha512};
use socket2::Socket;
use tokio::sync::{Mutex, Notify, OnceCell, watch};
use tokio::time::Instant;

use crate::corefile::{self, Corefile, Directive, Error, Errors, Pos, Token, Transport, format_duration};
use crate::metrics::dns::DnsMetrics;
use crate::metrics::{Counter, Family, Gauge, Registry};
use crate::plugin::setup::{Contributions, ReloadSettings};

pub mod build;
pub mod config;
pub mod dispatch;
pub mod http;
pub mod lifecycle;
pub mod panic;
mod tcp;
pub mod tls;
mod udp;

use dispatch::ZoneTable;
use http::{HttpAddr, HttpListener, Routes};
use lifecycle::Lifecycle;

/// How long shutdown waits for queries still being answered.
const GRACE: Duration = Duration::from_secs(5);

/// Where the configuration comes from and the command-line settings that shape it.
#[derive(Clone, Debug)]
pub struct Options {
    /// The Corefile; `None` means `./Corefile` if it exists, else CoreDNS's default
    /// configuration (whoami and log for every name).
    pub conf: Option<PathBuf>,
    /// The port of keys that name none (`-dns.port`).
    pub dns_port: u16,
    /// Do not print the startup banner (`-quiet`).
    pub quiet: bool,
    /// UDP worker threads per listener; `None` means one per CPU the process may run on.
    pub udp_workers: Option<usize>,
    /// Listen on 127.0.0.1 with an ephemeral port wherever the Corefile says to listen (DNS and
    /// HTTP alike), each configured address keeping its own listener. For tests, which start
    /// Corefiles written for production (`.:53`, `health :8080`) side by side.
    pub loopback_ephemeral: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options { conf: None, dns_port: 53, quiet: false, udp_workers: None, loopback_ephemeral: false }
    }
}

/// Why a configuration could not be started or reloaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Invalid(#[from] Errors),
}

impl From<Error> for ConfigError {
    fn from(e: Error) -> ConfigError {
        ConfigError::Invalid(Errors(vec![e]))
    }
}

/// A listen address of DNS: transport, host (`None` for every address) and port.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenKey {
    pub transport: Transport,
    pub host: Option<IpAddr>,
    pub port: u16,
}

/// The server label of metrics, as CoreDNS writes it: `dns://:53`, `dns://127.0.0.1:53`,
/// `dns://[::1]:53`.
fn server_label(transport: Transport, host: Option<IpAddr>, port: u16) -> String {
    match host {
        None => format!("{}://:{port}", transport.scheme()),
        Some(IpAddr::V6(ip)) => format!("{}://[{ip}]:{port}", transport.scheme()),
        Some(IpAddr::V4(ip)) => format!("{}://{ip}:{port}", transport.scheme()),
    }
}

/// Counts queries and connections still being served, for graceful shutdown.
#[derive(Default)]
pub struct InFlight {
    n: AtomicUsize,
    idle: Notify,
}

/// Held while a query or connection is being served.
pub struct InFlightGuard(Arc<InFlight>);

impl InFlight {
    pub fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.n.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(self.clone())
    }

    async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.n.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.n.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Sockets bound for a listen address, not yet serving.
struct Bound {
    local: SocketAddr,
    udp: Vec<Socket>,
    tcp: std::net::TcpListener,
}

/// A serving DNS listener.
struct Listener {
    local: SocketAddr,
    table: Arc<ArcSwap<ZoneTable>>,
    workers: udp::Workers,
    tcp_stop: watch::Sender<bool>,
    tcp: tokio::task::JoinHandle<()>,
}

impl Listener {
    async fn stop(self) {
        let _ = self.tcp_stop.send(true);
        let workers = self.workers;
        let _ = tokio::task::spawn_blocking(move || workers.stop()).await;
        let _ = self.tcp.await;
    }
}

/// What the running configuration holds besides its listeners.
struct Generation {
    _contributions: Contributions,
    lameduck: Duration,
    /// How often to check the Corefile for changes (the reload plugin's interval moved by its
    /// jitter, drawn once per configuration as CoreDNS does); `None` without the plugin.
    reload_every: Option<Duration>,
}

struct State {
    dns: BTreeMap<ListenKey, Listener>,
    http: BTreeMap<HttpAddr, HttpListener>,
    generation: Option<Generation>,
    /// SHA-512 of the parse of the Corefile last tried (applied, or failed to apply after a
    /// change), which the reload check compares the file against.
    tried: String,
    /// Set once shutdown began: no more reloads.
    stopping: bool,
}

struct Inner {
    opts: Options,
    registry: Arc<Registry>,
    dns_metrics: Arc<DnsMetrics>,
    lifecycle: Arc<Lifecycle>,
    inflight: Arc<InFlight>,
    threads: Arc<AtomicUsize>,
    reload_failed: Arc<Family<Counter>>,
    reload_version: Arc<Family<Gauge>>,
    state: Mutex<State>,
    /// Set when shutdown has finished; later callers of `shutdown` wait on it.
    stopped: OnceCell<()>,
    rt: tokio::runtime::Handle,
}

/// How [`Server::run_until_signal`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// SIGTERM or SIGINT, then a graceful shutdown.
    Gracefully,
    /// A second SIGINT during the graceful shutdown.
    Forced,
    /// SIGQUIT: no lameduck, no waiting for queries.
    Immediately,
}

impl Stopped {
    /// The process's exit status, as CoreDNS's: 0, or 2 for a forced quit.
    pub fn exit_code(self) -> u8 {
        match self {
            Stopped::Gracefully | Stopped::Immediately => 0,
            Stopped::Forced => 2,
        }
    }
}

/// A running clusterdns server. Cloning gives another handle to the same server.
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

impl Server {
    /// Reads the configuration, binds its listeners and starts serving. Must run inside a
    /// multi-threaded tokio runtime.
    pub async fn start(opts: Options) -> Result<Server, ConfigError> {
        let registry = Arc::new(Registry::new());
        let threads = Arc::new(AtomicUsize::new(0));
        crate::metrics::process::register(&registry, threads.clone());
        let dns_metrics = Arc::new(DnsMetrics::new(&registry));
        dns_metrics
            .build_info
            .with(&[env!("CARGO_PKG_VERSION"), option_env!("CLUSTERDNS_REVISION").unwrap_or(""), "rust"])
            .set(1.0);
        let server = Server {
            inner: Arc::new(Inner {
                reload_failed: registry.counter(
                    "coredns_reload_failed_total",
                    "Counter of the number of failed reload attempts.",
                    &[],
                ),
                reload_version: registry.gauge(
                    "coredns_reload_version_info",
                    "A metric with a constant '1' value labeled by hash, and value which type of hash generated.",
                    &["hash", "value"],
                ),
                opts,
                registry,
                dns_metrics,
                lifecycle: Arc::new(Lifecycle::new()),
                inflight: Arc::new(InFlight::default()),
                threads,
                state: Mutex::new(State {
                    dns: BTreeMap::new(),
                    http: BTreeMap::new(),
                    generation: None,
                    tried: String::new(),
                    stopping: false,
                }),
                stopped: OnceCell::new(),
                rt: tokio::runtime::Handle::current(),
            }),
        };
        let (name, text) = server.read_corefile()?;
        let corefile = parse_corefile(&name, &text)?;
        let mut state = server.inner.state.lock().await;
        server.apply(&mut state, &corefile).await?;
        drop(state);
        if !server.inner.opts.quiet {
            print!("{}", server.banner().await);
        }
        Ok(server)
    }

    /// The metrics registry (what `/metrics` serves).
    pub fn metrics(&self) -> &Arc<Registry> {
        &self.inner.registry
    }

    /// Bound DNS addresses: the configured listen address and the socket address it got (the
    /// port differs when the Corefile asked for port 0).
    pub async fn dns_addrs(&self) -> Vec<(ListenKey, SocketAddr)> {
        self.inner.state.lock().await.dns.iter().map(|(k, l)| (k.clone(), l.local)).collect()
    }

    /// Bound HTTP addresses (health, ready, metrics endpoints) and their socket addresses.
    pub async fn http_addrs(&self) -> Vec<(HttpAddr, Vec<SocketAddr>)> {
        self.inner.state.lock().await.http.iter().map(|(a, l)| (a.clone(), l.local.clone())).collect()
    }

    /// How often the running configuration checks the Corefile for changes: the reload plugin's
    /// interval moved by its jitter; `None` without the plugin.
    pub async fn reload_every(&self) -> Option<Duration> {
        self.inner.state.lock().await.generation.as_ref().and_then(|g| g.reload_every)
    }

    /// Re-reads the Corefile and applies it; `Ok(true)` if a new configuration now runs. On error
    /// the running configuration stays and the error is logged with its positions.
    ///
    /// * `only_if_changed` false is SIGUSR1: apply whatever the file holds.
    /// * `only_if_changed` true is the reload plugin's check: apply only when the SHA-512 of the
    ///   parse differs from the last one tried. A file that does not parse is a warning and is
    ///   tried again next time; one that fails to build counts in `coredns_reload_failed_total`
    ///   and is not tried again until it changes. `coredns_reload_version_info` carries the hash
    ///   last tried, as CoreDNS's does.
    pub async fn reload(&self, only_if_changed: bool) -> Result<bool, ConfigError> {
        if only_if_changed { self.check_for_changes().await } else { self.reload_on_signal().await }
    }

    async fn check_for_changes(&self) -> Result<bool, ConfigError> {
        let (name, text) = self.read_corefile().inspect_err(|e| {
            tracing::warn!(target: "plugin/reload", "Corefile load failed: {e}");
        })?;
        let corefile = parse_corefile(&name, &text).inspect_err(|e| {
            for line in e.to_string().lines() {
                tracing::warn!(target: "plugin/reload", "Corefile parse failed: {line}");
            }
        })?;
        let digest = corefile_digest(&corefile);
        let mut state = self.inner.state.lock().await;
        if state.stopping || digest == state.tried {
            return Ok(false);
        }
        // A changed file is tried once: if it fails, it waits for the next change.
        state.tried = digest.clone();
        tracing::info!("Reloading");
        let result = self.apply(&mut state, &corefile).await;
        self.set_reload_version(&digest);
        match result {
            Ok(()) => {
                tracing::info!("Reloading complete");
                Ok(true)
            }
            Err(e) => {
                self.inner.reload_failed.with(&[]).inc();
                for line in e.to_string().lines() {
                    tracing::error!(target: "plugin/reload", "Corefile changed but reload failed: {line}");
                }
                Err(e)
            }
        }
    }

    async fn reload_on_signal(&self) -> Result<bool, ConfigError> {
        let report = |e: &ConfigError| {
            for line in e.to_string().lines() {
                tracing::error!("SIGUSR1: {line}");
            }
        };
        let (name, text) = self.read_corefile().inspect_err(report)?;
        let corefile = parse_corefile(&name, &text).inspect_err(report)?;
        let mut state = self.inner.state.lock().await;
        if state.stopping {
            return Ok(false);
        }
        tracing::info!("Reloading");
        self.apply(&mut state, &corefile).await.inspect_err(report)?;
        tracing::info!("Reloading complete");
        Ok(true)
    }

    /// `coredns_reload_version_info` names `digest` alone.
    fn set_reload_version(&self, digest: &str) {
        self.inner.reload_version.clear();
        self.inner.reload_version.with(&["sha512", digest]).set(1.0);
    }

    fn read_corefile(&self) -> Result<(String, String), ConfigError> {
        let path = match &self.inner.opts.conf {
            Some(p) => p.clone(),
            None if std::path::Path::new("Corefile").exists() => PathBuf::from("Corefile"),
            None => return Ok(("Corefile".into(), config::default_corefile(self.inner.opts.dns_port))),
        };
        let name = path.display().to_string();
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok((name, text)),
            Err(e) => {
                let file: Arc<str> = name.as_str().into();
                Err(Error::syntax(&Pos::new(&file, 0, 0), format!("cannot read the Corefile: {e}")).into())
            }
        }
    }

    /// Plans, builds aside and swaps in the configuration `text` (see the module documentation).
    async fn apply(&self, state: &mut State, corefile: &Corefile) -> Result<(), ConfigError> {
        for w in &corefile.warnings {
            tracing::warn!("{w}");
        }
        let plan = config::plan(corefile, self.inner.opts.dns_port)?;
        let listen = build::listen_keys(&plan)?;

        // Build aside: new sockets, then plugins, then tables.
        let mut bound: BTreeMap<ListenKey, Bound> = BTreeMap::new();
        for (key, pos) in listen.values().flatten() {
            if state.dns.contains_key(key) || bound.contains_key(key) {
                continue;
            }
            let b = self.bind(key).map_err(|e| {
                Error::syntax(pos, format!("cannot listen on {}: {e}", server_label(key.transport, key.host, key.port)))
            })?;
            bound.insert(key.clone(), b);
        }
        let locals: BTreeMap<ListenKey, SocketAddr> = state
            .dns
            .iter()
            .map(|(k, l)| (k.clone(), l.local))
            .chain(bound.iter().map(|(k, b)| (k.clone(), b.local)))
            .collect();
        let local = |k: &ListenKey| -> SocketAddr { locals[k] };

        let label = |k: &ListenKey| server_label(k.transport, k.host, local(k).port());
        let build::Built { entries, enabled, contributions, stacktrace } =
            build::build(&plan, &listen, label, &self.inner.registry, &self.inner.lifecycle)?;
        if stacktrace {
            panic::capture_backtraces();
        }
        let mut new_http: BTreeMap<HttpAddr, HttpListener> = BTreeMap::new();
        for (addr, routes) in &contributions.http {
            if state.http.contains_key(addr) {
                continue;
            }
            let route = routes.values().next().expect("an address has a route");
            let l = HttpListener::bind(addr, self.inner.opts.loopback_ephemeral)
                .await
                .map_err(|e| Error::setup(route.plugin, &route.pos, format!("cannot listen on {addr}: {e}")))?;
            new_http.insert(addr.clone(), l);
        }

        // Swap.
        for (key, list) in entries {
            let table = Arc::new(ZoneTable::new(
                &server_label(key.transport, key.host, local(&key).port()),
                &self.inner.dns_metrics,
                list,
            ));
            match state.dns.get(&key) {
                Some(l) => l.table.store(table),
                None => {
                    let b = bound.remove(&key).expect("bound above");
                    let l = self.serve(b, table).map_err(|e| Error::syntax(&plan.blocks[0].pos, e.to_string()))?;
                    state.dns.insert(key, l);
                }
            }
        }
        let keep: Vec<ListenKey> = listen.values().flatten().map(|(k, _)| k.clone()).collect();
        let gone: Vec<ListenKey> = state.dns.keys().filter(|k| !keep.contains(k)).cloned().collect();
        for key in gone {
            if let Some(l) = state.dns.remove(&key) {
                l.stop().await;
            }
        }
        state.http.extend(new_http);
        state.http.retain(|addr, _| contributions.http.contains_key(addr));
        for (addr, routes) in &contributions.http {
            let listener = &state.http[addr];
            for r in routes.values() {
                r.handler.bound(&listener.local);
            }
            let tls = contributions.http_tls.get(addr).and_then(|t| t.tls.as_deref());
            listener.set_site(routes.iter().map(|(p, r)| (*p, r.handler.clone())).collect::<Routes>(), tls);
        }

        self.inner.dns_metrics.plugin_enabled.clear();
        for (server, zone, name) in enabled {
            self.inner.dns_metrics.plugin_enabled.with(&[&server, &zone, "", name]).set(1.0);
        }
        let digest = corefile_digest(corefile);
        if contributions.reload.is_some() {
            self.set_reload_version(&digest);
            tracing::info!(target: "plugin/reload", "Running configuration SHA512 = {digest}");
        }
        state.tried = digest;
        state.generation = Some(Generation {
            lameduck: contributions.lameduck,
            reload_every: contributions.reload.map(jittered),
            _contributions: contributions,
        });
        Ok(())
    }

    /// Binds the UDP sockets (one per worker) and the TCP listener of `key`. Port 0 picks a
    /// port free for both.
    fn bind(&self, key: &ListenKey) -> std::io::Result<Bound> {
        let workers = self
            .inner
            .opts
            .udp_workers
            .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
        let (host, port) = if self.inner.opts.loopback_ephemeral {
            (IpAddr::V4(Ipv4Addr::LOCALHOST), 0)
        } else {
            (key.host.unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED)), key.port)
        };
        let mut last_err = None;
        for _ in 0..8 {
            let first = match udp::socket(SocketAddr::new(host, port)) {
                Err(e) if key.host.is_none() && http::is_no_ipv6(&e) => {
                    udp::socket(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port))?
                }
                r => r?,
            };
            let local = first.local_addr()?.as_socket().expect("an inet socket");
            let mut udp = vec![first];
            for _ in 1..workers.max(1) {
                udp.push(udp::socket(local)?);
            }
            match tcp_listener(local) {
                Ok(tcp) => return Ok(Bound { local, udp, tcp }),
                // Port 0 gave a UDP port whose TCP twin is taken: try another.
                Err(e) if port == 0 => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_err.expect("tried at least once"))
    }

    fn serve(&self, b: Bound, table: Arc<ZoneTable>) -> std::io::Result<Listener> {
        let table = Arc::new(ArcSwap::new(table));
        let workers = udp::Workers::start(
            b.udp,
            b.local,
            table.clone(),
            self.inner.rt.clone(),
            self.inner.inflight.clone(),
            self.inner.threads.clone(),
        )?;
        let (tcp_stop, stop_rx) = watch::channel(false);
        let tcp = tokio::net::TcpListener::from_std(b.tcp)?;
        let tcp = self.inner.rt.spawn(tcp::serve(tcp, table.clone(), stop_rx, self.inner.inflight.clone()));
        Ok(Listener { local: b.local, table, workers, tcp_stop, tcp })
    }

    /// Stops the server: `/ready` turns 503, queries are still answered for the lameduck
    /// period, then listeners stop and in-flight queries get up to 5 s to finish. Calls after
    /// the first wait for it to finish.
    pub async fn shutdown(&self) {
        self.inner.stopped.get_or_init(|| self.stop()).await;
    }

    async fn stop(&self) {
        let lameduck = {
            // Taking the lock waits for a reload in progress; none starts after this, and the
            // lameduck period is the configuration's that will be the last.
            let mut state = self.inner.state.lock().await;
            state.stopping = true;
            self.inner.lifecycle.begin_shutdown();
            state.generation.as_ref().map(|g| g.lameduck).unwrap_or_default()
        };
        if !lameduck.is_zero() {
            tracing::info!(target: "plugin/health", "Going into lameduck mode for {}", format_duration(lameduck));
            tokio::time::sleep(lameduck).await;
        }
        let mut state = self.inner.state.lock().await;
        for (_, l) in std::mem::take(&mut state.dns) {
            l.stop().await;
        }
        let _ = tokio::time::timeout(GRACE, self.inner.inflight.wait_idle()).await;
        state.http.clear();
        state.generation = None;
    }

    /// Serves until SIGTERM, SIGINT or SIGQUIT, reloading on SIGUSR1 and, with the reload
    /// plugin, when the Corefile changes; then shuts down gracefully (SIGQUIT: at once). As in
    /// CoreDNS, SIGHUP is ignored and a second SIGINT during shutdown quits at once.
    pub async fn run_until_signal(&self) -> std::io::Result<Stopped> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut quit = signal(SignalKind::quit())?;
        let mut hup = signal(SignalKind::hangup())?;
        let mut usr1 = signal(SignalKind::user_defined1())?;
        let mut next_check = self.reload_every().await.map(|every| Instant::now() + every);
        loop {
            let check = async {
                match next_check {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = term.recv() => {
                    tracing::info!("SIGTERM: Shutting down servers then terminating");
                    break;
                }
                _ = int.recv() => {
                    tracing::info!("SIGINT: Shutting down");
                    break;
                }
                _ = quit.recv() => {
                    tracing::info!("SIGQUIT: Quitting process immediately");
                    return Ok(Stopped::Immediately);
                }
                _ = hup.recv() => {}
                _ = usr1.recv() => {
                    tracing::info!("SIGUSR1: Reloading");
                    let _ = self.reload(false).await;
                }
                _ = check => {
                    let _ = self.reload(true).await;
                }
            }
            // A new configuration starts its own period; an unchanged one keeps its rhythm.
            next_check = self.reload_every().await.map(|every| Instant::now() + every);
        }
        tokio::select! {
            _ = self.shutdown() => Ok(Stopped::Gracefully),
            _ = int.recv() => {
                tracing::info!("SIGINT: Force quit");
                Ok(Stopped::Forced)
            }
        }
    }

    /// The startup banner CoreDNS prints: one `zone:port` line per served zone, then the version.
    async fn banner(&self) -> String {
        let state = self.inner.state.lock().await;
        let mut out = String::new();
        for (key, l) in &state.dns {
            let table = l.table.load();
            let mut zones: Vec<String> = table.zones().map(|z| z.to_string()).collect();
            zones.reverse();
            for z in zones {
                match key.host {
                    Some(h) => out.push_str(&format!("{z}:{} on {h}\n", l.local.port())),
                    None => out.push_str(&format!("{z}:{}\n", l.local.port())),
                }
            }
        }
        out.push_str(&format!("clusterdns-{}\n", env!("CARGO_PKG_VERSION")));
        out.push_str(&format!("{}/{}, rust\n", std::env::consts::OS, std::env::consts::ARCH));
        out
    }
}

/// A non-blocking TCP listener on `addr` (dual-stack when it is an IPv6 address), for DNS over
/// TCP and the HTTP endpoints alike.
pub(crate) fn tcp_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(false)?;
    }
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s.into())
}

/// The reload plugin's interval moved by a random amount in [-jitter/2, jitter/2), drawn once
/// per configuration, as CoreDNS spreads the checks of replicas that started together.
fn jittered(s: ReloadSettings) -> Duration {
    let jitter = s.jitter.as_nanos() as i128;
    let shift = if jitter == 0 { 0 } else { fastrand::i128(0..jitter) - jitter / 2 };
    let nanos = (s.interval.as_nanos() as i128 + shift).max(0);
    Duration::from_nanos(nanos as u64)
}

/// Parses Corefile `text` from the file `name`, with the process environment.
fn parse_corefile(name: &str, text: &str) -> Result<Corefile, ConfigError> {
    Ok(corefile::parse_str(name, text, &|k| std::env::var(k).ok())?)
}

/// The SHA-512, in hex, of a parsed Corefile: its blocks, keys, directives and arguments after
/// imports, snippets and environment variables are expanded. As with CoreDNS's hash of its
/// parse, comments and spacing do not change it and an edit to an imported file does.
fn corefile_digest(corefile: &Corefile) -> String {
    fn token(h: &mut Sha512, t: &Token) {
        h.update([t.quoted as u8]);
        h.update((t.text.len() as u64).to_le_bytes());
        h.update(t.text.as_bytes());
    }
    fn directive(h: &mut Sha512, d: &Directive) {
        token(h, &d.name);
        h.update((d.args.len() as u64).to_le_bytes());
        d.args.iter().for_each(|a| token(h, a));
        match &d.block {
            Some(b) => {
                h.update(b"{");
                h.update((b.lines.len() as u64).to_le_bytes());
                b.lines.iter().for_each(|l| directive(h, l));
            }
            None => h.update(b";"),
        }
    }
    let mut h = Sha512::new();
    for block in &corefile.blocks {
        h.update((block.keys.len() as u64).to_le_bytes());
        block.keys.iter().for_each(|k| token(&mut h, k));
        h.update((block.directives.len() as u64).to_le_bytes());
        block.directives.iter().for_each(|d| directive(&mut h, d));
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(text: &str) -> String {
        corefile_digest(&corefile::parse_str("Corefile", text, &|_| None).unwrap())
    }

    #[test]
    fn digest_follows_the_parse_not_the_text() {
        let base = digest(". {\n    whoami\n}\n");
        assert_eq!(base.len(), 128);
        assert_eq!(base, digest("# a comment\n.   {\n  whoami   # here too\n}"));
        assert_ne!(base, digest(". {\n    whoami\n    log\n}\n"));
        assert_ne!(digest(". {\n hosts a b\n}"), digest(". {\n hosts \"a b\"\n}"));
        assert_ne!(digest(". {\n x {\n }\n}"), digest(". {\n x\n}"));
    }

    #[test]
    fn jitter_moves_the_interval_within_half_of_it_either_way() {
        let s = ReloadSettings { interval: Duration::from_secs(10), jitter: Duration::from_secs(4) };
        for _ in 0..200 {
            let d = jittered(s);
            assert!(d >= Duration::from_secs(8) && d < Duration::from_secs(12), "{d:?}");
        }
        let none = ReloadSettings { interval: Duration::from_secs(10), jitter: Duration::ZERO };
        assert_eq!(jittered(none), Duration::from_secs(10));
    }

    /// `errors { stacktrace }` turns panic stacks on for its own block only.
    #[test]
    fn panic_stacktraces_are_asked_for_per_block() {
        let dir = tempfile::tempdir().unwrap();
        let corefile = dir.path().join("Corefile");
        std::fs::write(
            &corefile,
            "a.example {\n    errors {\n        stacktrace\n    }\n    whoami\n}\n\
             b.example {\n    errors\n    whoami\n}\n",
        )
        .unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        rt.block_on(async {
            let opts = Options {
                conf: Some(corefile),
                quiet: true,
                udp_workers: Some(1),
                loopback_ephemeral: true,
                ..Options::default()
            };
            let server = Server::start(opts).await.unwrap();
            {
                let state = server.inner.state.lock().await;
                let table = state.dns.values().next().unwrap().table.load();
                let stacktrace = |zone: &str| table.block(&crate::dns::Name::parse(zone).unwrap()).unwrap().stacktrace;
                assert!(stacktrace("a.example."));
                assert!(!stacktrace("b.example."));
            }
            server.shutdown().await;
        });
    }
}
