//! The names of the cluster zone, and what each asks.
//!
//! Relative to a zone of the plugin (`cluster.local.`), a query name is one of:
//!
//! ```text
//!                                          (the apex)          SOA, NS
//! dns-version                                                  TXT "1.1.0"      spec 2.2
//! ns.dns                                                       A/AAAA of the DNS server
//! svc | pod                                                    exists, no records
//! <ns>.svc | <ns>.pod                                          exists iff the namespace does
//! <service>.<ns>.svc                                           spec 2.3.1, 2.4.1, 2.5
//! <endpoint>.<service>.<ns>.svc                                spec 2.4.1
//! _<port>._<proto>.<service>.<ns>.svc                          spec 2.3.2, 2.4.2
//! <a-b-c-d>.<ns>.pod                                           spec 2.6 (pods insecure|verified)
//! ```
//!
//! All comparisons are case-insensitive (spec 2.1); labels are borrowed from the question, never
//! copied. Anything else is a name that does not exist. As in CoreDNS, the underscores of
//! `_<port>._<proto>` are optional, and an empty port or protocol (`_`) matches any.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::dns::Name;

/// What a name in the cluster zone asks; see the [module documentation](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Query<'a> {
    Apex,
    DnsVersion,
    NsDns,
    /// `svc.<zone>` or `pod.<zone>`.
    Space(Space),
    /// `<ns>.svc.<zone>` or `<ns>.pod.<zone>`.
    Namespace {
        space: Space,
        ns: &'a [u8],
    },
    /// `[<endpoint>.|_<port>._<proto>.]<service>.<ns>.svc.<zone>`.
    Service {
        ns: &'a [u8],
        service: &'a [u8],
        endpoint: Option<&'a [u8]>,
        port: Option<PortFilter<'a>>,
    },
    /// `<pod>.<ns>.pod.<zone>`.
    Pod {
        ns: &'a [u8],
        pod: &'a [u8],
    },
    /// A name that cannot exist.
    Invalid,
}

/// The two subtrees of the zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Space {
    Svc,
    Pod,
}

/// `_<port>._<proto>`, underscores stripped; an empty part matches anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortFilter<'a> {
    pub port: &'a [u8],
    pub protocol: &'a [u8],
}

impl PortFilter<'_> {
    /// Whether a port named `name` (lowercase) with protocol `protocol` is asked for.
    pub fn matches(&self, name: &str, protocol: &[u8]) -> bool {
        (self.port.is_empty() || self.port.eq_ignore_ascii_case(name.as_bytes()))
            && (self.protocol.is_empty() || self.protocol.eq_ignore_ascii_case(protocol))
    }
}

/// The most labels a name of the zone has below the zone (`_port._proto.svc.ns.svc`).
const MAX_RELATIVE: usize = 5;

/// Parses `qname`, which has `relative` labels below the zone.
pub fn parse(qname: &Name, relative: usize) -> Query<'_> {
    if relative == 0 {
        return Query::Apex;
    }
    if relative > MAX_RELATIVE {
        return Query::Invalid;
    }
    let mut labels: [&[u8]; MAX_RELATIVE] = [&[]; MAX_RELATIVE];
    for (slot, label) in labels.iter_mut().zip(qname.labels().take(relative)) {
        *slot = label;
    }
    let labels = &labels[..relative];
    let is = |label: &[u8], word: &str| label.eq_ignore_ascii_case(word.as_bytes());
    match labels {
        [l] if is(l, "dns-version") => return Query::DnsVersion,
        [a, b] if is(a, "ns") && is(b, "dns") => return Query::NsDns,
        _ => {}
    }
    let (rest, last) = labels.split_at(relative - 1);
    let space = if is(last[0], "svc") {
        Space::Svc
    } else if is(last[0], "pod") {
        Space::Pod
    } else {
        return Query::Invalid;
    };
    match (space, rest) {
        (_, []) => Query::Space(space),
        (_, [ns]) => Query::Namespace { space, ns },
        (Space::Svc, [service, ns]) => Query::Service { ns, service, endpoint: None, port: None },
        (Space::Svc, [endpoint, service, ns]) => Query::Service { ns, service, endpoint: Some(endpoint), port: None },
        (Space::Svc, [port, protocol, service, ns]) => Query::Service {
            ns,
            service,
            endpoint: None,
            port: Some(PortFilter { port: strip_underscore(port), protocol: strip_underscore(protocol) }),
        },
        (Space::Pod, [pod, ns]) => Query::Pod { ns, pod },
        // CoreDNS answers `<anything>.<pod>.<ns>.pod` as if `<pod>.<ns>.pod` were asked; such
        // names do not exist here.
        _ => Query::Invalid,
    }
}

fn strip_underscore(label: &[u8]) -> &[u8] {
    label.strip_prefix(b"_").unwrap_or(label)
}

/// The address a pod label names: `10-0-0-1` is 10.0.0.1 (spec 2.6), and, as in CoreDNS, any
/// other dashed form is an IPv6 address with `-` for `:` (`fd00--1`, `0--1`, `fd00--0`).
pub fn undash(label: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(label).ok()?;
    let dashes = text.bytes().filter(|&b| b == b'-').count();
    if dashes == 3 && !text.contains("--") {
        let dotted = text.replace('-', ".");
        return dotted.parse::<Ipv4Addr>().ok().map(IpAddr::V4);
    }
    text.replace('-', ":").parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

/// The name an endpoint without a hostname gets: its address with dashes, `10-0-0-1`. An IPv6
/// address is written compressed (RFC 5952) with `-` for `:`, as CoreDNS writes it, and a `0`
/// is added where it would begin or end with a dash: `fd00::` is `fd00--0`, which CoreDNS also
/// writes since coredns#7430 (it wrote the invalid `fd00--`), and `::1` is `0--1`, which it
/// still writes as `--1`.
pub fn dashed(ip: IpAddr, out: &mut String) {
    out.clear();
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            let _ = write!(out, "{a}-{b}-{c}-{d}");
        }
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            // The longest run of two or more zero groups, the first of equals (RFC 5952 4.2).
            let (mut best, mut run) = ((0, 0), (0, 0));
            for (i, &s) in segments.iter().enumerate() {
                if s == 0 {
                    run = if run.1 > 0 && run.0 + run.1 == i { (run.0, run.1 + 1) } else { (i, 1) };
                    if run.1 > best.1 {
                        best = run;
                    }
                }
            }
            let compress = if best.1 >= 2 { Some(best) } else { None };
            let mut i = 0;
            while i < 8 {
                if let Some((start, len)) = compress
                    && i == start
                {
                    out.push_str(if i == 0 { "--" } else { "-" });
                    i += len;
                    continue;
                }
                let _ = write!(out, "{:x}", segments[i]);
                if i < 7 {
                    out.push('-');
                }
                i += 1;
            }
            if out.starts_with('-') {
                out.insert(0, '0');
            }
            if out.ends_with('-') {
                out.push('0');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(name: &str, zone_labels: usize) -> String {
        let n = Name::parse(name).unwrap();
        let relative = n.label_count() - zone_labels;
        let s = |l: &[u8]| String::from_utf8_lossy(l).into_owned();
        match parse(&n, relative) {
            Query::Apex => "apex".into(),
            Query::DnsVersion => "dns-version".into(),
            Query::NsDns => "ns.dns".into(),
            Query::Space(sp) => format!("{sp:?}"),
            Query::Namespace { space, ns } => format!("{space:?} ns={}", s(ns)),
            Query::Service { ns, service, endpoint, port } => {
                let mut out = format!("svc {}/{}", s(ns), s(service));
                if let Some(e) = endpoint {
                    out += &format!(" endpoint={}", s(e));
                }
                if let Some(p) = port {
                    out += &format!(" port={} proto={}", s(p.port), s(p.protocol));
                }
                out
            }
            Query::Pod { ns, pod } => format!("pod {}/{}", s(ns), s(pod)),
            Query::Invalid => "invalid".into(),
        }
    }

    #[test]
    fn the_names_of_the_zone() {
        let cases = [
            ("cluster.local.", "apex"),
            ("dns-version.cluster.local.", "dns-version"),
            ("NS.DNS.cluster.local.", "ns.dns"),
            ("svc.cluster.local.", "Svc"),
            ("pod.cluster.local.", "Pod"),
            ("apps.svc.cluster.local.", "Svc ns=apps"),
            ("apps.pod.cluster.local.", "Pod ns=apps"),
            ("Web.Apps.SVC.cluster.local.", "svc Apps/Web"),
            ("web-0.db.apps.svc.cluster.local.", "svc apps/db endpoint=web-0"),
            ("_http._tcp.web.apps.svc.cluster.local.", "svc apps/web port=http proto=tcp"),
            ("http.tcp.web.apps.svc.cluster.local.", "svc apps/web port=http proto=tcp"),
            ("_._tcp.web.apps.svc.cluster.local.", "svc apps/web port= proto=tcp"),
            ("10-0-0-1.apps.pod.cluster.local.", "pod apps/10-0-0-1"),
            ("x.10-0-0-1.apps.pod.cluster.local.", "invalid"),
            ("a.b._http._tcp.web.apps.svc.cluster.local.", "invalid"),
            ("web.apps.cluster.local.", "invalid"),
            ("dns.cluster.local.", "invalid"),
            ("foo.cluster.local.", "invalid"),
        ];
        for (name, want) in cases {
            assert_eq!(q(name, 2), want, "{name}");
        }
    }

    #[test]
    fn pod_labels_are_addresses() {
        let cases = [
            ("10-0-0-1", Some("10.0.0.1")),
            ("fd00--1", Some("fd00::1")),
            ("0--1", Some("::1")),
            ("fd00--0", Some("fd00::")),
            ("10-0-0", None),
            ("10-0-0-256", None),
            // Not IPv4, so IPv6, as CoreDNS reads it.
            ("10--0-0-1", Some("10::1")),
            ("web", None),
            ("01-0-0-1", None),
        ];
        for (label, want) in cases {
            assert_eq!(undash(label.as_bytes()).map(|ip| ip.to_string()), want.map(String::from), "{label}");
        }
    }

    /// coredns#7430: an IPv6 endpoint ending in `::` was named `2001-db8-...-6666--`, which is
    /// not a valid label. Every dashed name is one valid label and names its address back.
    #[test]
    fn dashed_names_are_valid_labels_that_name_their_address_coredns_7430() {
        let cases = [
            ("10.0.0.1", "10-0-0-1"),
            ("2001:db8:3333:4444:5555:6666::", "2001-db8-3333-4444-5555-6666--0"),
            ("fd00::", "fd00--0"),
            ("::1", "0--1"),
            ("::", "0--0"),
            ("fd00::1", "fd00--1"),
            ("fd00:0:0:1::1", "fd00-0-0-1--1"),
            ("fd00:1:0:1:0:1:0:1", "fd00-1-0-1-0-1-0-1"),
            ("::ffff:10.0.0.1", "0--ffff-a00-1"),
            ("2001:db8:0:0:1:0:0:1", "2001-db8--1-0-0-1"),
        ];
        let mut out = String::new();
        for (ip, want) in cases {
            let ip: IpAddr = ip.parse().unwrap();
            dashed(ip, &mut out);
            assert_eq!(out, want, "{ip}");
            assert!(super::super::object::is_label(&out), "{out}");
            assert_eq!(undash(out.as_bytes()), Some(ip), "{out}");
        }
    }
}
