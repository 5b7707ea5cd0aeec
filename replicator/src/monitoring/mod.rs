//! Monitoring of the running service (`[monitoring] listen`): Prometheus
//! metrics at `/metrics`, a health verdict at `/healthz`, a status page at
//! `/`. The engine and the Exchange reader feed a [`Monitor`] through their
//! observer ports; neither depends on this module.

mod metrics;
mod monitor;
pub mod page;
mod server;
mod settings;

pub use metrics::{cycle_outcome, Metrics, TransportStatsSource};
pub use monitor::{
    CycleSummary, FailureGroup, Monitor, PushCounts, ServerState, Snapshot, RECENT_CYCLES,
};
pub use server::MonitoringServer;
pub use settings::MonitoringSettings;
