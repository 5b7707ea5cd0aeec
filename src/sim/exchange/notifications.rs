//! Subscribe, GetStreamingEvents and Unsubscribe: streaming notifications
//! on mailboxes' calendars, with Exchange's documented behaviour.
//!
//! Sources (Microsoft, Exchange Web Services documentation):
//! - "Handling notification-related errors in EWS in Exchange": the error
//!   codes (`ErrorExceededConnectionCount` beyond `HangingConnectionLimit`,
//!   `ErrorExceededSubscriptionCount` beyond `EWSMaxSubscriptions`,
//!   `ErrorSubscriptionNotFound`, `ErrorMissedNotificationEvents`).
//! - "Maintain affinity between a group of subscriptions and the Mailbox
//!   server in Exchange": `X-AnchorMailbox` + `X-PreferServerAffinity: true`
//!   on Subscribe get the `X-BackEndOverrideCookie` cookie, which the
//!   group's later requests send back; at most 200 subscriptions per group.
//! - "GetStreamingEvents operation" and "Streaming notifications": one
//!   response held open for `ConnectionTimeout` minutes (1 to 30, the
//!   schema's `StreamingSubscriptionConnectionTimeoutType`), sent as a
//!   sequence of complete SOAP envelopes (chunked), notifications or
//!   keep-alives (`ConnectionStatus` `OK`), the last one `Closed`; errors
//!   for some subscriptions as a message with `ResponseClass="Error"` and
//!   `ErrorSubscriptionIds`.
//! - "Subscribe operation": a streaming subscription to folders of one
//!   mailbox; impersonation (the calendar without `<Mailbox>`) or delegate
//!   access (the calendar with `<Mailbox>`, at least Reviewer).
//!
//! Where Microsoft is silent (keep-alive interval, expiry time, a
//! subscription named on a second stream, error frames' timing), the
//! simulator takes plausible choices, documented at each place, and accepts
//! what Exchange would (several ids, a missing cookie).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::SecondsFormat;
use http::StatusCode;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::Notify;

use crate::response_message::wire;
use crate::sim::http::{ResponseStream, StreamFrame};
use crate::types;

use super::answer::{AffinityHeaders, Answer, Caller};
use super::mailbox::calendar_folder_id;
use super::soap::{self, body_start, esc, Fault};
use super::state::Shared;
use super::subscriptions::{
    deleted_items_folder_id, EventKind, StreamEntry, StreamError, Subscription,
};

/// The name of the affinity cookie.
pub(crate) const BACKEND_COOKIE: &str = "X-BackEndOverrideCookie";

/// A response message with `ResponseClass="Error"`.
fn error_message(element: &str, code: &str, text: &str, extra: &str) -> String {
    format!(
        r#"<m:{element} ResponseClass="Error"><m:MessageText>{}</m:MessageText><m:ResponseCode>{code}</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>{extra}</m:{element}>"#,
        esc(text)
    )
}

fn wrap(response: &str, message: &str) -> String {
    format!(
        "{}<m:ResponseMessages>{message}</m:ResponseMessages></m:{response}>",
        body_start(response)
    )
}

fn subscription_ids(ids: &[String]) -> String {
    let mut xml = String::from("<m:ErrorSubscriptionIds>");
    for id in ids {
        xml.push_str(&format!("<t:SubscriptionId>{}</t:SubscriptionId>", esc(id)));
    }
    xml.push_str("</m:ErrorSubscriptionIds>");
    xml
}

fn watermark(n: u64) -> String {
    format!("AQAAAFNJTVdN{n:016X}")
}

/// The cookie value for a group anchored at `anchor`: the mailbox server
/// that holds it (one of four simulated), as Exchange names a back end.
fn backend_cookie(anchor: &str) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in anchor.trim().to_ascii_lowercase().bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("SIMMBX{:02}~{hash}", hash % 4 + 1)
}

/// Subscribe: one streaming subscription to one mailbox's calendar.
pub(crate) fn subscribe(
    shared: &Shared,
    caller: &Caller,
    affinity: &AffinityHeaders,
    request: &types::SubscribeType,
) -> Answer {
    const RESPONSE: &str = "SubscribeResponse";
    const ELEMENT: &str = "SubscribeResponseMessage";
    let types::SubscribeType::StreamingSubscriptionRequest(request) = request;
    let mut wanted = Vec::new();
    for event in &request.event_types.content {
        let types::NonEmptyArrayOfNotificationEventTypesTypeContent::EventType(event) = event;
        let name = wire(event);
        match name.as_str() {
            "CreatedEvent" => wanted.push(EventKind::Created),
            "ModifiedEvent" => wanted.push(EventKind::Modified),
            "DeletedEvent" => wanted.push(EventKind::Deleted),
            // Deletions that are moves to Deleted Items, with the knob.
            "MovedEvent" => wanted.push(EventKind::Moved),
            // Valid, but calendar changes in the simulator are creates,
            // modifications, deletions and moves only: these never fire.
            "CopiedEvent" | "NewMailEvent" | "FreeBusyChangedEvent" => {}
            other => {
                return Answer::Fault(Fault::schema_validation(
                    format!("The 'EventType' element is invalid - The value '{other}' is invalid according to its datatype 'http://schemas.microsoft.com/exchange/services/2006/types:NotificationEventTypeType' - The Enumeration constraint failed."),
                    0,
                ))
            }
        }
    }
    let mut state = shared.lock();
    let now = Instant::now();
    let knobs = state.knobs.notifications.clone();
    state
        .subscriptions
        .expire_idle(now, knobs.subscription_expiry);
    // The mailbox and the right to subscribe to it: as FindItem/GetFolder
    // open the folder (impersonation, the owner, or at least Reviewer).
    let mailbox = match (&request.folder_ids, request.subscribe_to_all_folders) {
        (Some(folders), _) => {
            super::items::calendar_of(&state, caller, folders).map(|(m, _)| m.smtp.clone())
        }
        // All folders of the caller's mailbox: its calendar is all the
        // simulator holds.
        (None, Some(true)) => match &caller.acting_as {
            Some(me) => state.mailbox(me).map(|m| m.smtp.clone()).ok_or((
                "ErrorNonExistentMailbox",
                format!("The SMTP address {me} has no mailbox associated with it."),
            )),
            None => Err((
                "ErrorMissingEmailAddress",
                "The account has no mailbox; impersonate one or name folders with a Mailbox."
                    .into(),
            )),
        },
        (None, _) => Err((
            "ErrorInvalidSubscriptionRequest",
            "A subscription needs FolderIds or SubscribeToAllFolders=\"true\".".into(),
        )),
    };
    let mailbox = match mailbox {
        Ok(mailbox) => mailbox,
        Err((code, text)) => {
            return Answer::Refused(
                wrap(RESPONSE, &error_message(ELEMENT, code, &text, "")),
                code,
            )
        }
    };
    let held = state.subscriptions.subscriptions_of(&caller.account);
    if held >= knobs.max_subscriptions {
        return Answer::Refused(wrap(
            RESPONSE,
            &error_message(
                ELEMENT,
                "ErrorExceededSubscriptionCount",
                &format!("You have exceeded the maximum number of subscriptions ({}) that are allowed for your account (EWSMaxSubscriptions).", knobs.max_subscriptions),
                "",
            ),
        ), "ErrorExceededSubscriptionCount");
    }
    let id = state.subscriptions.new_subscription_id();
    state.subscriptions.subscriptions.insert(
        id.clone(),
        Subscription {
            account: caller.account.clone(),
            mailbox,
            wanted,
            queue: Default::default(),
            missed: false,
            watermark: 0,
            stream: None,
            last_read: now,
        },
    );
    state.subscriptions.counters.subscriptions_created += 1;
    drop(state);
    let body = wrap(
        RESPONSE,
        &format!(
            r#"<m:{ELEMENT} ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:SubscriptionId>{}</m:SubscriptionId><m:Watermark>{}</m:Watermark></m:{ELEMENT}>"#,
            esc(&id),
            watermark(0)
        ),
    );
    let mut response = soap::xml_response(
        StatusCode::OK,
        soap::envelope(&shared.server_version, &body),
    );
    // The cookie comes when the client asks for affinity with both headers.
    if let (Some(anchor), true) = (&affinity.anchor_mailbox, affinity.prefer_server_affinity) {
        let cookie = format!(
            "{BACKEND_COOKIE}={}; path=/; HttpOnly",
            backend_cookie(anchor)
        );
        if let Ok(value) = http::HeaderValue::from_str(&cookie) {
            response
                .headers_mut()
                .insert(http::header::SET_COOKIE, value);
        }
    }
    Answer::Http(response)
}

/// Unsubscribe: ends one subscription of the caller's account.
pub(crate) fn unsubscribe(
    shared: &Shared,
    caller: &Caller,
    request: &types::UnsubscribeType,
) -> Answer {
    const RESPONSE: &str = "UnsubscribeResponse";
    const ELEMENT: &str = "UnsubscribeResponseMessage";
    let mut state = shared.lock();
    let expiry = state.knobs.notifications.subscription_expiry;
    state.subscriptions.expire_idle(Instant::now(), expiry);
    let id = request.subscription_id.trim();
    let refused = |code: &'static str, text: &str| {
        Answer::Refused(
            wrap(RESPONSE, &error_message(ELEMENT, code, text, "")),
            code,
        )
    };
    let message = match state.subscriptions.subscriptions.get(id) {
        None => {
            return refused(
                "ErrorSubscriptionNotFound",
                "The specified subscription was not found.",
            )
        }
        Some(s) if s.account != caller.account => {
            return refused(
                "ErrorSubscriptionAccessDenied",
                "Subscriptions can only be used by the account that created them.",
            )
        }
        Some(s) => {
            let stream = s.stream;
            state.subscriptions.subscriptions.remove(id);
            if let Some(stream) = stream.and_then(|s| state.subscriptions.streams.get_mut(&s)) {
                stream.subscriptions.retain(|s| s != id);
                stream.wake.notify_one();
            }
            format!(
                r#"<m:{ELEMENT} ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode></m:{ELEMENT}>"#
            )
        }
    };
    Answer::Ok(wrap(RESPONSE, &message))
}

/// GetStreamingEvents: opens a stream over the caller's subscriptions, or
/// refuses the whole request (one error message, HTTP 200, as Exchange
/// answers with a response message rather than a SOAP fault).
pub(crate) fn get_streaming_events(
    shared: &Arc<Shared>,
    caller: &Caller,
    request: &types::GetStreamingEventsType,
) -> Answer {
    const RESPONSE: &str = "GetStreamingEventsResponse";
    const ELEMENT: &str = "GetStreamingEventsResponseMessage";
    let refuse = |code: &'static str, text: &str| {
        Answer::Refused(
            wrap(RESPONSE, &error_message(ELEMENT, code, text, "")),
            code,
        )
    };
    // The schema restricts ConnectionTimeout to 1..=30
    // (StreamingSubscriptionConnectionTimeoutType).
    let minutes = request.connection_timeout;
    if !(1..=30).contains(&minutes) {
        return Answer::Fault(Fault::schema_validation(
            format!("The 'ConnectionTimeout' element is invalid - The value '{minutes}' is invalid according to its datatype 'http://schemas.microsoft.com/exchange/services/2006/types:StreamingSubscriptionConnectionTimeoutType' - The MinInclusive (1) or MaxInclusive (30) constraint failed."),
            0,
        ));
    }
    let asked: Vec<String> = request
        .subscription_ids
        .subscription_id
        .iter()
        .map(|id| id.trim().to_owned())
        .collect();
    let mut state = shared.lock();
    let now = Instant::now();
    let knobs = state.knobs.notifications.clone();
    if asked.len() > knobs.max_subscriptions_per_stream {
        return refuse(
            "ErrorInvalidArgument",
            &format!(
                "A GetStreamingEvents request may name at most {} subscriptions; it named {}.",
                knobs.max_subscriptions_per_stream,
                asked.len()
            ),
        );
    }
    state
        .subscriptions
        .expire_idle(now, knobs.subscription_expiry);
    let mut found = Vec::new();
    let mut not_found = Vec::new();
    let mut denied = Vec::new();
    for id in asked {
        match state.subscriptions.subscriptions.get(&id) {
            None => not_found.push(id),
            Some(s) if s.account != caller.account => denied.push(id),
            Some(_) if found.contains(&id) => {}
            Some(_) => found.push(id),
        }
    }
    let mut errors = Vec::new();
    if !not_found.is_empty() {
        errors.push(StreamError {
            code: "ErrorSubscriptionNotFound",
            text: "The specified subscription was not found.".into(),
            subscription_ids: not_found,
        });
    }
    if !denied.is_empty() {
        errors.push(StreamError {
            code: "ErrorSubscriptionAccessDenied",
            text: "Subscriptions can only be used by the account that created them.".into(),
            subscription_ids: denied,
        });
    }
    if found.is_empty() {
        // Nothing to stream: the errors are the whole answer.
        let messages: String = errors
            .iter()
            .map(|e| {
                error_message(
                    ELEMENT,
                    e.code,
                    &e.text,
                    &subscription_ids(&e.subscription_ids),
                )
            })
            .collect();
        return Answer::Refused(wrap(RESPONSE, &messages), errors[0].code);
    }
    let open = state.subscriptions.streams_of(&caller.account);
    if open >= knobs.hanging_connection_limit {
        return refuse(
            "ErrorExceededConnectionCount",
            &format!("You have exceeded the available concurrent connections for your account ({} open streaming connections, HangingConnectionLimit). Try again once your other requests have completed.", open),
        );
    }
    let stream_id = state.subscriptions.new_stream_id();
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let wake = Arc::new(Notify::new());
    for id in &found {
        let previous = state
            .subscriptions
            .subscriptions
            .get_mut(id)
            .and_then(|s| s.stream.replace(stream_id));
        // A subscription read by a newer stream leaves the older one
        // (Exchange's behaviour here is not documented).
        if let Some(old) = previous.and_then(|p| state.subscriptions.streams.get_mut(&p)) {
            old.subscriptions.retain(|s| s != id);
            old.wake.notify_one();
        }
    }
    state.subscriptions.streams.insert(
        stream_id,
        StreamEntry {
            account: caller.account.clone(),
            subscriptions: found,
            wake: wake.clone(),
            sender: sender.clone(),
            errors,
        },
    );
    state.subscriptions.counters.streams_opened += 1;
    drop(state);
    let ends = now + knobs.connection_timeout_minute * minutes as u32;
    tokio::spawn(run_stream(shared.clone(), stream_id, sender, wake, ends));
    let mut response = http::Response::new(Bytes::new());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    response.extensions_mut().insert(ResponseStream(receiver));
    Answer::Http(response)
}

/// Ends the stream's entry however its task ends.
struct StreamGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.shared
            .lock()
            .subscriptions
            .end_stream(self.id, Instant::now());
    }
}

/// One message of the stream: a whole envelope.
fn frame(shared: &Shared, message: &str) -> StreamFrame {
    StreamFrame::Data(Bytes::from(soap::envelope(
        &shared.server_version,
        &wrap("GetStreamingEventsResponse", message),
    )))
}

fn status_message(status: &str) -> String {
    format!(
        r#"<m:GetStreamingEventsResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:ConnectionStatus>{status}</m:ConnectionStatus></m:GetStreamingEventsResponseMessage>"#
    )
}

/// What one turn of a stream found to send.
struct Turn {
    messages: Vec<String>,
    next_due: Option<Instant>,
    keep_alive: Duration,
    live: usize,
}

/// The stream's messages now: errors, then the due events of its
/// subscriptions in one notifications message; `None` when the stream was
/// cut or ended from outside.
fn take_turn(shared: &Shared, id: u64, now: Instant) -> Option<Turn> {
    let mut state = shared.lock();
    let keep_alive = state.knobs.notifications.keep_alive;
    let tables = &mut state.subscriptions;
    let stream = tables.streams.get_mut(&id)?;
    let mut errors = std::mem::take(&mut stream.errors);
    let ids = stream.subscriptions.clone();
    let mut notifications = String::new();
    let mut missed = Vec::new();
    let mut next_due: Option<Instant> = None;
    let mut sent = 0u64;
    for sub_id in &ids {
        let Some(subscription) = tables.subscriptions.get_mut(sub_id) else {
            continue;
        };
        if subscription.missed {
            missed.push(sub_id.clone());
            continue;
        }
        let due = subscription
            .queue
            .iter()
            .take_while(|e| e.due <= now)
            .count();
        if let Some(next) = subscription.queue.get(due) {
            next_due = Some(next_due.map_or(next.due, |n| n.min(next.due)));
        }
        if due == 0 {
            continue;
        }
        let last = subscription.watermark - subscription.queue.len() as u64;
        let folder = calendar_folder_id(&subscription.mailbox);
        notifications.push_str(&format!(
            "<t:Notification><t:SubscriptionId>{}</t:SubscriptionId><t:PreviousWatermark>{}</t:PreviousWatermark><t:MoreEvents>false</t:MoreEvents>",
            esc(sub_id),
            watermark(last)
        ));
        for (n, event) in subscription.queue.drain(..due).enumerate() {
            let element = event.kind.element();
            let mark = last + n as u64 + 1;
            let head = format!(
                "<t:Watermark>{}</t:Watermark><t:TimeStamp>{}</t:TimeStamp>",
                watermark(mark),
                event.time_stamp.to_rfc3339_opts(SecondsFormat::Secs, true),
            );
            let item = esc(&event.item_id);
            let folder = esc(&folder);
            notifications.push_str(&if event.kind == EventKind::Moved {
                // MovedCopiedEventType: the item's new id and folder, then
                // its old ones (a moved item gets a new id in Exchange).
                let trash = deleted_items_folder_id(&subscription.mailbox);
                format!(
                    r#"<t:{element}>{head}<t:ItemId Id="{item}MV" ChangeKey="DwAAABYAAAA{mark:08X}"/><t:ParentFolderId Id="{}" ChangeKey="AQAAAA=="/><t:OldItemId Id="{item}" ChangeKey="DwAAABYAAAA{mark:08X}"/><t:OldParentFolderId Id="{folder}" ChangeKey="AQAAAA=="/></t:{element}>"#,
                    esc(&trash)
                )
            } else {
                format!(
                    r#"<t:{element}>{head}<t:ItemId Id="{item}" ChangeKey="DwAAABYAAAA{mark:08X}"/><t:ParentFolderId Id="{folder}" ChangeKey="AQAAAA=="/></t:{element}>"#
                )
            });
            sent += 1;
        }
        notifications.push_str("</t:Notification>");
    }
    // A subscription whose queue overflowed is gone: the client must
    // subscribe again and read the calendar ("Handling notification-related
    // errors": ErrorMissedNotificationEvents).
    if !missed.is_empty() {
        for sub_id in &missed {
            tables.subscriptions.remove(sub_id);
        }
        errors.push(StreamError {
            code: "ErrorMissedNotificationEvents",
            text: "Events were missed: the subscription was dropped. Subscribe again and read the folder.".into(),
            subscription_ids: missed.clone(),
        });
    }
    let stream = tables.streams.get_mut(&id)?;
    stream.subscriptions.retain(|s| !missed.contains(s));
    let live = stream.subscriptions.len();
    tables.counters.events_sent += sent;
    let mut messages: Vec<String> = errors
        .iter()
        .map(|e| {
            error_message(
                "GetStreamingEventsResponseMessage",
                e.code,
                &e.text,
                &subscription_ids(&e.subscription_ids),
            )
        })
        .collect();
    if !notifications.is_empty() {
        messages.push(format!(
            r#"<m:GetStreamingEventsResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Notifications>{notifications}</m:Notifications></m:GetStreamingEventsResponseMessage>"#
        ));
    }
    Some(Turn {
        messages,
        next_due,
        keep_alive,
        live,
    })
}

/// Sends the stream's messages until its connection timeout (`Closed`), a
/// cut, its last subscription gone (`Closed`), or the client leaving.
async fn run_stream(
    shared: Arc<Shared>,
    id: u64,
    sender: UnboundedSender<StreamFrame>,
    wake: Arc<Notify>,
    ends: Instant,
) {
    let _guard = StreamGuard {
        shared: shared.clone(),
        id,
    };
    let count = |f: fn(&mut super::subscriptions::NotificationCounters)| {
        f(&mut shared.lock().subscriptions.counters);
    };
    let mut last_sent = Instant::now();
    let mut opened = false;
    loop {
        let now = Instant::now();
        let Some(turn) = take_turn(&shared, id, now) else {
            return;
        };
        // Each message its own envelope: a client reads them one by one.
        for message in &turn.messages {
            if sender.send(frame(&shared, message)).is_err() {
                return;
            }
            last_sent = now;
        }
        if !opened {
            // A keep-alive at once (after the errors about the ids asked
            // for, if any): the client sees the stream is open.
            opened = true;
            if sender.send(frame(&shared, &status_message("OK"))).is_err() {
                return;
            }
            count(|c| c.keep_alives_sent += 1);
            last_sent = now;
        }
        if now >= ends || turn.live == 0 {
            let _ = sender.send(frame(&shared, &status_message("Closed")));
            count(|c| c.streams_closed += 1);
            return;
        }
        if now.duration_since(last_sent) >= turn.keep_alive {
            if sender.send(frame(&shared, &status_message("OK"))).is_err() {
                return;
            }
            count(|c| c.keep_alives_sent += 1);
            last_sent = now;
        }
        let mut deadline = ends.min(last_sent + turn.keep_alive);
        if let Some(due) = turn.next_due {
            deadline = deadline.min(due);
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline.into()) => {}
            _ = wake.notified() => {}
            _ = sender.closed() => return,
        }
    }
}

/// The `X-BackEndOverrideCookie` value in a `Cookie:` header.
pub(crate) fn cookie_value(header: &str) -> Option<String> {
    header.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case(BACKEND_COOKIE)
            .then(|| value.trim().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_affinity_cookie_is_read_among_other_cookies_and_is_stable_per_anchor() {
        assert_eq!(
            cookie_value("a=b; X-BackEndOverrideCookie=SIMMBX01~12; c=d").as_deref(),
            Some("SIMMBX01~12")
        );
        assert_eq!(cookie_value("a=b"), None);
        assert_eq!(
            backend_cookie("Alice@contoso.test"),
            backend_cookie("alice@contoso.test ")
        );
    }
}
