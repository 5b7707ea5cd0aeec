//! Streaming notifications (`Subscribe`, `GetStreamingEvents`,
//! `Unsubscribe`): for the push mode, where calendar changes arrive as events
//! instead of being polled.
//!
//! How Exchange wants them used (Microsoft, "Notification subscriptions,
//! mailbox events, and EWS in Exchange", "Maintain affinity between a group
//! of subscriptions and the Mailbox server in Exchange", "Handling
//! notification-related errors in EWS in Exchange"): one streaming
//! subscription per mailbox calendar; up to 200 subscriptions read over one
//! GetStreamingEvents connection, which Exchange holds open for its
//! `ConnectionTimeout` (1 to 30 minutes) and answers with a chunked body, a
//! SOAP envelope per notification batch or keep-alive and a last one with
//! `ConnectionStatus` `Closed`; every request of a group carries
//! `X-AnchorMailbox` (the group's first mailbox) and the back-end cookie the
//! group's first Subscribe (`X-PreferServerAffinity: true`) was answered
//! with, so the whole group is served by one mailbox server.

mod splitter;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, FixedOffset, Utc};
use http::header::{HeaderMap, HeaderName, HeaderValue, COOKIE, SET_COOKIE};
use tokio::time::Instant;

pub use splitter::{EnvelopeSplitter, SplitError};

use super::availability::parse_date_time;
use super::calendar_view::calendar_folder;
use super::client::{EwsClient, EwsError, ANCHOR_MAILBOX_HEADER};
use super::envelope::{read_response, write_request, EnvelopeError, RequestHeaders, Response};
use super::fault::SoapFault;
use super::operation::{GetStreamingEvents, Operation, Subscribe, Unsubscribe};
use super::response_message::{
    only_message, status_of, wire, OperationError, ResponseClass, ResponseStatus,
};
use super::transport::{StreamingResponse, TransportError};
use super::types;

/// Asks Exchange to route a group's Subscribe to the mailbox server of the
/// `X-AnchorMailbox` and to answer with the back-end cookie.
pub const PREFER_SERVER_AFFINITY_HEADER: &str = "x-preferserveraffinity";
/// The cookie naming the mailbox server a group is bound to.
pub const BACKEND_COOKIE: &str = "X-BackEndOverrideCookie";
/// Most subscriptions one GetStreamingEvents may read (Microsoft: "place at
/// most 200 subscription ids in one group").
pub const MAX_SUBSCRIPTIONS_PER_CONNECTION: usize = 200;

/// How the service account may subscribe to a mailbox's calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailboxAccess {
    /// As the mailbox itself (`ExchangeImpersonation`; the
    /// ApplicationImpersonation role): the calendar folder without `<Mailbox>`.
    Impersonation,
    /// As the account, on the calendar folder *with* `<Mailbox>`: needs at
    /// least Reviewer rights on the mailbox's calendar.
    FolderRights,
}

/// The affinity of one group of subscriptions to a mailbox server: every
/// request of the group carries `X-AnchorMailbox` (the group's first
/// mailbox) and, once learnt, the `X-BackEndOverrideCookie`. Clones share the
/// cookie.
#[derive(Clone, Debug)]
pub struct Affinity {
    anchor_mailbox: String,
    backend_cookie: Arc<Mutex<Option<String>>>,
}

impl Affinity {
    pub fn new(anchor_mailbox: &str) -> Affinity {
        Affinity {
            anchor_mailbox: anchor_mailbox.trim().to_owned(),
            backend_cookie: Arc::new(Mutex::new(None)),
        }
    }

    pub fn anchor_mailbox(&self) -> &str {
        &self.anchor_mailbox
    }

    /// The `X-BackEndOverrideCookie` value learnt from an answer.
    pub fn backend_cookie(&self) -> Option<String> {
        self.backend_cookie.lock().expect("cookie lock").clone()
    }

    /// The HTTP headers of a request of this group.
    fn headers(&self, prefer_server_affinity: bool) -> Result<HeaderMap, EwsError> {
        let mut headers = HeaderMap::new();
        let anchor = HeaderValue::from_str(&self.anchor_mailbox).map_err(|_| {
            EwsError::Config(format!(
                "the anchor mailbox {:?} is not a valid header value; use an SMTP address",
                self.anchor_mailbox
            ))
        })?;
        headers.insert(HeaderName::from_static(ANCHOR_MAILBOX_HEADER), anchor);
        if prefer_server_affinity {
            headers.insert(
                HeaderName::from_static(PREFER_SERVER_AFFINITY_HEADER),
                HeaderValue::from_static("true"),
            );
        }
        if let Some(cookie) = self.backend_cookie() {
            // Learnt from a Set-Cookie header, so valid as one; skip it if not.
            if let Ok(value) = HeaderValue::from_str(&format!("{BACKEND_COOKIE}={cookie}")) {
                headers.insert(COOKIE, value);
            }
        }
        Ok(headers)
    }

    /// Keeps the back-end cookie an answer sets, if it sets one.
    fn learn(&self, headers: &HeaderMap) {
        if let Some(cookie) = backend_cookie_of(headers) {
            *self.backend_cookie.lock().expect("cookie lock") = Some(cookie);
        }
    }
}

/// The value of `Set-Cookie: X-BackEndOverrideCookie=<value>; path=/; ...`.
fn backend_cookie_of(headers: &HeaderMap) -> Option<String> {
    headers.get_all(SET_COOKIE).iter().find_map(|value| {
        let value = value.to_str().ok()?;
        let pair = value.split(';').next()?;
        let (name, value) = pair.split_once('=')?;
        (name.trim().eq_ignore_ascii_case(BACKEND_COOKIE) && !value.trim().is_empty())
            .then(|| value.trim().to_owned())
    })
}

/// A response message of class `Error` as an [`EwsError`] whose
/// [`fault_code`](EwsError::fault_code) is its `ResponseCode`, so callers
/// (and the retry classifier: `ErrorServerBusy`) see the code as they see a
/// SOAP fault's.
fn refused(server: &str, status: ResponseStatus) -> EwsError {
    let message = status.message.clone().unwrap_or_default();
    EwsError::Fault {
        server: server.to_owned(),
        fault: Box::new(SoapFault {
            fault_code: status.code.clone(),
            fault_string: message.clone(),
            response_code: Some(status.code),
            message: status.message,
            message_xml: Vec::new(),
        }),
    }
}

fn operation_error(client: &EwsClient, error: OperationError) -> EwsError {
    match error {
        OperationError::Response(status) => refused(client.server(), status),
        other => client.operation_error(other),
    }
}

/// One streaming subscription to `mailbox`'s calendar for created,
/// modified, deleted, moved and copied items; the subscription id. The
/// request goes to the mailbox server of `affinity` (`X-AnchorMailbox`,
/// `X-PreferServerAffinity: true`, the back-end cookie once known) and the
/// cookie the answer sets is kept in `affinity`. Paced and retried as every
/// request (a retry after a lost answer may leave an unused subscription
/// behind, which Exchange drops when nobody reads it). A refusal is `Err`
/// with [`EwsError::fault_code`] naming it: `ErrorAccessDenied` (no
/// impersonation right / no folder rights), `ErrorNonExistentMailbox`,
/// `ErrorExceededSubscriptionCount` (the account's `EWSMaxSubscriptions`).
pub async fn subscribe(
    client: &EwsClient,
    mailbox: &str,
    access: MailboxAccess,
    affinity: &Affinity,
) -> Result<String, EwsError> {
    let (impersonate, folder_owner) = match access {
        MailboxAccess::Impersonation => (Some(mailbox), None),
        MailboxAccess::FolderRights => (None, Some(mailbox)),
    };
    let envelope = subscribe_request(&client.request_headers_as(impersonate), folder_owner)
        .map_err(|e| client.envelope_error(e))?;
    client
        .send_reading::<Subscribe, _>(envelope, affinity.headers(true)?, |answer| {
            affinity.learn(&answer.headers);
            parse_subscribe_response(&answer.body).map_err(|e| operation_error(client, e))
        })
        .await
}

/// Ends `subscription_id` (made as `impersonate`, or as the account), on the
/// group's mailbox server. A subscription Exchange no longer knows
/// (`ErrorSubscriptionNotFound`: expired, or the server restarted) is gone
/// as asked: `Ok`.
pub async fn unsubscribe(
    client: &EwsClient,
    subscription_id: &str,
    impersonate: Option<&str>,
    affinity: &Affinity,
) -> Result<(), EwsError> {
    let envelope = unsubscribe_request(&client.request_headers_as(impersonate), subscription_id)
        .map_err(|e| client.envelope_error(e))?;
    client
        .send_reading::<Unsubscribe, _>(envelope, affinity.headers(false)?, |answer| {
            affinity.learn(&answer.headers);
            match parse_unsubscribe_response(&answer.body) {
                Err(OperationError::Response(status))
                    if status.code == "ErrorSubscriptionNotFound" =>
                {
                    Ok(())
                }
                other => other.map_err(|e| operation_error(client, e)),
            }
        })
        .await
}

/// Bounds on reading an event stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// The largest envelope accepted (default 4 MiB: a notification batch
    /// is a few KiB; Exchange splits long ones, `MoreEvents`).
    pub max_message_bytes: usize,
    /// How long the stream may be silent before it counts as lost (default
    /// 90 s: Exchange's keep-alive interval is not documented; the EWS
    /// Managed API gives up after 45 s without data, so keep-alives come
    /// more often than that; twice that leaves room for a slow network).
    pub heartbeat_timeout: Duration,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_message_bytes: 4 * 1024 * 1024,
            heartbeat_timeout: Duration::from_secs(90),
        }
    }
}

/// How long after its `ConnectionTimeout` a stream may still run before the
/// reader gives up on the server closing it.
const CLOSE_GRACE: Duration = Duration::from_secs(120);

/// Opens a GetStreamingEvents connection reading `subscription_ids` (1 to
/// 200, made as `impersonate` or as the account) for
/// `connection_timeout_minutes` (clamped to Exchange's 1 to 30), on the
/// group's mailbox server (`affinity`). The connection is the stream's own,
/// outside the client's pool and concurrency limit; opening it waits out
/// the client's server-busy pause and retries busy and transient failures
/// as every request, but not `ErrorExceededConnectionCount` (too many held
/// connections for the account: the caller must hold fewer).
///
/// Returns once the first message is here. A refusal of the whole request
/// is `Err` with [`EwsError::fault_code`] naming it: a SOAP fault or HTTP
/// error, or a first message failing every subscription (e.g.
/// `ErrorSubscriptionNotFound` for all of them). Failures of some
/// subscriptions are data: [`StreamingEvents::failed_subscriptions`].
pub async fn open_event_stream(
    client: &EwsClient,
    subscription_ids: &[String],
    connection_timeout_minutes: u8,
    affinity: &Affinity,
    impersonate: Option<&str>,
    limits: StreamLimits,
) -> Result<EventStream, EwsError> {
    if subscription_ids.is_empty() || subscription_ids.len() > MAX_SUBSCRIPTIONS_PER_CONNECTION {
        return Err(EwsError::Config(format!(
            "one event stream reads 1 to {MAX_SUBSCRIPTIONS_PER_CONNECTION} subscriptions, not {}; split them into groups",
            subscription_ids.len()
        )));
    }
    let minutes = connection_timeout_minutes.clamp(1, 30);
    let envelope = get_events_request(
        &client.request_headers_as(impersonate),
        subscription_ids,
        i32::from(minutes),
    )
    .map_err(|e| client.envelope_error(e))?;
    let headers = affinity.headers(false)?;
    let lifetime = Duration::from_secs(u64::from(minutes) * 60) + CLOSE_GRACE;
    client
        .open_stream::<GetStreamingEvents, _, _, _>(envelope, headers, |response| async move {
            affinity.learn(&response.headers);
            let mut stream = EventStream {
                server: client.server().to_owned(),
                response,
                splitter: EnvelopeSplitter::new(limits.max_message_bytes),
                limits,
                first: None,
                lifetime,
                ends_by: Instant::now() + lifetime,
                finished: false,
            };
            let first = match stream.next_message().await {
                Some(Ok(first)) => first,
                Some(Err(e)) => return Err(e),
                None => {
                    return Err(EwsError::Response {
                        server: stream.server,
                        message: "the GetStreamingEvents answer ended without a message".into(),
                    })
                }
            };
            if let Some(failure) = first.failed_for_all(subscription_ids) {
                return Err(refused(
                    client.server(),
                    ResponseStatus {
                        class: ResponseClass::Error,
                        code: failure.code.clone(),
                        message: Some(failure.message.clone()),
                    },
                ));
            }
            stream.first = Some(first);
            Ok(stream)
        })
        .await
}

/// An open GetStreamingEvents answer, read message by message. Dropping it
/// closes the connection.
#[derive(Debug)]
pub struct EventStream {
    server: String,
    response: StreamingResponse,
    splitter: EnvelopeSplitter,
    limits: StreamLimits,
    /// The first message, read when opening, handed out first.
    first: Option<StreamingEvents>,
    /// The server closes the stream at its ConnectionTimeout; past that
    /// and a grace (`ends_by`), the reader gives up on it.
    lifetime: Duration,
    ends_by: Instant,
    finished: bool,
}

impl EventStream {
    /// The next envelope, parsed as it arrives; `None` when the response
    /// ended (after the `Closed` message, or without one). A dropped
    /// connection, an envelope over `max_message_bytes`, an envelope that
    /// is not a GetStreamingEvents answer (or a SOAP fault), or
    /// `heartbeat_timeout` without a byte is `Some(Err)`, and the stream
    /// ends with it.
    pub async fn next_message(&mut self) -> Option<Result<StreamingEvents, EwsError>> {
        if let Some(first) = self.first.take() {
            return Some(Ok(first));
        }
        if self.finished {
            return None;
        }
        let next = self.read_message().await;
        if !matches!(next, Some(Ok(_))) {
            self.finished = true;
        }
        next
    }

    async fn read_message(&mut self) -> Option<Result<StreamingEvents, EwsError>> {
        loop {
            match self.splitter.next_envelope() {
                Ok(Some(envelope)) => return Some(self.parse(&envelope)),
                Ok(None) => {}
                Err(SplitError::TooLarge { .. }) => {
                    return Some(Err(TransportError::BodyTooLarge {
                        host: self.server.clone(),
                        limit: self.limits.max_message_bytes,
                    }
                    .into()))
                }
                Err(e) => {
                    return Some(Err(EwsError::Response {
                        server: self.server.clone(),
                        message: e.to_string(),
                    }))
                }
            }
            let now = Instant::now();
            if now >= self.ends_by {
                return Some(Err(self.timeout(
                    "the event stream, which the server did not close at its ConnectionTimeout,",
                    "connection timeout",
                    self.lifetime,
                )));
            }
            let wait = self.limits.heartbeat_timeout.min(self.ends_by - now);
            match tokio::time::timeout(wait, self.response.next_chunk()).await {
                Err(_) => {
                    return Some(Err(self.timeout(
                        "waiting for the next event stream message",
                        "stream heartbeat timeout",
                        wait,
                    )))
                }
                Ok(Some(Ok(chunk))) => self.splitter.push(&chunk),
                Ok(Some(Err(e))) => return Some(Err(e.into())),
                Ok(None) if self.splitter.inside_envelope() => {
                    return Some(Err(TransportError::ConnectionReset {
                        host: self.server.clone(),
                        reason: "the event stream ended inside a message".into(),
                    }
                    .into()))
                }
                Ok(None) => return None,
            }
        }
    }

    fn timeout(&self, what: &'static str, setting: &'static str, after: Duration) -> EwsError {
        TransportError::Timeout {
            host: self.server.clone(),
            what,
            setting,
            after,
        }
        .into()
    }

    fn parse(&self, envelope: &Bytes) -> Result<StreamingEvents, EwsError> {
        parse_events_response(envelope).map_err(|e| match e {
            OperationError::Envelope(EnvelopeError::Fault(fault)) => EwsError::Fault {
                server: self.server.clone(),
                fault: Box::new(fault),
            },
            OperationError::Envelope(source) => EwsError::Envelope {
                server: self.server.clone(),
                source: Box::new(source),
            },
            other => EwsError::Response {
                server: self.server.clone(),
                message: other.to_string(),
            },
        })
    }
}

/// The request envelope: a streaming subscription to the calendar of
/// `mailbox` (`None`: the account's own, or the impersonated mailbox's) for
/// created, modified, deleted, moved and copied items.
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
                // An appointment moved into or out of the calendar appears
                // or disappears there (Microsoft, "EWS notification events":
                // a move is its own event, not a create plus a delete).
                event("MovedEvent"),
                event("CopiedEvent"),
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
    /// Moved into or out of the folder; the item's new id and folder.
    Moved,
    /// Copied into the folder; the copy's id and folder.
    Copied,
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

/// `ConnectionStatus` of a GetStreamingEvents message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionStatus {
    /// The connection stays open (a keep-alive says only this).
    Ok,
    /// The server ends the connection (its `ConnectionTimeout` is over):
    /// open a new one for the same subscriptions.
    Closed,
}

/// Subscriptions a GetStreamingEvents message says failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionFailure {
    /// `ResponseCode`: `ErrorSubscriptionNotFound` (expired, or the server
    /// restarted), `ErrorMissedNotificationEvents`, `ErrorInvalidSubscription`
    /// ...: subscribe again and read the mailbox in full.
    pub code: String,
    pub message: String,
    /// `ErrorSubscriptionIds`; empty: every subscription of the stream.
    pub subscription_ids: Vec<String>,
}

/// A `GetStreamingEvents` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamingEvents {
    pub notifications: Vec<Notification>,
    /// `Closed` when the server ends the connection (open it again);
    /// `Ok` otherwise; `None` when the message did not say.
    pub connection_status: Option<ConnectionStatus>,
    /// Response messages of class `Error`: subscriptions lost.
    pub failed_subscriptions: Vec<SubscriptionFailure>,
}

impl StreamingEvents {
    /// The failure that covers every one of `subscriptions`, when this
    /// message carries nothing else: the whole request was refused.
    fn failed_for_all(&self, subscriptions: &[String]) -> Option<&SubscriptionFailure> {
        if !self.notifications.is_empty() {
            return None;
        }
        self.failed_subscriptions.iter().find(|failure| {
            failure.subscription_ids.is_empty()
                || subscriptions
                    .iter()
                    .all(|id| failure.subscription_ids.contains(id))
        })
    }
}

/// Parses one `GetStreamingEvents` answer envelope (Exchange sends several
/// over the held-open connection; each is parsed on its own). Messages of
/// class `Error` are [`StreamingEvents::failed_subscriptions`], not an
/// error; a SOAP fault is.
pub fn parse_events_response(xml: &[u8]) -> Result<StreamingEvents, OperationError> {
    events_from_response(read_response::<GetStreamingEvents>(xml)?)
}

fn events_from_response(
    response: Response<<GetStreamingEvents as Operation>::Response>,
) -> Result<StreamingEvents, OperationError> {
    let utc = FixedOffset::east_opt(0).expect("zero offset");
    let mut notifications = Vec::new();
    let mut connection_status = None;
    let mut failed_subscriptions = Vec::new();
    for message in response.body.response_messages.content {
        let types::ArrayOfResponseMessagesTypeContent::GetStreamingEventsResponseMessage(message) =
            message
        else {
            continue;
        };
        let status = status_of!(message);
        let content = message.content;
        if status.class == ResponseClass::Error {
            failed_subscriptions.push(SubscriptionFailure {
                code: status.code,
                message: status.message.unwrap_or_default(),
                subscription_ids: content
                    .as_ref()
                    .and_then(|c| c.error_subscription_ids.as_ref())
                    .map(|ids| ids.subscription_id.clone())
                    .unwrap_or_default(),
            });
        }
        let Some(content) = content else { continue };
        if let Some(status) = &content.connection_status {
            // Anything but the two documented values: as if not said.
            connection_status = match wire(status).as_str() {
                "OK" => Some(ConnectionStatus::Ok),
                "Closed" => Some(ConnectionStatus::Closed),
                _ => connection_status,
            };
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
                    C::MovedEvent(e) => (ChangeKind::Moved, moved_or_copied(e)),
                    C::CopiedEvent(e) => (ChangeKind::Copied, moved_or_copied(e)),
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
        failed_subscriptions,
    })
}

/// A move or copy as the event of the item where it is now.
fn moved_or_copied(e: types::MovedCopiedEventType) -> types::BaseObjectChangedEventType {
    types::BaseObjectChangedEventType {
        watermark: e.watermark,
        time_stamp: e.time_stamp,
        base_object_changed_event_type_choice_1: e.base_object_changed_event_type_choice_1,
        parent_folder_id: e.parent_folder_id,
    }
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
