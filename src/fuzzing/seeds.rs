//! Seed corpora. Corefiles are extracted from the source tree each time they are asked for (the
//! ```` ```corefile ```` blocks of every README and the string literals of the tests), so they
//! follow the code and nothing derived is committed; queries and responses are built here.

use std::path::{Path, PathBuf};

use super::message::{WireMessage, pointer, wire_name};
use crate::dns::decode::flags::{AA, AD, CD, QR, RA, RD, TC};
use crate::dns::{Class, RecordType, Section, build_query};

/// One seed input and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seed {
    /// `src/plugins/bind/README.md:41`, `tests/whoami.rs:9`, `query/edns-do` ...
    pub name: String,
    pub data: Vec<u8>,
}

impl Seed {
    fn new(name: impl Into<String>, data: impl Into<Vec<u8>>) -> Seed {
        Seed { name: name.into(), data: data.into() }
    }
}

/// Tokens a Corefile mutation may insert (also `fuzz/corefile.dict` for libFuzzer).
pub const COREFILE_DICTIONARY: &[&[u8]] = &[
    b"{",
    b"}",
    b" { ",
    b"\n}\n",
    b"\n",
    b" ",
    b"\"",
    b"\\\"",
    b"#",
    b",",
    b":",
    b"://",
    b"/",
    b"(snip)",
    b"import ",
    b"import snip\n",
    b"import common\n",
    b"import conf.d/*\n",
    b"import loop\n",
    b"{$ZONE}",
    b"{$OPEN}",
    b"{$CLOSE}",
    b"{%PORT%}",
    b"{$NESTED}",
    b"dns://",
    b"tls://",
    b"grpc://",
    b"https://",
    b".:53",
    b":1053",
    b"example.org",
    b"10.0.0.0/8",
    b"172.16.0.0/12",
    b"fd00::/7",
    b"::/0",
    b"0.0.0.0/0",
    b"in-addr.arpa",
    b"whoami",
    b"bind",
    b"except",
    b"127.0.0.1",
    b"::1",
    b"lo",
    b"30s",
    b"1m30s",
    b"-1s",
    b"\xc2\xa0",
    b"\xef\xbb\xbf",
    b"\r\n",
];

/// Byte strings a query mutation may insert: pointers, an OPT record, options, labels.
pub const QUERY_DICTIONARY: &[&[u8]] = &[
    b"\xc0\x0c",
    b"\xc0\x00",
    b"\xc0\xff",
    b"\x00\x00\x29\x10\x00\x00\x00\x80\x00\x00\x00",
    b"\x00\x0a\x00\x08\x01\x02\x03\x04\x05\x06\x07\x08",
    b"\x00\x0c\x00\x00",
    b"\x3f",
    b"\x40",
    b"\x80",
    b"\x00\x01\x00\x01",
    b"\x00\x01\x00\x03",
    b"\x00\xff\x00\x01",
    b"\x07example\x03org\x00",
];

/// Byte strings a message mutation may insert: pointers to the usual question name and its
/// suffixes, an OPT record, options, record types whose RDATA holds names, a record's fixed part.
pub const MESSAGE_DICTIONARY: &[&[u8]] = &[
    b"\xc0\x0c",
    b"\xc0\x10",
    b"\xc0\x18",
    b"\xc0\x00",
    b"\xff\xff",
    b"\x00\x00\x29\x04\xd0\x01\x00\x80\x00\x00\x00",
    b"\x00\x0a\x00\x08\x01\x02\x03\x04\x05\x06\x07\x08",
    b"\x00\x0f\x00\x02\x00\x03",
    b"\x00\x05\x00\x01",
    b"\x00\x06\x00\x01",
    b"\x00\x0f\x00\x01",
    b"\x00\x11\x00\x01",
    b"\x00\x12\x00\x01",
    b"\x00\x18\x00\x01",
    b"\x00\x23\x00\x01",
    b"\x00\x2e\x00\x01",
    b"\x01\x01\x00\x01",
    b"\x00\x00\x00\x3c",
    b"\x00\x04\xc0\x00\x02\x01",
    b"\x00\x00",
    b"\x3f",
    b"\x07example\x03org\x00",
];

/// Responses as upstream servers send them, and the malformed shapes each
/// [`MessageError`](crate::dns::MessageError) names. The question is `www.example.org` at
/// offset 12, so `example.org` is at 16 and `org` at 24.
pub fn message_seeds() -> Vec<Seed> {
    let mut s = Vec::new();
    let mut add = |name: &str, m: &WireMessage| s.push(Seed::new(format!("message/{name}"), m.finish()));
    let qname = wire_name("www.example.org");
    let response = |header_flags: u16, qtype: RecordType| {
        let mut m = WireMessage::new(0x4242, QR | RD | header_flags);
        m.question(&qname, qtype, Class::IN);
        m
    };
    let cat = |parts: &[&[u8]]| parts.concat();
    let (www, example, org) = (pointer(12), pointer(16), pointer(24));
    let ns = cat(&[b"\x02ns", &example]);
    let rrsig = |covered: u16| {
        let mut r = covered.to_be_bytes().to_vec();
        r.extend_from_slice(&[13, 2, 0, 0, 1, 44, 0x68, 0, 0, 0, 0x67, 0, 0, 0, 0x30, 0x39]);
        r.extend_from_slice(&wire_name("example.org"));
        r.extend_from_slice(&[0x5a; 64]);
        r
    };
    const IN: Class = Class::IN;
    use Section::{Additional as AR, Answer as AN, Authority as NS};

    let mut m = response(RA, RecordType::A);
    m.record(AN, &www, RecordType::CNAME, IN, 300, &cat(&[b"\x03web", &example]));
    m.record(AN, &pointer(45), RecordType::A, IN, 60, &[192, 0, 2, 1]);
    m.record(AN, &pointer(45), RecordType::A, IN, 60, &[192, 0, 2, 2]);
    m.opt(1232, 0, false, b"\x00\x0a\x00\x18clientcksrvcookie0123456\x00\x0f\x00\x02\x00\x03");
    add("cname-a-a-edns", &m);

    let mut m = response(RA | AD, RecordType::AAAA);
    m.record(
        NS,
        &example,
        RecordType::SOA,
        IN,
        300,
        &cat(&[
            &ns,
            b"\x0ahostmaster",
            &example,
            &[0, 0, 0, 1],
            &[0, 0, 0x1c, 0x20],
            &[0, 0, 3, 0x84],
            &[0, 0x12, 0x75, 0],
            &[0, 0, 1, 0x2c],
        ]),
    );
    m.record(NS, &example, RecordType::NSEC, IN, 300, &cat(&[&qname, b"\x00\x06\x40\x01\x00\x00\x00\x03"]));
    m.record(NS, &example, RecordType::RRSIG, IN, 300, &rrsig(47));
    m.opt(1232, 0, true, b"");
    add("nodata-soa-nsec-rrsig", &m);
    let mut m = response(RA | 3, RecordType::A);
    m.record(NS, &example, RecordType::SOA, IN, 300, &cat(&[&ns, b"\x0ahostmaster", &example, &[0; 20]]));
    m.opt(4096, 0, false, b"");
    add("nxdomain-soa", &m);

    let mut m = response(RA | AD | CD, RecordType::A);
    m.record(AN, &www, RecordType::A, IN, 300, &[192, 0, 2, 7]);
    m.record(AN, &www, RecordType::RRSIG, IN, 300, &rrsig(1));
    m.record(AR, &example, RecordType::DNSKEY, IN, 3600, &cat(&[&[1, 1, 3, 13], &[0xab; 64]]));
    m.record(AR, &example, RecordType::DS, IN, 3600, &cat(&[&[0x30, 0x39, 13, 2], &[0xcd; 32]]));
    m.record(
        AR,
        &example,
        RecordType::NSEC3,
        IN,
        300,
        &cat(&[&[1, 0, 0, 10, 2, 0xaa, 0xbb, 20], &[0x11; 20], b"\x00\x01\x62"]),
    );
    m.opt(1232, 0, true, b"");
    add("dnssec-signed", &m);

    let mut m = response(AA, RecordType::MX);
    m.record(AN, &example, RecordType::MX, IN, 3600, &cat(&[&[0, 10], b"\x04mail", &example]));
    m.record(
        AN,
        &cat(&[b"\x04_sip\x04_udp", &example]),
        RecordType::SRV,
        IN,
        60,
        &cat(&[&[0, 0, 0, 5, 0x13, 0xc4], &www]),
    );
    m.record(AN, &wire_name("7.2.0.192.in-addr.arpa"), RecordType::PTR, IN, 60, &www);
    m.record(NS, &example, RecordType::NS, IN, 3600, &ns);
    m.record(AR, &www, RecordType::AAAA, IN, 3600, &[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    add("mx-srv-ptr-ns-glue", &m);

    let mut m = response(0, RecordType::TXT);
    m.record(AN, &www, RecordType::TXT, IN, 60, b"\x0bv=spf1 -all\x00\x03two\x00");
    m.record(AN, &www, RecordType::TXT, IN, 60, b"");
    add("txt", &m);

    for (t, rdata) in [
        (3u16, www.to_vec()),
        (4, www.to_vec()),
        (7, ns.clone()),
        (8, ns.clone()),
        (9, ns.clone()),
        (14, cat(&[&www, &ns])),
        (17, cat(&[&www, &ns])),
        (18, cat(&[&[0, 1], &ns])),
        (21, cat(&[&[0, 5], &ns])),
        (26, cat(&[&[0, 5], &www, &org])),
        (30, cat(&[&ns, b"\x40\x01"])),
        (35, cat(&[b"\x00\x64\x00\x0a\x01S\x07SIP+D2U\x00\x04_sip\x04_udp", &example])),
    ] {
        let mut m = response(0, RecordType(t));
        m.record(AN, &www, RecordType(t), IN, 60, &rdata);
        add(&format!("compressed-{}", RecordType(t)), &m);
    }
    let mut m = response(0, RecordType::A);
    m.record(AR, &www, RecordType::SIG, IN, 0, &cat(&[&[0; 18], &example, b"sig"]));
    add("compressed-SIG", &m);

    let mut m = response(0, RecordType::ANY);
    m.record(AN, &www, RecordType::CAA, IN, 60, b"\x00\x05issueca.example.net");
    m.record(
        AN,
        &www,
        RecordType::SVCB,
        IN,
        60,
        &cat(&[&[0, 1], &wire_name("svc.example.net"), &[0, 1, 0, 3, 2, b'h', b'2']]),
    );
    m.record(AN, &www, RecordType::HTTPS, IN, 60, b"\x00\x01\x00\x00\x03\x00\x02\x01\xbb");
    m.record(AN, &www, RecordType(65534), IN, 60, &[0xc0, 0x0c, 1, 2, 3]);
    m.record(AN, &www, RecordType(65280), IN, 60, b"");
    m.record(AN, &www, RecordType::A, Class::CH, 60, &cat(&[&org, &[0o100, 0]]));
    add("opaque-types", &m);

    let mut m = response(7, RecordType::A);
    m.opt(1232, 1, false, b"\x00\x0a\x00\x18clientcksrvcookie0123456");
    add("badcookie", &m);
    let mut m = WireMessage::new(1, QR | AA | TC | RD | RA | AD | CD | 0x0040 | 5);
    m.question(&wire_name("version.bind"), RecordType::TXT, Class::CH);
    m.record(AN, &www, RecordType::TXT, Class::CH, 0, b"\x0aclusterdns");
    add("every-flag-chaos", &m);
    add("formerr-no-question", WireMessage::new(1, QR | 1).raw(b""));

    let mut m = response(0, RecordType::A);
    m.record(AN, &www, RecordType::A, IN, 0, &[1, 2, 3, 4]).raw(b"trailing bytes");
    add("trailing-bytes", &m);
    // Malformed: each a different error.
    add("header-only-truncated", WireMessage::new(1, QR).count(AN, 1));
    let mut m = WireMessage::new(1, QR);
    m.question(&[1, b'a', 0xc0, 12], RecordType::A, IN);
    add("pointer-loop", &m);
    let mut m = response(0, RecordType::A);
    m.record(AN, &pointer(0x3fff), RecordType::A, IN, 0, &[1, 2, 3, 4]);
    add("pointer-forward", &m);
    let mut m = response(0, RecordType::A);
    m.raw(&cat(&[&www, &[0, 1, 0, 1, 0, 0, 0, 0, 0, 9, 1, 2, 3, 4]])).count(AN, 1);
    add("rdlength-overrun", &m);
    let mut m = response(0, RecordType::A);
    m.record(AN, &www, RecordType::A, IN, 0, &[1, 2, 3, 4, 5]);
    add("a-5-bytes", &m);
    let mut m = response(0, RecordType::TXT);
    m.record(AN, &www, RecordType::TXT, IN, 0, b"\x05four");
    add("txt-not-tiling", &m);
    let mut m = response(0, RecordType::A);
    m.opt(1232, 0, false, b"").opt(512, 0, false, b"");
    add("two-opts", &m);
    let mut m = response(0, RecordType::A);
    m.record(AR, &www, RecordType::OPT, Class(1232), 0, b"");
    add("opt-not-root", &m);
    let mut m = response(0, RecordType::A);
    m.record(AN, &[0], RecordType::OPT, Class(1232), 0, b"");
    add("opt-in-answer", &m);
    let mut m = response(0, RecordType::A);
    m.opt(1232, 0, false, b"\x00\x0a\x00\x03\x01");
    add("options-not-tiling", &m);
    let mut m = response(0, RecordType::MX);
    m.record(AN, &www, RecordType::MX, IN, 0, &cat(&[&[0, 1], &pointer(0x3000)]));
    add("mx-pointer-past-end", &m);
    let mut m = response(0, RecordType::MX);
    m.record(AN, &www, RecordType::MX, IN, 0, b"\x00\x01\x04mail");
    m.raw(&[0]);
    add("mx-name-past-rdlength", &m);
    let mut m = response(0, RecordType::A);
    m.count(AN, u16::MAX).count(NS, u16::MAX).count(AR, u16::MAX);
    add("huge-counts", &m);
    s
}

/// Every Corefile seed: README examples, `Corefile*` files at the root (`Corefile.example`),
/// the tests' string literals, and the built-in ones.
pub fn corefile_seeds(root: &Path) -> Vec<Seed> {
    let mut seeds = readme_corefiles(root);
    if let Ok(entries) = std::fs::read_dir(root) {
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("Corefile")))
            .collect();
        files.sort();
        for f in files {
            if let Ok(data) = std::fs::read(&f) {
                seeds.push(Seed::new(f.strip_prefix(root).unwrap_or(&f).display().to_string(), data));
            }
        }
    }
    seeds.extend(test_literals(root));
    seeds.extend(BUILTIN_COREFILES.iter().enumerate().map(|(i, c)| Seed::new(format!("builtin/{i}"), *c)));
    seeds
}

/// Corefiles that reach the corners the READMEs do not: snippets, imports, environment, keys.
const BUILTIN_COREFILES: &[&str] = &[
    "(snip) {\n    whoami\n}\n. {\n    import snip\n}\n",
    "import conf.d/*\n.:53 {\n    import common\n}\n",
    "{$ZONE}:{$PORT} {%ZONE%} {\n    whoami\n}\n",
    "dns://.:1053, 10.0.0.0/8, fd00::/7,\n  example.org:1053 {\n    bind 127.0.0.1 ::1 lo {\n        except ::1\n    }\n    whoami\n}\n",
    "a.org {\n    bind 127.0.0.1\n    whoami\n}\na.org {\n    bind 127.0.0.2\n    whoami\n}\n",
    "example.org\nwhoami\n",
    ". { whoami }\n",
    "\u{feff}. {\r\n    whoami # comment\r\n}\r\n",
    ". {\n    log \"quoted \\\" arg\" {\n        class denial\n    }\n}\n",
];

/// The `corefile` blocks of `src/plugins/*/README.md` and `README.md`, named `path:line`.
pub fn readme_corefiles(root: &Path) -> Vec<Seed> {
    let mut readmes: Vec<PathBuf> = vec![root.join("README.md")];
    if let Ok(dirs) = std::fs::read_dir(root.join("src/plugins")) {
        readmes.extend(dirs.filter_map(Result::ok).map(|d| d.path().join("README.md")));
    }
    readmes.sort();
    let mut out = Vec::new();
    for path in readmes {
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let rel = path.strip_prefix(root).unwrap_or(&path).display().to_string();
        for (line, block) in corefile_blocks(&text) {
            out.push(Seed::new(format!("{rel}:{line}"), block));
        }
    }
    out
}

/// The fenced blocks (```` ``` ```` or `~~~`) of a Markdown text whose info string is
/// `corefile`, with the line of the opening fence (from 1).
pub fn corefile_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut open: Option<(usize, String, String)> = None;
    for (i, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        match &mut open {
            None => {
                let fence: String = trimmed.chars().take_while(|&c| c == '`' || c == '~').collect();
                let same = fence.chars().all(|c| fence.starts_with(c));
                if fence.len() >= 3 && same && trimmed[fence.len()..].trim() == "corefile" {
                    open = Some((i + 1, fence, String::new()));
                }
            }
            Some((start, fence, body)) => {
                if trimmed.starts_with(fence.as_str()) && trimmed.trim_end().chars().all(|c| fence.starts_with(c)) {
                    out.push((*start, std::mem::take(body)));
                    open = None;
                } else {
                    body.push_str(line);
                    body.push('\n');
                }
            }
        }
    }
    out
}

/// String literals of the Rust files under `tests/` that look like Corefiles (they hold a
/// brace or a line break), named `path:line`.
pub fn test_literals(root: &Path) -> Vec<Seed> {
    let mut files = Vec::new();
    collect_rs(&root.join("tests"), &mut files);
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let rel = path.strip_prefix(root).unwrap_or(&path).display().to_string();
        for (line, lit) in string_literals(&text) {
            if lit.contains(['{', '\n']) {
                out.push(Seed::new(format!("{rel}:{line}"), lit));
            }
        }
    }
    out
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.filter_map(Result::ok) {
        let p = e.path();
        if p.is_dir() {
            collect_rs(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The string literals of Rust source (`"..."` with escapes, `r"..."`, `r#"..."#`), with the line
/// each starts on. Comments, character literals and lifetimes are skipped; byte strings are
/// read like strings. A lexer good enough for test sources, not a Rust parser.
pub fn string_literals(src: &str) -> Vec<(usize, String)> {
    let b = src.as_bytes();
    let line_at = |i: usize| src[..i].matches('\n').count() + 1;
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                i = src[i..].find('\n').map_or(b.len(), |n| i + n);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = src[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2);
            }
            b'\'' => {
                // 'x' and '\n' are characters; 'a (no closing quote two on) is a lifetime.
                let rest = &src[i + 1..];
                let mut chars = rest.char_indices();
                i += 1 + match chars.next() {
                    Some((_, '\\')) => rest[1..].find('\'').map_or(rest.len(), |n| n + 2),
                    Some((_, c)) if rest[c.len_utf8()..].starts_with('\'') => c.len_utf8() + 1,
                    _ => 0,
                };
            }
            b'r' if (i == 0 || !is_ident(b[i - 1])) && matches!(b.get(i + 1), Some(b'"' | b'#')) => {
                let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
                if b.get(i + 1 + hashes) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let start = i + 2 + hashes;
                let close = format!("\"{}", "#".repeat(hashes));
                let end = src[start..].find(&close).map_or(b.len(), |n| start + n);
                out.push((line_at(i), src[start..end].to_string()));
                i = (end + close.len()).min(b.len());
            }
            b'"' => {
                let (text, end) = unescape(src, i + 1);
                out.push((line_at(i), text));
                i = end;
            }
            _ => i += 1,
        }
    }
    out
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Reads a `"..."` literal's body from `start`; returns the text and the offset after the quote.
fn unescape(src: &str, start: usize) -> (String, usize) {
    let mut out = String::new();
    let mut chars = src[start..].char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return (out, start + i + 1),
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, '0')) => out.push('\0'),
                Some((_, 'x')) => {
                    let hex: String = (0..2).filter_map(|_| chars.next().map(|(_, c)| c)).collect();
                    out.extend(u8::from_str_radix(&hex, 16).ok().map(char::from));
                }
                Some((_, 'u')) => {
                    let mut hex = String::new();
                    for (_, c) in chars.by_ref() {
                        match c {
                            '{' => {}
                            '}' => break,
                            c => hex.push(c),
                        }
                    }
                    out.extend(u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32));
                }
                // A line continuation skips the newline and the next line's indentation.
                Some((_, '\n')) => {
                    while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
                        chars.next();
                    }
                }
                Some((_, c)) => out.push(c),
                None => break,
            },
            c => out.push(c),
        }
    }
    (out, src.len())
}

/// Queries: ordinary ones, EDNS variants, and the malformed shapes the decoder classifies.
pub fn query_seeds() -> Vec<Seed> {
    let mut s = Vec::new();
    let mut add = |name: &str, data: Vec<u8>| s.push(Seed::new(format!("query/{name}"), data));
    let q = |name: &str, t: RecordType| build_query(0x1234, name, t, None);
    let e = |name: &str, t: RecordType, size: u16, version: u8, dnssec_ok: bool| {
        build_query(0x1234, name, t, Some((size, version, dnssec_ok)))
    };

    for (n, t) in [
        ("example.org", RecordType::A),
        ("www.example.org", RecordType::AAAA),
        ("ExAmPlE.OrG", RecordType::TXT),
        (".", RecordType::NS),
        ("a.example.org", RecordType::DS),
        ("1.0.0.10.in-addr.arpa", RecordType::PTR),
        ("example.net", RecordType::ANY),
        ("example.org", RecordType::SOA),
        ("example.org", RecordType(65280)),
        ("example.org", RecordType(0)),
        ("example.org", RecordType::AXFR),
    ] {
        add(&format!("{t}-{n}"), q(n, t));
    }
    let long = ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61)].join(".");
    add("name-255", q(&long, RecordType::A));
    add("label-63", q(&format!("{}.org", "x".repeat(63)), RecordType::A));

    add("edns-1232", e("example.org", RecordType::A, 1232, 0, false));
    add("edns-do", e("example.org", RecordType::A, 4096, 0, true));
    add("edns-small", e("example.org", RecordType::A, 100, 0, false));
    add("edns-65535", e("example.org", RecordType::A, 65535, 0, false));
    add("edns-version-1", e("example.org", RecordType::A, 1232, 1, false));
    let with_option = |code: u16, data: &[u8]| {
        let mut m = e("example.org", RecordType::A, 1232, 0, false);
        let rdlen = (4 + data.len()) as u16;
        let at = m.len() - 2;
        m[at..].copy_from_slice(&rdlen.to_be_bytes());
        m.extend_from_slice(&code.to_be_bytes());
        m.extend_from_slice(&(data.len() as u16).to_be_bytes());
        m.extend_from_slice(data);
        m
    };
    add("edns-cookie", with_option(10, &[1, 2, 3, 4, 5, 6, 7, 8]));
    add("edns-nsid", with_option(3, &[]));
    add("edns-ecs", with_option(8, &[0, 1, 24, 0, 10, 0, 0]));
    let mut overrun = with_option(12, &[0; 4]);
    let n = overrun.len();
    overrun[n - 5] = 9; // option length 9 in 4 bytes of data
    add("edns-option-overrun", overrun);
    let mut two_opts = e("example.org", RecordType::A, 1232, 0, false);
    two_opts[11] = 2;
    two_opts.extend_from_slice(&[0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0]);
    add("edns-two-opts", two_opts);
    let mut opt_not_root = q("example.org", RecordType::A);
    opt_not_root[11] = 1;
    opt_not_root.extend_from_slice(&[0xc0, 12, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0]);
    add("edns-opt-not-root", opt_not_root);

    let header = |flags: u16, counts: [u16; 4]| {
        let mut m = vec![0x12, 0x34];
        m.extend_from_slice(&flags.to_be_bytes());
        for c in counts {
            m.extend_from_slice(&c.to_be_bytes());
        }
        m
    };
    let question = |m: &mut Vec<u8>| m.extend_from_slice(b"\x07example\x03org\x00\x00\x01\x00\x01");
    let mut qd0 = header(0x0100, [0, 0, 0, 0]);
    add("qdcount-0", qd0.clone());
    question(&mut qd0);
    add("qdcount-0-with-question", qd0);
    let mut qd2 = header(0x0100, [2, 0, 0, 0]);
    question(&mut qd2);
    question(&mut qd2);
    add("qdcount-2", qd2);
    for (name, flags) in
        [("response", 0x8100u16), ("notify", 4 << 11), ("update", 5 << 11), ("iquery", 1 << 11), ("status", 2 << 11)]
    {
        let mut m = header(flags, [1, 0, 0, 0]);
        question(&mut m);
        add(&format!("opcode-{name}"), m);
    }
    let mut all_flags = header(0x7ff0, [1, 0, 0, 0]);
    question(&mut all_flags);
    add("all-flags", all_flags);
    for (name, class) in [("ch", 3u16), ("hs", 4), ("any", 255), ("none", 254)] {
        let mut m = q("version.bind", RecordType::TXT);
        let n = m.len();
        m[n - 2..].copy_from_slice(&class.to_be_bytes());
        add(&format!("class-{name}"), m);
    }

    let mut with_name = |tag: &str, name: &[u8]| {
        let mut m = header(0x0100, [1, 0, 0, 0]);
        m.extend_from_slice(name);
        m.extend_from_slice(&[0, 1, 0, 1]);
        add(tag, m);
    };
    with_name("pointer-self", &[0xc0, 12]);
    with_name("pointer-loop", &[1, b'a', 0xc0, 12]);
    with_name("pointer-forward", &[0xc0, 14, 0, 1, b'a', 0]);
    with_name("pointer-into-header", &[0xc0, 2]);
    with_name("pointer-truncated", &[0xc0]);
    with_name("label-type-01", &[0x41, b'a', 0]);
    with_name("label-type-10", &[0x81, b'a', 0]);
    let mut over = Vec::new();
    for _ in 0..5 {
        over.push(63);
        over.extend_from_slice(&[b'x'; 63]);
    }
    over.push(0);
    with_name("name-over-255", &over);
    with_name("label-truncated", &[10, b'a']);

    let good = e("example.org", RecordType::A, 1232, 0, false);
    for n in [0, 1, 11, 12, 13, 20, 24, 28, good.len() - 1] {
        add(&format!("truncated-{n}"), good[..n].to_vec());
    }
    let mut trailing = q("example.org", RecordType::A);
    trailing.extend_from_slice(b"garbage after the question");
    add("trailing-garbage", trailing);
    let mut big = q("example.org", RecordType::A);
    big.resize(4200, 0xab);
    add("over-4096", big);
    let mut answer = q("example.org", RecordType::A);
    answer[7] = 1;
    answer.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 0, 0, 1]);
    add("answer-compressed-owner", answer);
    let mut counts = q("example.org", RecordType::A);
    counts[6..12].copy_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    add("huge-counts", counts);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corefile_blocks_take_both_fences_and_only_corefile() {
        let md = "# t\n~~~ corefile\n. {\n    whoami\n}\n~~~\n~~~ txt\nno\n~~~\n```corefile\na.org\n```\n````corefile\nx\n```\ny\n````\n";
        assert_eq!(
            corefile_blocks(md),
            [(2, ". {\n    whoami\n}\n".to_string()), (10, "a.org\n".to_string()), (13, "x\n```\ny\n".to_string())]
        );
    }

    #[test]
    fn string_literals_of_rust_source() {
        let src = r####"
            // "not this"
            let a = ". {\n    whoami\n}"; let c = '"'; let l: &'a str = "x\
                 y";
            /* "nor this" */ let r = r#"raw "q" {"#; let u = "\u{e9}\x41\"";
        "####;
        let lits: Vec<String> = string_literals(src).into_iter().map(|(_, s)| s).collect();
        assert_eq!(lits, [". {\n    whoami\n}", "xy", "raw \"q\" {", "éA\""]);
    }

    #[test]
    fn message_seeds_have_unique_names_and_malformed_ones_fail_differently() {
        let seeds = message_seeds();
        let mut names: Vec<&str> = seeds.iter().map(|s| s.name.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), seeds.len());
        // The seeds before the first malformed one decode; the rest are rejected, each for its
        // own reason.
        let first_bad = seeds.iter().position(|s| s.name == "message/header-only-truncated").unwrap();
        for s in &seeds[..first_bad] {
            if let Err(e) = crate::dns::decode_message(&s.data) {
                panic!("{}: {e}", s.name);
            }
        }
        let mut errors: Vec<String> = seeds[first_bad..]
            .iter()
            .map(|s| match crate::dns::decode_message(&s.data) {
                Ok(_) => panic!("{} decodes", s.name),
                Err(e) => format!("{e:?}").split([' ', '{']).next().unwrap_or_default().to_string(),
            })
            .collect();
        errors.sort();
        assert_eq!(
            errors,
            [
                "AddressLength",
                "BadOptions",
                "BadPointer",
                "BadPointer",
                "BadPointer",
                "DuplicateOpt",
                "OptNotRoot",
                "OptOutsideAdditional",
                "RdataOverrun",
                "RdataTooShort",
                "Truncated",
                "Truncated",
                "TxtNotTiling"
            ]
        );
    }

    #[test]
    fn query_seeds_have_unique_names() {
        let seeds = query_seeds();
        let mut names: Vec<&str> = seeds.iter().map(|s| s.name.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), seeds.len());
    }
}
