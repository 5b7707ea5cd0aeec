//! The concrete clients as the engine's ports: the directory the
//! configuration names as [`UserDirectory`], Exchange (the EWS toolkit's
//! availability reader) as [`CalendarSource`], the UCServer client as
//! [`UcServerPort`].

use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::OnceCell;
use url::Url;

use crate::config::{DirectoryConfig, ExchangeSettings};
use crate::directory::{
    AdDirectory, DirectoryError, DirectoryUser, StaticDirectory, UserDirectory, UserKey,
};
use crate::replication::{CalendarSource, SourceError, UcServerPort, WriteError};
use crate::ucserver::{Appointment, UcError, UcServerClient, UserFilter, UserProfile};
use ews_toolkit::autodiscover::Discovery;
use ews_toolkit::availability::MailboxAvailability;
use ews_toolkit::availability_reader::{AvailabilityReader, AvailabilityStats};
use ews_toolkit::client::{EwsClient, EwsError};
use ews_toolkit::resilience::RequestObserver;
use ews_toolkit::transport::{HttpTransport, TransportStats};

use super::autodiscover::{self, DirectoryScp, DiscoverError};

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
            AnyDirectory::ActiveDirectory(ad) => DirectoryScp::of(ad.clone()),
            AnyDirectory::Static(_) => DirectoryScp::none(),
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

/// Exchange as the engine's calendar source: the batched availability
/// reader on the configured EWS URL, or on the URL autodiscover finds for
/// the first mailbox asked for (found once, then kept; a failed discovery
/// is tried again on the next read).
pub struct ExchangeCalendars {
    settings: ExchangeSettings,
    scp: DirectoryScp,
    reader: OnceCell<AvailabilityReader>,
    /// The reader's HTTP client, kept for its counters (shared with the
    /// metrics, which read them when asked).
    transport: Arc<OnceLock<HttpTransport>>,
    discovery: Mutex<Option<Discovery>>,
    /// Told about the reader's requests (metrics); set before the first read.
    observer: OnceLock<Arc<dyn RequestObserver>>,
}

impl ExchangeCalendars {
    pub fn new(settings: ExchangeSettings, scp: DirectoryScp) -> ExchangeCalendars {
        ExchangeCalendars {
            settings,
            scp,
            reader: OnceCell::new(),
            transport: Arc::new(OnceLock::new()),
            discovery: Mutex::new(None),
            observer: OnceLock::new(),
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

    /// Where autodiscover looks in the directory (for the change feed's own
    /// client).
    pub fn scp(&self) -> DirectoryScp {
        self.scp.clone()
    }

    /// What autodiscover found, when it ran.
    pub fn discovery(&self) -> Option<Discovery> {
        self.discovery.lock().expect("discovery lock").clone()
    }

    /// The reader's counters (requests, retries), once it has read.
    pub fn reader_stats(&self) -> Option<AvailabilityStats> {
        self.reader.get().map(AvailabilityReader::stats)
    }

    /// The reader's connection counters, once it has read.
    pub fn transport_stats(&self) -> Option<TransportStats> {
        self.transport.get().map(HttpTransport::stats)
    }

    /// Where the reader's connection counters can be read from, also
    /// before it has read (the handshakes metrics).
    pub fn transport_stats_source(&self) -> crate::monitoring::TransportStatsSource {
        let transport = self.transport.clone();
        Box::new(move || transport.get().map(HttpTransport::stats))
    }

    /// Runs autodiscover for `mailbox` (every step is in the result or the
    /// error, for `check`).
    pub async fn discover(&self, mailbox: &str) -> Result<Discovery, DiscoverError> {
        let found = autodiscover::discover(&self.settings, &self.scp, mailbox).await;
        if let Ok(discovery) = &found {
            *self.discovery.lock().expect("discovery lock") = Some(discovery.clone());
        }
        found
    }

    /// The EWS client for `url`, with the configured version, account and
    /// concurrency.
    pub fn ews_client(&self, url: Url) -> Result<EwsClient, EwsError> {
        let transport = super::exchange_transport(&self.settings)
            .map_err(|e| EwsError::Config(e.to_string()))?;
        Self::client_on(&self.settings, transport, url)
    }

    fn client_on(
        settings: &ExchangeSettings,
        transport: HttpTransport,
        url: Url,
    ) -> Result<EwsClient, EwsError> {
        EwsClient::new(Arc::new(transport), url)
            .with_version(settings.version)
            .with_resilience(super::resilience_config(settings))
    }

    /// The reader, created on first use (autodiscover with `mailbox_hint`
    /// when no URL is configured).
    pub async fn reader(&self, mailbox_hint: Option<&str>) -> Result<&AvailabilityReader, String> {
        self.reader
            .get_or_try_init(|| async {
                let url = match &self.settings.url {
                    Some(url) => url.clone(),
                    None => {
                        let mailbox = autodiscover_mailbox_or_fix(&self.settings, mailbox_hint)?;
                        self.discover(&mailbox)
                            .await
                            .map_err(|e| e.to_string())?
                            .ews_url
                    }
                };
                let transport =
                    super::exchange_transport(&self.settings).map_err(|e| e.to_string())?;
                let mut client = Self::client_on(&self.settings, transport.clone(), url)
                    .map_err(|e| e.to_string())?;
                if let Some(observer) = self.observer.get() {
                    client = client.with_observer(observer.clone());
                }
                let reader =
                    AvailabilityReader::new(Arc::new(client), super::reader_config(&self.settings))
                        .map_err(|e| e.to_string())?;
                let _ = self.transport.set(transport);
                Ok(reader)
            })
            .await
    }
}

/// The mailbox autodiscover asks for, or the fix when there is none.
fn autodiscover_mailbox_or_fix(
    settings: &ExchangeSettings,
    hint: Option<&str>,
) -> Result<String, String> {
    super::autodiscover_mailbox(settings, hint).ok_or_else(|| {
        "no EWS URL is configured and there is no mailbox to run autodiscover for; set `exchange.url`".to_owned()
    })
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
        ready: UnboundedSender<MailboxAvailability>,
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

/// Exchange through the batched, throttling-aware availability reader. Its
/// `Err` means no mailbox could be read; per-mailbox errors stay inside.
impl CalendarSource for AvailabilityReader {
    async fn read_calendars(
        &self,
        mailboxes: &[String],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<MailboxAvailability>, SourceError> {
        self.read(mailboxes, start, end)
            .await
            .map_err(|e| SourceError {
                message: e.to_string(),
            })
    }

    async fn read_calendars_each(
        &self,
        mailboxes: &[String],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        ready: UnboundedSender<MailboxAvailability>,
    ) -> Result<(), SourceError> {
        self.read_each(mailboxes, start, end, |answer| {
            // A closed receiver means the cycle stopped listening.
            let _ = ready.send(answer);
        })
        .await
        .map_err(|e| SourceError {
            message: e.to_string(),
        })
    }
}

impl From<UcError> for WriteError {
    fn from(error: UcError) -> Self {
        WriteError {
            retryable: error.is_retryable(),
            message: error.to_string(),
        }
    }
}

impl UcServerPort for UcServerClient {
    async fn list_users(&self, filter: UserFilter) -> Result<Vec<UserProfile>, WriteError> {
        Ok(self.users(filter).await?)
    }

    async fn write_appointments(
        &self,
        user_name: &str,
        appointments: &[Appointment],
    ) -> Result<(), WriteError> {
        Ok(self.set_appointments(user_name, appointments).await?)
    }
}
