//! The simulator decodes as strictly as the ASN.1 defines the messages. These
//! tests speak raw ROSE JSON over the WebSocket transport (a session without
//! asnAdminLogin unless a test logs in itself).
#![cfg(feature = "sim")]

mod ucserver_support;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

use ews_calendar_replicator::sim::ucserver::{UcServerSim, ERROR_ACCESS_DENIED};
use ews_calendar_replicator::ucserver::transport::{MessageSink, MessageStream};
use ews_calendar_replicator::ucserver::{RoseTransport, WebSocketTransport};
use ucserver_support::*;

struct Raw {
    sink: MessageSink,
    stream: MessageStream,
}

impl Raw {
    async fn open(sim: &UcServerSim) -> Raw {
        let transport = WebSocketTransport::new(&settings(sim)).unwrap();
        let (sink, stream) = transport.open().await.unwrap();
        Raw { sink, stream }
    }

    async fn exchange(&mut self, message: Value) -> Value {
        self.sink.send(message.to_string()).await.unwrap();
        let text = self.stream.next().await.expect("an answer").unwrap();
        serde_json::from_str(&text).unwrap()
    }

    async fn admin_login(&mut self) {
        let answer = self
            .exchange(json!({"invoke": {"invokeID": 1, "operationID": 2904, "operationName": "asnAdminLogin",
                "argument": {"u8sAdminUsername": ADMIN, "adminPassword": {"u8sAdminPassword": ADMIN_PASSWORD}}}}))
            .await;
        assert_eq!(
            answer["result"]["result"]["result"]["result"],
            json!(0),
            "{answer}"
        );
    }
}

fn set_entry_list(invoke_id: i64, argument: Value) -> Value {
    json!({"invoke": {"invokeID": invoke_id, "operationID": 400,
        "operationName": "asnAppointmentSetEntryList", "argument": argument}})
}

fn entry() -> Value {
    json!({"u8sEntryID": "e1", "u8sOwner": "alice", "u8sDataSource": "EWS",
        "stStart": "2024-05-06T09:00:00Z", "stEnd": "2024-05-06T10:00:00Z", "iDuration": 60,
        "u8sSubject": "s", "u8sText": "", "bAllDay": false, "iStatus": 2, "u8sCategory": "",
        "iImportance": 1, "iSensitivity": 0, "bIsValid": true})
}

fn assert_reject(answer: &Value, invoked: Value, problem: Value, details_contain: &str) {
    let reject = &answer["reject"];
    assert_eq!(reject["invokedID"], invoked, "{answer}");
    assert_eq!(reject["reject"], problem, "{answer}");
    let details = reject["details"].as_str().unwrap_or_default();
    assert!(
        details.contains(details_contain),
        "{details:?} lacks {details_contain:?}"
    );
}

#[tokio::test]
async fn admin_operations_without_admin_login_are_refused() {
    let sim = start_sim().await;
    let mut raw = Raw::open(&sim).await;
    let answer = raw
        .exchange(json!({"invoke": {"invokeID": 5, "operationID": 2913, "operationName": "asnAdminGetUserProfiles",
            "argument": {"iActiveUsersOnly": 0, "iFilterOnlineState": 2}}}))
        .await;
    assert_eq!(answer["error"]["invokedID"], json!(5), "{answer}");
    assert_eq!(
        answer["error"]["error"]["iErrorDetail"],
        json!(ERROR_ACCESS_DENIED)
    );
    let answer = raw
        .exchange(set_entry_list(
            6,
            json!({"u8sOwner": "alice", "u8sDataSource": "EWS", "appointments": [entry()]}),
        ))
        .await;
    assert_eq!(
        answer["error"]["error"]["iErrorDetail"],
        json!(ERROR_ACCESS_DENIED),
        "{answer}"
    );
    assert_eq!(sim.total_writes(), 0);
}

#[tokio::test]
async fn an_unknown_operation_is_rejected() {
    let sim = start_sim().await;
    let mut raw = Raw::open(&sim).await;
    let answer = raw
        .exchange(json!({"invoke": {"invokeID": 7, "operationID": 401, "operationName": "asnAppointmentRemoveEntry",
            "argument": {"u8sEntryID": "x"}}}))
        .await;
    assert_reject(
        &answer,
        json!({"invokedID": 7}),
        json!({"invokeProblem": 1}),
        "asnAppointmentRemoveEntry",
    );
}

#[tokio::test]
async fn a_mismatched_operation_id_is_rejected() {
    let sim = start_sim().await;
    let mut raw = Raw::open(&sim).await;
    let answer = raw
        .exchange(json!({"invoke": {"invokeID": 8, "operationID": 401, "operationName": "asnAppointmentSetEntryList",
            "argument": {}}}))
        .await;
    assert_reject(
        &answer,
        json!({"invokedID": 8}),
        json!({"generalProblem": 1}),
        "operationID 401",
    );
}

#[tokio::test]
async fn a_missing_mandatory_member_is_rejected_by_name() {
    let sim = start_sim().await;
    let mut raw = Raw::open(&sim).await;
    raw.admin_login().await;
    let mut incomplete = entry();
    incomplete.as_object_mut().unwrap().remove("bIsValid");
    let answer = raw
        .exchange(set_entry_list(
            9,
            json!({"u8sOwner": "alice", "u8sDataSource": "EWS", "appointments": [incomplete]}),
        ))
        .await;
    assert_reject(
        &answer,
        json!({"invokedID": 9}),
        json!({"invokeProblem": 2}),
        "bIsValid",
    );
    let answer = raw
        .exchange(set_entry_list(
            10,
            json!({"u8sOwner": "alice", "appointments": []}),
        ))
        .await;
    assert_reject(
        &answer,
        json!({"invokedID": 10}),
        json!({"invokeProblem": 2}),
        "u8sDataSource",
    );
    assert_eq!(sim.total_writes(), 0);
}

#[tokio::test]
async fn a_member_of_the_wrong_type_is_rejected() {
    let sim = start_sim().await;
    let mut raw = Raw::open(&sim).await;
    raw.admin_login().await;
    let mut wrong = entry();
    wrong["iStatus"] = json!("busy");
    let answer = raw
        .exchange(set_entry_list(
            11,
            json!({"u8sOwner": "alice", "u8sDataSource": "EWS", "appointments": [wrong]}),
        ))
        .await;
    assert_reject(
        &answer,
        json!({"invokedID": 11}),
        json!({"invokeProblem": 2}),
        "invalid type",
    );
    let mut bad_time = entry();
    bad_time["stStart"] = json!("next monday");
    let answer = raw
        .exchange(set_entry_list(
            12,
            json!({"u8sOwner": "alice", "u8sDataSource": "EWS", "appointments": [bad_time]}),
        ))
        .await;
    assert_reject(
        &answer,
        json!({"invokedID": 12}),
        json!({"invokeProblem": 2}),
        "AsnSystemTime",
    );
    let mut out_of_range = entry();
    out_of_range["iStatus"] = json!(7);
    let answer = raw
        .exchange(set_entry_list(
            13,
            json!({"u8sOwner": "alice", "u8sDataSource": "EWS", "appointments": [out_of_range]}),
        ))
        .await;
    assert_reject(
        &answer,
        json!({"invokedID": 13}),
        json!({"invokeProblem": 2}),
        "iStatus 7",
    );
    assert_eq!(sim.total_writes(), 0);
}

#[tokio::test]
async fn unknown_members_of_extensible_sequences_are_accepted() {
    let sim = start_sim().await;
    let mut raw = Raw::open(&sim).await;
    raw.admin_login().await;
    let mut newer = entry();
    newer["u8sFutureMember"] = json!("from a newer client");
    let answer = raw
        .exchange(set_entry_list(
            14,
            json!({"u8sOwner": "alice", "u8sDataSource": "EWS", "appointments": [newer], "iFutureFlag": 1}),
        ))
        .await;
    assert_eq!(
        answer["result"]["result"]["result"],
        json!({"iResult": 0}),
        "{answer}"
    );
    assert_eq!(sim.write_count("alice"), 1);
}

#[tokio::test]
async fn unknown_members_of_the_rose_envelope_and_unknown_choice_alternatives_are_rejected() {
    let sim = start_sim().await;
    let mut raw = Raw::open(&sim).await;
    let answer = raw
        .exchange(
            json!({"invoke": {"invokeID": 15, "operationID": 2904, "operationName": "asnAdminLogin",
            "argument": {}, "priority": 1}}),
        )
        .await;
    assert_reject(
        &answer,
        json!({"invokednull": null}),
        json!({"generalProblem": 2}),
        "priority",
    );
    let answer = raw
        .exchange(json!({"invoke": {"invokeID": 16, "operationID": 2904, "operationName": "asnAdminLogin",
            "argument": {"u8sAdminUsername": ADMIN, "adminPassword": {"u8sAdminPasswordHash": "x"}}}}))
        .await;
    assert_reject(
        &answer,
        json!({"invokedID": 16}),
        json!({"invokeProblem": 2}),
        "u8sAdminPasswordHash",
    );
    let answer = raw.exchange(json!({"hello": 1})).await;
    assert_reject(
        &answer,
        json!({"invokednull": null}),
        json!({"generalProblem": 2}),
        "hello",
    );
}

#[tokio::test]
async fn a_keep_alive_must_be_an_event_with_its_null_member() {
    let sim = start_sim().await;
    let mut raw = Raw::open(&sim).await;
    let answer = raw
        .exchange(json!({"invoke": {"invokeID": 99999, "operationID": 1706, "operationName": "asnTransportKeepAlive",
            "argument": {}}}))
        .await;
    assert_reject(
        &answer,
        json!({"invokedID": 99999}),
        json!({"invokeProblem": 2}),
        "dummy",
    );
    let answer = raw
        .exchange(json!({"invoke": {"invokeID": 17, "operationID": 1706, "operationName": "asnTransportKeepAlive",
            "argument": {"dummy": null}}}))
        .await;
    assert_reject(
        &answer,
        json!({"invokedID": 17}),
        json!({"invokeProblem": 2}),
        "99999",
    );
    assert_eq!(sim.keep_alive_count(), 0);
}

#[tokio::test]
async fn an_invalid_online_state_filter_is_rejected() {
    let sim = start_sim().await;
    let mut raw = Raw::open(&sim).await;
    raw.admin_login().await;
    let answer = raw
        .exchange(json!({"invoke": {"invokeID": 18, "operationID": 2913, "operationName": "asnAdminGetUserProfiles",
            "argument": {"iActiveUsersOnly": 0, "iFilterOnlineState": 5}}}))
        .await;
    assert_reject(
        &answer,
        json!({"invokedID": 18}),
        json!({"invokeProblem": 2}),
        "iFilterOnlineState 5",
    );
}

/// Sends a raw HTTP/1.1 request and returns status and body.
async fn raw_http(sim: &UcServerSim, head: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(sim.addr()).await.unwrap();
    let request = format!(
        "{head}\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        sim.addr(),
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

const ADMIN_BASIC: &str = "Authorization: Basic dWNhZG1pbjpBZG0xbi1wdw=="; // ucadmin:Adm1n-pw

#[tokio::test]
async fn createsession_without_the_negotiate_body_is_refused() {
    let sim = start_sim().await;
    let (status, body) = raw_http(
        &sim,
        &format!(
            "POST /ws/client/createsession?clientappid=22 HTTP/1.1\r\n{ADMIN_BASIC}\r\nX-no401: 1"
        ),
        "",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["_type"], "AsnLogonError");
    assert_eq!(body["error"]["iErrorDetail"], 104);
    assert!(body["error"]["u8sErrorString"]
        .as_str()
        .unwrap()
        .contains("iClientProtocolVersion"));
    assert_eq!(sim.sessions_created(), 0);
}

#[tokio::test]
async fn createsession_without_credentials_answers_401_unless_no401_is_set() {
    let sim = start_sim().await;
    let negotiate = r#"{"negotiate":{"iClientProtocolVersion":70}}"#;
    let (status, _) = raw_http(
        &sim,
        "POST /ws/client/createsession?clientappid=22 HTTP/1.1",
        negotiate,
    )
    .await;
    assert_eq!(status, 401);
    let (status, body) = raw_http(
        &sim,
        "POST /ws/client/createsession?clientappid=22 HTTP/1.1\r\nX-no401: 1",
        negotiate,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\"iErrorDetail\":101"), "{body}");
    let (status, body) = raw_http(
        &sim,
        &format!(
            "POST /ws/client/createsession?clientappid=22 HTTP/1.1\r\n{ADMIN_BASIC}\r\nX-no401: 1"
        ),
        negotiate,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(serde_json::from_str::<Value>(&body).unwrap()["sessionid"].is_string());
}

#[tokio::test]
async fn a_websocket_for_an_unknown_session_is_refused() {
    let sim = start_sim().await;
    let (status, body) = raw_http(
        &sim,
        "GET /ws/client/websocket?x-ucsessionid=00FF HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "",
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("expired"), "{body}");
}
