//! `check`: what the estos configuration program tests, and more. Each step
//! says what it tried, whether it passed, what it found, and how to fix a
//! failure. Steps after a failure that depend on it are reported as skipped,
//! so the administrator sees the first thing to fix.

use std::sync::Arc;

use chrono::{Duration as ChronoDuration, Utc};
use serde::Serialize;

use crate::app::{AnyDirectory, DiscoverError, ExchangeCalendars};
use crate::config::{Config, DirectoryConfig};
use crate::directory::{DirectoryError, DirectoryUser, UserDirectory, UserIndex};
use crate::ews::autodiscover::{AutodiscoverStep, StepOutcome, TRUSTED_HOSTS_KEY};
use crate::ews::availability_reader::{AvailabilityReader, AvailabilityReaderConfig};
use crate::ews::client::EwsError;
use crate::ews::transport::TransportError;
use crate::replication::matching::match_user;
use crate::ucserver::{UcError, UcServerClient, UserFilter, UserProfile};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Warn,
    Fail,
    Skip,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Warn => "WARN",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "SKIP",
        }
    }
}

/// One step of the check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// `directory`, `exchange`, `ucserver`, `configuration`.
    pub area: &'static str,
    pub name: String,
    pub outcome: Outcome,
    /// What was found (or the error).
    pub detail: String,
    /// How to fix a failure or warning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// All steps, in the order they ran.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    pub steps: Vec<Step>,
}

impl CheckReport {
    fn push(&mut self, area: &'static str, name: impl Into<String>, outcome: Outcome) -> &mut Step {
        self.steps.push(Step {
            area,
            name: name.into(),
            outcome,
            detail: String::new(),
            fix: None,
        });
        self.steps.last_mut().expect("just pushed")
    }

    fn pass(&mut self, area: &'static str, name: impl Into<String>, detail: impl Into<String>) {
        self.push(area, name, Outcome::Pass).detail = detail.into();
    }

    fn fail(
        &mut self,
        area: &'static str,
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) {
        let step = self.push(area, name, Outcome::Fail);
        step.detail = detail.into();
        step.fix = Some(fix.into());
    }

    fn skip(&mut self, area: &'static str, name: impl Into<String>, because: &str) {
        self.push(area, name, Outcome::Skip).detail = format!("not tried: {because}");
    }

    /// No step failed (warnings pass).
    pub fn passed(&self) -> bool {
        self.steps.iter().all(|s| s.outcome != Outcome::Fail)
    }
}

impl Step {
    fn with_fix(&mut self, fix: impl Into<String>) {
        self.fix = Some(fix.into());
    }
}

/// Runs every check of `config`. The test availability query asks for
/// `mailbox`, or else for the mailbox of the first UCServer user (offline
/// first) found in the directory: a mailbox the service will really read.
pub async fn run(config: &Config, mailbox: Option<String>) -> CheckReport {
    let mut report = CheckReport::default();
    for warning in &config.warnings {
        let step = report.push("configuration", warning.key.clone(), Outcome::Warn);
        step.detail = warning.message.clone();
    }
    report.pass(
        "configuration",
        "file",
        format!("{} loaded", config.file.display()),
    );
    let directory = check_directory(config, &mut report).await;
    let profiles = check_ucserver(config, &mut report).await;
    let mailbox = mailbox.or_else(|| {
        let (_, users) = directory.as_ref()?;
        let index = UserIndex::new(users.clone());
        profiles
            .iter()
            .filter_map(|p| match_user(p, &index).ok())
            .find_map(|(user, _)| user.primary_smtp.clone())
            .or_else(|| users.iter().find_map(|u| u.primary_smtp.clone()))
    });
    check_exchange(
        config,
        directory.as_ref().map(|(d, _)| d),
        mailbox,
        &mut report,
    )
    .await;
    report
}

/// The directory: reachable, TLS, bind, users found. Returns the opened
/// directory and its users (for the Exchange test query).
async fn check_directory(
    config: &Config,
    report: &mut CheckReport,
) -> Option<(AnyDirectory, Vec<DirectoryUser>)> {
    const AREA: &str = "directory";
    let target = match &config.directory {
        DirectoryConfig::ActiveDirectory(s) => {
            format!("{} as {}", s.url, s.bind_user)
        }
        DirectoryConfig::Static { file } => format!("static list {}", file.display()),
    };
    let directory = match AnyDirectory::open(&config.directory).await {
        Ok(d) => {
            match &config.directory {
                DirectoryConfig::ActiveDirectory(s) => {
                    report.pass(AREA, "reachable", s.url.clone());
                    let secure = s.url.starts_with("ldaps://") || s.starttls;
                    if secure {
                        report.pass(AREA, "TLS", "certificate verified");
                    }
                    report.pass(AREA, "bind", format!("bound as {}", s.bind_user));
                }
                DirectoryConfig::Static { file } => {
                    report.pass(AREA, "file", format!("{} read", file.display()))
                }
            }
            d
        }
        Err(error) => {
            let (name, fix) = directory_failure(&error);
            report.fail(AREA, name, format!("{target}: {error}"), fix);
            report.skip(AREA, "users found", "the directory is not available");
            return None;
        }
    };
    match directory.users().await {
        Ok(users) => {
            let mailboxes = users.iter().filter(|u| u.primary_smtp.is_some()).count();
            if mailboxes == 0 {
                report.fail(
                    AREA,
                    "users found",
                    format!("{} users in scope, none with a mailbox", users.len()),
                    "check base_dn, user_filter and group scoping, and that the account may read proxyAddresses and mail",
                );
            } else {
                report.pass(
                    AREA,
                    "users found",
                    format!(
                        "{} users in scope, {} with a mailbox",
                        users.len(),
                        mailboxes
                    ),
                );
            }
            Some((directory, users))
        }
        Err(error) => {
            let (_, fix) = directory_failure(&error);
            report.fail(AREA, "users found", error.to_string(), fix);
            Some((directory, Vec::new()))
        }
    }
}

/// The step a directory error belongs to, and its fix (the error text
/// already explains AD's codes).
fn directory_failure(error: &DirectoryError) -> (&'static str, &'static str) {
    match error {
        DirectoryError::Unreachable { .. } | DirectoryError::Timeout { .. } => (
            "reachable",
            "check `directory.url` (host and port: 389 for ldap://, 636 for ldaps://) and firewalls",
        ),
        DirectoryError::Tls { .. } | DirectoryError::TlsSetup(_) | DirectoryError::StartTlsRefused { .. } => (
            "TLS",
            "set `directory.ca_file` to the CA that issued the domain controller's certificate, or check the host name in `directory.url`",
        ),
        DirectoryError::Bind { .. } => (
            "bind",
            "check `directory.bind_user` (UPN form, svc@corp.example.com) and its password",
        ),
        DirectoryError::InsufficientRights { .. } => (
            "rights",
            "grant the account read access to user objects",
        ),
        _ => ("directory", "see the message"),
    }
}

/// Exchange: autodiscover (when no URL), reachable, TLS, authentication,
/// server version, and a test availability query for one mailbox.
async fn check_exchange(
    config: &Config,
    directory: Option<&AnyDirectory>,
    mailbox: Option<String>,
    report: &mut CheckReport,
) {
    const AREA: &str = "exchange";
    let scp = match directory {
        Some(d) => d.scp_source(),
        None => AnyDirectory::Static(crate::directory::StaticDirectory::from_users(Vec::new()))
            .scp_source(),
    };
    let calendars = ExchangeCalendars::new(config.exchange.clone(), scp);
    let username = config.exchange.credentials.username().to_owned();
    let url = match &config.exchange.url {
        Some(url) => {
            report.pass(AREA, "EWS URL", format!("{url} (configured)"));
            url.clone()
        }
        None => {
            let Some(target) = (if username.contains('@') {
                Some(username.clone())
            } else {
                mailbox.clone()
            }) else {
                report.fail(
                    AREA,
                    "autodiscover",
                    "no EWS URL configured and no mailbox to run autodiscover for",
                    "set `exchange.url`, or give `exchange.username` as an e-mail address",
                );
                return;
            };
            match calendars.discover(&target).await {
                Ok(found) => {
                    let steps: Vec<String> = found.steps.iter().map(|s| s.to_string()).collect();
                    let detail = format!(
                        "{} for {target}; steps: {}",
                        found.ews_url,
                        steps.join(" | ")
                    );
                    let refused = refused_hosts(&found.steps);
                    if refused.is_empty() {
                        report.pass(AREA, "autodiscover", detail);
                    } else {
                        // Found, but a server on the way pointed elsewhere:
                        // worth a look even though nothing was sent there.
                        let step = report.push(AREA, "autodiscover", Outcome::Warn);
                        step.detail = detail;
                        step.with_fix(refused_fix(&refused));
                    }
                    found.ews_url
                }
                Err(DiscoverError::NotFound(e)) => {
                    let refused = refused_hosts(&e.steps);
                    let mut fix = "set `exchange.url` to https://<server>/EWS/Exchange.asmx, or fix the first step that should have worked".to_owned();
                    if !refused.is_empty() {
                        fix = format!("{fix}; {}", refused_fix(&refused));
                    }
                    report.fail(AREA, "autodiscover", e.to_string(), fix);
                    return;
                }
                Err(e) => {
                    report.fail(AREA, "autodiscover", e.to_string(), "check `[exchange]`");
                    return;
                }
            }
        }
    };
    let Some(mailbox) = mailbox else {
        report.skip(
            AREA,
            "availability query",
            "the directory gave no mailbox to ask for",
        );
        return;
    };
    let client = match calendars.ews_client(url.clone()) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            report.fail(AREA, "client", e.to_string(), "check `[exchange]`");
            return;
        }
    };
    let reader = match AvailabilityReader::new(
        client.clone(),
        AvailabilityReaderConfig {
            max_transient_retries: 0,
            max_busy_retries: 1,
            impersonate_each_mailbox: config.exchange.impersonation,
            ..AvailabilityReaderConfig::default()
        },
    ) {
        Ok(r) => r,
        Err(e) => {
            report.fail(AREA, "client", e.to_string(), "check `[exchange]`");
            return;
        }
    };
    let now = Utc::now();
    let answer = reader
        .read(
            std::slice::from_ref(&mailbox),
            now,
            now + ChronoDuration::days(7),
        )
        .await;
    let host = url.host_str().unwrap_or_default().to_owned();
    match answer {
        Ok(mut answers) => {
            report.pass(AREA, "reachable", host.clone());
            if url.scheme() == "https" {
                report.pass(AREA, "TLS", "certificate verified");
            }
            report.pass(
                AREA,
                "authentication",
                format!(
                    "{} accepted as {username}",
                    config.exchange.credentials.scheme().header_name()
                ),
            );
            match client.last_server_version() {
                Some(v) => report.pass(AREA, "server version", server_version_text(&v)),
                None => {
                    let step = report.push(AREA, "server version", Outcome::Warn);
                    step.detail = "the server sent no ServerVersionInfo".into();
                }
            }
            let answer = answers.pop();
            match answer.map(|a| a.result) {
                Some(Ok(events)) => {
                    let detailed = events.iter().filter(|e| e.details.is_some()).count();
                    let level = if events.is_empty() {
                        "no events in the next 7 days, so the detail level is unknown"
                    } else if detailed > 0 {
                        "details (subject, location) visible"
                    } else {
                        "free/busy times only"
                    };
                    report.pass(
                        AREA,
                        "availability query",
                        format!("{mailbox}: {} events; {level}", events.len()),
                    );
                }
                Some(Err(e)) => report.fail(
                    AREA,
                    "availability query",
                    format!("{mailbox}: {e}"),
                    mailbox_error_fix(&e.code),
                ),
                None => report.fail(
                    AREA,
                    "availability query",
                    format!("{mailbox}: no answer for the mailbox"),
                    "see the log at debug level",
                ),
            }
        }
        Err(error) => {
            let (name, fix) = exchange_failure(&error);
            for passed in ["reachable", "TLS", "authentication"] {
                if passed == name {
                    break;
                }
                if passed == "TLS" && url.scheme() != "https" {
                    continue;
                }
                report.pass(AREA, passed, host.clone());
            }
            report.fail(AREA, name, error.to_string(), fix);
        }
    }
}

/// The hosts autodiscover did not send the credentials to, once each.
fn refused_hosts(steps: &[AutodiscoverStep]) -> Vec<String> {
    let mut hosts: Vec<String> = Vec::new();
    for step in steps {
        if let StepOutcome::Refused { host, .. } = &step.outcome {
            if !hosts.contains(host) {
                hosts.push(host.clone());
            }
        }
    }
    hosts
}

fn refused_fix(hosts: &[String]) -> String {
    format!(
        "autodiscover was pointed at {} outside the mail domain and did not send the credentials there; if you trust them, add them to `{TRUSTED_HOSTS_KEY}`, otherwise find out who answers autodiscover for your domain",
        hosts.join(", ")
    )
}

fn server_version_text(v: &crate::ews::ServerVersion) -> String {
    let number = [v.major, v.minor, v.major_build, v.minor_build]
        .iter()
        .map(|n| n.map(|n| n.to_string()).unwrap_or_else(|| "?".into()))
        .collect::<Vec<_>>()
        .join(".");
    match &v.version {
        Some(name) => format!("{number} ({name})"),
        None => number,
    }
}

fn exchange_failure(error: &EwsError) -> (&'static str, &'static str) {
    match error.transport() {
        Some(TransportError::Connect { .. }) | Some(TransportError::Timeout { .. }) => (
            "reachable",
            "check the host and port of `exchange.url` and firewalls",
        ),
        Some(TransportError::Tls { .. }) => (
            "TLS",
            "set `exchange.ca_file` to the CA that issued the Exchange certificate, or use the host name the certificate names",
        ),
        Some(TransportError::Auth { .. }) => (
            "authentication",
            "check `exchange.username` (DOMAIN\\user or UPN) and its password, and `exchange.auth` against the schemes the server offers",
        ),
        _ => ("availability query", "see the message"),
    }
}

fn mailbox_error_fix(code: &str) -> &'static str {
    match code {
        "ErrorNoFreeBusyAccess" => "grant the service account at least free/busy access to the calendars (Default permission), or details for subjects",
        "ErrorMailRecipientNotFound" => "the directory's primary SMTP address is unknown to Exchange: check proxyAddresses",
        "ErrorProxyRequestProcessingFailed" => "the mailbox's server could not be reached from the EWS server; check Exchange's health",
        _ => "see Exchange's documentation of the code",
    }
}

/// The UCServer: reachable, session, admin login, users and how many are
/// offline. Returns the users, offline ones first.
async fn check_ucserver(config: &Config, report: &mut CheckReport) -> Vec<UserProfile> {
    const AREA: &str = "ucserver";
    let url = config.ucserver.base_url.to_string();
    let client = match UcServerClient::connect(config.ucserver.clone()).await {
        Ok(c) => {
            report.pass(AREA, "reachable", url.clone());
            report.pass(AREA, "transport", config.ucserver.transport_name());
            if matches!(config.ucserver.base_url.scheme(), "https" | "tcp+starttls") {
                report.pass(AREA, "TLS", "certificate verified");
            }
            let session = if config.ucserver.uses_native_port() {
                "negotiated and logged on (asnNegotiateServerConnectionV2, asnLoginV2)"
            } else {
                "web service session created"
            };
            report.pass(AREA, "session", session);
            report.pass(
                AREA,
                "admin login",
                format!("{} is an administrator", config.ucserver.admin_user),
            );
            c
        }
        Err(error) => {
            let (name, fix) = ucserver_failure(&error);
            report.fail(
                AREA,
                name,
                format!("{url} ({}): {error}", config.ucserver.transport_name()),
                fix,
            );
            report.skip(AREA, "users", "not connected");
            return Vec::new();
        }
    };
    let all = client.users(UserFilter::All).await;
    let offline = client.users(UserFilter::OfflineOnly).await;
    match (all, offline) {
        (Ok(all), Ok(offline)) => {
            report.pass(
                AREA,
                "users",
                format!(
                    "{} users, {} not logged on (replicated when only_offline_users is on)",
                    all.len(),
                    offline.len()
                ),
            );
            if let Some(warning) = crate::config::load_warning(&config.replication, all.len()) {
                let step = report.push(AREA, "load", Outcome::Warn);
                step.detail = warning;
                step.with_fix("raise `replication.interval_minutes` if Exchange is under load");
            }
            let mut users = offline;
            users.extend(all);
            users
        }
        (Err(e), _) | (_, Err(e)) => {
            report.fail(
                AREA,
                "users",
                e.to_string(),
                "the administrator account must be allowed to list user profiles",
            );
            Vec::new()
        }
    }
}

fn ucserver_failure(error: &UcError) -> (&'static str, &'static str) {
    match error {
        UcError::Connect { .. } | UcError::Timeout { .. } => (
            "reachable",
            "check `ucserver.url` (port 7224 for http, 7225 for https, 7222 for tcp) and firewalls",
        ),
        UcError::TlsHandshake(_) | UcError::TlsSetup(_) => (
            "TLS",
            "set `ucserver.ca_file` to the CA of the UCServer's certificate",
        ),
        UcError::Native(_) => (
            "reachable",
            "check that `ucserver.url` names the UCServer's native port (tcp://host:7222); the web service needs http(s)://",
        ),
        UcError::LogonFailed { .. } | UcError::SessionRefused { .. } => {
            ("session", "check `ucserver.username` and its password")
        }
        UcError::UnknownUcsid { .. } => (
            "session",
            "set `ucserver.ucsid` to the UCSID the web service serves (\"local\" for a direct connection)",
        ),
        UcError::Protocol {
            operation: "createsession",
            ..
        } => (
            "session",
            "check that `ucserver.url` names the UCServer web service (https://host:7225)",
        ),
        UcError::NotAdministrator { .. } => (
            "admin login",
            "give the account administrative rights in the UCServer administration",
        ),
        _ => ("session", "see the message"),
    }
}
