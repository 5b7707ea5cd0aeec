//! The UCServer's native transport (TCP 7222): the client against the
//! simulator's native listener over real loopback TCP, the logon sequence,
//! framing errors from a scripted peer, the logon's forms in the simulator,
//! the replication engine end to end (with a connection dropped mid-write),
//! and snapshots of what the client sends. The client's behaviours shared
//! with the web service (login errors, writes, reconnects) run over both
//! transports in ucserver_client.rs, the simulator's ROSE rules in
//! ucserver_sim_strict.rs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::support::replication::*;
use bytes::BytesMut;
use ews_calendar_replicator::directory::StaticDirectory;
use ews_calendar_replicator::replication::{Engine, ReplicationSettings, UserOutcome};
use ews_calendar_replicator::sim::ucserver::{UcServerSim, UcServerSimConfig};
use ews_calendar_replicator::state::MemoryStateStore;
use ews_calendar_replicator::ucserver::asn::APPOINTMENT_SET_ENTRY_LIST;
use ews_calendar_replicator::ucserver::framing::{decode_frame, encode_frame};
use ews_calendar_replicator::ucserver::native::AsnAuthBasicCredential;
use ews_calendar_replicator::ucserver::{
    NativeTransport, UcError, UcServerClient, UcServerSettings,
};
use ews_toolkit::sim::tls::TestPki;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ADMIN_PASSWORD: &str = "Adm1n-pw";

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// The replication tests' simulator with a native listener beside the web
/// service.
async fn native_sim() -> UcServerSim {
    let sim = UcServerSim::start(UcServerSimConfig::new(sim_users()), None)
        .await
        .expect("sim starts");
    sim.listen_native(loopback(), None)
        .await
        .expect("native listener starts");
    sim
}

fn native_settings(sim: &UcServerSim) -> UcServerSettings {
    let mut s = UcServerSettings::new(sim.native_url().unwrap(), ADMIN, ADMIN_PASSWORD);
    s.keep_alive_interval = Duration::from_secs(3600);
    s.reconnect_initial_delay = Duration::from_millis(20);
    s.reconnect_max_delay = Duration::from_millis(200);
    s.request_timeout = Duration::from_secs(20);
    s.connect_timeout = Duration::from_secs(20);
    s
}

fn received(sim: &UcServerSim) -> Vec<Value> {
    sim.received_messages()
        .iter()
        .map(|text| serde_json::from_str(text).expect("JSON"))
        .collect()
}

fn operation_ids(messages: &[Value]) -> Vec<i64> {
    messages
        .iter()
        .filter_map(|m| m["invoke"]["operationID"].as_i64())
        .collect()
}

// ------------------------------------------------------------ end to end

#[tokio::test]
async fn the_replication_runs_over_the_native_port_and_a_second_cycle_writes_nothing() {
    let sim = native_sim().await;
    let client = UcServerClient::connect(native_settings(&sim))
        .await
        .expect("native logon and admin login");
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("users.toml");
    std::fs::write(&list, USER_LIST).unwrap();
    let calendars = ScriptedCalendars::default();
    calendars.set(
        "alice@example.com",
        vec![
            meeting("a1", 2, 9, "Planning"),
            meeting("a2", 3, 14, "Review"),
        ],
    );
    calendars.set("carol@example.com", vec![meeting("c1", 2, 10, "Workshop")]);
    let s = Setup {
        engine: Engine::new(
            client,
            StaticDirectory::from_file(&list).unwrap(),
            calendars,
            MemoryStateStore::new(),
            ReplicationSettings::default(),
        ),
        sim,
        _dir: dir,
    };

    let first = cycle(&s).await;
    assert!(first.error.is_none(), "{first:#?}");
    assert_eq!(outcome(&first, "alice"), &UserOutcome::Written);
    assert_eq!(outcome(&first, "carol"), &UserOutcome::Written);
    assert_eq!(stored_subjects(&s.sim, "alice"), ["Planning", "Review"]);
    assert_eq!(stored_subjects(&s.sim, "carol"), ["Workshop"]);
    let second = cycle(&s).await;
    assert_eq!(outcome(&second, "alice"), &UserOutcome::Unchanged);
    assert_eq!(s.sim.write_count("alice"), 1);
    // Everything went over the native port: no web service session.
    assert!(s.sim.createsession_requests().is_empty());
    assert_eq!(s.sim.sessions_created(), 1);
}

#[tokio::test]
async fn the_engine_sends_a_write_cut_off_by_a_dropped_connection_again_on_the_new_one() {
    let sim = native_sim().await;
    let client = UcServerClient::connect(native_settings(&sim))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("users.toml");
    std::fs::write(&list, USER_LIST).unwrap();
    let calendars = ScriptedCalendars::default();
    calendars.set("alice@example.com", vec![meeting("a1", 2, 9, "Planning")]);
    let s = Setup {
        engine: Engine::new(
            client,
            StaticDirectory::from_file(&list).unwrap(),
            calendars,
            MemoryStateStore::new(),
            ReplicationSettings::default(),
        ),
        sim,
        _dir: dir,
    };
    s.sim.drop_before_processing(APPOINTMENT_SET_ENTRY_LIST, 1);
    let report = cycle(&s).await;
    assert_eq!(
        outcome(&report, "alice"),
        &UserOutcome::Written,
        "{report:#?}"
    );
    assert_eq!(s.sim.write_count("alice"), 1);
    // The write was sent again after a new connection, logon and admin login.
    assert_eq!(s.sim.sessions_created(), 2);
    assert_eq!(s.sim.admin_logins(), 2);
}

// ------------------------------------------------------------ client

#[tokio::test]
async fn the_logon_is_negotiate_as_app_22_then_login_v2_then_admin_login() {
    let sim = native_sim().await;
    let client = UcServerClient::connect(native_settings(&sim))
        .await
        .unwrap();
    let offline = client.offline_users().await.unwrap();
    assert!(offline.iter().any(|u| u.user_name == "alice"));
    let messages = received(&sim);
    assert_eq!(operation_ids(&messages)[..4], [1006, 1005, 2904, 2913]);
    let negotiate = &messages[0]["invoke"]["argument"];
    assert_eq!(negotiate["eClientAppID"], 22);
    assert_eq!(negotiate["u8sMinSupportedInterfaceVersion"], "8.0.0");
    let credential: AsnAuthBasicCredential =
        serde_json::from_value(messages[1]["invoke"]["argument"]["auth"]["authBasic"].clone())
            .unwrap();
    assert_eq!(
        credential.decode(),
        Some((ADMIN.to_owned(), ADMIN_PASSWORD.to_owned()))
    );
}

#[tokio::test]
async fn asn_start_tls_switches_the_native_connection_to_tls_with_the_ca_file() {
    let pki = TestPki::generate(&[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    pki.write_ca_pem(&ca).unwrap();
    let sim = UcServerSim::start(UcServerSimConfig::new(sim_users()), None)
        .await
        .unwrap();
    sim.listen_native(loopback(), Some(pki.server_config()))
        .await
        .unwrap();
    assert_eq!(sim.native_url().unwrap().scheme(), "tcp+starttls");
    let mut s = native_settings(&sim);
    s.ca_file = Some(ca);
    let client = UcServerClient::connect(s).await.expect("TLS and logon");
    client
        .set_appointments("alice", &[ucserver_appointment()])
        .await
        .unwrap();
    assert_eq!(sim.write_count("alice"), 1);
    assert_eq!(operation_ids(&received(&sim))[..3], [1103, 1006, 1005]);

    // Without the CA the certificate is refused.
    let err = UcServerClient::connect(native_settings(&sim))
        .await
        .err()
        .expect("untrusted");
    assert!(matches!(err, UcError::TlsHandshake(_)), "{err:?}");
}

fn ucserver_appointment() -> ews_calendar_replicator::ucserver::Appointment {
    use chrono::TimeZone;
    use ews_calendar_replicator::ucserver::{AppointmentStatus, Importance, Sensitivity};
    ews_calendar_replicator::ucserver::Appointment {
        entry_id: "m1".into(),
        start: chrono::Utc.with_ymd_and_hms(2024, 5, 6, 9, 0, 0).unwrap(),
        end: chrono::Utc.with_ymd_and_hms(2024, 5, 6, 10, 0, 0).unwrap(),
        subject: Some("Meeting".into()),
        location: None,
        all_day: false,
        status: AppointmentStatus::Busy,
        sensitivity: Sensitivity::Normal,
        importance: Importance::Normal,
    }
}

// ------------------------------------------------------------ framing errors

/// A peer on loopback that reads the client's first frame and answers
/// `answer` bytes, then closes.
async fn scripted_peer(answer: &'static [u8]) -> UcServerSettings {
    let listener = TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = tcp.read(&mut buf).await;
        let _ = tcp.write_all(answer).await;
        let _ = tcp.shutdown().await;
    });
    let mut s = UcServerSettings::new(
        format!("tcp://{addr}/").parse().unwrap(),
        ADMIN,
        ADMIN_PASSWORD,
    );
    s.connect_timeout = Duration::from_secs(20);
    s
}

async fn connect_error(settings: UcServerSettings, transport: NativeTransport) -> UcError {
    UcServerClient::connect_with(Arc::new(transport), settings)
        .await
        .err()
        .expect("the connection fails")
}

#[tokio::test]
async fn a_frame_length_that_is_not_seven_digits_is_a_clear_retryable_error() {
    let s = scripted_peer(b"J00x0002{}").await;
    let err = connect_error(s.clone(), NativeTransport::new(&s).unwrap()).await;
    let text = err.to_string();
    assert!(
        text.contains("malformed frame") && text.contains("00x0002"),
        "{text}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_frame_over_the_limit_is_refused_before_it_is_read() {
    let s = scripted_peer(b"J0005000{\"result\":").await;
    let transport = NativeTransport::new(&s).unwrap().with_max_frame_len(1000);
    let text = connect_error(s, transport).await.to_string();
    assert!(
        text.contains("5000 bytes, more than the limit of 1000"),
        "{text}"
    );
}

#[tokio::test]
async fn an_http_answer_on_the_native_port_points_at_the_web_service_ports() {
    let s = scripted_peer(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n").await;
    let text = connect_error(s.clone(), NativeTransport::new(&s).unwrap())
        .await
        .to_string();
    assert!(
        text.contains("0x48") && text.contains("7224/7225"),
        "{text}"
    );
}

#[tokio::test]
async fn a_connection_that_ends_inside_a_frame_says_so() {
    let s = scripted_peer(b"J0000100{\"result\":{").await;
    let text = connect_error(s.clone(), NativeTransport::new(&s).unwrap())
        .await
        .to_string();
    assert!(text.contains("ended inside a frame"), "{text}");
}

#[tokio::test]
async fn a_silent_peer_is_bounded_by_the_connect_timeout() {
    let listener = TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _held = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        std::future::pending::<()>().await;
        drop(tcp);
    });
    let mut s = UcServerSettings::new(
        format!("tcp://{addr}/").parse().unwrap(),
        ADMIN,
        ADMIN_PASSWORD,
    );
    s.connect_timeout = Duration::from_millis(200);
    let err = connect_error(s.clone(), NativeTransport::new(&s).unwrap()).await;
    assert!(matches!(err, UcError::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains("no logged-on connection"), "{err}");
}

// ------------------------------------------------------------ simulator

/// A raw native connection to the simulator.
struct RawConnection {
    tcp: TcpStream,
    buf: BytesMut,
}

impl RawConnection {
    async fn open(sim: &UcServerSim) -> Self {
        let url = sim.native_url().unwrap();
        let tcp = TcpStream::connect((url.host_str().unwrap(), url.port().unwrap()))
            .await
            .unwrap();
        RawConnection {
            tcp,
            buf: BytesMut::new(),
        }
    }

    async fn send(&mut self, message: &Value) {
        let mut frame = BytesMut::new();
        encode_frame(&message.to_string(), &mut frame).unwrap();
        self.tcp.write_all(&frame).await.unwrap();
    }

    /// The next frame, or `None` when the simulator closed the connection.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(text) = decode_frame(&mut self.buf).unwrap() {
                return Some(serde_json::from_str(&text).unwrap());
            }
            let read =
                tokio::time::timeout(Duration::from_secs(20), self.tcp.read_buf(&mut self.buf))
                    .await
                    .expect("the simulator answers or closes");
            if read.unwrap_or(0) == 0 {
                return None;
            }
        }
    }

    async fn call(&mut self, message: Value) -> Value {
        self.send(&message).await;
        self.next().await.expect("an answer")
    }
}

fn invoke(id: i64, operation_id: i64, name: Option<&str>, argument: Value) -> Value {
    let mut invoke = json!({"invokeID": id, "operationID": operation_id, "argument": argument});
    if let Some(name) = name {
        invoke["operationName"] = json!(name);
    }
    json!({ "invoke": invoke })
}

fn negotiate_argument() -> Value {
    json!({
        "u8sMinSupportedInterfaceVersion": "8.0.0",
        "u8sMaxSupportedInterfaceVersion": "8.0.0",
        "u8sClientDeviceId": "test",
        "u8sClientVersion": "1",
        "eClientAppID": 22,
        "u8sClientDeviceName": "test",
        "iClientCapabilities": 0
    })
}

fn basic_login(password: &str) -> Value {
    json!({"auth": {"authBasic": {"credential": AsnAuthBasicCredential::new(ADMIN, password).credential.expose()}}})
}

fn admin_login() -> Value {
    json!({"u8sAdminUsername": ADMIN, "adminPassword": {"u8sAdminPassword": ADMIN_PASSWORD}})
}

#[tokio::test]
async fn sim_rejects_an_operation_before_the_logon_as_authentication_incomplete() {
    let sim = native_sim().await;
    let mut raw = RawConnection::open(&sim).await;
    let answer = raw
        .call(invoke(
            7,
            2913,
            Some("asnAdminGetUserProfiles"),
            json!({"iFilterOnlineState": 2}),
        ))
        .await;
    assert_eq!(answer["reject"]["invokedID"]["invokedID"], 7, "{answer}");
    // InvokeProblem.authenticationIncomplete (SNACCROSE.asn1).
    assert_eq!(answer["reject"]["reject"]["invokeProblem"], 9, "{answer}");
}

#[tokio::test]
async fn sim_dispatches_on_the_operation_id_and_resolves_id_0_from_the_name() {
    // SnaccROSEBase.cpp dispatches on operationID and looks it up from
    // operationName when the id is 0.
    let sim = native_sim().await;
    let mut raw = RawConnection::open(&sim).await;
    let answer = raw
        .call(invoke(
            1,
            0,
            Some("asnNegotiateServerConnectionV2"),
            negotiate_argument(),
        ))
        .await;
    assert!(
        answer["result"]["result"]["result"]["result"].is_object(),
        "{answer}"
    );
    let answer = raw
        .call(invoke(2, 1005, None, basic_login(ADMIN_PASSWORD)))
        .await;
    assert_eq!(
        answer["result"]["result"]["result"]["succceeded"]["u8sLoggedInUser"], ADMIN,
        "{answer}"
    );
}

#[tokio::test]
async fn sim_reads_negotiate_and_login_v2_with_type_members_and_in_an_array_snacc_rose_base_491() {
    // The logon is read by the shared codec: an array-wrapped message
    // (SnaccROSEBase.cpp:491 takes `[` as JSON) and `_type` everywhere,
    // CHOICEs included (web-examples/SessionWithEvents.html:270 sends it).
    let sim = native_sim().await;
    let mut raw = RawConnection::open(&sim).await;
    let mut negotiate = negotiate_argument();
    negotiate["_type"] = json!("AsnNegotiateServerConnectionV2Argument");
    let answer = raw
        .call(json!([{"_type": "ROSEMessage", "invoke": {"_type": "ROSEInvoke", "invokeID": 1,
            "operationID": 1006, "operationName": "asnNegotiateServerConnectionV2", "argument": negotiate}}]))
        .await;
    assert!(
        answer["result"]["result"]["result"]["result"].is_object(),
        "{answer}"
    );
    let credential = AsnAuthBasicCredential::new(ADMIN, ADMIN_PASSWORD);
    let answer = raw
        .call(json!([{"invoke": {"_type": "ROSEInvoke", "invokeID": 2, "operationID": 1005,
            "operationName": "asnLoginV2",
            "argument": {"_type": "AsnLoginV2Argument", "auth": {"_type": "AsnLoginV2ChoiceArgument",
                "authBasic": {"_type": "AsnAuthBasicCredential", "credential": credential.credential.expose()}}}}}]))
        .await;
    // Answered bare, as the runtime writes on 7222 (SnaccROSEBase.cpp:410-420, 698),
    // with `_type` on the result in the web service form.
    let result = &answer["result"]["result"]["result"];
    assert_eq!(result["succceeded"]["u8sLoggedInUser"], ADMIN, "{answer}");
    assert_eq!(result["_type"], "AsnLoginV2Result", "{answer}");
    assert_eq!(sim.sessions_created(), 1);
}

#[tokio::test]
async fn sim_answers_login_v2_without_auth_with_the_supported_methods() {
    // ENetUC_Common_Auth.asn1 AsnLoginV2Argument: without auth the server
    // answers the methods it supports.
    let sim = native_sim().await;
    let mut raw = RawConnection::open(&sim).await;
    raw.call(invoke(1, 1006, None, negotiate_argument())).await;
    let answer = raw.call(invoke(2, 1005, None, json!({}))).await;
    assert_eq!(
        answer["result"]["result"]["result"]["supportedAuthMethods"]["authMethodsOrdered"],
        json!([1]),
        "{answer}"
    );
}

#[tokio::test]
async fn sim_accepts_admin_login_straight_after_negotiate() {
    let sim = native_sim().await;
    let mut raw = RawConnection::open(&sim).await;
    raw.call(invoke(1, 1006, None, negotiate_argument())).await;
    let answer = raw
        .call(invoke(2, 2904, Some("asnAdminLogin"), admin_login()))
        .await;
    assert_eq!(
        answer["result"]["result"]["result"]["result"], 0,
        "{answer}"
    );
    let answer = raw
        .call(invoke(
            3,
            2913,
            Some("asnAdminGetUserProfiles"),
            json!({"iActiveUsersOnly": 0, "iFilterOnlineState": 2}),
        ))
        .await;
    assert!(answer["result"].is_object(), "{answer}");
    assert_eq!(sim.admin_logins(), 1);
}

#[tokio::test]
async fn sim_closes_a_connection_whose_frame_is_garbage() {
    let sim = native_sim().await;
    let mut raw = RawConnection::open(&sim).await;
    raw.tcp.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    assert_eq!(raw.next().await, None);
}

#[tokio::test]
async fn sim_sends_a_wrong_password_the_logon_error_101() {
    let sim = native_sim().await;
    let mut raw = RawConnection::open(&sim).await;
    raw.call(invoke(1, 1006, None, negotiate_argument())).await;
    let answer = raw.call(invoke(2, 1005, None, basic_login("nope"))).await;
    assert_eq!(answer["error"]["invokedID"], 2, "{answer}");
    assert_eq!(answer["error"]["error"]["iErrorDetail"], 101, "{answer}");
    assert_eq!(sim.sessions_created(), 0);
}

// ------------------------------------------------------------ snapshots

/// Replaces what depends on the machine or the release.
fn redact_negotiate(mut message: Value) -> Value {
    let argument = &mut message["invoke"]["argument"];
    for key in [
        "u8sClientDeviceId",
        "u8sClientDeviceName",
        "u8sClientVersion",
    ] {
        assert!(argument[key].is_string(), "{key} missing");
        argument[key] = json!("<redacted>");
    }
    message
}

fn redact_login(mut message: Value) -> Value {
    let credential = &mut message["invoke"]["argument"]["auth"]["authBasic"]["credential"];
    assert!(credential.is_string());
    *credential = json!("<redacted>");
    message
}

#[tokio::test]
async fn what_the_client_sends_on_the_native_port_matches_its_snapshots() {
    let sim = native_sim().await;
    let client = UcServerClient::connect(native_settings(&sim))
        .await
        .unwrap();
    client.offline_users().await.unwrap();
    client
        .set_appointments("alice", &[ucserver_appointment()])
        .await
        .unwrap();
    drop(client);
    let messages = received(&sim);
    let names: Vec<&str> = messages
        .iter()
        .filter_map(|m| m["invoke"]["operationName"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "asnNegotiateServerConnectionV2",
            "asnLoginV2",
            "asnAdminLogin",
            "asnAdminGetUserProfiles",
            "asnAppointmentSetEntryList"
        ]
    );
    let negotiate = redact_negotiate(messages[0].clone());
    let login = redact_login(messages[1].clone());
    assert!(
        messages[2..]
            .iter()
            .all(|m| !m.to_string().contains(ADMIN_PASSWORD)
                || m["invoke"]["operationName"] == "asnAdminLogin"),
        "the password travels only in asnAdminLogin (and, base64, in asnLoginV2)"
    );
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap();
    insta::with_settings!({snapshot_path => "../../snapshots", prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!("ucserver_native_negotiate", pretty(&negotiate));
        insta::assert_snapshot!("ucserver_native_login_v2", pretty(&login));
    });
}

#[tokio::test]
async fn the_client_frames_each_message_with_j_and_seven_digits_of_length() {
    // Captures the raw bytes of the client's first message.
    let listener = TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let capture = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 4096];
        while bytes.len() < 8 || bytes.len() < 8 + header_len(&bytes) {
            let n = tcp.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the client closed early");
            bytes.extend_from_slice(&chunk[..n]);
        }
        bytes
    });
    let mut s = UcServerSettings::new(
        format!("tcp://{addr}/").parse().unwrap(),
        ADMIN,
        ADMIN_PASSWORD,
    );
    s.connect_timeout = Duration::from_secs(20);
    let client = tokio::spawn(UcServerClient::connect(s));
    let bytes = capture.await.unwrap();
    client.abort();
    let json = &bytes[8..];
    assert_eq!(&bytes[..8], format!("J{:07}", json.len()).as_bytes());
    let message: Value = serde_json::from_slice(json).unwrap();
    assert_eq!(message["invoke"]["operationID"], 1006);
}

fn header_len(bytes: &[u8]) -> usize {
    std::str::from_utf8(&bytes[1..8]).unwrap().parse().unwrap()
}

// ------------------------------------------------------------ check

#[tokio::test]
async fn check_reports_that_it_used_the_native_port() {
    let sim = native_sim().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("users.toml"), USER_LIST).unwrap();
    // Exchange is not running: check reports it and still checks the UCServer.
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"[ucserver]
url = "{uc}"
username = "{ADMIN}"
password = "{ADMIN_PASSWORD}"

[directory]
kind = "static"
file = "users.toml"

[exchange]
url = "https://127.0.0.1:9/EWS/Exchange.asmx"
username = 'CORP\svc'
password = "ews-pw"

[state]
path = "state.sqlite"
"#,
            uc = sim.native_url().unwrap(),
        ),
    )
    .unwrap();
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(crate::support::lab::BIN)
            .args(["check", "--json", "--config"])
            .arg(&config)
            .stdin(std::process::Stdio::null())
            .output(),
    )
    .await
    .expect("check finishes")
    .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)));
    let step = |name: &str| -> Value {
        report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["area"] == "ucserver" && s["name"] == name)
            .unwrap_or_else(|| panic!("no ucserver/{name} in {report:#}"))
            .clone()
    };
    assert_eq!(step("transport")["outcome"], "pass", "{report:#}");
    assert!(
        step("transport")["detail"]
            .as_str()
            .unwrap()
            .contains("native port"),
        "{report:#}"
    );
    assert!(step("session")["detail"]
        .as_str()
        .unwrap()
        .contains("asnLoginV2"));
    assert_eq!(step("users")["outcome"], "pass", "{report:#}");
    // The plain tcp:// URL is warned about.
    assert!(report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["area"] == "configuration" && s["name"] == "ucserver.url"));
    assert!(!String::from_utf8_lossy(&output.stdout).contains(ADMIN_PASSWORD));
}
