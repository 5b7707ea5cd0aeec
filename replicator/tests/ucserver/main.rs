//! The UCServer client against its simulator and against hostile servers,
//! over real sockets: both transports (web service, native port), both
//! message forms, TLS, the SDK's message shapes, the snapshots.

#[allow(dead_code)]
#[path = "../support/mod.rs"]
mod support;

mod client;
mod hostile_server;
mod native;
mod sdk_shapes;
mod server_forms;
mod sim_strict;
mod snapshots;
mod tls;
