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
//!    [`SetupCtx`] so they belong to the generation being built). Plugins of a block are built in
//!    reverse chain order, so a plugin can see what those after it registered (the `ready` plugin
//!    collects the readiness of the plugins after it). Nothing built is visible to queries until
//!    the whole configuration has been built and the server swaps it in; a failed build drops it
//!    all, tasks included.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::corefile::{Directive, Error, Pos};
use crate::dns::Name;
use crate::metrics::Registry;
use crate::plugin::{DynPlugin, Readiness, ReplyObserver};
use crate::server::http::{HttpAddr, HttpHandler};
use crate::server::lifecycle::Lifecycle;
use crate::server::tls::HttpTls;

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
}

/// The reload plugin's settings, which the server's reload loop follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReloadSettings {
    pub interval: Duration,
    pub jitter: Duration,
}

/// Tasks spawned by plugins of one generation; aborted when it is dropped.
#[derive(Default)]
pub struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

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
    pub(crate) tasks: Tasks,
    block_readiness: Vec<(&'static str, Arc<dyn Readiness>)>,
    /// Names of the chain plugins built so far in the current block (those after the one
    /// being built).
    block_chain: Vec<&'static str>,
    /// The current block logs recovered panics with a stack trace (`errors { stacktrace }`).
    block_stacktrace: bool,
    /// Told the size of every reply of the current block.
    block_replies: Option<Arc<dyn ReplyObserver>>,
}

/// What `build` may use and register. See the [module documentation](self).
pub struct SetupCtx<'g> {
    block: &'g BlockInfo,
    metrics: &'g Arc<Registry>,
    lifecycle: &'g Arc<Lifecycle>,
    out: &'g mut Contributions,
}

impl<'g> SetupCtx<'g> {
    pub(crate) fn new(
        block: &'g BlockInfo,
        metrics: &'g Arc<Registry>,
        lifecycle: &'g Arc<Lifecycle>,
        out: &'g mut Contributions,
    ) -> SetupCtx<'g> {
        out.block_readiness.clear();
        out.block_chain.clear();
        out.block_stacktrace = false;
        out.block_replies = None;
        SetupCtx { block, metrics, lifecycle, out }
    }

    pub fn block(&self) -> &BlockInfo {
        self.block
    }

    /// The process's metrics, which outlive reloads.
    pub fn metrics(&self) -> &Arc<Registry> {
        self.metrics
    }

    /// The process's lifecycle (shutting down or not), for health and readiness endpoints.
    pub fn lifecycle(&self) -> &Arc<Lifecycle> {
        self.lifecycle
    }

    /// Runs `task` for as long as this configuration is the running one.
    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.out.tasks.0.push(tokio::spawn(task));
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
        self.out.block_readiness.push((plugin, readiness));
    }

    /// What plugins built so far in this block report (those after the caller in the chain).
    pub fn block_readiness(&self) -> Vec<(&'static str, Arc<dyn Readiness>)> {
        self.out.block_readiness.clone()
    }

    /// Records that a chain plugin was built (the server calls this).
    pub(crate) fn note_built(&mut self, name: &'static str) {
        self.out.block_chain.push(name);
    }

    /// The chain plugins of this block built so far: those that come after the plugin being
    /// built, which are the ones whose answers it will see.
    pub fn plugins_after(&self) -> &[&'static str] {
        &self.out.block_chain
    }

    /// Asks the server to log a stack trace with every panic it recovers from while answering
    /// for this block (`errors { stacktrace }`).
    pub fn log_panic_stacktraces(&mut self) {
        self.out.block_stacktrace = true;
    }

    /// Whether a plugin of this block asked for [`log_panic_stacktraces`](Self::log_panic_stacktraces).
    pub(crate) fn panic_stacktraces(&self) -> bool {
        self.out.block_stacktrace
    }

    /// Asks the server to tell `observer` the size of every reply it writes for this block.
    /// One observer per block; a later call replaces an earlier.
    pub fn observe_replies(&mut self, observer: Arc<dyn ReplyObserver>) {
        self.out.block_replies = Some(observer);
    }

    /// The block's reply observer, if a plugin asked for one.
    pub(crate) fn reply_observer(&self) -> Option<Arc<dyn ReplyObserver>> {
        self.out.block_replies.clone()
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
