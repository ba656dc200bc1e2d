//! A throwaway certificate authority and the serving certificate it signs.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// The CA's certificate (for kubeconfigs) and a TLS configuration serving a certificate it signed.
pub(crate) struct Tls {
    pub ca_pem: String,
    pub config: Arc<ServerConfig>,
}

/// Makes a CA and a serving certificate for `localhost`, `127.0.0.1`, `::1` and `hosts`.
pub(crate) fn generate(hosts: &[String]) -> Result<Tls, crate::Error> {
    let tls_error = |e: rcgen::Error| crate::Error::Tls(e.to_string());

    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(tls_error)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "clusterdns-test-apiserver-ca");
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().map_err(tls_error)?).map_err(tls_error)?;

    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    names.extend(hosts.iter().filter(|h| !names.contains(h)).cloned().collect::<Vec<_>>());
    let mut params = CertificateParams::new(names).map_err(tls_error)?;
    params.distinguished_name.push(DnType::CommonName, "clusterdns-test-apiserver");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().map_err(tls_error)?;
    let cert = params.signed_by(&key, &ca).map_err(tls_error)?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| {
            b.with_no_client_auth().with_single_cert(
                vec![cert.der().clone(), ca.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
        })
        .map_err(|e| crate::Error::Tls(e.to_string()))?;
    // HTTP/1.1 only: watch responses are chunked streams, as kube-rs reads them.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls { ca_pem: ca.pem(), config: Arc::new(config) })
}
