//! Server block keys: `[SCHEME://]ZONE[:PORT]` (corefile(5)).
//!
//! A zone is a domain name, or a CIDR standing for its reverse zones: `10.0.0.0/8` is
//! `10.in-addr.arpa.`. Prefixes that do not fall on a label boundary become every zone they cover,
//! as CoreDNS does for IPv4 (classful: `172.16.0.0/12` is `16.172.in-addr.arpa.` to
//! `31.172.in-addr.arpa.`). For IPv6 a prefix off a nibble boundary likewise becomes the (at most
//! eight) nibble zones it covers; CoreDNS instead serves the enclosing nibble zone and filters
//! queries by the prefix, which answers the same names.

use std::net::IpAddr;

use super::error::Error;
use super::lexer::Token;
use crate::dns::Name;

/// How a server block is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// Plain DNS over UDP and TCP.
    Dns,
}

impl Transport {
    pub fn scheme(self) -> &'static str {
        match self {
            Transport::Dns => "dns",
        }
    }
}

/// One key of a server block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerKey {
    pub transport: Transport,
    /// The zones this key stands for, lowercase (several for a CIDR off a label boundary).
    pub zones: Vec<Name>,
    /// The port given in the key, if any.
    pub port: Option<u16>,
}

/// Schemes CoreDNS knows that clusterdns does not serve yet.
const UNIMPLEMENTED_SCHEMES: &[&str] = &["tls", "https", "https3", "grpc", "quic"];

/// Parses one key token.
pub fn parse_key(tok: &Token) -> Result<ServerKey, Error> {
    let err = |msg: String| Error::syntax(&tok.pos, msg);
    let mut text = tok.text.as_str();
    let transport = match text.split_once("://") {
        Some(("dns", rest)) => {
            text = rest;
            Transport::Dns
        }
        Some((scheme, _)) if UNIMPLEMENTED_SCHEMES.contains(&scheme) => {
            return Err(err(format!("{scheme}:// servers are not implemented yet; only dns:// is served")));
        }
        Some((scheme, _)) => return Err(err(format!("unknown scheme '{scheme}://' in key '{}'", tok.text))),
        None => Transport::Dns,
    };
    // A port is digits after the last colon: this never takes from a domain name, and a CIDR
    // always has its "/mask" before the port.
    let (host, port) = match text.rsplit_once(':') {
        Some((host, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            let port = p.parse::<u16>().map_err(|_| err(format!("port out of range in key '{}'", tok.text)))?;
            (host, Some(port))
        }
        Some((_, "")) => return Err(err(format!("expected a port after ':' in key '{}'", tok.text))),
        _ => (text, None),
    };
    if host.is_empty() {
        return Err(err(format!("expected a zone in key '{}'", tok.text)));
    }
    let zones = if host.contains('/') {
        reverse_zones(host).ok_or_else(|| err(format!("invalid CIDR '{host}' in key '{}'", tok.text)))?
    } else {
        if host.contains(':') {
            return Err(err(format!("invalid port in key '{}'", tok.text)));
        }
        let zone = Name::parse(host).map_err(|e| err(format!("invalid zone in key '{}': {e}", tok.text)))?;
        vec![zone.to_lowercase()]
    };
    Ok(ServerKey { transport, zones, port })
}

/// The reverse zones a CIDR stands for, or `None` when it is not one.
pub fn reverse_zones(cidr: &str) -> Option<Vec<Name>> {
    let (addr, prefix) = cidr.split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    let prefix: u8 = prefix.parse().ok()?;
    match addr {
        IpAddr::V4(v4) => {
            if prefix > 32 {
                return None;
            }
            // Classful, as CoreDNS's ClassfulFromCIDR: widen the prefix to /8, /16, /24 or /32.
            let zone_bits: u32 = match prefix {
                0..=8 => 8,
                9..=16 => 16,
                17..=24 => 24,
                _ => 32,
            };
            let base = u32::from(v4) & mask32(prefix);
            let count = 1u32 << (zone_bits - prefix as u32);
            let step = 1u64 << (32 - zone_bits);
            let mut zones = Vec::with_capacity(count as usize);
            for i in 0..count as u64 {
                let net = (base as u64 + i * step) as u32;
                let octets = net.to_be_bytes();
                let labels: Vec<String> =
                    octets[..(zone_bits / 8) as usize].iter().rev().map(|o| o.to_string()).collect();
                zones.push(Name::parse(&format!("{}.in-addr.arpa.", labels.join("."))).ok()?);
            }
            Some(zones)
        }
        IpAddr::V6(v6) => {
            if prefix > 128 {
                return None;
            }
            let nibble_bits = prefix.div_ceil(4) * 4;
            let base = u128::from(v6) & mask128(prefix);
            let count = 1u128 << (nibble_bits - prefix);
            let step = if nibble_bits == 0 { 0 } else { 1u128 << (128 - nibble_bits) };
            let mut zones = Vec::with_capacity(count as usize);
            for i in 0..count {
                let net = base + i * step;
                let nibbles = (nibble_bits / 4) as usize;
                let mut labels: Vec<String> =
                    (0..nibbles).map(|n| format!("{:x}", (net >> (124 - 4 * n)) & 0xf)).collect();
                labels.reverse();
                labels.push("ip6.arpa.".to_string());
                zones.push(Name::parse(&labels.join(".")).ok()?);
            }
            Some(zones)
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    if prefix == 0 { 0 } else { u32::MAX << (32 - prefix as u32) }
}

fn mask128(prefix: u8) -> u128 {
    if prefix == 0 { 0 } else { u128::MAX << (128 - prefix as u32) }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::corefile::Pos;

    fn key(text: &str) -> Result<ServerKey, Error> {
        let file: Arc<str> = "Corefile".into();
        let end_col = 1 + text.chars().count() as u32;
        parse_key(&Token { text: text.into(), pos: Pos::new(&file, 1, 1), end_line: 1, end_col, quoted: false })
    }

    fn zones(text: &str) -> Vec<String> {
        key(text).unwrap().zones.iter().map(|z| z.to_string()).collect()
    }

    #[test]
    fn zones_ports_and_schemes() {
        let k = key("Example.ORG:1053").unwrap();
        assert_eq!((k.zones[0].to_string(), k.port), ("example.org.".into(), Some(1053)));
        let k = key("dns://.:53").unwrap();
        assert_eq!((k.zones[0].to_string(), k.port), (".".into(), Some(53)));
        assert_eq!(key(".").unwrap().port, None);
        assert_eq!(zones("cluster.local"), ["cluster.local."]);
    }

    #[test]
    fn reverse_zones_from_cidrs() {
        assert_eq!(zones("10.0.0.0/8"), ["10.in-addr.arpa."]);
        assert_eq!(zones("10.1.0.0/16:1053"), ["1.10.in-addr.arpa."]);
        let z = zones("172.16.0.0/12");
        assert_eq!(z.len(), 16);
        assert_eq!(z[0], "16.172.in-addr.arpa.");
        assert_eq!(z[15], "31.172.in-addr.arpa.");
        assert_eq!(zones("192.168.1.0/24"), ["1.168.192.in-addr.arpa."]);
        assert_eq!(zones("192.168.1.0/31"), ["0.1.168.192.in-addr.arpa.", "1.1.168.192.in-addr.arpa."]);
        assert_eq!(zones("fd00::/64"), ["0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa."]);
        assert_eq!(zones("fd00::/8"), ["d.f.ip6.arpa."]);
        assert_eq!(zones("fd00::/7"), ["c.f.ip6.arpa.", "d.f.ip6.arpa."]);
        assert_eq!(zones("::/0"), ["ip6.arpa."]);
        assert_eq!(zones("0.0.0.0/0").len(), 256);
        assert_eq!(zones("fd00::/64:53"), zones("fd00::/64"));
    }

    #[test]
    fn bad_keys() {
        let cases = [
            ("tls://.:853", "Corefile:1:1: tls:// servers are not implemented yet; only dns:// is served"),
            ("https://.", "Corefile:1:1: https:// servers are not implemented yet; only dns:// is served"),
            ("grpc://.", "Corefile:1:1: grpc:// servers are not implemented yet; only dns:// is served"),
            ("quic://.", "Corefile:1:1: quic:// servers are not implemented yet; only dns:// is served"),
            ("udp://.", "Corefile:1:1: unknown scheme 'udp://' in key 'udp://.'"),
            (".:99999", "Corefile:1:1: port out of range in key '.:99999'"),
            ("example.org:", "Corefile:1:1: expected a port after ':' in key 'example.org:'"),
            ("example.org:abc", "Corefile:1:1: invalid port in key 'example.org:abc'"),
            ("a..b", "Corefile:1:1: invalid zone in key 'a..b': empty label in 'a..b'"),
            ("10.0.0.0/33", "Corefile:1:1: invalid CIDR '10.0.0.0/33' in key '10.0.0.0/33'"),
            (":53", "Corefile:1:1: expected a zone in key ':53'"),
        ];
        for (text, want) in cases {
            assert_eq!(key(text).unwrap_err().to_string(), want);
        }
    }
}
