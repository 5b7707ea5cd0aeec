//! The ROSE envelope (SNACCROSE.asn1) in its JSON form:
//! `{"invoke": {...}}`, `{"result": {...}}`, `{"error": {...}}`,
//! `{"reject": {...}}`; the one ROSE JSON codec of the project (the
//! WebSocket and the raw TCP transport both use it).
//!
//! Writing: [`RoseMessage::to_json`] writes the bare object, as estos's C++
//! runtime does (cpp-runtime/SnaccROSEBase.cpp:404-425, `GetEncoded`).
//! Reading: [`RoseMessage::from_json`] reads every form that runtime reads:
//! a bare object or one wrapped in a JSON array (SnaccROSEBase.cpp:491 takes
//! `{` and `[` as JSON; the web service sends `[{...}]`, which estos's
//! examples read as `JSON.parse(text)[0]`, web-examples/SessionWithEvents.html:124),
//! and members it does not know (`_type`, which estos's TypeScript encoder
//! adds) ignored everywhere.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use super::asn::Operation;

/// `invokeID` of events (invokes that expect no answer).
pub const EVENT_INVOKE_ID: i64 = 99999;

/// `ROSEMessage`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum RoseMessage {
    #[serde(rename = "invoke")]
    Invoke(RoseInvoke),
    #[serde(rename = "result")]
    Result(RoseResult),
    #[serde(rename = "error")]
    Error(RoseError),
    #[serde(rename = "reject")]
    Reject(RoseReject),
}

impl RoseMessage {
    /// An invoke of `operation` (an event when `invoke_id` is
    /// [`EVENT_INVOKE_ID`]).
    pub fn invoke(invoke_id: i64, operation: Operation, argument: Box<RawValue>) -> Self {
        RoseMessage::Invoke(RoseInvoke {
            session_id: None,
            invoke_id,
            linked_id: None,
            operation_name: Some(operation.name.to_owned()),
            authentication: None,
            operation_id: operation.id,
            argument: Some(argument),
        })
    }

    /// The text of an invoke whose argument carries a secret (the admin
    /// login). Every buffer is sized before it is written, since a growing
    /// buffer leaves a copy behind in freed memory; the argument's own text
    /// is zeroed here. The caller hands the text to a
    /// [`super::transport::MessageSink`], which zeroes it once written.
    pub fn invoke_json_wiped<A: Serialize>(
        invoke_id: i64,
        operation: Operation,
        argument: &A,
    ) -> String {
        let argument = exactly_sized_json(argument);
        let argument =
            RawValue::from_string(argument).expect("serde_json writes valid JSON without padding");
        let mut message = RoseMessage::invoke(invoke_id, operation, argument);
        let text = exactly_sized_json(&message);
        if let RoseMessage::Invoke(RoseInvoke {
            argument: Some(argument),
            ..
        }) = &mut message
        {
            let argument = std::mem::replace(argument, RawValue::NULL.to_owned());
            let mut argument = String::from(Box::<str>::from(argument));
            zeroize::Zeroize::zeroize(&mut argument);
        }
        text
    }

    /// A result answering `invoke_id`.
    pub fn result(invoke_id: i64, result: Box<RawValue>) -> Self {
        RoseMessage::Result(RoseResult {
            session_id: None,
            invoke_id,
            result: Some(RoseResultBody {
                result_value: 0,
                result,
            }),
        })
    }

    /// An error answering `invoke_id`.
    pub fn error(invoke_id: i64, error: Value) -> Self {
        RoseMessage::Error(RoseError {
            session_id: None,
            invoked_id: invoke_id,
            error_value: 0,
            error: Some(error),
        })
    }

    /// A reject of `invoke_id` (or of an undecodable message when `None`).
    pub fn reject(invoke_id: Option<i64>, problem: RejectProblem, details: String) -> Self {
        RoseMessage::Reject(RoseReject {
            session_id: None,
            invoked_id: match invoke_id {
                Some(id) => RejectInvokedId::InvokedId(id),
                None => RejectInvokedId::Null(()),
            },
            reject: Some(problem),
            details: Some(details),
            authentication: None,
        })
    }

    /// The message as JSON text, the bare object the runtime writes.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("ROSE messages always serialize")
    }

    /// The message in a one-element JSON array, the form the UCServer web
    /// service sends (web-examples/SessionWithEvents.html:124 reads
    /// `JSON.parse(text)[0]`).
    pub fn to_json_array(&self) -> String {
        format!("[{}]", self.to_json())
    }

    /// Reads a ROSE message in every form estos's runtime reads: bare or in
    /// a one-element array, unknown members ignored, the CHOICE alternatives
    /// of the envelope tried in declaration order (invoke, result, error,
    /// reject) with other members ignored.
    pub fn from_json(text: &str) -> Result<Self, DecodeError> {
        let envelope_text = match text.trim_start().as_bytes().first() {
            Some(b'[') => {
                let items: Vec<&RawValue> =
                    serde_json::from_str(text).map_err(|e| classify(text, e))?;
                match items.as_slice() {
                    [only] => only.get(),
                    other => {
                        return Err(DecodeError::NotRose {
                            reason: format!(
                                "a JSON array of {} elements; the UCServer wraps one message in an array of one",
                                other.len()
                            ),
                            invoke_id: None,
                        })
                    }
                }
            }
            _ => text,
        };
        let envelope: Envelope =
            serde_json::from_str(envelope_text).map_err(|e| classify(envelope_text, e))?;
        if let Some(invoke) = envelope.invoke {
            Ok(RoseMessage::Invoke(invoke))
        } else if let Some(result) = envelope.result {
            Ok(RoseMessage::Result(result))
        } else if let Some(error) = envelope.error {
            Ok(RoseMessage::Error(error))
        } else if let Some(reject) = envelope.reject {
            Ok(RoseMessage::Reject(reject))
        } else {
            Err(DecodeError::NotRose {
                reason: "none of the members invoke, result, error or reject".into(),
                invoke_id: None,
            })
        }
    }
}

/// `value` as JSON in a buffer allocated once at its final size: measured
/// first, then written.
fn exactly_sized_json<T: Serialize>(value: &T) -> String {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value).expect("ROSE messages always serialize");
    let mut bytes = Vec::with_capacity(count.0);
    serde_json::to_writer(&mut bytes, value).expect("ROSE messages always serialize");
    String::from_utf8(bytes).expect("serde_json writes UTF-8")
}

/// Why a text is not a ROSE message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON at all.
    #[error("not JSON: {0}")]
    NotJson(String),
    /// JSON, but not a ROSE message. `invoke_id` is the `invokeID` of an
    /// invoke whose other members do not decode, 0 when it has none (the
    /// runtime answers those with a reject naming it, SnaccROSEBase.cpp:527-545).
    #[error("not a ROSE message: {reason}")]
    NotRose {
        reason: String,
        invoke_id: Option<i64>,
    },
}

fn classify(text: &str, error: serde_json::Error) -> DecodeError {
    if error.is_syntax() || error.is_eof() {
        return DecodeError::NotJson(error.to_string());
    }
    // Only on this error path: look for the invoke id a partial decode
    // would have found.
    let invoke_id = serde_json::from_str::<Value>(text).ok().and_then(|v| {
        let v = match v {
            Value::Array(mut items) if items.len() == 1 => items.remove(0),
            other => other,
        };
        let invoke = v.get("invoke")?.as_object()?;
        Some(invoke.get("invokeID").and_then(Value::as_i64).unwrap_or(0))
    });
    DecodeError::NotRose {
        reason: error.to_string(),
        invoke_id,
    }
}

/// The `ROSEMessage` CHOICE as the runtime reads it: each alternative is
/// looked for by name, other members are ignored.
#[derive(Deserialize)]
struct Envelope {
    invoke: Option<RoseInvoke>,
    result: Option<RoseResult>,
    error: Option<RoseError>,
    reject: Option<RoseReject>,
}

/// Reads a CHOICE as estos's runtime does (cpp-runtime/asn-optionalparam.cpp:496-524
/// is the pattern): an object in which the first alternative present, in
/// declaration order, is taken and every other member (`_type`) ignored.
pub(crate) fn choice<'de, D: Deserializer<'de>>(
    deserializer: D,
    type_name: &str,
    alternatives: &[&'static str],
) -> Result<(&'static str, Value), D::Error> {
    let mut members = serde_json::Map::<String, Value>::deserialize(deserializer)?;
    for name in alternatives {
        if let Some(value) = members.remove(*name) {
            return Ok((*name, value));
        }
    }
    Err(de::Error::custom(format!(
        "{type_name} has none of its alternatives {}",
        alternatives.join(", ")
    )))
}

/// `ROSEAuth`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoseAuth {
    pub method: String,
    /// OCTET STRING (base64); never logged by this project.
    pub authdata: String,
}

/// `ROSEAuthRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoseAuthRequest {
    pub auth: RoseAuth,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

/// `ROSEAuthResult`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoseAuthResult {
    #[serde(rename = "authList")]
    pub auth_list: Vec<RoseAuth>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

/// `ROSEInvoke`. `argument` stays JSON text, like [`RoseResultBody::result`]:
/// an argument goes from its typed form to text in one step, and a server
/// decodes it from text into the operation's type.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoseInvoke {
    #[serde(rename = "sessionID", skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(rename = "invokeID")]
    pub invoke_id: i64,
    #[serde(rename = "linked_ID", skip_serializing_if = "Option::is_none")]
    pub linked_id: Option<i64>,
    #[serde(rename = "operationName", skip_serializing_if = "Option::is_none")]
    pub operation_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication: Option<RoseAuthRequest>,
    #[serde(rename = "operationID")]
    pub operation_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub argument: Option<Box<RawValue>>,
}

impl PartialEq for RoseInvoke {
    fn eq(&self, other: &Self) -> bool {
        self.session_id == other.session_id
            && self.invoke_id == other.invoke_id
            && self.linked_id == other.linked_id
            && self.operation_name == other.operation_name
            && self.authentication == other.authentication
            && self.operation_id == other.operation_id
            && self.argument.as_deref().map(RawValue::get)
                == other.argument.as_deref().map(RawValue::get)
    }
}

/// `ROSEResult`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoseResult {
    #[serde(rename = "sessionID", skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(rename = "invokeID")]
    pub invoke_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<RoseResultBody>,
}

/// The inner `result SEQUENCE { resultValue, result }` of `ROSEResult`.
/// `result` stays JSON text until the caller decodes it into the
/// operation's type: a user listing of 10,000 profiles as a `Value` tree
/// would cost several times the text's size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoseResultBody {
    #[serde(rename = "resultValue")]
    pub result_value: i64,
    pub result: Box<RawValue>,
}

impl PartialEq for RoseResultBody {
    fn eq(&self, other: &Self) -> bool {
        self.result_value == other.result_value && self.result.get() == other.result.get()
    }
}

/// `ROSEError`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoseError {
    #[serde(rename = "sessionID", skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(rename = "invokedID")]
    pub invoked_id: i64,
    pub error_value: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

/// `ROSEReject`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoseReject {
    #[serde(rename = "sessionID", skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(rename = "invokedID")]
    pub invoked_id: RejectInvokedId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reject: Option<RejectProblem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication: Option<RoseAuthResult>,
}

/// The `invokedID` CHOICE of `ROSEReject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RejectInvokedId {
    #[serde(rename = "invokedID")]
    InvokedId(i64),
    #[serde(rename = "invokednull")]
    Null(()),
}

/// `RejectProblem`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RejectProblem {
    #[serde(rename = "generalProblem")]
    General(i64),
    #[serde(rename = "invokeProblem")]
    Invoke(i64),
    #[serde(rename = "returnResultProblem")]
    ReturnResult(i64),
    #[serde(rename = "returnErrorProblem")]
    ReturnError(i64),
}

impl<'de> Deserialize<'de> for RejectInvokedId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match choice(d, "ROSEReject.invokedID", &["invokedID", "invokednull"])? {
            ("invokedID", value) => i64::deserialize(value)
                .map(RejectInvokedId::InvokedId)
                .map_err(de::Error::custom),
            _ => Ok(RejectInvokedId::Null(())),
        }
    }
}

impl<'de> Deserialize<'de> for RejectProblem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (name, value) = choice(
            d,
            "RejectProblem",
            &[
                "generalProblem",
                "invokeProblem",
                "returnResultProblem",
                "returnErrorProblem",
            ],
        )?;
        let value = i64::deserialize(value).map_err(de::Error::custom)?;
        Ok(match name {
            "generalProblem" => RejectProblem::General(value),
            "invokeProblem" => RejectProblem::Invoke(value),
            "returnResultProblem" => RejectProblem::ReturnResult(value),
            _ => RejectProblem::ReturnError(value),
        })
    }
}

/// `GeneralProblem` values.
pub mod general_problem {
    pub const UNRECOGNISED_APDU: i64 = 0;
    pub const MISTYPED_APDU: i64 = 1;
    pub const BADLY_STRUCTURED_APDU: i64 = 2;
}

/// `InvokeProblem` values.
pub mod invoke_problem {
    pub const DUPLICATE_INVOCATION: i64 = 0;
    pub const UNRECOGNISED_OPERATION: i64 = 1;
    pub const MISTYPED_ARGUMENT: i64 = 2;
    pub const RESOURCE_LIMITATION: i64 = 3;
    pub const INVALID_SESSION_ID: i64 = 8;
}

impl std::fmt::Display for RejectProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, name) = match *self {
            RejectProblem::General(v) => (
                "general problem",
                match v {
                    0 => "unrecognisedAPDU",
                    1 => "mistypedAPDU",
                    2 => "badlyStructuredAPDU",
                    _ => "",
                },
            ),
            RejectProblem::Invoke(v) => (
                "invoke problem",
                match v {
                    0 => "duplicateInvocation",
                    1 => "unrecognisedOperation",
                    2 => "mistypedArgument",
                    3 => "resourceLimitation",
                    4 => "initiatorReleasing",
                    5 => "unrecognisedLinkedID",
                    6 => "linkedResponseUnexpected",
                    7 => "unexpectedChildOperation",
                    8 => "invalidSessionID",
                    9 => "authenticationIncomplete",
                    10 => "authenticationFailed",
                    _ => "",
                },
            ),
            RejectProblem::ReturnResult(_) => ("return result problem", ""),
            RejectProblem::ReturnError(_) => ("return error problem", ""),
        };
        let value = match *self {
            RejectProblem::General(v)
            | RejectProblem::Invoke(v)
            | RejectProblem::ReturnResult(v)
            | RejectProblem::ReturnError(v) => v,
        };
        if name.is_empty() {
            write!(f, "{kind} {value}")
        } else {
            write!(f, "{kind} {value} ({name})")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ucserver::asn::APPOINTMENT_SET_ENTRY_LIST;

    #[test]
    fn invoke_has_the_wire_shape() {
        let text = RoseMessage::invoke(
            3,
            APPOINTMENT_SET_ENTRY_LIST,
            RawValue::from_string("{}".into()).unwrap(),
        )
        .to_json();
        assert_eq!(
            text,
            r#"{"invoke":{"invokeID":3,"operationName":"asnAppointmentSetEntryList","operationID":400,"argument":{}}}"#
        );
    }

    #[test]
    fn an_invoke_carrying_a_secret_is_written_exactly_as_any_other() {
        let argument = serde_json::json!({"u8sAdminUsername": "a", "adminPassword": {"u8sAdminPassword": "p\"w\u{e4}"}});
        let wiped = RoseMessage::invoke_json_wiped(4, APPOINTMENT_SET_ENTRY_LIST, &argument);
        let plain = RoseMessage::invoke(
            4,
            APPOINTMENT_SET_ENTRY_LIST,
            serde_json::value::to_raw_value(&argument).unwrap(),
        )
        .to_json();
        assert_eq!(wiped, plain);
        // Allocated once at its final size: no reallocation left a copy.
        assert_eq!(wiped.capacity(), wiped.len());
    }

    #[test]
    fn result_and_error_decode_from_the_documented_wire_form() {
        let result = RoseMessage::from_json(
            r#"{"result":{"invokeID":3,"result":{"resultValue":0,"result":{"iResult":0}}}}"#,
        )
        .unwrap();
        assert_eq!(
            result,
            RoseMessage::result(3, RawValue::from_string(r#"{"iResult":0}"#.into()).unwrap())
        );
        let error = RoseMessage::from_json(
            r#"{"error":{"invokedID":3,"error_value":0,"error":{"iErrorDetail":1,"u8sErrorString":"x"}}}"#,
        )
        .unwrap();
        assert!(matches!(
            error,
            RoseMessage::Error(RoseError { invoked_id: 3, .. })
        ));
    }

    #[test]
    fn unknown_envelope_members_are_ignored_as_the_runtime_ignores_them() {
        let message = RoseMessage::from_json(
            r#"{"_type":"ROSEMessage","invoke":{"_type":"ROSEInvoke","invokeID":1,"operationID":400,"operationName":"x","bogus":1}}"#,
        )
        .unwrap();
        assert!(matches!(
            message,
            RoseMessage::Invoke(RoseInvoke {
                invoke_id: 1,
                operation_id: 400,
                ..
            })
        ));
    }

    #[test]
    fn a_message_wrapped_in_a_one_element_array_reads_like_the_bare_one() {
        // web-examples/SessionWithEvents.html:124 reads `JSON.parse(text)[0]`.
        let bare = r#"{"result":{"invokeID":3,"result":{"resultValue":0,"result":{"iResult":0}}}}"#;
        let wrapped = format!("[{bare}]\n");
        assert_eq!(
            RoseMessage::from_json(&wrapped).unwrap(),
            RoseMessage::from_json(bare).unwrap()
        );
        let two = format!("[{bare},{bare}]");
        assert!(matches!(
            RoseMessage::from_json(&two),
            Err(DecodeError::NotRose { .. })
        ));
    }

    #[test]
    fn choices_take_their_alternative_and_ignore_type_members() {
        let message = RoseMessage::from_json(
            r#"{"reject":{"_type":"ROSEReject","invokedID":{"_type":"ROSERejectChoice","invokedID":4},"reject":{"_type":"RejectProblem","invokeProblem":2}}}"#,
        )
        .unwrap();
        let RoseMessage::Reject(reject) = message else {
            panic!("a reject: {message:?}")
        };
        assert_eq!(reject.invoked_id, RejectInvokedId::InvokedId(4));
        assert_eq!(reject.reject, Some(RejectProblem::Invoke(2)));
    }

    #[test]
    fn undecodable_texts_say_whether_they_were_json_and_which_invoke_they_were() {
        assert!(matches!(
            RoseMessage::from_json("{not json"),
            Err(DecodeError::NotJson(_))
        ));
        assert_eq!(
            RoseMessage::from_json(r#"[{"invoke":{"invokeID":7,"operationID":"x"}}]"#).unwrap_err(),
            DecodeError::NotRose {
                reason: RoseMessage::from_json(r#"{"invoke":{"invokeID":7,"operationID":"x"}}"#)
                    .unwrap_err()
                    .to_string()
                    .trim_start_matches("not a ROSE message: ")
                    .to_owned(),
                invoke_id: Some(7)
            }
        );
        assert!(matches!(
            RoseMessage::from_json(r#"{"hello":1}"#),
            Err(DecodeError::NotRose {
                invoke_id: None,
                ..
            })
        ));
    }

    #[test]
    fn reject_of_an_undecodable_message_uses_invokednull() {
        let text = RoseMessage::reject(
            None,
            RejectProblem::General(general_problem::BADLY_STRUCTURED_APDU),
            "d".into(),
        )
        .to_json();
        assert_eq!(
            text,
            r#"{"reject":{"invokedID":{"invokednull":null},"reject":{"generalProblem":2},"details":"d"}}"#
        );
    }
}
