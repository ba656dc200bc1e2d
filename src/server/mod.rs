//! The running server: listeners, the configuration they serve, reload and shutdown.
//!
//! A configuration is applied in four steps ([`reload`]), and only the last is visible to
//! queries:
//!
//! 1. **plan** ([`config::plan`]): parse every directive; nothing is opened.
//! 2. **build aside** ([`build`]): bind the listen addresses that are new (sockets bound but not
//!    yet served: the kernel queues what arrives), build every block's plugins (reading files,
//!    registering HTTP endpoints, spawning their tasks; state a plugin keeps across reloads is
//!    carried over from the running configuration) and the zone table of every listener. Any
//!    error drops everything built so far and leaves the running configuration untouched.
//! 3. **warm up**: plugins that asked to ([`SetupCtx::warm_up`](crate::plugin::setup::SetupCtx::warm_up))
//!    get up to their bound to become ready while the running configuration keeps serving; past
//!    the bound the server logs a warning and goes on.
//! 4. **swap**: each listener whose address is unchanged atomically switches to its new zone
//!    table (its sockets never close, so no query is lost); new listeners start; listeners no
//!    longer configured stop after finishing their batch; HTTP listeners switch routes likewise;
//!    the old configuration's tasks end, and state the new one did not keep is dropped. Then
//!    hooks registered with [`on_serving`](crate::plugin::setup::SetupCtx::on_serving) run.
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
//! finish. No reload starts once shutdown has begun, and one warming up is abandoned. A plugin
//! may stop the server with an error ([`Fatal`]): it prints `[FATAL] ...` and stops at once,
//! and the process exits with status 1.
//!
//! The layout: [`listen`] binds and serves DNS listen addresses (`udp` and `tcp` are the hot
//! paths), [`dispatch`] takes a received message to its one reply, [`http`] serves the plugins'
//! HTTP endpoints, [`reload`] applies configurations.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use tokio::sync::{Mutex, OnceCell, watch};
use tokio::time::Instant;

use crate::corefile::{Error, Errors, format_duration};
use crate::http::HttpAddr;
use crate::metrics::dns::DnsMetrics;
use crate::metrics::{Counter, Family, Gauge, Registry};
use crate::plugin::handles::Fatal;
use crate::plugin::lifecycle::Lifecycle;
use crate::plugin::registry::PluginSet;

pub mod build;
pub mod config;
pub mod dispatch;
pub mod http;
mod inflight;
pub mod listen;
pub mod panic;
mod parked;
pub mod reload;
mod tcp;
mod udp;

use http::HttpListener;
pub use inflight::InFlight;
pub use listen::ListenKey;
use listen::Listener;
use reload::{Generation, parse_corefile};
pub use tcp::TcpSettings;
pub use tcp::table::{DEFAULT_MAX_CONNECTIONS, descriptor_budget, descriptor_reserve};

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
    /// The plugins directives may name: this build's ([`crate::plugins::ALL`]), or a set with
    /// plugins of a test's own.
    pub plugins: &'static PluginSet,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            conf: None,
            dns_port: 53,
            quiet: false,
            udp_workers: None,
            loopback_ephemeral: false,
            plugins: &crate::plugins::ALL,
        }
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
    /// Every DNS listener's TCP connections, and the limits they share.
    conns: Arc<tcp::table::Conns>,
    threads: Arc<AtomicUsize>,
    reload_failed: Arc<Family<Counter>>,
    reload_version: Arc<Family<Gauge>>,
    state: Mutex<State>,
    /// Set when shutdown has finished; later callers of `shutdown` wait on it.
    stopped: OnceCell<()>,
    rt: tokio::runtime::Handle,
    /// Handed to plugins to stop the server with an error; `fatal_rx` sees it.
    fatal: Fatal,
    fatal_rx: watch::Receiver<Option<String>>,
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
    /// A plugin stopped the server with an error ([`Fatal`]).
    Fatal,
}

impl Stopped {
    /// The process's exit status, as CoreDNS's: 0, 2 for a forced quit, 1 for a plugin's
    /// fatal error (Go's `log.Fatal`).
    pub fn exit_code(self) -> u8 {
        match self {
            Stopped::Gracefully | Stopped::Immediately => 0,
            Stopped::Fatal => 1,
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
        let (fatal, fatal_rx) = Fatal::channel();
        let conns = tcp::table::Conns::new(descriptor_budget(listen::descriptor_limit()), &registry);
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
                conns,
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
                fatal,
                fatal_rx,
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

    /// How many DNS connections over TCP the process holds at most: its descriptor limit less a
    /// reserve for everything else ([`descriptor_budget`]).
    pub fn tcp_connection_budget(&self) -> usize {
        self.inner.conns.budget()
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

    /// Stops the server: `/ready` turns 503, queries are still answered for the lameduck
    /// period, then listeners stop and in-flight queries get up to 5 s to finish. Calls after
    /// the first wait for it to finish.
    pub async fn shutdown(&self) {
        self.inner.stopped.get_or_init(|| self.stop()).await;
    }

    async fn stop(&self) {
        // First, so a reload warming up gives up rather than keep shutdown waiting.
        self.inner.lifecycle.begin_shutdown();
        let lameduck = {
            // Taking the lock waits for a reload in progress; none starts after this, and the
            // lameduck period is the configuration's that will be the last.
            let mut state = self.inner.state.lock().await;
            state.stopping = true;
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
        let mut watch = self.watch_corefile(next_check.is_some());
        let mut fatal = self.inner.fatal_rx.clone();
        loop {
            let check = async {
                match next_check {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let changed = async {
                match &mut watch {
                    Some(w) => w.changed().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                // The Ref that wait_for returns holds the watch's read lock: it is dropped here,
                // before stopping, or a plugin's later Fatal::stop (which takes the write lock on
                // a UDP worker thread that stop_now joins) would deadlock the shutdown.
                _ = async { drop(fatal.wait_for(Option::is_some).await) } => {
                    crate::logging::fatal(self.fatal_error().as_deref().unwrap_or_default());
                    self.stop_now().await;
                    return Ok(Stopped::Fatal);
                }
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
                _ = changed => {
                    let _ = self.reload(true).await;
                }
            }
            // A new configuration starts its own period; an unchanged one keeps its rhythm.
            next_check = self.reload_every().await.map(|every| Instant::now() + every);
            if next_check.is_none() {
                watch = None;
            } else if watch.is_none() {
                watch = self.watch_corefile(true);
            }
        }
        tokio::select! {
            _ = self.shutdown() => Ok(Stopped::Gracefully),
            _ = int.recv() => {
                tracing::info!("SIGINT: Force quit");
                Ok(Stopped::Forced)
            }
        }
    }

    /// A watch on the Corefile's directory when the reload plugin is on (`enabled`) and the
    /// configuration comes from a file.
    fn watch_corefile(&self, enabled: bool) -> Option<reload::CorefileWatch> {
        if !enabled {
            return None;
        }
        let path = match &self.inner.opts.conf {
            Some(p) => p.clone(),
            None if std::path::Path::new("Corefile").exists() => PathBuf::from("Corefile"),
            None => return None,
        };
        reload::CorefileWatch::new(&path)
    }

    /// The error a plugin stopped the server with ([`Fatal`]), if one did. The server itself
    /// stops at once only under [`run_until_signal`](Self::run_until_signal).
    pub fn fatal_error(&self) -> Option<String> {
        self.inner.fatal_rx.borrow().clone()
    }

    /// Stops without lameduck or grace, as a fatal error does.
    async fn stop_now(&self) {
        self.inner.lifecycle.begin_shutdown();
        let mut state = self.inner.state.lock().await;
        state.stopping = true;
        for (_, l) in std::mem::take(&mut state.dns) {
            l.stop().await;
        }
        state.http.clear();
        state.generation = None;
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

#[cfg(test)]
mod tests {
    use super::*;

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
