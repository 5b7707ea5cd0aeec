//! Push latency (issue #19): 1,000 subscribed mailboxes, 200 calendar
//! changes at random times over a few minutes, each in its own mailbox; the
//! time from the change in the Exchange simulator to the UCServer write
//! (p50, p99, max) against the floor: the simulator's notification delay
//! plus one GetUserAvailability and one write, measured on their own (one
//! refresh of one mailbox). Half-way through, the simulator restarts (every
//! subscription gone): the changes around it must still be written, once.
//! Then the idle cost: CPU seconds per hour with no changes (the process
//! holds the simulators too), and the connections held.
//!
//! ```text
//! cargo bench --bench push_latency                       # 1000 mailboxes, 200 changes over 180 s
//! cargo bench --bench push_latency -- --seconds 60 --idle-seconds 30
//! ```
//!
//! The simulator costs 50 ms per request plus 1 ms per mailbox and sends an
//! event 50 ms after a change. On-premises Exchange holds 3 streaming
//! connections per account (600 mailboxes); 1,000 mailboxes need 5, so the
//! simulator's `HangingConnectionLimit` and `notification_connections` are
//! 5 here. Prints one line starting with `PUSH `. Without `--bench`
//! (`cargo test --benches`) a small run checks the same things.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Duration as ChronoDuration, DurationRound, Utc};
use tokio::sync::{mpsc, watch};

use ews_calendar_replicator::app::notifications::{EwsNotifications, FeedTiming, StreamingFeed};
use ews_calendar_replicator::app::{assemble, SimulatedSite};
use ews_calendar_replicator::config::NotificationSettings;
use ews_calendar_replicator::directory::{DirectoryUser, ObjectGuid};
use ews_calendar_replicator::replication::{
    run_scheduled_with_feed, ChangeFeed as _, CycleOptions, PrivateAppointments,
};
use ews_calendar_replicator::sim::ucserver::{UcServerSim, UcServerSimConfig, UserDatabase};
use ews_calendar_replicator::state::MemoryStateStore;
use ews_toolkit::sim::exchange::{
    generate, ExchangeSim, ExchangeSimConfig, GenerateSpec, Permission, SimAccount, SimBusyType,
    SimEvent,
};

const SEED: u64 = 0x9u64 << 40 | 0x5E;
const NOTIFICATION_DELAY_MS: u64 = 50;
const REQUEST_LATENCY_MS: u64 = 50;
const PER_MAILBOX_LATENCY_MS: u64 = 1;
const CONNECTIONS: usize = 5;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(|v| v.parse::<u64>().unwrap_or_else(|_| panic!("{name} NUMBER")))
    };
    let full = args.iter().any(|a| a == "--bench");
    let (mailboxes, changes, seconds, idle) = if full {
        (
            value("--mailboxes").unwrap_or(1000) as usize,
            value("--changes").unwrap_or(200) as usize,
            value("--seconds").unwrap_or(180),
            value("--idle-seconds").unwrap_or(60),
        )
    } else {
        (100, 20, 6, 3)
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(mailboxes, changes, seconds, idle));
}

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn cpu_seconds() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn run(n: usize, changes: usize, seconds: u64, idle_seconds: u64) {
    let dir = tempfile::tempdir().unwrap();
    let people = UserDatabase::generate(n, 1.0, SEED, "ucadmin", "bench-admin-password");
    let ucserver = UcServerSim::start(UcServerSimConfig::new(people), None)
        .await
        .unwrap();
    let users: Vec<_> = ucserver.users().into_iter().filter(|u| !u.admin).collect();
    let mut calendars = generate(&GenerateSpec {
        users: users.len(),
        events_per_user: 5,
        seed: SEED,
        domain: "example.com".into(),
        now: Utc::now(),
    })
    .mailboxes;
    let mut directory = Vec::new();
    for (user, mailbox) in users.iter().zip(calendars.iter_mut()) {
        mailbox.smtp = user.email.clone();
        mailbox.permission = Permission::DetailsAndPrivate;
        directory.push(DirectoryUser {
            object_guid: user.object_guid.parse::<ObjectGuid>().unwrap(),
            dn: user.dn.clone(),
            sam_account_name: Some(user.sam_account_name.clone()),
            user_principal_name: Some(user.email.clone()),
            primary_smtp: Some(user.email.clone()),
            smtp_addresses: vec![user.email.clone()],
            home_mdb: None,
        });
    }
    let mut config = ExchangeSimConfig::new(calendars);
    config.accounts = vec![SimAccount::new("CORP", "svc-bench", "bench-ews-password")];
    config.knobs.request_latency = Duration::from_millis(REQUEST_LATENCY_MS);
    config.knobs.per_mailbox_latency = Duration::from_millis(PER_MAILBOX_LATENCY_MS);
    config.knobs.notifications.notification_delay = Duration::from_millis(NOTIFICATION_DELAY_MS);
    config.knobs.notifications.hanging_connection_limit = CONNECTIONS;
    let exchange = ExchangeSim::start(config).await.unwrap();
    let ca_file = dir.path().join("exchange-ca.pem");
    exchange.write_ca_pem(&ca_file).unwrap();
    let site = SimulatedSite {
        ucserver_url: ucserver.base_url(),
        ucserver_admin: "ucadmin".into(),
        ucserver_password: "bench-admin-password".into(),
        exchange_url: exchange.ews_url(),
        exchange_account: "CORP\\svc-bench".into(),
        exchange_password: "bench-ews-password".into(),
        exchange_ca_file: ca_file,
        directory,
        max_concurrency: 4,
        private_appointments: PrivateAppointments::Skip,
    };
    let config = site.configure(dir.path()).unwrap();
    let engine = Arc::new(assemble(&config, MemoryStateStore::new()).await.unwrap());

    // The floor: one refresh of one mailbox (one GetUserAvailability, one
    // write), after one change so that it writes; plus the event's delay.
    // The second of two: the first also pays for the connections'
    // handshakes and the first directory and UCServer reads.
    let floor_user = &users[0];
    let mut floor_ms = 0;
    for _ in 0..2 {
        add_meeting(&exchange, &floor_user.email, "floor");
        let started = Instant::now();
        let report = engine
            .refresh_mailboxes(
                Utc::now(),
                std::slice::from_ref(&floor_user.email),
                &CycleOptions::default(),
            )
            .await;
        assert_eq!(report.counters.written, 1, "the floor's refresh writes");
        floor_ms = started.elapsed().as_millis() as u64 + NOTIFICATION_DELAY_MS;
    }

    let (changes_tx, changes_rx) = mpsc::unbounded_channel();
    let feed = Arc::new(StreamingFeed::start(
        EwsNotifications::new(config.exchange.clone(), engine.calendars().scp()),
        NotificationSettings {
            max_connections: CONNECTIONS,
            ..config.exchange.notifications.clone()
        },
        false,
        FeedTiming::default(),
        changes_tx,
    ));
    let (stop, shutdown) = watch::channel(false);
    let scheduled = (engine.clone(), feed.clone());
    let service = tokio::spawn(async move {
        run_scheduled_with_feed(
            &*scheduled.0,
            CycleOptions::default(),
            Some((&*scheduled.1, changes_rx)),
            shutdown,
            |_| {},
        )
        .await;
    });
    let deadline = Instant::now() + Duration::from_secs(300);
    while feed.status().subscribed < n {
        assert!(Instant::now() < deadline, "subscribed: {:?}", feed.status());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before: Vec<usize> = users
        .iter()
        .map(|u| ucserver.write_count(&u.user_name))
        .collect();

    // 200 distinct mailboxes (not the floor's), each changed once at a
    // random time in the window; the restart half-way.
    let mut rng = Rng(SEED);
    let mut picked: Vec<usize> = (1..users.len()).collect();
    for i in (1..picked.len()).rev() {
        picked.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    picked.truncate(changes);
    let mut schedule: Vec<(Duration, usize)> = picked
        .iter()
        .map(|&u| (Duration::from_millis(rng.next() % (seconds * 1000)), u))
        .collect();
    schedule.sort();
    let window = Instant::now();
    let mut changed_at: BTreeMap<usize, Instant> = BTreeMap::new();
    let mut written_after: BTreeMap<usize, u64> = BTreeMap::new();
    let mut restarted = false;
    let mut next = 0;
    let end = window + Duration::from_secs(seconds) + Duration::from_secs(30);
    while Instant::now() < end && written_after.len() < changes {
        let now = Instant::now();
        if !restarted && now >= window + Duration::from_secs(seconds) / 2 {
            exchange.restart();
            restarted = true;
        }
        while next < schedule.len() && window + schedule[next].0 <= now {
            let user = schedule[next].1;
            add_meeting(&exchange, &users[user].email, "bench");
            changed_at.insert(user, Instant::now());
            next += 1;
        }
        for (&user, at) in &changed_at {
            if !written_after.contains_key(&user)
                && ucserver.write_count(&users[user].user_name) > before[user]
            {
                written_after.insert(user, at.elapsed().as_millis() as u64);
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let missed = changes - written_after.len();
    let duplicates: usize = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let expected = before[i] + usize::from(changed_at.contains_key(&i));
            ucserver.write_count(&u.user_name).saturating_sub(expected)
        })
        .sum();

    // Idle: no changes, the connections held, keep-alives only.
    let idle_start = (Instant::now(), cpu_seconds());
    tokio::time::sleep(Duration::from_secs(idle_seconds)).await;
    let idle_cpu = cpu_seconds() - idle_start.1;
    let idle_per_hour = idle_cpu * 3600.0 / idle_start.0.elapsed().as_secs_f64();
    let connections = feed.status().connections;
    let _ = stop.send(true);
    let _ = service.await;

    let mut latencies: Vec<u64> = written_after.values().copied().collect();
    latencies.sort_unstable();
    let (p50, p99, max) = (
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or(0),
    );
    println!(
        "{n} mailboxes subscribed on {connections} connections; {changes} changes over {seconds} s, the simulator restarted (every subscription gone) half-way"
    );
    println!(
        "PUSH p50_ms={p50} p99_ms={p99} max_ms={max} floor_ms={floor_ms} missed={missed} duplicates={duplicates} idle_cpu_s_per_h={idle_per_hour:.1} connections={connections}"
    );
    assert_eq!(missed, 0, "every change written");
    assert_eq!(duplicates, 0, "every change written exactly once");
}

/// Adds a meeting tomorrow with a fresh id to `smtp`'s calendar.
fn add_meeting(exchange: &ExchangeSim, smtp: &str, tag: &str) {
    let start = (Utc::now() + ChronoDuration::days(1))
        .duration_trunc(ChronoDuration::hours(1))
        .unwrap();
    exchange
        .mailbox_mut(smtp, |m| {
            let id = format!("{tag}-{}", m.events.len());
            m.events.push(SimEvent {
                id,
                start,
                end: start + ChronoDuration::minutes(30),
                busy_type: SimBusyType::Busy,
                subject: Some(format!("{tag} meeting")),
                location: None,
                private: false,
                meeting: true,
                all_day: false,
                recurrence: None,
            })
        })
        .unwrap();
}
