//! The streaming subscriptions the simulator holds and the streams reading
//! them: data only, below the operations (`notifications`) that answer
//! Subscribe / GetStreamingEvents / Unsubscribe and the handle that changes
//! calendars. A calendar change becomes events queued on each subscription
//! to that mailbox, and wakes the stream that reads it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::Notify;

use super::mailbox::{Occurrence, SimEvent};
use crate::sim::http::StreamFrame;

/// What happened to an item, named as the event elements of
/// `t:NotificationType` ("GetStreamingEvents operation", EWS reference).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum EventKind {
    Created,
    Modified,
    Deleted,
    /// Moved to Deleted Items (see `NotificationKnobs::deletes_as_moves`).
    Moved,
}

impl EventKind {
    /// The event element (and `NotificationEventTypeType` value).
    pub(crate) fn element(self) -> &'static str {
        match self {
            EventKind::Created => "CreatedEvent",
            EventKind::Modified => "ModifiedEvent",
            EventKind::Deleted => "DeletedEvent",
            EventKind::Moved => "MovedEvent",
        }
    }
}

/// One event waiting on a subscription.
#[derive(Debug, Clone)]
pub(crate) struct PendingEvent {
    pub(crate) kind: EventKind,
    pub(crate) item_id: String,
    pub(crate) time_stamp: DateTime<Utc>,
    /// When it may be sent (the change + `notification_delay`).
    pub(crate) due: Instant,
}

/// One streaming subscription to a mailbox's calendar.
#[derive(Debug)]
pub(crate) struct Subscription {
    /// The account that created it (`DOMAIN\user`, lower case): only it may
    /// read or end it.
    pub(crate) account: String,
    /// The mailbox's primary SMTP address.
    pub(crate) mailbox: String,
    /// The events asked for.
    pub(crate) wanted: Vec<EventKind>,
    pub(crate) queue: VecDeque<PendingEvent>,
    /// More events came than the queue holds: the next read reports
    /// `ErrorMissedNotificationEvents` and the subscription ends.
    pub(crate) missed: bool,
    /// Watermark of the last event queued (a counter).
    pub(crate) watermark: u64,
    /// The stream reading it now.
    pub(crate) stream: Option<u64>,
    /// When it was created or last read by a stream that has ended: the
    /// expiry counts from here while no stream reads it.
    pub(crate) last_read: Instant,
}

/// An error a stream reports for some of its subscriptions.
#[derive(Debug, Clone)]
pub(crate) struct StreamError {
    pub(crate) code: &'static str,
    pub(crate) text: String,
    pub(crate) subscription_ids: Vec<String>,
}

/// One open GetStreamingEvents response.
#[derive(Debug)]
pub(crate) struct StreamEntry {
    pub(crate) account: String,
    /// The subscriptions it reads (in the order asked for).
    pub(crate) subscriptions: Vec<String>,
    /// Woken when one of its subscriptions has an event or an error.
    pub(crate) wake: Arc<Notify>,
    /// Its response, to cut it from outside.
    pub(crate) sender: UnboundedSender<StreamFrame>,
    /// Errors to report on the stream's next message.
    pub(crate) errors: Vec<StreamError>,
}

/// What the simulator's notifications did, for tests and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotificationCounters {
    /// Subscriptions alive now (not expired, ended or lost).
    pub active_subscriptions: usize,
    /// GetStreamingEvents responses open now.
    pub open_streams: usize,
    pub subscriptions_created: u64,
    pub subscriptions_expired: u64,
    pub streams_opened: u64,
    /// Item events sent on streams.
    pub events_sent: u64,
    /// Keep-alive messages (`ConnectionStatus` `OK`) sent.
    pub keep_alives_sent: u64,
    /// Streams ended with `ConnectionStatus` `Closed`.
    pub streams_closed: u64,
    /// Streams cut by [`drop_event_streams`](super::ExchangeSim::drop_event_streams)
    /// or [`restart`](super::ExchangeSim::restart).
    pub streams_cut: u64,
}

/// One subscription as a test sees it ([`ExchangeSim::subscriptions`](super::ExchangeSim::subscriptions)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionInfo {
    pub id: String,
    /// The mailbox's primary SMTP address.
    pub mailbox: String,
    /// The account that created it (`domain\user`, lower case).
    pub account: String,
    /// A stream reads it now.
    pub streamed: bool,
    /// Events waiting to be sent.
    pub queued: usize,
}

/// The id of `smtp`'s Deleted Items folder (where Outlook moves deleted
/// appointments).
pub(crate) fn deleted_items_folder_id(smtp: &str) -> String {
    format!("AAMkADSIMDEL{}", smtp.to_ascii_uppercase())
}

/// The subscription and stream tables.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    pub(crate) subscriptions: HashMap<String, Subscription>,
    pub(crate) streams: HashMap<u64, StreamEntry>,
    next_subscription: u64,
    next_stream: u64,
    /// Bumped by a restart, part of every id: ids from before a restart are
    /// never reused.
    generation: u64,
    pub(crate) counters: NotificationCounters,
}

impl Subscriptions {
    /// A new subscription's id: opaque to clients, as Exchange's (base64).
    pub(crate) fn new_subscription_id(&mut self) -> String {
        self.next_subscription += 1;
        format!(
            "SIMSUB{:04X}{:012X}",
            self.generation, self.next_subscription
        )
    }

    pub(crate) fn new_stream_id(&mut self) -> u64 {
        self.next_stream += 1;
        self.next_stream
    }

    /// Subscriptions that no stream has read for `expiry` are gone.
    pub(crate) fn expire_idle(&mut self, now: Instant, expiry: Duration) {
        let before = self.subscriptions.len();
        self.subscriptions
            .retain(|_, s| s.stream.is_some() || now.duration_since(s.last_read) < expiry);
        self.counters.subscriptions_expired += (before - self.subscriptions.len()) as u64;
    }

    /// Queues `changes` of `mailbox`'s calendar on its subscriptions and
    /// wakes their streams.
    pub(crate) fn record(
        &mut self,
        mailbox: &str,
        changes: &[(EventKind, String)],
        due: Instant,
        max_queued: usize,
        deletes_as_moves: bool,
    ) {
        if changes.is_empty() {
            return;
        }
        let time_stamp = Utc::now();
        for subscription in self.subscriptions.values_mut() {
            if !subscription.mailbox.eq_ignore_ascii_case(mailbox) || subscription.missed {
                continue;
            }
            for (kind, item_id) in changes {
                let kind = match kind {
                    EventKind::Deleted if deletes_as_moves => &EventKind::Moved,
                    other => other,
                };
                if !subscription.wanted.contains(kind) {
                    continue;
                }
                subscription.watermark += 1;
                subscription.queue.push_back(PendingEvent {
                    kind: *kind,
                    item_id: item_id.clone(),
                    time_stamp,
                    due,
                });
            }
            if subscription.queue.len() > max_queued {
                subscription.queue.clear();
                subscription.missed = true;
            }
            if let Some(stream) = subscription.stream.and_then(|id| self.streams.get(&id)) {
                stream.wake.notify_one();
            }
        }
    }

    /// The stream `id` has ended: its subscriptions are unread from now on.
    pub(crate) fn end_stream(&mut self, id: u64, now: Instant) {
        if self.streams.remove(&id).is_none() {
            return;
        }
        for subscription in self.subscriptions.values_mut() {
            if subscription.stream == Some(id) {
                subscription.stream = None;
                subscription.last_read = now;
            }
        }
    }

    /// Cuts every open stream mid-response (the connection closes without
    /// the final chunk); subscriptions stay.
    pub(crate) fn cut_streams(&mut self, now: Instant) {
        let ids: Vec<u64> = self.streams.keys().copied().collect();
        for id in ids {
            if let Some(stream) = self.streams.get(&id) {
                let _ = stream.sender.send(StreamFrame::Cut);
                stream.wake.notify_one();
            }
            self.counters.streams_cut += 1;
            self.end_stream(id, now);
        }
    }

    /// A restart: streams cut, every subscription gone, ids never reused.
    pub(crate) fn clear(&mut self, now: Instant) {
        self.cut_streams(now);
        self.subscriptions.clear();
        self.generation += 1;
    }

    /// Every subscription expires now: streams reading one report
    /// `ErrorSubscriptionNotFound` with its id.
    pub(crate) fn expire_all(&mut self) {
        let expired: Vec<(String, Option<u64>)> = self
            .subscriptions
            .iter()
            .map(|(id, s)| (id.clone(), s.stream))
            .collect();
        self.counters.subscriptions_expired += expired.len() as u64;
        self.subscriptions.clear();
        let mut by_stream: HashMap<u64, Vec<String>> = HashMap::new();
        for (id, stream) in expired {
            if let Some(stream) = stream {
                by_stream.entry(stream).or_default().push(id);
            }
        }
        for (stream_id, ids) in by_stream {
            if let Some(stream) = self.streams.get_mut(&stream_id) {
                stream.subscriptions.retain(|s| !ids.contains(s));
                stream.errors.push(StreamError {
                    code: "ErrorSubscriptionNotFound",
                    text: "The specified subscription was not found.".into(),
                    subscription_ids: ids,
                });
                stream.wake.notify_one();
            }
        }
    }

    /// Open streams of `account`.
    pub(crate) fn streams_of(&self, account: &str) -> usize {
        self.streams
            .values()
            .filter(|s| s.account == account)
            .count()
    }

    /// Subscriptions of `account`.
    pub(crate) fn subscriptions_of(&self, account: &str) -> usize {
        self.subscriptions
            .values()
            .filter(|s| s.account == account)
            .count()
    }

    /// Every subscription, by mailbox and id.
    pub(crate) fn list(&self) -> Vec<SubscriptionInfo> {
        let mut all: Vec<SubscriptionInfo> = self
            .subscriptions
            .iter()
            .map(|(id, s)| SubscriptionInfo {
                id: id.clone(),
                mailbox: s.mailbox.clone(),
                account: s.account.clone(),
                streamed: s.stream.is_some(),
                queued: s.queue.len(),
            })
            .collect();
        all.sort_by(|a, b| (&a.mailbox, &a.id).cmp(&(&b.mailbox, &b.id)));
        all
    }

    pub(crate) fn counters(&self) -> NotificationCounters {
        NotificationCounters {
            active_subscriptions: self.subscriptions.len(),
            open_streams: self.streams.len(),
            ..self.counters.clone()
        }
    }
}

/// The item events that turn calendar `before` into `after`: by event id,
/// a new id is Created, a vanished one Deleted, a changed one Modified. The
/// item id is the one FindItem gives the event's first occurrence.
pub(crate) fn calendar_changes(
    mailbox: &str,
    before: &[SimEvent],
    after: &[SimEvent],
) -> Vec<(EventKind, String)> {
    let item_id = |event: &SimEvent| {
        Occurrence {
            event,
            start: event.start,
            end: event.end,
            index: 0,
        }
        .item_id(mailbox)
    };
    let old: HashMap<&str, &SimEvent> = before.iter().map(|e| (e.id.as_str(), e)).collect();
    let new: HashMap<&str, &SimEvent> = after.iter().map(|e| (e.id.as_str(), e)).collect();
    let mut changes = Vec::new();
    for event in after {
        match old.get(event.id.as_str()) {
            None => changes.push((EventKind::Created, item_id(event))),
            Some(previous) if *previous != event => {
                changes.push((EventKind::Modified, item_id(event)))
            }
            Some(_) => {}
        }
    }
    for event in before {
        if !new.contains_key(event.id.as_str()) {
            changes.push((EventKind::Deleted, item_id(event)));
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::exchange::mailbox::SimBusyType;

    fn event(id: &str, busy: SimBusyType) -> SimEvent {
        let start = Utc::now();
        SimEvent {
            id: id.into(),
            start,
            end: start,
            busy_type: busy,
            subject: None,
            location: None,
            private: false,
            meeting: false,
            all_day: false,
            recurrence: None,
        }
    }

    #[test]
    fn a_calendar_change_is_created_modified_and_deleted_events_by_event_id() {
        let a = event("a", SimBusyType::Busy);
        let b = event("b", SimBusyType::Busy);
        let mut b2 = b.clone();
        b2.busy_type = SimBusyType::OutOfOffice;
        let c = event("c", SimBusyType::Free);
        let changes = calendar_changes("x@contoso.test", &[a.clone(), b], &[b2, c]);
        let kinds: Vec<EventKind> = changes.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            kinds,
            [EventKind::Modified, EventKind::Created, EventKind::Deleted]
        );
        assert!(calendar_changes(
            "x@contoso.test",
            std::slice::from_ref(&a),
            std::slice::from_ref(&a)
        )
        .is_empty());
    }
}
