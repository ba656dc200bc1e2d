//! The answer a plugin returns.

use super::edns::{EdnsOptions, ExtendedError};
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
}

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

    /// NOERROR without answers: the name exists but has no records of the asked type.
    pub fn is_nodata(&self) -> bool {
        self.rcode == Rcode::NOERROR && self.answer.is_empty()
    }

    /// The size of this response on the wire without name compression, as CoreDNS's `{rsize}`
    /// reports it: header, question, records and the OPT record when the query had EDNS.
    pub fn uncompressed_len(&self, req: &Request) -> usize {
        let records = self.answer.iter().chain(&self.authority).chain(&self.additional);
        let rr: usize = records.map(|r| r.name.wire_len() + 10 + r.data.uncompressed_len()).sum();
        let opt = if req.edns().is_some() { 11 + self.options.as_wire().len() } else { 0 };
        12 + req.client_question().name.wire_len() + 4 + rr + opt
    }
}
