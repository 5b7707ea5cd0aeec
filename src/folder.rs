//! `GetFolder` on a mailbox's calendar: the cheapest probe of whether the
//! account may open that calendar at all (diagnostics, `check`).

use super::calendar_view::calendar_folder;
use super::client::{EwsClient, EwsError};
use super::envelope::{
    read_response, write_request, EnvelopeError, RequestHeaders, Response, ServerVersion,
};
use super::operation::{GetFolder, Operation};
use super::response_message::{only_message, status_of, OperationError};
use super::types;

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarFolder {
    pub id: Option<String>,
    pub display_name: Option<String>,
    pub total_count: Option<i32>,
    pub server_version: Option<ServerVersion>,
}

/// Opens the calendar folder of `mailbox` (the client's own, or its
/// impersonated one, without one); through [`EwsClient::execute`], so paced
/// and retried as every operation. A refusal is an [`EwsError::Response`]
/// naming the response code.
pub async fn probe(client: &EwsClient, mailbox: Option<&str>) -> Result<CalendarFolder, EwsError> {
    let response = client.execute::<GetFolder>(&request_body(mailbox)).await?;
    from_response(response).map_err(|e| client.operation_error(e))
}

/// The request envelope for the calendar folder of `mailbox` (the caller's
/// own without one).
pub fn request(headers: &RequestHeaders, mailbox: Option<&str>) -> Result<Vec<u8>, EnvelopeError> {
    write_request::<GetFolder>(headers, &request_body(mailbox))
}

fn request_body(mailbox: Option<&str>) -> types::GetFolderType {
    types::GetFolderType {
        folder_shape: types::FolderResponseShapeType {
            base_shape: types::DefaultShapeNamesType::String("Default".into()),
        },
        folder_ids: calendar_folder(mailbox),
    }
}

/// Parses the response: the folder, or the reason it could not be opened
/// (`ErrorAccessDenied`, `ErrorNonExistentMailbox`, ...).
pub fn parse_response(xml: &[u8]) -> Result<CalendarFolder, OperationError> {
    from_response(read_response::<GetFolder>(xml)?)
}

fn from_response(
    response: Response<<GetFolder as Operation>::Response>,
) -> Result<CalendarFolder, OperationError> {
    let message = only_message(
        "GetFolder",
        response.body.response_messages.content,
        |m| match m {
            types::ArrayOfResponseMessagesTypeContent::GetFolderResponseMessage(m) => Some(m),
            #[allow(unreachable_patterns)]
            _ => None,
        },
    )?;
    status_of!(message).check()?;
    let content = message.content;
    let folder = content
        .and_then(|c| c.folders)
        .and_then(|f| f.content.into_iter().next())
        .map(|types::ArrayOfFoldersTypeContent::CalendarFolder(f)| f);
    Ok(CalendarFolder {
        id: folder
            .as_ref()
            .and_then(|f| f.folder_id.as_ref().map(|i| i.id.clone())),
        display_name: folder.as_ref().and_then(|f| f.display_name.clone()),
        total_count: folder.as_ref().and_then(|f| f.total_count),
        server_version: response.server_version,
    })
}
