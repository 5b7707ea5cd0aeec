//! The client side of HTTP Negotiate with Kerberos (RFC 4559): sspi's
//! `Negotiate` restricted to Kerberos (`"kerberos,!ntlm"`, so it never slips
//! into NTLM on its own) writes a SPNEGO NegTokenInit carrying the AP-REQ, as
//! Windows does; the server's final answer carries the AP-REP, which proves
//! the server holds the service key (mutual authentication).

use sspi::{
    AuthIdentity, BufferType, ClientRequestFlags, CredentialUse, CredentialsBuffers,
    DataRepresentation, KerberosConfig, Negotiate, NegotiateConfig, SecurityBuffer, SecurityStatus,
    Sspi, SspiImpl, Username,
};

use super::kdc::TcpKdcClient;
use super::KerberosFailure;
use crate::transport::Credentials;

/// The client principal as the KDC is asked for it, and its realm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientPrincipal {
    pub(crate) username: Username,
    pub(crate) realm: String,
}

/// `user@domain`: realm = the domain upper-cased, unless one is configured
/// (then the UPN is sent whole as an enterprise name in that realm, which AD
/// resolves for alternative UPN suffixes). `DOMAIN\user`: a NetBIOS name is
/// no realm, so one must be configured.
pub(crate) fn client_principal(
    credentials: &Credentials,
    configured_realm: Option<&str>,
) -> Result<ClientPrincipal, KerberosFailure> {
    let name = credentials.username();
    let invalid = |e: &dyn std::fmt::Display| KerberosFailure::Other {
        reason: format!("user name {name:?}: {e}"),
    };
    let configured_realm = configured_realm
        .map(str::trim)
        .filter(|realm| !realm.is_empty())
        .map(str::to_uppercase);
    match (credentials.account_and_domain(), configured_realm) {
        ((user, Some(_netbios)), Some(realm)) => Ok(ClientPrincipal {
            username: Username::new_down_level_logon_name(user, &realm).map_err(|e| invalid(&e))?,
            realm,
        }),
        ((_, Some(_netbios)), None) => Err(KerberosFailure::NoRealm {
            username: name.to_owned(),
        }),
        ((upn, None), Some(realm)) if upn.contains('@') => Ok(ClientPrincipal {
            username: Username::new_down_level_logon_name(upn, &realm).map_err(|e| invalid(&e))?,
            realm,
        }),
        ((upn, None), None) => match upn.rsplit_once('@') {
            Some((_, domain)) => Ok(ClientPrincipal {
                username: Username::parse(upn).map_err(|e| invalid(&e))?,
                realm: domain.to_uppercase(),
            }),
            None => Err(KerberosFailure::NoRealm {
                username: name.to_owned(),
            }),
        },
        ((user, None), Some(realm)) => Ok(ClientPrincipal {
            username: Username::new_down_level_logon_name(user, &realm).map_err(|e| invalid(&e))?,
            realm,
        }),
    }
}

/// One Kerberos handshake: a fresh context per connection, like NTLM's
/// (the server authenticates the connection, not each request).
pub(crate) struct KerberosHandshake {
    negotiate: Negotiate,
    credentials_handle: Option<CredentialsBuffers>,
    spn: String,
}

impl KerberosHandshake {
    /// Asks the KDCs for a ticket-granting ticket and the service ticket
    /// for `spn`, and returns the handshake with the first token to send.
    /// Blocking (KDC round trips): call it on a blocking thread.
    pub(crate) fn start(
        credentials: &Credentials,
        principal: &ClientPrincipal,
        spn: &str,
        kdc: &TcpKdcClient,
    ) -> Result<(KerberosHandshake, Vec<u8>), KerberosFailure> {
        let workstation = workstation_name();
        // sspi knows one KDC URL; the client sends to our list whatever it says.
        let kerberos =
            KerberosConfig::new_with_kdc_url("tcp://kdc.invalid:88", workstation.clone());
        let config = NegotiateConfig::new(
            Box::new(kerberos),
            Some("kerberos,!ntlm".to_owned()),
            workstation,
        );
        let mut negotiate = Negotiate::new_client(config).map_err(|e| KerberosFailure::Other {
            reason: format!("starting Kerberos: {}", e.description),
        })?;
        let identity = AuthIdentity {
            username: principal.username.clone(),
            password: credentials.password().expose().to_string().into(),
        };
        let acquired = negotiate
            .acquire_credentials_handle()
            .with_credential_use(CredentialUse::Outbound)
            .with_auth_data(&identity.into())
            .execute(&mut negotiate)
            .map_err(|e| KerberosFailure::Other {
                reason: format!("Kerberos credentials: {}", e.description),
            })?;
        let mut handshake = KerberosHandshake {
            negotiate,
            credentials_handle: acquired.credentials_handle,
            spn: spn.to_owned(),
        };
        let token = handshake
            .step(&[], kdc)
            .map_err(|e| kdc_failure(e, spn, principal, kdc))?;
        Ok((handshake, token))
    }

    /// Verifies the server's token from its final answer: the AP-REP
    /// (mutual authentication) in a SPNEGO NegTokenResp.
    pub(crate) fn finish(&mut self, server_token: &[u8]) -> Result<(), KerberosFailure> {
        // No KDC exchange happens after the first step; a client that
        // refuses keeps it that way.
        let offline = TcpKdcClient::new(Vec::new(), std::time::Duration::from_secs(1));
        let status = self.step_status(server_token, &offline).map_err(|e| {
            KerberosFailure::BadServerToken {
                reason: e.description,
            }
        })?;
        match status {
            (SecurityStatus::Ok, _) => Ok(()),
            (other, _) => Err(KerberosFailure::BadServerToken {
                reason: format!(
                    "the handshake is not complete after the server's token ({other:?})"
                ),
            }),
        }
    }

    fn step(&mut self, input: &[u8], kdc: &TcpKdcClient) -> Result<Vec<u8>, sspi::Error> {
        self.step_status(input, kdc).map(|(_, token)| token)
    }

    fn step_status(
        &mut self,
        input: &[u8],
        kdc: &TcpKdcClient,
    ) -> Result<(SecurityStatus, Vec<u8>), sspi::Error> {
        let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
        // sspi's Kerberos client wants an input buffer list on the first
        // call too (it is where channel bindings would go).
        let mut input = vec![SecurityBuffer::new(input.to_vec(), BufferType::Token)];
        let mut builder = self
            .negotiate
            .initialize_security_context()
            .with_credentials_handle(&mut self.credentials_handle)
            .with_context_requirements(ClientRequestFlags::MUTUAL_AUTH)
            .with_target_data_representation(DataRepresentation::Native)
            .with_target_name(&self.spn)
            .with_input(&mut input)
            .with_output(&mut output);
        let result = self
            .negotiate
            .initialize_security_context_impl(&mut builder)?
            .resolve_with_client(kdc)?;
        Ok((result.status, std::mem::take(&mut output[0].buffer)))
    }
}

/// The failure of the first step (the KDC exchanges), by sspi's
/// description of the KDC's error code (RFC 4120 7.5.9; sspi's `utils.rs`
/// maps each code to a fixed text). `tests/kerberos.rs` pins each mapping
/// against the real KDC.
fn kdc_failure(
    error: sspi::Error,
    spn: &str,
    principal: &ClientPrincipal,
    kdc: &TcpKdcClient,
) -> KerberosFailure {
    let text = error.description.as_str();
    let has = |needle: &str| text.contains(needle);
    match error.error_type {
        sspi::ErrorKind::NoAuthenticatingAuthority => KerberosFailure::KdcUnreachable {
            kdcs: kdc.kdcs(),
            reason: kdc.last_error().unwrap_or_else(|| text.to_owned()),
        },
        sspi::ErrorKind::TimeSkew => KerberosFailure::ClockSkew,
        _ if has("pre-authentication information was invalid") => KerberosFailure::WrongPassword,
        _ if has("credentials have been revoked") => KerberosFailure::CredentialsRevoked,
        _ if has("client not found in Kerberos database") => KerberosFailure::UnknownClient {
            username: principal.username.inner().to_owned(),
        },
        _ if has("server not found in Kerberos database") => KerberosFailure::UnknownSpn {
            spn: spn.to_owned(),
        },
        _ if has("no support for encryption type") => KerberosFailure::NoCommonEncryption,
        _ => KerberosFailure::Other {
            reason: format!("Kerberos: {text}"),
        },
    }
}

/// The name sspi sends as the client's workstation.
fn workstation_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "ews-toolkit".to_owned())
}

/// The Kerberos error code in a server's 401 token, if it carries a
/// KRB-ERROR (RFC 4121 4.1: token id 03 00), raw or inside a SPNEGO
/// NegTokenResp: MIT's acceptor answers a skewed authenticator so.
pub(crate) fn krb_error_code(token: &[u8]) -> Option<u32> {
    use picky_krb::messages::KrbError;
    // Scan for the KRB-ERROR application tag (30: 0x7e) after the token id;
    // both framings put the DER KRB-ERROR last.
    let start = token
        .windows(3)
        .position(|w| w == [0x03, 0x00, 0x7e])
        .map(|at| at + 2)?;
    let error: KrbError = picky_asn1_der::from_bytes(&token[start..]).ok()?;
    Some(error.0.error_code.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::AuthScheme;

    fn principal(name: &str, realm: Option<&str>) -> Result<(String, String), KerberosFailure> {
        let credentials = Credentials::new(name, "p", AuthScheme::Kerberos).unwrap();
        client_principal(&credentials, realm).map(|p| (p.username.inner().to_owned(), p.realm))
    }

    #[test]
    fn a_upn_names_its_realm() {
        let (_, realm) = principal("svc@corp.example.com", None).unwrap();
        assert_eq!(realm, "CORP.EXAMPLE.COM");
    }

    #[test]
    fn a_configured_realm_wins_over_the_upn_suffix() {
        let (name, realm) = principal("svc@contoso.com", Some("corp.contoso.local")).unwrap();
        assert_eq!(realm, "CORP.CONTOSO.LOCAL");
        assert!(name.contains("svc@contoso.com"), "{name}");
    }

    #[test]
    fn a_down_level_name_needs_a_configured_realm() {
        let failure = principal("CORP\\svc", None).unwrap_err();
        assert_eq!(
            failure,
            KerberosFailure::NoRealm {
                username: "CORP\\svc".to_owned()
            }
        );
        assert!(
            failure.fix().contains("exchange.kerberos_realm"),
            "{}",
            failure.fix()
        );
        let (_, realm) = principal("CORP\\svc", Some("corp.example.com")).unwrap();
        assert_eq!(realm, "CORP.EXAMPLE.COM");
    }

    /// MS-KILE 3.2.5.8 makes `KERB_AP_OPTIONS_CBT` a 32-bit little-endian
    /// value; sspi 0.23 sends picky-krb's 2-byte constant, which MIT refuses,
    /// so channel binding is not sent with Kerberos (see `kerberos.rs`).
    /// When this fails, the encoding was fixed: send the binding.
    #[test]
    fn sspi_still_encodes_the_cbt_ap_option_in_two_bytes() {
        assert_eq!(
            picky_krb::constants::types::KERB_AP_OPTIONS_CBT.len(),
            2,
            "picky-krb now encodes KERB_AP_OPTIONS_CBT as MS-KILE's 4 bytes: pass the tls-server-end-point binding to sspi for Kerberos too"
        );
    }
}
