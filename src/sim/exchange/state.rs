//! What the running simulator holds, shared by its handle
//! ([`ExchangeSim`](super::ExchangeSim)) and its request handler: the
//! mailboxes, knobs and pending faults, and what it saw (counters, request
//! records).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::mailbox::SimMailbox;
use super::settings::{InjectedFault, Knobs, SimAccount};
use super::soap::ServerVersionInfo;
use super::subscriptions::{calendar_changes, NotificationCounters, Subscriptions};
use crate::sim::auth::AuthCounters;
use crate::sim::autodiscover::AutodiscoverResponder;

/// Request records kept (the oldest tenth is dropped beyond it).
pub const MAX_RECORDS: usize = 100_000;

/// One EWS request as the simulator saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub arrived: Instant,
    /// `GetUserAvailability`, ..., or `-` when the body was not understood.
    pub operation: String,
    /// The mailboxes a GetUserAvailability asked for.
    pub mailboxes: Vec<String>,
    /// The window a GetUserAvailability asked for (UTC).
    pub window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// The authenticated account (`DOMAIN\user`).
    pub account: Option<String>,
    /// What it got: `ok`, a response code (`ErrorServerBusy`), an injected
    /// fault (`fault:ConnectionReset`), `http:503`.
    pub outcome: String,
    /// The `X-AnchorMailbox` HTTP header, when sent.
    pub anchor_mailbox: Option<String>,
    /// The `X-BackEndOverrideCookie` the request carried (`Cookie:`), when
    /// it did.
    pub backend_cookie: Option<String>,
}

/// Counters a test or benchmark reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExchangeCounters {
    /// EWS requests that reached the handler (authenticated).
    pub requests: u64,
    /// By operation name.
    pub requests_by_operation: BTreeMap<String, u64>,
    /// Mailboxes asked for in all GetUserAvailability requests.
    pub mailboxes_requested: u64,
    pub current_concurrent: usize,
    pub peak_concurrent: usize,
    /// Answers refused for concurrency or injected as busy.
    pub busy_answers: u64,
    pub faults_injected: u64,
    /// TCP connections accepted.
    pub connections: u64,
    pub auth: AuthCounters,
    /// Streaming notifications.
    pub notifications: NotificationCounters,
}

pub(super) struct State {
    pub(super) mailboxes: Vec<SimMailbox>,
    /// Lower-case SMTP -> index in `mailboxes`.
    pub(super) index: HashMap<String, usize>,
    pub(super) knobs: Knobs,
    pub(super) faults: VecDeque<InjectedFault>,
    pub(super) counters: ExchangeCounters,
    pub(super) records: Vec<RequestRecord>,
    /// Lower-case SMTP -> response code a GetUserAvailability answers for
    /// that mailbox instead of its calendar.
    pub(super) mailbox_errors: HashMap<String, String>,
    /// Lower-case SMTP -> latency added when a GetUserAvailability asks for
    /// that mailbox (a slow mailbox server).
    pub(super) mailbox_latency: HashMap<String, Duration>,
    pub(super) subscriptions: Subscriptions,
}

impl State {
    pub(super) fn reindex(&mut self) {
        self.index = self
            .mailboxes
            .iter()
            .enumerate()
            .map(|(i, m)| (m.smtp.to_ascii_lowercase(), i))
            .collect();
    }

    /// Changes the mailbox at `index` and queues the events the change
    /// makes on its subscriptions.
    pub(super) fn change_mailbox<T>(
        &mut self,
        index: usize,
        change: impl FnOnce(&mut SimMailbox) -> T,
    ) -> T {
        let before = self.mailboxes[index].events.clone();
        let result = change(&mut self.mailboxes[index]);
        let mailbox = &self.mailboxes[index];
        let changes = calendar_changes(&mailbox.smtp, &before, &mailbox.events);
        let smtp = mailbox.smtp.clone();
        self.reindex();
        self.queue_events(&smtp, &changes);
        result
    }

    /// Adds a mailbox or replaces the one with its address: a replaced
    /// calendar's differences are events.
    pub(super) fn upsert_mailbox(&mut self, mailbox: SimMailbox) {
        match self.index.get(&mailbox.smtp.to_ascii_lowercase()) {
            Some(&i) => self.change_mailbox(i, |m| *m = mailbox),
            None => {
                self.mailboxes.push(mailbox);
                self.reindex();
            }
        }
    }

    /// Removes a mailbox: its items are deleted (events on subscriptions to
    /// it, which stay until they expire or are ended).
    pub(super) fn remove_mailbox(&mut self, smtp: &str) -> bool {
        let Some(&index) = self.index.get(&smtp.to_ascii_lowercase()) else {
            return false;
        };
        let removed = self.mailboxes.remove(index);
        self.reindex();
        let changes = calendar_changes(&removed.smtp, &removed.events, &[]);
        self.queue_events(&removed.smtp, &changes);
        true
    }

    fn queue_events(&mut self, smtp: &str, changes: &[(super::subscriptions::EventKind, String)]) {
        let knobs = &self.knobs.notifications;
        let due = std::time::Instant::now() + knobs.notification_delay;
        let max_queued = knobs.max_queued_events;
        let moves = knobs.deletes_as_moves;
        self.subscriptions
            .record(smtp, changes, due, max_queued, moves);
    }

    pub(super) fn mailbox(&self, smtp: &str) -> Option<&SimMailbox> {
        self.index
            .get(&smtp.to_ascii_lowercase())
            .map(|&i| &self.mailboxes[i])
    }
}

pub(crate) struct Shared {
    pub(super) state: Mutex<State>,
    pub(super) accounts: Vec<SimAccount>,
    pub(super) server_version: ServerVersionInfo,
    /// `/autodiscover/*` of the same host, as on a Client Access server.
    pub(crate) autodiscover: Arc<AutodiscoverResponder>,
}

impl Shared {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("exchange sim state lock")
    }
}
