//! A UDP socket connected to one upstream, as the runtime watches it: for reading only.
//!
//! `tokio::net::UdpSocket` registers a socket edge-triggered for reading *and* writing, and
//! Linux signals a UDP socket writable again each time a datagram it sent leaves the send
//! queue: every query sent woke the runtime's worker once for nothing, before the answer woke
//! it again. A query's datagram never waits for room here (one query at a time per socket, far
//! below the send buffer), so the socket is sent on directly and registered for reading alone,
//! and a forwarded query wakes the runtime once, for its answer.

use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

pub struct UdpConn {
    fd: AsyncFd<Socket>,
    /// Room for the largest datagram, allocated (not zeroed) once per socket rather than once
    /// per query: the allocator's slow path for 64 KiB blocks showed in the forwarding profile.
    buf: Vec<u8>,
}

impl UdpConn {
    /// A socket on a random ephemeral port, connected to `upstream`, so the kernel drops
    /// datagrams from any other address or port. Needs the runtime's context.
    pub fn open(upstream: SocketAddr) -> io::Result<UdpConn> {
        let local: SocketAddr =
            if upstream.is_ipv4() { (Ipv4Addr::UNSPECIFIED, 0).into() } else { (Ipv6Addr::UNSPECIFIED, 0).into() };
        let sock =
            Socket::new(Domain::for_address(upstream), Type::DGRAM.nonblocking().cloexec(), Some(Protocol::UDP))?;
        sock.bind(&local.into())?;
        sock.connect(&upstream.into())?;
        // SAFETY: the socket2 socket owns its descriptor and returns that one descriptor from
        // `as_raw_fd` until it is dropped, which only the `AsyncFd` that owns it can do.
        let fd = unsafe { AsyncFd::register_with_interest(sock, Interest::READABLE) }.map_err(|e| e.into_parts().1)?;
        Ok(UdpConn { fd, buf: Vec::with_capacity(u16::MAX as usize) })
    }

    /// Sends one datagram without waiting: a full send queue is an error, not a wait.
    pub fn send(&self, datagram: &[u8]) -> io::Result<()> {
        self.fd.get_ref().send(datagram).map(|_| ())
    }

    /// Waits for the next datagram and returns it.
    pub async fn recv(&mut self) -> io::Result<&[u8]> {
        self.buf.clear();
        loop {
            let mut ready = self.fd.readable().await?;
            let spare: &mut [MaybeUninit<u8>] = self.buf.spare_capacity_mut();
            match ready.try_io(|fd| fd.get_ref().recv(spare)) {
                Ok(Ok(n)) => {
                    // SAFETY: the kernel wrote the first n bytes of the spare capacity.
                    unsafe { self.buf.set_len(n) };
                    return Ok(&self.buf);
                }
                Ok(Err(e)) => return Err(e),
                // Not readable after all: readiness is cleared, wait again.
                Err(_would_block) => continue,
            }
        }
    }
}
