//! The replication engine: one cycle reads the UCServer's users, matches them
//! to directory users, reads their calendars from Exchange, maps the events
//! to UCServer appointments (privacy applied) and writes only what changed.
//!
//! The engine talks to the outside through the small traits in [`ports`];
//! the adapters for the real clients live next to them.

mod adapters;
pub mod ports;
pub mod settings;

pub use ports::{
    CalendarSource, CycleRecord, SourceError, StateError, StateStore, UcServerPort, UserFailure,
    UserRecord, WriteError,
};
pub use settings::{BusyTypeMap, PrivateAppointments, ReplicationSettings};
