//! The `tls-server-end-point` channel binding (RFC 5929) that NTLM carries so
//! that a server with Extended Protection can tell the client authenticated
//! on *this* TLS connection and not on one a relay opened.

use sha2::{Digest, Sha256, Sha384, Sha512};

/// The RFC 5929 prefix of the channel-binding application data.
pub const TLS_SERVER_END_POINT_PREFIX: &[u8] = b"tls-server-end-point:";

/// `tls-server-end-point:` followed by the certificate hash: the application
/// data of the channel bindings for `leaf_der`, the server's own certificate.
pub fn tls_server_end_point(leaf_der: &[u8]) -> Vec<u8> {
    let mut token = TLS_SERVER_END_POINT_PREFIX.to_vec();
    token.extend_from_slice(&certificate_hash(leaf_der));
    token
}

/// The certificate hash of RFC 5929 section 4.1: the hash function of the
/// certificate's signature algorithm, except that MD5 and SHA-1 (and anything
/// unrecognised) become SHA-256.
pub fn certificate_hash(leaf_der: &[u8]) -> Vec<u8> {
    match signature_hash(leaf_der) {
        Some(SignatureHash::Sha384) => Sha384::digest(leaf_der).to_vec(),
        Some(SignatureHash::Sha512) => Sha512::digest(leaf_der).to_vec(),
        _ => Sha256::digest(leaf_der).to_vec(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SignatureHash {
    Sha256,
    Sha384,
    Sha512,
}

// DER-encoded object identifier contents of the signature algorithms whose
// hash is not SHA-256 (RFC 4055, RFC 5758, RFC 8017).
const SHA384_SIGNATURES: &[&[u8]] = &[
    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c], // sha384WithRSAEncryption
    &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03],       // ecdsa-with-SHA384
];
const SHA512_SIGNATURES: &[&[u8]] = &[
    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d], // sha512WithRSAEncryption
    &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04],       // ecdsa-with-SHA512
];
const RSASSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
const SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
const SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];

/// Reads `Certificate.signatureAlgorithm` (the second element of the outer
/// SEQUENCE) and maps it to its hash; `None` when the DER is not a certificate.
fn signature_hash(cert_der: &[u8]) -> Option<SignatureHash> {
    let (certificate, _) = der_element(cert_der, 0x30)?;
    let (_tbs, rest) = der_any(certificate)?;
    let (algorithm_identifier, _) = der_element(rest, 0x30)?;
    let (oid, params) = der_element(algorithm_identifier, 0x06)?;
    if SHA384_SIGNATURES.contains(&oid) {
        return Some(SignatureHash::Sha384);
    }
    if SHA512_SIGNATURES.contains(&oid) {
        return Some(SignatureHash::Sha512);
    }
    if oid == RSASSA_PSS {
        // RSASSA-PSS-params: [0] hashAlgorithm AlgorithmIdentifier (default SHA-1)
        let pss = der_element(params, 0x30).map(|(pss, _)| pss).unwrap_or(&[]);
        let hash_oid = der_element(pss, 0xa0)
            .and_then(|(explicit, _)| der_element(explicit, 0x30))
            .and_then(|(alg, _)| der_element(alg, 0x06))
            .map(|(oid, _)| oid);
        return Some(match hash_oid {
            Some(SHA384) => SignatureHash::Sha384,
            Some(SHA512) => SignatureHash::Sha512,
            _ => SignatureHash::Sha256,
        });
    }
    Some(SignatureHash::Sha256)
}

/// Splits one DER element with tag `tag` off `input`: (contents, rest).
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    if *input.first()? != tag {
        return None;
    }
    der_any(input)
}

/// Splits one DER element of any (single-byte) tag off `input`.
fn der_any(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let first_len = *input.get(1)?;
    let (len, header) = if first_len < 0x80 {
        (usize::from(first_len), 2)
    } else {
        let count = usize::from(first_len & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let bytes = input.get(2..2 + count)?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, 2 + count)
    };
    let end = header.checked_add(len)?;
    Some((input.get(header..end)?, input.get(end..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal certificate-shaped DER: SEQUENCE { SEQUENCE {}, SEQUENCE { OID } }.
    fn fake_cert(oid: &[u8]) -> Vec<u8> {
        let mut alg = vec![0x06, oid.len() as u8];
        alg.extend_from_slice(oid);
        let mut inner = vec![0x30, 0x00, 0x30, alg.len() as u8];
        inner.extend_from_slice(&alg);
        let mut cert = vec![0x30, inner.len() as u8];
        cert.extend_from_slice(&inner);
        cert
    }

    #[test]
    fn hash_follows_the_signature_algorithm() {
        let ecdsa_sha256 = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
        let sha1_rsa = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05];
        assert_eq!(
            signature_hash(&fake_cert(&ecdsa_sha256)),
            Some(SignatureHash::Sha256)
        );
        assert_eq!(
            signature_hash(&fake_cert(SHA384_SIGNATURES[1])),
            Some(SignatureHash::Sha384)
        );
        assert_eq!(
            signature_hash(&fake_cert(SHA512_SIGNATURES[0])),
            Some(SignatureHash::Sha512)
        );
        assert_eq!(
            signature_hash(&fake_cert(&sha1_rsa)),
            Some(SignatureHash::Sha256)
        );
        let cert = fake_cert(SHA384_SIGNATURES[0]);
        assert_eq!(certificate_hash(&cert).len(), 48);
        assert_eq!(certificate_hash(&fake_cert(&sha1_rsa)).len(), 32);
        assert!(tls_server_end_point(&cert).starts_with(b"tls-server-end-point:"));
    }
}
