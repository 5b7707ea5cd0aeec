//! An Exchange simulator: `/EWS/Exchange.asmx` over real HTTP(S) on
//! loopback, strict where Exchange is strict (SOAP 1.1 only, schema
//! validation with the generated types, `RequestServerVersion`, the
//! 100-mailbox and 42-day limits, impersonation rights, per-mailbox
//! permissions), authenticated by [`super::auth`] (NTLMv2 with Extended
//! Protection, Basic), and with knobs for tests and benchmarks (latency,
//! concurrency limit and how it answers beyond it, injected faults) and
//! counters to read.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use ews_toolkit::sim::exchange::{ExchangeSim, ExchangeSimConfig, SimAccount};
//! let mut config = ExchangeSimConfig::generated(20, 10, 1);
//! config.accounts = vec![SimAccount::new("CONTOSO", "svc-calendar", "S3cret!")];
//! let sim = ExchangeSim::start(config).await?;
//! println!("{} (CA: {} bytes)", sim.ews_url(), sim.ca_pem().unwrap().len());
//! # Ok(()) }
//! ```

// Imports go one way: `mod.rs` (the handle) and `service` (the handler) on
// top, the operations (`availability`, `items`, `notifications`) and the
// `churn` below them, and `answer`, `state`, `subscriptions`, `settings`,
// `mailbox`, `soap`, `zone` below those.
mod answer;
mod availability;
mod churn;
mod items;
pub mod mailbox;
mod notifications;
mod service;
mod settings;
pub mod soap;
mod state;
mod subscriptions;
mod zone;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use url::Url;

pub use churn::{ChurnChange, ChurnHandle, ChurnKind, MAX_CHURN_LOG};
pub use mailbox::is_valid_smtp;
pub use mailbox::{
    generate, GenerateSpec, MailboxFile, MailboxFileError, Occurrence, Permission, Recurrence,
    SimBusyType, SimEvent, SimMailbox,
};
pub use settings::{BusyMode, InjectedFault, Knobs, NotificationKnobs, SimAccount, EWS_PATH};
pub use soap::ServerVersionInfo;
pub use state::{ExchangeCounters, RequestRecord, MAX_RECORDS};
use state::{Shared, State};
pub use subscriptions::{NotificationCounters, SubscriptionInfo};

use super::auth::{AuthPolicy, Authenticator};
use super::autodiscover::{AutodiscoverAnswer, AutodiscoverResponder};
use super::http::SimHttpServer;
use super::tls::{TestPki, TestPkiError};

/// How the simulator starts.
#[derive(Debug, Clone)]
pub struct ExchangeSimConfig {
    /// `127.0.0.1:0` picks a free port.
    pub bind: SocketAddr,
    /// HTTPS with a generated test CA (else plain HTTP).
    pub tls: bool,
    /// Names for the leaf certificate besides `localhost` and `127.0.0.1`.
    pub tls_names: Vec<String>,
    pub accounts: Vec<SimAccount>,
    pub ntlm: bool,
    pub basic: bool,
    /// NTLM over TLS must carry the channel binding of the certificate.
    pub extended_protection: bool,
    pub mailboxes: Vec<SimMailbox>,
    pub server_version: ServerVersionInfo,
    pub knobs: Knobs,
}

impl ExchangeSimConfig {
    /// TLS, NTLM and Basic, Extended Protection off, Exchange 2019, one
    /// account `CONTOSO\svc-calendar` (password `Passw0rd!`) and `mailboxes`.
    pub fn new(mailboxes: Vec<SimMailbox>) -> Self {
        ExchangeSimConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: true,
            tls_names: Vec::new(),
            accounts: vec![SimAccount::new("CONTOSO", "svc-calendar", "Passw0rd!")],
            ntlm: true,
            basic: true,
            extended_protection: false,
            mailboxes,
            server_version: ServerVersionInfo::exchange_2019(),
            knobs: Knobs::default(),
        }
    }

    /// As [`new`](Self::new) with `users` generated mailboxes of `events`
    /// events each around now, from `seed`, in `contoso.test`.
    pub fn generated(users: usize, events: usize, seed: u64) -> Self {
        Self::new(
            generate(&GenerateSpec {
                users,
                events_per_user: events,
                seed,
                domain: "contoso.test".into(),
                now: Utc::now(),
            })
            .mailboxes,
        )
    }
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeSimError {
    #[error(transparent)]
    Pki(#[from] TestPkiError),
    #[error("cannot listen on {bind}: {source}")]
    Listen {
        bind: SocketAddr,
        source: std::io::Error,
    },
    #[error("invalid mailboxes: {0}")]
    Mailboxes(String),
}

/// A running simulated Exchange server; stops when dropped.
pub struct ExchangeSim {
    server: SimHttpServer,
    shared: Arc<Shared>,
    authenticator: Arc<Authenticator>,
    pki: Option<TestPki>,
    tls: bool,
}

impl ExchangeSim {
    pub async fn start(config: ExchangeSimConfig) -> Result<ExchangeSim, ExchangeSimError> {
        MailboxFile {
            mailboxes: config.mailboxes.clone(),
        }
        .validate()
        .map_err(ExchangeSimError::Mailboxes)?;
        let pki = if config.tls {
            let names: Vec<&str> = config.tls_names.iter().map(String::as_str).collect();
            Some(TestPki::generate(&names)?)
        } else {
            None
        };
        let mut policy =
            AuthPolicy::new(config.accounts.iter().map(|a| a.auth_account()).collect());
        policy.ntlm = config.ntlm;
        policy.basic = config.basic;
        policy.extended_protection = config.extended_protection;
        policy.server_certificate = pki.as_ref().map(|p| p.leaf_der().to_vec());
        let authenticator = Arc::new(Authenticator::new(policy));
        let mut state = State {
            mailboxes: config.mailboxes,
            index: HashMap::new(),
            knobs: config.knobs,
            faults: VecDeque::new(),
            counters: ExchangeCounters::default(),
            records: Vec::new(),
            mailbox_errors: HashMap::new(),
            mailbox_latency: HashMap::new(),
            subscriptions: Default::default(),
        };
        state.reindex();
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            accounts: config.accounts,
            server_version: config.server_version,
            autodiscover: Arc::new(AutodiscoverResponder::new()),
        });
        let handler_shared = shared.clone();
        let server = SimHttpServer::start(
            &config.bind.to_string(),
            pki.as_ref().map(TestPki::server_config),
            Some(authenticator.clone()),
            move |request| service::handle(handler_shared.clone(), request),
        )
        .await
        .map_err(|source| ExchangeSimError::Listen {
            bind: config.bind,
            source,
        })?;
        let sim = ExchangeSim {
            server,
            shared,
            authenticator,
            tls: pki.is_some(),
            pki,
        };
        // Autodiscover answers this server's EWS URL for every mailbox
        // domain it holds, as a real Client Access server would.
        let ews_url = sim.ews_url().to_string();
        let domains: std::collections::BTreeSet<String> = sim
            .mailboxes()
            .iter()
            .filter_map(|m| m.smtp.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase()))
            .collect();
        for domain in domains {
            sim.shared.autodiscover.answer_for_domain(
                &domain,
                AutodiscoverAnswer::Settings {
                    internal_ews_url: Some(ews_url.clone()),
                    external_ews_url: Some(ews_url.clone()),
                },
            );
        }
        Ok(sim)
    }

    /// The autodiscover service mounted under `/autodiscover/` (POX and
    /// SOAP), to change its answers.
    pub fn autodiscover(&self) -> &Arc<AutodiscoverResponder> {
        &self.shared.autodiscover
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// `https://127.0.0.1:PORT/EWS/Exchange.asmx` (or `http://`).
    pub fn ews_url(&self) -> Url {
        self.url_for_host("127.0.0.1")
    }

    /// The EWS URL with another host name (one of `tls_names`, `localhost`).
    pub fn url_for_host(&self, host: &str) -> Url {
        let scheme = if self.tls { "https" } else { "http" };
        Url::parse(&format!(
            "{scheme}://{host}:{}{EWS_PATH}",
            self.local_addr().port()
        ))
        .expect("valid URL")
    }

    /// The test CA (PEM) to give a client as `ca_file`; `None` without TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.pki.as_ref().map(TestPki::ca_pem)
    }

    pub fn pki(&self) -> Option<&TestPki> {
        self.pki.as_ref()
    }

    /// Writes the CA PEM to `path`.
    pub fn write_ca_pem(&self, path: &std::path::Path) -> Result<(), TestPkiError> {
        match &self.pki {
            Some(pki) => pki.write_ca_pem(path),
            None => Err(TestPkiError::Write {
                path: path.to_owned(),
                source: std::io::Error::other("the simulator runs without TLS"),
            }),
        }
    }

    pub fn server_version(&self) -> &ServerVersionInfo {
        &self.shared.server_version
    }

    pub fn counters(&self) -> ExchangeCounters {
        let mut counters = {
            let mut state = self.shared.lock();
            let expiry = state.knobs.notifications.subscription_expiry;
            state
                .subscriptions
                .expire_idle(std::time::Instant::now(), expiry);
            let mut counters = state.counters.clone();
            counters.notifications = state.subscriptions.counters();
            counters
        };
        counters.connections = self.server.connections();
        counters.auth = self.authenticator.counters();
        counters
    }

    /// Every EWS request so far (the last [`MAX_RECORDS`]), in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.lock().records.clone()
    }

    /// Forgets counters and request records (not knobs or faults).
    pub fn reset_counters(&self) {
        let mut state = self.shared.lock();
        state.counters = ExchangeCounters::default();
        state.records.clear();
    }

    pub fn knobs(&self) -> Knobs {
        self.shared.lock().knobs.clone()
    }

    pub fn set_knobs(&self, knobs: Knobs) {
        self.shared.lock().knobs = knobs;
    }

    /// Changes the knobs in place: `sim.update_knobs(|k| k.request_latency = ...)`.
    pub fn update_knobs(&self, change: impl FnOnce(&mut Knobs)) {
        change(&mut self.shared.lock().knobs);
    }

    /// The next `count` EWS requests (authenticated, any operation) get
    /// `fault` instead of their normal answer; queued after earlier ones.
    pub fn inject(&self, fault: InjectedFault, count: usize) {
        let mut state = self.shared.lock();
        state.faults.extend(std::iter::repeat_n(fault, count));
    }

    /// From now on GetUserAvailability answers `smtp` with the mailbox
    /// error `code` (`ErrorProxyRequestProcessingFailed`,
    /// `ErrorMailboxStoreUnavailable`, ...) instead of its calendar, as
    /// Exchange does when that mailbox's server fails; `None` heals it.
    pub fn set_mailbox_error(&self, smtp: &str, code: Option<&str>) {
        let mut state = self.shared.lock();
        match code {
            Some(code) => {
                state
                    .mailbox_errors
                    .insert(smtp.to_ascii_lowercase(), code.to_owned());
            }
            None => {
                state.mailbox_errors.remove(&smtp.to_ascii_lowercase());
            }
        }
    }

    /// Latency added to every GetUserAvailability that asks for `smtp`
    /// (on top of [`Knobs::per_mailbox_latency`]); zero removes it.
    pub fn set_mailbox_latency(&self, smtp: &str, latency: Duration) {
        let mut state = self.shared.lock();
        if latency.is_zero() {
            state.mailbox_latency.remove(&smtp.to_ascii_lowercase());
        } else {
            state
                .mailbox_latency
                .insert(smtp.to_ascii_lowercase(), latency);
        }
    }

    /// Faults still queued.
    pub fn pending_faults(&self) -> usize {
        self.shared.lock().faults.len()
    }

    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// A copy of all mailboxes.
    pub fn mailboxes(&self) -> Vec<SimMailbox> {
        self.shared.lock().mailboxes.clone()
    }

    pub fn mailbox(&self, smtp: &str) -> Option<SimMailbox> {
        self.shared.lock().mailbox(smtp).cloned()
    }

    /// Replaces a mailbox's events; `false` when there is no such mailbox.
    pub fn set_calendar(&self, smtp: &str, events: Vec<SimEvent>) -> bool {
        self.mailbox_mut(smtp, |m| m.events = events).is_some()
    }

    /// Changes one mailbox in place (events, permission, name); `None` when
    /// there is no such mailbox. Its address must stay the same.
    ///
    /// Like every calendar change here ([`set_calendar`](Self::set_calendar),
    /// [`upsert_mailbox`](Self::upsert_mailbox),
    /// [`remove_mailbox`](Self::remove_mailbox), the churn), the events that
    /// differ (by [`SimEvent::id`]) become Created/Modified/Deleted events on
    /// the mailbox's streaming subscriptions.
    pub fn mailbox_mut<T>(
        &self,
        smtp: &str,
        change: impl FnOnce(&mut SimMailbox) -> T,
    ) -> Option<T> {
        let mut state = self.shared.lock();
        let index = *state.index.get(&smtp.to_ascii_lowercase())?;
        Some(state.change_mailbox(index, change))
    }

    /// Adds a mailbox, or replaces the one with the same address.
    pub fn upsert_mailbox(&self, mailbox: SimMailbox) {
        self.shared.lock().upsert_mailbox(mailbox);
    }

    /// Removes a mailbox (it becomes unknown: `ErrorMailRecipientNotFound`);
    /// its items' Deleted events go to its subscriptions.
    pub fn remove_mailbox(&self, smtp: &str) -> bool {
        self.shared.lock().remove_mailbox(smtp)
    }

    /// Forgets authenticated connections: the next request on each needs a
    /// new handshake (an app pool recycle).
    pub fn forget_connections(&self) {
        self.authenticator.forget_connections();
    }

    /// The streaming notification counters alone (subscriptions expired by
    /// now are counted as expired first).
    pub fn notification_counters(&self) -> NotificationCounters {
        self.counters().notifications
    }

    /// The live subscriptions (expired ones dropped first), by mailbox.
    pub fn subscriptions(&self) -> Vec<SubscriptionInfo> {
        let mut state = self.shared.lock();
        let expiry = state.knobs.notifications.subscription_expiry;
        state
            .subscriptions
            .expire_idle(std::time::Instant::now(), expiry);
        state.subscriptions.list()
    }

    /// Cuts every open GetStreamingEvents response mid-stream: the
    /// connection closes without the final chunk, as when a load balancer
    /// or the network drops it. The subscriptions stay (and expire if not
    /// read again within `subscription_expiry`).
    pub fn drop_event_streams(&self) {
        self.shared
            .lock()
            .subscriptions
            .cut_streams(std::time::Instant::now());
    }

    /// A server restart (an IIS reset, a failover): every subscription is
    /// gone (`ErrorSubscriptionNotFound` for the old ids), open streams are
    /// cut and authenticated connections forgotten. Mailboxes, knobs and
    /// counters stay.
    pub fn restart(&self) {
        self.shared
            .lock()
            .subscriptions
            .clear(std::time::Instant::now());
        self.authenticator.forget_connections();
    }

    /// Every subscription expires now, as if unread for longer than
    /// `subscription_expiry`: later requests naming them get
    /// `ErrorSubscriptionNotFound`, and an open stream reading them reports
    /// that error with their ids at once (then `Closed` if it reads nothing
    /// else).
    pub fn expire_subscriptions(&self) {
        self.shared.lock().subscriptions.expire_all();
    }

    /// Starts changing calendars: `per_minute` random changes a minute on
    /// average (created, moved, re-typed and deleted appointments in the
    /// next hours of random mailboxes), at random times from `seed`, each
    /// reaching the mailbox's subscriptions as an event. Stops when the
    /// handle is dropped; its log says what changed when.
    pub fn start_churn(&self, per_minute: u32, seed: u64) -> ChurnHandle {
        churn::start(self.shared.clone(), per_minute, seed)
    }

    /// Stops accepting connections.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for ExchangeSim {
    /// A stopped server's streams end with it (their tasks would otherwise
    /// run on until their connection timeout).
    fn drop(&mut self) {
        if let Ok(mut state) = self.shared.state.lock() {
            state.subscriptions.cut_streams(std::time::Instant::now());
        }
    }
}

impl std::fmt::Debug for ExchangeSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExchangeSim")
            .field("addr", &self.local_addr())
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_a_password() {
        let mut config = ExchangeSimConfig::generated(2, 1, 1);
        config.accounts =
            vec![SimAccount::new("CONTOSO", "svc", "Very-S3cret").with_impersonation()];
        let shown = format!("{config:?}");
        assert!(!shown.contains("Very-S3cret"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn smtp_addresses_are_checked_like_exchange_does() {
        assert!(is_valid_smtp("alice.meier@contoso.test"));
        for bad in [
            "alice",
            "alice@",
            "@contoso.test",
            "a b@contoso.test",
            "a@contoso",
            "a@@b.c",
            "<a@b.c>",
        ] {
            assert!(!is_valid_smtp(bad), "{bad}");
        }
    }
}
