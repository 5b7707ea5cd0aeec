//! What a cycle did, per user and in total: printed by `once` (as text or
//! `--json`), logged by the service, and summarised into a [`CycleRecord`]
//! for the state store (`status`). Holds no private subject unless
//! `private_appointments = "full"` (only the planned lists carry subjects).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ucserver::{Appointment, AppointmentStatus, Importance, Sensitivity};

use super::ports::{CycleRecord, UserFailure};

/// How a UCServer user was found in the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchedBy {
    ObjectGuid,
    Dn,
    SamAccountName,
}

/// What happened to one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum UserOutcome {
    /// The list changed and was written.
    Written,
    /// Dry run: the list changed and would have been written.
    WouldWrite,
    /// The list equals the last one written; nothing sent.
    Unchanged,
    /// Not replicated by design (no directory match, no mailbox, not listed).
    Skipped { reason: String },
    /// Reading or writing failed; the UCServer keeps its previous list and
    /// the next cycle tries again.
    Failed { reason: String },
    /// The cycle stopped (shutdown) before this user was handled; the
    /// UCServer keeps its previous list.
    Abandoned,
}

impl UserOutcome {
    /// Written, would be written, or unchanged.
    pub fn is_replicated(&self) -> bool {
        matches!(
            self,
            UserOutcome::Written | UserOutcome::WouldWrite | UserOutcome::Unchanged
        )
    }
}

/// An appointment as reports show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedAppointment {
    pub entry_id: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    pub all_day: bool,
    /// `free`, `tentative`, `busy`, `out_of_office`.
    pub status: &'static str,
    /// `normal`, `personal`, `private`, `confidential`.
    pub sensitivity: &'static str,
    /// `low`, `normal`, `high`.
    pub importance: &'static str,
}

impl From<&Appointment> for PlannedAppointment {
    fn from(a: &Appointment) -> Self {
        PlannedAppointment {
            entry_id: a.entry_id.clone(),
            start: a.start,
            end: a.end,
            subject: a.subject.clone(),
            location: a.location.clone(),
            all_day: a.all_day,
            status: match a.status {
                AppointmentStatus::Free => "free",
                AppointmentStatus::Tentative => "tentative",
                AppointmentStatus::Busy => "busy",
                AppointmentStatus::OutOfOffice => "out_of_office",
            },
            sensitivity: match a.sensitivity {
                Sensitivity::Normal => "normal",
                Sensitivity::Personal => "personal",
                Sensitivity::Private => "private",
                Sensitivity::Confidential => "confidential",
            },
            importance: match a.importance {
                Importance::Low => "low",
                Importance::Normal => "normal",
                Importance::High => "high",
            },
        }
    }
}

/// One UCServer user in a cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserReport {
    pub user_name: String,
    /// The mailbox read (primary SMTP address), when the user was matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mailbox: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched_by: Option<MatchedBy>,
    #[serde(flatten)]
    pub outcome: UserOutcome,
    /// Appointments in the list computed this cycle (when read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appointment_count: Option<usize>,
    /// The computed list itself: in dry runs, or when asked for
    /// ([`CycleOptions::keep_appointments`](super::CycleOptions)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appointments: Option<Vec<PlannedAppointment>>,
}

/// Counts over the users of a cycle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Users the UCServer listed (offline users only by default).
    pub listed: usize,
    /// Users this cycle handled (all listed, or those named by `--user`).
    pub selected: usize,
    pub written: usize,
    pub would_write: usize,
    pub unchanged: usize,
    pub skipped: usize,
    pub failed: usize,
    pub abandoned: usize,
    /// Appointments sent in the lists written.
    pub appointments_written: usize,
}

/// Where the time went, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Durations {
    pub total_ms: u64,
    pub list_users_ms: u64,
    pub directory_ms: u64,
    /// From the first Exchange request until the last answer (mapping and
    /// writes run meanwhile).
    pub read_calendars_ms: u64,
    /// The writes still running after the last answer.
    pub write_ms: u64,
}

/// The result of one cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CycleReport {
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// The calendar window read: `[window_start, window_end)`.
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub dry_run: bool,
    /// Only the users named by `once --user` were handled.
    pub partial: bool,
    pub counters: Counters,
    pub durations: Durations,
    /// The cycle took longer than the replication interval.
    pub overran: bool,
    /// Stopped by a shutdown before every user was handled.
    pub abandoned: bool,
    /// A cycle-wide failure (UCServer listing, directory, state database):
    /// nothing was written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Problems that did not stop the cycle (state database writes).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Every selected user, in the UCServer's order.
    pub users: Vec<UserReport>,
}

impl CycleReport {
    /// No cycle-wide error, nothing abandoned, no user failed; skipped users
    /// (no mailbox, no directory match) are not failures.
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && !self.abandoned && self.counters.failed == 0
    }

    /// Users that failed, with their reasons.
    pub fn failures(&self) -> Vec<UserFailure> {
        self.users
            .iter()
            .filter_map(|u| match &u.outcome {
                UserOutcome::Failed { reason } => Some(UserFailure {
                    user_name: u.user_name.clone(),
                    reason: reason.clone(),
                }),
                _ => None,
            })
            .collect()
    }

    /// The summary kept in the state store.
    pub fn to_record(&self) -> CycleRecord {
        let error = match (&self.error, self.abandoned) {
            (Some(e), _) => Some(e.clone()),
            (None, true) => Some(format!(
                "abandoned at shutdown; {} users not handled (they keep their previous lists)",
                self.counters.abandoned
            )),
            (None, false) => None,
        };
        CycleRecord {
            started_at: self.started_at,
            finished_at: self.finished_at,
            users_listed: self.counters.listed as u64,
            written: self.counters.written as u64,
            unchanged: self.counters.unchanged as u64,
            skipped: self.counters.skipped as u64,
            failed: self.failures(),
            overran: self.overran,
            could_not_run: self.error.is_some(),
            error,
            partial: self.partial,
            attempts: 1,
        }
    }

    /// Recounts [`Counters`] from the per-user outcomes.
    pub(super) fn count(&mut self) {
        let listed = self.counters.listed;
        let mut counters = Counters {
            listed,
            selected: self.users.len(),
            ..Counters::default()
        };
        for user in &self.users {
            match &user.outcome {
                UserOutcome::Written => {
                    counters.written += 1;
                    counters.appointments_written += user.appointment_count.unwrap_or(0);
                }
                UserOutcome::WouldWrite => counters.would_write += 1,
                UserOutcome::Unchanged => counters.unchanged += 1,
                UserOutcome::Skipped { .. } => counters.skipped += 1,
                UserOutcome::Failed { .. } => counters.failed += 1,
                UserOutcome::Abandoned => counters.abandoned += 1,
            }
        }
        self.counters = counters;
    }
}

/// The record of a cycle that could not start: the service could not
/// connect (to the UCServer or the directory). `reason` says to what and
/// why; `status` shows it as "no cycle since ...".
pub fn could_not_run(reason: &str, at: DateTime<Utc>) -> CycleRecord {
    CycleRecord {
        started_at: at,
        finished_at: at,
        users_listed: 0,
        written: 0,
        unchanged: 0,
        skipped: 0,
        failed: Vec::new(),
        overran: false,
        error: Some(format!("could not run: {reason}")),
        partial: false,
        could_not_run: true,
        attempts: 1,
    }
}

/// Steps of a cycle, for a progress display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The UCServer listed `listed` users; `selected` are handled.
    UsersListed { listed: usize, selected: usize },
    /// Calendars of `mailboxes` mailboxes are being read.
    ReadingCalendars { mailboxes: usize },
    /// One more user done (`done` of `total`, users to write or compare).
    UserDone {
        done: usize,
        total: usize,
        user_name: String,
    },
}

/// Called with each [`Progress`] step (from the task running the cycle).
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;
