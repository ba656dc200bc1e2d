//! The UDP hot path: one thread per core, each with its own `SO_REUSEPORT` socket, receiving and
//! sending in batches of up to 64 datagrams with `recvmmsg`/`sendmmsg`.
//!
//! A worker blocks in `recvmmsg` (with `MSG_WAITFORONE`: it returns as soon as one datagram is
//! there, with whatever else has queued), answers every query of the batch through
//! [`ZoneTable::handle`] straight into per-slot send buffers, and sends all replies with one
//! `sendmmsg`. The loop itself allocates nothing per query (buffers and message headers are
//! allocated once per worker); a query costs what dispatch allocates, 3 allocations for whoami
//! and 5 for errors, prometheus and hosts (`tests/allocations.rs`).
//!
//! A query whose chain waits (a forwarded one, already sent upstream when its first poll
//! returns) is finished **on the worker's thread**, by a current-thread runtime of the worker's
//! own that drives its sockets and timers ([`park`](super::parked::park)ed until they wake it).
//! While any query waits, the worker sleeps in that runtime's `epoll_wait`, on its client socket
//! and on the upstream sockets at once, rather than in `recvmmsg`; when none waits, it is back
//! on the blocking receive. So a forwarded query costs what it costs a single-threaded forwarder
//! like dnsmasq: one thread, woken by the query and by the answer, often both in one wake-up.
//! Handing it to the shared runtime instead woke a second thread per query, and cost about 25%
//! more CPU per forwarded query at 5,000 queries/s.
//!
//! Measured on this project's machine (see `benches/` and the README): this loop is what puts
//! clusterdns at or above knot's queries per CPU-second; an epoll-driven task per socket, or a
//! task per query, cost 10-25% more CPU.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::InFlight;
use super::dispatch::{Handled, Meta, ZoneTable};
use crate::dns::Proto;
use crate::plugin::reactor;

/// Datagrams per `recvmmsg`/`sendmmsg`.
const BATCH: usize = 64;
/// The largest query read; a longer datagram is truncated by the kernel and dropped.
const MAX_QUERY: usize = 4096;
/// How long a stopping worker goes on finishing the queries that wait.
const DRAIN: Duration = Duration::from_secs(5);

/// Opens a UDP socket for a worker on `addr`. The unspecified IPv6 address also takes IPv4.
pub fn socket(addr: SocketAddr) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(false)?;
    }
    s.set_reuse_port(true)?;
    s.set_reuse_address(true)?;
    // A wildcard socket must answer from the address each query was sent to: the kernel would
    // pick the route's preferred source, and a client that asked a secondary address drops a
    // reply from another one (CoreDNS's miekg/dns does the same with its control messages).
    if addr.ip().is_unspecified() {
        let (level, name) = if addr.is_ipv6() {
            (libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO)
        } else {
            (libc::IPPROTO_IP, libc::IP_PKTINFO)
        };
        let on: libc::c_int = 1;
        // SAFETY: setsockopt with a c_int option value of the right size.
        let r = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                level,
                name,
                (&on as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as _,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // A larger receive queue absorbs bursts; the kernel caps it at net.core.rmem_max.
    let _ = s.set_recv_buffer_size(4 << 20);
    s.bind(&addr.into())?;
    Ok(s)
}

/// Running workers of one listener.
pub struct Workers {
    stop: Arc<AtomicBool>,
    /// The workers' sockets, to wake them from a blocked receive when stopping.
    sockets: Vec<Arc<Socket>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    /// Starts one worker thread per socket, each with a runtime of its own for the queries
    /// that wait.
    pub fn start(
        sockets: Vec<Socket>,
        local: SocketAddr,
        table: Arc<ArcSwap<ZoneTable>>,
        inflight: Arc<InFlight>,
        thread_count: Arc<AtomicUsize>,
    ) -> io::Result<Workers> {
        let stop = Arc::new(AtomicBool::new(false));
        let sockets: Vec<Arc<Socket>> = sockets.into_iter().map(Arc::new).collect();
        let mut threads = Vec::new();
        for (i, sock) in sockets.iter().enumerate() {
            let w = Worker {
                sock: sock.clone(),
                local,
                table: table.clone(),
                stop: stop.clone(),
                rt: tokio::runtime::Builder::new_current_thread().enable_all().build()?,
                inflight: inflight.clone(),
                waiting: Arc::new(InFlight::default()),
            };
            let count = thread_count.clone();
            threads.push(std::thread::Builder::new().name(format!("udp-{}-{i}", local.port())).spawn(move || {
                count.fetch_add(1, Ordering::Relaxed);
                w.run();
                count.fetch_sub(1, Ordering::Relaxed);
            })?);
        }
        Ok(Workers { stop, sockets, threads })
    }

    /// Asks the workers to stop after their current batch and waits for them.
    ///
    /// A worker blocks in `recvmmsg` without a timeout: a receive timeout would arm and cancel a
    /// kernel timer on every blocking receive, which is every query at moderate load. Instead
    /// `shutdown(SHUT_RD)` wakes it: Linux marks even an unconnected UDP socket shut and wakes
    /// its sleepers (returning ENOTCONN to the caller), and the receive returns at once from
    /// then on; a worker sleeping in its runtime is woken the same way, the socket turning
    /// readable. A stopping worker finishes the queries that wait, for up to [`DRAIN`].
    pub fn stop(self) {
        self.stop.store(true, Ordering::Release);
        for s in &self.sockets {
            let _ = s.shutdown(std::net::Shutdown::Read);
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}

struct Worker {
    sock: Arc<Socket>,
    local: SocketAddr,
    table: Arc<ArcSwap<ZoneTable>>,
    stop: Arc<AtomicBool>,
    /// Finishes this worker's queries that wait, on this worker's thread.
    rt: tokio::runtime::Runtime,
    inflight: Arc<InFlight>,
    /// This worker's queries that wait.
    waiting: Arc<InFlight>,
}

/// A peer address as the kernel gave it, to send the reply back to.
#[derive(Clone, Copy)]
struct RawAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl Worker {
    fn run(self) {
        // Sockets and timers made by the chains polled here belong to this thread's runtime.
        reactor::start_own();
        let _guard = self.rt.enter();
        let fd = self.sock.as_raw_fd();
        let mut batch = Batch::new();
        // The client socket as the runtime watches it, registered when a query first waits.
        let mut watched: Option<AsyncFd<Arc<Socket>>> = None;
        while !self.stop.load(Ordering::Acquire) {
            let received = if self.waiting.idle() && self.rt.metrics().num_alive_tasks() == 0 {
                batch.rx.recv(fd, libc::MSG_WAITFORONE)
            } else {
                if watched.is_none() {
                    watched = self.watch().map_err(|e| tracing::error!("udp {}: epoll: {e}", self.local)).ok();
                }
                match &watched {
                    Some(w) => self.rt.block_on(wait_and_recv(w, &mut batch.rx, &self.waiting)),
                    // Cannot sleep on both: a millisecond for the waiting queries, then a look.
                    None => {
                        let _ =
                            self.rt.block_on(tokio::time::timeout(Duration::from_millis(1), self.waiting.wait_idle()));
                        batch.rx.recv(fd, libc::MSG_DONTWAIT)
                    }
                }
            };
            let n = match received {
                Ok(n) => n,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => continue,
                Err(e) => {
                    tracing::error!("udp {}: receive failed: {e}", self.local);
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            let table = self.table.load_full();
            let received = Instant::now();
            let mut replies = 0;
            for i in 0..n {
                let Some((bytes, peer, dst)) = batch.rx.received(i) else { continue };
                let Some(client) = to_socket_addr(&peer) else { continue };
                let meta = Meta { client, local: self.local, proto: Proto::Udp, received };
                match table.handle(bytes, meta, &mut batch.tx.out[replies]) {
                    Handled::Drop => {}
                    Handled::Reply => {
                        batch.tx.out_peers[replies] = peer;
                        batch.tx.out_src[replies] = dst;
                        replies += 1;
                    }
                    Handled::Pending(pending) => {
                        let sock = self.sock.clone();
                        let guards = (self.inflight.enter(), self.waiting.enter());
                        super::parked::park(
                            self.rt.handle(),
                            Box::pin(async move {
                                let mut buf = Vec::with_capacity(512);
                                pending.finish(&mut buf).await;
                                match dst {
                                    Some(dst) => send_from(sock.as_raw_fd(), &mut buf, peer, dst),
                                    None => {
                                        let _ =
                                            sock.send_to_with_flags(&buf, &SockAddr::from(client), libc::MSG_DONTWAIT);
                                    }
                                }
                                drop(guards);
                            }),
                        );
                    }
                }
            }
            batch.tx.send(fd, replies);
        }
        let _ = self.rt.block_on(tokio::time::timeout(DRAIN, self.waiting.wait_idle()));
    }

    /// The client socket registered with this worker's runtime, for reading.
    fn watch(&self) -> io::Result<AsyncFd<Arc<Socket>>> {
        // SAFETY: the Arc keeps the socket, and so its descriptor, open for as long as the
        // AsyncFd holds it.
        unsafe { AsyncFd::register_with_interest(self.sock.clone(), Interest::READABLE) }.map_err(|e| e.into_parts().1)
    }
}

/// Drives the worker's waiting queries until datagrams can be received, then receives them;
/// `Ok(0)` once no query waits any more (the worker goes back to its blocking receive).
async fn wait_and_recv(watched: &AsyncFd<Arc<Socket>>, rx: &mut RecvSide, waiting: &InFlight) -> io::Result<usize> {
    // Lets the runtime poll its sockets once before anything else: under steady load the client
    // socket is always readable, and the answers for the waiting queries must not starve.
    tokio::task::yield_now().await;
    loop {
        let tasks = tokio::runtime::Handle::current().metrics().num_alive_tasks();
        tokio::select! {
            biased;
            ready = watched.readable() => {
                let mut ready = ready?;
                // Shut for reading by `Workers::stop`: readable for good, with nothing to read.
                if ready.ready().is_read_closed() {
                    return Ok(0);
                }
                match ready.try_io(|s| rx.recv(s.as_raw_fd(), libc::MSG_DONTWAIT)) {
                    Ok(result) => return result,
                    // Nothing there after all: readiness is cleared; wait again.
                    Err(_would_block) => continue,
                }
            }
            _ = waiting.wait_idle(), if tasks == 0 => return Ok(0),
        }
    }
}

/// The buffers of one worker's batches, allocated once. The message headers point into the
/// buffers beside them, which never move (they are boxed slices), so each syscall only
/// refreshes the fields the kernel changed.
struct Batch {
    rx: RecvSide,
    tx: SendSide,
}

/// The address a datagram was sent to, from its packet-info control message (wildcard sockets
/// only), to answer from.
#[derive(Clone, Copy)]
enum Dst {
    V4(libc::in_addr),
    V6(libc::in6_addr),
}

/// Room for one packet-info control message, aligned for `cmsghdr`.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Control([u8; 64]);

struct RecvSide {
    recv: Box<[u8]>,
    peers: Box<[RawAddr]>,
    control: Box<[Control]>,
    recv_iov: Box<[libc::iovec]>,
    recv_hdrs: Box<[libc::mmsghdr]>,
    /// Slots filled by the last receive, whose header fields must be reset before the next.
    used: usize,
}

struct SendSide {
    out: Vec<Vec<u8>>,
    out_peers: Box<[RawAddr]>,
    out_src: Box<[Option<Dst>]>,
    out_control: Box<[Control]>,
    send_iov: Box<[libc::iovec]>,
    send_hdrs: Box<[libc::mmsghdr]>,
}

const STORAGE_LEN: libc::socklen_t = size_of::<libc::sockaddr_storage>() as libc::socklen_t;

impl Batch {
    fn new() -> Box<Batch> {
        // SAFETY: sockaddr_storage, iovec and mmsghdr are plain old data; zeroes are valid.
        let raw = RawAddr { storage: unsafe { zeroed() }, len: 0 };
        let mut rx = RecvSide {
            recv: vec![0u8; BATCH * MAX_QUERY].into_boxed_slice(),
            peers: vec![raw; BATCH].into_boxed_slice(),
            recv_iov: vec![unsafe { zeroed::<libc::iovec>() }; BATCH].into_boxed_slice(),
            recv_hdrs: vec![unsafe { zeroed::<libc::mmsghdr>() }; BATCH].into_boxed_slice(),
            control: vec![Control([0; 64]); BATCH].into_boxed_slice(),
            used: BATCH,
        };
        let mut tx = SendSide {
            out: (0..BATCH).map(|_| Vec::with_capacity(512)).collect(),
            out_peers: vec![raw; BATCH].into_boxed_slice(),
            out_src: vec![None; BATCH].into_boxed_slice(),
            out_control: vec![Control([0; 64]); BATCH].into_boxed_slice(),
            send_iov: vec![unsafe { zeroed::<libc::iovec>() }; BATCH].into_boxed_slice(),
            send_hdrs: vec![unsafe { zeroed::<libc::mmsghdr>() }; BATCH].into_boxed_slice(),
        };
        for i in 0..BATCH {
            rx.recv_iov[i] = libc::iovec { iov_base: rx.recv[i * MAX_QUERY..].as_mut_ptr().cast(), iov_len: MAX_QUERY };
            let h = &mut rx.recv_hdrs[i].msg_hdr;
            h.msg_name = (&mut rx.peers[i].storage as *mut libc::sockaddr_storage).cast();
            h.msg_iov = &mut rx.recv_iov[i];
            h.msg_iovlen = 1;
            h.msg_control = rx.control[i].0.as_mut_ptr().cast();
            let h = &mut tx.send_hdrs[i].msg_hdr;
            h.msg_name = (&mut tx.out_peers[i].storage as *mut libc::sockaddr_storage).cast();
            h.msg_iov = &mut tx.send_iov[i];
            h.msg_iovlen = 1;
        }
        Box::new(Batch { rx, tx })
    }
}

impl RecvSide {
    /// Receives up to [`BATCH`] datagrams with `flags` (waiting for one, or not at all);
    /// returns how many.
    fn recv(&mut self, fd: i32, flags: libc::c_int) -> io::Result<usize> {
        for h in &mut self.recv_hdrs[..self.used] {
            h.msg_hdr.msg_namelen = STORAGE_LEN;
            h.msg_hdr.msg_controllen = size_of::<Control>() as _;
            h.msg_hdr.msg_flags = 0;
        }
        // SAFETY: every header points at live buffers of the stated sizes for the whole call.
        let n = unsafe {
            libc::recvmmsg(fd, self.recv_hdrs.as_mut_ptr(), BATCH as libc::c_uint, flags, std::ptr::null_mut())
        };
        if n < 0 {
            self.used = 0;
            return Err(io::Error::last_os_error());
        }
        self.used = n as usize;
        Ok(self.used)
    }

    /// The bytes and sender of received datagram `i`, unless the kernel truncated it (a query
    /// longer than [`MAX_QUERY`] is dropped).
    /// With it, the address it was sent to when the socket is a wildcard one.
    fn received(&self, i: usize) -> Option<(&[u8], RawAddr, Option<Dst>)> {
        let h = &self.recv_hdrs[i];
        if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
            return None;
        }
        let peer = RawAddr { storage: self.peers[i].storage, len: h.msg_hdr.msg_namelen };
        Some((&self.recv[i * MAX_QUERY..i * MAX_QUERY + h.msg_len as usize], peer, destination(&h.msg_hdr)))
    }
}

impl SendSide {
    /// Sends `out[i]` to `out_peers[i]` for `i < n`, in as few `sendmmsg` calls as the kernel
    /// allows. A datagram the kernel refuses is skipped (the client will retry); the rest go.
    fn send(&mut self, fd: i32, n: usize) {
        for i in 0..n {
            self.send_iov[i] = libc::iovec { iov_base: self.out[i].as_mut_ptr().cast(), iov_len: self.out[i].len() };
            let h = &mut self.send_hdrs[i].msg_hdr;
            h.msg_namelen = self.out_peers[i].len;
            match self.out_src[i] {
                Some(dst) => {
                    h.msg_control = self.out_control[i].0.as_mut_ptr().cast();
                    h.msg_controllen = write_source(&mut self.out_control[i], dst);
                }
                None => {
                    h.msg_control = std::ptr::null_mut();
                    h.msg_controllen = 0;
                }
            }
        }
        let mut sent = 0;
        while sent < n {
            // SAFETY: headers sent..n point at live buffers and addresses.
            let r = unsafe { libc::sendmmsg(fd, self.send_hdrs[sent..].as_mut_ptr(), (n - sent) as libc::c_uint, 0) };
            if r > 0 {
                sent += r as usize;
                continue;
            }
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // This datagram cannot go (a bad peer address, a full queue): skip it.
            sent += 1;
        }
    }
}

/// The destination address of a received datagram, from its `IP_PKTINFO` or `IPV6_PKTINFO`
/// control message (an IPv4 query to a dual-stack socket comes with the latter, its address
/// IPv4-mapped).
fn destination(h: &libc::msghdr) -> Option<Dst> {
    if h.msg_controllen == 0 {
        return None;
    }
    // SAFETY: the kernel filled msg_control with msg_controllen bytes of control messages; the
    // CMSG macros stay within them, and each data is read as the type its level and type say.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            match ((*c).cmsg_level, (*c).cmsg_type) {
                (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                    let info = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::in_pktinfo>());
                    return Some(Dst::V4(info.ipi_addr));
                }
                (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                    let info = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::in6_pktinfo>());
                    return Some(Dst::V6(info.ipi6_addr));
                }
                _ => {}
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    None
}

/// Writes the control message that makes a reply leave from `dst` into `buf`; returns its
/// length. The interface is left to routing (index 0).
fn write_source(buf: &mut Control, dst: Dst) -> usize {
    // SAFETY: a msghdr pointing at `buf`, large and aligned enough for one cmsghdr with an
    // in_pktinfo or in6_pktinfo (CMSG_SPACE of either is at most 40 bytes).
    unsafe {
        let mut h: libc::msghdr = zeroed();
        h.msg_control = buf.0.as_mut_ptr().cast();
        h.msg_controllen = size_of::<Control>() as _;
        let c = libc::CMSG_FIRSTHDR(&h);
        match dst {
            Dst::V4(addr) => {
                (*c).cmsg_level = libc::IPPROTO_IP;
                (*c).cmsg_type = libc::IP_PKTINFO;
                (*c).cmsg_len = libc::CMSG_LEN(size_of::<libc::in_pktinfo>() as u32) as _;
                let info =
                    libc::in_pktinfo { ipi_ifindex: 0, ipi_spec_dst: addr, ipi_addr: libc::in_addr { s_addr: 0 } };
                std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<libc::in_pktinfo>(), info);
                libc::CMSG_SPACE(size_of::<libc::in_pktinfo>() as u32) as usize
            }
            Dst::V6(addr) => {
                (*c).cmsg_level = libc::IPPROTO_IPV6;
                (*c).cmsg_type = libc::IPV6_PKTINFO;
                (*c).cmsg_len = libc::CMSG_LEN(size_of::<libc::in6_pktinfo>() as u32) as _;
                let info = libc::in6_pktinfo { ipi6_addr: addr, ipi6_ifindex: 0 };
                std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<libc::in6_pktinfo>(), info);
                libc::CMSG_SPACE(size_of::<libc::in6_pktinfo>() as u32) as usize
            }
        }
    }
}

/// Sends one reply to `peer` from `dst`, without blocking (a reply finished on the runtime).
fn send_from(fd: i32, buf: &mut [u8], mut peer: RawAddr, dst: Dst) {
    let mut control = Control([0; 64]);
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: the header points at live locals of the stated sizes for the whole call.
    unsafe {
        let mut h: libc::msghdr = zeroed();
        h.msg_name = (&mut peer.storage as *mut libc::sockaddr_storage).cast();
        h.msg_namelen = peer.len;
        h.msg_iov = &mut iov;
        h.msg_iovlen = 1;
        h.msg_controllen = write_source(&mut control, dst) as _;
        h.msg_control = control.0.as_mut_ptr().cast();
        libc::sendmsg(fd, &h, libc::MSG_DONTWAIT);
    }
}

/// The socket address in a `sockaddr_storage` filled in by the kernel.
fn to_socket_addr(a: &RawAddr) -> Option<SocketAddr> {
    match a.storage.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let sin = unsafe { &*(&a.storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let sin6 = unsafe { &*(&a.storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}
