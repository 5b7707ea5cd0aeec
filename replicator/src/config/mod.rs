//! The configuration: one TOML file (see `config.example.toml`), loaded into
//! the settings types of the parts it configures. Unknown keys, missing
//! required keys and invalid values are refused with the file, line, key
//! and what is expected.
//!
//! Entry points: [`load`] (the process environment), [`load_with`] and
//! [`parse`] (an explicit [`LoadContext`], for tests), [`load_warning`]
//! (needs the user count, known only at run time), [`init`] (`config init`).

pub mod document;
pub mod init;
mod locate;
mod schema;

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use crate::directory::{DirectorySettings, Secret};
use crate::logging::{LogLevel, LoggingSettings};
use crate::monitoring::MonitoringSettings;
use crate::replication::{BusyTypeMap, PrivateAppointments, ReplicationSettings};
use crate::ucserver::{AppointmentStatus, UcServerSettings};
use ews_toolkit::autodiscover::{TrustedHosts, TRUSTED_HOSTS_KEY};
use ews_toolkit::transport::{AuthScheme, Credentials, KerberosSettings, TransportConfig};
use ews_toolkit::ExchangeVersion;

use locate::SourceMap;
use schema::{
    RawAuth, RawConfig, RawDirectory, RawDirectoryKind, RawExchange, RawKdcs, RawLevel, RawLogging,
    RawMonitoring, RawNotifications, RawPassword, RawPrivateAppointments, RawReplication, RawState,
    RawStatus, RawUcServer,
};

/// Directory name under the data directories.
pub const APP_DIR_NAME: &str = "ews-calendar-replicator";
/// State directory when running as root outside systemd.
pub const ROOT_STATE_DIRECTORY: &str = "/var/lib/ews-calendar-replicator";
/// Where the systemd unit expects the configuration.
pub const SYSTEM_CONFIG_PATH: &str = "/etc/ews-calendar-replicator/config.toml";

/// Largest useful `max_concurrency`: more only queues at Exchange's throttling.
pub const MAX_CONCURRENCY_LIMIT: u32 = 64;
/// Mailboxes per availability request (Exchange's limit).
pub const MAILBOXES_PER_REQUEST: usize = 100;
/// Days per availability request (Exchange's limit).
pub const DAYS_PER_REQUEST: u32 = 42;

/// The whole configuration, in the types of the parts it configures.
/// `Debug` never shows a password (every type holding one redacts it).
#[derive(Debug)]
pub struct Config {
    /// The file it was loaded from.
    pub file: PathBuf,
    pub ucserver: UcServerSettings,
    pub directory: DirectoryConfig,
    pub exchange: ExchangeSettings,
    pub replication: ReplicationSettings,
    pub logging: LoggingSettings,
    /// The SQLite state database.
    pub state_path: PathBuf,
    pub monitoring: MonitoringSettings,
    /// Things that work but deserve attention (shown at start-up and by
    /// `check`).
    pub warnings: Vec<ConfigWarning>,
    /// Password files other users may read (their keys, and why); `run`
    /// refuses to start with any unless `allow_readable_secrets`.
    pub readable_secrets: Vec<ConfigWarning>,
    /// `[security] allow_readable_secrets`.
    pub allow_readable_secrets: bool,
    /// A section sets `password` in the file itself.
    inline_password: bool,
}

/// `[directory]`: where mailboxes are looked up.
#[derive(Debug, Clone)]
// One value per process: the size difference costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
pub enum DirectoryConfig {
    /// `kind = "ad"`.
    ActiveDirectory(DirectorySettings),
    /// `kind = "static"`: the user-to-mailbox rows in `file`.
    Static { file: PathBuf },
}

/// `[exchange]`.
#[derive(Debug, Clone)]
pub struct ExchangeSettings {
    /// The EWS endpoint; `None`: autodiscover.
    pub url: Option<Url>,
    pub version: ExchangeVersion,
    pub credentials: Credentials,
    /// Act as each mailbox (`ExchangeImpersonation`).
    pub impersonation: bool,
    /// Availability requests in flight at once.
    pub max_concurrency: usize,
    /// `ca_file`, and one connection per concurrent request.
    pub transport: TransportConfig,
    /// Hosts outside the mail domain that autodiscover may send the
    /// credentials to.
    pub autodiscover_trusted_hosts: TrustedHosts,
    /// Streaming notifications (`notifications` and its limits).
    pub notifications: NotificationSettings,
}

/// `[exchange] notifications`: whether calendar changes are pushed by
/// Exchange's streaming notifications or only read by the periodic cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationMode {
    /// Subscribe every mailbox Exchange lets the account subscribe to; a
    /// mailbox that refuses stays on the cycle, and that is no error.
    Auto,
    /// Like `Auto`, but notifications are required: `check` fails when the
    /// account cannot subscribe.
    Streaming,
    /// The periodic cycle only.
    Off,
}

impl NotificationMode {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationMode::Auto => "auto",
            NotificationMode::Streaming => "streaming",
            NotificationMode::Off => "off",
        }
    }
}

/// Microsoft, "Handling notification-related errors in EWS in Exchange":
/// on-premises `HangingConnectionLimit` defaults to 3 open streaming
/// connections per account (`ErrorExceededConnectionCount` beyond).
pub const DEFAULT_NOTIFICATION_CONNECTIONS: usize = 3;
/// The same document: `EWSMaxSubscriptions` (throttling policy) defaults to
/// 5000 on-premises (`ErrorExceededSubscriptionCount` beyond).
pub const DEFAULT_NOTIFICATION_SUBSCRIPTIONS: usize = 5000;
/// The same document: at most 200 subscriptions in one group, i.e. on one
/// GetStreamingEvents connection.
pub const MAX_SUBSCRIPTIONS_PER_CONNECTION: usize = 200;
/// GetStreamingEvents' `ConnectionTimeout` maximum (minutes).
pub const MAX_CONNECTION_TIMEOUT_MINUTES: u8 = 30;

/// The streaming notification settings of `[exchange]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationSettings {
    pub mode: NotificationMode,
    /// GetStreamingEvents connections held open at once (Exchange's
    /// `HangingConnectionLimit` for the account).
    pub max_connections: usize,
    /// Subscriptions of the account at once (`EWSMaxSubscriptions`).
    pub max_subscriptions: usize,
    /// Subscriptions read on one connection (one affinity group).
    pub subscriptions_per_connection: usize,
    /// GetStreamingEvents' `ConnectionTimeout`: the connection is re-opened
    /// after this long.
    pub connection_timeout_minutes: u8,
}

impl Default for NotificationSettings {
    fn default() -> NotificationSettings {
        NotificationSettings {
            mode: NotificationMode::Auto,
            max_connections: DEFAULT_NOTIFICATION_CONNECTIONS,
            max_subscriptions: DEFAULT_NOTIFICATION_SUBSCRIPTIONS,
            subscriptions_per_connection: MAX_SUBSCRIPTIONS_PER_CONNECTION,
            connection_timeout_minutes: MAX_CONNECTION_TIMEOUT_MINUTES,
        }
    }
}

impl NotificationSettings {
    /// Mailboxes that can be subscribed at most: the smaller of the
    /// subscription limit and what the connections can carry.
    pub fn capacity(&self) -> usize {
        self.max_subscriptions
            .min(self.max_connections * self.subscriptions_per_connection)
    }
}

impl ExchangeSettings {
    /// The SOAP headers of a request (impersonation is added per mailbox).
    pub fn request_headers(&self) -> ews_toolkit::RequestHeaders {
        ews_toolkit::RequestHeaders::new(self.version)
    }
}

/// A setting that works but deserves attention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// Dotted key (`directory.url`).
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based, where known.
    pub line: Option<usize>,
    /// Dotted key (`exchange.auth`), where the error is about one.
    pub key: Option<String>,
    /// What is wrong and what is expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        f.write_str(": ")?;
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

type VarLookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// What loading looks up outside the file: environment variables
/// (`password_env`, `$STATE_DIRECTORY`, `$LOGS_DIRECTORY`, `$XDG_DATA_HOME`,
/// `$HOME`) and whether the process runs as root.
pub struct LoadContext {
    var: VarLookup,
    is_root: bool,
}

impl LoadContext {
    /// The process environment.
    pub fn from_process() -> LoadContext {
        LoadContext {
            var: Box::new(|name| std::env::var(name).ok()),
            // SAFETY: geteuid has no preconditions and cannot fail.
            is_root: unsafe { libc::geteuid() } == 0,
        }
    }

    /// Exactly these variables, as a non-root user.
    pub fn with_vars<I, K, V>(vars: I) -> LoadContext
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let vars: BTreeMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        LoadContext {
            var: Box::new(move |name| vars.get(name).cloned()),
            is_root: false,
        }
    }

    pub fn as_root(mut self, is_root: bool) -> LoadContext {
        self.is_root = is_root;
        self
    }

    fn var(&self, name: &str) -> Option<String> {
        (self.var)(name).filter(|v| !v.is_empty())
    }
}

/// Loads `file` with the process environment.
pub fn load(file: &Path) -> Result<Config, ConfigError> {
    load_with(file, &LoadContext::from_process())
}

/// Loads `file`; relative paths in it are relative to its directory.
pub fn load_with(file: &Path, context: &LoadContext) -> Result<Config, ConfigError> {
    // A Secret: the file may hold passwords, and this copy is zeroed on drop.
    let text = fs::read_to_string(file).map(Secret::new).map_err(|e| ConfigError {
        file: file.to_owned(),
        line: None,
        key: None,
        message: match e.kind() {
            io::ErrorKind::NotFound => format!(
                "the configuration file does not exist; write one with `ews-calendar-replicator config init {}`",
                file.display()
            ),
            _ => format!("cannot read the configuration file: {e}"),
        },
    })?;
    let mut config = parse(text.expose(), file, context)?;
    if config.inline_password {
        if let Some(warning) = permission_warning(file) {
            config.warnings.push(warning);
        }
    }
    Ok(config)
}

/// Only `[state] path` of `file` (the whole file is still parsed, so a
/// syntax error or an unknown key is reported): for `status`, which reads
/// the local database and must not need the passwords.
pub fn load_state_path(file: &Path, context: &LoadContext) -> Result<PathBuf, ConfigError> {
    let text = fs::read_to_string(file)
        .map(Secret::new)
        .map_err(|e| ConfigError {
            file: file.to_owned(),
            line: None,
            key: None,
            message: format!("cannot read the configuration file: {e}"),
        })?;
    let source = SourceMap::new(text.expose());
    let raw: RawConfig =
        toml::from_str(text.expose()).map_err(|e| translate_toml_error(file, &source, &e))?;
    Builder::new(file, source, context).state(raw.state)
}

/// The directory relative paths in `file` are relative to.
fn base_dir_of(file: &Path) -> PathBuf {
    file.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| fs::canonicalize(p).unwrap_or_else(|_| p.to_owned()))
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Parses `text` as if read from `file` (named in errors; relative paths are
/// relative to its directory).
pub fn parse(text: &str, file: &Path, context: &LoadContext) -> Result<Config, ConfigError> {
    let source = SourceMap::new(text);
    let raw: RawConfig =
        toml::from_str(text).map_err(|e| translate_toml_error(file, &source, &e))?;
    // Decided on the parsed document, so that any spelling of the key
    // (quoted, inline tables, tabs) counts.
    let inline_password = raw.ucserver.as_ref().is_some_and(|s| s.password.is_some())
        || raw.directory.as_ref().is_some_and(|s| s.password.is_some())
        || raw.exchange.as_ref().is_some_and(|s| s.password.is_some());
    let mut builder = Builder::new(file, source, context);
    let ucserver = builder.ucserver(raw.ucserver)?;
    let directory = builder.directory(raw.directory)?;
    let exchange = builder.exchange(raw.exchange)?;
    let replication = builder.replication(raw.replication)?;
    let logging = builder.logging(raw.logging)?;
    let state_path = builder.state(raw.state)?;
    let monitoring = builder.monitoring(raw.monitoring)?;
    let allow_readable_secrets = raw.security.allow_readable_secrets.unwrap_or(false);
    Ok(Config {
        file: file.to_owned(),
        ucserver,
        directory,
        exchange,
        replication,
        logging,
        state_path,
        monitoring,
        warnings: builder.warnings,
        readable_secrets: builder.readable_secrets,
        allow_readable_secrets,
        inline_password,
    })
}

/// The warning for a short interval with many users, once the user count
/// is known: the expected request rate and why it may still be fine.
pub fn load_warning(replication: &ReplicationSettings, users: usize) -> Option<String> {
    let minutes = replication.interval.as_secs_f64() / 60.0;
    if minutes >= 5.0 || users <= 200 {
        return None;
    }
    let batches = users.div_ceil(MAILBOXES_PER_REQUEST);
    let windows = replication.window_days.div_ceil(DAYS_PER_REQUEST).max(1) as usize;
    let per_cycle = batches * windows;
    let cycles_per_hour = 60.0 / minutes.max(1.0 / 60.0);
    let per_hour = (per_cycle as f64 * cycles_per_hour).round() as u64;
    Some(format!(
        "replication.interval_minutes is {minutes} with {users} users: about {per_hour} availability requests per hour to Exchange \
         ({per_cycle} per cycle, {cycles_per_hour:.0} cycles per hour). This may be fine: requests are batched {MAILBOXES_PER_REQUEST} mailboxes at a time, \
         and only changed calendars are written to the UCServer; if Exchange throttles (ErrorServerBusy), raise the interval to 5 minutes or more"
    ))
}

/// The default state database: `$STATE_DIRECTORY` (systemd), the system
/// directory as root, otherwise the user's data directory.
pub fn default_state_path(context: &LoadContext) -> Option<PathBuf> {
    if let Some(dirs) = context.var("STATE_DIRECTORY") {
        // systemd passes several directories separated by colons.
        let first = dirs.split(':').next().unwrap_or_default();
        if !first.is_empty() {
            return Some(Path::new(first).join(crate::state::STATE_FILE_NAME));
        }
    }
    if context.is_root {
        return Some(Path::new(ROOT_STATE_DIRECTORY).join(crate::state::STATE_FILE_NAME));
    }
    let data_home = context
        .var("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            context
                .var("HOME")
                .map(|home| Path::new(&home).join(".local/share"))
        })?;
    Some(
        data_home
            .join(APP_DIR_NAME)
            .join(crate::state::STATE_FILE_NAME),
    )
}

fn translate_toml_error(
    file: &Path,
    source: &SourceMap<'_>,
    error: &toml::de::Error,
) -> ConfigError {
    let offset = error.span().map(|span| span.start);
    let key = offset.and_then(|offset| source.key_at(offset));
    let mut message = error
        .message()
        .trim()
        .lines()
        .collect::<Vec<_>>()
        .join("; ")
        .replace("unknown field", "unknown key")
        .replace("expected one of", "expected one of the keys");
    if key.as_deref().is_some_and(|k| k.ends_with(".password"))
        && !message.starts_with("unknown key")
    {
        // Serde quotes the offending value, which here may be the password.
        message = "invalid value; expected a string (in quotes)".to_owned();
    } else if message.starts_with("unknown key") {
        // Serde names the section's keys; the hint says where they are documented.
        message.push_str(" (see config.example.toml)");
    } else if let Some(doc) = key.as_deref().and_then(document::key_doc) {
        message.push_str(&format!("; expected: {}", one_line(doc.doc)));
    }
    ConfigError {
        file: file.to_owned(),
        line: offset.map(|offset| source.line_of(offset)),
        key,
        message,
    }
}

/// Whether the authority of `url` ends in `:port` (IPv6 hosts are bracketed).
fn has_explicit_port(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_and_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let after_host = host_and_port
        .rsplit_once(']')
        .map_or(host_and_port, |(_, p)| p);
    after_host
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
}

/// The configuration file used when none is given: the system file as root,
/// otherwise `$XDG_CONFIG_HOME` (or `~/.config`)`/ews-calendar-replicator/config.toml`.
pub fn default_config_path(context: &LoadContext) -> PathBuf {
    if context.is_root {
        return PathBuf::from(SYSTEM_CONFIG_PATH);
    }
    context
        .var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            context
                .var("HOME")
                .map(|home| Path::new(&home).join(".config"))
        })
        .map(|dir| dir.join(APP_DIR_NAME).join("config.toml"))
        .unwrap_or_else(|| PathBuf::from(SYSTEM_CONFIG_PATH))
}

/// An environment variable name as services name them (`LDAP_BIND_PASSWORD`):
/// upper-case letters, digits and `_`, not starting with a digit. Anything
/// else in `password_env` is more likely the password itself.
fn looks_like_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// A DNS name or an IPv4 address: letters, digits, `-`, `_` and `.`, at
/// least one character, no empty label.
fn is_host_name(text: &str) -> bool {
    !text.is_empty()
        && text.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A file that holds a password inline should be private to the service.
fn permission_warning(file: &Path) -> Option<ConfigWarning> {
    let mode = fs::metadata(file).ok()?.permissions().mode();
    (mode & 0o007 != 0).then(|| ConfigWarning {
        key: "password".into(),
        message: format!(
            "the file holds a password and other users can read it (mode {:o}); chmod 600 (or 640 with the service's group), or use password_file / password_env",
            mode & 0o777
        ),
    })
}

struct Builder<'a> {
    file: &'a Path,
    base_dir: PathBuf,
    source: SourceMap<'a>,
    context: &'a LoadContext,
    warnings: Vec<ConfigWarning>,
    readable_secrets: Vec<ConfigWarning>,
}

impl<'a> Builder<'a> {
    /// A builder for `file` (relative paths in it are relative to its
    /// directory) whose text is `source`.
    fn new(file: &'a Path, source: SourceMap<'a>, context: &'a LoadContext) -> Builder<'a> {
        Builder {
            file,
            base_dir: base_dir_of(file),
            source,
            context,
            warnings: Vec::new(),
            readable_secrets: Vec::new(),
        }
    }

    fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            line: self.source.line_of_key(key),
            key: Some(key.to_owned()),
            message: message.into(),
        }
    }

    fn warn(&mut self, key: &str, message: impl Into<String>) {
        self.warnings.push(ConfigWarning {
            key: key.to_owned(),
            message: message.into(),
        });
    }

    fn missing(&self, key: &str) -> ConfigError {
        let expected = document::key_doc(key)
            .map(|doc| {
                format!(
                    "; expected: {} (e.g. {} = {})",
                    one_line(doc.doc),
                    doc.name,
                    doc.example
                )
            })
            .unwrap_or_default();
        self.error(key, format!("missing{expected}"))
    }

    fn required<T>(&self, key: &str, value: Option<T>) -> Result<T, ConfigError> {
        value.ok_or_else(|| self.missing(key))
    }

    fn required_text(&self, key: &str, value: Option<String>) -> Result<String, ConfigError> {
        let value = self.required(key, value)?;
        if value.trim().is_empty() {
            return Err(self.missing(key).with_message_prefix("empty"));
        }
        Ok(value.trim().to_owned())
    }

    fn path(&self, path: PathBuf) -> PathBuf {
        if path.is_absolute() {
            path
        } else {
            self.base_dir.join(path)
        }
    }

    /// A PEM file that must exist when given.
    fn ca_file(&self, key: &str, value: Option<PathBuf>) -> Result<Option<PathBuf>, ConfigError> {
        let Some(path) = value.map(|p| self.path(p)) else {
            return Ok(None);
        };
        match fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(Some(path)),
            Ok(_) => Err(self.error(
                key,
                format!(
                    "{} is not a file; give a PEM file with the CA certificate(s)",
                    path.display()
                ),
            )),
            Err(e) => Err(self.error(
                key,
                format!(
                    "cannot read {}: {e}; give a PEM file with the CA certificate(s)",
                    path.display()
                ),
            )),
        }
    }

    /// Exactly one of `password`, `password_file`, `password_env`.
    fn password(&mut self, section: &str, keys: RawPassword) -> Result<Secret, ConfigError> {
        let set: Vec<&str> = [
            ("password", keys.password.is_some()),
            ("password_file", keys.password_file.is_some()),
            ("password_env", keys.password_env.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, present)| present.then_some(name))
        .collect();
        match set.as_slice() {
            [] => {
                return Err(self.error(
                    section,
                    format!("no password: set exactly one of {section}.password, {section}.password_file (a file holding only the password) or {section}.password_env (the name of an environment variable holding it)"),
                ))
            }
            [_] => {}
            [first, second, ..] => {
                return Err(self.error(
                    &format!("{section}.{second}"),
                    format!("{section}.{first} and {section}.{second} are both set; keep exactly one of password, password_file and password_env"),
                ))
            }
        }
        let (key, value) = if let Some(password) = keys.password {
            (format!("{section}.password"), password)
        } else if let Some(file) = keys.password_file {
            let key = format!("{section}.password_file");
            let path = self.password_path(&key, &file)?;
            let text = fs::read_to_string(&path).map(Secret::new).map_err(|e| {
                self.error(&key, format!("cannot read the password file {}: {e}; create it (readable only by the service user) or correct the path", path.display()))
            })?;
            // Editors and `echo` add a final newline; it is not part of the
            // password. Sliced, not popped, so that no second buffer exists.
            let value = text.expose();
            let value = value
                .strip_suffix('\n')
                .map_or(value, |v| v.strip_suffix('\r').unwrap_or(v));
            let value = Secret::new(value);
            if let Some(mode) = readable_by_every_user(&path) {
                let warning = ConfigWarning {
                    key: key.clone(),
                    message: format!(
                        "the password file {} is readable by every user (mode {:o}); chmod 600 it (or 640 with the service's group), or use systemd's LoadCredential= (see config.example.toml); `run` refuses to start until then unless [security] allow_readable_secrets = true",
                        path.display(),
                        mode & 0o777
                    ),
                };
                self.warnings.push(warning.clone());
                self.readable_secrets.push(warning);
            }
            (key, value)
        } else {
            let name = keys.password_env.unwrap_or_default();
            let key = format!("{section}.password_env");
            if name.trim().is_empty() {
                return Err(self.error(&key, "empty; give the name of an environment variable"));
            }
            if !looks_like_variable_name(&name) {
                // It may be the password itself: never repeat it.
                return Err(self.error(&key, "is not the name of an environment variable (expected upper-case letters, digits and _, e.g. LDAP_BIND_PASSWORD); if you wrote the password itself here, move it to a password_file and change it, since the configuration file may have been read by others (the value is not shown)"));
            }
            let value = self.context.var(&name).map(Secret::new).ok_or_else(|| {
                self.error(&key, format!("the environment variable {name} is not set (or empty); set it in the service's environment (systemd: LoadCredential= with password_file is safer, see config.example.toml)"))
            })?;
            (key, value)
        };
        if value.is_empty() {
            return Err(self.error(&key, "the password is empty"));
        }
        Ok(value)
    }

    /// A `password_file` path: `${NAME}` expands to the environment variable
    /// (systemd's `${CREDENTIALS_DIRECTORY}` for `LoadCredential=`);
    /// relative paths are relative to the configuration file.
    fn password_path(&self, key: &str, file: &Path) -> Result<PathBuf, ConfigError> {
        let Some(text) = file.to_str().filter(|t| t.contains("${")) else {
            return Ok(self.path(file.to_owned()));
        };
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| {
                self.error(key, format!("{text:?} has an unclosed ${{...}}; write ${{NAME}}, e.g. ${{CREDENTIALS_DIRECTORY}}/ldap.password"))
            })?;
            let name = &after[..end];
            let value = self.context.var(name).ok_or_else(|| {
                let hint = if name == "CREDENTIALS_DIRECTORY" {
                    "systemd sets it for a unit with LoadCredential= (see packaging/ews-calendar-replicator.service); outside systemd, give the file's path instead"
                } else {
                    "set it, or give the file's path instead"
                };
                self.error(key, format!("{text:?} uses ${{{name}}}, which is not set; {hint}"))
            })?;
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(self.path(PathBuf::from(out)))
    }

    fn ucserver(&mut self, raw: Option<RawUcServer>) -> Result<UcServerSettings, ConfigError> {
        let raw = raw.ok_or_else(|| {
            self.error("ucserver", "missing section [ucserver]: the UCServer to write to (url, username and a password)")
        })?;
        let url_text = self.required_text("ucserver.url", raw.url.clone())?;
        let url = self.ucserver_url(&url_text)?;
        let username = self.required_text("ucserver.username", raw.username.clone())?;
        let password = self.password("ucserver", raw.password_keys())?;
        let mut settings = UcServerSettings::new(url, username, password);
        settings.ca_file = self.ca_file("ucserver.ca_file", raw.ca_file)?;
        if let Some(ucsid) = raw.ucsid {
            settings.ucsid = Some(ucsid);
        }
        settings
            .validate()
            .map_err(|e| self.error("ucserver", e.to_string()))?;
        if settings.base_url.scheme() == "http" {
            const RISK: &str = "http:// sends the UCServer administrator password in clear (in createsession's Basic header and again in asnAdminLogin), readable by anyone on the network path";
            if raw.allow_plain_http != Some(true) {
                return Err(self.error(
                    "ucserver.url",
                    format!("{RISK}; use https://host:7225, or set ucserver.allow_plain_http = true to accept that risk"),
                ));
            }
            self.warn("ucserver.url", format!("{RISK}; use https://host:7225"));
        }
        if settings.base_url.scheme() == crate::ucserver::native::SCHEME_TCP {
            self.warn(
                "ucserver.url",
                "tcp:// sends the administrator password readable over the network; use tcp+starttls://host:7222 or https://host:7225",
            );
        }
        if matches!(settings.base_url.scheme(), "http" | "https")
            && settings.base_url.port() == Some(crate::ucserver::DEFAULT_NATIVE_PORT)
        {
            self.warn(
                "ucserver.url",
                "port 7222 is the UCServer's native port, not its web service (7224 http, 7225 https); for the native port write tcp://host:7222",
            );
        }
        Ok(settings)
    }

    fn ucserver_url(&self, text: &str) -> Result<Url, ConfigError> {
        let key = "ucserver.url";
        let expected = "expected https://host:7225 or http://host:7224 (web service), or tcp://host:7222 (native port)";
        let mut url = Url::parse(text)
            .map_err(|e| self.error(key, format!("{text:?} is not a URL ({e}); {expected}")))?;
        let default_port = match url.scheme() {
            "https" => crate::ucserver::DEFAULT_HTTPS_PORT,
            "http" => crate::ucserver::DEFAULT_HTTP_PORT,
            scheme if crate::ucserver::native::is_native_scheme(scheme) => {
                crate::ucserver::DEFAULT_NATIVE_PORT
            }
            other => {
                return Err(self.error(
                    key,
                    format!("scheme {other:?} is not supported; {expected}"),
                ))
            }
        };
        if url.host_str().is_none_or(str::is_empty) {
            return Err(self.error(key, format!("{text:?} names no host; {expected}")));
        }
        // `Url::port` is also `None` for an explicit :443/:80, which stays.
        if !has_explicit_port(text) {
            url.set_port(Some(default_port)).map_err(|()| {
                self.error(key, format!("{text:?} cannot take a port; {expected}"))
            })?;
        }
        Ok(url)
    }

    fn directory(&mut self, raw: Option<RawDirectory>) -> Result<DirectoryConfig, ConfigError> {
        let raw = raw.ok_or_else(|| {
            self.error("directory", "missing section [directory]: kind = \"ad\" with url, bind_user and a password, or kind = \"static\" with file")
        })?;
        const AD_ONLY: [&str; 13] = [
            "url",
            "starttls",
            "bind_user",
            "password",
            "password_file",
            "password_env",
            "base_dn",
            "user_filter",
            "include_group",
            "exclude_group",
            "ca_file",
            "max_entries",
            "max_response_mb",
        ];
        let present = |name: &str| match name {
            "url" => raw.url.is_some(),
            "starttls" => raw.starttls.is_some(),
            "bind_user" => raw.bind_user.is_some(),
            "password" => raw.password.is_some(),
            "password_file" => raw.password_file.is_some(),
            "password_env" => raw.password_env.is_some(),
            "base_dn" => raw.base_dn.is_some(),
            "user_filter" => raw.user_filter.is_some(),
            "include_group" => raw.include_group.is_some(),
            "exclude_group" => raw.exclude_group.is_some(),
            "ca_file" => raw.ca_file.is_some(),
            "max_entries" => raw.max_entries.is_some(),
            "max_response_mb" => raw.max_response_mb.is_some(),
            "file" => raw.file.is_some(),
            _ => false,
        };
        match raw.kind {
            RawDirectoryKind::Static => {
                if let Some(name) = AD_ONLY.iter().find(|name| present(name)) {
                    return Err(self.error(
                        &format!("directory.{name}"),
                        "applies to kind = \"ad\" only; remove it, or set kind = \"ad\"",
                    ));
                }
                let file = self.required("directory.file", raw.file)?;
                Ok(DirectoryConfig::Static {
                    file: self.path(file),
                })
            }
            RawDirectoryKind::Ad => {
                if present("file") {
                    return Err(self.error(
                        "directory.file",
                        "applies to kind = \"static\" only; remove it, or set kind = \"static\"",
                    ));
                }
                let url = self.required_text("directory.url", raw.url.clone())?;
                if !(url.starts_with("ldap://") || url.starts_with("ldaps://")) {
                    return Err(self.error(
                        "directory.url",
                        format!("{url:?} is not an LDAP URL; expected ldap://dc.example.com (port 389) or ldaps://dc.example.com (port 636)"),
                    ));
                }
                let bind_user = self.required_text("directory.bind_user", raw.bind_user.clone())?;
                if !(bind_user.contains('@') || bind_user.contains('\\') || bind_user.contains('='))
                {
                    return Err(self.error(
                        "directory.bind_user",
                        format!("{bind_user:?} names no domain; write it as a UPN (svc-replicator@corp.example.com) or as DOMAIN\\user"),
                    ));
                }
                let password = self.password("directory", raw.password_keys())?;
                let optional = |value: Option<String>| {
                    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
                };
                let mut settings = DirectorySettings::new(url, bind_user, password);
                settings.starttls = raw.starttls.unwrap_or(false);
                settings.ca_file = self.ca_file("directory.ca_file", raw.ca_file)?;
                settings.base_dn = optional(raw.base_dn);
                settings.user_filter = optional(raw.user_filter);
                settings.include_group = optional(raw.include_group);
                settings.exclude_group = optional(raw.exclude_group);
                let max_entries = raw
                    .max_entries
                    .unwrap_or(crate::directory::DEFAULT_MAX_ENTRIES as u64);
                if !(1..=10_000_000).contains(&max_entries) {
                    return Err(self.error(
                        "directory.max_entries",
                        format!("{max_entries} is out of range; expected 1 to 10000000 (default 200000)"),
                    ));
                }
                settings.max_entries = max_entries as usize;
                let max_response_mb = raw
                    .max_response_mb
                    .unwrap_or(crate::directory::DEFAULT_MAX_RESPONSE_MB);
                if !(1..=4096).contains(&max_response_mb) {
                    return Err(self.error(
                        "directory.max_response_mb",
                        format!("{max_response_mb} is out of range; expected 1 to 4096 MB (default 256)"),
                    ));
                }
                settings.max_response_mb = max_response_mb;
                let address = settings.validate().map_err(|e| {
                    let text = e.to_string();
                    let key = [
                        "user_filter",
                        "include_group",
                        "exclude_group",
                        "starttls",
                        "url",
                    ]
                    .into_iter()
                    .find(|name| {
                        text.contains(name.replace('_', " ").as_str()) || text.contains(name)
                    })
                    .map(|name| format!("directory.{name}"))
                    .unwrap_or_else(|| "directory".to_owned());
                    self.error(&key, text)
                })?;
                if !address.implicit_tls && !settings.starttls {
                    self.warn(
                        "directory.url",
                        "ldap:// without StartTLS sends the bind password readable over the network; use ldaps:// or set starttls = true",
                    );
                }
                Ok(DirectoryConfig::ActiveDirectory(settings))
            }
        }
    }

    fn exchange(&mut self, raw: Option<RawExchange>) -> Result<ExchangeSettings, ConfigError> {
        let raw = raw.ok_or_else(|| {
            self.error("exchange", "missing section [exchange]: the account that reads availability (username and a password; url optional)")
        })?;
        let url = match raw.url.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
            None => None,
            Some(text) => {
                let expected = "expected the EWS endpoint, e.g. https://mail.example.com/EWS/Exchange.asmx (or leave url out for autodiscover)";
                let url = Url::parse(text).map_err(|e| {
                    self.error(
                        "exchange.url",
                        format!("{text:?} is not a URL ({e}); {expected}"),
                    )
                })?;
                if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
                    return Err(self.error(
                        "exchange.url",
                        format!("{text:?} is not an http(s) URL with a host; {expected}"),
                    ));
                }
                Some(url)
            }
        };
        let version = match raw.version.as_deref() {
            None => ExchangeVersion::default(),
            Some(text) => text
                .parse::<ExchangeVersion>()
                .map_err(|e| self.error("exchange.version", e.to_string()))?,
        };
        let scheme = match raw.auth.unwrap_or(RawAuth::Ntlm) {
            RawAuth::Ntlm => AuthScheme::Ntlm,
            RawAuth::Negotiate => AuthScheme::Negotiate,
            RawAuth::Kerberos => AuthScheme::Kerberos,
            RawAuth::Basic => AuthScheme::Basic,
        };
        let plain_http = url.as_ref().is_some_and(|u| u.scheme() == "http");
        if scheme == AuthScheme::Basic && plain_http {
            return Err(self.error(
                "exchange.auth",
                "basic over an http:// URL would send the password readable; use an https:// URL, or ntlm",
            ));
        }
        let username = self.required_text("exchange.username", raw.username.clone())?;
        let password = self.password("exchange", raw.password_keys())?;
        let kerberos = self.kerberos(&raw, scheme, &username)?;
        let credentials = Credentials::new(username, password, scheme)
            .map_err(|e| self.error("exchange.username", e.to_string()))?;
        let notifications = self.notifications(&raw)?;
        let max_concurrency = raw.max_concurrency.unwrap_or(4);
        if !(1..=MAX_CONCURRENCY_LIMIT).contains(&max_concurrency) {
            return Err(self.error(
                "exchange.max_concurrency",
                format!("{max_concurrency} is out of range; expected 1 to {MAX_CONCURRENCY_LIMIT} (default 4)"),
            ));
        }
        let request_timeout_seconds = raw.request_timeout_seconds.unwrap_or(100);
        if !(1..=600).contains(&request_timeout_seconds) {
            return Err(self.error(
                "exchange.request_timeout_seconds",
                format!("{request_timeout_seconds} is out of range; expected 1 to 600 seconds (default 100)"),
            ));
        }
        let max_response_mb = raw.max_response_mb.unwrap_or(64);
        if !(1..=1024).contains(&max_response_mb) {
            return Err(self.error(
                "exchange.max_response_mb",
                format!("{max_response_mb} is out of range; expected 1 to 1024 MB (default 64)"),
            ));
        }
        let transport = TransportConfig {
            ca_file: self.ca_file("exchange.ca_file", raw.ca_file)?,
            request_timeout: std::time::Duration::from_secs(request_timeout_seconds),
            max_response_bytes: (max_response_mb as usize) * 1024 * 1024,
            max_connections_per_host: max_concurrency as usize,
            // An http:// URL written in the configuration is the explicit consent.
            allow_plain_http: plain_http,
            kerberos,
            ..TransportConfig::default()
        };
        if plain_http {
            self.warn(
                "exchange.url",
                "http:// carries calendar data unencrypted, and anyone on the network path can capture the account's NTLM response and crack the password offline from it; use https://",
            );
        }
        let autodiscover_trusted_hosts =
            TrustedHosts::parse(&raw.autodiscover_trusted_hosts.unwrap_or_default())
                .map_err(|e| self.error(TRUSTED_HOSTS_KEY, e))?;
        Ok(ExchangeSettings {
            url,
            version,
            credentials,
            impersonation: raw.impersonation.unwrap_or(false),
            max_concurrency: max_concurrency as usize,
            transport,
            autodiscover_trusted_hosts,
            notifications,
        })
    }

    /// The Kerberos keys of `[exchange]`. `fallback_kdc` stays empty: the
    /// composition root fills it from the directory's settings.
    fn kerberos(
        &mut self,
        raw: &RawExchange,
        scheme: AuthScheme,
        username: &str,
    ) -> Result<KerberosSettings, ConfigError> {
        let defaults = KerberosSettings::default();
        let auth = match scheme {
            AuthScheme::Ntlm => "ntlm",
            AuthScheme::Negotiate => "negotiate",
            AuthScheme::Kerberos => "kerberos",
            AuthScheme::Basic => "basic",
        };
        if !matches!(scheme, AuthScheme::Negotiate | AuthScheme::Kerberos) {
            // Like the directory's keys of the other kind: a key that does
            // nothing is refused, so that nobody believes it is in force.
            let set = [
                ("allow_ntlm_fallback", raw.allow_ntlm_fallback.is_some()),
                ("kerberos_kdc", raw.kerberos_kdc.is_some()),
                ("kerberos_realm", raw.kerberos_realm.is_some()),
                ("kerberos_spn", raw.kerberos_spn.is_some()),
                (
                    "kerberos_kdc_timeout_seconds",
                    raw.kerberos_kdc_timeout_seconds.is_some(),
                ),
            ];
            if let Some((name, _)) = set.iter().find(|(_, present)| *present) {
                let applies = if *name == "allow_ntlm_fallback" {
                    "auth = \"negotiate\" only"
                } else {
                    "auth = \"negotiate\" or \"kerberos\" only"
                };
                return Err(self.error(
                    &format!("exchange.{name}"),
                    format!("applies to {applies}, but auth is \"{auth}\"; remove it, or set auth = \"negotiate\""),
                ));
            }
            return Ok(defaults);
        }
        let allow_ntlm_fallback = match (scheme, raw.allow_ntlm_fallback) {
            (AuthScheme::Kerberos, Some(true)) => {
                return Err(self.error(
                    "exchange.allow_ntlm_fallback",
                    "true contradicts auth = \"kerberos\", which never uses NTLM; set auth = \"negotiate\" to allow the NTLM fallback, or remove the key",
                ))
            }
            (AuthScheme::Kerberos, _) => false,
            (_, allowed) => allowed.unwrap_or(defaults.allow_ntlm_fallback),
        };
        let kdcs = match &raw.kerberos_kdc {
            None => Vec::new(),
            Some(RawKdcs::One(kdc)) => vec![self.kdc(kdc)?],
            Some(RawKdcs::Several(kdcs)) if kdcs.is_empty() => {
                return Err(self.error(
                    "exchange.kerberos_kdc",
                    "empty list; name at least one KDC, or remove the key to find the KDC through DNS (_kerberos._tcp.<realm>) and the directory's domain controller",
                ))
            }
            Some(RawKdcs::Several(kdcs)) => kdcs
                .iter()
                .map(|kdc| self.kdc(kdc))
                .collect::<Result<_, _>>()?,
        };
        let realm = match raw.kerberos_realm.as_deref().map(str::trim) {
            None => None,
            Some(realm) => {
                let bad = |problem: &str| {
                    self.error(
                        "exchange.kerberos_realm",
                        format!("{realm:?} {problem}; expected the domain's DNS name, e.g. CORP.EXAMPLE.COM"),
                    )
                };
                if realm.is_empty() {
                    return Err(bad("is empty"));
                }
                if realm.contains(['@', '/', '\\']) || realm.contains(char::is_whitespace) {
                    return Err(bad("is not a realm name"));
                }
                // Active Directory's realm is its DNS domain in upper case;
                // MIT-style lower-case realms do not occur in front of Exchange.
                Some(realm.to_ascii_uppercase())
            }
        };
        let spn = match raw.kerberos_spn.as_deref().map(str::trim) {
            None => None,
            Some(spn) => Some(self.spn(spn)?),
        };
        let timeout = raw
            .kerberos_kdc_timeout_seconds
            .unwrap_or(defaults.kdc_timeout.as_secs());
        if !(1..=120).contains(&timeout) {
            return Err(self.error(
                "exchange.kerberos_kdc_timeout_seconds",
                format!("{timeout} is out of range; expected 1 to 120 seconds (default 10)"),
            ));
        }
        // A DOMAIN\user name carries no realm (a NetBIOS name is not one).
        // Where Kerberos is required that can never work, so it is an error
        // here, naming the fix, rather than a failure at every connection;
        // where NTLM may stand in, the service works as before and the
        // warning says that Kerberos is never tried.
        if realm.is_none() && username.contains('\\') && !username.contains('@') {
            let user = username.rsplit('\\').next().unwrap_or(username);
            let fix = format!("set exchange.kerberos_realm to the domain's DNS name in upper case (kerberos_realm = \"CORP.EXAMPLE.COM\"), or write the user name as {user}@<domain>");
            if allow_ntlm_fallback {
                self.warn(
                    "exchange.kerberos_realm",
                    format!("not set, and the user name {username:?} names no realm: Kerberos is never tried, every connection authenticates with NTLM; {fix}"),
                );
            } else {
                return Err(self.error(
                    "exchange.kerberos_realm",
                    format!("missing: Kerberos needs the realm, and the user name {username:?} names none; {fix}"),
                ));
            }
        }
        Ok(KerberosSettings {
            kdcs,
            fallback_kdc: None,
            realm,
            spn,
            allow_ntlm_fallback,
            kdc_timeout: Duration::from_secs(timeout),
            dns_server: None,
        })
    }

    /// One `kerberos_kdc` entry: `host` or `host:port` (IPv6 in brackets).
    fn kdc(&self, text: &str) -> Result<String, ConfigError> {
        let text = text.trim();
        let bad = |problem: &str| {
            self.error(
                "exchange.kerberos_kdc",
                format!("{text:?} {problem}; expected a KDC as host or host:port (port 88 when left out), e.g. \"dc1.corp.example.com\" or \"[2001:db8::1]:88\""),
            )
        };
        if text.contains("://") {
            return Err(bad(
                "has a scheme: write it without a scheme (the KDC is asked over TCP)",
            ));
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (address, after) = rest
                .split_once(']')
                .ok_or_else(|| bad("has an unclosed ["))?;
            if address.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("has no IPv6 address in brackets"));
            }
            match after {
                "" => (text, None),
                port => match port.strip_prefix(':') {
                    Some(port) => (&text[..text.len() - port.len() - 1], Some(port)),
                    None => return Err(bad("has text after the ]")),
                },
            }
        } else if text.matches(':').count() > 1 {
            return Err(bad(
                "is an IPv6 address without brackets: write [address] or [address]:port",
            ));
        } else {
            match text.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            }
        };
        if !host.starts_with('[') && !is_host_name(host) {
            return Err(bad("is not a host name or address"));
        }
        if let Some(port) = port {
            if !matches!(port.parse::<u16>(), Ok(1..)) {
                return Err(bad("has no port from 1 to 65535 after the colon"));
            }
        }
        Ok(text.to_owned())
    }

    /// `kerberos_spn`: `service/host` or `service/host:port`, used exactly
    /// as written (no DNS canonicalisation, no realm).
    fn spn(&mut self, text: &str) -> Result<String, ConfigError> {
        let key = "exchange.kerberos_spn";
        let expected = "expected service/host[:port] as registered on the account Exchange runs as, e.g. \"HTTP/mail.corp.example.com\"";
        if text.contains("://") {
            return Err(self.error(
                key,
                format!("{text:?} is a URL, not a service principal name; {expected}"),
            ));
        }
        if text.contains('@') {
            return Err(self.error(
                key,
                format!("{text:?} has a realm (@...); write the SPN without it (the realm is exchange.kerberos_realm); {expected}"),
            ));
        }
        let parsed = text.split_once('/').and_then(|(service, instance)| {
            let (host, port) = match instance.rsplit_once(':') {
                Some((host, port)) if !host.ends_with(':') => (host, Some(port)),
                _ => (instance, None),
            };
            let service_ok = !service.is_empty()
                && service
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-');
            let host_ok = is_host_name(host)
                || host
                    .strip_prefix('[')
                    .and_then(|h| h.strip_suffix(']'))
                    .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok());
            let port_ok = port.is_none_or(|p| matches!(p.parse::<u16>(), Ok(1..)));
            (service_ok && host_ok && port_ok).then_some(service)
        });
        let Some(service) = parsed else {
            return Err(self.error(
                key,
                format!("{text:?} is not a service principal name; {expected}"),
            ));
        };
        if !service.eq_ignore_ascii_case("HTTP") {
            self.warn(
                key,
                format!("the service class is {service:?}; Exchange's web services are registered as HTTP/<host> (this SPN is used as written)"),
            );
        }
        Ok(text.to_owned())
    }

    fn notifications(&self, raw: &RawExchange) -> Result<NotificationSettings, ConfigError> {
        let defaults = NotificationSettings::default();
        let mode = match raw.notifications {
            None | Some(RawNotifications::Auto) => NotificationMode::Auto,
            Some(RawNotifications::Streaming) => NotificationMode::Streaming,
            Some(RawNotifications::Off) => NotificationMode::Off,
        };
        let ranged = |key: &str,
                      value: Option<u32>,
                      max: u32,
                      default: usize,
                      what: &str,
                      fix: &str| {
            let value = value.unwrap_or(default as u32);
            if (1..=max).contains(&value) {
                Ok(value as usize)
            } else {
                Err(self.error(
                    key,
                    format!("{value} is out of range; expected 1 to {max} {what} (default {default}){fix}"),
                ))
            }
        };
        let max_connections = ranged(
            "exchange.notification_connections",
            raw.notification_connections,
            100,
            defaults.max_connections,
            "connections",
            "; set it to Exchange's HangingConnectionLimit for the account, no higher",
        )?;
        let max_subscriptions = ranged(
            "exchange.notification_subscriptions",
            raw.notification_subscriptions,
            1_000_000,
            defaults.max_subscriptions,
            "subscriptions",
            "; set it to the account's EWSMaxSubscriptions (throttling policy), no higher",
        )?;
        let subscriptions_per_connection = ranged(
            "exchange.subscriptions_per_connection",
            raw.subscriptions_per_connection,
            MAX_SUBSCRIPTIONS_PER_CONNECTION as u32,
            defaults.subscriptions_per_connection,
            "subscriptions",
            "; Exchange allows at most 200 subscriptions on one connection",
        )?;
        let connection_timeout_minutes = ranged(
            "exchange.notification_connection_timeout_minutes",
            raw.notification_connection_timeout_minutes,
            u32::from(MAX_CONNECTION_TIMEOUT_MINUTES),
            usize::from(defaults.connection_timeout_minutes),
            "minutes",
            "; Exchange refuses a GetStreamingEvents ConnectionTimeout above 30 minutes",
        )? as u8;
        Ok(NotificationSettings {
            mode,
            max_connections,
            max_subscriptions,
            subscriptions_per_connection,
            connection_timeout_minutes,
        })
    }

    fn replication(&self, raw: RawReplication) -> Result<ReplicationSettings, ConfigError> {
        let defaults = ReplicationSettings::default();
        let interval_minutes = raw.interval_minutes.unwrap_or(15);
        if !(1..=1440).contains(&interval_minutes) {
            return Err(self.error(
                "replication.interval_minutes",
                format!(
                    "{interval_minutes} is out of range; expected 1 to 1440 minutes (default 15)"
                ),
            ));
        }
        let window_days = raw.window_days.unwrap_or(defaults.window_days);
        if !(1..=366).contains(&window_days) {
            return Err(self.error(
                "replication.window_days",
                format!("{window_days} is out of range; expected 1 to 366 days (default 30)"),
            ));
        }
        let write_concurrency = raw
            .ucserver_writes_in_flight
            .map_or(defaults.write_concurrency, |n| n as usize);
        if !(1..=64).contains(&write_concurrency) {
            return Err(self.error(
                "replication.ucserver_writes_in_flight",
                format!("{write_concurrency} is out of range; expected 1 to 64 (default 8)"),
            ));
        }
        let private_appointments = match raw.private_appointments {
            None => defaults.private_appointments,
            Some(RawPrivateAppointments::Skip) => PrivateAppointments::Skip,
            Some(RawPrivateAppointments::TimesOnly) => PrivateAppointments::TimesOnly,
            Some(RawPrivateAppointments::Full) => PrivateAppointments::Full,
        };
        let mut busy_type_map = BusyTypeMap::default();
        for (name, status) in raw.busy_type_map.unwrap_or_default() {
            let status = match status {
                RawStatus::Free => AppointmentStatus::Free,
                RawStatus::Tentative => AppointmentStatus::Tentative,
                RawStatus::Busy => AppointmentStatus::Busy,
                RawStatus::OutOfOffice => AppointmentStatus::OutOfOffice,
            };
            let key = "replication.busy_type_map";
            if name == "unknown" {
                busy_type_map.unknown = status;
            } else if ["Free", "Tentative", "Busy", "OOF"]
                .iter()
                .any(|k| k.eq_ignore_ascii_case(&name))
            {
                return Err(self.error(key, format!("{name} always maps to its own UCServer state and cannot be changed; map WorkingElsewhere, a newer busy type, or unknown")));
            } else if name.eq_ignore_ascii_case("NoData") {
                return Err(self.error(
                    key,
                    "NoData (no information) is never written and cannot be mapped",
                ));
            } else if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(self.error(key, format!("{name:?} is not an Exchange busy type name (letters and digits, e.g. WorkingElsewhere) or unknown")));
            } else {
                busy_type_map.overrides.insert(name, status);
            }
        }
        Ok(ReplicationSettings {
            interval: Duration::from_secs(u64::from(interval_minutes) * 60),
            only_offline_users: raw
                .only_offline_users
                .unwrap_or(defaults.only_offline_users),
            window_days,
            private_appointments,
            busy_type_map,
            write_concurrency,
            push_debounce: defaults.push_debounce,
        })
    }

    fn logging(&self, raw: RawLogging) -> Result<LoggingSettings, ConfigError> {
        let defaults = LoggingSettings::default();
        let level = match raw.level {
            None => defaults.level,
            Some(RawLevel::Error) => LogLevel::Error,
            Some(RawLevel::Warn) => LogLevel::Warn,
            Some(RawLevel::Info) => LogLevel::Info,
            Some(RawLevel::Debug) => LogLevel::Debug,
            Some(RawLevel::Trace) => LogLevel::Trace,
        };
        let max_file_size_mb = raw.max_file_size_mb.unwrap_or(defaults.max_file_size_mb);
        if !(1..=10_240).contains(&max_file_size_mb) {
            return Err(self.error(
                "logging.max_file_size_mb",
                format!("{max_file_size_mb} is out of range; expected 1 to 10240 megabytes (default 10)"),
            ));
        }
        let max_files = raw.max_files.unwrap_or(defaults.max_files as u32);
        if !(1..=1000).contains(&max_files) {
            return Err(self.error(
                "logging.max_files",
                format!("{max_files} is out of range; expected 1 to 1000 files (default 5)"),
            ));
        }
        let directory = match raw.directory {
            Some(directory) => Some(self.path(directory)),
            None => self
                .context
                .var("LOGS_DIRECTORY")
                .and_then(|dirs| dirs.split(':').next().map(PathBuf::from)),
        };
        Ok(LoggingSettings {
            level,
            directory,
            max_file_size_mb,
            max_files: max_files as usize,
            syslog: raw.syslog.unwrap_or(defaults.syslog),
        })
    }

    fn monitoring(&self, raw: RawMonitoring) -> Result<MonitoringSettings, ConfigError> {
        let listen = match raw.listen {
            None => None,
            Some(text) => Some(text.trim().parse().map_err(|_| {
                self.error(
                    "monitoring.listen",
                    format!(
                        "{text:?} is not an address and port; write an IP address and port such as \"127.0.0.1:9464\" (or \"[::1]:9464\"), or remove the key"
                    ),
                )
            })?),
        };
        Ok(MonitoringSettings { listen })
    }

    fn state(&self, raw: RawState) -> Result<PathBuf, ConfigError> {
        match raw.path {
            Some(path) if path.as_os_str().is_empty() => Err(self.missing("state.path")),
            Some(path) => Ok(self.path(path)),
            None => default_state_path(self.context).ok_or_else(|| {
                self.error("state.path", "not set, and there is no default: neither $STATE_DIRECTORY, $XDG_DATA_HOME nor $HOME is set; set [state] path")
            }),
        }
    }
}

impl ConfigError {
    fn with_message_prefix(mut self, prefix: &str) -> ConfigError {
        self.message = match self.message.strip_prefix("missing") {
            Some(rest) => format!("{prefix}{rest}"),
            None => format!("{prefix}; {}", self.message),
        };
        self
    }
}

/// The file's mode when every user of the machine can read it: the file
/// itself is readable by others and every directory above it lets others
/// through (a 0644 file in a 0700 directory is private). None otherwise, or
/// when the path cannot be inspected.
fn readable_by_every_user(path: &Path) -> Option<u32> {
    let path = fs::canonicalize(path).ok()?;
    let mode = fs::metadata(&path).ok()?.permissions().mode();
    if mode & 0o004 == 0 {
        return None;
    }
    for directory in path.ancestors().skip(1) {
        let directory_mode = fs::metadata(directory).ok()?.permissions().mode();
        if directory_mode & 0o001 == 0 {
            return None;
        }
    }
    Some(mode)
}

#[cfg(test)]
mod tests;
