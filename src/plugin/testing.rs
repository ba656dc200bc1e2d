//! Plugins and helpers for tests and benchmarks of plugins, so that every test builds its
//! chains, stub plugins and runtimes the same way.
//!
//! ```
//! use clusterdns::dns::{RecordType, Request};
//! use clusterdns::plugin::testing::{self, Pass};
//!
//! let pass = std::sync::Arc::new(Pass::default());
//! let chain = testing::chain(vec![pass.clone(), testing::txt("answer")]);
//! let mut req = Request::synthetic("example.org.", RecordType::A);
//! let resp = testing::run(&chain, &mut req).unwrap();
//! assert_eq!(resp.answer[0].to_string(), "example.org. 0 IN TXT \"answer\"");
//! assert_eq!(pass.runs(), 1);
//! ```

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::setup::{ParseCtx, ParseFn};
use super::{Chain, DynPlugin, ErrorKind, Next, Plugin, ServeError};
use crate::corefile::{Directive, parse_key, parse_str};
use crate::dns::{Name, RData, Rcode, Record, Request, Response};

/// A chain of `plugins`, in the order given.
pub fn chain(plugins: Vec<Arc<dyn DynPlugin>>) -> Chain {
    plugins.into()
}

/// Runs `f` to completion on a new current-thread runtime with time enabled.
pub fn block_on<F: Future>(f: F) -> F::Output {
    runtime().block_on(f)
}

/// A current-thread runtime with time enabled, for tests that run several things on one.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime")
}

/// A current-thread runtime whose clock stands still until the test advances it (timers fire
/// at once when nothing else can run), for periodic behaviour tested without waiting. Unit
/// tests only: it needs tokio's `test-util`, a dev-dependency feature.
#[cfg(test)]
pub fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().expect("a tokio runtime")
}

/// Runs `chain` on `req` to completion.
pub fn run(chain: &Chain, req: &mut Request) -> Result<Response, ServeError> {
    block_on(Next::chain(chain).run(req))
}

/// A plugin that answers with what its function makes of the request.
pub struct Answer<F> {
    name: &'static str,
    f: F,
}

impl<F> Answer<F>
where
    F: Fn(&mut Request) -> Result<Response, ServeError> + Send + Sync + 'static,
{
    pub fn new(name: &'static str, f: F) -> Answer<F> {
        Answer { name, f }
    }
}

impl<F> Plugin for Answer<F>
where
    F: Fn(&mut Request) -> Result<Response, ServeError> + Send + Sync + 'static,
{
    fn name(&self) -> &'static str {
        self.name
    }

    async fn serve<'a>(&'a self, req: &'a mut Request, _next: Next<'a>) -> Result<Response, ServeError> {
        (self.f)(req)
    }
}

/// A plugin named `name` that answers with what `f` makes of the request.
pub fn answer(
    name: &'static str,
    f: impl Fn(&mut Request) -> Result<Response, ServeError> + Send + Sync + 'static,
) -> Arc<dyn DynPlugin> {
    Arc::new(Answer::new(name, f))
}

/// Answers authoritatively with one TXT record holding its name, owned by the name asked: tests
/// can tell which plugin answered from the reply alone.
pub fn txt(name: &'static str) -> Arc<dyn DynPlugin> {
    answer(name, move |req| {
        let mut resp = Response::authoritative(name);
        resp.answer.push(Record::new(req.qname().clone(), 0, RData::Txt(vec![name.as_bytes().into()])));
        Ok(resp)
    })
}

/// Answers with an empty response of `rcode`.
pub fn rcode(name: &'static str, rcode: Rcode) -> Arc<dyn DynPlugin> {
    answer(name, move |_| Ok(Response::with_rcode(name, rcode)))
}

/// Fails every query with an error of `kind` and `message`.
pub fn fail(name: &'static str, kind: ErrorKind, message: &'static str) -> Arc<dyn DynPlugin> {
    answer(name, move |_| Err(ServeError::new(name, kind, message)))
}

/// Panics with `message`.
pub fn panics(message: &'static str) -> Arc<dyn DynPlugin> {
    answer("panics", move |_| panic!("{message}"))
}

/// Counts the queries it sees and hands each on.
#[derive(Default)]
pub struct Pass {
    runs: AtomicUsize,
}

impl Pass {
    /// How many queries it has handed on.
    pub fn runs(&self) -> usize {
        self.runs.load(Ordering::Relaxed)
    }
}

impl Plugin for Pass {
    fn name(&self) -> &'static str {
        "pass"
    }

    async fn serve<'a>(&'a self, req: &'a mut Request, next: Next<'a>) -> Result<Response, ServeError> {
        self.runs.fetch_add(1, Ordering::Relaxed);
        next.run(req).await
    }
}

/// Hands every query on and does nothing else: a chain hop and no more, for benchmarks.
pub struct Relay;

impl Plugin for Relay {
    fn name(&self) -> &'static str {
        "relay"
    }

    async fn serve<'a>(&'a self, req: &'a mut Request, next: Next<'a>) -> Result<Response, ServeError> {
        next.run(req).await
    }
}

/// Runs the rest of the chain twice and returns the second answer, as autopath does with its
/// search names.
pub struct Twice;

impl Plugin for Twice {
    fn name(&self) -> &'static str {
        "twice"
    }

    async fn serve<'a>(&'a self, req: &'a mut Request, next: Next<'a>) -> Result<Response, ServeError> {
        let _ = next.run(req).await;
        next.run(req).await
    }
}

/// Waits once (returns pending a first time, as a plugin waiting on I/O does), then hands on:
/// in front of another plugin it makes a chain that the server must finish on the runtime.
pub struct Yield;

impl Plugin for Yield {
    fn name(&self) -> &'static str {
        "yield"
    }

    async fn serve<'a>(&'a self, req: &'a mut Request, next: Next<'a>) -> Result<Response, ServeError> {
        tokio::task::yield_now().await;
        next.run(req).await
    }
}

/// Zones as text, for comparing a parsed config's zones with a list.
pub fn names(zones: &[Name]) -> Vec<String> {
    zones.iter().map(|z| z.to_string()).collect()
}

/// The config `parse` makes of the `name` directives of the first server block of `corefile`
/// (parsed as the file `/etc/coredns/Corefile`), or the error it gives, as text.
pub fn parse_config<C: Clone + 'static>(corefile: &str, name: &str, parse: ParseFn) -> Result<C, String> {
    let parsed = parse_str("/etc/coredns/Corefile", corefile, &|_| None).map_err(|e| e.to_string())?;
    let block = parsed.blocks.first().ok_or("no server block")?;
    let mut zones: Vec<Name> = Vec::new();
    for key in &block.keys {
        for zone in parse_key(key).map_err(|e| e.to_string())?.zones {
            if !zones.contains(&zone) {
                zones.push(zone);
            }
        }
    }
    let lines: Vec<Directive> = block.directives.iter().filter(|d| d.name.text == name).cloned().collect();
    let config = parse(&lines, &ParseCtx { zones: &zones }).map_err(|e| e.to_string())?;
    Ok(config.as_any().downcast_ref::<C>().expect("the config type parse makes").clone())
}
