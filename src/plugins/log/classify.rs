//! Sorting replies into the classes `log { class ... }` selects, as CoreDNS's `response.Typify`
//! and `response.Classify` do:
//!
//! | reply                                                              | type        | class   |
//! |--------------------------------------------------------------------|-------------|---------|
//! | opcode UPDATE, NOTIFY; qtype AXFR, IXFR                            | meta/update | error   |
//! | DO set and an RRSIG outside its validity period                    | other error | error   |
//! | NOERROR, answers, A/AAAA query with no answer of the qtype         | NODATA      | denial  |
//! | NOERROR, answers otherwise                                         | NOERROR     | success |
//! | NOERROR, no answers, SOA in authority                              | NODATA      | denial  |
//! | NXDOMAIN, SOA in authority                                         | NXDOMAIN    | denial  |
//! | SERVFAIL, NOTIMP                                                   | server err. | error   |
//! | NOERROR, no answers, NS in authority                               | delegation  | success |
//! | NOERROR, nothing else                                              | NOERROR     | success |
//! | anything else (REFUSED, FORMERR, NXDOMAIN without SOA ...)         | other error | error   |
//!
//! The rows apply top to bottom. Note the A/AAAA rule: an answer holding only a CNAME for an
//! address query is a denial, since the client got no address.

use std::time::{SystemTime, UNIX_EPOCH};

use super::format::Reply;
use crate::dns::{Opcode, Rcode, Record, RecordType, Request};

/// A class of replies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Success,
    Denial,
    Error,
}

/// The class of `reply` to `req`. See the [module documentation](self).
pub fn classify(req: &Request, reply: &Reply<'_>) -> Class {
    let (answer, authority, additional): (&[Record], &[Record], &[Record]) = match reply {
        Reply::Answer(r) => (&r.answer, &r.authority, &r.additional),
        Reply::Failed(_) => (&[], &[], &[]),
    };
    let rcode = reply.rcode();
    let opcode = Opcode(((req.header_flags() >> 11) & 0xf) as u8);
    let qtype = req.qtype();
    if opcode == Opcode::UPDATE || opcode == Opcode::NOTIFY || qtype == RecordType::AXFR || qtype == RecordType::IXFR {
        return Class::Error;
    }
    if req.dnssec_ok() {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        if [answer, authority, additional].iter().any(|s| s.iter().any(|r| r.rrsig_expired(now))) {
            return Class::Error;
        }
    }
    if !answer.is_empty() && rcode == Rcode::NOERROR {
        let address_query = qtype == RecordType::A || qtype == RecordType::AAAA;
        let answered = answer.iter().any(|r| r.rtype() == qtype);
        return if address_query && !answered { Class::Denial } else { Class::Success };
    }
    let soa = authority.iter().any(|r| r.rtype() == RecordType::SOA);
    let ns = authority.iter().any(|r| r.rtype() == RecordType::NS);
    match rcode {
        Rcode::NOERROR if soa => Class::Denial,
        Rcode::NXDOMAIN if soa => Class::Denial,
        Rcode::SERVFAIL | Rcode::NOTIMP => Class::Error,
        Rcode::NOERROR if ns => Class::Success,
        Rcode::NOERROR => Class::Success,
        _ => Class::Error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::{Name, RData, Response, Soa};

    fn rr(name: &str, data: RData) -> Record {
        Record::new(Name::parse(name).unwrap(), 60, data)
    }

    fn soa() -> Record {
        let n = Name::parse("example.org.").unwrap();
        rr(
            "example.org.",
            RData::Soa(Box::new(Soa {
                mname: n.clone(),
                rname: n,
                serial: 1,
                refresh: 2,
                retry: 3,
                expire: 4,
                minimum: 5,
            })),
        )
    }

    fn class_of(qtype: RecordType, rcode: Rcode, answer: Vec<Record>, authority: Vec<Record>) -> Class {
        let req = Request::synthetic("www.example.org.", qtype);
        let mut resp = Response::with_rcode("x", rcode);
        resp.answer = answer;
        resp.authority = authority;
        classify(&req, &Reply::Answer(&resp))
    }

    #[test]
    fn replies_are_classified_as_coredns_does() {
        let a = || rr("www.example.org.", RData::A("10.0.0.1".parse().unwrap()));
        let cname = || rr("www.example.org.", RData::Cname(Name::parse("web.example.org.").unwrap()));
        let ns = || rr("sub.example.org.", RData::Ns(Name::parse("ns.sub.example.org.").unwrap()));
        use Class::*;
        use RecordType as T;
        let cases = [
            (T::A, Rcode::NOERROR, vec![a()], vec![], Success),
            (T::A, Rcode::NOERROR, vec![cname(), a()], vec![], Success),
            // An address query answered with only a CNAME got no address: NODATA.
            (T::A, Rcode::NOERROR, vec![cname()], vec![], Denial),
            (T::AAAA, Rcode::NOERROR, vec![a()], vec![], Denial),
            // Other types with any answer are successes.
            (T::MX, Rcode::NOERROR, vec![cname()], vec![], Success),
            (T::A, Rcode::NOERROR, vec![], vec![soa()], Denial),
            (T::A, Rcode::NXDOMAIN, vec![], vec![soa()], Denial),
            (T::A, Rcode::NXDOMAIN, vec![], vec![], Error),
            (T::A, Rcode::SERVFAIL, vec![], vec![], Error),
            (T::A, Rcode::NOTIMP, vec![], vec![], Error),
            (T::A, Rcode::REFUSED, vec![], vec![], Error),
            (T::A, Rcode::NOERROR, vec![], vec![ns()], Success),
            (T::A, Rcode::NOERROR, vec![], vec![], Success),
            (T::AXFR, Rcode::NOERROR, vec![a()], vec![], Error),
        ];
        for (i, (qtype, rcode, answer, authority, want)) in cases.into_iter().enumerate() {
            assert_eq!(class_of(qtype, rcode, answer, authority), want, "case {i}");
        }
        let req = Request::synthetic("www.example.org.", T::A);
        assert_eq!(classify(&req, &Reply::Failed(Rcode::SERVFAIL)), Error);
        assert_eq!(classify(&req, &Reply::Failed(Rcode::FORMERR)), Error);
    }

    #[test]
    fn rrsig_validity_uses_serial_arithmetic() {
        let sig = |inception: u32, expiration: u32| {
            let mut data = vec![0, 1, 8, 2, 0, 0, 0, 60];
            data.extend_from_slice(&expiration.to_be_bytes());
            data.extend_from_slice(&inception.to_be_bytes());
            rr("example.org.", RData::Opaque { rtype: RecordType::RRSIG, data: data.into() })
        };
        let now = 1_700_000_000i64;
        assert!(!sig(1_600_000_000, 1_800_000_000).rrsig_expired(now));
        assert!(sig(1_600_000_000, 1_650_000_000).rrsig_expired(now));
        assert!(sig(1_750_000_000, 1_800_000_000).rrsig_expired(now));
        // Not an RRSIG, or too short to read: never expired.
        assert!(!rr("example.org.", RData::A("10.0.0.1".parse().unwrap())).rrsig_expired(now));
        let short = rr("example.org.", RData::Opaque { rtype: RecordType::RRSIG, data: vec![0; 10].into() });
        assert!(!short.rrsig_expired(now));
    }
}
