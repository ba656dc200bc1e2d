//! The query target: raw bytes through the server's dispatch, with every reply checked by an
//! independent reader of the wire format against what an independent reader of the query says
//! it deserves ([`Expected`]: the cargo-fuzz target and the stable tests take it from
//! hickory-proto, `fuzz/oracle/query.rs`; the library does not depend on hickory). The decoder
//! under test decides nothing here.

use std::net::SocketAddr;
use std::time::Instant;

use super::hex;
use crate::dns::decode::flags;
use crate::dns::{Class, Proto, Rcode, RecordType};
use crate::server::build::Offline;
use crate::server::dispatch::{Handled, Meta};

/// A question as a reader of the wire sees it: the name uncompressed, in the case it was sent
/// (every label with its length byte, ending with the root), the type and the class.
pub type WireQuestion = (Vec<u8>, u16, u16);

/// What a server must do with a packet, decided by a reader other than the server's decoder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expected {
    /// No reply: shorter than a header, or a response (QR set).
    Drop,
    /// An error reply with this rcode (extended rcodes included, BADVERS is 16), the question
    /// echoed when it could be read, and the OPT record present (`Some(true)`), absent
    /// (`Some(false)`) or either (`None`: RFC 6891 lets a FORMERR carry one or not).
    Error { rcode: u16, question: Option<WireQuestion>, opt: Option<bool> },
    /// A query to answer: its question, and the UDP size of its OPT record if it has one.
    Answer { question: WireQuestion, edns_udp: Option<u16> },
}

/// The replies one input got: over UDP from an IPv4 client and over TCP from an IPv6 client
/// (so whoami answers with A and AAAA records alike). `None` means no reply was sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryOutcome {
    pub udp: Option<Vec<u8>>,
    pub tcp: Option<Vec<u8>>,
}

impl QueryOutcome {
    /// A short description for steering the stable run: what happened over UDP, by rcode and
    /// section counts.
    pub fn signature(&self) -> String {
        match &self.udp {
            None => "drop".into(),
            Some(r) => match parse_reply(r) {
                Ok(v) => format!(
                    "rcode {} flags {:04x} qd {} an {} ns {} ar {} tcp {}",
                    v.rcode,
                    v.flags & 0x7ff0,
                    v.counts[0],
                    v.counts[1],
                    v.counts[2],
                    v.counts[3],
                    self.tcp.as_ref().map_or(0, Vec::len) > 0
                ),
                Err(e) => format!("bad reply: {e}"),
            },
        }
    }
}

/// A zone table serving [`QueryHarness::COREFILE`], built as the server builds one listener's
/// table ([`Offline`]), without sockets.
pub struct QueryHarness {
    offline: Offline,
    rt: tokio::runtime::Runtime,
}

impl Default for QueryHarness {
    fn default() -> QueryHarness {
        QueryHarness::new()
    }
}

impl QueryHarness {
    /// The configuration served: a root block catching every name and a block for a forward
    /// and a reverse zone, all answered by whoami, on one listener.
    pub const COREFILE: &'static str = ".:53 {\n    whoami\n}\nexample.org 10.0.0.0/8 {\n    whoami\n}\n";

    pub fn new() -> QueryHarness {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
        let offline = {
            let _guard = rt.enter();
            Offline::new(Self::COREFILE).expect("the harness Corefile builds")
        };
        QueryHarness { offline, rt }
    }

    /// Handles `data` as a datagram and as a TCP message, checks each outcome against
    /// `expected` (what an independent reader says the packet deserves), and returns the
    /// replies. Panics (with the input in hex) when a packet that must be answered is not, a
    /// dropped one is, a reply is malformed, or it is not the reply expected.
    pub fn run(&self, data: &[u8], expected: &Expected) -> QueryOutcome {
        let udp_client: SocketAddr = "127.0.0.1:53535".parse().expect("an address");
        let tcp_client: SocketAddr = "[::1]:53536".parse().expect("an address");
        let udp = self.handle(data, Proto::Udp, udp_client);
        let tcp = self.handle(data, Proto::Tcp, tcp_client);
        let check = |proto: Proto, reply: &Option<Vec<u8>>| {
            if let Err(e) = check(data, expected, proto, reply.as_deref()) {
                panic!(
                    "{e} (over {}; expected {expected:?})\ninput:  {}\nreply:  {}",
                    proto.as_str(),
                    hex(data),
                    reply.as_deref().map(hex).unwrap_or_default()
                );
            }
        };
        check(Proto::Udp, &udp);
        check(Proto::Tcp, &tcp);
        QueryOutcome { udp, tcp }
    }

    /// One message through the dispatch path as a listener drives it; a waiting chain is
    /// finished on the harness's runtime.
    fn handle(&self, data: &[u8], proto: Proto, client: SocketAddr) -> Option<Vec<u8>> {
        let local: SocketAddr = "127.0.0.1:53".parse().expect("an address");
        let meta = Meta { client, local, proto, received: Instant::now() };
        let mut out = Vec::with_capacity(512);
        let _guard = self.rt.enter();
        match self.offline.table.handle(data, meta, &mut out) {
            Handled::Drop => None,
            Handled::Reply => Some(out),
            Handled::Pending(p) => {
                self.rt.block_on(p.finish(&mut out));
                Some(out)
            }
        }
    }
}

/// Whether `reply` is what `expected` says `data` deserves.
fn check(data: &[u8], expected: &Expected, proto: Proto, reply: Option<&[u8]>) -> Result<(), String> {
    let (question, edns_udp) = match expected {
        Expected::Drop => {
            return match reply {
                None => Ok(()),
                Some(_) => Err("a packet to drop got a reply".into()),
            };
        }
        Expected::Error { rcode, question, opt } => {
            let v = parse_reply(reply.ok_or("a packet to refuse got no error reply")?)?;
            echoes_header(data, &v)?;
            expect(v.rcode == *rcode, &format!("rcode {} where {rcode} was expected", v.rcode))?;
            expect(v.question == *question, "question not echoed exactly")?;
            return match opt {
                Some(want) => expect(v.opt_udp_size.is_some() == *want, "OPT record presence"),
                None => Ok(()),
            };
        }
        Expected::Answer { question, edns_udp } => (question, edns_udp),
    };
    let v = parse_reply(reply.ok_or("a query to answer got no reply")?)?;
    echoes_header(data, &v)?;
    expect(v.question.as_ref() == Some(question), "question not echoed exactly")?;
    // The harness serves the root zone: every IN query is answered by whoami, others refused.
    let want = if Class(question.2) == Class::IN { Rcode::NOERROR } else { Rcode::REFUSED };
    expect(v.rcode == want.0, &format!("rcode {} where {want} was expected", v.rcode))?;
    expect(v.opt_udp_size.is_some() == edns_udp.is_some(), "OPT record presence differs from the query's")?;
    if proto == Proto::Udp {
        let limit = edns_udp.map_or(512, |size| (size as usize).max(512));
        expect(reply.map_or(0, <[u8]>::len) <= limit, "reply larger than the client accepts over UDP")?;
    }
    Ok(())
}

/// The reply's ID, QR, opcode and RD against the query's header bytes.
fn echoes_header(data: &[u8], v: &ReplyView) -> Result<(), String> {
    let id = u16::from_be_bytes([data[0], data[1]]);
    let qflags = u16::from_be_bytes([data[2], data[3]]);
    expect(v.id == id, "reply ID differs from the query's")?;
    expect(v.flags & flags::QR != 0, "QR is not set")?;
    expect((v.flags >> 11) & 0xf == (qflags >> 11) & 0xf, "opcode not echoed")?;
    expect(v.flags & flags::RD == qflags & flags::RD, "RD not echoed")
}

fn expect(ok: bool, what: &str) -> Result<(), String> {
    if ok { Ok(()) } else { Err(what.to_string()) }
}

/// A reply as an independent reader sees it.
struct ReplyView {
    id: u16,
    flags: u16,
    /// The full rcode: header bits and the OPT record's extended bits.
    rcode: u16,
    counts: [u16; 4],
    /// (uncompressed wire name, type, class).
    question: Option<(Vec<u8>, u16, u16)>,
    opt_udp_size: Option<u16>,
}

/// Reads a whole reply: header, at most one question, every record, at most one OPT record
/// (owned by the root, in the additional section), and nothing after the last record.
fn parse_reply(msg: &[u8]) -> Result<ReplyView, String> {
    let header = msg.get(..12).ok_or("reply shorter than a header")?;
    let word = |i: usize| u16::from_be_bytes([header[i], header[i + 1]]);
    let counts = [word(4), word(6), word(8), word(10)];
    let mut v =
        ReplyView { id: word(0), flags: word(2), rcode: word(2) & 0xf, counts, question: None, opt_udp_size: None };
    let mut pos = 12;
    match counts[0] {
        0 => {}
        1 => {
            let (name, next) = read_name(msg, pos)?;
            let fixed = msg.get(next..next + 4).ok_or("question truncated")?;
            v.question =
                Some((name, u16::from_be_bytes([fixed[0], fixed[1]]), u16::from_be_bytes([fixed[2], fixed[3]])));
            pos = next + 4;
        }
        n => return Err(format!("{n} questions in a reply")),
    }
    let records = counts[1] as usize + counts[2] as usize + counts[3] as usize;
    for i in 0..records {
        let (owner, next) = read_name(msg, pos)?;
        let fixed = msg.get(next..next + 10).ok_or("record truncated")?;
        let rtype = RecordType(u16::from_be_bytes([fixed[0], fixed[1]]));
        let rdlen = u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
        let end = next + 10 + rdlen;
        expect(end <= msg.len(), "record data runs past the end")?;
        if rtype == RecordType::OPT {
            expect(i >= counts[1] as usize + counts[2] as usize, "OPT outside the additional section")?;
            expect(owner == [0], "OPT not owned by the root")?;
            expect(v.opt_udp_size.is_none(), "two OPT records")?;
            v.opt_udp_size = Some(u16::from_be_bytes([fixed[2], fixed[3]]));
            v.rcode |= (fixed[4] as u16) << 4;
        }
        pos = end;
    }
    expect(pos == msg.len(), "bytes after the last record")?;
    Ok(v)
}

/// Reads a name, following compression pointers in any direction but at most 128 of them;
/// returns it uncompressed and the offset after it where it started.
fn read_name(msg: &[u8], start: usize) -> Result<(Vec<u8>, usize), String> {
    let mut name = Vec::new();
    let mut pos = start;
    let mut after = None;
    for _ in 0..128 {
        let len = *msg.get(pos).ok_or("name truncated")?;
        match len & 0xc0 {
            0x00 => {
                let label = msg.get(pos..pos + 1 + len as usize).ok_or("label truncated")?;
                name.extend_from_slice(label);
                expect(name.len() <= 255, "name longer than 255 bytes")?;
                pos += 1 + len as usize;
                if len == 0 {
                    return Ok((name, after.unwrap_or(pos)));
                }
            }
            0xc0 => {
                let lo = *msg.get(pos + 1).ok_or("pointer truncated")?;
                after.get_or_insert(pos + 2);
                pos = ((len as usize & 0x3f) << 8) | lo as usize;
            }
            _ => return Err(format!("label type {len:#x}")),
        }
    }
    Err("compression pointer loop".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::build_query;

    #[test]
    fn answers_and_checks_a_plain_query() {
        let h = QueryHarness::new();
        let name = b"\x03www\x07Example\x03org\x00".to_vec();
        let q = build_query(9, "www.Example.org", RecordType::A, Some((1232, 0, false)));
        let out = h.run(&q, &Expected::Answer { question: (name.clone(), 1, 1), edns_udp: Some(1232) });
        let v = parse_reply(out.udp.as_ref().unwrap()).unwrap();
        assert_eq!((v.id, v.rcode, v.counts), (9, 0, [1, 0, 0, 3]));
        assert_eq!(v.question.unwrap().0, name);
        assert_eq!(out.signature(), "rcode 0 flags 0500 qd 1 an 0 ns 0 ar 3 tcp true");
    }

    #[test]
    fn the_checker_rejects_what_a_broken_server_would_send() {
        let q = build_query(9, "a.example.org", RecordType::A, None);
        let answer = Expected::Answer { question: (b"\x01a\x07example\x03org\x00".to_vec(), 1, 1), edns_udp: None };
        assert_eq!(check(&q, &answer, Proto::Udp, None), Err("a query to answer got no reply".into()));
        let mut echo = q.clone();
        echo[2] |= 0x80;
        echo[3] |= 5;
        assert_eq!(check(&q, &answer, Proto::Udp, Some(&echo)), Err("rcode 5 where NOERROR was expected".into()));
        let refused = Expected::Error { rcode: 5, question: None, opt: None };
        assert_eq!(check(&q, &refused, Proto::Udp, Some(&echo)), Err("question not echoed exactly".into()));
        echo.push(0);
        assert_eq!(check(&q, &answer, Proto::Udp, Some(&echo)), Err("bytes after the last record".into()));
        assert_eq!(
            check(&q[..5], &Expected::Drop, Proto::Udp, Some(&echo)),
            Err("a packet to drop got a reply".into())
        );
        assert_eq!(read_name(&[0xc0, 0], 0), Err("compression pointer loop".into()));
    }
}
