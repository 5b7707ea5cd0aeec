//! Prints the availability of a list of mailboxes, read from an Exchange
//! server (or `ews-calendar-replicator sim exchange`) with the EWS client
//! alone. Builds with `--no-default-features`.
//!
//! ```text
//! EWS_PASSWORD=... cargo run --no-default-features --example ews_availability -- \
//!     --url https://127.0.0.1:8443/EWS/Exchange.asmx --ca-file sim-ca.pem \
//!     --user 'CONTOSO\svc-calendar' --password-env EWS_PASSWORD \
//!     --days 14 alice@contoso.com bob@contoso.com
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use chrono::{Duration, SecondsFormat, Utc};
use ews_toolkit::availability::{BusyType, CalendarEvent};
use ews_toolkit::transport::{AuthScheme, Credentials, HttpTransport, TransportConfig};
use ews_toolkit::{
    AvailabilityReader, AvailabilityReaderConfig, EwsClient, ExchangeVersion, ResilienceConfig,
};
use url::Url;

const USAGE: &str = "\
usage: ews_availability --url URL [options] MAILBOX...

  --url URL             the EWS endpoint (https://host/EWS/Exchange.asmx)
  --user USER           DOMAIN\\user or user@domain (omit for anonymous)
  --password-env NAME   environment variable holding the password
  --scheme NAME         NTLM (default), Negotiate or Basic
  --version VERSION     RequestServerVersion (default Exchange2013_SP1)
  --ca-file PATH        extra CA certificates (PEM) to trust
  --days N              window from now, in days (default 7)
  --impersonate SMTP    act as this mailbox (ApplicationImpersonation role)
  --concurrency N       requests at a time (default 4)
  --allow-http          allow a plain http:// URL";

pub(crate) struct Args {
    url: Url,
    user: Option<String>,
    password_env: Option<String>,
    scheme: AuthScheme,
    version: ExchangeVersion,
    ca_file: Option<PathBuf>,
    days: i64,
    impersonate: Option<String>,
    concurrency: usize,
    allow_http: bool,
    mailboxes: Vec<String>,
}

/// Parses the command line (without the program name).
pub(crate) fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut url = None;
    let mut user = None;
    let mut password_env = None;
    let mut scheme = AuthScheme::Ntlm;
    let mut version = ExchangeVersion::default();
    let mut ca_file = None;
    let mut days = 7;
    let mut impersonate = None;
    let mut concurrency = 4;
    let mut allow_http = false;
    let mut mailboxes = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| format!("{name} needs a value\n\n{USAGE}"))
        };
        match arg.as_str() {
            "--url" => {
                let text = value("--url")?;
                url = Some(
                    Url::parse(&text).map_err(|e| format!("--url {text:?} is not a URL: {e}"))?,
                );
            }
            "--user" => user = Some(value("--user")?),
            "--password-env" => password_env = Some(value("--password-env")?),
            "--scheme" => {
                scheme = match value("--scheme")?.to_ascii_lowercase().as_str() {
                    "ntlm" => AuthScheme::Ntlm,
                    "negotiate" => AuthScheme::Negotiate,
                    "basic" => AuthScheme::Basic,
                    other => {
                        return Err(format!(
                            "--scheme {other:?} is unknown; use NTLM, Negotiate or Basic"
                        ))
                    }
                }
            }
            "--version" => version = value("--version")?.parse().map_err(|e| format!("{e}"))?,
            "--ca-file" => ca_file = Some(PathBuf::from(value("--ca-file")?)),
            "--days" => {
                let text = value("--days")?;
                days =
                    text.parse().ok().filter(|d| *d > 0).ok_or_else(|| {
                        format!("--days {text:?} is not a positive number of days")
                    })?;
            }
            "--impersonate" => impersonate = Some(value("--impersonate")?),
            "--concurrency" => {
                let text = value("--concurrency")?;
                concurrency =
                    text.parse().ok().filter(|c| *c > 0).ok_or_else(|| {
                        format!("--concurrency {text:?} is not a positive number")
                    })?;
            }
            "--allow-http" => allow_http = true,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            flag if flag.starts_with('-') => {
                return Err(format!("unknown option {flag:?}\n\n{USAGE}"))
            }
            mailbox => mailboxes.push(mailbox.to_owned()),
        }
    }
    let url = url.ok_or_else(|| format!("--url is required\n\n{USAGE}"))?;
    if mailboxes.is_empty() {
        return Err(format!("name at least one mailbox\n\n{USAGE}"));
    }
    Ok(Args {
        url,
        user,
        password_env,
        scheme,
        version,
        ca_file,
        days,
        impersonate,
        concurrency,
        allow_http,
        mailboxes,
    })
}

fn credentials(
    args: &Args,
    read_env: impl Fn(&str) -> Option<String>,
) -> Result<Option<Credentials>, String> {
    let Some(user) = &args.user else {
        return Ok(None);
    };
    let Some(variable) = &args.password_env else {
        return Err(format!(
            "--user {user:?} needs --password-env NAME (the environment variable holding the password)"
        ));
    };
    let password = read_env(variable).ok_or_else(|| {
        format!("the environment variable {variable} (from --password-env) is not set")
    })?;
    Credentials::new(user.clone(), password, args.scheme)
        .map(Some)
        .map_err(|e| e.to_string())
}

fn busy_label(busy: &BusyType) -> String {
    match busy {
        BusyType::OutOfOffice => "OOF".to_owned(),
        BusyType::Other(other) => other.clone(),
        known => format!("{known:?}"),
    }
}

fn event_line(event: &CalendarEvent) -> String {
    let time = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut line = format!(
        "{:<22} {:<22} {:<16}",
        time(event.start),
        time(event.end),
        busy_label(&event.busy_type)
    );
    if let Some(details) = &event.details {
        let mut flags = Vec::new();
        if details.is_private {
            flags.push("private");
        }
        if details.is_meeting {
            flags.push("meeting");
        }
        if details.is_recurring {
            flags.push("recurring");
        }
        line.push_str(&format!(
            " {:<30} {:<20} {}",
            details.subject.as_deref().unwrap_or("-"),
            details.location.as_deref().unwrap_or("-"),
            flags.join(",")
        ));
    }
    line
}

/// Reads the mailboxes and returns the table, and whether every mailbox
/// was read.
pub(crate) async fn run(
    args: Args,
    read_env: impl Fn(&str) -> Option<String>,
) -> Result<(String, bool), String> {
    let credentials = credentials(&args, read_env)?;
    let config = TransportConfig {
        ca_file: args.ca_file.clone(),
        allow_plain_http: args.allow_http,
        ..TransportConfig::default()
    };
    let transport = HttpTransport::new(config, credentials).map_err(|e| e.to_string())?;
    let mut client = EwsClient::new(Arc::new(transport), args.url.clone())
        .with_version(args.version)
        .with_resilience(ResilienceConfig {
            concurrency: args.concurrency,
            ..ResilienceConfig::default()
        })
        .map_err(|e| e.to_string())?;
    if let Some(address) = &args.impersonate {
        client = client
            .with_impersonation(address)
            .map_err(|e| e.to_string())?;
    }
    let reader = AvailabilityReader::new(Arc::new(client), AvailabilityReaderConfig::default())
        .map_err(|e| e.to_string())?;
    let start = Utc::now();
    let end = start + Duration::days(args.days);
    let results = reader
        .read(&args.mailboxes, start, end)
        .await
        .map_err(|e| e.to_string())?;

    let server = reader
        .client()
        .last_server_version()
        .map(|v| v.to_string())
        .unwrap_or_else(|| "unknown".to_owned());
    let mut table = format!("server {} version {server}\n", args.url);
    table.push_str(&format!(
        "{:<32} {:<22} {:<22} {:<16} {:<30} {:<20} FLAGS\n",
        "MAILBOX", "START", "END", "BUSY", "SUBJECT", "LOCATION"
    ));
    let mut all_read = true;
    for mailbox in &results {
        let name = &mailbox.mailbox;
        match &mailbox.result {
            Ok(events) if events.is_empty() => table.push_str(&format!("{name:<32} (no events)\n")),
            Ok(events) => {
                for event in events {
                    table.push_str(&format!("{name:<32} {}\n", event_line(event)));
                }
            }
            Err(error) => {
                all_read = false;
                table.push_str(&format!("{name:<32} ERROR {error}\n"));
            }
        }
    }
    let stats = reader.stats();
    table.push_str(&format!(
        "{} requests, {} retries, {} busy answers, concurrency {}\n",
        stats.requests_sent, stats.retries, stats.busy_answers, stats.concurrency
    ));
    Ok((table, all_read))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(args, |name| std::env::var(name).ok()).await {
        Ok((table, all_read)) => {
            print!("{table}");
            // A mailbox with an error (shown in the table) fails the run.
            if all_read {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}
