//! ews-calendar-replicator: replicates Exchange calendar availability into the
//! estos UCServer. `ews` is a reusable EWS client and builds on its own
//! (`--no-default-features`); the other modules make up the replicator.

pub mod ews;
pub mod secret;
pub mod server_text;
pub mod tls;

#[cfg(feature = "replicator")]
pub mod app;
#[cfg(feature = "replicator")]
pub mod check;

#[cfg(feature = "replicator")]
pub mod config;
#[cfg(feature = "replicator")]
pub mod demo;
#[cfg(feature = "directory")]
pub mod directory;
#[cfg(feature = "replicator")]
pub mod logging;
#[cfg(feature = "replicator")]
pub mod memory;
#[cfg(feature = "replicator")]
pub mod monitoring;
#[cfg(feature = "replicator")]
pub mod replication;
#[cfg(feature = "sim")]
pub mod sim;
#[cfg(feature = "replicator")]
pub mod state;
#[cfg(feature = "replicator")]
pub mod systemd;
#[cfg(feature = "ucserver")]
pub mod ucserver;
