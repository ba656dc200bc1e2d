//! Decoding a query from the wire, in place.
//!
//! The fast path reads only what answering needs: the header, the one question and the OPT
//! record. Other sections are walked to find the OPT record and to reject malformed packets, but
//! nothing is allocated for them. What cannot be answered is classified here, once:
//!
//! | input                                            | outcome                        |
//! |--------------------------------------------------|--------------------------------|
//! | shorter than a header, or QR=1 (a response)      | dropped                        |
//! | OPCODE other than QUERY                          | NOTIMP (RFC 1035 4.1.1)        |
//! | QDCOUNT not 1, unreadable question or sections   | FORMERR                        |
//! | bad names: pointer loops, forward pointers, labels over 63, names over 255 | FORMERR |
//! | two OPT records, OPT not at the root, bad options | FORMERR (RFC 6891 6.1.1)       |
//! | EDNS version other than 0                        | BADVERS (RFC 6891 6.1.3)       |
//!
//! Bytes after the last record are ignored.

use super::edns::{BadOptions, Edns, EdnsOptions};
use super::name::{MAX_LABEL_LEN, MAX_NAME_LEN};
use super::{Class, Name, Opcode, Rcode, RecordType};

/// Header flag bits (RFC 1035 4.1.1, RFC 4035 for AD and CD).
pub mod flags {
    pub const QR: u16 = 0x8000;
    pub const AA: u16 = 0x0400;
    pub const TC: u16 = 0x0200;
    pub const RD: u16 = 0x0100;
    pub const RA: u16 = 0x0080;
    pub const AD: u16 = 0x0020;
    pub const CD: u16 = 0x0010;
}

pub const HEADER_LEN: usize = 12;

/// The question section's one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    /// As the client spelled it, case preserved.
    pub name: Name,
    pub qtype: RecordType,
    pub qclass: Class,
}

/// A query that can be answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    /// The header flags as received (RD, CD and AD are what a reply looks at).
    pub flags: u16,
    pub question: Question,
    /// The OPT record whole, options included.
    pub edns: Option<Edns>,
    /// Size of the query in bytes.
    pub len: usize,
}

/// A packet that gets no normal answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// Not worth any answer (too short for a header, or a response).
    Drop,
    /// Worth an error reply with this rcode; the question is echoed when it could be read.
    /// Boxed: the rare path pays for its size, not every decode.
    Reply(Box<ErrorReply>),
}

/// Everything needed to encode an error reply to a packet that could not be answered normally.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorReply {
    pub id: u16,
    pub opcode: Opcode,
    pub flags: u16,
    pub rcode: Rcode,
    pub question: Option<Question>,
    pub edns: Option<Edns>,
}

/// Why a name could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BadName {
    Truncated,
    /// A compression pointer that does not point strictly backwards (loops, forward references).
    BadPointer,
    /// Label types 0b01 and 0b10 (RFC 6891 obsoleted extended labels).
    BadLabelType,
    TooLong,
}

/// Decodes `msg` as a query. See the module documentation for the classification.
pub fn decode_query(msg: &[u8]) -> Result<Query, Rejected> {
    if msg.len() < HEADER_LEN {
        return Err(Rejected::Drop);
    }
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    if flags & flags::QR != 0 {
        return Err(Rejected::Drop);
    }
    let opcode = Opcode(((flags >> 11) & 0xf) as u8);
    let count = |i: usize| u16::from_be_bytes([msg[4 + 2 * i], msg[5 + 2 * i]]) as usize;
    let (qdcount, ancount, nscount, arcount) = (count(0), count(1), count(2), count(3));
    let reply =
        |rcode, question, edns| Err(Rejected::Reply(Box::new(ErrorReply { id, opcode, flags, rcode, question, edns })));

    if qdcount != 1 {
        let rcode = if opcode == Opcode::QUERY { Rcode::FORMERR } else { Rcode::NOTIMP };
        return reply(rcode, None, None);
    }
    let question = match read_question(msg, HEADER_LEN) {
        Ok((q, _)) if opcode != Opcode::QUERY => return reply(Rcode::NOTIMP, Some(q), None),
        Ok(q) => q,
        Err(_) if opcode != Opcode::QUERY => return reply(Rcode::NOTIMP, None, None),
        Err(_) => return reply(Rcode::FORMERR, None, None),
    };
    let (question, mut pos) = question;

    for _ in 0..ancount + nscount {
        match skip_record(msg, pos) {
            Ok((_, next)) => pos = next,
            Err(()) => return reply(Rcode::FORMERR, Some(question), None),
        }
    }
    let mut edns = None;
    for _ in 0..arcount {
        let (rtype, next) = match skip_record(msg, pos) {
            Ok(r) => r,
            Err(()) => return reply(Rcode::FORMERR, Some(question), None),
        };
        if rtype == RecordType::OPT {
            match read_opt(msg, pos) {
                Ok((opt, _)) if edns.is_none() => edns = Some(opt),
                // RFC 6891 6.1.1: more than one OPT record is a FORMERR.
                _ => return reply(Rcode::FORMERR, Some(question), edns),
            }
        }
        pos = next;
    }
    if let Some(e) = &edns
        && e.version != 0
    {
        return reply(Rcode::BADVERS, Some(question), edns);
    }
    Ok(Query { id, flags, question, edns, len: msg.len() })
}

pub(super) fn read_question(msg: &[u8], pos: usize) -> Result<(Question, usize), ()> {
    let (name, pos) = read_name(msg, pos).map_err(|_| ())?;
    let fixed = msg.get(pos..pos + 4).ok_or(())?;
    let qtype = RecordType(u16::from_be_bytes([fixed[0], fixed[1]]));
    let qclass = Class(u16::from_be_bytes([fixed[2], fixed[3]]));
    Ok((Question { name, qtype, qclass }, pos + 4))
}

/// Skips one resource record, returning its type and the offset after it.
pub(super) fn skip_record(msg: &[u8], pos: usize) -> Result<(RecordType, usize), ()> {
    let pos = skip_name(msg, pos).map_err(|_| ())?;
    let fixed = msg.get(pos..pos + 10).ok_or(())?;
    let rtype = RecordType(u16::from_be_bytes([fixed[0], fixed[1]]));
    let rdlen = u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
    let end = pos + 10 + rdlen;
    if end > msg.len() {
        return Err(());
    }
    Ok((rtype, end))
}

/// Reads the OPT pseudo-record at `pos` (RFC 6891 6.1.2 and 6.1.3); also returns the high eight
/// bits of the extended RCODE, which only a response uses.
pub(super) fn read_opt(msg: &[u8], pos: usize) -> Result<(Edns, u8), ()> {
    // The owner must be the root name, uncompressed.
    if msg.get(pos) != Some(&0) {
        return Err(());
    }
    let fixed = msg.get(pos + 1..pos + 11).ok_or(())?;
    let udp_size = u16::from_be_bytes([fixed[2], fixed[3]]);
    let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
    let rdlen = u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
    let rdata = msg.get(pos + 11..pos + 11 + rdlen).ok_or(())?;
    opt_fields(udp_size, ttl, rdata).map_err(|_| ())
}

/// The OPT record's fields as RFC 6891 6.1.3 lays them out: CLASS is the UDP payload size, and
/// TTL holds EXTENDED-RCODE (returned beside the [`Edns`]), VERSION, DO and Z. The options, each
/// `code(2) length(2) data(length)`, must tile RDATA exactly.
pub(super) fn opt_fields(udp_size: u16, ttl: u32, rdata: &[u8]) -> Result<(Edns, u8), BadOptions> {
    let [ext_rcode, version, flags_hi, flags_lo] = ttl.to_be_bytes();
    let flags = u16::from_be_bytes([flags_hi, flags_lo]);
    let options = EdnsOptions::from_wire(rdata)?;
    let edns = Edns { udp_size, version, dnssec_ok: flags & 0x8000 != 0, z: flags & 0x7fff, options };
    Ok((edns, ext_rcode))
}

/// Reads a possibly compressed name starting at `pos`, returning it and the offset after it.
///
/// RFC 1035 4.1.4 allows a pointer only to "a prior occurance of the same name". Each pointer
/// here must point strictly before the start of the label run it ends, so every jump moves
/// backwards and decoding always terminates, whatever the packet says.
pub(super) fn read_name(msg: &[u8], start: usize) -> Result<(Name, usize), BadName> {
    let mut wire = [0u8; MAX_NAME_LEN];
    let mut len = 0;
    let mut pos = start;
    let mut run_start = start;
    let mut end = None;
    loop {
        let b = *msg.get(pos).ok_or(BadName::Truncated)?;
        match b & 0xc0 {
            0x00 => {
                let label_len = b as usize;
                if label_len == 0 {
                    wire[len] = 0;
                    len += 1;
                    let after = end.unwrap_or(pos + 1);
                    return Ok((Name::from_checked_wire(&wire[..len]), after));
                }
                debug_assert!(label_len <= MAX_LABEL_LEN);
                let label = msg.get(pos + 1..pos + 1 + label_len).ok_or(BadName::Truncated)?;
                // Room for this label and the root label.
                if len + 1 + label_len + 1 > MAX_NAME_LEN {
                    return Err(BadName::TooLong);
                }
                wire[len] = b;
                wire[len + 1..len + 1 + label_len].copy_from_slice(label);
                len += 1 + label_len;
                pos += 1 + label_len;
            }
            0xc0 => {
                let lo = *msg.get(pos + 1).ok_or(BadName::Truncated)?;
                let target = (((b & 0x3f) as usize) << 8) | lo as usize;
                if target >= run_start {
                    return Err(BadName::BadPointer);
                }
                end.get_or_insert(pos + 2);
                pos = target;
                run_start = target;
            }
            _ => return Err(BadName::BadLabelType),
        }
    }
}

/// Skips a possibly compressed name without building it (a name in a section we do not read).
pub(super) fn skip_name(msg: &[u8], mut pos: usize) -> Result<usize, BadName> {
    let mut total = 0;
    loop {
        let b = *msg.get(pos).ok_or(BadName::Truncated)?;
        match b & 0xc0 {
            0x00 if b == 0 => return Ok(pos + 1),
            0x00 => {
                total += 1 + b as usize;
                if total + 1 > MAX_NAME_LEN {
                    return Err(BadName::TooLong);
                }
                pos += 1 + b as usize;
                if pos > msg.len() {
                    return Err(BadName::Truncated);
                }
            }
            // A pointer ends the name in this section; its target was checked or is not ours to
            // read (we never follow pointers in sections we skip).
            0xc0 => return msg.get(pos + 1).map(|_| pos + 2).ok_or(BadName::Truncated),
            _ => return Err(BadName::BadLabelType),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::build_query as query;

    fn rcode_of(r: Result<Query, Rejected>) -> Option<Rcode> {
        match r {
            Err(Rejected::Reply(e)) => Some(e.rcode),
            _ => None,
        }
    }

    #[test]
    fn decodes_a_plain_query() {
        let q = decode_query(&query(7, "Example.org", RecordType::A, None)).unwrap();
        assert_eq!(q.id, 7);
        assert_eq!(q.question.name.to_string(), "Example.org.");
        assert_eq!(q.question.qtype, RecordType::A);
        assert_eq!(q.question.qclass, Class::IN);
        assert_eq!(q.edns, None);
        assert!(q.flags & flags::RD != 0);
    }

    #[test]
    fn decodes_edns() {
        let q = decode_query(&query(1, "a.b", RecordType::AAAA, Some((1232, 0, true)))).unwrap();
        let e = q.edns.unwrap();
        assert_eq!((e.udp_size, e.version, e.dnssec_ok, e.z), (1232, 0, true, 0));
        assert!(e.options.is_empty());
    }

    #[test]
    fn classifies_bad_packets() {
        assert_eq!(decode_query(&[0; 11]), Err(Rejected::Drop));
        let mut resp = query(1, "a", RecordType::A, None);
        resp[2] |= 0x80;
        assert_eq!(decode_query(&resp), Err(Rejected::Drop));

        let mut notify = query(1, "a", RecordType::SOA, None);
        notify[2] |= 4 << 3;
        assert_eq!(rcode_of(decode_query(&notify)), Some(Rcode::NOTIMP));

        let mut two = query(1, "a", RecordType::A, None);
        two[5] = 2;
        assert_eq!(rcode_of(decode_query(&two)), Some(Rcode::FORMERR));

        let bad_version = query(1, "a", RecordType::A, Some((4096, 1, false)));
        assert_eq!(rcode_of(decode_query(&bad_version)), Some(Rcode::BADVERS));
    }

    #[test]
    fn pointer_loops_and_forward_pointers_are_formerr() {
        // Question name is a pointer to itself.
        let mut m = query(1, "a", RecordType::A, None);
        m.truncate(12);
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(rcode_of(decode_query(&m)), Some(Rcode::FORMERR));
        // A label then a pointer back to that label: a loop.
        let mut m = query(1, "a", RecordType::A, None);
        m.truncate(12);
        m.extend_from_slice(&[1, b'a', 0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(rcode_of(decode_query(&m)), Some(Rcode::FORMERR));
    }

    #[test]
    fn compressed_names_in_later_sections_are_followed_backwards_only() {
        // An answer record whose owner points at the question name: legal.
        let mut m = query(1, "example.org", RecordType::A, None);
        m[7] = 1; // ANCOUNT
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 1, 2, 3, 4]);
        assert!(decode_query(&m).is_ok());
    }

    #[test]
    fn overlong_names_are_formerr() {
        let mut m = query(1, "a", RecordType::A, None);
        m.truncate(12);
        for _ in 0..5 {
            m.push(63);
            m.extend_from_slice(&[b'x'; 63]);
        }
        m.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert_eq!(rcode_of(decode_query(&m)), Some(Rcode::FORMERR));
    }

    #[test]
    fn two_opt_records_are_formerr() {
        let mut m = query(1, "a", RecordType::A, Some((1232, 0, false)));
        m[11] = 2;
        m.extend_from_slice(&[0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(rcode_of(decode_query(&m)), Some(Rcode::FORMERR));
    }

    #[test]
    fn keeps_every_option_and_flag_bit() {
        let mut m = query(1, "a", RecordType::A, Some((1232, 0, true)));
        let opt = m.len() - 11;
        m[opt + 8] = 0x01; // a Z bit
        let options = b"\x00\x0a\x00\x08cookie!!\xfd\xe9\x00\x01x";
        m[opt + 9..opt + 11].copy_from_slice(&(options.len() as u16).to_be_bytes());
        m.extend_from_slice(options);
        let e = decode_query(&m).unwrap().edns.unwrap();
        assert!(e.dnssec_ok);
        assert_eq!(e.z, 1);
        assert_eq!(e.options.as_wire(), options);
        assert_eq!(e.options.get(crate::dns::edns::code::COOKIE), Some(&b"cookie!!"[..]));
        assert_eq!(e.options.get(65001), Some(&b"x"[..]));
    }

    #[test]
    fn opt_options_must_tile_rdata() {
        let mut m = query(1, "a", RecordType::A, Some((1232, 0, false)));
        let rdlen_at = m.len() - 2;
        m[rdlen_at + 1] = 5;
        m.extend_from_slice(&[0, 10, 0, 8, 1]);
        assert_eq!(rcode_of(decode_query(&m)), Some(Rcode::FORMERR));
    }
}
