//! The UCServer simulator (a real server on loopback for tests, benchmarks
//! and the demo). The Exchange simulator and the parts both share (test PKI,
//! HTTP server, server-side authentication) are `ews_toolkit::sim`.

pub mod ucserver;
