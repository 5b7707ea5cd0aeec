//! The engine's view of the outside: the UCServer (users in, appointments
//! out), the calendar source (Exchange) and the state store. Plain types and
//! small traits, so that the engine does not depend on the clients' internals
//! and the demo and tests can plug in the simulators' clients unchanged.
//! Directory users come through [`crate::directory::UserDirectory`].

use std::future::Future;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc::UnboundedSender;

use crate::ucserver::{Appointment, UserFilter, UserProfile};
use ews_toolkit::availability::MailboxAvailability;

use super::report::CycleReport;

/// A failed UCServer call. `retryable`: the same call may succeed later
/// (connection lost, timeout, session expired); otherwise the request itself
/// was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct WriteError {
    pub message: String,
    pub retryable: bool,
}

/// The UCServer as the engine uses it.
pub trait UcServerPort: Send + Sync {
    /// The users whose calendars may be replicated.
    fn list_users(
        &self,
        filter: UserFilter,
    ) -> impl Future<Output = Result<Vec<UserProfile>, WriteError>> + Send;

    /// Replaces `user_name`'s appointment list (data source EWS) with
    /// `appointments`; an empty slice clears it.
    fn write_appointments(
        &self,
        user_name: &str,
        appointments: &[Appointment],
    ) -> impl Future<Output = Result<(), WriteError>> + Send;
}

/// A calendar source failure that affects every mailbox asked for (server
/// down, authentication refused); per-mailbox errors are inside
/// [`MailboxAvailability::result`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    pub message: String,
}

/// Calendars by mailbox address (Exchange's `GetUserAvailability`, batched,
/// split and throttled by the source itself).
pub trait CalendarSource: Send + Sync {
    /// One entry per requested mailbox, in any order, events of the whole
    /// window `[start, end)`.
    fn read_calendars(
        &self,
        mailboxes: &[String],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<MailboxAvailability>, SourceError>> + Send;

    /// Like [`Self::read_calendars`], but sends each mailbox's answer to
    /// `ready` as soon as it is complete, so the engine maps and writes the
    /// first calendars while the rest are still being read. On `Err` the
    /// mailboxes not sent were not read. The default sends everything once
    /// the whole read is done.
    fn read_calendars_each(
        &self,
        mailboxes: &[String],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        ready: UnboundedSender<MailboxAvailability>,
    ) -> impl Future<Output = Result<(), SourceError>> + Send {
        async move {
            for answer in self.read_calendars(mailboxes, start, end).await? {
                // A closed receiver means the cycle stopped listening.
                let _ = ready.send(answer);
            }
            Ok(())
        }
    }
}

/// A state store failure (file unreadable, disk full).
#[derive(Debug, thiserror::Error)]
#[error("state database {path}: {message}")]
pub struct StateError {
    pub path: String,
    pub message: String,
}

/// What the store knows about one UCServer user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub user_name: String,
    /// Hash of the appointment list last written successfully (hex).
    pub written_hash: Option<String>,
    pub written_at: Option<DateTime<Utc>>,
    /// The last failure (already free of secrets and private subjects).
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    /// Hash of a list sent to the UCServer and not answered yet: recorded
    /// before the write is sent, cleared by its answer.
    pub sending_hash: Option<String>,
    /// Hash of a list sent whose answer never came (the process was killed,
    /// the connection dropped, the write timed out): the UCServer may have
    /// stored it, or may still store it late, after a newer list. While set,
    /// the user is written every cycle; a write of this same list clears it.
    pub unsettled_hash: Option<String>,
}

/// A user who could not be replicated in a cycle, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserFailure {
    pub user_name: String,
    pub reason: String,
}

/// The summary of one cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CycleRecord {
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// Users the UCServer listed.
    pub users_listed: u64,
    /// Lists written to the UCServer (changed since the last write).
    pub written: u64,
    /// Users read successfully whose list had not changed.
    pub unchanged: u64,
    /// Users without a directory match, a mailbox, or out of scope.
    pub skipped: u64,
    pub failed: Vec<UserFailure>,
    /// The cycle took longer than the interval.
    pub overran: bool,
    /// A cycle-wide failure (UCServer or directory unreachable).
    pub error: Option<String>,
    /// Only the users named by `once --user` were handled: the counts are
    /// not the whole site's.
    pub partial: bool,
    /// No user was handled: the cycle failed as a whole (`error`), or the
    /// service could not connect to start one.
    pub could_not_run: bool,
    /// The tries this record stands for: 1, or more for a row of the
    /// service failing to connect the same way again and again (the store
    /// keeps one row per such streak).
    pub attempts: u64,
}

/// Persistent state: the last written list per user and the cycle history.
/// Every `record_*` is atomic: after a crash the store holds either the old
/// or the new record, never half of one.
pub trait StateStore: Send + Sync {
    fn user(&self, user_name: &str) -> Result<Option<UserRecord>, StateError>;
    fn users(&self) -> Result<Vec<UserRecord>, StateError>;
    /// A list is about to be sent (its hash, durable before the write).
    fn record_sending(&self, user_name: &str, hash: &str) -> Result<(), StateError>;
    /// At the start of a cycle nothing of this engine is in flight: every
    /// send still recorded got no answer. Each becomes the user's unsettled
    /// list. Returns how many.
    fn settle_unanswered_sends(&self) -> Result<usize, StateError>;
    /// A list was written successfully; clears the user's last error and
    /// the send. An unsettled list other than this one becomes this one, so
    /// that the next cycle writes once more, after a late store of the
    /// unsettled list could have happened; an unsettled list equal to this
    /// one is cleared.
    fn record_written(
        &self,
        user_name: &str,
        hash: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StateError>;
    /// Reading or writing the user failed; the written hash is kept.
    fn record_failure(
        &self,
        user_name: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StateError>;
    /// The user was read and found unchanged: forget the last failure (the
    /// written hash and time stay as they are).
    fn clear_failure(&self, user_name: &str) -> Result<(), StateError>;
    fn record_cycle(&self, cycle: &CycleRecord) -> Result<(), StateError>;
    /// The newest `limit` cycles, newest first.
    fn recent_cycles(&self, limit: usize) -> Result<Vec<CycleRecord>, StateError>;
    /// The change feed's status now (replacing the one recorded before),
    /// for `status`, which reads the store and not the running service.
    /// Stores that keep no such thing ignore it.
    fn record_feed_status(&self, _record: &FeedRecord) -> Result<(), StateError> {
        Ok(())
    }
    /// The change feed's status last recorded; `None` when none was.
    fn feed_status(&self) -> Result<Option<FeedRecord>, StateError> {
        Ok(None)
    }
}

/// A shared store (the service keeps one and hands it to each engine it
/// builds, e.g. after a reconnect).
impl<T: StateStore + ?Sized> StateStore for std::sync::Arc<T> {
    fn user(&self, user_name: &str) -> Result<Option<UserRecord>, StateError> {
        (**self).user(user_name)
    }
    fn users(&self) -> Result<Vec<UserRecord>, StateError> {
        (**self).users()
    }
    fn record_sending(&self, user_name: &str, hash: &str) -> Result<(), StateError> {
        (**self).record_sending(user_name, hash)
    }
    fn settle_unanswered_sends(&self) -> Result<usize, StateError> {
        (**self).settle_unanswered_sends()
    }
    fn record_written(
        &self,
        user_name: &str,
        hash: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StateError> {
        (**self).record_written(user_name, hash, at)
    }
    fn record_failure(
        &self,
        user_name: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StateError> {
        (**self).record_failure(user_name, reason, at)
    }
    fn clear_failure(&self, user_name: &str) -> Result<(), StateError> {
        (**self).clear_failure(user_name)
    }
    fn record_cycle(&self, cycle: &CycleRecord) -> Result<(), StateError> {
        (**self).record_cycle(cycle)
    }
    fn recent_cycles(&self, limit: usize) -> Result<Vec<CycleRecord>, StateError> {
        (**self).recent_cycles(limit)
    }
    fn record_feed_status(&self, record: &FeedRecord) -> Result<(), StateError> {
        (**self).record_feed_status(record)
    }
    fn feed_status(&self) -> Result<Option<FeedRecord>, StateError> {
        (**self).feed_status()
    }
}

/// A server the engine talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Server {
    UcServer,
    Directory,
    Exchange,
}

impl Server {
    pub const ALL: [Server; 3] = [Server::UcServer, Server::Directory, Server::Exchange];

    /// Lower-case name for metric labels and logs.
    pub fn label(self) -> &'static str {
        match self {
            Server::UcServer => "ucserver",
            Server::Directory => "directory",
            Server::Exchange => "exchange",
        }
    }

    /// As people write it.
    pub fn display_name(self) -> &'static str {
        match self {
            Server::UcServer => "UCServer",
            Server::Directory => "directory",
            Server::Exchange => "Exchange",
        }
    }
}

/// Told what the engine does as it happens (metrics, the status page).
/// Every method defaults to doing nothing; calls come from the cycle's own
/// task and must return quickly.
pub trait CycleObserver: Send + Sync {
    /// A cycle (not a dry run) starts.
    fn cycle_started(&self, _started_at: DateTime<Utc>) {}
    /// `server` answered (the UCServer listed its users, the directory was
    /// read, Exchange was read).
    fn server_reached(&self, _server: Server) {}
    /// `server` could not be used at all; `reason` is the error, free of
    /// secrets and subjects.
    fn server_unreachable(&self, _server: Server, _reason: &str) {}
    /// One appointment list sent to the UCServer was accepted or not
    /// (a retried write counts twice).
    fn ucserver_write(&self, _accepted: bool) {}
    /// A cycle (not a dry run) ended, whatever its outcome.
    fn cycle_finished(&self, _report: &CycleReport) {}
    /// The push loop received a change event (before de-duplication).
    fn change_received(&self, _change: &MailboxChange) {}
    /// A push refresh ([`Engine::refresh_mailboxes`](super::Engine::refresh_mailboxes),
    /// not a dry run) ended, whatever its outcome.
    fn push_refresh_finished(&self, _report: &CycleReport) {}
}

/// The observer of an engine nobody watches.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl CycleObserver for NoObserver {}

/// What a change feed (Exchange's streaming notifications) says about a
/// watched mailbox. Both kinds make the engine read that mailbox soon; they
/// are told apart for the log and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxChange {
    /// An event arrived for the mailbox's calendar.
    Changed { mailbox: String },
    /// Events may have been missed (the subscription was lost and made
    /// again, the connection dropped, the server restarted): read it in
    /// full at once.
    Resync { mailbox: String },
}

impl MailboxChange {
    pub fn mailbox(&self) -> &str {
        match self {
            MailboxChange::Changed { mailbox } | MailboxChange::Resync { mailbox } => mailbox,
        }
    }
}

/// How a mailbox's calendar changes reach the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchMode {
    /// Subscribed: changes arrive as events within seconds.
    Subscribed,
    /// Read by the periodic cycle only; `reason` says why (notifications
    /// off, access denied, the account's subscription limit reached).
    Polled { reason: String },
}

/// What a change feed is doing, for `status` and the monitoring page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedStatus {
    /// Mailboxes with a live subscription.
    pub subscribed: usize,
    /// Mailboxes read by the cycle only, each with the reason.
    pub polled: Vec<(String, String)>,
    /// Event connections (GetStreamingEvents) held open now.
    pub connections: usize,
    /// When the last change event arrived (keep-alives do not count).
    pub last_event_at: Option<DateTime<Utc>>,
    /// Subscriptions lost and made again since the start.
    pub resubscribed: u64,
}

/// The change feed's status and the push loop's counts at one moment, as
/// the state store keeps it for `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedRecord {
    pub recorded_at: DateTime<Utc>,
    pub feed: FeedStatus,
    /// Change events received by the push loop since the service started.
    pub changes: u64,
    /// Of these, resyncs (events may have been missed).
    pub resyncs: u64,
    /// Push refreshes run, and the lists they wrote.
    pub refreshes: u64,
    pub written: u64,
    /// Mailboxes polled: `feed.polled` may hold only the first of them
    /// (the state database keeps at most 100).
    pub polled_total: usize,
}

/// A source of [`MailboxChange`]s (they arrive on the channel the feed was
/// built with). The engine tells it which mailboxes to watch after every
/// full cycle; the feed subscribes the new ones and drops the others.
pub trait ChangeFeed: Send + Sync {
    /// Watch exactly these mailboxes from now on.
    fn watch(&self, mailboxes: &[String]);
    /// What the feed is doing now.
    fn status(&self) -> FeedStatus;
}
