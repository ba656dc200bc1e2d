//! EDNS(0): the OPT pseudo-record (RFC 6891), its options and extended DNS errors (RFC 8914).
//!
//! A query's OPT record is kept whole, so a forwarder can pass it upstream as the client sent it:
//! payload size, version, the DO bit and the other flag bits, and every option (cookies, client
//! subnet, padding, options nobody here knows) as the wire bytes they arrived as. A response
//! carries the options it should return the same way.

use std::fmt;

/// Option codes this server reads or writes (IANA "DNS EDNS0 Option Codes").
pub mod code {
    /// RFC 5001.
    pub const NSID: u16 = 3;
    /// RFC 7871 client subnet.
    pub const CLIENT_SUBNET: u16 = 8;
    /// RFC 7873.
    pub const COOKIE: u16 = 10;
    /// RFC 7828 edns-tcp-keepalive.
    pub const TCP_KEEPALIVE: u16 = 11;
    /// RFC 7830.
    pub const PADDING: u16 = 12;
    /// RFC 8914 extended DNS error.
    pub const EXTENDED_ERROR: u16 = 15;
}

/// The OPT record of a message (RFC 6891 6.1.2-6.1.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edns {
    /// The sender's UDP payload size as sent (values under 512 count as 512 when sizing).
    pub udp_size: u16,
    pub version: u8,
    /// The DO bit (RFC 3225).
    pub dnssec_ok: bool,
    /// The flag bits other than DO (the "Z" field, zero today), kept to be passed on unchanged.
    pub z: u16,
    pub options: EdnsOptions,
}

impl Edns {
    /// Version 0 with this payload size, no flags and no options.
    pub fn new(udp_size: u16) -> Edns {
        Edns { udp_size, version: 0, dnssec_ok: false, z: 0, options: EdnsOptions::new() }
    }

    /// The 16 flag bits of the OPT record's TTL field: DO and Z.
    pub fn flags(&self) -> u16 {
        (if self.dnssec_ok { 0x8000 } else { 0 }) | (self.z & 0x7fff)
    }
}

/// EDNS options in wire format: `code(2) length(2) data(length)`, repeated, in the order given.
///
/// Kept as bytes rather than parsed: nearly every option is only passed on, and bytes are passed
/// on exactly. No options, the common case (glibc, musl and Go resolvers send none), is a null
/// pointer; any options cost one allocation (`dig`'s client cookie included). The type is 16
/// bytes so that a [`Response`](super::Response) stays within 128: a move of up to 128 bytes is
/// compiled inline, a larger one is a call to `memcpy`, and a response is moved at every plugin
/// it passes back through (inline storage for 16 bytes of options made it 136 bytes, and cost
/// about 4 % of the instructions of a whoami query behind errors and prometheus).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EdnsOptions {
    wire: Option<Box<[u8]>>,
}

/// One option, borrowed from an [`EdnsOptions`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EdnsOption<'a> {
    pub code: u16,
    pub data: &'a [u8],
}

/// Option bytes that do not tile into `code length data` units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("EDNS options do not tile the OPT record's data")]
pub struct BadOptions;

impl EdnsOptions {
    pub const fn new() -> EdnsOptions {
        EdnsOptions { wire: None }
    }

    /// Options from the RDATA of an OPT record, checking that they tile it exactly.
    pub fn from_wire(rdata: &[u8]) -> Result<EdnsOptions, BadOptions> {
        check_tiling(rdata)?;
        Ok(EdnsOptions { wire: (!rdata.is_empty()).then(|| rdata.into()) })
    }

    /// The RDATA of an OPT record carrying these options.
    pub fn as_wire(&self) -> &[u8] {
        self.wire.as_deref().unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.wire.is_none()
    }

    /// The options in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter { rest: self.as_wire() }
    }

    /// The data of the first option with `code`.
    pub fn get(&self, code: u16) -> Option<&[u8]> {
        self.iter().find(|o| o.code == code).map(|o| o.data)
    }

    /// Appends an option. Data longer than 65535 bytes is cut there (no option can be longer).
    pub fn push(&mut self, code: u16, data: &[u8]) {
        let data = &data[..data.len().min(u16::MAX as usize)];
        let mut wire = Vec::with_capacity(self.as_wire().len() + 4 + data.len());
        wire.extend_from_slice(self.as_wire());
        put(&mut wire, code, data);
        self.wire = Some(wire.into_boxed_slice());
    }

    /// Removes every option with `code`.
    pub fn remove(&mut self, code: u16) {
        if self.get(code).is_none() {
            return;
        }
        // The kept options' bytes, copied once into one allocation (none when nothing is kept).
        let len: usize = self.iter().filter(|o| o.code != code).map(|o| 4 + o.data.len()).sum();
        let mut kept = Vec::with_capacity(len);
        for o in self.iter().filter(|o| o.code != code) {
            put(&mut kept, o.code, o.data);
        }
        self.wire = (!kept.is_empty()).then(|| kept.into_boxed_slice());
    }

    /// The extended DNS errors among the options (RFC 8914), in order.
    pub fn extended_errors(&self) -> impl Iterator<Item = ExtendedError> + '_ {
        self.iter().filter(|o| o.code == code::EXTENDED_ERROR).filter_map(|o| ExtendedError::from_data(o.data))
    }

    /// Appends an extended DNS error (RFC 8914).
    pub fn push_extended_error(&mut self, e: &ExtendedError) {
        let mut data = Vec::with_capacity(2 + e.text.len());
        data.extend_from_slice(&e.info_code.to_be_bytes());
        data.extend_from_slice(e.text.as_bytes());
        self.push(code::EXTENDED_ERROR, &data);
    }
}

/// Writes one option, `code length data`, at the end of `wire`.
fn put(wire: &mut Vec<u8>, code: u16, data: &[u8]) {
    wire.extend_from_slice(&code.to_be_bytes());
    wire.extend_from_slice(&(data.len() as u16).to_be_bytes());
    wire.extend_from_slice(data);
}

fn check_tiling(mut rest: &[u8]) -> Result<(), BadOptions> {
    while !rest.is_empty() {
        let head = rest.get(..4).ok_or(BadOptions)?;
        let len = u16::from_be_bytes([head[2], head[3]]) as usize;
        rest = rest.get(4 + len..).ok_or(BadOptions)?;
    }
    Ok(())
}

/// Iterates over [`EdnsOptions`].
pub struct Iter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Iter<'a> {
    type Item = EdnsOption<'a>;

    fn next(&mut self) -> Option<EdnsOption<'a>> {
        // The bytes were checked to tile when they were stored or pushed.
        let head = self.rest.get(..4)?;
        let code = u16::from_be_bytes([head[0], head[1]]);
        let len = u16::from_be_bytes([head[2], head[3]]) as usize;
        let data = &self.rest[4..4 + len];
        self.rest = &self.rest[4 + len..];
        Some(EdnsOption { code, data })
    }
}

impl fmt::Debug for EdnsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// An extended DNS error (RFC 8914 2): an INFO-CODE and optional UTF-8 text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtendedError {
    pub info_code: u16,
    pub text: String,
}

impl ExtendedError {
    // INFO-CODEs of the IANA registry (RFC 8914 4) that this server sends.
    pub const OTHER: u16 = 0;
    pub const STALE_ANSWER: u16 = 3;
    pub const CACHED_ERROR: u16 = 13;
    pub const NOT_READY: u16 = 14;
    pub const PROHIBITED: u16 = 18;
    pub const NO_REACHABLE_AUTHORITY: u16 = 22;
    pub const NETWORK_ERROR: u16 = 23;

    pub fn new(info_code: u16, text: impl Into<String>) -> ExtendedError {
        ExtendedError { info_code, text: text.into() }
    }

    /// Reads the option's data; `None` when shorter than the INFO-CODE. Text that is not UTF-8
    /// is kept with replacement characters (RFC 8914 2 says it SHOULD be UTF-8).
    pub fn from_data(data: &[u8]) -> Option<ExtendedError> {
        let head = data.get(..2)?;
        let info_code = u16::from_be_bytes([head[0], head[1]]);
        let text = String::from_utf8_lossy(&data[2..]);
        // RFC 8914 2: the text "SHOULD NOT" be NUL-terminated, but some senders do.
        Some(ExtendedError { info_code, text: text.trim_end_matches('\0').to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_round_trip_in_order() {
        let mut o = EdnsOptions::new();
        o.push(code::COOKIE, &[1, 2, 3, 4, 5, 6, 7, 8]);
        o.push(65001, b"");
        o.push(code::PADDING, &[0; 20]);
        let again = EdnsOptions::from_wire(o.as_wire()).unwrap();
        assert_eq!(again, o);
        let codes: Vec<u16> = again.iter().map(|x| x.code).collect();
        assert_eq!(codes, [code::COOKIE, 65001, code::PADDING]);
        assert_eq!(again.get(code::COOKIE), Some(&[1, 2, 3, 4, 5, 6, 7, 8][..]));
        assert_eq!(again.get(65001), Some(&[][..]));
        o.remove(code::COOKIE);
        assert_eq!(o.iter().map(|x| x.code).collect::<Vec<_>>(), [65001, code::PADDING]);
        o.remove(65001);
        o.remove(code::PADDING);
        assert!(o.is_empty() && o == EdnsOptions::new(), "no options left is no options");
    }

    #[test]
    fn options_must_tile() {
        assert_eq!(EdnsOptions::from_wire(&[0, 10, 0, 8, 1]), Err(BadOptions));
        assert_eq!(EdnsOptions::from_wire(&[0, 10, 0]), Err(BadOptions));
        assert!(EdnsOptions::from_wire(&[]).unwrap().is_empty());
    }

    #[test]
    fn extended_errors() {
        let mut o = EdnsOptions::new();
        o.push_extended_error(&ExtendedError::new(ExtendedError::STALE_ANSWER, "served stale"));
        assert_eq!(o.as_wire(), b"\x00\x0f\x00\x0e\x00\x03served stale");
        let all: Vec<ExtendedError> = o.extended_errors().collect();
        assert_eq!(all, [ExtendedError::new(3, "served stale")]);
        assert_eq!(ExtendedError::from_data(&[0]), None);
        assert_eq!(ExtendedError::from_data(&[0, 18, b'x', 0]), Some(ExtendedError::new(18, "x")));
    }

    #[test]
    fn flags_put_do_first() {
        let mut e = Edns::new(1232);
        e.dnssec_ok = true;
        e.z = 0x0001;
        assert_eq!(e.flags(), 0x8001);
    }
}
