//! DNS over TLS to an upstream (RFC 7858): the client configuration `tls [CERT KEY [CA]]` and
//! `tls_servername` describe, built with rustls (ring, TLS 1.2 and 1.3, as CoreDNS's minimum of
//! TLS 1.2).
//!
//! | `tls` arguments | server verified against       | client certificate |
//! |-----------------|-------------------------------|--------------------|
//! | none            | the system's CAs              | none               |
//! | CA              | CA                            | none               |
//! | CERT KEY        | the system's CAs              | CERT and KEY       |
//! | CERT KEY CA     | CA                            | CERT and KEY       |
//!
//! The system's CAs are the PEM bundle Debian and its kin keep at
//! `/etc/ssl/certs/ca-certificates.crt` (Fedora's at `/etc/pki/tls/certs/ca-bundle.crt`).
//! The name checked in the upstream's certificate is its `tls://IP%NAME`, else `tls_servername`,
//! else the upstream's IP address.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

/// The `tls` option as written, files resolved against the Corefile's directory.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TlsFiles {
    pub cert_key: Option<(PathBuf, PathBuf)>,
    pub ca: Option<PathBuf>,
}

const SYSTEM_BUNDLES: &[&str] = &["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"];

/// The client configuration for `files`, or why it cannot be made.
pub fn client_config(files: &TlsFiles) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    let bundle = match &files.ca {
        Some(ca) => ca.clone(),
        None => SYSTEM_BUNDLES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .ok_or("no system CA bundle found (give tls a CA file)")?,
    };
    for cert in certs(&bundle)? {
        roots.add(cert).map_err(|e| format!("{}: {e}", bundle.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring's provider has suites for TLS 1.2 and 1.3")
        .with_root_certificates(roots);
    let config = match &files.cert_key {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let pem = std::fs::read(key).map_err(|e| format!("{}: {e}", key.display()))?;
            let key_der =
                PrivateKeyDer::from_pem_slice(&pem).map_err(|e| format!("{}: no private key: {e}", key.display()))?;
            builder
                .with_client_auth_cert(certs(cert)?, key_der)
                .map_err(|e| format!("{} and {}: {e}", cert.display(), key.display()))?
        }
    };
    Ok(Arc::new(config))
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificates in it", path.display()));
    }
    Ok(certs)
}

/// The name to verify: a DNS name, or an IP address as text.
pub fn server_name(name: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(name.to_string()).map_err(|e| format!("invalid TLS server name '{name}': {e}"))
}
