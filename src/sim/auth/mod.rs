//! Server-side HTTP authentication for the simulators, strict like IIS in
//! front of Exchange: anonymous requests get 401 with `WWW-Authenticate:
//! Negotiate` and `WWW-Authenticate: NTLM`; NTLMv2 is verified for real and
//! authenticates the connection; Basic is checked per request.
//!
//! Framework-light: a server keeps one [`ConnectionAuth`] per connection and
//! asks [`Authenticator::authenticate`] with each request's `Authorization`
//! header; the answer says to serve the request or which 401 to send.

mod ntlm;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use base64::Engine as _;
use http::HeaderValue;

pub use ntlm::{channel_binding_hash, ServerNames};

/// An account the server accepts. `Debug` hides the password.
#[derive(Clone)]
pub struct Account {
    /// NetBIOS domain, e.g. `CONTOSO`.
    pub domain: String,
    /// sAMAccountName, e.g. `svc-calendar`.
    pub user: String,
    password: String,
}

impl Account {
    pub fn new(
        domain: impl Into<String>,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        Account {
            domain: domain.into(),
            user: user.into(),
            password: password.into(),
        }
    }

    pub(crate) fn password(&self) -> &str {
        &self.password
    }

    /// `DOMAIN\user`.
    pub fn display_name(&self) -> String {
        format!("{}\\{}", self.domain, self.user)
    }

    /// Whether the name a client sent (NTLM user and domain fields, or a
    /// Basic user name split at `\`) means this account: `user` with this
    /// domain or none, or `user@<domain>[.suffix]` as a UPN.
    fn matches(&self, user: &str, domain: &str) -> bool {
        if let Some((name, upn_domain)) = user.split_once('@') {
            let upn_domain = upn_domain.to_ascii_lowercase();
            let netbios = self.domain.to_ascii_lowercase();
            return domain.is_empty()
                && name.eq_ignore_ascii_case(&self.user)
                && (upn_domain == netbios || upn_domain.starts_with(&format!("{netbios}.")));
        }
        user.eq_ignore_ascii_case(&self.user)
            && (domain.is_empty() || domain.eq_ignore_ascii_case(&self.domain))
    }
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("domain", &self.domain)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// What the server accepts.
#[derive(Debug, Clone)]
pub struct AuthPolicy {
    pub accounts: Vec<Account>,
    /// Offer and accept NTLM (also as raw NTLM tokens under `Negotiate`).
    pub ntlm: bool,
    /// Offer and accept Basic.
    pub basic: bool,
    /// Extended Protection: NTLM over TLS must carry the channel binding of
    /// this server's certificate.
    pub extended_protection: bool,
    /// Refuse an NTLM AUTHENTICATE without a MIC.
    pub require_mic: bool,
    /// DER of the server's leaf certificate (TLS servers; for channel binding).
    pub server_certificate: Option<Vec<u8>>,
    pub names: ServerNames,
}

impl AuthPolicy {
    /// NTLM and Basic for `accounts`, Extended Protection off, MIC required.
    pub fn new(accounts: Vec<Account>) -> Self {
        AuthPolicy {
            accounts,
            ntlm: true,
            basic: true,
            extended_protection: false,
            require_mic: true,
            server_certificate: None,
            names: ServerNames {
                netbios_domain: "CONTOSO".into(),
                netbios_computer: "EXCH01".into(),
                dns_domain: "contoso.test".into(),
                dns_computer: "exch01.contoso.test".into(),
            },
        }
    }
}

/// Why a client was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("no credentials")]
    Anonymous,
    #[error("unknown user {0}")]
    UnknownUser(String),
    #[error("wrong password for {0}")]
    WrongPassword(String),
    #[error("the NTLM message integrity check (MIC) does not match")]
    MicMismatch,
    #[error("the NTLM AUTHENTICATE message has no MIC")]
    MicMissing,
    #[error("Extended Protection: the client sent no channel binding")]
    ChannelBindingMissing,
    #[error("Extended Protection: the channel binding is not this connection's")]
    ChannelBindingMismatch,
    #[error("scheme {0} is not accepted")]
    SchemeNotAccepted(String),
    #[error("an AUTHENTICATE message without a preceding challenge on this connection")]
    OutOfSequence,
    #[error("malformed authentication: {0}")]
    Malformed(String),
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// Serve it as `user` (`DOMAIN\user`).
    Allowed { user: String },
    /// Answer 401 with these `WWW-Authenticate` headers (one per value): a
    /// challenge, or the list of offered schemes after a refusal.
    Unauthorized {
        www_authenticate: Vec<HeaderValue>,
        /// `None` while a handshake is in progress (NTLM challenge).
        failure: Option<AuthFailure>,
    },
}

/// Per-connection state: NTLM authenticates the connection.
#[derive(Debug)]
pub struct ConnectionAuth {
    tls: bool,
    state: ConnectionState,
    /// The authenticator's epoch when this connection authenticated.
    epoch: u64,
}

#[derive(Debug)]
enum ConnectionState {
    Anonymous,
    Challenged {
        scheme: &'static str,
        pending: ntlm::PendingChallenge,
    },
    Authenticated {
        user: String,
    },
}

/// Counters a test can read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthCounters {
    /// NTLM CHALLENGE messages sent.
    pub ntlm_challenges: u64,
    /// NTLM handshakes that authenticated a connection.
    pub ntlm_authenticated: u64,
    /// Requests authenticated with Basic.
    pub basic_authenticated: u64,
    /// Refused credentials (anonymous requests not counted).
    pub failures: u64,
    /// Requests answered 401 because they carried no credentials.
    pub anonymous: u64,
    pub last_failure: Option<AuthFailure>,
}

/// The server's authenticator, shared by all its connections.
#[derive(Debug)]
pub struct Authenticator {
    policy: AuthPolicy,
    channel_binding: Option<[u8; 16]>,
    ntlm_challenges: AtomicU64,
    ntlm_authenticated: AtomicU64,
    basic_authenticated: AtomicU64,
    failures: AtomicU64,
    anonymous: AtomicU64,
    last_failure: Mutex<Option<AuthFailure>>,
    /// Bumped by [`Authenticator::forget_connections`].
    epoch: AtomicU64,
}

impl Authenticator {
    pub fn new(policy: AuthPolicy) -> Self {
        let channel_binding = policy
            .server_certificate
            .as_deref()
            .map(|der| channel_binding_hash(&crate::transport::tls_server_end_point(der)));
        Authenticator {
            policy,
            channel_binding,
            ntlm_challenges: AtomicU64::new(0),
            ntlm_authenticated: AtomicU64::new(0),
            basic_authenticated: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            anonymous: AtomicU64::new(0),
            last_failure: Mutex::new(None),
            epoch: AtomicU64::new(0),
        }
    }

    pub fn policy(&self) -> &AuthPolicy {
        &self.policy
    }

    /// State for a new connection; `tls` says whether it runs over TLS
    /// (channel binding is only required there).
    pub fn new_connection(&self, tls: bool) -> ConnectionAuth {
        ConnectionAuth {
            tls,
            state: ConnectionState::Anonymous,
            epoch: self.epoch.load(Ordering::Relaxed),
        }
    }

    /// Makes every connection authenticated so far unauthenticated, as
    /// when the server recycles its worker: clients must re-authenticate
    /// after the 401 they then get.
    pub fn forget_connections(&self) {
        self.epoch.fetch_add(1, Ordering::Relaxed);
    }

    pub fn counters(&self) -> AuthCounters {
        AuthCounters {
            ntlm_challenges: self.ntlm_challenges.load(Ordering::Relaxed),
            ntlm_authenticated: self.ntlm_authenticated.load(Ordering::Relaxed),
            basic_authenticated: self.basic_authenticated.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            anonymous: self.anonymous.load(Ordering::Relaxed),
            last_failure: self.last_failure.lock().expect("lock").clone(),
        }
    }

    /// The `WWW-Authenticate` headers of a plain 401, as Exchange sends them.
    pub fn offered(&self) -> Vec<HeaderValue> {
        let mut offered = Vec::new();
        if self.policy.ntlm {
            offered.push(HeaderValue::from_static("Negotiate"));
            offered.push(HeaderValue::from_static("NTLM"));
        }
        if self.policy.basic {
            let realm = format!("Basic realm=\"{}\"", self.policy.names.dns_computer);
            offered
                .push(HeaderValue::from_str(&realm).unwrap_or(HeaderValue::from_static("Basic")));
        }
        offered
    }

    /// Decides on one request given its `Authorization` header.
    pub fn authenticate(
        &self,
        connection: &mut ConnectionAuth,
        authorization: Option<&HeaderValue>,
    ) -> AuthOutcome {
        if connection.epoch != self.epoch.load(Ordering::Relaxed) {
            connection.state = ConnectionState::Anonymous;
            connection.epoch = self.epoch.load(Ordering::Relaxed);
        }
        let Some(authorization) = authorization else {
            if let ConnectionState::Authenticated { user } = &connection.state {
                return AuthOutcome::Allowed { user: user.clone() };
            }
            self.anonymous.fetch_add(1, Ordering::Relaxed);
            return self.unauthorized(None);
        };
        let Some((scheme, token)) = authorization
            .to_str()
            .ok()
            .and_then(|v| v.trim().split_once(' '))
        else {
            return self.refuse(
                connection,
                AuthFailure::Malformed("Authorization header without a token".into()),
            );
        };
        let token = token.trim();
        if scheme.eq_ignore_ascii_case("Basic") {
            return self.basic(token);
        }
        let scheme = if scheme.eq_ignore_ascii_case("NTLM") {
            "NTLM"
        } else if scheme.eq_ignore_ascii_case("Negotiate") {
            "Negotiate"
        } else {
            return self.refuse(
                connection,
                AuthFailure::SchemeNotAccepted(scheme.to_owned()),
            );
        };
        if !self.policy.ntlm {
            return self.refuse(
                connection,
                AuthFailure::SchemeNotAccepted(scheme.to_owned()),
            );
        }
        let Ok(message) = base64::engine::general_purpose::STANDARD.decode(token) else {
            return self.refuse(
                connection,
                AuthFailure::Malformed(format!("{scheme} token is not base64")),
            );
        };
        if !message.starts_with(b"NTLMSSP\0") {
            // SPNEGO-wrapped (Kerberos or NTLM) tokens: not simulated.
            return self.refuse(
                connection,
                AuthFailure::SchemeNotAccepted(format!("{scheme} with a non-NTLM (SPNEGO) token")),
            );
        }
        match message.get(8) {
            Some(1) => self.ntlm_challenge(connection, scheme, &message),
            Some(3) => self.ntlm_verify(connection, scheme, &message),
            _ => self.refuse(
                connection,
                AuthFailure::Malformed("unexpected NTLM message type".into()),
            ),
        }
    }

    fn ntlm_challenge(
        &self,
        connection: &mut ConnectionAuth,
        scheme: &'static str,
        message: &[u8],
    ) -> AuthOutcome {
        let mut server_challenge = [0u8; 8];
        if rustls::crypto::ring::default_provider()
            .secure_random
            .fill(&mut server_challenge)
            .is_err()
        {
            return self.refuse(
                connection,
                AuthFailure::Malformed("no randomness for the challenge".into()),
            );
        }
        match ntlm::challenge(
            message,
            &self.policy.names,
            server_challenge,
            now_filetime(),
        ) {
            Ok((challenge, pending)) => {
                self.ntlm_challenges.fetch_add(1, Ordering::Relaxed);
                connection.state = ConnectionState::Challenged { scheme, pending };
                let header = format!(
                    "{scheme} {}",
                    base64::engine::general_purpose::STANDARD.encode(challenge)
                );
                AuthOutcome::Unauthorized {
                    www_authenticate: vec![
                        HeaderValue::from_str(&header).expect("base64 is a valid header")
                    ],
                    failure: None,
                }
            }
            Err(failure) => self.refuse(connection, failure),
        }
    }

    fn ntlm_verify(
        &self,
        connection: &mut ConnectionAuth,
        scheme: &'static str,
        message: &[u8],
    ) -> AuthOutcome {
        let state = std::mem::replace(&mut connection.state, ConnectionState::Anonymous);
        let ConnectionState::Challenged {
            scheme: challenged_as,
            pending,
        } = state
        else {
            return self.refuse(connection, AuthFailure::OutOfSequence);
        };
        if challenged_as != scheme {
            return self.refuse(connection, AuthFailure::OutOfSequence);
        }
        let channel_binding = if self.policy.extended_protection && connection.tls {
            match self.channel_binding.as_ref() {
                Some(binding) => Some(binding),
                None => {
                    return self.refuse(
                        connection,
                        AuthFailure::Malformed(
                            "Extended Protection needs the server certificate in the policy".into(),
                        ),
                    )
                }
            }
        } else {
            None
        };
        let requirements = ntlm::Requirements {
            channel_binding,
            require_mic: self.policy.require_mic,
        };
        match ntlm::verify(&pending, message, &self.policy.accounts, &requirements) {
            Ok(user) => {
                self.ntlm_authenticated.fetch_add(1, Ordering::Relaxed);
                connection.state = ConnectionState::Authenticated { user: user.clone() };
                AuthOutcome::Allowed { user }
            }
            Err(failure) => self.refuse(connection, failure),
        }
    }

    fn basic(&self, token: &str) -> AuthOutcome {
        if !self.policy.basic {
            return self.failed(AuthFailure::SchemeNotAccepted("Basic".into()));
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(token)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        let Some((name, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
            return self.failed(AuthFailure::Malformed(
                "Basic token is not base64 of user:password".into(),
            ));
        };
        let (domain, user) = name.split_once('\\').unwrap_or(("", name));
        let Some(account) = self
            .policy
            .accounts
            .iter()
            .find(|a| a.matches(user, domain))
        else {
            return self.failed(AuthFailure::UnknownUser(name.to_owned()));
        };
        if account.password() != password {
            return self.failed(AuthFailure::WrongPassword(name.to_owned()));
        }
        self.basic_authenticated.fetch_add(1, Ordering::Relaxed);
        AuthOutcome::Allowed {
            user: account.display_name(),
        }
    }

    /// A refused attempt: the connection is no longer authenticated.
    fn refuse(&self, connection: &mut ConnectionAuth, failure: AuthFailure) -> AuthOutcome {
        connection.state = ConnectionState::Anonymous;
        self.failed(failure)
    }

    fn failed(&self, failure: AuthFailure) -> AuthOutcome {
        self.failures.fetch_add(1, Ordering::Relaxed);
        *self.last_failure.lock().expect("lock") = Some(failure.clone());
        self.unauthorized(Some(failure))
    }

    fn unauthorized(&self, failure: Option<AuthFailure>) -> AuthOutcome {
        AuthOutcome::Unauthorized {
            www_authenticate: self.offered(),
            failure,
        }
    }
}

/// Now as a Windows FILETIME (100 ns ticks since 1601-01-01).
fn now_filetime() -> u64 {
    const EPOCH_DIFFERENCE_SECS: u64 = 11_644_473_600;
    let since_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (since_unix.as_secs() + EPOCH_DIFFERENCE_SECS) * 10_000_000
        + u64::from(since_unix.subsec_nanos() / 100)
}
