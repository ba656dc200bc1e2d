//! Resource records as plugins build them for a [`Response`](super::Response).
//!
//! These are plain owned values, cheap to build for the records a cluster DNS serves (addresses,
//! CNAMEs, SRV and PTR targets) and encoded straight to wire bytes by the server. Types the
//! server does not model are carried as opaque RDATA (RFC 3597).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::{Class, Name, RecordType};

/// One resource record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub name: Name,
    pub class: Class,
    pub ttl: u32,
    pub data: RData,
}

impl Record {
    /// True for an RRSIG whose validity period (RFC 4034 3.1.5) does not hold `now` (seconds since
    /// the epoch), with the serial-number arithmetic of RFC 1982 as miekg/dns does it; false for
    /// every other record. The log plugin classifies replies by it and the cache does not keep
    /// such answers.
    pub fn rrsig_expired(&self, now: i64) -> bool {
        let RData::Opaque { rtype: RecordType::RRSIG, data } = &self.data else { return false };
        // type covered (2), algorithm (1), labels (1), original TTL (4), expiration (4), inception (4)
        let (Some(exp), Some(inc)) = (data.get(8..12), data.get(12..16)) else { return false };
        let expiration = u32::from_be_bytes(exp.try_into().expect("4 bytes")) as i64;
        let inception = u32::from_be_bytes(inc.try_into().expect("4 bytes")) as i64;
        const YEAR68: i64 = 1 << 31;
        let ti = inception + (inception - now) / YEAR68 * YEAR68;
        let te = expiration + (expiration - now) / YEAR68 * YEAR68;
        !(ti <= now && now <= te)
    }

    /// An IN-class record.
    pub fn new(name: Name, ttl: u32, data: RData) -> Record {
        Record { name, class: Class::IN, ttl, data }
    }

    pub fn rtype(&self) -> RecordType {
        self.data.rtype()
    }
}

/// The start of authority, RFC 1035 3.3.13. Boxed inside [`RData`] to keep records small.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Soa {
    pub mname: Name,
    pub rname: Name,
    pub serial: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub minimum: u32,
}

/// Record data. Names inside CNAME, NS, PTR, MX and SOA may be compressed on the wire (RFC 3597
/// section 4); SRV targets never are (RFC 2782).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(Name),
    Ns(Name),
    Ptr(Name),
    Mx {
        preference: u16,
        exchange: Name,
    },
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: Name,
    },
    /// Character strings of up to 255 bytes each.
    Txt(Vec<Box<[u8]>>),
    Soa(Box<Soa>),
    /// Any other type, as raw RDATA.
    Opaque {
        rtype: RecordType,
        data: Box<[u8]>,
    },
}

impl RData {
    pub fn rtype(&self) -> RecordType {
        match self {
            RData::A(_) => RecordType::A,
            RData::Aaaa(_) => RecordType::AAAA,
            RData::Cname(_) => RecordType::CNAME,
            RData::Ns(_) => RecordType::NS,
            RData::Ptr(_) => RecordType::PTR,
            RData::Mx { .. } => RecordType::MX,
            RData::Srv { .. } => RecordType::SRV,
            RData::Txt(_) => RecordType::TXT,
            RData::Soa(_) => RecordType::SOA,
            RData::Opaque { rtype, .. } => *rtype,
        }
    }

    /// RDATA length without name compression.
    pub fn uncompressed_len(&self) -> usize {
        match self {
            RData::A(_) => 4,
            RData::Aaaa(_) => 16,
            RData::Cname(n) | RData::Ns(n) | RData::Ptr(n) => n.wire_len(),
            RData::Mx { exchange, .. } => 2 + exchange.wire_len(),
            RData::Srv { target, .. } => 6 + target.wire_len(),
            RData::Txt(strings) => strings.iter().map(|s| 1 + s.len()).sum(),
            RData::Soa(soa) => soa.mname.wire_len() + soa.rname.wire_len() + 20,
            RData::Opaque { data, .. } => data.len(),
        }
    }
}

impl fmt::Display for RData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RData::A(ip) => write!(f, "{ip}"),
            RData::Aaaa(ip) => write!(f, "{ip}"),
            RData::Cname(n) | RData::Ns(n) | RData::Ptr(n) => write!(f, "{n}"),
            RData::Mx { preference, exchange } => write!(f, "{preference} {exchange}"),
            RData::Srv { priority, weight, port, target } => {
                write!(f, "{priority} {weight} {port} {target}")
            }
            RData::Txt(strings) => {
                for (i, s) in strings.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    f.write_str("\"")?;
                    for &b in s.iter() {
                        match b {
                            b'"' | b'\\' => write!(f, "\\{}", b as char)?,
                            0x20..=0x7e => write!(f, "{}", b as char)?,
                            _ => write!(f, "\\{b:03}")?,
                        }
                    }
                    f.write_str("\"")?;
                }
                Ok(())
            }
            RData::Soa(s) => {
                write!(f, "{} {} {} {} {} {} {}", s.mname, s.rname, s.serial, s.refresh, s.retry, s.expire, s.minimum)
            }
            RData::Opaque { data, .. } => {
                write!(f, "\\# {}", data.len())?;
                if !data.is_empty() {
                    f.write_str(" ")?;
                    for b in data.iter() {
                        write!(f, "{b:02x}")?;
                    }
                }
                Ok(())
            }
        }
    }
}

/// Presentation format, as dig prints it: `web.apps.svc.cluster.local. 5 IN A 10.96.0.12`.
impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {} {} {}", self.name, self.ttl, self.class, self.rtype(), self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_like_dig() {
        let r =
            Record::new(Name::parse("web.apps.svc.cluster.local").unwrap(), 5, RData::A(Ipv4Addr::new(10, 96, 0, 12)));
        assert_eq!(r.to_string(), "web.apps.svc.cluster.local. 5 IN A 10.96.0.12");
        let srv = RData::Srv { priority: 0, weight: 0, port: 53, target: Name::root() };
        assert_eq!(srv.to_string(), "0 0 53 .");
        let txt = RData::Txt(vec![b"a \"q\"".to_vec().into_boxed_slice()]);
        assert_eq!(txt.to_string(), "\"a \\\"q\\\"\"");
        let opaque = RData::Opaque { rtype: RecordType(65534), data: Box::new([1, 2]) };
        assert_eq!(opaque.to_string(), "\\# 2 0102");
    }
}
