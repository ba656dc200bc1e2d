//! Encoding replies straight into a send buffer.
//!
//! One pass, no intermediate message: header, the question as the client spelled it, the
//! records with name compression (RFC 1035 4.1.4), then the OPT record when the query had EDNS.
//! Records that do not fit the client's limit are left out: TC is set when an answer or authority
//! record is left out (RFC 2181 9), not for additional records, which are optional.
//!
//! A [`WireAnswer`] is an answer encoded once (by a cache) and written again for each query that
//! asks the same question: its bytes are copied after the question and patched (the TTLs), cut at
//! a record boundary to the client's limit by the same rule.

use std::sync::Arc;

use smallvec::SmallVec;

use super::decode::{ErrorReply, HEADER_LEN, Question, flags};
use super::edns::{Edns, EdnsOptions};
use super::name::wire_eq;
use super::{Name, Opcode, RData, Rcode, Record, RecordType, Request, Response};

const OPT_LEN: usize = 11;

/// What was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Encoded {
    pub len: usize,
    /// TC was set (by the plugin, or because records did not fit).
    pub truncated: bool,
}

/// Encodes `resp` as the reply to `req` into `out`, which is cleared first.
///
/// The reply carries the question the client asked, in its spelling, whatever question the
/// plugins asked on its behalf; answer records owned by that name point to it, so they too read
/// in the client's case. An OPT record goes back when the query had one, with the response's
/// options. An extended rcode (over 15) needs that OPT record; without it the client gets
/// SERVFAIL, as the low four bits alone would name another rcode.
pub fn encode_response(out: &mut Vec<u8>, req: &Request, resp: &Response) -> Encoded {
    let query = req.query();
    let edns = query.edns.as_ref();
    let rcode = if resp.rcode.0 > 0xf && edns.is_none() { Rcode::SERVFAIL } else { resp.rcode };
    let mut header_flags = flags::QR | (query.flags & (0xf << 11 | flags::RD | flags::CD)) | rcode.header_bits() as u16;
    if resp.authoritative {
        header_flags |= flags::AA;
    }
    if resp.recursion_available {
        header_flags |= flags::RA;
    }
    if resp.authentic_data {
        header_flags |= flags::AD;
    }
    let mut w = Writer::new(out, req.max_response_size());
    w.header(query.id, header_flags);
    w.question(req.client_question());
    let mut opt = edns.map(|e| opt_for(e, rcode, &resp.options));
    if let Some(o) = &mut opt
        && w.buf.len() + o.len() > w.limit
    {
        // Options that leave no room even for the question are not sent.
        o.options = &[];
    }
    let opt_len = opt.as_ref().map_or(0, Opt::len);
    w.limit -= opt_len;
    // Records added beside encoded sections would be lost: a plugin that adds records reads
    // answers (`Plugin::reads_answers`), and so gets records, never encoded sections.
    debug_assert!(
        resp.wire().is_none() || (resp.answer.is_empty() && resp.authority.is_empty() && resp.additional.is_empty()),
        "records added to a response carrying encoded sections"
    );
    let (an, ns, mut ar, cut) = match resp.wire() {
        Some((wire, ttl)) if wire.follows(req.client_question()) => w.wire(wire, ttl),
        // Asked under another name than the one it was encoded after (a plugin in front changed
        // the question): its pointers would be wrong, so its records are written afresh.
        Some((wire, ttl)) => {
            let [answer, authority, additional] = wire.records();
            w.sections([answer, authority, additional], ttl)
        }
        None => w.sections([&resp.answer, &resp.authority, &resp.additional], None),
    };
    let truncated = resp.truncated || cut;
    if let Some(opt) = opt {
        w.limit += opt_len;
        w.opt(&opt);
        ar += 1;
    }
    w.set_counts(1, an, ns, ar);
    if truncated {
        w.buf[2] |= (flags::TC >> 8) as u8;
    }
    Encoded { len: w.buf.len(), truncated }
}

/// Encodes an error reply to a packet that could not be answered normally (FORMERR, NOTIMP,
/// BADVERS). The question is echoed when it was readable.
pub fn encode_error(out: &mut Vec<u8>, reply: &ErrorReply) -> Encoded {
    let header_flags =
        flags::QR | (reply.flags & (0xf << 11 | flags::RD | flags::CD)) | reply.rcode.header_bits() as u16;
    // An error reply is a header, a question and an OPT record: it always fits in 512 bytes.
    let mut w = Writer::new(out, 512);
    w.header(reply.id, header_flags);
    let mut qd = 0;
    if let Some(q) = &reply.question {
        w.question(q);
        qd = 1;
    }
    let mut ar = 0;
    // Only a QUERY gets an OPT back; RFC 6891 7 says a responder that does not understand
    // the opcode need not echo one.
    if let (Some(e), true) = (&reply.edns, reply.opcode == Opcode::QUERY) {
        w.opt(&opt_for(e, reply.rcode, &EdnsOptions::new()));
        ar = 1;
    }
    w.set_counts(qd, 0, 0, ar);
    Encoded { len: w.buf.len(), truncated: false }
}

/// Encodes a query with `id`, header `flags` (only opcode, RD, AD and CD are kept), `question`
/// and, when given, `edns` exactly as it is (payload size, flags, every option) into `out`,
/// which is cleared first.
pub fn encode_query(out: &mut Vec<u8>, id: u16, header_flags: u16, question: &Question, edns: Option<&Edns>) {
    let header_flags = header_flags & (0xf << 11 | flags::RD | flags::AD | flags::CD);
    let mut w = Writer::new(out, u16::MAX as usize);
    w.header(id, header_flags);
    w.question(question);
    if let Some(e) = edns {
        w.buf.push(0);
        w.buf.extend_from_slice(&RecordType::OPT.0.to_be_bytes());
        w.buf.extend_from_slice(&e.udp_size.to_be_bytes());
        w.buf.extend_from_slice(&[0, e.version]);
        w.buf.extend_from_slice(&e.flags().to_be_bytes());
        w.buf.extend_from_slice(&(e.options.as_wire().len() as u16).to_be_bytes());
        w.buf.extend_from_slice(e.options.as_wire());
    }
    w.set_counts(1, 0, 0, edns.is_some() as u16);
}

/// The reply's OPT record: the client's payload size (at least 512) and DO bit mirrored, as
/// CoreDNS does, version 0, the high bits of an extended rcode, and the response's options.
struct Opt<'a> {
    udp_size: u16,
    ext_rcode: u8,
    dnssec_ok: bool,
    options: &'a [u8],
}

impl Opt<'_> {
    fn len(&self) -> usize {
        OPT_LEN + self.options.len()
    }
}

fn opt_for<'a>(e: &Edns, rcode: Rcode, options: &'a EdnsOptions) -> Opt<'a> {
    Opt {
        udp_size: e.udp_size.max(512),
        ext_rcode: rcode.extended_bits(),
        dnssec_ok: e.dnssec_ok,
        options: options.as_wire(),
    }
}

/// An answer encoded once, to be written again for every query asking the same question (a
/// cache's entry): the answer, authority and additional sections as they follow a question for
/// one name, compressed as [`encode_response`] compresses them, with where each record ends and
/// where its TTL is. The records themselves are read back from the bytes the first time a
/// plugin looks at them ([`records`](Self::records)), and kept from then on: an answer no such
/// plugin reads costs its bytes only, one that is read is decoded once, not on every hit.
///
/// Writing it is a copy and a patch of the TTLs: no allocation, no name compression search. The
/// bytes depend on the question's name only through its length and the suffixes names point to,
/// which any spelling of the same name shares (names compare without regard to case, RFC 4343);
/// [`follows`](Self::follows) checks it.
pub struct WireAnswer {
    /// A message: a header (zeros), the question (type and class zero) and the three sections.
    bytes: Box<[u8]>,
    /// Where the sections start: the header and question's length.
    start: u16,
    /// Answer, authority and additional record counts.
    counts: [u16; 3],
    /// For each record in order, where it ends and where its TTL is, from `start`.
    marks: Box<[(u16, u16)]>,
    /// The records' size without name compression, for [`Response::uncompressed_len`].
    uncompressed: u32,
    /// The records, once read back.
    records: std::sync::OnceLock<Box<[Vec<Record>; 3]>>,
}

impl WireAnswer {
    /// Encodes `sections` (answer, authority, additional) as they follow the question `qname`.
    /// Records past a whole message's 65535 bytes are left out, as [`encode_response`] leaves
    /// them out over TCP.
    pub fn new(qname: &Name, sections: [Vec<Record>; 3]) -> Arc<WireAnswer> {
        let mut buf = Vec::with_capacity(512);
        let mut w = Writer::new(&mut buf, u16::MAX as usize);
        w.header(0, 0);
        w.question(&Question { name: qname.clone(), qtype: RecordType(0), qclass: super::Class(0) });
        let start = w.buf.len();
        let (mut counts, mut marks, mut uncompressed) = ([0u16; 3], Vec::new(), 0usize);
        'sections: for (i, section) in sections.iter().enumerate() {
            for r in section {
                let (mark, names) = (w.buf.len(), w.names.len());
                let ttl = w.record(r, None);
                if w.buf.len() > w.limit {
                    w.buf.truncate(mark);
                    w.names.truncate(names);
                    break 'sections;
                }
                counts[i] += 1;
                marks.push(((w.buf.len() - start) as u16, (ttl - start) as u16));
                uncompressed += r.name.wire_len() + 10 + r.data.uncompressed_len();
            }
        }
        Arc::new(WireAnswer {
            bytes: buf.into(),
            start: start as u16,
            counts,
            marks: marks.into(),
            uncompressed: uncompressed as u32,
            records: std::sync::OnceLock::new(),
        })
    }

    /// Whether its bytes may follow `question` (the same name, in any case: label lengths are
    /// below 64, so ASCII case folding touches only the letters of a name's wire form).
    pub fn follows(&self, question: &Question) -> bool {
        let qname = &self.bytes[HEADER_LEN..self.start as usize - 4];
        qname.eq_ignore_ascii_case(question.name.as_wire())
    }

    /// The bytes of the three sections, without their header or question.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[self.start as usize..]
    }

    /// The answer, authority and additional record counts.
    pub fn counts(&self) -> [u16; 3] {
        self.counts
    }

    /// The records, section by section, with the TTLs they were encoded with: read back from the
    /// bytes the first time, kept after.
    pub fn records(&self) -> &[Vec<Record>; 3] {
        self.records.get_or_init(|| {
            let sections = super::message::decode_sections(&self.bytes, self.start as usize, self.counts);
            Box::new(sections.expect("sections written by the encoder decode"))
        })
    }

    /// Whether [`records`](Self::records) can read the records back: always for records that
    /// came from [`decode_message`](super::decode_message) or were built of modelled types, but
    /// an [`RData::Opaque`] of a type whose RDATA is read by its fields (an MX of three bytes,
    /// say) would not be. A cache checks it before keeping an answer, on the miss path.
    pub fn reads_back(&self) -> bool {
        self.records.get().is_some()
            || super::message::decode_sections(&self.bytes, self.start as usize, self.counts).is_ok()
    }

    /// The records' size without name compression.
    pub fn uncompressed_len(&self) -> usize {
        self.uncompressed as usize
    }
}

impl PartialEq for WireAnswer {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other) || (self.bytes == other.bytes && self.counts == other.counts)
    }
}

impl Eq for WireAnswer {}

impl std::fmt::Debug for WireAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WireAnswer").field("bytes", &self.bytes()).field("counts", &self.counts).finish()
    }
}

struct Writer<'a> {
    buf: &'a mut Vec<u8>,
    limit: usize,
    /// Names written so far that later names may point to.
    names: SmallVec<[Written; 32]>,
    /// The question name's wire length; it sits uncompressed at offset 12.
    qname_len: usize,
}

/// A name (suffix) in the buffer that later names may point to.
#[derive(Clone, Copy)]
struct Written {
    at: u16,
    /// Its uncompressed length.
    len: u16,
    /// Written out in full up to the root (no pointer inside), so it compares as one slice.
    contiguous: bool,
}

impl<'a> Writer<'a> {
    fn new(buf: &'a mut Vec<u8>, limit: usize) -> Self {
        buf.clear();
        Writer { buf, limit, names: SmallVec::new(), qname_len: 0 }
    }

    fn header(&mut self, id: u16, header_flags: u16) {
        self.buf.extend_from_slice(&id.to_be_bytes());
        self.buf.extend_from_slice(&header_flags.to_be_bytes());
        self.buf.extend_from_slice(&[0; 8]);
    }

    fn set_counts(&mut self, qd: u16, an: u16, ns: u16, ar: u16) {
        for (i, c) in [qd, an, ns, ar].into_iter().enumerate() {
            self.buf[4 + 2 * i..6 + 2 * i].copy_from_slice(&c.to_be_bytes());
        }
    }

    /// Writes the question: the first name, so it is copied whole and each suffix noted for
    /// later names to point to.
    fn question(&mut self, q: &Question) {
        let wire = q.name.as_wire();
        let start = self.buf.len();
        self.buf.extend_from_slice(wire);
        let mut pos = 0;
        while wire[pos] != 0 && start + pos < 0x4000 {
            self.names.push(Written { at: (start + pos) as u16, len: (wire.len() - pos) as u16, contiguous: true });
            pos += 1 + wire[pos] as usize;
        }
        self.qname_len = wire.len();
        self.buf.extend_from_slice(&q.qtype.0.to_be_bytes());
        self.buf.extend_from_slice(&q.qclass.0.to_be_bytes());
    }

    /// Writes the answer, authority and additional sections, as many records as fit (RFC 2181
    /// 9: an answer or authority record left out sets TC, additional records are optional), with
    /// every TTL `ttl` if given. Returns the three counts and whether TC is due.
    fn sections(&mut self, sections: [&[Record]; 3], ttl: Option<u32>) -> (u16, u16, u16, bool) {
        let (an, an_all) = self.records(sections[0], ttl);
        if !an_all {
            return (an, 0, 0, true);
        }
        let (ns, ns_all) = self.records(sections[1], ttl);
        if !ns_all {
            return (an, ns, 0, true);
        }
        let (ar, _) = self.records(sections[2], ttl);
        (an, ns, ar, false)
    }

    /// Writes as many of `records` as fit; returns how many, and whether that was all of them.
    fn records(&mut self, records: &[Record], ttl: Option<u32>) -> (u16, bool) {
        for (i, r) in records.iter().enumerate() {
            let (mark, names) = (self.buf.len(), self.names.len());
            self.record(r, ttl);
            if self.buf.len() > self.limit || i >= u16::MAX as usize {
                self.buf.truncate(mark);
                self.names.truncate(names);
                return (i as u16, false);
            }
        }
        (records.len() as u16, true)
    }

    /// Copies the sections of `wire` after the question, cut at a record boundary to the limit
    /// by the rule of [`sections`](Self::sections) (the bytes are those `sections` would write:
    /// a prefix of them only points backwards, into itself or the question), with every TTL set
    /// to `ttl` if given.
    fn wire(&mut self, wire: &WireAnswer, ttl: Option<u32>) -> (u16, u16, u16, bool) {
        let start = self.buf.len();
        let room = self.limit.saturating_sub(start);
        let fit = wire.marks.partition_point(|&(end, _)| end as usize <= room);
        let [an, ns, ar] = wire.counts.map(usize::from);
        let (an, ns, ar, cut) = if fit >= an + ns {
            (an, ns, (fit - an - ns).min(ar), false)
        } else if fit >= an {
            (an, fit - an, 0, true)
        } else {
            (fit, 0, 0, true)
        };
        let kept = an + ns + ar;
        let len = kept.checked_sub(1).map_or(0, |last| wire.marks[last].0 as usize);
        self.buf.extend_from_slice(&wire.bytes()[..len]);
        if let Some(ttl) = ttl {
            for &(_, at) in &wire.marks[..kept] {
                let at = start + at as usize;
                self.buf[at..at + 4].copy_from_slice(&ttl.to_be_bytes());
            }
        }
        (an as u16, ns as u16, ar as u16, cut)
    }

    /// Writes `r` (with TTL `ttl` if given); returns the offset of its TTL field.
    fn record(&mut self, r: &Record, ttl: Option<u32>) -> usize {
        self.name(&r.name, true);
        self.buf.extend_from_slice(&r.rtype().0.to_be_bytes());
        self.buf.extend_from_slice(&r.class.0.to_be_bytes());
        let ttl_at = self.buf.len();
        self.buf.extend_from_slice(&ttl.unwrap_or(r.ttl).to_be_bytes());
        let rdlen_at = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        match &r.data {
            RData::A(ip) => self.buf.extend_from_slice(&ip.octets()),
            RData::Aaaa(ip) => self.buf.extend_from_slice(&ip.octets()),
            RData::Cname(n) | RData::Ns(n) | RData::Ptr(n) => self.name(n, true),
            RData::Mx { preference, exchange } => {
                self.buf.extend_from_slice(&preference.to_be_bytes());
                self.name(exchange, true);
            }
            RData::Srv { priority, weight, port, target } => {
                for v in [priority, weight, port] {
                    self.buf.extend_from_slice(&v.to_be_bytes());
                }
                self.name(target, false);
            }
            RData::Txt(strings) => {
                for s in strings {
                    // A character-string holds at most 255 bytes; longer text becomes several.
                    for chunk in s.chunks(255) {
                        self.buf.push(chunk.len() as u8);
                        self.buf.extend_from_slice(chunk);
                    }
                    if s.is_empty() {
                        self.buf.push(0);
                    }
                }
            }
            RData::Soa(soa) => {
                self.name(&soa.mname, true);
                self.name(&soa.rname, true);
                for v in [soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum] {
                    self.buf.extend_from_slice(&v.to_be_bytes());
                }
            }
            RData::Opaque { data, .. } => self.buf.extend_from_slice(data),
        }
        let rdlen = (self.buf.len() - rdlen_at - 2).min(u16::MAX as usize) as u16;
        self.buf[rdlen_at..rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
        ttl_at
    }

    fn opt(&mut self, opt: &Opt<'_>) {
        self.buf.push(0);
        self.buf.extend_from_slice(&RecordType::OPT.0.to_be_bytes());
        self.buf.extend_from_slice(&opt.udp_size.to_be_bytes());
        let do_bit = if opt.dnssec_ok { 0x80 } else { 0 };
        self.buf.extend_from_slice(&[opt.ext_rcode, 0, do_bit, 0]);
        self.buf.extend_from_slice(&(opt.options.len() as u16).to_be_bytes());
        self.buf.extend_from_slice(opt.options);
    }

    /// Writes `name`, pointing to an earlier copy of its longest possible suffix when `compress`.
    fn name(&mut self, name: &Name, compress: bool) {
        let wire = name.as_wire();
        // Most owner names are the question name itself.
        if compress
            && self.qname_len == wire.len()
            && self.buf.get(12..12 + wire.len()).is_some_and(|q| wire_eq(q, wire))
        {
            self.buf.extend_from_slice(&[0xc0, 12]);
            return;
        }
        let first_new = self.names.len();
        let mut pos = 0;
        loop {
            let len = wire[pos] as usize;
            if len == 0 {
                self.buf.push(0);
                return;
            }
            let suffix = &wire[pos..];
            if compress {
                if let Some(target) = self.find(suffix) {
                    self.buf.extend_from_slice(&(0xc000 | target).to_be_bytes());
                    // The labels just written end in a pointer: compare them label by label.
                    for w in &mut self.names[first_new..] {
                        w.contiguous = false;
                    }
                    return;
                }
                let at = self.buf.len();
                if at < 0x4000 {
                    self.names.push(Written { at: at as u16, len: suffix.len() as u16, contiguous: true });
                }
            }
            self.buf.extend_from_slice(&wire[pos..pos + 1 + len]);
            pos += 1 + len;
        }
    }

    fn find(&self, suffix: &[u8]) -> Option<u16> {
        self.names
            .iter()
            .find(|w| {
                w.len as usize == suffix.len()
                    && if w.contiguous {
                        let at = w.at as usize;
                        wire_eq(&self.buf[at..at + suffix.len()], suffix)
                    } else {
                        equal_at(self.buf, w.at as usize, suffix)
                    }
            })
            .map(|w| w.at)
    }
}

/// Whether the (possibly compressed) name at `at` in `buf` equals the uncompressed `name`,
/// ignoring case. `buf` holds only names this writer wrote, whose pointers all go backwards.
fn equal_at(buf: &[u8], mut at: usize, name: &[u8]) -> bool {
    let mut i = 0;
    loop {
        let b = buf[at];
        if b & 0xc0 == 0xc0 {
            at = (((b & 0x3f) as usize) << 8) | buf[at + 1] as usize;
            continue;
        }
        if name.get(i) != Some(&b) {
            return false;
        }
        if b == 0 {
            return true;
        }
        let len = b as usize;
        if !wire_eq(&buf[at + 1..at + 1 + len], &name[i + 1..i + 1 + len]) {
            return false;
        }
        at += 1 + len;
        i += 1 + len;
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hickory_proto::op::Message;
    use hickory_proto::rr::RData as HRData;

    use super::*;
    use crate::dns::decode::decode_query;
    use crate::dns::{Proto, RecordType};

    fn request(wire: &[u8], proto: Proto) -> Request {
        let q = decode_query(wire).unwrap();
        let a = "127.0.0.1:1".parse().unwrap();
        Request::new(q, a, a, proto, std::time::Instant::now())
    }

    fn query(name: &str, qtype: RecordType, opt: Option<(u16, u8, bool)>) -> Vec<u8> {
        crate::dns::build_query(9, name, qtype, opt)
    }

    fn a(name: &str, ip: [u8; 4]) -> Record {
        Record::new(Name::parse(name).unwrap(), 30, RData::A(Ipv4Addr::from(ip)))
    }

    #[test]
    fn encodes_a_compressed_answer_hickory_can_read() {
        let req = request(&query("Web.Example.org", RecordType::A, None), Proto::Udp);
        let mut resp = Response::authoritative("test");
        resp.answer.push(a("web.example.org", [10, 0, 0, 1]));
        resp.answer.push(Record::new(
            Name::parse("web.example.org").unwrap(),
            30,
            RData::Cname(Name::parse("x.example.org").unwrap()),
        ));
        let mut out = vec![];
        let enc = encode_response(&mut out, &req, &resp);
        assert!(!enc.truncated);
        let msg = Message::from_vec(&out).unwrap();
        assert_eq!(msg.id, 9);
        assert!(msg.authoritative);
        assert!(msg.recursion_desired);
        assert_eq!(msg.queries[0].name().to_string(), "Web.Example.org.");
        assert_eq!(msg.answers.len(), 2);
        assert_eq!(msg.answers[0].data, HRData::A(Ipv4Addr::new(10, 0, 0, 1).into()));
        // The owner is a pointer to the question: 12 + 17 (question name) + 4 + 2 (pointer) ...
        assert_eq!(&out[33..35], &[0xc0, 12]);
        // ... and the CNAME target reuses "example.org" from the question.
        assert_eq!(&out[out.len() - 2..], &[0xc0, 16]);
    }

    #[test]
    fn truncates_to_512_without_edns_and_sets_tc() {
        let req = request(&query("big.example.org", RecordType::A, None), Proto::Udp);
        let mut resp = Response::authoritative("test");
        for i in 0..40u8 {
            resp.answer.push(a("big.example.org", [10, 0, 0, i]));
        }
        let mut out = vec![];
        let enc = encode_response(&mut out, &req, &resp);
        assert!(enc.truncated);
        assert!(out.len() <= 512);
        let msg = Message::from_vec(&out).unwrap();
        assert!(msg.truncation);
        // 12 + 21 question, 16 bytes per compressed A record: 29 records fit.
        assert_eq!(msg.answers.len(), 29);

        // Over TCP it all fits.
        let req = request(&query("big.example.org", RecordType::A, None), Proto::Tcp);
        let enc = encode_response(&mut out, &req, &resp);
        assert!(!enc.truncated);
        assert_eq!(Message::from_vec(&out).unwrap().answers.len(), 40);
    }

    #[test]
    fn edns_payload_size_is_honoured_and_opt_echoed() {
        let req = request(&query("big.example.org", RecordType::A, Some((1232, 0, true))), Proto::Udp);
        let mut resp = Response::authoritative("test");
        for i in 0..100u8 {
            resp.answer.push(a("big.example.org", [10, 0, 0, i]));
        }
        let mut out = vec![];
        let enc = encode_response(&mut out, &req, &resp);
        assert!(enc.truncated && out.len() <= 1232);
        let msg = Message::from_vec(&out).unwrap();
        let edns = msg.edns.expect("OPT echoed");
        assert_eq!(edns.max_payload(), 1232);
        assert!(edns.flags().dnssec_ok);
        assert_eq!(msg.answers.len(), (1232 - 12 - 21 - 11) / 16);
    }

    #[test]
    fn additional_records_that_do_not_fit_are_dropped_without_tc() {
        let req = request(&query("x.example.org", RecordType::A, None), Proto::Udp);
        let mut resp = Response::authoritative("test");
        resp.answer.push(a("x.example.org", [1, 1, 1, 1]));
        for i in 0..40u8 {
            resp.additional.push(a("x.example.org", [10, 0, 0, i]));
        }
        let mut out = vec![];
        let enc = encode_response(&mut out, &req, &resp);
        assert!(!enc.truncated);
        let msg = Message::from_vec(&out).unwrap();
        assert_eq!(msg.answers.len(), 1);
        assert!(!msg.additionals.is_empty() && msg.additionals.len() < 40);
    }

    #[test]
    fn extended_rcode_goes_to_opt() {
        let wire = query("a.example", RecordType::A, Some((4096, 1, false)));
        let crate::dns::decode::Rejected::Reply(reply) = decode_query(&wire).unwrap_err() else {
            panic!("expected a reply");
        };
        let mut out = vec![];
        encode_error(&mut out, &reply);
        let msg = Message::from_vec(&out).unwrap();
        assert_eq!(u16::from(msg.response_code), 16);
        assert_eq!(msg.edns.unwrap().version(), 0);
    }

    #[test]
    fn response_options_go_to_clients_that_sent_an_opt_record() {
        let mut resp = Response::authoritative("test");
        resp.options.push(crate::dns::edns::code::COOKIE, b"0123456789abcdef");
        resp.push_extended_error(&crate::dns::ExtendedError::new(18, "no"));
        let mut out = vec![];
        let req = request(&query("a.example", RecordType::A, Some((1232, 0, false))), Proto::Udp);
        encode_response(&mut out, &req, &resp);
        let msg = Message::from_vec(&out).unwrap();
        let opts = msg.edns.unwrap().options().as_ref().len();
        assert_eq!(opts, 2);
        // The OPT record ends the message, with the options as pushed.
        let wire = resp.options.as_wire();
        assert_eq!(&out[out.len() - wire.len()..], wire);

        let req = request(&query("a.example", RecordType::A, None), Proto::Udp);
        encode_response(&mut out, &req, &resp);
        assert!(Message::from_vec(&out).unwrap().edns.is_none());
    }

    #[test]
    fn an_extended_rcode_without_edns_is_servfail() {
        let resp = Response::with_rcode("test", Rcode(23)); // BADCOOKIE
        let mut out = vec![];
        let req = request(&query("a.example", RecordType::A, None), Proto::Udp);
        encode_response(&mut out, &req, &resp);
        assert_eq!(Message::from_vec(&out).unwrap().response_code, hickory_proto::op::ResponseCode::ServFail);
        let req = request(&query("a.example", RecordType::A, Some((1232, 0, false))), Proto::Udp);
        encode_response(&mut out, &req, &resp);
        assert_eq!(u16::from(Message::from_vec(&out).unwrap().response_code), 23);
    }

    #[test]
    fn the_reply_carries_the_clients_question_whatever_was_asked_since() {
        let mut req = request(&query("Web.Apps", RecordType::A, None), Proto::Udp);
        req.set_question(Name::parse("web.apps.svc.cluster.local").unwrap(), RecordType::A);
        let mut resp = Response::authoritative("test");
        resp.answer.push(a("web.apps", [10, 0, 0, 1]));
        let mut out = vec![];
        encode_response(&mut out, &req, &resp);
        let msg = Message::from_vec(&out).unwrap();
        assert_eq!(msg.queries[0].name().to_string(), "Web.Apps.");
        // The answer's owner points at the question, so it too reads as the client wrote it.
        assert_eq!(msg.answers[0].name.to_string(), "Web.Apps.");
    }

    #[test]
    fn a_query_is_written_back_with_its_whole_opt_record() {
        let mut wire = query("Example.ORG", RecordType::AAAA, Some((4096, 0, true)));
        wire[3] |= 0x30; // AD and CD
        let opt = wire.len() - 11;
        wire[opt + 8] = 0x02; // a Z bit
        let options = b"\x00\x08\x00\x07\x00\x01\x18\x00\x0a\x01\x02\xfd\xe9\x00\x00";
        wire[opt + 9..opt + 11].copy_from_slice(&(options.len() as u16).to_be_bytes());
        wire.extend_from_slice(options);
        let req = request(&wire, Proto::Udp);
        let mut out = vec![];
        req.encode_query(0x4242, &mut out);
        assert_eq!(&out[..2], &[0x42, 0x42]);
        assert_eq!(&out[2..], &wire[2..]);
    }

    /// Responses of every shape a cache keeps, for the wire tests.
    fn shapes() -> Vec<Response> {
        let n = |s: &str| Name::parse(s).unwrap();
        let mut one = Response::authoritative("t");
        one.answer.push(a("www.example.org", [10, 0, 0, 1]));
        let mut chain = Response::new("t");
        chain.recursion_available = true;
        chain.answer.push(Record::new(n("www.example.org"), 300, RData::Cname(n("web.cdn.example.net"))));
        for i in 1..=4 {
            chain.answer.push(a("web.cdn.example.net", [192, 0, 2, i]));
        }
        chain.authority.push(Record::new(n("example.net"), 3600, RData::Ns(n("ns1.example.net"))));
        chain.additional.push(a("ns1.example.net", [192, 0, 2, 53]));
        chain.additional.push(Record::new(
            n("_x._udp.www.example.org"),
            5,
            RData::Srv { priority: 1, weight: 2, port: 53, target: n("www.example.org") },
        ));
        chain.additional.push(Record::new(n("www.example.org"), 5, RData::Txt(vec![b"v=1".to_vec().into()])));
        let mut nx = Response::with_rcode("t", Rcode::NXDOMAIN);
        let soa = crate::dns::Soa {
            mname: n("ns1.example.org"),
            rname: n("hostmaster.example.org"),
            serial: 1,
            refresh: 2,
            retry: 3,
            expire: 4,
            minimum: 60,
        };
        nx.authority.push(Record::new(n("example.org"), 60, RData::Soa(Box::new(soa))));
        let mut big = Response::authoritative("t");
        for i in 0..40u8 {
            big.answer.push(a("www.example.org", [10, 0, 1, i]));
        }
        for i in 0..40u8 {
            big.additional.push(a("extra.example.org", [10, 0, 2, i]));
        }
        vec![one, chain, nx, big]
    }

    /// The same response carried as a [`WireAnswer`] encoded after `qname`.
    fn as_wire(resp: &Response, qname: &str, ttl: Option<u32>) -> Response {
        let sections = [resp.answer.clone(), resp.authority.clone(), resp.additional.clone()];
        let wire = WireAnswer::new(&Name::parse(qname).unwrap(), sections);
        let mut carried = resp.clone();
        (carried.answer, carried.authority, carried.additional) = (vec![], vec![], vec![]);
        carried.with_wire(wire, ttl)
    }

    /// A wire answer is written byte for byte as its records would be, whatever the client's
    /// spelling, transport, EDNS size and options, cut to the same size with the same TC bit
    /// (RFC 2181 9), and hickory reads it.
    #[test]
    fn a_wire_answer_writes_what_its_records_write() {
        let queries = [
            (query("WWW.example.ORG", RecordType::A, None), Proto::Udp),
            (query("www.example.org", RecordType::A, Some((1232, 0, true))), Proto::Udp),
            (query("www.example.org", RecordType::A, Some((600, 0, false))), Proto::Udp),
            (query("Www.Example.Org", RecordType::A, None), Proto::Tcp),
        ];
        for (i, resp) in shapes().into_iter().enumerate() {
            for (wire_query, proto) in &queries {
                let req = request(wire_query, *proto);
                for ttl in [None, Some(17)] {
                    let mut records = resp.clone();
                    records.options.push(crate::dns::edns::code::COOKIE, b"0123456789abcdef");
                    let carried = as_wire(&records, "www.example.org", ttl);
                    if let Some(ttl) = ttl {
                        for r in records.answer.iter_mut().chain(&mut records.authority).chain(&mut records.additional)
                        {
                            r.ttl = ttl;
                        }
                    }
                    let (mut want, mut got) = (vec![], vec![]);
                    let want_enc = encode_response(&mut want, &req, &records);
                    let got_enc = encode_response(&mut got, &req, &carried);
                    assert_eq!(got, want, "shape {i}, {proto:?}, ttl {ttl:?}");
                    assert_eq!(got_enc, want_enc, "shape {i}");
                    let msg = Message::from_vec(&got).unwrap();
                    assert_eq!(msg.metadata.truncation, got_enc.truncated);
                    assert_eq!(msg.queries[0].name().to_string(), req.client_question().name.to_string());
                    if let Some(ttl) = ttl {
                        assert!(msg.answers.iter().chain(&msg.authorities).all(|r| r.ttl == ttl));
                    }
                }
            }
        }
    }

    #[test]
    fn rfc2181_9_a_wire_answer_too_big_is_cut_at_a_record_and_marked_truncated() {
        let big = shapes().pop().unwrap();
        let carried = as_wire(&big, "www.example.org", Some(30));
        let mut out = vec![];
        // No EDNS: 512 bytes, 29 answers, TC, no additional records.
        let req = request(&query("www.example.org", RecordType::A, None), Proto::Udp);
        let enc = encode_response(&mut out, &req, &carried);
        let msg = Message::from_vec(&out).unwrap();
        assert!(enc.truncated && msg.metadata.truncation && out.len() <= 512);
        assert_eq!((msg.answers.len(), msg.additionals.len()), (29, 0));
        // 1232 bytes: every answer, some of the additional records, no TC.
        let req = request(&query("www.example.org", RecordType::A, Some((1232, 0, false))), Proto::Udp);
        let enc = encode_response(&mut out, &req, &carried);
        let msg = Message::from_vec(&out).unwrap();
        assert!(!enc.truncated && out.len() <= 1232);
        assert_eq!(msg.answers.len(), 40);
        assert!(!msg.additionals.is_empty() && msg.additionals.len() < 40);
        assert!(msg.edns.is_some(), "the OPT record still fits");
        // TCP: all of it.
        let req = request(&query("www.example.org", RecordType::A, None), Proto::Tcp);
        encode_response(&mut out, &req, &carried);
        let msg = Message::from_vec(&out).unwrap();
        assert_eq!((msg.answers.len(), msg.additionals.len()), (40, 40));
    }

    /// Encoded after another name (a plugin in front asked another question), its pointers would
    /// be wrong: the records are written instead.
    #[test]
    fn a_wire_answer_for_another_name_is_written_from_its_records() {
        let resp = shapes().swap_remove(1);
        let carried = as_wire(&resp, "www.example.org", Some(9));
        let mut req = request(&query("short.example", RecordType::A, None), Proto::Udp);
        req.set_question(Name::parse("www.example.org").unwrap(), RecordType::A);
        let mut out = vec![];
        encode_response(&mut out, &req, &carried);
        let msg = Message::from_vec(&out).unwrap();
        assert_eq!(msg.queries[0].name().to_string(), "short.example.");
        assert_eq!(msg.answers.len(), 5);
        assert_eq!(msg.answers[1].name.to_string(), "web.cdn.example.net.");
        assert!(msg.answers.iter().all(|r| r.ttl == 9));
    }

    #[test]
    fn materialize_turns_a_wire_answer_into_its_records() {
        let resp = shapes().swap_remove(1);
        let mut carried = as_wire(&resp, "www.example.org", Some(7));
        assert!(carried.answer.is_empty() && carried.wire().is_some());
        assert!(!carried.is_nodata());
        let req = request(&query("www.example.org", RecordType::A, None), Proto::Udp);
        assert_eq!(carried.uncompressed_len(&req), resp.uncompressed_len(&req));
        carried.materialize();
        assert!(carried.wire().is_none());
        assert_eq!(carried.answer.len(), 5);
        assert_eq!((carried.authority.len(), carried.additional.len()), (1, 3));
        assert!(carried.answer.iter().chain(&carried.additional).all(|r| r.ttl == 7));
        assert_eq!(carried.answer[1], Record { ttl: 7, ..resp.answer[1].clone() });
    }

    /// The records are not kept beside the bytes: they are read back from them, the same
    /// records, for every shape, an RRSIG's bytes included, the TTLs as stored.
    #[test]
    fn a_wire_answers_records_are_read_back_as_written() {
        let mut shapes = shapes();
        let mut signed = Response::new("t");
        signed.answer.push(a("www.example.org", [10, 0, 0, 1]));
        let sig = RData::Opaque { rtype: RecordType(46), data: (0u8..40).collect::<Vec<u8>>().into() };
        signed.answer.push(Record::new(Name::parse("WWW.example.org").unwrap(), 300, sig));
        shapes.push(signed);
        for (i, resp) in shapes.into_iter().enumerate() {
            let mut carried = as_wire(&resp, "Www.Example.Org", None);
            let req = request(&query("www.example.org", RecordType::A, None), Proto::Udp);
            assert_eq!(carried.uncompressed_len(&req), resp.uncompressed_len(&req), "shape {i}");
            carried.materialize();
            assert_eq!(
                (carried.answer, carried.authority, carried.additional),
                (resp.answer, resp.authority, resp.additional),
                "shape {i}"
            );
        }
    }

    #[test]
    fn a_wire_answer_that_would_not_read_back_says_so() {
        let n = Name::parse("www.example.org").unwrap();
        let good = WireAnswer::new(&n, [vec![a("www.example.org", [10, 0, 0, 1])], vec![], vec![]]);
        assert!(good.reads_back());
        let mx = RData::Opaque { rtype: RecordType::MX, data: vec![0u8, 10, 0xff].into() };
        let bad = WireAnswer::new(&n, [vec![Record::new(n.clone(), 60, mx)], vec![], vec![]]);
        assert!(!bad.reads_back());
    }

    #[test]
    fn srv_targets_are_not_compressed() {
        let req = request(&query("_udp.example.org", RecordType::SRV, None), Proto::Udp);
        let mut resp = Response::authoritative("test");
        resp.answer.push(Record::new(
            Name::parse("_udp.example.org").unwrap(),
            0,
            RData::Srv { priority: 0, weight: 0, port: 53, target: Name::parse("example.org").unwrap() },
        ));
        let mut out = vec![];
        encode_response(&mut out, &req, &resp);
        assert_eq!(&out[out.len() - 13..], b"\x07example\x03org\x00");
    }
}
