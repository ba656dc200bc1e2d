//! TLS for the HTTP endpoints (prometheus's `tls`): certificates read once, when a configuration
//! is built, into a rustls configuration that the listener of the address uses for every new
//! connection.
//!
//! Client authentication follows Go's `tls.ClientAuthType`, which Prometheus's web configuration
//! file names (see [`ClientAuth`]). Go checks a client certificate against the system's roots
//! when a verifying mode has no CA; here a verifying mode needs `client_ca_file`, since trusting
//! every public CA to vouch for a scraper is never what an operator of a cluster DNS means.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme};

/// How the server treats client certificates: Go's `tls.ClientAuthType`, by its Go name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// No certificate is asked for (the default).
    NoClientCert,
    /// A certificate is asked for, not required, and not checked against any CA.
    RequestClientCert,
    /// A certificate is required but not checked against any CA: the client only proves it holds
    /// the key of the certificate it sends.
    RequireAnyClientCert,
    /// A certificate is asked for, not required; one that is sent must chain to the client CA.
    VerifyClientCertIfGiven,
    /// A certificate chaining to the client CA is required.
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    /// Every mode, by its Go name, as the web configuration file spells them.
    pub const ALL: [(&'static str, ClientAuth); 5] = [
        ("NoClientCert", ClientAuth::NoClientCert),
        ("RequestClientCert", ClientAuth::RequestClientCert),
        ("RequireAnyClientCert", ClientAuth::RequireAnyClientCert),
        ("VerifyClientCertIfGiven", ClientAuth::VerifyClientCertIfGiven),
        ("RequireAndVerifyClientCert", ClientAuth::RequireAndVerifyClientCert),
    ];

    pub fn name(self) -> &'static str {
        ClientAuth::ALL.iter().find(|(_, a)| *a == self).map(|(n, _)| *n).expect("every mode is listed")
    }
}

/// What an HTTPS listener is built from. Two plugins asking for TLS on one address must ask
/// for equal settings; they then share one [`HttpTls`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM: the server's certificate, then the intermediates to send with it.
    pub cert_file: PathBuf,
    /// PEM: its private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    pub client_auth: ClientAuth,
    /// PEM: the CAs client certificates must chain to, for the verifying modes; for the others
    /// only their names are sent, as hints to the client.
    pub client_ca_file: Option<PathBuf>,
}

/// Why a TLS configuration could not be built. Each names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} {}: {message}", path.display())]
    Pem { what: &'static str, path: PathBuf, message: String },
    #[error("client_ca_file is set but client_auth_type is NoClientCert, which never asks for a certificate")]
    CaWithoutClientAuth,
    #[error(
        "client_auth_type {} needs client_ca_file: clusterdns does not check client certificates against the system's CAs",
        .0.name()
    )]
    VerifyWithoutCa(ClientAuth),
    #[error("key_file {} is not the key of cert_file {}", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("cert_file {} and key_file {} do not make a usable pair: {source}", cert.display(), key.display())]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("client_ca_file {}: {message}", path.display())]
    ClientCa { path: PathBuf, message: String },
}

/// A built TLS configuration for one HTTP address.
#[derive(Debug)]
pub struct HttpTls {
    pub settings: TlsSettings,
    pub(crate) config: Arc<ServerConfig>,
}

impl HttpTls {
    /// Reads the certificate, key and client CA of `settings` and builds the configuration:
    /// TLS 1.2 and 1.3, ring's cipher suites, HTTP/1.1 (the only protocol the listener speaks).
    pub fn load(settings: &TlsSettings) -> Result<HttpTls, TlsError> {
        if settings.client_auth == ClientAuth::NoClientCert && settings.client_ca_file.is_some() {
            return Err(TlsError::CaWithoutClientAuth);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = read_pem_certs("cert_file", &settings.cert_file)?;
        let key_pem = read("key_file", &settings.key_file)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
            what: "key_file",
            path: settings.key_file.clone(),
            message: pem_message("private key", e),
        })?;

        let roots = match &settings.client_ca_file {
            Some(path) => Some(read_client_cas(path)?),
            None => None,
        };
        let verifier: Arc<dyn ClientCertVerifier> = match settings.client_auth {
            ClientAuth::NoClientCert => WebPkiClientVerifier::no_client_auth(),
            ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => Arc::new(AnyClientCert {
                mandatory: settings.client_auth == ClientAuth::RequireAnyClientCert,
                hints: roots.map(|r| r.subjects()).unwrap_or_default(),
                algorithms: provider.signature_verification_algorithms,
            }),
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
                let (Some(roots), Some(path)) = (roots, &settings.client_ca_file) else {
                    return Err(TlsError::VerifyWithoutCa(settings.client_auth));
                };
                let builder = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
                let builder = match settings.client_auth {
                    ClientAuth::VerifyClientCertIfGiven => builder.allow_unauthenticated(),
                    _ => builder,
                };
                builder.build().map_err(|e| TlsError::ClientCa { path: path.clone(), message: format!("{e:?}") })?
            }
        };

        let (cert, key_path) = (settings.cert_file.clone(), settings.key_file.clone());
        let pair_error = |source| match source {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                TlsError::KeyMismatch { cert: cert.clone(), key: key_path.clone() }
            }
            source => TlsError::Pair { cert: cert.clone(), key: key_path.clone(), source },
        };
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring's provider has suites for TLS 1.2 and 1.3")
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(pair_error)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(HttpTls { settings: settings.clone(), config: Arc::new(config) })
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { what, path: path.to_path_buf(), source })
}

/// The CAs of `client_ca_file`.
fn read_client_cas(path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_pem_certs("client_ca_file", path)? {
        roots.add(cert).map_err(|e| TlsError::ClientCa { path: path.to_path_buf(), message: e.to_string() })?;
    }
    Ok(Arc::new(roots))
}

/// Every `CERTIFICATE` block of the PEM file at `path`; at least one.
fn read_pem_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>().map_err(|e| TlsError::Pem {
        what,
        path: path.to_path_buf(),
        message: pem_message("certificates", e),
    })?;
    if certs.is_empty() {
        let message = "no PEM certificate (-----BEGIN CERTIFICATE-----) in it".to_string();
        return Err(TlsError::Pem { what, path: path.to_path_buf(), message });
    }
    Ok(certs)
}

fn pem_message(what: &str, e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::NoItemsFound => format!("no PEM {what} in it"),
        e => format!("not PEM {what}: {e:?}"),
    }
}

/// Go's `RequestClientCert` and `RequireAnyClientCert`: a client certificate is asked for (and
/// required, when `mandatory`) but not checked against any CA. The handshake still checks the
/// client's signature with the certificate's key, as Go does, so a client cannot present a
/// certificate whose key it does not hold. The server makes no decision on the certificate:
/// these modes are for setups where something else (a proxy, a log) looks at it.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    /// The client CA's names, if a CA file was given: sent to help the client pick a certificate.
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
