//! Reverse names: PTR records for cluster IPs and endpoint addresses.
//!
//! ```text
//! Kubernetes DNS spec 2.3.3: given an IPv4 Service ClusterIP <a>.<b>.<c>.<d>, a PTR record
//!   <d>.<c>.<b>.<a>.in-addr.arpa. <ttl> IN PTR <service>.<ns>.svc.<zone>.
//! and for an IPv6 ClusterIP, its 32 nibbles in reverse order under ip6.arpa.
//! Spec 2.4.3: given a ready endpoint with hostname <hostname> and IP <a>.<b>.<c>.<d>,
//!   <d>.<c>.<b>.<a>.in-addr.arpa. <ttl> IN PTR <hostname>.<service>.<ns>.svc.<zone>.
//! ```
//!
//! As in CoreDNS, `<zone>` is the plugin's first forward zone; a cluster IP's own name is given
//! when the address is one, otherwise one name per ready endpoint with the address (of any
//! service, headless or not), and the addresses of pods selected by no service have none.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::index::{Index, Reverse};
use super::names::NameBuilder;
use crate::dns::Name;

/// The address a full reverse name stands for: `1.0.0.10.in-addr.arpa.` is 10.0.0.1, and 32
/// nibbles under `ip6.arpa.` an IPv6 address. Anything else (a shorter name, a label that is
/// not a number or nibble) is `None`.
pub fn address(qname: &Name) -> Option<IpAddr> {
    let labels: Vec<&[u8]> = qname.labels().collect();
    match labels.as_slice() {
        [d, c, b, a, arpa_in, arpa]
            if arpa_in.eq_ignore_ascii_case(b"in-addr") && arpa.eq_ignore_ascii_case(b"arpa") =>
        {
            let octet = |l: &[u8]| -> Option<u8> {
                // No leading zeros, as the address parsers of Go and Rust agree.
                if l.is_empty() || l.len() > 3 || (l.len() > 1 && l[0] == b'0') {
                    return None;
                }
                std::str::from_utf8(l).ok()?.parse().ok()
            };
            Some(IpAddr::V4(Ipv4Addr::new(octet(a)?, octet(b)?, octet(c)?, octet(d)?)))
        }
        [nibbles @ .., ip6, arpa]
            if nibbles.len() == 32 && ip6.eq_ignore_ascii_case(b"ip6") && arpa.eq_ignore_ascii_case(b"arpa") =>
        {
            let mut bits: u128 = 0;
            for label in nibbles.iter().rev() {
                let [digit] = label else { return None };
                let v = (*digit as char).to_digit(16)?;
                bits = bits << 4 | v as u128;
            }
            Some(IpAddr::V6(Ipv6Addr::from(bits)))
        }
        _ => None,
    }
}

/// Whether `name` is under `in-addr.arpa.` or `ip6.arpa.`.
pub fn is_reverse(name: &Name) -> bool {
    let mut labels = name.labels().collect::<Vec<_>>().into_iter().rev();
    let arpa = labels.next().is_some_and(|l| l.eq_ignore_ascii_case(b"arpa"));
    arpa && labels.next().is_some_and(|l| l.eq_ignore_ascii_case(b"in-addr") || l.eq_ignore_ascii_case(b"ip6"))
}

/// The names of `ip` under `zone` (the plugin's first forward zone), deduplicated; only
/// services and endpoints in namespaces that exist have one.
pub fn targets(index: &Index, ip: IpAddr, zone: &Name) -> Vec<Name> {
    let mut cluster_ips = Vec::new();
    let mut endpoints = Vec::new();
    let mut b = NameBuilder::new();
    for owner in index.reverse(ip) {
        match owner {
            Reverse::ClusterIp(svc) if svc.namespace_exists() => {
                if let Some(n) = b.service(None, svc.name(), svc.namespace(), zone) {
                    push_new(&mut cluster_ips, n);
                }
            }
            Reverse::Endpoint { service: Some(svc), endpoint } if endpoint.ready && svc.namespace_exists() => {
                if let Some(n) = b.service(Some(&endpoint), svc.name(), svc.namespace(), zone) {
                    push_new(&mut endpoints, n);
                }
            }
            _ => {}
        }
    }
    if cluster_ips.is_empty() { endpoints } else { cluster_ips }
}

fn push_new(v: &mut Vec<Name>, n: Name) {
    if !v.contains(&n) {
        v.push(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Option<String> {
        address(&Name::parse(s).unwrap()).map(|ip| ip.to_string())
    }

    #[test]
    fn full_reverse_names_are_addresses() {
        assert_eq!(addr("1.0.96.10.in-addr.arpa."), Some("10.96.0.1".into()));
        assert_eq!(addr("1.0.96.10.IN-ADDR.ARPA."), Some("10.96.0.1".into()));
        let v6 = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.";
        assert_eq!(addr(v6), Some("2001:db8::1".into()));
        assert_eq!(addr(&v6.to_uppercase()), Some("2001:db8::1".into()));
        for partial in [
            "0.96.10.in-addr.arpa.",
            "in-addr.arpa.",
            "256.0.96.10.in-addr.arpa.",
            "01.0.96.10.in-addr.arpa.",
            "x.0.96.10.in-addr.arpa.",
            "1.1.0.96.10.in-addr.arpa.",
            "0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
            "10.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
            "1.0.96.10.cluster.local.",
        ] {
            assert_eq!(addr(partial), None, "{partial}");
        }
        assert!(is_reverse(&Name::parse("10.in-addr.arpa").unwrap()));
        assert!(is_reverse(&Name::parse("IP6.arpa").unwrap()));
        assert!(!is_reverse(&Name::parse("cluster.local").unwrap()));
        assert!(!is_reverse(&Name::parse("arpa").unwrap()));
    }
}
