//! DNS over TCP (RFC 7766): length-prefixed messages, pipelined queries answered as each
//! completes, timeouts, and connection limits that no client can monopolise.
//!
//! # One task per connection, no per-query task or channel
//!
//! A connection is one task that does everything itself: it reads whatever the client has sent
//! in one `read` into a buffer of its worker thread (not its own: an idle connection owns no
//! buffer), answers every whole message in it through [`ZoneTable::handle`], and writes all the
//! replies with one `write`. NodeLocal DNSCache forwarding to kube-dns with `force_tcp` keeps
//! long-lived connections with many queries in flight, so a read often holds several queries:
//! three system calls answer all of them (the read, the read that finds nothing more, the
//! write). A query whose chain waits (a forwarded one) is kept in the task's own set of waiting
//! futures, polled by the same task, and its reply written when it completes; at most
//! [`MAX_IN_FLIGHT`] wait per connection, beyond which reading pauses.
//!
//! Replies the client does not read stay with the connection (its own buffer, only then
//! allocated) and reading pauses until they are written: a client that stops reading stalls
//! only itself, and the write timeout closes it.
//!
//! Per query the hot path allocates what the dispatch does (the chain's future) and nothing
//! here; per read batch, nothing; per waiting query, the box of its future and its reply buffer.
//!
//! # Timeouts
//!
//! CoreDNS's, set by the `timeouts` plugin ([`TcpSettings`]): the first message must arrive
//! within `read` (3 s) of the connection being accepted; each later one within `idle` (10 s)
//! of the last progress (a message read, a reply written); while replies wait to be written,
//! the client must read some within `write` (5 s). A connection answering a query has no
//! timeout of its own: the chain's bound it. `maxtcpqueries` closes a connection after that
//! many queries, once their replies are written. The [`table`] applies the timeouts once a
//! second, so each connection has no timer of its own.
//!
//! # Limits
//!
//! See [`table`]: per client address, per listen address, and the process's descriptor
//! budget; when full, the longest-idle connection is closed for the newcomer.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::dispatch::{Handled, Meta, ZoneTable};
use super::inflight::{InFlight, InFlightGuard};
use crate::dns::Proto;

pub mod table;
use table::{Admitted, Conns, ListenerId};

/// Queries of one connection waiting on their chain at once; reading pauses beyond this.
pub const MAX_IN_FLIGHT: usize = 64;
/// Bytes asked of the kernel per read.
const READ_CHUNK: usize = 64 * 1024;
/// Reads per poll before the task yields to others (each read may carry many queries).
const READS_PER_POLL: usize = 16;

/// The TCP side of a listen address: CoreDNS's timeouts (the `timeouts` plugin) and
/// clusterdns's connection limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSettings {
    /// The first message of a connection must be read within this of the accept (3 s).
    pub read: Duration,
    /// Replies waiting to be written must see the client read some within this (5 s).
    pub write: Duration,
    /// An idle connection is closed after this without a message (10 s).
    pub idle: Duration,
    /// Queries one connection carries before it is closed; `None` for no limit (the default).
    pub max_queries: Option<NonZeroU32>,
    /// Connections this listen address holds at once; `None`: the process's budget.
    pub max_connections: Option<NonZeroUsize>,
    /// Connections one client address holds on this listen address at once; `None`: a tenth
    /// of what the listen address may hold.
    pub max_per_client: Option<NonZeroUsize>,
}

impl Default for TcpSettings {
    /// CoreDNS's defaults (`core/dnsserver/server.go`).
    fn default() -> TcpSettings {
        TcpSettings {
            read: Duration::from_secs(3),
            write: Duration::from_secs(5),
            idle: Duration::from_secs(10),
            max_queries: None,
            max_connections: None,
            max_per_client: None,
        }
    }
}

/// Accepts connections on `listener` (registered in `conns` as `id`) until `stop` turns true;
/// then its connections drain.
pub async fn serve(
    listener: TcpListener,
    table: Arc<ArcSwap<ZoneTable>>,
    conns: Arc<Conns>,
    id: ListenerId,
    mut stop: watch::Receiver<bool>,
    inflight: Arc<InFlight>,
) {
    let local = listener.local_addr().expect("bound listener has an address");
    let mut failing_since: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            a = listener.accept() => a,
        };
        let (stream, client) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors and the like: say so once while it lasts, and back off
                // instead of spinning.
                if failing_since.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!("tcp {local}: accept failed: {e}");
                    failing_since = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Some(admitted) = conns.admit(id, client.ip()) else {
            // Refused: the client sees the connection closed before any reply and may retry.
            drop(stream);
            continue;
        };
        let c = Connection::new(stream, admitted, client, local, table.clone(), conns.clone(), inflight.enter());
        tokio::spawn(c);
    }
    conns.drain_listener(id);
}

/// The buffers a worker thread lends the connection it is polling.
struct Scratch {
    /// What was read: the connection's partial message first, then what the kernel gave.
    read: Box<[u8]>,
    /// One reply as the dispatch encodes it.
    reply: Vec<u8>,
    /// Replies framed for the wire, written at the end of the poll.
    write: Vec<u8>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch {
        // A partial message (at most 2 + 65,535 bytes) followed by a read.
        read: vec![0; 2 + u16::MAX as usize + READ_CHUNK].into_boxed_slice(),
        reply: Vec::with_capacity(4096),
        write: Vec::with_capacity(16 * 1024),
    });
}

type Waiting = Pin<Box<dyn Future<Output = Vec<u8>> + Send>>;

/// One connection, polled as its own task (see the [module documentation](self)).
struct Connection {
    stream: TcpStream,
    admitted: Admitted,
    client: SocketAddr,
    local: SocketAddr,
    table: Arc<ArcSwap<ZoneTable>>,
    conns: Arc<Conns>,
    _inflight: InFlightGuard,
    /// The start of a message not read in full yet; empty (and unallocated) between messages.
    partial: Vec<u8>,
    /// Replies the client has not read yet; empty (and unallocated) while it keeps up.
    unsent: Vec<u8>,
    /// Queries whose chain waits; created on the first.
    waiting: Option<FuturesUnordered<Waiting>>,
    /// Queries still allowed on this connection (`maxtcpqueries`).
    queries_left: Option<u32>,
    /// False once the client closed its side, the query limit is reached, or the listener stops.
    reading: bool,
    /// A whole message has been read (the read timeout gives way to the idle one).
    read_one: bool,
}

impl Connection {
    fn new(
        stream: TcpStream,
        admitted: Admitted,
        client: SocketAddr,
        local: SocketAddr,
        table: Arc<ArcSwap<ZoneTable>>,
        conns: Arc<Conns>,
        inflight: InFlightGuard,
    ) -> Connection {
        // Replies go out as soon as they are written; Nagle would hold back a second reply
        // until the first is acknowledged.
        let _ = stream.set_nodelay(true);
        let queries_left = admitted.max_queries.map(NonZeroU32::get);
        Connection {
            stream,
            admitted,
            client,
            local,
            table,
            conns,
            _inflight: inflight,
            partial: Vec::new(),
            unsent: Vec::new(),
            waiting: None,
            queries_left,
            reading: true,
            read_one: false,
        }
    }

    fn in_flight(&self) -> usize {
        self.waiting.as_ref().map_or(0, FuturesUnordered::len)
    }

    /// One poll: replies of chains that waited, then reads, then one write of every reply.
    /// `Ready` when the connection is done (closed by either side, or drained).
    fn poll_once(&mut self, cx: &mut Context<'_>, s: &mut Scratch) -> Poll<()> {
        self.admitted.conn.register(cx.waker());
        if !self.admitted.conn.enter() {
            return Poll::Ready(());
        }
        if self.admitted.conn.draining() {
            self.reading = false;
        }
        s.write.clear();
        self.poll_waiting(cx, &mut s.write);
        let mut progress = None;
        let mut failed = false;
        if self.reading && self.unsent.is_empty() {
            let before = self.in_flight();
            match self.read(cx, s) {
                Ok(at) => progress = at,
                Err(_) => failed = true,
            }
            // Chains that began to wait were polled once with no waker (see `dispatch`): poll
            // them here, so that they wake this task.
            if self.in_flight() > before {
                self.poll_waiting(cx, &mut s.write);
            }
        }
        if !failed && (!s.write.is_empty() || !self.unsent.is_empty()) {
            match self.write(cx, &s.write) {
                Ok(true) => progress = progress.or_else(|| Some(self.conns.now_ms())),
                Ok(false) => {}
                Err(_) => failed = true,
            }
        }
        self.admitted.conn.leave(progress, self.read_one, !self.unsent.is_empty());
        let done = !self.reading && self.in_flight() == 0 && self.unsent.is_empty();
        if failed || done { Poll::Ready(()) } else { Poll::Pending }
    }

    /// Frames the replies of the chains that finished waiting.
    fn poll_waiting(&mut self, cx: &mut Context<'_>, write: &mut Vec<u8>) {
        let Some(waiting) = &mut self.waiting else { return };
        while let Poll::Ready(Some(reply)) = waiting.poll_next_unpin(cx) {
            frame(write, &reply);
            // The query's own busy mark, taken when it began to wait.
            self.admitted.conn.release();
        }
    }

    /// Reads and answers until the socket has nothing more (registering for more), the client
    /// closed its side, the in-flight bound is reached, or the poll's share is used up. The
    /// time of the last message read, if any was.
    fn read(&mut self, cx: &mut Context<'_>, s: &mut Scratch) -> io::Result<Option<u64>> {
        let mut progress = None;
        for _ in 0..READS_PER_POLL {
            if !self.reading || self.in_flight() >= MAX_IN_FLIGHT {
                return Ok(progress);
            }
            let kept = self.partial.len();
            s.read[..kept].copy_from_slice(&self.partial);
            // Whole messages the in-flight bound held back are answered before reading more.
            let n = if holds_message(&self.partial) {
                0
            } else {
                match self.stream.poll_read_ready(cx) {
                    Poll::Pending => return Ok(progress),
                    Poll::Ready(r) => r?,
                }
                match self.stream.try_read(&mut s.read[kept..kept + READ_CHUNK]) {
                    Ok(0) => {
                        // The client closed its side (RFC 7766 6.2.4: it may still read the
                        // replies to what it sent).
                        self.reading = false;
                        return Ok(progress);
                    }
                    Ok(n) => n,
                    // Readiness was stale: poll again, which registers for the next.
                    Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => continue,
                    Err(e) => return Err(e),
                }
            };
            let received = Instant::now();
            let used = self.answer(&s.read[..kept + n], received, &mut s.reply, &mut s.write);
            if used > 0 {
                progress = Some(self.conns.ms(received));
            }
            self.partial.clear();
            self.partial.extend_from_slice(&s.read[used..kept + n]);
            if self.partial.is_empty() {
                // Give the memory back: an idle connection keeps no buffer.
                self.partial = Vec::new();
            }
        }
        // More may be waiting; let other tasks run first.
        cx.waker().wake_by_ref();
        Ok(progress)
    }

    /// Answers the whole messages at the start of `data`; returns how many bytes they took.
    fn answer(&mut self, data: &[u8], received: Instant, reply: &mut Vec<u8>, write: &mut Vec<u8>) -> usize {
        let table = self.table.load();
        let mut at = 0;
        while let Some(len) = data.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]) as usize) {
            let Some(msg) = data.get(at + 2..at + 2 + len) else { break };
            if self.in_flight() >= MAX_IN_FLIGHT {
                break;
            }
            if let Some(left) = &mut self.queries_left {
                if *left == 0 {
                    // `maxtcpqueries` served: what else the client sent is not read.
                    self.reading = false;
                    return data.len();
                }
                *left -= 1;
            }
            at += 2 + len;
            self.read_one = true;
            let meta = Meta { client: self.client, local: self.local, proto: Proto::Tcp, received };
            match table.handle(msg, meta, reply) {
                Handled::Drop => {}
                Handled::Reply => frame(write, reply),
                Handled::Pending(pending) => {
                    // Marked busy until its reply is framed (see `poll_once`); `enter` fails
                    // only while closing, when the query is not worth finishing.
                    if self.admitted.conn.enter() {
                        let fut: Waiting = Box::pin(async move {
                            let mut out = Vec::with_capacity(512);
                            pending.finish(&mut out).await;
                            out
                        });
                        self.waiting.get_or_insert_with(FuturesUnordered::new).push(fut);
                    }
                }
            }
        }
        if self.queries_left == Some(0) {
            self.reading = false;
        }
        at
    }

    /// Writes what is unsent and then `fresh`, keeping what the socket does not take (and
    /// registering for writability). True if any byte was written.
    fn write(&mut self, cx: &mut Context<'_>, fresh: &[u8]) -> io::Result<bool> {
        let mut wrote = false;
        if self.unsent.is_empty() {
            let n = self.try_write(fresh)?;
            wrote |= n > 0;
            if n == fresh.len() {
                return Ok(wrote);
            }
            self.unsent.extend_from_slice(&fresh[n..]);
        } else {
            self.unsent.extend_from_slice(fresh);
        }
        loop {
            match self.stream.poll_write_ready(cx) {
                Poll::Pending => return Ok(wrote),
                Poll::Ready(r) => r?,
            }
            let n = self.try_write(&self.unsent)?;
            wrote |= n > 0;
            self.unsent.drain(..n);
            if self.unsent.is_empty() {
                self.unsent = Vec::new();
                return Ok(wrote);
            }
        }
    }

    /// Writes as much of `bytes` as the socket takes now.
    fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        let mut at = 0;
        while at < bytes.len() {
            match self.stream.try_write(&bytes[at..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => at += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(at)
    }
}

impl Future for Connection {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        SCRATCH.with_borrow_mut(|s| this.poll_once(cx, s))
    }
}

/// Whether `data` starts with a whole length-prefixed message.
fn holds_message(data: &[u8]) -> bool {
    data.len() >= 2 && data.len() - 2 >= u16::from_be_bytes([data[0], data[1]]) as usize
}

/// Appends `msg` to `out` with its two-byte length (RFC 7766 8).
fn frame(out: &mut Vec<u8>, msg: &[u8]) {
    out.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    out.extend_from_slice(msg);
}
