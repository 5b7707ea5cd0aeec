//! The binary end to end: each module runs `ews-calendar-replicator` with a
//! configuration file against the simulators (and the test DC), over real
//! sockets. One test binary, so that an edit of the library relinks one
//! executable instead of eight.

#[allow(dead_code)]
#[path = "../support/mod.rs"]
mod support;

mod check_evidence;
mod config_init;
mod packaging;
mod replicator;
mod service_push;
mod sim_exchange;
mod sim_lab;
mod sim_ucserver;
mod status;
