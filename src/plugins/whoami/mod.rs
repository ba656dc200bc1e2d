//! *whoami*: answers every query with the client's address, port and transport.

use crate::dns::{Name, RData, Record, Request, Response};
use crate::plugin::{Next, Plugin, ServeError};

mod setup;
pub use setup::parse;

pub const NAME: &str = "whoami";

/// Puts the client's address (A or AAAA) and an SRV record `_udp.<qname>`/`_tcp.<qname>` whose
/// port is the client's port in the additional section, with TTL 0, as CoreDNS's whoami does.
pub struct Whoami;

impl Plugin for Whoami {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve<'a>(&'a self, req: &'a mut Request, _next: Next<'a>) -> Result<Response, ServeError> {
        Ok(answer(req))
    }
}

fn answer(req: &Request) -> Response {
    let mut resp = Response::authoritative(NAME);
    let client = req.client();
    let qname = req.qname();
    let addr = match client.ip() {
        std::net::IpAddr::V4(ip) => RData::A(ip),
        std::net::IpAddr::V6(ip) => RData::Aaaa(ip),
    };
    let mut address = Record::new(qname.clone(), 0, addr);
    address.class = req.qclass();
    resp.additional.push(address);
    let label: &[u8] = match req.proto() {
        crate::dns::Proto::Udp => b"_udp",
        crate::dns::Proto::Tcp => b"_tcp",
    };
    // A name one label too long for `_udp.` has no SRV record; the address still goes out.
    if let Ok(srv_name) = qname.prepend_label(label) {
        let srv = RData::Srv { priority: 0, weight: 0, port: client.port(), target: Name::root() };
        let mut srv = Record::new(srv_name, 0, srv);
        srv.class = req.qclass();
        resp.additional.push(srv);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::RecordType;

    #[test]
    fn answers_with_the_clients_address_and_port() {
        let req = Request::synthetic("example.org.", RecordType::A);
        let resp = answer(&req);
        assert!(resp.authoritative && resp.answer.is_empty());
        let lines: Vec<String> = resp.additional.iter().map(|r| r.to_string()).collect();
        assert_eq!(lines, ["example.org. 0 IN A 127.0.0.1", "_udp.example.org. 0 IN SRV 0 0 53535 ."]);
    }

    #[test]
    fn root_query_gets_udp_dot() {
        let req = Request::synthetic(".", RecordType::A);
        assert_eq!(answer(&req).additional[1].name.to_string(), "_udp.");
    }
}
