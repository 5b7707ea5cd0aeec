//! The demo: the whole replicator against in-process simulators, without any
//! server or configuration. A generated organisation (UCServer users, some
//! logged on; their Exchange calendars with private, recurring and all-day
//! items; a static directory mapping one to the other, a few users without
//! a mailbox) goes through three cycles: the first writes every offline
//! user's calendar, the second writes nothing because nothing changed, the
//! third writes only the calendars changed in between. Everything travels
//! over real sockets: ROSE over WebSocket to the UCServer simulator, SOAP
//! over TLS with NTLM to the Exchange simulator.

use std::io::Write;
use std::path::PathBuf;

use chrono::{DateTime, Duration as ChronoDuration, DurationRound, Utc};

use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::notifications::{EwsNotifications, FeedTiming, StreamingFeed};
use super::{assemble, SimulatedSite};
use crate::replication::{run_push, watched_mailboxes, ChangeFeed as _, WriterLock};

use crate::directory::{DirectoryUser, ObjectGuid};
use crate::replication::{Counters, CycleOptions, CycleReport, PrivateAppointments, UserOutcome};
use crate::sim::ucserver::{UcServerSim, UcServerSimConfig, UserDatabase};
use crate::state::MemoryStateStore;
use ews_toolkit::resilience::ResilienceConfig;
use ews_toolkit::sim::exchange::{
    generate, ExchangeSim, ExchangeSimConfig, GenerateSpec, SimAccount, SimBusyType, SimEvent,
};

const ADMIN_USER: &str = "ucadmin";
const ADMIN_PASSWORD: &str = "demo-admin-password";
const EWS_DOMAIN: &str = "DEMO";
const EWS_USER: &str = "svc-replicator";
const EWS_PASSWORD: &str = "demo-service-password";

/// What the demo generates.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub users: usize,
    /// Share of users not logged on (their calendars are replicated).
    pub offline_fraction: f64,
    pub events_per_user: usize,
    pub seed: u64,
    /// Calendars changed before the third cycle.
    pub changed: usize,
    pub private_appointments: PrivateAppointments,
    /// Users shown in the final table (all with `usize::MAX`).
    pub show_users: usize,
    /// After the cycles: seconds of calendar churn whose changes the push
    /// loop writes as streaming notifications report them (0: none).
    pub push_seconds: u64,
    /// Churn rate (changes per minute).
    pub churn_per_minute: u32,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            users: 200,
            offline_fraction: 0.6,
            events_per_user: 8,
            seed: 7,
            changed: 5,
            private_appointments: PrivateAppointments::Skip,
            show_users: 15,
            push_seconds: 0,
            churn_per_minute: 60,
        }
    }
}

/// The counters of each cycle, and who changed, for tests and the summary.
#[derive(Debug, Clone)]
pub struct DemoOutcome {
    pub cycles: Vec<Counters>,
    /// Users whose calendar was changed before the third cycle.
    pub changed_users: Vec<String>,
    /// Users written in the third cycle.
    pub written_in_third: Vec<String>,
    /// UCServer writes per cycle as the simulator counted them.
    pub ucserver_writes: Vec<usize>,
    /// During the churn: (user, milliseconds from the calendar change to
    /// the UCServer write) of each push write seen.
    pub pushed: Vec<(String, u64)>,
    /// Calendar changes the churn made.
    pub churned: usize,
}

/// A temporary directory for the test CA, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        let path = std::env::temp_dir().join(format!(
            "ews-calendar-replicator-demo-{}-{}",
            std::process::id(),
            Utc::now().timestamp_nanos_opt().unwrap_or_default()
        ));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn err(context: &str) -> impl Fn(&dyn std::fmt::Display) -> String + '_ {
    move |e| format!("{context}: {e}")
}

/// Runs the demo, writing what happens to `out`.
pub async fn run(options: &DemoOptions, out: &mut dyn Write) -> Result<DemoOutcome, String> {
    let io = |e: std::io::Error| format!("writing the demo output: {e}");
    let now = Utc::now();
    let temp = TempDir::new().map_err(|e| err("a temporary directory")(&e))?;

    // The organisation: UCServer users, and a mailbox for each.
    let people = UserDatabase::generate(
        options.users,
        options.offline_fraction,
        options.seed,
        ADMIN_USER,
        ADMIN_PASSWORD,
    );
    let ucserver = UcServerSim::start(UcServerSimConfig::new(people), None)
        .await
        .map_err(|e| err("starting the UCServer simulator")(&e))?;
    let sim_users: Vec<_> = ucserver.users().into_iter().filter(|u| !u.admin).collect();
    let mut calendars = generate(&GenerateSpec {
        users: sim_users.len(),
        events_per_user: options.events_per_user,
        seed: options.seed,
        domain: "example.com".into(),
        now,
    })
    .mailboxes;
    let mut directory_users = Vec::with_capacity(sim_users.len());
    for (n, (user, mailbox)) in sim_users.iter().zip(calendars.iter_mut()).enumerate() {
        mailbox.smtp = user.email.clone();
        mailbox.display_name = user.display_name.clone();
        // Every 25th user has no mailbox: reported, never guessed.
        let has_mailbox = n % 25 != 24;
        directory_users.push(DirectoryUser {
            object_guid: user
                .object_guid
                .parse::<ObjectGuid>()
                .map_err(|e| err("a generated objectGUID")(&e))?,
            dn: user.dn.clone(),
            sam_account_name: Some(user.sam_account_name.clone()),
            user_principal_name: Some(user.email.clone()),
            primary_smtp: has_mailbox.then(|| user.email.clone()),
            smtp_addresses: if has_mailbox {
                vec![user.email.clone()]
            } else {
                Vec::new()
            },
            home_mdb: None,
        });
    }
    let mut exchange_config = ExchangeSimConfig::new(calendars);
    exchange_config.accounts = vec![SimAccount::new(EWS_DOMAIN, EWS_USER, EWS_PASSWORD)];
    exchange_config.extended_protection = true;
    let exchange = ExchangeSim::start(exchange_config)
        .await
        .map_err(|e| err("starting the Exchange simulator")(&e))?;
    let ca_file = temp.0.join("exchange-ca.pem");
    exchange
        .write_ca_pem(&ca_file)
        .map_err(|e| err("writing the test CA")(&e))?;

    // Counted as the UCServer lists them: the administrator account too.
    let everyone = ucserver.users();
    let offline = everyone.iter().filter(|u| !u.online).count();
    writeln!(
        out,
        "Simulated UCServer at {} with {} users ({offline} not logged on)\n\
         Simulated Exchange at {} (TLS, NTLMv2 with channel binding)\n\
         Directory: a static list of {} users, {} without a mailbox\n\
         Private appointments: {:?}\n",
        ucserver.base_url(),
        everyone.len(),
        exchange.ews_url(),
        directory_users.len(),
        directory_users
            .iter()
            .filter(|u| u.primary_smtp.is_none())
            .count(),
        options.private_appointments,
    )
    .map_err(io)?;

    // The replicator, assembled from a configuration as in production.
    let site = SimulatedSite {
        ucserver_url: ucserver.base_url(),
        ucserver_admin: ADMIN_USER.into(),
        ucserver_password: ADMIN_PASSWORD.into(),
        exchange_url: exchange.ews_url(),
        exchange_account: format!("{EWS_DOMAIN}\\{EWS_USER}"),
        exchange_password: EWS_PASSWORD.into(),
        exchange_ca_file: ca_file,
        directory: directory_users,
        max_concurrency: ResilienceConfig::default().concurrency,
        private_appointments: options.private_appointments,
    };
    let config = site.configure(&temp.0)?;
    let engine = assemble(&config, MemoryStateStore::new())
        .await
        .map_err(|e| err("connecting to the simulators")(&e))?;

    let mut outcome = DemoOutcome {
        cycles: Vec::new(),
        changed_users: Vec::new(),
        written_in_third: Vec::new(),
        ucserver_writes: Vec::new(),
        pushed: Vec::new(),
        churned: 0,
    };
    let mut last_report = None;
    let options_cycle = CycleOptions::default();
    for cycle in 1..=3 {
        if cycle == 3 {
            outcome.changed_users = change_calendars(&exchange, &sim_users, options, now);
            writeln!(
                out,
                "Between cycles 2 and 3, {} calendars changed in Exchange: {}\n",
                outcome.changed_users.len(),
                outcome.changed_users.join(", ")
            )
            .map_err(io)?;
        }
        let writes_before = ucserver.total_writes();
        let report = engine.run_cycle(now, &options_cycle).await;
        let writes = ucserver.total_writes() - writes_before;
        print_cycle(out, cycle, &report, writes).map_err(io)?;
        if let Some(error) = &report.error {
            return Err(format!("cycle {cycle} failed: {error}"));
        }
        if cycle == 3 {
            outcome.written_in_third = report
                .users
                .iter()
                .filter(|u| u.outcome == UserOutcome::Written)
                .map(|u| u.user_name.clone())
                .collect();
        }
        outcome.cycles.push(report.counters);
        outcome.ucserver_writes.push(writes);
        last_report = Some(report);
    }
    if options.push_seconds > 0 {
        let watched = last_report
            .as_ref()
            .and_then(watched_mailboxes)
            .unwrap_or_default();
        push_phase(
            out,
            options,
            &config,
            &engine,
            &exchange,
            &ucserver,
            &watched,
            &mut outcome,
        )
        .await?;
    }
    print_table(out, &ucserver, &sim_users, options.show_users).map_err(io)?;
    Ok(outcome)
}

/// The push phase: streaming subscriptions for the mailboxes the cycles
/// replicated, churn in Exchange, and each change written by the push loop
/// within seconds (the latency measured from the change to the write, as
/// polled every 20 ms).
#[allow(clippy::too_many_arguments)]
async fn push_phase<S: crate::replication::StateStore>(
    out: &mut dyn Write,
    options: &DemoOptions,
    config: &crate::config::Config,
    engine: &super::ConfiguredEngine<S>,
    exchange: &ExchangeSim,
    ucserver: &UcServerSim,
    watched: &[String],
    outcome: &mut DemoOutcome,
) -> Result<(), String> {
    let io = |e: std::io::Error| format!("writing the demo output: {e}");
    let (changes_tx, mut changes) = mpsc::unbounded_channel();
    let feed = StreamingFeed::start(
        EwsNotifications::new(config.exchange.clone(), engine.calendars().scp()),
        config.exchange.notifications.clone(),
        config.exchange.impersonation,
        FeedTiming::default(),
        changes_tx,
    );
    feed.watch(watched);
    let settled = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let status = feed.status();
        if status.subscribed + status.polled.len() == watched.len()
            && status
                .polled
                .iter()
                .all(|(_, r)| !r.contains("not subscribed yet"))
        {
            break;
        }
        if tokio::time::Instant::now() > settled {
            return Err(format!(
                "the demo's subscriptions did not settle: {status:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = feed.status();
    writeln!(
        out,
        "Streaming notifications: {} mailboxes subscribed on {} connections, {} left to the cycle{}",
        status.subscribed,
        status.connections,
        status.polled.len(),
        status
            .polled
            .first()
            .map(|(m, reason)| format!(" (e.g. {m}: {reason})"))
            .unwrap_or_default()
    )
    .map_err(io)?;
    writeln!(
        out,
        "Changing calendars in Exchange for {} s ({} changes a minute); each write the push loop makes:",
        options.push_seconds, options.churn_per_minute
    )
    .map_err(io)?;

    let users: Vec<_> = ucserver.users().into_iter().filter(|u| !u.admin).collect();
    let (stop, shutdown) = watch::channel(false);
    let writer = WriterLock::new();
    // Stopped (dropped) when its time is up; `ended` keeps its log.
    let mut churn = Some(exchange.start_churn(options.churn_per_minute, options.seed));
    let mut ended = Vec::new();
    let started = std::time::Instant::now();
    let pushing = run_push(engine, Some(&feed), &mut changes, &writer, shutdown, |_| {});
    let mut lines = Vec::new();
    let watching = async {
        let mut counts: Vec<usize> = users
            .iter()
            .map(|u| ucserver.write_count(&u.user_name))
            .collect();
        // The churn stops after push_seconds; the writes of its last
        // changes get two more seconds.
        let churn_ends = started + Duration::from_secs(options.push_seconds);
        while std::time::Instant::now() < churn_ends + Duration::from_secs(2) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = std::time::Instant::now();
            let changes = churn
                .as_ref()
                .map_or_else(|| ended.clone(), |c| c.changes());
            for (user, count) in users.iter().zip(counts.iter_mut()) {
                let written = ucserver.write_count(&user.user_name);
                if written == *count {
                    continue;
                }
                *count = written;
                let change = changes
                    .iter()
                    .rev()
                    .find(|c| c.mailbox.eq_ignore_ascii_case(&user.email) && c.at <= now);
                if let Some(change) = change {
                    let ms = now.duration_since(change.at).as_millis() as u64;
                    lines.push(format!(
                        "  +{:>5.1} s  {:<10} calendar {:?} -> written to the UCServer {ms} ms later",
                        change.at.duration_since(started).as_secs_f64(),
                        user.user_name,
                        change.kind,
                    ));
                    outcome.pushed.push((user.user_name.clone(), ms));
                }
            }
            if now >= churn_ends {
                if let Some(running) = churn.take() {
                    ended = running.changes();
                }
            }
        }
        outcome.churned = ended.len();
        let _ = stop.send(true);
    };
    tokio::join!(pushing, watching);
    for line in &lines {
        writeln!(out, "{line}").map_err(io)?;
    }
    let mut latencies: Vec<u64> = outcome.pushed.iter().map(|(_, ms)| *ms).collect();
    latencies.sort_unstable();
    let median = latencies.get(latencies.len() / 2).copied().unwrap_or(0);
    writeln!(
        out,
        "{} calendar changes, {} pushed to the UCServer (median {median} ms after the change); the rest were in mailboxes of users logged on in ProCall, without a mailbox in the directory, or not readable\n",
        outcome.churned,
        outcome.pushed.len()
    )
    .map_err(io)?;
    Ok(())
}

/// Adds a meeting tomorrow to the calendars of the first `options.changed`
/// offline users with a mailbox the service account may read.
fn change_calendars(
    exchange: &ExchangeSim,
    users: &[crate::sim::ucserver::SimUser],
    options: &DemoOptions,
    now: DateTime<Utc>,
) -> Vec<String> {
    let start = (now + ChronoDuration::days(1))
        .duration_trunc(ChronoDuration::hours(1))
        .unwrap_or(now);
    let mut changed = Vec::new();
    for (n, user) in users.iter().enumerate() {
        if changed.len() == options.changed {
            break;
        }
        // Offline, with a mailbox (n % 25), readable (generated permissions:
        // every 11th mailbox gives no access).
        if user.online || n % 25 == 24 || n % 11 == 10 {
            continue;
        }
        let added = exchange.mailbox_mut(&user.email, |mailbox| {
            mailbox.events.push(SimEvent {
                id: "demo-change".into(),
                start,
                end: start + ChronoDuration::minutes(90),
                busy_type: SimBusyType::Busy,
                subject: Some("Customer visit (added by the demo)".into()),
                location: Some("Reception".into()),
                private: false,
                meeting: true,
                all_day: false,
                recurrence: None,
            });
        });
        if added.is_some() {
            changed.push(user.user_name.clone());
        }
    }
    changed
}

fn print_cycle(
    out: &mut dyn Write,
    cycle: usize,
    report: &CycleReport,
    ucserver_writes: usize,
) -> std::io::Result<()> {
    let c = &report.counters;
    writeln!(
        out,
        "Cycle {cycle}: {} users offline; {} lists written, {} unchanged, {} skipped, {} failed ({} ms; the UCServer received {ucserver_writes} writes)",
        c.selected, c.written, c.unchanged, c.skipped, c.failed, report.durations.total_ms
    )?;
    // One line per kind of problem, with a few of the users it hit.
    let mut kinds: std::collections::BTreeMap<String, Vec<&str>> = Default::default();
    for user in &report.users {
        let kind = match &user.outcome {
            UserOutcome::Skipped { reason } => format!("skipped: {}", problem_kind(reason)),
            UserOutcome::Failed { reason } => format!("failed: {}", problem_kind(reason)),
            _ => continue,
        };
        kinds.entry(kind).or_default().push(&user.user_name);
    }
    for (kind, users) in kinds {
        let shown: Vec<&str> = users.iter().take(4).copied().collect();
        let more = if users.len() > shown.len() {
            ", ..."
        } else {
            ""
        };
        writeln!(
            out,
            "    {:>3} {kind} ({}{more})",
            users.len(),
            shown.join(", ")
        )?;
    }
    writeln!(out)
}

/// A short name for a skip or failure reason: the Exchange error code when
/// there is one, else the reason's first clause.
fn problem_kind(reason: &str) -> String {
    if let Some(code) = reason
        .split(|c: char| !c.is_ascii_alphanumeric())
        .find(|w| w.starts_with("Error") && w.len() > 5)
    {
        return format!("Exchange answered {code}");
    }
    if reason.contains("has no mailbox") {
        return "no mailbox in the directory".into();
    }
    if reason.contains("no directory user") {
        return "no matching directory user".into();
    }
    reason.split(';').next().unwrap_or(reason).to_owned()
}

fn print_table(
    out: &mut dyn Write,
    ucserver: &UcServerSim,
    users: &[crate::sim::ucserver::SimUser],
    show: usize,
) -> std::io::Result<()> {
    writeln!(out, "What the UCServer holds now (offline users):")?;
    writeln!(
        out,
        "  {:<10} {:<22} {:>5}  next appointment",
        "user", "mailbox", "appts"
    )?;
    let offline: Vec<_> = users.iter().filter(|u| !u.online).collect();
    let now = Utc::now();
    for user in offline.iter().take(show) {
        let list = ucserver.appointments(&user.user_name);
        let (count, next) = match &list {
            None => ("-".to_owned(), "never written".to_owned()),
            Some(list) => {
                let next = list
                    .iter()
                    .filter(|a| a.end > now)
                    .min_by_key(|a| a.start)
                    .map(|a| {
                        let status = match a.status {
                            0 => "free",
                            1 => "tentative",
                            2 => "busy",
                            3 => "out of office",
                            _ => "?",
                        };
                        let subject = if a.subject.is_empty() {
                            "(no subject)".to_owned()
                        } else {
                            a.subject.clone()
                        };
                        format!(
                            "{} {:<13} {}",
                            a.start.format("%a %d %b %H:%M"),
                            status,
                            subject
                        )
                    })
                    .unwrap_or_else(|| "none ahead".into());
                (list.len().to_string(), next)
            }
        };
        writeln!(
            out,
            "  {:<10} {:<22} {:>5}  {}",
            user.user_name, user.email, count, next
        )?;
    }
    if offline.len() > show {
        writeln!(
            out,
            "  ... and {} more (--show-users to list them)",
            offline.len() - show
        )?;
    }
    Ok(())
}
