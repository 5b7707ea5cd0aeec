//! Simulators of the servers the replicator talks to (Exchange, UCServer),
//! real servers on loopback for tests, benchmarks and the demo, and their
//! shared parts: a test PKI, server-side authentication and an HTTP server.

pub mod auth;
pub mod autodiscover;
pub mod dns;
pub mod exchange;
pub mod http;
mod rng;
pub mod tls;
pub mod ucserver;
