//! The UDP hot path: one thread per core, each with its own `SO_REUSEPORT` socket, receiving and
//! sending in batches of up to 64 datagrams with `recvmmsg`/`sendmmsg`.
//!
//! A worker blocks in `recvmmsg` (with `MSG_WAITFORONE`: it returns as soon as one datagram is
//! there, with whatever else has queued), answers every query of the batch through
//! [`ZoneTable::handle`] straight into per-slot send buffers, and sends all replies with one
//! `sendmmsg`. The loop itself allocates nothing per query (buffers and message headers are
//! allocated once per worker); a query costs what dispatch allocates, 3 allocations for whoami
//! and 5 for errors, prometheus and hosts (`tests/allocations.rs`). Queries whose chain waits are finished on the
//! async runtime and sent from there without blocking it (`MSG_DONTWAIT`).
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

use super::InFlight;
use super::dispatch::{Handled, Meta, ZoneTable};
use crate::dns::Proto;

/// Datagrams per `recvmmsg`/`sendmmsg`.
const BATCH: usize = 64;
/// The largest query read; a longer datagram is truncated by the kernel and dropped.
const MAX_QUERY: usize = 4096;

/// Opens a UDP socket for a worker on `addr`. The unspecified IPv6 address also takes IPv4.
pub fn socket(addr: SocketAddr) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(false)?;
    }
    s.set_reuse_port(true)?;
    s.set_reuse_address(true)?;
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
    /// Starts one worker thread per socket.
    pub fn start(
        sockets: Vec<Socket>,
        local: SocketAddr,
        table: Arc<ArcSwap<ZoneTable>>,
        rt: tokio::runtime::Handle,
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
                rt: rt.clone(),
                inflight: inflight.clone(),
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
    /// then on.
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
    rt: tokio::runtime::Handle,
    inflight: Arc<InFlight>,
}

/// A peer address as the kernel gave it, to send the reply back to.
#[derive(Clone, Copy)]
struct RawAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl Worker {
    fn run(self) {
        // Futures polled here may create timers and sockets: they need the runtime's context.
        let _guard = self.rt.enter();
        let fd = self.sock.as_raw_fd();
        let mut batch = Batch::new();
        while !self.stop.load(Ordering::Acquire) {
            let n = match batch.rx.recv(fd) {
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
                let Some((bytes, peer)) = batch.rx.received(i) else { continue };
                let Some(client) = to_socket_addr(&peer) else { continue };
                let meta = Meta { client, local: self.local, proto: Proto::Udp, received };
                match table.handle(bytes, meta, &mut batch.tx.out[replies]) {
                    Handled::Drop => {}
                    Handled::Reply => {
                        batch.tx.out_peers[replies] = peer;
                        replies += 1;
                    }
                    Handled::Pending(pending) => {
                        let (sock, guard) = (self.sock.clone(), self.inflight.enter());
                        self.rt.spawn(async move {
                            let mut buf = Vec::with_capacity(512);
                            pending.finish(&mut buf).await;
                            let _ = sock.send_to_with_flags(&buf, &SockAddr::from(client), libc::MSG_DONTWAIT);
                            drop(guard);
                        });
                    }
                }
            }
            batch.tx.send(fd, replies);
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

struct RecvSide {
    recv: Box<[u8]>,
    peers: Box<[RawAddr]>,
    recv_iov: Box<[libc::iovec]>,
    recv_hdrs: Box<[libc::mmsghdr]>,
    /// Slots filled by the last receive, whose header fields must be reset before the next.
    used: usize,
}

struct SendSide {
    out: Vec<Vec<u8>>,
    out_peers: Box<[RawAddr]>,
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
            used: BATCH,
        };
        let mut tx = SendSide {
            out: (0..BATCH).map(|_| Vec::with_capacity(512)).collect(),
            out_peers: vec![raw; BATCH].into_boxed_slice(),
            send_iov: vec![unsafe { zeroed::<libc::iovec>() }; BATCH].into_boxed_slice(),
            send_hdrs: vec![unsafe { zeroed::<libc::mmsghdr>() }; BATCH].into_boxed_slice(),
        };
        for i in 0..BATCH {
            rx.recv_iov[i] = libc::iovec { iov_base: rx.recv[i * MAX_QUERY..].as_mut_ptr().cast(), iov_len: MAX_QUERY };
            let h = &mut rx.recv_hdrs[i].msg_hdr;
            h.msg_name = (&mut rx.peers[i].storage as *mut libc::sockaddr_storage).cast();
            h.msg_iov = &mut rx.recv_iov[i];
            h.msg_iovlen = 1;
            let h = &mut tx.send_hdrs[i].msg_hdr;
            h.msg_name = (&mut tx.out_peers[i].storage as *mut libc::sockaddr_storage).cast();
            h.msg_iov = &mut tx.send_iov[i];
            h.msg_iovlen = 1;
        }
        Box::new(Batch { rx, tx })
    }
}

impl RecvSide {
    /// Receives up to [`BATCH`] datagrams; returns how many.
    fn recv(&mut self, fd: i32) -> io::Result<usize> {
        for h in &mut self.recv_hdrs[..self.used] {
            h.msg_hdr.msg_namelen = STORAGE_LEN;
            h.msg_hdr.msg_flags = 0;
        }
        // SAFETY: every header points at live buffers of the stated sizes for the whole call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.recv_hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
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
    fn received(&self, i: usize) -> Option<(&[u8], RawAddr)> {
        let h = &self.recv_hdrs[i];
        if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
            return None;
        }
        let peer = RawAddr { storage: self.peers[i].storage, len: h.msg_hdr.msg_namelen };
        Some((&self.recv[i * MAX_QUERY..i * MAX_QUERY + h.msg_len as usize], peer))
    }
}

impl SendSide {
    /// Sends `out[i]` to `out_peers[i]` for `i < n`, in as few `sendmmsg` calls as the kernel
    /// allows. A datagram the kernel refuses is skipped (the client will retry); the rest go.
    fn send(&mut self, fd: i32, n: usize) {
        for i in 0..n {
            self.send_iov[i] = libc::iovec { iov_base: self.out[i].as_mut_ptr().cast(), iov_len: self.out[i].len() };
            self.send_hdrs[i].msg_hdr.msg_namelen = self.out_peers[i].len;
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
