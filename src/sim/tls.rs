//! A test PKI for the simulators: a CA, and a leaf certificate for
//! `localhost`, `127.0.0.1` and any given names signed by it (rustls refuses
//! a CA certificate used as the server's own). Clients trust the CA through
//! `ca_file`, or don't, to test the unknown-issuer error.

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
    KeyUsagePurpose, SignatureAlgorithm,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Why the test PKI could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TestPkiError {
    #[error("generating the test certificates failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("building the TLS server configuration failed: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("cannot write the CA certificate to {path}: {source}")]
    Write {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// The CA, the server's leaf certificate and a ready rustls server config.
pub struct TestPki {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    leaf_der: CertificateDer<'static>,
    server_config: Arc<rustls::ServerConfig>,
}

impl TestPki {
    /// A P-256/SHA-256 PKI for `localhost`, `127.0.0.1` and `extra_names`.
    pub fn generate(extra_names: &[&str]) -> Result<TestPki, TestPkiError> {
        Self::generate_with(extra_names, &rcgen::PKCS_ECDSA_P256_SHA256)
    }

    /// As [`generate`](Self::generate) with the given signature algorithm
    /// for both certificates (e.g. `PKCS_ECDSA_P384_SHA384`, whose channel
    /// binding uses SHA-384).
    pub fn generate_with(
        extra_names: &[&str],
        algorithm: &'static SignatureAlgorithm,
    ) -> Result<TestPki, TestPkiError> {
        let mut ca_params = CertificateParams::default();
        let mut ca_name = DistinguishedName::new();
        ca_name.push(DnType::CommonName, "ews-calendar-replicator test CA");
        ca_params.distinguished_name = ca_name;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate_for(algorithm)?)?;

        let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        names.extend(extra_names.iter().map(|n| (*n).to_owned()));
        let mut leaf_params = CertificateParams::new(names)?;
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = KeyPair::generate_for(algorithm)?;
        let leaf = leaf_params.signed_by(&leaf_key, &ca)?;

        let leaf_der = leaf.der().clone();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server_config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![leaf_der.clone(), ca.der().clone()], key)?;
        server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TestPki {
            ca_pem: ca.pem(),
            ca_der: ca.der().clone(),
            leaf_der,
            server_config: Arc::new(server_config),
        })
    }

    /// The server configuration presenting the leaf (and CA) certificate.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server_config.clone()
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.ca_der
    }

    /// The server's own certificate, DER (what channel binding hashes).
    pub fn leaf_der(&self) -> &CertificateDer<'static> {
        &self.leaf_der
    }

    /// Writes the CA certificate as PEM to `path` (for a client's `ca_file`).
    pub fn write_ca_pem(&self, path: &Path) -> Result<(), TestPkiError> {
        std::fs::write(path, &self.ca_pem).map_err(|source| TestPkiError::Write {
            path: path.to_owned(),
            source,
        })
    }
}

impl std::fmt::Debug for TestPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private key lives inside the server config; never print it.
        f.debug_struct("TestPki").finish_non_exhaustive()
    }
}
