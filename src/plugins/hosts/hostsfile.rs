//! The hosts file format, hosts(5), read as CoreDNS reads it.
//!
//! ```text
//! file    = { line NEWLINE }
//! line    = [ address name { name } ] [ "#" comment ]
//! address = IPv4 | IPv6 [ "%" scope ]     the scope is dropped: `fe80::1%eth0` is fe80::1
//! name    = a domain name, relative names taken as fully qualified (`localhost` is `localhost.`)
//! ```
//!
//! Fields are separated by any ASCII whitespace; a `#` anywhere starts a comment. The first name
//! is the canonical one and the rest are aliases, but for DNS they are all equal: every name gets
//! the address, and the address points back at every name, in the order written. An IPv4-mapped
//! IPv6 address (`::ffff:10.0.0.2`) is the IPv4 address it maps, as Go's `net.IP.To4` makes it
//! in CoreDNS: it answers A queries and its reverse name is under `in-addr.arpa`.
//!
//! A line that is not an entry (no address, an address without names) is reported and skipped;
//! so is a field that cannot be a domain name, the rest of its line still counting. Nothing in a
//! file makes the whole file fail.

use std::fmt;
use std::net::IpAddr;

use crate::dns::{Name, NameError};

/// One entry line: an address and its names, lowercase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub addr: IpAddr,
    pub names: Vec<Name>,
}

/// Why (part of) a line was skipped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("'{0}' is not an IP address")]
    NotAnAddress(String),
    #[error("no names after the address {0}")]
    NoNames(IpAddr),
    #[error("'{text}' is not a domain name")]
    BadName {
        text: String,
        #[source]
        source: NameError,
    },
    #[error("a field that is not UTF-8")]
    NotUtf8,
}

/// What one line of a hosts file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Blank or only a comment.
    Blank,
    /// An entry, with the names that had to be left out of it.
    Entry(Line, Vec<Malformed>),
    /// Not an entry at all.
    Skipped(Malformed),
}

/// Parses one line (without its newline).
pub fn parse_line(line: &[u8]) -> Parsed {
    let line = match line.iter().position(|&b| b == b'#') {
        Some(i) => &line[..i],
        None => line,
    };
    let mut fields = line.split(u8::is_ascii_whitespace).filter(|f| !f.is_empty());
    let Some(first) = fields.next() else {
        return Parsed::Blank;
    };
    let Ok(first) = std::str::from_utf8(first) else {
        return Parsed::Skipped(Malformed::NotUtf8);
    };
    let Some(addr) = parse_addr(first) else {
        return Parsed::Skipped(Malformed::NotAnAddress(first.to_string()));
    };
    let mut names = Vec::new();
    let mut bad = Vec::new();
    for field in fields {
        match std::str::from_utf8(field) {
            Ok(text) => match Name::parse(text) {
                Ok(name) => names.push(name.to_lowercase()),
                Err(source) => bad.push(Malformed::BadName { text: text.to_string(), source }),
            },
            Err(_) => bad.push(Malformed::NotUtf8),
        }
    }
    if names.is_empty() && bad.is_empty() {
        return Parsed::Skipped(Malformed::NoNames(addr));
    }
    Parsed::Entry(Line { addr, names }, bad)
}

/// An address field: IPv4, or IPv6 with any `%scope` dropped; IPv4-mapped IPv6 becomes IPv4.
pub fn parse_addr(text: &str) -> Option<IpAddr> {
    let text = text.split_once('%').map_or(text, |(addr, _scope)| addr);
    let addr: IpAddr = text.parse().ok()?;
    Some(addr.to_canonical())
}

/// The entries of a whole file, in order, calling `skipped(line_number, why)` for what is left
/// out (line numbers count from 1).
pub fn parse(text: &[u8], mut skipped: impl FnMut(usize, &Malformed)) -> Vec<Line> {
    let mut lines = Vec::new();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        match parse_line(line) {
            Parsed::Blank => {}
            Parsed::Entry(line, bad) => {
                for why in &bad {
                    skipped(i + 1, why);
                }
                if !line.names.is_empty() {
                    lines.push(line);
                }
            }
            Parsed::Skipped(why) => skipped(i + 1, &why),
        }
    }
    lines
}

/// Collects skip reports for one log line each, up to a limit, and counts the rest: a 100 000
/// line block list with a systematic mistake must not flood the log.
pub struct SkipLog<'a> {
    path: &'a str,
    logged: usize,
    more: usize,
}

impl<'a> SkipLog<'a> {
    const MAX_LINES: usize = 10;

    pub fn new(path: &'a str) -> SkipLog<'a> {
        SkipLog { path, logged: 0, more: 0 }
    }

    pub fn skipped(&mut self, line: usize, why: &Malformed) {
        if self.logged < Self::MAX_LINES {
            self.logged += 1;
            tracing::warn!(target: "plugin/hosts", "{}:{line}: skipped: {why}", self.path);
        } else {
            self.more += 1;
        }
    }
}

impl Drop for SkipLog<'_> {
    fn drop(&mut self) {
        if self.more > 0 {
            tracing::warn!(target: "plugin/hosts", "{}: skipped {} more malformed lines or names", self.path, self.more);
        }
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.addr)?;
        for n in &self.names {
            write!(f, " {n}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each case: a line, then the entry it makes (`addr name...` with names fully qualified) or
    /// the reason it is skipped, and the names left out of an entry.
    #[test]
    fn lines() {
        let cases: &[(&str, &str, &[&str])] = &[
            ("", "blank", &[]),
            ("   \t ", "blank", &[]),
            ("# a comment", "blank", &[]),
            ("  # indented comment", "blank", &[]),
            ("127.0.0.1 localhost", "127.0.0.1 localhost.", &[]),
            ("127.0.0.1\tlocalhost\tlocalhost.localdomain", "127.0.0.1 localhost. localhost.localdomain.", &[]),
            ("10.0.0.1 Web.Example.ORG. web # the web server", "10.0.0.1 web.example.org. web.", &[]),
            ("10.0.0.1 a#b", "10.0.0.1 a.", &[]),
            ("\r10.0.0.1 a\r", "10.0.0.1 a.", &[]),
            ("::1 localhost ip6-localhost ip6-loopback", "::1 localhost. ip6-localhost. ip6-loopback.", &[]),
            ("fdfc:a744:27b5:3b0e::1 example.com", "fdfc:a744:27b5:3b0e::1 example.com.", &[]),
            // Scoped IPv6: the scope goes.
            ("fe80::1%eth0 router", "fe80::1 router.", &[]),
            // IPv4-mapped IPv6 is IPv4; IPv4-compatible (deprecated) IPv6 stays IPv6.
            ("::FFFF:10.0.0.2 example.com", "10.0.0.2 example.com.", &[]),
            ("::10.0.0.2 compat", "::a00:2 compat.", &[]),
            // A bad name is left out, the rest of the line stays.
            ("10.0.0.3 good a..b", "10.0.0.3 good.", &["'a..b' is not a domain name"]),
            ("10.0.0.1", "skip: no names after the address 10.0.0.1", &[]),
            ("10.0.0.1 # only a comment", "skip: no names after the address 10.0.0.1", &[]),
            ("localhost 127.0.0.1", "skip: 'localhost' is not an IP address", &[]),
            ("10.0.0.300 x", "skip: '10.0.0.300' is not an IP address", &[]),
            // Go and Rust both refuse leading zeros (octal-looking octets).
            ("010.0.0.1 x", "skip: '010.0.0.1' is not an IP address", &[]),
            ("[::1] x", "skip: '[::1]' is not an IP address", &[]),
        ];
        for (line, want, want_bad) in cases {
            let (got, bad) = match parse_line(line.as_bytes()) {
                Parsed::Blank => ("blank".to_string(), vec![]),
                Parsed::Entry(l, bad) => (l.to_string(), bad),
                Parsed::Skipped(why) => (format!("skip: {why}"), vec![]),
            };
            assert_eq!(got, *want, "line {line:?}");
            let bad: Vec<String> = bad.iter().map(|b| b.to_string()).collect();
            assert_eq!(bad, *want_bad, "line {line:?}");
        }
    }

    #[test]
    fn a_line_of_only_bad_names_is_skipped_name_by_name() {
        let Parsed::Entry(line, bad) = parse_line(b"10.0.0.1 a..b \xff") else { panic!("an entry") };
        assert!(line.names.is_empty());
        assert_eq!(bad.len(), 2);
        assert_eq!(bad[1], Malformed::NotUtf8);
    }

    #[test]
    fn a_file_keeps_its_good_lines_and_reports_the_rest_by_line_number() {
        let text =
            b"# hosts\n127.0.0.1 localhost\nnonsense here\n\n10.0.0.1\n10.0.0.2 b a..b\n\xff\xfe x\n::1 localhost";
        let mut skipped = Vec::new();
        let lines = parse(text, |n, why| skipped.push(format!("{n}: {why}")));
        let lines: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        assert_eq!(lines, ["127.0.0.1 localhost.", "10.0.0.2 b.", "::1 localhost."]);
        assert_eq!(
            skipped,
            [
                "3: 'nonsense' is not an IP address",
                "5: no names after the address 10.0.0.1",
                "6: 'a..b' is not a domain name",
                "7: a field that is not UTF-8",
            ]
        );
    }
}
