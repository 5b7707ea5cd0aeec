//! Errors of the UCServer client. [`UcError::is_retryable`] tells the caller
//! whether trying the same request again later can succeed.

use std::time::Duration;

use super::rose::RejectProblem;

#[derive(Debug, thiserror::Error)]
pub enum UcError {
    #[error("invalid UCServer settings: {0}")]
    InvalidSettings(String),

    #[error(transparent)]
    TlsSetup(#[from] ews_toolkit::tls::TlsSetupError),

    #[error("cannot connect to the UCServer at {address}: {reason}")]
    Connect { address: String, reason: String },

    #[error("TLS handshake with the UCServer failed: {0}")]
    TlsHandshake(String),

    #[error("the UCServer refused the login of {user} (iErrorDetail {detail}: {message}); check the user name and password of the UCServer administrator account")]
    LogonFailed {
        user: String,
        detail: i64,
        message: String,
    },

    #[error("the UCServer web service does not serve UCSID {ucsid:?} ({message}); set ucserver.ucsid to the UCSID of your UCServer (\"local\", the default, for a direct connection; empty sends no X-ucsid)")]
    UnknownUcsid { ucsid: String, message: String },

    #[error("the UCServer did not create a session: HTTP {status}: {message}")]
    SessionRefused { status: u16, message: String },

    #[error("{user} is not a UCServer administrator (asnAdminLogin failed{detail}); the replicator needs an account with administrative rights in the UCServer administration")]
    NotAdministrator { user: String, detail: String },

    #[error("the WebSocket to the UCServer failed: {0}")]
    WebSocket(String),

    #[error("the connection to the UCServer's native port failed: {0}")]
    Native(String),

    #[error("the connection to the UCServer was lost before {operation} was answered; it is re-established automatically, try again")]
    ConnectionLost { operation: &'static str },

    #[error("{operation} got no answer from the UCServer within {after:?}")]
    Timeout {
        operation: &'static str,
        after: Duration,
    },

    #[error("the UCServer answered {operation} with error {detail}: {message}")]
    Request {
        operation: &'static str,
        detail: i64,
        message: String,
    },

    #[error("the UCServer rejected {operation}: {problem}{details}")]
    Rejected {
        operation: &'static str,
        problem: String,
        details: String,
    },

    #[error("the UCServer could not save the appointments of {owner} (iResult {result})")]
    WriteFailed { owner: String, result: i64 },

    #[error("unexpected answer from the UCServer to {operation}: {reason}")]
    Protocol {
        operation: &'static str,
        reason: String,
    },

    #[error("invalid appointment: {0}")]
    InvalidAppointment(String),

    #[error("the UCServer is unavailable: reconnecting failed: {reason}")]
    Unavailable { reason: String, retryable: bool },

    #[error("the UCServer client has been shut down")]
    Closed,
}

impl UcError {
    /// Whether the same request may succeed when tried again later (the
    /// connection is re-established in the background).
    pub fn is_retryable(&self) -> bool {
        match self {
            UcError::Connect { .. }
            | UcError::WebSocket(_)
            | UcError::Native(_)
            | UcError::ConnectionLost { .. }
            | UcError::Timeout { .. } => true,
            UcError::SessionRefused { status, .. } => *status >= 500,
            UcError::Unavailable { retryable, .. } => *retryable,
            // eNETLOGININTERNALSERVERERROR and eNETLOGINTOOMANYATTEMPTS pass.
            UcError::LogonFailed { detail, .. } => matches!(detail, 100 | 131),
            _ => false,
        }
    }

    pub(crate) fn rejected(
        operation: &'static str,
        problem: Option<RejectProblem>,
        details: Option<String>,
    ) -> Self {
        UcError::Rejected {
            operation,
            problem: problem.map_or_else(|| "no reason given".to_owned(), |p| p.to_string()),
            details: details
                .map(|d| format!(": {}", ews_toolkit::server_text::sanitize(&d)))
                .unwrap_or_default(),
        }
    }
}
