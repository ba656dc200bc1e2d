//! prometheus's `tls CONFIG_FILE`: /metrics over HTTPS, scraped by a rustls client and by curl,
//! with each of Go's client authentication modes against a good, a foreign and no client
//! certificate; and broken web configuration files, which fail the start or reload naming the
//! `tls` line and the file.
//!
//! Every test makes its own certificate authority with rcgen: a server certificate for
//! 127.0.0.1, a client certificate from the same CA, and a "foreign" client certificate from
//! another CA.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use common::*;
use hickory_proto::rr::RecordType;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// A block serving metrics over HTTPS per `web.yml` beside the Corefile.
const COREFILE: &str = "example.org {\n    prometheus 127.0.0.1:0 {\n        tls web.yml\n    }\n    whoami\n}\n";

/// Files written to a directory: `ca.pem`, `server.pem`/`server.key` (127.0.0.1 and localhost,
/// signed by the CA), `client.pem`/`client.key` (signed by the CA), `foreign.pem`/`foreign.key`
/// (signed by another CA) and `foreign-ca.pem`.
fn write_pki(dir: &Path, tag: &str) {
    let ca = |name: &str| {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, format!("{name} {tag}"));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
    };
    let (ca, foreign_ca) = (ca("clusterdns test CA"), ca("foreign CA"));
    let leaf = |names: &[&str], usage: ExtendedKeyUsagePurpose, issuer: &CertifiedIssuer<'_, KeyPair>, file: &str| {
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, file);
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, issuer).unwrap();
        std::fs::write(dir.join(format!("{file}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).unwrap();
    };
    leaf(&["127.0.0.1", "localhost"], ExtendedKeyUsagePurpose::ServerAuth, &ca, "server");
    leaf(&["scraper"], ExtendedKeyUsagePurpose::ClientAuth, &ca, "client");
    leaf(&["scraper"], ExtendedKeyUsagePurpose::ClientAuth, &foreign_ca, "foreign");
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("foreign-ca.pem"), foreign_ca.pem()).unwrap();
}

/// A web configuration file: the server certificate, and a client authentication mode with the
/// CA as client CA, if `auth` is given.
fn web_yml(auth: Option<&str>) -> String {
    let mut text = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n".to_string();
    if let Some(auth) = auth {
        text.push_str(&format!("  client_auth_type: {auth}\n  client_ca_file: ca.pem\n"));
    }
    text
}

/// A temporary directory with certificates and `web.yml`.
fn tls_dir(web: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_pki(dir.path(), "");
    std::fs::write(dir.path().join("web.yml"), web).unwrap();
    dir
}

/// Who a client is: which certificate it presents, if any.
#[derive(Clone, Copy, Debug)]
enum Client {
    Anonymous,
    /// Signed by the server's client CA.
    Good,
    /// Signed by another CA.
    Foreign,
}

/// GET /metrics over TLS with rustls, trusting `ca`; (status, body), or the error that ended
/// the exchange.
fn https_get(addr: SocketAddr, dir: &Path, ca: &str, client: Client) -> Result<(u16, String), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(dir.join(ca)).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Client::Anonymous => builder.with_no_client_auth(),
        Client::Good | Client::Foreign => {
            let name = if matches!(client, Client::Good) { "client" } else { "foreign" };
            let chain = CertificateDer::pem_file_iter(dir.join(format!("{name}.pem")))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(dir.join(format!("{name}.key"))).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    let server_name = ServerName::IpAddress(addr.ip().into());
    let conn = rustls::ClientConnection::new(Arc::new(config), server_name).unwrap();
    let tcp = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    tls.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| format!("no HTTP response: {text:?}"))?;
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or("no status")?;
    Ok((status, body.to_string()))
}

/// `curl --cacert ca.pem [--cert CERT --key KEY] https://ADDR/metrics`: the body, or curl's error.
fn curl(addr: SocketAddr, dir: &Path, client: Option<&str>) -> Result<String, String> {
    let mut cmd = Command::new("curl");
    cmd.args(["--silent", "--show-error", "--fail", "--max-time", "5", "--cacert"]).arg(dir.join("ca.pem"));
    if let Some(name) = client {
        cmd.arg("--cert").arg(dir.join(format!("{name}.pem"))).arg("--key").arg(dir.join(format!("{name}.key")));
    }
    let out = cmd.arg(format!("https://{addr}/metrics")).output().expect("curl is installed");
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

/// The scrape counts the query sent before it: real metrics, over HTTPS.
fn counts_the_query(body: &str) -> bool {
    body.lines().any(|l| l.starts_with("coredns_dns_requests_total{") && l.contains("zone=\"example.org.\""))
}

#[test]
fn metrics_over_https_for_rustls_and_curl() {
    let dir = tls_dir(&web_yml(None));
    let path = dir.path().to_path_buf();
    let s = TestServer::try_start_in(dir, COREFILE).unwrap();
    let addr = s.http("127.0.0.1:0");
    query_udp(s.addr(), "www.example.org.", RecordType::A);

    let (status, body) = https_get(addr, &path, "ca.pem", Client::Anonymous).unwrap();
    assert_eq!(status, 200);
    assert!(counts_the_query(&body), "{body}");
    // A client certificate is not asked for, so presenting one changes nothing.
    assert_eq!(https_get(addr, &path, "ca.pem", Client::Foreign).unwrap().0, 200);
    assert!(counts_the_query(&curl(addr, &path, None).unwrap()));

    // The certificate is the one of the file: a client trusting another CA refuses it.
    let err = https_get(addr, &path, "foreign-ca.pem", Client::Anonymous).unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");
    // Plain HTTP gets Go's answer, and no metrics.
    let (status, _, body) = http_request(addr, "/metrics", &[]);
    assert_eq!((status, body.as_str()), (400, "Client sent an HTTP request to an HTTPS server.\n"));
}

/// Each of Go's modes against no certificate, one from the client CA and one from another CA.
#[test]
fn client_certificates_per_mode() {
    use Client::*;
    let cases: [(&str, [(Client, bool); 3]); 4] = [
        ("RequireAndVerifyClientCert", [(Anonymous, false), (Good, true), (Foreign, false)]),
        ("VerifyClientCertIfGiven", [(Anonymous, true), (Good, true), (Foreign, false)]),
        ("RequireAnyClientCert", [(Anonymous, false), (Good, true), (Foreign, true)]),
        ("RequestClientCert", [(Anonymous, true), (Good, true), (Foreign, true)]),
    ];
    for (mode, clients) in cases {
        let dir = tls_dir(&web_yml(Some(mode)));
        let path = dir.path().to_path_buf();
        let s = TestServer::try_start_in(dir, COREFILE).unwrap();
        let addr = s.http("127.0.0.1:0");
        query_udp(s.addr(), "www.example.org.", RecordType::A);
        for (client, admitted) in clients {
            match https_get(addr, &path, "ca.pem", client) {
                Ok((200, body)) if admitted => assert!(counts_the_query(&body), "{mode} {client:?}"),
                Err(e) if !admitted => assert!(
                    e.contains("CertificateRequired") || e.contains("BadCertificate") || e.contains("UnknownCA"),
                    "{mode} {client:?}: {e}"
                ),
                other => panic!("{mode} {client:?}: admitted should be {admitted}, got {other:?}"),
            }
        }
        // curl agrees where it matters: with its certificate, and without one.
        let with = curl(addr, &path, Some("client"));
        assert!(with.as_deref().is_ok_and(counts_the_query), "{mode}: {with:?}");
        let without = curl(addr, &path, None);
        assert_eq!(without.is_ok(), clients[0].1, "{mode}: {without:?}");
    }
}

/// The start fails on each broken file, naming the `tls` argument and the file.
#[test]
fn broken_web_configuration_files_fail_the_start() {
    let cases: &[(&str, &str)] = &[
        (
            "",
            "prometheus: $DIR/web.yml: no tls_server_config: tls needs a certificate (cert_file) and its key (key_file)",
        ),
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  min_version: TLS13\n",
            "prometheus: $DIR/web.yml:4:3: tls_server_config: min_version is not implemented: clusterdns serves TLS 1.2 \
             and 1.3 with rustls's default cipher suites and key exchanges",
        ),
        (
            "tls_server_config:\n  cert_file: nothere.pem\n  key_file: server.key\n",
            "prometheus: $DIR/web.yml: cannot read cert_file $DIR/nothere.pem: No such file or directory (os error 2)",
        ),
        (
            "tls_server_config:\n  cert_file: server.key\n  key_file: server.key\n",
            "prometheus: $DIR/web.yml: cert_file $DIR/server.key: no PEM certificate (-----BEGIN CERTIFICATE-----) in it",
        ),
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.pem\n",
            "prometheus: $DIR/web.yml: key_file $DIR/server.pem: no PEM private key in it",
        ),
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: client.key\n",
            "prometheus: $DIR/web.yml: key_file $DIR/client.key is not the key of cert_file $DIR/server.pem",
        ),
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: VerifyClientCertIfGiven\n",
            "prometheus: $DIR/web.yml: client_auth_type VerifyClientCertIfGiven needs client_ca_file: clusterdns does \
             not check client certificates against the system's CAs",
        ),
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_ca_file: ca.pem\n",
            "prometheus: $DIR/web.yml: client_ca_file is set but client_auth_type is NoClientCert, which never asks \
             for a certificate",
        ),
    ];
    for (web, want) in cases {
        let dir = tls_dir(web);
        let shown = dir.path().display().to_string();
        let err = TestServer::try_start_in(dir, COREFILE).err().unwrap_or_else(|| panic!("started with {web:?}"));
        let want = format!("{shown}/Corefile:3:13: {}", want.replace("$DIR", &shown));
        assert_eq!(err, want, "{web:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let shown = dir.path().display().to_string();
    let err = TestServer::try_start_in(dir, COREFILE).err().unwrap();
    assert_eq!(
        err,
        format!(
            "{shown}/Corefile:3:13: prometheus: cannot read web configuration file {shown}/web.yml: No such file or \
             directory (os error 2)"
        )
    );
}

/// TLS belongs to an address: blocks naming the same settings share it; plain HTTP and TLS, or
/// two different TLS settings, on one address are an error.
#[test]
fn blocks_on_one_address_agree_on_tls() {
    let dir = tls_dir(&web_yml(None));
    let path = dir.path().to_path_buf();
    let block = |zone: &str, prometheus: &str| format!("{zone} {{\n    {prometheus}\n    whoami\n}}\n");
    let tls = "prometheus 127.0.0.1:0 {\n        tls web.yml\n    }";
    let shared = block("example.org", tls) + &block("example.net", tls);
    let s = TestServer::try_start_in(dir, &shared).unwrap();
    let addr = s.http("127.0.0.1:0");
    query_udp(s.addr(), "www.example.org.", RecordType::A);
    let (status, body) = https_get(addr, &path, "ca.pem", Client::Anonymous).unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("coredns_plugin_enabled{name=\"prometheus\",server=\"dns://:"), "{body}");
    drop(s);

    let other = "prometheus 127.0.0.1:0 {\n        tls other.yml\n    }";
    for (corefile, want) in [
        (
            block("example.org", tls) + &block("example.net", "prometheus 127.0.0.1:0"),
            "Corefile:8:5: prometheus: 127.0.0.1:0 is served over TLS by prometheus at $DIR/Corefile:2:5; \
             prometheus would serve it in plain HTTP",
        ),
        (
            block("example.org", "prometheus 127.0.0.1:0") + &block("example.net", tls),
            "Corefile:6:5: prometheus: 127.0.0.1:0 is already served in plain HTTP by prometheus at $DIR/Corefile:2:5",
        ),
        (
            block("example.org", tls) + &block("example.net", other),
            "Corefile:8:5: prometheus: 127.0.0.1:0 is already served over TLS with other settings by prometheus at \
             $DIR/Corefile:2:5",
        ),
        (
            block("example.org", tls) + &block("example.net", "health 127.0.0.1:0"),
            "Corefile:8:5: health: 127.0.0.1:0 is served over TLS by prometheus at $DIR/Corefile:2:5; health would \
             serve it in plain HTTP",
        ),
    ] {
        let dir = tls_dir(&web_yml(None));
        std::fs::write(dir.path().join("other.yml"), web_yml(Some("RequireAndVerifyClientCert"))).unwrap();
        let shown = dir.path().display().to_string();
        let err = TestServer::try_start_in(dir, &corefile).err().unwrap_or_else(|| panic!("started:\n{corefile}"));
        assert_eq!(err, format!("{shown}/{}", want.replace("$DIR", &shown)), "{corefile}");
    }
}

/// A reload turns TLS on for the listening socket, a second one reads new certificates (how
/// rotated certificates are taken: SIGUSR1), and one with a broken file keeps the running
/// configuration, naming the file.
#[test]
fn reloads_turn_tls_on_and_read_new_certificates() {
    let dir = tls_dir(&web_yml(None));
    let path = dir.path().to_path_buf();
    let s = TestServer::try_start_in(dir, "example.org {\n    prometheus 127.0.0.1:0\n    whoami\n}\n").unwrap();
    let addr = s.http("127.0.0.1:0");
    assert_eq!(http_get(addr, "/metrics").0, 200);

    s.write_corefile(COREFILE);
    assert_eq!(s.reload(), Ok(true));
    assert_eq!(s.http("127.0.0.1:0"), addr, "the socket is kept");
    assert_eq!(https_get(addr, &path, "ca.pem", Client::Anonymous).unwrap().0, 200);
    assert_eq!(http_get(addr, "/metrics").0, 400);

    // New CA and certificates under the same names: after a reload, only the new CA verifies.
    let old = tempfile::tempdir().unwrap();
    std::fs::copy(path.join("ca.pem"), old.path().join("ca.pem")).unwrap();
    write_pki(&path, "rotated");
    assert_eq!(s.reload(), Ok(true));
    assert_eq!(https_get(addr, &path, "ca.pem", Client::Anonymous).unwrap().0, 200);
    let err = https_get(addr, old.path(), "ca.pem", Client::Anonymous).unwrap_err();
    assert!(err.contains("UnknownIssuer") || err.contains("BadSignature"), "{err}");

    std::fs::write(path.join("web.yml"), "tls_server_config:\n  cert_file: server.pem\n").unwrap();
    let shown = path.display();
    assert_eq!(
        s.reload(),
        Err(format!("{shown}/Corefile:3:13: prometheus: {shown}/web.yml:1:1: tls_server_config: key_file is missing"))
    );
    assert_eq!(https_get(addr, &path, "ca.pem", Client::Anonymous).unwrap().0, 200, "the running TLS stays");
}

/// The README's example (`~~~ txt`: it needs certificate files) starts as written once the files
/// it names exist.
#[test]
fn the_readme_tls_example_starts() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/plugins/prometheus/README.md"))
            .unwrap();
    let block = |fence: &str, needle: &str| -> String {
        readme
            .split(fence)
            .skip(1)
            .step_by(2)
            .find(|b| b.contains(needle))
            .unwrap_or_else(|| panic!("no {fence} block with {needle:?} in the README"))
            .trim_start_matches(|c| c != '\n')
            .to_string()
    };
    let corefile = block("~~~", "tls web.yml");
    let web = block("~~~", "cert_file: tls/server.crt");
    let dir = tempfile::tempdir().unwrap();
    let files: PathBuf = dir.path().join("tls");
    std::fs::create_dir(&files).unwrap();
    write_pki(&files, "");
    std::fs::rename(files.join("server.pem"), files.join("server.crt")).unwrap();
    std::fs::write(dir.path().join("web.yml"), &web).unwrap();
    let path = dir.path().to_path_buf();
    let s = TestServer::try_start_in(dir, &corefile).unwrap_or_else(|e| panic!("{e}\n{corefile}\n{web}"));
    let addr = s.http(":9153");
    assert_eq!(https_get(addr, &files, "ca.pem", Client::Good).unwrap().0, 200);
    assert!(https_get(addr, &files, "ca.pem", Client::Anonymous).is_err());
    assert!(path.join("web.yml").exists());
}
