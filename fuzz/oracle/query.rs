//! hickory-proto's verdict on a query: what a server must do with the bytes (drop them, reply
//! with an error, or answer), decided without the decoder under test. The independent oracle of
//! the query target. hickory-proto is not a dependency of the library, so this file is compiled
//! where it is one: the cargo-fuzz target (`fuzz_targets/query.rs`) and the stable tests
//! (`tests/fuzz_corpus.rs`) include it as a module.
//!
//! The rules are RFC 1035's, 6891's and 7766's as a server applies them:
//! * shorter than a header, or a response (QR set): drop, never answer a response;
//! * an opcode other than QUERY: NOTIMP, with the question echoed when it can be read;
//! * not exactly one question, a question hickory cannot read, or a record that is not whole
//!   (owner name, fixed fields, RDATA within the message): FORMERR;
//! * more than one OPT record, or one whose options do not tile its RDATA: FORMERR;
//! * an OPT record of a version other than 0: BADVERS (16) with an OPT record;
//! * otherwise: answer.
//!
//! Records other than OPT in a query are not the server's business: hickory reads their RDATA
//! and rejects what it cannot model (a CAA record with a bad tag, say), where a server only
//! needs them whole, so the structure of records is checked here with hickory's name reader and
//! the RFC 1035 fixed fields, and hickory's full parse (`Message::from_vec`) decides only the
//! OPT record's fields when it succeeds.

#![allow(dead_code)]

use clusterdns::fuzzing::{Expected, WireQuestion};
use hickory_proto::op::{Header, Message as HMessage, MessageType, OpCode, Query as HQuery};
use hickory_proto::rr::Name as HName;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

const FORMERR: u16 = 1;
const NOTIMP: u16 = 4;
const BADVERS: u16 = 16;
const OPT: u16 = 41;

/// What a server must do with `data`, as hickory-proto reads it.
pub fn verdict(data: &[u8]) -> Expected {
    let mut d = BinDecoder::new(data);
    let Ok(header) = Header::read(&mut d) else { return Expected::Drop };
    if header.metadata.message_type == MessageType::Response {
        return Expected::Drop;
    }
    let query = header.metadata.op_code == OpCode::Query;
    let bad = if query { FORMERR } else { NOTIMP };
    if header.counts.queries != 1 {
        return Expected::Error { rcode: bad, question: None, opt: Some(false) };
    }
    let question = match HQuery::read(&mut d) {
        Ok(q) => question(&q),
        Err(_) => match overlapping_question(data) {
            Some((q, end)) => {
                d = BinDecoder::new(data);
                d.read_slice(end).expect("within the message");
                q
            }
            None => return Expected::Error { rcode: bad, question: None, opt: Some(false) },
        },
    };
    if !query {
        return Expected::Error { rcode: NOTIMP, question: Some(question), opt: Some(false) };
    }
    let records = header.counts.answers as usize + header.counts.authorities as usize;
    let additionals = header.counts.additionals as usize;
    let formerr = Expected::Error { rcode: FORMERR, question: Some(question.clone()), opt: None };
    let mut opt: Option<(u16, u8)> = None;
    for i in 0..records + additionals {
        let Some(r) = record(data, &mut d) else { return formerr };
        if r.rtype == OPT && i >= records {
            if opt.is_some() || !r.root_owner || !options_tile(r.rdata) {
                return formerr;
            }
            opt = Some((r.class, (r.ttl >> 16) as u8));
        }
    }
    // Where hickory reads the whole message, its EDNS reading must agree with the walk's.
    if let Ok(m) = HMessage::from_vec(data) {
        let theirs = m.edns.as_ref().map(|e| (e.max_payload(), e.version()));
        let ours = opt.map(|(size, version)| (size.max(512), version));
        assert_eq!(theirs, ours, "hickory's OPT reading and the oracle's walk differ");
    }
    match opt {
        Some((_, version)) if version != 0 => {
            Expected::Error { rcode: BADVERS, question: Some(question), opt: Some(true) }
        }
        _ => Expected::Answer { question, edns_udp: opt.map(|(size, _)| size) },
    }
}

fn question(q: &HQuery) -> WireQuestion {
    let mut name = Vec::new();
    for label in q.name().iter() {
        name.push(label.len() as u8);
        name.extend_from_slice(label);
    }
    name.push(0);
    (name, u16::from(q.query_type()), u16::from(q.query_class()))
}

struct Record<'a> {
    root_owner: bool,
    rtype: u16,
    class: u16,
    ttl: u32,
    rdata: &'a [u8],
}

/// One record read whole: its owner with hickory's name reader, then TYPE, CLASS, TTL and
/// RDLENGTH (RFC 1035 4.1.3), and RDLENGTH bytes that must be in the message.
fn record<'a>(data: &'a [u8], d: &mut BinDecoder<'a>) -> Option<Record<'a>> {
    let start = d.index();
    let (root, at) = match HName::read(d) {
        Ok(owner) => (owner.is_root(), d.index()),
        // hickory follows every compression pointer; a server reads only the names it uses
        // and takes a pointer in a record it skips as the end of that name (clusterdns's
        // decoder: "we never follow pointers in sections we skip"). Such a record is whole
        // when its labels up to the pointer are.
        Err(_) => (false, owner_up_to_pointer(data, start)?),
    };
    let fixed = data.get(at..at + 10)?;
    let word = |i: usize| u16::from_be_bytes([fixed[i], fixed[i + 1]]);
    let len = word(8) as usize;
    let rdata = data.get(at + 10..at + 10 + len)?;
    *d = BinDecoder::new(data);
    d.read_slice(at + 10 + len).ok()?;
    Some(Record {
        // The OPT record's owner is the root, written as one zero byte (RFC 6891 6.1.2).
        root_owner: root && at == start + 1,
        rtype: word(0),
        class: word(2),
        ttl: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
        rdata,
    })
}

/// The offset after a name at `pos` made of labels (63 bytes at most, 255 in all, RFC 1035
/// 2.3.4) and ending in a compression pointer, whose target is not read.
fn owner_up_to_pointer(data: &[u8], mut pos: usize) -> Option<usize> {
    let mut total = 0;
    loop {
        let len = *data.get(pos)? as usize;
        match len >> 6 {
            0 if len > 0 => {
                total += 1 + len;
                pos += 1 + len;
                if total >= 255 {
                    return None;
                }
            }
            3 => return data.get(pos + 1).map(|_| pos + 2),
            _ => return None,
        }
    }
}

/// The one difference in reading a question: hickory rejects a name whose labels, after a
/// compression pointer, run on into the bytes of that pointer (or past it); RFC 1035 4.1.4 asks
/// only that a pointer point to a prior occurrence, and clusterdns's decoder, like the message
/// oracle (`hickory.rs`, `Known::OverlappingLabels`), accepts any pointer strictly before the
/// labels it ends. Reads the question at 12 that way: the name uncompressed, and the offset
/// after the question.
fn overlapping_question(data: &[u8]) -> Option<(WireQuestion, usize)> {
    let (mut name, mut pos, mut run_start, mut end) = (Vec::new(), 12, 12, None);
    loop {
        let len = *data.get(pos)? as usize;
        match len >> 6 {
            0 => {
                name.extend_from_slice(data.get(pos..pos + 1 + len)?);
                if name.len() > 255 {
                    return None;
                }
                pos += 1 + len;
                if len == 0 {
                    break;
                }
            }
            3 => {
                let target = ((len & 0x3f) << 8) | *data.get(pos + 1)? as usize;
                if target >= run_start {
                    return None;
                }
                end.get_or_insert(pos + 2);
                (pos, run_start) = (target, target);
            }
            _ => return None,
        }
    }
    let at = end.unwrap_or(pos);
    let fixed = data.get(at..at + 4)?;
    let word = |i: usize| u16::from_be_bytes([fixed[i], fixed[i + 1]]);
    Some(((name, word(0), word(2)), at + 4))
}

/// RFC 6891 6.1.2: the options, each `CODE(2) LENGTH(2) DATA(LENGTH)`, fill RDATA exactly.
fn options_tile(mut rdata: &[u8]) -> bool {
    while !rdata.is_empty() {
        let Some(head) = rdata.get(..4) else { return false };
        let len = u16::from_be_bytes([head[2], head[3]]) as usize;
        let Some(rest) = rdata.get(4 + len..) else { return false };
        rdata = rest;
    }
    true
}
