//! Shared setup of the replication engine tests: the UCServer simulator
//! with a fixed user database, a static user list and a scripted calendar
//! source.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use ews_calendar_replicator::directory::StaticDirectory;
use ews_calendar_replicator::replication::{
    CalendarSource, CycleOptions, CycleReport, Engine, ReplicationSettings, SourceError,
    StateStore, UserOutcome,
};
use ews_calendar_replicator::sim::ucserver::{SimUser, UcServerSim, UserDatabase};
use ews_calendar_replicator::state::MemoryStateStore;
use ews_calendar_replicator::ucserver::UcServerClient;
use ews_toolkit::availability::{
    BusyType, CalendarEvent, EventDetails, MailboxAvailability, MailboxError,
};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::{Notify, Semaphore};

pub use super::ucserver::ADMIN;
use super::ucserver::{settings, start_sim_with, ADMIN_PASSWORD};

// ------------------------------------------------------------------ setup

pub const MARKER_SUBJECT: &str = "MARKER-private-subject-4711";
pub const MARKER_LOCATION: &str = "MARKER-private-location-4711";

pub fn sim_user(name: &str, n: u32, online: bool) -> SimUser {
    SimUser {
        user_name: name.to_owned(),
        display_name: format!("Display {name}"),
        dn: format!("CN={name},OU=Staff,DC=example,DC=com"),
        object_guid: format!("6f1c2a3b-0000-4000-8000-{n:012x}"),
        sam_account_name: name.to_owned(),
        sip_uri: format!("sip:{name}@example.com"),
        email: format!("{name}@example.com"),
        online,
        admin: false,
        password: None,
        enabled: true,
    }
}

/// alice, carol (offline, with mailboxes), bob (online), dave (offline,
/// not in the user list), erin (offline, no mailbox), the administrator.
pub fn sim_users() -> UserDatabase {
    let mut admin = sim_user(ADMIN, 99, false);
    admin.admin = true;
    admin.password = Some(ADMIN_PASSWORD.into());
    UserDatabase {
        users: vec![
            sim_user("alice", 1, false),
            sim_user("bob", 2, true),
            sim_user("carol", 3, false),
            sim_user("dave", 4, false),
            sim_user("erin", 5, false),
            admin,
        ],
    }
}

/// alice by objectGUID, bob by DN, carol by DN only (no GUID in the list),
/// erin by sAMAccountName without a mailbox.
pub const USER_LIST: &str = r#"
[[user]]
object_guid = "6f1c2a3b-0000-4000-8000-000000000001"
dn = "CN=somebody else,OU=Staff,DC=example,DC=com"
smtp = "alice@example.com"

[[user]]
dn = "CN=bob,OU=Staff,DC=example,DC=com"
smtp = "bob@example.com"

[[user]]
dn = "cn=carol, ou=staff, dc=example, dc=com"
sam_account_name = "carol"
smtp = "carol@example.com"

[[user]]
sam_account_name = "EXAMPLE\\erin"
"#;

pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap()
}

pub fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, day, hour, 0, 0).unwrap()
}

pub fn meeting(id: &str, day: u32, hour: u32, subject: &str) -> CalendarEvent {
    CalendarEvent {
        start: at(day, hour),
        end: at(day, hour + 1),
        busy_type: BusyType::Busy,
        details: Some(EventDetails {
            id: Some(id.into()),
            subject: Some(subject.into()),
            location: Some("Room 1".into()),
            ..EventDetails::default()
        }),
    }
}

pub fn private_event(day: u32) -> CalendarEvent {
    CalendarEvent {
        start: at(day, 12),
        end: at(day, 13),
        busy_type: BusyType::OutOfOffice,
        details: Some(EventDetails {
            id: Some("private-1".into()),
            subject: Some(MARKER_SUBJECT.into()),
            location: Some(MARKER_LOCATION.into()),
            is_private: true,
            ..EventDetails::default()
        }),
    }
}

/// A calendar source answering from scripted data; can be taken down, hold
/// reads until released, and counts concurrent reads.
#[derive(Default)]
pub struct ScriptedCalendars {
    pub mailboxes: Mutex<HashMap<String, Result<Vec<CalendarEvent>, MailboxError>>>,
    pub down: AtomicBool,
    pub reads: AtomicUsize,
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    /// Mailbox lists asked for, in order.
    pub requests: Mutex<Vec<Vec<String>>>,
    pub delay: Mutex<Duration>,
    pub hold: AtomicBool,
    pub read_started: Notify,
    /// When set, answers are handed over one at a time (streaming), each
    /// after the first waiting for a permit.
    pub stream_gate: Mutex<Option<Arc<Semaphore>>>,
}

impl ScriptedCalendars {
    pub fn set(&self, mailbox: &str, events: Vec<CalendarEvent>) {
        self.mailboxes
            .lock()
            .unwrap()
            .insert(mailbox.to_lowercase(), Ok(events));
    }

    pub fn set_error(&self, mailbox: &str, code: &str) {
        self.mailboxes.lock().unwrap().insert(
            mailbox.to_lowercase(),
            Err(MailboxError {
                code: code.into(),
                message: Some("scripted mailbox error".into()),
                back_off: None,
            }),
        );
    }
}

impl CalendarSource for ScriptedCalendars {
    async fn read_calendars(
        &self,
        mailboxes: &[String],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<MailboxAvailability>, SourceError> {
        let running = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(running, Ordering::SeqCst);
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.requests.lock().unwrap().push(mailboxes.to_vec());
        self.read_started.notify_one();
        let delay = *self.delay.lock().unwrap();
        tokio::time::sleep(delay).await;
        if self.hold.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(SourceError {
                message: "connection refused by exchange.example.com:443".into(),
            });
        }
        let scripted = self.mailboxes.lock().unwrap();
        Ok(mailboxes
            .iter()
            .map(|mailbox| MailboxAvailability {
                mailbox: mailbox.clone(),
                result: match scripted.get(&mailbox.to_lowercase()) {
                    None => Err(MailboxError {
                        code: "ErrorMailRecipientNotFound".into(),
                        message: None,
                        back_off: None,
                    }),
                    Some(Err(e)) => Err(e.clone()),
                    // What Exchange returns: events overlapping the window.
                    Some(Ok(events)) => Ok(events
                        .iter()
                        .filter(|e| e.start < end && e.end > start)
                        .cloned()
                        .collect()),
                },
            })
            .collect())
    }

    async fn read_calendars_each(
        &self,
        mailboxes: &[String],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        ready: UnboundedSender<MailboxAvailability>,
    ) -> Result<(), SourceError> {
        let answers = self.read_calendars(mailboxes, start, end).await?;
        let gate = self.stream_gate.lock().unwrap().clone();
        for (index, answer) in answers.into_iter().enumerate() {
            if let (Some(gate), true) = (&gate, index > 0) {
                gate.acquire().await.unwrap().forget();
            }
            let _ = ready.send(answer);
        }
        Ok(())
    }
}

pub type TestEngine<S = MemoryStateStore> =
    Engine<UcServerClient, StaticDirectory, ScriptedCalendars, S>;

pub struct Setup<S = MemoryStateStore> {
    pub sim: UcServerSim,
    pub engine: TestEngine<S>,
    pub _dir: tempfile::TempDir,
}

pub async fn setup_with(replication: ReplicationSettings) -> Setup {
    setup_with_state(replication, MemoryStateStore::new()).await
}

/// The standard organisation over a given state store.
pub async fn setup_with_state<S: StateStore>(
    replication: ReplicationSettings,
    state: S,
) -> Setup<S> {
    let sim =
        start_sim_with(ews_calendar_replicator::sim::ucserver::UcServerSimConfig::new(sim_users()))
            .await;
    let client = UcServerClient::connect(settings(&sim)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("users.toml");
    std::fs::write(&list, USER_LIST).unwrap();
    let directory = StaticDirectory::from_file(&list).unwrap();
    let calendars = ScriptedCalendars::default();
    calendars.set(
        "alice@example.com",
        vec![
            meeting("a1", 2, 9, "Planning"),
            meeting("a2", 3, 14, "Review"),
        ],
    );
    calendars.set("carol@example.com", vec![meeting("c1", 2, 10, "Workshop")]);
    calendars.set("bob@example.com", vec![meeting("b1", 2, 10, "Bob's")]);
    let engine = Engine::new(client, directory, calendars, state, replication);
    Setup {
        sim,
        engine,
        _dir: dir,
    }
}

pub async fn setup() -> Setup {
    setup_with(ReplicationSettings::default()).await
}

pub async fn cycle<S: StateStore>(s: &Setup<S>) -> CycleReport {
    s.engine.run_cycle(now(), &CycleOptions::default()).await
}

pub fn outcome<'a>(report: &'a CycleReport, user: &str) -> &'a UserOutcome {
    &report
        .users
        .iter()
        .find(|u| u.user_name == user)
        .unwrap_or_else(|| panic!("{user} not in the report: {report:#?}"))
        .outcome
}

pub fn names(report: &CycleReport) -> Vec<&str> {
    report.users.iter().map(|u| u.user_name.as_str()).collect()
}

pub fn stored_subjects(sim: &UcServerSim, user: &str) -> Vec<String> {
    sim.appointments(user)
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.subject)
        .collect()
}
