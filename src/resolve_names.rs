//! `ResolveNames`: which mailbox(es) a name or address stands for.

use super::client::{EwsClient, EwsError};
use super::envelope::{read_response, write_request, EnvelopeError, RequestHeaders, Response};
use super::operation::{Operation, ResolveNames};
use super::response_message::{only_message, status_of, wire, OperationError, ResponseStatus};
use super::types;

/// One candidate mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedMailbox {
    pub name: Option<String>,
    pub email_address: Option<String>,
    pub routing_type: Option<String>,
    /// `Mailbox`, `PublicDL`, `Contact`, ...
    pub mailbox_type: Option<String>,
}

/// The answer: candidates, and the status (a `Warning` with
/// `ErrorNameResolutionMultipleResults` when there are several).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub status: ResponseStatus,
    pub mailboxes: Vec<ResolvedMailbox>,
}

/// Resolves `entry` against the directory (not contacts); through
/// [`EwsClient::execute`], so paced and retried as every operation.
pub async fn resolve(client: &EwsClient, entry: &str) -> Result<Resolution, EwsError> {
    let response = client.execute::<ResolveNames>(&request_body(entry)).await?;
    from_response(response).map_err(|e| client.operation_error(e))
}

/// The request envelope: resolve `entry` against the directory (not contacts).
pub fn request(headers: &RequestHeaders, entry: &str) -> Result<Vec<u8>, EnvelopeError> {
    write_request::<ResolveNames>(headers, &request_body(entry))
}

fn request_body(entry: &str) -> types::ResolveNamesType {
    types::ResolveNamesType {
        return_full_contact_data: false,
        search_scope: types::ResolveNamesSearchScopeType::String("ActiveDirectory".into()),
        unresolved_entry: entry.to_owned(),
    }
}

/// Parses the response; no match is `ErrorNameResolutionNoResults`.
pub fn parse_response(xml: &[u8]) -> Result<Resolution, OperationError> {
    from_response(read_response::<ResolveNames>(xml)?)
}

fn from_response(
    response: Response<<ResolveNames as Operation>::Response>,
) -> Result<Resolution, OperationError> {
    let message = only_message(
        "ResolveNames",
        response.body.response_messages.content,
        |m| match m {
            types::ArrayOfResponseMessagesTypeContent::ResolveNamesResponseMessage(m) => Some(m),
            #[allow(unreachable_patterns)]
            _ => None,
        },
    )?;
    let status = status_of!(message).check()?;
    let content = message.content;
    let mailboxes = content
        .and_then(|c| c.resolution_set)
        .map(|set| set.resolution)
        .unwrap_or_default()
        .into_iter()
        .map(|r| ResolvedMailbox {
            name: r.mailbox.name,
            email_address: r.mailbox.email_address,
            routing_type: r.mailbox.routing_type,
            mailbox_type: r.mailbox.mailbox_type.as_ref().map(wire),
        })
        .collect();
    Ok(Resolution { status, mailboxes })
}
