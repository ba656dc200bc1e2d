//! Upstreams for the forward tests: a real Knot DNS server serving a signed zone, and scripted
//! servers on loopback that misbehave on purpose (slow, silent, truncating, answering with the
//! wrong ID or question, closing TCP mid-answer). Each stops when dropped.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record};

use crate::common::{TIMEOUT, free_port};

/// The zone Knot serves (and signs).
pub const ZONE: &str = "\
$ORIGIN example.test.
$TTL 300
@ SOA ns.example.test. admin.example.test. 1 3600 600 86400 300
@ NS ns.example.test.
ns A 127.0.0.1
www A 192.0.2.1
www AAAA 2001:db8::1
";

/// knotd serving `example.test.` (DNSSEC-signed by knot itself, ECDSA P-256) on 127.0.0.1.
pub struct Knot {
    pub addr: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Knot {
    /// Starts knotd with `extra` appended to the zone; returns once it answers.
    pub fn start(extra: &str) -> Knot {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path().display();
        let port = free_port();
        std::fs::write(dir.path().join("example.test.zone"), format!("{ZONE}{extra}")).unwrap();
        let conf = format!(
            "server:\n    rundir: {d}\n    listen: 127.0.0.1@{port}\n    tcp-idle-timeout: 60\n\
             database:\n    storage: {d}\n\
             template:\n  - id: default\n    storage: {d}\n    zonefile-sync: -1\n    journal-content: none\n\
             zone:\n  - domain: example.test\n    file: example.test.zone\n    dnssec-signing: on\n"
        );
        std::fs::write(dir.path().join("knot.conf"), conf).unwrap();
        // Debian puts it in /usr/sbin, which a user's PATH may lack.
        let knotd = if std::path::Path::new("/usr/sbin/knotd").exists() { "/usr/sbin/knotd" } else { "knotd" };
        let child = Command::new(knotd)
            .arg("-c")
            .arg(dir.path().join("knot.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("knotd (install knot: .ci/setup)");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let knot = Knot { addr, child, _dir: dir };
        let start = Instant::now();
        loop {
            let q = crate::common::query_message("www.example.test.", hickory_proto::rr::RecordType::A);
            if let Some(r) = crate::common::raw_udp_wait(addr, &q.to_vec().unwrap(), Duration::from_millis(200))
                && Message::from_vec(&r).is_ok_and(|m| !m.answers.is_empty())
            {
                return knot;
            }
            assert!(start.elapsed() < TIMEOUT * 2, "knotd did not start answering on {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a scripted upstream does with one query.
pub enum Act {
    /// Sends a message (length-prefixed over TCP).
    Reply(Vec<u8>),
    /// Writes these bytes as they are (TCP: no length prefix).
    Raw(Vec<u8>),
    /// Over UDP, sends a message from another port of this host to the querier.
    Spoof(Vec<u8>),
    Wait(Duration),
    /// TCP: closes the connection.
    Close,
}

pub type Script = dyn Fn(&Message, bool) -> Vec<Act> + Send + Sync;

/// A scripted upstream on 127.0.0.1, UDP and TCP on one port. Every query it reads is kept.
pub struct Scripted {
    pub addr: SocketAddr,
    pub queries: Arc<Mutex<Vec<(bool, Message)>>>,
    /// TCP connections accepted.
    pub connections: Arc<AtomicUsize>,
    /// Datagrams received, decodable or not.
    pub datagrams: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Scripted {
    /// Serves `script(query, over_tcp)` for each query.
    pub fn start(script: impl Fn(&Message, bool) -> Vec<Act> + Send + Sync + 'static) -> Scripted {
        let script: Arc<Script> = Arc::new(script);
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
            if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()) {
                break (udp, tcp);
            }
        };
        let addr = udp.local_addr().unwrap();
        let s = Scripted {
            addr,
            queries: Default::default(),
            connections: Default::default(),
            datagrams: Default::default(),
            stop: Default::default(),
        };
        udp.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let (queries, stop, datagrams, sc) = (s.queries.clone(), s.stop.clone(), s.datagrams.clone(), script.clone());
        std::thread::spawn(move || {
            let udp = Arc::new(udp);
            let mut buf = [0u8; 65535];
            while !stop.load(Ordering::Relaxed) {
                let Ok((n, from)) = udp.recv_from(&mut buf) else { continue };
                datagrams.fetch_add(1, Ordering::Relaxed);
                let Ok(q) = Message::from_vec(&buf[..n]) else { continue };
                queries.lock().unwrap().push((false, q.clone()));
                let (udp, sc) = (udp.clone(), sc.clone());
                std::thread::spawn(move || {
                    for act in sc(&q, false) {
                        match act {
                            Act::Reply(m) | Act::Raw(m) => {
                                let _ = udp.send_to(&m, from);
                            }
                            Act::Spoof(m) => {
                                let other = UdpSocket::bind("127.0.0.1:0").unwrap();
                                let _ = other.send_to(&m, from);
                            }
                            Act::Wait(d) => std::thread::sleep(d),
                            Act::Close => {}
                        }
                    }
                });
            }
        });
        tcp.set_nonblocking(true).unwrap();
        let (queries, stop, connections) = (s.queries.clone(), s.stop.clone(), s.connections.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Ok((conn, _)) = tcp.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                connections.fetch_add(1, Ordering::Relaxed);
                let (queries, stop, script) = (queries.clone(), stop.clone(), script.clone());
                std::thread::spawn(move || serve_tcp(conn, &queries, &stop, &*script));
            }
        });
        s
    }

    /// How many queries it read (UDP and TCP).
    pub fn count(&self) -> usize {
        self.queries.lock().unwrap().len()
    }

    /// Queries read over TCP.
    pub fn tcp_count(&self) -> usize {
        self.queries.lock().unwrap().iter().filter(|(tcp, _)| *tcp).count()
    }
}

fn serve_tcp(mut conn: TcpStream, queries: &Mutex<Vec<(bool, Message)>>, stop: &AtomicBool, script: &Script) {
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    loop {
        let mut len = [0u8; 2];
        match conn.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                continue;
            }
            Err(_) => return,
        }
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        conn.set_read_timeout(Some(TIMEOUT)).unwrap();
        if conn.read_exact(&mut buf).is_err() {
            return;
        }
        conn.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let Ok(q) = Message::from_vec(&buf) else { return };
        queries.lock().unwrap().push((true, q.clone()));
        for act in script(&q, true) {
            match act {
                Act::Reply(m) => {
                    let mut out = (m.len() as u16).to_be_bytes().to_vec();
                    out.extend_from_slice(&m);
                    if conn.write_all(&out).is_err() {
                        return;
                    }
                }
                Act::Raw(m) => {
                    if conn.write_all(&m).is_err() {
                        return;
                    }
                }
                Act::Wait(d) => std::thread::sleep(d),
                Act::Spoof(_) => {}
                Act::Close => return,
            }
        }
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The response to `q` that `edit` makes of an empty NOERROR answer (QR, RD copied, RA).
pub fn answer(q: &Message, edit: impl FnOnce(&mut Message)) -> Vec<u8> {
    let mut r = Message::new(q.id, MessageType::Response, OpCode::Query);
    r.metadata.recursion_desired = q.recursion_desired;
    r.metadata.recursion_available = true;
    r.queries = q.queries.clone();
    if let Some(e) = &q.edns {
        let mut edns = hickory_proto::op::Edns::new();
        edns.set_max_payload(e.max_payload());
        r.edns = Some(edns);
    }
    edit(&mut r);
    r.to_vec().unwrap()
}

/// An answer of `n` A records 10.0.x.y for the question of `q`.
pub fn a_records(q: &Message, n: usize) -> Vec<u8> {
    answer(q, |r| {
        let name: Name = q.queries[0].name().clone();
        for i in 0..n {
            let ip = std::net::Ipv4Addr::new(10, 0, (i / 256) as u8, (i % 256) as u8);
            r.answers.push(Record::from_rdata(name.clone(), 60, RData::A(A(ip))));
        }
    })
}
