//! ews-calendar-replicator: replicates Exchange calendar availability into the
//! estos UCServer, for users whose ProCall client is offline. Exchange is read
//! through the `ews_toolkit` crate; this crate holds the UCServer client and
//! simulator, the directory, the replication engine, configuration, state and
//! the command line's parts.

pub mod app;
pub mod config;
pub mod directory;
pub mod logging;
pub mod memory;
pub mod monitoring;
pub mod replication;
pub mod sim;
pub mod state;
pub mod systemd;
pub mod ucserver;
