//! Exchange autodiscover as the service runs it: which mailbox it asks
//! for, and Active Directory's service connection points (plain directory
//! entries) as the EWS toolkit's first autodiscover step.

use std::sync::Arc;
use std::time::Duration;

use crate::config::ExchangeSettings;
use crate::directory::{AdDirectory, ScpEntry};
use ews_toolkit::autodiscover::{
    AutodiscoverClient, AutodiscoverError, AutodiscoverSettings, Discovery, ScpSource,
    ServiceConnectionPoint, UdpSrvResolver, AUTODISCOVER_SCP_KEYWORDS,
};

/// Autodiscover asks for the service account's own address when its user
/// name is one (UPN form usually is), else for `hint` (the first mailbox
/// the service reads, or the one `check` tests).
pub fn autodiscover_mailbox(settings: &ExchangeSettings, hint: Option<&str>) -> Option<String> {
    let user = settings.credentials.username();
    if user.contains('@') {
        Some(user.to_owned())
    } else {
        hint.map(str::to_owned)
    }
}

/// Autodiscover's first step reads Active Directory when there is one.
#[derive(Clone)]
pub struct DirectoryScp(Option<Arc<AdDirectory>>);

impl DirectoryScp {
    /// The points `directory` publishes.
    pub fn of(directory: Arc<AdDirectory>) -> DirectoryScp {
        DirectoryScp(Some(directory))
    }

    /// No directory to ask (a static list, or none opened): the step is
    /// skipped.
    pub fn none() -> DirectoryScp {
        DirectoryScp(None)
    }
}

impl From<ScpEntry> for ServiceConnectionPoint {
    fn from(entry: ScpEntry) -> Self {
        ServiceConnectionPoint {
            url: entry.url,
            sites: entry.sites,
            dn: entry.dn,
        }
    }
}

impl ScpSource for DirectoryScp {
    async fn service_connection_points(
        &self,
    ) -> Result<Vec<ServiceConnectionPoint>, Box<dyn std::error::Error + Send + Sync>> {
        let Some(ad) = &self.0 else {
            return Ok(Vec::new());
        };
        let entries = ad
            .service_connection_points(&AUTODISCOVER_SCP_KEYWORDS)
            .await?;
        Ok(entries.into_iter().map(Into::into).collect())
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

/// Runs autodiscover for `mailbox` with the configured account, trusted
/// hosts, the directory's points and the system's DNS (SRV step).
pub(super) async fn discover(
    settings: &ExchangeSettings,
    scp: &DirectoryScp,
    mailbox: &str,
) -> Result<Discovery, DiscoverError> {
    let transport =
        super::exchange_transport(settings).map_err(|e| DiscoverError::Setup(e.to_string()))?;
    let autodiscover_settings = AutodiscoverSettings {
        trusted_hosts: settings.autodiscover_trusted_hosts.clone(),
        ..AutodiscoverSettings::default()
    };
    let client = AutodiscoverClient::new(transport, autodiscover_settings)
        .map_err(|e| DiscoverError::Setup(e.to_string()))?
        .with_scp(scp.clone());
    let found = match UdpSrvResolver::from_system(Duration::from_secs(5)) {
        Ok(resolver) => client.with_srv(resolver).discover(mailbox).await,
        Err(e) => {
            tracing::debug!(target: "autodiscover", "no DNS resolver for the SRV step: {e}");
            client.discover(mailbox).await
        }
    };
    found.map_err(DiscoverError::NotFound)
}
