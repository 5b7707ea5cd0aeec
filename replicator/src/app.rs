//! Assembles the running service from a [`Config`]: the directory (Active
//! Directory or a static list), the Exchange calendar source (the configured
//! EWS URL, or autodiscover on first use) and the UCServer connection, as the
//! engine's ports. The CLI commands (`run`, `once`, `check`) and the
//! end-to-end tests build the same objects through here.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::OnceCell;
use url::Url;

use crate::config::{Config, DirectoryConfig, ExchangeSettings};
use crate::directory::{
    AdDirectory, DirectoryError, DirectoryUser, StaticDirectory, UserDirectory, UserKey,
};
use crate::replication::{CalendarSource, Engine, SourceError, StateStore};
use crate::ucserver::{UcError, UcServerClient};
use ews_toolkit::autodiscover::{
    AutodiscoverClient, AutodiscoverError, AutodiscoverSettings, Discovery, ScpSource,
    ServiceConnectionPoint, UdpSrvResolver,
};
use ews_toolkit::availability::MailboxAvailability;
use ews_toolkit::availability_reader::{AvailabilityReader, AvailabilityReaderConfig};
use ews_toolkit::client::{EwsClient, EwsError};
use ews_toolkit::resilience::{RequestObserver, ResilienceConfig};

/// The directory the configuration names.
pub enum AnyDirectory {
    ActiveDirectory(Arc<AdDirectory>),
    Static(StaticDirectory),
}

impl AnyDirectory {
    /// Connects to (and binds at) Active Directory, or opens the static list.
    pub async fn open(config: &DirectoryConfig) -> Result<AnyDirectory, DirectoryError> {
        Ok(match config {
            DirectoryConfig::ActiveDirectory(settings) => AnyDirectory::ActiveDirectory(Arc::new(
                AdDirectory::connect(settings.clone()).await?,
            )),
            DirectoryConfig::Static { file } => {
                AnyDirectory::Static(StaticDirectory::from_file(file.clone())?)
            }
        })
    }

    /// The service connection points of Active Directory for autodiscover;
    /// none for a static list.
    pub fn scp_source(&self) -> DirectoryScp {
        match self {
            AnyDirectory::ActiveDirectory(ad) => DirectoryScp(Some(ad.clone())),
            AnyDirectory::Static(_) => DirectoryScp(None),
        }
    }
}

impl UserDirectory for AnyDirectory {
    async fn users(&self) -> Result<Vec<DirectoryUser>, DirectoryError> {
        match self {
            AnyDirectory::ActiveDirectory(ad) => ad.users().await,
            AnyDirectory::Static(list) => list.users().await,
        }
    }

    async fn find_user(&self, key: &UserKey) -> Result<Option<DirectoryUser>, DirectoryError> {
        match self {
            AnyDirectory::ActiveDirectory(ad) => ad.find_user(key).await,
            AnyDirectory::Static(list) => list.find_user(key).await,
        }
    }
}

/// Autodiscover's first step reads Active Directory when there is one.
#[derive(Clone)]
pub struct DirectoryScp(Option<Arc<AdDirectory>>);

impl ScpSource for DirectoryScp {
    async fn service_connection_points(
        &self,
    ) -> Result<Vec<ServiceConnectionPoint>, Box<dyn std::error::Error + Send + Sync>> {
        match &self.0 {
            Some(ad) => ad.as_ref().service_connection_points().await,
            None => Ok(Vec::new()),
        }
    }
}

/// Exchange as the engine's calendar source: the batched availability
/// reader on the configured EWS URL, or on the URL autodiscover finds for
/// the first mailbox asked for (found once, then kept; a failed discovery
/// is tried again on the next read).
pub struct ExchangeCalendars {
    settings: ExchangeSettings,
    scp: DirectoryScp,
    reader: OnceCell<AvailabilityReader>,
    discovery: Mutex<Option<Discovery>>,
    /// Told about the reader's requests (metrics); set before the first read.
    observer: std::sync::OnceLock<Arc<dyn RequestObserver>>,
}

impl ExchangeCalendars {
    pub fn new(settings: ExchangeSettings, scp: DirectoryScp) -> ExchangeCalendars {
        ExchangeCalendars {
            settings,
            scp,
            reader: OnceCell::new(),
            discovery: Mutex::new(None),
            observer: std::sync::OnceLock::new(),
        }
    }

    /// Tells `observer` about every Exchange request, busy answer, retry
    /// and pause. Only the first call counts, and only before the first read.
    pub fn observe(&self, observer: Arc<dyn RequestObserver>) {
        let _ = self.observer.set(observer);
    }

    pub fn settings(&self) -> &ExchangeSettings {
        &self.settings
    }

    /// What autodiscover found, when it ran.
    pub fn discovery(&self) -> Option<Discovery> {
        self.discovery.lock().expect("discovery lock").clone()
    }

    /// Runs autodiscover for `mailbox` (every step is in the result or the
    /// error, for `check`).
    pub async fn discover(&self, mailbox: &str) -> Result<Discovery, DiscoverError> {
        let transport = self
            .settings
            .http_transport()
            .map_err(|e| DiscoverError::Setup(e.to_string()))?;
        let settings = AutodiscoverSettings {
            trusted_hosts: self.settings.autodiscover_trusted_hosts.clone(),
            ..AutodiscoverSettings::default()
        };
        let client = AutodiscoverClient::new(transport, settings)
            .map_err(|e| DiscoverError::Setup(e.to_string()))?
            .with_scp(self.scp.clone());
        let client = match UdpSrvResolver::from_system(std::time::Duration::from_secs(5)) {
            Ok(resolver) => {
                let found = client.with_srv(resolver).discover(mailbox).await;
                return self.keep(found);
            }
            Err(e) => {
                tracing::debug!(target: "autodiscover", "no DNS resolver for the SRV step: {e}");
                client
            }
        };
        let found = client.discover(mailbox).await;
        self.keep(found)
    }

    fn keep(
        &self,
        found: Result<Discovery, AutodiscoverError>,
    ) -> Result<Discovery, DiscoverError> {
        match found {
            Ok(discovery) => {
                *self.discovery.lock().expect("discovery lock") = Some(discovery.clone());
                Ok(discovery)
            }
            Err(e) => Err(DiscoverError::NotFound(e)),
        }
    }

    /// The EWS client for `url`, with the configured version, account and
    /// concurrency.
    pub fn ews_client(&self, url: Url) -> Result<EwsClient, EwsError> {
        let transport = self
            .settings
            .http_transport()
            .map_err(|e| EwsError::Config(e.to_string()))?;
        EwsClient::new(Arc::new(transport), url)
            .with_version(self.settings.version)
            .with_resilience(ResilienceConfig {
                concurrency: self.settings.max_concurrency.max(1),
                ..ResilienceConfig::default()
            })
    }

    /// The reader, created on first use (autodiscover with `mailbox_hint`
    /// when no URL is configured).
    pub async fn reader(&self, mailbox_hint: Option<&str>) -> Result<&AvailabilityReader, String> {
        self.reader
            .get_or_try_init(|| async {
                let url = match &self.settings.url {
                    Some(url) => url.clone(),
                    None => {
                        let mailbox = self.autodiscover_mailbox(mailbox_hint).ok_or_else(|| {
                            "no EWS URL is configured and there is no mailbox to run autodiscover for; set `exchange.url`".to_owned()
                        })?;
                        self.discover(&mailbox).await.map_err(|e| e.to_string())?.ews_url
                    }
                };
                let mut client = self.ews_client(url).map_err(|e| e.to_string())?;
                if let Some(observer) = self.observer.get() {
                    client = client.with_observer(observer.clone());
                }
                let config = AvailabilityReaderConfig {
                    impersonate_each_mailbox: self.settings.impersonation,
                    ..AvailabilityReaderConfig::default()
                };
                AvailabilityReader::new(Arc::new(client), config).map_err(|e| e.to_string())
            })
            .await
    }

    /// Autodiscover asks for the service account's own address when its
    /// user name is one (UPN form usually is), else for the first mailbox.
    fn autodiscover_mailbox(&self, hint: Option<&str>) -> Option<String> {
        let user = self.settings.credentials.username();
        if user.contains('@') {
            Some(user.to_owned())
        } else {
            hint.map(str::to_owned)
        }
    }
}

impl CalendarSource for ExchangeCalendars {
    async fn read_calendars(
        &self,
        mailboxes: &[String],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<MailboxAvailability>, SourceError> {
        let reader = self
            .reader(mailboxes.first().map(String::as_str))
            .await
            .map_err(|message| SourceError { message })?;
        reader.read_calendars(mailboxes, start, end).await
    }

    async fn read_calendars_each(
        &self,
        mailboxes: &[String],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        ready: tokio::sync::mpsc::UnboundedSender<MailboxAvailability>,
    ) -> Result<(), SourceError> {
        let reader = self
            .reader(mailboxes.first().map(String::as_str))
            .await
            .map_err(|message| SourceError { message })?;
        reader
            .read_calendars_each(mailboxes, start, end, ready)
            .await
    }
}

/// Autodiscover could not run, or ran without finding an EWS URL.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("autodiscover cannot start: {0}")]
    Setup(String),
    /// Every step tried and why it did not give the URL.
    #[error("{0}")]
    NotFound(AutodiscoverError),
}

/// The engine as the configuration describes it, with `state`.
pub type ConfiguredEngine<S> = Engine<UcServerClient, AnyDirectory, ExchangeCalendars, S>;

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
    pub fn server(&self) -> crate::replication::Server {
        match self {
            AssembleError::Directory(_) => crate::replication::Server::Directory,
            AssembleError::UcServer(_) => crate::replication::Server::UcServer,
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
    let calendars = ExchangeCalendars::new(config.exchange.clone(), directory.scp_source());
    let ucserver = UcServerClient::connect(config.ucserver.clone()).await?;
    Ok(Engine::new(
        ucserver,
        directory,
        calendars,
        state,
        config.replication.clone(),
    ))
}
