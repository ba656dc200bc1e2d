//! The query as a plugin sees it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use super::decode::{Query, Question, flags};
use super::edns::Edns;
use super::{Class, Name, RecordType};

/// The transport a query arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    Udp,
    Tcp,
}

impl Proto {
    /// `udp` or `tcp`, as metrics labels and query logs spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        }
    }
}

/// Where dispatch routed a query: indexes into the server block's zones and listen addresses,
/// so per-zone and per-listener state (metrics handles, say) is an array lookup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Route {
    pub zone: u16,
    pub server: u16,
}

/// One DNS query with the facts about how it arrived.
///
/// The header, the question and the OPT record were decoded in place from the received bytes;
/// nothing else of the packet is kept (a query has nothing else worth keeping, and copying the
/// bytes would cost every query an allocation: [`encode_query`](Request::encode_query) writes the
/// same message back for a forwarder). The question name keeps the client's spelling: compare it
/// with [`Name`]'s case-insensitive operations.
///
/// A plugin may ask the rest of the chain another question ([`set_question`](Self::set_question)
/// or [`with_question`](Self::with_question)): autopath tries search names, rewrite rewrites,
/// the kubernetes plugin resolves an ExternalName target. The reply still carries the question
/// the client asked, as the client spelled it.
#[derive(Clone, Debug)]
pub struct Request {
    query: Query,
    /// The client's question, kept here once the question is changed; `None` while it is
    /// `query.question` (the common case costs no copy of a name).
    asked: Option<Box<Question>>,
    client: SocketAddr,
    local: SocketAddr,
    proto: Proto,
    received: Instant,
    route: Route,
    /// How many times this query has been sent back through the server's chains (see
    /// [`MAX_DEPTH`](Request::MAX_DEPTH)).
    depth: u8,
}

impl Request {
    /// How deep a query may re-enter the server's chains (an ExternalName whose target is
    /// another ExternalName, and so on) before it is answered SERVFAIL: CoreDNS stops CNAME
    /// chains at the same depth.
    pub const MAX_DEPTH: u8 = 8;

    /// A request for a decoded query. IPv4-mapped IPv6 peers (from dual-stack sockets) are
    /// recorded as the IPv4 addresses they are.
    pub fn new(query: Query, client: SocketAddr, local: SocketAddr, proto: Proto, received: Instant) -> Request {
        Request {
            query,
            asked: None,
            client: unmap(client),
            local: unmap(local),
            proto,
            received,
            route: Route::default(),
            depth: 0,
        }
    }

    /// A UDP request from 127.0.0.1:53535 for `name` and `qtype`, for tests and benchmarks.
    pub fn synthetic(name: &str, qtype: RecordType) -> Request {
        let question = Question { name: Name::parse(name).expect("synthetic request name"), qtype, qclass: Class::IN };
        let len = 12 + question.name.wire_len() + 4;
        let query = Query { id: 0x1234, flags: flags::RD, question, edns: None, len };
        let client = SocketAddr::from((Ipv4Addr::LOCALHOST, 53535));
        let local = SocketAddr::from((Ipv4Addr::LOCALHOST, 53));
        Request::new(query, client, local, Proto::Udp, Instant::now())
    }

    /// Asks `name` and `qtype` (class IN) from now on. The reply the server writes still carries
    /// the question the client asked ([`client_question`](Self::client_question)).
    pub fn set_question(&mut self, name: Name, qtype: RecordType) {
        let question = Question { name, qtype, qclass: Class::IN };
        let asked = std::mem::replace(&mut self.query.question, question);
        self.asked.get_or_insert_with(|| Box::new(asked));
    }

    /// A copy of this request asking `name` and `qtype` instead: everything else (client,
    /// transport, flags, EDNS) is the same.
    pub fn with_question(&self, name: Name, qtype: RecordType) -> Request {
        let mut r = self.clone();
        r.set_question(name, qtype);
        r
    }

    /// A request for `name` and `qtype` sent back through the server's own chains on behalf of
    /// this one (an ExternalName target, say): the same client and transport, recursion desired,
    /// no EDNS, one level deeper; `None` once [`MAX_DEPTH`](Self::MAX_DEPTH) is reached.
    pub fn reentrant(&self, name: Name, qtype: RecordType) -> Option<Request> {
        if self.depth >= Self::MAX_DEPTH {
            return None;
        }
        let question = Question { name, qtype, qclass: Class::IN };
        let len = 12 + question.name.wire_len() + 4;
        let query = Query { id: self.query.id, flags: flags::RD, question, edns: None, len };
        let mut r = Request::new(query, self.client, self.local, self.proto, Instant::now());
        r.depth = self.depth + 1;
        Some(r)
    }

    /// How many times this query has re-entered the server's chains (0 for a client's query).
    pub fn depth(&self) -> u8 {
        self.depth
    }

    pub fn id(&self) -> u16 {
        self.query.id
    }

    /// The name asked, as the client spelled it (or as a plugin set it).
    pub fn qname(&self) -> &Name {
        &self.query.question.name
    }

    pub fn qtype(&self) -> RecordType {
        self.query.question.qtype
    }

    pub fn qclass(&self) -> Class {
        self.query.question.qclass
    }

    /// The question asked now.
    pub fn question(&self) -> &Question {
        &self.query.question
    }

    /// The question the client asked, which its reply carries.
    pub fn client_question(&self) -> &Question {
        self.asked.as_deref().unwrap_or(&self.query.question)
    }

    /// The raw header flags as received.
    pub fn header_flags(&self) -> u16 {
        self.query.flags
    }

    pub fn recursion_desired(&self) -> bool {
        self.query.flags & flags::RD != 0
    }

    pub fn checking_disabled(&self) -> bool {
        self.query.flags & flags::CD != 0
    }

    /// The AD bit of the query: the client wants to learn whether the answer was validated
    /// (RFC 6840 5.7), even without the DO bit.
    pub fn authentic_data(&self) -> bool {
        self.query.flags & flags::AD != 0
    }

    /// Sets or clears the query's AD bit for the plugins after the caller, and for the query a
    /// forwarder sends ([`encode_query`](Self::encode_query) writes the flags as they are now).
    /// A cache sets it on the queries that fill it, so that an upstream validating resolver says
    /// whether the answer is authentic whatever the client that missed asked (RFC 6840 5.8: it
    /// sets AD only for queries with AD or DO), and the answer can be served to clients of either
    /// kind (coredns#6642).
    pub fn set_authentic_data(&mut self, ad: bool) {
        if ad {
            self.query.flags |= flags::AD;
        } else {
            self.query.flags &= !flags::AD;
        }
    }

    pub fn edns(&self) -> Option<&Edns> {
        self.query.edns.as_ref()
    }

    /// The DO bit (RFC 3225).
    pub fn dnssec_ok(&self) -> bool {
        self.query.edns.as_ref().is_some_and(|e| e.dnssec_ok)
    }

    /// The largest response this client accepts: 65535 over TCP; over UDP the EDNS payload size
    /// (at least 512, RFC 6891 6.2.5), or 512 without EDNS (RFC 1035 4.2.1).
    pub fn max_response_size(&self) -> usize {
        match (self.proto, &self.query.edns) {
            (Proto::Tcp, _) => u16::MAX as usize,
            (Proto::Udp, Some(e)) => (e.udp_size as usize).max(512),
            (Proto::Udp, None) => 512,
        }
    }

    /// Size of the query in bytes.
    pub fn len(&self) -> usize {
        self.query.len
    }

    pub fn is_empty(&self) -> bool {
        self.query.len == 0
    }

    pub fn client(&self) -> SocketAddr {
        self.client
    }

    pub fn local(&self) -> SocketAddr {
        self.local
    }

    pub fn proto(&self) -> Proto {
        self.proto
    }

    /// 1 for IPv4 clients, 2 for IPv6 (the address family numbers CoreDNS reports).
    pub fn family(&self) -> u8 {
        if self.client.is_ipv4() { 1 } else { 2 }
    }

    /// When the query was read from the socket.
    pub fn received(&self) -> Instant {
        self.received
    }

    pub fn route(&self) -> Route {
        self.route
    }

    pub(crate) fn set_route(&mut self, route: Route) {
        self.route = route;
    }

    pub(crate) fn query(&self) -> &Query {
        &self.query
    }

    /// Writes this request as a query message with `id` into `out` (cleared first): the
    /// header flags as received (opcode QUERY, RD, AD, CD), the question asked now, and the OPT
    /// record as received, every option included. What a forwarder sends upstream.
    pub fn encode_query(&self, id: u16, out: &mut Vec<u8>) {
        super::encode::encode_query(out, id, self.query.flags, &self.query.question, self.query.edns.as_ref());
    }
}

fn unmap(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_question_keeps_the_clients() {
        let mut r = Request::synthetic("Web.Apps", RecordType::A);
        r.set_question(Name::parse("web.apps.svc.cluster.local").unwrap(), RecordType::AAAA);
        r.set_question(Name::parse("web.apps.cluster.local").unwrap(), RecordType::A);
        assert_eq!(r.qname().to_string(), "web.apps.cluster.local.");
        assert_eq!(r.client_question().name.to_string(), "Web.Apps.");
        assert_eq!(r.client_question().qtype, RecordType::A);
        let copy = Request::synthetic("a.b", RecordType::A).with_question(Name::parse("c.d").unwrap(), RecordType::MX);
        assert_eq!((copy.qname().to_string(), copy.client_question().name.to_string()), ("c.d.".into(), "a.b.".into()));
    }

    #[test]
    fn reentry_is_bounded() {
        let mut r = Request::synthetic("a.b", RecordType::A);
        for depth in 1..=Request::MAX_DEPTH {
            r = r.reentrant(Name::parse("c.d").unwrap(), RecordType::A).unwrap();
            assert_eq!(r.depth(), depth);
        }
        assert!(r.reentrant(Name::parse("c.d").unwrap(), RecordType::A).is_none());
    }

    #[test]
    fn the_ad_bit_can_be_set_for_the_rest_of_the_chain_and_the_query_sent_upstream() {
        let mut r = Request::synthetic("a.b", RecordType::A);
        assert!(!r.authentic_data());
        r.set_authentic_data(true);
        assert!(r.authentic_data() && r.recursion_desired());
        let mut wire = Vec::new();
        r.encode_query(1, &mut wire);
        assert_eq!(u16::from_be_bytes([wire[2], wire[3]]), flags::RD | flags::AD);
        r.set_authentic_data(false);
        assert!(!r.authentic_data() && r.recursion_desired());
    }

    #[test]
    fn mapped_clients_are_ipv4() {
        let mut r = Request::synthetic("a.", RecordType::A);
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:5000".parse().unwrap();
        r = Request::new(r.query.clone(), mapped, mapped, Proto::Udp, r.received);
        assert_eq!(r.client().to_string(), "10.0.0.1:5000");
        assert_eq!(r.family(), 1);
    }

    #[test]
    fn response_size_limits() {
        let mut r = Request::synthetic("a.", RecordType::A);
        assert_eq!(r.max_response_size(), 512);
        r.query.edns = Some(Edns::new(100));
        assert_eq!(r.max_response_size(), 512);
        r.query.edns = Some(Edns::new(1232));
        assert_eq!(r.max_response_size(), 1232);
        r.proto = Proto::Tcp;
        assert_eq!(r.max_response_size(), 65535);
    }
}
