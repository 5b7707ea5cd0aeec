//! What can go wrong between sending a request and having its whole response.

use std::time::Duration;

use super::AuthScheme;

/// A failed HTTP exchange. Messages name the host and, where there is one,
/// the fix; they never contain credentials.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The URL or the configuration does not allow the request.
    #[error("{0}")]
    Config(String),
    /// TCP connection could not be opened.
    #[error("cannot connect to {host}:{port}: {reason}")]
    Connect {
        host: String,
        port: u16,
        reason: String,
    },
    /// TLS handshake failed; `message` says what and how to fix it.
    #[error("{message}")]
    Tls { host: String, message: String },
    /// Connecting or the exchange took longer than allowed.
    #[error("{what} with {host} timed out after {after:?}; raise the {setting} if the server is just slow")]
    Timeout {
        host: String,
        what: &'static str,
        setting: &'static str,
        after: Duration,
    },
    /// The server refused the credentials (a final 401).
    #[error("{host} refused authentication with {tried} (HTTP 401); the server offers: {}; {hint}", offered_list(.offered))]
    Auth {
        host: String,
        /// The schemes of the server's `WWW-Authenticate` headers.
        offered: Vec<String>,
        /// The scheme the client used.
        tried: AuthScheme,
        hint: String,
    },
    /// Kerberos authentication failed; `failure` names why and the fix.
    #[error("Kerberos authentication to {host} failed: {failure}; {}", .failure.fix())]
    Kerberos {
        host: String,
        failure: super::KerberosFailure,
    },
    /// The response body is larger than the configured limit.
    #[error("the response from {host} is larger than the limit of {limit} bytes; raise the response size limit if this is expected")]
    BodyTooLarge { host: String, limit: usize },
    /// The server answered with an unexpected status
    /// (from [`HttpResponse::error_for_status`](super::HttpResponse::error_for_status)).
    #[error("{host} answered HTTP {status}")]
    Http {
        host: String,
        status: http::StatusCode,
        body_excerpt: String,
    },
    /// The connection closed or was reset before the response was complete.
    #[error(
        "the connection to {host} was closed or reset before the response was complete: {reason}"
    )]
    ConnectionReset { host: String, reason: String },
    /// The server sent something that is not valid HTTP/1.1.
    #[error("invalid HTTP from {host}: {reason}")]
    Protocol { host: String, reason: String },
}

fn offered_list(offered: &[String]) -> String {
    if offered.is_empty() {
        "no scheme (no WWW-Authenticate header)".to_string()
    } else {
        offered.join(", ")
    }
}

impl TransportError {
    /// Whether sending the same request again may succeed: timeouts, resets,
    /// and 503 / 502 / 504 answers.
    pub fn is_retryable(&self) -> bool {
        match self {
            TransportError::Timeout { .. } | TransportError::ConnectionReset { .. } => true,
            TransportError::Http { status, .. } => matches!(status.as_u16(), 502..=504),
            TransportError::Connect { .. } => true,
            TransportError::Config(_)
            | TransportError::Tls { .. }
            | TransportError::Auth { .. }
            | TransportError::Kerberos { .. }
            | TransportError::BodyTooLarge { .. }
            | TransportError::Protocol { .. } => false,
        }
    }
}
