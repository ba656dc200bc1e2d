//! What a plugin may hold of the server itself, handed out at setup by
//! [`SetupCtx`](super::setup::SetupCtx):
//!
//! * a [`Resolver`], which sends a name back through the server's own chains (the kubernetes
//!   plugin resolving an ExternalName target, as CoreDNS's does through its server);
//! * [`Serving`], what a hook registered with
//!   [`SetupCtx::on_serving`](super::setup::SetupCtx::on_serving) is told once its configuration
//!   is serving: the addresses its block was bound to (the loop plugin probes them);
//! * [`Fatal`], to stop the server with an error (the loop plugin, on finding a loop).
//!
//! None of these names the server's types: the server implements [`Dispatch`] and binds it
//! late, once the configuration being built has zone tables, so the contract does not depend on
//! the server.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use tokio::sync::watch;

use super::{ErrorKind, ServeError};
use crate::dns::{Name, RecordType, Request, Response};

/// The future of a query sent back through the server's chains.
pub type DispatchFuture = Pin<Box<dyn Future<Output = Result<Response, ServeError>> + Send>>;

/// One listener's zone table as a plugin may reach it: routes a request to the block serving
/// its name, as a client's query is routed, and runs that block's chain.
pub trait Dispatch: Send + Sync + 'static {
    fn dispatch(&self, req: Request) -> DispatchFuture;
}

/// Sends names back through the server's own chains, from the listener the query being
/// answered arrived on. Bound by the server once the configuration has zone tables: before
/// that, and for a configuration that never started, it answers [`ErrorKind::NotReady`].
///
/// Each query it sends is one level deeper than the one it answers for
/// ([`Request::reentrant`]): past [`Request::MAX_DEPTH`] it answers SERVFAIL, so a loop of
/// ExternalNames ends rather than spins.
#[derive(Clone, Default)]
pub struct Resolver {
    /// Indexed like [`Route::server`](crate::dns::Route): one entry per listen address of the
    /// block the resolver was made for.
    tables: Arc<OnceLock<Vec<Arc<dyn Dispatch>>>>,
}

impl Resolver {
    pub(crate) fn new() -> Resolver {
        Resolver::default()
    }

    /// Binds the resolver to the zone tables of its block's listen addresses (the server, once
    /// they exist). A second bind is ignored.
    pub fn bind(&self, tables: Vec<Arc<dyn Dispatch>>) {
        let _ = self.tables.set(tables);
    }

    /// Resolves `name`/`qtype` as the server answers it on the listener `on_behalf_of` arrived
    /// on: the answer of the block that serves the name there (REFUSED if none does).
    pub async fn resolve(&self, on_behalf_of: &Request, name: Name, qtype: RecordType) -> Result<Response, ServeError> {
        let Some(req) = on_behalf_of.reentrant(name, qtype) else {
            return Err(ServeError::new("", ErrorKind::Internal, "query re-entered the server too many times"));
        };
        let table = self.tables.get().and_then(|t| t.get(on_behalf_of.route().server as usize).or(t.first()));
        match table {
            Some(table) => table.dispatch(req).await,
            None => Err(ServeError::new("", ErrorKind::NotReady, "the configuration is not serving yet")),
        }
    }
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bound = self.tables.get().map(Vec::len);
        f.debug_struct("Resolver").field("listeners", &bound).finish()
    }
}

/// What an [`on_serving`](super::setup::SetupCtx::on_serving) hook is told.
#[derive(Clone, Debug)]
pub struct Serving {
    /// The socket addresses the block's DNS listeners are bound to (a wildcard listener gives
    /// the unspecified address and its port).
    pub dns: Vec<SocketAddr>,
}

/// Stops the server with an error, as CoreDNS's plugins do with `log.Fatal`: the message is
/// printed as `[FATAL] plugin/NAME: message`, the server stops at once (no lameduck), and the
/// process exits with status 1. For conditions that make serving pointless or harmful, such as
/// a forwarding loop.
#[derive(Clone)]
pub struct Fatal {
    tx: Arc<watch::Sender<Option<String>>>,
}

impl Fatal {
    /// A handle, and the receiver the server watches.
    pub(crate) fn channel() -> (Fatal, watch::Receiver<Option<String>>) {
        let (tx, rx) = watch::channel(None);
        (Fatal { tx: Arc::new(tx) }, rx)
    }

    /// Stops the server; the first error wins.
    pub fn stop(&self, plugin: &'static str, message: impl fmt::Display) {
        let line = format!("plugin/{plugin}: {message}");
        self.tx.send_if_modified(|slot| {
            if slot.is_some() {
                return false;
            }
            *slot = Some(line);
            true
        });
    }
}

impl fmt::Debug for Fatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Fatal")
    }
}
