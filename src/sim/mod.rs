//! Simulators of the servers the replicator talks to: real servers on
//! loopback, as strict as the real ones, for tests and demos.

pub mod ucserver;
