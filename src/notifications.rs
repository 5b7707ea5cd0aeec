//! Streaming notifications (`Subscribe`, `GetStreamingEvents`,
//! `Unsubscribe`): for the push mode, where calendar changes arrive as events
//! instead of being polled.

use chrono::{DateTime, FixedOffset, Utc};

use super::availability::parse_date_time;
use super::calendar_view::calendar_folder;
use super::client::{EwsClient, EwsError};
use super::envelope::{read_response, write_request, EnvelopeError, RequestHeaders, Response};
use super::operation::{GetStreamingEvents, Operation, Subscribe, Unsubscribe};
use super::response_message::{only_message, status_of, wire, OperationError};
use super::types;

/// Subscribes to the calendar of `mailbox` (the client's own, or its
/// impersonated one, without one) for created, modified and deleted items;
/// the subscription id. Through [`EwsClient::execute`], so paced and retried
/// as every operation (a retry after a lost answer may leave an unused
/// subscription behind, which Exchange drops when it is not read).
pub async fn subscribe(client: &EwsClient, mailbox: Option<&str>) -> Result<String, EwsError> {
    let response = client
        .execute::<Subscribe>(&subscribe_body(mailbox))
        .await?;
    subscribe_from_response(response).map_err(|e| client.operation_error(e))
}

/// The events of `subscriptions`: Exchange holds the request open for
/// `timeout_minutes` (1 to 30) and answers when it ends, so the transport's
/// request timeout must be longer. Through [`EwsClient::execute`] (it takes
/// no concurrency slot: see `EwsClient`'s sending).
pub async fn get_events(
    client: &EwsClient,
    subscriptions: &[String],
    timeout_minutes: i32,
) -> Result<StreamingEvents, EwsError> {
    let response = client
        .execute::<GetStreamingEvents>(&get_events_body(subscriptions, timeout_minutes))
        .await?;
    events_from_response(response).map_err(|e| client.operation_error(e))
}

/// Ends `subscription`; through [`EwsClient::execute`].
pub async fn unsubscribe(client: &EwsClient, subscription: &str) -> Result<(), EwsError> {
    let response = client
        .execute::<Unsubscribe>(&unsubscribe_body(subscription))
        .await?;
    unsubscribe_from_response(response).map_err(|e| client.operation_error(e))
}

/// The request envelope: a streaming subscription to the calendar of
/// `mailbox` for created, modified and deleted items.
pub fn subscribe_request(
    headers: &RequestHeaders,
    mailbox: Option<&str>,
) -> Result<Vec<u8>, EnvelopeError> {
    write_request::<Subscribe>(headers, &subscribe_body(mailbox))
}

fn subscribe_body(mailbox: Option<&str>) -> types::SubscribeType {
    let event = |name: &str| {
        types::NonEmptyArrayOfNotificationEventTypesTypeContent::EventType(
            types::NotificationEventTypeType::String(name.into()),
        )
    };
    types::SubscribeType::StreamingSubscriptionRequest(types::StreamingSubscriptionRequestType {
        subscribe_to_all_folders: None,
        folder_ids: Some(calendar_folder(mailbox)),
        event_types: types::NonEmptyArrayOfNotificationEventTypesType {
            content: vec![
                event("CreatedEvent"),
                event("ModifiedEvent"),
                event("DeletedEvent"),
            ],
        },
    })
}

/// The subscription id from a `Subscribe` response.
pub fn parse_subscribe_response(xml: &[u8]) -> Result<String, OperationError> {
    subscribe_from_response(read_response::<Subscribe>(xml)?)
}

fn subscribe_from_response(
    response: Response<<Subscribe as Operation>::Response>,
) -> Result<String, OperationError> {
    let message = only_message(
        "Subscribe",
        response.body.response_messages.content,
        |m| match m {
            types::ArrayOfResponseMessagesTypeContent::SubscribeResponseMessage(m) => Some(m),
            #[allow(unreachable_patterns)]
            _ => None,
        },
    )?;
    status_of!(message).check()?;
    let content = message.content;
    content
        .and_then(|c| c.subscription_id)
        .ok_or(OperationError::MessageCount {
            operation: "Subscribe",
            expected: 1,
            found: 0,
        })
}

/// The request envelope: events of `subscriptions`, the connection held
/// open for `timeout_minutes` (1 to 30).
pub fn get_events_request(
    headers: &RequestHeaders,
    subscriptions: &[String],
    timeout_minutes: i32,
) -> Result<Vec<u8>, EnvelopeError> {
    write_request::<GetStreamingEvents>(headers, &get_events_body(subscriptions, timeout_minutes))
}

fn get_events_body(
    subscriptions: &[String],
    timeout_minutes: i32,
) -> types::GetStreamingEventsType {
    types::GetStreamingEventsType {
        subscription_ids: types::NonEmptyArrayOfSubscriptionIdsType {
            subscription_id: subscriptions.to_vec(),
        },
        connection_timeout: timeout_minutes.clamp(1, 30),
    }
}

/// What happened to an item or folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Created,
    Modified,
    Deleted,
    NewMail,
    FreeBusyChanged,
}

/// One change event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeEvent {
    pub kind: ChangeKind,
    pub time_stamp: DateTime<Utc>,
    /// The item's id, or `None` for a folder event.
    pub item_id: Option<String>,
    pub folder_id: Option<String>,
    pub parent_folder_id: String,
}

/// One notification of a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub subscription_id: String,
    pub events: Vec<ChangeEvent>,
}

/// A `GetStreamingEvents` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamingEvents {
    pub notifications: Vec<Notification>,
    /// `Closed` when the server ended the connection (subscribe again or
    /// reconnect); `OK` otherwise.
    pub connection_status: Option<String>,
}

/// Parses one `GetStreamingEvents` response message (Exchange sends several
/// envelopes over the held-open connection; each is parsed on its own).
pub fn parse_events_response(xml: &[u8]) -> Result<StreamingEvents, OperationError> {
    events_from_response(read_response::<GetStreamingEvents>(xml)?)
}

fn events_from_response(
    response: Response<<GetStreamingEvents as Operation>::Response>,
) -> Result<StreamingEvents, OperationError> {
    let utc = FixedOffset::east_opt(0).expect("zero offset");
    let mut notifications = Vec::new();
    let mut connection_status = None;
    for message in response.body.response_messages.content {
        let types::ArrayOfResponseMessagesTypeContent::GetStreamingEventsResponseMessage(message) =
            message
        else {
            continue;
        };
        status_of!(message).check()?;
        let content = message.content;
        let Some(content) = content else { continue };
        if let Some(status) = &content.connection_status {
            connection_status = Some(wire(status));
        }
        for notification in content
            .notifications
            .map(|n| n.notification)
            .unwrap_or_default()
        {
            let mut events = Vec::new();
            for choice in notification.notification_type_choice_1 {
                use types::NotificationNotificationTypeChoice1 as C;
                let (kind, event) = match choice {
                    C::CreatedEvent(e) => (ChangeKind::Created, e),
                    C::DeletedEvent(e) => (ChangeKind::Deleted, e),
                    C::NewMailEvent(e) => (ChangeKind::NewMail, e),
                    C::FreeBusyChangedEvent(e) => (ChangeKind::FreeBusyChanged, e),
                    C::ModifiedEvent(e) => (
                        ChangeKind::Modified,
                        types::BaseObjectChangedEventType {
                            watermark: e.watermark,
                            time_stamp: e.time_stamp,
                            base_object_changed_event_type_choice_1: e
                                .base_object_changed_event_type_choice_1,
                            parent_folder_id: e.parent_folder_id,
                        },
                    ),
                    C::StatusEvent(_) => continue,
                    #[allow(unreachable_patterns)]
                    _ => continue,
                };
                let time_stamp = parse_date_time(&event.time_stamp, utc).ok_or_else(|| {
                    OperationError::InvalidTime {
                        operation: "GetStreamingEvents",
                        value: event.time_stamp.clone(),
                    }
                })?;
                use types::BaseObjectChangedEventBaseObjectChangedEventTypeChoice1 as Id;
                let (item_id, folder_id) = match event.base_object_changed_event_type_choice_1 {
                    Id::ItemId(i) => (Some(i.id), None),
                    Id::FolderId(f) => (None, Some(f.id)),
                };
                events.push(ChangeEvent {
                    kind,
                    time_stamp,
                    item_id,
                    folder_id,
                    parent_folder_id: event.parent_folder_id.id,
                });
            }
            notifications.push(Notification {
                subscription_id: notification.subscription_id,
                events,
            });
        }
    }
    Ok(StreamingEvents {
        notifications,
        connection_status,
    })
}

/// The request envelope: end `subscription`.
pub fn unsubscribe_request(
    headers: &RequestHeaders,
    subscription: &str,
) -> Result<Vec<u8>, EnvelopeError> {
    write_request::<Unsubscribe>(headers, &unsubscribe_body(subscription))
}

fn unsubscribe_body(subscription: &str) -> types::UnsubscribeType {
    types::UnsubscribeType {
        subscription_id: subscription.to_owned(),
    }
}

/// Checks an `Unsubscribe` response.
pub fn parse_unsubscribe_response(xml: &[u8]) -> Result<(), OperationError> {
    unsubscribe_from_response(read_response::<Unsubscribe>(xml)?)
}

fn unsubscribe_from_response(
    response: Response<<Unsubscribe as Operation>::Response>,
) -> Result<(), OperationError> {
    for message in response.body.response_messages.content {
        if let types::ArrayOfResponseMessagesTypeContent::UnsubscribeResponseMessage(m) = message {
            status_of!(m).check()?;
            return Ok(());
        }
    }
    Err(OperationError::MessageCount {
        operation: "Unsubscribe",
        expected: 1,
        found: 0,
    })
}
