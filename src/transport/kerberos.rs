//! Kerberos for HTTP `Negotiate` (RFC 4559): settings, what can fail and
//! how to fix it. The handshake itself is in [`handshake`](self::handshake)
//! and the KDC exchanges in [`kdc`](self::kdc).
//!
//! Channel binding is not sent with Kerberos: sspi 0.23 writes the
//! `KERB_AP_OPTIONS_CBT` flag as 2 bytes where MS-KILE 3.2.5.8 specifies a
//! 32-bit little-endian value, and MIT's acceptor refuses that. Exchange
//! accepts Kerberos without binding unless Extended Protection is
//! *Required* on the EWS front end (it is "Accept" there by default).
//! `tests/kerberos.rs` pins sspi's encoding so an upgrade that fixes it shows.

pub(crate) mod handshake;
pub(crate) mod http;
pub(crate) mod kdc;

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// Where the KDC is, which service ticket to ask for, and whether
/// `Negotiate` may fall back to NTLM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KerberosSettings {
    /// KDCs as `host` or `host:port` (port 88 when absent), asked in order.
    /// Empty: DNS SRV `_kerberos._tcp.<REALM>`, then [`fallback_kdc`](Self::fallback_kdc).
    pub kdcs: Vec<String>,
    /// Asked when `kdcs` is empty and DNS has no SRV record for the realm
    /// (the replicator passes its directory's domain controller).
    pub fallback_kdc: Option<String>,
    /// The realm; `None`: the user name's UPN suffix, upper-cased.
    pub realm: Option<String>,
    /// The service principal name, used exactly as given (no DNS
    /// canonicalisation); `None`: `HTTP/<host of the request URL>`.
    pub spn: Option<String>,
    /// With [`AuthScheme::Negotiate`](super::AuthScheme): use NTLM when
    /// Kerberos cannot start (no realm, no KDC, unknown SPN, the server does
    /// not offer Negotiate). Never after the server refused a ticket.
    pub allow_ntlm_fallback: bool,
    /// Limit for one KDC exchange (connect, send, answer).
    pub kdc_timeout: Duration,
    /// SRV lookups go to this DNS server instead of the system's resolver
    /// (split DNS, tests).
    pub dns_server: Option<SocketAddr>,
}

impl Default for KerberosSettings {
    fn default() -> Self {
        KerberosSettings {
            kdcs: Vec::new(),
            fallback_kdc: None,
            realm: None,
            spn: None,
            allow_ntlm_fallback: true,
            kdc_timeout: Duration::from_secs(10),
            dns_server: None,
        }
    }
}

/// The mechanism that authenticated a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMechanism {
    Kerberos,
    Ntlm,
    Basic,
}

impl fmt::Display for AuthMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthMechanism::Kerberos => "Kerberos",
            AuthMechanism::Ntlm => "NTLM",
            AuthMechanism::Basic => "Basic",
        })
    }
}

/// Why Kerberos authentication failed, precise enough to name the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KerberosFailure {
    /// No realm to ask for: a `DOMAIN\user` name and no realm set.
    NoRealm {
        username: String,
    },
    /// No KDC answered (or none was found).
    KdcUnreachable {
        kdcs: Vec<String>,
        reason: String,
    },
    /// `KDC_ERR_PREAUTH_FAILED`.
    WrongPassword,
    /// `KDC_ERR_CLIENT_REVOKED`: the account is disabled, locked out or expired.
    CredentialsRevoked,
    /// `KDC_ERR_C_PRINCIPAL_UNKNOWN`.
    UnknownClient {
        username: String,
    },
    /// `KDC_ERR_S_PRINCIPAL_UNKNOWN`: no account has this SPN.
    UnknownSpn {
        spn: String,
    },
    /// `KDC_ERR_ETYPE_NOSUPP`: no encryption type in common (AES only here).
    NoCommonEncryption,
    /// `KRB_AP_ERR_SKEW`, from the KDC or the server.
    ClockSkew,
    /// The server's 401 offers no `Negotiate` (e.g. only `NTLM` or `Basic`).
    NotOffered {
        offered: Vec<String>,
    },
    /// The server answered the ticket with 401.
    ServerRefused {
        spn: String,
    },
    /// The server answered 200 without its mutual-authentication token.
    NoMutualAuthentication,
    /// The server's token does not verify (replayed, forged, or for another session).
    BadServerToken {
        reason: String,
    },
    Other {
        reason: String,
    },
}

impl KerberosFailure {
    /// What the administrator should do about it.
    pub fn fix(&self) -> String {
        match self {
            KerberosFailure::NoRealm { .. } => {
                "write the user name as user@domain (its domain is the realm) or set the Kerberos realm (exchange.kerberos_realm)".to_owned()
            }
            KerberosFailure::KdcUnreachable { .. } => {
                "check that a domain controller is reachable on TCP port 88, or name one in exchange.kerberos_kdc".to_owned()
            }
            KerberosFailure::WrongPassword => "check the password of the account".to_owned(),
            KerberosFailure::CredentialsRevoked => {
                "the account is disabled, locked out or expired: enable or unlock it in Active Directory".to_owned()
            }
            KerberosFailure::UnknownClient { .. } => {
                "check the user name and the realm: the domain knows no such account".to_owned()
            }
            KerberosFailure::UnknownSpn { spn } => format!(
                "register the SPN on the account Exchange runs as (`setspn -S {spn} ACCOUNT`; `setspn -L ACCOUNT` lists them; for a load-balanced name, on the alternate service account), or set exchange.kerberos_spn to an SPN that is registered"
            ),
            KerberosFailure::NoCommonEncryption => {
                "enable AES for the account (msDS-SupportedEncryptionTypes, \"This account supports Kerberos AES 256 bit encryption\"): this client does not use RC4".to_owned()
            }
            KerberosFailure::ClockSkew => {
                "the clocks differ by more than the allowed skew (5 minutes by default): synchronise this machine and the Exchange server with the domain (NTP)".to_owned()
            }
            KerberosFailure::NotOffered { .. } => {
                "enable Windows authentication with the Negotiate provider on the EWS virtual directory, or choose a scheme the server offers (exchange.auth)".to_owned()
            }
            KerberosFailure::ServerRefused { spn } => format!(
                "the server could not decrypt the ticket for {spn}: the SPN may be registered on an account other than the one the server runs as (`setspn -Q {spn}`), or its key changed; or Extended Protection is Required on EWS, which Kerberos without channel binding does not meet"
            ),
            KerberosFailure::NoMutualAuthentication => {
                "the server did not prove its identity (no Negotiate token with the answer): check that nothing between us and Exchange strips WWW-Authenticate".to_owned()
            }
            KerberosFailure::BadServerToken { .. } => {
                "the server's proof of identity does not verify: something between us and Exchange answers in its place".to_owned()
            }
            KerberosFailure::Other { .. } => {
                "see the reason; `check` runs the handshake step by step".to_owned()
            }
        }
    }

    /// Whether `Negotiate` may fall back to NTLM after this failure: only
    /// when Kerberos could not start, never after the server saw a ticket
    /// or the KDC judged the credentials.
    pub fn allows_ntlm_fallback(&self) -> bool {
        matches!(
            self,
            KerberosFailure::NoRealm { .. }
                | KerberosFailure::KdcUnreachable { .. }
                | KerberosFailure::UnknownSpn { .. }
                | KerberosFailure::NoCommonEncryption
                | KerberosFailure::NotOffered { .. }
        )
    }
}

impl fmt::Display for KerberosFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KerberosFailure::NoRealm { username } => {
                write!(f, "no realm for the user name {username:?}")
            }
            KerberosFailure::KdcUnreachable { kdcs, reason } if kdcs.is_empty() => {
                write!(f, "no KDC found ({reason})")
            }
            KerberosFailure::KdcUnreachable { kdcs, reason } => {
                write!(f, "no KDC answered (asked {}: {reason})", kdcs.join(", "))
            }
            KerberosFailure::WrongPassword => {
                f.write_str("the KDC refused the password (pre-authentication failed)")
            }
            KerberosFailure::CredentialsRevoked => {
                f.write_str("the KDC says the account's credentials are revoked")
            }
            KerberosFailure::UnknownClient { username } => {
                write!(f, "the KDC does not know the user {username:?}")
            }
            KerberosFailure::UnknownSpn { spn } => {
                write!(f, "the KDC knows no service principal {spn} (server not found in Kerberos database)")
            }
            KerberosFailure::NoCommonEncryption => {
                f.write_str("the KDC offers no encryption type this client supports (AES)")
            }
            KerberosFailure::ClockSkew => f.write_str("clock skew too great"),
            KerberosFailure::NotOffered { offered } if offered.is_empty() => {
                f.write_str("the server offers no authentication scheme")
            }
            KerberosFailure::NotOffered { offered } => {
                write!(
                    f,
                    "the server does not offer Negotiate (it offers {})",
                    offered.join(", ")
                )
            }
            KerberosFailure::ServerRefused { spn } => {
                write!(
                    f,
                    "the server refused the service ticket for {spn} (HTTP 401)"
                )
            }
            KerberosFailure::NoMutualAuthentication => {
                f.write_str("the server answered without a mutual-authentication token")
            }
            KerberosFailure::BadServerToken { reason } => {
                write!(
                    f,
                    "the server's mutual-authentication token is not valid: {reason}"
                )
            }
            KerberosFailure::Other { reason } => f.write_str(reason),
        }
    }
}
