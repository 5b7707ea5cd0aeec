//! The `Operation` trait ties an EWS operation's request and response types to
//! its SOAP details. Implementations are generated from the WSDL.

use super::filter::FilterSchema;

/// A namespace-qualified XML element name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QName {
    pub namespace: &'static str,
    pub local: &'static str,
}

/// One EWS operation, as the WSDL describes it.
pub trait Operation {
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
