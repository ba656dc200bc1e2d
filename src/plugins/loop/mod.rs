//! *loop*: detects a forwarding loop at start, the way CoreDNS's loop plugin does, and stops the
//! server with an error naming it.
//!
//! Once its configuration is serving, the plugin sends one query, `HINFO <random>.<random>.ZONE`,
//! to its own block's listener. Nobody else asks that name: if the query comes back through
//! this plugin more than twice, the server forwards to something that forwards back to it, and
//! every query that reaches the forwarder would circle until it times out, each pass costing
//! the upstream and this server a query. The server then stops with
//! `[FATAL] plugin/loop: Loop (CLIENT -> LISTENER) detected for zone "ZONE", ...` and exit
//! status 1, as CoreDNS's `log.Fatal` does.
//!
//! The probe is retried every second while sending it fails (no answer within 2 s), for 30 s
//! at most; 2 s after it was answered, or once the 30 s have passed, the plugin stops looking
//! and hands every query on without a look. Only HINFO queries are looked at in the meantime.

use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::corefile::{Args, Directive, Error, once};
use crate::dns::{Name, RecordType, Request, Response};
use crate::plugin::handles::{Fatal, Serving};
use crate::plugin::setup::{DynConfig, ParseCtx, PluginConfig, SetupCtx};
use crate::plugin::{DynPlugin, Next, Plugin, ServeError};

pub const NAME: &str = "loop";

/// How long the probe is retried (CoreDNS: 30 s).
const PROBE_FOR: Duration = Duration::from_secs(30);
/// How long the plugin keeps counting after the probe was answered (CoreDNS: 2 s).
const WATCH_AFTER: Duration = Duration::from_secs(2);
/// The probe's own timeout (miekg/dns's default for `dns.Exchange`).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// `loop`, no arguments, once per block; the zone is the block's first.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    zone: Name,
}

pub fn parse(dirs: &[Directive], ctx: &ParseCtx<'_>) -> Result<Box<dyn DynConfig>, Error> {
    let dir = once(NAME, dirs)?;
    let args = Args::new(NAME, dir);
    args.finish()?;
    args.no_block()?;
    Ok(Box::new(Config { zone: ctx.zones.first().cloned().unwrap_or_else(Name::root) }))
}

impl PluginConfig for Config {
    fn build(&self, ctx: &mut SetupCtx<'_>) -> Result<Option<Arc<dyn DynPlugin>>, Error> {
        let qname = probe_name(&self.zone)
            .map_err(|e| Error::setup(NAME, &ctx.block().pos, format!("zone too long for a probe name: {e}")))?;
        let probe = Arc::new(Probe {
            zone: self.zone.clone(),
            qname,
            seen: AtomicU32::new(0),
            off: AtomicBool::new(false),
            addr: Mutex::new(None),
            fatal: ctx.fatal(),
        });
        let p = probe.clone();
        ctx.on_serving(move |serving| p.run(serving));
        Ok(Some(Arc::new(Loop(probe))))
    }
}

/// `<random>.<random>.ZONE`.
fn probe_name(zone: &Name) -> Result<Name, crate::dns::NameError> {
    zone.prepend_label(random_int().to_string().as_bytes())?.prepend_label(random_int().to_string().as_bytes())
}

/// A random integer below 2^62, as CoreDNS's labels are.
fn random_int() -> u64 {
    // RandomState is keyed from the OS's random source once per process, and differently for
    // each instance after that.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.finish() >> 2
}

struct Probe {
    zone: Name,
    qname: Name,
    seen: AtomicU32,
    off: AtomicBool,
    /// Where the probe was sent, for the error.
    addr: Mutex<Option<SocketAddr>>,
    fatal: Fatal,
}

impl Probe {
    /// The probe task (see the [module documentation](self)).
    async fn run(self: Arc<Self>, serving: Serving) {
        let Some(addr) = serving.dns.first().map(|a| reachable(*a)) else {
            self.off.store(true, Ordering::Relaxed);
            return;
        };
        *self.addr.lock().expect("loop lock") = Some(addr);
        let deadline = Instant::now() + PROBE_FOR;
        while Instant::now() < deadline {
            if self.exchange(addr).await.is_ok() {
                tokio::time::sleep(WATCH_AFTER).await;
                break;
            }
            self.seen.store(0, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        self.off.store(true, Ordering::Relaxed);
    }

    async fn exchange(&self, addr: SocketAddr) -> std::io::Result<()> {
        let local: SocketAddr =
            if addr.is_ipv4() { (Ipv4Addr::UNSPECIFIED, 0).into() } else { (Ipv6Addr::UNSPECIFIED, 0).into() };
        let sock = tokio::net::UdpSocket::bind(local).await?;
        sock.connect(addr).await?;
        let id = fastrand::u16(..);
        let query = crate::dns::build_query(id, &self.qname.to_string(), RecordType::HINFO, None);
        sock.send(&query).await?;
        let mut buf = vec![0u8; 4096];
        let wait = async {
            loop {
                let n = sock.recv(&mut buf).await?;
                if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id {
                    return Ok(());
                }
            }
        };
        tokio::time::timeout(PROBE_TIMEOUT, wait).await.unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
    }
}

/// A wildcard listener is probed on the loopback address of its family.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// See the [module documentation](self).
struct Loop(Arc<Probe>);

impl Plugin for Loop {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve<'a>(&'a self, req: &'a mut Request, next: Next<'a>) -> Result<Response, ServeError> {
        let p = &self.0;
        if req.qtype() == RecordType::HINFO && !p.off.load(Ordering::Relaxed) && *req.qname() == p.qname {
            let seen = p.seen.fetch_add(1, Ordering::Relaxed) + 1;
            // Once: the third time the probe comes through.
            if seen == 3 {
                let to = p.addr.lock().expect("loop lock").map_or_else(String::new, |a| a.to_string());
                p.fatal.stop(
                    NAME,
                    format!(
                        "Loop ({} -> {to}) detected for zone \"{}\", see https://coredns.io/plugins/loop#troubleshooting. \
                         Query: \"HINFO {}\"",
                        req.client(),
                        p.zone,
                        p.qname
                    ),
                );
            }
        }
        next.run(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Result<Config, String> {
        crate::plugin::testing::parse_config(text, NAME, parse)
    }

    #[test]
    fn zone_is_the_blocks_first() {
        assert_eq!(config("example.org example.net {\n    loop\n}\n").unwrap().zone.to_string(), "example.org.");
        assert_eq!(config(". {\n    loop\n}\n").unwrap().zone, Name::root());
    }

    #[test]
    fn takes_no_arguments_and_appears_once() {
        let err = config(". {\n    loop 5\n}\n").unwrap_err();
        assert_eq!(err, "/etc/coredns/Corefile:2:10: loop: unexpected argument '5'");
        let err = config(". {\n    loop\n    loop\n}\n").unwrap_err();
        assert_eq!(err, "/etc/coredns/Corefile:3:5: loop: this plugin can only be used once per Server Block");
    }

    #[test]
    fn probe_names_are_random_integers_under_the_zone() {
        let (a, b) = (random_int(), random_int());
        assert_ne!(a, b);
        assert!(a < 1 << 62 && b < 1 << 62);
        for zone in [".", "cluster.local."] {
            let name = probe_name(&Name::parse(zone).unwrap()).unwrap();
            assert_eq!(name.label_count(), Name::parse(zone).unwrap().label_count() + 2, "{name}");
            assert!(name.labels().take(2).all(|l| !l.is_empty() && l.iter().all(u8::is_ascii_digit)), "{name}");
        }
        assert_ne!(probe_name(&Name::root()).unwrap(), probe_name(&Name::root()).unwrap());
    }
}
