//! `sim ucserver` and `sim exchange`: the simulators as stand-alone servers,
//! for trying the replicator without a UCServer or Exchange.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use ews_calendar_replicator::sim::ucserver::{
    MessageForm, UcServerSim, UcServerSimConfig, UserDatabase,
};
use ews_toolkit::sim::exchange::{
    generate, BusyMode, ExchangeSim, ExchangeSimConfig, GenerateSpec, MailboxFile,
    ServerVersionInfo, SimAccount,
};
use ews_toolkit::sim::tls::TestPki;

#[derive(Subcommand)]
pub enum SimServer {
    /// A simulated estos UCServer (web service and ROSE over WebSocket).
    Ucserver(UcServerArgs),
    /// A simulated Exchange server (EWS at /EWS/Exchange.asmx with NTLM).
    Exchange(ExchangeArgs),
    /// Both simulators with matching users, and a configuration for them in
    /// DIR/config.toml: try `check`, `once`, `run` and `status` without
    /// servers. Ctrl-C stops it.
    Lab(super::lab::LabArgs),
}

#[derive(Args)]
pub struct ExchangeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// Mailboxes to generate (ignored with --mailboxes-file).
    #[arg(long, default_value_t = 50)]
    users: usize,
    /// Events per generated mailbox, around now.
    #[arg(long, default_value_t = 20)]
    events: usize,
    /// Seed of the generated mailboxes (same seed, same calendars).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// SMTP domain of the generated mailboxes.
    #[arg(long, default_value = "contoso.test")]
    smtp_domain: String,
    /// Mailboxes and calendars from a JSON (or TOML) file instead.
    #[arg(long)]
    mailboxes_file: Option<PathBuf>,
    /// Write the mailboxes served (generated or loaded) as JSON to this file.
    #[arg(long)]
    dump_mailboxes: Option<PathBuf>,
    /// NetBIOS domain of the service account.
    #[arg(long, default_value = "CONTOSO")]
    domain: String,
    /// The service account's user name.
    #[arg(long, default_value = "svc-calendar")]
    user: String,
    /// The service account's password.
    #[arg(long, default_value = "Passw0rd!")]
    password: String,
    /// Give the service account the ApplicationImpersonation role.
    #[arg(long)]
    impersonation: bool,
    /// Require the NTLM channel binding (Extended Protection); needs TLS.
    #[arg(long)]
    extended_protection: bool,
    /// Refuse Basic authentication (NTLM only).
    #[arg(long)]
    no_basic: bool,
    /// Serve HTTPS with a certificate from a generated test CA, whose PEM is
    /// written to this file (give it to the client as `ca_file`).
    #[arg(long)]
    tls_ca_out: Option<PathBuf>,
    /// Extra names for the server certificate (repeatable).
    #[arg(long = "tls-name")]
    tls_names: Vec<String>,
    /// The Exchange version to answer as: 2013 or 2019.
    #[arg(long, default_value = "2019")]
    server_version: String,
    /// Latency added to every request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Latency added per mailbox of a GetUserAvailability, in milliseconds.
    #[arg(long, default_value_t = 0)]
    per_mailbox_latency_ms: u64,
    /// Requests served at once; beyond it the server answers busy.
    #[arg(long)]
    max_concurrency: Option<usize>,
    /// How to answer beyond --max-concurrency: soap-fault, inner-error,
    /// http-503 or connection-count.
    #[arg(long, default_value = "soap-fault")]
    busy_mode: String,
    /// BackOffMilliseconds of busy answers.
    #[arg(long, default_value_t = 5000)]
    back_off_ms: u64,
    /// Mailboxes per GetUserAvailability (at most Exchange's 100).
    #[arg(long, default_value_t = 100)]
    max_mailboxes: usize,
    /// Change calendars while running: PER_MINUTE random changes a minute
    /// on average (appointments created, moved or deleted in the next hours
    /// of random mailboxes, from --seed), each sent as an event to the
    /// mailbox's streaming subscriptions. 0: calendars stay as they are.
    #[arg(long, value_name = "PER_MINUTE", default_value_t = 0)]
    churn: u32,
}

#[derive(Args)]
pub struct UcServerArgs {
    /// Address to listen on (the real server's defaults are 7224 for HTTP and
    /// 7225 for HTTPS).
    #[arg(long, default_value = "127.0.0.1:7224")]
    listen: SocketAddr,
    /// Users to generate (ignored with --users-file).
    #[arg(long, default_value_t = 50)]
    users: usize,
    /// Share of generated users that are not logged on (0.0 to 1.0).
    #[arg(long, default_value_t = 0.5)]
    offline_fraction: f64,
    /// Seed of the generated users (same seed, same users).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A JSON user database instead of generated users.
    #[arg(long)]
    users_file: Option<PathBuf>,
    /// The administrator account of generated users.
    #[arg(long, default_value = "ucadmin")]
    admin_user: String,
    /// The administrator's password (generated users only).
    #[arg(long, default_value = "ucadmin")]
    admin_password: String,
    /// Serve HTTPS with a certificate from a generated test CA, whose PEM is
    /// written to this file (give it to the client as `ca_file`).
    #[arg(long)]
    tls_ca_out: Option<PathBuf>,
    /// Also serve the native protocol (ROSE over TCP, the UCServer's port
    /// 7222) on this address, e.g. 127.0.0.1:7222; with --tls-ca-out it
    /// offers asnStartTLS (tcp+starttls://).
    #[arg(long)]
    native_listen: Option<SocketAddr>,
    /// Send bare ROSE messages (no one-element array, no `_type`, array-form
    /// optionalParams) instead of the web service's form.
    #[arg(long)]
    plain_messages: bool,
}

pub async fn sim_ucserver(args: UcServerArgs) -> Result<(), String> {
    if !(0.0..=1.0).contains(&args.offline_fraction) {
        return Err(format!(
            "--offline-fraction {} is not between 0.0 and 1.0",
            args.offline_fraction
        ));
    }
    let users = match &args.users_file {
        Some(path) => UserDatabase::from_json_file(path).map_err(|e| e.to_string())?,
        None => UserDatabase::generate(
            args.users,
            args.offline_fraction,
            args.seed,
            &args.admin_user,
            &args.admin_password,
        ),
    };
    let tls = match &args.tls_ca_out {
        Some(path) => {
            let pki = TestPki::generate(&[]).map_err(|e| e.to_string())?;
            pki.write_ca_pem(path)
                .map_err(|e| format!("cannot write the test CA to {}: {e}", path.display()))?;
            println!("test CA written to {}", path.display());
            Some(pki.server_config())
        }
        None => None,
    };
    let mut config = UcServerSimConfig::new(users);
    if args.plain_messages {
        config.form = MessageForm::Plain;
    }
    let sim = UcServerSim::start_on(args.listen, config, tls.clone())
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    if let Some(addr) = args.native_listen {
        sim.listen_native(addr, tls)
            .await
            .map_err(|e| format!("cannot listen on {addr} (--native-listen): {e}"))?;
    }
    let all = sim.users();
    let offline = all.iter().filter(|u| !u.online).count();
    println!("simulated UCServer at {}", sim.base_url());
    if let Some(url) = sim.native_url() {
        println!("native port (ROSE over TCP) at {url}");
    }
    println!(
        "{} users, {offline} not logged on; administrator: {}",
        all.len(),
        all.iter()
            .filter(|u| u.admin)
            .map(|u| u.user_name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("press Ctrl-C to stop");
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| format!("cannot wait for Ctrl-C: {e}"))?;
    println!(
        "stopped after {} appointment list writes",
        sim.total_writes()
    );
    Ok(())
}

pub async fn sim_exchange(args: ExchangeArgs) -> Result<(), String> {
    let server_version = match args.server_version.as_str() {
        "2019" | "2016" => ServerVersionInfo::exchange_2019(),
        "2013" => ServerVersionInfo::exchange_2013(),
        other => {
            return Err(format!(
                "--server-version {other:?} is not known; use 2013 or 2019"
            ))
        }
    };
    let busy_mode = match args.busy_mode.as_str() {
        "soap-fault" => BusyMode::SoapFault {
            back_off_ms: args.back_off_ms,
        },
        "inner-error" => BusyMode::InnerError {
            back_off_ms: args.back_off_ms,
        },
        "http-503" => BusyMode::Http503,
        "connection-count" => BusyMode::ExceededConnectionCount,
        other => {
            return Err(format!(
                "--busy-mode {other:?} is not known; use soap-fault, inner-error, http-503 or connection-count"
            ))
        }
    };
    if args.max_mailboxes == 0 || args.max_mailboxes > 100 {
        return Err(format!(
            "--max-mailboxes {} must be between 1 and 100 (Exchange's limit)",
            args.max_mailboxes
        ));
    }
    if args.extended_protection && args.tls_ca_out.is_none() {
        return Err("--extended-protection needs TLS: add --tls-ca-out FILE".to_owned());
    }
    let mailboxes = match &args.mailboxes_file {
        Some(path) => MailboxFile::load(path).map_err(|e| e.to_string())?,
        None => generate(&GenerateSpec {
            users: args.users,
            events_per_user: args.events,
            seed: args.seed,
            domain: args.smtp_domain.clone(),
            now: chrono::Utc::now(),
        }),
    };
    if let Some(path) = &args.dump_mailboxes {
        let json = serde_json::to_string_pretty(&mailboxes).map_err(|e| e.to_string())?;
        std::fs::write(path, json)
            .map_err(|e| format!("cannot write the mailboxes to {}: {e}", path.display()))?;
    }
    let mut account = SimAccount::new(&args.domain, &args.user, &args.password);
    if args.impersonation {
        account = account.with_impersonation();
    }
    let mut config = ExchangeSimConfig::new(mailboxes.mailboxes);
    config.bind = args.listen;
    config.tls = args.tls_ca_out.is_some();
    config.tls_names = args.tls_names.clone();
    config.accounts = vec![account];
    config.basic = !args.no_basic;
    config.extended_protection = args.extended_protection;
    config.server_version = server_version;
    config.knobs.request_latency = std::time::Duration::from_millis(args.latency_ms);
    config.knobs.per_mailbox_latency =
        std::time::Duration::from_millis(args.per_mailbox_latency_ms);
    config.knobs.max_concurrent_requests = args.max_concurrency;
    config.knobs.busy_mode = busy_mode;
    config.knobs.max_mailboxes_per_request = args.max_mailboxes;
    let sim = ExchangeSim::start(config)
        .await
        .map_err(|e| e.to_string())?;
    println!("simulated Exchange at {}", sim.ews_url());
    if let Some(path) = &args.tls_ca_out {
        sim.write_ca_pem(path)
            .map_err(|e| format!("cannot write the test CA to {}: {e}", path.display()))?;
        println!("test CA written to {}", path.display());
    }
    let all = sim.mailboxes();
    println!(
        "{} mailboxes, first: {}",
        all.len(),
        all.iter()
            .take(5)
            .map(|m| m.smtp.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "account {}\\{} (NTLM{}), Extended Protection {}",
        args.domain,
        args.user,
        if args.no_basic { "" } else { ", Basic" },
        if args.extended_protection {
            "on"
        } else {
            "off"
        }
    );
    let churn = (args.churn > 0).then(|| sim.start_churn(args.churn, args.seed));
    if churn.is_some() {
        println!("changing about {} calendars a minute (--churn)", args.churn);
    }
    println!("press Ctrl-C to stop");
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| format!("cannot wait for Ctrl-C: {e}"))?;
    let counters = sim.counters();
    println!(
        "stopped after {} EWS requests ({} mailboxes asked for)",
        counters.requests, counters.mailboxes_requested
    );
    if let Some(churn) = churn {
        println!(
            "{} calendar changes, {} events sent to {} subscriptions",
            churn.count(),
            counters.notifications.events_sent,
            counters.notifications.active_subscriptions
        );
    }
    Ok(())
}
