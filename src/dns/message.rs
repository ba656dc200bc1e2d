//! Decoding a whole message: an upstream's response, every section and every record.
//!
//! [`decode_query`](super::decode::decode_query) reads what answering a query needs and skips
//! the rest. A forwarder needs the opposite: everything the upstream said, as a [`Response`] the
//! server's encoder writes to the client, names compressed afresh against the client's message.
//! That is only faithful if every compression pointer inside RDATA is resolved here, and no
//! other byte is touched: a pointer is an offset into the message it arrived in and means
//! nothing in another. So each record's RDATA is read by type:
//!
//! | type                                                 | RDATA decoded as                               |
//! |------------------------------------------------------|------------------------------------------------|
//! | A, AAAA (class IN)                                   | an address, of exactly 4 or 16 bytes           |
//! | CNAME, NS, PTR, MX, SOA, SRV, TXT                    | its [`RData`] variant, names decompressed      |
//! | MD, MF, MB, MG, MR, MINFO, RP, AFSDB, RT, SIG, PX, NXT, NAPTR | [`RData::Opaque`], names decompressed in place |
//! | any other (RRSIG, NSEC, DNSKEY, DS, SVCB, CAA, TYPE65534 ...) | [`RData::Opaque`], byte for byte       |
//!
//! The second and third rows are RFC 3597 section 4, which keeps compression inside RDATA to the
//! types of RFC 1035 ("only the RR types defined in \[RFC1035\] are to be considered
//! 'well-known'") and asks of receivers:
//!
//! > Receiving servers MUST decompress domain names in RRs of well-known type, and SHOULD also
//! > decompress RRs of type RP, AFSDB, RT, SIG, PX, NXT, NAPTR, and SRV
//!
//! For every other type senders must not compress ("Servers MUST NOT compress domain names
//! embedded in the RDATA of types that are class-specific or not well-known"; RFC 4034 3.1.7 and
//! 4.1.1 say it again of RRSIG and NSEC), so their bytes are copied as they are, names and all.
//!
//! What is rejected, each with its own [`MessageError`]: a message shorter than its header or
//! than its counts say; names with pointers that do not point strictly backwards (loops, forward
//! references), reserved label types or over 255 bytes; RDLENGTH past the end of the message;
//! RDATA whose fields do not fill RDLENGTH exactly (an A record of 5 bytes, an MX whose name runs
//! past it, TXT strings that overrun it); an OPT record outside the additional section, not owned
//! by the root, a second one, or options that do not tile its RDATA (RFC 6891 6.1.1-6.1.2).
//! Decoding never panics and always terminates, whatever the bytes. Bytes after the last record
//! are ignored, as [`decode_query`](super::decode::decode_query) ignores them.
//!
//! What is not checked is left to the caller, which knows what it asked: that QR is set, the ID
//! and question match the query sent (RFC 5452 section 3), the opcode is QUERY.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::decode::{BadName, HEADER_LEN, Question, flags, opt_fields, read_name};
use super::{Class, Edns, Name, Opcode, RData, Rcode, Record, RecordType, Response, Soa};

/// A decoded DNS message. See the module documentation for how RDATA is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub id: u16,
    /// The sixteen header flag bits as received: QR, OPCODE, AA, TC, RD, RA, Z, AD, CD and the
    /// low four bits of RCODE (RFC 1035 4.1.1, RFC 4035 for AD and CD).
    pub flags: u16,
    /// The whole response code: the header's four bits below the OPT record's EXTENDED-RCODE
    /// (RFC 6891 6.1.3). Without an OPT record, the header's alone.
    pub rcode: Rcode,
    /// Every question, in order (almost always one; a FORMERR reply may carry none).
    pub questions: Vec<Question>,
    pub answer: Vec<Record>,
    pub authority: Vec<Record>,
    /// The additional section without the OPT record, which is [`edns`](Self::edns).
    pub additional: Vec<Record>,
    /// The OPT record (its EXTENDED-RCODE is folded into [`rcode`](Self::rcode)).
    pub edns: Option<Edns>,
}

impl Message {
    /// The header's OPCODE.
    pub fn opcode(&self) -> Opcode {
        Opcode(((self.flags >> 11) & 0xf) as u8)
    }

    /// The first question, if any.
    pub fn question(&self) -> Option<&Question> {
        self.questions.first()
    }

    /// QR: the message is a response.
    pub fn qr(&self) -> bool {
        self.flags & flags::QR != 0
    }

    /// AA: authoritative answer.
    pub fn aa(&self) -> bool {
        self.flags & flags::AA != 0
    }

    /// TC: truncated.
    pub fn tc(&self) -> bool {
        self.flags & flags::TC != 0
    }

    /// RD: recursion desired (copied from the query).
    pub fn rd(&self) -> bool {
        self.flags & flags::RD != 0
    }

    /// RA: recursion available.
    pub fn ra(&self) -> bool {
        self.flags & flags::RA != 0
    }

    /// AD: authentic data (RFC 4035 3.2.3).
    pub fn ad(&self) -> bool {
        self.flags & flags::AD != 0
    }

    /// CD: checking disabled (RFC 4035 3.2.2).
    pub fn cd(&self) -> bool {
        self.flags & flags::CD != 0
    }

    /// This message as a plugin's [`Response`], to be passed on to a client: the rcode
    /// (extended rcodes included), AA, TC, RA and AD, the three sections, and the OPT record's
    /// options, in order and byte for byte.
    ///
    /// The rest of the header is not the upstream's to decide: the server writes ID, QR,
    /// OPCODE, RD and CD from the client's query when it encodes the reply, along with the
    /// client's question in its spelling, and the OPT record's own fields (payload size, DO,
    /// version 0). Z is dropped (RFC 1035 4.1.1: "Must be zero in all queries and responses").
    ///
    /// The options are the upstream's to this server. Those that belong to one hop, a COOKIE
    /// (RFC 7873), edns-tcp-keepalive (RFC 7828) or padding (RFC 7830), are the caller's to
    /// remove or replace before the reply goes to a client: a client checks that a COOKIE
    /// carries its own client cookie.
    pub fn into_response(self, plugin: &'static str) -> Response {
        let mut r = Response::new(plugin);
        r.rcode = self.rcode;
        r.authoritative = self.aa();
        r.truncated = self.tc();
        r.recursion_available = self.ra();
        r.authentic_data = self.ad();
        r.answer = self.answer;
        r.authority = self.authority;
        r.additional = self.additional;
        if let Some(edns) = self.edns {
            r.options = edns.options;
        }
        r
    }
}

/// The sections of a message, for errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Section {
    Question,
    Answer,
    Authority,
    Additional,
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Section::Question => "question",
            Section::Answer => "answer",
            Section::Authority => "authority",
            Section::Additional => "additional",
        })
    }
}

/// Why a message could not be decoded. Offsets (`at`) count from the first byte of the message:
/// for a name, where the name starts; for anything else, where its question or record starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("{len} bytes is shorter than a DNS header")]
    ShortHeader { len: usize },
    /// The message ends before the questions and records its header counts.
    #[error("the message ends inside the {section} entry at byte {at}")]
    Truncated { section: Section, at: usize },
    /// A compression pointer that does not point strictly before the labels it ends: a loop, a
    /// forward reference, a pointer past the end (RFC 1035 4.1.4: "a pointer to a prior
    /// occurance of the same name").
    #[error("name at byte {at}: a compression pointer does not point to an earlier name")]
    BadPointer { at: usize },
    /// Label types 0b01 and 0b10 (extended labels, retired by RFC 6891 5).
    #[error("name at byte {at}: reserved label type")]
    BadLabelType { at: usize },
    /// RFC 1035 2.3.4: "255 octets or less".
    #[error("name at byte {at} is longer than 255 bytes")]
    NameTooLong { at: usize },
    #[error("{rtype} record at byte {at}: RDLENGTH {rdlength} runs past the end of the message")]
    RdataOverrun { at: usize, rtype: RecordType, rdlength: u16 },
    /// An A or AAAA record of class IN whose RDATA is not one address.
    #[error("{rtype} record at byte {at}: {rdlength} bytes of RDATA is not an address")]
    AddressLength { at: usize, rtype: RecordType, rdlength: u16 },
    /// A fixed field, name or character-string of the RDATA runs past RDLENGTH.
    #[error("{rtype} record at byte {at}: RDATA ends inside its fields")]
    RdataTooShort { at: usize, rtype: RecordType },
    /// RDATA goes on after its last field.
    #[error("{rtype} record at byte {at}: {unused} bytes of RDATA after its fields")]
    RdataTooLong { at: usize, rtype: RecordType, unused: u16 },
    /// A TXT character-string runs past RDLENGTH.
    #[error("TXT record at byte {at}: character-strings do not fill RDATA exactly")]
    TxtNotTiling { at: usize },
    /// RFC 6891 6.1.1: "The OPT RR MAY be placed anywhere within the additional data section."
    #[error("OPT record at byte {at} in the {section} section")]
    OptOutsideAdditional { section: Section, at: usize },
    /// RFC 6891 6.1.2: NAME "MUST be 0 (root domain)".
    #[error("OPT record at byte {at} not owned by the root")]
    OptNotRoot { at: usize },
    /// RFC 6891 6.1.1: "it MUST be the only OPT RR in that message".
    #[error("second OPT record at byte {at}")]
    DuplicateOpt { at: usize },
    #[error("OPT record at byte {at}: options do not tile its RDATA")]
    BadOptions { at: usize },
}

/// Decodes a whole message. See the module documentation for what is read and what rejected.
pub fn decode_message(msg: &[u8]) -> Result<Message, MessageError> {
    let header = msg.get(..HEADER_LEN).ok_or(MessageError::ShortHeader { len: msg.len() })?;
    let word = |i: usize| u16::from_be_bytes([header[i], header[i + 1]]);
    let (id, flags) = (word(0), word(2));
    let [qdcount, ancount, nscount, arcount] = [word(4), word(6), word(8), word(10)];
    let mut r = Reader { msg, pos: HEADER_LEN };

    // Counts are the sender's word; what is reserved up front is bounded by the bytes left.
    let mut questions = Vec::with_capacity(r.room_for(qdcount, QUESTION_MIN_LEN));
    for _ in 0..qdcount {
        questions.push(r.question()?);
    }
    let answer = r.records(Section::Answer, ancount)?;
    let authority = r.records(Section::Authority, nscount)?;

    // Most responses end with an OPT record, which is not kept among the records.
    let mut additional = Vec::with_capacity(r.room_for(arcount.saturating_sub(1), RECORD_MIN_LEN));
    let mut edns: Option<Edns> = None;
    let mut ext_rcode = 0;
    for _ in 0..arcount {
        let raw = r.raw_record(Section::Additional)?;
        if raw.rtype != RecordType::OPT {
            additional.push(r.record(raw)?);
        } else if edns.is_some() {
            return Err(MessageError::DuplicateOpt { at: raw.at });
        } else {
            let (e, x) = r.opt(raw)?;
            (edns, ext_rcode) = (Some(e), x);
        }
    }
    // RFC 6891 6.1.3: EXTENDED-RCODE "Forms the upper 8 bits of extended 12-bit RCODE (together
    // with the 4 bits defined in [RFC1035])".
    let rcode = Rcode(u16::from(ext_rcode) << 4 | flags & 0xf);
    Ok(Message { id, flags, rcode, questions, answer, authority, additional, edns })
}

/// The answer, authority and additional records of `msg` from byte `at` on, `counts[i]` in each
/// section: what [`decode_message`] reads after the question, for sections kept encoded after a
/// question of their own (a cache's [`WireAnswer`](super::WireAnswer)). Allocates one vector per
/// non-empty section.
pub fn decode_sections(msg: &[u8], at: usize, counts: [u16; 3]) -> Result<[Vec<Record>; 3], MessageError> {
    let mut r = Reader { msg, pos: at };
    let answer = r.records(Section::Answer, counts[0])?;
    let authority = r.records(Section::Authority, counts[1])?;
    let additional = r.records(Section::Additional, counts[2])?;
    Ok([answer, authority, additional])
}

/// The smallest question: the root name, QTYPE and QCLASS.
const QUESTION_MIN_LEN: usize = 1 + 4;
/// The smallest record: the root name, TYPE, CLASS, TTL, RDLENGTH and no RDATA.
const RECORD_MIN_LEN: usize = 1 + 10;

/// A record's owner and fixed fields, and where its RDATA lies, before the RDATA is read: the
/// OPT pseudo-record reads its own way.
struct RawRecord {
    /// Where the record starts.
    at: usize,
    name: Name,
    rtype: RecordType,
    class: Class,
    ttl: u32,
    rdata: std::ops::Range<usize>,
}

/// Reads the message front to back.
struct Reader<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// How many entries of at least `min_len` bytes the rest of the message could hold, at most
    /// `count`: a capacity no header can inflate.
    fn room_for(&self, count: u16, min_len: usize) -> usize {
        usize::from(count).min(self.msg.len().saturating_sub(self.pos) / min_len)
    }

    fn name(&mut self, section: Section) -> Result<Name, MessageError> {
        let at = self.pos;
        let (name, next) =
            read_name(self.msg, at).map_err(|e| name_error(e, at, MessageError::Truncated { section, at }))?;
        self.pos = next;
        Ok(name)
    }

    /// The next `N` bytes, or a [`MessageError::Truncated`] blaming the entry at `at`.
    fn fixed<const N: usize>(&mut self, section: Section, at: usize) -> Result<[u8; N], MessageError> {
        let bytes = self.msg.get(self.pos..self.pos + N).ok_or(MessageError::Truncated { section, at })?;
        let mut out = [0; N];
        out.copy_from_slice(bytes);
        self.pos += N;
        Ok(out)
    }

    fn question(&mut self) -> Result<Question, MessageError> {
        let at = self.pos;
        let name = self.name(Section::Question)?;
        let [t0, t1, c0, c1] = self.fixed(Section::Question, at)?;
        Ok(Question {
            name,
            qtype: RecordType(u16::from_be_bytes([t0, t1])),
            qclass: Class(u16::from_be_bytes([c0, c1])),
        })
    }

    /// `count` records of the answer or authority section, where an OPT record is an error.
    fn records(&mut self, section: Section, count: u16) -> Result<Vec<Record>, MessageError> {
        let mut records = Vec::with_capacity(self.room_for(count, RECORD_MIN_LEN));
        for _ in 0..count {
            let raw = self.raw_record(section)?;
            if raw.rtype == RecordType::OPT {
                return Err(MessageError::OptOutsideAdditional { section, at: raw.at });
            }
            records.push(self.record(raw)?);
        }
        Ok(records)
    }

    /// One resource record's NAME, TYPE, CLASS, TTL and RDLENGTH (RFC 1035 4.1.3), leaving the
    /// reader after its RDATA.
    fn raw_record(&mut self, section: Section) -> Result<RawRecord, MessageError> {
        let at = self.pos;
        let name = self.name(section)?;
        let [t0, t1, c0, c1, l0, l1, l2, l3, d0, d1] = self.fixed(section, at)?;
        let rtype = RecordType(u16::from_be_bytes([t0, t1]));
        let class = Class(u16::from_be_bytes([c0, c1]));
        let ttl = u32::from_be_bytes([l0, l1, l2, l3]);
        let rdlength = u16::from_be_bytes([d0, d1]);
        let rdata = self.pos..self.pos + usize::from(rdlength);
        if rdata.end > self.msg.len() {
            return Err(MessageError::RdataOverrun { at, rtype, rdlength });
        }
        self.pos = rdata.end;
        Ok(RawRecord { at, name, rtype, class, ttl, rdata })
    }

    /// The record with its RDATA read by type.
    fn record(&self, raw: RawRecord) -> Result<Record, MessageError> {
        // The RDATA reader sees the message up to the end of this RDATA: nothing it reads can
        // run into the next record, and pointers still reach every earlier byte.
        let rdata = Rdata { msg: &self.msg[..raw.rdata.end], pos: raw.rdata.start, at: raw.at, rtype: raw.rtype };
        let data = rdata.decode(raw.class)?;
        Ok(Record { name: raw.name, class: raw.class, ttl: raw.ttl, data })
    }

    /// The OPT pseudo-record (RFC 6891 6.1.2), and its EXTENDED-RCODE: CLASS is the sender's UDP
    /// payload size, TTL holds EXTENDED-RCODE, VERSION, DO and Z, RDATA the options.
    fn opt(&self, raw: RawRecord) -> Result<(Edns, u8), MessageError> {
        if !raw.name.is_root() {
            return Err(MessageError::OptNotRoot { at: raw.at });
        }
        opt_fields(raw.class.0, raw.ttl, &self.msg[raw.rdata]).map_err(|_| MessageError::BadOptions { at: raw.at })
    }
}

/// The error for a name at `at` that could not be read; `truncated` is what running out of
/// bytes means where it was read.
fn name_error(e: BadName, at: usize, truncated: MessageError) -> MessageError {
    match e {
        BadName::Truncated => truncated,
        BadName::BadPointer => MessageError::BadPointer { at },
        BadName::BadLabelType => MessageError::BadLabelType { at },
        BadName::TooLong => MessageError::NameTooLong { at },
    }
}

/// A field of RDATA whose type allows compressed names: the layout by which such RDATA is
/// decompressed into [`RData::Opaque`] bytes.
#[derive(Clone, Copy, Debug)]
enum Field {
    /// So many bytes, copied.
    Fixed(usize),
    /// A domain name, possibly compressed, written out in full.
    Name,
    /// A <character-string>: a length byte and that many bytes (RFC 1035 3.3).
    CharString,
    /// Whatever is left, copied (a signature, a type bitmap).
    Rest,
}

/// The layout of the types RFC 3597 section 4 says receivers decompress and that have no
/// [`RData`] variant of their own; `None` for every other type.
fn compressible_layout(rtype: RecordType) -> Option<&'static [Field]> {
    use Field::*;
    Some(match rtype.0 {
        // RFC 1035 3.3.4-3.3.8, 3.3.11: MD, MF (obsolete), MB, MG, MR: one <domain-name>.
        3 | 4 | 7 | 8 | 9 => &[Name],
        // RFC 1035 3.3.7: MINFO is RMAILBX and EMAILBX, two <domain-name>s.
        14 => &[Name, Name],
        // RFC 1183 2.2: RP is <mbox-dname> <txt-dname>.
        17 => &[Name, Name],
        // RFC 1183 1 and 3.3: AFSDB is <subtype> <hostname>, RT is <preference> <intermediate-host>.
        18 | 21 => &[Fixed(2), Name],
        // RFC 2535 4.1: SIG is type covered (2), algorithm (1), labels (1), original TTL (4),
        // signature expiration (4) and inception (4), key tag (2), signer's name, signature.
        24 => &[Fixed(18), Name, Rest],
        // RFC 2163 4: PX is PREFERENCE, MAP822, MAPX400.
        26 => &[Fixed(2), Name, Name],
        // RFC 2535 5.2: NXT is the next domain name and a type bitmap.
        30 => &[Name, Rest],
        // RFC 3403 4.1: NAPTR is ORDER, PREFERENCE, FLAGS, SERVICES, REGEXP (character-strings)
        // and REPLACEMENT (a <domain-name>).
        35 => &[Fixed(4), CharString, CharString, CharString, Name],
        _ => return None,
    })
}

/// Reads one record's RDATA from `msg[pos..]`; `msg` ends where the RDATA ends.
struct Rdata<'a> {
    msg: &'a [u8],
    pos: usize,
    /// Where the record starts, for errors.
    at: usize,
    rtype: RecordType,
}

impl<'a> Rdata<'a> {
    fn decode(mut self, class: Class) -> Result<RData, MessageError> {
        let data = match self.rtype {
            // RFC 1035 3.4.1 and RFC 3596 2.1-2.2: addresses of the Internet class. Other
            // classes define A differently (CHAOS: a domain name and an address), so theirs
            // stay opaque below.
            RecordType::A if class == Class::IN => RData::A(Ipv4Addr::from(self.address::<4>()?)),
            RecordType::AAAA if class == Class::IN => RData::Aaaa(Ipv6Addr::from(self.address::<16>()?)),
            RecordType::CNAME => RData::Cname(self.name()?),
            RecordType::NS => RData::Ns(self.name()?),
            RecordType::PTR => RData::Ptr(self.name()?),
            RecordType::MX => RData::Mx { preference: self.u16()?, exchange: self.name()? },
            RecordType::SRV => {
                RData::Srv { priority: self.u16()?, weight: self.u16()?, port: self.u16()?, target: self.name()? }
            }
            RecordType::SOA => RData::Soa(Box::new(Soa {
                mname: self.name()?,
                rname: self.name()?,
                serial: self.u32()?,
                refresh: self.u32()?,
                retry: self.u32()?,
                expire: self.u32()?,
                minimum: self.u32()?,
            })),
            RecordType::TXT => self.txt()?,
            rtype => match compressible_layout(rtype) {
                Some(layout) => RData::Opaque { rtype, data: self.decompressed(layout)? },
                None => RData::Opaque { rtype, data: Box::from(self.rest()) },
            },
        };
        if self.pos != self.msg.len() {
            let unused = (self.msg.len() - self.pos) as u16;
            return Err(MessageError::RdataTooLong { at: self.at, rtype: self.rtype, unused });
        }
        Ok(data)
    }

    fn too_short(&self) -> MessageError {
        MessageError::RdataTooShort { at: self.at, rtype: self.rtype }
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], MessageError> {
        let bytes = self.msg.get(self.pos..self.pos + n).ok_or_else(|| self.too_short())?;
        self.pos += n;
        Ok(bytes)
    }

    fn rest(&mut self) -> &'a [u8] {
        let rest = &self.msg[self.pos..];
        self.pos = self.msg.len();
        rest
    }

    fn u16(&mut self) -> Result<u16, MessageError> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, MessageError> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The whole RDATA as one address of `N` bytes.
    fn address<const N: usize>(&mut self) -> Result<[u8; N], MessageError> {
        let rest = self.rest();
        let rdlength = rest.len() as u16;
        let mut out = [0; N];
        if rest.len() != N {
            return Err(MessageError::AddressLength { at: self.at, rtype: self.rtype, rdlength });
        }
        out.copy_from_slice(rest);
        Ok(out)
    }

    /// A possibly compressed name. One that runs past RDLENGTH is truncated here, since `msg`
    /// ends with the RDATA.
    fn name(&mut self) -> Result<Name, MessageError> {
        let (name, next) = read_name(self.msg, self.pos).map_err(|e| name_error(e, self.pos, self.too_short()))?;
        self.pos = next;
        Ok(name)
    }

    fn char_string(&mut self) -> Result<&'a [u8], MessageError> {
        let len = self.bytes(1)?[0];
        self.bytes(usize::from(len))
    }

    /// RFC 1035 3.3.14: TXT-DATA is "One or more <character-string>s", which must end exactly
    /// where RDATA does. RDATA of none is kept too (as no strings): it is malformed, but
    /// passing it on loses nothing.
    fn txt(&mut self) -> Result<RData, MessageError> {
        let mut strings = Vec::new();
        while self.pos < self.msg.len() {
            let s = self.char_string().map_err(|_| MessageError::TxtNotTiling { at: self.at })?;
            strings.push(Box::from(s));
        }
        Ok(RData::Txt(strings))
    }

    /// The RDATA with every name of `layout` written out in full.
    fn decompressed(&mut self, layout: &[Field]) -> Result<Box<[u8]>, MessageError> {
        let mut out = Vec::with_capacity(self.msg.len() - self.pos + 32);
        for field in layout {
            match *field {
                Field::Fixed(n) => out.extend_from_slice(self.bytes(n)?),
                Field::Name => out.extend_from_slice(self.name()?.as_wire()),
                Field::CharString => {
                    let s = self.char_string()?;
                    out.push(s.len() as u8);
                    out.extend_from_slice(s);
                }
                Field::Rest => out.extend_from_slice(self.rest()),
            }
        }
        Ok(out.into_boxed_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::decode::flags::{AA, AD, CD, QR, RA, RD, TC};
    use crate::dns::edns::code;
    use crate::fuzzing::{WireMessage, pointer, wire_name as w};

    const IN: Class = Class::IN;

    /// A response to `www.example.org. A` with the question at offset 12; `www` is at 12,
    /// `example.org` at 16, `org` at 24.
    fn response(header_flags: u16) -> WireMessage {
        let mut m = WireMessage::new(0xbeef, QR | header_flags);
        m.question(&w("www.example.org"), RecordType::A, IN);
        m
    }

    fn concat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn decodes_a_forwarded_answer() {
        let mut m = response(RD | RA | AD);
        let cname_target = m.offset() as usize + 12;
        m.record(Section::Answer, &pointer(12), RecordType::CNAME, IN, 300, &concat(&[b"\x03web", &pointer(16)]));
        m.record(Section::Answer, &pointer(cname_target as u16), RecordType::A, IN, 60, &[192, 0, 2, 1]);
        m.record(Section::Answer, &pointer(cname_target as u16), RecordType::A, IN, 60, &[192, 0, 2, 2]);
        m.opt(1232, 0, true, b"\x00\x0f\x00\x02\x00\x03\x00\x0a\x00\x08ABCDEFGH");
        let msg = decode_message(&m.finish()).unwrap();

        assert_eq!((msg.id, msg.opcode(), msg.rcode), (0xbeef, Opcode::QUERY, Rcode::NOERROR));
        assert!(msg.qr() && msg.rd() && msg.ra() && msg.ad() && !msg.aa() && !msg.tc() && !msg.cd());
        assert_eq!(msg.questions.len(), 1);
        assert_eq!(msg.question().unwrap().name.to_string(), "www.example.org.");
        let answers: Vec<String> = msg.answer.iter().map(ToString::to_string).collect();
        assert_eq!(
            answers,
            [
                "www.example.org. 300 IN CNAME web.example.org.",
                "web.example.org. 60 IN A 192.0.2.1",
                "web.example.org. 60 IN A 192.0.2.2"
            ]
        );
        assert!(msg.authority.is_empty() && msg.additional.is_empty());
        let edns = msg.edns.unwrap();
        assert_eq!((edns.udp_size, edns.version, edns.dnssec_ok), (1232, 0, true));
        assert_eq!(edns.options.get(code::COOKIE), Some(&b"ABCDEFGH"[..]));
        assert_eq!(edns.options.extended_errors().next().unwrap().info_code, 3);
    }

    #[test]
    fn keeps_all_questions_and_flag_bits_and_ignores_trailing_bytes() {
        let mut m = WireMessage::new(1, 0xfff0);
        m.question(&w("a.example"), RecordType::A, IN);
        m.question(&pointer(12), RecordType::AAAA, Class::CH);
        m.raw(b"trailing garbage");
        let msg = decode_message(&m.finish()).unwrap();
        assert_eq!(msg.flags, 0xfff0);
        assert_eq!(msg.opcode(), Opcode(15));
        assert!(msg.qr() && msg.aa() && msg.tc() && msg.rd() && msg.ra() && msg.ad() && msg.cd());
        let qs: Vec<_> = msg.questions.iter().map(|q| (q.name.to_string(), q.qtype, q.qclass)).collect();
        assert_eq!(qs, [("a.example.".into(), RecordType::A, IN), ("a.example.".into(), RecordType::AAAA, Class::CH)]);

        let none = decode_message(&WireMessage::new(2, QR | 1).finish()).unwrap();
        assert_eq!((none.questions.len(), none.rcode), (0, Rcode::FORMERR));
    }

    #[test]
    fn extended_rcode_joins_header_and_opt_bits() {
        // BADCOOKIE, 23: 7 in the header, 1 in EXTENDED-RCODE (RFC 7873 8, RFC 6891 6.1.3).
        let mut m = response(7);
        m.opt(4096, 1, false, b"");
        assert_eq!(decode_message(&m.finish()).unwrap().rcode, Rcode(23));
        let mut m = response(3);
        m.opt(4096, 0, false, b"");
        assert_eq!(decode_message(&m.finish()).unwrap().rcode, Rcode::NXDOMAIN);
        assert_eq!(decode_message(&response(0xf).finish()).unwrap().rcode, Rcode(15));
    }

    #[test]
    fn names_in_rfc1035_rdata_are_decompressed_in_every_section() {
        let mut m = response(3);
        let soa = concat(&[b"\x02ns", &pointer(16), b"\x0ahostmaster", &pointer(16), &[0, 0, 0, 1, 0, 0, 0, 2]]);
        let soa = concat(&[&soa, &[0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5]]);
        m.record(Section::Authority, &pointer(16), RecordType::SOA, IN, 900, &soa);
        m.record(Section::Authority, &pointer(16), RecordType::NS, IN, 900, &concat(&[b"\x03ns1", &pointer(16)]));
        m.record(Section::Additional, &pointer(16), RecordType::MX, IN, 1, &concat(&[&[0, 10], &pointer(12)]));
        // RFC 2782 forbids compressing SRV targets, RFC 3597 4 asks receivers to cope.
        m.record(
            Section::Additional,
            &pointer(16),
            RecordType::SRV,
            IN,
            1,
            &concat(&[&[0, 1, 0, 2, 0, 53], &pointer(12)]),
        );
        m.record(Section::Additional, &w("1.2.0.192.in-addr.arpa"), RecordType::PTR, IN, 1, &pointer(12));
        let msg = decode_message(&m.finish()).unwrap();
        assert_eq!(msg.rcode, Rcode::NXDOMAIN);
        let data: Vec<String> = msg.authority.iter().chain(&msg.additional).map(|r| r.data.to_string()).collect();
        assert_eq!(
            data,
            [
                "ns.example.org. hostmaster.example.org. 1 2 3 4 5",
                "ns1.example.org.",
                "10 www.example.org.",
                "1 2 53 www.example.org.",
                "www.example.org."
            ]
        );
    }

    /// RDATA decoded as an opaque record of `rtype` in an answer to the usual question.
    fn opaque(rtype: RecordType, class: Class, rdata: &[u8]) -> Result<Box<[u8]>, MessageError> {
        let mut m = response(0);
        m.record(Section::Answer, &pointer(12), rtype, class, 0, rdata);
        let msg = decode_message(&m.finish())?;
        match &msg.answer[0].data {
            RData::Opaque { rtype: t, data } if *t == rtype => Ok(data.clone()),
            other => panic!("not opaque: {other:?}"),
        }
    }

    #[test]
    fn rfc3597_section_4_types_are_decompressed_into_their_opaque_bytes() {
        let www = w("www.example.org");
        let ns = w("ns.example.org");
        let org = w("org");
        // A name written with a pointer to "example.org" (16) or the whole question name (12).
        let ns_ptr = concat(&[b"\x02ns", &pointer(16)]);
        let www_ptr = pointer(12).to_vec();
        let org_ptr = pointer(24).to_vec();
        let cases: Vec<(u16, Vec<u8>, Vec<u8>)> = vec![
            (3, www_ptr.clone(), www.clone()),                                  // MD
            (4, www_ptr.clone(), www.clone()),                                  // MF
            (7, www_ptr.clone(), www.clone()),                                  // MB
            (8, www_ptr.clone(), www.clone()),                                  // MG
            (9, www_ptr.clone(), www.clone()),                                  // MR
            (14, concat(&[&www_ptr, &ns_ptr]), concat(&[&www, &ns])),           // MINFO
            (17, concat(&[&www_ptr, &ns_ptr]), concat(&[&www, &ns])),           // RP
            (18, concat(&[&[0, 1], &ns_ptr[..]]), concat(&[&[0, 1], &ns[..]])), // AFSDB
            (21, concat(&[&[0, 9], &ns_ptr[..]]), concat(&[&[0, 9], &ns[..]])), // RT
            (26, concat(&[&[0, 5], &www_ptr[..], &org_ptr]), concat(&[&[0, 5], &www[..], &org])), // PX
            (30, concat(&[&ns_ptr, b"\x00\x06\x40"]), concat(&[&ns, b"\x00\x06\x40"])), // NXT
            (24, concat(&[&[7; 18], &ns_ptr[..], b"sig"]), concat(&[&[7; 18], &ns[..], b"sig"])), // SIG
            (
                35,
                concat(&[b"\x00\x01\x00\x02\x01s\x07SIP+D2U\x00", &www_ptr]),
                concat(&[b"\x00\x01\x00\x02\x01s\x07SIP+D2U\x00", &www]),
            ), // NAPTR
        ];
        for (t, wire, want) in cases {
            let got = opaque(RecordType(t), IN, &wire).unwrap_or_else(|e| panic!("type {t}: {e}"));
            assert_eq!(&got[..], &want[..], "type {t}");
        }
        // Their names must fit RDATA like any other field.
        assert_eq!(
            opaque(RecordType(17), IN, &www_ptr),
            Err(MessageError::RdataTooShort { at: 33, rtype: RecordType(17) })
        );
        assert_eq!(
            opaque(RecordType(18), IN, &concat(&[&[0, 1], &ns_ptr[..], b"x"])),
            Err(MessageError::RdataTooLong { at: 33, rtype: RecordType(18), unused: 1 })
        );
    }

    #[test]
    fn every_other_type_is_kept_byte_for_byte() {
        // RRSIG's signer's name is never compressed (RFC 4034 3.1.7): bytes that would read as a
        // pointer are data. The same for NSEC, DNSKEY, DS, SVCB, CAA and unknown types.
        let rrsig =
            concat(&[&[0, 1, 13, 3, 0, 0, 0, 60, 0x68, 0, 0, 0, 0x67, 0, 0, 0, 0x30, 0x39], &pointer(16), b"sig"]);
        for (t, rdata) in [
            (RecordType::RRSIG, rrsig),
            (RecordType::NSEC, concat(&[&pointer(12), b"\x00\x01\x40"])),
            (RecordType::DNSKEY, b"\x01\x01\x03\x0dkey".to_vec()),
            (RecordType::DS, b"\x30\x39\x0d\x02digest".to_vec()),
            (RecordType::SVCB, concat(&[b"\x00\x01", &w("svc.example.org")])),
            (RecordType::CAA, b"\x00\x05issueca.example".to_vec()),
            (RecordType::DNAME, pointer(16).to_vec()),
            (RecordType(65534), vec![0xc0, 0x0c, 0xff]),
            (RecordType(65534), vec![]),
        ] {
            assert_eq!(&opaque(t, IN, &rdata).unwrap()[..], &rdata[..], "{t}");
        }
        // A and AAAA are addresses in class IN only; CHAOS has its own A.
        assert_eq!(&opaque(RecordType::A, Class::CH, b"\x01a\x00\x00\x01").unwrap()[..], b"\x01a\x00\x00\x01");
    }

    #[test]
    fn txt_strings_are_kept_as_sent() {
        let mut m = response(0);
        m.record(Section::Answer, &pointer(12), RecordType::TXT, IN, 0, b"\x03one\x00\x05three\x00");
        m.record(Section::Answer, &pointer(12), RecordType::TXT, IN, 0, b"");
        let msg = decode_message(&m.finish()).unwrap();
        let strings = |r: &Record| match &r.data {
            RData::Txt(s) => s.iter().map(|s| s.to_vec()).collect::<Vec<_>>(),
            other => panic!("not TXT: {other:?}"),
        };
        assert_eq!(strings(&msg.answer[0]), [&b"one"[..], b"", b"three", b""]);
        assert!(strings(&msg.answer[1]).is_empty());
    }

    /// Decodes the usual response with `rdata` as an answer of `rtype`.
    fn answer(rtype: RecordType, rdata: &[u8]) -> Result<Message, MessageError> {
        let mut m = response(0);
        m.record(Section::Answer, &pointer(12), rtype, IN, 0, rdata);
        decode_message(&m.finish())
    }

    #[test]
    fn rdata_must_fill_rdlength_exactly() {
        use MessageError::*;
        // The answer record starts at 33, its RDATA at 45.
        assert_eq!(
            answer(RecordType::A, &[1, 2, 3, 4, 5]),
            Err(AddressLength { at: 33, rtype: RecordType::A, rdlength: 5 })
        );
        assert_eq!(answer(RecordType::A, &[]), Err(AddressLength { at: 33, rtype: RecordType::A, rdlength: 0 }));
        assert_eq!(
            answer(RecordType::AAAA, &[0; 15]),
            Err(AddressLength { at: 33, rtype: RecordType::AAAA, rdlength: 15 })
        );
        assert_eq!(answer(RecordType::TXT, b"\x05four"), Err(TxtNotTiling { at: 33 }));
        assert_eq!(answer(RecordType::TXT, b"\x00\x01"), Err(TxtNotTiling { at: 33 }));
        assert_eq!(answer(RecordType::MX, &[0]), Err(RdataTooShort { at: 33, rtype: RecordType::MX }));
        // The exchange's labels run past RDLENGTH into bytes that would otherwise end it.
        let mut m = response(0);
        m.record(Section::Answer, &pointer(12), RecordType::MX, IN, 0, b"\x00\x01\x01a");
        let mut bytes = m.finish();
        bytes.push(0);
        assert_eq!(decode_message(&bytes), Err(RdataTooShort { at: 33, rtype: RecordType::MX }));
        assert_eq!(
            answer(RecordType::MX, &concat(&[&[0, 1], &pointer(12), &[0]])),
            Err(RdataTooLong { at: 33, rtype: RecordType::MX, unused: 1 })
        );
        assert_eq!(answer(RecordType::CNAME, &[]), Err(RdataTooShort { at: 33, rtype: RecordType::CNAME }));
        let soa_without_minimum = concat(&[&pointer(12), &pointer(12), &[0; 16]]);
        assert_eq!(
            answer(RecordType::SOA, &soa_without_minimum),
            Err(RdataTooShort { at: 33, rtype: RecordType::SOA })
        );
        assert_eq!(
            answer(RecordType(35), b"\x00\x01\x00\x02\x05s"),
            Err(RdataTooShort { at: 33, rtype: RecordType(35) })
        );
    }

    #[test]
    fn bad_names_and_pointers_anywhere_are_errors() {
        use MessageError::*;
        // The MX exchange (at 47) points past the end of the message: not a prior name.
        assert_eq!(answer(RecordType::MX, &concat(&[&[0, 1], &pointer(0x3fff)])), Err(BadPointer { at: 47 }));
        // ... or at itself, or at its own record.
        assert_eq!(answer(RecordType::MX, &concat(&[&[0, 1], &pointer(47)])), Err(BadPointer { at: 47 }));
        assert_eq!(answer(RecordType::CNAME, &concat(&[b"\x01a", &pointer(45)])), Err(BadPointer { at: 45 }));
        // An owner pointing forward, at the next record.
        let mut m = response(0);
        m.record(Section::Answer, &pointer(35), RecordType::A, IN, 0, &[1, 2, 3, 4]);
        assert_eq!(decode_message(&m.finish()), Err(BadPointer { at: 33 }));
        // A question name that is a pointer loop.
        let mut m = WireMessage::new(1, QR);
        m.question(&[1, b'a', 0xc0, 12], RecordType::A, IN);
        assert_eq!(decode_message(&m.finish()), Err(BadPointer { at: 12 }));
        let mut m = response(0);
        m.record(Section::Additional, &[0x41, b'a', 0], RecordType::A, IN, 0, &[1, 2, 3, 4]);
        assert_eq!(decode_message(&m.finish()), Err(BadLabelType { at: 33 }));
        let long = concat(&[&[63; 1], &[b'x'; 63]]).repeat(4);
        assert_eq!(answer(RecordType::NS, &concat(&[&long, &[0]])), Err(NameTooLong { at: 45 }));
    }

    #[test]
    fn truncation_and_overruns() {
        use MessageError::*;
        assert_eq!(decode_message(&[0; 11]), Err(ShortHeader { len: 11 }));
        let good = {
            let mut m = response(0);
            m.record(Section::Answer, &pointer(12), RecordType::A, IN, 0, &[1, 2, 3, 4]);
            m.finish()
        };
        assert!(decode_message(&good).is_ok());
        assert_eq!(decode_message(&good[..20]), Err(Truncated { section: Section::Question, at: 12 }));
        assert_eq!(decode_message(&good[..31]), Err(Truncated { section: Section::Question, at: 12 }));
        assert_eq!(decode_message(&good[..34]), Err(Truncated { section: Section::Answer, at: 33 }));
        assert_eq!(decode_message(&good[..40]), Err(Truncated { section: Section::Answer, at: 33 }));
        assert_eq!(decode_message(&good[..48]), Err(RdataOverrun { at: 33, rtype: RecordType::A, rdlength: 4 }));
        // Counts far beyond the bytes: an error, not a large allocation.
        let mut huge = good.clone();
        huge[4..12].copy_from_slice(&[0xff; 8]);
        assert_eq!(decode_message(&huge), Err(Truncated { section: Section::Question, at: 44 }));
        let mut m = response(0);
        m.count(Section::Additional, u16::MAX);
        assert_eq!(decode_message(&m.finish()), Err(Truncated { section: Section::Additional, at: 33 }));
    }

    #[test]
    fn opt_rules_of_rfc6891() {
        use MessageError::*;
        let mut two = response(0);
        two.opt(1232, 0, false, b"").opt(512, 0, false, b"");
        assert_eq!(decode_message(&two.finish()), Err(DuplicateOpt { at: 44 }));
        let mut not_root = response(0);
        not_root.record(Section::Additional, &pointer(12), RecordType::OPT, Class(1232), 0, b"");
        assert_eq!(decode_message(&not_root.finish()), Err(OptNotRoot { at: 33 }));
        let mut in_answer = response(0);
        in_answer.record(Section::Answer, &[0], RecordType::OPT, Class(1232), 0, b"");
        assert_eq!(decode_message(&in_answer.finish()), Err(OptOutsideAdditional { section: Section::Answer, at: 33 }));
        let mut in_authority = response(0);
        in_authority.record(Section::Authority, &[0], RecordType::OPT, Class(1232), 0, b"");
        assert_eq!(
            decode_message(&in_authority.finish()),
            Err(OptOutsideAdditional { section: Section::Authority, at: 33 })
        );
        let mut untiled = response(0);
        untiled.opt(1232, 0, false, b"\x00\x0a\x00\x08\x01");
        assert_eq!(decode_message(&untiled.finish()), Err(BadOptions { at: 33 }));
        // Anywhere in the additional section, between other records; version and Z as sent.
        let mut m = response(0);
        m.record(Section::Additional, &pointer(12), RecordType::A, IN, 0, &[1, 2, 3, 4]);
        m.record(Section::Additional, &[0], RecordType::OPT, Class(100), 0x0001_8001, b"\x00\x0c\x00\x00");
        m.record(Section::Additional, &pointer(12), RecordType::A, IN, 0, &[5, 6, 7, 8]);
        let msg = decode_message(&m.finish()).unwrap();
        assert_eq!(msg.additional.len(), 2);
        let e = msg.edns.unwrap();
        assert_eq!((e.udp_size, e.version, e.dnssec_ok, e.z), (100, 1, true, 1));
        assert_eq!(e.options.as_wire(), b"\x00\x0c\x00\x00");
    }

    #[test]
    fn errors_name_what_and_where() {
        assert_eq!(
            MessageError::AddressLength { at: 33, rtype: RecordType::A, rdlength: 5 }.to_string(),
            "A record at byte 33: 5 bytes of RDATA is not an address"
        );
        assert_eq!(
            MessageError::OptOutsideAdditional { section: Section::Answer, at: 40 }.to_string(),
            "OPT record at byte 40 in the answer section"
        );
        assert_eq!(
            MessageError::Truncated { section: Section::Question, at: 12 }.to_string(),
            "the message ends inside the question entry at byte 12"
        );
    }

    #[test]
    fn into_response_keeps_what_the_client_should_see() {
        let mut m = response(AA | TC | RA | AD | CD | 7);
        m.record(Section::Answer, &pointer(12), RecordType::A, IN, 5, &[1, 2, 3, 4]);
        m.record(Section::Authority, &pointer(16), RecordType::NS, IN, 5, &pointer(12));
        m.record(Section::Additional, &pointer(12), RecordType::AAAA, IN, 5, &[0; 16]);
        m.opt(1232, 1, true, b"\x00\x0f\x00\x02\x00\x16");
        let msg = decode_message(&m.finish()).unwrap();
        let r = msg.clone().into_response("forward");
        assert_eq!(r.plugin(), "forward");
        assert_eq!(r.rcode, Rcode(23));
        assert!(r.authoritative && r.truncated && r.recursion_available && r.authentic_data);
        assert_eq!((r.answer, r.authority, r.additional), (msg.answer, msg.authority, msg.additional));
        assert_eq!(r.options.as_wire(), b"\x00\x0f\x00\x02\x00\x16");
        let bare = decode_message(&response(RD).finish()).unwrap().into_response("x");
        assert!(!bare.authoritative && !bare.truncated && !bare.recursion_available && !bare.authentic_data);
        assert_eq!((bare.rcode, bare.options.is_empty()), (Rcode::NOERROR, true));
    }

    #[test]
    fn every_prefix_and_bit_flip_of_a_message_decodes_or_fails_cleanly() {
        let mut m = response(RA);
        m.record(Section::Answer, &pointer(12), RecordType::CNAME, IN, 5, &concat(&[b"\x01x", &pointer(16)]));
        m.record(Section::Answer, &pointer(45), RecordType::MX, IN, 5, &concat(&[&[0, 1], &pointer(45)]));
        m.record(Section::Authority, &pointer(16), RecordType(17), IN, 5, &concat(&[&pointer(12), &pointer(45)]));
        m.record(Section::Additional, &pointer(16), RecordType::TXT, IN, 5, b"\x01a\x00");
        m.opt(1232, 0, false, b"\x00\x0a\x00\x02ab");
        let good = m.finish();
        assert!(decode_message(&good).is_ok());
        for len in 0..good.len() {
            assert!(decode_message(&good[..len]).is_err(), "prefix of {len} bytes");
        }
        for i in 0..good.len() * 8 {
            let mut bad = good.clone();
            bad[i / 8] ^= 1 << (i % 8);
            let _ = decode_message(&bad);
        }
    }
}
