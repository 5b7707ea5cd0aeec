//! `[monitoring]`: where the metrics, health and status endpoints listen.

use std::net::SocketAddr;

/// The monitoring endpoints' settings; off unless `listen` is set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonitoringSettings {
    /// The address `/metrics`, `/healthz` and `/` are served on. A
    /// non-loopback address is allowed, with a warning at start.
    pub listen: Option<SocketAddr>,
}
