//! The query as a plugin sees it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use super::decode::{Edns, Query, Question, flags};
use super::{Class, Name, RecordType};
use crate::metrics::Histogram;

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
/// The header and question were decoded in place from the received bytes; nothing else of the
/// packet is kept. The question name keeps the client's spelling: compare it with
/// [`Name`]'s case-insensitive operations.
#[derive(Clone, Debug)]
pub struct Request {
    query: Query,
    client: SocketAddr,
    local: SocketAddr,
    proto: Proto,
    received: Instant,
    route: Route,
    /// Observes the size of the reply once the server has encoded it (see
    /// [`Request::observe_reply_size`]).
    reply_size: Option<Arc<Histogram>>,
}

impl Request {
    /// A request for a decoded query. IPv4-mapped IPv6 peers (from dual-stack sockets) are
    /// recorded as the IPv4 addresses they are.
    pub fn new(query: Query, client: SocketAddr, local: SocketAddr, proto: Proto, received: Instant) -> Request {
        Request {
            query,
            client: unmap(client),
            local: unmap(local),
            proto,
            received,
            route: Route::default(),
            reply_size: None,
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

    pub fn id(&self) -> u16 {
        self.query.id
    }

    /// The question name as the client spelled it.
    pub fn qname(&self) -> &Name {
        &self.query.question.name
    }

    pub fn qtype(&self) -> RecordType {
        self.query.question.qtype
    }

    pub fn qclass(&self) -> Class {
        self.query.question.qclass
    }

    pub fn question(&self) -> &Question {
        &self.query.question
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

    pub fn edns(&self) -> Option<&Edns> {
        self.query.edns.as_ref()
    }

    /// The DO bit (RFC 3225).
    pub fn dnssec_ok(&self) -> bool {
        self.query.edns.is_some_and(|e| e.dnssec_ok)
    }

    /// The largest response this client accepts: 65535 over TCP; over UDP the EDNS payload size
    /// (at least 512, RFC 6891 6.2.5), or 512 without EDNS (RFC 1035 4.2.1).
    pub fn max_response_size(&self) -> usize {
        match (self.proto, self.query.edns) {
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

    /// Asks the server to observe the size in bytes of the reply it encodes for this request
    /// into `histogram`: the bytes that go on the wire, after truncation, which no plugin can
    /// know because the server encodes after the whole chain has returned. The prometheus
    /// plugin uses it for `coredns_dns_response_size_bytes`. A later call replaces an earlier.
    pub fn observe_reply_size(&mut self, histogram: Arc<Histogram>) {
        self.reply_size = Some(histogram);
    }

    /// Records the encoded reply's size where [`Request::observe_reply_size`] asked.
    pub(crate) fn reply_encoded(&self, len: usize) {
        if let Some(h) = &self.reply_size {
            h.observe(len as f64);
        }
    }

    pub(crate) fn query(&self) -> &Query {
        &self.query
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
        r.query.edns = Some(Edns { udp_size: 100, version: 0, dnssec_ok: false });
        assert_eq!(r.max_response_size(), 512);
        r.query.edns = Some(Edns { udp_size: 1232, version: 0, dnssec_ok: false });
        assert_eq!(r.max_response_size(), 1232);
        r.proto = Proto::Tcp;
        assert_eq!(r.max_response_size(), 65535);
    }
}
