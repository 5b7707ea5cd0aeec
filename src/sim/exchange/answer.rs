//! What an operation handler (`availability`, `items`, `notifications`) is
//! given and gives back to `service`, in a module of its own so that the
//! handlers need not import the service that calls them.

use bytes::Bytes;

use super::soap::Fault;

/// Who the request acts as, after impersonation.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The mailbox the request acts as (impersonated, or the account's own).
    pub acting_as: Option<String>,
    /// The authenticated account (`DOMAIN\user`, lower case), which owns the
    /// subscriptions it creates.
    pub account: String,
}

/// The affinity headers of a request ("Maintain affinity between a group of
/// subscriptions and the Mailbox server in Exchange").
#[derive(Debug, Clone, Default)]
pub(crate) struct AffinityHeaders {
    /// `X-AnchorMailbox`.
    pub anchor_mailbox: Option<String>,
    /// `X-PreferServerAffinity: true`.
    pub prefer_server_affinity: bool,
    /// The `X-BackEndOverrideCookie` value sent back in `Cookie:`.
    pub backend_cookie: Option<String>,
}

/// What an operation produced.
pub(crate) enum Answer {
    /// HTTP 200 with this body element (inside the envelope).
    Ok(String),
    /// HTTP 200 with this body element, whose one response message is the
    /// error `code` (recorded as the request's outcome).
    Refused(String, &'static str),
    Fault(Fault),
    /// A whole response of the operation's own making (headers, a stream).
    Http(http::Response<Bytes>),
}
