//! The answer a plugin returns.

use std::sync::Arc;

use super::edns::{EdnsOptions, ExtendedError};
use super::encode::WireAnswer;
use super::{Rcode, Record, Request};

/// What a plugin answers. The server encodes it once, after the whole chain has run: header
/// flags and the client's question are taken from the request, the OPT record is added when the
/// query had one (carrying [`options`](Self::options)), and the answer is truncated (TC=1) to the
/// client's size limit.
///
/// A response can carry an upstream's message faithfully: every record type (types not modelled
/// here as opaque RDATA, byte-exact), the AD bit, an extended rcode and the upstream's EDNS
/// options, extended DNS errors among them.
///
/// NXDOMAIN and NODATA are responses like any other; a plugin that cannot answer at all returns
/// an error instead (see [`ServeError`](crate::plugin::ServeError)).
///
/// # Answers kept encoded
///
/// A cache hit carries its sections as a shared [`WireAnswer`] ([`with_wire`](Self::with_wire))
/// rather than records: the server copies its bytes and patches the TTLs. Its sections then read
/// as empty until [`materialize`](Self::materialize) turns them into records; the chain does that
/// for every plugin that [reads answers](crate::plugin::Plugin::reads_answers), so a plugin
/// author never meets one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub rcode: Rcode,
    /// AA: set by plugins authoritative for the name.
    pub authoritative: bool,
    /// RA: set by plugins that resolve recursively (forward, cache of forwarded answers).
    pub recursion_available: bool,
    /// AD (RFC 4035 3.2.3).
    pub authentic_data: bool,
    /// TC: a plugin may force it; the server also sets it when records do not fit.
    pub truncated: bool,
    pub answer: Vec<Record>,
    pub authority: Vec<Record>,
    pub additional: Vec<Record>,
    /// EDNS options for the client's OPT record: an upstream's, or ones a plugin adds (an
    /// extended DNS error, say). Sent only to clients that sent an OPT record (RFC 6891 7).
    pub options: EdnsOptions,
    plugin: &'static str,
    /// The sections, encoded, and the TTL to write on each of their records (`None`: as stored).
    wire: Option<(Arc<WireAnswer>, Option<u32>)>,
}

// A response is moved at every plugin it passes back through: up to 128 bytes the move is
// compiled inline, beyond that it is a call to memcpy (see `EdnsOptions`). 64-bit targets only:
// elsewhere pointers are smaller anyway.
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<Response>() <= 128, "Response grew past 128 bytes");

impl Response {
    /// An empty NOERROR response made by `plugin`.
    pub fn new(plugin: &'static str) -> Response {
        Response {
            rcode: Rcode::NOERROR,
            authoritative: false,
            recursion_available: false,
            authentic_data: false,
            truncated: false,
            answer: Vec::new(),
            authority: Vec::new(),
            additional: Vec::new(),
            options: EdnsOptions::new(),
            plugin,
            wire: None,
        }
    }

    /// An empty NOERROR response with AA set.
    pub fn authoritative(plugin: &'static str) -> Response {
        Response { authoritative: true, ..Response::new(plugin) }
    }

    /// An empty response with this rcode.
    pub fn with_rcode(plugin: &'static str, rcode: Rcode) -> Response {
        Response { rcode, ..Response::new(plugin) }
    }

    /// Adds an extended DNS error (RFC 8914) for clients that speak EDNS.
    pub fn push_extended_error(&mut self, e: &ExtendedError) {
        self.options.push_extended_error(e);
    }

    /// Says that `plugin` hands on this response as its own (the `plugin` label of
    /// `coredns_dns_responses_total`), as the cache does with answers it serves.
    pub fn set_plugin(&mut self, plugin: &'static str) {
        self.plugin = plugin;
    }

    /// The plugin that made this response (the `plugin` label of `coredns_dns_responses_total`).
    pub fn plugin(&self) -> &'static str {
        self.plugin
    }

    /// Carries `sections` as written after the question (see [`WireAnswer`]), every record with
    /// TTL `ttl` if given, instead of the record sections, which must be empty.
    pub fn with_wire(mut self, sections: Arc<WireAnswer>, ttl: Option<u32>) -> Response {
        debug_assert!(self.answer.is_empty() && self.authority.is_empty() && self.additional.is_empty());
        self.wire = Some((sections, ttl));
        self
    }

    /// The encoded sections it carries, and the TTL they are written with.
    pub fn wire(&self) -> Option<(&WireAnswer, Option<u32>)> {
        self.wire.as_ref().map(|(w, ttl)| (&**w, *ttl))
    }

    /// Turns encoded sections into records, with the TTL they would be written with, so the
    /// sections can be read and changed. Does nothing to a response of records. Allocates one
    /// vector per non-empty section.
    pub fn materialize(&mut self) {
        let Some((wire, ttl)) = self.wire.take() else { return };
        let [answer, authority, additional] = wire.records();
        let copy = |records: &[Record]| -> Vec<Record> {
            records.iter().map(|r| Record { ttl: ttl.unwrap_or(r.ttl), ..r.clone() }).collect()
        };
        (self.answer, self.authority, self.additional) = (copy(answer), copy(authority), copy(additional));
    }

    /// NOERROR without answers: the name exists but has no records of the asked type.
    pub fn is_nodata(&self) -> bool {
        let answers = self.wire.as_ref().map_or(self.answer.len(), |(w, _)| w.counts()[0].into());
        self.rcode == Rcode::NOERROR && answers == 0
    }

    /// The size of this response on the wire without name compression, as CoreDNS's `{rsize}`
    /// reports it: header, question, records and the OPT record when the query had EDNS.
    pub fn uncompressed_len(&self, req: &Request) -> usize {
        let rr: usize = match &self.wire {
            Some((w, _)) => w.uncompressed_len(),
            None => {
                let records = self.answer.iter().chain(&self.authority).chain(&self.additional);
                records.map(|r| r.name.wire_len() + 10 + r.data.uncompressed_len()).sum()
            }
        };
        let opt = if req.edns().is_some() { 11 + self.options.as_wire().len() } else { 0 };
        12 + req.client_question().name.wire_len() + 4 + rr + opt
    }
}
