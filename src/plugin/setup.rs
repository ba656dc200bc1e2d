//! Turning directives into plugins: pure `parse`, then `build`.
//!
//! Setup has two steps so that a configuration can be checked without side effects and
//! rebuilt without disturbing the running one:
//!
//! 1. **parse** (`fn(&[Directive], &ParseCtx) -> Result<Config, Error>`): the directive lines of
//!    one plugin in one server block become a typed config. No I/O, no globals; every error names
//!    its position. `clusterdns -validate` and reload validation run only this step over the
//!    whole file. A plugin that may appear once per block rejects the second line here.
//! 2. **build** ([`PluginConfig::build`]): the config becomes the plugin, with its resources
//!    (files read, HTTP endpoints registered, background tasks spawned through the
//!    [`SetupCtx`] so they belong to the configuration being built). Plugins of a block are built
//!    in reverse chain order, so a plugin can see what those after it registered (the `ready`
//!    plugin collects the readiness of the plugins after it; autopath requires the kubernetes
//!    plugin's handle). Nothing built is visible to queries until the whole configuration has
//!    been built and the server swaps it in; a failed build drops it all, tasks included.
//!
//! # A configuration's life
//!
//! A configuration (a *generation*) is built aside while the running one serves, then swapped
//! in whole. What a plugin builds belongs to its generation and ends with it, except:
//!
//! * state it **keeps** ([`SetupCtx::keep`]): matched by a key the plugin chooses (the part of
//!   its config the state depends on), it passes from the running generation to the new one
//!   unchanged, so a reload that does not touch the kubernetes plugin's connection settings keeps
//!   its watches and index, and a hosts file keeps its watcher. State the new generation does
//!   not ask for ends with the old one.
//! * the swap may wait for a plugin to **warm up** ([`SetupCtx::warm_up`]) for up to a bound of
//!   the plugin's choosing, while the running generation keeps answering. When the bound passes
//!   the server logs a warning and swaps anyway: the new generation then answers as it would at
//!   startup (the kubernetes plugin answers SERVFAIL, never NXDOMAIN, for names it cannot vouch
//!   for yet, and `/ready` reports it). At startup the same wait happens with the sockets bound,
//!   so early queries queue in the kernel instead of being refused.

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::handles::{Fatal, Resolver, Serving};
use super::lifecycle::Lifecycle;
use crate::corefile::{Directive, Error, Pos};
use crate::dns::Name;
use crate::http::tls::HttpTls;
use crate::http::{HttpAddr, HttpHandler};
use crate::metrics::Registry;
use crate::plugin::{DynPlugin, Readiness, ReplyObserver};

/// What a plugin's parse may know about its server block.
pub struct ParseCtx<'a> {
    /// The block's zones, lowercase, in key order (the default zones of `hosts`, `log` ...).
    pub zones: &'a [Name],
}

/// A plugin's parsed configuration. `PartialEq` lets reload tell an unchanged plugin.
pub trait PluginConfig: fmt::Debug + PartialEq + Send + Sync + 'static {
    /// Builds the plugin: `Some` to sit in the chain, `None` for plugins that only configure the
    /// server (`bind`, `health`, `ready`, `reload`).
    fn build(&self, ctx: &mut SetupCtx<'_>) -> Result<Option<Arc<dyn DynPlugin>>, Error>;
}

/// The object-safe form of [`PluginConfig`], implemented for every config.
pub trait DynConfig: fmt::Debug + Send + Sync + 'static {
    fn build(&self, ctx: &mut SetupCtx<'_>) -> Result<Option<Arc<dyn DynPlugin>>, Error>;
    fn same_as(&self, other: &dyn DynConfig) -> bool;
    fn as_any(&self) -> &dyn Any;
}

impl<C: PluginConfig> DynConfig for C {
    fn build(&self, ctx: &mut SetupCtx<'_>) -> Result<Option<Arc<dyn DynPlugin>>, Error> {
        PluginConfig::build(self, ctx)
    }

    fn same_as(&self, other: &dyn DynConfig) -> bool {
        other.as_any().downcast_ref::<C>() == Some(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A plugin's parse function, as the registry holds it.
pub type ParseFn = fn(&[Directive], &ParseCtx<'_>) -> Result<Box<dyn DynConfig>, Error>;

/// The server block a plugin is being built for.
#[derive(Clone, Debug)]
pub struct BlockInfo {
    /// Zones, lowercase; [`Route::zone`](crate::dns::Route) indexes this.
    pub zones: Vec<Name>,
    /// The `server` label of each listen address (`dns://:53`, `dns://127.0.0.1:1053`);
    /// [`Route::server`](crate::dns::Route) indexes this.
    pub servers: Vec<String>,
    /// The block's first key.
    pub pos: Pos,
    /// The block's place among the configuration's blocks.
    pub index: usize,
}

/// The reload plugin's settings, which the server's reload loop follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReloadSettings {
    pub interval: Duration,
    pub jitter: Duration,
}

/// Tasks that end when their owner is dropped: a generation's ([`SetupCtx::spawn`]), or those
/// of state a plugin keeps across reloads, which must outlive the generation that started them.
#[derive(Default)]
pub struct TaskSet(Vec<tokio::task::JoinHandle<()>>);

impl TaskSet {
    pub fn new() -> TaskSet {
        TaskSet::default()
    }

    /// Runs `task` on the current tokio runtime until this set is dropped.
    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.0.retain(|t| !t.is_finished());
        self.0.push(tokio::spawn(task));
    }
}

impl Drop for TaskSet {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

impl fmt::Debug for TaskSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskSet({} tasks)", self.0.len())
    }
}

/// State kept across reloads: what [`SetupCtx::keep`] made or carried over, by key.
#[derive(Default)]
pub struct Kept(Vec<(Box<dyn KeepKey>, Arc<dyn Any + Send + Sync>)>);

impl Kept {
    /// The state kept under `key` as a `T`.
    fn find<T: Send + Sync + 'static>(&self, key: &dyn KeepKey) -> Option<Arc<T>> {
        self.0.iter().filter(|(k, _)| k.same(key)).find_map(|(_, v)| v.clone().downcast::<T>().ok())
    }

    /// How many states are kept.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A key of kept state: any comparable value; keys of different types never match.
trait KeepKey: Any + Send + Sync {
    fn same(&self, other: &dyn KeepKey) -> bool;
    fn as_any(&self) -> &dyn Any;
}

impl<K: PartialEq + Send + Sync + 'static> KeepKey for K {
    fn same(&self, other: &dyn KeepKey) -> bool {
        other.as_any().downcast_ref::<K>() == Some(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A plugin's wait before its configuration is swapped in ([`SetupCtx::warm_up`]).
pub(crate) struct WarmUp {
    pub plugin: &'static str,
    pub bound: Duration,
    pub ready: Pin<Box<dyn Future<Output = ()> + Send>>,
}

/// A task to start once the configuration serves ([`SetupCtx::on_serving`]).
pub(crate) type ServingHook = Box<dyn FnOnce(Serving) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// One HTTP endpoint a plugin serves.
pub(crate) struct Route {
    pub handler: Arc<dyn HttpHandler>,
    /// The same handler as `Any`, so a second block's plugin can find and extend it.
    pub any: Arc<dyn Any + Send + Sync>,
    pub plugin: &'static str,
    /// The directive that asked for it, to blame if the address cannot be bound.
    pub pos: Pos,
}

/// Whether an HTTP address is served over TLS, and who said so first.
pub(crate) struct AddrTls {
    pub tls: Option<Arc<HttpTls>>,
    pub plugin: &'static str,
    pub pos: Pos,
}

/// What the plugins of a whole configuration contribute to the server, gathered while building.
#[derive(Default)]
pub struct Contributions {
    pub(crate) http: BTreeMap<HttpAddr, BTreeMap<&'static str, Route>>,
    /// One entry per address of `http`: every route of an address agrees on it.
    pub(crate) http_tls: BTreeMap<HttpAddr, AddrTls>,
    pub(crate) lameduck: Duration,
    pub(crate) reload: Option<ReloadSettings>,
    pub(crate) tasks: TaskSet,
    /// State kept across reloads, whether made by this generation or carried over.
    pub(crate) kept: Kept,
    pub(crate) warm_ups: Vec<WarmUp>,
    /// (block index, hook).
    pub(crate) serving_hooks: Vec<(usize, ServingHook)>,
    /// (block index, its resolver), for the server to bind once zone tables exist.
    pub(crate) resolvers: Vec<(usize, Resolver)>,
    block: BlockContributions,
}

/// What the plugins of the block being built have registered so far.
#[derive(Default)]
struct BlockContributions {
    readiness: Vec<(&'static str, Arc<dyn Readiness>)>,
    /// Names of the chain plugins built so far (those after the one being built).
    chain: Vec<&'static str>,
    /// Log recovered panics with a stack trace (`errors { stacktrace }`).
    stacktrace: bool,
    /// Told the size of every reply.
    replies: Option<Arc<dyn ReplyObserver>>,
    /// Handles provided by plugins after the one being built: (type, provider, `Arc<T>`).
    handles: Vec<(TypeId, &'static str, Box<dyn Any + Send + Sync>)>,
    resolver: Option<Resolver>,
}

/// What the server lends every block of a configuration being built.
pub struct SetupEnv<'g> {
    /// The process's metrics, which outlive reloads.
    pub metrics: &'g Arc<Registry>,
    pub lifecycle: &'g Arc<Lifecycle>,
    pub fatal: &'g Fatal,
    /// What the running configuration keeps; empty at startup.
    pub previous: &'g Kept,
}

/// What `build` may use and register. See the [module documentation](self).
pub struct SetupCtx<'g> {
    block: &'g BlockInfo,
    env: &'g SetupEnv<'g>,
    out: &'g mut Contributions,
}

impl<'g> SetupCtx<'g> {
    /// Starts building `block`.
    pub(crate) fn new(block: &'g BlockInfo, env: &'g SetupEnv<'g>, out: &'g mut Contributions) -> SetupCtx<'g> {
        out.block = BlockContributions::default();
        SetupCtx { block, env, out }
    }

    pub fn block(&self) -> &BlockInfo {
        self.block
    }

    /// The process's metrics, which outlive reloads.
    pub fn metrics(&self) -> &Arc<Registry> {
        self.env.metrics
    }

    /// The process's lifecycle (shutting down or not), for health and readiness endpoints.
    pub fn lifecycle(&self) -> &Arc<Lifecycle> {
        self.env.lifecycle
    }

    /// Runs `task` for as long as this configuration is the running one.
    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.out.tasks.spawn(task);
    }

    /// The state kept under `key`: the running configuration's if it has one of type `T` under
    /// an equal key (or this configuration made one already, in another block), else the one
    /// `make` builds now. Either way the new configuration keeps it, and it lives as long as
    /// some configuration asks for it, through any number of reloads; tasks it runs belong in a
    /// [`TaskSet`] it owns.
    ///
    /// The key is the part of the plugin's configuration the state depends on: the kubernetes
    /// plugin's API connection and filters, not its TTL. A reload that changes the key builds
    /// new state aside and drops the old with the old configuration.
    pub fn keep<K, T>(
        &mut self,
        key: K,
        make: impl FnOnce(&mut SetupCtx<'_>) -> Result<T, Error>,
    ) -> Result<Arc<T>, Error>
    where
        K: PartialEq + Send + Sync + 'static,
        T: Send + Sync + 'static,
    {
        if let Some(state) = self.out.kept.find::<T>(&key) {
            return Ok(state);
        }
        let state = match self.env.previous.find::<T>(&key) {
            Some(state) => state,
            None => Arc::new(make(self)?),
        };
        self.out.kept.0.push((Box::new(key), state.clone()));
        Ok(state)
    }

    /// Holds the swap to this configuration until `ready` completes, for at most `bound`, while
    /// the running configuration keeps serving (see the [module documentation](self)). Every
    /// plugin's wait runs at once; the swap waits for the last.
    pub fn warm_up(&mut self, plugin: &'static str, bound: Duration, ready: impl Future<Output = ()> + Send + 'static) {
        self.out.warm_ups.push(WarmUp { plugin, bound, ready: Box::pin(ready) });
    }

    /// Runs the task `hook` returns once this configuration is serving, told the addresses its
    /// block was bound to. The task belongs to the configuration (it ends with it).
    pub fn on_serving<F, Fut>(&mut self, hook: F)
    where
        F: FnOnce(Serving) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let hook: ServingHook = Box::new(move |serving| Box::pin(hook(serving)));
        self.out.serving_hooks.push((self.block.index, hook));
    }

    /// A resolver that sends names back through the server's chains from the listener a query
    /// of this block arrived on (see [`Resolver`]).
    pub fn resolver(&mut self) -> Resolver {
        if let Some(r) = &self.out.block.resolver {
            return r.clone();
        }
        let r = Resolver::new();
        self.out.block.resolver = Some(r.clone());
        self.out.resolvers.push((self.block.index, r.clone()));
        r
    }

    /// A handle to stop the server with an error (see [`Fatal`]).
    pub fn fatal(&self) -> Fatal {
        self.env.fatal.clone()
    }

    /// Offers `handle` to the plugins of this block built after `plugin` (those before it in
    /// the chain): the one way plugins reach each other's data. One handle per type per block;
    /// a later one replaces an earlier.
    pub fn provide<T: ?Sized + Send + Sync + 'static>(&mut self, plugin: &'static str, handle: Arc<T>) {
        let handles = &mut self.out.block.handles;
        handles.retain(|(t, _, _)| *t != TypeId::of::<Arc<T>>());
        handles.push((TypeId::of::<Arc<T>>(), plugin, Box::new(handle)));
    }

    /// The handle of type `T` a plugin after the caller in this block provided.
    pub fn handle<T: ?Sized + Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.out.block.handles.iter().find_map(|(_, _, h)| h.downcast_ref::<Arc<T>>().cloned())
    }

    /// [`handle`](Self::handle), or an error at `pos`: "`by`: needs the `from` plugin in this
    /// server block".
    pub fn require<T: ?Sized + Send + Sync + 'static>(
        &self,
        by: &'static str,
        from: &str,
        pos: &Pos,
    ) -> Result<Arc<T>, Error> {
        self.handle::<T>().ok_or_else(|| Error::setup(by, pos, format!("needs the {from} plugin in this server block")))
    }

    /// Serves `path` on `addr` with the handler of type `H`, or returns the handler another
    /// block's plugin already registered there, so several blocks share one endpoint (CoreDNS
    /// shares `ready` and `prometheus` listeners by address). Two different plugins on the same
    /// address and path are an error at `pos`.
    pub fn http_endpoint<H: HttpHandler>(
        &mut self,
        plugin: &'static str,
        addr: &HttpAddr,
        path: &'static str,
        pos: &Pos,
        make: impl FnOnce() -> H,
    ) -> Result<Arc<H>, Error> {
        self.http_endpoint_tls(plugin, addr, path, pos, None, make)
    }

    /// [`http_endpoint`](Self::http_endpoint), served over HTTPS with `tls`. TLS belongs to the
    /// address: every endpoint of every block on one address must ask for the same settings
    /// (they then share the first one's certificates), or all for plain HTTP. A mismatch is an
    /// error at `pos`.
    pub fn http_endpoint_tls<H: HttpHandler>(
        &mut self,
        plugin: &'static str,
        addr: &HttpAddr,
        path: &'static str,
        pos: &Pos,
        tls: Option<Arc<HttpTls>>,
        make: impl FnOnce() -> H,
    ) -> Result<Arc<H>, Error> {
        if let Some(first) = self.out.http_tls.get(addr) {
            let by = format!("by {} at {}", first.plugin, first.pos);
            let conflict = match (&first.tls, &tls) {
                (None, None) => None,
                (Some(a), Some(b)) if a.settings == b.settings => None,
                (Some(_), Some(_)) => Some(format!("{addr} is already served over TLS with other settings {by}")),
                (Some(_), None) => {
                    Some(format!("{addr} is served over TLS {by}; {plugin} would serve it in plain HTTP"))
                }
                (None, Some(_)) => Some(format!("{addr} is already served in plain HTTP {by}")),
            };
            if let Some(message) = conflict {
                return Err(Error::setup(plugin, pos, message));
            }
        } else {
            self.out.http_tls.insert(addr.clone(), AddrTls { tls, plugin, pos: pos.clone() });
        }
        let routes = self.out.http.entry(addr.clone()).or_default();
        if let Some(route) = routes.get(path) {
            return match route.any.clone().downcast::<H>() {
                Ok(h) => Ok(h),
                Err(_) => Err(Error::setup(
                    plugin,
                    pos,
                    format!("{addr}{path} is already served by the {} plugin", route.plugin),
                )),
            };
        }
        let handler = Arc::new(make());
        routes.insert(path, Route { handler: handler.clone(), any: handler.clone(), plugin, pos: pos.clone() });
        Ok(handler)
    }

    /// Lets the `ready` plugin of this block poll `readiness` under `plugin`'s name.
    pub fn report_readiness(&mut self, plugin: &'static str, readiness: Arc<dyn Readiness>) {
        self.out.block.readiness.push((plugin, readiness));
    }

    /// What plugins built so far in this block report (those after the caller in the chain).
    pub fn block_readiness(&self) -> Vec<(&'static str, Arc<dyn Readiness>)> {
        self.out.block.readiness.clone()
    }

    /// Records that a chain plugin was built (the server calls this).
    pub(crate) fn note_built(&mut self, name: &'static str) {
        self.out.block.chain.push(name);
    }

    /// The chain plugins of this block built so far: those that come after the plugin being
    /// built, which are the ones whose answers it will see.
    pub fn plugins_after(&self) -> &[&'static str] {
        &self.out.block.chain
    }

    /// Asks the server to log a stack trace with every panic it recovers from while answering
    /// for this block (`errors { stacktrace }`).
    pub fn log_panic_stacktraces(&mut self) {
        self.out.block.stacktrace = true;
    }

    /// Whether a plugin of this block asked for [`log_panic_stacktraces`](Self::log_panic_stacktraces).
    pub(crate) fn panic_stacktraces(&self) -> bool {
        self.out.block.stacktrace
    }

    /// Asks the server to tell `observer` the size of every reply it writes for this block.
    /// One observer per block; a later call replaces an earlier.
    pub fn observe_replies(&mut self, observer: Arc<dyn ReplyObserver>) {
        self.out.block.replies = Some(observer);
    }

    /// The block's reply observer, if a plugin asked for one.
    pub(crate) fn reply_observer(&self) -> Option<Arc<dyn ReplyObserver>> {
        self.out.block.replies.clone()
    }

    /// Asks the server to keep answering for `d` after a shutdown signal (health's lameduck);
    /// the longest request wins.
    pub fn set_lameduck(&mut self, d: Duration) {
        self.out.lameduck = self.out.lameduck.max(d);
    }

    /// Turns on reloading the Corefile when it changes. Several blocks may ask; the shortest
    /// interval wins.
    pub fn set_reload(&mut self, settings: ReloadSettings) {
        match &self.out.reload {
            Some(s) if s.interval <= settings.interval => {}
            _ => self.out.reload = Some(settings),
        }
    }
}
