//! [`StreamingFeed`]: the engine's [`ChangeFeed`] over Exchange's streaming
//! notifications. It subscribes each watched mailbox's calendar, reads the
//! subscriptions on a few GetStreamingEvents connections and turns their
//! events into [`MailboxChange`]s.
//!
//! Exchange's rules it follows (Microsoft, "Handling notification-related
//! errors in EWS in Exchange" and "Maintain affinity between a group of
//! subscriptions and the Mailbox server in Exchange"):
//! - at most 200 subscriptions in one group, read on one connection; every
//!   request of a group is anchored on the group's first mailbox (one
//!   [`NotificationApi::Affinity`] per group);
//! - at most `HangingConnectionLimit` connections per account and
//!   `EWSMaxSubscriptions` subscriptions (configurable: Exchange's
//!   on-premises defaults 3 and 5000); mailboxes beyond stay on the cycle;
//! - a connection ends with `ConnectionStatus` `Closed` at its timeout and is
//!   opened again at once;
//! - `ErrorSubscriptionNotFound`, `ErrorMissedNotificationEvents`,
//!   `ErrorInvalidSubscription`, a dropped connection: subscribe again and
//!   read the mailbox in full ([`MailboxChange::Resync`]), since events may
//!   have been missed;
//! - a throttled Subscribe (`ErrorServerBusy`, a transport error) is tried
//!   again after a growing pause; a refused one (`ErrorAccessDenied`, ...)
//!   leaves the mailbox on the cycle ([`WatchMode::Polled`]) with the reason.
//!
//! The three Exchange calls are behind [`NotificationApi`], so that this
//! logic is tested with a fake (below) and runs over the EWS toolkit in the
//! service ([`EwsNotifications`]).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::{ExchangeSettings, NotificationMode, NotificationSettings};
use crate::replication::{ChangeFeed, FeedStatus, MailboxChange, WatchMode};
use ews_toolkit::client::{EwsClient, EwsError};
use ews_toolkit::notifications::{
    self, Affinity, ConnectionStatus, EventStream, MailboxAccess, StreamLimits,
};

use super::{DirectoryScp, ExchangeCalendars};

/// A failed notification call: Exchange's response code where it gave one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationError {
    /// `ErrorAccessDenied`, `ErrorServerBusy`, ...; `None`: no EWS answer
    /// (connection refused or dropped, HTTP error, timeout).
    pub code: Option<String>,
    /// Free of secrets.
    pub message: String,
}

impl std::fmt::Display for NotificationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.code {
            Some(code) if !self.message.contains(code.as_str()) => {
                write!(f, "{code}: {}", self.message)
            }
            _ => f.write_str(&self.message),
        }
    }
}

/// One message of a GetStreamingEvents response, reduced to what the feed
/// needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamMessage {
    /// Subscriptions with at least one change event (created, modified,
    /// deleted, moved, copied) in this message.
    pub changed: Vec<String>,
    /// The server ended the connection at its timeout (`Closed`).
    pub closed: bool,
    /// Subscriptions Exchange reports as failed: (response code, ids; no
    /// ids means all of the connection's).
    pub failed: Vec<(String, Vec<String>)>,
}

/// An open GetStreamingEvents response.
pub trait EventSource: Send + 'static {
    /// The next message; `None` when the response ended, `Some(Err)` when
    /// the connection dropped or stalled.
    fn next_message(
        &mut self,
    ) -> impl Future<Output = Option<Result<StreamMessage, NotificationError>>> + Send;
}

/// Subscribe, GetStreamingEvents and Unsubscribe for one account.
pub trait NotificationApi: Send + Sync + 'static {
    /// Shared by one group's requests (anchor mailbox, back-end cookie).
    type Affinity: Clone + Send + Sync + 'static;
    type Stream: EventSource;

    /// The affinity of a group whose first mailbox is `anchor_mailbox`.
    fn affinity(&self, anchor_mailbox: &str) -> Self::Affinity;

    /// A streaming subscription to `mailbox`'s calendar; its id.
    fn subscribe(
        &self,
        mailbox: &str,
        affinity: &Self::Affinity,
    ) -> impl Future<Output = Result<String, NotificationError>> + Send;

    /// Opens one GetStreamingEvents connection for `subscription_ids`.
    fn open_stream(
        &self,
        subscription_ids: &[String],
        affinity: &Self::Affinity,
    ) -> impl Future<Output = Result<Self::Stream, NotificationError>> + Send;

    fn unsubscribe(
        &self,
        subscription_id: &str,
        mailbox: &str,
        affinity: &Self::Affinity,
    ) -> impl Future<Output = Result<(), NotificationError>> + Send;
}

/// Subscribe requests sent together (the client's own concurrency limit
/// paces them further); one after the other, 1,000 mailboxes would take
/// 1,000 round trips.
const SUBSCRIBES_IN_FLIGHT: usize = 16;

/// Requests in flight on the feed's own client (Subscribe, Unsubscribe;
/// the streams are held outside this limit).
const SUBSCRIBE_CONCURRENCY: usize = 8;

/// Codes after which the mailbox cannot be subscribed until something
/// changes at the server (rights, the mailbox itself).
const REFUSED_CODES: &[&str] = &[
    "ErrorAccessDenied",
    "ErrorNonExistentMailbox",
    "ErrorImpersonateUserDenied",
    "ErrorImpersonationDenied",
    "ErrorImpersonationFailed",
    "ErrorFolderNotFound",
    "ErrorMailboxStoreUnavailable",
    "ErrorInvalidSmtpAddress",
    "ErrorNoPublicFolderReplicaAvailable",
];

/// Codes that say a subscription is gone or has lost events.
const LOST_CODES: &[&str] = &[
    "ErrorSubscriptionNotFound",
    "ErrorMissedNotificationEvents",
    "ErrorInvalidSubscription",
    "ErrorSubscriptionDelegateAccessNotSupported",
    "ErrorExpiredSubscription",
];

/// Why a refused mailbox is not subscribed, with the fix.
fn refused_reason(error: &NotificationError, mode_impersonation: bool) -> String {
    let fix = if mode_impersonation {
        "the account needs the ApplicationImpersonation role for it"
    } else {
        "the account needs at least Reviewer on its calendar folder (or set exchange.impersonation with the ApplicationImpersonation role)"
    };
    match error.code.as_deref() {
        Some("ErrorNonExistentMailbox") | Some("ErrorInvalidSmtpAddress") => {
            format!("Exchange has no such mailbox ({error})")
        }
        _ => format!("Subscribe refused ({error}); {fix}"),
    }
}

/// A connection closed sooner than this after it opened is opened again
/// only after the first back-off.
const MIN_CONNECTION_LIFETIME: Duration = Duration::from_millis(100);

/// Pauses of the feed; the defaults suit the service, tests shorten them.
#[derive(Debug, Clone)]
pub struct FeedTiming {
    /// The first pause after a throttled or failed call; it doubles up to
    /// `max_backoff`.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// A mailbox whose Subscribe was refused is tried again after this long
    /// (rights may have been granted meanwhile).
    pub refused_retry: Duration,
}

impl Default for FeedTiming {
    fn default() -> FeedTiming {
        FeedTiming {
            first_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(300),
            refused_retry: Duration::from_secs(3600),
        }
    }
}

/// What the feed's tasks share with [`StreamingFeed::status`].
#[derive(Default)]
struct Shared {
    status: FeedStatus,
    /// Per mailbox, for [`StreamingFeed::mode`].
    modes: BTreeMap<String, WatchMode>,
}

/// The engine's change feed over streaming notifications. Dropping it
/// stops its tasks (open connections are closed; subscriptions expire at
/// Exchange on their own).
pub struct StreamingFeed {
    commands: UnboundedSender<Command>,
    shared: Arc<Mutex<Shared>>,
    manager: JoinHandle<()>,
}

enum Command {
    Watch(Vec<String>),
}

impl Drop for StreamingFeed {
    fn drop(&mut self) {
        self.manager.abort();
    }
}

impl StreamingFeed {
    /// Starts the feed; changes go to `changes`. `impersonation` only
    /// shapes the reasons given for refused mailboxes.
    pub fn start<A: NotificationApi>(
        api: A,
        settings: NotificationSettings,
        impersonation: bool,
        timing: FeedTiming,
        changes: UnboundedSender<MailboxChange>,
    ) -> StreamingFeed {
        let (commands, command_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let manager = Manager {
            api: Arc::new(api),
            settings,
            impersonation,
            timing,
            changes,
            shared: shared.clone(),
            events_tx,
            wanted: BTreeSet::new(),
            groups: Vec::new(),
            next_generation: 0,
            pending: BTreeMap::new(),
            subscribe_backoff: None,
            subscribe_retry_at: None,
        };
        let task = tokio::spawn(manager.run(command_rx, events_rx));
        StreamingFeed {
            commands,
            shared,
            manager: task,
        }
    }

    /// How `mailbox` is watched now (`None`: not asked to watch it).
    pub fn mode(&self, mailbox: &str) -> Option<WatchMode> {
        lock(&self.shared).modes.get(mailbox).cloned()
    }
}

impl ChangeFeed for StreamingFeed {
    fn watch(&self, mailboxes: &[String]) {
        // A stopped manager has nothing left to watch with.
        let _ = self.commands.send(Command::Watch(mailboxes.to_vec()));
    }

    fn status(&self) -> FeedStatus {
        lock(&self.shared).status.clone()
    }
}

/// The feed of `exchange.notifications = "off"`: every mailbox polled.
pub struct PolledOnly {
    reason: String,
    watched: Mutex<Vec<String>>,
}

impl PolledOnly {
    pub fn new(reason: impl Into<String>) -> PolledOnly {
        PolledOnly {
            reason: reason.into(),
            watched: Mutex::new(Vec::new()),
        }
    }
}

impl ChangeFeed for PolledOnly {
    fn watch(&self, mailboxes: &[String]) {
        *self.watched.lock().unwrap_or_else(|e| e.into_inner()) = mailboxes.to_vec();
    }

    fn status(&self) -> FeedStatus {
        let watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
        FeedStatus {
            polled: watched
                .iter()
                .map(|m| (m.clone(), self.reason.clone()))
                .collect(),
            ..FeedStatus::default()
        }
    }
}

/// The reason of every mailbox when notifications are off.
pub fn off_reason(mode: NotificationMode) -> Option<&'static str> {
    (mode == NotificationMode::Off)
        .then_some("exchange.notifications is \"off\": read by the periodic cycle only")
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    // A panicked task leaves plain data behind: keep using it.
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a connection task tells the manager.
enum ConnectionEvent {
    Opened {
        generation: u64,
    },
    /// Exchange reports subscriptions failed: (code, ids; no ids: all),
    /// every failure of one message together (the connection is replaced
    /// after the first, and a later event of it would go unheard).
    Lost {
        generation: u64,
        failures: Vec<(String, Vec<String>)>,
    },
    /// The response ended: `None` at `Closed` or the end of the response,
    /// else the error (dropped, refused, stalled).
    Ended {
        generation: u64,
        error: Option<NotificationError>,
    },
}

/// One affinity group: up to `subscriptions_per_connection` mailboxes read
/// on one connection.
struct Group<F> {
    affinity: F,
    /// mailbox -> subscription id.
    members: BTreeMap<String, String>,
    connection: Option<JoinHandle<()>>,
    /// Messages of older connections are ignored.
    generation: u64,
    open: bool,
    /// When the connection was opened (a `Closed` soon after is no
    /// reason to open the next one at once).
    opened_at: Option<Instant>,
    /// The connection must be opened again (members changed, it ended).
    reopen_at: Option<Instant>,
    backoff: Option<Duration>,
    /// Read every member in full once the connection is open again.
    resync_on_open: bool,
    /// Why the connection is not open (for the polled reasons).
    last_error: Option<String>,
}

impl<F> Drop for Group<F> {
    fn drop(&mut self) {
        // A stopped feed (or a group given up) holds no connection.
        if let Some(task) = self.connection.take() {
            task.abort();
        }
    }
}

/// A mailbox wanted but not subscribed: why, and when to try again.
struct Pending {
    reason: String,
    retry_at: Option<Instant>,
    /// It had a subscription that was lost: read it in full once
    /// subscribed again.
    resync: bool,
}

struct Manager<A: NotificationApi> {
    api: Arc<A>,
    settings: NotificationSettings,
    impersonation: bool,
    timing: FeedTiming,
    changes: UnboundedSender<MailboxChange>,
    shared: Arc<Mutex<Shared>>,
    events_tx: UnboundedSender<ConnectionEvent>,
    wanted: BTreeSet<String>,
    groups: Vec<Group<A::Affinity>>,
    next_generation: u64,
    pending: BTreeMap<String, Pending>,
    subscribe_backoff: Option<Duration>,
    subscribe_retry_at: Option<Instant>,
}

impl<A: NotificationApi> Manager<A> {
    async fn run(
        mut self,
        mut commands: UnboundedReceiver<Command>,
        mut events: UnboundedReceiver<ConnectionEvent>,
    ) {
        loop {
            self.reconcile().await;
            self.publish();
            let wake = self.next_wake();
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Watch(mailboxes)) => self.set_wanted(mailboxes).await,
                    None => break,
                },
                Some(event) = events.recv() => self.on_connection_event(event),
                _ = sleep_until(wake) => {}
            }
        }
    }

    fn next_wake(&self) -> Option<Instant> {
        let pending = self
            .pending
            .values()
            .filter_map(|p| p.retry_at)
            .chain(self.subscribe_retry_at)
            .chain(self.groups.iter().filter_map(|g| g.reopen_at));
        pending.min()
    }

    async fn set_wanted(&mut self, mailboxes: Vec<String>) {
        let wanted: BTreeSet<String> = mailboxes.into_iter().collect();
        // Unsubscribe the mailboxes no longer watched.
        for index in 0..self.groups.len() {
            let gone: Vec<(String, String)> = self.groups[index]
                .members
                .iter()
                .filter(|(mailbox, _)| !wanted.contains(*mailbox))
                .map(|(m, id)| (m.clone(), id.clone()))
                .collect();
            for (mailbox, id) in gone {
                let affinity = self.groups[index].affinity.clone();
                if let Err(e) = self.api.unsubscribe(&id, &mailbox, &affinity).await {
                    // It expires at Exchange on its own.
                    tracing::debug!("Unsubscribe of {mailbox} failed ({e})");
                }
                self.groups[index].members.remove(&mailbox);
                self.restart(index, false);
            }
        }
        self.pending.retain(|mailbox, _| wanted.contains(mailbox));
        for mailbox in &wanted {
            if self.group_of(mailbox).is_none() && !self.pending.contains_key(mailbox) {
                self.pending.insert(
                    mailbox.clone(),
                    Pending {
                        reason: "not subscribed yet".to_owned(),
                        retry_at: None,
                        resync: false,
                    },
                );
            }
        }
        self.wanted = wanted;
    }

    fn group_of(&self, mailbox: &str) -> Option<usize> {
        self.groups
            .iter()
            .position(|g| g.members.contains_key(mailbox))
    }

    fn subscribed_count(&self) -> usize {
        self.groups.iter().map(|g| g.members.len()).sum()
    }

    /// The group a new subscription joins: the first with room (`taken`:
    /// places already promised per group), or a new one while connections
    /// are left.
    fn group_with_room(&mut self, mailbox: &str, taken: &BTreeMap<usize, usize>) -> Option<usize> {
        let per_connection = self.settings.subscriptions_per_connection;
        if let Some(index) = self.groups.iter().enumerate().position(|(i, g)| {
            g.members.len() + taken.get(&i).copied().unwrap_or(0) < per_connection
        }) {
            return Some(index);
        }
        if self.groups.len() >= self.settings.max_connections {
            return None;
        }
        self.groups.push(Group {
            affinity: self.api.affinity(mailbox),
            members: BTreeMap::new(),
            connection: None,
            generation: 0,
            open: false,
            opened_at: None,
            reopen_at: None,
            backoff: None,
            resync_on_open: false,
            last_error: None,
        });
        Some(self.groups.len() - 1)
    }

    /// Subscribes what is due, and opens the connections that need it.
    async fn reconcile(&mut self) {
        let now = Instant::now();
        // An emptied group frees its connection for a new group.
        self.groups.retain(|g| !g.members.is_empty());
        if self.subscribe_retry_at.is_none_or(|at| at <= now) {
            self.subscribe_retry_at = None;
            self.subscribe_due(now).await;
        }
        for index in 0..self.groups.len() {
            let group = &self.groups[index];
            // A group made for a round whose Subscribes all failed is empty
            // until the next round (or dropped at the next reconcile).
            if !group.members.is_empty()
                && group.connection.is_none()
                && group.reopen_at.is_none_or(|at| at <= now)
            {
                self.open_connection(index);
            }
        }
    }

    async fn subscribe_due(&mut self, now: Instant) {
        let mut due = self
            .pending
            .iter()
            .filter(|(_, p)| p.retry_at.is_none_or(|at| at <= now))
            .map(|(m, _)| m.clone())
            .collect::<Vec<String>>()
            .into_iter();
        let capacity = self.settings.capacity();
        loop {
            // A round of Subscribes in flight together, each with its group
            // decided first (the places taken by the round counted).
            let mut round: Vec<(String, usize)> = Vec::new();
            let mut taken: BTreeMap<usize, usize> = BTreeMap::new();
            let mut exhausted = true;
            for mailbox in due.by_ref() {
                if self.subscribed_count() + round.len() >= self.settings.max_subscriptions {
                    self.set_pending_reason(&mailbox, format!(
                        "the account's subscription limit is reached ({} subscriptions, exchange.notification_subscriptions; Exchange's EWSMaxSubscriptions)",
                        self.settings.max_subscriptions
                    ));
                    continue;
                }
                let Some(index) = self.group_with_room(&mailbox, &taken) else {
                    self.set_pending_reason(&mailbox, format!(
                        "all {} streaming connections carry {} subscriptions each ({capacity} mailboxes); raise exchange.notification_connections together with Exchange's HangingConnectionLimit",
                        self.settings.max_connections, self.settings.subscriptions_per_connection
                    ));
                    continue;
                };
                *taken.entry(index).or_default() += 1;
                round.push((mailbox, index));
                if round.len() == SUBSCRIBES_IN_FLIGHT {
                    exhausted = false;
                    break;
                }
            }
            if round.is_empty() {
                return;
            }
            let api = &self.api;
            let groups = &self.groups;
            let answers = futures_util::future::join_all(round.iter().map(|(mailbox, index)| {
                let affinity = groups[*index].affinity.clone();
                async move { api.subscribe(mailbox, &affinity).await }
            }))
            .await;
            let mut pause = None;
            for ((mailbox, index), answer) in round.into_iter().zip(answers) {
                match answer {
                    Ok(id) => {
                        self.subscribe_backoff = None;
                        let resync = self.pending.remove(&mailbox).is_some_and(|p| p.resync);
                        self.groups[index].members.insert(mailbox.clone(), id);
                        self.restart(index, false);
                        if resync {
                            // Events from now on queue on the new
                            // subscription: a full read now misses nothing.
                            let _ = self.changes.send(MailboxChange::Resync { mailbox });
                        }
                    }
                    Err(error) if is_refused(&error) => {
                        tracing::info!("{mailbox}: stays on the periodic cycle: {error}");
                        let reason = refused_reason(&error, self.impersonation);
                        if let Some(p) = self.pending.get_mut(&mailbox) {
                            p.reason = reason;
                            p.retry_at = Some(now + self.timing.refused_retry);
                        }
                    }
                    Err(error) => {
                        // Throttled (ErrorServerBusy), over the account's
                        // subscriptions, or Exchange unreachable: the next
                        // ones would fare no better; one pause for the round.
                        let pause = *pause.get_or_insert_with(|| self.backoff_subscribe(now));
                        let reason = if error.code.as_deref()
                            == Some("ErrorExceededSubscriptionCount")
                        {
                            format!(
                                "Exchange refused more subscriptions for the account (ErrorExceededSubscriptionCount): its EWSMaxSubscriptions is below exchange.notification_subscriptions ({}); lower that setting or raise the throttling policy; trying again in {} s",
                                self.settings.max_subscriptions,
                                pause.as_secs()
                            )
                        } else {
                            format!(
                                "Subscribe failed ({error}); trying again in {} s",
                                pause.as_secs()
                            )
                        };
                        tracing::warn!("{mailbox}: {reason}");
                        self.set_pending_reason(&mailbox, reason);
                    }
                }
            }
            if pause.is_some() || exhausted {
                return;
            }
        }
    }

    fn set_pending_reason(&mut self, mailbox: &str, reason: String) {
        if let Some(p) = self.pending.get_mut(mailbox) {
            p.reason = reason;
        }
    }

    fn backoff_subscribe(&mut self, now: Instant) -> Duration {
        let pause = next_backoff(self.subscribe_backoff, &self.timing);
        self.subscribe_backoff = Some(pause);
        self.subscribe_retry_at = Some(now + pause);
        pause
    }

    /// Closes group `index`'s connection so that it is opened again with
    /// the current members (at once, or after its back-off).
    fn restart(&mut self, index: usize, keep_backoff: bool) {
        let group = &mut self.groups[index];
        if let Some(task) = group.connection.take() {
            task.abort();
        }
        group.open = false;
        if !keep_backoff {
            group.reopen_at = None;
        }
    }

    fn open_connection(&mut self, index: usize) {
        self.next_generation += 1;
        let generation = self.next_generation;
        let group = &mut self.groups[index];
        group.generation = generation;
        group.reopen_at = None;
        let ids: Vec<String> = group.members.values().cloned().collect();
        let mailboxes: BTreeMap<String, String> = group
            .members
            .iter()
            .map(|(m, id)| (id.clone(), m.clone()))
            .collect();
        let api = self.api.clone();
        let affinity = group.affinity.clone();
        let events = self.events_tx.clone();
        let changes = self.changes.clone();
        let shared = self.shared.clone();
        group.connection = Some(tokio::spawn(async move {
            let ended = |error| ConnectionEvent::Ended { generation, error };
            let mut stream = match api.open_stream(&ids, &affinity).await {
                Ok(stream) => stream,
                Err(error) => {
                    let _ = events.send(ended(Some(error)));
                    return;
                }
            };
            let _ = events.send(ConnectionEvent::Opened { generation });
            loop {
                match stream.next_message().await {
                    None => {
                        let _ = events.send(ended(None));
                        return;
                    }
                    Some(Err(error)) => {
                        let _ = events.send(ended(Some(error)));
                        return;
                    }
                    Some(Ok(message)) => {
                        if !message.changed.is_empty() {
                            lock(&shared).status.last_event_at = Some(Utc::now());
                        }
                        for id in &message.changed {
                            if let Some(mailbox) = mailboxes.get(id) {
                                let _ = changes.send(MailboxChange::Changed {
                                    mailbox: mailbox.clone(),
                                });
                            }
                        }
                        if !message.failed.is_empty() {
                            let _ = events.send(ConnectionEvent::Lost {
                                generation,
                                failures: message.failed,
                            });
                        }
                        if message.closed {
                            let _ = events.send(ended(None));
                            return;
                        }
                    }
                }
            }
        }));
    }

    fn on_connection_event(&mut self, event: ConnectionEvent) {
        let generation = match &event {
            ConnectionEvent::Opened { generation }
            | ConnectionEvent::Lost { generation, .. }
            | ConnectionEvent::Ended { generation, .. } => *generation,
        };
        // Groups come and go: a connection is known by its generation; one
        // already replaced is not listened to.
        let Some(index) = self.groups.iter().position(|g| g.generation == generation) else {
            return;
        };
        match event {
            ConnectionEvent::Opened { .. } => {
                let group = &mut self.groups[index];
                group.open = true;
                group.opened_at = Some(Instant::now());
                group.backoff = None;
                group.last_error = None;
                if std::mem::take(&mut group.resync_on_open) {
                    for mailbox in group.members.keys() {
                        let _ = self.changes.send(MailboxChange::Resync {
                            mailbox: mailbox.clone(),
                        });
                    }
                }
            }
            ConnectionEvent::Lost { failures, .. } => {
                for (code, subscription_ids) in failures {
                    tracing::info!(
                        "Exchange lost {} subscription(s) ({code}); subscribing again",
                        if subscription_ids.is_empty() {
                            "all".to_owned()
                        } else {
                            subscription_ids.len().to_string()
                        }
                    );
                    self.lose_subscriptions(index, &subscription_ids, &code);
                }
                self.restart(index, false);
            }
            ConnectionEvent::Ended { error: None, .. } => {
                // Closed at the connection timeout: open again at once; the
                // subscriptions kept their events meanwhile. A server that
                // closes at once is not asked again in a tight loop.
                let first_backoff = self.timing.first_backoff;
                let group = &mut self.groups[index];
                group.connection = None;
                group.open = false;
                if group
                    .opened_at
                    .is_none_or(|at| at.elapsed() < MIN_CONNECTION_LIFETIME)
                {
                    group.reopen_at = Some(Instant::now() + first_backoff);
                }
            }
            ConnectionEvent::Ended {
                error: Some(error), ..
            } => {
                let lost = error
                    .code
                    .as_deref()
                    .is_some_and(|c| LOST_CODES.contains(&c));
                if lost {
                    let code = error.code.clone().unwrap_or_default();
                    self.lose_subscriptions(index, &[], &code);
                    self.restart(index, false);
                    return;
                }
                let now = Instant::now();
                let timing = self.timing.clone();
                let max_connections = self.settings.max_connections;
                let group = &mut self.groups[index];
                // A connection that had been working is opened again at
                // once; one that failed to open or dropped at once waits,
                // longer each time.
                let healthy = group.open
                    && group
                        .opened_at
                        .is_some_and(|at| at.elapsed() >= MIN_CONNECTION_LIFETIME);
                let pause = if healthy {
                    Duration::ZERO
                } else {
                    next_backoff(group.backoff, &timing)
                };
                tracing::warn!(
                    "a notification connection ended ({error}); opening it again in {} ms",
                    pause.as_millis()
                );
                group.backoff = (!healthy).then_some(pause);
                group.connection = None;
                group.open = false;
                group.reopen_at = Some(now + pause);
                // Events of the gap may be lost with the connection.
                group.resync_on_open = true;
                group.last_error = Some(
                    if error.code.as_deref() == Some("ErrorExceededConnectionCount") {
                        format!(
                            "{error}; exchange.notification_connections ({}) is above what the account may hold (Exchange's HangingConnectionLimit): lower it or raise the limit",
                            max_connections
                        )
                    } else {
                        error.to_string()
                    },
                );
            }
        }
    }

    /// Forgets the subscriptions `ids` of group `index` (all for none) and
    /// queues their mailboxes to be subscribed again and read in full.
    fn lose_subscriptions(&mut self, index: usize, ids: &[String], code: &str) {
        let members = &mut self.groups[index].members;
        let lost: Vec<String> = members
            .iter()
            .filter(|(_, id)| ids.is_empty() || ids.contains(id))
            .map(|(m, _)| m.clone())
            .collect();
        for mailbox in &lost {
            members.remove(mailbox);
        }
        lock(&self.shared).status.resubscribed += lost.len() as u64;
        for mailbox in lost {
            self.pending.insert(
                mailbox,
                Pending {
                    reason: format!("subscription lost ({code}); subscribing again"),
                    retry_at: None,
                    resync: true,
                },
            );
        }
    }

    /// Writes the state into the shared status.
    fn publish(&self) {
        let mut modes = BTreeMap::new();
        let mut subscribed = 0;
        let mut connections = 0;
        for group in &self.groups {
            if group.open {
                connections += 1;
            }
            for mailbox in group.members.keys() {
                let mode = if group.open {
                    subscribed += 1;
                    WatchMode::Subscribed
                } else {
                    let reason = match &group.last_error {
                        Some(error) => format!(
                            "its notification connection is down ({error}); opening it again"
                        ),
                        None => "its notification connection is being opened".to_owned(),
                    };
                    WatchMode::Polled { reason }
                };
                modes.insert(mailbox.clone(), mode);
            }
        }
        for (mailbox, pending) in &self.pending {
            modes.insert(
                mailbox.clone(),
                WatchMode::Polled {
                    reason: pending.reason.clone(),
                },
            );
        }
        let polled = modes
            .iter()
            .filter_map(|(m, mode)| match mode {
                WatchMode::Polled { reason } => Some((m.clone(), reason.clone())),
                WatchMode::Subscribed => None,
            })
            .collect();
        let mut shared = lock(&self.shared);
        shared.status.subscribed = subscribed;
        shared.status.connections = connections;
        shared.status.polled = polled;
        shared.modes = modes;
    }
}

fn is_refused(error: &NotificationError) -> bool {
    error
        .code
        .as_deref()
        .is_some_and(|c| REFUSED_CODES.contains(&c))
}

fn next_backoff(previous: Option<Duration>, timing: &FeedTiming) -> Duration {
    match previous {
        None => timing.first_backoff,
        Some(pause) => (pause * 2).min(timing.max_backoff),
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;

// ---------------------------------------------------------------- over EWS

/// [`NotificationApi`] over the EWS toolkit: one client for the account
/// (created on the first call: the configured URL, or autodiscover for the
/// first mailbox), impersonating each mailbox or using folder rights.
pub struct EwsNotifications {
    settings: ExchangeSettings,
    scp: DirectoryScp,
    client: tokio::sync::OnceCell<EwsClient>,
}

impl EwsNotifications {
    pub fn new(settings: ExchangeSettings, scp: DirectoryScp) -> EwsNotifications {
        EwsNotifications {
            settings,
            scp,
            client: tokio::sync::OnceCell::new(),
        }
    }

    fn access(&self) -> MailboxAccess {
        if self.settings.impersonation {
            MailboxAccess::Impersonation
        } else {
            MailboxAccess::FolderRights
        }
    }

    async fn client(&self, mailbox: &str) -> Result<&EwsClient, NotificationError> {
        let failed = |message: String| NotificationError {
            code: None,
            message,
        };
        self.client
            .get_or_try_init(|| async {
                let url = match &self.settings.url {
                    Some(url) => url.clone(),
                    None => {
                        super::autodiscover::discover(&self.settings, &self.scp, mailbox)
                            .await
                            .map_err(|e| failed(e.to_string()))?
                            .ews_url
                    }
                };
                // Its own connections and pace, beside the availability
                // reader's: after a restart every mailbox is subscribed
                // again, and each Subscribe is a round trip. Together they
                // stay below Exchange 2013+'s EWSMaxConcurrency (27).
                let mut settings = self.settings.clone();
                settings.transport.max_connections_per_host = SUBSCRIBE_CONCURRENCY;
                let transport =
                    super::exchange_transport(&settings).map_err(|e| failed(e.to_string()))?;
                EwsClient::new(Arc::new(transport), url)
                    .with_version(self.settings.version)
                    .with_resilience(ews_toolkit::resilience::ResilienceConfig {
                        concurrency: SUBSCRIBE_CONCURRENCY,
                        ..super::resilience_config(&self.settings)
                    })
                    .map_err(|e| failed(e.to_string()))
            })
            .await
    }
}

fn ews_error(error: EwsError) -> NotificationError {
    NotificationError {
        code: error.fault_code().map(str::to_owned),
        message: error.to_string(),
    }
}

/// An open GetStreamingEvents answer of the toolkit.
pub struct EwsEventSource(EventStream);

impl EventSource for EwsEventSource {
    async fn next_message(&mut self) -> Option<Result<StreamMessage, NotificationError>> {
        let message = match self.0.next_message().await? {
            Ok(message) => message,
            Err(error) => return Some(Err(ews_error(error))),
        };
        Some(Ok(StreamMessage {
            changed: message
                .notifications
                .into_iter()
                .filter(|n| !n.events.is_empty())
                .map(|n| n.subscription_id)
                .collect(),
            closed: message.connection_status == Some(ConnectionStatus::Closed),
            failed: message
                .failed_subscriptions
                .into_iter()
                .map(|f| (f.code, f.subscription_ids))
                .collect(),
        }))
    }
}

impl NotificationApi for EwsNotifications {
    type Affinity = Affinity;
    type Stream = EwsEventSource;

    fn affinity(&self, anchor_mailbox: &str) -> Affinity {
        Affinity::new(anchor_mailbox)
    }

    async fn subscribe(
        &self,
        mailbox: &str,
        affinity: &Affinity,
    ) -> Result<String, NotificationError> {
        let client = self.client(mailbox).await?;
        notifications::subscribe(client, mailbox, self.access(), affinity)
            .await
            .map_err(ews_error)
    }

    async fn open_stream(
        &self,
        subscription_ids: &[String],
        affinity: &Affinity,
    ) -> Result<EwsEventSource, NotificationError> {
        let anchor = affinity.anchor_mailbox();
        let client = self.client(anchor).await?;
        // With impersonation the group's requests act as its anchor mailbox,
        // the one X-AnchorMailbox names ("Maintain affinity between a group
        // of subscriptions and the Mailbox server in Exchange").
        let impersonate = self.settings.impersonation.then_some(anchor);
        notifications::open_event_stream(
            client,
            subscription_ids,
            self.settings.notifications.connection_timeout_minutes,
            affinity,
            impersonate,
            StreamLimits::default(),
        )
        .await
        .map(EwsEventSource)
        .map_err(ews_error)
    }

    async fn unsubscribe(
        &self,
        subscription_id: &str,
        mailbox: &str,
        affinity: &Affinity,
    ) -> Result<(), NotificationError> {
        let client = self.client(mailbox).await?;
        let impersonate = self.settings.impersonation.then_some(mailbox);
        notifications::unsubscribe(client, subscription_id, impersonate, affinity)
            .await
            .map_err(ews_error)
    }
}

/// The service's change feed for `settings`: streaming notifications
/// through Exchange's EWS, or every mailbox polled when they are off.
pub fn feed_for(
    settings: &ExchangeSettings,
    calendars: &ExchangeCalendars,
    changes: UnboundedSender<MailboxChange>,
) -> Arc<dyn ChangeFeed> {
    if let Some(reason) = off_reason(settings.notifications.mode) {
        return Arc::new(PolledOnly::new(reason));
    }
    Arc::new(StreamingFeed::start(
        EwsNotifications::new(settings.clone(), calendars.scp()),
        settings.notifications.clone(),
        settings.impersonation,
        FeedTiming::default(),
        changes,
    ))
}
