//! The replication engine: one cycle reads the UCServer's users, matches them
//! to directory users, reads their calendars from Exchange, maps the events
//! to UCServer appointments (privacy applied) and writes only what changed.
//!
//! The engine talks to the outside through the small traits in [`ports`];
//! the adapters for the real clients live in the composition root
//! (`crate::app`).

pub mod cycle;
pub mod diff;
pub mod mapping;
pub mod matching;
pub mod ports;
pub mod privacy;
pub mod push;
pub mod report;
pub mod scheduler;
pub mod settings;

pub use cycle::{CycleOptions, Engine};
pub use ports::{
    CalendarSource, ChangeFeed, CycleObserver, CycleRecord, FeedRecord, FeedStatus, MailboxChange,
    NoObserver, Server, SourceError, StateError, StateStore, UcServerPort, UserFailure, UserRecord,
    WatchMode, WriteError,
};
pub use push::{run_push, watched_mailboxes, PushSummary, Refresh, WriterLock};
pub use report::{
    Counters, CycleReport, Durations, MatchedBy, PlannedAppointment, Progress, ProgressFn,
    UserOutcome, UserReport,
};
pub use scheduler::{run_scheduled, run_scheduled_with_feed, ScheduleSummary};
pub use settings::{BusyTypeMap, PrivateAppointments, ReplicationSettings};
