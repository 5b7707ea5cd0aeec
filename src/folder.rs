//! `GetFolder` on a mailbox's calendar: the cheapest probe of whether the
//! account may open that calendar at all (diagnostics, `check`).

use super::calendar_view::calendar_folder;
use super::envelope::{read_response, write_request, EnvelopeError, RequestHeaders, ServerVersion};
use super::operation::GetFolder;
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

/// The request for the calendar folder of `mailbox` (the caller's own
/// without one).
pub fn request(headers: &RequestHeaders, mailbox: Option<&str>) -> Result<Vec<u8>, EnvelopeError> {
    let body = types::GetFolderType {
        folder_shape: types::FolderResponseShapeType {
            base_shape: types::DefaultShapeNamesType::String("Default".into()),
        },
        folder_ids: calendar_folder(mailbox),
    };
    write_request::<GetFolder>(headers, &body)
}

/// Parses the response: the folder, or the reason it could not be opened
/// (`ErrorAccessDenied`, `ErrorNonExistentMailbox`, ...).
pub fn parse_response(xml: &[u8]) -> Result<CalendarFolder, OperationError> {
    let response = read_response::<GetFolder>(xml)?;
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
