//! `decode_message` against hickory-proto, the project's oracle for the wire format.
//!
//! Each test builds a response with hickory (encoded with its name compression, as upstream
//! servers send them), decodes the bytes with ours and checks, record by record, that hickory's
//! reading of the same bytes agrees (`fuzz/oracle/hickory.rs`: owner, type, class, TTL, RDATA as
//! uncompressed wire bytes). Then it passes the message on as a forwarder does
//! (`decode_message` → `into_response` → `encode_response` for a query hickory wrote, decoded by
//! the server's own `decode_query`) and checks with hickory that the client gets every record,
//! the AD bit, the rcode and the EDNS options byte for byte.
//!
//! The types hickory does not model (RP, AFSDB, the DNSSEC types without its `dnssec` features)
//! it carries as raw bytes: those are built by hand, with the compression pointers an RFC 1035
//! era server would write, and checked against the oracle's decompression.

#[path = "../fuzz/oracle/hickory.rs"]
mod hickory_oracle;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use clusterdns::dns::decode::decode_query;
use clusterdns::dns::encode::encode_response;
use clusterdns::dns::{Message, Proto, RData, Rcode, RecordType, Request, Section, decode_message};
use clusterdns::fuzzing::{WireMessage, pointer, wire_name};
use hickory_oracle::{Agreement, Known, compare, hickory_wire, name_wire, rdata_wire};
use hickory_proto::op::{Edns, Message as HMessage, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NS, NULL, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData as HRData, Record as HRecord, RecordType as HType};

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn rr(owner: &str, ttl: u32, data: HRData) -> HRecord {
    HRecord::from_rdata(name(owner), ttl, data)
}

/// Presentation format through hickory's own parser, for the types with many fields.
fn parsed(rtype: HType, text: &str) -> HRData {
    HRData::try_from_str(rtype, text).unwrap_or_else(|e| panic!("{rtype} {text}: {e}"))
}

/// Raw RDATA of a type hickory does not model here.
fn raw(code: u16, bytes: &[u8]) -> HRData {
    HRData::Unknown { code: HType::from(code), rdata: NULL::with(bytes.to_vec()) }
}

/// A response to `qname qtype` with RD and RA set.
fn response(id: u16, qname: &str, qtype: HType) -> HMessage {
    let mut m = HMessage::response(id, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.metadata.recursion_available = true;
    m.add_query(Query::query(name(qname), qtype));
    m
}

fn edns(options: &[(u16, &[u8])]) -> Edns {
    let mut e = Edns::new();
    e.set_max_payload(1232);
    e.set_dnssec_ok(true);
    for (code, data) in options {
        e.options_mut().insert(EdnsOption::Unknown(*code, data.to_vec()));
    }
    e
}

/// Encodes `m` with hickory, decodes it with ours, compares and passes it on; returns ours.
fn check(m: &HMessage) -> Message {
    let bytes = m.to_vec().unwrap();
    let ours = decode_message(&bytes).unwrap_or_else(|e| panic!("we reject hickory's message: {e}\n{m}"));
    assert_eq!(compare(&bytes, &Ok(ours.clone())), Ok(Agreement::Same), "{m}");
    // Stricter than the oracle on messages hickory wrote: every record's RDATA, opaque ones
    // included, equals hickory's own re-encoding of it.
    let theirs = HMessage::from_vec(&bytes).unwrap();
    let pairs = ours.answer.iter().zip(&theirs.answers).chain(ours.authority.iter().zip(&theirs.authorities));
    for (r, hr) in pairs.chain(ours.additional.iter().zip(&theirs.additionals)) {
        assert_eq!(rdata_wire(&r.data), hickory_wire(&hr.data).unwrap(), "{r}");
    }
    pass_on(&bytes, &ours);
    ours
}

/// Passes `ours` (decoded from `bytes`) on to a client whose query hickory wrote, and checks
/// with hickory that the client reads what the upstream said.
fn pass_on(bytes: &[u8], ours: &Message) {
    let upstream = HMessage::from_vec(bytes).unwrap();
    let mut q = HMessage::new(ours.id, MessageType::Query, OpCode::Query);
    q.metadata.recursion_desired = ours.rd();
    q.metadata.checking_disabled = ours.cd();
    q.add_query(upstream.queries[0].clone());
    if ours.edns.is_some() {
        q.set_edns(edns(&[]));
    }
    let query = decode_query(&q.to_vec().unwrap()).expect("the server decodes hickory's query");
    let addr = SocketAddr::from(([127, 0, 0, 1], 53));
    let req = Request::new(query, addr, addr, Proto::Tcp, Instant::now());
    let mut out = Vec::new();
    let enc = encode_response(&mut out, &req, &ours.clone().into_response("forward"));
    assert!(!enc.truncated);
    let client = HMessage::from_vec(&out).expect("hickory reads the reply");

    let (u, c) = (&upstream.metadata, &client.metadata);
    assert_eq!((c.id, c.message_type, c.op_code), (u.id, MessageType::Response, OpCode::Query));
    assert_eq!(
        (c.authoritative, c.truncation, c.recursion_available, c.authentic_data, c.checking_disabled),
        (u.authoritative, u.truncation, u.recursion_available, u.authentic_data, u.checking_disabled)
    );
    assert_eq!(u16::from(c.response_code), u16::from(u.response_code));
    assert_eq!(client.queries, upstream.queries);
    let sections = [
        ("answer", &upstream.answers, &client.answers),
        ("authority", &upstream.authorities, &client.authorities),
        ("additional", &upstream.additionals, &client.additionals),
    ];
    for (section, sent, got) in sections {
        assert_eq!(sent.len(), got.len(), "{section} records");
        for (s, g) in sent.iter().zip(got) {
            let wire = |r: &HRecord| {
                let data = hickory_wire(&r.data).unwrap();
                (name_wire(&r.name).unwrap(), r.record_type(), r.dns_class, r.ttl, data)
            };
            assert_eq!(wire(g), wire(s), "{section}: {g} for {s}");
        }
    }
    let options = |m: &HMessage| {
        let e = m.edns.as_ref()?;
        let opts = e.options().as_ref().iter();
        Some(opts.map(|(c, o)| (u16::from(*c), Vec::<u8>::try_from(o).unwrap())).collect::<Vec<_>>())
    };
    assert_eq!(options(&client), options(&upstream));
}

#[test]
fn a_cname_chain_to_two_addresses_with_edns() {
    let mut m = response(0x1234, "www.example.org.", HType::A);
    m.metadata.authentic_data = true;
    m.add_answer(rr("www.example.org.", 300, HRData::CNAME(CNAME(name("web.example.org.")))));
    m.add_answer(rr("web.example.org.", 300, HRData::CNAME(CNAME(name("lb.cdn.example.net.")))));
    m.add_answer(rr("lb.cdn.example.net.", 20, HRData::A(A(Ipv4Addr::new(192, 0, 2, 1)))));
    m.add_answer(rr("lb.cdn.example.net.", 20, HRData::A(A(Ipv4Addr::new(192, 0, 2, 2)))));
    m.set_edns(edns(&[(10, b"client01server0123456789"), (15, b"\x00\x03stale")]));
    let ours = check(&m);
    assert!(ours.ad() && ours.ra() && ours.rd());
    let text: Vec<String> = ours.answer.iter().map(ToString::to_string).collect();
    assert_eq!(text[1], "web.example.org. 300 IN CNAME lb.cdn.example.net.");
    assert_eq!(text[3], "lb.cdn.example.net. 20 IN A 192.0.2.2");
    let e = ours.edns.unwrap();
    assert_eq!(e.options.extended_errors().next().unwrap().text, "stale");
}

#[test]
fn nxdomain_with_soa_and_nsec_proof_in_authority() {
    let mut m = response(7, "nope.example.org.", HType::AAAA);
    m.metadata.response_code = ResponseCode::NXDomain;
    m.metadata.authentic_data = true;
    let soa = SOA::new(name("ns1.example.org."), name("hostmaster.example.org."), 2024010101, 7200, 900, 1209600, 300);
    m.add_authority(rr("example.org.", 300, HRData::SOA(soa)));
    // NSEC: next domain name (never compressed, RFC 4034 4.1.1) and a type bitmap.
    let nsec = [wire_name("www.example.org").as_slice(), b"\x00\x06\x40\x01\x00\x00\x00\x03"].concat();
    m.add_authority(rr("example.org.", 300, raw(47, &nsec)));
    m.add_authority(rr("example.org.", 300, raw(46, &rrsig(47, "example.org"))));
    m.set_edns(edns(&[]));
    let ours = check(&m);
    assert_eq!(ours.rcode, Rcode::NXDOMAIN);
    assert_eq!(
        ours.authority[0].data.to_string(),
        "ns1.example.org. hostmaster.example.org. 2024010101 7200 900 1209600 300"
    );
    assert_eq!(ours.authority[1].rtype(), RecordType::NSEC);
}

/// RRSIG RDATA (RFC 4034 3.1) covering `covered`, signed by `signer`.
fn rrsig(covered: u16, signer: &str) -> Vec<u8> {
    let mut r = covered.to_be_bytes().to_vec();
    r.extend_from_slice(&[13, 2]); // ECDSAP256SHA256, two labels
    r.extend_from_slice(&300u32.to_be_bytes());
    r.extend_from_slice(&0x6800_0000u32.to_be_bytes());
    r.extend_from_slice(&0x6700_0000u32.to_be_bytes());
    r.extend_from_slice(&12345u16.to_be_bytes());
    r.extend_from_slice(&wire_name(signer));
    r.extend((0..64u8).map(|i| i.wrapping_mul(37)));
    r
}

#[test]
fn a_dnssec_signed_answer_is_kept_byte_for_byte() {
    let mut m = response(9, "www.example.org.", HType::A);
    m.metadata.authentic_data = true;
    m.metadata.checking_disabled = true;
    m.add_answer(rr("www.example.org.", 300, HRData::A(A(Ipv4Addr::new(192, 0, 2, 7)))));
    m.add_answer(rr("www.example.org.", 300, raw(46, &rrsig(1, "example.org"))));
    m.add_authority(rr("example.org.", 3600, HRData::NS(NS(name("ns1.example.org.")))));
    m.add_authority(rr("example.org.", 3600, raw(46, &rrsig(2, "example.org"))));
    // DNSKEY (RFC 4034 2.1), DS (5.1), NSEC3 (RFC 5155 3.2), NSEC3PARAM (4.2), CDS (RFC 7344).
    m.add_additional(rr("example.org.", 3600, raw(48, &[&[1, 1, 3, 13][..], &[0xab; 64]].concat())));
    m.add_additional(rr("example.org.", 3600, raw(43, &[&[0x30, 0x39, 13, 2][..], &[0xcd; 32]].concat())));
    let nsec3 = [&[1, 0, 0, 10, 4, 0xaa, 0xbb, 0xcc, 0xdd, 20][..], &[0x5a; 20], b"\x00\x01\x62"].concat();
    m.add_additional(rr("0p9mhaveqvm6t7vbl5lop2u3t2rp3tom.example.org.", 300, raw(50, &nsec3)));
    m.add_additional(rr("example.org.", 0, raw(51, &[1, 0, 0, 10, 4, 0xaa, 0xbb, 0xcc, 0xdd])));
    m.add_additional(rr("example.org.", 3600, raw(59, &[&[0x30, 0x39, 13, 2][..], &[0xef; 32]].concat())));
    m.set_edns(edns(&[]));
    let ours = check(&m);
    assert!(ours.ad() && ours.cd());
    let types: Vec<RecordType> = ours.additional.iter().map(|r| r.rtype()).collect();
    assert_eq!(types, [RecordType::DNSKEY, RecordType::DS, RecordType::NSEC3, RecordType::NSEC3PARAM, RecordType::CDS]);
    assert!(matches!(&ours.answer[1].data, RData::Opaque { data, .. } if **data == rrsig(1, "example.org")[..]));
}

#[test]
fn mx_srv_ptr_and_ns_with_glue() {
    let mut m = response(3, "example.org.", HType::MX);
    m.add_answer(rr("example.org.", 3600, HRData::MX(MX::new(10, name("mail.example.org.")))));
    m.add_answer(rr("example.org.", 3600, HRData::MX(MX::new(20, name("backup.mail.example.org.")))));
    m.add_answer(rr("_sip._udp.example.org.", 60, HRData::SRV(SRV::new(0, 5, 5060, name("sip.example.org.")))));
    m.add_answer(rr("7.2.0.192.in-addr.arpa.", 60, HRData::PTR(PTR(name("mail.example.org.")))));
    m.add_authority(rr("example.org.", 3600, HRData::NS(NS(name("ns1.example.org.")))));
    m.add_authority(rr("example.org.", 3600, HRData::NS(NS(name("ns2.example.net.")))));
    m.add_additional(rr("mail.example.org.", 3600, HRData::A(A(Ipv4Addr::new(192, 0, 2, 25)))));
    m.add_additional(rr(
        "mail.example.org.",
        3600,
        HRData::AAAA(AAAA(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 25))),
    ));
    m.add_additional(rr("ns1.example.org.", 3600, HRData::A(A(Ipv4Addr::new(192, 0, 2, 53)))));
    let ours = check(&m);
    assert_eq!(ours.answer[1].data.to_string(), "20 backup.mail.example.org.");
    assert_eq!(ours.answer[2].data.to_string(), "0 5 5060 sip.example.org.");
    assert_eq!(ours.additional[1].data.to_string(), "2001:db8::19");
}

#[test]
fn txt_with_several_and_empty_strings() {
    let mut m = response(4, "example.org.", HType::TXT);
    let long = [b'x'; 255];
    let strings: Vec<&[u8]> = vec![b"v=spf1 -all", b"", b"\x00\xff\"quoted\"", &long, b""];
    m.add_answer(rr("example.org.", 60, HRData::TXT(TXT::from_bytes(strings.clone()))));
    m.add_answer(rr("example.org.", 60, HRData::TXT(TXT::new(vec!["one".into(), "two words".into()]))));
    let ours = check(&m);
    let RData::Txt(got) = &ours.answer[0].data else { panic!("not TXT") };
    assert_eq!(got.iter().map(|s| &s[..]).collect::<Vec<_>>(), strings);
}

#[test]
fn types_hickory_models_and_we_keep_opaque() {
    let mut m = response(5, "example.org.", HType::ANY);
    m.add_answer(rr("example.org.", 60, parsed(HType::CAA, "0 issue \"ca.example.net\"")));
    m.add_answer(rr("example.org.", 60, parsed(HType::CAA, "128 iodef \"mailto:security@example.org\"")));
    m.add_answer(rr("_dns.example.org.", 60, parsed(HType::SVCB, "1 dns.example.org. alpn=dot,doq port=853")));
    m.add_answer(rr(
        "example.org.",
        60,
        parsed(HType::HTTPS, "1 . alpn=h3,h2 ipv4hint=192.0.2.1,192.0.2.2 ipv6hint=2001:db8::1"),
    ));
    m.add_answer(rr("example.org.", 60, parsed(HType::HTTPS, "0 svc.example.net.")));
    m.add_answer(rr("example.org.", 60, parsed(HType::NAPTR, "100 10 \"S\" \"SIP+D2U\" \"\" _sip._udp.example.org.")));
    m.add_answer(rr(
        "example.org.",
        60,
        parsed(HType::SSHFP, "4 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
    ));
    m.add_answer(rr(
        "_443._tcp.example.org.",
        60,
        parsed(HType::TLSA, "3 1 1 0011223344556677889900112233445566778899001122334455667788990011"),
    ));
    m.add_answer(rr("example.org.", 60, parsed(HType::HINFO, "\"PC\" \"Linux\"")));
    m.add_answer(rr("example.org.", 60, raw(65534, &[0xc0, 0x0c, 0, 1, 2, 3])));
    m.add_answer(rr("example.org.", 60, raw(65280, b"private use")));
    m.add_answer(rr("example.org.", 60, HRData::NULL(NULL::with(vec![0; 8]))));
    let ours = check(&m);
    for r in &ours.answer {
        assert!(matches!(r.data, RData::Opaque { .. }), "{r}");
    }
    // The unknown type's bytes that look like a pointer are data (RFC 3597 3).
    assert_eq!(ours.answer[9].data.to_string(), "\\# 6 c00c00010203");
}

#[test]
fn extended_rcodes_and_the_bits_of_the_header() {
    for (rcode, code) in [(ResponseCode::BADCOOKIE, 23u16), (ResponseCode::BADVERS, 16), (ResponseCode::Refused, 5)] {
        let mut m = response(6, "example.org.", HType::A);
        m.metadata.response_code = rcode;
        m.metadata.authoritative = true;
        m.metadata.checking_disabled = true;
        m.set_edns(edns(&[(10, b"client01server0123456789")]));
        let ours = check(&m);
        assert_eq!(ours.rcode, Rcode(code));
        assert!(ours.aa() && ours.cd() && !ours.ad());
    }
}

#[test]
fn other_classes_and_zero_ttls() {
    let mut m = response(8, "version.bind.", HType::TXT);
    m.queries[0].query_class = DNSClass::CH;
    let mut txt = rr("version.bind.", 0, HRData::TXT(TXT::new(vec!["clusterdns".into()])));
    txt.dns_class = DNSClass::CH;
    m.add_answer(txt);
    let mut a = rr("example.org.", 0, HRData::A(A(Ipv4Addr::new(10, 0, 0, 1))));
    a.dns_class = DNSClass::HS;
    m.add_additional(a);
    let ours = check(&m);
    assert_eq!(ours.answer[0].to_string(), "version.bind. 0 CH TXT \"clusterdns\"");
    // A outside class IN is not an address to us, but its bytes are the same.
    assert_eq!(ours.additional[0].data, RData::Opaque { rtype: RecordType::A, data: Box::new([10, 0, 0, 1]) });
}

#[test]
fn a_large_compressed_answer() {
    let mut m = response(10, "many.example.org.", HType::A);
    for i in 0..200u16 {
        let target = format!("host{i}.pool.example.org.");
        m.add_answer(rr("many.example.org.", 30, HRData::CNAME(CNAME(name(&target)))));
        m.add_additional(rr(&target, 30, HRData::A(A(Ipv4Addr::from(0x0a00_0000 + u32::from(i))))));
    }
    m.set_edns(edns(&[(12, &[0; 100])]));
    let ours = check(&m);
    assert_eq!((ours.answer.len(), ours.additional.len()), (200, 200));
}

// The RFC 3597 section 4 types hickory keeps as raw bytes, with compressed names as an RFC 1035
// era server writes them. Offsets: the question `www.example.org` is at 12, `example.org` at 16.

/// A response with one record of `rtype`: in the answer section, but for SIG, which hickory
/// takes only in the additional section (see `Known::SigOutsideAdditional`).
fn by_hand(rtype: u16, rdata: &[u8]) -> Vec<u8> {
    let mut m = WireMessage::new(11, 0x8180);
    m.question(&wire_name("www.example.org"), RecordType(rtype), clusterdns::dns::Class::IN);
    let section = if rtype == 24 { Section::Additional } else { Section::Answer };
    m.record(section, &pointer(12), RecordType(rtype), clusterdns::dns::Class::IN, 60, rdata);
    m.finish()
}

/// The one record of a message [`by_hand`] built.
fn only(m: &Message) -> &clusterdns::dns::Record {
    m.answer.first().or(m.additional.first()).expect("a record")
}

#[test]
fn rp_afsdb_and_kin_are_decompressed_as_the_oracle_decompresses_them() {
    let ns = [b"\x02ns".as_slice(), &pointer(16)].concat();
    let cases: Vec<(u16, Vec<u8>, Vec<u8>)> = vec![
        (17, [&pointer(12)[..], &ns].concat(), [wire_name("www.example.org"), wire_name("ns.example.org")].concat()),
        (18, [&[0, 1][..], &ns].concat(), [&[0, 1][..], &wire_name("ns.example.org")].concat()),
        (21, [&[0, 7][..], &pointer(16)].concat(), [&[0, 7][..], &wire_name("example.org")].concat()),
        (14, [&ns[..], &ns].concat(), [wire_name("ns.example.org"), wire_name("ns.example.org")].concat()),
        (7, ns.clone(), wire_name("ns.example.org")),
        (
            26,
            [&[0, 1][..], &pointer(16), &pointer(12)].concat(),
            [&[0, 1][..], &wire_name("example.org"), &wire_name("www.example.org")].concat(),
        ),
        (30, [&ns[..], b"\x40\x01"].concat(), [&wire_name("ns.example.org")[..], b"\x40\x01"].concat()),
        (24, [&[9; 18][..], &pointer(16), b"sig"].concat(), [&[9; 18][..], &wire_name("example.org"), b"sig"].concat()),
    ];
    for (rtype, rdata, want) in cases {
        let bytes = by_hand(rtype, &rdata);
        let ours = decode_message(&bytes);
        assert_eq!(compare(&bytes, &ours), Ok(Agreement::Same), "type {rtype}");
        let ours = ours.unwrap();
        assert_eq!(rdata_wire(&only(&ours).data), want, "type {rtype}");
        // Passed on, the names are whole: hickory reads the same bytes from the reply.
        let (_, out, _) = clusterdns::fuzzing::pass_on(&ours);
        let client = HMessage::from_vec(&out).unwrap();
        let record = client.answers.first().or(client.additionals.first()).unwrap();
        assert_eq!(hickory_wire(&record.data).unwrap(), want, "type {rtype}");
    }
}

#[test]
fn a_compressed_naptr_replacement_and_srv_target_agree_with_hickory() {
    let naptr = [b"\x00\x64\x00\x0a\x01S\x07SIP+D2U\x00".as_slice(), b"\x04_sip\x04_udp", &pointer(16)].concat();
    let srv = [&[0, 1, 0, 2, 0x13, 0xc4][..], &pointer(12)].concat();
    for (rtype, rdata) in [(35, naptr), (33, srv)] {
        let bytes = by_hand(rtype, &rdata);
        assert_eq!(compare(&bytes, &decode_message(&bytes)), Ok(Agreement::Same), "type {rtype}");
    }
}

#[test]
fn known_differences_are_recognised() {
    // Empty RDATA of an unknown type: RFC 3597 allows it, hickory rejects it.
    let bytes = by_hand(65534, b"");
    assert_eq!(compare(&bytes, &decode_message(&bytes)), Ok(Agreement::Known(Known::EmptyRdata)));
    // A CAA record with an empty tag: hickory checks RFC 8659's tag syntax, we pass it on.
    let bytes = by_hand(257, b"\x00\x00value");
    assert_eq!(
        compare(&bytes, &decode_message(&bytes)),
        Ok(Agreement::Known(Known::HickoryParsesOpaque(RecordType::CAA)))
    );
    // An RP whose second name is a pointer loop: we read RP's names, hickory keeps RP raw.
    let bytes = by_hand(17, &[&pointer(12)[..], &[1, b'x', 0xc0, 47]].concat());
    assert_eq!(compare(&bytes, &decode_message(&bytes)), Ok(Agreement::Known(Known::HickoryKeepsRaw(RecordType(17)))));
    // An OPT record whose last option overruns it (by less than RDLENGTH: hickory rejects an
    // option longer than the whole RDATA): hickory drops the options.
    let mut m = WireMessage::new(1, 0x8180);
    m.question(&wire_name("a.example"), RecordType::A, clusterdns::dns::Class::IN);
    m.opt(1232, 0, false, b"\x00\x0a\x00\x03\x01");
    let bytes = m.finish();
    assert_eq!(compare(&bytes, &decode_message(&bytes)), Ok(Agreement::Known(Known::HickoryDropsTruncatedOption)));
    // A SIG in the answer section: hickory takes SIG(0) only at the end of a message.
    let mut m = WireMessage::new(1, 0x8180);
    m.question(&wire_name("a.example"), RecordType::A, clusterdns::dns::Class::IN);
    m.record(
        Section::Answer,
        &pointer(12),
        RecordType(24),
        clusterdns::dns::Class::IN,
        0,
        &[&[0; 18][..], &[0]].concat(),
    );
    let bytes = m.finish();
    assert_eq!(compare(&bytes, &decode_message(&bytes)), Ok(Agreement::Known(Known::SigOutsideAdditional)));
    // Both reject what both should.
    let bytes = by_hand(1, &[1, 2, 3, 4, 5]);
    assert_eq!(compare(&bytes, &decode_message(&bytes)), Ok(Agreement::BothRejected));
}
