//! What the engine needs to know from the configuration (`[replication]`).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::ucserver::AppointmentStatus;

/// How private appointments (`Sensitivity` private) are replicated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrivateAppointments {
    /// Not sent at all (the estos replicator with "replicate private
    /// appointments" off).
    #[default]
    Skip,
    /// Sent as busy blocks: sensitivity private, no subject, location or text.
    TimesOnly,
    /// Sent like any other appointment, subject and location included.
    Full,
}

/// Maps Exchange busy types the UCServer has no state for
/// (`WorkingElsewhere`, values of newer servers) to a UCServer state.
/// `Free`, `Tentative`, `Busy` and `OOF` map to themselves; `NoData` is
/// dropped and cannot be mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusyTypeMap {
    /// Keyed by the Exchange name (`WorkingElsewhere`).
    pub overrides: BTreeMap<String, AppointmentStatus>,
    /// For values neither known nor in `overrides`.
    pub unknown: AppointmentStatus,
}

impl Default for BusyTypeMap {
    fn default() -> Self {
        BusyTypeMap {
            overrides: BTreeMap::from([("WorkingElsewhere".to_owned(), AppointmentStatus::Free)]),
            unknown: AppointmentStatus::Free,
        }
    }
}

/// `[replication]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationSettings {
    pub interval: Duration,
    /// Only users without a logged-on client (the UCServer's offline filter).
    pub only_offline_users: bool,
    /// Days from now that are read and written (split into requests of at
    /// most 42 days by the Exchange client).
    pub window_days: u32,
    pub private_appointments: PrivateAppointments,
    pub busy_type_map: BusyTypeMap,
    /// UCServer writes in flight at once (over the one admin connection,
    /// matched by invoke id), so the writes keep up with the reads.
    pub write_concurrency: usize,
    /// How long the push loop collects change events after the first one
    /// before it reads the changed mailboxes: a meeting update touches the
    /// organiser's and every attendee's calendar within a moment, and one
    /// read of all of them is cheaper than one per event.
    pub push_debounce: Duration,
}

impl Default for ReplicationSettings {
    fn default() -> Self {
        ReplicationSettings {
            interval: Duration::from_secs(15 * 60),
            only_offline_users: true,
            window_days: 30,
            private_appointments: PrivateAppointments::Skip,
            busy_type_map: BusyTypeMap::default(),
            write_concurrency: 8,
            push_debounce: Duration::from_millis(250),
        }
    }
}
