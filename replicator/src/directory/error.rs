//! What can go wrong talking to Active Directory, worded for the
//! administrator who has to fix it.

use ews_toolkit::tls::TlsSetupError;

/// A directory operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("directory settings: {0}")]
    Settings(String),

    #[error("directory TLS setup: {0}")]
    TlsSetup(#[from] TlsSetupError),

    #[error("cannot reach the directory server {address}: {source}; check the host name, the port (389 for ldap://, 636 for ldaps://) and that no firewall blocks it")]
    Unreachable {
        address: String,
        source: std::io::Error,
    },

    #[error("the directory server {address} did not answer within {seconds} s ({during}); check that it is an LDAP server and reachable")]
    Timeout {
        address: String,
        during: &'static str,
        seconds: u64,
    },

    /// The TLS handshake failed; `message` says why and how to fix it.
    #[error("{message}")]
    Tls { address: String, message: String },

    #[error("the directory server {address} refused StartTLS ({reason}); use ldaps:// or enable TLS on the domain controller (it needs a server certificate)")]
    StartTlsRefused { address: String, reason: String },

    /// The bind was refused; `reason` explains AD's error data code.
    #[error("bind as {user} failed: {reason}")]
    Bind {
        user: String,
        /// AD's error data code (`52e`, `775`, ...) when the server sent one.
        ad_code: Option<String>,
        reason: String,
    },

    #[error("the account {user} lacks the rights for {operation}: {text}; grant it read access to the user objects (membership in Domain Users normally suffices)")]
    InsufficientRights {
        user: String,
        operation: String,
        text: String,
    },

    #[error("the search base {base} does not exist in the directory; check `base_dn` (or leave it empty to use the domain's default naming context)")]
    NoSuchBase { base: String },

    /// None of the users read had `proxyAddresses` or `mail`: the account
    /// most likely may not read these attributes.
    #[error("none of the {users} users found under {base} has a readable proxyAddresses or mail attribute; the account {user} most likely lacks read permission for these attributes (check the ACLs / a deny on Personal-Information or Public-Information), or none of these users has a mailbox")]
    MailAttributesUnreadable {
        user: String,
        base: String,
        users: usize,
    },

    #[error("the entry {dn} has no usable objectGUID; it cannot be matched to a UCServer user")]
    InvalidEntry { dn: String },

    #[error("LDAP {operation} failed: {text} (result code {code} {code_name})")]
    Ldap {
        operation: String,
        code: u32,
        code_name: &'static str,
        text: String,
    },

    /// The static user list (`[directory] kind = "static"`) is unusable;
    /// `location` is the file, with the line when known.
    #[error("user list {location}: {message}")]
    StaticList { location: String, message: String },

    /// A search found more entries than `directory.max_entries` allows.
    #[error("the {operation} under {base} returned more than {limit} entries and was stopped; narrow `directory.user_filter` or `directory.include_group`, or raise `directory.max_entries` if the directory really holds that many")]
    TooManyEntries {
        operation: String,
        base: String,
        limit: usize,
    },

    /// The server sent more than `directory.max_response_mb` on one
    /// connection; it was closed instead of buffering the rest.
    #[error("the directory server {address} sent more than {limit_mb} MB on one connection ({operation}) and the connection was closed; check that {address} is your domain controller, or raise `directory.max_response_mb` if the directory really is that large")]
    ResponseTooLarge {
        address: String,
        operation: String,
        limit_mb: u64,
    },

    #[error("LDAP connection to {address} failed during {operation}: {detail}")]
    Connection {
        address: String,
        operation: String,
        detail: String,
    },
}

/// Extracts AD's error data code from a bind diagnostic such as
/// `80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 52e, v1db1`.
pub fn ad_data_code(diagnostic: &str) -> Option<String> {
    let start = diagnostic.find("data ")? + "data ".len();
    let code: String = diagnostic[start..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    (!code.is_empty()).then(|| code.to_ascii_lowercase())
}

/// What an AD bind error data code means and what to do about it.
pub fn explain_ad_data_code(code: &str) -> Option<&'static str> {
    Some(match code {
        "525" => "the user does not exist (AD data code 525); check the bind user name (UPN like svc@corp.example.com or DOMAIN\\user)",
        "52e" => "wrong user name or password (AD data code 52e); check the bind password",
        "530" => "the account may not log on at this time (AD data code 530); check its logon hours",
        "531" => "the account may not log on from this computer (AD data code 531); check its workstation restrictions",
        "532" => "the password has expired (AD data code 532); set a new password for the account",
        "533" => "the account is disabled (AD data code 533); enable it in Active Directory",
        "568" => "the account has too many security identifiers (AD data code 568)",
        "701" => "the account has expired (AD data code 701); extend its expiry date",
        "773" => "the password must be changed before the first logon (AD data code 773); set a new password and clear 'User must change password at next logon'",
        "775" => "the account is locked out (AD data code 775), usually after repeated wrong passwords; unlock it and check the configured password",
        _ => return None,
    })
}

/// The RFC 4511 name of an LDAP result code.
pub fn result_code_name(code: u32) -> &'static str {
    match code {
        0 => "success",
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        7 => "authMethodNotSupported",
        8 => "strongerAuthRequired",
        10 => "referral",
        11 => "adminLimitExceeded",
        12 => "unavailableCriticalExtension",
        13 => "confidentialityRequired",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        80 => "other",
        _ => "unknown",
    }
}

/// Turns a refused bind into an explanation.
pub(crate) fn bind_failure(user: &str, code: u32, diagnostic: &str) -> DirectoryError {
    let ad_code = ad_data_code(diagnostic);
    let explained = ad_code.as_deref().and_then(explain_ad_data_code);
    let reason = match (code, explained) {
        (_, Some(explanation)) => explanation.to_owned(),
        (49, None) => format!("invalid credentials: {diagnostic}"),
        (8 | 13, None) => format!(
            "the server requires an encrypted connection for simple binds ({diagnostic}); use ldaps:// or StartTLS, or allow simple binds on port 389 on the domain controller"
        ),
        (53, None) => format!("the server is unwilling to accept the bind ({diagnostic}); an empty password is refused, and the account may be restricted"),
        _ => format!("{diagnostic} (result code {code} {})", result_code_name(code)),
    };
    DirectoryError::Bind {
        user: user.to_owned(),
        ad_code,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_data_code_in_ad_diagnostics() {
        let text = "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 775, v1db1";
        assert_eq!(ad_data_code(text).as_deref(), Some("775"));
        assert_eq!(ad_data_code("no code here"), None);
    }

    #[test]
    fn bind_failures_explain_the_code_and_name_the_user() {
        let err = bind_failure(
            "svc@corp.example.com",
            49,
            "80090308: LdapErr: DSID-0C09042A, comment: AcceptSecurityContext error, data 532, v3839",
        );
        let text = err.to_string();
        assert!(text.contains("svc@corp.example.com"), "{text}");
        assert!(text.contains("password has expired"), "{text}");
        for code in [
            "525", "52e", "530", "531", "532", "533", "701", "773", "775",
        ] {
            assert!(explain_ad_data_code(code).unwrap().contains(code));
        }
    }
}
