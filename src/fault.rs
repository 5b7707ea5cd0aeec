//! `soap:Fault`: how Exchange reports a request-level error (throttling,
//! schema validation, authorization), parsed by hand since SOAP faults are not
//! part of the EWS schema.

use std::time::Duration;

use quick_xml::events::Event;
use quick_xml::reader::NsReader;

use super::filter::XmlError;

/// A SOAP fault with Exchange's details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoapFault {
    /// `faultcode` (`a:ErrorServerBusy`, `soap:Client`).
    pub fault_code: String,
    pub fault_string: String,
    /// `detail/ResponseCode` (`ErrorServerBusy`), when Exchange gave one.
    pub response_code: Option<String>,
    /// `detail/Message`.
    pub message: Option<String>,
    /// `detail/MessageXml` as name/value pairs (`BackOffMilliseconds`).
    pub message_xml: Vec<(String, String)>,
}

impl SoapFault {
    /// The response code, or the local part of the fault code.
    pub fn code(&self) -> &str {
        self.response_code.as_deref().unwrap_or_else(|| {
            self.fault_code
                .rsplit(':')
                .next()
                .unwrap_or(&self.fault_code)
        })
    }

    /// The back-off Exchange asks for (`BackOffMilliseconds`).
    pub fn back_off(&self) -> Option<Duration> {
        back_off_of(&self.message_xml)
    }
}

/// `BackOffMilliseconds` from `MessageXml` values.
pub fn back_off_of(values: &[(String, String)]) -> Option<Duration> {
    values
        .iter()
        .find(|(k, _)| k == "BackOffMilliseconds")
        .and_then(|(_, v)| v.trim().parse::<u64>().ok())
        .map(Duration::from_millis)
}

impl std::fmt::Display for SoapFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Exchange's text, shown in errors and logs: no control characters.
        write!(
            f,
            "{}: {}",
            crate::server_text::sanitize(self.code()),
            crate::server_text::sanitize(self.message.as_deref().unwrap_or(&self.fault_string))
        )?;
        if let Some(b) = self.back_off() {
            write!(f, " (back off {} ms)", b.as_millis())?;
        }
        Ok(())
    }
}

fn malformed(reader: &NsReader<&[u8]>, e: impl std::fmt::Display) -> XmlError {
    XmlError::Malformed {
        position: reader.buffer_position(),
        message: e.to_string(),
    }
}

/// Reads a fault whose start tag was just read, up to its end tag.
pub(crate) fn read_fault(reader: &mut NsReader<&[u8]>) -> Result<SoapFault, XmlError> {
    let mut fault = SoapFault {
        fault_code: String::new(),
        fault_string: String::new(),
        response_code: None,
        message: None,
        message_xml: Vec::new(),
    };
    // Path of local names below soap:Fault, and the text gathered for the
    // innermost element.
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut value_name: Option<String> = None;
    loop {
        match reader.read_event().map_err(|e| malformed(reader, e))? {
            Event::Start(e) => {
                let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                value_name = e.try_get_attribute("Name").ok().flatten().and_then(|a| {
                    a.decode_and_unescape_value(reader.decoder())
                        .ok()
                        .map(|v| v.into_owned())
                });
                path.push(local);
                text.clear();
            }
            Event::Text(t) => text.push_str(&t.decode().map_err(|e| malformed(reader, e))?),
            Event::GeneralRef(r) => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    text.push(c);
                } else if let Some(s) =
                    quick_xml::escape::resolve_predefined_entity(&String::from_utf8_lossy(&r))
                {
                    text.push_str(s);
                }
            }
            Event::End(_) => {
                let Some(local) = path.pop() else {
                    return Ok(fault);
                };
                let value = text.trim().to_owned();
                let parent = path.last().map(String::as_str);
                match (parent, local.as_str()) {
                    (None, "faultcode") => fault.fault_code = value,
                    (None, "faultstring") => fault.fault_string = value,
                    (Some("detail"), "ResponseCode") => fault.response_code = Some(value),
                    (Some("detail"), "Message") => fault.message = Some(value),
                    (Some("MessageXml"), _) => fault
                        .message_xml
                        .push((value_name.take().unwrap_or(local), value)),
                    _ => {}
                }
                text.clear();
            }
            Event::DocType(_) => return Err(XmlError::Doctype),
            Event::Eof => return Err(XmlError::Truncated),
            _ => {}
        }
    }
}
