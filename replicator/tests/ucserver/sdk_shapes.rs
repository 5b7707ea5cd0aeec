//! Compares the field names and shapes of what the client sends and what the
//! simulator answers with the estos SDK's OpenAPI descriptions
//! (../shared/reference/ucserver-sdk/examples, present in CI). Every member
//! must be one the SDK names, every required member must be there, and every
//! value must have the SDK's type.
//!
//! The OpenAPI files flatten a CHOICE to `oneOf` of its alternatives' types,
//! losing the alternative names (`adminPassword` is `oneOf [string, string]`
//! for plain and crypted passwords); the estos JSON encoding names the chosen
//! alternative (`{"u8sAdminPassword": "..."}`), so a `...Choice` schema is
//! checked as an object with one member whose value has one of the types.
//!
//! Two things the OpenAPI files do not describe are taken from estos's
//! runtime instead: `_type` members (added by estos's encoder, ignored by
//! its decoders) are skipped, and `AsnOptionalParameters` may be the object
//! form the runtime writes (cpp-runtime/asn-optionalparam.cpp:25-56).

use std::collections::HashMap;
use std::path::PathBuf;

use crate::support::ucserver::*;
use serde_json::Value;

struct Sdk {
    dir: PathBuf,
    files: HashMap<String, Option<Value>>,
}

impl Sdk {
    fn load() -> Option<Sdk> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/reference/ucserver-sdk/examples");
        if !dir.is_dir() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must provide the SDK examples at {}",
                dir.display()
            );
            eprintln!(
                "SDK examples not found at {}; shape comparison skipped",
                dir.display()
            );
            return None;
        }
        Some(Sdk {
            dir,
            files: HashMap::new(),
        })
    }

    fn file(&mut self, name: &str) -> Option<Value> {
        let dir = self.dir.clone();
        self.files
            .entry(name.to_owned())
            .or_insert_with(|| {
                let text = std::fs::read_to_string(dir.join(name)).ok()?;
                Some(serde_json::from_str(&text).expect("SDK file is JSON"))
            })
            .clone()
    }

    /// The request (`"requestBody"`) or 200-response schema of `operation`.
    fn operation_schema(&mut self, file: &str, operation: &str, request: bool) -> Value {
        let doc = self.file(file).unwrap_or_else(|| panic!("{file} missing"));
        let post = &doc["paths"][format!("/{operation}")]["post"];
        let schema = if request {
            &post["requestBody"]["content"]["application/json"]["schema"]
        } else {
            &post["responses"]["200"]["content"]["application/json"]["schema"]
        };
        assert!(schema.is_object(), "{file} describes no {operation}");
        schema.clone()
    }

    fn check(
        &mut self,
        value: &Value,
        schema: &Value,
        file: &str,
        path: &str,
        name: &str,
        errors: &mut Vec<String>,
    ) {
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let (target_file, pointer) = reference.split_once('#').expect("ref has #");
            let target_file = if target_file.is_empty() {
                file
            } else {
                target_file
            }
            .to_owned();
            let type_name = pointer.rsplit('/').next().unwrap_or_default().to_owned();
            let Some(doc) = self.file(&target_file) else {
                // The examples hold no file for this module: nothing to
                // compare unless there is content.
                if value.as_array().is_some_and(Vec::is_empty) {
                    return;
                }
                errors.push(format!(
                    "{path}: cannot check {type_name}, {target_file} is missing"
                ));
                return;
            };
            let target = doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("{reference} missing"))
                .clone();
            return self.check(value, &target, &target_file, path, &type_name, errors);
        }
        if name == "AsnOptionalParameters" {
            if let Some(object) = value.as_object() {
                // asn-optionalparam.cpp:455-476: a string or integer bare,
                // binary data as {"binarydata": base64}.
                for (key, param) in object {
                    let fits = param.is_string()
                        || param.is_i64()
                        || param
                            .as_object()
                            .is_some_and(|o| o.len() == 1 && o["binarydata"].is_string());
                    if !fits {
                        errors.push(format!(
                            "{path}.{key}: {param} is no AsnOptionalParam value"
                        ));
                    }
                }
                return;
            }
        }
        if let Some(alternatives) = schema.get("oneOf").and_then(Value::as_array) {
            if name.ends_with("Choice") {
                let Some((_, inner)) = value
                    .as_object()
                    .filter(|o| o.len() == 1)
                    .and_then(|o| o.iter().next())
                else {
                    errors.push(format!(
                        "{path}: CHOICE {name} must be an object with one alternative, got {value}"
                    ));
                    return;
                };
                let fits = alternatives.iter().any(|alt| {
                    let mut e = Vec::new();
                    self.check(inner, alt, file, path, "", &mut e);
                    e.is_empty()
                });
                if !fits {
                    errors.push(format!("{path}: {inner} fits no alternative of {name}"));
                }
                return;
            }
            // An ENUMERATED: integer constants.
            let allowed: Vec<&Value> = alternatives.iter().filter_map(|a| a.get("const")).collect();
            if !allowed.contains(&value) {
                errors.push(format!("{path}: {value} is not one of {name} {allowed:?}"));
            }
            return;
        }
        let ok = match schema.get("type").and_then(Value::as_str) {
            Some("object") => {
                let Some(object) = value.as_object() else {
                    errors.push(format!("{path}: {name} must be an object, got {value}"));
                    return;
                };
                let properties = schema["properties"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                for required in schema["required"].as_array().into_iter().flatten() {
                    let key = required.as_str().unwrap();
                    if !object.contains_key(key) {
                        errors.push(format!("{path}: {name} lacks required member {key}"));
                    }
                }
                for (key, member) in object.iter().filter(|(key, _)| *key != "_type") {
                    match properties.get(key) {
                        Some(member_schema) => self.check(
                            member,
                            member_schema,
                            file,
                            &format!("{path}.{key}"),
                            key,
                            errors,
                        ),
                        None => {
                            errors.push(format!("{path}: {name} has no member {key} in the SDK"))
                        }
                    }
                }
                true
            }
            Some("array") => {
                let Some(items) = value.as_array() else {
                    errors.push(format!("{path}: {name} must be an array, got {value}"));
                    return;
                };
                for (i, item) in items.iter().enumerate() {
                    self.check(
                        item,
                        &schema["items"],
                        file,
                        &format!("{path}[{i}]"),
                        name,
                        errors,
                    );
                }
                true
            }
            Some("string") => {
                match (value.as_str(), schema.get("format").and_then(Value::as_str)) {
                    (Some(text), Some("date-time")) => {
                        chrono::DateTime::parse_from_rfc3339(text).is_ok()
                    }
                    (Some(_), _) => true,
                    (None, _) => false,
                }
            }
            Some("integer") => value.is_i64(),
            Some("boolean") => value.is_boolean(),
            None if schema.get("nullable").is_some() => value.is_null(),
            other => panic!("{path}: schema type {other:?} not handled: {schema}"),
        };
        if !ok {
            errors.push(format!("{path}: {value} does not fit {name} {schema}"));
        }
    }
}

fn module_of(operation: &str) -> &'static str {
    match operation {
        "asnAdminLogin" | "asnAdminGetUserProfiles" => "ENetUC_Admin.json",
        "asnAppointmentSetEntryList" => "ENetUC_Appointments.json",
        "asnTransportKeepAlive" => "ENetUC_Transport.json",
        other => panic!("unexpected operation {other}"),
    }
}

#[tokio::test]
async fn client_arguments_and_simulator_results_have_the_sdk_shapes() {
    let Some(mut sdk) = Sdk::load() else { return };
    let (sim, messages) = record_client_session(WEB_SERVICE_WEB_FORM).await;
    let mut errors = Vec::new();
    let mut checked = std::collections::BTreeSet::new();
    for message in &messages {
        let invoke = &message["invoke"];
        let operation = invoke["operationName"].as_str().expect("operationName");
        let schema = sdk.operation_schema(module_of(operation), operation, true);
        sdk.check(
            &invoke["argument"],
            &schema,
            module_of(operation),
            operation,
            operation,
            &mut errors,
        );
        checked.insert(operation.to_owned());
    }
    assert_eq!(
        checked.into_iter().collect::<Vec<_>>(),
        [
            "asnAdminGetUserProfiles",
            "asnAdminLogin",
            "asnAppointmentSetEntryList",
            "asnTransportKeepAlive"
        ]
    );

    // The simulator's answers, taken from a raw exchange.
    use ews_calendar_replicator::ucserver::{RoseTransport, WebSocketTransport};
    use futures_util::{SinkExt, StreamExt};
    let (mut sink, mut stream) = WebSocketTransport::new(&settings(&sim))
        .unwrap()
        .open()
        .await
        .unwrap();
    for (operation, argument) in [
        (
            "asnAdminLogin",
            first_invoke(&messages, "asnAdminLogin")["invoke"]["argument"].clone(),
        ),
        (
            "asnAdminGetUserProfiles",
            serde_json::json!({"iActiveUsersOnly": 0, "iFilterOnlineState": 0}),
        ),
        (
            "asnAppointmentSetEntryList",
            first_invoke(&messages, "asnAppointmentSetEntryList")["invoke"]["argument"].clone(),
        ),
    ] {
        let id = ews_calendar_replicator::ucserver::asn::operation_by_name(operation)
            .unwrap()
            .id;
        let invoke = serde_json::json!({"invoke": {"invokeID": 1, "operationID": id, "operationName": operation, "argument": argument}});
        sink.send(invoke.to_string()).await.unwrap();
        let answer: Value = serde_json::from_str(&stream.next().await.unwrap().unwrap()).unwrap();
        // The web service's form: one message in an array.
        let answer = answer.get(0).cloned().unwrap_or(answer);
        let result = &answer["result"]["result"]["result"];
        assert!(result.is_object(), "{operation}: {answer}");
        let schema = sdk.operation_schema(module_of(operation), operation, false);
        sdk.check(
            result,
            &schema,
            module_of(operation),
            &format!("{operation} result"),
            operation,
            &mut errors,
        );
    }
    assert!(
        errors.is_empty(),
        "shape differences from the SDK:\n{}",
        errors.join("\n")
    );
}

#[tokio::test]
async fn the_shape_check_notices_a_misnamed_member() {
    let Some(mut sdk) = Sdk::load() else { return };
    let schema = sdk.operation_schema(
        "ENetUC_Appointments.json",
        "asnAppointmentSetEntryList",
        true,
    );
    let wrong = serde_json::json!({"u8sOwner": "a", "u8sDatasource": "EWS", "appointments": []});
    let mut errors = Vec::new();
    sdk.check(
        &wrong,
        &schema,
        "ENetUC_Appointments.json",
        "arg",
        "arg",
        &mut errors,
    );
    assert!(
        errors.iter().any(|e| e.contains("u8sDatasource")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("u8sDataSource")),
        "{errors:?}"
    );

    // A CHOICE written without its alternative name is noticed deep inside.
    let entry = serde_json::json!({"u8sEntryID": "e", "u8sOwner": "a", "u8sDataSource": "EWS",
        "stStart": "2024-05-06T09:00:00Z", "stEnd": "not a time", "iDuration": 60,
        "u8sSubject": "", "u8sText": "", "bAllDay": false, "iStatus": 2, "u8sCategory": "",
        "iImportance": 1, "iSensitivity": 0, "bIsValid": true,
        "optionalParams": [{"key": "Location", "value": ["Room 1"]}]});
    let flat =
        serde_json::json!({"u8sOwner": "a", "u8sDataSource": "EWS", "appointments": [entry]});
    let mut errors = Vec::new();
    sdk.check(
        &flat,
        &schema,
        "ENetUC_Appointments.json",
        "arg",
        "arg",
        &mut errors,
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("optionalParams[0].value") && e.contains("CHOICE")),
        "{errors:?}"
    );
    assert!(errors.iter().any(|e| e.contains("stEnd")), "{errors:?}");
}
