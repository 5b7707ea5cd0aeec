//! Plain-XML (POX) autodiscover (`/autodiscover/autodiscover.xml`): the
//! Outlook provider's answer with the EWS URLs, a redirect, or an error.

use quick_xml::events::{BytesDecl, Event};
use quick_xml::Writer;

use crate::envelope::{read_document, serialize_element, EnvelopeError};
use crate::operation::QName;

/// The POX request document's types, generated from `wsdl/pox-request.xsd`.
pub use crate::generated::pox_request::types as request_types;
/// The POX response document's types, generated from `wsdl/pox-response.xsd`.
pub use crate::generated::pox_response::types as response_types;

use crate::generated::pox_request::filter_table as request_filter;
use crate::generated::pox_response::filter_table as response_filter;

pub const REQUEST_NS: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006";
pub const RESPONSE_NS: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006";
pub const OUTLOOK_RESPONSE_NS: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a";

/// The request document for `email`.
pub fn request(email: &str) -> Result<Vec<u8>, EnvelopeError> {
    let mut w = Writer::new(Vec::with_capacity(512));
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)))
        .map_err(|e| EnvelopeError::Serialize {
            operation: "POX autodiscover",
            message: e.to_string(),
        })?;
    let document = request_types::PoxRequestDocument {
        request: request_types::PoxRequest {
            e_mail_address: email.to_owned(),
            acceptable_response_schema: OUTLOOK_RESPONSE_NS.to_owned(),
        },
    };
    serialize_element(
        &mut w,
        &document,
        "q:Autodiscover",
        true,
        "POX autodiscover",
    )?;
    Ok(w.into_inner())
}

/// Reads a POX request document (the server's side): the address asked
/// for and the response schema the client accepts. Refuses a document of
/// another schema or without `EMailAddress`.
pub fn parse_request(xml: &[u8]) -> Result<request_types::PoxRequest, EnvelopeError> {
    let document: request_types::PoxRequestDocument = read_document(
        &request_filter::FILTER_SCHEMA,
        "POX autodiscover request",
        QName {
            namespace: REQUEST_NS,
            local: "Autodiscover",
        },
        xml,
    )?;
    Ok(document.request)
}

/// What the POX service answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoxAnswer {
    Settings {
        /// `EwsUrl` of the `EXCH` protocol (inside the organisation).
        internal_ews_url: Option<String>,
        /// `EwsUrl` of the `EXPR` protocol (Outlook Anywhere, outside).
        external_ews_url: Option<String>,
        display_name: Option<String>,
    },
    /// `Action` `redirectAddr`: ask again for this address.
    RedirectAddress(String),
    /// `Action` `redirectUrl`: ask this URL instead.
    RedirectUrl(String),
    /// An `Error` answer (`ErrorCode` 500: address not found, ...).
    Error {
        code: String,
        message: Option<String>,
    },
}

/// Parses a POX autodiscover response.
pub fn parse_response(xml: &[u8]) -> Result<PoxAnswer, EnvelopeError> {
    let document: response_types::PoxResponseDocument = read_document(
        &response_filter::FILTER_SCHEMA,
        "POX autodiscover",
        QName {
            namespace: RESPONSE_NS,
            local: "Autodiscover",
        },
        xml,
    )?;
    let outlook = match document {
        response_types::PoxResponseDocument::RResponse(error) => {
            return Ok(PoxAnswer::Error {
                code: error.error.error_code.unwrap_or_default(),
                message: error.error.message,
            })
        }
        response_types::PoxResponseDocument::OResponse(outlook) => outlook,
    };
    let account = outlook.account.unwrap_or(response_types::PoxAccount {
        account_type: None,
        action: None,
        redirect_addr: None,
        redirect_url: None,
        protocol: Vec::new(),
    });
    match account.action.as_deref().map(str::trim) {
        Some("redirectAddr") => {
            if let Some(address) = account.redirect_addr {
                return Ok(PoxAnswer::RedirectAddress(address));
            }
        }
        Some("redirectUrl") => {
            if let Some(url) = account.redirect_url {
                return Ok(PoxAnswer::RedirectUrl(url));
            }
        }
        _ => {}
    }
    let ews_url = |kind: &str| {
        account
            .protocol
            .iter()
            .find(|p| p.type_.as_deref().map(str::trim) == Some(kind))
            .and_then(|p| p.ews_url.clone())
    };
    Ok(PoxAnswer::Settings {
        internal_ews_url: ews_url("EXCH"),
        external_ews_url: ews_url("EXPR"),
        display_name: outlook.user.and_then(|u| u.display_name),
    })
}
