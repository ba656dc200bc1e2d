//! Applying a configuration, at startup and on every reload: plan, build aside, warm up, swap
//! (see the [server](super) documentation); and deciding when to reload.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use sha2::{Digest, Sha512};

use super::dispatch::ZoneTable;
use super::http::{HttpListener, Routes};
use super::listen::{Bound, ListenKey, server_label};
use super::{ConfigError, Server, State, TcpSettings, build, config, panic};
use crate::corefile::{self, Corefile, Directive, Error, Pos, Token, format_duration};
use crate::http::HttpAddr;
use crate::plugin::handles::{Dispatch, Serving};
use crate::plugin::setup::{Contributions, Kept, ReloadSettings, SetupEnv, WarmUp};

/// What the running configuration holds besides its listeners.
pub(super) struct Generation {
    /// Its tasks, HTTP routes and kept state: dropping it ends the tasks and the state no newer
    /// configuration kept.
    pub contributions: Contributions,
    pub lameduck: Duration,
    /// How often to check the Corefile for changes (the reload plugin's interval moved by its
    /// jitter, drawn once per configuration as CoreDNS does); `None` without the plugin.
    pub reload_every: Option<Duration>,
}

impl Server {
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

    /// The Corefile's name and text: the `-conf` file, else `./Corefile`, else CoreDNS's default.
    pub(super) fn read_corefile(&self) -> Result<(String, String), ConfigError> {
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

    /// Plans, builds aside, warms up and swaps in `corefile` (see the module documentation).
    /// On any error before the swap, everything built is dropped and the running configuration
    /// goes on as it was.
    pub(super) async fn apply(&self, state: &mut State, corefile: &Corefile) -> Result<(), ConfigError> {
        for w in &corefile.warnings {
            tracing::warn!("{w}");
        }
        let plan = config::plan_with(corefile, self.inner.opts.dns_port, self.inner.opts.plugins)?;
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
        let label = |k: &ListenKey| server_label(k.transport, k.host, locals[k].port());

        let no_state = Kept::default();
        let env = SetupEnv {
            metrics: &self.inner.registry,
            lifecycle: &self.inner.lifecycle,
            fatal: &self.inner.fatal,
            previous: state.generation.as_ref().map_or(&no_state, |g| &g.contributions.kept),
        };
        let build::Built { entries, enabled, mut contributions, stacktrace, block_keys } =
            build::build(&plan, &listen, label, &env)?;
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

        // Each listener's new table, in the holder it will be served from: a running listener's
        // own, or a new one for a listener that starts at the swap.
        let mut tables: BTreeMap<ListenKey, (Arc<ZoneTable>, Arc<ArcSwap<ZoneTable>>)> = BTreeMap::new();
        for (key, list) in entries {
            let table = Arc::new(ZoneTable::new(&label(&key), &self.inner.dns_metrics, list));
            let holder = match state.dns.get(&key) {
                Some(l) => l.table.clone(),
                None => Arc::new(ArcSwap::new(table.clone())),
            };
            tables.insert(key, (table, holder));
        }
        // Resolvers reach a listener through its holder: the table serving when they ask.
        for (block, resolver) in contributions.resolvers.drain(..) {
            let holders = block_keys[block].iter().map(|k| tables[k].1.clone() as Arc<dyn Dispatch>);
            resolver.bind(holders.collect());
        }

        // Warm up, while the running configuration serves.
        if !self.warm_up(std::mem::take(&mut contributions.warm_ups)).await {
            return Err(Error::syntax(&plan.blocks[0].pos, "shutting down: the configuration was not started").into());
        }

        // The TCP side of each listen address: CoreDNS's defaults, then what the `timeouts` of
        // each block listening there sets, in file order (a later block wins, as in CoreDNS).
        let mut tcp: BTreeMap<&ListenKey, TcpSettings> = BTreeMap::new();
        for (block, keys) in &listen {
            for (key, _) in keys {
                let s = tcp.entry(key).or_default();
                if let Some(t) = plan.blocks[*block].timeouts() {
                    t.apply(s);
                }
            }
        }

        // Swap.
        for (key, (table, holder)) in tables {
            let settings = tcp.get(&key).copied().unwrap_or_default();
            match state.dns.get(&key) {
                Some(l) => {
                    l.table.store(table);
                    l.set_tcp_settings(self, settings);
                }
                None => {
                    let b = bound.remove(&key).expect("bound above");
                    let l = self
                        .serve(b, holder, &label(&key), settings)
                        .map_err(|e| Error::syntax(&plan.blocks[0].pos, e.to_string()))?;
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
        let hooks = std::mem::take(&mut contributions.serving_hooks);
        // The old generation is dropped here: its tasks end, and state no plugin kept with it.
        let generation = state.generation.insert(Generation {
            lameduck: contributions.lameduck,
            reload_every: contributions.reload.map(jittered),
            contributions,
        });

        // Serving now: tell the hooks where.
        for (block, hook) in hooks {
            let dns = block_keys[block].iter().map(|k| state.dns[k].local).collect();
            generation.contributions.tasks.spawn(hook(Serving { dns }));
        }
        Ok(())
    }

    /// Waits for every plugin's warm-up, each for at most its bound (logging the ones that did
    /// not make it); false if shutdown began meanwhile.
    async fn warm_up(&self, warm_ups: Vec<WarmUp>) -> bool {
        if warm_ups.is_empty() {
            return true;
        }
        let waits = warm_ups.into_iter().map(|w| async move {
            if tokio::time::timeout(w.bound, w.ready).await.is_err() {
                tracing::warn!(
                    "plugin/{}: not ready after {}: serving the new configuration anyway",
                    w.plugin,
                    format_duration(w.bound)
                );
            }
        });
        tokio::select! {
            _ = futures_util::future::join_all(waits) => true,
            _ = self.inner.lifecycle.stopping() => false,
        }
    }
}

/// A watch on the Corefile's directory, so a changed Corefile is noticed at once rather than at
/// the reload plugin's next check. Kubelet updates a mounted ConfigMap by writing a new
/// timestamped directory and renaming a `..data` link over the old one, inside the directory
/// that holds the `Corefile` link: one watch on that directory (not recursive) sees it. The
/// interval check stays as the fallback (an imported file elsewhere, a file system without
/// inotify).
pub(super) struct CorefileWatch {
    _watcher: notify::RecommendedWatcher,
    events: tokio::sync::mpsc::UnboundedReceiver<()>,
}

/// How long to let a burst of file system events settle before reading the Corefile: kubelet's
/// swap is a handful of operations in a few milliseconds.
const SETTLE: Duration = Duration::from_millis(100);

impl CorefileWatch {
    /// Watches the directory of `corefile`; `None` (with a warning) when it cannot.
    pub fn new(corefile: &std::path::Path) -> Option<CorefileWatch> {
        use notify::Watcher;
        let dir = match corefile.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let (tx, events) = tokio::sync::mpsc::unbounded_channel();
        let handler = move |event: notify::Result<notify::Event>| {
            // Reading the Corefile is an access event: only changes count.
            if let Ok(e) = event
                && !matches!(e.kind, notify::EventKind::Access(_))
            {
                let _ = tx.send(());
            }
        };
        let watched = notify::recommended_watcher(handler)
            .and_then(|mut w| w.watch(&dir, notify::RecursiveMode::NonRecursive).map(|()| w));
        match watched {
            Ok(watcher) => Some(CorefileWatch { _watcher: watcher, events }),
            Err(e) => {
                tracing::warn!(
                    target: "plugin/reload",
                    "cannot watch {} for changes ({e}); checking every interval only",
                    dir.display()
                );
                None
            }
        }
    }

    /// Completes when something in the directory changed and has settled.
    pub async fn changed(&mut self) {
        if self.events.recv().await.is_none() {
            return std::future::pending().await;
        }
        tokio::time::sleep(SETTLE).await;
        while self.events.try_recv().is_ok() {}
    }
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
pub(super) fn parse_corefile(name: &str, text: &str) -> Result<Corefile, ConfigError> {
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
        let draws: Vec<Duration> = (0..200).map(|_| jittered(s)).collect();
        for d in &draws {
            assert!(*d >= Duration::from_secs(8) && *d < Duration::from_secs(12), "{d:?}");
        }
        // Jittered for real: both sides of the interval, spread over most of the range (200
        // uniform draws all within 0.5s of the middle or on one side: about 2^-200).
        let (min, max) = (draws.iter().min().unwrap(), draws.iter().max().unwrap());
        assert!(*min < Duration::from_millis(8_500) && *max > Duration::from_millis(11_500), "{min:?}..{max:?}");
        let none = ReloadSettings { interval: Duration::from_secs(10), jitter: Duration::ZERO };
        assert_eq!(jittered(none), Duration::from_secs(10));
    }
}
