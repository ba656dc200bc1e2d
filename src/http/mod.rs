//! HTTP as plugins and the server share it: the addresses endpoints listen on, the handler a
//! plugin serves a path with (health, ready, prometheus), and the TLS configuration an address
//! may be served with ([`tls`]). The listeners themselves are the server's.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

use crate::corefile::Error;

pub mod tls;

/// An HTTP listen address as the Corefile gives it (`:8080`, `localhost:9153`,
/// `127.0.0.1:8181`, `[::1]:8080`): an empty host means every address.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HttpAddr {
    pub host: String,
    pub port: u16,
}

impl HttpAddr {
    /// Parses `host:port` as Go's `net.SplitHostPort` does (IPv6 hosts in brackets).
    pub fn parse(s: &str) -> Option<HttpAddr> {
        let (host, port) = s.rsplit_once(':')?;
        let host = match host.strip_prefix('[') {
            Some(h) => h.strip_suffix(']')?,
            None if host.contains(':') => return None,
            None => host,
        };
        Some(HttpAddr { host: host.to_string(), port: port.parse().ok()? })
    }

    /// The socket addresses to listen on.
    pub(crate) fn resolve(&self) -> std::io::Result<Vec<SocketAddr>> {
        match self.host.as_str() {
            "" => Ok(vec![SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), self.port)]),
            // Go listens on the loopback address for "localhost".
            "localhost" => Ok(vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), self.port)]),
            h => (h, self.port).to_socket_addrs().map(|a| a.collect()),
        }
    }
}

impl HttpAddr {
    /// The directive's optional address argument (`health [ADDRESS]`), or `default`; an invalid
    /// address is an error at its token.
    pub fn optional_arg(args: &mut crate::corefile::Args<'_>, default: &str) -> Result<HttpAddr, Error> {
        let Some(tok) = args.next_arg() else {
            return Ok(HttpAddr::parse(default).expect("a valid default address"));
        };
        HttpAddr::parse(&tok.text)
            .ok_or_else(|| args.error(tok, format!("invalid address '{}': expected HOST:PORT, e.g. :8080", tok.text)))
    }
}

impl fmt::Display for HttpAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A GET request as a handler sees it.
pub struct HttpRequest<'a> {
    pub path: &'a str,
    pub accept: Option<&'a str>,
}

/// A handler's answer.
pub struct HttpResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn text(status: u16, body: impl Into<Vec<u8>>) -> HttpResponse {
        HttpResponse { status, content_type: "text/plain; charset=utf-8", body: body.into() }
    }
}

/// Serves one path. Handlers answer synchronously: health, readiness and a metrics scrape are
/// all computed in memory.
pub trait HttpHandler: Send + Sync + 'static {
    fn handle(&self, req: &HttpRequest<'_>) -> HttpResponse;

    /// Told the socket addresses the handler is served on, each time a configuration that has it
    /// is swapped in (the health plugin's self-check requests its own endpoint).
    fn bound(&self, _local: &[SocketAddr]) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_style_addresses() {
        assert_eq!(HttpAddr::parse(":8080"), Some(HttpAddr { host: "".into(), port: 8080 }));
        assert_eq!(HttpAddr::parse("localhost:9153"), Some(HttpAddr { host: "localhost".into(), port: 9153 }));
        assert_eq!(HttpAddr::parse("[::1]:8181"), Some(HttpAddr { host: "::1".into(), port: 8181 }));
        assert_eq!(HttpAddr::parse("::1:8181"), None);
        assert_eq!(HttpAddr::parse("8080"), None);
        assert_eq!(HttpAddr::parse(":99999"), None);
        assert_eq!(HttpAddr::parse("[::1]:8181").unwrap().to_string(), "[::1]:8181");
    }
}
