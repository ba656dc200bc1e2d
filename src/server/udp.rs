//! The UDP hot path: one thread per core, each with its own `SO_REUSEPORT` socket, receiving and
//! sending in batches of up to 64 datagrams with `recvmmsg`/`sendmmsg`.
//!
//! A worker blocks in `recvmmsg` (with `MSG_WAITFORONE`: it returns as soon as one datagram is
//! there, with whatever else has queued), answers every query of the batch through
//! [`ZoneTable::handle`] straight into per-slot send buffers, and sends all replies with one
//! `sendmmsg`. The common case allocates nothing. Queries whose chain waits are finished on the
//! async runtime and sent from there without blocking it (`MSG_DONTWAIT`).
//!
//! Measured on this project's machine (see `benches/` and the README): this loop is what puts
//! clusterdns at or above knot's queries per CPU-second; an epoll-driven task per socket, or a
//! task per query, cost 10-25% more CPU.

use std::io;
use std::mem::{MaybeUninit, size_of, zeroed};
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
/// How long a blocked worker waits before checking whether it should stop.
const STOP_POLL: Duration = Duration::from_millis(100);

/// Opens a UDP socket for a worker on `addr`. The unspecified IPv6 address also takes IPv4.
pub fn socket(addr: SocketAddr) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(false)?;
    }
    s.set_reuse_port(true)?;
    s.set_reuse_address(true)?;
    s.set_read_timeout(Some(STOP_POLL))?;
    // A larger receive queue absorbs bursts; the kernel caps it at net.core.rmem_max.
    let _ = s.set_recv_buffer_size(4 << 20);
    s.bind(&addr.into())?;
    Ok(s)
}

/// Running workers of one listener.
pub struct Workers {
    stop: Arc<AtomicBool>,
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
        let mut threads = Vec::new();
        for (i, sock) in sockets.into_iter().enumerate() {
            let w = Worker {
                sock: Arc::new(sock),
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
        Ok(Workers { stop, threads })
    }

    /// Asks the workers to stop after their current batch and waits for them.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
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
        let mut recv = vec![0u8; BATCH * MAX_QUERY];
        // SAFETY: sockaddr_storage is plain old data; all zeroes is a valid value.
        let mut peers: Vec<RawAddr> = vec![RawAddr { storage: unsafe { zeroed() }, len: 0 }; BATCH];
        let mut out: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(512)).collect();
        let mut out_peers: Vec<RawAddr> = peers.clone();
        let mut lens = [(0usize, false); BATCH];

        while !self.stop.load(Ordering::Relaxed) {
            let n = match recv_batch(fd, &mut recv, &mut peers, &mut lens) {
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
            for (i, &(len, truncated)) in lens[..n].iter().enumerate() {
                if truncated {
                    continue;
                }
                let Some(client) = to_socket_addr(&peers[i]) else { continue };
                let meta = Meta { client, local: self.local, proto: Proto::Udp, received };
                let bytes = &recv[i * MAX_QUERY..i * MAX_QUERY + len];
                match table.handle(bytes, meta, &mut out[replies]) {
                    Handled::Drop => {}
                    Handled::Reply => {
                        out_peers[replies] = peers[i];
                        replies += 1;
                    }
                    Handled::Pending(pending) => {
                        let (sock, peer, guard) = (self.sock.clone(), peers[i], self.inflight.enter());
                        self.rt.spawn(async move {
                            let mut buf = Vec::with_capacity(512);
                            pending.finish(&mut buf).await;
                            if let Some(addr) = to_socket_addr(&peer) {
                                let _ = sock.send_to_with_flags(&buf, &SockAddr::from(addr), libc::MSG_DONTWAIT);
                            }
                            drop(guard);
                        });
                    }
                }
            }
            send_batch(fd, &out[..replies], &out_peers[..replies]);
        }
    }
}

/// Receives up to [`BATCH`] datagrams, filling `lens` with (length, truncated) for each;
/// returns how many.
fn recv_batch(fd: i32, buf: &mut [u8], peers: &mut [RawAddr], lens: &mut [(usize, bool); BATCH]) -> io::Result<usize> {
    let mut iov: [MaybeUninit<libc::iovec>; BATCH] = [const { MaybeUninit::uninit() }; BATCH];
    // SAFETY: mmsghdr is plain old data; zeroes are a valid starting value.
    let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
    for i in 0..BATCH {
        iov[i].write(libc::iovec { iov_base: buf[i * MAX_QUERY..].as_mut_ptr().cast(), iov_len: MAX_QUERY });
        let h = &mut hdrs[i].msg_hdr;
        h.msg_name = (&mut peers[i].storage as *mut libc::sockaddr_storage).cast();
        h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        h.msg_iov = iov[i].as_mut_ptr();
        h.msg_iovlen = 1;
    }
    // SAFETY: every header points at live buffers of the stated sizes for the whole call.
    let n = unsafe {
        libc::recvmmsg(fd, hdrs.as_mut_ptr(), BATCH as libc::c_uint, libc::MSG_WAITFORONE, std::ptr::null_mut())
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    for i in 0..n {
        peers[i].len = hdrs[i].msg_hdr.msg_namelen;
        lens[i] = (hdrs[i].msg_len as usize, hdrs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0);
    }
    Ok(n)
}

/// Sends `bufs[i]` to `peers[i]`, in as few `sendmmsg` calls as the kernel allows. A datagram
/// the kernel refuses is skipped (the client will retry); the rest still go.
fn send_batch(fd: i32, bufs: &[Vec<u8>], peers: &[RawAddr]) {
    let n = bufs.len();
    if n == 0 {
        return;
    }
    let mut iov: [MaybeUninit<libc::iovec>; BATCH] = [const { MaybeUninit::uninit() }; BATCH];
    // SAFETY: as in recv_batch.
    let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
    let mut peers = peers.to_vec();
    for i in 0..n {
        iov[i].write(libc::iovec { iov_base: bufs[i].as_ptr() as *mut libc::c_void, iov_len: bufs[i].len() });
        let h = &mut hdrs[i].msg_hdr;
        h.msg_name = (&mut peers[i].storage as *mut libc::sockaddr_storage).cast();
        h.msg_namelen = peers[i].len;
        h.msg_iov = iov[i].as_mut_ptr();
        h.msg_iovlen = 1;
    }
    let mut sent = 0;
    while sent < n {
        // SAFETY: headers sent..n point at live buffers and addresses.
        let r = unsafe { libc::sendmmsg(fd, hdrs[sent..].as_mut_ptr(), (n - sent) as libc::c_uint, 0) };
        if r > 0 {
            sent += r as usize;
            continue;
        }
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            continue;
        }
        // This datagram cannot go (a bad peer address, a full queue): skip it.
        sent += 1;
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
