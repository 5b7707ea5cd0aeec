//! The SOAP side of the simulator: strict reading of a request envelope
//! (every element checked against the schema's declared children, then the
//! generated types), and writing responses and faults shaped like Exchange's.

use bytes::Bytes;
use quick_xml::escape::escape;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use crate::envelope::{MESSAGES_NS, SOAP_NS, TYPES_NS};
use crate::filter::FilterSchema;

pub const ERRORS_NS: &str = "http://schemas.microsoft.com/exchange/services/2006/errors";

/// `ServerVersionInfo` the simulator answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerVersionInfo {
    pub major: i32,
    pub minor: i32,
    pub major_build: i32,
    pub minor_build: i32,
    /// The schema version (`V2017_07_11` for 2016/2019, `Exchange2013_SP1`).
    pub version: String,
}

impl ServerVersionInfo {
    /// Exchange 2019 CU12.
    pub fn exchange_2019() -> Self {
        ServerVersionInfo {
            major: 15,
            minor: 2,
            major_build: 1118,
            minor_build: 7,
            version: "V2017_07_11".into(),
        }
    }

    /// Exchange 2013 CU23.
    pub fn exchange_2013() -> Self {
        ServerVersionInfo {
            major: 15,
            minor: 0,
            major_build: 1497,
            minor_build: 2,
            version: "Exchange2013_SP1".into(),
        }
    }
}

/// `RequestServerVersion` values in the order Exchange introduced them.
pub const VERSION_ORDER: [&str; 17] = [
    "Exchange2007",
    "Exchange2007_SP1",
    "Exchange2010",
    "Exchange2010_SP1",
    "Exchange2010_SP2",
    "Exchange2013",
    "Exchange2013_SP1",
    "Exchange2015",
    "Exchange2016",
    "V2015_10_05",
    "V2016_01_06",
    "V2016_04_13",
    "V2016_07_13",
    "V2016_10_10",
    "V2017_01_07",
    "V2017_04_14",
    "V2017_07_11",
];

/// XML text (element content and attribute values) escaped.
pub fn esc(text: &str) -> std::borrow::Cow<'_, str> {
    escape(text)
}

/// A whole response envelope around `body` (one element, with its own
/// namespace declarations).
pub fn envelope(version: &ServerVersionInfo, body: &str) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="utf-8"?>"#,
            r#"<s:Envelope xmlns:s="{soap}"><s:Header>"#,
            r#"<h:ServerVersionInfo MajorVersion="{major}" MinorVersion="{minor}" MajorBuildNumber="{mab}" MinorBuildNumber="{mib}" Version="{v}" xmlns:h="{t}" xmlns="{t}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema"/>"#,
            r#"</s:Header><s:Body xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">{body}</s:Body></s:Envelope>"#
        ),
        soap = SOAP_NS,
        major = version.major,
        minor = version.minor,
        mab = version.major_build,
        mib = version.minor_build,
        v = esc(&version.version),
        t = TYPES_NS,
        body = body,
    )
}

/// The start tag of a response body element with the `m:` and `t:` prefixes.
pub fn body_start(name: &str) -> String {
    format!(r#"<m:{name} xmlns:m="{MESSAGES_NS}" xmlns:t="{TYPES_NS}">"#)
}

/// A request-level error as Exchange sends it: HTTP 500 with a `soap:Fault`
/// whose `faultcode` is the response code in the types namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub code: &'static str,
    pub message: String,
    /// `MessageXml` content: `(name, value)` as `<t:Value Name=..>`, or as
    /// an element named `name` when `as_elements`.
    pub values: Vec<(String, String)>,
    pub as_elements: bool,
}

impl Fault {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Fault {
            code,
            message: message.into(),
            values: Vec::new(),
            as_elements: false,
        }
    }

    pub fn with_value(mut self, name: &str, value: impl ToString) -> Self {
        self.values.push((name.to_owned(), value.to_string()));
        self
    }

    /// `ErrorSchemaValidation` with Exchange's position and violation.
    pub fn schema_validation(violation: impl Into<String>, position: u64) -> Self {
        let violation = violation.into();
        Fault {
            code: "ErrorSchemaValidation",
            message: format!("The request failed schema validation: {violation}"),
            values: vec![
                ("LineNumber".into(), "1".into()),
                ("LinePosition".into(), position.to_string()),
                ("Violation".into(), violation),
            ],
            as_elements: true,
        }
    }

    pub fn to_xml(&self, version: &ServerVersionInfo) -> String {
        let mut xml = String::new();
        for (name, value) in &self.values {
            if self.as_elements {
                xml.push_str(&format!("<t:{name}>{}</t:{name}>", esc(value)));
            } else {
                xml.push_str(&format!(
                    r#"<t:Value Name="{}">{}</t:Value>"#,
                    esc(name),
                    esc(value)
                ));
            }
        }
        let short = if self.code == "ErrorSchemaValidation" {
            "The request failed schema validation."
        } else {
            &self.message
        };
        format!(
            concat!(
                r#"<?xml version="1.0" encoding="utf-8"?>"#,
                r#"<s:Envelope xmlns:s="{soap}"><s:Header>"#,
                r#"<h:ServerVersionInfo MajorVersion="{major}" MinorVersion="{minor}" MajorBuildNumber="{mab}" MinorBuildNumber="{mib}" Version="{v}" xmlns:h="{t}" xmlns="{t}"/>"#,
                r#"</s:Header><s:Body><s:Fault>"#,
                r#"<faultcode xmlns:a="{t}">a:{code}</faultcode>"#,
                r#"<faultstring xml:lang="en-US">{message}</faultstring>"#,
                r#"<detail><e:ResponseCode xmlns:e="{e}">{code}</e:ResponseCode>"#,
                r#"<e:Message xmlns:e="{e}">{short}</e:Message>"#,
                r#"<t:MessageXml xmlns:t="{t}">{values}</t:MessageXml></detail>"#,
                r#"</s:Fault></s:Body></s:Envelope>"#
            ),
            soap = SOAP_NS,
            major = version.major,
            minor = version.minor,
            mab = version.major_build,
            mib = version.minor_build,
            v = esc(&version.version),
            t = TYPES_NS,
            e = ERRORS_NS,
            code = self.code,
            message = esc(&self.message),
            short = esc(short),
            values = xml,
        )
    }
}

/// An XML response with Exchange's content type.
pub fn xml_response(status: http::StatusCode, xml: String) -> http::Response<Bytes> {
    let mut response = http::Response::new(Bytes::from(xml));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    response
}

/// The first element inside `soap:Body`: `(namespace, local name)`, after
/// checking the envelope is SOAP 1.1 and well-formed up to there.
pub fn body_element(xml: &[u8]) -> Result<(String, String), Fault> {
    let mut reader = NsReader::from_reader(xml);
    let mut depth_path: Vec<(String, String)> = Vec::new();
    loop {
        let event = reader
            .read_event()
            .map_err(|e| Fault::schema_validation(e.to_string(), reader.buffer_position()))?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                let (ns, local) = resolve(&reader, e.name())?;
                let parent = depth_path.last().map(|(n, l)| (n.as_str(), l.as_str()));
                match parent {
                    None if ns == SOAP_NS && local == "Envelope" => {}
                    None => {
                        return Err(Fault::schema_validation(
                            format!(
                                "The root element must be the SOAP 1.1 Envelope ({SOAP_NS}), not '{local}' in namespace '{ns}'."
                            ),
                            reader.buffer_position(),
                        ))
                    }
                    Some((SOAP_NS, "Body")) => return Ok((ns, local)),
                    Some((SOAP_NS, "Envelope")) if ns == SOAP_NS && (local == "Header" || local == "Body") => {}
                    Some((SOAP_NS, "Envelope")) => {
                        return Err(Fault::schema_validation(
                            format!("The element 'Envelope' has invalid child element '{local}'."),
                            reader.buffer_position(),
                        ))
                    }
                    Some((SOAP_NS, "Header")) => {
                        if !empty {
                            reader.read_to_end(e.name()).map_err(|err| {
                                Fault::schema_validation(err.to_string(), reader.buffer_position())
                            })?;
                        }
                        continue;
                    }
                    _ => {}
                }
                if !empty {
                    depth_path.push((ns, local));
                }
            }
            Event::End(_) => {
                depth_path.pop();
            }
            Event::DocType(_) => {
                return Err(Fault::schema_validation(
                    "DTD is prohibited in this XML document.",
                    reader.buffer_position(),
                ))
            }
            Event::Eof => {
                return Err(Fault::schema_validation(
                    "The SOAP body holds no request element.",
                    reader.buffer_position(),
                ))
            }
            _ => {}
        }
    }
}

fn resolve(
    reader: &NsReader<&[u8]>,
    name: quick_xml::name::QName<'_>,
) -> Result<(String, String), Fault> {
    let (ns, local) = reader.resolver().resolve_element(name);
    let ns = match ns {
        ResolveResult::Bound(n) => String::from_utf8_lossy(n.as_ref()).into_owned(),
        ResolveResult::Unbound => String::new(),
        ResolveResult::Unknown(p) => {
            return Err(Fault::schema_validation(
                format!("'{}' is an undeclared prefix.", String::from_utf8_lossy(&p)),
                reader.buffer_position(),
            ))
        }
    };
    Ok((ns, String::from_utf8_lossy(local.as_ref()).into_owned()))
}

/// Checks that every element of the header and body is one the schema
/// declares where it stands (what the client's tolerant reader would
/// silently drop, Exchange refuses), and that the body element is
/// `expected`. Order, cardinality and values are checked by the generated
/// deserializer afterwards.
pub fn check_declared(schema: &FilterSchema, xml: &[u8]) -> Result<(), Fault> {
    let mut reader = NsReader::from_reader(xml);
    // Type index of each open element below Header/Body (None: not checked).
    let mut stack: Vec<Option<usize>> = Vec::new();
    // Depth of the Envelope/Header/Body frame.
    let mut frame: Vec<(String, String)> = Vec::new();
    loop {
        let event = reader
            .read_event()
            .map_err(|e| Fault::schema_validation(e.to_string(), reader.buffer_position()))?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                let (ns, local) = resolve(&reader, e.name())?;
                let position = reader.buffer_position();
                let child_type = if let Some(top) = stack.last() {
                    match top {
                        None => None,
                        Some(t) => {
                            let ty = &schema.types[*t];
                            if ty.any_children {
                                None
                            } else {
                                match ty.children.iter().find(|(n, l, _)| *n == ns && *l == local) {
                                    Some(&(_, _, c)) => Some(c),
                                    None => {
                                        let expected: Vec<&str> =
                                            ty.children.iter().map(|(_, l, _)| *l).collect();
                                        let parent = frame_name(&frame);
                                        return Err(Fault::schema_validation(
                                            format!(
                                                "The element '{parent}' has invalid child element '{local}' in namespace '{ns}'. List of possible elements expected: '{}'.",
                                                expected.join(", ")
                                            ),
                                            position,
                                        ));
                                    }
                                }
                            }
                        }
                    }
                } else {
                    match frame.last().map(|(n, l)| (n.as_str(), l.as_str())) {
                        Some((SOAP_NS, "Header")) | Some((SOAP_NS, "Body")) => {
                            match schema.root_type(&ns, &local) {
                                Some(t) => Some(t),
                                None => {
                                    return Err(Fault::schema_validation(
                                        format!(
                                            "The element '{local}' in namespace '{ns}' is not declared."
                                        ),
                                        position,
                                    ))
                                }
                            }
                        }
                        _ => {
                            if !empty {
                                frame.push((ns, local));
                            }
                            continue;
                        }
                    }
                };
                if !empty {
                    frame.push((ns, local));
                    stack.push(child_type);
                }
            }
            Event::End(_) => {
                frame.pop();
                stack.pop();
            }
            Event::DocType(_) => {
                return Err(Fault::schema_validation(
                    "DTD is prohibited in this XML document.",
                    reader.buffer_position(),
                ))
            }
            Event::Eof => return Ok(()),
            _ => {}
        }
    }
}

fn frame_name(frame: &[(String, String)]) -> String {
    frame.last().map(|(_, l)| l.clone()).unwrap_or_default()
}
