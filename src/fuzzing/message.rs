//! The message target: raw bytes through [`decode_message`], and whatever it accepts passed on
//! to a client as a forwarder would, then read back.
//!
//! The invariants, checked on every input:
//!
//! * decoding never panics;
//! * a message that decodes, turned into a [`Response`](crate::dns::Response) and encoded as the
//!   reply to a matching query over TCP, decodes again, and to the same thing: the same records
//!   in the same sections (names compare without case, since the encoder points a name at an
//!   earlier spelling of it; everything else byte for byte), the same rcode, AA, RA, AD and the
//!   same EDNS options. Records may go missing only when the next one would not have fitted in
//!   65535 bytes (decompressed names can make a message longer than it arrived).
//!
//! The second, independent reader, hickory-proto's, lives where hickory is a dependency: the
//! cargo-fuzz crate and the stable test suite (`fuzz/oracle/hickory.rs`, shared by both).

use std::net::SocketAddr;
use std::time::Instant;

use super::hex;
use crate::dns::decode::{HEADER_LEN, Question, decode_query, flags};
use crate::dns::encode::{Encoded, encode_query, encode_response};
use crate::dns::{
    Class, Edns, EdnsOptions, Message, MessageError, Name, Opcode, Proto, RData, Record, RecordType, Request, Section,
    decode_message,
};

/// What one input did.
#[derive(Clone, Debug)]
pub struct MessageOutcome {
    pub decoded: Result<Message, MessageError>,
    /// The reply a client would get when the message is passed on (see [`pass_on`]), when it
    /// decoded.
    pub passed_on: Option<Vec<u8>>,
}

impl MessageOutcome {
    /// A short description for steering the stable run: the error's kind (and record type), or
    /// the section counts and the record types seen.
    pub fn signature(&self) -> String {
        match &self.decoded {
            Err(e) => {
                let debug = format!("{e:?}");
                let kind = debug.split([' ', '{']).next().unwrap_or_default();
                match e {
                    MessageError::RdataOverrun { rtype, .. }
                    | MessageError::AddressLength { rtype, .. }
                    | MessageError::RdataTooShort { rtype, .. }
                    | MessageError::RdataTooLong { rtype, .. } => format!("{kind} {rtype}"),
                    _ => kind.to_string(),
                }
            }
            Ok(m) => {
                let records = m.answer.iter().chain(&m.authority).chain(&m.additional);
                let mut types: Vec<u16> = records.map(|r| r.rtype().0).collect();
                types.sort_unstable();
                types.dedup();
                format!(
                    "ok qd {} an {} ns {} ar {} edns {} types {types:?}",
                    m.questions.len(),
                    m.answer.len(),
                    m.authority.len(),
                    m.additional.len(),
                    m.edns.is_some()
                )
            }
        }
    }
}

/// Decodes `data` as a message and, when it decodes, passes it on and checks the reply (see the
/// module documentation). Panics with the input in hex when an invariant breaks.
pub fn fuzz_message(data: &[u8]) -> MessageOutcome {
    let decoded = decode_message(data);
    let passed_on = decoded.as_ref().ok().map(|msg| {
        let (req, out, enc) = pass_on(msg);
        if let Err(e) = check_passed_on(msg, &req, &out, enc) {
            panic!("{e}\ninput:  {}\nreply:  {}", hex(data), hex(&out));
        }
        out
    });
    MessageOutcome { decoded, passed_on }
}

/// Passes `msg` on as a forwarder would: returns the request of a client whose query matches it
/// (ID, RD and CD, its first question or `. A IN`, an OPT record with its payload size and DO
/// bit when it has one), written by the server's own query encoder and decoded as a listener
/// decodes it over TCP; the reply encoded for that client from `msg.into_response()`; and what
/// the encoder reported.
pub fn pass_on(msg: &Message) -> (Request, Vec<u8>, Encoded) {
    let question =
        msg.question().cloned().unwrap_or(Question { name: Name::root(), qtype: RecordType::A, qclass: Class::IN });
    let edns = msg.edns.as_ref().map(|e| Edns { options: EdnsOptions::new(), version: 0, z: 0, ..e.clone() });
    let mut wire = Vec::with_capacity(64);
    encode_query(&mut wire, msg.id, msg.flags & (flags::RD | flags::CD), &question, edns.as_ref());
    let query = match decode_query(&wire) {
        Ok(q) => q,
        Err(e) => panic!("the server's own query does not decode: {e:?}\nquery: {}", hex(&wire)),
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], 53));
    let req = Request::new(query, addr, addr, Proto::Tcp, Instant::now());
    let mut out = Vec::with_capacity(512);
    let enc = encode_response(&mut out, &req, &msg.clone().into_response("fuzz"));
    (req, out, enc)
}

/// Whether `out`, the reply to `req` made from `msg`, says what `msg` said.
fn check_passed_on(msg: &Message, req: &Request, out: &[u8], enc: Encoded) -> Result<(), String> {
    let again = decode_message(out).map_err(|e| format!("the reply does not decode: {e}"))?;
    expect(again.id == msg.id, "ID differs")?;
    expect(again.qr() && again.opcode() == Opcode::QUERY, "not a response to a QUERY")?;
    let kept = flags::AA | flags::RD | flags::RA | flags::AD | flags::CD;
    expect(again.flags & kept == msg.flags & kept, &format!("flags {:04x} for {:04x}", again.flags, msg.flags))?;
    expect(again.tc() == (msg.tc() || enc.truncated), "TC")?;
    expect(again.rcode == msg.rcode, &format!("rcode {} for {}", again.rcode, msg.rcode))?;
    let q = req.client_question();
    expect(
        again.questions.len() == 1
            && again.questions[0].name.as_wire() == q.name.as_wire()
            && (again.questions[0].qtype, again.questions[0].qclass) == (q.qtype, q.qclass),
        "question not the client's",
    )?;
    match (&msg.edns, &again.edns) {
        (None, None) => {}
        (Some(sent), Some(got)) => {
            expect(got.udp_size == sent.udp_size.max(512) && got.dnssec_ok == sent.dnssec_ok, "OPT fields")?;
            // Options that leave no room even for the question are not sent.
            let dropped = got.options.is_empty() && out.len() + sent.options.as_wire().len() > usize::from(u16::MAX);
            expect(got.options == sent.options || dropped, "EDNS options differ")?;
        }
        _ => return Err("OPT record presence differs".into()),
    }

    let sections = [
        (Section::Answer, &msg.answer, &again.answer),
        (Section::Authority, &msg.authority, &again.authority),
        (Section::Additional, &msg.additional, &again.additional),
    ];
    let mut cut = None;
    for (section, sent, got) in sections {
        if let Some(earlier) = cut {
            expect(got.is_empty(), &format!("{section} records after the {earlier} section was cut short"))?;
            continue;
        }
        expect(got.len() <= sent.len(), &format!("more {section} records than sent"))?;
        for (i, (s, g)) in sent.iter().zip(got.iter()).enumerate() {
            expect(same_record(s, g), &format!("{section} record {i}: {g} for {s}"))?;
        }
        if let Some(missing) = sent.get(got.len()) {
            let size = missing.name.wire_len() + 10 + missing.data.uncompressed_len();
            expect(
                out.len() + size > usize::from(u16::MAX),
                &format!("{section} record {} left out: {missing}", got.len()),
            )?;
            cut = Some(section);
        }
    }
    if matches!(cut, Some(Section::Answer | Section::Authority)) {
        expect(again.tc(), "records left out without TC")?;
    }
    Ok(())
}

/// Equal records, names compared without case (RFC 1035 2.3.3; the encoder points a name at an
/// earlier spelling of it) except where the encoder never compresses: an SRV target.
fn same_record(sent: &Record, got: &Record) -> bool {
    sent == got
        && match (&sent.data, &got.data) {
            (RData::Srv { target: a, .. }, RData::Srv { target: b, .. }) => a.as_wire() == b.as_wire(),
            _ => true,
        }
}

fn expect(ok: bool, what: &str) -> Result<(), String> {
    if ok { Ok(()) } else { Err(what.to_string()) }
}

/// Builds a message byte by byte, for seeds and tests: each part goes on the end as given
/// (names as wire bytes, compression pointers included), and the header counts what was added.
/// Sections must be added in order; nothing else is checked, so malformed messages are as easy
/// to build as good ones.
#[derive(Clone, Debug)]
pub struct WireMessage {
    buf: Vec<u8>,
    counts: [u16; 4],
}

impl WireMessage {
    pub fn new(id: u16, header_flags: u16) -> WireMessage {
        let mut buf = Vec::with_capacity(512);
        buf.extend_from_slice(&id.to_be_bytes());
        buf.extend_from_slice(&header_flags.to_be_bytes());
        buf.resize(HEADER_LEN, 0);
        WireMessage { buf, counts: [0; 4] }
    }

    /// The offset the next byte goes to: what a later pointer to it holds.
    pub fn offset(&self) -> u16 {
        self.buf.len() as u16
    }

    pub fn question(&mut self, name: &[u8], qtype: RecordType, qclass: Class) -> &mut Self {
        self.buf.extend_from_slice(name);
        self.buf.extend_from_slice(&qtype.0.to_be_bytes());
        self.buf.extend_from_slice(&qclass.0.to_be_bytes());
        self.counts[0] += 1;
        self
    }

    /// A record in `section` (not [`Section::Question`]), RDLENGTH set from `rdata`.
    pub fn record(
        &mut self,
        section: Section,
        owner: &[u8],
        rtype: RecordType,
        class: Class,
        ttl: u32,
        rdata: &[u8],
    ) -> &mut Self {
        self.buf.extend_from_slice(owner);
        self.buf.extend_from_slice(&rtype.0.to_be_bytes());
        self.buf.extend_from_slice(&class.0.to_be_bytes());
        self.buf.extend_from_slice(&ttl.to_be_bytes());
        self.buf.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        self.buf.extend_from_slice(rdata);
        self.counts[section as usize] += 1;
        self
    }

    /// An OPT record in the additional section (RFC 6891 6.1.2-6.1.3).
    pub fn opt(&mut self, udp_size: u16, ext_rcode: u8, dnssec_ok: bool, options: &[u8]) -> &mut Self {
        let ttl = u32::from_be_bytes([ext_rcode, 0, if dnssec_ok { 0x80 } else { 0 }, 0]);
        self.record(Section::Additional, &[0], RecordType::OPT, Class(udp_size), ttl, options)
    }

    /// Bytes that are no part of any counted entry (trailing garbage, say).
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self
    }

    /// Sets a header count, whatever was added.
    pub fn count(&mut self, section: Section, n: u16) -> &mut Self {
        self.counts[section as usize] = n;
        self
    }

    pub fn finish(&self) -> Vec<u8> {
        let mut m = self.buf.clone();
        for (i, c) in self.counts.iter().enumerate() {
            m[4 + 2 * i..6 + 2 * i].copy_from_slice(&c.to_be_bytes());
        }
        m
    }
}

/// `name` (presentation format) as uncompressed wire bytes. Panics on a name that does not parse:
/// for seeds and tests.
pub fn wire_name(name: &str) -> Vec<u8> {
    Name::parse(name).expect("a valid name").as_wire().to_vec()
}

/// A compression pointer to `offset`.
pub fn pointer(offset: u16) -> [u8; 2] {
    (0xc000 | offset).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_answer_passes_on_unchanged() {
        let mut m = WireMessage::new(7, flags::QR | flags::RD | flags::RA | flags::AD);
        m.question(&wire_name("www.example.org"), RecordType::A, Class::IN);
        m.record(Section::Answer, &pointer(12), RecordType::A, Class::IN, 60, &[192, 0, 2, 1]);
        m.opt(1232, 0, true, b"\x00\x0f\x00\x02\x00\x03");
        let out = fuzz_message(&m.finish());
        let msg = out.decoded.unwrap();
        assert_eq!(msg.answer.len(), 1);
        assert!(msg.ad() && msg.ra() && !msg.aa());
        assert_eq!(out.passed_on.unwrap().len(), m.finish().len());
    }

    #[test]
    fn the_checker_catches_a_changed_reply() {
        let mut m = WireMessage::new(7, flags::QR);
        m.question(&wire_name("a.example"), RecordType::TXT, Class::IN);
        m.record(Section::Answer, &pointer(12), RecordType::TXT, Class::IN, 5, b"\x02hi");
        let msg = decode_message(&m.finish()).unwrap();
        let (req, mut out, enc) = pass_on(&msg);
        assert_eq!(check_passed_on(&msg, &req, &out, enc), Ok(()));
        let n = out.len();
        out[n - 1] = b'o';
        assert!(check_passed_on(&msg, &req, &out, enc).unwrap_err().starts_with("answer record 0"));
        out[3] |= 0x20;
        assert_eq!(check_passed_on(&msg, &req, &out, enc), Err("flags 8020 for 8000".into()));
    }
}
