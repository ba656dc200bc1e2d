//! hickory-proto's reading of a message, compared with `clusterdns::dns::decode_message`'s: the
//! independent oracle of the message target. hickory-proto is not a dependency of the library,
//! so this file is compiled where it is one: the cargo-fuzz target (`fuzz_targets/message.rs`)
//! and the stable tests (`tests/fuzz_corpus.rs`, `tests/message_oracle.rs`) include it as a
//! module.
//!
//! When both read a message they must read it the same way: header bits, rcode, questions,
//! every record's owner, type, class, TTL and RDATA, and the OPT record. RDATA is compared as
//! uncompressed wire bytes: for the types we model, against hickory's record re-encoded without
//! compression; for the types we keep opaque, against the bytes of the message itself (they must
//! be passed on exactly), with the names of the RFC 3597 section 4 types that hickory keeps raw
//! decompressed by hickory's own name reader.
//!
//! Where the two legitimately disagree, the difference is one of [`Known`], each documented
//! there with its reason; anything else is a bug in one of them and is reported.

#![allow(dead_code)]

use clusterdns::dns::{Class, Message, MessageError, RData, RecordType};
use hickory_proto::op::Message as HMessage;
use hickory_proto::op::Query as HQuery;
use hickory_proto::rr::{Name as HName, RData as HRData, Record as HRecord};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder, DecodeError, NameEncoding};

/// How hickory's reading compares with ours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Agreement {
    /// Both read the message, identically.
    Same,
    /// Both rejected it.
    BothRejected,
    /// A documented difference.
    Known(Known),
}

/// The ways hickory-proto 0.26 (default features, as the project uses it) and our decoder
/// legitimately read the same bytes differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Known {
    /// hickory rejects a record with RDLENGTH 0 outside UPDATE messages (its `InvalidEmptyRecord`,
    /// as it reads empty RDATA as an RFC 2136 prerequisite). We keep empty RDATA where the type
    /// allows it: opaque types (RFC 3597 allows any length) and TXT, as no strings.
    EmptyRdata,
    /// In an UPDATE message hickory accepts empty RDATA of any type (RFC 2136 2.4, 2.5.2); we
    /// read every message as a response, where an A record of no bytes is malformed.
    EmptyRdataInUpdate,
    /// hickory rejects SIG and TSIG records outside the additional section (they must end a
    /// message when they sign it, RFC 2931 and RFC 8945). A SIG can also be an RFC 2535 record
    /// signature in any section; we pass either on as opaque data.
    SigOutsideAdditional,
    /// hickory decodes the structure of a type we keep opaque and rejects what it does not like:
    /// CAA tags (RFC 8659), SVCB/HTTPS parameters (RFC 9460), NAPTR flags, SSHFP, TLSA, HINFO,
    /// CSYNC and the others it models, ANY/AXFR/IXFR as record types, A records of 4 bytes in
    /// classes where A is not 4 bytes. RFC 3597 asks servers to pass unknown RDATA on
    /// untouched, and to a forwarder every type it does not interpret is unknown.
    HickoryParsesOpaque(RecordType),
    /// hickory parses EDNS client subnet (RFC 7871) and NSID options and rejects malformed
    /// ones; we keep options as bytes (a forwarder passes them on).
    HickoryParsesOption,
    /// hickory rejects a name whose labels, after a compression pointer, run on into the bytes
    /// that pointed there (`LabelOverlapsWithOther`), whether in a record it reads or, through
    /// its name reader, in one of the types it keeps raw. We require only that every pointer
    /// points strictly before the labels it ends, which is enough for decoding to terminate and
    /// the name to be well defined.
    OverlappingLabels,
    /// An OPT record whose last option runs past RDLENGTH (but is no longer than all of it):
    /// hickory ignores the options, we reject the record (RFC 6891 6.1.2: the options follow
    /// one another to the end of RDATA).
    HickoryDropsTruncatedOption,
    /// A malformed name in a type RFC 3597 section 4 asks receivers to decompress (RP, AFSDB,
    /// RT, SIG, PX, NXT, MD, MF, MB, MG, MR, MINFO): hickory keeps these types as raw bytes, we
    /// read their names, so a bad one is our error only.
    HickoryKeepsRaw(RecordType),
}

/// Compares hickory's reading of `data` with ours. `Err` describes a disagreement that is not a
/// [`Known`] one.
pub fn compare(data: &[u8], ours: &Result<Message, MessageError>) -> Result<Agreement, String> {
    let theirs = HMessage::from_vec(data);
    match (ours, theirs) {
        (Err(_), Err(_)) => Ok(Agreement::BothRejected),
        (Ok(ours), Ok(theirs)) => Ok(match same_message(data, ours, &theirs)? {
            None => Agreement::Same,
            Some(known) => Agreement::Known(known),
        }),
        (Ok(_), Err(e)) => why_hickory_rejects(data, &e)
            .map(Agreement::Known)
            .map_err(|why| format!("we decode what hickory rejects ({e}): {why}")),
        (Err(e), Ok(theirs)) => why_we_reject(data, e, &theirs)
            .map(Agreement::Known)
            .ok_or_else(|| format!("hickory decodes what we reject: {e}")),
    }
}

/// Where each record's RDATA lies in the message, found with hickory's readers alone: the
/// questions and records read one after another, the RDATA being the RDLENGTH bytes that follow
/// the owner name and the ten fixed bytes.
#[derive(Clone, Copy, Debug)]
struct Span {
    /// Where the record (its owner name) starts.
    start: usize,
    rtype: u16,
    class: u16,
    rdata: (usize, usize),
}

/// Reads the entries one by one with hickory's `Query` and `Record` readers: the spans of the
/// records read, and the first error with the span of the record it happened in (`None` when
/// a question or a record's fixed part failed).
fn walk(data: &[u8]) -> (Vec<Span>, Option<(DecodeError, Option<Span>)>) {
    let mut spans = Vec::new();
    if data.len() < 12 {
        return (spans, Some((DecodeError::InsufficientBytes, None)));
    }
    let count = |i: usize| u16::from_be_bytes([data[4 + 2 * i], data[5 + 2 * i]]) as usize;
    let mut d = BinDecoder::new(data);
    if let Err(e) = d.read_slice(12) {
        return (spans, Some((e, None)));
    }
    for _ in 0..count(0) {
        if let Err(e) = HQuery::read(&mut d) {
            return (spans, Some((e, None)));
        }
    }
    for _ in 0..count(1) + count(2) + count(3) {
        let start = d.index();
        let span = (|| {
            let mut n = d.clone(u16::try_from(start).ok()?);
            HName::read(&mut n).ok()?;
            let at = n.index();
            let fixed = data.get(at..at + 10)?;
            let len = u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
            Some(Span {
                start,
                rtype: u16::from_be_bytes([fixed[0], fixed[1]]),
                class: u16::from_be_bytes([fixed[2], fixed[3]]),
                rdata: (at + 10, at + 10 + len),
            })
        })();
        if let Err(e) = HRecord::read(&mut d) {
            return (spans, Some((e, span.filter(|s| s.rdata.1 <= data.len()))));
        }
        match span {
            Some(s) => spans.push(s),
            None => return (spans, Some((DecodeError::InsufficientBytes, None))),
        }
    }
    (spans, None)
}

/// Types we model (and compare with hickory's model of them), in `class`.
fn modelled(rtype: u16, class: u16) -> bool {
    let t = RecordType(rtype);
    matches!(t, RecordType::CNAME | RecordType::NS | RecordType::PTR | RecordType::MX | RecordType::SRV)
        || matches!(t, RecordType::SOA | RecordType::TXT)
        || (matches!(t, RecordType::A | RecordType::AAAA) && Class(class) == Class::IN)
}

/// The RFC 3597 section 4 types hickory keeps as raw bytes, and where their names are: `F(n)`
/// fixed bytes, `N` a name, `R` the rest. (NAPTR and SRV, hickory models.)
#[derive(Clone, Copy)]
enum Part {
    F(usize),
    N,
    R,
}

fn raw_in_hickory(rtype: u16) -> Option<&'static [Part]> {
    use Part::*;
    Some(match rtype {
        3 | 4 | 7 | 8 | 9 => &[N], // MD MF MB MG MR (RFC 1035 3.3)
        14 | 17 => &[N, N],        // MINFO (RFC 1035 3.3.7), RP (RFC 1183 2.2)
        18 | 21 => &[F(2), N],     // AFSDB, RT (RFC 1183)
        24 => &[F(18), N, R],      // SIG (RFC 2535 4.1)
        26 => &[F(2), N, N],       // PX (RFC 2163 4)
        30 => &[N, R],             // NXT (RFC 2535 5.2)
        _ => return None,
    })
}

/// Why hickory rejects a message we decode, if it is a [`Known`] reason.
fn why_hickory_rejects(data: &[u8], e: &DecodeError) -> Result<Known, String> {
    let (_, failed) = walk(data);
    match failed {
        // Every entry reads on its own: a rule about the whole message.
        None => match e {
            DecodeError::InvalidEmptyRecord => Ok(Known::EmptyRdata),
            DecodeError::RecordNotInAdditionalSection(t) if matches!(u16::from(*t), 24 | 250) => {
                Ok(Known::SigOutsideAdditional)
            }
            _ => Err("a rule about the whole message".into()),
        },
        Some((DecodeError::LabelOverlapsWithOther { .. }, _)) => Ok(Known::OverlappingLabels),
        // hickory reads the options of an OPT record that tile it (each `code length data`, to
        // the end of RDATA), yet fails: it parsed an option's data.
        Some((e, Some(span))) if span.rtype == RecordType::OPT.0 => {
            match options_tile(&data[span.rdata.0..span.rdata.1]) {
                true => Ok(Known::HickoryParsesOption),
                false => Err(format!("the OPT record: {e}")),
            }
        }
        Some((e, Some(span))) if !modelled(span.rtype, span.class) => {
            let name_error = matches!(
                e,
                DecodeError::PointerNotPriorToLabel { .. }
                    | DecodeError::LabelBytesTooLong(_)
                    | DecodeError::UnrecognizedLabelCode(_)
                    | DecodeError::DomainNameTooLong(_)
            );
            // Hickory reading a name we read too (NAPTR's, SRV's) must agree with us about it.
            if name_error && (span.rtype == 35 || raw_in_hickory(span.rtype).is_some()) {
                return Err(format!("a name in a type {} record: {e}", span.rtype));
            }
            Ok(Known::HickoryParsesOpaque(RecordType(span.rtype)))
        }
        Some((e, span)) => Err(format!("{e} in {span:?}")),
    }
}

/// Whether EDNS options, `code(2) length(2) data(length)` each, fill `rdata` exactly.
fn options_tile(mut rdata: &[u8]) -> bool {
    while let [_, _, hi, lo, rest @ ..] = rdata {
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        match rest.get(len..) {
            Some(next) => rdata = next,
            None => return false,
        }
    }
    rdata.is_empty()
}

/// Why we reject a message hickory decodes, if it is a [`Known`] reason.
fn why_we_reject(data: &[u8], e: &MessageError, theirs: &HMessage) -> Option<Known> {
    let (spans, _) = walk(data);
    let record_at = |at: usize| spans.iter().copied().find(|s| s.start == at);
    let holding = |at: usize| spans.iter().copied().find(|s| s.rdata.0 <= at && at < s.rdata.1);
    let update = u8::from(theirs.metadata.op_code) == 5;
    match *e {
        MessageError::AddressLength { at, rdlength: 0, .. } | MessageError::RdataTooShort { at, .. }
            if update && record_at(at).is_some_and(|s| s.rdata.0 == s.rdata.1) =>
        {
            Some(Known::EmptyRdataInUpdate)
        }
        MessageError::BadOptions { .. } => Some(Known::HickoryDropsTruncatedOption),
        MessageError::RdataTooShort { at, .. }
        | MessageError::RdataTooLong { at, .. }
        | MessageError::BadPointer { at }
        | MessageError::BadLabelType { at }
        | MessageError::NameTooLong { at } => {
            let span = record_at(at).or_else(|| holding(at))?;
            let layout = raw_in_hickory(span.rtype)?;
            // hickory's message reader keeps the type raw; its name reader, given the same
            // layout, must find the RDATA as bad as we do.
            match decompress(data, span, layout) {
                Err(_) => Some(Known::HickoryKeepsRaw(RecordType(span.rtype))),
                Ok(_) => None,
            }
        }
        _ => None,
    }
}

/// Checks that two readings of `data` agree; a [`Known`] difference where they may not.
fn same_message(data: &[u8], ours: &Message, theirs: &HMessage) -> Result<Option<Known>, String> {
    let h = &theirs.metadata;
    let header = (
        h.id,
        h.message_type == hickory_proto::op::MessageType::Response,
        u8::from(h.op_code),
        [h.authoritative, h.truncation, h.recursion_desired, h.recursion_available],
        [h.authentic_data, h.checking_disabled],
        u16::from(h.response_code),
    );
    let mine = (
        ours.id,
        ours.qr(),
        ours.opcode().0,
        [ours.aa(), ours.tc(), ours.rd(), ours.ra()],
        [ours.ad(), ours.cd()],
        ours.rcode.0,
    );
    if header != mine {
        return Err(format!("header: hickory {header:?}, ours {mine:?}"));
    }

    if theirs.queries.len() != ours.questions.len() {
        return Err(format!("{} questions for hickory, {} for us", theirs.queries.len(), ours.questions.len()));
    }
    for (i, (q, hq)) in ours.questions.iter().zip(&theirs.queries).enumerate() {
        let theirs = (name_wire(&hq.name)?, u16::from(hq.query_type), u16::from(hq.query_class));
        if (q.name.as_wire().to_vec(), q.qtype.0, q.qclass.0) != theirs {
            return Err(format!("question {i}: hickory {theirs:?}, ours {q:?}"));
        }
    }

    let (spans, failed) = walk(data);
    if let Some((e, _)) = failed {
        return Err(format!("hickory reads the message but not its records one by one: {e}"));
    }
    // hickory takes the OPT record out of the additional section as we do.
    let mut spans = spans.into_iter().filter(|s| s.rtype != RecordType::OPT.0);
    let sections = [
        ("answer", &ours.answer, &theirs.answers),
        ("authority", &ours.authority, &theirs.authorities),
        ("additional", &ours.additional, &theirs.additionals),
    ];
    for (section, ours, theirs) in sections {
        if ours.len() != theirs.len() {
            return Err(format!("{} {section} records for hickory, {} for us", theirs.len(), ours.len()));
        }
        for (i, (r, hr)) in ours.iter().zip(theirs.iter()).enumerate() {
            let span = spans.next().ok_or("fewer records walked than read")?;
            let want = (name_wire(&hr.name)?, u16::from(hr.record_type()), u16::from(hr.dns_class), hr.ttl);
            let got = (r.name.as_wire().to_vec(), r.rtype().0, r.class.0, r.ttl);
            if got != want {
                return Err(format!("{section} record {i}: hickory {want:?}, ours {got:?}"));
            }
            let expected = match expected_rdata(data, span, &hr.data) {
                Ok(expected) => expected,
                // A type hickory keeps raw, whose name its own reader refuses for overlapping.
                Err(Undecompressable::OverlappingLabels) => return Ok(Some(Known::OverlappingLabels)),
                Err(Undecompressable::Bad(e)) => return Err(format!("{section} record {i}: {e}")),
            };
            let ours = rdata_wire(&r.data);
            if ours != expected {
                return Err(format!(
                    "{section} record {i} ({}) RDATA: expected {expected:02x?}, ours {ours:02x?}",
                    r.rtype()
                ));
            }
        }
    }

    match (&ours.edns, &theirs.edns) {
        (None, None) => {}
        (Some(o), Some(t)) => {
            // hickory reads a payload size under 512 as 512 (RFC 6891 6.2.5 says to treat it so).
            let mine = (o.udp_size.max(512), o.version, o.dnssec_ok, o.z);
            let theirs_ = (t.max_payload(), t.version(), t.flags().dnssec_ok, t.flags().z);
            if mine != theirs_ {
                return Err(format!("OPT fields: hickory {theirs_:?}, ours {mine:?}"));
            }
            let hopts = t.options().as_ref();
            let opts: Vec<_> = o.options.iter().collect();
            if hopts.len() != opts.len() {
                return Err(format!("{} EDNS options for hickory, {} for us", hopts.len(), opts.len()));
            }
            for ((code, option), mine) in hopts.iter().zip(&opts) {
                let code = u16::from(*code);
                let bytes = Vec::<u8>::try_from(option).map_err(|e| e.to_string())?;
                // Client subnet, hickory re-encodes from its parsed form: compare codes only.
                if code != mine.code || (code != 8 && bytes != mine.data) {
                    return Err(format!("EDNS option: hickory {code} {bytes:02x?}, ours {mine:?}"));
                }
            }
        }
        (o, t) => return Err(format!("OPT record: hickory {}, ours {}", t.is_some(), o.is_some())),
    }
    Ok(None)
}

/// Why the oracle could not decompress RDATA with hickory's name reader.
enum Undecompressable {
    /// A name hickory refuses only for its overlapping labels (see [`Known::OverlappingLabels`]).
    OverlappingLabels,
    Bad(String),
}

/// What our RDATA must be, as uncompressed wire bytes.
fn expected_rdata(data: &[u8], span: Span, theirs: &HRData) -> Result<Vec<u8>, Undecompressable> {
    let (start, end) = span.rdata;
    if modelled(span.rtype, span.class) || span.rtype == 35 {
        return hickory_wire(theirs).map_err(Undecompressable::Bad);
    }
    match raw_in_hickory(span.rtype) {
        Some(layout) => decompress(data, span, layout),
        // Opaque: the message's own bytes, exactly.
        None => Ok(data[start..end].to_vec()),
    }
}

/// The RDATA of `span` with the names of `layout` read by hickory's name reader and written out
/// in full; an error when a field does not fit RDATA or a name does not read.
fn decompress(data: &[u8], span: Span, layout: &[Part]) -> Result<Vec<u8>, Undecompressable> {
    let bad = |e: String| Undecompressable::Bad(e);
    let (start, end) = span.rdata;
    let mut out = Vec::new();
    let mut pos = start;
    for part in layout {
        match *part {
            Part::F(n) => {
                let field = data.get(pos..pos + n).filter(|_| pos + n <= end);
                out.extend_from_slice(field.ok_or_else(|| bad("short fixed field".into()))?);
                pos += n;
            }
            Part::N => {
                let mut d = BinDecoder::new(&data[..end]).clone(pos as u16);
                let name = HName::read(&mut d).map_err(|e| match e {
                    DecodeError::LabelOverlapsWithOther { .. } => Undecompressable::OverlappingLabels,
                    e => bad(format!("hickory reads no name at {pos}: {e}")),
                })?;
                out.extend_from_slice(&name_wire(&name).map_err(bad)?);
                pos = d.index();
            }
            Part::R => {
                out.extend_from_slice(&data[pos..end]);
                pos = end;
            }
        }
    }
    if pos != end {
        return Err(bad(format!("type {} RDATA has {} bytes after its fields", span.rtype, end - pos)));
    }
    Ok(out)
}

/// hickory's RDATA, re-encoded without compression.
pub fn hickory_wire(rdata: &HRData) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    let mut e = BinEncoder::new(&mut buf);
    e.set_name_encoding(NameEncoding::Uncompressed);
    rdata.emit(&mut e).map_err(|e| e.to_string())?;
    Ok(buf)
}

pub fn name_wire(name: &HName) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    let mut e = BinEncoder::new(&mut buf);
    e.set_name_encoding(NameEncoding::Uncompressed);
    name.emit(&mut e).map_err(|e| e.to_string())?;
    Ok(buf)
}

/// Our RDATA as uncompressed wire bytes.
pub fn rdata_wire(data: &RData) -> Vec<u8> {
    let mut out = Vec::new();
    match data {
        RData::A(ip) => out.extend_from_slice(&ip.octets()),
        RData::Aaaa(ip) => out.extend_from_slice(&ip.octets()),
        RData::Cname(n) | RData::Ns(n) | RData::Ptr(n) => out.extend_from_slice(n.as_wire()),
        RData::Mx { preference, exchange } => {
            out.extend_from_slice(&preference.to_be_bytes());
            out.extend_from_slice(exchange.as_wire());
        }
        RData::Srv { priority, weight, port, target } => {
            for v in [priority, weight, port] {
                out.extend_from_slice(&v.to_be_bytes());
            }
            out.extend_from_slice(target.as_wire());
        }
        RData::Txt(strings) => {
            for s in strings {
                out.push(s.len() as u8);
                out.extend_from_slice(s);
            }
        }
        RData::Soa(soa) => {
            out.extend_from_slice(soa.mname.as_wire());
            out.extend_from_slice(soa.rname.as_wire());
            for v in [soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum] {
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
        RData::Opaque { data, .. } => out.extend_from_slice(data),
    }
    out
}
