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
//! Shutdown: `/ready` turns 503 at once, queries are answered for the lameduck period
//! (`health { lameduck }`), then listeners stop and in-flight queries finish.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use sha2::{Digest, Sha512};
use socket2::Socket;
use tokio::sync::{Mutex, Notify, watch};

use crate::corefile::{self, Error, Errors, Pos, Transport};
use crate::dns::{Name, Route};
use crate::metrics::dns::DnsMetrics;
use crate::metrics::{Counter, Family, Gauge, Registry};
use crate::plugin::setup::{BlockInfo, Contributions, ReloadSettings, SetupCtx};
use crate::plugin::{Chain, DynPlugin};

pub mod config;
pub mod dispatch;
pub mod http;
pub mod lifecycle;
mod tcp;
mod udp;

use config::Plan;
use dispatch::{BlockRt, ZoneTable};
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
    reload: Option<ReloadSettings>,
}

struct State {
    dns: BTreeMap<ListenKey, Listener>,
    http: BTreeMap<HttpAddr, HttpListener>,
    generation: Option<Generation>,
    /// SHA-512 of the Corefile text now running.
    hash: String,
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
    rt: tokio::runtime::Handle,
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
                    hash: String::new(),
                    stopping: false,
                }),
                rt: tokio::runtime::Handle::current(),
            }),
        };
        let (name, text) = server.read_corefile()?;
        let mut state = server.inner.state.lock().await;
        server.apply(&mut state, &name, &text).await?;
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

    /// The reload plugin's settings in the running configuration, if it has the plugin.
    pub async fn reload_settings(&self) -> Option<ReloadSettings> {
        self.inner.state.lock().await.generation.as_ref().and_then(|g| g.reload)
    }

    /// Re-reads the Corefile and applies it. With `only_if_changed`, an unchanged file (same
    /// SHA-512) is left alone and `Ok(false)` returned. On error the running configuration stays,
    /// the error is logged with its positions and `coredns_reload_failed_total` rises.
    pub async fn reload(&self, only_if_changed: bool) -> Result<bool, ConfigError> {
        let result = self.try_reload(only_if_changed).await;
        if let Err(e) = &result {
            self.inner.reload_failed.with(&[]).inc();
            for line in e.to_string().lines() {
                tracing::error!(target: "plugin/reload", "Corefile changed but reload failed: {line}");
            }
        }
        result
    }

    async fn try_reload(&self, only_if_changed: bool) -> Result<bool, ConfigError> {
        let (name, text) = self.read_corefile()?;
        let mut state = self.inner.state.lock().await;
        if state.stopping || (only_if_changed && sha512_hex(&text) == state.hash) {
            return Ok(false);
        }
        tracing::info!("Reloading");
        self.apply(&mut state, &name, &text).await?;
        tracing::info!("Reloading complete");
        Ok(true)
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
    async fn apply(&self, state: &mut State, name: &str, text: &str) -> Result<(), ConfigError> {
        let corefile = corefile::parse_str(name, text, &|k| std::env::var(k).ok())?;
        for w in &corefile.warnings {
            tracing::warn!("{w}");
        }
        let plan = config::plan(&corefile, self.inner.opts.dns_port)?;
        let listen = listen_keys(&plan)?;

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

        let mut contributions = Contributions::default();
        let mut entries: BTreeMap<ListenKey, Vec<(Name, Arc<BlockRt>, Route)>> = BTreeMap::new();
        let mut enabled: Vec<(String, String, &'static str)> = Vec::new();
        for (i, block) in plan.blocks.iter().enumerate() {
            let keys = &listen[&i];
            let mut servers: Vec<(ListenKey, String)> = Vec::new();
            for (k, _) in keys {
                if !servers.iter().any(|(s, _)| s == k) {
                    servers.push((k.clone(), server_label(k.transport, k.host, local(k).port())));
                }
            }
            let info = BlockInfo {
                zones: block.zones.clone(),
                servers: servers.iter().map(|(_, s)| s.clone()).collect(),
                pos: block.pos.clone(),
            };
            let chain = self.build_block(block, &info, &mut contributions)?;
            if block.plugin_names().any(|p| p == "prometheus") {
                for server in &info.servers {
                    for zone in &info.zones {
                        for p in chain.iter() {
                            enabled.push((server.clone(), zone.to_string(), p.name()));
                        }
                    }
                }
            }
            let rt = Arc::new(BlockRt { chain, info });
            for key in &block.keys {
                for (lk, _) in keys.iter().filter(|(lk, _)| lk.port == key.port && lk.transport == key.transport) {
                    let server = servers.iter().position(|(s, _)| s == lk).expect("listed") as u16;
                    for zone in &key.zones {
                        let zone_index = block.zones.iter().position(|z| z == zone).expect("listed") as u16;
                        let route = Route { zone: zone_index, server };
                        entries.entry(lk.clone()).or_default().push((zone.clone(), rt.clone(), route));
                    }
                }
            }
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
            let routes: Routes = routes.iter().map(|(p, r)| (*p, r.handler.clone())).collect();
            state.http[addr].set_routes(routes);
        }

        self.inner.dns_metrics.plugin_enabled.clear();
        for (server, zone, name) in enabled {
            self.inner.dns_metrics.plugin_enabled.with(&[&server, &zone, "", name]).set(1.0);
        }
        let hash = sha512_hex(text);
        if contributions.reload.is_some() {
            self.inner.reload_version.clear();
            self.inner.reload_version.with(&["sha512", &hash]).set(1.0);
            tracing::info!(target: "plugin/reload", "Running configuration SHA512 = {hash}");
        }
        state.hash = hash;
        state.generation = Some(Generation {
            lameduck: contributions.lameduck,
            reload: contributions.reload,
            _contributions: contributions,
        });
        Ok(())
    }

    fn build_block(
        &self,
        block: &config::BlockPlan,
        info: &BlockInfo,
        out: &mut Contributions,
    ) -> Result<Chain, Error> {
        build_chain(block, info, &self.inner.registry, &self.inner.lifecycle, out)
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
    /// period, then listeners stop and in-flight queries get up to 5 s to finish.
    pub async fn shutdown(&self) {
        self.inner.lifecycle.begin_shutdown();
        let lameduck = {
            let mut state = self.inner.state.lock().await;
            state.stopping = true;
            state.generation.as_ref().map(|g| g.lameduck).unwrap_or_default()
        };
        if !lameduck.is_zero() {
            tracing::info!(target: "plugin/health", "Going into lameduck mode for {lameduck:?}");
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

    /// Serves until SIGTERM or SIGINT, reloading on SIGUSR1 and, with the reload plugin, when
    /// the Corefile changes; then shuts down gracefully.
    pub async fn run_until_signal(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut usr1 = signal(SignalKind::user_defined1())?;
        loop {
            let wait = match self.reload_settings().await {
                Some(s) => jittered(s),
                None => Duration::from_secs(3600),
            };
            let polling = self.reload_settings().await.is_some();
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = usr1.recv() => { let _ = self.reload(false).await; }
                _ = tokio::time::sleep(wait) => if polling { let _ = self.reload(true).await; },
            }
        }
        self.shutdown().await;
        Ok(())
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

/// Builds a block's plugins in reverse chain order (see [`setup`](crate::plugin::setup)); returns
/// the chain. The server's build step, and the fuzzing harness's.
pub(crate) fn build_chain(
    block: &config::BlockPlan,
    info: &BlockInfo,
    registry: &Arc<Registry>,
    lifecycle: &Arc<Lifecycle>,
    out: &mut Contributions,
) -> Result<Chain, Error> {
    let mut ctx = SetupCtx::new(info, registry, lifecycle, out);
    let mut chain: Vec<Arc<dyn DynPlugin>> = Vec::new();
    for p in block.plugins.iter().rev() {
        if let Some(plugin) = p.config.build(&mut ctx)? {
            ctx.note_built(plugin.name());
            chain.push(plugin);
        }
    }
    chain.reverse();
    Ok(chain.into())
}

/// The listen keys of each block (by block index), each with the position to blame if it
/// cannot be bound.
fn listen_keys(plan: &Plan) -> Result<BTreeMap<usize, Vec<(ListenKey, Pos)>>, Error> {
    let mut out = BTreeMap::new();
    for (i, block) in plan.blocks.iter().enumerate() {
        let hosts: Vec<Option<IpAddr>> = match block.bind() {
            Some(b) => b.resolve()?.into_iter().map(Some).collect(),
            None => vec![None],
        };
        let mut keys: Vec<(ListenKey, Pos)> = Vec::new();
        for k in &block.keys {
            for &host in &hosts {
                let key = ListenKey { transport: k.transport, host, port: k.port };
                if !keys.iter().any(|(x, _)| *x == key) {
                    keys.push((key, block.pos.clone()));
                }
            }
        }
        out.insert(i, keys);
    }
    Ok(out)
}

fn tcp_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
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

/// `interval` moved by a random amount within half of `jitter` either way, as CoreDNS's reload
/// plugin spreads the checks of many replicas.
fn jittered(s: ReloadSettings) -> Duration {
    let jitter = s.jitter.as_millis() as i64;
    let shift = if jitter == 0 { 0 } else { fastrand::i64(0..jitter) - jitter / 2 };
    let ms = s.interval.as_millis() as i64 + shift;
    Duration::from_millis(ms.max(0) as u64)
}

pub(crate) fn sha512_hex(text: &str) -> String {
    let digest = Sha512::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
