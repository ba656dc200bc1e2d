//! DNS on the wire: names, types, records, the request a plugin reads and the response it returns,
//! the in-place decoder and one-pass encoder the server uses, and the whole-message decoder a
//! forwarder reads upstream answers with.

pub mod decode;
pub mod edns;
pub mod encode;
pub mod message;
mod name;
mod record;
mod request;
mod response;
mod types;

pub use decode::{Query, Question};
pub use edns::{Edns, EdnsOptions, ExtendedError};
pub use encode::WireAnswer;
pub use message::{Message, MessageError, Section, decode_message};
pub use name::{Labels, MAX_LABEL_LEN, MAX_NAME_LEN, Name, NameError, NameMap};
pub use record::{RData, Record, Soa};
pub use request::{Proto, Request, Route};
pub use response::Response;
pub use types::{Class, Opcode, Rcode, RecordType};

/// The bytes of a query for `name` and `qtype` with RD set, and an OPT record when `opt` gives
/// (UDP payload size, EDNS version, DO bit). For tests, benchmarks and fuzzing seeds.
pub fn build_query(id: u16, name: &str, qtype: RecordType, opt: Option<(u16, u8, bool)>) -> Vec<u8> {
    let mut m = Vec::with_capacity(64);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&decode::flags::RD.to_be_bytes());
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, opt.is_some() as u8]);
    m.extend_from_slice(Name::parse(name).expect("valid query name").as_wire());
    m.extend_from_slice(&qtype.0.to_be_bytes());
    m.extend_from_slice(&Class::IN.0.to_be_bytes());
    if let Some((size, version, dnssec_ok)) = opt {
        m.push(0);
        m.extend_from_slice(&RecordType::OPT.0.to_be_bytes());
        m.extend_from_slice(&size.to_be_bytes());
        m.extend_from_slice(&[0, version, if dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]);
    }
    m
}
