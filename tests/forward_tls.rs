//! forward over DNS over TLS (RFC 7858) to a local TLS upstream whose certificate a test CA
//! signed: answers come back, connections are pooled, and a certificate the CA did not sign,
//! or for another name, gets no query answered.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `ca.pem` and `other-ca.pem`; `server.pem`/`server.key` for 127.0.0.1 and dot.test, signed by
/// the first.
fn write_pki(dir: &Path) {
    let ca = |name: &str| {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
    };
    let (ca, other) = (ca("clusterdns DoT test CA"), ca("another CA"));
    let params = CertificateParams::new(vec!["127.0.0.1".to_string(), "dot.test".to_string()]).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("other-ca.pem"), other.pem()).unwrap();
}

/// A DoT upstream on 127.0.0.1 answering every A query with 192.0.2.53; counts TLS sessions.
struct DotUpstream {
    addr: std::net::SocketAddr,
    sessions: Arc<AtomicUsize>,
    _rt: tokio::runtime::Runtime,
}

fn dot_upstream(dir: &Path) -> DotUpstream {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(dir.join("server.pem")).unwrap().collect::<Result<_, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let sessions = Arc::new(AtomicUsize::new(0));
    let counted = sessions.clone();
    rt.spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, counted) = (acceptor.clone(), counted.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                counted.fetch_add(1, Ordering::Relaxed);
                loop {
                    let mut len = [0u8; 2];
                    if tls.read_exact(&mut len).await.is_err() {
                        return;
                    }
                    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
                    if tls.read_exact(&mut buf).await.is_err() {
                        return;
                    }
                    let q = Message::from_vec(&buf).unwrap();
                    let mut r = Message::new(q.id, MessageType::Response, OpCode::Query);
                    r.metadata.recursion_desired = q.recursion_desired;
                    r.metadata.recursion_available = true;
                    r.queries = q.queries.clone();
                    if q.queries[0].query_type() == RecordType::A {
                        let name = q.queries[0].name().clone();
                        r.answers.push(Record::from_rdata(name, 60, RData::A(A::new(192, 0, 2, 53))));
                    }
                    let out = r.to_vec().unwrap();
                    let mut framed = (out.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&out);
                    if tls.write_all(&framed).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    DotUpstream { addr, sessions, _rt: rt }
}

fn start_in(dir: &Path, corefile: &str) -> Result<TestServer, String> {
    let tmp = tempfile::tempdir().unwrap();
    for f in ["ca.pem", "other-ca.pem"] {
        std::fs::copy(dir.join(f), tmp.path().join(f)).unwrap();
    }
    // One UDP worker: connections are pooled per runtime, and each UDP worker has its own.
    TestServer::try_start_configured(tmp, corefile, |o| o.udp_workers = Some(1))
}

#[test]
fn forwards_over_tls_to_an_upstream_the_ca_signed_and_reuses_the_session() {
    let pki = tempfile::tempdir().unwrap();
    write_pki(pki.path());
    let up = dot_upstream(pki.path());
    // By IP address (the certificate names 127.0.0.1), and by name with tls_servername.
    for options in ["        tls ca.pem", "        tls ca.pem\n        tls_servername dot.test"] {
        let before = up.sessions.load(Ordering::Relaxed);
        let s = start_in(pki.path(), &format!(". {{\n    forward . tls://{} {{\n{options}\n    }}\n}}\n", up.addr))
            .unwrap();
        for i in 0..5 {
            let r = query_udp(s.addr(), &format!("n{i}.example."), RecordType::A);
            assert_eq!(rrs(&r.answers), [format!("n{i}.example. 60 IN A 192.0.2.53")], "{options}");
        }
        assert_eq!(up.sessions.load(Ordering::Relaxed) - before, 1, "one TLS session for five queries");
        let hits = format!(
            "coredns_proxy_conn_cache_hits_total{{proto=\"tcp-tls\",proxy_name=\"forward\",to=\"{}\"}} 4",
            up.addr
        );
        assert!(s.metrics().contains(&hits), "{}", s.metrics());
    }
    // The per-upstream form of the server name.
    let s = start_in(
        pki.path(),
        &format!(
            ". {{\n    forward . tls://127.0.0.1%dot.test:{} {{\n        tls ca.pem\n    }}\n}}\n",
            up.addr.port()
        ),
    )
    .unwrap();
    assert_eq!(query_udp(s.addr(), "x.example.", RecordType::A).answers.len(), 1);
}

#[test]
fn an_upstream_certificate_that_does_not_verify_gets_no_query() {
    let pki = tempfile::tempdir().unwrap();
    write_pki(pki.path());
    let up = dot_upstream(pki.path());
    for options in ["        tls other-ca.pem", "        tls ca.pem\n        tls_servername wrong.test"] {
        let s = start_in(
            pki.path(),
            &format!(". {{\n    forward . tls://{} {{\n{options}\n        max_fails 0\n    }}\n}}\n", up.addr),
        )
        .unwrap();
        let r = query_udp(s.addr(), "x.example.", RecordType::A);
        assert_eq!(r.response_code, ResponseCode::ServFail, "{options}");
    }
    assert_eq!(up.sessions.load(Ordering::Relaxed), 0);
    // A CA file that is not there is an error at the tls line.
    let err = start_in(
        pki.path(),
        &format!(". {{\n    forward . tls://{} {{\n        tls missing.pem\n    }}\n}}\n", up.addr),
    )
    .err()
    .unwrap();
    assert!(err.contains(":3:9: forward: tls: ") && err.contains("missing.pem"), "{err}");
}
