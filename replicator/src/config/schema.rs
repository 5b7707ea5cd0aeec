//! The configuration file as written: every key optional here, so that a
//! missing one is reported by the loader with what it expects. Unknown keys
//! are refused (`deny_unknown_fields`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use ews_toolkit::secret::Secret;

// No Debug on anything holding a password.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub ucserver: Option<RawUcServer>,
    pub directory: Option<RawDirectory>,
    pub exchange: Option<RawExchange>,
    #[serde(default)]
    pub replication: RawReplication,
    #[serde(default)]
    pub logging: RawLogging,
    #[serde(default)]
    pub state: RawState,
    #[serde(default)]
    pub security: RawSecurity,
    #[serde(default)]
    pub monitoring: RawMonitoring,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMonitoring {
    pub listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSecurity {
    pub allow_readable_secrets: Option<bool>,
}

/// `password`, `password_file`, `password_env` of one section.
#[derive(Default, Clone)]
pub(super) struct RawPassword {
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
}

// The struct fields are repeated (no `#[serde(flatten)]`): flatten and
// deny_unknown_fields do not work together.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUcServer {
    pub url: Option<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub ucsid: Option<String>,
    pub allow_plain_http: Option<bool>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawDirectoryKind {
    #[default]
    Ad,
    Static,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDirectory {
    #[serde(default)]
    pub kind: RawDirectoryKind,
    pub url: Option<String>,
    pub starttls: Option<bool>,
    pub bind_user: Option<String>,
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    pub base_dn: Option<String>,
    pub user_filter: Option<String>,
    pub include_group: Option<String>,
    pub exclude_group: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub max_entries: Option<u64>,
    pub max_response_mb: Option<u64>,
    pub file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawAuth {
    Ntlm,
    Negotiate,
    Kerberos,
    Basic,
}

/// `kerberos_kdc`: one KDC, or several asked in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RawKdcs {
    One(String),
    Several(Vec<String>),
}

// By hand: serde's untagged enums say only "did not match any variant".
impl<'de> Deserialize<'de> for RawKdcs {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Kdcs;
        impl<'de> serde::de::Visitor<'de> for Kdcs {
            type Value = RawKdcs;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a KDC (\"host\" or \"host:port\") or a list of them")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<RawKdcs, E> {
                Ok(RawKdcs::One(text.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RawKdcs, A::Error> {
                let mut kdcs = Vec::new();
                while let Some(kdc) = seq.next_element::<String>()? {
                    kdcs.push(kdc);
                }
                Ok(RawKdcs::Several(kdcs))
            }
        }
        deserializer.deserialize_any(Kdcs)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExchange {
    pub url: Option<String>,
    pub version: Option<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    pub auth: Option<RawAuth>,
    pub allow_ntlm_fallback: Option<bool>,
    pub kerberos_kdc: Option<RawKdcs>,
    pub kerberos_realm: Option<String>,
    pub kerberos_spn: Option<String>,
    pub kerberos_kdc_timeout_seconds: Option<u64>,
    pub impersonation: Option<bool>,
    pub ca_file: Option<PathBuf>,
    pub max_concurrency: Option<u32>,
    pub request_timeout_seconds: Option<u64>,
    pub max_response_mb: Option<u64>,
    pub autodiscover_trusted_hosts: Option<Vec<String>>,
    pub notifications: Option<RawNotifications>,
    pub notification_connections: Option<u32>,
    pub notification_subscriptions: Option<u32>,
    pub subscriptions_per_connection: Option<u32>,
    pub notification_connection_timeout_minutes: Option<u32>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(super) enum RawNotifications {
    Auto,
    Streaming,
    Off,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(super) enum RawPrivateAppointments {
    Skip,
    // The command line's spelling (`demo --private-appointments`) is accepted too.
    #[serde(alias = "times-only")]
    TimesOnly,
    Full,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(super) enum RawStatus {
    Free,
    Tentative,
    Busy,
    #[serde(alias = "oof")]
    OutOfOffice,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReplication {
    pub interval_minutes: Option<u32>,
    pub only_offline_users: Option<bool>,
    pub window_days: Option<u32>,
    pub private_appointments: Option<RawPrivateAppointments>,
    pub busy_type_map: Option<BTreeMap<String, RawStatus>>,
    pub ucserver_writes_in_flight: Option<u32>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLogging {
    pub level: Option<RawLevel>,
    pub directory: Option<PathBuf>,
    pub max_file_size_mb: Option<u64>,
    pub max_files: Option<u32>,
    pub syslog: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawState {
    pub path: Option<PathBuf>,
}

impl RawUcServer {
    pub fn password_keys(&self) -> RawPassword {
        RawPassword {
            password: self.password.clone(),
            password_file: self.password_file.clone(),
            password_env: self.password_env.clone(),
        }
    }
}

impl RawDirectory {
    pub fn password_keys(&self) -> RawPassword {
        RawPassword {
            password: self.password.clone(),
            password_file: self.password_file.clone(),
            password_env: self.password_env.clone(),
        }
    }
}

impl RawExchange {
    pub fn password_keys(&self) -> RawPassword {
        RawPassword {
            password: self.password.clone(),
            password_file: self.password_file.clone(),
            password_env: self.password_env.clone(),
        }
    }
}
