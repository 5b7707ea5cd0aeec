//! State shared by the simulator's HTTP handlers and WebSocket sessions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, watch};

use super::users::SimUser;
use crate::ucserver::asn::{AsnAppointmentEntry, AsnRequestError};

/// A createsession request as the simulator received it (credentials
/// reduced to the user name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCreateSession {
    pub method: String,
    pub path_and_query: String,
    pub basic_user: Option<String>,
    pub content_type: Option<String>,
    pub x_no401: Option<String>,
    pub x_simple: Option<String>,
    pub x_ucsid: Option<String>,
    pub body: String,
}

/// One accepted `asnAppointmentSetEntryList`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteRecord {
    pub at: DateTime<Utc>,
    pub entries: usize,
}

pub(super) struct Session {
    pub user: String,
    pub admin: bool,
    pub last_activity: Instant,
}

#[derive(Default)]
pub(super) struct Knobs {
    pub latency: Duration,
    pub drop_before: HashMap<String, u32>,
    pub drop_after: HashMap<String, u32>,
    pub refuse_sessions: u32,
    pub fail: HashMap<String, (u32, AsnRequestError)>,
    /// Writes arriving while set wait, unprocessed, for the next release.
    pub hold_writes: bool,
}

impl Knobs {
    /// Consumes one use of a counted knob for `operation`.
    pub fn take(map: &mut HashMap<String, u32>, operation: &str) -> bool {
        match map.get_mut(operation) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }
}

pub(super) struct State {
    pub form: super::MessageForm,
    pub ucsid: Option<String>,
    pub session_idle_timeout: Duration,
    pub users: Users,
    pub sessions: HashMap<String, Session>,
    pub store: HashMap<String, Vec<AsnAppointmentEntry>>,
    pub writes: HashMap<String, Vec<WriteRecord>>,
    pub keep_alives: u64,
    /// WebSocket close frames received from clients.
    pub close_frames: u64,
    pub sessions_created: u64,
    pub admin_logins: u64,
    pub received: Vec<String>,
    pub createsession_requests: Vec<RecordedCreateSession>,
    pub knobs: Knobs,
    /// Connections opened before this epoch are dropped.
    pub drop_epoch: u64,
    pub next_session: u64,
}

/// The simulator's users, found by name (case-insensitively) through an
/// index: a linear search per write made 10,000 writes quadratic. The list
/// is fixed at start and names cannot change, so the index stays right.
pub(super) struct Users {
    list: Vec<SimUser>,
    by_name: HashMap<String, usize>,
}

impl Users {
    pub fn new(list: Vec<SimUser>) -> Self {
        let mut by_name = HashMap::with_capacity(list.len());
        for (i, user) in list.iter().enumerate() {
            // the first of equal names wins, as a linear search would
            by_name
                .entry(user.user_name.to_ascii_lowercase())
                .or_insert(i);
        }
        Users { list, by_name }
    }

    pub fn get(&self, name: &str) -> Option<&SimUser> {
        let i = *self.by_name.get(&name.to_ascii_lowercase())?;
        self.list.get(i)
    }

    /// False when there is no such user.
    pub fn set_online(&mut self, name: &str, online: bool) -> bool {
        match self.by_name.get(&name.to_ascii_lowercase()) {
            Some(&i) => {
                self.list[i].online = online;
                true
            }
            None => false,
        }
    }

    pub fn iter(&self) -> std::slice::Iter<'_, SimUser> {
        self.list.iter()
    }

    pub fn to_vec(&self) -> Vec<SimUser> {
        self.list.clone()
    }
}

impl State {
    pub fn user(&self, name: &str) -> Option<&SimUser> {
        self.users.get(name)
    }

    /// Removes sessions idle for longer than the timeout.
    pub fn expire_idle(&mut self) {
        let timeout = self.session_idle_timeout;
        self.sessions
            .retain(|_, s| s.last_activity.elapsed() <= timeout);
    }
}

pub(super) struct Shared {
    state: Mutex<State>,
    /// Bumped whenever connections must re-check their session or the drop
    /// epoch.
    pub changes: watch::Sender<u64>,
    /// Events (ROSE JSON) to send on every open WebSocket.
    /// Events as bare ROSE JSON text.
    pub events: broadcast::Sender<String>,
    /// Invokes received and not yet finished (answered or dropped), held
    /// ones included.
    in_progress: AtomicUsize,
    /// Writes waiting for a release (see `Knobs::hold_writes`).
    held: AtomicUsize,
    /// Bumped by each release of the held writes.
    releases: watch::Sender<u64>,
}

/// Counts one invoke as in progress while it lives.
pub(super) struct InProgress<'a>(&'a AtomicUsize);

impl Drop for InProgress<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Shared {
    pub fn new(state: State) -> Self {
        Shared {
            state: Mutex::new(state),
            changes: watch::channel(0).0,
            events: broadcast::channel(64).0,
            in_progress: AtomicUsize::new(0),
            held: AtomicUsize::new(0),
            releases: watch::channel(0).0,
        }
    }

    /// Marks an invoke as in progress until the guard drops.
    pub fn start_invoke(&self) -> InProgress<'_> {
        self.in_progress.fetch_add(1, Ordering::SeqCst);
        InProgress(&self.in_progress)
    }

    pub fn invokes_in_progress(&self) -> usize {
        self.in_progress.load(Ordering::SeqCst)
    }

    pub fn held_writes(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// Waits for the next release if writes are being held now. A real
    /// server processes a request it has received even when the client is
    /// gone by then; held, the write is processed after the release.
    pub async fn hold_if_asked(&self) {
        let mut releases = self.releases.subscribe();
        if !self.lock().knobs.hold_writes {
            return;
        }
        self.held.fetch_add(1, Ordering::SeqCst);
        let _ = releases.changed().await;
        self.held.fetch_sub(1, Ordering::SeqCst);
    }

    pub fn release_held_writes(&self) {
        self.releases.send_modify(|n| *n += 1);
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not hide the state from the others.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn notify_connections(&self) {
        self.changes.send_modify(|n| *n += 1);
    }
}
