//! DNS listeners: binding a listen address's sockets (one UDP socket per worker thread and a
//! TCP listener, on the same port), serving them, stopping them, and counting the queries and
//! connections in flight (`inflight.rs`) so shutdown can wait for them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use socket2::Socket;
use tokio::sync::watch;

use super::dispatch::ZoneTable;
use super::tcp::table::ListenerId;
use super::{Server, TcpSettings, tcp, udp};
use crate::corefile::Transport;

/// A listen address of DNS: transport, host (`None` for every address) and port.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenKey {
    pub transport: Transport,
    pub host: Option<IpAddr>,
    pub port: u16,
}

/// The server label of metrics, as CoreDNS writes it: `dns://:53`, `dns://127.0.0.1:53`,
/// `dns://[::1]:53`.
pub(super) fn server_label(transport: Transport, host: Option<IpAddr>, port: u16) -> String {
    match host {
        None => format!("{}://:{port}", transport.scheme()),
        Some(IpAddr::V6(ip)) => format!("{}://[{ip}]:{port}", transport.scheme()),
        Some(IpAddr::V4(ip)) => format!("{}://{ip}:{port}", transport.scheme()),
    }
}

/// Sockets bound for a listen address, not yet serving: until they are, the kernel queues what
/// arrives.
pub(super) struct Bound {
    pub local: SocketAddr,
    udp: Vec<Socket>,
    tcp: std::net::TcpListener,
}

/// A serving DNS listener.
pub(super) struct Listener {
    pub local: SocketAddr,
    /// The zone table it serves; a reload stores a new one.
    pub table: Arc<ArcSwap<ZoneTable>>,
    workers: udp::Workers,
    /// Its TCP side in the server's connection table.
    tcp_id: ListenerId,
    tcp_stop: watch::Sender<bool>,
    tcp: tokio::task::JoinHandle<()>,
}

impl Listener {
    /// Its TCP settings after a reload.
    pub fn set_tcp_settings(&self, server: &Server, settings: TcpSettings) {
        server.inner.conns.set_settings(self.tcp_id, settings);
    }

    /// Stops receiving, lets each worker finish its batch, and waits for them.
    pub async fn stop(self) {
        let _ = self.tcp_stop.send(true);
        let workers = self.workers;
        let _ = tokio::task::spawn_blocking(move || workers.stop()).await;
        let _ = self.tcp.await;
    }
}

impl Server {
    /// Binds the UDP sockets (one per worker) and the TCP listener of `key`. Port 0 picks a
    /// port free for both.
    pub(super) fn bind(&self, key: &ListenKey) -> std::io::Result<Bound> {
        let workers = self
            .inner
            .opts
            .udp_workers
            .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
        let (host, port) = if self.inner.opts.loopback_ephemeral {
            (IpAddr::V4(Ipv4Addr::LOCALHOST), 0)
        } else {
            (key.host.unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED)), key.port)
        };
        let mut last_err = None;
        for _ in 0..8 {
            let first = match udp::socket(SocketAddr::new(host, port)) {
                Err(e) if key.host.is_none() && is_no_ipv6(&e) => {
                    udp::socket(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port))?
                }
                r => r?,
            };
            let local = first.local_addr()?.as_socket().expect("an inet socket");
            let mut udp = vec![first];
            for _ in 1..workers.max(1) {
                udp.push(udp::socket(local)?);
            }
            match tcp_listener(local) {
                Ok(tcp) => return Ok(Bound { local, udp, tcp }),
                // Port 0 gave a UDP port whose TCP twin is taken: try another.
                Err(e) if port == 0 => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_err.expect("tried at least once"))
    }

    /// Starts serving `b` from `table`; `label` is its metrics `server` label.
    pub(super) fn serve(
        &self,
        b: Bound,
        table: Arc<ArcSwap<ZoneTable>>,
        label: &str,
        settings: TcpSettings,
    ) -> std::io::Result<Listener> {
        let workers = udp::Workers::start(
            b.udp,
            b.local,
            table.clone(),
            self.inner.inflight.clone(),
            self.inner.threads.clone(),
        )?;
        let (tcp_stop, stop_rx) = watch::channel(false);
        let tcp = {
            let _rt = self.inner.rt.enter();
            tokio::net::TcpListener::from_std(b.tcp)?
        };
        let conns = self.inner.conns.clone();
        let tcp_id = conns.add_listener(label, settings);
        let tcp =
            self.inner.rt.spawn(tcp::serve(tcp, table.clone(), conns, tcp_id, stop_rx, self.inner.inflight.clone()));
        Ok(Listener { local: b.local, table, workers, tcp_id, tcp_stop, tcp })
    }
}

/// A non-blocking TCP listener on `addr` (dual-stack when it is an IPv6 address), for DNS over
/// TCP and the HTTP endpoints alike.
///
/// SO_REUSEPORT, as on the UDP sockets: a second instance can bind the same addresses while the
/// first drains (a rolling restart on one host, `tests/pod_eye.rs`), and a reload can bind its new
/// listener before the old one closes. In a pod each instance has its own network namespace, so
/// nothing else ever shares them.
pub(crate) fn tcp_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(false)?;
    }
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    // As Go does, as long a queue of connections not yet accepted as the kernel allows
    // (net.core.somaxconn caps it): a burst of clients waits there instead of retrying its SYN
    // a second later.
    s.listen(i32::from(u16::MAX))?;
    Ok(s.into())
}

/// Raises the soft limit on open descriptors to the hard limit, as Go's runtime does at start
/// (so CoreDNS runs with it): the default soft limit of 1,024 would cap DNS connections far
/// below what a cluster's NodeLocal caches open. Returns the limit now in force.
pub fn raise_descriptor_limit() -> std::io::Result<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            lim = raised;
        }
    }
    Ok(lim.rlim_cur)
}

/// The soft limit on open descriptors: what the process may open.
pub fn descriptor_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    lim.rlim_cur
}

/// Whether binding failed because the system has no IPv6 (the wildcard then falls back to IPv4).
pub(crate) fn is_no_ipv6(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL) | Some(libc::EPROTONOSUPPORT))
}
