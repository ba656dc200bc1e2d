//! log over real sockets: the real binary, and the exact lines it prints.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

/// Sends a query (RD, EDNS 1232) over UDP from our own socket: the reply, our port and the ID.
fn ask_udp(addr: SocketAddr, name: &str, qtype: RecordType) -> (Message, u16, u16) {
    let msg = query_message(name, qtype);
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.send_to(&msg.to_vec().unwrap(), addr).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.recv(&mut buf).expect("a reply");
    (Message::from_vec(&buf[..n]).unwrap(), s.local_addr().unwrap().port(), msg.id)
}

/// The same over TCP.
fn ask_tcp(addr: SocketAddr, name: &str, qtype: RecordType) -> (Message, u16, u16) {
    let msg = query_message(name, qtype);
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    let bytes = msg.to_vec().unwrap();
    s.write_all(&(bytes.len() as u16).to_be_bytes()).unwrap();
    s.write_all(&bytes).unwrap();
    let reply = read_tcp_message(&mut s).expect("a reply");
    (Message::from_vec(&reply).unwrap(), s.local_addr().unwrap().port(), msg.id)
}

/// Splits the duration (`0.000153s`) off a common-format line, checking it is one.
fn without_duration(line: &str) -> &str {
    let (head, d) = line.rsplit_once(' ').unwrap();
    let secs: f64 = d.strip_suffix('s').and_then(|f| f.parse().ok()).unwrap_or_else(|| panic!("duration in {line}"));
    assert!((0.0..5.0).contains(&secs), "{line}");
    head
}

#[test]
fn common_format_lines_as_coredns_prints_them() {
    let b = Binary::start(".:PORT {\n    bind 127.0.0.1\n    log\n    whoami\n}\n");
    let (m, port, id) = ask_udp(b.addr, "Example.org.", RecordType::A);
    assert_eq!(m.response_code, ResponseCode::NoError);
    let (m, tcp_port, tcp_id) = ask_tcp(b.addr, "www.example.org.", RecordType::AAAA);
    assert_eq!(m.response_code, ResponseCode::NoError);
    let lines = b.wait_lines("[INFO] 127.0.0.1:", 2);
    assert_eq!(
        without_duration(&lines[0]),
        format!(r#"[INFO] 127.0.0.1:{port} - {id} "A IN example.org. udp 40 false 1232" NOERROR qr,aa,rd 102"#)
    );
    assert_eq!(
        without_duration(&lines[1]),
        format!(
            r#"[INFO] 127.0.0.1:{tcp_port} - {tcp_id} "AAAA IN www.example.org. tcp 44 false 65535" NOERROR qr,aa,rd 114"#
        )
    );
}

/// What dig sends and what `{combined}` adds.
#[test]
fn combined_format_with_dig() {
    let b = Binary::start(".:PORT {\n    bind 127.0.0.1\n    log . {combined}\n    whoami\n}\n");
    let out = dig(b.addr, &["example.org", "MX", "+nocookie", "+norecurse"]);
    assert!(out.contains("status: NOERROR"), "{out}");
    let line = &b.wait_lines("[INFO] 127.0.0.1:", 1)[0];
    let (head, opcode) = line.rsplit_once(' ').unwrap();
    assert_eq!(opcode, "\"0\"");
    let head = without_duration(head);
    assert!(head.ends_with(r#""MX IN example.org. udp 40 false 1232" NOERROR qr,aa 102"#), "{line}");
}

/// A block where nothing answers: the line shows the SERVFAIL the server sends.
#[test]
fn failures_are_logged_with_the_reply_sent() {
    let b = Binary::start(".:PORT {\n    bind 127.0.0.1\n    log\n}\n");
    let (m, port, id) = ask_udp(b.addr, "example.org.", RecordType::TXT);
    assert_eq!(m.response_code, ResponseCode::ServFail);
    let line = &b.wait_lines("[INFO]", 1)[0];
    assert_eq!(
        without_duration(line),
        format!(r#"[INFO] 127.0.0.1:{port} - {id} "TXT IN example.org. udp 40 false 1232" SERVFAIL qr,rd 40"#)
    );
}

/// Names pick the first rule that holds them; classes filter; several `log` lines work together.
#[test]
fn names_formats_and_classes() {
    let b = Binary::start(
        "example.org:PORT {\n    bind 127.0.0.1\n    log sub.example.org \"sub {name} {rcode}\"\n    \
         log . \"all {name} {rcode}\"\n    whoami\n}\n\
         example.net:PORT {\n    bind 127.0.0.1\n    log . \"net {name} {rcode} {>rflags}\" {\n        class error\n    }\n}\n\
         example.com:PORT {\n    bind 127.0.0.1\n    log . \"com {name}\" {\n        class denial success\n    }\n}\n",
    );
    let ask = |name| ask_udp(b.addr, name, RecordType::A).0.response_code;
    assert_eq!(ask("a.sub.example.org."), ResponseCode::NoError);
    assert_eq!(ask("b.example.org."), ResponseCode::NoError);
    assert_eq!(ask("x.example.net."), ResponseCode::ServFail);
    // An error reply in a block logging only denials and successes: no line.
    assert_eq!(ask("x.example.com."), ResponseCode::ServFail);
    assert_eq!(ask("last.example.org."), ResponseCode::NoError);
    assert_eq!(
        b.wait_lines("[INFO] ", 4),
        [
            "[INFO] sub a.sub.example.org. NOERROR",
            "[INFO] all b.example.org. NOERROR",
            "[INFO] net x.example.net. SERVFAIL qr,rd",
            "[INFO] all last.example.org. NOERROR",
        ]
    );
}

#[test]
fn errors_and_log_together() {
    let b = Binary::start(".:PORT {\n    bind 127.0.0.1\n    log . \"{name} {rcode}\"\n    errors\n}\n");
    let out = kdig(b.addr, &["example.org", "TXT"]);
    assert!(out.contains("status: SERVFAIL"), "{out}");
    assert_eq!(b.wait_lines("[INFO] ", 1), ["[INFO] example.org. SERVFAIL"]);
    assert_eq!(
        b.wait_lines("[ERROR] ", 1),
        ["[ERROR] plugin/errors: 2 example.org. TXT: plugin/log: no next plugin found"]
    );
}

#[test]
fn configuration_errors_name_their_position() {
    let e = TestServer::try_start(". {\n    log {combined}\n}\n").err().expect("an error");
    assert!(
        e.ends_with("Corefile:2:9: log: '{combined}' is a format but is read as a name here: write `log . {combined}`"),
        "{e}"
    );
    let e = TestServer::try_start(". {\n    log {\n        class sometimes\n    }\n}\n").err().expect("an error");
    assert!(
        e.ends_with("Corefile:3:15: log: unknown class 'sometimes': expected success, denial, error or all"),
        "{e}"
    );
}
