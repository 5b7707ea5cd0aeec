//! SOAP autodiscover (`GetUserSettings` at `/autodiscover/autodiscover.svc`):
//! the EWS URLs of a mailbox, or where to ask instead.

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;

use crate::envelope::{read_envelope_body, read_server_version, serialize, EnvelopeError, SOAP_NS};
use crate::operation::Operation;
use crate::response_message::wire;

/// The SOAP autodiscover types, generated from `wsdl/autodiscover.xsd`.
pub use crate::generated::autodiscover::types;

// `GetUserSettings` and `OPERATION_NAMES`
pub use crate::generated::autodiscover::operations::*;

pub const AUTODISCOVER_NS: &str = "http://schemas.microsoft.com/exchange/2010/Autodiscover";
pub const ADDRESSING_NS: &str = "http://www.w3.org/2005/08/addressing";

/// The settings asked for: where EWS is, inside and outside.
pub const EWS_URL_SETTINGS: [&str; 2] = ["InternalEwsUrl", "ExternalEwsUrl"];

/// The request for `mailbox`'s EWS URLs, sent to `service_url`
/// (`https://<host>/autodiscover/autodiscover.svc`).
pub fn request(service_url: &str, mailbox: &str) -> Result<Vec<u8>, EnvelopeError> {
    let io = |e: std::io::Error| EnvelopeError::Serialize {
        operation: GetUserSettings::NAME,
        message: e.to_string(),
    };
    let mut w = Writer::new(Vec::with_capacity(1024));
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)))
        .map_err(io)?;
    let mut envelope = BytesStart::new("soap:Envelope");
    envelope.push_attribute(("xmlns:soap", SOAP_NS));
    envelope.push_attribute(("xmlns:a", AUTODISCOVER_NS));
    envelope.push_attribute(("xmlns:wsa", ADDRESSING_NS));
    w.write_event(Event::Start(envelope)).map_err(io)?;
    w.write_event(Event::Start(BytesStart::new("soap:Header")))
        .map_err(io)?;
    for (name, value) in [
        // Exchange 2010 is the oldest version that has this service.
        ("a:RequestedServerVersion", "Exchange2010"),
        ("wsa:Action", GetUserSettings::SOAP_ACTION),
        ("wsa:To", service_url),
    ] {
        w.write_event(Event::Start(BytesStart::new(name)))
            .map_err(io)?;
        w.write_event(Event::Text(BytesText::new(value)))
            .map_err(io)?;
        w.write_event(Event::End(BytesEnd::new(name))).map_err(io)?;
    }
    w.write_event(Event::End(BytesEnd::new("soap:Header")))
        .map_err(io)?;
    w.write_event(Event::Start(BytesStart::new("soap:Body")))
        .map_err(io)?;
    let body = types::GetUserSettingsRequestMessage {
        request: types::GetUserSettingsRequest {
            users: types::ArrayOfUser {
                user: vec![types::User {
                    mailbox: mailbox.to_owned(),
                }],
            },
            requested_settings: types::RequestedSettings {
                setting: EWS_URL_SETTINGS.iter().map(|s| (*s).to_owned()).collect(),
            },
            requested_version: None,
        },
    };
    serialize(
        &mut w,
        &body,
        "a:GetUserSettingsRequestMessage",
        GetUserSettings::NAME,
    )?;
    w.write_event(Event::End(BytesEnd::new("soap:Body")))
        .map_err(io)?;
    w.write_event(Event::End(BytesEnd::new("soap:Envelope")))
        .map_err(io)?;
    Ok(w.into_inner())
}

/// A `GetUserSettings` request as the server reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSettingsRequest {
    pub mailboxes: Vec<String>,
    pub settings: Vec<String>,
    /// The `RequestedServerVersion` header.
    pub requested_server_version: Option<String>,
    /// The WS-Addressing `Action` and `To` headers.
    pub action: Option<String>,
    pub to: Option<String>,
}

/// Reads a `GetUserSettings` request envelope (the server's side): the body
/// with the generated types, the headers by their qualified names.
pub fn parse_request(xml: &[u8]) -> Result<UserSettingsRequest, EnvelopeError> {
    let (body, headers, _) = read_envelope_body::<types::GetUserSettingsRequestMessage>(
        GetUserSettings::FILTER,
        GetUserSettings::NAME,
        GetUserSettings::REQUEST_ELEMENT,
        xml,
    )?;
    // The kept headers are the ones the WSDL declares, so a local name is
    // one header.
    let header = |_namespace: &str, local: &str| {
        headers
            .iter()
            .find(|(name, _)| name == local)
            .and_then(|(_, copy)| element_text(copy))
    };
    Ok(UserSettingsRequest {
        mailboxes: body
            .request
            .users
            .user
            .into_iter()
            .map(|u| u.mailbox)
            .collect(),
        settings: body.request.requested_settings.setting,
        requested_server_version: header(AUTODISCOVER_NS, "RequestedServerVersion"),
        action: header(ADDRESSING_NS, "Action"),
        to: header(ADDRESSING_NS, "To"),
    })
}

/// The trimmed text of a kept header's copy (a simple-typed element).
fn element_text(copy: &[u8]) -> Option<String> {
    let mut reader = quick_xml::NsReader::from_reader(copy);
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) => {
                let text = reader.read_text(e.name()).ok()?;
                return Some(quick_xml::escape::unescape(&text).ok()?.trim().to_owned());
            }
            Event::Empty(_) => return Some(String::new()),
            Event::Eof => return None,
            _ => {}
        }
    }
}

/// What the service answered for the mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserSettingsAnswer {
    Settings {
        internal_ews_url: Option<String>,
        external_ews_url: Option<String>,
        /// Exchange's version (`MajorVersion.MinorVersion.Build`), when sent.
        server_version: Option<String>,
    },
    /// Ask again for this address (`RedirectAddress`).
    RedirectAddress(String),
    /// Ask this autodiscover URL instead (`RedirectUrl`).
    RedirectUrl(String),
    /// The service refused: the code (`InvalidUser`, ...) and its message.
    Error {
        code: String,
        message: Option<String>,
    },
}

/// Parses a `GetUserSettings` response for one mailbox.
pub fn parse_response(xml: &[u8]) -> Result<UserSettingsAnswer, EnvelopeError> {
    let (body, headers, _) = read_envelope_body::<types::GetUserSettingsResponseMessage>(
        GetUserSettings::FILTER,
        GetUserSettings::NAME,
        GetUserSettings::RESPONSE_ELEMENT,
        xml,
    )?;
    let mut server_version = None;
    for (local, copy) in headers {
        if local == "ServerVersionInfo" {
            let version =
                read_server_version::<types::ServerVersionInfo>(GetUserSettings::NAME, &copy)?;
            server_version = Some(version.build());
        }
    }
    let response = body.response;
    let top = wire(&response.error_code);
    if top != "NoError" {
        return Ok(UserSettingsAnswer::Error {
            code: top,
            message: response.error_message,
        });
    }
    let Some(user) = response
        .user_responses
        .and_then(|u| u.user_response.into_iter().next())
    else {
        return Ok(UserSettingsAnswer::Error {
            code: "NoUserResponse".into(),
            message: Some("the answer holds no response for the mailbox".into()),
        });
    };
    let target = user.redirect_target.filter(|t| !t.trim().is_empty());
    match (wire(&user.error_code).as_str(), target) {
        ("NoError", _) => {
            let settings = user
                .user_settings
                .map(|s| s.user_setting)
                .unwrap_or_default();
            let value = |name: &str| {
                settings
                    .iter()
                    .find(|s| s.name == name)
                    .and_then(|s| s.value.clone())
                    .filter(|v| !v.trim().is_empty())
            };
            Ok(UserSettingsAnswer::Settings {
                internal_ews_url: value("InternalEwsUrl"),
                external_ews_url: value("ExternalEwsUrl"),
                server_version,
            })
        }
        ("RedirectAddress", Some(target)) => Ok(UserSettingsAnswer::RedirectAddress(target)),
        ("RedirectUrl", Some(target)) => Ok(UserSettingsAnswer::RedirectUrl(target)),
        (code, _) => Ok(UserSettingsAnswer::Error {
            code: code.to_owned(),
            message: user.error_message,
        }),
    }
}
