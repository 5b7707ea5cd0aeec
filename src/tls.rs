//! Client-side TLS shared by every connection the project makes (Exchange,
//! Active Directory, UCServer): one place decides which roots are trusted and
//! turns rustls' certificate errors into messages an administrator can act on.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// Why a TLS client configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read CA file {path}: {source}; set `ca_file` to a readable PEM file with the CA certificate(s) of your internal CA")]
    ReadCaFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("CA file {path} holds no PEM certificate (expected one or more `-----BEGIN CERTIFICATE-----` blocks)")]
    NoCertificate { path: PathBuf },
    #[error("CA file {path}: certificate {index} is not usable as a trust anchor: {reason}")]
    BadCertificate {
        path: PathBuf,
        index: usize,
        reason: String,
    },
}

/// Reads the PEM certificates of `path`.
pub fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let pem = std::fs::read(path).map_err(|source| TlsSetupError::ReadCaFile {
        path: path.to_owned(),
        source,
    })?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsSetupError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The trust store: the public web PKI roots plus, when given, the
/// certificates of `ca_file` (an internal CA, as most Exchange and AD
/// installations use).
pub fn root_store(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, TlsSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        for (index, cert) in load_ca_file(path)?.into_iter().enumerate() {
            roots.add(cert).map_err(|e| TlsSetupError::BadCertificate {
                path: path.to_owned(),
                index: index + 1,
                reason: e.to_string(),
            })?;
        }
    }
    Ok(roots)
}

/// A rustls client configuration with certificate verification on.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(root_store(ca_file)?)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Explains a failed TLS handshake with `host`: what went wrong and the fix.
/// `err` is the I/O error that tokio-rustls returned from the handshake.
pub fn explain_handshake_error(host: &str, err: &std::io::Error) -> String {
    let tls = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::InvalidCertificate(cert_err)) => {
            explain_certificate_error(host, cert_err)
        }
        Some(other) => format!("TLS handshake with {host} failed: {other}"),
        None => format!("TLS handshake with {host} failed: {err}"),
    }
}

fn explain_certificate_error(host: &str, err: &rustls::CertificateError) -> String {
    use rustls::CertificateError as E;
    match err {
        E::UnknownIssuer => format!(
            "TLS: the certificate of {host} was issued by an unknown CA (unknown issuer); \
             set `ca_file` to the PEM file of the CA that issued it"
        ),
        E::NotValidForName | E::NotValidForNameContext { .. } => format!(
            "TLS: the certificate of {host} is not valid for the name {host} (name mismatch); \
             connect with a name the certificate lists, or reissue the certificate for this name"
        ),
        E::Expired | E::ExpiredContext { .. } => format!(
            "TLS: the certificate of {host} has expired; renew the server certificate (or check this machine's clock)"
        ),
        E::NotValidYet | E::NotValidYetContext { .. } => format!(
            "TLS: the certificate of {host} is not valid yet; check this machine's clock"
        ),
        E::Revoked => format!("TLS: the certificate of {host} has been revoked"),
        other => format!("TLS: the certificate of {host} was refused: {other:?}"),
    }
}
