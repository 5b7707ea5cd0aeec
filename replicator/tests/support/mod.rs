//! What the test binaries share: `lab` (the simulators, a configuration
//! file, the binary run against them), `replication` (the engine against
//! in-process fakes) and `ucserver` (the UCServer simulator's fixed users
//! and the table of transports and message forms). Each binary uses part of
//! it, so the unused rest is allowed.

pub mod lab;
pub mod replication;
pub mod ucserver;
