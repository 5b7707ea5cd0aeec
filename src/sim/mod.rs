//! Simulated servers on real sockets (loopback), for tests, benchmarks and
//! demonstrations: the Exchange simulator (EWS and autodiscover), a DNS
//! server for SRV lookups, and the parts other simulators build on (a test
//! PKI, server-side NTLMv2/Basic authentication, an HTTP server, a seeded
//! random number generator).

pub mod auth;
pub mod autodiscover;
pub mod dns;
pub mod exchange;
pub mod http;
pub mod rng;
pub mod tls;
