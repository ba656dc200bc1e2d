//! A throwaway certificate authority and the serving certificate it signs; optionally a client
//! CA and a client certificate it signs, for authentication by certificate.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

/// The CA's certificate (for kubeconfigs) and a TLS configuration serving a certificate it signed.
pub(crate) struct Tls {
    pub ca_pem: String,
    pub config: Arc<ServerConfig>,
    pub client: Option<ClientCertificate>,
}

/// A client certificate the server accepts in place of a bearer token (PEM).
#[derive(Clone, Debug)]
pub struct ClientCertificate {
    /// The certificate, for the user `clusterdns` (its common name).
    pub cert_pem: String,
    /// Its private key, PKCS#8.
    pub key_pem: String,
    /// The client CA that signed it. It is not the CA of the serving certificate, as
    /// kube-apiserver's `--client-ca-file` usually is not.
    pub ca_pem: String,
}

fn tls_error(e: impl std::fmt::Display) -> crate::Error {
    crate::Error::Tls(e.to_string())
}

/// A self-signed CA named `name`.
fn certificate_authority(name: &str) -> Result<CertifiedIssuer<'static, KeyPair>, crate::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(tls_error)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    CertifiedIssuer::self_signed(params, KeyPair::generate().map_err(tls_error)?).map_err(tls_error)
}

/// Makes a CA and a serving certificate for `localhost`, `127.0.0.1`, `::1` and `hosts`. With
/// `client_certificates`, also a client CA, whose certificates the server verifies when a client
/// presents one, and a client certificate it signed.
pub(crate) fn generate(hosts: &[String], client_certificates: bool) -> Result<Tls, crate::Error> {
    let ca = certificate_authority("clusterdns-test-apiserver-ca")?;

    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    names.extend(hosts.iter().filter(|h| !names.contains(h)).cloned().collect::<Vec<_>>());
    let mut params = CertificateParams::new(names).map_err(tls_error)?;
    params.distinguished_name.push(DnType::CommonName, "clusterdns-test-apiserver");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().map_err(tls_error)?;
    let cert = params.signed_by(&key, &ca).map_err(tls_error)?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (verifier, client) = if client_certificates {
        let client_ca = certificate_authority("clusterdns-test-apiserver-client-ca")?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(tls_error)?;
        params.distinguished_name.push(DnType::CommonName, "clusterdns");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let client_key = KeyPair::generate().map_err(tls_error)?;
        let client_cert = params.signed_by(&client_key, &client_ca).map_err(tls_error)?;
        let mut roots = RootCertStore::empty();
        roots.add(client_ca.der().clone()).map_err(tls_error)?;
        // Optional, as kube-apiserver asks for a certificate but takes tokens too.
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .allow_unauthenticated()
            .build()
            .map_err(tls_error)?;
        let client = ClientCertificate {
            cert_pem: client_cert.pem(),
            key_pem: client_key.serialize_pem(),
            ca_pem: client_ca.pem(),
        };
        (Some(verifier), Some(client))
    } else {
        (None, None)
    };

    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| {
            let b = match verifier {
                Some(verifier) => b.with_client_cert_verifier(verifier),
                None => b.with_no_client_auth(),
            };
            b.with_single_cert(
                vec![cert.der().clone(), ca.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
        })
        .map_err(tls_error)?;
    // HTTP/1.1 only: watch responses are chunked streams, as kube-rs reads them.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls { ca_pem: ca.pem(), config: Arc::new(config), client })
}
