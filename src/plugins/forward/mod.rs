//! *forward*: sends queries to upstream resolvers and passes their answers on as they gave them.
//!
//! A query whose name is under FROM and not under an `except` name is forwarded; any other goes
//! to the next `forward` line of the block, then to the next plugin. For each forwarded query:
//!
//! 1. `max_concurrent`: past the limit the query is answered REFUSED at once
//!    (`coredns_forward_max_concurrent_rejects_total`), which is no upstream's fault.
//! 2. **Coalescing** (beyond CoreDNS): a query identical to one already being forwarded (same
//!    name as spelled, type, class, flags and OPT record, same transport) waits for that one's
//!    answer instead of asking again. A burst of clients asking one name that is not cached
//!    costs the upstream one query.
//! 3. The upstreams are ordered by `policy` and tried in turn, as CoreDNS's loop does: an
//!    upstream marked down (more than `max_fails` failed health checks) is skipped; a failed
//!    exchange starts its health check and moves on to the next; an answer whose rcode is in
//!    `failover` moves on too, until every upstream has been asked. The attempts are bounded by
//!    `max_connect_attempts` (two per upstream by default) and the whole query by 5 seconds.
//! 4. When every upstream is down, one random upstream is asked once
//!    (`coredns_forward_healthcheck_broken_total`), or none with
//!    `failfast_all_unhealthy_upstreams`. CoreDNS keeps looping over the list until its deadline
//!    then, which turns an outage into a query storm against the upstreams (coredns#5897); here
//!    a query whose one attempt failed ends with SERVFAIL.
//! 5. The transport is the client's, or TCP with `force_tcp`, or UDP with `prefer_udp`. A UDP
//!    answer with TC set is asked again over TCP, so a client gets the whole answer, or a
//!    correctly truncated one from the server's encoder if it does not fit the client's limit
//!    (coredns#4183 passed truncated answers on without TC to clients without EDNS). If the TCP
//!    attempt fails, the truncated answer is passed on with TC set.
//!
//! The answer is the upstream's message ([`Message::into_response`]): every record, DNSSEC
//! records byte for byte, AD, the extended rcode and the EDNS options (extended DNS errors
//! among them), less the options that belong to the hop between this server and the upstream
//! (COOKIE, edns-tcp-keepalive, padding).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use crate::dns::edns::code as opt;
use crate::dns::{Message, Name, Question, Rcode, Request, Response};
use crate::plugin::{ErrorKind, Next, Plugin, ServeError};

mod metrics;
mod pool;
mod setup;
mod tls;
mod udp;
mod upstream;

use metrics::Transport;
pub use setup::parse;
use upstream::Upstream;

pub const NAME: &str = "forward";

/// CoreDNS's `defaultTimeout`: the most a forwarded query may take, all attempts included.
const QUERY_DEADLINE: Duration = Duration::from_secs(5);

/// How the upstreams of a query are ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    Random,
    RoundRobin,
    Sequential,
}

/// See the [module documentation](self): the `forward` lines of a block, tried in order.
pub struct Forward {
    stanzas: Vec<Stanza>,
}

impl Plugin for Forward {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve<'a>(&'a self, req: &'a mut Request, next: Next<'a>) -> Result<Response, ServeError> {
        for (i, s) in self.stanzas.iter().enumerate() {
            if !s.matches(req.qname()) {
                continue;
            }
            let m = s.forward(req).await?;
            // `next RCODE`: the following forward line gets the query (CoreDNS: only when the
            // next plugin is a forward; otherwise the answer stands).
            if i + 1 < self.stanzas.len() && s.next.contains(&m.rcode) {
                continue;
            }
            return Ok(respond(m));
        }
        next.run(req).await
    }
}

/// The upstream's message as this plugin's answer.
fn respond(m: Message) -> Response {
    let mut r = m.into_response(NAME);
    // Options of the hop between this server and the upstream, not the client's.
    for code in [opt::COOKIE, opt::TCP_KEEPALIVE, opt::PADDING] {
        r.options.remove(code);
    }
    r
}

/// What followers of a coalesced query are told.
type Shared = Arc<Result<Message, (ErrorKind, String)>>;

/// A query being forwarded that identical ones wait for.
struct Flight {
    tx: broadcast::Sender<Shared>,
    /// The IDs it was sent upstream with. A query arriving with one of them is this very query
    /// come back through a forwarding loop: waiting for it would be waiting for ourselves, and
    /// would hide the loop from the loop plugin, so it is forwarded on its own.
    ids: Mutex<Vec<u16>>,
}

/// One `forward` line, built.
pub struct Stanza {
    from: Name,
    except: Box<[Name]>,
    upstreams: Box<[Arc<Upstream>]>,
    policy: Policy,
    round_robin: AtomicUsize,
    force_tcp: bool,
    prefer_udp: bool,
    max_fails: u32,
    /// 0: no limit but the deadline.
    max_connect_attempts: u32,
    max_concurrent: u32,
    concurrent: AtomicU32,
    next: Vec<Rcode>,
    failover: Vec<Rcode>,
    failfast: bool,
    families: metrics::Families,
    /// Queries being forwarded, by transport and query bytes (ID zeroed).
    inflight: Mutex<HashMap<Vec<u8>, Arc<Flight>>>,
}

impl Stanza {
    fn new(c: &setup::StanzaConfig, upstreams: Vec<Arc<Upstream>>, families: metrics::Families) -> Stanza {
        let n = upstreams.len() as u32;
        Stanza {
            from: c.from.clone(),
            except: c.except.clone().into(),
            upstreams: upstreams.into(),
            policy: c.policy,
            round_robin: AtomicUsize::new(0),
            force_tcp: c.force_tcp,
            prefer_udp: c.prefer_udp,
            max_fails: c.max_fails,
            max_connect_attempts: c.max_connect_attempts.unwrap_or(2 * n),
            max_concurrent: c.max_concurrent,
            concurrent: AtomicU32::new(0),
            next: c.next.clone(),
            failover: c.failover.clone(),
            failfast: c.failfast,
            families,
            inflight: Mutex::new(HashMap::new()),
        }
    }

    /// Under FROM, and FROM itself or under no `except` name (CoreDNS's `match`).
    fn matches(&self, qname: &Name) -> bool {
        qname.is_subdomain_of(&self.from)
            && (*qname == self.from || !self.except.iter().any(|e| qname.is_subdomain_of(e)))
    }

    async fn forward(&self, req: &Request) -> Result<Message, ServeError> {
        let _slot = match self.max_concurrent {
            0 => None,
            max => {
                let slot = Slot::take(&self.concurrent);
                if slot.count > max {
                    self.families.max_concurrent_rejects.inc();
                    return Err(ServeError::new(
                        NAME,
                        ErrorKind::Refused,
                        format!("concurrent queries exceeded maximum {max}"),
                    ));
                }
                Some(slot)
            }
        };
        let transport = if self.force_tcp {
            Transport::Tcp
        } else if self.prefer_udp {
            Transport::Udp
        } else {
            match req.proto() {
                crate::dns::Proto::Udp => Transport::Udp,
                crate::dns::Proto::Tcp => Transport::Tcp,
            }
        };
        let mut key = Vec::with_capacity(req.len() + 16);
        key.push(transport as u8);
        let mut wire = Vec::with_capacity(req.len() + 16);
        req.encode_query(0, &mut wire);
        key.extend_from_slice(&wire);

        let flight = {
            let mut inflight = self.inflight.lock().expect("inflight lock");
            match inflight.get(&key) {
                // Subscribed under the lock: the leader sends under it too, so no answer is missed.
                Some(f) => Err((f.clone(), f.tx.subscribe())),
                None => {
                    let f = Arc::new(Flight { tx: broadcast::channel(1).0, ids: Mutex::new(Vec::new()) });
                    inflight.insert(key.clone(), f.clone());
                    Ok(f)
                }
            }
        };
        let flight = match flight {
            Ok(f) => f,
            Err((f, mut rx)) => {
                if f.ids.lock().expect("flight lock").contains(&req.id()) {
                    return self.resolve(&mut wire, req.question(), transport, Some(&f)).await;
                }
                drop(f);
                return match rx.recv().await {
                    Ok(shared) => match &*shared {
                        Ok(m) => Ok(m.clone()),
                        Err((kind, message)) => Err(ServeError::new(NAME, *kind, message.clone())),
                    },
                    // The query we waited for was dropped unanswered: ask ourselves.
                    Err(_) => self.resolve(&mut wire, req.question(), transport, None).await,
                };
            }
        };
        let leader = Leader { stanza: self, key: Some(key) };
        let result = self.resolve(&mut wire, req.question(), transport, Some(&flight)).await;
        leader.finish(&result);
        result
    }

    /// The upstreams in the order this query tries them.
    fn order(&self) -> Vec<usize> {
        let n = self.upstreams.len();
        let mut order: Vec<usize> = (0..n).collect();
        match self.policy {
            Policy::Random => fastrand::shuffle(&mut order),
            Policy::RoundRobin => {
                let start = self.round_robin.fetch_add(1, Ordering::Relaxed) % n;
                order.rotate_left(start);
            }
            Policy::Sequential => {}
        }
        order
    }

    /// Asks the upstreams (see the [module documentation](self)) for the answer to `wire`.
    async fn resolve(
        &self,
        wire: &mut [u8],
        question: &Question,
        transport: Transport,
        flight: Option<&Flight>,
    ) -> Result<Message, ServeError> {
        let n = self.upstreams.len();
        let order = self.order();
        let deadline = Instant::now() + QUERY_DEADLINE;
        let (mut i, mut skipped, mut attempts, mut failovers) = (0, 0, 0u32, 0);
        let mut last_err: Option<(String, upstream::ExchangeError)> = None;
        let mut last_failover: Option<Message> = None;
        while Instant::now() < deadline && (self.max_connect_attempts == 0 || attempts < self.max_connect_attempts) {
            if i >= n {
                i = 0;
                skipped = 0;
            }
            let mut u = &self.upstreams[order[i]];
            i += 1;
            let mut all_down = false;
            if u.down(self.max_fails) {
                skipped += 1;
                if skipped < n {
                    continue;
                }
                self.families.healthcheck_broken.inc();
                if self.failfast {
                    break;
                }
                u = &self.upstreams[fastrand::usize(..n)];
                all_down = true;
            }
            attempts += 1;
            let id = fastrand::u16(..);
            wire[..2].copy_from_slice(&id.to_be_bytes());
            if let Some(f) = flight {
                f.ids.lock().expect("flight lock").push(id);
            }
            u.metrics.request();
            let start = Instant::now();
            let mut result = u.exchange(wire, id, question, transport, deadline).await;
            if let Ok(m) = &result
                && m.tc()
                && transport == Transport::Udp
            {
                // The whole answer over TCP; if the upstream cannot give it, the truncated one
                // goes to the client with TC set, which then asks over TCP itself.
                if let Ok(full) = u.exchange(wire, id, question, Transport::Tcp, deadline).await {
                    result = Ok(full);
                }
            }
            match result {
                Err(e) => {
                    if self.max_fails != 0 {
                        u.healthcheck();
                    }
                    last_err = Some((u.label.clone(), e));
                    if all_down {
                        break;
                    }
                }
                Ok(m) => {
                    u.metrics.answered(m.rcode, start.elapsed().as_secs_f64());
                    if self.failover.contains(&m.rcode) {
                        failovers += 1;
                        if failovers < n {
                            last_failover = Some(m);
                            continue;
                        }
                    }
                    return Ok(m);
                }
            }
        }
        if let Some(m) = last_failover {
            return Ok(m);
        }
        match last_err {
            Some((to, e)) => Err(ServeError::with_source(NAME, ErrorKind::Upstream, format!("upstream {to}"), e)),
            None => Err(ServeError::new(NAME, ErrorKind::Upstream, "no healthy proxies")),
        }
    }
}

/// One place under `max_concurrent`, given back when dropped.
struct Slot<'a> {
    counter: &'a AtomicU32,
    count: u32,
}

impl<'a> Slot<'a> {
    fn take(counter: &'a AtomicU32) -> Slot<'a> {
        let count = counter.fetch_add(1, Ordering::AcqRel) + 1;
        Slot { counter, count }
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The query others wait for; if it is dropped before it finishes, its entry goes and the
/// waiters ask for themselves.
struct Leader<'a> {
    stanza: &'a Stanza,
    key: Option<Vec<u8>>,
}

impl Leader<'_> {
    /// Tells the waiters, if any: the answer is copied only when someone waits for it.
    fn finish(mut self, result: &Result<Message, ServeError>) {
        let key = self.key.take().expect("finished once");
        let mut inflight = self.stanza.inflight.lock().expect("inflight lock");
        if let Some(f) = inflight.remove(&key)
            && f.tx.receiver_count() > 0
        {
            let shared = match result {
                Ok(m) => Ok(m.clone()),
                Err(e) => Err((e.kind(), e.to_string().trim_start_matches("plugin/forward: ").to_string())),
            };
            let _ = f.tx.send(Arc::new(shared));
        }
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.stanza.inflight.lock().expect("inflight lock").remove(&key);
        }
    }
}
