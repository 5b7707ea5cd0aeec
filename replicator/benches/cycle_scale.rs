//! Full replication cycles at scale against the in-process simulators:
//! UCServer listing, static directory, Exchange (GetUserAvailability over TLS
//! with NTLMv2), mapping, UCServer writes, the SQLite state store, for 1,000, 10,000 and 20,000
//! mailboxes of 10 events each, all users offline. The Exchange simulator
//! costs 50 ms per request plus 1 ms per mailbox of the request (one sleep
//! per request, so a full request of 100 mailboxes costs 150 ms); the reader
//! keeps 4 requests in flight.
//!
//! ```text
//! cargo bench --bench cycle_scale                       # 1000, 10000, 20000 and the throttled run
//! cargo bench --bench cycle_scale -- --sizes 1000,10000 --throttled 0
//! ```
//!
//! Each measurement runs in fresh processes so that peak RSS and CPU time
//! belong to it alone: the bench binary starts itself once per size as the
//! replicator (`--scale N`), and that process starts the bench binary again
//! as the simulators (`--sims N`), driven over stdin/stdout. So the peak RSS
//! and CPU seconds reported for the replicator exclude the simulators (their
//! own figures are reported beside them).
//!
//! Per size: wall time of the first cycle and its ratio to the ideal
//! `ceil(N/100) / 4 × (50 ms + 100 × 1 ms)`; GetUserAvailability requests
//! the simulator received (one per 100 mailboxes: the 30-day window is one
//! chunk); UCServer writes on the first cycle (every user) and on a second
//! cycle after 1 % of the calendars changed in Exchange (exactly those users);
//! peak RSS (VmHWM) and CPU seconds per 1,000 mailboxes of both processes.
//! The throttled run: the simulator serves 2 requests at a time and answers
//! `ErrorServerBusy` (SOAP fault, `BackOffMilliseconds`) beyond it; a
//! 10,000-mailbox cycle must still read every mailbox.
//!
//! Every run is checked before it is reported (all users written, nothing
//! failed, the changed users and only they written again); a check that
//! fails stops the benchmark. Inputs come from fixed seeds.
//! Without `--bench` (`cargo test --benches`) one small size runs, as a check.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Duration as ChronoDuration, DurationRound, TimeZone, Utc};
use ews_calendar_replicator::app::{assemble, SimulatedSite};
use ews_calendar_replicator::directory::{DirectoryUser, ObjectGuid};
use ews_calendar_replicator::replication::{CycleOptions, PrivateAppointments, UserOutcome};
use ews_calendar_replicator::sim::ucserver::{UcServerSim, UcServerSimConfig, UserDatabase};
use ews_calendar_replicator::state::SqliteStateStore;
use ews_toolkit::sim::exchange::{
    generate, BusyMode, ExchangeSim, ExchangeSimConfig, GenerateSpec, Permission, SimAccount,
    SimBusyType, SimEvent,
};

const SEED: u64 = 0x5EED_C7C1E;
const EVENTS_PER_MAILBOX: usize = 10;
const REQUEST_LATENCY_MS: u64 = 50;
const PER_MAILBOX_LATENCY_MS: u64 = 1;
const CONCURRENCY: usize = 4;
const MAILBOXES_PER_REQUEST: usize = 100;
/// Requests the throttled simulator serves at once, and the back-off it asks for.
const THROTTLE_LIMIT: usize = 2;
const THROTTLE_BACK_OFF_MS: u64 = 100;

const ADMIN_USER: &str = "ucadmin";
const ADMIN_PASSWORD: &str = "bench-admin-password";
const EWS_DOMAIN: &str = "BENCH";
const EWS_USER: &str = "svc-replicator";
const EWS_PASSWORD: &str = "bench-service-password";

fn main() {
    // as the service binary does (src/main.rs), so that RSS is the service's
    ews_calendar_replicator::memory::tune_allocator();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    if let Some(n) = value("--sims") {
        let now: i64 = value("--now").expect("--now").parse().expect("--now");
        let throttled = args.iter().any(|a| a == "--throttle");
        return run_async(sims_process(
            n.parse().expect("--sims N"),
            Utc.timestamp_opt(now, 0).unwrap(),
            throttled,
        ));
    }
    if let Some(n) = value("--scale") {
        return run_async(replicator_process(n.parse().expect("--scale N"), false));
    }
    if let Some(n) = value("--throttled-run") {
        return run_async(replicator_process(
            n.parse().expect("--throttled-run N"),
            true,
        ));
    }

    let timing = args.iter().any(|a| a == "--bench");
    let parse_list = |text: String| -> Vec<usize> {
        text.split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().parse().expect("a list of numbers"))
            .filter(|&n| n > 0)
            .collect()
    };
    let sizes = value("--sizes").map(parse_list).unwrap_or_else(|| {
        if timing {
            vec![1_000, 10_000, 20_000]
        } else {
            vec![300]
        }
    });
    let throttled = value("--throttled").map(parse_list).unwrap_or_else(|| {
        if timing {
            vec![10_000]
        } else {
            vec![]
        }
    });
    orchestrate(&sizes, &throttled);
}

fn run_async(future: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(future);
}

/// `ceil(N/100) / concurrency × (50 ms + 100 × 1 ms)`, as issue #7 states it.
fn ideal(n: usize) -> Duration {
    let requests = n.div_ceil(MAILBOXES_PER_REQUEST) as f64;
    let per_request = REQUEST_LATENCY_MS + PER_MAILBOX_LATENCY_MS * MAILBOXES_PER_REQUEST as u64;
    Duration::from_secs_f64(requests / CONCURRENCY as f64 * per_request as f64 / 1000.0)
}

/// The floor with whole rounds: requests go out 4 at a time.
fn ideal_whole_rounds(n: usize) -> Duration {
    let requests = n.div_ceil(MAILBOXES_PER_REQUEST);
    let rounds = requests.div_ceil(CONCURRENCY) as u64;
    Duration::from_millis(
        rounds * (REQUEST_LATENCY_MS + PER_MAILBOX_LATENCY_MS * MAILBOXES_PER_REQUEST as u64),
    )
}

// ---------------------------------------------------------------- orchestrator

fn orchestrate(sizes: &[usize], throttled: &[usize]) {
    let exe = std::env::current_exe().expect("own executable");
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("cycle_scale: {cpu}, {cores} cores; Exchange sim {REQUEST_LATENCY_MS} ms/request + {PER_MAILBOX_LATENCY_MS} ms/mailbox, concurrency {CONCURRENCY}, {EVENTS_PER_MAILBOX} events/mailbox, all users offline, window 30 days");
    println!("each size in its own processes: replicator (this side) and simulators (sim columns)");
    println!();
    println!(
        "| {:>6} | {:>9} | {:>8} | {:>6} | {:>8} | {:>8} | {:>7} | {:>7} | {:>9} | {:>9} | {:>9} | {:>9} |",
        "N", "cycle 1 s", "ideal s", "ratio", "GUA req", "writes 1", "changed", "writes 2", "cycle 2 s", "RSS MB", "CPU s/1k", "sim RSS MB"
    );
    println!(
        "|{:->8}|{:->11}|{:->10}|{:->8}|{:->10}|{:->10}|{:->9}|{:->9}|{:->11}|{:->11}|{:->11}|{:->11}|",
        ":", ":", ":", ":", ":", ":", ":", ":", ":", ":", ":", ":"
    );
    let mut details = Vec::new();
    for &n in sizes {
        let result = run_child(&exe, &["--scale", &n.to_string()]);
        let get = |k: &str| field(&result, k);
        let cycle1 = get("cycle1_ms") / 1000.0;
        let ideal_s = ideal(n).as_secs_f64();
        println!(
            "| {:>6} | {:>9.2} | {:>8.2} | {:>5.2}x | {:>8} | {:>8} | {:>7} | {:>8} | {:>9.2} | {:>9.1} | {:>9.3} | {:>10.1} |",
            n,
            cycle1,
            ideal_s,
            cycle1 / ideal_s,
            get("gua_requests"),
            get("writes1"),
            get("changed"),
            get("writes2"),
            get("cycle2_ms") / 1000.0,
            get("rss_kb") / 1024.0,
            get("cpu1_ms") / 1000.0 / (n as f64 / 1000.0),
            get("sim_rss_kb") / 1024.0,
        );
        details.push(format!(
            "N={n}: cycle 1 steps list {:.0} ms, directory {:.0} ms, matching {:.0} ms, Exchange {:.0} ms ({:.2}x the ideal; whole rounds of 4 give {:.2} s), writes after the last answer {:.0} ms; {} EWS connections ({} NTLM handshakes); replicator CPU {:.2} s, simulators CPU {:.2} s for the run",
            get("list_ms"),
            get("directory_ms"),
            get("cycle1_ms")
                - get("list_ms")
                - get("directory_ms")
                - get("read_ms")
                - get("write_ms"),
            get("read_ms"),
            get("read_ms") / 1000.0 / ideal_s,
            ideal_whole_rounds(n).as_secs_f64(),
            get("write_ms"),
            get("connections"),
            get("ntlm_handshakes"),
            get("cpu1_ms") / 1000.0,
            get("sim_cpu_ms") / 1000.0,
        ));
    }
    println!();
    for line in details {
        println!("{line}");
    }
    for &n in throttled {
        let result = run_child(&exe, &["--throttled-run", &n.to_string()]);
        let get = |k: &str| field(&result, k);
        println!();
        println!(
            "throttled: N={n}, server limit {THROTTLE_LIMIT} concurrent requests, ErrorServerBusy (BackOffMilliseconds {THROTTLE_BACK_OFF_MS}) beyond it: every mailbox read ({} written, {} failed); {:.2} s ({:.2}x the unthrottled ideal at concurrency {CONCURRENCY}, {:.2}x the ideal at the server's {THROTTLE_LIMIT}); {} GetUserAvailability requests, {} busy answers (server), {} retries (client)",
            get("written1"),
            get("failed1"),
            get("cycle1_ms") / 1000.0,
            get("cycle1_ms") / 1000.0 / ideal(n).as_secs_f64(),
            get("cycle1_ms") / 1000.0 / (ideal(n).as_secs_f64() * CONCURRENCY as f64 / THROTTLE_LIMIT as f64),
            get("gua_requests"),
            get("busy_answers"),
            get("retries"),
        );
    }
}

/// Runs the bench binary in a mode and returns its `RESULT` line.
fn run_child(exe: &std::path::Path, args: &[&str]) -> String {
    let output = Command::new(exe)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .expect("the bench binary starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{args:?} failed ({}):\n{stdout}",
        output.status
    );
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("{args:?} printed no RESULT line:\n{stdout}"))
        .to_owned()
}

/// `key=value` from a result line (the last one of that key), as a number.
fn field(line: &str, key: &str) -> f64 {
    line.split_whitespace()
        .rev()
        .find_map(|kv| kv.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a number in {line}"))
}

// ---------------------------------------------------------------- process figures

/// Peak resident set size of this process (kB).
fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// User + system CPU time of this process so far.
fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

// ---------------------------------------------------------------- organisation

fn organisation(n: usize) -> UserDatabase {
    // offline fraction 1.0: every user is offline
    UserDatabase::generate(n, 1.0, SEED, ADMIN_USER, ADMIN_PASSWORD)
}

fn directory_users(people: &UserDatabase) -> Vec<DirectoryUser> {
    people
        .users
        .iter()
        .filter(|u| !u.admin)
        .map(|u| DirectoryUser {
            object_guid: u.object_guid.parse::<ObjectGuid>().expect("generated GUID"),
            dn: u.dn.clone(),
            sam_account_name: Some(u.sam_account_name.clone()),
            user_principal_name: Some(u.email.clone()),
            primary_smtp: Some(u.email.clone()),
            smtp_addresses: vec![u.email.clone()],
            home_mdb: None,
        })
        .collect()
}

// ---------------------------------------------------------------- simulators process

/// Serves both simulators and answers commands on stdin:
/// `counters`, `change K` (K calendars changed; prints their users), EOF ends.
async fn sims_process(n: usize, now: DateTime<Utc>, throttled: bool) {
    let people = organisation(n);
    let users: Vec<_> = people.users.iter().filter(|u| !u.admin).cloned().collect();
    let ucserver = UcServerSim::start(UcServerSimConfig::new(people), None)
        .await
        .expect("UCServer simulator starts");
    let mut calendars = generate(&GenerateSpec {
        users: users.len(),
        events_per_user: EVENTS_PER_MAILBOX,
        seed: SEED,
        domain: "example.com".into(),
        now,
    })
    .mailboxes;
    for (user, mailbox) in users.iter().zip(calendars.iter_mut()) {
        mailbox.smtp = user.email.clone();
        mailbox.display_name = user.display_name.clone();
        mailbox.permission = Permission::Details;
    }
    let mut config = ExchangeSimConfig::new(calendars);
    config.accounts = vec![SimAccount::new(EWS_DOMAIN, EWS_USER, EWS_PASSWORD)];
    config.extended_protection = true;
    config.knobs.request_latency = Duration::from_millis(REQUEST_LATENCY_MS);
    config.knobs.per_mailbox_latency = Duration::from_millis(PER_MAILBOX_LATENCY_MS);
    if throttled {
        config.knobs.max_concurrent_requests = Some(THROTTLE_LIMIT);
        config.knobs.busy_mode = BusyMode::SoapFault {
            back_off_ms: THROTTLE_BACK_OFF_MS,
        };
    }
    let exchange = ExchangeSim::start(config)
        .await
        .expect("Exchange simulator starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let ca_file = dir.path().join("exchange-ca.pem");
    exchange.write_ca_pem(&ca_file).expect("CA written");
    let mut out = std::io::stdout();
    writeln!(
        out,
        "READY {} {} {}",
        ucserver.base_url(),
        exchange.ews_url(),
        ca_file.display()
    )
    .unwrap();
    out.flush().unwrap();

    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = lines.recv().await {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("counters") => {
                let c = exchange.counters();
                writeln!(
                    out,
                    "COUNTERS gua_requests={} busy_answers={} ucserver_writes={} sim_rss_kb={} sim_cpu_ms={}",
                    c.requests_by_operation.get("GetUserAvailability").copied().unwrap_or(0),
                    c.busy_answers,
                    ucserver.total_writes(),
                    vm_hwm_kb(),
                    cpu_time().as_millis(),
                )
                .unwrap();
            }
            Some("reset") => {
                exchange.reset_counters();
                writeln!(out, "OK").unwrap();
            }
            Some("change") => {
                let k: usize = words.next().and_then(|w| w.parse().ok()).expect("change K");
                let changed = change_calendars(&exchange, &users, k, now);
                writeln!(out, "CHANGED {}", changed.join(",")).unwrap();
            }
            other => panic!("unknown command {other:?}"),
        }
        out.flush().unwrap();
    }
}

/// Adds a meeting tomorrow to `k` calendars spread evenly over the users.
fn change_calendars(
    exchange: &ExchangeSim,
    users: &[ews_calendar_replicator::sim::ucserver::SimUser],
    k: usize,
    now: DateTime<Utc>,
) -> Vec<String> {
    let start = (now + ChronoDuration::days(1))
        .duration_trunc(ChronoDuration::hours(1))
        .unwrap_or(now);
    let step = (users.len() / k.max(1)).max(1);
    users
        .iter()
        .step_by(step)
        .take(k)
        .map(|user| {
            exchange
                .mailbox_mut(&user.email, |mailbox| {
                    mailbox.events.push(SimEvent {
                        id: "bench-change".into(),
                        start,
                        end: start + ChronoDuration::minutes(90),
                        busy_type: SimBusyType::Busy,
                        subject: Some("Added between cycles".into()),
                        location: None,
                        private: false,
                        meeting: true,
                        all_day: false,
                        recurrence: None,
                    })
                })
                .expect("the mailbox exists");
            user.user_name.clone()
        })
        .collect()
}

struct Sims {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Sims {
    fn start(n: usize, now: DateTime<Utc>, throttled: bool) -> (Sims, [String; 3]) {
        let mut command = Command::new(std::env::current_exe().expect("own executable"));
        command
            .args([
                "--sims",
                &n.to_string(),
                "--now",
                &now.timestamp().to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if throttled {
            command.arg("--throttle");
        }
        let mut child = command.spawn().expect("the simulators start");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut sims = Sims {
            child,
            stdin,
            stdout,
        };
        let ready = sims.read_line("READY ");
        let parts: Vec<String> = ready.split_whitespace().map(str::to_owned).collect();
        (sims, [parts[0].clone(), parts[1].clone(), parts[2].clone()])
    }

    fn read_line(&mut self, prefix: &str) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            let read = self.stdout.read_line(&mut line).expect("simulator output");
            assert!(read > 0, "the simulators ended before {prefix:?}");
            if let Some(rest) = line.trim_end().strip_prefix(prefix) {
                return rest.to_owned();
            }
        }
    }

    fn ask(&mut self, command: &str, prefix: &str) -> String {
        writeln!(self.stdin, "{command}").expect("simulator input");
        self.stdin.flush().unwrap();
        self.read_line(prefix)
    }

    fn counters(&mut self) -> String {
        self.ask("counters", "COUNTERS ")
    }
}

impl Drop for Sims {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- replicator process

/// One size: two cycles (first, then 1 % changed), printed as a `RESULT` line.
async fn replicator_process(n: usize, throttled: bool) {
    let now = Utc::now().duration_trunc(ChronoDuration::hours(1)).unwrap();
    let (mut sims, [ucserver_url, ews_url, ca_file]) = Sims::start(n, now, throttled);
    let people = organisation(n);
    let user_names: BTreeSet<String> = people
        .users
        .iter()
        .filter(|u| !u.admin)
        .map(|u| u.user_name.clone())
        .collect();
    // Assembled from a configuration, as the service is.
    let site_dir = tempfile::tempdir().expect("configuration directory");
    let site = SimulatedSite {
        ucserver_url: ucserver_url.parse().expect("UCServer URL"),
        ucserver_admin: ADMIN_USER.into(),
        ucserver_password: ADMIN_PASSWORD.into(),
        exchange_url: ews_url.parse().expect("EWS URL"),
        exchange_account: format!("{EWS_DOMAIN}\\{EWS_USER}"),
        exchange_password: EWS_PASSWORD.into(),
        exchange_ca_file: ca_file.into(),
        directory: directory_users(&people),
        max_concurrency: CONCURRENCY,
        private_appointments: PrivateAppointments::default(),
    };
    drop(people);
    let config = site.configure(site_dir.path()).expect("configuration");
    drop(site);
    assert_eq!(
        config.replication.window_days, 30,
        "one 42-day chunk per mailbox"
    );
    // The production store (SQLite, WAL): its two commits per write (before
    // the send and after the answer) are part of the cycle's cost.
    let state = SqliteStateStore::open(&config.state_path).expect("state");
    let engine = assemble(&config, state)
        .await
        .expect("the engine assembled");
    let options = CycleOptions::default();

    // Cycle 1: every user's calendar is new.
    let cpu_before = cpu_time();
    let began = Instant::now();
    let report = engine.run_cycle(now, &options).await;
    let cycle1 = began.elapsed();
    let cpu1 = cpu_time() - cpu_before;
    assert!(report.error.is_none(), "cycle 1 failed: {:?}", report.error);
    let c = &report.counters;
    // every user offline and selected, and the administrator, who has no
    // directory user and is skipped
    assert_eq!(c.selected, n + 1, "every user selected");
    assert_eq!(c.skipped, 1, "only the administrator skipped");
    assert_eq!(c.failed, 0, "cycle 1: no user failed");
    assert_eq!(c.written, n, "cycle 1 writes every user");
    let counters1 = sims.counters();
    let stats = engine
        .calendars()
        .reader_stats()
        .expect("the reader has read");
    let mut result = format!(
        "cycle1_ms={} cpu1_ms={} list_ms={} directory_ms={} read_ms={} write_ms={} written1={} failed1={} retries={} client_requests={}",
        cycle1.as_millis(),
        cpu1.as_millis(),
        report.durations.list_users_ms,
        report.durations.directory_ms,
        report.durations.read_calendars_ms,
        report.durations.write_ms,
        c.written,
        c.failed,
        stats.retries,
        stats.requests_sent,
    );
    let transport_stats = engine
        .calendars()
        .transport_stats()
        .expect("the reader has read");
    result.push_str(&format!(
        " connections={} ntlm_handshakes={}",
        transport_stats.connections_opened, transport_stats.ntlm_handshakes
    ));
    let writes1 = field(&counters1, "ucserver_writes") as usize;
    assert_eq!(writes1, n, "the UCServer received one write per user");
    result.push_str(&format!(" writes1={writes1} "));
    result.push_str(&counters1);
    let gua = field(&counters1, "gua_requests") as usize;
    if !throttled {
        assert_eq!(
            gua,
            n.div_ceil(MAILBOXES_PER_REQUEST),
            "one GetUserAvailability per 100 mailboxes"
        );
    }
    drop(report);

    if !throttled {
        // Cycle 2: 1 % of the calendars changed; exactly those are written.
        let k = (n / 100).max(1);
        let changed: BTreeSet<String> = sims
            .ask(&format!("change {k}"), "CHANGED ")
            .split(',')
            .map(str::to_owned)
            .collect();
        assert_eq!(changed.len(), k);
        assert!(changed.is_subset(&user_names));
        sims.ask("reset", "OK");
        let began = Instant::now();
        let report = engine.run_cycle(now, &options).await;
        let cycle2 = began.elapsed();
        assert!(report.error.is_none(), "cycle 2 failed: {:?}", report.error);
        let written: BTreeSet<String> = report
            .users
            .iter()
            .filter(|u| u.outcome == UserOutcome::Written)
            .map(|u| u.user_name.clone())
            .collect();
        assert_eq!(written, changed, "cycle 2 writes exactly the changed users");
        assert_eq!(report.counters.unchanged, n - k);
        let counters2 = sims.counters();
        let writes2 = field(&counters2, "ucserver_writes") as usize - writes1;
        assert_eq!(
            writes2, k,
            "the UCServer received one write per changed user"
        );
        result.push_str(&format!(
            " changed={k} writes2={writes2} cycle2_ms={}",
            cycle2.as_millis()
        ));
        // the simulators' figures after both cycles replace those after one
        result.push_str(&format!(
            " sim_rss_kb={} sim_cpu_ms={}",
            field(&counters2, "sim_rss_kb"),
            field(&counters2, "sim_cpu_ms")
        ));
    }
    result.push_str(&format!(" rss_kb={}", vm_hwm_kb()));
    println!("RESULT {result}");
}
