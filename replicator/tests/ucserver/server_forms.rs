//! The client reads every form in which estos's runtime and web service send
//! messages (../shared/reference/ucserver-sdk: test names cite the file and
//! line). A scripted transport answers each invoke with exact text, so each
//! test pins one form, independent of the simulator.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use ews_calendar_replicator::ucserver::asn::{
    AsnOptionalParamValue, AsnOptionalParameters, AsnUserProfile, ADMIN_GET_USER_PROFILES,
};
use ews_calendar_replicator::ucserver::transport::{MessageSink, MessageStream};
use ews_calendar_replicator::ucserver::{RoseTransport, UcError, UcServerClient, UcServerSettings};

type Script = dyn Fn(i64, &str) -> Vec<String> + Send + Sync;

/// Answers each invoke the client sends with the texts `script` returns for
/// its invokeID and operationName.
struct Scripted(Arc<Script>);

impl RoseTransport for Scripted {
    fn open(&self) -> BoxFuture<'_, Result<(MessageSink, MessageStream), UcError>> {
        let script = self.0.clone();
        Box::pin(async move {
            let (to_client, from_server) = mpsc::unbounded_channel::<String>();
            let sink = futures_util::sink::unfold(to_client, move |to_client, text: String| {
                let script = script.clone();
                async move {
                    let invoke: Value = serde_json::from_str(&text).expect("the client sends JSON");
                    let id = invoke["invoke"]["invokeID"].as_i64().unwrap_or_default();
                    let name = invoke["invoke"]["operationName"]
                        .as_str()
                        .unwrap_or_default();
                    for answer in script(id, name) {
                        let _ = to_client.send(answer);
                    }
                    Ok::<_, UcError>(to_client)
                }
            });
            let stream = stream::unfold(from_server, |mut from_server| async move {
                let text = from_server.recv().await?;
                Some((Ok(text), from_server))
            });
            Ok((
                Box::pin(sink) as MessageSink,
                Box::pin(stream) as MessageStream,
            ))
        })
    }
}

fn settings() -> UcServerSettings {
    let mut s = UcServerSettings::new(
        "http://scripted.invalid:7224/".parse().unwrap(),
        "ucadmin",
        "pw",
    );
    s.keep_alive_interval = Duration::from_secs(3600);
    s.request_timeout = Duration::from_secs(10);
    s
}

async fn connect(
    script: impl Fn(i64, &str) -> Vec<String> + Send + Sync + 'static,
) -> UcServerClient {
    UcServerClient::connect_with(Arc::new(Scripted(Arc::new(script))), settings())
        .await
        .expect("the client logs in")
}

fn result(id: i64, value: Value) -> Value {
    json!({"result": {"invokeID": id, "result": {"resultValue": 0, "result": value}}})
}

/// A profile with every mandatory member, `_type` on it and its contact,
/// and `optionalParams` as given.
fn profile(name: &str, optional_params: Value) -> Value {
    json!({"_type": "AsnUserProfile", "iEnabled": 1, "u8sDNPath": format!("CN={name},DC=example,DC=com"),
        "u8sUserName": name, "u8sSIPURI": format!("sip:{name}@example.com"),
        "u8sobjectGUID": "6f1c2a3b-0000-4000-8000-000000000001", "u8sPhoneNumber": "",
        "u8sPhoneSecondary": "", "userMonitorLineList": [], "iMonitorLineRights": 0,
        "u8sSAMAccountName": name, "u8sPassword": "", "u8sCallRecordingNumber": "",
        "u8sMailboxNumber": "", "u8sHomeServer": "", "iUserStaticRights": 0,
        "userDynamicRights": [],
        "asnUserContact": {"_type": "AsnNetDatabaseContact", "u8sDisplayName": name, "u8sEMail": format!("{name}@example.com")},
        "asnUserPropertyBag": {"_type": "AsnUserPropertyBag", "asnProperties": []},
        "optionalParams": optional_params})
}

/// The web service's form: a one-element array, `_type` on results, and
/// jsoncpp's FastWriter newline at the end (cpp-runtime/SnaccROSEBase.cpp:419).
fn web_service(message: Value) -> String {
    format!("[{message}]\n")
}

fn login_ok(id: i64) -> Value {
    result(id, json!({"_type": "AsnAdminLoginResult", "result": 0}))
}

#[tokio::test]
async fn array_wrapped_answers_with_type_members_are_read_session_with_events_124() {
    let client = connect(|id, name| match name {
        "asnAdminLogin" => vec![web_service(login_ok(id))],
        _ => vec![web_service(result(
            id,
            json!({"_type": "AsnAdminGetUserProfilesResult", "userProfiles": [
                profile("alice", json!({"SourceDB": "ActiveDirectory", "primaryGroupID": 513}))]}),
        ))],
    })
    .await;
    let users = client.all_users().await.unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].user_name, "alice");
    assert_eq!(users[0].email.as_deref(), Some("alice@example.com"));
}

#[tokio::test]
async fn bare_answers_are_read_as_well() {
    let client = connect(|id, name| match name {
        "asnAdminLogin" => vec![result(id, json!({"result": 0})).to_string()],
        _ => vec![result(id, json!({"userProfiles": [profile("bob", json!([]))]})).to_string()],
    })
    .await;
    assert_eq!(client.all_users().await.unwrap()[0].user_name, "bob");
}

#[tokio::test]
async fn optional_params_in_both_forms_and_every_value_form_are_read_asn_optionalparam_58() {
    // The object form with every value the runtime reads (asn-optionalparam.cpp:492-548)
    // and the array form, old and with bare values.
    let forms = [
        json!({"ADDisabled": false, "SourceDB": "ActiveDirectory", "primaryGroupID": 513,
            "objectSID": {"binarydata": "AQUAAAAAAAUVAAAA"}, "SourceDBID": {"stringdata": "7"},
            "Weight": {"_type": "AsnOptionalParamChoice", "integerdata": 4}}),
        json!([{"key": "SourceDB", "value": {"stringdata": "ActiveDirectory"}},
            {"key": "primaryGroupID", "value": {"integerdata": 513}},
            {"key": "ADDisabled", "value": 0}, {"key": "SourceDBID", "value": "7"}]),
    ];
    for form in forms {
        let listed = profile("carol", form.clone());
        let client = connect(move |id, name| match name {
            "asnAdminLogin" => vec![web_service(login_ok(id))],
            _ => vec![web_service(result(
                id,
                json!({"userProfiles": [listed.clone()]}),
            ))],
        })
        .await;
        assert_eq!(
            client.all_users().await.unwrap()[0].user_name,
            "carol",
            "{form}"
        );
        let raw: ews_calendar_replicator::ucserver::asn::AsnAdminGetUserProfilesResult = client
            .invoke(
                ADMIN_GET_USER_PROFILES,
                &json!({"iActiveUsersOnly": 0, "iFilterOnlineState": 0}),
            )
            .await
            .unwrap();
        let params: &AsnOptionalParameters = raw.user_profiles[0].optional_params.as_ref().unwrap();
        assert_eq!(
            params.get("SourceDB"),
            Some(&AsnOptionalParamValue::String("ActiveDirectory".into()))
        );
        assert_eq!(
            params.get("primaryGroupID"),
            Some(&AsnOptionalParamValue::Integer(513))
        );
        assert_eq!(
            params.get("ADDisabled"),
            Some(&AsnOptionalParamValue::Integer(0))
        );
        assert_eq!(
            params.get("SourceDBID"),
            Some(&AsnOptionalParamValue::String("7".into()))
        );
    }
}

#[tokio::test]
async fn the_object_form_reads_binary_and_choice_values_with_type_members() {
    let value: AsnUserProfile = serde_json::from_value(profile(
        "dave",
        json!({"objectSID": {"binarydata": "AQUA"}, "Weight": {"_type": "X", "integerdata": 4}, "Ratio": 2.0}),
    ))
    .unwrap();
    let params = value.optional_params.unwrap();
    assert_eq!(
        params.get("objectSID"),
        Some(&AsnOptionalParamValue::Binary("AQUA".into()))
    );
    assert_eq!(
        params.get("Weight"),
        Some(&AsnOptionalParamValue::Integer(4))
    );
    assert_eq!(
        params.get("Ratio"),
        Some(&AsnOptionalParamValue::Integer(2))
    );
}

#[tokio::test]
async fn errors_and_rejects_with_type_members_in_an_array_become_typed_errors() {
    let client = connect(|id, name| match name {
        "asnAdminLogin" => vec![web_service(login_ok(id))],
        "asnAdminGetUserProfiles" => vec![web_service(json!({"error": {"invokedID": id, "error_value": 0,
            "error": {"_type": "AsnRequestError", "iErrorDetail": 2, "u8sErrorString": "access denied"}}}))],
        _ => vec![web_service(json!({"reject": {"_type": "ROSEReject",
            "invokedID": {"_type": "ROSERejectChoice", "invokedID": id},
            "reject": {"_type": "RejectProblem", "invokeProblem": 2}, "details": "mistypedArgument"}}))],
    })
    .await;
    match client.all_users().await {
        Err(UcError::Request {
            detail: 2, message, ..
        }) => assert_eq!(message, "access denied"),
        other => panic!("expected the request error, got {other:?}"),
    }
    match client.set_appointments("alice", &[]).await {
        Err(UcError::Rejected { problem, .. }) => {
            assert!(problem.contains("mistypedArgument"), "{problem}")
        }
        other => panic!("expected the reject, got {other:?}"),
    }
}

#[tokio::test]
async fn events_in_an_array_with_type_members_are_dispatched_change_presence_188() {
    let client = connect(|id, name| match name {
        "asnAdminLogin" => vec![web_service(login_ok(id))],
        _ => vec![
            web_service(json!({"invoke": {"_type": "ROSEInvoke", "invokeID": 99999, "operationID": 0,
                "operationName": "asnUpdatePresence",
                "argument": {"_type": "AsnUpdatePresenceArgument", "u8sContactId": "sip:a@example.com"}}})),
            web_service(result(id, json!({"_type": "AsnAdminGetUserProfilesResult", "userProfiles": []}))),
        ],
    })
    .await;
    let mut events = client.events();
    client.all_users().await.unwrap();
    let event = events.recv().await.unwrap();
    assert_eq!(event.operation_name, "asnUpdatePresence");
    assert_eq!(event.argument["u8sContactId"], "sip:a@example.com");
}
