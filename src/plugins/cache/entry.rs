//! What the cache keeps of an answer, and the rules that decide whether and for how long.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::future::{BoxFuture, Shared};
use tokio::time::Instant;

use super::metrics::Kind;
use crate::dns::edns::code;
use crate::dns::{Class, EdnsOptions, Name, RData, Rcode, Record, RecordType, Request, Response, WireAnswer};

/// What an answer is, as CoreDNS's `response.Typify` sorts them (`cacheResponseType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    /// NOERROR with records (or with none and no SOA or NS: the data is elsewhere, as whoami's).
    NoError,
    /// NOERROR, no answer, NS records in the authority section.
    Delegation,
    /// NOERROR and an SOA: the name exists without the type (RFC 2308 2.2), also when the
    /// answer section holds a CNAME chain that does not reach the type.
    NoData,
    /// NXDOMAIN with no answer records.
    NameError,
    /// SERVFAIL or NOTIMP.
    ServerError,
    /// A zone transfer.
    Meta,
    /// Anything else (REFUSED, FORMERR, NXDOMAIN with answers, expired signatures): never cached.
    OtherError,
}

impl Type {
    /// The cache an answer of this type goes to, if any.
    pub fn kind(self) -> Option<Kind> {
        match self {
            Type::NoError | Type::Delegation => Some(Kind::Success),
            Type::NoData | Type::NameError | Type::ServerError => Some(Kind::Denial),
            Type::Meta | Type::OtherError => None,
        }
    }
}

/// Sorts `resp`, the answer to `question` asked with DO set or not.
pub fn typify(qname: &Name, qtype: RecordType, qclass: Class, dnssec_ok: bool, resp: &Response) -> Type {
    if qtype == RecordType::AXFR || qtype == RecordType::IXFR {
        return Type::Meta;
    }
    // RFC 4035 5.3.1: a signature outside its validity period makes the answer bogus; a client
    // that asked for DNSSEC must not get it from the cache.
    if dnssec_ok {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        if sections(resp).any(|r| r.rrsig_expired(now)) {
            return Type::OtherError;
        }
    }
    let soa = has_soa(resp);
    if !resp.answer.is_empty() {
        return match resp.rcode {
            Rcode::NOERROR if soa && !answers_question(&resp.answer, qname, qtype, qclass) => Type::NoData,
            Rcode::NOERROR => Type::NoError,
            _ => Type::OtherError,
        };
    }
    match resp.rcode {
        Rcode::NOERROR if soa => Type::NoData,
        Rcode::NXDOMAIN => Type::NameError,
        Rcode::SERVFAIL | Rcode::NOTIMP => Type::ServerError,
        Rcode::NOERROR => {
            if resp.authority.iter().any(|r| r.rtype() == RecordType::NS) {
                Type::Delegation
            } else {
                Type::NoError
            }
        }
        _ => Type::OtherError,
    }
}

/// Whether an answer of type `t` may be cached at all (CoreDNS's `key`): not truncated (RFC
/// 2181 9: a truncated answer is only a hint to retry over TCP), not an error or transfer, a
/// denial that carries an SOA to time it by (RFC 2308 5), and not a NOERROR answer that fails
/// to answer and has no SOA (an unfinished CNAME chain from a forwarder: RFC 2308 5 says a
/// NODATA without SOA "SHOULD NOT" be cached).
pub fn cacheable(t: Type, resp: &Response, qname: &Name, qtype: RecordType, qclass: Class) -> bool {
    if resp.truncated {
        return false;
    }
    match t {
        Type::Meta | Type::OtherError => false,
        Type::NameError => has_soa(resp),
        Type::NoError => {
            has_soa(resp) || resp.answer.is_empty() || answers_question(&resp.answer, qname, qtype, qclass)
        }
        Type::Delegation | Type::NoData | Type::ServerError => true,
    }
}

fn has_soa(resp: &Response) -> bool {
    resp.authority.iter().any(|r| r.rtype() == RecordType::SOA)
}

fn sections(resp: &Response) -> impl Iterator<Item = &Record> {
    resp.answer.iter().chain(&resp.authority).chain(&resp.additional)
}

/// The lowest TTL of the answer's records, at most `max` (CoreDNS's `MinimalTTLWithMaximum`):
/// the TTL an entry of a positive or negative answer starts from. An answer without records, and
/// any other type, gets the minimal default, 5 seconds.
///
/// RFC 2308 5: a negative answer is cached for "the minimum of the MINIMUM field of the SOA
/// record and the TTL of the SOA itself"; so for NXDOMAIN and NODATA an SOA counts with the
/// lower of the two (CoreDNS counts only the record's TTL, which most servers already lower,
/// as RFC 2308 3 asks).
pub fn minimal_ttl(t: Type, resp: &Response, max: u32) -> u32 {
    if !matches!(t, Type::NoError | Type::NameError | Type::NoData) {
        return super::setup::MIN_TTL;
    }
    let mut records = sections(resp).peekable();
    if records.peek().is_none() {
        return super::setup::MIN_TTL;
    }
    let negative = t != Type::NoError;
    records.fold(max, |low, r| {
        let ttl = match &r.data {
            RData::Soa(soa) if negative => r.ttl.min(soa.minimum),
            _ => r.ttl,
        };
        low.min(ttl)
    })
}

/// Whether `answer` answers `qname`/`qtype`/`qclass` (RFC 1034 3.6.2, RFC 2308 1 and 2.2): a
/// record of the type at the name the CNAME chain from `qname` ends at. A chain that forks (an
/// owner with two different targets, RFC 2181 10.1) or loops answers nothing. ANY is answered by
/// any record at `qname`, CNAME by a CNAME at it.
pub fn answers_question(answer: &[Record], qname: &Name, qtype: RecordType, qclass: Class) -> bool {
    let class_ok = |r: &Record| qclass == Class::ANY || r.class == qclass;
    if qtype == RecordType::ANY {
        return answer.iter().any(|r| class_ok(r) && r.name == *qname);
    }
    let cname_of = |owner: &Name| -> Result<Option<&Name>, ()> {
        let mut target: Option<&Name> = None;
        for r in answer.iter().filter(|r| class_ok(r) && r.name == *owner) {
            if let RData::Cname(t) = &r.data {
                match target {
                    Some(seen) if seen != t => return Err(()),
                    _ => target = Some(t),
                }
            }
        }
        Ok(target)
    };
    if qtype == RecordType::CNAME {
        return matches!(cname_of(qname), Ok(Some(_)));
    }
    let mut name = qname;
    // Each step visits a new owner, so a chain is at most as long as the answer.
    for _ in 0..=answer.len() {
        match cname_of(name) {
            Err(()) => return false,
            Ok(Some(target)) => name = target,
            Ok(None) => return answer.iter().any(|r| r.rtype() == qtype && class_ok(r) && r.name == *name),
        }
    }
    false // a loop
}

/// The EDNS options an entry keeps: extended DNS errors describe the answer (RFC 8914), while
/// cookies, padding, NSID and the rest belong to one exchange and are not replayed.
pub fn kept_options(options: &EdnsOptions) -> EdnsOptions {
    let mut kept = EdnsOptions::new();
    for o in options.iter().filter(|o| o.code == code::EXTENDED_ERROR) {
        kept.push(o.code, o.data);
    }
    kept
}

/// The outcome of a refresh: the entry it made of a usable answer, or `None`.
pub type Refreshed = Option<Arc<Entry>>;

/// A refresh in flight, which any number of queries may wait for.
pub type Flight = Shared<BoxFuture<'static, Refreshed>>;

/// An entry's refreshes: at most one in flight (coredns#4324, #7963), and, after a failed one,
/// none before `retry_after` (`serve_stale`'s FAILURE_RECHECK).
#[derive(Default)]
pub struct RefreshState {
    pub in_flight: Option<Flight>,
    pub retry_after: Option<Instant>,
}

/// `prefetch`'s count of an entry's popularity (CoreDNS's `freq.Freq`): queries, each within the
/// window of the one before.
#[derive(Clone, Copy)]
pub struct Freq {
    pub last: Instant,
    pub hits: u32,
}

/// One cached answer.
pub struct Entry {
    /// The question it answers, to tell a hash collision from a hit: the name as first asked
    /// (compared without regard to case), type, class, and the query's DO and CD bits.
    pub qname: Name,
    pub qtype: RecordType,
    pub qclass: Class,
    pub dnssec_ok: bool,
    pub checking_disabled: bool,
    /// The answer's header bits: AD as the plugins after the cache said (it is cleared per
    /// client when served).
    pub rcode: Rcode,
    pub authoritative: bool,
    pub recursion_available: bool,
    pub authentic_data: bool,
    /// The options kept ([`kept_options`]).
    pub options: EdnsOptions,
    /// The sections, encoded once, every TTL [`ttl`](Self::ttl): a hit copies them.
    pub sections: Arc<WireAnswer>,
    pub kind: Kind,
    /// SERVFAIL or NOTIMP: transient, so it never hides a positive entry (coredns#7956).
    pub failure: bool,
    pub stored: Instant,
    /// Seconds the entry is fresh for.
    pub ttl: u32,
    /// The listener whose query filled it, for the `server` label of its eviction.
    pub server: u16,
    pub freq: Mutex<Freq>,
    pub refresh: Mutex<RefreshState>,
}

impl Entry {
    /// Whether this entry answers `req` asked with `dnssec_ok` and `checking_disabled`.
    pub fn matches(&self, req: &Request, dnssec_ok: bool, checking_disabled: bool) -> bool {
        self.qtype == req.qtype()
            && self.qclass == req.qclass()
            && self.dnssec_ok == dnssec_ok
            && self.checking_disabled == checking_disabled
            && self.qname == *req.qname()
    }

    /// Seconds of freshness left at `now`: zero or less once expired (CoreDNS's `item.ttl`).
    pub fn remaining(&self, now: Instant) -> i64 {
        self.ttl as i64 - now.saturating_duration_since(self.stored).as_secs() as i64
    }

    /// Whether it may still be served at `now`: fresh, or expired for less than `stale_for`.
    pub fn servable(&self, now: Instant, stale_for: std::time::Duration) -> bool {
        let left = self.remaining(now);
        left > 0 || ((-left) as u64) < stale_for.as_secs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::Soa;

    fn rr(text: &str) -> Record {
        let f: Vec<&str> = text.split_whitespace().collect();
        let name = Name::parse(f[0]).unwrap();
        let ttl = f[1].parse().unwrap();
        let data = match f[2] {
            "A" => RData::A(f[3].parse().unwrap()),
            "AAAA" => RData::Aaaa(f[3].parse().unwrap()),
            "CNAME" => RData::Cname(Name::parse(f[3]).unwrap()),
            "NS" => RData::Ns(Name::parse(f[3]).unwrap()),
            "SOA" => RData::Soa(Box::new(Soa {
                mname: Name::parse(f[3]).unwrap(),
                rname: Name::parse(f[4]).unwrap(),
                serial: 1,
                refresh: 2,
                retry: 3,
                expire: 4,
                minimum: f[5].parse().unwrap(),
            })),
            other => panic!("type {other}"),
        };
        Record::new(name, ttl, data)
    }

    fn resp(rcode: Rcode, answer: &[&str], authority: &[&str]) -> Response {
        let mut r = Response::with_rcode("t", rcode);
        r.answer = answer.iter().map(|t| rr(t)).collect();
        r.authority = authority.iter().map(|t| rr(t)).collect();
        r
    }

    fn typed(qname: &str, qtype: RecordType, r: &Response) -> Type {
        typify(&Name::parse(qname).unwrap(), qtype, Class::IN, false, r)
    }

    const SOA: &str = "example.org. 300 SOA ns.example.org. admin.example.org. 60";

    #[test]
    fn answers_are_typed_as_coredns_types_them() {
        use RecordType as T;
        let a = "a.example.org. 60 A 10.0.0.1";
        let cname = "www.example.org. 60 CNAME a.example.org.";
        let cases: Vec<(&str, T, Response, Type)> = vec![
            ("a.example.org.", T::A, resp(Rcode::NOERROR, &[a], &[]), Type::NoError),
            ("www.example.org.", T::A, resp(Rcode::NOERROR, &[cname, a], &[]), Type::NoError),
            // A chain that ends without the type, with an SOA: NODATA (RFC 2308 2.2).
            ("www.example.org.", T::AAAA, resp(Rcode::NOERROR, &[cname], &[SOA]), Type::NoData),
            ("a.example.org.", T::AAAA, resp(Rcode::NOERROR, &[], &[SOA]), Type::NoData),
            ("x.example.org.", T::A, resp(Rcode::NXDOMAIN, &[], &[SOA]), Type::NameError),
            ("x.example.org.", T::A, resp(Rcode::NXDOMAIN, &[cname], &[SOA]), Type::OtherError),
            (
                "sub.example.org.",
                T::A,
                resp(Rcode::NOERROR, &[], &["sub.example.org. 60 NS ns.sub.example.org."]),
                Type::Delegation,
            ),
            ("a.example.org.", T::A, resp(Rcode::SERVFAIL, &[], &[]), Type::ServerError),
            ("a.example.org.", T::A, resp(Rcode::NOTIMP, &[], &[]), Type::ServerError),
            ("a.example.org.", T::A, resp(Rcode::REFUSED, &[], &[]), Type::OtherError),
            ("a.example.org.", T::A, resp(Rcode::NOERROR, &[], &[]), Type::NoError),
            ("example.org.", T::AXFR, resp(Rcode::NOERROR, &[a], &[]), Type::Meta),
        ];
        for (q, t, r, want) in cases {
            assert_eq!(typed(q, t, &r), want, "{q} {t}");
        }
    }

    #[test]
    fn what_is_never_cached() {
        let q = Name::parse("www.example.org.").unwrap();
        let ok = |r: &Response, t: RecordType| cacheable(typify(&q, t, Class::IN, false, r), r, &q, t, Class::IN);
        // RFC 2308 5: an NXDOMAIN without SOA has no TTL to be cached by.
        assert!(!ok(&resp(Rcode::NXDOMAIN, &[], &[]), RecordType::A));
        assert!(ok(&resp(Rcode::NXDOMAIN, &[], &[SOA]), RecordType::A));
        // A CNAME chain that stops short, without SOA: an unfinished answer (coredns#8232).
        assert!(!ok(&resp(Rcode::NOERROR, &["www.example.org. 60 CNAME a.example.org."], &[]), RecordType::A));
        let mut tc = resp(Rcode::NOERROR, &["www.example.org. 60 A 10.0.0.1"], &[]);
        assert!(ok(&tc, RecordType::A));
        tc.truncated = true;
        assert!(!ok(&tc, RecordType::A));
        assert!(!ok(&resp(Rcode::REFUSED, &[], &[]), RecordType::A));
        assert!(ok(&resp(Rcode::SERVFAIL, &[], &[]), RecordType::A));
    }

    #[test]
    fn cname_chains_answer_only_when_they_reach_the_type() {
        let q = Name::parse("a.example.").unwrap();
        let chain = |rrs: &[&str]| rrs.iter().map(|t| rr(t)).collect::<Vec<_>>();
        let answers = |rrs: &[&str], t| answers_question(&chain(rrs), &q, t, Class::IN);
        assert!(answers(&["A.Example. 5 CNAME b.example.", "b.example. 5 A 10.0.0.1"], RecordType::A));
        assert!(!answers(&["a.example. 5 CNAME b.example.", "c.example. 5 A 10.0.0.1"], RecordType::A));
        // Forked and looping chains answer nothing.
        assert!(!answers(
            &["a.example. 5 CNAME b.example.", "a.example. 5 CNAME c.example.", "b.example. 5 A 10.0.0.1"],
            RecordType::A
        ));
        assert!(!answers(&["a.example. 5 CNAME b.example.", "b.example. 5 CNAME a.example."], RecordType::A));
        assert!(answers(&["a.example. 5 CNAME b.example."], RecordType::CNAME));
        assert!(answers(&["a.example. 5 AAAA ::1"], RecordType::ANY));
        assert!(!answers(&["b.example. 5 AAAA ::1"], RecordType::ANY));
    }

    #[test]
    fn rfc2308_5_negative_ttl_is_the_lower_of_soa_ttl_and_minimum() {
        let nx = resp(Rcode::NXDOMAIN, &[], &[SOA]);
        assert_eq!(minimal_ttl(Type::NameError, &nx, 1800), 60);
        assert_eq!(minimal_ttl(Type::NameError, &nx, 30), 30);
        let low_ttl = resp(Rcode::NXDOMAIN, &[], &["example.org. 10 SOA ns.example.org. admin.example.org. 60"]);
        assert_eq!(minimal_ttl(Type::NameError, &low_ttl, 1800), 10);
        // Positive answers: the lowest record TTL; no records, or other types: 5 seconds.
        let pos = resp(Rcode::NOERROR, &["a.example.org. 60 A 10.0.0.1", "a.example.org. 20 A 10.0.0.2"], &[]);
        assert_eq!(minimal_ttl(Type::NoError, &pos, 3600), 20);
        assert_eq!(minimal_ttl(Type::NoError, &resp(Rcode::NOERROR, &[], &[]), 3600), 5);
        assert_eq!(minimal_ttl(Type::Delegation, &pos, 3600), 5);
    }

    #[test]
    fn expired_signatures_are_bogus_for_dnssec_clients() {
        let mut rrsig = vec![0u8; 18];
        rrsig[8..12].copy_from_slice(&1_000u32.to_be_bytes()); // expired in 1970
        let mut r = resp(Rcode::NOERROR, &["a.example.org. 60 A 10.0.0.1"], &[]);
        let sig = RData::Opaque { rtype: RecordType::RRSIG, data: rrsig.into() };
        r.answer.push(Record::new(Name::parse("a.example.org.").unwrap(), 60, sig));
        let q = Name::parse("a.example.org.").unwrap();
        assert_eq!(typify(&q, RecordType::A, Class::IN, true, &r), Type::OtherError);
        assert_eq!(typify(&q, RecordType::A, Class::IN, false, &r), Type::NoError);
    }
}
