//! The small integer types of the DNS header and question, with their mnemonics.

use std::fmt;

macro_rules! mnemonic_type {
    ($(#[$m:meta])* $ty:ident, $unknown:literal, { $($name:ident = $val:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $ty(pub u16);

        #[allow(non_upper_case_globals)]
        impl $ty {
            $(pub const $name: $ty = $ty($val);)*

            /// The mnemonic, or `None` for a number without one.
            pub fn mnemonic(self) -> Option<&'static str> {
                match self.0 {
                    $($val => Some(stringify!($name)),)*
                    _ => None,
                }
            }

            /// Parses a mnemonic (any case) or the generic `TYPE123`/`CLASS3` form.
            pub fn from_mnemonic(s: &str) -> Option<$ty> {
                $(if s.eq_ignore_ascii_case(stringify!($name)) { return Some($ty::$name); })*
                let digits = s.get($unknown.len()..)?;
                if s[..$unknown.len()].eq_ignore_ascii_case($unknown) {
                    return digits.parse().ok().map($ty);
                }
                None
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.mnemonic() {
                    Some(m) => f.write_str(m),
                    None => write!(f, "{}{}", $unknown, self.0),
                }
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
    };
}

mnemonic_type!(
    /// A resource record type (RFC 1035 3.2.2 and the IANA registry); unknown types print as
    /// `TYPE123` (RFC 3597).
    RecordType, "TYPE", {
    A = 1, NS = 2, CNAME = 5, SOA = 6, PTR = 12, HINFO = 13, MX = 15, TXT = 16, RP = 17,
    AFSDB = 18, SIG = 24, KEY = 25, AAAA = 28, LOC = 29, SRV = 33, NAPTR = 35, KX = 36, CERT = 37,
    DNAME = 39, OPT = 41, APL = 42, DS = 43, SSHFP = 44, IPSECKEY = 45, RRSIG = 46, NSEC = 47,
    DNSKEY = 48, DHCID = 49, NSEC3 = 50, NSEC3PARAM = 51, TLSA = 52, SMIMEA = 53, HIP = 55,
    CDS = 59, CDNSKEY = 60, OPENPGPKEY = 61, CSYNC = 62, ZONEMD = 63, SVCB = 64, HTTPS = 65,
    SPF = 99, TKEY = 249, TSIG = 250, IXFR = 251, AXFR = 252, MAILB = 253, MAILA = 254, ANY = 255,
    URI = 256, CAA = 257,
});

mnemonic_type!(
    /// A DNS class; only IN is served, the rest are answered REFUSED.
    Class, "CLASS", { IN = 1, CH = 3, HS = 4, NONE = 254, ANY = 255 });

/// A response code, extended to 12 bits by EDNS (RFC 6891 6.1.3). Printed with the names
/// CoreDNS (miekg/dns) prints, which metrics labels and query logs carry.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Rcode(pub u16);

impl Rcode {
    pub const NOERROR: Rcode = Rcode(0);
    pub const FORMERR: Rcode = Rcode(1);
    pub const SERVFAIL: Rcode = Rcode(2);
    pub const NXDOMAIN: Rcode = Rcode(3);
    pub const NOTIMP: Rcode = Rcode(4);
    pub const REFUSED: Rcode = Rcode(5);
    pub const YXDOMAIN: Rcode = Rcode(6);
    pub const YXRRSET: Rcode = Rcode(7);
    pub const NXRRSET: Rcode = Rcode(8);
    pub const NOTAUTH: Rcode = Rcode(9);
    pub const NOTZONE: Rcode = Rcode(10);
    /// RFC 6891 9: BADVERS shares the value 16 with TSIG's BADSIG.
    pub const BADVERS: Rcode = Rcode(16);

    /// The name miekg/dns gives (so `coredns_dns_responses_total{rcode}` keeps its values).
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "NOERROR",
            1 => "FORMERR",
            2 => "SERVFAIL",
            3 => "NXDOMAIN",
            4 => "NOTIMP",
            5 => "REFUSED",
            6 => "YXDOMAIN",
            7 => "YXRRSET",
            8 => "NXRRSET",
            9 => "NOTAUTH",
            10 => "NOTZONE",
            16 => "BADSIG",
            17 => "BADKEY",
            18 => "BADTIME",
            19 => "BADMODE",
            20 => "BADNAME",
            21 => "BADALG",
            22 => "BADTRUNC",
            23 => "BADCOOKIE",
            _ => return None,
        })
    }

    /// The low four bits, for the header.
    pub fn header_bits(self) -> u8 {
        (self.0 & 0xf) as u8
    }

    /// The high eight bits, for the OPT record's extended RCODE field.
    pub fn extended_bits(self) -> u8 {
        ((self.0 >> 4) & 0xff) as u8
    }
}

impl fmt::Display for Rcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "{}", self.0),
        }
    }
}

impl fmt::Debug for Rcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The header OPCODE (RFC 1035 4.1.1, RFC 1996, RFC 2136).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Opcode(pub u8);

impl Opcode {
    pub const QUERY: Opcode = Opcode(0);
    pub const IQUERY: Opcode = Opcode(1);
    pub const STATUS: Opcode = Opcode(2);
    pub const NOTIFY: Opcode = Opcode(4);
    pub const UPDATE: Opcode = Opcode(5);
}

impl fmt::Display for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => f.write_str("QUERY"),
            1 => f.write_str("IQUERY"),
            2 => f.write_str("STATUS"),
            4 => f.write_str("NOTIFY"),
            5 => f.write_str("UPDATE"),
            n => write!(f, "{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mnemonics_round_trip() {
        assert_eq!(RecordType::AAAA.to_string(), "AAAA");
        assert_eq!(RecordType(65534).to_string(), "TYPE65534");
        assert_eq!(RecordType::from_mnemonic("srv"), Some(RecordType::SRV));
        assert_eq!(RecordType::from_mnemonic("TYPE99"), Some(RecordType::SPF));
        assert_eq!(RecordType::from_mnemonic("bogus"), None);
        assert_eq!(Class::IN.to_string(), "IN");
        assert_eq!(Class(42).to_string(), "CLASS42");
        assert_eq!(Rcode::NXDOMAIN.to_string(), "NXDOMAIN");
        assert_eq!(Rcode(3841).to_string(), "3841");
    }

    #[test]
    fn extended_rcode_splits_into_header_and_opt_bits() {
        assert_eq!(Rcode::BADVERS.header_bits(), 0);
        assert_eq!(Rcode::BADVERS.extended_bits(), 1);
        assert_eq!(Rcode::NXDOMAIN.header_bits(), 3);
        assert_eq!(Rcode::NXDOMAIN.extended_bits(), 0);
    }
}
