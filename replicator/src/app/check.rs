//! `check`: what the estos configuration program tests, and more. Each step
//! says what it tried, whether it passed, what it found, and how to fix a
//! failure. Steps after a failure that depend on it are reported as skipped,
//! so the administrator sees the first thing to fix.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use chrono::{Duration as ChronoDuration, Utc};
use rustls::pki_types::ServerName;
use serde::Serialize;
use tokio::net::TcpStream;
use url::Url;

use super::{
    autodiscover_mailbox, reader_config, resilience_config, AnyDirectory, DirectoryScp,
    DiscoverError, ExchangeCalendars,
};
use crate::config::{Config, DirectoryConfig, NotificationMode};
use crate::directory::{DirectoryError, DirectoryUser, UserDirectory, UserIndex};
use crate::logging;
use crate::replication::matching::match_user;
use crate::ucserver::{UcError, UcServerClient, UserFilter, UserProfile};
use ews_toolkit::autodiscover::{AutodiscoverStep, StepOutcome, TRUSTED_HOSTS_KEY};
use ews_toolkit::availability::{AvailabilityView, MailboxAvailability};
use ews_toolkit::availability_reader::REQUEST_FAILED;
use ews_toolkit::client::{EwsClient, EwsError};
use ews_toolkit::notifications::{self, Affinity, MailboxAccess};
use ews_toolkit::resilience::ResilienceConfig;
use ews_toolkit::transport::{AuthMechanism, HttpTransport, TransportConfig, TransportError};

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
/// first) found in the directory: a mailbox the service will really read;
/// without a directory, for the service account's own address (when its
/// user name is one).
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
    check_service_prerequisites(config, Path::new(logging::SYSLOG_SOCKET), &mut report);
    let directory = check_directory(config, &mut report).await;
    let profiles = check_ucserver(config, &mut report).await;
    let from_directory = || {
        let (_, users) = directory.as_ref()?;
        let index = UserIndex::new(users.clone());
        profiles
            .iter()
            .filter_map(|p| match_user(p, &index).ok())
            .find_map(|(user, _)| user.primary_smtp.clone())
            .or_else(|| users.iter().find_map(|u| u.primary_smtp.clone()))
    };
    let username = config.exchange.credentials.username();
    let test_mailbox = match mailbox {
        Some(m) => Some(TestMailbox {
            address: m,
            source: "given with --mailbox",
        }),
        None => match from_directory() {
            Some(m) => Some(TestMailbox {
                address: m,
                source: "the first UCServer user's, from the directory",
            }),
            None if username.contains('@') => Some(TestMailbox {
                address: username.to_owned(),
                source: "the service account's own (the directory gave none; choose another with --mailbox ADDRESS)",
            }),
            None => None,
        },
    };
    check_exchange(
        config,
        directory.as_ref().map(|(d, _)| d),
        test_mailbox,
        &mut report,
    )
    .await;
    report
}

/// The mailbox of the test query and where it came from.
struct TestMailbox {
    address: String,
    source: &'static str,
}

/// What `run` needs besides the servers, and refuses to start without: the
/// log directory writable, the state database creatable, the syslog socket
/// when `syslog = true`. Tested without creating anything: `check` often
/// runs as another user (root) than the service, and a log directory or
/// database it created would then belong to the wrong user.
pub fn check_service_prerequisites(
    config: &Config,
    syslog_socket: &Path,
    report: &mut CheckReport,
) {
    const AREA: &str = "service";
    let who = "the user running check; the service needs the same for its own user";
    if let Some(directory) = &config.logging.directory {
        match writable_or_creatable(directory) {
            Ok(detail) => report.pass(AREA, "log directory", format!("{}: {detail}", directory.display())),
            Err(problem) => report.fail(
                AREA,
                "log directory",
                format!("{}: {problem} (for {who})", directory.display()),
                "create the directory writable for the service user (the unit's LogsDirectory= does it), or change [logging] directory",
            ),
        }
    }
    let state = &config.state_path;
    let state_result = if state.exists() {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(state)
            .map(|_| "exists and is writable".to_owned())
            .map_err(|e| format!("cannot open it for writing: {e}"))
    } else {
        match state.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(parent) => {
                writable_or_creatable(parent).map(|d| format!("does not exist yet; {d}"))
            }
            None => Ok("does not exist yet".to_owned()),
        }
    };
    match state_result {
        Ok(detail) => report.pass(AREA, "state database", format!("{}: {detail}", state.display())),
        Err(problem) => report.fail(
            AREA,
            "state database",
            format!("{}: {problem} (for {who})", state.display()),
            "make the directory of [state] path writable for the service user (the unit's StateDirectory= does it), or set [state] path",
        ),
    }
    check_monitoring_listen(config, report);
    if config.logging.syslog {
        match std::fs::metadata(syslog_socket) {
            Ok(_) => report.pass(
                AREA,
                "syslog",
                format!("{} present", syslog_socket.display()),
            ),
            Err(e) => report.fail(
                AREA,
                "syslog",
                format!("syslog = true, but {}: {e}", syslog_socket.display()),
                "start journald or a syslog daemon, or set [logging] syslog = false",
            ),
        }
    }
}

/// `[monitoring] listen`: `run` refuses to start when it cannot bind it. An
/// address in use is fine when the running service is what holds it (its
/// `/metrics` answers with the replicator's metrics).
fn check_monitoring_listen(config: &Config, report: &mut CheckReport) {
    const AREA: &str = "service";
    let Some(listen) = config.monitoring.listen else {
        return;
    };
    match std::net::TcpListener::bind(listen) {
        Ok(_) => report.pass(AREA, "monitoring address", format!("{listen} can be bound")),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            if serves_replicator_metrics(listen) {
                report.pass(
                    AREA,
                    "monitoring address",
                    format!("{listen} is served by the running service"),
                );
            } else {
                report.fail(
                    AREA,
                    "monitoring address",
                    format!("{listen} is in use by another program"),
                    "choose a free port in [monitoring] listen, or stop the program holding it (ss -ltnp)",
                );
            }
        }
        Err(e) => report.fail(
            AREA,
            "monitoring address",
            format!("{listen} cannot be bound: {e}"),
            "use an address of this machine and a port of 1024 or above in [monitoring] listen",
        ),
    }
}

/// Whether `listen` answers `GET /metrics` with the replicator's metrics
/// (read at most 64 KiB, 2 s per step).
fn serves_replicator_metrics(listen: std::net::SocketAddr) -> bool {
    use std::io::{Read, Write};
    let timeout = Duration::from_secs(2);
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&listen, timeout) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {listen}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.take(64 * 1024).read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    answer.starts_with("HTTP/1.1 200") && answer.contains("ews_replicator_")
}

/// `Ok` with what was found when `path` is a writable directory, or does
/// not exist but its nearest existing ancestor is one (so it can be
/// created); `Err` with the reason otherwise.
fn writable_or_creatable(path: &Path) -> Result<String, String> {
    let mut existing = path;
    while !existing.exists() {
        existing = match existing.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(parent) => parent,
            None => Path::new("."),
        };
        if existing == Path::new(".") {
            break;
        }
    }
    if !existing.is_dir() {
        return Err(format!("{} is not a directory", existing.display()));
    }
    if !access_writable(existing) {
        return Err(format!("{} is not writable", existing.display()));
    }
    Ok(if existing == path {
        "writable directory".to_owned()
    } else {
        format!("can be created in {}", existing.display())
    })
}

/// The kernel's own answer (ACLs, read-only mounts, root included).
fn access_writable(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c_path` is a valid NUL-terminated string for the call.
    unsafe { libc::access(c_path.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
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

/// Exchange: autodiscover (when no URL), reachable, TLS, HTTP,
/// authentication, server version, and a test availability query for one
/// mailbox. Each PASS rests on evidence of its own step: a TCP connection,
/// a completed TLS handshake, an HTTP answer, a success (or an Exchange
/// SOAP fault) after authenticating. Never on a later step's answer.
async fn check_exchange(
    config: &Config,
    directory: Option<&AnyDirectory>,
    mailbox: Option<TestMailbox>,
    report: &mut CheckReport,
) {
    const AREA: &str = "exchange";
    let scp = directory.map_or_else(DirectoryScp::none, AnyDirectory::scp_source);
    let calendars = ExchangeCalendars::new(super::exchange_settings(config), scp);
    let username = config.exchange.credentials.username().to_owned();
    let url = match &config.exchange.url {
        Some(url) => {
            report.pass(AREA, "EWS URL", format!("{url} (configured)"));
            url.clone()
        }
        None => {
            let Some(target) = autodiscover_target(config, mailbox.as_ref()) else {
                report.fail(
                    AREA,
                    "autodiscover",
                    "no EWS URL configured and no mailbox to run autodiscover for",
                    "set `exchange.url`, or give `exchange.username` as an e-mail address, or name a mailbox with `check --mailbox ADDRESS`",
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
    let transport = &config.exchange.transport;
    if !probe_connection(AREA, &url, transport, report).await {
        report.skip(AREA, "authentication", "no connection");
        report.skip(AREA, "availability query", "no connection");
        return;
    }
    let Some(mailbox) = mailbox else {
        let because = "no mailbox to ask for: the directory gave none and the service account's user name is not an address; run `check --mailbox ADDRESS`";
        report.skip(AREA, "authentication", because);
        report.skip(AREA, "availability query", because);
        return;
    };
    // Check reports each busy answer and waits them out itself, with a
    // limit of its own: the client sends once.
    let client = match calendars
        .ews_client(url.clone())
        .and_then(|c| c.with_resilience(ResilienceConfig::single_attempt()))
    {
        Ok(c) => c,
        Err(e) => {
            report.fail(AREA, "client", e.to_string(), "check `[exchange]`");
            return;
        }
    };
    let (answer, busy) = query_waiting_out_busy(&client, config, &mailbox.address).await;
    let accepted = |report: &mut CheckReport, how: &str| {
        report_authenticated(
            AREA,
            config,
            &url,
            client.transport(),
            &username,
            how,
            report,
        )
    };
    let answers = match answer {
        Ok(answers) => {
            report.pass(AREA, "HTTP", "HTTP 200");
            accepted(report, "HTTP 200 to the authenticated request");
            answers
        }
        Err(error) => {
            report_exchange_error(AREA, &url, transport, &error, &busy, &accepted, report).await;
            return;
        }
    };
    match client.last_server_version() {
        Some(v) => report.pass(AREA, "server version", server_version_text(&v)),
        None => {
            let step = report.push(AREA, "server version", Outcome::Warn);
            step.detail = "the server sent no ServerVersionInfo".into();
        }
    }
    let address = &mailbox.address;
    let asked = format!("{address} ({}){}", mailbox.source, busy.text());
    match answers.into_iter().next().map(|a| a.result) {
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
                format!("{asked}: {} events; {level}", events.len()),
            );
        }
        Some(Err(e)) => report.fail(
            AREA,
            "availability query",
            format!("{asked}: {e}"),
            mailbox_error_fix(&e.code),
        ),
        None => report.fail(
            AREA,
            "availability query",
            format!("{asked}: the answer held no result for the mailbox"),
            "the server at `exchange.url` answered, but not for the mailbox asked: check that the URL names Exchange's EWS endpoint",
        ),
    }
    check_notifications(config, &client, address, report).await;
}

/// The authentication step once the server accepted the account: which
/// mechanism it was. Under `negotiate`, NTLM standing in for Kerberos is a
/// warning naming why Kerberos was not used.
fn report_authenticated(
    area: &'static str,
    config: &Config,
    url: &Url,
    transport: &HttpTransport,
    username: &str,
    how: &str,
    report: &mut CheckReport,
) {
    let kerberos = &config.exchange.transport.kerberos;
    match transport.last_mechanism() {
        Some(AuthMechanism::Kerberos) => {
            let spn = kerberos
                .spn
                .clone()
                .unwrap_or_else(|| format!("HTTP/{}", url.host_str().unwrap_or_default()));
            report.pass(
                area,
                "authentication",
                format!("Kerberos (service ticket for {spn}, the server's mutual authentication verified) accepted as {username}: {how}"),
            );
        }
        Some(AuthMechanism::Ntlm) => match transport.last_ntlm_fallback() {
            Some(failure) => {
                let step = report.push(area, "authentication", Outcome::Warn);
                step.detail =
                    format!("NTLM accepted as {username}: {how}; Kerberos was not used: {failure}");
                step.with_fix(format!("to authenticate with Kerberos: {} (docs/kerberos.md lists each reason); to refuse NTLM, set exchange.allow_ntlm_fallback = false", failure.fix()));
            }
            None => report.pass(
                area,
                "authentication",
                format!("NTLM accepted as {username}: {how}"),
            ),
        },
        Some(AuthMechanism::Basic) => report.pass(
            area,
            "authentication",
            format!("Basic accepted as {username}: {how}"),
        ),
        None => report.pass(
            area,
            "authentication",
            format!(
                "{} accepted as {username}: {how}",
                config.exchange.credentials.scheme()
            ),
        ),
    }
}

/// Tries one streaming subscription to `mailbox`'s calendar (and ends it):
/// which mode the account gets, and why.
async fn check_notifications(
    config: &Config,
    client: &EwsClient,
    mailbox: &str,
    report: &mut CheckReport,
) {
    const AREA: &str = "exchange";
    const STEP: &str = "notifications";
    let settings = &config.exchange.notifications;
    let minutes = config.replication.interval.as_secs() / 60;
    if settings.mode == NotificationMode::Off {
        report.pass(
            AREA,
            STEP,
            format!("off (exchange.notifications): changes are read by the cycle, every {minutes} minutes"),
        );
        return;
    }
    let (access, how, rights_fix) = if config.exchange.impersonation {
        (
            MailboxAccess::Impersonation,
            "through impersonation",
            "give the account the ApplicationImpersonation role (New-ManagementRoleAssignment -Role ApplicationImpersonation)",
        )
    } else {
        (
            MailboxAccess::FolderRights,
            "with the account's folder rights",
            "give the account at least Reviewer on the mailboxes' calendar folders (Add-MailboxFolderPermission -Identity user:\\Calendar -User <account> -AccessRights Reviewer), or use exchange.impersonation with the ApplicationImpersonation role",
        )
    };
    let affinity = Affinity::new(mailbox);
    match notifications::subscribe(client, mailbox, access, &affinity).await {
        Ok(id) => {
            // The probe's subscription is not needed; unread, it would
            // expire at Exchange anyway.
            let _ = notifications::unsubscribe(
                client,
                &id,
                config.exchange.impersonation.then_some(mailbox),
                &affinity,
            )
            .await;
            report.pass(
                AREA,
                STEP,
                format!(
                    "{} ({}): {mailbox}'s calendar can be subscribed {how}: changes are written within seconds; up to {} mailboxes on {} connections, the rest read by the cycle",
                    settings.mode.as_str(),
                    "streaming notifications",
                    settings.capacity(),
                    settings.max_connections,
                ),
            );
        }
        Err(error) => {
            let code = error.fault_code().unwrap_or("").to_owned();
            let refused = matches!(
                code.as_str(),
                "ErrorAccessDenied"
                    | "ErrorImpersonateUserDenied"
                    | "ErrorImpersonationDenied"
                    | "ErrorImpersonationFailed"
                    | "ErrorFolderNotFound"
            );
            let detail = format!(
                "Subscribe to {mailbox}'s calendar {how} failed ({error}): mailboxes like it are read by the cycle only, every {minutes} minutes"
            );
            let fix = if refused {
                rights_fix.to_owned()
            } else {
                "Exchange did not take the subscription; check that EWS notifications are enabled, or set exchange.notifications = \"off\"".to_owned()
            };
            let outcome = match settings.mode {
                NotificationMode::Streaming => Outcome::Fail,
                _ => Outcome::Warn,
            };
            let step = report.push(AREA, STEP, outcome);
            step.detail = detail;
            step.with_fix(fix);
        }
    }
}

/// The mailbox `check` runs autodiscover for: the one the service would
/// ask for, with the test mailbox standing in for the service's first.
fn autodiscover_target(config: &Config, mailbox: Option<&TestMailbox>) -> Option<String> {
    autodiscover_mailbox(&config.exchange, mailbox.map(|m| m.address.as_str()))
}

/// The longest `check` waits in all for a throttled Exchange; the service
/// waits longer (its back-off allows five minutes per pause).
const BUSY_WAIT_LIMIT: Duration = Duration::from_secs(120);

/// How often Exchange said it was busy, and how long `check` waited.
#[derive(Default)]
struct BusyWaits {
    answers: u32,
    waited: Duration,
    /// The pause Exchange asked for that `check` did not wait out.
    refused: Option<Duration>,
}

impl BusyWaits {
    fn text(&self) -> String {
        if self.answers == 0 {
            return String::new();
        }
        format!(
            "; Exchange was busy {} time(s), check waited {:.1} s as it asked",
            self.answers,
            self.waited.as_secs_f64()
        )
    }
}

/// One availability query for `mailbox`, sent again after each busy answer
/// (`ErrorServerBusy` as a fault or for the mailbox, HTTP 503) once the
/// pause has passed, as the service's reader does: the server's own
/// `BackOffMilliseconds`/`Retry-After`, else doubling from one second;
/// in all at most [`BUSY_WAIT_LIMIT`].
async fn query_waiting_out_busy(
    client: &EwsClient,
    config: &Config,
    mailbox: &str,
) -> (Result<Vec<MailboxAvailability>, EwsError>, BusyWaits) {
    // The service's configuration: the same impersonation and the same
    // back-off as its client.
    let reader = reader_config(&config.exchange);
    let back_off = resilience_config(&config.exchange);
    let acting_as = reader.impersonate_each_mailbox.then_some(mailbox);
    let mailboxes = [mailbox.to_owned()];
    let mut busy = BusyWaits::default();
    loop {
        let now = Utc::now();
        let answer = client
            .get_user_availability_as(
                &mailboxes,
                now,
                now + ChronoDuration::days(7),
                AvailabilityView::Detailed,
                acting_as,
            )
            .await;
        let asked = match &answer {
            Err(e) if e.is_busy() => Some(e.back_off()),
            Ok(answers) => answers.iter().find_map(|a| match &a.result {
                Err(e) if e.code == "ErrorServerBusy" => Some(e.back_off),
                _ => None,
            }),
            Err(_) => None,
        };
        let Some(asked) = asked else {
            return (answer, busy);
        };
        let doubling = back_off
            .initial_back_off
            .saturating_mul(1u32 << busy.answers.min(16));
        let pause = asked.unwrap_or(doubling).min(back_off.max_back_off);
        busy.answers += 1;
        if busy.waited + pause > BUSY_WAIT_LIMIT {
            busy.refused = Some(pause);
            return (answer, busy);
        }
        tracing::info!(
            pause_ms = pause.as_millis() as u64,
            "Exchange is busy; waiting as it asks before asking again"
        );
        tokio::time::sleep(pause).await;
        busy.waited += pause;
    }
}

/// Reports a failed query at the step it belongs to: steps before it pass
/// only where the error itself proves them (an HTTP status proves an HTTP
/// answer; a SOAP fault proves authentication).
async fn report_exchange_error(
    area: &'static str,
    url: &Url,
    transport: &TransportConfig,
    error: &EwsError,
    busy: &BusyWaits,
    accepted: &dyn Fn(&mut CheckReport, &str),
    report: &mut CheckReport,
) {
    let skip_rest = |report: &mut CheckReport, because: &str| {
        report.skip(area, "availability query", because);
    };
    let busy_fix = "Exchange is throttling the service account: give it a throttling policy without EWS limits (docs/exchange-permissions.md), or run check again when Exchange is less loaded";
    match error {
        EwsError::Transport(t) => match &**t {
            TransportError::Auth { .. } => {
                report.pass(
                    area,
                    "HTTP",
                    "HTTP 401 (the server asked for authentication)",
                );
                report.fail(
                    area,
                    "authentication",
                    error.to_string(),
                    "check `exchange.username` (DOMAIN\\user or UPN) and its password, and `exchange.auth` against the schemes the server offers",
                );
                skip_rest(report, "authentication failed");
            }
            TransportError::Tls { .. } => {
                report.fail(area, "TLS", error.to_string(), tls_fix(false));
                skip_rest(report, "no TLS");
            }
            TransportError::Connect { .. } => {
                report.fail(
                    area,
                    "reachable",
                    error.to_string(),
                    "check the host and port of `exchange.url` and firewalls",
                );
                skip_rest(report, "not reachable");
            }
            TransportError::Timeout { .. }
            | TransportError::ConnectionReset { .. }
            | TransportError::Protocol { .. } => {
                let fix = if url.scheme() == "http" && speaks_tls(url, transport).await {
                    "the port answers TLS: change `exchange.url` to https://".to_owned()
                } else {
                    "the server accepts connections but does not answer HTTP: check that `exchange.url` names the EWS server and its port, and that nothing in between (proxy, load balancer, firewall) holds the request".to_owned()
                };
                report.fail(area, "HTTP", error.to_string(), fix);
                report.skip(area, "authentication", "no HTTP answer");
                skip_rest(report, "no HTTP answer");
            }
            TransportError::Http { status, .. } => {
                http_answer_without_ews(report, area, *status, error);
            }
            TransportError::BodyTooLarge { .. } => {
                report.pass(area, "HTTP", "an answer larger than the limit");
                report.fail(area, "availability query", error.to_string(), "raise `exchange.max_response_mb`, or check that `exchange.url` names the EWS endpoint");
            }
            TransportError::Config(_) => {
                report.fail(area, "client", error.to_string(), "check `[exchange]`");
            }
            TransportError::Kerberos { failure, .. } => {
                report.fail(area, "authentication", error.to_string(), failure.fix());
                skip_rest(report, "authentication failed");
            }
        },
        EwsError::ServiceUnavailable { .. } => {
            report.pass(area, "HTTP", "HTTP 503");
            let detail = match busy.refused {
                Some(pause) => format!("{error}; it asked for a pause of {} s, longer than check waits ({} s in all){}", pause.as_secs(), BUSY_WAIT_LIMIT.as_secs(), busy.text()),
                None => format!("{error}{}", busy.text()),
            };
            report.fail(area, "EWS service", detail, "Exchange (or a load balancer before it) is overloaded or its EWS application pool is stopped: check Exchange's health, then run check again");
            report.skip(area, "authentication", "no authenticated answer");
            skip_rest(report, "no EWS answer");
        }
        EwsError::Http { status, .. } => http_answer_without_ews(report, area, *status, error),
        EwsError::Fault { fault, .. } => {
            report.pass(area, "HTTP", "an EWS SOAP fault");
            accepted(
                report,
                &format!(
                    "Exchange answered the authenticated request (SOAP fault {})",
                    fault.code()
                ),
            );
            let (detail, fix) = if error.is_busy() {
                let detail = match busy.refused {
                    Some(pause) => format!("{error}; Exchange asked for a pause of {} s, longer than check waits ({} s in all){}", pause.as_secs(), BUSY_WAIT_LIMIT.as_secs(), busy.text()),
                    None => format!("{error}{}", busy.text()),
                };
                (detail, busy_fix.to_owned())
            } else {
                (
                    error.to_string(),
                    mailbox_error_fix(fault.code()).to_owned(),
                )
            };
            report.fail(area, "availability query", detail, fix);
        }
        EwsError::Envelope { .. } | EwsError::Response { .. } => {
            report.pass(area, "HTTP", "HTTP 200");
            accepted(report, "HTTP 200 to the authenticated request");
            report.fail(area, "availability query", error.to_string(), "the server answered, but not with an EWS response: check that `exchange.url` names the EWS endpoint (…/EWS/Exchange.asmx) and not a proxy or login page");
        }
        EwsError::Config(_) => {
            report.fail(area, "client", error.to_string(), "check `[exchange]`");
        }
    }
}

/// An HTTP answer that is not EWS's (404, 403, a 5xx without a SOAP fault):
/// HTTP is proven, the EWS service and everything after it are not.
fn http_answer_without_ews(
    report: &mut CheckReport,
    area: &'static str,
    status: http::StatusCode,
    error: &EwsError,
) {
    report.pass(area, "HTTP", format!("HTTP {status}"));
    report.fail(
        area,
        "EWS service",
        error.to_string(),
        http_status_fix(status.as_u16()),
    );
    report.skip(area, "authentication", "no authenticated answer");
    report.skip(area, "availability query", "no EWS answer");
}

fn http_status_fix(status: u16) -> &'static str {
    match status {
        404 => "the URL's path is not the EWS endpoint: `exchange.url` normally ends in /EWS/Exchange.asmx",
        403 => "the account may not use EWS (Set-CASMailbox -EwsEnabled $true, or an EWS application policy), or the URL requires a client certificate",
        500..=599 => "Exchange answered with a server error: check its health (the EWS application pool, Managed Availability), then run check again",
        _ => "check that `exchange.url` names Exchange's EWS endpoint (https://<server>/EWS/Exchange.asmx)",
    }
}

fn tls_fix(not_tls: bool) -> &'static str {
    if not_tls {
        "the port does not complete a TLS handshake: check that `exchange.url` names the HTTPS port of the EWS server (443), or that no firewall or proxy holds the connection"
    } else {
        "set `exchange.ca_file` to the CA that issued the Exchange certificate, or use the host name the certificate names"
    }
}

/// Where the transport connects for `url`: the configured fixed address,
/// else the host name and port.
fn connect_target(url: &Url, transport: &TransportConfig) -> (String, u16, Option<SocketAddr>) {
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    let fixed = transport
        .resolve
        .get(&(host.to_ascii_lowercase(), port))
        .copied();
    (host, port, fixed)
}

async fn connect_tcp(
    host: &str,
    port: u16,
    fixed: Option<SocketAddr>,
    limit: Duration,
) -> Result<TcpStream, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let connect = async {
        match fixed {
            Some(address) => TcpStream::connect(address).await,
            None => TcpStream::connect((bare, port)).await,
        }
    };
    match tokio::time::timeout(limit, connect).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(format!("cannot connect to {host}:{port}: {e}")),
        Err(_) => Err(format!(
            "no TCP connection to {host}:{port} within {} s",
            limit.as_secs()
        )),
    }
}

/// `reachable` (a TCP connection) and, for https, `TLS` (a completed
/// handshake with the certificate verified). False when a step failed.
async fn probe_connection(
    area: &'static str,
    url: &Url,
    transport: &TransportConfig,
    report: &mut CheckReport,
) -> bool {
    let (host, port, fixed) = connect_target(url, transport);
    let limit = transport.connect_timeout;
    let tcp = match connect_tcp(&host, port, fixed, limit).await {
        Ok(tcp) => {
            report.pass(
                area,
                "reachable",
                format!("TCP connection to {host}:{port}"),
            );
            tcp
        }
        Err(problem) => {
            report.fail(
                area,
                "reachable",
                problem,
                "check the host and port of `exchange.url` and firewalls",
            );
            return false;
        }
    };
    if url.scheme() != "https" {
        return true;
    }
    match tls_handshake(&host, tcp, transport, limit).await {
        Ok(version) => {
            report.pass(
                area,
                "TLS",
                format!("handshake completed ({version}); the certificate of {host} verified"),
            );
            true
        }
        Err(TlsProbeError::Setup(message)) => {
            report.fail(area, "TLS", message, "check `exchange.ca_file`");
            false
        }
        Err(TlsProbeError::NoAnswer) => {
            report.fail(
                area,
                "TLS",
                format!("{host}:{port} accepted the TCP connection but did not answer the TLS handshake within {} s", limit.as_secs()),
                tls_fix(true),
            );
            false
        }
        Err(TlsProbeError::Failed {
            message,
            certificate,
        }) => {
            report.fail(area, "TLS", message, tls_fix(!certificate));
            false
        }
    }
}

enum TlsProbeError {
    Setup(String),
    NoAnswer,
    /// `certificate`: the server spoke TLS, its certificate was refused.
    Failed {
        message: String,
        certificate: bool,
    },
}

async fn tls_handshake(
    host: &str,
    tcp: TcpStream,
    transport: &TransportConfig,
    limit: Duration,
) -> Result<String, TlsProbeError> {
    let config = ews_toolkit::tls::client_config(transport.ca_file.as_deref())
        .map_err(|e| TlsProbeError::Setup(e.to_string()))?;
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let name = ServerName::try_from(bare)
        .map_err(|e| TlsProbeError::Setup(format!("invalid host name {host:?}: {e}")))?;
    let handshake = tokio_rustls::TlsConnector::from(config).connect(name, tcp);
    match tokio::time::timeout(limit, handshake).await {
        Err(_) => Err(TlsProbeError::NoAnswer),
        Ok(Err(e)) => {
            let certificate = matches!(
                e.get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
                Some(rustls::Error::InvalidCertificate(_))
            );
            Err(TlsProbeError::Failed {
                message: ews_toolkit::tls::explain_handshake_error(host, &e),
                certificate,
            })
        }
        Ok(Ok(stream)) => Ok(stream
            .get_ref()
            .1
            .protocol_version()
            .map(|v| format!("{v:?}"))
            .unwrap_or_else(|| "TLS".to_owned())),
    }
}

/// Whether the server of an http:// URL answers a TLS handshake (so the
/// URL should be https://): a completed handshake, or a refused
/// certificate or alert, which only a TLS server sends.
async fn speaks_tls(url: &Url, transport: &TransportConfig) -> bool {
    let (host, port, fixed) = connect_target(url, transport);
    let limit = transport.connect_timeout.min(Duration::from_secs(5));
    let Ok(tcp) = connect_tcp(&host, port, fixed, limit).await else {
        return false;
    };
    match tls_handshake(&host, tcp, transport, limit).await {
        Ok(_) => true,
        Err(TlsProbeError::Failed {
            certificate,
            message,
        }) => certificate || message.contains("alert"),
        Err(_) => false,
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

fn server_version_text(v: &ews_toolkit::ServerVersion) -> String {
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

fn mailbox_error_fix(code: &str) -> &'static str {
    match code {
        "ErrorNoFreeBusyAccess" => "grant the service account at least free/busy access to the calendars (Default permission), or details for subjects",
        "ErrorMailRecipientNotFound" => "the directory's primary SMTP address is unknown to Exchange: check proxyAddresses",
        "ErrorProxyRequestProcessingFailed" => "the mailbox's server could not be reached from the EWS server; check Exchange's health",
        "ErrorServerBusy" | "ErrorTooManyObjectsOpened" => "Exchange is throttling the service account: give it a throttling policy without EWS limits (docs/exchange-permissions.md), or run check again when Exchange is less loaded",
        "ErrorImpersonateUserDenied" | "ErrorImpersonationDenied" => "grant the service account the ApplicationImpersonation role, or set `exchange.impersonation = false`",
        "ErrorNonExistentMailbox" => "Exchange knows no mailbox with this address: check the address (or --mailbox)",
        "ErrorInvalidServerVersion" | "ErrorIncorrectSchemaVersion" | "ErrorSchemaValidation" => "set `exchange.version` to the version the server runs (Exchange2010_SP2 for Exchange 2010)",
        "ErrorAccessDenied" => "the service account may not read this mailbox's availability: grant it at least free/busy access",
        // Not Exchange's: the client's own code for a request that failed
        // as a whole (connection, HTTP, invalid answer); the message says what.
        REQUEST_FAILED => "the request failed before Exchange answered for the mailbox (see the message): check the connection to `exchange.url` and run check again",
        code if code.starts_with("Error") => "an Exchange response code: see the message, and Exchange's documentation of the code (ResponseCodeType)",
        _ => "see the message",
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
        UcError::SessionRefused { status: 404, .. } => (
            "session",
            "`ucserver.url` does not lead to the UCServer web service (HTTP 404 for /ws/client/createsession): check the host, the port (7224 http, 7225 https) and that the URL has no other path, and that the web service is enabled in the UCServer administration",
        ),
        UcError::SessionRefused { status: 401 | 403, .. } | UcError::LogonFailed { .. } => {
            ("session", "check `ucserver.username` and its password")
        }
        UcError::SessionRefused { status: 500.., .. } => (
            "session",
            "the UCServer web service failed: check the UCServer's health and its log, then run check again",
        ),
        UcError::SessionRefused { .. } => (
            "session",
            "check that `ucserver.url` names the UCServer web service (https://host:7225) and not a proxy in between",
        ),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, LoadContext};

    fn config_in(dir: &Path, syslog: bool) -> Config {
        let text = format!(
            r#"
[ucserver]
url = "https://127.0.0.1:7225"
username = "Administrator"
password = "uc-secret"

[directory]
kind = "static"
file = "users.toml"

[exchange]
url = "https://127.0.0.1/EWS/Exchange.asmx"
username = 'CORP\svc'
password = "ews-secret"

[logging]
directory = "logs"
syslog = {syslog}

[state]
path = "state/state.sqlite"
"#
        );
        config::parse(
            &text,
            &dir.join("config.toml"),
            &LoadContext::with_vars([("HOME", "/nonexistent")]),
        )
        .unwrap()
    }

    #[test]
    fn a_missing_syslog_socket_fails_when_syslog_is_on_and_nothing_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-socket");
        let mut report = CheckReport::default();
        check_service_prerequisites(&config_in(dir.path(), true), &missing, &mut report);
        let syslog = report
            .steps
            .iter()
            .find(|s| s.name == "syslog")
            .expect("a syslog step");
        assert_eq!(syslog.outcome, Outcome::Fail, "{syslog:?}");
        assert!(syslog.detail.contains("no-such-socket"), "{syslog:?}");
        assert!(syslog.fix.as_deref().unwrap().contains("syslog = false"));
        for name in ["log directory", "state database"] {
            let step = report.steps.iter().find(|s| s.name == name).unwrap();
            assert_eq!(step.outcome, Outcome::Pass, "{step:?}");
        }
        assert!(!dir.path().join("logs").exists(), "check creates nothing");
        assert!(!dir.path().join("state").exists(), "check creates nothing");

        // Present socket (any existing path counts, as for `run`), or off.
        let mut report = CheckReport::default();
        check_service_prerequisites(&config_in(dir.path(), true), dir.path(), &mut report);
        assert!(report.passed(), "{report:?}");
        let mut report = CheckReport::default();
        check_service_prerequisites(&config_in(dir.path(), false), &missing, &mut report);
        assert!(report.steps.iter().all(|s| s.name != "syslog"));
    }

    fn monitoring_step(config: &Config) -> super::Step {
        let mut report = CheckReport::default();
        check_monitoring_listen(config, &mut report);
        report
            .steps
            .into_iter()
            .find(|s| s.name == "monitoring address")
            .expect("a monitoring step")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_monitoring_address_passes_when_free_or_held_by_the_service_and_fails_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config_in(dir.path(), false);
        // Held by another program: a listener that is not the replicator.
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let held = other.local_addr().unwrap();
        config.monitoring.listen = Some(held);
        let config = std::sync::Arc::new(config);
        let step = tokio::task::spawn_blocking({
            let config = config.clone();
            move || monitoring_step(&config)
        })
        .await
        .unwrap();
        assert_eq!(step.outcome, Outcome::Fail, "{step:?}");
        assert!(
            step.detail.contains("in use by another program"),
            "{step:?}"
        );
        assert!(step.fix.as_deref().unwrap().contains("[monitoring] listen"));
        drop(other);

        // Free: `run` can bind it.
        let step = tokio::task::spawn_blocking({
            let config = config.clone();
            move || monitoring_step(&config)
        })
        .await
        .unwrap();
        assert_eq!(step.outcome, Outcome::Pass, "{step:?}");
        assert!(step.detail.contains("can be bound"), "{step:?}");

        // Held by the running service: its /metrics answers.
        let monitor =
            std::sync::Arc::new(crate::monitoring::Monitor::new(Duration::from_secs(900)));
        let server = crate::monitoring::MonitoringServer::start(held, monitor)
            .await
            .unwrap();
        let step = tokio::task::spawn_blocking(move || monitoring_step(&config))
            .await
            .unwrap();
        assert_eq!(step.outcome, Outcome::Pass, "{step:?}");
        assert!(
            step.detail.contains("served by the running service"),
            "{step:?}"
        );
        drop(server);
    }

    #[test]
    fn check_asks_autodiscover_for_the_mailbox_the_service_asks_for() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config_in(dir.path(), false);
        config.exchange.url = None;
        let tested = TestMailbox {
            address: "first@corp.example.com".into(),
            source: "given with --mailbox",
        };
        let account = |name: &str| {
            ews_toolkit::transport::Credentials::new(
                name,
                "ews-secret",
                ews_toolkit::transport::AuthScheme::Ntlm,
            )
            .unwrap()
        };
        // DOMAIN\user: the mailbox the service reads first (check: the
        // tested one); UPN: the account's own address, whatever was given.
        for (username, expected) in [
            (r"CORP\svc", Some("first@corp.example.com")),
            ("svc@corp.example.com", Some("svc@corp.example.com")),
        ] {
            config.exchange.credentials = account(username);
            let service = autodiscover_mailbox(&config.exchange, Some(&tested.address));
            assert_eq!(autodiscover_target(&config, Some(&tested)), service);
            assert_eq!(service.as_deref(), expected, "{username}");
        }
        config.exchange.credentials = account(r"CORP\svc");
        assert_eq!(autodiscover_target(&config, None), None);
        assert_eq!(autodiscover_mailbox(&config.exchange, None), None);
    }
}
