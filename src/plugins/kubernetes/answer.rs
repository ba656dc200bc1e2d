//! Answers: a parsed question and the index in, records out.
//!
//! Every name of the zone either exists (its records, or NODATA with the SOA for another type)
//! or does not ([`Outcome::NoName`], which the plugin turns into NXDOMAIN, SERVFAIL before the
//! first sync, or the next plugin with `fallthrough`). A name exists exactly when it has a
//! record of some type, so every query type agrees on whether it does; CoreDNS differs in a
//! few corners, listed in the README.
//!
//! | name                           | A / AAAA                       | SRV                          |
//! |--------------------------------|--------------------------------|------------------------------|
//! | `<svc>.<ns>.svc` ClusterIP     | its cluster IP of that family  | one per port with a number   |
//! | `<svc>.<ns>.svc` headless      | every ready endpoint (2.4.1)   | one per ready endpoint×port  |
//! | `<ep>.<svc>.<ns>.svc`          | that endpoint's addresses      | one per port                 |
//! | `_<p>._<proto>.<svc>.<ns>.svc` | as the service, those ports    | spec 2.3.2, 2.4.2            |
//! | `<svc>.<ns>.svc` ExternalName  | CNAME, target resolved (2.5)   | CNAME, target resolved       |
//!
//! This runs under the index's read lock, so it never waits: an ExternalName target is handed
//! back ([`Outcome::Cname`]) to be resolved through the server's chains once the lock is gone.
//! It allocates the response's record vectors and, for SRV answers, their target names.

use std::net::IpAddr;

use super::NAME;
use super::index::{EndpointView, Index, NsId, ServiceView};
use super::names::NameBuilder;
use super::object::{Port, ServiceKind};
use super::qname::{self, PortFilter, Query, Space};
use super::reverse;
use crate::dns::{Name, RData, Record, RecordType, Request, Response, Soa};

/// The schema version of the Kubernetes DNS specification served (spec 2.2).
pub const SCHEMA_VERSION: &str = "1.1.0";
/// The TTL of `dns-version.<zone>`, as CoreDNS gives it.
const SCHEMA_TTL: u32 = 28800;

/// `pods`: how `<a-b-c-d>.<ns>.pod.<zone>` is answered (spec 2.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodMode {
    /// Not at all (NXDOMAIN). CoreDNS's default.
    Disabled,
    /// For any well-formed address in a namespace that exists, without checking for a pod.
    Insecure,
    /// Only for addresses of pods in that namespace.
    Verified,
}

/// How answers are made: the parts of the configuration the answers read.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The plugin's zones, lowercase.
    pub zones: Box<[Name]>,
    /// Whether each zone is a reverse zone (under `in-addr.arpa.` or `ip6.arpa.`).
    pub reverse: Box<[bool]>,
    /// The first forward zone: PTR records point under it.
    pub primary: Name,
    pub ttl: u32,
    pub pods: PodMode,
    /// `ignore empty_service`.
    pub ignore_empty_service: bool,
}

/// What the index says about a question.
#[derive(Debug)]
pub enum Outcome {
    /// An answer: records, or NODATA with the SOA.
    Answer(Response),
    /// The name does not exist. `soa` is what an NXDOMAIN carries in its authority section.
    NoName { soa: Record },
    /// An ExternalName: `cname`, then `target` resolved for the question's type.
    Cname { cname: Record, target: Name },
}

/// Answers `req`, whose name is in zone `zone` of `s.zones`.
pub fn answer(s: &Settings, index: &Index, local_ips: &[IpAddr], req: &Request, zone: usize) -> Outcome {
    let qname = req.qname();
    let relative = qname.label_count() - s.zones[zone].label_count();
    let a = Answerer { s, index, req, relative };
    if relative == 0 {
        return a.apex(local_ips);
    }
    if s.reverse[zone] {
        return a.reverse();
    }
    match qname::parse(qname, relative) {
        Query::Apex => a.apex(local_ips),
        Query::DnsVersion => a.only(RecordType::TXT, || {
            let txt = RData::Txt(vec![SCHEMA_VERSION.as_bytes().into()]);
            vec![Record::new(qname.clone(), SCHEMA_TTL, txt)]
        }),
        Query::NsDns => match req.qtype() {
            RecordType::A | RecordType::AAAA => {
                let zone_name = a.zone_name();
                let addrs = ns_addresses(index, local_ips, &zone_name);
                a.records(addrs.iter().filter_map(|(_, ip)| a.address(qname, *ip)).collect())
            }
            _ => a.nodata(),
        },
        Query::Space(_) => a.nodata(),
        Query::Namespace { space, ns } => {
            if space == Space::Pod && s.pods == PodMode::Disabled {
                return a.no_name();
            }
            match index.namespace(ns) {
                Some(_) => a.nodata(),
                None => a.no_name(),
            }
        }
        Query::Service { ns, service, endpoint, port } => {
            let Some(ns) = index.namespace(ns) else { return a.no_name() };
            let Some(svc) = index.service(ns, service) else { return a.no_name() };
            a.service(svc, endpoint, port)
        }
        Query::Pod { ns, pod } => {
            let Some(ns) = index.namespace(ns) else { return a.no_name() };
            a.pod(ns, pod)
        }
        Query::Invalid => a.no_name(),
    }
}

/// The addresses of this DNS server as the zone's NS records name them, as CoreDNS finds them:
/// the services whose ready endpoints are addresses this server is bound to (`kube-dns`), by
/// name, or, when none is, `ns.dns.<zone>` with the bound addresses themselves.
pub fn ns_addresses(index: &Index, local_ips: &[IpAddr], zone: &Name) -> Vec<(Name, IpAddr)> {
    let mut out: Vec<(Name, IpAddr)> = Vec::new();
    let mut push = |n: Name, ip: IpAddr| {
        if !out.iter().any(|(m, i)| *m == n && *i == ip) {
            out.push((n, ip));
        }
    };
    let mut b = NameBuilder::new();
    let mut found = false;
    for &local in local_ips {
        for owner in index.reverse(local) {
            let super::index::Reverse::Endpoint { service: Some(svc), endpoint } = owner else { continue };
            if !endpoint.ready || !svc.namespace_exists() {
                continue;
            }
            found = true;
            if *svc.kind() == ServiceKind::Headless {
                for e in svc.endpoints().filter(|e| e.ready) {
                    if let Some(n) = b.service(Some(&e), svc.name(), svc.namespace(), zone) {
                        push(n, e.ip);
                    }
                }
            } else if let Some(n) = b.service(None, svc.name(), svc.namespace(), zone) {
                for ip in svc.cluster_ips().iter() {
                    push(n.clone(), ip);
                }
            }
        }
    }
    if !found && let Ok(name) = Name::parse("ns.dns").and_then(|ns| join(&ns, zone)) {
        for &ip in local_ips {
            push(name.clone(), ip);
        }
    }
    out
}

/// `prefix` followed by `zone`.
fn join(prefix: &Name, zone: &Name) -> Result<Name, crate::dns::NameError> {
    let p = prefix.as_wire();
    let mut wire = Vec::with_capacity(p.len() - 1 + zone.wire_len());
    wire.extend_from_slice(&p[..p.len() - 1]);
    wire.extend_from_slice(zone.as_wire());
    Name::from_wire(&wire)
}

/// The SOA record of `zone` (the zone as the question spells it), as CoreDNS makes it:
/// `<zone> IN SOA ns.dns.<zone> hostmaster.<zone> <serial> 7200 1800 86400 <ttl>`, with a TTL
/// of at most 300 seconds.
pub fn soa(zone: &Name, ttl: u32, serial: u32) -> Record {
    let ns = Name::parse("ns.dns").expect("a valid name");
    let hostmaster = Name::parse("hostmaster").expect("a valid name");
    let soa = Soa {
        mname: join(&ns, zone).unwrap_or_else(|_| zone.clone()),
        rname: join(&hostmaster, zone).unwrap_or_else(|_| zone.clone()),
        serial,
        refresh: 7200,
        retry: 1800,
        expire: 86400,
        minimum: ttl,
    };
    Record::new(zone.clone(), ttl.min(300), RData::Soa(Box::new(soa)))
}

struct Answerer<'a> {
    s: &'a Settings,
    index: &'a Index,
    req: &'a Request,
    /// Labels of the question below the zone.
    relative: usize,
}

/// One thing a service name stands for: a cluster IP with one of the service's ports, or an
/// endpoint with one of its slice's ports. `port` is `None` for a service or slice without
/// ports, which still has addresses but no SRV record.
enum Hit<'a> {
    ClusterIp { port: Option<&'a Port> },
    Endpoint { endpoint: EndpointView<'a>, port: Option<&'a Port> },
}

impl<'a> Answerer<'a> {
    /// The zone as the question spells it (the SOA's owner and SRV targets keep the client's
    /// case, as CoreDNS's do).
    fn zone_name(&self) -> Name {
        self.req.qname().strip_labels(self.relative)
    }

    fn soa(&self) -> Record {
        soa(&self.zone_name(), self.s.ttl, self.index.serial())
    }

    fn no_name(&self) -> Outcome {
        Outcome::NoName { soa: self.soa() }
    }

    fn nodata(&self) -> Outcome {
        let mut resp = Response::authoritative(NAME);
        resp.authority.push(self.soa());
        Outcome::Answer(resp)
    }

    /// `answer` as an answer, or NODATA when it is empty.
    fn records(&self, answer: Vec<Record>) -> Outcome {
        if answer.is_empty() {
            return self.nodata();
        }
        let mut resp = Response::authoritative(NAME);
        resp.answer = answer;
        Outcome::Answer(resp)
    }

    /// The records `make` builds when the question is for `qtype`; NODATA otherwise.
    fn only(&self, qtype: RecordType, make: impl FnOnce() -> Vec<Record>) -> Outcome {
        if self.req.qtype() == qtype { self.records(make()) } else { self.nodata() }
    }

    /// An A or AAAA record for `ip` owned by `owner`, if the question asks for its family.
    fn address(&self, owner: &Name, ip: IpAddr) -> Option<Record> {
        match (self.req.qtype(), ip) {
            (RecordType::A, IpAddr::V4(v4)) => Some(Record::new(owner.clone(), self.s.ttl, RData::A(v4))),
            (RecordType::AAAA, IpAddr::V6(v6)) => Some(Record::new(owner.clone(), self.s.ttl, RData::Aaaa(v6))),
            _ => None,
        }
    }

    fn apex(&self, local_ips: &[IpAddr]) -> Outcome {
        match self.req.qtype() {
            RecordType::SOA => self.records(vec![self.soa()]),
            RecordType::NS => {
                let zone = self.zone_name();
                let qname = self.req.qname();
                let mut resp = Response::authoritative(NAME);
                for (name, ip) in ns_addresses(self.index, local_ips, &zone) {
                    let ns = Record::new(qname.clone(), self.s.ttl, RData::Ns(name.clone()));
                    if !resp.answer.contains(&ns) {
                        resp.answer.push(ns);
                    }
                    let glue = match ip {
                        IpAddr::V4(v4) => RData::A(v4),
                        IpAddr::V6(v6) => RData::Aaaa(v6),
                    };
                    resp.additional.push(Record::new(name, self.s.ttl, glue));
                }
                if resp.answer.is_empty() {
                    return self.nodata();
                }
                Outcome::Answer(resp)
            }
            _ => self.nodata(),
        }
    }

    fn reverse(&self) -> Outcome {
        let qname = self.req.qname();
        let Some(ip) = reverse::address(qname) else { return self.no_name() };
        let targets = reverse::targets(self.index, ip, &self.s.primary);
        if targets.is_empty() {
            return self.no_name();
        }
        self.only(RecordType::PTR, || {
            targets.into_iter().map(|t| Record::new(qname.clone(), self.s.ttl, RData::Ptr(t))).collect()
        })
    }

    fn pod(&self, ns: NsId, label: &[u8]) -> Outcome {
        if self.s.pods == PodMode::Disabled {
            return self.no_name();
        }
        let Some(ip) = qname::undash(label) else { return self.no_name() };
        if self.s.pods == PodMode::Verified && !self.index.pod_namespaces(ip).any(|n| n == ns) {
            return self.no_name();
        }
        let record = self.address(self.req.qname(), ip);
        self.records(record.into_iter().collect())
    }

    fn service(&self, svc: ServiceView<'a>, endpoint: Option<&[u8]>, port: Option<PortFilter<'_>>) -> Outcome {
        let qname = self.req.qname();
        let qtype = self.req.qtype();
        match svc.kind() {
            // Spec 2.5: a CNAME to the external name. It has no endpoints or ports.
            ServiceKind::ExternalName(target) => {
                if endpoint.is_some() || port.is_some() {
                    return self.no_name();
                }
                if **target == *qname {
                    // `x CNAME x`: a loop, which CoreDNS leaves out too.
                    return self.nodata();
                }
                let cname = Record::new(qname.clone(), self.s.ttl, RData::Cname((**target).clone()));
                if qtype == RecordType::CNAME {
                    return self.records(vec![cname]);
                }
                return Outcome::Cname { cname, target: (**target).clone() };
            }
            ServiceKind::ExternalIp(ip) => {
                if endpoint.is_some() || port.is_some() {
                    return self.no_name();
                }
                return self.records(self.address(qname, *ip).into_iter().collect());
            }
            ServiceKind::ClusterIp if self.s.ignore_empty_service && !svc.endpoints().any(|e| e.ready) => {
                return self.no_name();
            }
            _ => {}
        }

        let mut hits: Vec<Hit<'a>> = Vec::new();
        let by_endpoints = endpoint.is_some() || *svc.kind() == ServiceKind::Headless;
        if by_endpoints {
            let mut b = NameBuilder::new();
            for e in svc.endpoints().filter(|e| e.ready) {
                if let Some(want) = endpoint
                    && !want.eq_ignore_ascii_case(b.endpoint_label(&e).as_bytes())
                {
                    continue;
                }
                for_ports(e.ports, port, |p| hits.push(Hit::Endpoint { endpoint: e, port: p }));
            }
        } else {
            for_ports(svc.ports(), port, |p| hits.push(Hit::ClusterIp { port: p }));
        }
        if hits.is_empty() {
            return self.no_name();
        }
        match qtype {
            RecordType::A | RecordType::AAAA => {
                let mut answer: Vec<Record> = Vec::new();
                let mut add = |ip: IpAddr| {
                    if let Some(r) = self.address(qname, ip)
                        && !answer.iter().any(|a| a.data == r.data)
                    {
                        answer.push(r);
                    }
                };
                for hit in &hits {
                    match hit {
                        Hit::ClusterIp { .. } => svc.cluster_ips().iter().for_each(&mut add),
                        Hit::Endpoint { endpoint, .. } => add(endpoint.ip),
                    }
                }
                self.records(answer)
            }
            RecordType::SRV => self.srv(svc, &hits),
            _ => self.nodata(),
        }
    }

    /// SRV records for `hits`, with the addresses of their targets in the additional section.
    /// Priority 0 and equal weights summing to about 100, as CoreDNS gives them (the spec
    /// leaves both open).
    fn srv(&self, svc: ServiceView<'a>, hits: &[Hit<'a>]) -> Outcome {
        let zone = self.zone_name();
        let qname = self.req.qname();
        let mut b = NameBuilder::new();
        let mut targets: Vec<(Name, u16)> = Vec::new();
        let mut additional: Vec<Record> = Vec::new();
        let mut glue = |name: &Name, ip: IpAddr| {
            let data = match ip {
                IpAddr::V4(v4) => RData::A(v4),
                IpAddr::V6(v6) => RData::Aaaa(v6),
            };
            if !additional.iter().any(|r| r.name == *name && r.data == data) {
                additional.push(Record::new(name.clone(), self.s.ttl, data));
            }
        };
        let mut service_name: Option<Name> = None;
        for hit in hits {
            let (port, target) = match hit {
                Hit::ClusterIp { port } => {
                    let Some(name) =
                        service_name.clone().or_else(|| b.service(None, svc.name(), svc.namespace(), &zone))
                    else {
                        continue;
                    };
                    service_name = Some(name.clone());
                    for ip in svc.cluster_ips().iter() {
                        glue(&name, ip);
                    }
                    (port, name)
                }
                Hit::Endpoint { endpoint, port } => {
                    let Some(name) = b.service(Some(endpoint), svc.name(), svc.namespace(), &zone) else { continue };
                    glue(&name, endpoint.ip);
                    (port, name)
                }
            };
            let Some(number) = port.and_then(|p| p.number) else { continue };
            if !targets.iter().any(|(t, n)| *t == target && *n == number) {
                targets.push((target, number));
            }
        }
        if targets.is_empty() {
            return self.nodata();
        }
        let weight = (100 / targets.len()).max(1) as u16;
        let mut resp = Response::authoritative(NAME);
        resp.answer = targets
            .into_iter()
            .map(|(target, port)| {
                Record::new(qname.clone(), self.s.ttl, RData::Srv { priority: 0, weight, port, target })
            })
            .collect();
        resp.additional = additional;
        Outcome::Answer(resp)
    }
}

/// Calls `f` with each port of `ports` that `filter` asks for; a list without ports counts as
/// one port without a name or number, which only an unfiltered name matches.
fn for_ports<'a>(ports: &'a [Port], filter: Option<PortFilter<'_>>, mut f: impl FnMut(Option<&'a Port>)) {
    if ports.is_empty() {
        if filter.is_none() {
            f(None);
        }
        return;
    }
    for p in ports {
        if filter.is_none_or(|want| !p.name.is_empty() && want.matches(&p.name, p.protocol.label())) {
            f(Some(p));
        }
    }
}
