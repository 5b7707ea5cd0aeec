//! The ROSE envelope (SNACCROSE.asn1) in its JSON form:
//! `{"invoke": {...}}`, `{"result": {...}}`, `{"error": {...}}`,
//! `{"reject": {...}}`. These SEQUENCEs have no extension marker, so decoding
//! refuses members it does not know.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use super::asn::Operation;

/// `invokeID` of events (invokes that expect no answer).
pub const EVENT_INVOKE_ID: i64 = 99999;

/// `ROSEMessage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("ROSE messages always serialize")
    }
}

/// `ROSEAuth`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoseAuth {
    pub method: String,
    /// OCTET STRING (base64); never logged by this project.
    pub authdata: String,
}

/// `ROSEAuthRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoseAuthRequest {
    pub auth: RoseAuth,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

/// `ROSEAuthResult`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RejectInvokedId {
    #[serde(rename = "invokedID")]
    InvokedId(i64),
    #[serde(rename = "invokednull")]
    Null(()),
}

/// `RejectProblem`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    fn result_and_error_decode_from_the_documented_wire_form() {
        let result: RoseMessage = serde_json::from_str(
            r#"{"result":{"invokeID":3,"result":{"resultValue":0,"result":{"iResult":0}}}}"#,
        )
        .unwrap();
        assert_eq!(
            result,
            RoseMessage::result(3, RawValue::from_string(r#"{"iResult":0}"#.into()).unwrap())
        );
        let error: RoseMessage = serde_json::from_str(
            r#"{"error":{"invokedID":3,"error_value":0,"error":{"iErrorDetail":1,"u8sErrorString":"x"}}}"#,
        )
        .unwrap();
        assert!(matches!(
            error,
            RoseMessage::Error(RoseError { invoked_id: 3, .. })
        ));
    }

    #[test]
    fn unknown_envelope_members_are_refused() {
        let err = serde_json::from_str::<RoseMessage>(
            r#"{"invoke":{"invokeID":1,"operationID":400,"operationName":"x","bogus":1}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
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
