//! Log formats: parsed once into parts, rendered per query into a reused buffer.
//!
//! A format is text with placeholders (CoreDNS's replacer):
//!
//! ~~~ txt
//! {type} {name} {class} {proto} {size} {remote} {port} {local}     the query
//! {>id} {>opcode} {>do} {>bufsize}                                 its header and EDNS
//! {rcode} {rsize} {duration} {>rflags}                             the reply
//! {/LABEL}                                                         metadata: always "-" here
//! ~~~
//!
//! Parsing follows CoreDNS to the letter, so odd formats print the same: each `}` closes the
//! nearest `{` before it; a known placeholder becomes a field, `{/...}` a metadata label, and
//! anything else (`{when}`, a stray `}`) stays text. Placeholders are case-sensitive.

use std::io::Write;
use std::time::Duration;

use crate::dns::decode::flags;
use crate::dns::{Rcode, Request, Response};

/// `{common}`: CoreDNS's Common Log Format.
pub const COMMON: &str = r#"{remote}:{port} - {>id} "{type} {class} {name} {proto} {size} {>do} {>bufsize}" {rcode} {>rflags} {rsize} {duration}"#;
/// `{combined}`: the common format followed by the opcode.
pub const COMBINED: &str = concat!(
    r#"{remote}:{port} - {>id} "{type} {class} {name} {proto} {size} {>do} {>bufsize}" {rcode} {>rflags} {rsize} {duration}"#,
    r#" "{>opcode}""#
);

/// What a placeholder stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// Query type mnemonic (`AAAA`, `TYPE65534`).
    Type,
    /// Query name, lowercase, fully qualified.
    Name,
    /// Query class (`IN`).
    Class,
    /// `udp` or `tcp`.
    Proto,
    /// Query size in bytes.
    Size,
    /// Client address, IPv6 in brackets.
    Remote,
    /// Client port.
    Port,
    /// Server address the query came in on, IPv6 in brackets.
    Local,
    /// Query ID.
    Id,
    /// Query opcode as a number.
    Opcode,
    /// The DO bit: `true` or `false`.
    Do,
    /// The client's UDP size: the EDNS size (at least 512), 512 without EDNS, 65535 over TCP.
    Bufsize,
    /// Reply rcode name (`NOERROR`), or its number when it has none.
    Rcode,
    /// Reply size without name compression.
    Rsize,
    /// Seconds since the query was received, as Go prints a float (`0.000153s`).
    Duration,
    /// Reply header flags: `qr,aa,tc,rd,ra,z,ad,cd`, those set.
    Rflags,
}

impl Field {
    fn from_placeholder(p: &str) -> Option<Field> {
        Some(match p {
            "{type}" => Field::Type,
            "{name}" => Field::Name,
            "{class}" => Field::Class,
            "{proto}" => Field::Proto,
            "{size}" => Field::Size,
            "{remote}" => Field::Remote,
            "{port}" => Field::Port,
            "{local}" => Field::Local,
            "{>id}" => Field::Id,
            "{>opcode}" => Field::Opcode,
            "{>do}" => Field::Do,
            "{>bufsize}" => Field::Bufsize,
            "{rcode}" => Field::Rcode,
            "{rsize}" => Field::Rsize,
            "{duration}" => Field::Duration,
            "{>rflags}" => Field::Rflags,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(Box<str>),
    Field(Field),
    /// A `{/LABEL}` metadata placeholder. No plugin here sets metadata, so it prints CoreDNS's
    /// value for an unset label, `-`.
    Metadata(#[allow(dead_code)] Box<str>),
}

/// A parsed format. See the [module documentation](self).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Format {
    parts: Box<[Part]>,
}

/// The reply the log describes: the chain's answer, or, when the chain failed, the empty reply
/// the server sends with the error's rcode.
#[derive(Clone, Copy, Debug)]
pub enum Reply<'a> {
    Answer(&'a Response),
    Failed(Rcode),
}

impl Reply<'_> {
    pub fn rcode(&self) -> Rcode {
        match self {
            Reply::Answer(r) => r.rcode,
            Reply::Failed(rcode) => *rcode,
        }
    }

    /// Header flags as the server will encode them (TC only when the plugin set it: the log
    /// runs before encoding, as CoreDNS's recorder does).
    pub fn header_flags(&self, req: &Request) -> u16 {
        let mut f = flags::QR | (req.header_flags() & (flags::RD | flags::CD));
        if let Reply::Answer(r) = self {
            for (set, flag) in [
                (r.authoritative, flags::AA),
                (r.truncated, flags::TC),
                (r.recursion_available, flags::RA),
                (r.authentic_data, flags::AD),
            ] {
                if set {
                    f |= flag;
                }
            }
        }
        f
    }

    /// The reply's size without name compression, OPT record included.
    pub fn len(&self, req: &Request) -> usize {
        match self {
            Reply::Answer(r) => r.uncompressed_len(req),
            Reply::Failed(rcode) => Response::with_rcode("", *rcode).uncompressed_len(req),
        }
    }
}

/// Header flags in the order CoreDNS prints them, with the Z bit (RFC 1035 4.1.1) between RA
/// and AD.
const FLAG_NAMES: [(u16, &str); 8] = [
    (flags::QR, "qr"),
    (flags::AA, "aa"),
    (flags::TC, "tc"),
    (flags::RD, "rd"),
    (flags::RA, "ra"),
    (0x0040, "z"),
    (flags::AD, "ad"),
    (flags::CD, "cd"),
];

impl Format {
    /// Parses `text`; never fails (unknown placeholders are text).
    pub fn parse(text: &str) -> Format {
        let mut parts: Vec<Part> = Vec::new();
        let push_text = |parts: &mut Vec<Part>, t: &str| {
            if t.is_empty() {
                return;
            }
            match parts.last_mut() {
                Some(Part::Text(prev)) => *prev = format!("{prev}{t}").into(),
                _ => parts.push(Part::Text(t.into())),
            }
        };
        let mut rest = text;
        while let Some(close) = rest.find('}') {
            match rest[..close].rfind('{') {
                // "a } {b}": the text up to the stray brace stays text.
                None => push_text(&mut parts, &rest[..=close]),
                Some(open) => {
                    let placeholder = &rest[open..=close];
                    if let Some(field) = Field::from_placeholder(placeholder) {
                        push_text(&mut parts, &rest[..open]);
                        parts.push(Part::Field(field));
                    } else if let Some(label) = placeholder.strip_prefix("{/") {
                        push_text(&mut parts, &rest[..open]);
                        parts.push(Part::Metadata(label[..label.len() - 1].into()));
                    } else {
                        push_text(&mut parts, &rest[..=close]);
                    }
                }
            }
            rest = &rest[close + 1..];
        }
        push_text(&mut parts, rest);
        Format { parts: parts.into() }
    }

    /// Appends the line for `req` and `reply` to `out`, `elapsed` after the query arrived.
    pub fn render(&self, out: &mut Vec<u8>, req: &Request, reply: &Reply<'_>, elapsed: Duration) {
        for part in self.parts.iter() {
            match part {
                Part::Text(t) => out.extend_from_slice(t.as_bytes()),
                Part::Metadata(_) => out.push(b'-'),
                Part::Field(f) => field(out, *f, req, reply, elapsed),
            }
        }
    }
}

// Writing to a Vec cannot fail: the `write!` results are ignored.
fn field(out: &mut Vec<u8>, f: Field, req: &Request, reply: &Reply<'_>, elapsed: Duration) {
    match f {
        Field::Type => mnemonic(out, req.qtype().mnemonic(), req.qtype()),
        Field::Name => name_lowercase(out, req.qname()),
        Field::Class => mnemonic(out, req.qclass().mnemonic(), req.qclass()),
        Field::Proto => out.extend_from_slice(req.proto().as_str().as_bytes()),
        Field::Size => decimal(out, req.len() as u64),
        Field::Remote => ip(out, req.client().ip()),
        Field::Port => decimal(out, req.client().port() as u64),
        Field::Local => ip(out, req.local().ip()),
        Field::Id => decimal(out, req.id() as u64),
        Field::Opcode => decimal(out, ((req.header_flags() >> 11) & 0xf) as u64),
        Field::Do => out.extend_from_slice(if req.dnssec_ok() { b"true" } else { b"false" }),
        Field::Bufsize => decimal(out, req.max_response_size() as u64),
        Field::Rcode => mnemonic(out, reply.rcode().name(), reply.rcode().0),
        Field::Rsize => decimal(out, reply.len(req) as u64),
        // Go's strconv.FormatFloat(secs, 'f', -1, 64): the shortest digits that read back the
        // same, never an exponent. Rust's Display for f64 prints exactly that.
        Field::Duration => {
            let _ = write!(out, "{}s", elapsed.as_secs_f64());
        }
        Field::Rflags => {
            let f = reply.header_flags(req);
            let mut first = true;
            for (bit, name) in FLAG_NAMES {
                if f & bit != 0 {
                    if !first {
                        out.push(b',');
                    }
                    out.extend_from_slice(name.as_bytes());
                    first = false;
                }
            }
        }
    }
}

/// The mnemonic when there is one, else `value` as it prints.
fn mnemonic(out: &mut Vec<u8>, mnemonic: Option<&str>, value: impl std::fmt::Display) {
    match mnemonic {
        Some(m) => out.extend_from_slice(m.as_bytes()),
        None => {
            let _ = write!(out, "{value}");
        }
    }
}

/// The name in presentation format, lowercase. Labels of letters, digits, `-` and `_` (nearly
/// all) are copied; anything else goes through [`Name`]'s `Display`, which knows the escapes.
fn name_lowercase(out: &mut Vec<u8>, name: &crate::dns::Name) {
    let plain = |b: &u8| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_';
    if !name.labels().all(|l| l.iter().all(plain)) {
        let start = out.len();
        let _ = write!(out, "{name}");
        out[start..].make_ascii_lowercase();
        return;
    }
    if name.is_root() {
        out.push(b'.');
    }
    for label in name.labels() {
        out.extend(label.iter().map(u8::to_ascii_lowercase));
        out.push(b'.');
    }
}

fn ip(out: &mut Vec<u8>, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                decimal(out, octet as u64);
            }
        }
        std::net::IpAddr::V6(v6) => {
            let _ = write!(out, "[{v6}]");
        }
    }
}

fn decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::decode::Query;
    use crate::dns::{Edns, Name, Proto, RData, Record, RecordType};
    use std::net::SocketAddr;

    fn render(format: &str, req: &Request, reply: &Reply<'_>) -> String {
        let mut out = Vec::new();
        Format::parse(format).render(&mut out, req, reply, Duration::from_nanos(153_000));
        String::from_utf8(out).unwrap()
    }

    /// A query as `dig` sends it from 127.0.0.1:40212, with EDNS 1232 unless `edns` is None.
    fn req(name: &str, qtype: RecordType, edns: Option<Edns>, client: &str, proto: Proto) -> Request {
        let synthetic = Request::synthetic(name, qtype);
        let mut query: Query = synthetic.query().clone();
        query.id = 5421;
        query.len += if edns.is_some() { 11 } else { 0 };
        query.edns = edns;
        let client: SocketAddr = client.parse().unwrap();
        let local: SocketAddr = if client.is_ipv4() { "127.0.0.1:53" } else { "[::1]:53" }.parse().unwrap();
        Request::new(query, client, local, proto, synthetic.received())
    }

    fn edns(udp_size: u16, dnssec_ok: bool) -> Option<Edns> {
        Some(Edns { dnssec_ok, ..Edns::new(udp_size) })
    }

    fn a(name: &str, ip: &str) -> Record {
        Record::new(Name::parse(name).unwrap(), 3600, RData::A(ip.parse().unwrap()))
    }

    #[test]
    fn common_format_prints_like_coredns() {
        let r = req("Example.org.", RecordType::A, None, "127.0.0.1:40212", Proto::Udp);
        let mut resp = Response::authoritative("whoami");
        resp.answer.push(a("example.org.", "10.0.0.1"));
        assert_eq!(
            render(COMMON, &r, &Reply::Answer(&resp)),
            r#"127.0.0.1:40212 - 5421 "A IN example.org. udp 29 false 512" NOERROR qr,aa,rd 56 0.000153s"#
        );
        let r = req("example.org.", RecordType::AAAA, edns(4096, true), "[::1]:50759", Proto::Tcp);
        let mut resp = Response::new("forward");
        resp.recursion_available = true;
        resp.authentic_data = true;
        assert_eq!(
            render(COMBINED, &r, &Reply::Answer(&resp)),
            r#"[::1]:50759 - 5421 "AAAA IN example.org. tcp 40 true 65535" NOERROR qr,rd,ra,ad 40 0.000153s "0""#
        );
    }

    #[test]
    fn failures_print_the_reply_the_server_sends() {
        let r = req("example.org.", RecordType::A, edns(1232, false), "127.0.0.1:40212", Proto::Udp);
        assert_eq!(
            render(COMMON, &r, &Reply::Failed(Rcode::SERVFAIL)),
            r#"127.0.0.1:40212 - 5421 "A IN example.org. udp 40 false 1232" SERVFAIL qr,rd 40 0.000153s"#
        );
        assert_eq!(render("{rcode}", &r, &Reply::Failed(Rcode(3841))), "3841");
        assert_eq!(render("{rcode}", &r, &Reply::Failed(Rcode::BADVERS)), "BADSIG");
    }

    #[test]
    fn every_placeholder() {
        let r = req("a.example.org.", RecordType::MX, edns(100, true), "10.1.2.3:1234", Proto::Udp);
        let resp = Response::with_rcode("x", Rcode::NXDOMAIN);
        let all = "{type}|{name}|{class}|{proto}|{size}|{remote}|{port}|{local}|{>id}|{>opcode}|{>do}|{>bufsize}|\
                   {rcode}|{rsize}|{duration}|{>rflags}|{/kubernetes/pod}";
        assert_eq!(
            render(all, &r, &Reply::Answer(&resp)),
            "MX|a.example.org.|IN|udp|42|10.1.2.3|1234|127.0.0.1|5421|0|true|512|NXDOMAIN|42|0.000153s|qr,rd|-"
        );
    }

    /// CoreDNS's replacer quirks: unknown placeholders and stray braces are text, a `}` closes
    /// the nearest `{`, placeholders are case-sensitive.
    #[test]
    fn parsing_follows_coredns() {
        let r = req("example.org.", RecordType::A, None, "127.0.0.1:40212", Proto::Udp);
        let resp = Response::new("x");
        let reply = Reply::Answer(&resp);
        for (format, want) in [
            ("{proto} Request: {name} {type} {>id}", "udp Request: example.org. A 5421"),
            ("{when} {type}", "{when} A"),
            ("a } {type}", "a } A"),
            ("{ {type} }", "{ A }"),
            ("{TYPE} {>ID}", "{TYPE} {>ID}"),
            ("{type", "{type"),
            ("{/}", "-"),
            ("{name}", "example.org."),
            ("", ""),
        ] {
            assert_eq!(render(format, &r, &reply), want, "{format}");
        }
        assert_eq!(
            Format::parse("x {when} y {type}{name}").parts[..],
            [Part::Text("x {when} y ".into()), Part::Field(Field::Type), Part::Field(Field::Name)]
        );
    }

    #[test]
    fn names_are_lowercase_and_escaped() {
        let resp = Response::new("x");
        for (name, want) in [
            (".", "."),
            ("WWW.Example.ORG.", "www.example.org."),
            ("_dns._udp.Example.org.", "_dns._udp.example.org."),
            ("A\\.B.example.org.", "a\\.b.example.org."),
            ("\\000Q.example.org.", "\\000q.example.org."),
            ("*.example.org.", "*.example.org."),
        ] {
            let r = req(name, RecordType::A, None, "127.0.0.1:1", Proto::Udp);
            assert_eq!(render("{name}", &r, &Reply::Answer(&resp)), want, "{name}");
        }
    }

    #[test]
    fn durations_print_as_go_floats() {
        let r = req("example.org.", RecordType::A, None, "127.0.0.1:1", Proto::Udp);
        let resp = Response::new("x");
        for (d, want) in [
            (Duration::from_nanos(153_000), "0.000153s"),
            (Duration::from_nanos(37_990_251), "0.037990251s"),
            (Duration::from_nanos(150), "0.00000015s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::ZERO, "0s"),
        ] {
            let mut out = Vec::new();
            Format::parse("{duration}").render(&mut out, &r, &Reply::Answer(&resp), d);
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }
}
