//! Cost of reading an upstream's whole response, ours (`decode_message`) against hickory-proto's
//! (`Message::from_vec`), on the same bytes: three responses built and name-compressed by
//! hickory, as an upstream server would send them.
//!
//! * `forwarded`: `www` CNAME `web`, two A records, an OPT record with a cookie;
//! * `dnssec`: the same answer signed (an RRSIG over the CNAME and one over the A records), DO set;
//! * `nxdomain`: NXDOMAIN with the zone's SOA in the authority section.
//!
//! hickory-proto is built with its default features, as the project uses it, so it reads
//! RRSIG as raw bytes; ours keeps it opaque too. Both decoders allocate their records.
//!
//! `cargo bench --bench message`

use std::hint::black_box;
use std::net::Ipv4Addr;

use clusterdns::dns::decode_message;
use criterion::{Criterion, criterion_group, criterion_main};
use hickory_proto::op::{Edns, Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::rdata::{A, CNAME, NULL, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn response(qname: &str, qtype: RecordType, dnssec_ok: bool) -> Message {
    let mut m = Message::response(0x4242, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.metadata.recursion_available = true;
    m.add_query(Query::query(name(qname), qtype));
    let mut e = Edns::new();
    e.set_max_payload(1232);
    e.set_dnssec_ok(dnssec_ok);
    e.options_mut().insert(EdnsOption::Unknown(10, b"clientcksrvcookie0123456".to_vec()));
    m.set_edns(e);
    m
}

/// RRSIG RDATA (RFC 4034 3.1) over `covered`, signed by `example.org.` with an ECDSA P-256 key
/// (a 64-byte signature).
fn rrsig(covered: u16) -> RData {
    let mut r = covered.to_be_bytes().to_vec();
    r.extend_from_slice(&[13, 3, 0, 0, 1, 44, 0x68, 0, 0, 0, 0x67, 0, 0, 0, 0x30, 0x39]);
    r.extend_from_slice(b"\x07example\x03org\x00");
    r.extend((0..64u8).map(|i| i.wrapping_mul(59)));
    RData::Unknown { code: RecordType::RRSIG, rdata: NULL::with(r) }
}

fn forwarded(signed: bool) -> Vec<u8> {
    let mut m = response("www.example.org.", RecordType::A, signed);
    m.metadata.authentic_data = signed;
    m.add_answer(Record::from_rdata(name("www.example.org."), 300, RData::CNAME(CNAME(name("web.example.org.")))));
    if signed {
        m.add_answer(Record::from_rdata(name("www.example.org."), 300, rrsig(5)));
    }
    for last in [1, 2] {
        let a = RData::A(A(Ipv4Addr::new(192, 0, 2, last)));
        m.add_answer(Record::from_rdata(name("web.example.org."), 60, a));
    }
    if signed {
        m.add_answer(Record::from_rdata(name("web.example.org."), 60, rrsig(1)));
    }
    m.to_vec().unwrap()
}

fn nxdomain() -> Vec<u8> {
    let mut m = response("nope.example.org.", RecordType::A, false);
    m.metadata.response_code = ResponseCode::NXDomain;
    let soa = SOA::new(name("ns1.example.org."), name("hostmaster.example.org."), 2024010101, 7200, 900, 1209600, 300);
    m.add_authority(Record::from_rdata(name("example.org."), 300, RData::SOA(soa)));
    m.to_vec().unwrap()
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for (case, bytes) in [("forwarded", forwarded(false)), ("dnssec", forwarded(true)), ("nxdomain", nxdomain())] {
        // The same reading of the same bytes, or the comparison means nothing.
        let ours = decode_message(&bytes).unwrap();
        let theirs = Message::from_vec(&bytes).unwrap();
        assert_eq!(ours.answer.len() + ours.authority.len(), theirs.answers.len() + theirs.authorities.len());
        eprintln!(
            "{case}: {} bytes, {} records and an OPT record",
            bytes.len(),
            theirs.answers.len() + theirs.authorities.len()
        );
        group.bench_function(format!("{case}/ours"), |b| b.iter(|| decode_message(black_box(&bytes)).unwrap()));
        group.bench_function(format!("{case}/hickory"), |b| b.iter(|| Message::from_vec(black_box(&bytes)).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
