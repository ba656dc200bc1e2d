//! *health*: an HTTP endpoint that answers `200 OK` for as long as the process serves, and a
//! self-check that requests it once a second to measure how responsive the process is.
//!
//! The endpoint does not look at plugins (that is *ready*'s job) and stays `200 OK` through the
//! lameduck period: a liveness probe must not restart a server that is draining on purpose.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::http::{HttpAddr, HttpHandler, HttpRequest, HttpResponse};
use crate::metrics::{Counter, Histogram, Registry};

mod setup;
pub use setup::parse;

pub const NAME: &str = "health";
/// The fixed path of the endpoint.
pub const PATH: &str = "/health";

/// How often the self-check runs, and how long one may take before it counts as failed.
const CHECK_EVERY: Duration = Duration::from_secs(1);
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);
/// A self-check slower than this is logged: a local request taking a second means the process
/// is struggling to keep up.
const SLOW: Duration = Duration::from_secs(1);

/// CoreDNS's `plugin.SlimTimeBuckets`: 0.25 ms to 2.5 s, factor 10.
pub static SLIM_TIME_BUCKETS: [f64; 5] = [0.00025, 0.0025, 0.025, 0.25, 2.5];

/// The `/health` endpoint of one address, shared by every block that names the address.
pub struct Health {
    addr: HttpAddr,
    /// Where the endpoint is served, once the server has bound it.
    local: Mutex<Vec<SocketAddr>>,
    /// Whether this configuration's self-check of the endpoint was started.
    checking: AtomicBool,
}

impl Health {
    fn new(addr: HttpAddr) -> Health {
        Health { addr, local: Mutex::new(Vec::new()), checking: AtomicBool::new(false) }
    }

    /// The address the self-check connects to: the first bound one, with an unspecified IP
    /// replaced by loopback (as Go dials `:8080`).
    fn target(&self) -> Option<SocketAddr> {
        let mut a = *self.local.lock().expect("health lock").first()?;
        match a.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => a.set_ip(Ipv4Addr::LOCALHOST.into()),
            IpAddr::V6(ip) if ip.is_unspecified() => a.set_ip(Ipv6Addr::LOCALHOST.into()),
            _ => {}
        }
        Some(a)
    }
}

impl HttpHandler for Health {
    fn handle(&self, _req: &HttpRequest<'_>) -> HttpResponse {
        HttpResponse::text(200, "OK")
    }

    fn bound(&self, local: &[SocketAddr]) {
        *self.local.lock().expect("health lock") = local.to_vec();
    }
}

/// CoreDNS's self-check metrics. They have no `server` label: slowness is the process's, not a
/// listener's.
pub struct SelfCheckMetrics {
    duration: Arc<Histogram>,
    failures: Arc<Counter>,
}

impl SelfCheckMetrics {
    pub fn new(r: &Registry) -> SelfCheckMetrics {
        SelfCheckMetrics {
            duration: r
                .histogram(
                    "coredns_health_request_duration_seconds",
                    "Histogram of the time (in seconds) each request took.",
                    &[],
                    &SLIM_TIME_BUCKETS,
                )
                .with(&[]),
            failures: r
                .counter("coredns_health_request_failures_total", "The number of times the health check failed.", &[])
                .with(&[]),
        }
    }
}

/// Requests `health`'s own endpoint once a second, for as long as the configuration runs,
/// timing each request into `coredns_health_request_duration_seconds` and counting failures in
/// `coredns_health_request_failures_total`. Any HTTP answer is a success: what is measured is
/// whether the process answers at all, and how fast.
async fn self_check(health: Arc<Health>, metrics: SelfCheckMetrics) {
    let url = format!("http://{}{PATH}", health.addr);
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(target) = health.target() else { continue };
        let start = Instant::now();
        let result = tokio::time::timeout(CHECK_TIMEOUT, get(target)).await;
        let elapsed = start.elapsed();
        metrics.duration.observe(elapsed.as_secs_f64());
        let error = match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("timed out after {}", crate::corefile::format_duration(CHECK_TIMEOUT))),
        };
        match error {
            Some(e) => {
                metrics.failures.inc();
                tracing::warn!(target: "plugin/health", "Local health request to {url:?} failed: {e}");
            }
            None if elapsed > SLOW => tracing::warn!(
                target: "plugin/health",
                "Local health request to {url:?} took more than 1s: {}",
                crate::corefile::format_duration(elapsed)
            ),
            None => {}
        }
    }
}

/// One `GET /health` over a new connection; Ok once a status line came back.
async fn get(target: SocketAddr) -> std::io::Result<()> {
    let mut stream = tokio::net::TcpStream::connect(target).await?;
    let request = format!("GET {PATH} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::with_capacity(128);
    let mut buf = [0u8; 128];
    while !head.windows(2).any(|w| w == b"\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed before a response"));
        }
        head.extend_from_slice(&buf[..n]);
    }
    if !head.starts_with(b"HTTP/1.") {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_ok_whatever_it_is_asked() {
        let h = Health::new(HttpAddr::parse(":8080").unwrap());
        let r = h.handle(&HttpRequest { path: PATH, accept: None });
        assert_eq!((r.status, r.body.as_slice()), (200, b"OK".as_slice()));
    }

    #[test]
    fn self_check_targets_loopback_for_unspecified_addresses() {
        let h = Health::new(HttpAddr::parse(":8080").unwrap());
        assert_eq!(h.target(), None);
        h.bound(&["[::]:8080".parse().unwrap()]);
        assert_eq!(h.target(), Some("[::1]:8080".parse().unwrap()));
        h.bound(&["0.0.0.0:8080".parse().unwrap()]);
        assert_eq!(h.target(), Some("127.0.0.1:8080".parse().unwrap()));
        h.bound(&["10.0.0.1:8080".parse().unwrap()]);
        assert_eq!(h.target(), Some("10.0.0.1:8080".parse().unwrap()));
    }
}
