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
