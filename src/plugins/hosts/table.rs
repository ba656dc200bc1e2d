//! The table queries are answered from: the hosts file's entries and the Corefile's inline
//! entries, merged, keyed for lookups by the query name itself.
//!
//! Built whole on every (re)read and swapped in atomically; never changed in place, so readers
//! need no lock. A lookup hashes the query name as received ([`Name`] hashes and compares
//! case-insensitively, so no lowercase copy is made) and returns borrowed addresses.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::hostsfile::Line;
use crate::dns::{Name, NameMap};

/// The addresses of one name, in the order written: the file's first, then the Corefile's.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Addrs {
    pub v4: Box<[Ipv4Addr]>,
    pub v6: Box<[Ipv6Addr]>,
}

/// What the hosts plugin serves. See the module documentation.
#[derive(Debug, Default)]
pub struct Table {
    /// Lowercase name -> its addresses.
    names: NameMap<Addrs>,
    /// Lowercase reverse name (`1.0.0.10.in-addr.arpa.`) -> the names with that address.
    reverse: NameMap<Box<[Name]>>,
    entries: usize,
}

impl Table {
    /// The addresses of `name`, if it is in the table (with addresses of either family).
    pub fn lookup(&self, name: &Name) -> Option<&Addrs> {
        self.names.get(name)
    }

    /// The names whose address `reverse` (an `in-addr.arpa` or `ip6.arpa` name) stands for.
    ///
    /// CoreDNS turns the reverse name into an address and looks that up, so the `ip6.arpa` name
    /// of an IPv4-mapped address finds the IPv4 entry; the table is keyed by reverse name, and
    /// that one case is handled on a miss.
    pub fn reverse(&self, reverse: &Name) -> Option<&[Name]> {
        if let Some(names) = self.reverse.get(reverse) {
            return Some(names);
        }
        let v4 = mapped_ipv4(reverse)?;
        self.reverse.get(&reverse_name(IpAddr::V4(v4))).map(|n| &**n)
    }

    /// The number of entries as CoreDNS counts them for `coredns_hosts_entries`: one per
    /// (name, address) pair read, plus one per (address, name) pair for reverse lookups,
    /// repeats included.
    pub fn entries(&self) -> usize {
        self.entries
    }
}

/// Assembles a [`Table`] from entry lines: the file's, then the Corefile's.
pub struct Builder<'a> {
    origins: &'a [Name],
    reverse_enabled: bool,
    names: HashMap<Name, (Vec<Ipv4Addr>, Vec<Ipv6Addr>)>,
    reverse: HashMap<IpAddr, Vec<Name>>,
    entries: usize,
}

impl<'a> Builder<'a> {
    /// Keeps only names under `origins`; makes reverse entries when `reverse_enabled`.
    pub fn new(origins: &'a [Name], reverse_enabled: bool) -> Builder<'a> {
        Builder { origins, reverse_enabled, names: HashMap::new(), reverse: HashMap::new(), entries: 0 }
    }

    /// Adds one line. An address repeated for a name (in the file and the Corefile, say) is
    /// answered once: RFC 2181 5 asks for duplicate records in an RRset to be suppressed.
    pub fn add(&mut self, line: &Line) {
        for name in &line.names {
            if !self.origins.iter().any(|z| name.is_subdomain_of(z)) {
                continue;
            }
            let (v4, v6) = self.names.entry(name.clone()).or_default();
            match line.addr {
                IpAddr::V4(a) => push_new(v4, a),
                IpAddr::V6(a) => push_new(v6, a),
            }
            self.entries += 1;
            if self.reverse_enabled {
                push_new(self.reverse.entry(line.addr).or_default(), name.clone());
                self.entries += 1;
            }
        }
    }

    pub fn add_all<'l>(&mut self, lines: impl IntoIterator<Item = &'l Line>) {
        for line in lines {
            self.add(line);
        }
    }

    pub fn finish(self) -> Table {
        let names = self.names.into_iter().map(|(n, (v4, v6))| (n, Addrs { v4: v4.into(), v6: v6.into() })).collect();
        // Distinct addresses have distinct reverse names: mapped IPv6 was made IPv4 when read.
        let reverse = self.reverse.into_iter().map(|(a, names)| (reverse_name(a), names.into_boxed_slice())).collect();
        Table { names, reverse, entries: self.entries }
    }
}

fn push_new<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// The reverse name of an address (RFC 1035 3.5, RFC 3596 2.5): `1.0.0.10.in-addr.arpa.`, or
/// 32 nibbles, least significant first, under `ip6.arpa.`.
pub fn reverse_name(addr: IpAddr) -> Name {
    let mut labels: Vec<Vec<u8>> = Vec::with_capacity(34);
    match addr {
        IpAddr::V4(a) => {
            labels.extend(a.octets().iter().rev().map(|o| o.to_string().into_bytes()));
            labels.push(b"in-addr".to_vec());
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            labels.extend((0..32).map(|i| vec![b"0123456789abcdef"[((bits >> (4 * i)) & 0xf) as usize]]));
            labels.push(b"ip6".to_vec());
        }
    }
    labels.push(b"arpa".to_vec());
    Name::from_labels(labels.iter().map(Vec::as_slice)).expect("reverse names are short")
}

/// The IPv4 address whose IPv4-mapped IPv6 address `name` is the `ip6.arpa` name of.
fn mapped_ipv4(name: &Name) -> Option<Ipv4Addr> {
    let mut labels = name.labels();
    let mut bits = 0u128;
    for i in 0..32 {
        let label = labels.next()?;
        let [nibble] = label else { return None };
        let digit = (*nibble as char).to_digit(16)? as u128;
        bits |= digit << (4 * i);
    }
    let rest: [&[u8]; 2] = [labels.next()?, labels.next()?];
    if labels.next().is_some() || !rest[0].eq_ignore_ascii_case(b"ip6") || !rest[1].eq_ignore_ascii_case(b"arpa") {
        return None;
    }
    Ipv6Addr::from(bits).to_ipv4_mapped()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::hosts::hostsfile;

    fn n(s: &str) -> Name {
        Name::parse(s).unwrap()
    }

    fn table(text: &str, origins: &[&str], reverse: bool) -> Table {
        let origins: Vec<Name> = origins.iter().map(|o| n(o)).collect();
        let mut b = Builder::new(&origins, reverse);
        b.add_all(&hostsfile::parse(text.as_bytes(), |_, why| panic!("{why}")));
        b.finish()
    }

    #[test]
    fn reverse_names() {
        assert_eq!(reverse_name("10.0.0.1".parse().unwrap()).to_string(), "1.0.0.10.in-addr.arpa.");
        assert_eq!(
            reverse_name("2001:db8::567:89ab".parse().unwrap()).to_string(),
            "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
        );
    }

    #[test]
    fn lookups_ignore_case_and_keep_the_written_order() {
        let t = table("10.0.0.1 web\n10.0.0.2 Web other\n::1 web\n", &["."], true);
        let web = t.lookup(&n("WEB.")).unwrap();
        assert_eq!(*web.v4, ["10.0.0.1".parse::<Ipv4Addr>().unwrap(), "10.0.0.2".parse().unwrap()]);
        assert_eq!(*web.v6, [Ipv6Addr::LOCALHOST]);
        assert!(t.lookup(&n("nothere.")).is_none());
        let names: Vec<String> =
            t.reverse(&n("2.0.0.10.IN-ADDR.arpa")).unwrap().iter().map(|n| n.to_string()).collect();
        assert_eq!(names, ["web.", "other."]);
        // Forward: 4 pairs; reverse: 4 pairs.
        assert_eq!(t.entries(), 8);
    }

    #[test]
    fn names_outside_the_origins_are_left_out() {
        let t = table("10.0.0.1 a.example.org b.example.net example.org\n", &["example.org."], true);
        assert!(t.lookup(&n("a.example.org")).is_some());
        assert!(t.lookup(&n("example.org")).is_some());
        assert!(t.lookup(&n("b.example.net")).is_none());
        assert_eq!(t.reverse(&n("1.0.0.10.in-addr.arpa")).unwrap().len(), 2);
    }

    #[test]
    fn no_reverse_makes_no_reverse_entries() {
        let t = table("10.0.0.1 a\n", &["."], false);
        assert!(t.reverse(&n("1.0.0.10.in-addr.arpa")).is_none());
        assert_eq!(t.entries(), 1);
    }

    #[test]
    fn repeats_are_answered_once_but_counted() {
        let t = table("10.0.0.1 a a\n10.0.0.1 a\n", &["."], true);
        assert_eq!(t.lookup(&n("a")).unwrap().v4.len(), 1);
        assert_eq!(t.reverse(&n("1.0.0.10.in-addr.arpa")).unwrap().len(), 1);
        assert_eq!(t.entries(), 6);
    }

    #[test]
    fn the_ip6_arpa_name_of_a_mapped_address_finds_the_ipv4_entry() {
        let t = table("10.0.0.2 v4\n::ffff:10.0.0.3 mapped\n", &["."], true);
        let mapped = reverse_name("::ffff:10.0.0.2".parse().unwrap());
        assert_eq!(t.reverse(&mapped).unwrap(), [n("v4")]);
        assert_eq!(t.reverse(&n("3.0.0.10.in-addr.arpa")).unwrap(), [n("mapped")]);
        assert!(t.lookup(&n("mapped")).unwrap().v6.is_empty());
        // Not a mapped address, and malformed ip6.arpa names: no answer.
        assert!(t.reverse(&reverse_name("::1".parse().unwrap())).is_none());
        assert!(t.reverse(&n("x.ip6.arpa")).is_none());
        assert!(mapped_ipv4(&n(&format!("{}ip6.arpa.x", "0.".repeat(32)))).is_none());
    }
}
