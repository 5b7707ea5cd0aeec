//! The simulator reads and answers ROSE as estos's C++ runtime does
//! (../shared/reference/ucserver-sdk/cpp-runtime; test names cite the file
//! and line each behaviour follows). These tests speak raw ROSE JSON over a
//! logged-on channel (a session without asnAdminLogin unless a test logs in
//! itself); the ROSE rules run once per transport ([`for_each_transport!`]
//! at the end), the web service's HTTP routes on the web service only.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

use crate::support::ucserver::*;
use ews_calendar_replicator::sim::ucserver::{UcServerSim, UcServerSimConfig, ERROR_ACCESS_DENIED};
use ews_calendar_replicator::ucserver::transport::{MessageSink, MessageStream};
use ews_calendar_replicator::ucserver::{NativeTransport, RoseTransport, WebSocketTransport};

struct Raw {
    sink: MessageSink,
    stream: MessageStream,
    /// Whether answers come in the web service's one-element array.
    wrapped: bool,
}

impl Raw {
    /// A channel as the transport opens it: a createsession session, or a
    /// native connection after negotiate and asnLoginV2.
    async fn open(case: Case, sim: &UcServerSim) -> Raw {
        let settings = settings_for(case, sim);
        let (sink, stream) = match case.transport {
            Transport::WebService => WebSocketTransport::new(&settings).unwrap().open().await,
            Transport::Native => NativeTransport::new(&settings).unwrap().open().await,
        }
        .unwrap();
        Raw {
            sink,
            stream,
            wrapped: case.transport == Transport::WebService
                && case.form == MessageForm::WebService,
        }
    }

    /// Sends `message` and returns the next message, taken out of the web
    /// service's one-element array (the native port sends it bare).
    async fn exchange(&mut self, message: Value) -> Value {
        self.send_text(&message.to_string()).await;
        self.next().await
    }

    async fn send_text(&mut self, text: &str) {
        self.sink.send(text.to_owned()).await.unwrap();
    }

    async fn next_text(&mut self) -> String {
        self.stream.next().await.expect("an answer").unwrap()
    }

    async fn next(&mut self) -> Value {
        let text = self.next_text().await;
        match serde_json::from_str(&text).unwrap() {
            Value::Array(mut items) if self.wrapped => {
                assert_eq!(items.len(), 1, "{text}");
                items.remove(0)
            }
            other if self.wrapped => {
                panic!("the web service form wraps every message in an array: {other}")
            }
            // SnaccROSEBase.cpp:410-420, 698: the runtime writes bare on 7222.
            other => {
                assert!(
                    other.is_object(),
                    "the native port sends bare messages: {text}"
                );
                other
            }
        }
    }

    /// Asserts that what was sent since the last answer got none: a probe
    /// sent now is answered first.
    async fn assert_no_answer(&mut self, probe_id: i64) {
        let answer = self
            .exchange(json!({"invoke": {"invokeID": probe_id, "operationID": 2913,
                "operationName": "asnAdminGetUserProfiles",
                "argument": {"iActiveUsersOnly": 0, "iFilterOnlineState": 0}}}))
            .await;
        let answered = answer
            .get("error")
            .and_then(|e| e.get("invokedID"))
            .or_else(|| answer.get("result").and_then(|r| r.get("invokeID")));
        assert_eq!(
            answered,
            Some(&json!(probe_id)),
            "an answer came for an earlier message: {answer}"
        );
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

async fn admin_operations_without_admin_login_are_refused(case: Case) {
    let sim = start_sim_for(case).await;
    let mut raw = Raw::open(case, &sim).await;
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

async fn an_unknown_operation_is_unrecognised_operation_snacc_rose_base_794(case: Case) {
    let sim = start_sim_for(case).await;
    let mut raw = Raw::open(case, &sim).await;
    let answer = raw
        .exchange(json!({"invoke": {"invokeID": 7, "operationID": 401, "operationName": "asnAppointmentRemoveEntry",
            "argument": {"u8sEntryID": "x"}}}))
        .await;
    assert_reject(
        &answer,
        json!({"invokedID": 7}),
        json!({"invokeProblem": 1}),
        "unrecognisedOperation",
    );
}

async fn the_operation_id_is_dispatched_on_and_the_name_not_read_snacc_rose_base_770(case: Case) {
    let sim = start_sim_for(case).await;
    let mut raw = Raw::open(case, &sim).await;
    // 401 is no operation of the simulator, whatever the name says.
    let answer = raw
        .exchange(json!({"invoke": {"invokeID": 8, "operationID": 401, "operationName": "asnAppointmentSetEntryList",
            "argument": {}}}))
        .await;
    assert_reject(
        &answer,
        json!({"invokedID": 8}),
        json!({"invokeProblem": 1}),
        "unrecognisedOperation",
    );
    // 2904 is asnAdminLogin, whatever the name says.
    let answer = raw
        .exchange(json!({"invoke": {"invokeID": 9, "operationID": 2904, "operationName": "asnAppointmentSetEntryList",
            "argument": {"u8sAdminUsername": ADMIN, "adminPassword": {"u8sAdminPassword": ADMIN_PASSWORD}}}}))
        .await;
    assert_eq!(
        answer["result"]["result"]["result"]["result"],
        json!(0),
        "{answer}"
    );
}

async fn operation_id_0_is_looked_up_from_the_name_as_estos_examples_send_it_snacc_rose_base_770(
    case: Case,
) {
    // web-examples/SessionWithEvents.html:259 sends "operationID": 0.
    let sim = start_sim_for(case).await;
    let mut raw = Raw::open(case, &sim).await;
    let answer = raw
        .exchange(json!({"invoke": {"invokeID": 2, "operationID": 0, "operationName": "asnAdminLogin",
            "argument": {"u8sAdminUsername": ADMIN, "adminPassword": {"u8sAdminPassword": ADMIN_PASSWORD}}}}))
        .await;
    assert_eq!(answer["result"]["invokeID"], json!(2), "{answer}");
    assert_eq!(
        answer["result"]["result"]["result"]["result"],
        json!(0),
        "{answer}"
    );
    let answer = raw
        .exchange(json!({"invoke": {"invokeID": 3, "operationID": 0, "operationName": "asnNoSuchOperation",
            "argument": {}}}))
        .await;
    assert_reject(
        &answer,
        json!({"invokedID": 3}),
        json!({"invokeProblem": 1}),
        "unrecognisedOperation",
    );
}

async fn an_operation_id_without_a_name_is_dispatched_on_the_id_snacc_rose_base_611(case: Case) {
    let sim = start_sim_for(case).await;
    let mut raw = Raw::open(case, &sim).await;
    let answer = raw
        .exchange(json!({"invoke": {"invokeID": 4, "operationID": 2904,
            "argument": {"u8sAdminUsername": ADMIN, "adminPassword": {"u8sAdminPassword": ADMIN_PASSWORD}}}}))
        .await;
    assert_eq!(
        answer["result"]["result"]["result"]["result"],
        json!(0),
        "{answer}"
    );
    assert_eq!(sim.admin_logins(), 1);
}

async fn an_invoke_with_neither_operation_id_nor_name_is_dropped_unanswered_snacc_rose_base_611(
    case: Case,
) {
    let sim = start_sim_for(case).await;
    let mut raw = Raw::open(case, &sim).await;
    raw.send_text(
        &json!({"invoke": {"invokeID": 5, "operationID": 0, "argument": {}}}).to_string(),
    )
    .await;
    raw.assert_no_answer(6).await;
}

async fn a_missing_mandatory_member_is_rejected_by_name(case: Case) {
    let sim = start_sim_for(case).await;
    let mut raw = Raw::open(case, &sim).await;
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

async fn a_member_of_the_wrong_type_is_rejected(case: Case) {
    let sim = start_sim_for(case).await;
    let mut raw = Raw::open(case, &sim).await;
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
    bad_time["stStart"] = json!({"day": "monday"});
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

async fn unknown_members_of_extensible_sequences_are_accepted(case: Case) {
    let sim = start_sim_for(case).await;
    let mut raw = Raw::open(case, &sim).await;
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
        answer["result"]["result"]["result"]["iResult"],
        json!(0),
        "{answer}"
    );
    assert_eq!(sim.write_count("alice"), 1);
}

async fn type_and_unknown_members_are_ignored_everywhere_in_what_the_runtime_reads(case: Case) {
    // estos's decoders skip members they do not know; estos's encoder adds
    // `_type` (web-examples/SessionWithEvents.html:270).
    let sim = start_sim_for(case).await;
    let mut raw = Raw::open(case, &sim).await;
    let answer = raw
        .exchange(json!({"_type": "ROSEMessage", "invoke": {"_type": "ROSEInvoke", "invokeID": 15,
            "operationID": 2904, "operationName": "asnAdminLogin", "priority": 1,
            "argument": {"_type": "AsnAdminLoginArgument", "u8sAdminUsername": ADMIN,
                "adminPassword": {"_type": "AsnAdminLoginArgumentChoice", "u8sAdminPassword": ADMIN_PASSWORD}}}}))
        .await;
    assert_eq!(
        answer["result"]["result"]["result"]["result"],
        json!(0),
        "{answer}"
    );
    let mut typed = entry();
    typed["_type"] = json!("AsnAppointmentEntry");
    let answer = raw
        .exchange(set_entry_list(
            16,
            json!({"_type": "AsnAppointmentSetEntryListArgument", "u8sOwner": "alice",
                "u8sDataSource": "EWS", "appointments": [typed]}),
        ))
        .await;
    assert_eq!(
        answer["result"]["result"]["result"]["iResult"],
        json!(0),
        "{answer}"
    );
    assert_eq!(sim.write_count("alice"), 1);
}

async fn a_choice_without_a_known_alternative_is_a_mistyped_argument_with_the_invoke_id(
    case: Case,
) {
    let sim = start_sim_for(case).await;
    let mut raw = Raw::open(case, &sim).await;
    let answer = raw
        .exchange(json!({"invoke": {"invokeID": 16, "operationID": 2904, "operationName": "asnAdminLogin",
            "argument": {"u8sAdminUsername": ADMIN, "adminPassword": {"u8sAdminPasswordHash": "x"}}}}))
        .await;
    assert_reject(
        &answer,
        json!({"invokedID": 16}),
        json!({"invokeProblem": 2}),
        "adminPassword",
    );
}

async fn an_undecodable_invoke_is_invoke_problem_mistyped_argument_with_its_id_snacc_rose_base_527(
    case: Case,
) {
    let sim = start_sim_for(case).await;
    let mut raw = Raw::open(case, &sim).await;
    // operationID must be an INTEGER.
    let answer = raw
        .exchange(json!({"invoke": {"invokeID": 21, "operationID": "2904", "operationName": "asnAdminLogin",
            "argument": {}}}))
        .await;
    assert_reject(
        &answer,
        json!({"invokedID": 21}),
        json!({"invokeProblem": 2}),
        "mistypedArgument",
    );
    // Without a readable invokeID the reject carries invokednull.
    let answer = raw
        .exchange(json!({"invoke": {"operationID": 2904, "operationName": "asnAdminLogin"}}))
        .await;
    assert_reject(
        &answer,
        json!({"invokednull": null}),
        json!({"invokeProblem": 2}),
        "mistypedArgument",
    );
}

async fn text_that_is_not_json_is_rejected_with_invokednull_and_mistyped_argument_snacc_rose_base_570(
    case: Case,
) {
    let sim = start_sim_for(case).await;
    let mut raw = Raw::open(case, &sim).await;
    raw.send_text("{\"invoke\": {\"invokeID\": 3,").await;
    let answer = raw.next().await;
    assert_reject(
        &answer,
        json!({"invokednull": null}),
        json!({"invokeProblem": 2}),
        "not JSON",
    );
}

async fn json_that_is_no_rose_message_and_no_invoke_is_dropped_unanswered_snacc_rose_base_527(
    case: Case,
) {
    let sim = start_sim_for(case).await;
    let mut raw = Raw::open(case, &sim).await;
    raw.send_text(&json!({"hello": 1}).to_string()).await;
    raw.assert_no_answer(22).await;
}

async fn an_invoke_wrapped_in_an_array_is_read_snacc_rose_base_491(case: Case) {
    let sim = start_sim_for(case).await;
    let mut raw = Raw::open(case, &sim).await;
    let answer = raw
        .exchange(json!([{"invoke": {"invokeID": 23, "operationID": 2904, "operationName": "asnAdminLogin",
            "argument": {"u8sAdminUsername": ADMIN, "adminPassword": {"u8sAdminPassword": ADMIN_PASSWORD}}}}]))
        .await;
    assert_eq!(
        answer["result"]["result"]["result"]["result"],
        json!(0),
        "{answer}"
    );
}

async fn events_are_never_answered_even_malformed_ones_snacc_rose_base_732(case: Case) {
    let sim = start_sim_for(case).await;
    let mut raw = Raw::open(case, &sim).await;
    // An unknown operation as an event.
    raw.send_text(
        &json!({"invoke": {"invokeID": 99999, "operationID": 401,
        "operationName": "asnAppointmentRemoveEntry", "argument": {}}})
        .to_string(),
    )
    .await;
    // A keep-alive event whose argument does not decode.
    raw.send_text(
        &json!({"invoke": {"invokeID": 99999, "operationID": 1706,
        "operationName": "asnTransportKeepAlive", "argument": {"dummy": 1}}})
        .to_string(),
    )
    .await;
    // A result-bearing operation sent as an event, without its argument.
    raw.send_text(
        &json!({"invoke": {"invokeID": 99999, "operationID": 2904,
        "operationName": "asnAdminLogin"}})
        .to_string(),
    )
    .await;
    raw.assert_no_answer(24).await;
    assert_eq!(sim.keep_alive_count(), 0);
}

async fn optional_params_in_the_object_form_and_the_array_form_are_read_asn_optionalparam_58(
    case: Case,
) {
    let sim = start_sim_for(case).await;
    let mut raw = Raw::open(case, &sim).await;
    raw.admin_login().await;
    for (id, params) in [
        (25, json!({"Location": "Room 1"})),
        (
            26,
            json!([{"key": "Location", "value": {"stringdata": "Room 1"}}]),
        ),
        // asn-optionalparam.cpp:534-541: a bare string value in the array form.
        (27, json!([{"key": "Location", "value": "Room 1"}])),
    ] {
        let mut with_location = entry();
        with_location["optionalParams"] = params;
        let answer = raw
            .exchange(set_entry_list(
                id,
                json!({"u8sOwner": "alice", "u8sDataSource": "EWS", "appointments": [with_location]}),
            ))
            .await;
        assert_eq!(
            answer["result"]["result"]["result"]["iResult"],
            json!(0),
            "{answer}"
        );
        assert_eq!(
            sim.appointments("alice").unwrap()[0].location(),
            Some("Room 1"),
            "{id}"
        );
    }
}

async fn times_are_read_as_the_runtime_reads_them_asn_systemtime_94(case: Case) {
    let sim = start_sim_for(case).await;
    let mut raw = Raw::open(case, &sim).await;
    raw.admin_login().await;
    let mut entry = entry();
    // The offset is not applied (the scan stops before it), a variant time
    // number is days since 1899-12-30, a text too short to scan is 0.
    entry["stStart"] = json!("2024-05-06T09:00:00+02:00");
    entry["stEnd"] = json!(45418.5);
    let answer = raw
        .exchange(set_entry_list(
            28,
            json!({"u8sOwner": "alice", "u8sDataSource": "EWS", "appointments": [entry.clone()]}),
        ))
        .await;
    assert_eq!(
        answer["result"]["result"]["result"]["iResult"],
        json!(0),
        "{answer}"
    );
    let stored = &sim.appointments("alice").unwrap()[0];
    assert_eq!(stored.start.to_rfc3339(), "2024-05-06T09:00:00+00:00");
    assert_eq!(stored.end.to_rfc3339(), "2024-05-06T12:00:00+00:00");
    entry["stStart"] = json!("next monday");
    raw.exchange(set_entry_list(
        29,
        json!({"u8sOwner": "alice", "u8sDataSource": "EWS", "appointments": [entry]}),
    ))
    .await;
    let stored = &sim.appointments("alice").unwrap()[0];
    assert_eq!(stored.start.to_rfc3339(), "1899-12-30T00:00:00+00:00");
}

async fn answers_come_in_the_web_service_form_with_type_members(case: Case) {
    let sim = start_sim_for(case).await;
    let mut raw = Raw::open(case, &sim).await;
    raw.send_text(&json!({"invoke": {"invokeID": 1, "operationID": 2904, "operationName": "asnAdminLogin",
        "argument": {"u8sAdminUsername": ADMIN, "adminPassword": {"u8sAdminPassword": ADMIN_PASSWORD}}}}).to_string())
        .await;
    let text = raw.next_text().await;
    // In an array on the WebSocket; bare on the native port
    // (SnaccROSEBase.cpp:410-420, 698).
    let answer: Value = match case.transport {
        Transport::WebService => {
            assert!(text.starts_with("[{"), "{text}");
            serde_json::from_str::<Value>(&text).unwrap()[0].clone()
        }
        Transport::Native => {
            assert!(text.starts_with('{'), "{text}");
            serde_json::from_str(&text).unwrap()
        }
    };
    assert_eq!(
        answer["result"]["result"]["result"]["_type"], "AsnAdminLoginResult",
        "{answer}"
    );
    let answer = raw
        .exchange(json!({"invoke": {"invokeID": 2, "operationID": 2913, "operationName": "asnAdminGetUserProfiles",
            "argument": {"iActiveUsersOnly": 0, "iFilterOnlineState": 0}}}))
        .await;
    let result = &answer["result"]["result"]["result"];
    assert_eq!(result["_type"], "AsnAdminGetUserProfilesResult", "{answer}");
    let profile = &result["userProfiles"][0];
    assert_eq!(profile["_type"], "AsnUserProfile", "{profile}");
    // The object form of optionalParams with keys ENetUC_Admin.asn1:97-103 lists.
    let params = profile["optionalParams"].as_object().expect("object form");
    assert_eq!(params["SourceDB"], "ActiveDirectory");
    assert_eq!(params["primaryGroupID"], 513);
    assert!(params["objectSID"]
        .as_str()
        .unwrap()
        .starts_with("S-1-5-21-"));
}

#[tokio::test]
async fn the_plain_form_sends_bare_messages_without_type_and_array_form_optional_params() {
    let mut config = UcServerSimConfig::new(users());
    config.form = MessageForm::Plain;
    let sim = start_sim_with(config).await;
    let mut raw = Raw::open(WEB_SERVICE_PLAIN_FORM, &sim).await;
    raw.send_text(&json!({"invoke": {"invokeID": 1, "operationID": 2904, "operationName": "asnAdminLogin",
        "argument": {"u8sAdminUsername": ADMIN, "adminPassword": {"u8sAdminPassword": ADMIN_PASSWORD}}}}).to_string())
        .await;
    let answer: Value = serde_json::from_str(&raw.next_text().await).unwrap();
    assert_eq!(
        answer["result"]["result"]["result"],
        json!({"result": 0}),
        "{answer}"
    );
    raw.send_text(&json!({"invoke": {"invokeID": 2, "operationID": 2913, "operationName": "asnAdminGetUserProfiles",
        "argument": {"iActiveUsersOnly": 0, "iFilterOnlineState": 0}}}).to_string())
        .await;
    let answer: Value = serde_json::from_str(&raw.next_text().await).unwrap();
    let profile = &answer["result"]["result"]["result"]["userProfiles"][0];
    assert!(profile.get("_type").is_none(), "{profile}");
    assert_eq!(
        profile["optionalParams"]
            .as_array()
            .expect("array form")
            .iter()
            .find(|p| p["key"] == "SourceDB")
            .unwrap()["value"],
        json!({"stringdata": "ActiveDirectory"})
    );
}

async fn a_keep_alive_must_be_an_event_and_a_malformed_one_is_not_answered(case: Case) {
    let sim = start_sim_for(case).await;
    let mut raw = Raw::open(case, &sim).await;
    raw.send_text(&json!({"invoke": {"invokeID": 99999, "operationID": 1706, "operationName": "asnTransportKeepAlive",
        "argument": {}}}).to_string())
        .await;
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

async fn an_invalid_online_state_filter_is_rejected(case: Case) {
    let sim = start_sim_for(case).await;
    let mut raw = Raw::open(case, &sim).await;
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

crate::for_each_transport!(
    admin_operations_without_admin_login_are_refused,
    an_unknown_operation_is_unrecognised_operation_snacc_rose_base_794,
    the_operation_id_is_dispatched_on_and_the_name_not_read_snacc_rose_base_770,
    operation_id_0_is_looked_up_from_the_name_as_estos_examples_send_it_snacc_rose_base_770,
    an_operation_id_without_a_name_is_dispatched_on_the_id_snacc_rose_base_611,
    an_invoke_with_neither_operation_id_nor_name_is_dropped_unanswered_snacc_rose_base_611,
    a_missing_mandatory_member_is_rejected_by_name,
    a_member_of_the_wrong_type_is_rejected,
    unknown_members_of_extensible_sequences_are_accepted,
    type_and_unknown_members_are_ignored_everywhere_in_what_the_runtime_reads,
    a_choice_without_a_known_alternative_is_a_mistyped_argument_with_the_invoke_id,
    an_undecodable_invoke_is_invoke_problem_mistyped_argument_with_its_id_snacc_rose_base_527,
    json_that_is_no_rose_message_and_no_invoke_is_dropped_unanswered_snacc_rose_base_527,
    an_invoke_wrapped_in_an_array_is_read_snacc_rose_base_491,
    events_are_never_answered_even_malformed_ones_snacc_rose_base_732,
    optional_params_in_the_object_form_and_the_array_form_are_read_asn_optionalparam_58,
    times_are_read_as_the_runtime_reads_them_asn_systemtime_94,
    answers_come_in_the_web_service_form_with_type_members,
    text_that_is_not_json_is_rejected_with_invokednull_and_mistyped_argument_snacc_rose_base_570,
    a_keep_alive_must_be_an_event_and_a_malformed_one_is_not_answered,
    an_invalid_online_state_filter_is_rejected,
);
