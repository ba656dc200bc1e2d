//! *hosts*: answers A, AAAA and PTR queries from a hosts file and from entries written in the
//! Corefile, re-reading the file when it changes.
//!
//! What a query gets, as CoreDNS's hosts plugin answers it:
//!
//! | query                                               | answer                                  |
//! |-----------------------------------------------------|-----------------------------------------|
//! | not PTR, name outside the plugin's zones            | handed on                               |
//! | PTR for an address in the table                     | authoritative PTRs, in or out of zones  |
//! | PTR for anything else (or any PTR with `no_reverse`)| handed on, whatever `fallthrough` says  |
//! | A or AAAA for a name in the table                   | authoritative addresses of that family, |
//! |                                                     | NODATA if it has only the other family  |
//! | another type for a name in the table                | authoritative NODATA                    |
//! | a name not in the table, covered by `fallthrough`   | handed on                               |
//! | a name not in the table, otherwise                  | SERVFAIL, not authoritative, no SOA     |
//!
//! The last row is CoreDNS's choice: a hosts file has no SOA to put in an NXDOMAIN, so it
//! answers SERVFAIL rather than deny a name it cannot vouch for.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::dns::{Name, RData, Rcode, Record, RecordType, Request, Response};
use crate::plugin::fall::Fallthrough;
use crate::plugin::{Next, Plugin, ServeError};

mod hostsfile;
mod setup;
mod table;
mod watch;

pub use setup::parse;
use table::Table;

pub const NAME: &str = "hosts";

/// See the [module documentation](self).
pub struct Hosts {
    /// The zones the plugin answers forward names for, lowercase.
    origins: Box<[Name]>,
    ttl: u32,
    fall: Fallthrough,
    /// Swapped whole when the file changes (see [`watch`]); a query reads one version.
    table: Arc<ArcSwap<Table>>,
}

/// What the table says about a query.
enum Outcome {
    Answer(Response),
    Next,
}

impl Plugin for Hosts {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve<'a>(&'a self, req: &'a mut Request, next: Next<'a>) -> Result<Response, ServeError> {
        match self.answer(req) {
            Outcome::Answer(resp) => Ok(resp),
            Outcome::Next => next.run(req).await,
        }
    }
}

/// The message header, RFC 1035 4.1.1.
const HEADER_LEN: usize = 12;
/// The smallest PTR record there is: an owner that is a 2-byte pointer, type, class, TTL and
/// RDLENGTH, and a target that is itself a 2-byte pointer.
const MIN_PTR_RR_LEN: usize = 2 + 10 + 2;

impl Hosts {
    fn answer(&self, req: &Request) -> Outcome {
        let qname = req.qname();
        let qtype = req.qtype();
        // Reverse names are answered wherever the address is in the table: a block for `.` with
        // `hosts example.org` still answers `1.0.0.10.in-addr.arpa` for 10.0.0.1 example.org.
        if qtype != RecordType::PTR && !self.origins.iter().any(|z| qname.is_subdomain_of(z)) {
            return Outcome::Next;
        }
        let table = self.table.load();
        if qtype == RecordType::PTR {
            return match table.reverse(qname) {
                Some(names) => Outcome::Answer(self.ptr(req, names)),
                None => Outcome::Next,
            };
        }
        let Some(addrs) = table.lookup(qname) else {
            if self.fall.through(qname) {
                return Outcome::Next;
            }
            return Outcome::Answer(Response::with_rcode(NAME, Rcode::SERVFAIL));
        };
        let mut resp = Response::authoritative(NAME);
        match qtype {
            RecordType::A => {
                resp.answer = addrs.v4.iter().map(|ip| Record::new(qname.clone(), self.ttl, RData::A(*ip))).collect()
            }
            RecordType::AAAA => {
                resp.answer = addrs.v6.iter().map(|ip| Record::new(qname.clone(), self.ttl, RData::Aaaa(*ip))).collect()
            }
            _ => {}
        }
        Outcome::Answer(resp)
    }

    /// PTR records for `names`, at most as many as could fit in the client's limit: a block list
    /// maps 0.0.0.0 to 100 000 names, and its reverse query must not build them all. When some are
    /// left out, TC is set, which the full answer would have needed anyway.
    fn ptr(&self, req: &Request, names: &[Name]) -> Response {
        let room = req.max_response_size().saturating_sub(HEADER_LEN + req.qname().wire_len() + 4);
        let fits = room / MIN_PTR_RR_LEN;
        let mut resp = Response::authoritative(NAME);
        resp.answer = names
            .iter()
            .take(fits)
            .map(|n| Record::new(req.qname().clone(), self.ttl, RData::Ptr(n.clone())))
            .collect();
        resp.truncated = names.len() > fits;
        resp
    }
}

/// Whether `text` starts an inline entry (an address), rather than a property.
fn is_address(text: &str) -> bool {
    hostsfile::parse_addr(text).is_some()
}

/// For the unit tests of this folder.
#[cfg(test)]
fn test_plugin(hosts: &str, origins: &[&str], fall: Fallthrough, reverse: bool) -> Hosts {
    let origins: Vec<Name> = origins.iter().map(|o| Name::parse(o).unwrap()).collect();
    let mut b = table::Builder::new(&origins, reverse);
    b.add_all(&hostsfile::parse(hosts.as_bytes(), |_, why| panic!("{why}")));
    let table = Arc::new(ArcSwap::from_pointee(b.finish()));
    Hosts { origins: origins.into(), ttl: 3600, fall, table }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing;

    const HOSTS: &str = "\
127.0.0.1 localhost localhost.domain
::1 localhost localhost.domain
10.0.0.1 example.org
::FFFF:10.0.0.2 example.com
fe80::1%eth0 router.example.org
";

    /// The plugin's answer (`rcode aa? records...`) or `next`.
    fn ask(h: Hosts, name: &str, qtype: RecordType) -> String {
        let chain = testing::chain(vec![Arc::new(h), testing::rcode("below", Rcode::NOERROR)]);
        let mut req = Request::synthetic(name, qtype);
        let resp = testing::run(&chain, &mut req).unwrap();
        if resp.plugin() == "below" {
            return "next".into();
        }
        let mut out = format!("{}{}", resp.rcode, if resp.authoritative { " aa" } else { "" });
        if resp.truncated {
            out.push_str(" tc");
        }
        for r in &resp.answer {
            out.push_str(&format!("; {r}"));
        }
        out
    }

    #[test]
    fn answers_like_coredns() {
        let cases: &[(&str, RecordType, &str)] = &[
            ("example.org.", RecordType::A, "NOERROR aa; example.org. 3600 IN A 10.0.0.1"),
            ("Example.ORG.", RecordType::A, "NOERROR aa; Example.ORG. 3600 IN A 10.0.0.1"),
            ("example.com.", RecordType::A, "NOERROR aa; example.com. 3600 IN A 10.0.0.2"),
            ("localhost.", RecordType::AAAA, "NOERROR aa; localhost. 3600 IN AAAA ::1"),
            ("router.example.org.", RecordType::AAAA, "NOERROR aa; router.example.org. 3600 IN AAAA fe80::1"),
            ("1.0.0.10.in-addr.arpa.", RecordType::PTR, "NOERROR aa; 1.0.0.10.in-addr.arpa. 3600 IN PTR example.org."),
            ("2.0.0.10.in-addr.arpa.", RecordType::PTR, "NOERROR aa; 2.0.0.10.in-addr.arpa. 3600 IN PTR example.com."),
            (
                "1.0.0.127.in-addr.arpa.",
                RecordType::PTR,
                "NOERROR aa; 1.0.0.127.in-addr.arpa. 3600 IN PTR localhost.; \
                 1.0.0.127.in-addr.arpa. 3600 IN PTR localhost.domain.",
            ),
            // NODATA: the name exists with the other family, or the type is not served.
            ("example.org.", RecordType::AAAA, "NOERROR aa"),
            ("example.org.", RecordType::MX, "NOERROR aa"),
            // Not in the table, no fallthrough.
            ("nothere.org.", RecordType::A, "SERVFAIL"),
            ("nothere.org.", RecordType::TXT, "SERVFAIL"),
            // PTR without an entry, or for a forward name: always handed on.
            ("9.0.0.10.in-addr.arpa.", RecordType::PTR, "next"),
            ("example.org.", RecordType::PTR, "next"),
        ];
        for (name, qtype, want) in cases {
            assert_eq!(
                ask(test_plugin(HOSTS, &["."], Fallthrough::never(), true), name, *qtype),
                *want,
                "{name} {qtype}"
            );
        }
    }

    #[test]
    fn names_outside_the_zones_are_handed_on_but_reverse_names_answered() {
        let h = || test_plugin("10.0.0.1 a.example.org b.example.net\n", &["example.org."], Fallthrough::never(), true);
        assert_eq!(ask(h(), "a.example.org.", RecordType::A), "NOERROR aa; a.example.org. 3600 IN A 10.0.0.1");
        assert_eq!(ask(h(), "b.example.net.", RecordType::A), "next");
        assert_eq!(ask(h(), "x.example.org.", RecordType::A), "SERVFAIL");
        assert_eq!(
            ask(h(), "1.0.0.10.in-addr.arpa.", RecordType::PTR),
            "NOERROR aa; 1.0.0.10.in-addr.arpa. 3600 IN PTR a.example.org."
        );
    }

    #[test]
    fn fallthrough_hands_on_missing_names_of_its_zones_only() {
        let fall = || {
            let text = ". {\n    fallthrough b.example.org\n}\n";
            let corefile = crate::corefile::parse_str("Corefile", text, &|_| None).unwrap();
            Fallthrough::parse(&mut crate::corefile::Args::new("t", &corefile.blocks[0].directives[0])).unwrap()
        };
        let h = || test_plugin("10.0.0.1 a.example.org\n", &["."], fall(), true);
        assert_eq!(ask(h(), "x.b.example.org.", RecordType::A), "next");
        assert_eq!(ask(h(), "x.example.org.", RecordType::A), "SERVFAIL");
        // A name that exists is answered (NODATA here), never handed on.
        assert_eq!(ask(h(), "a.example.org.", RecordType::AAAA), "NOERROR aa");
        let h = test_plugin("10.0.0.1 a.example.org\n", &["."], Fallthrough::always(), true);
        assert_eq!(ask(h, "anything.", RecordType::A), "next");
    }

    #[test]
    fn no_reverse_hands_reverse_queries_on() {
        let h = test_plugin("10.0.0.1 a\n", &["."], Fallthrough::never(), false);
        assert_eq!(ask(h, "1.0.0.10.in-addr.arpa.", RecordType::PTR), "next");
    }

    #[test]
    fn a_huge_reverse_answer_is_cut_to_what_could_fit_and_marked_truncated() {
        let mut file = String::new();
        for i in 0..5000 {
            file.push_str(&format!("0.0.0.0 blocked{i}.example\n"));
        }
        let h = test_plugin(&file, &["."], Fallthrough::never(), true);
        let req = Request::synthetic("0.0.0.0.in-addr.arpa.", RecordType::PTR);
        let Outcome::Answer(resp) = h.answer(&req) else { panic!("an answer") };
        assert!(resp.truncated);
        // 512 bytes without EDNS: (512 - 12 - 22 - 4) / 14.
        assert_eq!(resp.answer.len(), 33);
    }
}
