//! The library's parts in-process: the replication engine, the demo,
//! monitoring, the directory, Exchange autodiscover, hostile servers and
//! secrets. Tests that change process-wide state (the global log
//! subscriber, allocator statistics) are in binaries of their own:
//! `replication_privacy`, `logging_init`, `memory_tuning`.

#[allow(dead_code)]
#[path = "../support/mod.rs"]
mod support;

// The root crate's hostile servers (LDAP), shared with its tests.
#[path = "../../../tests/hostile_support/mod.rs"]
mod hostile_support;

mod demo;
mod directory;
mod ews_autodiscover;
mod hostile_server_text;
mod hostile_servers;
mod monitoring;
mod push;
mod replication_engine;
mod secrets;
