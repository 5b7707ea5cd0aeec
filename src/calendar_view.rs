//! `FindItem` with a `CalendarView`: the calendar items of a mailbox in a
//! window, recurrences expanded by the server.

use chrono::{DateTime, FixedOffset, Utc};

use super::availability::{format_date_time, parse_date_time, BusyType};
use super::client::{EwsClient, EwsError};
use super::envelope::{
    read_response, write_request, EnvelopeError, RequestHeaders, Response, ServerVersion,
};
use super::operation::{FindItem, Operation};
use super::response_message::{only_message, status_of, wire, OperationError};
use super::types;

/// A calendar item as a presence needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarItem {
    pub id: String,
    pub change_key: Option<String>,
    pub subject: Option<String>,
    pub location: Option<String>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub is_all_day: bool,
    pub busy_type: BusyType,
    /// `Sensitivity` (`Normal`, `Personal`, `Private`, `Confidential`).
    pub sensitivity: Option<String>,
    pub is_meeting: bool,
    pub is_recurring: bool,
    pub is_cancelled: bool,
}

impl CalendarItem {
    /// Private or confidential: its details must not leave the mailbox.
    pub fn is_private(&self) -> bool {
        matches!(
            self.sensitivity.as_deref(),
            Some("Private" | "Confidential")
        )
    }
}

/// The items of one calendar view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarView {
    pub items: Vec<CalendarItem>,
    /// False when the server returned fewer items than the window holds.
    pub includes_last_item: bool,
    pub server_version: Option<ServerVersion>,
}

/// The calendar of `mailbox` (the client's own, or its impersonated one,
/// without one) between `start` and `end`, at most `max_entries` items;
/// through [`EwsClient::execute`], so paced and retried as every operation.
pub async fn find(
    client: &EwsClient,
    mailbox: Option<&str>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    max_entries: Option<i32>,
) -> Result<CalendarView, EwsError> {
    let response = client
        .execute::<FindItem>(&request_body(mailbox, start, end, max_entries))
        .await?;
    // CalendarView times carry their offset; a naive one is read as UTC.
    from_response(response, FixedOffset::east_opt(0).expect("zero offset"))
        .map_err(|e| client.operation_error(e))
}

/// The request envelope: the calendar of `mailbox` (the caller's own
/// without one) between `start` and `end`.
pub fn request(
    headers: &RequestHeaders,
    mailbox: Option<&str>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    max_entries: Option<i32>,
) -> Result<Vec<u8>, EnvelopeError> {
    write_request::<FindItem>(headers, &request_body(mailbox, start, end, max_entries))
}

fn request_body(
    mailbox: Option<&str>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    max_entries: Option<i32>,
) -> types::FindItemType {
    types::FindItemType {
        traversal: types::ItemQueryTraversalType::String("Shallow".into()),
        item_shape: types::ItemResponseShapeType {
            base_shape: types::DefaultShapeNamesType::String("AllProperties".into()),
        },
        find_item_type_choice_1: Some(types::FindItemFindItemTypeChoice1::CalendarView(
            types::CalendarViewType {
                max_entries_returned: max_entries,
                start_date: format_date_time(start),
                end_date: format_date_time(end),
            },
        )),
        parent_folder_ids: calendar_folder(mailbox),
    }
}

/// The `calendar` distinguished folder of `mailbox`.
pub(crate) fn calendar_folder(mailbox: Option<&str>) -> types::NonEmptyArrayOfBaseFolderIdsType {
    types::NonEmptyArrayOfBaseFolderIdsType {
        content: vec![
            types::NonEmptyArrayOfBaseFolderIdsTypeContent::DistinguishedFolderId(
                types::DistinguishedFolderIdType {
                    id: types::DistinguishedFolderIdNameType::String("calendar".into()),
                    change_key: None,
                    mailbox: mailbox.map(|address| types::EmailAddressType {
                        name: None,
                        email_address: Some(address.to_owned()),
                        routing_type: None,
                        mailbox_type: None,
                    }),
                },
            ),
        ],
    }
}

/// Parses the response. CalendarView times carry an offset (UTC with `Z`);
/// a naive one is read in `naive_offset`.
pub fn parse_response(
    xml: &[u8],
    naive_offset: FixedOffset,
) -> Result<CalendarView, OperationError> {
    from_response(read_response::<FindItem>(xml)?, naive_offset)
}

fn from_response(
    response: Response<<FindItem as Operation>::Response>,
    naive_offset: FixedOffset,
) -> Result<CalendarView, OperationError> {
    let message = only_message(
        "FindItem",
        response.body.response_messages.content,
        |m| match m {
            types::ArrayOfResponseMessagesTypeContent::FindItemResponseMessage(m) => Some(m),
            #[allow(unreachable_patterns)]
            _ => None,
        },
    )?;
    status_of!(message).check()?;
    let content = message.content;
    let Some(root) = content.and_then(|c| c.root_folder) else {
        return Ok(CalendarView {
            items: Vec::new(),
            includes_last_item: true,
            server_version: response.server_version,
        });
    };
    let time = |value: &Option<String>| {
        let value = value.as_deref().unwrap_or_default();
        parse_date_time(value, naive_offset).ok_or_else(|| OperationError::InvalidTime {
            operation: "FindItem",
            value: value.to_owned(),
        })
    };
    let types::FindItemParentTypeContent::Items(items) = root.content;
    let mut out = Vec::new();
    for choice in items.array_of_real_items_type_choice_1 {
        let types::ArrayOfRealItemsArrayOfRealItemsTypeChoice1::CalendarItem(item) = choice;
        out.push(CalendarItem {
            id: item
                .item_id
                .as_ref()
                .map(|i| i.id.clone())
                .unwrap_or_default(),
            change_key: item.item_id.and_then(|i| i.change_key),
            subject: item.subject,
            location: item.location,
            start: time(&item.start)?,
            end: time(&item.end)?,
            is_all_day: item.is_all_day_event.unwrap_or(false),
            busy_type: item
                .legacy_free_busy_status
                .as_ref()
                .map(|b| BusyType::parse(&wire(b)))
                .unwrap_or(BusyType::Busy),
            sensitivity: item.sensitivity.as_ref().map(wire),
            is_meeting: item.is_meeting.unwrap_or(false),
            is_recurring: item.is_recurring.unwrap_or(false),
            is_cancelled: item.is_cancelled.unwrap_or(false),
        });
    }
    Ok(CalendarView {
        items: out,
        includes_last_item: root.includes_last_item_in_range.unwrap_or(true),
        server_version: response.server_version,
    })
}
