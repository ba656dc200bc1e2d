//! The plugin contract.
//!
//! A server block's directives become a **chain** of plugins in the fixed order of
//! [`crate::plugins::ORDER`] (CoreDNS's `plugin.cfg`), whatever order the Corefile lists them in. A
//! query enters the chain at its first plugin; each plugin either answers it or hands it on with
//! `next.run(req)`.
//!
//! # Answering
//!
//! A plugin **returns** its answer. It never writes to the client: the server encodes the one
//! [`Response`] the chain returns, once, after the last plugin has finished. So a plugin that
//! wraps the rest of the chain (`errors`, `log`, `prometheus`, `loadbalance`) sees exactly what
//! will be sent and may change it, and there is no way to answer twice.
//!
//! * `Ok(response)` is an answer, whatever its rcode. NXDOMAIN, NODATA and REFUSED are answers.
//! * `Err(ServeError)` means no answer could be made. The server turns it into a reply with
//!   [`ServeError::rcode`] (SERVFAIL for nearly every kind), in one place, and the `errors` plugin
//!   logs it.
//!
//! # Handing on
//!
//! [`Next`] is `Copy` and is passed by value: a plugin is built without knowing its position,
//! and may run the rest of the chain more than once (autopath tries each search domain; a retrying
//! plugin retries), with another question if it likes
//! ([`Request::set_question`](crate::dns::Request::set_question)). At the end of the chain
//! `next.run` returns a [`ErrorKind::NoNextPlugin`] error, as CoreDNS answers SERVFAIL when a
//! plugin falls through to nothing.
//!
//! `Next` borrows the chain for the length of one query. A plugin that works on after its answer
//! has gone (cache prefetch, serve_stale's refresh) takes [`Next::to_owned`]: an [`OwnedNext`]
//! that holds the chain and may be moved into a task.
//!
//! # Reaching beyond the chain
//!
//! At setup ([`setup::SetupCtx`]) a plugin may provide a typed handle to the plugins before it
//! in its block and require one from those after it (autopath needs the kubernetes plugin's
//! search data); keep state across reloads while its configuration is unchanged; hold the swap
//! of a new configuration until it has warmed up; get a [`handles::Resolver`] that sends a name
//! back through the server's own chains; run a task once the configuration is serving, with
//! its bound addresses; and stop the server with an error ([`handles::Fatal`]).
//!
//! # Cost
//!
//! Authors write a plain `async fn serve`. The chain stores plugins as [`DynPlugin`] trait
//! objects, which box each plugin's future: one small allocation per hop (about 100
//! instructions with mimalloc), measured in `benches/chain.rs`. The server polls the whole chain
//! once on the thread that read the packet; a chain that completes without waiting (a cache hit,
//! a zone lookup) never touches the async runtime's scheduler.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::dns::Rcode;
pub use crate::dns::{Request, Response};

pub mod fall;
pub mod handles;
pub mod lifecycle;
pub mod reactor;
pub mod registry;
pub mod setup;
pub mod testing;

/// One link of a server block's chain. See the [module documentation](self).
pub trait Plugin: Send + Sync + 'static {
    /// The directive name (`whoami`, `hosts`); also the `plugin` label of
    /// `coredns_dns_responses_total` and the prefix of its errors.
    fn name(&self) -> &'static str;

    /// Answers `req`, or hands it on with `next.run(req).await`.
    fn serve<'a>(
        &'a self,
        req: &'a mut Request,
        next: Next<'a>,
    ) -> impl Future<Output = Result<Response, ServeError>> + Send + 'a;

    /// Whether this plugin looks at the sections of the answers `next.run` returns it (log
    /// classifies them, loadbalance reorders them, a cache stores them). An answer kept encoded
    /// ([`Response::wire`]) is turned into records before such a plugin gets it; a plugin that
    /// only reads the rcode and flags or passes answers on (errors, prometheus) says `false`, so
    /// that a cache hit reaches the server still encoded. Such a plugin must not add records
    /// either: the sections of an answer kept encoded are written from its bytes alone. When
    /// unsure, keep the default.
    fn reads_answers(&self) -> bool {
        true
    }
}

/// The boxed future of a plugin in a chain.
pub type ServeFuture<'a> = Pin<Box<dyn Future<Output = Result<Response, ServeError>> + Send + 'a>>;

/// The object-safe form of [`Plugin`], implemented for every plugin; the chain holds these.
pub trait DynPlugin: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn reads_answers(&self) -> bool;
    /// [`Plugin::serve`], boxed; with `materialize`, an answer kept encoded comes back as
    /// records (the caller [reads answers](Plugin::reads_answers)), in the same box.
    fn serve_dyn<'a>(&'a self, req: &'a mut Request, next: Next<'a>, materialize: bool) -> ServeFuture<'a>;
}

impl<P: Plugin> DynPlugin for P {
    fn name(&self) -> &'static str {
        Plugin::name(self)
    }

    fn reads_answers(&self) -> bool {
        Plugin::reads_answers(self)
    }

    fn serve_dyn<'a>(&'a self, req: &'a mut Request, next: Next<'a>, materialize: bool) -> ServeFuture<'a> {
        if !materialize {
            return Box::pin(self.serve(req, next));
        }
        Box::pin(async move {
            let mut result = self.serve(req, next).await;
            if let Ok(resp) = &mut result {
                resp.materialize();
            }
            result
        })
    }
}

/// A server block's plugins in execution order.
pub type Chain = Arc<[Arc<dyn DynPlugin>]>;

/// The rest of the chain after the running plugin. See the [module documentation](self).
#[derive(Clone, Copy)]
pub struct Next<'a> {
    chain: &'a Chain,
    /// The index of the plugin that runs next; the one before it holds this `Next`.
    at: usize,
}

impl<'a> Next<'a> {
    /// The whole of `chain`, for the server to start a query with.
    pub fn chain(chain: &'a Chain) -> Next<'a> {
        Next { chain, at: 0 }
    }

    /// Runs the rest of the chain on `req`. The answer comes back as records when the plugin
    /// holding this `Next` [reads answers](Plugin::reads_answers); the server, which holds the
    /// whole chain, gets an answer kept encoded as it is.
    pub fn run<'r>(self, req: &'r mut Request) -> ServeFuture<'r>
    where
        'a: 'r,
    {
        match self.chain.get(self.at) {
            Some(plugin) => {
                let caller_reads = self.at.checked_sub(1).is_some_and(|i| self.chain[i].reads_answers());
                plugin.serve_dyn(req, Next { chain: self.chain, at: self.at + 1 }, caller_reads)
            }
            None => {
                let caller = self.at.checked_sub(1).map_or("", |i| self.chain[i].name());
                let err = ServeError::new(caller, ErrorKind::NoNextPlugin, "no next plugin found");
                Box::pin(std::future::ready(Err(err)))
            }
        }
    }

    /// True when no plugin follows.
    pub fn is_end(&self) -> bool {
        self.at >= self.chain.len()
    }

    /// The rest of the chain in a form that owns it, for a task that outlives this query.
    /// Costs one reference count.
    pub fn to_owned(&self) -> OwnedNext {
        OwnedNext { chain: self.chain.clone(), at: self.at }
    }
}

/// The rest of a chain, owned: what a background task runs after the query that started it has
/// been answered (cache prefetch, serve_stale's refresh). It keeps that configuration's plugins
/// alive until it is dropped, even across a reload.
#[derive(Clone)]
pub struct OwnedNext {
    chain: Chain,
    at: usize,
}

impl OwnedNext {
    /// Borrows it back as a [`Next`].
    pub fn as_next(&self) -> Next<'_> {
        Next { chain: &self.chain, at: self.at }
    }

    /// Runs the rest of the chain on `req`.
    pub fn run<'r>(&'r self, req: &'r mut Request) -> ServeFuture<'r> {
        self.as_next().run(req)
    }
}

/// What kind of failure kept a plugin from answering; decides the rcode the client gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The query is malformed in a way only this plugin could tell. FORMERR.
    BadQuery,
    /// The plugin will not answer this client or query. REFUSED.
    Refused,
    /// An upstream server or backend failed or timed out. SERVFAIL.
    Upstream,
    /// The plugin's data is not ready (e.g. before the first sync with the Kubernetes API).
    /// SERVFAIL: never a false NXDOMAIN.
    NotReady,
    /// The chain ended without an answer. SERVFAIL.
    NoNextPlugin,
    /// A fault of ours: a bug, a panic, resource exhaustion. SERVFAIL, and worth a log line.
    Internal,
}

/// Why a plugin could not answer. Displayed as CoreDNS does: `plugin/forward: no healthy upstreams`.
#[derive(Debug)]
pub struct ServeError {
    plugin: &'static str,
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ServeError {
    pub fn new(plugin: &'static str, kind: ErrorKind, message: impl Into<String>) -> ServeError {
        ServeError { plugin, kind, message: message.into(), source: None }
    }

    /// An error caused by `source`, whose text follows the message.
    pub fn with_source(
        plugin: &'static str,
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> ServeError {
        ServeError { plugin, kind, message: message.into(), source: Some(Box::new(source)) }
    }

    pub fn plugin(&self) -> &'static str {
        self.plugin
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The rcode the client gets for this error: the one place errors become rcodes.
    pub fn rcode(&self) -> Rcode {
        match self.kind {
            ErrorKind::BadQuery => Rcode::FORMERR,
            ErrorKind::Refused => Rcode::REFUSED,
            ErrorKind::Upstream | ErrorKind::NotReady | ErrorKind::NoNextPlugin | ErrorKind::Internal => {
                Rcode::SERVFAIL
            }
        }
    }
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.plugin.is_empty() {
            f.write_str(&self.message)?;
        } else {
            write!(f, "plugin/{}: {}", self.plugin, self.message)?;
        }
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ServeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Told the size of every reply the server writes for a server block (registered at setup with
/// [`setup::SetupCtx::observe_replies`]): the bytes that go on the wire, after truncation, which
/// no plugin can know because the server encodes once the whole chain has returned. The
/// prometheus plugin's `coredns_dns_response_size_bytes`.
pub trait ReplyObserver: Send + Sync + 'static {
    fn reply_written(&self, req: &Request, len: usize);
}

/// Implemented by plugins that report readiness to the `ready` plugin (registered at setup with
/// [`setup::SetupCtx::report_readiness`]).
pub trait Readiness: Send + Sync + 'static {
    /// True once the plugin can answer correctly (e.g. its data has synced).
    fn ready(&self) -> bool;
}

#[cfg(test)]
mod tests {
    use super::testing::{self, Pass, Twice};
    use super::*;
    use crate::dns::RecordType;

    #[test]
    fn chain_runs_in_order_and_the_answer_comes_back() {
        let pass = Arc::new(Pass::default());
        let chain = testing::chain(vec![pass.clone(), testing::txt("answer")]);
        let mut req = Request::synthetic("example.org.", RecordType::A);
        let resp = testing::run(&chain, &mut req).unwrap();
        assert_eq!(resp.plugin(), "answer");
        assert_eq!(pass.runs(), 1);
    }

    #[test]
    fn falling_off_the_end_is_servfail_naming_the_last_plugin() {
        let chain = testing::chain(vec![Arc::new(Pass::default())]);
        let mut req = Request::synthetic("example.org.", RecordType::A);
        let err = testing::run(&chain, &mut req).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NoNextPlugin);
        assert_eq!(err.rcode(), Rcode::SERVFAIL);
        assert_eq!(err.to_string(), "plugin/pass: no next plugin found");
    }

    #[test]
    fn next_can_run_the_rest_twice() {
        let pass = Arc::new(Pass::default());
        let chain = testing::chain(vec![Arc::new(Twice), pass.clone(), testing::txt("answer")]);
        let mut req = Request::synthetic("example.org.", RecordType::A);
        assert!(testing::run(&chain, &mut req).is_ok());
        assert_eq!(pass.runs(), 2);
    }

    /// An answer kept encoded reaches plugins that read answers as records, passes the others
    /// as it is, and reaches the server encoded when nobody in front reads it.
    #[test]
    fn encoded_answers_are_records_for_plugins_that_read_answers() {
        use crate::dns::{RData, Record, WireAnswer};
        struct Peek(bool, std::sync::Mutex<Vec<(bool, usize)>>);
        impl Plugin for Peek {
            fn name(&self) -> &'static str {
                "peek"
            }
            fn reads_answers(&self) -> bool {
                self.0
            }
            async fn serve<'a>(&'a self, req: &'a mut Request, next: Next<'a>) -> Result<Response, ServeError> {
                let resp = next.run(req).await?;
                self.1.lock().unwrap().push((resp.wire().is_some(), resp.answer.len()));
                Ok(resp)
            }
        }
        let encoded = testing::answer("encoded", |req| {
            let a = Record::new(req.qname().clone(), 60, RData::A([10, 0, 0, 1].into()));
            Ok(Response::new("encoded").with_wire(WireAnswer::new(req.qname(), [vec![a], vec![], vec![]]), Some(5)))
        });
        let (reader, passer) = (Arc::new(Peek(true, Default::default())), Arc::new(Peek(false, Default::default())));
        let mut req = Request::synthetic("example.org.", RecordType::A);
        let chain = testing::chain(vec![reader.clone(), passer.clone(), encoded.clone()]);
        let resp = testing::run(&chain, &mut req).unwrap();
        assert_eq!(*passer.1.lock().unwrap(), [(true, 0)]);
        assert_eq!(*reader.1.lock().unwrap(), [(false, 1)]);
        assert_eq!(resp.answer[0].to_string(), "example.org. 5 IN A 10.0.0.1");
        let chain = testing::chain(vec![passer.clone(), encoded]);
        let resp = testing::run(&chain, &mut req).unwrap();
        assert!(resp.wire().is_some() && resp.answer.is_empty());
    }

    /// The owned form outlives the query that made it: a task runs the rest of the chain after
    /// the plugin that spawned it has answered.
    #[test]
    fn the_owned_rest_of_the_chain_runs_in_a_task_after_the_answer() {
        struct Later(std::sync::Mutex<Option<tokio::task::JoinHandle<Result<Response, ServeError>>>>);
        impl Plugin for Later {
            fn name(&self) -> &'static str {
                "later"
            }
            async fn serve<'a>(&'a self, req: &'a mut Request, next: Next<'a>) -> Result<Response, ServeError> {
                let (rest, mut copy) = (next.to_owned(), req.clone());
                let task = tokio::spawn(async move { rest.run(&mut copy).await });
                *self.0.lock().unwrap() = Some(task);
                Ok(Response::new("later"))
            }
        }
        let later = Arc::new(Later(Default::default()));
        let pass = Arc::new(Pass::default());
        let chain = testing::chain(vec![later.clone(), pass.clone(), testing::txt("answer")]);
        testing::block_on(async {
            let mut req = Request::synthetic("example.org.", RecordType::A);
            let first = Next::chain(&chain).run(&mut req).await.unwrap();
            assert_eq!(first.plugin(), "later");
            drop(chain);
            let task = later.0.lock().unwrap().take().unwrap();
            assert_eq!(task.await.unwrap().unwrap().plugin(), "answer");
        });
        assert_eq!(pass.runs(), 1);
    }
}
