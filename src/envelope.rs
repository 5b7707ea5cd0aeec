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

impl ServerVersion {
    /// The build, `15.1.2507.6` (`?` for a number not sent).
    pub fn build(&self) -> String {
        let n = |v: Option<i32>| v.map(|v| v.to_string()).unwrap_or_else(|| "?".into());
        format!(
            "{}.{}.{}.{}",
            n(self.major),
            n(self.minor),
            n(self.major_build),
            n(self.minor_build)
        )
    }
}

impl std::fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.build())?;
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

/// What a walk over a SOAP envelope does with the parts it finds: the one
/// walker ([`walk_envelope`]) knows the envelope (its levels, a fault, the
/// body elements that are not the expected one), its visitors only the
/// content. Both consume the element they are given, to its end.
pub(crate) trait EnvelopeVisitor {
    type Output;
    type Error: From<EnvelopeError>;
    /// A child of `soap:Header`, by namespace and local name.
    fn header(
        &mut self,
        reader: &mut NsReader<&[u8]>,
        start: &BytesStart<'_>,
        empty: bool,
        name: (&str, &str),
    ) -> Result<(), Self::Error>;
    /// `soap:Body` begins: a visitor that needs only the headers ends the
    /// walk here.
    fn body_begins(&mut self) -> Option<Self::Output> {
        None
    }
    /// The expected element of `soap:Body`.
    fn body(
        &mut self,
        reader: &mut NsReader<&[u8]>,
        start: &BytesStart<'_>,
        empty: bool,
    ) -> Result<Self::Output, Self::Error>;
}

fn malformed(reader: &NsReader<&[u8]>, e: impl std::fmt::Display) -> XmlError {
    XmlError::Malformed {
        position: reader.buffer_position(),
        message: e.to_string(),
    }
}

/// Walks a SOAP 1.1 envelope to the body element `element` and returns what
/// the visitor made of it. A `soap:Fault` in the body is returned as
/// [`EnvelopeError::Fault`]; other body elements (a proxy's or a newer
/// server's addition) are skipped and named if `element` never comes.
/// Element names resolve leniently (an undeclared prefix is no namespace):
/// what the content's readers then do with such names is theirs to decide.
pub(crate) fn walk_envelope<V: EnvelopeVisitor>(
    reader: &mut NsReader<&[u8]>,
    operation: &'static str,
    element: QName,
    visitor: &mut V,
) -> Result<V::Output, V::Error> {
    const SOAP: &[u8] = SOAP_NS.as_bytes();
    #[derive(Clone, Copy, PartialEq)]
    enum Level {
        Envelope,
        Header,
        Body,
    }
    let mut path: Vec<Level> = Vec::with_capacity(3);
    let mut skipped: Vec<String> = Vec::new();
    loop {
        let event = reader
            .read_event()
            .map_err(|e| EnvelopeError::from(malformed(reader, e)))?;
        let (e, empty) = match event {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(_) => {
                path.pop();
                continue;
            }
            Event::DocType(_) => return Err(EnvelopeError::from(XmlError::Doctype).into()),
            Event::Eof => {
                return Err(EnvelopeError::UnexpectedBody {
                    operation,
                    expected: element.local,
                    found: if skipped.is_empty() {
                        "nothing".into()
                    } else {
                        skipped.join(", ")
                    },
                }
                .into())
            }
            _ => continue,
        };
        let (ns, local) = {
            let (result, local) = reader.resolver().resolve_element(e.name());
            let ns: &[u8] = match result {
                ResolveResult::Bound(n) => n.into_inner(),
                _ => b"",
            };
            (ns, local.into_inner())
        };
        let level = match path.last() {
            None if ns == SOAP && local == b"Envelope" => {
                require_utf8(reader).map_err(EnvelopeError::from)?;
                Level::Envelope
            }
            Some(Level::Envelope) if ns == SOAP && local == b"Header" => Level::Header,
            Some(Level::Envelope) if ns == SOAP && local == b"Body" => {
                if let Some(output) = visitor.body_begins() {
                    return Ok(output);
                }
                Level::Body
            }
            Some(Level::Header) => {
                // Headers are few: owned names keep the reader free.
                let (ns, local) = (lossy(ns).into_owned(), lossy(local).into_owned());
                visitor.header(reader, &e, empty, (&ns, &local))?;
                continue;
            }
            Some(Level::Body) => {
                if ns == SOAP && local == b"Fault" {
                    let fault = read_fault(reader).map_err(EnvelopeError::from)?;
                    return Err(EnvelopeError::Fault(fault).into());
                }
                if ns != element.namespace.as_bytes() || local != element.local.as_bytes() {
                    skipped.push(format!("{{{}}}{}", lossy(ns), lossy(local)));
                    if !empty {
                        reader
                            .read_to_end(e.name())
                            .map_err(|err| EnvelopeError::from(malformed(reader, err)))?;
                    }
                    continue;
                }
                return visitor.body(reader, &e, empty);
            }
            _ => {
                return Err(EnvelopeError::from(XmlError::Malformed {
                    position: reader.buffer_position(),
                    message: format!(
                        "not a SOAP 1.1 envelope: unexpected element {{{}}}{}",
                        lossy(ns),
                        lossy(local)
                    ),
                })
                .into())
            }
        };
        if !empty {
            path.push(level);
        }
    }
}

fn lossy(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// Called at the root element, when the reader has settled the document's
/// encoding (byte-order mark, then the declaration) and decodes text with
/// it, while the kept copies are read as UTF-8. Exchange answers in UTF-8,
/// so any other encoding is refused, once, for every reader (a fuzzed
/// `encoding="UTF-16BE"` made the two GetUserAvailability readers disagree).
fn require_utf8(reader: &NsReader<&[u8]>) -> Result<(), XmlError> {
    let encoding = reader.decoder().encoding().name();
    if encoding == "UTF-8" {
        Ok(())
    } else {
        Err(XmlError::NotUtf8 {
            encoding: encoding.into(),
        })
    }
}

/// Keeps the headers `schema` declares (filtered copies, by local name) and
/// skips the others.
pub(crate) fn copy_header(
    reader: &mut NsReader<&[u8]>,
    start: &BytesStart<'_>,
    empty: bool,
    (ns, local): (&str, &str),
    schema: &FilterSchema,
    open_content: &mut OpenContent,
) -> Result<Option<Vec<u8>>, XmlError> {
    if let Some(t) = schema.root_type(ns, local) {
        return copy_element(reader, start, empty, schema, t, open_content).map(Some);
    }
    if !empty {
        reader
            .read_to_end(start.name())
            .map_err(|err| malformed(reader, err))?;
    }
    Ok(None)
}

/// The filtered copies of the headers and of the body element, as the
/// generated deserializers read them.
struct CopyVisitor<'s> {
    schema: &'s FilterSchema,
    headers: HeaderCopies,
    open_content: OpenContent,
}

impl EnvelopeVisitor for CopyVisitor<'_> {
    type Output = Vec<u8>;
    type Error = EnvelopeError;

    fn header(
        &mut self,
        reader: &mut NsReader<&[u8]>,
        start: &BytesStart<'_>,
        empty: bool,
        name: (&str, &str),
    ) -> Result<(), EnvelopeError> {
        let copy = copy_header(
            reader,
            start,
            empty,
            name,
            self.schema,
            &mut self.open_content,
        )?;
        if let Some(copy) = copy {
            self.headers.push((name.1.to_owned(), copy));
        }
        Ok(())
    }

    fn body(
        &mut self,
        reader: &mut NsReader<&[u8]>,
        start: &BytesStart<'_>,
        empty: bool,
    ) -> Result<Vec<u8>, EnvelopeError> {
        let (ns, local) = resolve(reader, start);
        let t = self
            .schema
            .root_type(&ns, &local)
            .ok_or(XmlError::UnexpectedRoot {
                namespace: ns,
                local,
            })?;
        Ok(copy_element(
            reader,
            start,
            empty,
            self.schema,
            t,
            &mut self.open_content,
        )?)
    }
}

/// Reads an envelope whose body holds `element` (a response, or on the
/// simulator's side a request): the body with the generated types, the kept
/// headers, and the open content.
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
    let mut visitor = CopyVisitor {
        schema,
        headers: Vec::new(),
        open_content: OpenContent::default(),
    };
    let copy = walk_envelope(
        &mut NsReader::from_reader(xml),
        operation,
        element,
        &mut visitor,
    )?;
    let body = deserialize::<T>(operation, &copy)?;
    Ok((body, visitor.headers, visitor.open_content))
}

/// A generated `ServerVersionInfo` type: EWS's (`t:ServerVersionInfo`, the
/// numbers as attributes) or SOAP autodiscover's (`a:ServerVersionInfo`, the
/// same numbers as child elements). The schema says which; the generated
/// deserializer reads either, and both become one [`ServerVersion`].
pub(crate) trait ServerVersionInfoType {
    fn into_server_version(self) -> ServerVersion;
}

macro_rules! server_version_info_type {
    ($($ty:ty),*) => {$(
        impl ServerVersionInfoType for $ty {
            fn into_server_version(self) -> ServerVersion {
                ServerVersion {
                    major: self.major_version,
                    minor: self.minor_version,
                    major_build: self.major_build_number,
                    minor_build: self.minor_build_number,
                    version: self.version,
                }
            }
        }
    )*};
}
server_version_info_type!(
    types::ServerVersionInfoElement,
    crate::autodiscover::soap::types::ServerVersionInfo
);

/// Reads a kept `ServerVersionInfo` header (its filtered copy) with the
/// generated type `T`: the one way a server version is read.
pub(crate) fn read_server_version<T>(
    operation: &'static str,
    copy: &[u8],
) -> Result<ServerVersion, EnvelopeError>
where
    T: ServerVersionInfoType,
    for<'a> T: DeserializeSync<'a, xsd_parser_types::quick_xml::ErrorReader<SliceReader<'a>>>,
    for<'a> <T as DeserializeSync<'a, xsd_parser_types::quick_xml::ErrorReader<SliceReader<'a>>>>::Error:
        std::fmt::Display,
{
    deserialize::<T>(operation, copy).map(T::into_server_version)
}

/// Collects the EWS `ServerVersionInfo` header of any operation's answer.
struct ServerVersionVisitor {
    version: Option<ServerVersion>,
}

impl EnvelopeVisitor for ServerVersionVisitor {
    type Output = ();
    type Error = EnvelopeError;

    fn header(
        &mut self,
        reader: &mut NsReader<&[u8]>,
        start: &BytesStart<'_>,
        empty: bool,
        name: (&str, &str),
    ) -> Result<(), EnvelopeError> {
        let is_version = name == (TYPES_NS, "ServerVersionInfo");
        let schema = &crate::filter::FILTER_SCHEMA;
        let copy = copy_header(
            reader,
            start,
            empty,
            name,
            schema,
            &mut OpenContent::default(),
        )?;
        if let (true, Some(copy)) = (is_version, copy) {
            self.version = read_server_version::<types::ServerVersionInfoElement>("", &copy).ok();
        }
        Ok(())
    }

    fn body_begins(&mut self) -> Option<()> {
        Some(())
    }

    fn body(
        &mut self,
        _: &mut NsReader<&[u8]>,
        _: &BytesStart<'_>,
        _: bool,
    ) -> Result<(), EnvelopeError> {
        Ok(())
    }
}

/// The `ServerVersionInfo` header of any EWS answer (a fault, an operation
/// whose body is not read), if it has a valid one.
pub fn server_version_of(xml: &[u8]) -> Option<ServerVersion> {
    let mut visitor = ServerVersionVisitor { version: None };
    // The walk ends where the body begins; no body element is expected.
    let no_body = QName {
        namespace: SOAP_NS,
        local: "Body",
    };
    let _ = walk_envelope(&mut NsReader::from_reader(xml), "", no_body, &mut visitor);
    visitor.version
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
                require_utf8(&reader)?;
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
            server_version = Some(read_server_version::<types::ServerVersionInfoElement>(
                Op::NAME,
                &copy,
            )?);
        }
    }
    Ok(Response {
        body,
        server_version,
        open_content,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(version_attributes: &str, body: &str) -> Vec<u8> {
        format!(
            "<s:Envelope xmlns:s=\"{SOAP_NS}\"><s:Header><t:ServerVersionInfo xmlns:t=\"{TYPES_NS}\" \
             {version_attributes}/></s:Header><s:Body>{body}"
        )
        .into_bytes()
    }

    #[test]
    fn the_server_version_is_read_from_the_headers_whatever_the_body_holds() {
        let attributes = "MajorVersion=\"15\" MinorVersion=\"2\" MajorBuildNumber=\"1544\" \
                          MinorBuildNumber=\"4\" Version=\"V2017_07_11\"";
        // the walk ends where the body begins: an unfinished body is no matter
        let version = server_version_of(&answer(attributes, "<m:Unfinished>")).expect("version");
        assert_eq!(version.to_string(), "15.2.1544.4 (V2017_07_11)");
        // read as the schema says (xs:int), like every other reading of it
        assert_eq!(
            server_version_of(&answer("MajorVersion=\"fifteen\"", "")),
            None
        );
    }

    #[test]
    fn the_walker_names_the_body_elements_it_skipped() {
        let xml = format!(
            "<s:Envelope xmlns:s=\"{SOAP_NS}\"><s:Body><x:Other xmlns:x=\"urn:x\"><x:y/></x:Other></s:Body></s:Envelope>"
        );
        let err = read_response::<crate::operation::GetFolder>(xml.as_bytes()).unwrap_err();
        assert_eq!(
            err,
            EnvelopeError::UnexpectedBody {
                operation: "GetFolder",
                expected: "GetFolderResponse",
                found: "{urn:x}Other".into(),
            }
        );
    }
}
