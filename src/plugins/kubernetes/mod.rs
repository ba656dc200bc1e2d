//! *kubernetes*: the cluster zone, answered from an index of the cluster that kube-runtime
//! watches keep current, as the Kubernetes DNS-Based Service Discovery specification (schema
//! 1.1.0) and CoreDNS's plugin of the same name answer it.
//!
//! ```text
//! query ─► zone of the plugin? ──no──► next plugin
//!             │ yes
//!             ▼
//!          AXFR/IXFR? ──yes──► REFUSED
//!             │
//!             ▼                       (read lock, no waiting)
//!          answer::answer(index) ──► records / NODATA ──────────────────► answer
//!             │                  ──► CNAME (ExternalName) ─► resolve the target through
//!             │                                              the server's chains ─► answer
//!             ▼ no such name
//!          fallthrough for it? ──yes──► next plugin
//!             │ no
//!          synced yet? ──no──► SERVFAIL (ErrorKind::NotReady): never a false NXDOMAIN
//!             │ yes
//!             ▼
//!          NXDOMAIN with the SOA
//! ```
//!
//! The layout: [`setup`] (syntax, and the state kept across reloads), [`qname`] (the names of
//! the zone), [`answer`] and [`reverse`] (records), [`object`] (API objects trimmed at the
//! edge), [`index`] (what is kept and how it is found), [`watch`] (keeping it current),
//! [`client`] (the API client), [`metrics`], and [`handle`], what other plugins may read.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::dns::{Name, Rcode, RecordType, Request, Response};
use crate::plugin::fall::Fallthrough;
use crate::plugin::handles::Resolver;
use crate::plugin::{ErrorKind, Next, Plugin, ServeError};

pub mod answer;
pub mod client;
pub mod handle;
pub mod index;
pub mod metrics;
mod names;
pub mod object;
pub mod qname;
pub mod reverse;
mod selector;
mod setup;
pub mod watch;

pub use handle::Handle;
pub use setup::parse;

pub const NAME: &str = "kubernetes";

/// See the [module documentation](self).
pub struct Kubernetes {
    settings: answer::Settings,
    fall: Fallthrough,
    /// The index and its watches, shared by every block and configuration with the same
    /// connection and filters.
    cluster: Arc<watch::Cluster>,
    /// Resolves ExternalName targets through the server's chains.
    resolver: Resolver,
    /// The addresses this server is bound to, for the zone's NS records; set once serving.
    local_ips: Arc<ArcSwap<Vec<IpAddr>>>,
}

impl Plugin for Kubernetes {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve<'a>(&'a self, req: &'a mut Request, next: Next<'a>) -> Result<Response, ServeError> {
        let Some(zone) = self.zone_of(req.qname()) else {
            return next.run(req).await;
        };
        if matches!(req.qtype(), RecordType::AXFR | RecordType::IXFR) {
            return Ok(Response::with_rcode(NAME, Rcode::REFUSED));
        }
        // Decided in a block of its own, so that the outcome (records and names, a few hundred
        // bytes) is gone before anything is awaited: what lives across an await is part of this
        // future, and the future is copied into its box on every query this plugin serves.
        let external = {
            let (outcome, synced) = {
                let index = self.cluster.index.read();
                let local_ips = self.local_ips.load();
                (answer::answer(&self.settings, &index, &local_ips, req, zone), index.synced())
            };
            match outcome {
                answer::Outcome::Answer(resp) => return Ok(resp),
                answer::Outcome::NoName { soa } => {
                    // As in CoreDNS, fallthrough is decided before the sync check.
                    if !self.fall.through(req.qname()) {
                        return no_name(soa, synced);
                    }
                    None
                }
                // Boxed for the same reason, as the future that resolves it through the
                // server's chains is: an ExternalName is a rare answer.
                answer::Outcome::Cname { cname, target } => Some(Box::new((cname, target))),
            }
        };
        match external {
            Some(cname_target) => {
                let (cname, target) = *cname_target;
                Ok(Box::pin(self.external(req, cname, target)).await)
            }
            None => next.run(req).await,
        }
    }
}

/// A name the index does not have: NXDOMAIN with the zone's SOA once synced; before, SERVFAIL
/// (`NotReady`), since the name may yet exist.
fn no_name(soa: crate::dns::Record, synced: bool) -> Result<Response, ServeError> {
    if !synced {
        return Err(ServeError::new(
            NAME,
            ErrorKind::NotReady,
            "not yet synced with the Kubernetes API: cannot tell whether the name exists",
        ));
    }
    let mut resp = Response::with_rcode(NAME, Rcode::NXDOMAIN);
    resp.authoritative = true;
    resp.authority.push(soa);
    Ok(resp)
}

impl Kubernetes {
    /// The longest of the plugin's zones `name` is in.
    fn zone_of(&self, name: &Name) -> Option<usize> {
        let zones = &self.settings.zones;
        (0..zones.len()).filter(|&i| name.is_subdomain_of(&zones[i])).max_by_key(|&i| zones[i].wire_len())
    }

    /// Spec 2.5: an ExternalName's CNAME, followed, as in CoreDNS, by the target's records of
    /// the question's type, resolved through the server's own chains (usually `forward`).
    /// When the target cannot be resolved the CNAME alone is the answer, for the client to
    /// follow.
    async fn external(&self, req: &Request, cname: crate::dns::Record, target: Name) -> Response {
        let mut resp = Response::authoritative(NAME);
        resp.answer.push(cname);
        match self.resolver.resolve(req, target, req.qtype()).await {
            Ok(r) => {
                resp.answer.extend(r.answer);
                resp.truncated |= r.truncated;
            }
            Err(e) => tracing::debug!(target: "plugin/kubernetes", "{}: {e}", req.qname()),
        }
        resp
    }
}

/// The addresses the server is bound to, as CoreDNS reads them for the NS records: the
/// non-loopback ones, every interface's for a wildcard address. When there are none (a server
/// bound to loopback only) the loopback ones, which CoreDNS leaves out (it then has no NS
/// records at all).
pub fn local_addresses(bound: &[SocketAddr]) -> Vec<IpAddr> {
    let mut all: Vec<IpAddr> = Vec::new();
    for a in bound {
        if a.ip().is_unspecified() {
            all.extend(interface_addresses().into_iter().filter(|ip| ip.is_ipv4() == a.is_ipv4() || a.is_ipv6()));
        } else {
            all.push(a.ip());
        }
    }
    all.dedup();
    let routable: Vec<IpAddr> = all.iter().copied().filter(|ip| !ip.is_loopback()).collect();
    if routable.is_empty() { all } else { routable }
}

/// The addresses of every network interface.
fn interface_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut addrs: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `addrs` with a list we walk read-only and free once.
    unsafe {
        if libc::getifaddrs(&mut addrs) != 0 {
            return out;
        }
        let mut cur = addrs;
        while !cur.is_null() {
            let a = (*cur).ifa_addr;
            if !a.is_null() {
                match i32::from((*a).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(a as *const libc::sockaddr_in);
                        out.push(IpAddr::from(sin.sin_addr.s_addr.to_ne_bytes()));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(a as *const libc::sockaddr_in6);
                        out.push(IpAddr::from(sin6.sin6_addr.s6_addr));
                    }
                    _ => {}
                }
            }
            cur = (*cur).ifa_next;
        }
        libc::freeifaddrs(addrs);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_addresses_leave_loopback_out_unless_it_is_all() {
        let l: SocketAddr = "127.0.0.1:53".parse().unwrap();
        let r: SocketAddr = "10.0.0.5:53".parse().unwrap();
        assert_eq!(local_addresses(&[l]), ["127.0.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(local_addresses(&[l, r]), ["10.0.0.5".parse::<IpAddr>().unwrap()]);
        let wildcard: SocketAddr = "0.0.0.0:53".parse().unwrap();
        assert!(local_addresses(&[wildcard]).iter().all(|ip| ip.is_ipv4()));
    }
}
