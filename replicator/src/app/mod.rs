//! The composition root: the one place where a [`Config`] becomes concrete
//! clients (Active Directory or a static list, Exchange through the EWS
//! toolkit, the UCServer) and those become the engine's ports. The engine
//! (`replication`), the directory and the UCServer client know nothing of
//! each other; only this module joins them. Every way of running the
//! replicator comes through here: the service (`run`), one cycle (`once`),
//! the diagnostics (`check`), the `demo`, the `cycle_scale` benchmark and
//! the end-to-end tests.

mod adapters;
mod autodiscover;
pub mod check;
pub mod demo;
pub mod notifications;
mod service;
mod simulated;

use std::sync::Arc;

use chrono::Utc;

use crate::config::{Config, ExchangeSettings};
use crate::directory::DirectoryError;
use crate::monitoring::Monitor;
use crate::replication::{Engine, Server, StateStore};
use crate::ucserver::{UcError, UcServerClient};
use ews_toolkit::availability_reader::AvailabilityReaderConfig;
use ews_toolkit::resilience::ResilienceConfig;
use ews_toolkit::transport::{HttpTransport, TransportError};

pub use adapters::{AnyDirectory, ExchangeCalendars};
pub use autodiscover::{autodiscover_mailbox, DirectoryScp, DiscoverError};
pub use service::{NotStarted, ServiceEngine, FIRST_RETRY};
pub use simulated::SimulatedSite;

/// The engine as the configuration describes it, with `state`.
pub type ConfiguredEngine<S> = Engine<UcServerClient, AnyDirectory, ExchangeCalendars, S>;

/// How the service reads Exchange: the `[exchange]` settings as the
/// availability reader's configuration.
pub fn reader_config(settings: &ExchangeSettings) -> AvailabilityReaderConfig {
    AvailabilityReaderConfig {
        impersonate_each_mailbox: settings.impersonation,
        ..AvailabilityReaderConfig::default()
    }
}

/// How the EWS client paces and retries every operation: Exchange's
/// defaults, with the configured number of requests in flight.
pub fn resilience_config(settings: &ExchangeSettings) -> ResilienceConfig {
    ResilienceConfig {
        concurrency: settings.max_concurrency.max(1),
        ..ResilienceConfig::default()
    }
}

/// The `[exchange]` settings as the service uses them: the directory's
/// domain controller (port 88) is the last KDC Kerberos asks, after
/// `kerberos_kdc` and DNS SRV. Joined here, so that neither settings type
/// reads the other's.
pub fn exchange_settings(config: &Config) -> ExchangeSettings {
    let mut settings = config.exchange.clone();
    if let crate::config::DirectoryConfig::ActiveDirectory(directory) = &config.directory {
        settings.transport.kerberos.fallback_kdc = directory.validate().ok().map(|address| {
            if address.host.contains(':') {
                format!("[{}]:88", address.host)
            } else {
                format!("{}:88", address.host)
            }
        });
    }
    settings
}

/// The HTTP client for EWS and autodiscover, authenticating as the
/// configured account.
pub fn exchange_transport(settings: &ExchangeSettings) -> Result<HttpTransport, TransportError> {
    HttpTransport::new(
        settings.transport.clone(),
        Some(settings.credentials.clone()),
    )
}

/// Why the service could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    #[error("directory: {0}")]
    Directory(#[from] DirectoryError),
    #[error("UCServer: {0}")]
    UcServer(#[from] UcError),
}

impl AssembleError {
    /// The server that could not be used.
    pub fn server(&self) -> Server {
        match self {
            AssembleError::Directory(_) => Server::Directory,
            AssembleError::UcServer(_) => Server::UcServer,
        }
    }

    /// What the service waits for, for systemd's STATUS= line.
    pub fn waiting_for(&self) -> String {
        match self {
            AssembleError::UcServer(reason) => format!("waiting for the UCServer: {reason}"),
            AssembleError::Directory(reason) => format!("waiting for the directory: {reason}"),
        }
    }
}

/// Opens the directory, connects to the UCServer and prepares the Exchange
/// source (which connects on the first read).
pub async fn assemble<S: StateStore>(
    config: &Config,
    state: S,
) -> Result<ConfiguredEngine<S>, AssembleError> {
    let directory = AnyDirectory::open(&config.directory).await?;
    let calendars = ExchangeCalendars::new(exchange_settings(config), directory.scp_source());
    let ucserver = UcServerClient::connect(config.ucserver.clone()).await?;
    Ok(Engine::new(
        ucserver,
        directory,
        calendars,
        state,
        config.replication.clone(),
    ))
}

/// [`assemble`], with `monitor` told about every cycle and every Exchange
/// request (what the service's monitoring endpoints show).
pub async fn assemble_observed<S: StateStore>(
    config: &Config,
    state: S,
    monitor: &Arc<Monitor>,
) -> Result<ConfiguredEngine<S>, AssembleError> {
    let engine = assemble(config, state)
        .await?
        .with_observer(monitor.clone());
    engine.calendars().observe(monitor.clone());
    monitor
        .metrics()
        .watch_transport(engine.calendars().transport_stats_source());
    Ok(engine)
}

/// Records that no cycle could start because of `error`, so that `status`
/// shows it ("no cycle since ..."). A state database that cannot take the
/// record is logged, not fatal: the error itself is already reported.
pub fn record_could_not_run<S: StateStore>(state: &S, error: &AssembleError) {
    let reason = match error {
        AssembleError::UcServer(e) => format!("could not connect to the UCServer: {e}"),
        AssembleError::Directory(e) => format!("could not connect to the directory: {e}"),
    };
    let record = crate::replication::report::could_not_run(&reason, Utc::now());
    if let Err(e) = state.record_cycle(&record) {
        tracing::warn!("the state database did not record the failed start ({e})");
    }
}

#[cfg(test)]
mod architecture;

#[cfg(test)]
mod exchange_settings_tests {
    use super::*;
    use crate::config::{parse, LoadContext};

    fn config(directory: &str) -> Config {
        let text = format!(
            "[ucserver]\nurl = \"https://uc.example.com:7225\"\nusername = \"Administrator\"\npassword = \"x\"\n\n[directory]\n{directory}\n\n[exchange]\nusername = \"svc@corp.example.com\"\npassword = \"y\"\nauth = \"kerberos\"\n"
        );
        parse(
            &text,
            std::path::Path::new("/etc/r/config.toml"),
            &LoadContext::with_vars([("HOME", "/h")]),
        )
        .unwrap()
    }

    #[test]
    fn the_directorys_domain_controller_is_the_last_kdc_on_port_88() {
        let ad = |url: &str| {
            format!("url = \"{url}\"\nbind_user = \"svc@corp.example.com\"\npassword = \"z\"")
        };
        for (url, kdc) in [
            ("ldaps://dc1.corp.example.com", "dc1.corp.example.com:88"),
            (
                "ldap://dc2.corp.example.com:3268",
                "dc2.corp.example.com:88",
            ),
            ("ldaps://[2001:db8::5]", "[2001:db8::5]:88"),
        ] {
            let config = config(&ad(url));
            assert_eq!(config.exchange.transport.kerberos.fallback_kdc, None);
            let settings = exchange_settings(&config);
            assert_eq!(
                settings.transport.kerberos.fallback_kdc.as_deref(),
                Some(kdc),
                "{url}"
            );
        }
        let static_list = config("kind = \"static\"\nfile = \"users.toml\"");
        assert_eq!(
            exchange_settings(&static_list)
                .transport
                .kerberos
                .fallback_kdc,
            None
        );
    }
}
