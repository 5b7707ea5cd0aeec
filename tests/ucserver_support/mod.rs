//! Shared helpers of the UCServer tests: a simulator with a small fixed user
//! database and client settings pointing at it.
#![allow(dead_code)]

use std::time::Duration;

use chrono::{TimeZone, Utc};
use ews_calendar_replicator::sim::ucserver::{
    SimUser, UcServerSim, UcServerSimConfig, UserDatabase,
};
use ews_calendar_replicator::ucserver::{
    Appointment, AppointmentStatus, Importance, Sensitivity, UcServerSettings,
};

pub const ADMIN: &str = "ucadmin";
pub const ADMIN_PASSWORD: &str = "Adm1n-pw";

fn user(name: &str, online: bool, admin: bool, password: Option<&str>) -> SimUser {
    SimUser {
        user_name: name.to_owned(),
        display_name: format!("Display {name}"),
        dn: format!("CN={name},OU=Staff,DC=example,DC=com"),
        object_guid: format!("6f1c2a3b-0000-4000-8000-{:012x}", name.len() * 4099),
        sam_account_name: name.to_owned(),
        sip_uri: format!("sip:{name}@example.com"),
        email: format!("{name}@example.com"),
        online,
        admin,
        password: password.map(str::to_owned),
        enabled: true,
    }
}

/// alice (offline), bob (online), carol (offline, can log in but is no
/// administrator) and the administrator.
pub fn users() -> UserDatabase {
    UserDatabase {
        users: vec![
            user("alice", false, false, None),
            user("bob", true, false, None),
            user("carol", false, false, Some("carol-pw")),
            user(ADMIN, false, true, Some(ADMIN_PASSWORD)),
        ],
    }
}

pub async fn start_sim() -> UcServerSim {
    start_sim_with(UcServerSimConfig::new(users())).await
}

pub async fn start_sim_with(config: UcServerSimConfig) -> UcServerSim {
    UcServerSim::start(config, None).await.expect("sim starts")
}

/// Settings for the simulator's administrator with quick reconnects; keep-
/// alives are rare unless a test asks for them.
pub fn settings(sim: &UcServerSim) -> UcServerSettings {
    let mut s = UcServerSettings::new(sim.base_url(), ADMIN, ADMIN_PASSWORD);
    s.keep_alive_interval = Duration::from_secs(3600);
    s.reconnect_initial_delay = Duration::from_millis(20);
    s.reconnect_max_delay = Duration::from_millis(200);
    s.request_timeout = Duration::from_secs(20);
    s.connect_timeout = Duration::from_secs(20);
    s
}

/// Waits until `condition` holds; panics naming `what` after 20 s (a hang,
/// not a speed check).
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

pub fn meeting(id: &str, hour: u32) -> Appointment {
    Appointment {
        entry_id: id.to_owned(),
        start: Utc.with_ymd_and_hms(2024, 5, 6, hour, 0, 0).unwrap(),
        end: Utc.with_ymd_and_hms(2024, 5, 6, hour + 1, 30, 0).unwrap(),
        subject: Some(format!("Meeting {id}")),
        location: Some("Room 4.12".into()),
        all_day: false,
        status: AppointmentStatus::Busy,
        sensitivity: Sensitivity::Normal,
        importance: Importance::Normal,
    }
}

pub fn holiday() -> Appointment {
    Appointment {
        entry_id: "holiday-1".into(),
        start: Utc.with_ymd_and_hms(2024, 5, 9, 0, 0, 0).unwrap(),
        end: Utc.with_ymd_and_hms(2024, 5, 10, 0, 0, 0).unwrap(),
        subject: None,
        location: None,
        all_day: true,
        status: AppointmentStatus::OutOfOffice,
        sensitivity: Sensitivity::Private,
        importance: Importance::Low,
    }
}

/// Every ROSE message the client sends in a scripted session, as the
/// simulator received them (keep-alive included), in order, and the
/// simulator for reading what it answered.
pub async fn record_client_session() -> (UcServerSim, Vec<serde_json::Value>) {
    use ews_calendar_replicator::ucserver::UcServerClient;
    let sim = start_sim().await;
    let mut s = settings(&sim);
    s.ucsid = Some("local".into());
    let client = UcServerClient::connect(s).await.unwrap();
    client.offline_users().await.unwrap();
    client.all_users().await.unwrap();
    client
        .set_appointments("alice", &[meeting("m1", 9), holiday()])
        .await
        .unwrap();
    client.set_appointments("alice", &[]).await.unwrap();
    drop(client);

    // A second client that sends keep-alives quickly.
    let mut s = settings(&sim);
    s.keep_alive_interval = Duration::from_millis(20);
    let keep_alive_client = UcServerClient::connect(s).await.unwrap();
    wait_until("a keep-alive arrived", || sim.keep_alive_count() >= 1).await;
    drop(keep_alive_client);

    let messages = sim
        .received_messages()
        .iter()
        .map(|text| serde_json::from_str(text).expect("the client sends JSON"))
        .collect();
    (sim, messages)
}

/// The first received invoke of `operation`.
pub fn first_invoke<'a>(
    messages: &'a [serde_json::Value],
    operation: &str,
) -> &'a serde_json::Value {
    messages
        .iter()
        .find(|m| m["invoke"]["operationName"] == operation)
        .unwrap_or_else(|| panic!("no {operation} was sent"))
}

/// Replaces the administrator password so that snapshots hold no secret.
pub fn redact_password(mut message: serde_json::Value) -> serde_json::Value {
    if let Some(password) = message.pointer_mut("/invoke/argument/adminPassword/u8sAdminPassword") {
        assert_eq!(password, ADMIN_PASSWORD);
        *password = serde_json::Value::String("<redacted>".into());
    }
    message
}
