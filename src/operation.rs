//! The `Operation` trait ties an EWS operation's request and response types to
//! its SOAP details. Implementations are generated from the WSDL.

use super::filter::FilterSchema;

/// A namespace-qualified XML element name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QName {
    pub namespace: &'static str,
    pub local: &'static str,
}

/// Keeps `Operation` closed: its implementations are generated from the
/// WSDL, and the envelope, filter and client rely on their constants being
/// the schema's. Public in a crate-private module, so outside crates can
/// neither name nor implement it.
pub(crate) mod sealed {
    pub trait Sealed {}
}

/// One EWS operation, as the WSDL describes it.
///
/// Sealed on purpose: only the generated operations implement it, so a
/// request is always one the schema and the server know. Another crate's
/// implementation is refused:
///
/// ```compile_fail
/// use ews_toolkit::filter::FilterSchema;
/// use ews_toolkit::{Operation, QName};
///
/// struct MyOperation;
/// impl Operation for MyOperation {
///     type Request = ();
///     type Response = ();
///     const NAME: &'static str = "MyOperation";
///     const SOAP_ACTION: &'static str = "urn:my";
///     const REQUEST_ELEMENT: QName = QName { namespace: "urn:my", local: "Req" };
///     const RESPONSE_ELEMENT: QName = QName { namespace: "urn:my", local: "Resp" };
///     const INPUT_HEADERS: &'static [QName] = &[];
///     const OUTPUT_HEADERS: &'static [QName] = &[];
///     const FILTER: &'static FilterSchema = ews_toolkit::operation::GetUserAvailability::FILTER;
/// }
/// ```
pub trait Operation: sealed::Sealed {
    /// The body element of the request.
    type Request;
    /// The body element of the response.
    type Response;
    /// The operation's name (`GetUserAvailability`).
    const NAME: &'static str;
    /// The `SOAPAction` HTTP header value.
    const SOAP_ACTION: &'static str;
    const REQUEST_ELEMENT: QName;
    const RESPONSE_ELEMENT: QName;
    /// The SOAP headers the request may carry.
    const INPUT_HEADERS: &'static [QName];
    /// The SOAP headers the response may carry.
    const OUTPUT_HEADERS: &'static [QName];
    /// The filter table of the schema family the operation belongs to.
    const FILTER: &'static FilterSchema;
}

// The EWS operations (`GetUserAvailability`, ...) and `OPERATION_NAMES`.
pub use crate::generated::ews::operations::*;
