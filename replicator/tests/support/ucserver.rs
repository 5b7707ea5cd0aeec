//! Shared helpers of the UCServer tests: a simulator with a small fixed user
//! database and client settings pointing at it.

use std::time::Duration;

use chrono::{TimeZone, Utc};
pub use ews_calendar_replicator::sim::ucserver::MessageForm;
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

/// The transport a test case runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// createsession + WebSocket (`http://`, ports 7224/7225).
    WebService,
    /// The native port (`tcp://`, port 7222).
    Native,
}

/// One row of the transport x message form table: the transport, and the
/// form the simulator answers in. On the WebSocket the web service form is
/// array-wrapped with `_type` and object-form `optionalParams`, the plain
/// form bare without either; on the native port both are bare (the runtime
/// writes bare messages there) and differ in `_type` and `optionalParams`.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    pub transport: Transport,
    pub form: MessageForm,
}

pub const WEB_SERVICE_WEB_FORM: Case = Case {
    transport: Transport::WebService,
    form: MessageForm::WebService,
};
pub const WEB_SERVICE_PLAIN_FORM: Case = Case {
    transport: Transport::WebService,
    form: MessageForm::Plain,
};
pub const NATIVE_WEB_FORM: Case = Case {
    transport: Transport::Native,
    form: MessageForm::WebService,
};
pub const NATIVE_PLAIN_FORM: Case = Case {
    transport: Transport::Native,
    form: MessageForm::Plain,
};

/// Runs each named `async fn NAME(case: Case)` of the including file once
/// per row of the table, as `ROW::NAME` test functions.
#[macro_export]
macro_rules! for_each_transport_and_form {
    ($($test:ident),* $(,)?) => {
        mod web_service_web_form {
            $(#[tokio::test] async fn $test() { super::$test($crate::support::ucserver::WEB_SERVICE_WEB_FORM).await })*
        }
        mod web_service_plain_form {
            $(#[tokio::test] async fn $test() { super::$test($crate::support::ucserver::WEB_SERVICE_PLAIN_FORM).await })*
        }
        mod native_web_form {
            $(#[tokio::test] async fn $test() { super::$test($crate::support::ucserver::NATIVE_WEB_FORM).await })*
        }
        mod native_plain_form {
            $(#[tokio::test] async fn $test() { super::$test($crate::support::ucserver::NATIVE_PLAIN_FORM).await })*
        }
    };
}

/// Runs each named `async fn NAME(case: Case)` once per transport, both in
/// the web service form, as `ROW::NAME` test functions.
#[macro_export]
macro_rules! for_each_transport {
    ($($test:ident),* $(,)?) => {
        mod web_service {
            $(#[tokio::test] async fn $test() { super::$test($crate::support::ucserver::WEB_SERVICE_WEB_FORM).await })*
        }
        mod native {
            $(#[tokio::test] async fn $test() { super::$test($crate::support::ucserver::NATIVE_WEB_FORM).await })*
        }
    };
}

/// A simulator with the fixed users answering in `case`'s form, listening
/// on the native port too when `case` uses it.
pub async fn start_sim_for(case: Case) -> UcServerSim {
    start_sim_for_with(case, UcServerSimConfig::new(users())).await
}

pub async fn start_sim_for_with(case: Case, mut config: UcServerSimConfig) -> UcServerSim {
    config.form = case.form;
    let sim = start_sim_with(config).await;
    if case.transport == Transport::Native {
        sim.listen_native(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), None)
            .await
            .expect("native listener starts");
    }
    sim
}

/// [`settings`] for `case`'s transport.
pub fn settings_for(case: Case, sim: &UcServerSim) -> UcServerSettings {
    let mut s = settings(sim);
    if case.transport == Transport::Native {
        s.base_url = sim.native_url().expect("the sim listens natively");
    }
    s
}

/// How many times a client began a logon: createsession requests on the web
/// service, `asnNegotiateServerConnectionV2` invokes on the native port.
pub fn logon_attempts(case: Case, sim: &UcServerSim) -> usize {
    match case.transport {
        Transport::WebService => sim.createsession_requests().len(),
        Transport::Native => sim
            .received_messages()
            .iter()
            .filter(|text| text.contains("asnNegotiateServerConnectionV2"))
            .count(),
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

/// Every ROSE message the client sends in a scripted session over `case`'s
/// transport, as the simulator received them (keep-alive included), in
/// order, and the simulator for reading what it answered.
pub async fn record_client_session(case: Case) -> (UcServerSim, Vec<serde_json::Value>) {
    use ews_calendar_replicator::ucserver::UcServerClient;
    let sim = start_sim_for(case).await;
    let mut s = settings_for(case, &sim);
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
    let mut s = settings_for(case, &sim);
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
