//! *loadbalance*: reorders the records of an answer so that clients spread over the addresses.
//!
//! It works on the response the rest of the chain returns, and only on NOERROR responses to
//! queries other than AXFR and IXFR (a zone transfer's order is part of its meaning). Each
//! section is first put in the order stub resolvers rely on (glibc expects a CNAME before the
//! addresses it leads to): CNAMEs, then other records, then addresses (A, AAAA), then MX, each
//! group keeping its order. Then, by policy:
//!
//! * `round_robin` shuffles the addresses and the MX records of every section, uniformly; then
//!   `prefer CIDR...` moves the addresses inside those networks (first network first) ahead of
//!   the others in the answer and additional sections, where the order becomes CNAMEs,
//!   addresses, MX, others, as CoreDNS has it.
//! * `weighted` draws the first address of the answer and additional sections by the weights of
//!   a file, for A, AAAA and SRV queries (see [`weighted`]).
//!
//! Last, with `limit_answers N`, the answer section keeps its first N records, whatever their
//! type (CoreDNS's README: the first N "after round_robin shuffling or weighted adjustment").
//! CNAMEs count, so a limit below the length of a CNAME chain cuts the addresses off; that is
//! CoreDNS's rule and operators size N for it.
//!
//! Shuffling is in place: no allocation for sections of up to 20 records (the stable sort that
//! groups them allocates beyond that), and none when a section is already grouped.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::ops::Range;
use std::sync::Arc;

use crate::dns::{RData, Rcode, Record, RecordType, Request, Response};
use crate::plugin::{Next, Plugin, ServeError};

mod setup;
mod weighted;
pub use setup::parse;

use weighted::Weights;

pub const NAME: &str = "loadbalance";

enum Policy {
    RoundRobin,
    Weighted(Arc<Weights>),
}

pub struct LoadBalance {
    policy: Policy,
    /// Networks whose addresses go first, after the policy has ordered them (`prefer`).
    prefer: Box<[Cidr]>,
    /// How many answer records a balanced reply keeps (`limit_answers`); `None` keeps all.
    limit_answers: Option<NonZeroUsize>,
}

impl Plugin for LoadBalance {
    fn name(&self) -> &'static str {
        NAME
    }

    /// It reads answers only when there is something to reorder, and turns an answer kept
    /// encoded (a cache hit) into records itself then (see `serve`).
    fn reads_answers(&self) -> bool {
        false
    }

    async fn serve<'a>(&'a self, req: &'a mut Request, next: Next<'a>) -> Result<Response, ServeError> {
        let mut resp = next.run(req).await?;
        let qtype = req.qtype();
        if resp.rcode == Rcode::NOERROR && qtype != RecordType::AXFR && qtype != RecordType::IXFR {
            // At most one record in each section: no order to change, no answer to cut (N >= 1),
            // so a cache hit stays encoded. Otherwise it becomes records to be reordered.
            if resp.wire().is_some_and(|(w, _)| w.counts().iter().all(|&n| n <= 1)) {
                return Ok(resp);
            }
            resp.materialize();
            self.balance(qtype, &mut resp, &mut fastrand::Rng::new());
            if let Some(n) = self.limit_answers {
                resp.answer.truncate(n.get());
            }
        }
        Ok(resp)
    }
}

impl LoadBalance {
    fn balance(&self, qtype: RecordType, resp: &mut Response, rng: &mut fastrand::Rng) {
        match &self.policy {
            Policy::RoundRobin => {
                for section in [&mut resp.answer, &mut resp.authority, &mut resp.additional] {
                    round_robin(section, rng);
                }
            }
            Policy::Weighted(w) => {
                if matches!(qtype, RecordType::A | RecordType::AAAA | RecordType::SRV) {
                    w.balance(&mut resp.answer, rng);
                    w.balance(&mut resp.additional, rng);
                }
            }
        }
        // As in CoreDNS, preferred networks reorder whatever the policy chose.
        if !self.prefer.is_empty() {
            prefer_networks(&mut resp.answer, &self.prefer);
            prefer_networks(&mut resp.additional, &self.prefer);
        }
    }
}

fn is_address(r: &Record) -> bool {
    matches!(r.data, RData::A(_) | RData::Aaaa(_))
}

/// Where the address and MX records of a grouped section are.
struct Groups {
    addresses: Range<usize>,
    mx: Range<usize>,
}

/// Puts `section` in the order CNAMEs, others, addresses, MX, each group keeping its order.
fn group(section: &mut [Record]) -> Groups {
    let rank = |r: &Record| match r.data {
        RData::Cname(_) => 0u8,
        RData::A(_) | RData::Aaaa(_) => 2,
        RData::Mx { .. } => 3,
        _ => 1,
    };
    if !section.is_sorted_by_key(rank) {
        section.sort_by_key(rank);
    }
    let start = section.partition_point(|r| rank(r) < 2);
    let mx = section.partition_point(|r| rank(r) < 3);
    Groups { addresses: start..mx, mx: mx..section.len() }
}

/// Groups `section` and shuffles its addresses and MX records.
fn round_robin(section: &mut [Record], rng: &mut fastrand::Rng) {
    if section.len() < 2 {
        return;
    }
    let g = group(section);
    rng.shuffle(&mut section[g.addresses]);
    rng.shuffle(&mut section[g.mx]);
}

/// Orders `section` CNAMEs, addresses (those in `prefer`'s networks first, by network, then the
/// rest, each keeping its order), MX, others.
fn prefer_networks(section: &mut [Record], prefer: &[Cidr]) {
    let key = |r: &Record| -> (u8, usize) {
        let ip = match r.data {
            RData::Cname(_) => return (0, 0),
            RData::A(ip) => IpAddr::V4(ip),
            RData::Aaaa(ip) => IpAddr::V6(ip),
            RData::Mx { .. } => return (2, 0),
            _ => return (3, 0),
        };
        (1, prefer.iter().position(|net| net.contains(ip)).unwrap_or(prefer.len()))
    };
    if !section.is_sorted_by_key(key) {
        section.sort_by_key(key);
    }
}

/// An IP network, `10.0.0.0/8` or `fd00::/8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `addr/prefix`; host bits are cleared, as Go's `net.ParseCIDR` does.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, prefix) = s.split_once('/')?;
        let net: IpAddr = addr.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        let bits = if net.is_ipv4() { 32 } else { 128 };
        if prefix > bits || prefix.to_string() != s.split_once('/')?.1 {
            return None;
        }
        Some(Cidr { net: mask(net, prefix)?, prefix })
    }

    /// True when `ip` is in the network; an IPv4-mapped IPv6 address counts as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        mask(ip.to_canonical(), self.prefix) == Some(self.net)
    }
}

/// `ip` with all but the first `prefix` bits cleared; `None` when the prefix is longer than
/// the address.
fn mask(ip: IpAddr, prefix: u8) -> Option<IpAddr> {
    match ip {
        IpAddr::V4(v4) if prefix <= 32 => {
            let m = u32::MAX.checked_shl(32 - prefix as u32).unwrap_or(0);
            Some(IpAddr::V4((u32::from(v4) & m).into()))
        }
        IpAddr::V6(v6) if prefix <= 128 => {
            let m = u128::MAX.checked_shl(128 - prefix as u32).unwrap_or(0);
            Some(IpAddr::V6((u128::from(v6) & m).into()))
        }
        _ => None,
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::Name;
    use crate::plugin::{ErrorKind, testing};
    use std::collections::HashSet;

    fn rr(text: &str) -> Record {
        let f: Vec<&str> = text.split_whitespace().collect();
        let name = Name::parse(f[0]).unwrap();
        let data = match f[1] {
            "A" => RData::A(f[2].parse().unwrap()),
            "AAAA" => RData::Aaaa(f[2].parse().unwrap()),
            "CNAME" => RData::Cname(Name::parse(f[2]).unwrap()),
            "MX" => RData::Mx { preference: f[2].parse().unwrap(), exchange: Name::parse(f[3]).unwrap() },
            "TXT" => RData::Txt(vec![f[2].as_bytes().into()]),
            "SRV" => RData::Srv { priority: 0, weight: 0, port: 53, target: Name::parse(f[2]).unwrap() },
            other => panic!("{other}"),
        };
        Record::new(name, 60, data)
    }

    fn rrs(texts: &[&str]) -> Vec<Record> {
        texts.iter().map(|t| rr(t)).collect()
    }

    fn lines(records: &[Record]) -> Vec<String> {
        records.iter().map(|r| r.to_string()).collect()
    }

    /// Answers with fixed sections: an answer section of three addresses behind a CNAME, two
    /// MX in authority, a TXT and two addresses in additional.
    fn fixed(rcode: Rcode) -> Arc<dyn crate::plugin::DynPlugin> {
        testing::answer("fixed", move |_| {
            let mut resp = Response::with_rcode("fixed", rcode);
            resp.answer = rrs(&[
                "www.example.org. A 10.0.0.1",
                "www.example.org. A 10.0.0.2",
                "example.org. CNAME www.example.org.",
                "www.example.org. AAAA fd00::1",
            ]);
            resp.authority = rrs(&["example.org. MX 10 mx1.example.org.", "example.org. MX 20 mx2.example.org."]);
            resp.additional =
                rrs(&["mx1.example.org. A 192.168.0.1", "x.example.org. TXT t", "mx2.example.org. A 10.1.0.1"]);
            Ok(resp)
        })
    }

    fn round_robin_plugin(prefer: &[&str]) -> LoadBalance {
        let prefer = prefer.iter().map(|c| Cidr::parse(c).unwrap()).collect();
        LoadBalance { policy: Policy::RoundRobin, prefer, limit_answers: None }
    }

    fn run(lb: LoadBalance, rcode: Rcode, qtype: RecordType, n: usize) -> Vec<Response> {
        let chain = testing::chain(vec![Arc::new(lb), fixed(rcode)]);
        (0..n)
            .map(|_| {
                let mut req = Request::synthetic("example.org.", qtype);
                testing::run(&chain, &mut req).unwrap()
            })
            .collect()
    }

    /// Through the real chain: over 200 queries, every answer is the same records, CNAME first,
    /// addresses after it, and the address orders vary (all 6 orders of 3 addresses turn up).
    #[test]
    fn round_robin_shuffles_addresses_behind_the_cname() {
        let mut orders = HashSet::new();
        let mut mx_orders = HashSet::new();
        for resp in run(round_robin_plugin(&[]), Rcode::NOERROR, RecordType::A, 200) {
            let answer = lines(&resp.answer);
            assert_eq!(answer[0], "example.org. 60 IN CNAME www.example.org.");
            let mut addresses = answer[1..].to_vec();
            orders.insert(addresses.clone());
            addresses.sort();
            assert_eq!(
                addresses,
                [
                    "www.example.org. 60 IN A 10.0.0.1",
                    "www.example.org. 60 IN A 10.0.0.2",
                    "www.example.org. 60 IN AAAA fd00::1"
                ]
            );
            mx_orders.insert(lines(&resp.authority));
            // Additional: the TXT moves before the addresses.
            assert_eq!(resp.additional[0].to_string(), "x.example.org. 60 IN TXT \"t\"");
        }
        assert_eq!(orders.len(), 6, "{orders:?}");
        assert_eq!(mx_orders.len(), 2);
    }

    #[test]
    fn errors_and_zone_transfers_are_left_alone() {
        let untouched = rrs(&[
            "www.example.org. A 10.0.0.1",
            "www.example.org. A 10.0.0.2",
            "example.org. CNAME www.example.org.",
            "www.example.org. AAAA fd00::1",
        ]);
        for resp in run(round_robin_plugin(&[]), Rcode::NXDOMAIN, RecordType::A, 20) {
            assert_eq!(resp.answer, untouched);
        }
        for resp in run(round_robin_plugin(&[]), Rcode::NOERROR, RecordType::AXFR, 20) {
            assert_eq!(resp.answer, untouched);
        }
        let fails = testing::fail("fails", ErrorKind::Upstream, "down");
        let chain = testing::chain(vec![Arc::new(round_robin_plugin(&[])), fails]);
        let mut req = Request::synthetic("example.org.", RecordType::A);
        let err = testing::run(&chain, &mut req).unwrap_err();
        assert_eq!(err.to_string(), "plugin/fails: down");
    }

    #[test]
    fn grouping_keeps_order_within_groups() {
        let mut section = rrs(&["a. MX 1 m.", "a. A 10.0.0.1", "a. TXT x", "b. CNAME a.", "a. SRV s.", "c. CNAME b."]);
        let g = group(&mut section);
        assert_eq!(
            lines(&section),
            [
                "b. 60 IN CNAME a.",
                "c. 60 IN CNAME b.",
                "a. 60 IN TXT \"x\"",
                "a. 60 IN SRV 0 0 53 s.",
                "a. 60 IN A 10.0.0.1",
                "a. 60 IN MX 1 m.",
            ]
        );
        assert_eq!((g.addresses, g.mx), (4..5, 5..6));
    }

    /// prefer: addresses in the first network, then the second, then the rest, each group
    /// still shuffled; answer and additional become CNAMEs, addresses, MX, others.
    #[test]
    fn preferred_networks_come_first() {
        let mut firsts = HashSet::new();
        for resp in run(round_robin_plugin(&["fd00::/8", "10.0.0.2/32"]), Rcode::NOERROR, RecordType::A, 100) {
            let answer = lines(&resp.answer);
            assert_eq!(
                answer[..3],
                [
                    "example.org. 60 IN CNAME www.example.org.",
                    "www.example.org. 60 IN AAAA fd00::1",
                    "www.example.org. 60 IN A 10.0.0.2",
                ]
            );
            let additional = lines(&resp.additional);
            firsts.insert(additional[0].clone());
            assert_eq!(additional[2], "x.example.org. 60 IN TXT \"t\"");
        }
        assert_eq!(firsts.len(), 2, "additional addresses are still shuffled: {firsts:?}");
        let mut section = rrs(&["a. A 192.168.1.1", "a. A 10.1.2.3", "a. AAAA ::ffff:10.9.9.9"]);
        prefer_networks(&mut section, &[Cidr::parse("10.0.0.0/8").unwrap()]);
        assert_eq!(lines(&section), ["a. 60 IN A 10.1.2.3", "a. 60 IN AAAA ::ffff:10.9.9.9", "a. 60 IN A 192.168.1.1"]);
    }

    #[test]
    fn weighted_balances_address_queries_only() {
        let w = Arc::new(Weights::new("w".into()));
        w.update(b"www.example.org.\n10.0.0.2 255\n".to_vec()).unwrap();
        let lb = || LoadBalance { policy: Policy::Weighted(w.clone()), prefer: Box::new([]), limit_answers: None };
        let mut firsts = HashSet::new();
        for resp in run(lb(), Rcode::NOERROR, RecordType::A, 50) {
            let answer = lines(&resp.answer);
            assert_eq!(answer[0], "example.org. 60 IN CNAME www.example.org.");
            firsts.insert(answer[1].clone());
            // Authority is not touched by the weighted policy.
            assert_eq!(lines(&resp.authority)[0], "example.org. 60 IN MX 10 mx1.example.org.");
        }
        // 255 against 1 and 1: the weighted address comes first nearly every time.
        assert!(firsts.contains("www.example.org. 60 IN A 10.0.0.2"), "{firsts:?}");
        for resp in run(lb(), Rcode::NOERROR, RecordType::TXT, 5) {
            assert_eq!(lines(&resp.answer)[0], "www.example.org. 60 IN A 10.0.0.1", "TXT queries are not balanced");
        }
    }

    /// limit_answers cuts the answer section after balancing, for both policies: every reply of
    /// round_robin keeps the CNAME and one of the three addresses (all three turn up first); the
    /// other sections and replies that are not balanced keep everything.
    #[test]
    fn limit_answers_keeps_the_first_records_after_balancing() {
        let limited = |policy| LoadBalance { policy, prefer: Box::new([]), limit_answers: NonZeroUsize::new(2) };
        let mut kept = HashSet::new();
        for resp in run(limited(Policy::RoundRobin), Rcode::NOERROR, RecordType::A, 200) {
            let answer = lines(&resp.answer);
            assert_eq!(answer.len(), 2, "{answer:?}");
            assert_eq!(answer[0], "example.org. 60 IN CNAME www.example.org.");
            kept.insert(answer[1].clone());
            assert_eq!(resp.authority.len(), 2);
            assert_eq!(resp.additional.len(), 3);
        }
        assert_eq!(kept.len(), 3, "{kept:?}");

        let w = Arc::new(Weights::new("w".into()));
        w.update(b"www.example.org.\n10.0.0.2 255\n".to_vec()).unwrap();
        let mut kept = HashSet::new();
        for resp in run(limited(Policy::Weighted(w.clone())), Rcode::NOERROR, RecordType::A, 50) {
            assert_eq!(resp.answer.len(), 2);
            kept.insert(resp.answer[1].to_string());
        }
        assert!(kept.contains("www.example.org. 60 IN A 10.0.0.2"), "{kept:?}");
        // A TXT reply is not reordered by weight but is still limited, as in CoreDNS.
        for resp in run(limited(Policy::Weighted(w)), Rcode::NOERROR, RecordType::TXT, 3) {
            assert_eq!(lines(&resp.answer), ["www.example.org. 60 IN A 10.0.0.1", "www.example.org. 60 IN A 10.0.0.2"]);
        }

        let policy = || Policy::RoundRobin;
        for (rcode, qtype) in [(Rcode::NXDOMAIN, RecordType::A), (Rcode::NOERROR, RecordType::AXFR)] {
            for resp in run(limited(policy()), rcode, qtype, 3) {
                assert_eq!(resp.answer.len(), 4, "{rcode} {qtype}");
            }
        }
    }

    /// The limit applies after `prefer`, so the preferred addresses are the ones kept.
    #[test]
    fn limit_answers_keeps_preferred_addresses() {
        let prefer = [Cidr::parse("fd00::/8").unwrap()].into();
        let lb = LoadBalance { policy: Policy::RoundRobin, prefer, limit_answers: NonZeroUsize::new(2) };
        for resp in run(lb, Rcode::NOERROR, RecordType::A, 50) {
            assert_eq!(
                lines(&resp.answer),
                ["example.org. 60 IN CNAME www.example.org.", "www.example.org. 60 IN AAAA fd00::1"]
            );
        }
    }

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.1.2.3/8").unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert!(c.contains("10.200.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.0.0.1".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(!c.contains("fd00::1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("1.2.3.4".parse().unwrap()));
        assert!(Cidr::parse("fd00::/8").unwrap().contains("fdff::1".parse().unwrap()));
        for bad in ["10.0.0.0", "10.0.0.0/33", "fd00::/129", "x/8", "10.0.0.0/+8", "10.0.0.0/08"] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }
}
