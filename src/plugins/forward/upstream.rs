//! One upstream: how a query is exchanged with it over UDP and TCP, its pool of idle TCP
//! connections, and its health.
//!
//! # What is accepted as the answer (RFC 5452 section 3)
//!
//! > a resolver MUST match responses to all of the following attributes of the query: the
//! > destination address against which the query has been sent, the source address [...],
//! > the destination port [...], the query ID, the query name, the query class and type.
//!
//! * **UDP**: sockets are bound to port 0, so the kernel picks a random ephemeral source port for
//!   each, and *connected* to the upstream, so the kernel drops datagrams from any other address
//!   or port. Of what arrives, only a message that decodes, has QR set, carries the ID sent
//!   (random per query) and the question sent is the answer; anything else (a spoofed datagram, a
//!   late answer to an earlier query on the same socket, garbage) is discarded and the wait goes
//!   on until the read timeout. Nothing of it reaches a client: CoreDNS answered such a datagram
//!   FORMERR (coredns#2636). A socket carries one query at a time and is pooled between them, as
//!   CoreDNS pools its UDP connections, but for at most [`UDP_USES`] queries, so the source port
//!   still changes every few dozen queries: a fresh socket per query cost six more system calls
//!   per forwarded query (socket, bind, connect, two epoll registrations, close), a third of the
//!   forwarding path's CPU at 5,000 queries/s. A socket whose exchange did not end with its
//!   answer (a timeout, an error) is closed, never pooled, so it cannot hand a late answer to the
//!   next query, and none is leaked (coredns#6090).
//! * **TCP**: connections are pooled and reused for up to `expire` of idleness, one query at a
//!   time on each. A message with another ID on the stream is skipped; one that does not decode
//!   ends the connection. A pooled connection the upstream closed meanwhile is retried once on a
//!   fresh one, as CoreDNS does. A connection whose exchange failed is never put back.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::metrics::{Transport, UpstreamMetrics};
use super::pool::Pool;
use super::udp::UdpConn;
use crate::dns::{Message, Name, Question, decode_message};

/// Why an exchange with an upstream failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("i/o timeout")]
    Timeout,
    /// The TCP stream ended (or broke) before the answer was complete.
    #[error("connection closed before the answer was complete")]
    Closed,
    #[error("undecodable answer: {0}")]
    Malformed(#[from] crate::dns::MessageError),
}

/// Settings of the connections to an upstream.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnSettings {
    /// Idle TCP connections older than this are closed rather than reused.
    pub expire: Duration,
    /// At most this many idle TCP connections are kept; 0 for no limit.
    pub max_idle_conns: usize,
    /// How long to wait for an answer (and for a TCP connection to be made).
    pub read_timeout: Duration,
}

/// Settings of the health check (`health_check`).
#[derive(Clone, Debug, PartialEq)]
pub struct HealthSettings {
    /// 0 disables the health check.
    pub interval: Duration,
    pub recursion_desired: bool,
    pub domain: Name,
    /// Checks go over TCP (`force_tcp`), else over UDP.
    pub tcp: bool,
}

/// A connection to an upstream: TCP, or TLS over TCP.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}
type Conn = Box<dyn Stream>;

/// DNS over TLS to this upstream: the client configuration and the name its certificate must
/// carry.
pub struct TlsClient {
    pub connector: tokio_rustls::TlsConnector,
    pub name: rustls::pki_types::ServerName<'static>,
}

/// Queries a pooled UDP socket carries before it is closed and its source port changes.
pub const UDP_USES: u32 = 64;

/// One upstream server. Shared by every generation whose configuration names it the same way
/// (see the setup's kept state), so its pool and health survive a reload.
pub struct Upstream {
    pub addr: SocketAddr,
    /// The `to` label: the address as CoreDNS prints it (`10.0.0.2:53`).
    pub label: String,
    conn: ConnSettings,
    health: HealthSettings,
    /// Consecutive failed health checks (CoreDNS's `fails`).
    fails: AtomicU32,
    /// Set while a health-check loop runs; a failure starts one if none runs.
    probing: AtomicBool,
    wake: Notify,
    pool: Pool<Conn>,
    /// Idle UDP sockets, with the queries each has carried.
    udp_pool: Pool<(UdpConn, u32)>,
    tls: Option<TlsClient>,
    pub metrics: UpstreamMetrics,
}

impl Upstream {
    pub fn new(
        addr: SocketAddr,
        conn: ConnSettings,
        health: HealthSettings,
        tls: Option<TlsClient>,
        metrics: UpstreamMetrics,
    ) -> Upstream {
        Upstream {
            addr,
            label: addr.to_string(),
            conn,
            health,
            fails: AtomicU32::new(0),
            probing: AtomicBool::new(false),
            wake: Notify::new(),
            pool: Pool::new(),
            udp_pool: Pool::new(),
            tls,
            metrics,
        }
    }

    /// CoreDNS's `Down`: more consecutive failed health checks than `max_fails` (never, when
    /// `max_fails` is 0).
    pub fn down(&self, max_fails: u32) -> bool {
        max_fails != 0 && self.fails.load(Ordering::Relaxed) > max_fails
    }

    /// Starts health checking after a failed exchange, unless a check loop already runs or
    /// checks are off. Costs an atomic and, at most once per loop, a wake-up.
    pub fn healthcheck(&self) {
        if self.health.interval.is_zero() {
            return;
        }
        if !self.probing.swap(true, Ordering::AcqRel) {
            self.wake.notify_one();
        }
    }

    /// The task that runs health checks when woken (CoreDNS's `up.Probe`): check at once, then
    /// every interval until a check succeeds. Between loops it closes idle connections that have
    /// expired, so a quiet upstream holds no sockets.
    pub async fn run(self: Arc<Self>) {
        let reap_every = self.conn.expire.max(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(reap_every) => {
                    self.reap();
                    continue;
                }
            }
            loop {
                let ok = self.check().await;
                if ok {
                    self.fails.store(0, Ordering::Relaxed);
                    break;
                }
                self.metrics.healthcheck_failed();
                self.fails.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(self.health.interval).await;
            }
            self.probing.store(false, Ordering::Release);
        }
    }

    /// One health check: `domain NS` with RD unless `no_rec`. Any answer is health (REFUSED and
    /// SERVFAIL included); only an I/O failure or silence is not, as CoreDNS counts it.
    async fn check(&self) -> bool {
        let mut q = Vec::with_capacity(32);
        let id = fastrand::u16(..);
        q.extend_from_slice(&id.to_be_bytes());
        q.extend_from_slice(&(if self.health.recursion_desired { 0x0100u16 } else { 0 }).to_be_bytes());
        q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        q.extend_from_slice(self.health.domain.as_wire());
        q.extend_from_slice(&[0, 2, 0, 1]);
        let question = Question {
            name: self.health.domain.clone(),
            qtype: crate::dns::RecordType::NS,
            qclass: crate::dns::Class::IN,
        };
        let timeout = Duration::from_secs(1).min(self.conn.read_timeout);
        let deadline = Instant::now() + timeout;
        let result = if self.health.tcp || self.tls.is_some() {
            self.exchange_tcp_once(&q, id, &question, deadline, None).await.map(|_| ())
        } else {
            self.exchange_udp(&q, id, &question, deadline).await.map(|_| ())
        };
        result.is_ok()
    }

    /// Sends `query` (whose ID is `id`, asking `question`) and returns the matching answer.
    pub async fn exchange(
        &self,
        query: &[u8],
        id: u16,
        question: &Question,
        transport: Transport,
        deadline: Instant,
    ) -> Result<Message, ExchangeError> {
        let deadline = deadline.min(Instant::now() + self.conn.read_timeout);
        // DNS over TLS is TCP whatever the client used.
        let transport = if self.tls.is_some() { Transport::Tcp } else { transport };
        match transport {
            Transport::Udp => self.exchange_udp(query, id, question, deadline).await,
            Transport::Tcp => self.exchange_tcp(query, id, question, deadline).await,
        }
    }

    async fn exchange_udp(
        &self,
        query: &[u8],
        id: u16,
        question: &Question,
        deadline: Instant,
    ) -> Result<Message, ExchangeError> {
        let (mut sock, uses) = match self.udp_pool.take(self.conn.expire) {
            Some(idle) => {
                self.metrics.conn_hit(Transport::Udp);
                idle
            }
            None => {
                self.metrics.conn_miss(Transport::Udp);
                (UdpConn::open(self.addr)?, 0)
            }
        };
        sock.send(query)?;
        let wait = async {
            loop {
                if let Some(m) = accept(sock.recv().await?, id, question) {
                    return Ok(m);
                }
            }
        };
        match tokio::time::timeout_at(deadline.into(), wait).await {
            Ok(Ok(m)) => {
                // Pooled for the next query, unless it has carried its share.
                if uses + 1 < UDP_USES {
                    self.udp_pool.put((sock, uses + 1), self.conn.expire, self.conn.max_idle_conns);
                }
                Ok(m)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ExchangeError::Timeout),
        }
    }

    async fn exchange_tcp(
        &self,
        query: &[u8],
        id: u16,
        question: &Question,
        deadline: Instant,
    ) -> Result<Message, ExchangeError> {
        if let Some(idle) = self.pool.take(self.conn.expire) {
            self.metrics.conn_hit(Transport::Tcp);
            match self.exchange_tcp_once(query, id, question, deadline, Some(idle)).await {
                // The upstream closed the pooled connection meanwhile: once more on a new one.
                Err(ExchangeError::Closed) => {}
                Err(ExchangeError::Io(e)) if is_reset(&e) => {}
                other => return other,
            }
        }
        self.metrics.conn_miss(Transport::Tcp);
        self.exchange_tcp_once(query, id, question, deadline, None).await
    }

    /// One exchange on `stream`, or on a new connection; the connection goes back to the pool
    /// only after a complete, matching answer.
    async fn exchange_tcp_once(
        &self,
        query: &[u8],
        id: u16,
        question: &Question,
        deadline: Instant,
        stream: Option<Conn>,
    ) -> Result<Message, ExchangeError> {
        let work = async {
            let mut stream = match stream {
                Some(s) => s,
                None => self.connect().await?,
            };
            let mut out = Vec::with_capacity(query.len() + 2);
            out.extend_from_slice(&(query.len() as u16).to_be_bytes());
            out.extend_from_slice(query);
            stream.write_all(&out).await?;
            let mut buf = Vec::new();
            loop {
                let mut len = [0u8; 2];
                read_exact(&mut stream, &mut len).await?;
                buf.resize(u16::from_be_bytes(len) as usize, 0);
                read_exact(&mut stream, &mut buf).await?;
                let m = decode_message(&buf)?;
                if m.id != id || !m.qr() {
                    continue;
                }
                if !same_question(&m, question) {
                    continue;
                }
                return Ok((m, stream));
            }
        };
        match tokio::time::timeout_at(deadline.into(), work).await {
            Ok(Ok((m, stream))) => {
                self.pool.put(stream, self.conn.expire, self.conn.max_idle_conns);
                Ok(m)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ExchangeError::Timeout),
        }
    }

    /// A new connection: TCP, with the TLS handshake for a `tls://` upstream.
    async fn connect(&self) -> io::Result<Conn> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        match &self.tls {
            None => Ok(Box::new(tcp)),
            Some(t) => Ok(Box::new(t.connector.connect(t.name.clone(), tcp).await?)),
        }
    }

    /// Closes idle connections and sockets that have expired.
    fn reap(&self) {
        self.pool.reap(self.conn.expire);
        self.udp_pool.reap(self.conn.expire);
    }
}

async fn read_exact(stream: &mut Conn, buf: &mut [u8]) -> Result<(), ExchangeError> {
    match stream.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(ExchangeError::Closed),
        Err(e) if is_reset(&e) => Err(ExchangeError::Closed),
        Err(e) => Err(e.into()),
    }
}

fn is_reset(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionAborted)
}

/// The datagram as the answer to the query with `id` asking `question`, or `None` if it is not
/// that answer (RFC 5452 section 3).
fn accept(buf: &[u8], id: u16, question: &Question) -> Option<Message> {
    // The ID is checked before anything is decoded: most stray datagrams end here.
    if buf.len() < 12 || u16::from_be_bytes([buf[0], buf[1]]) != id {
        return None;
    }
    let m = decode_message(buf).ok()?;
    (m.qr() && same_question(&m, question)).then_some(m)
}

/// The answer carries exactly the question asked: one question, the same name (ASCII case
/// ignored, RFC 4343), type and class.
fn same_question(m: &Message, q: &Question) -> bool {
    m.questions.len() == 1 && {
        let a = &m.questions[0];
        a.qtype == q.qtype && a.qclass == q.qclass && a.name == q.name
    }
}
