//! What every EWS response message says about itself: `ResponseClass`,
//! `ResponseCode`, `MessageText`; and the error type of the typed operations.

use xsd_parser_types::quick_xml::{SerializeBytes, SerializeHelper};

use super::envelope::EnvelopeError;
use super::types;

/// `ResponseClass` of a response message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseClass {
    Success,
    Warning,
    Error,
}

/// The status part of one response message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseStatus {
    pub class: ResponseClass,
    /// `ResponseCode` (`NoError`, `ErrorAccessDenied`, or any newer code).
    pub code: String,
    pub message: Option<String>,
}

impl std::fmt::Display for ResponseStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(m) = &self.message {
            write!(f, ": {m}")?;
        }
        Ok(())
    }
}

/// The wire form of an (opened) enumeration value.
pub(crate) fn wire<T: SerializeBytes>(value: &T) -> String {
    value
        .serialize_bytes(&mut SerializeHelper::default())
        .ok()
        .flatten()
        .map(|v| v.trim().to_owned())
        .unwrap_or_default()
}

impl ResponseStatus {
    pub(crate) fn of(
        class: &types::ResponseClassType,
        code: Option<&types::ResponseCodeType>,
        message: Option<&String>,
    ) -> Self {
        let class = match wire(class).as_str() {
            "Success" => ResponseClass::Success,
            "Warning" => ResponseClass::Warning,
            // An unknown class is not success: treat it as an error.
            _ => ResponseClass::Error,
        };
        ResponseStatus {
            class,
            code: code.map(wire).unwrap_or_else(|| "NoError".into()),
            message: message.cloned(),
        }
    }

    /// `Err` for a response message of class `Error`.
    pub fn check(self) -> Result<ResponseStatus, OperationError> {
        match self.class {
            ResponseClass::Error => Err(OperationError::Response(self)),
            _ => Ok(self),
        }
    }
}

/// The status of a generated response message: every one has
/// `response_class` and optional content with `response_code` and
/// `message_text`, in types that differ per operation.
macro_rules! status_of {
    ($message:expr) => {
        $crate::response_message::ResponseStatus::of(
            &$message.response_class,
            $message
                .content
                .as_ref()
                .and_then(|c| c.response_code.as_ref()),
            $message
                .content
                .as_ref()
                .and_then(|c| c.message_text.as_ref()),
        )
    };
}
pub(crate) use status_of;

/// The one response message a single-item request gets, of the kind `pick`
/// accepts.
pub(crate) fn only_message<M, T>(
    operation: &'static str,
    messages: Vec<M>,
    pick: impl FnOnce(M) -> Option<T>,
) -> Result<T, OperationError> {
    let found = messages.len();
    let count_error = OperationError::MessageCount {
        operation,
        expected: 1,
        found,
    };
    if found != 1 {
        return Err(count_error);
    }
    messages
        .into_iter()
        .next()
        .and_then(pick)
        .ok_or(count_error)
}

/// Why a typed operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperationError {
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error("Exchange refused the request: {0}")]
    Response(ResponseStatus),
    #[error(
        "the {operation} response holds {found} response messages where {expected} were expected"
    )]
    MessageCount {
        operation: &'static str,
        expected: usize,
        found: usize,
    },
    #[error("the {operation} response has an invalid time {value:?}")]
    InvalidTime {
        operation: &'static str,
        value: String,
    },
}
