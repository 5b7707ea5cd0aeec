//! The acceptor half of NTLMv2 ([MS-NLMP]), verified for real: the server
//! issues a CHALLENGE with a random server challenge and a timestamped target
//! info, and checks the AUTHENTICATE message's NTProofStr against the
//! account's password, its MIC (over the exported session key, RC4-decrypted
//! when the client negotiated key exchange), and, with Extended Protection,
//! its channel-binding hash.
//!
//! sspi's own acceptor is not used: it accepts an AUTHENTICATE without a MIC
//! without checking the NTProofStr, and one without channel binding even when
//! the server has a binding, so it could not refuse what Exchange refuses.

use hmac::{Hmac, KeyInit, Mac};
use md4::{Digest, Md4};
use md5::Md5;
use rc4::{Rc4, StreamCipher};

use super::{Account, AuthFailure};

const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";
const NEGOTIATE_UNICODE: u32 = 0x0000_0001;
const REQUEST_TARGET: u32 = 0x0000_0004;
const NEGOTIATE_SIGN: u32 = 0x0000_0010;
const NEGOTIATE_SEAL: u32 = 0x0000_0020;
const NEGOTIATE_NTLM: u32 = 0x0000_0200;
const ALWAYS_SIGN: u32 = 0x0000_8000;
const TARGET_TYPE_DOMAIN: u32 = 0x0001_0000;
const EXTENDED_SESSION_SECURITY: u32 = 0x0008_0000;
const NEGOTIATE_TARGET_INFO: u32 = 0x0080_0000;
const NEGOTIATE_VERSION: u32 = 0x0200_0000;
const NEGOTIATE_128: u32 = 0x2000_0000;
const KEY_EXCH: u32 = 0x4000_0000;
const NEGOTIATE_56: u32 = 0x8000_0000;

const AV_EOL: u16 = 0;
const AV_NB_COMPUTER_NAME: u16 = 1;
const AV_NB_DOMAIN_NAME: u16 = 2;
const AV_DNS_COMPUTER_NAME: u16 = 3;
const AV_DNS_DOMAIN_NAME: u16 = 4;
const AV_FLAGS: u16 = 6;
const AV_TIMESTAMP: u16 = 7;
const AV_CHANNEL_BINDINGS: u16 = 10;
/// MsvAvFlags bit: the AUTHENTICATE message carries a MIC.
const AV_FLAG_MIC_PRESENT: u32 = 0x2;
const MIC_OFFSET: usize = 72;

/// How the server names itself in the CHALLENGE.
#[derive(Debug, Clone)]
pub struct ServerNames {
    pub netbios_domain: String,
    pub netbios_computer: String,
    pub dns_domain: String,
    pub dns_computer: String,
}

/// What the server keeps between CHALLENGE and AUTHENTICATE.
#[derive(Clone)]
pub(crate) struct PendingChallenge {
    negotiate: Vec<u8>,
    challenge: Vec<u8>,
    server_challenge: [u8; 8],
}

impl std::fmt::Debug for PendingChallenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingChallenge").finish_non_exhaustive()
    }
}

/// What the verification checks besides the password.
pub(crate) struct Requirements<'a> {
    /// MD5 of the gss_channel_bindings_struct the client must have sent
    /// (Extended Protection on, TLS connection).
    pub(crate) channel_binding: Option<&'a [u8; 16]>,
    pub(crate) require_mic: bool,
}

/// Answers a NEGOTIATE (type 1) message with a CHALLENGE (type 2).
pub(crate) fn challenge(
    negotiate: &[u8],
    names: &ServerNames,
    server_challenge: [u8; 8],
    now_filetime: u64,
) -> Result<(Vec<u8>, PendingChallenge), AuthFailure> {
    if negotiate.len() < 16 || &negotiate[..8] != SIGNATURE || read_u32(negotiate, 8)? != 1 {
        return Err(AuthFailure::Malformed(
            "expected an NTLM NEGOTIATE message".into(),
        ));
    }
    let client_flags = read_u32(negotiate, 12)?;
    if client_flags & NEGOTIATE_UNICODE == 0 {
        return Err(AuthFailure::Malformed(
            "the client does not offer Unicode".into(),
        ));
    }
    let mut flags = NEGOTIATE_UNICODE
        | REQUEST_TARGET
        | NEGOTIATE_NTLM
        | ALWAYS_SIGN
        | TARGET_TYPE_DOMAIN
        | EXTENDED_SESSION_SECURITY
        | NEGOTIATE_TARGET_INFO
        | NEGOTIATE_VERSION;
    // Echo what the client asked for and we support.
    flags |=
        client_flags & (NEGOTIATE_SIGN | NEGOTIATE_SEAL | KEY_EXCH | NEGOTIATE_128 | NEGOTIATE_56);

    let target_name = utf16le(&names.netbios_domain);
    let mut target_info = Vec::new();
    push_av(
        &mut target_info,
        AV_NB_DOMAIN_NAME,
        &utf16le(&names.netbios_domain),
    );
    push_av(
        &mut target_info,
        AV_NB_COMPUTER_NAME,
        &utf16le(&names.netbios_computer),
    );
    push_av(
        &mut target_info,
        AV_DNS_DOMAIN_NAME,
        &utf16le(&names.dns_domain),
    );
    push_av(
        &mut target_info,
        AV_DNS_COMPUTER_NAME,
        &utf16le(&names.dns_computer),
    );
    push_av(&mut target_info, AV_TIMESTAMP, &now_filetime.to_le_bytes());
    push_av(&mut target_info, AV_EOL, &[]);

    const HEADER: usize = 56;
    let mut message = Vec::with_capacity(HEADER + target_name.len() + target_info.len());
    message.extend_from_slice(SIGNATURE);
    message.extend_from_slice(&2u32.to_le_bytes());
    push_fields(&mut message, target_name.len(), HEADER);
    message.extend_from_slice(&flags.to_le_bytes());
    message.extend_from_slice(&server_challenge);
    message.extend_from_slice(&[0; 8]);
    push_fields(&mut message, target_info.len(), HEADER + target_name.len());
    // Version: Windows 10.0 build 17763 (Server 2019), NTLM revision 15.
    message.extend_from_slice(&[10, 0, 0x63, 0x45, 0, 0, 0, 15]);
    message.extend_from_slice(&target_name);
    message.extend_from_slice(&target_info);

    let pending = PendingChallenge {
        negotiate: negotiate.to_vec(),
        challenge: message.clone(),
        server_challenge,
    };
    Ok((message, pending))
}

/// Verifies an AUTHENTICATE (type 3) message; returns the account's
/// display name (`DOMAIN\user`) on success.
pub(crate) fn verify(
    pending: &PendingChallenge,
    authenticate: &[u8],
    accounts: &[Account],
    requirements: &Requirements<'_>,
) -> Result<String, AuthFailure> {
    if authenticate.len() < MIC_OFFSET
        || &authenticate[..8] != SIGNATURE
        || read_u32(authenticate, 8)? != 3
    {
        return Err(AuthFailure::Malformed(
            "expected an NTLM AUTHENTICATE message".into(),
        ));
    }
    let nt_response = field(authenticate, 20)?;
    let domain = utf16_string(field(authenticate, 28)?)?;
    let user = utf16_string(field(authenticate, 36)?)?;
    let encrypted_session_key = field(authenticate, 52)?;
    let flags = read_u32(authenticate, 60)?;
    if nt_response.len() < 16 + 28 {
        // An NTLMv1 response (24 bytes) or an anonymous one: Exchange
        // requires NTLMv2.
        return Err(AuthFailure::Malformed(
            "not an NTLMv2 response (NTLMv1 or anonymous is refused)".into(),
        ));
    }
    let (nt_proof, blob) = nt_response.split_at(16);
    let av_pairs = parse_av_pairs(&blob[28..])?;

    let account = accounts
        .iter()
        .find(|account| account.matches(&user, &domain))
        .ok_or_else(|| AuthFailure::UnknownUser(display_name(&user, &domain)))?;

    let response_key = ntowf_v2(account.password(), &user, &domain);
    let expected_proof = hmac_md5(&response_key, &[&pending.server_challenge, blob]);
    if expected_proof.as_slice() != nt_proof {
        return Err(AuthFailure::WrongPassword(display_name(&user, &domain)));
    }

    // The MIC, the channel binding and the AV pairs are covered by the
    // NTProofStr just verified, so a client cannot strip them unnoticed.
    let session_base_key = hmac_md5(&response_key, &[nt_proof]);
    let exported_session_key = if flags & KEY_EXCH != 0 {
        if encrypted_session_key.len() != 16 {
            return Err(AuthFailure::Malformed(
                "key exchange without a 16-byte encrypted session key".into(),
            ));
        }
        let mut key = [0u8; 16];
        key.copy_from_slice(encrypted_session_key);
        let mut rc4 = Rc4::new_from_slice(&session_base_key).expect("16-byte RC4 key");
        rc4.apply_keystream(&mut key);
        key
    } else {
        session_base_key
    };

    let av_flags = av_pairs
        .iter()
        .find(|(id, _)| *id == AV_FLAGS)
        .and_then(|(_, value)| value.get(..4))
        .map(|v| u32::from_le_bytes([v[0], v[1], v[2], v[3]]))
        .unwrap_or(0);
    if av_flags & AV_FLAG_MIC_PRESENT != 0 {
        let mut zeroed = authenticate.to_vec();
        let mic = authenticate
            .get(MIC_OFFSET..MIC_OFFSET + 16)
            .ok_or_else(|| {
                AuthFailure::Malformed("MIC announced but the message is too short".into())
            })?;
        zeroed[MIC_OFFSET..MIC_OFFSET + 16].fill(0);
        let expected_mic = hmac_md5(
            &exported_session_key,
            &[&pending.negotiate, &pending.challenge, &zeroed],
        );
        if expected_mic.as_slice() != mic {
            return Err(AuthFailure::MicMismatch);
        }
    } else if requirements.require_mic {
        return Err(AuthFailure::MicMissing);
    }

    if let Some(expected) = requirements.channel_binding {
        let sent = av_pairs
            .iter()
            .find(|(id, _)| *id == AV_CHANNEL_BINDINGS)
            .map(|(_, v)| *v);
        match sent {
            None => return Err(AuthFailure::ChannelBindingMissing),
            Some(hash) if hash.iter().all(|b| *b == 0) => {
                return Err(AuthFailure::ChannelBindingMissing)
            }
            Some(hash) if hash != expected.as_slice() => {
                return Err(AuthFailure::ChannelBindingMismatch)
            }
            Some(_) => {}
        }
    }
    Ok(account.display_name())
}

/// MD5 of the gss_channel_bindings_struct with no addresses and
/// `application_data` (RFC 2744 / MS-NLMP 3.1.5.1.2 ClientChannelBindingsUnhashed).
pub fn channel_binding_hash(application_data: &[u8]) -> [u8; 16] {
    let mut md5 = Md5::new();
    md5.update([0u8; 16]); // initiator/acceptor address types and lengths
    md5.update((application_data.len() as u32).to_le_bytes());
    md5.update(application_data);
    md5.finalize().into()
}

/// NTOWFv2: HMAC-MD5(MD4(UTF-16LE(password)), UTF-16LE(UPPER(user) + domain)).
fn ntowf_v2(password: &str, user: &str, domain: &str) -> [u8; 16] {
    let nt_hash: [u8; 16] = Md4::digest(utf16le(password)).into();
    let identity = utf16le(&(user.to_uppercase() + domain));
    hmac_md5(&nt_hash, &[&identity])
}

fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    let mut mac = <Hmac<Md5> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn display_name(user: &str, domain: &str) -> String {
    if domain.is_empty() {
        user.to_owned()
    } else {
        format!("{domain}\\{user}")
    }
}

fn utf16le(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn utf16_string(bytes: &[u8]) -> Result<String, AuthFailure> {
    if bytes.len() % 2 != 0 {
        return Err(AuthFailure::Malformed("odd-length UTF-16 string".into()));
    }
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&units).map_err(|_| AuthFailure::Malformed("invalid UTF-16 string".into()))
}

fn push_av(out: &mut Vec<u8>, id: u16, value: &[u8]) {
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    out.extend_from_slice(value);
}

fn push_fields(out: &mut Vec<u8>, len: usize, offset: usize) {
    out.extend_from_slice(&(len as u16).to_le_bytes());
    out.extend_from_slice(&(len as u16).to_le_bytes());
    out.extend_from_slice(&(offset as u32).to_le_bytes());
}

fn read_u32(message: &[u8], at: usize) -> Result<u32, AuthFailure> {
    message
        .get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| AuthFailure::Malformed("message too short".into()))
}

/// The payload that the (len, maxlen, offset) field header at `at` points to.
fn field(message: &[u8], at: usize) -> Result<&[u8], AuthFailure> {
    let header = message
        .get(at..at + 8)
        .ok_or_else(|| AuthFailure::Malformed("message too short".into()))?;
    let len = usize::from(u16::from_le_bytes([header[0], header[1]]));
    let offset = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
    message
        .get(offset..offset + len)
        .ok_or_else(|| AuthFailure::Malformed("a field points outside the message".into()))
}

fn parse_av_pairs(mut data: &[u8]) -> Result<Vec<(u16, &[u8])>, AuthFailure> {
    let mut pairs = Vec::new();
    loop {
        let header = data
            .get(..4)
            .ok_or_else(|| AuthFailure::Malformed("AV pair list without MsvAvEOL".into()))?;
        let id = u16::from_le_bytes([header[0], header[1]]);
        let len = usize::from(u16::from_le_bytes([header[2], header[3]]));
        if id == AV_EOL {
            return Ok(pairs);
        }
        let value = data
            .get(4..4 + len)
            .ok_or_else(|| AuthFailure::Malformed("AV pair longer than the message".into()))?;
        pairs.push((id, value));
        data = &data[4 + len..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MS-NLMP 4.2.4.1.1 test vector: NTOWFv2 of User/Domain/Password.
    #[test]
    fn ntowf_v2_matches_the_specification() {
        let expected = [
            0x0c, 0x86, 0x8a, 0x40, 0x3b, 0xfd, 0x7a, 0x93, 0xa3, 0x00, 0x1e, 0xf2, 0x2e, 0xf0,
            0x2e, 0x3f,
        ];
        assert_eq!(ntowf_v2("Password", "User", "Domain"), expected);
    }
}
