//! From received bytes to the one reply: decode, route to a server block, run its chain, encode.
//!
//! Every query gets exactly one reply or none:
//!
//! * undecodable packets are dropped or answered FORMERR/NOTIMP/BADVERS ([`decode`](crate::dns::decode));
//! * a class other than IN, or a name no block serves, is answered REFUSED and counted under the
//!   zone `dropped`, as CoreDNS does;
//! * otherwise the chain of the block whose zone is the longest suffix of the name runs, and its
//!   response (or the rcode of its error) is encoded once.
//!
//! The chain is polled once right here, on the thread that read the packet. When it completes
//! without waiting, which is the common case (zone data, cache hits), the reply is written into
//! the caller's buffer with no task spawned; the query allocates the box of its chain's future
//! and whatever its plugins allocate (one box per hop, see [`plugin`](crate::plugin), and the
//! response's record vectors): 3 allocations for whoami, 5 for errors, prometheus and hosts,
//! pinned by `tests/allocations.rs`. A chain
//! that waits (a forwarded query) is returned as [`Handled::Pending`] for the caller to finish on
//! the async runtime. A panic in a plugin becomes SERVFAIL, a `coredns_panics_total` increment and
//! CoreDNS's log line (`[ERROR] Recovered from panic in server: "dns://:53" boom`, followed by the
//! stack when the block's `errors` plugin asks for `stacktrace`); the server goes on.

use std::any::Any;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use futures_util::FutureExt;

use crate::dns::decode::{Rejected, decode_query};
use crate::dns::encode::{encode_error, encode_response};
use crate::dns::{Class, Name, Proto, Rcode, RecordType, Request, Response, Route};
use crate::metrics::Counter;
use crate::metrics::dns::{DROPPED_ZONE, DnsMetrics, Outcome, ZoneRecorder};
use crate::plugin::handles::{Dispatch, DispatchFuture};
use crate::plugin::setup::BlockInfo;
use crate::plugin::{Chain, ErrorKind, Next, ReplyObserver, ServeError};
use crate::server::panic;

/// A server block as queries see it.
pub struct BlockRt {
    pub chain: Chain,
    pub info: BlockInfo,
    /// Log recovered panics with the stack they happened on (`errors { stacktrace }`).
    pub stacktrace: bool,
    /// Told the size of each reply written for this block (the prometheus plugin).
    pub replies: Option<Arc<dyn ReplyObserver>>,
}

struct ZoneEntry {
    zone: Name,
    block: Arc<BlockRt>,
    route: Route,
}

/// The zones served on one listen address, and where each goes.
pub struct ZoneTable {
    /// Longest zone first, the root zone last.
    entries: Vec<ZoneEntry>,
    dropped: ZoneRecorder,
    panics: Arc<Counter>,
    server: String,
}

/// A listener's current table, as a plugin's [`Resolver`](crate::plugin::handles::Resolver)
/// reaches it: whatever configuration is serving when the query is sent.
impl Dispatch for arc_swap::ArcSwap<ZoneTable> {
    fn dispatch(&self, req: Request) -> DispatchFuture {
        Box::pin(self.load_full().resolve(req))
    }
}

/// How a query arrived.
#[derive(Clone, Copy, Debug)]
pub struct Meta {
    pub client: SocketAddr,
    pub local: SocketAddr,
    pub proto: Proto,
    pub received: Instant,
}

/// What became of one received message.
pub enum Handled {
    /// Nothing is sent.
    Drop,
    /// The reply is in the output buffer.
    Reply,
    /// The chain is waiting; finish it with [`Pending::finish`].
    Pending(Box<Pending>),
}

/// What running a block's chain gives: the request back (its question and EDNS shape the reply)
/// and the chain's result, or the payload of a panic.
type Ran = (Request, Result<Result<Response, ServeError>, Box<dyn Any + Send>>);
type Running = Pin<Box<dyn Future<Output = Ran> + Send>>;

/// Runs `block`'s chain on `req`, catching a panic so the request survives it and can still be
/// answered. The one allocation of a query beyond its plugins' own: this future's box.
fn run_chain(block: Arc<BlockRt>, mut req: Request) -> Running {
    Box::pin(async move {
        let result = AssertUnwindSafe(Next::chain(&block.chain).run(&mut req)).catch_unwind().await;
        (req, result)
    })
}

/// A query whose chain is waiting on I/O.
pub struct Pending {
    fut: Running,
    table: Arc<ZoneTable>,
    block: Arc<BlockRt>,
}

impl Pending {
    /// Runs the chain to completion and writes the reply into `out`.
    pub async fn finish(self, out: &mut Vec<u8>) {
        let (req, result) = self.fut.await;
        self.table.reply(&self.block, &req, result, out);
    }
}

impl ZoneTable {
    /// A table serving `entries` (zone, block, route) on the listener labelled `server`.
    pub fn new(server: &str, metrics: &Arc<DnsMetrics>, entries: Vec<(Name, Arc<BlockRt>, Route)>) -> ZoneTable {
        let mut entries: Vec<ZoneEntry> =
            entries.into_iter().map(|(zone, block, route)| ZoneEntry { zone, block, route }).collect();
        entries.sort_by_key(|e| std::cmp::Reverse(e.zone.wire_len()));
        ZoneTable {
            entries,
            dropped: ZoneRecorder::new(metrics.clone(), server, DROPPED_ZONE, vec![]),
            panics: metrics.panics.with(&[]),
            server: server.to_string(),
        }
    }

    /// The zones served, longest first.
    pub fn zones(&self) -> impl Iterator<Item = &Name> {
        self.entries.iter().map(|e| &e.zone)
    }

    /// The block serving `zone`.
    #[cfg(test)]
    pub(crate) fn block(&self, zone: &Name) -> Option<&Arc<BlockRt>> {
        self.entries.iter().find(|e| e.zone == *zone).map(|e| &e.block)
    }

    /// Handles one received message, writing any immediate reply into `out`.
    ///
    /// The chain is polled once, here: a chain that completes without waiting is answered
    /// without touching the async runtime, and one that waits is handed back as
    /// [`Handled::Pending`], already decoded and routed.
    pub fn handle(self: &Arc<Self>, bytes: &[u8], meta: Meta, out: &mut Vec<u8>) -> Handled {
        let query = match decode_query(bytes) {
            Ok(q) => q,
            Err(Rejected::Drop) => return Handled::Drop,
            Err(Rejected::Reply(reply)) => {
                encode_error(out, &reply);
                return Handled::Reply;
            }
        };
        let mut req = Request::new(query, meta.client, meta.local, meta.proto, meta.received);
        let Some(entry) = self.route(&req) else {
            self.refuse(&req, out);
            return Handled::Reply;
        };
        req.set_route(entry.route);
        let block = entry.block.clone();
        let mut fut = run_chain(block.clone(), req);
        match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready((req, result)) => {
                self.reply(&block, &req, result, out);
                Handled::Reply
            }
            Poll::Pending => Handled::Pending(Box::new(Pending { fut, table: self.clone(), block })),
        }
    }

    /// Answers `req`, a query a plugin sends back through this listener's chains (see
    /// [`Resolver`](crate::plugin::handles::Resolver)): routed as a client's query would be,
    /// REFUSED where no block serves the name, a panic an [`ErrorKind::Internal`] error.
    pub fn resolve(self: Arc<Self>, mut req: Request) -> impl Future<Output = Result<Response, ServeError>> + Send {
        let routed = self.route(&req).map(|e| (e.route, e.block.clone()));
        async move {
            let Some((route, block)) = routed else {
                return Ok(Response::with_rcode("", Rcode::REFUSED));
            };
            req.set_route(route);
            match run_chain(block.clone(), req).await {
                // The plugin that asked reads the answer: records, even from a cache hit.
                (_, Ok(Ok(mut resp))) => {
                    resp.materialize();
                    Ok(resp)
                }
                (_, Ok(result)) => result,
                (_, Err(payload)) => {
                    self.log_panic(&block, &*payload);
                    Err(ServeError::new("", ErrorKind::Internal, "a plugin panicked"))
                }
            }
        }
    }

    /// The entry for the request's name: the longest zone it is in, except that a DS query goes
    /// to the shallowest zone holding the name (the parent side of a delegation), as CoreDNS
    /// routes it; the root zone catches the rest.
    fn route(&self, req: &Request) -> Option<&ZoneEntry> {
        if req.qclass() != Class::IN {
            return None;
        }
        let name = req.qname();
        let mut matches = self.entries.iter().filter(|e| name.is_subdomain_of(&e.zone));
        if req.qtype() == RecordType::DS {
            let all: Vec<&ZoneEntry> = matches.collect();
            return all.iter().rev().find(|e| !e.zone.is_root()).or(all.last()).copied();
        }
        matches.next()
    }

    fn refuse(&self, req: &Request, out: &mut Vec<u8>) {
        let resp = Response::with_rcode("", Rcode::REFUSED);
        let size = encode_response(out, req, &resp).len;
        self.dropped.record(req, &Outcome { rcode: Rcode::REFUSED, plugin: "", size });
    }

    /// Writes the one reply to `req` from what its chain gave: the response, the rcode of its
    /// error, or SERVFAIL after a panic. The block's reply observer is told its size.
    fn reply(
        &self,
        block: &BlockRt,
        req: &Request,
        result: Result<Result<Response, ServeError>, Box<dyn Any + Send>>,
        out: &mut Vec<u8>,
    ) {
        let encoded = match result {
            Ok(Ok(resp)) => encode_response(out, req, &resp),
            Ok(Err(e)) => encode_response(out, req, &Response::with_rcode("", e.rcode())),
            Err(payload) => {
                self.log_panic(block, &*payload);
                encode_response(out, req, &Response::with_rcode("", Rcode::SERVFAIL))
            }
        };
        if let Some(observer) = &block.replies {
            observer.reply_written(req, encoded.len);
        }
    }

    /// Counts a panic and says so as CoreDNS does.
    fn log_panic(&self, block: &BlockRt, payload: &(dyn Any + Send)) {
        self.panics.inc();
        // Taken even when not wanted, so a trace never lingers for a later panic to pick up.
        let trace = panic::take_backtrace();
        let message = panic::message(payload);
        match trace {
            Some(trace) if block.stacktrace => {
                tracing::error!("Recovered from panic in server: {:?} {message}\n{trace}", self.server)
            }
            _ => tracing::error!("Recovered from panic in server: {:?} {message}", self.server),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::build_query;
    use crate::metrics::Registry;
    use crate::plugin::DynPlugin;
    use crate::plugin::testing::{self, Yield};
    use hickory_proto::op::{Message, ResponseCode};

    fn block(zone: &str, plugin: Arc<dyn DynPlugin>) -> (Name, Arc<BlockRt>, Route) {
        chain_block(zone, vec![plugin])
    }

    fn chain_block(zone: &str, plugins: Vec<Arc<dyn DynPlugin>>) -> (Name, Arc<BlockRt>, Route) {
        let zone = Name::parse(zone).unwrap();
        let info = BlockInfo {
            zones: vec![zone.clone()],
            servers: vec!["dns://:53".into()],
            pos: crate::corefile::Pos::new(&"Corefile".into(), 1, 1),
            index: 0,
        };
        let chain = testing::chain(plugins);
        (zone, Arc::new(BlockRt { chain, info, stacktrace: false, replies: None }), Route::default())
    }

    fn table(entries: Vec<(Name, Arc<BlockRt>, Route)>) -> (Arc<ZoneTable>, Arc<DnsMetrics>) {
        let metrics = Arc::new(DnsMetrics::new(&Registry::new()));
        (Arc::new(ZoneTable::new("dns://:53", &metrics, entries)), metrics)
    }

    fn meta() -> Meta {
        let a: SocketAddr = "127.0.0.1:5353".parse().unwrap();
        Meta { client: a, local: a, proto: Proto::Udp, received: Instant::now() }
    }

    fn ask(t: &Arc<ZoneTable>, name: &str, qtype: RecordType) -> Message {
        let mut out = vec![];
        match t.handle(&build_query(1, name, qtype, None), meta(), &mut out) {
            Handled::Reply => Message::from_vec(&out).unwrap(),
            _ => panic!("expected an immediate reply"),
        }
    }

    /// The name of the block's plugin that answered (it puts its name in a TXT record).
    fn answered_by(m: &Message) -> String {
        match &m.answers[0].data {
            hickory_proto::rr::RData::TXT(t) => t.to_string(),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn longest_zone_wins_and_root_catches_the_rest() {
        let (t, _) = table(vec![
            block(".", testing::txt("root")),
            block("example.org", testing::txt("org")),
            block("a.example.org", testing::txt("a")),
        ]);
        assert_eq!(t.zones().map(|z| z.to_string()).collect::<Vec<_>>(), ["a.example.org.", "example.org.", "."]);
        assert_eq!(answered_by(&ask(&t, "x.a.example.org", RecordType::A)), "a");
        assert_eq!(answered_by(&ask(&t, "b.example.org", RecordType::A)), "org");
        assert_eq!(answered_by(&ask(&t, "other.net", RecordType::A)), "root");
        // DS goes to the parent side: the shallowest zone holding the name.
        assert_eq!(answered_by(&ask(&t, "a.example.org", RecordType::DS)), "org");
    }

    #[test]
    fn no_zone_is_refused_and_counted_as_dropped() {
        let (t, metrics) = table(vec![block("example.org", testing::txt("org"))]);
        let m = ask(&t, "example.net", RecordType::A);
        assert_eq!(m.response_code, ResponseCode::Refused);
        assert_eq!(metrics.responses.with(&["dns://:53", "dropped", "", "REFUSED", ""]).get(), 1);
    }

    #[test]
    fn panics_become_servfail_and_are_counted() {
        let (t, metrics) = table(vec![block(".", testing::panics("boom"))]);
        let (m, log) = crate::logging::capture::lines(|| ask(&t, "example.org", RecordType::A));
        assert_eq!(m.response_code, ResponseCode::ServFail);
        assert_eq!(m.queries[0].name().to_string(), "example.org.");
        assert_eq!(metrics.panics.with(&[]).get(), 1);
        assert_eq!(log, [r#"[ERROR] Recovered from panic in server: "dns://:53" boom"#]);
        // The table still answers.
        assert_eq!(ask(&t, "example.org", RecordType::A).response_code, ResponseCode::ServFail);
        assert_eq!(metrics.panics.with(&[]).get(), 2);
    }

    /// `errors { stacktrace }`: the log line carries the stack the panic happened on, whether
    /// the chain panicked at once or after waiting.
    #[test]
    fn panics_in_a_stacktrace_block_are_logged_with_their_stack() {
        crate::server::panic::capture_backtraces();
        let with_trace = |plugins: Vec<Arc<dyn DynPlugin>>| {
            let (zone, rt, route) = chain_block(".", plugins);
            let rt = BlockRt { chain: rt.chain.clone(), info: rt.info.clone(), stacktrace: true, replies: None };
            table(vec![(zone, Arc::new(rt), route)]).0
        };

        let t = with_trace(vec![testing::panics("boom")]);
        let (m, log) = crate::logging::capture::lines(|| ask(&t, "example.org", RecordType::A));
        assert_eq!(m.response_code, ResponseCode::ServFail);
        assert_eq!(log[0], r#"[ERROR] Recovered from panic in server: "dns://:53" boom"#);
        let trace = log[1..].join("\n");
        assert!(trace.contains("clusterdns::plugin::testing"), "{trace}");

        let t = with_trace(vec![Arc::new(Yield), testing::panics("later")]);
        let rt = testing::runtime();
        let (out, log) = crate::logging::capture::lines(|| {
            let mut out = vec![];
            let Handled::Pending(p) = t.handle(&build_query(3, "a.b", RecordType::A, None), meta(), &mut out) else {
                panic!("expected pending");
            };
            rt.block_on(p.finish(&mut out));
            out
        });
        assert_eq!(Message::from_vec(&out).unwrap().response_code, ResponseCode::ServFail);
        assert_eq!(log[0], r#"[ERROR] Recovered from panic in server: "dns://:53" later"#);
        assert!(log[1..].join("\n").contains("clusterdns::plugin::testing"), "{log:?}");

        // A block without the option gets the one line, and no trace is left behind.
        let (t, _) = table(vec![block(".", testing::panics("boom"))]);
        let (_, log) = crate::logging::capture::lines(|| ask(&t, "example.org", RecordType::A));
        assert_eq!(log, [r#"[ERROR] Recovered from panic in server: "dns://:53" boom"#]);
        assert!(crate::server::panic::take_backtrace().is_none());
    }

    #[test]
    fn waiting_chains_are_finished_on_the_runtime() {
        let (t, _) = table(vec![chain_block(".", vec![Arc::new(Yield), testing::rcode("waits", Rcode::NOERROR)])]);
        let mut out = vec![];
        let Handled::Pending(p) = t.handle(&build_query(7, "a.b", RecordType::A, None), meta(), &mut out) else {
            panic!("expected pending");
        };
        testing::block_on(p.finish(&mut out));
        let m = Message::from_vec(&out).unwrap();
        assert_eq!(m.id, 7);
        assert_eq!(m.response_code, ResponseCode::NoError);
    }

    #[test]
    fn chaos_class_is_refused() {
        let (t, _) = table(vec![block(".", testing::txt("root"))]);
        let mut q = build_query(1, "version.bind", RecordType::TXT, None);
        let n = q.len();
        q[n - 1] = 3;
        let mut out = vec![];
        assert!(matches!(t.handle(&q, meta(), &mut out), Handled::Reply));
        assert_eq!(Message::from_vec(&out).unwrap().response_code, ResponseCode::Refused);
    }
}
