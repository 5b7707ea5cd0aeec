//! What an operation handler (`availability`, `items`) is given and gives
//! back to `service`, in a module of its own so that the handlers need not
//! import the service that calls them.

use super::soap::Fault;

/// Who the request acts as, after impersonation.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The mailbox the request acts as (impersonated, or the account's own).
    pub acting_as: Option<String>,
}

/// What an operation produced.
pub(crate) enum Answer {
    /// HTTP 200 with this body element (inside the envelope).
    Ok(String),
    Fault(Fault),
}
