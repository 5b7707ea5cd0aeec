//! The SOAP 1.1 envelope shared by all operations: writing a request with its
//! headers, and reading a response into the operation's generated type, its
//! `ServerVersionInfo`, or a typed fault.

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;
use quick_xml::Writer;
use xsd_parser_types::quick_xml::{
    DeserializeSync, Serializer, SliceReader, WithSerializer, XmlReader,
};

use super::fault::{read_fault, SoapFault};
use super::filter::{copy_element, FilterSchema, OpenContent, XmlError};
use super::operation::{Operation, QName};
use super::types;
use super::version::ExchangeVersion;

pub const SOAP_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const MESSAGES_NS: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";
pub const TYPES_NS: &str = "http://schemas.microsoft.com/exchange/services/2006/types";

/// Errors of the envelope layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("{0}")]
    Xml(#[from] XmlError),
    #[error("Exchange answered with a SOAP fault: {0}")]
    Fault(SoapFault),
    #[error("the {operation} response does not match the schema: {message}")]
    Deserialize {
        operation: &'static str,
        message: String,
    },
    #[error("the {operation} response has no {expected} element in its body (found {found})")]
    UnexpectedBody {
        operation: &'static str,
        expected: &'static str,
        found: String,
    },
    #[error("cannot write the {operation} request: {message}")]
    Serialize {
        operation: &'static str,
        message: String,
    },
    #[error("the {operation} operation does not accept the {header} header")]
    HeaderNotAllowed {
        operation: &'static str,
        header: &'static str,
    },
}

/// The SOAP headers a request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeaders {
    pub version: ExchangeVersion,
    /// Act as this mailbox (`ExchangeImpersonation` by SMTP address); needs
    /// the ApplicationImpersonation role.
    pub impersonate: Option<String>,
    /// `TimeZoneContext` by Windows time zone id.
    pub time_zone_id: Option<String>,
}

impl RequestHeaders {
    pub fn new(version: ExchangeVersion) -> Self {
        RequestHeaders {
            version,
            impersonate: None,
            time_zone_id: None,
        }
    }
}

/// A response: the body, and what the headers and open content said.
#[derive(Debug, Clone)]
pub struct Response<T> {
    pub body: T,
    pub server_version: Option<ServerVersion>,
    /// `MessageXml` values, by owning element.
    pub open_content: OpenContent,
}

/// `ServerVersionInfo`: which Exchange answered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerVersion {
    pub major: Option<i32>,
    pub minor: Option<i32>,
    pub major_build: Option<i32>,
    pub minor_build: Option<i32>,
    /// The schema version (`V2017_07_11`, `Exchange2013_SP1`).
    pub version: Option<String>,
}

impl std::fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = |v: Option<i32>| v.map(|v| v.to_string()).unwrap_or_else(|| "?".into());
        write!(
            f,
            "{}.{}.{}.{}",
            n(self.major),
            n(self.minor),
            n(self.major_build),
            n(self.minor_build)
        )?;
        if let Some(v) = &self.version {
            write!(f, " ({v})")?;
        }
        Ok(())
    }
}

fn has_header<Op: Operation>(local: &str) -> bool {
    Op::INPUT_HEADERS.iter().any(|h| h.local == local)
}

pub(crate) fn serialize<T: WithSerializer>(
    writer: &mut Writer<Vec<u8>>,
    value: &T,
    name: &str,
    operation: &'static str,
) -> Result<(), EnvelopeError> {
    serialize_element(writer, value, name, false, operation)
}

/// Writes `value` as the element `name`; a root (`is_root`) also declares the
/// namespaces its content uses.
pub(crate) fn serialize_element<T: WithSerializer>(
    writer: &mut Writer<Vec<u8>>,
    value: &T,
    name: &str,
    is_root: bool,
    operation: &'static str,
) -> Result<(), EnvelopeError> {
    let err = |e: &dyn std::fmt::Display| EnvelopeError::Serialize {
        operation,
        message: e.to_string(),
    };
    let serializer = value.serializer(Some(name), is_root).map_err(|e| err(&e))?;
    for event in Serializer::into_iter(serializer) {
        writer
            .write_event(event.map_err(|e| err(&e))?)
            .map_err(|e| err(&e))?;
    }
    Ok(())
}

/// Writes the request envelope of `Op`.
pub fn write_request<Op: Operation>(
    headers: &RequestHeaders,
    body: &Op::Request,
) -> Result<Vec<u8>, EnvelopeError>
where
    Op::Request: WithSerializer,
{
    let mut w = Writer::new(Vec::with_capacity(2048));
    let io = |e: std::io::Error| EnvelopeError::Serialize {
        operation: Op::NAME,
        message: e.to_string(),
    };
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)))
        .map_err(io)?;
    let mut envelope = BytesStart::new("soap:Envelope");
    envelope.push_attribute(("xmlns:soap", SOAP_NS));
    envelope.push_attribute(("xmlns:m", MESSAGES_NS));
    envelope.push_attribute(("xmlns:t", TYPES_NS));
    w.write_event(Event::Start(envelope)).map_err(io)?;
    w.write_event(Event::Start(BytesStart::new("soap:Header")))
        .map_err(io)?;
    if let Some(smtp) = &headers.impersonate {
        if !has_header::<Op>("ExchangeImpersonation") {
            return Err(EnvelopeError::HeaderNotAllowed {
                operation: Op::NAME,
                header: "ExchangeImpersonation",
            });
        }
        let value = types::ExchangeImpersonationType {
            connecting_sid: types::ConnectingSidType::SmtpAddress(types::SmtpAddressType {
                content: smtp.clone(),
            }),
        };
        serialize(&mut w, &value, "t:ExchangeImpersonation", Op::NAME)?;
    }
    if !has_header::<Op>("RequestServerVersion") {
        return Err(EnvelopeError::HeaderNotAllowed {
            operation: Op::NAME,
            header: "RequestServerVersion",
        });
    }
    let version = types::RequestServerVersionElementType {
        version: types::ExchangeVersionType::String(headers.version.as_str().to_owned()),
    };
    serialize(&mut w, &version, "t:RequestServerVersion", Op::NAME)?;
    if let Some(id) = &headers.time_zone_id {
        if !has_header::<Op>("TimeZoneContext") {
            return Err(EnvelopeError::HeaderNotAllowed {
                operation: Op::NAME,
                header: "TimeZoneContext",
            });
        }
        let value = types::TimeZoneContextType {
            time_zone_definition: types::TimeZoneDefinitionType {
                id: Some(id.clone()),
                name: None,
                content: None,
            },
        };
        serialize(&mut w, &value, "t:TimeZoneContext", Op::NAME)?;
    }
    w.write_event(Event::End(BytesEnd::new("soap:Header")))
        .map_err(io)?;
    w.write_event(Event::Start(BytesStart::new("soap:Body")))
        .map_err(io)?;
    let body_name = format!("m:{}", Op::REQUEST_ELEMENT.local);
    serialize(&mut w, body, &body_name, Op::NAME)?;
    w.write_event(Event::End(BytesEnd::new("soap:Body")))
        .map_err(io)?;
    w.write_event(Event::End(BytesEnd::new("soap:Envelope")))
        .map_err(io)?;
    Ok(w.into_inner())
}

fn resolve(reader: &NsReader<&[u8]>, start: &BytesStart<'_>) -> (String, String) {
    let (ns, local) = reader.resolver().resolve_element(start.name());
    let ns = match ns {
        ResolveResult::Bound(n) => String::from_utf8_lossy(n.as_ref()).into_owned(),
        _ => String::new(),
    };
    (ns, String::from_utf8_lossy(local.as_ref()).into_owned())
}

pub(crate) fn deserialize<T>(operation: &'static str, xml: &[u8]) -> Result<T, EnvelopeError>
where
    for<'a> T: DeserializeSync<'a, xsd_parser_types::quick_xml::ErrorReader<SliceReader<'a>>>,
    for<'a> <T as DeserializeSync<'a, xsd_parser_types::quick_xml::ErrorReader<SliceReader<'a>>>>::Error:
        std::fmt::Display,
{
    let mut reader = SliceReader::from_bytes(xml).with_error_info();
    T::deserialize(&mut reader).map_err(|e| EnvelopeError::Deserialize {
        operation,
        message: e.to_string(),
    })
}

/// The kept SOAP headers of a document, by local name, as standalone XML.
pub type HeaderCopies = Vec<(String, Vec<u8>)>;

/// Reads the request envelope of `Op` (the simulator's side): the body and the
/// requested server version.
pub fn read_envelope_body<T>(
    schema: &FilterSchema,
    operation: &'static str,
    element: QName,
    xml: &[u8],
) -> Result<(T, HeaderCopies, OpenContent), EnvelopeError>
where
    for<'a> T: DeserializeSync<'a, xsd_parser_types::quick_xml::ErrorReader<SliceReader<'a>>>,
    for<'a> <T as DeserializeSync<'a, xsd_parser_types::quick_xml::ErrorReader<SliceReader<'a>>>>::Error:
        std::fmt::Display,
{
    let mut reader = NsReader::from_reader(xml);
    let mut open_content = OpenContent::default();
    let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
    let mut path: Vec<(String, String)> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    loop {
        let event = reader.read_event().map_err(|e| XmlError::Malformed {
            position: reader.buffer_position(),
            message: e.to_string(),
        })?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                let (ns, local) = resolve(&reader, e);
                let parent = path.last().map(|(n, l)| (n.as_str(), l.as_str()));
                match parent {
                    None if ns == SOAP_NS && local == "Envelope" => {}
                    Some((SOAP_NS, "Envelope"))
                        if ns == SOAP_NS && (local == "Header" || local == "Body") => {}
                    Some((SOAP_NS, "Header")) => {
                        if let Some(t) = schema.root_type(&ns, &local) {
                            let copy =
                                copy_element(&mut reader, e, empty, schema, t, &mut open_content)?;
                            headers.push((local, copy));
                        } else if !empty {
                            reader
                                .read_to_end(e.name())
                                .map_err(|err| XmlError::Malformed {
                                    position: reader.buffer_position(),
                                    message: err.to_string(),
                                })?;
                        }
                        continue;
                    }
                    Some((SOAP_NS, "Body")) => {
                        if ns == SOAP_NS && local == "Fault" {
                            return Err(EnvelopeError::Fault(read_fault(&mut reader)?));
                        }
                        if ns != element.namespace || local != element.local {
                            // Not ours (a proxy's or a newer server's addition): skip it.
                            skipped.push(format!("{{{ns}}}{local}"));
                            if !empty {
                                reader.read_to_end(e.name()).map_err(|err| {
                                    XmlError::Malformed {
                                        position: reader.buffer_position(),
                                        message: err.to_string(),
                                    }
                                })?;
                            }
                            continue;
                        }
                        let t = schema
                            .root_type(&ns, &local)
                            .ok_or(XmlError::UnexpectedRoot {
                                namespace: ns.clone(),
                                local: local.clone(),
                            })?;
                        let copy =
                            copy_element(&mut reader, e, empty, schema, t, &mut open_content)?;
                        let body = deserialize::<T>(operation, &copy)?;
                        return Ok((body, headers, open_content));
                    }
                    _ => {
                        return Err(XmlError::Malformed {
                            position: reader.buffer_position(),
                            message: format!(
                                "not a SOAP 1.1 envelope: unexpected element {{{ns}}}{local}"
                            ),
                        }
                        .into())
                    }
                }
                if !empty {
                    path.push((ns, local));
                }
            }
            Event::End(_) => {
                path.pop();
            }
            Event::DocType(_) => return Err(XmlError::Doctype.into()),
            Event::Eof => {
                return Err(EnvelopeError::UnexpectedBody {
                    operation,
                    expected: element.local,
                    found: if skipped.is_empty() {
                        "nothing".into()
                    } else {
                        skipped.join(", ")
                    },
                })
            }
            _ => {}
        }
    }
}

/// Reads a plain XML document (no SOAP envelope) whose root is `element`.
pub fn read_document<T>(
    schema: &FilterSchema,
    document: &'static str,
    element: QName,
    xml: &[u8],
) -> Result<T, EnvelopeError>
where
    for<'a> T: DeserializeSync<'a, xsd_parser_types::quick_xml::ErrorReader<SliceReader<'a>>>,
    for<'a> <T as DeserializeSync<'a, xsd_parser_types::quick_xml::ErrorReader<SliceReader<'a>>>>::Error:
        std::fmt::Display,
{
    let mut reader = NsReader::from_reader(xml);
    loop {
        let event = reader.read_event().map_err(|e| XmlError::Malformed {
            position: reader.buffer_position(),
            message: e.to_string(),
        })?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                let (ns, local) = resolve(&reader, e);
                if ns != element.namespace || local != element.local {
                    return Err(EnvelopeError::UnexpectedBody {
                        operation: document,
                        expected: element.local,
                        found: format!("{{{ns}}}{local}"),
                    });
                }
                let t = schema
                    .root_type(&ns, &local)
                    .ok_or(XmlError::UnexpectedRoot {
                        namespace: ns.clone(),
                        local: local.clone(),
                    })?;
                let mut open_content = OpenContent::default();
                let copy = copy_element(&mut reader, e, empty, schema, t, &mut open_content)?;
                return deserialize::<T>(document, &copy);
            }
            Event::DocType(_) => return Err(XmlError::Doctype.into()),
            Event::Eof => {
                return Err(EnvelopeError::UnexpectedBody {
                    operation: document,
                    expected: element.local,
                    found: "nothing".into(),
                })
            }
            _ => {}
        }
    }
}

/// Reads the response envelope of `Op`.
pub fn read_response<Op: Operation>(xml: &[u8]) -> Result<Response<Op::Response>, EnvelopeError>
where
    for<'a> Op::Response:
        DeserializeSync<'a, xsd_parser_types::quick_xml::ErrorReader<SliceReader<'a>>>,
    for<'a> <Op::Response as DeserializeSync<
        'a,
        xsd_parser_types::quick_xml::ErrorReader<SliceReader<'a>>,
    >>::Error: std::fmt::Display,
{
    let (body, headers, open_content) =
        read_envelope_body::<Op::Response>(Op::FILTER, Op::NAME, Op::RESPONSE_ELEMENT, xml)?;
    let mut server_version = None;
    for (local, copy) in headers {
        if local == "ServerVersionInfo" {
            let info: types::ServerVersionInfoElement = deserialize(Op::NAME, &copy)?;
            server_version = Some(ServerVersion {
                major: info.major_version,
                minor: info.minor_version,
                major_build: info.major_build_number,
                minor_build: info.minor_build_number,
                version: info.version,
            });
        }
    }
    Ok(Response {
        body,
        server_version,
        open_content,
    })
}
