//! Malformed packets over real UDP and TCP sockets: each gets exactly the outcome RFC 1035,
//! RFC 6891 and RFC 8906 ask for (an rcode with the question echoed when it could be read, or
//! no answer at all), and after each the server answers the next good query.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use clusterdns::dns::{Class, Rcode, RecordType, build_query};
use common::*;
use hickory_proto::op::Message;

const COREFILE: &str = ". {\n    whoami\n}\n";

/// How long silence counts as "no answer".
const SILENCE: Duration = Duration::from_millis(300);

/// A reply in one line: `FORMERR ;example.org. IN A +edns`, with the question as dig prints it
/// (`-` when the reply has none) and `+edns` when it carries an OPT record. BADVERS (16) is
/// printed as RFC 6891 names it.
fn outcome(reply: Option<Vec<u8>>) -> String {
    let Some(reply) = reply else { return "no answer".into() };
    let m = Message::from_vec(&reply).unwrap_or_else(|e| panic!("unreadable reply {reply:02x?}: {e}"));
    assert!(m.metadata.message_type == hickory_proto::op::MessageType::Response, "QR not set");
    let rcode = match u16::from(m.metadata.response_code) {
        16 => "BADVERS".to_string(),
        n => Rcode(n).to_string(),
    };
    let question = match m.queries.as_slice() {
        [] => "-".to_string(),
        [q] => format!(";{} {} {}", q.name(), Class(u16::from(q.query_class())), RecordType(u16::from(q.query_type()))),
        qs => panic!("{} questions in a reply", qs.len()),
    };
    let edns = if m.edns.is_some() { " +edns" } else { "" };
    let opcode = match u8::from(m.metadata.op_code) {
        0 => String::new(),
        n => format!("opcode {} ", clusterdns::dns::Opcode(n)),
    };
    format!("{opcode}{rcode} {question}{edns}")
}

fn udp_outcome(addr: SocketAddr, packet: &[u8]) -> String {
    outcome(raw_udp_wait(addr, packet, SILENCE))
}

/// Reads one framed reply within [`SILENCE`]: `Ok(None)` on silence, `Err` when the server
/// closed the connection.
fn tcp_read(s: &mut TcpStream) -> Result<Option<Vec<u8>>, ()> {
    s.set_read_timeout(Some(SILENCE)).unwrap();
    let mut len = [0u8; 2];
    match s.read(&mut len[..1]) {
        Ok(0) => return Err(()),
        Ok(_) => {}
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => return Ok(None),
        Err(_) => return Err(()),
    }
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.read_exact(&mut len[1..]).map_err(|_| ())?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).map_err(|_| ())?;
    Ok(Some(buf))
}

fn framed(packet: &[u8]) -> Vec<u8> {
    let mut out = (packet.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(packet);
    out
}

/// Sends `bytes` on a new connection, reads the outcome, then asks a good query on the same
/// connection (framing must not have slipped) unless the server closed it.
fn tcp_outcome(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    s.write_all(bytes).unwrap();
    match tcp_read(&mut s) {
        Err(()) => "closed".into(),
        Ok(reply) => {
            let good = build_query(0x600d, "good.example.org", RecordType::A, None);
            s.write_all(&framed(&good)).unwrap();
            let next = tcp_read(&mut s).ok().flatten().expect("the same connection answers the next query");
            assert_eq!(outcome(Some(next)), "NOERROR ;good.example.org. IN A");
            outcome(reply)
        }
    }
}

/// The next good query over UDP and TCP is answered.
fn still_answers(addr: SocketAddr, after: &str) {
    for m in [
        query_udp(addr, "next.example.org.", hickory_proto::rr::RecordType::A),
        query_tcp(addr, "next.example.org.", hickory_proto::rr::RecordType::A),
    ] {
        assert_eq!(m.response_code, hickory_proto::op::ResponseCode::NoError, "after {after}");
    }
}

fn header(id: u16, flags: u16, counts: [u16; 4]) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&flags.to_be_bytes());
    for c in counts {
        m.extend_from_slice(&c.to_be_bytes());
    }
    m
}

/// `header` with one question whose name is the raw `name` bytes, type A, class IN.
fn with_name(name: &[u8]) -> Vec<u8> {
    let mut m = header(7, 0x0100, [1, 0, 0, 0]);
    m.extend_from_slice(name);
    m.extend_from_slice(&[0, 1, 0, 1]);
    m
}

fn query(name: &str, qtype: RecordType) -> Vec<u8> {
    build_query(7, name, qtype, None)
}

fn edns_query(size: u16, version: u8) -> Vec<u8> {
    build_query(7, "example.org", RecordType::A, Some((size, version, false)))
}

/// An EDNS query whose OPT RDATA is `rdata`.
fn with_options(rdata: &[u8]) -> Vec<u8> {
    let mut m = edns_query(1232, 0);
    let n = m.len();
    m[n - 2..].copy_from_slice(&(rdata.len() as u16).to_be_bytes());
    m.extend_from_slice(rdata);
    m
}

fn with_opcode(opcode: u8, qtype: RecordType) -> Vec<u8> {
    let mut m = query("example.org", qtype);
    m[2] = (m[2] & 0x87) | (opcode << 3);
    m
}

fn with_class(name: &str, qtype: RecordType, class: u16) -> Vec<u8> {
    let mut m = query(name, qtype);
    let n = m.len();
    m[n - 2..].copy_from_slice(&class.to_be_bytes());
    m
}

/// 64 bytes of labels: `count` labels of 63 bytes.
fn long_labels(count: usize) -> Vec<u8> {
    let mut n = Vec::new();
    for _ in 0..count {
        n.push(63);
        n.extend_from_slice(&[b'x'; 63]);
    }
    n
}

/// (what, packet, outcome over UDP, outcome over TCP with the same bytes framed).
fn cases() -> Vec<(&'static str, Vec<u8>, &'static str, &'static str)> {
    let (x, y) = ("x".repeat(63), "y".repeat(61));
    let n255: &'static str = Box::leak(format!("NOERROR ;{x}.{x}.{x}.{y}. IN A").into_boxed_str());
    let mut name_255 = long_labels(3);
    name_255.extend_from_slice(&[61]);
    name_255.extend_from_slice(&[b'y'; 61]);
    name_255.push(0);
    let mut name_256 = long_labels(3);
    name_256.extend_from_slice(&[62]);
    name_256.extend_from_slice(&[b'y'; 62]);
    name_256.push(0);

    let mut two_opts = edns_query(1232, 0);
    two_opts[11] = 2;
    two_opts.extend_from_slice(&[0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0]);
    let mut opt_not_root = query("example.org", RecordType::A);
    opt_not_root[11] = 1;
    opt_not_root.extend_from_slice(&[0xc0, 12, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0]);
    let mut response = query("example.org", RecordType::A);
    response[2] |= 0x80;
    let mut truncated_answer = query("example.org", RecordType::A);
    truncated_answer[7] = 1;
    truncated_answer.extend_from_slice(&[0xc0, 12, 0, 1]);
    let mut trailing = query("example.org", RecordType::A);
    trailing.extend_from_slice(b"trailing garbage");
    let mut huge = query("example.org", RecordType::A);
    huge.resize(4200, 0xab);
    let mut tc = query("example.org", RecordType::A);
    tc[2] |= 0x02;
    let mut qd2 = header(7, 0x0100, [2, 0, 0, 0]);
    for _ in 0..2 {
        qd2.extend_from_slice(b"\x07example\x03org\x00\x00\x01\x00\x01");
    }
    let mut qd0 = header(7, 0x0100, [0, 0, 0, 0]);
    qd0.extend_from_slice(b"\x07example\x03org\x00\x00\x01\x00\x01");
    let mut no_type = header(7, 0x0100, [1, 0, 0, 0]);
    no_type.extend_from_slice(b"\x07example\x03org\x00\x00");

    vec![
        ("empty datagram / zero-length TCP message", vec![], "no answer", "no answer"),
        ("shorter than a header", vec![0, 7, 1, 0, 0], "no answer", "no answer"),
        ("a response (QR=1)", response, "no answer", "no answer"),
        ("header only, QDCOUNT 1", header(7, 0x0100, [1, 0, 0, 0]), "FORMERR -", "FORMERR -"),
        ("QDCOUNT 0", qd0, "FORMERR -", "FORMERR -"),
        ("QDCOUNT 2", qd2, "FORMERR -", "FORMERR -"),
        ("question cut in the name", with_name(b"\x07exam")[..17].to_vec(), "FORMERR -", "FORMERR -"),
        ("question without type and class", no_type, "FORMERR -", "FORMERR -"),
        ("pointer to itself", with_name(&[0xc0, 12]), "FORMERR -", "FORMERR -"),
        ("pointer loop through a label", with_name(&[1, b'a', 0xc0, 12]), "FORMERR -", "FORMERR -"),
        ("forward pointer", with_name(&[0xc0, 14, 0, 1, b'a', 0]), "FORMERR -", "FORMERR -"),
        ("label of 64 bytes (type 01)", with_name(&[0x40, b'a', 0]), "FORMERR -", "FORMERR -"),
        ("label type 10", with_name(&[0x80, b'a', 0]), "FORMERR -", "FORMERR -"),
        ("name of 256 bytes", with_name(&name_256), "FORMERR -", "FORMERR -"),
        ("name of 255 bytes", with_name(&name_255), n255, n255),
        ("answer record cut short", truncated_answer, "FORMERR ;example.org. IN A", "FORMERR ;example.org. IN A"),
        ("two OPT records", two_opts, "FORMERR ;example.org. IN A +edns", "FORMERR ;example.org. IN A +edns"),
        ("OPT not owned by the root", opt_not_root, "FORMERR ;example.org. IN A", "FORMERR ;example.org. IN A"),
        (
            "option longer than the OPT data",
            with_options(&[0, 10, 0, 9, 1, 2, 3, 4]),
            "FORMERR ;example.org. IN A",
            "FORMERR ;example.org. IN A",
        ),
        (
            "option header cut short",
            with_options(&[0, 10, 0]),
            "FORMERR ;example.org. IN A",
            "FORMERR ;example.org. IN A",
        ),
        ("EDNS version 1", edns_query(1232, 1), "BADVERS ;example.org. IN A +edns", "BADVERS ;example.org. IN A +edns"),
        (
            "unknown EDNS option",
            with_options(&[0xfd, 0xe9, 0, 2, 1, 2]),
            "NOERROR ;example.org. IN A +edns",
            "NOERROR ;example.org. IN A +edns",
        ),
        (
            "EDNS payload size 0",
            edns_query(0, 0),
            "NOERROR ;example.org. IN A +edns",
            "NOERROR ;example.org. IN A +edns",
        ),
        (
            "opcode NOTIFY",
            with_opcode(4, RecordType::SOA),
            "opcode NOTIFY NOTIMP ;example.org. IN SOA",
            "opcode NOTIFY NOTIMP ;example.org. IN SOA",
        ),
        (
            "opcode UPDATE",
            with_opcode(5, RecordType::SOA),
            "opcode UPDATE NOTIMP ;example.org. IN SOA",
            "opcode UPDATE NOTIMP ;example.org. IN SOA",
        ),
        (
            "opcode IQUERY",
            with_opcode(1, RecordType::A),
            "opcode IQUERY NOTIMP ;example.org. IN A",
            "opcode IQUERY NOTIMP ;example.org. IN A",
        ),
        (
            "class CH",
            with_class("version.bind", RecordType::TXT, 3),
            "REFUSED ;version.bind. CH TXT",
            "REFUSED ;version.bind. CH TXT",
        ),
        (
            "class ANY",
            with_class("example.org", RecordType::A, 255),
            "REFUSED ;example.org. ANY A",
            "REFUSED ;example.org. ANY A",
        ),
        // RFC 8906 3.1.3.1: unknown types get an answer, not silence or FORMERR.
        (
            "unknown type",
            query("example.org", RecordType(65280)),
            "NOERROR ;example.org. IN TYPE65280",
            "NOERROR ;example.org. IN TYPE65280",
        ),
        (
            "type 0",
            query("example.org", RecordType(0)),
            "NOERROR ;example.org. IN TYPE0",
            "NOERROR ;example.org. IN TYPE0",
        ),
        ("TC set in the query", tc, "NOERROR ;example.org. IN A", "NOERROR ;example.org. IN A"),
        ("trailing garbage", trailing, "NOERROR ;example.org. IN A", "NOERROR ;example.org. IN A"),
        // The kernel cuts a datagram past the 4096 bytes read; a cut query is dropped. Over
        // TCP the same bytes are a query with trailing garbage.
        ("4200-byte message", huge, "no answer", "NOERROR ;example.org. IN A"),
    ]
}

#[test]
fn malformed_packets_over_udp_and_tcp() {
    let s = TestServer::start(COREFILE);
    let addr = s.addr();
    let cases = cases();
    assert!(cases.len() >= 25, "{} cases", cases.len());
    let mut failures = Vec::new();
    for (what, packet, want_udp, want_tcp) in &cases {
        let udp = udp_outcome(addr, packet);
        if udp != *want_udp {
            failures.push(format!("{what} over UDP:\n  got:  {udp}\n  want: {want_udp}"));
        }
        still_answers(addr, what);
        let tcp = tcp_outcome(addr, &framed(packet));
        if tcp != *want_tcp {
            failures.push(format!("{what} over TCP:\n  got:  {tcp}\n  want: {want_tcp}"));
        }
        still_answers(addr, what);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn broken_tcp_framing() {
    let s = TestServer::start(COREFILE);
    let addr = s.addr();
    let good = query("example.org", RecordType::A);
    let mut pipelined = framed(&[0, 7, 1]);
    pipelined.extend_from_slice(&framed(&good));

    // A length prefix promising more than is sent, then the client closes: the server gives up
    // on that connection only.
    let mut s1 = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap();
    s1.write_all(&[0, 100]).unwrap();
    s1.write_all(&good).unwrap();
    s1.shutdown(Shutdown::Write).unwrap();
    assert_eq!(tcp_read(&mut s1), Err(()), "closed without a reply");
    still_answers(addr, "a short message then close");

    // Half a length prefix, then close.
    let mut s2 = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap();
    s2.write_all(&[0]).unwrap();
    s2.shutdown(Shutdown::Write).unwrap();
    assert_eq!(tcp_read(&mut s2), Err(()));
    still_answers(addr, "half a length prefix then close");

    // A dropped message and a good one in one write: the good one is answered.
    let mut s3 = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap();
    s3.write_all(&pipelined).unwrap();
    let reply = tcp_read(&mut s3).unwrap();
    assert_eq!(outcome(reply), "NOERROR ;example.org. IN A");

    // A zero-length message, then a good one on the same connection.
    assert_eq!(tcp_outcome(addr, &[0, 0]), "no answer");
    still_answers(addr, "a zero-length message");
}

/// The cases real clients can send, with dig and kdig.
#[test]
fn odd_queries_from_dig_and_kdig() {
    let s = TestServer::start(COREFILE);
    let addr = s.addr();
    let cases: &[(&str, &[&str], &[&str])] = &[
        ("dig", &["+edns=1", "+noednsnegotiation", "example.org"], &["status: BADVERS", "EDNS: version: 0"]),
        ("dig", &["+opcode=notify", "example.org", "SOA"], &["opcode: NOTIFY, status: NOTIMP"]),
        ("dig", &["+opcode=update", "example.org", "SOA"], &["opcode: UPDATE, status: NOTIMP"]),
        ("dig", &["version.bind", "CH", "TXT"], &["status: REFUSED", ";version.bind.\t\t\tCH\tTXT"]),
        ("dig", &["example.org", "TYPE65280"], &["status: NOERROR", ";example.org.\t\t\tIN\tTYPE65280"]),
        ("dig", &["+noedns", "+norecurse", "example.org"], &["status: NOERROR", "flags: qr aa;"]),
        ("kdig", &["+edns=1", "example.org"], &["status: BADVERS"]),
        (
            "kdig",
            &["+nsid", "+cookie", "+padding=64", "example.org"],
            &["status: NOERROR", ";; Version: 0; flags: ; UDP size: 4096 B"],
        ),
        ("kdig", &["+tcp", "-c", "CH", "-t", "TXT", "version.bind"], &["status: REFUSED"]),
        ("kdig", &["+bufsize=0", "example.org", "AAAA"], &["status: NOERROR"]),
    ];
    for (tool, args, wants) in cases {
        let out = if *tool == "dig" { dig(addr, args) } else { kdig(addr, args) };
        for want in *wants {
            assert!(out.contains(want), "{tool} {args:?}: missing {want:?} in\n{out}");
        }
        still_answers(addr, &format!("{tool} {args:?}"));
    }
}
