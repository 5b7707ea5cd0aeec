//! Who the client authenticates as, and with which HTTP scheme.

use std::fmt;

/// The HTTP authentication scheme the client uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthScheme {
    /// Raw NTLMv2 tokens under `Authorization: NTLM` (Exchange's default).
    #[default]
    Ntlm,
    /// `Authorization: Negotiate`: Kerberos in SPNEGO first; NTLMv2 (raw
    /// NTLMSSP tokens, which the Windows Negotiate acceptor takes) only when
    /// Kerberos cannot start and
    /// [`KerberosSettings::allow_ntlm_fallback`](super::KerberosSettings) allows it.
    Negotiate,
    /// Kerberos only, in SPNEGO under `Authorization: Negotiate`.
    Kerberos,
    /// `Authorization: Basic`; only over TLS unless explicitly allowed.
    Basic,
}

impl AuthScheme {
    /// The scheme name as it appears in `Authorization`/`WWW-Authenticate`.
    pub fn header_name(self) -> &'static str {
        match self {
            AuthScheme::Ntlm => "NTLM",
            AuthScheme::Negotiate | AuthScheme::Kerberos => "Negotiate",
            AuthScheme::Basic => "Basic",
        }
    }
}

impl fmt::Display for AuthScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Kerberos travels under the Negotiate header name.
            AuthScheme::Kerberos => f.write_str("Kerberos"),
            other => f.write_str(other.header_name()),
        }
    }
}

/// A user name and password. `Debug` never shows the password.
#[derive(Clone)]
pub struct Credentials {
    username: String,
    password: crate::secret::Secret,
    scheme: AuthScheme,
}

/// Why a user name is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "user name {username:?} is not valid: {reason}; write it as `DOMAIN\\user` or `user@domain`"
)]
pub struct CredentialsError {
    pub username: String,
    pub reason: &'static str,
}

impl Credentials {
    /// `username` is `DOMAIN\user`, `user@domain` or a bare `user`.
    pub fn new(
        username: impl Into<String>,
        password: impl Into<crate::secret::Secret>,
        scheme: AuthScheme,
    ) -> Result<Self, CredentialsError> {
        let username = username.into();
        let error = |reason| CredentialsError {
            username: username.clone(),
            reason,
        };
        if username.trim().is_empty() {
            return Err(error("it is empty"));
        }
        if let Some((domain, user)) = username.split_once('\\') {
            if domain.is_empty() || user.is_empty() || user.contains('\\') {
                return Err(error(
                    "both DOMAIN and user must be non-empty around one backslash",
                ));
            }
        } else if let Some((user, domain)) = username.split_once('@') {
            if user.is_empty() || domain.is_empty() || domain.contains('@') {
                return Err(error(
                    "both user and domain must be non-empty around one `@`",
                ));
            }
        }
        Ok(Credentials {
            username,
            password: password.into(),
            scheme,
        })
    }

    pub fn username(&self) -> &str {
        &self.username
    }

    pub fn scheme(&self) -> AuthScheme {
        self.scheme
    }

    /// The password; only [`Secret::expose`](crate::secret::Secret::expose)
    /// shows it.
    pub fn password(&self) -> &crate::secret::Secret {
        &self.password
    }

    /// The account and domain as NTLM sends them: `DOMAIN\user` →
    /// (`user`, `DOMAIN`); `user@domain` is sent whole with an empty domain,
    /// which Windows accepts as a UPN.
    pub fn account_and_domain(&self) -> (&str, Option<&str>) {
        match self.username.split_once('\\') {
            Some((domain, user)) => (user, Some(domain)),
            None => (&self.username, None),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("scheme", &self.scheme)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password() {
        let creds = Credentials::new("CONTOSO\\svc", "Secr3t!", AuthScheme::Ntlm).unwrap();
        let debug = format!("{creds:?}");
        assert!(!debug.contains("Secr3t!"), "{debug}");
        assert!(debug.contains("CONTOSO\\\\svc"), "{debug}");
    }

    #[test]
    fn user_name_forms() {
        let down_level = Credentials::new("CONTOSO\\svc", "p", AuthScheme::Ntlm).unwrap();
        assert_eq!(down_level.account_and_domain(), ("svc", Some("CONTOSO")));
        let upn = Credentials::new("svc@contoso.com", "p", AuthScheme::Ntlm).unwrap();
        assert_eq!(upn.account_and_domain(), ("svc@contoso.com", None));
        let err = Credentials::new("CONTOSO\\", "p", AuthScheme::Ntlm).unwrap_err();
        assert!(err.to_string().contains("DOMAIN\\user"), "{err}");
        assert!(Credentials::new("@contoso.com", "p", AuthScheme::Ntlm).is_err());
        assert!(Credentials::new("", "p", AuthScheme::Ntlm).is_err());
    }
}
