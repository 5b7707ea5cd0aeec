//! A single-pass reader for `GetUserAvailability` responses: quick-xml
//! events straight into [`MailboxAvailability`] values, with no filtered copy
//! of the body and no generated deserializers in between.
//!
//! It is the replication cycle's hot path (one 0.7 MB response per 100
//! mailboxes), so element names are compared as resolved namespace and
//! local-name bytes, and only values the output keeps are allocated.
//!
//! What the response may hold (each type's children in sequence order, which
//! are required and which repeat, what each simple value is) is not written
//! here: the reader walks `FILTER_SCHEMA`, the table codegen derives from
//! xsd-parser's interpretation of the schema, the same one the generated
//! bindings and the unknown-content filter come from. This file says only
//! which values the output keeps (`role_of`).
//!
//! The generated path (`envelope::read_response` → `filter::copy_element` →
//! xsd-parser deserializers) is the reference: `tests/ews_parse_differential.rs`
//! and the `availability_differential` fuzz target check that both give the
//! same results and errors. This reader mirrors the filter's order of checks
//! (XML errors while reading the body win over schema errors, which the
//! generated path finds only after the copy is complete) and validates what
//! the schema says even for data the output drops, such as `WorkingHours`.
//! Where the generated deserializer departs from the schema, the schema
//! decides; the differential test lists those divergences
//! (`KNOWN_DIVERGENCES`).

use chrono::{DateTime, FixedOffset, Utc};
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use super::{
    parse_date_time, AvailabilityError, BusyType, CalendarEvent, EventDetails, MailboxAvailability,
    MailboxError,
};
use crate::envelope::{
    copy_header, read_server_version, walk_envelope, EnvelopeError, EnvelopeVisitor, Response,
    ServerVersion, TYPES_NS,
};
use crate::fault::back_off_of;
use crate::filter::{
    is_forbidden_char_ref, read_open_entry, FilterType, OpenContent, ValueKind, XmlError,
    FILTER_SCHEMA, PREDEFINED,
};
use crate::operation::{GetUserAvailability, Operation};

const OPERATION: &str = "GetUserAvailability";

/// What the output makes of an element. The schema (the generated table)
/// says what each element may hold, in which order and how often, and what
/// its text is; this says only which values the output keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Read and validated, not kept.
    Other,
    FreeBusyResponse,
    ResponseMessage,
    CalendarEvent,
    CalendarEventDetails,
    Value(Field),
}

/// Simple-typed elements whose text the output keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    MessageText,
    ResponseCode,
    StartTime,
    EndTime,
    BusyType,
    Id,
    Subject,
    Location,
    IsMeeting,
    IsRecurring,
    IsException,
    IsPrivate,
}

/// The role of the child `local` of an element in role `parent`.
fn role_of(parent: Role, local: &[u8]) -> Role {
    use Field as F;
    match (parent, local) {
        (_, b"FreeBusyResponse") => Role::FreeBusyResponse,
        (Role::FreeBusyResponse, b"ResponseMessage") => Role::ResponseMessage,
        (_, b"CalendarEvent") => Role::CalendarEvent,
        (Role::CalendarEvent, b"CalendarEventDetails") => Role::CalendarEventDetails,
        (Role::ResponseMessage, b"MessageText") => Role::Value(F::MessageText),
        (Role::ResponseMessage, b"ResponseCode") => Role::Value(F::ResponseCode),
        (Role::CalendarEvent, b"StartTime") => Role::Value(F::StartTime),
        (Role::CalendarEvent, b"EndTime") => Role::Value(F::EndTime),
        (Role::CalendarEvent, b"BusyType") => Role::Value(F::BusyType),
        (Role::CalendarEventDetails, b"ID") => Role::Value(F::Id),
        (Role::CalendarEventDetails, b"Subject") => Role::Value(F::Subject),
        (Role::CalendarEventDetails, b"Location") => Role::Value(F::Location),
        (Role::CalendarEventDetails, b"IsMeeting") => Role::Value(F::IsMeeting),
        (Role::CalendarEventDetails, b"IsRecurring") => Role::Value(F::IsRecurring),
        (Role::CalendarEventDetails, b"IsException") => Role::Value(F::IsException),
        (Role::CalendarEventDetails, b"IsPrivate") => Role::Value(F::IsPrivate),
        _ => Role::Other,
    }
}

/// An open element: its type in the generated table, its role, and how far
/// its sequence has got.
struct Frame {
    /// Index of its type in `FILTER_SCHEMA`.
    ty: usize,
    /// Its local name, for messages.
    name: &'static str,
    role: Role,
    /// Sequence slots passed (the next child must be at this index or later).
    passed: usize,
    /// Index of the last child seen, which may repeat if it is a list.
    last: Option<usize>,
}

impl Frame {
    fn new(ty: usize, name: &'static str, role: Role) -> Self {
        Frame {
            ty,
            name,
            role,
            passed: 0,
            last: None,
        }
    }

    fn declared(&self) -> &'static FilterType {
        &FILTER_SCHEMA.types[self.ty]
    }

    /// Accepts child `index` of the sequence, or says why it is out of place.
    fn accept(&mut self, index: usize) -> Result<(), String> {
        let declared = self.declared();
        let child = declared.children[index].1;
        if self.last == Some(index) {
            return if declared.occurs[index].repeats {
                Ok(())
            } else {
                Err(format!("{child} appears twice in {}", self.name))
            };
        }
        if index < self.passed {
            return Err(format!("{child} is out of order in {}", self.name));
        }
        self.missing_in(self.passed..index)?;
        self.last = Some(index);
        self.passed = index + 1;
        Ok(())
    }

    /// At the end tag: every required child must have been seen.
    fn finish(&self) -> Result<(), String> {
        self.missing_in(self.passed..self.declared().children.len())
    }

    fn missing_in(&self, slots: std::ops::Range<usize>) -> Result<(), String> {
        let declared = self.declared();
        match slots.into_iter().find(|i| declared.occurs[*i].required) {
            Some(i) => Err(format!(
                "{} is missing in {}",
                declared.children[i].1, self.name
            )),
            None => Ok(()),
        }
    }
}

fn lossy(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

fn malformed(reader: &NsReader<&[u8]>, e: impl std::fmt::Display) -> XmlError {
    XmlError::Malformed {
        position: reader.buffer_position(),
        message: e.to_string(),
    }
}

/// The namespace of an element as the filter resolves it: an undeclared
/// prefix is malformed XML.
fn resolve_strict<'a>(
    reader: &'a NsReader<&[u8]>,
    start: &'a BytesStart<'_>,
) -> Result<(Option<&'a [u8]>, &'a [u8]), XmlError> {
    let (result, local) = reader.resolver().resolve_element(start.name());
    let local = local.into_inner();
    match result {
        ResolveResult::Bound(ns) => Ok((Some(ns.into_inner()), local)),
        ResolveResult::Unbound => Ok((None, local)),
        ResolveResult::Unknown(p) => Err(malformed(
            reader,
            format!("undeclared namespace prefix {}", lossy(&p)),
        )),
    }
}

/// Checks every attribute of a kept element (as the filter's copy does) and
/// returns the unprefixed ones named in `declared`, raw.
fn declared_attributes<'a, const N: usize>(
    reader: &NsReader<&[u8]>,
    start: &'a BytesStart<'_>,
    declared: [&[u8]; N],
) -> Result<[Option<std::borrow::Cow<'a, [u8]>>; N], XmlError> {
    let mut found: [Option<std::borrow::Cow<'a, [u8]>>; N] = std::array::from_fn(|_| None);
    for attr in start.attributes() {
        let attr = attr.map_err(|e| malformed(reader, e))?;
        let key = attr.key.into_inner();
        if let Some(i) = declared.iter().position(|d| *d == key) {
            found[i] = Some(attr.value);
        }
    }
    Ok(found)
}

/// An attribute value as the deserializer reads it: UTF-8, unescaped.
fn attribute_text(raw: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(raw).map_err(|e| e.to_string())?;
    quick_xml::escape::unescape(text)
        .map(|v| v.into_owned())
        .map_err(|e| e.to_string())
}

/// What one `FreeBusyResponse` has said so far.
#[derive(Default)]
struct Answer {
    /// `ResponseClass="Error"`: the events (if any) are not used.
    is_error: bool,
    /// Ordinal of its `ResponseMessage` among all of them (open content key).
    message_ordinal: Option<usize>,
    code: Option<String>,
    message: Option<String>,
    events: Vec<CalendarEvent>,
}

/// The event being read.
#[derive(Default)]
struct PendingEvent {
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    busy_type: Option<BusyType>,
    details: Option<EventDetails>,
}

struct BodyReader<'m> {
    mailboxes: &'m [String],
    naive_offset: FixedOffset,
    stack: Vec<Frame>,
    /// Text of the open simple-typed element, reused between elements.
    text: String,
    /// The first schema violation; reported only if the XML itself is sound,
    /// as the generated path validates after its copy.
    schema_error: Option<String>,
    /// The first invalid time of a mailbox that is not an error (reported
    /// after the count check, as the generated path does).
    invalid_time: Option<AvailabilityError>,
    answers: Vec<Answer>,
    answer: Answer,
    event: PendingEvent,
    response_messages: usize,
    /// A `FreeBusyResponse` began after one per mailbox had been read: the
    /// rest is not read (a hostile server could send a long document of
    /// answers nobody asked for).
    too_many_answers: bool,
}

impl BodyReader<'_> {
    fn violation(&mut self, message: String) {
        if self.schema_error.is_none() {
            self.schema_error = Some(message);
        }
    }

    /// A child start tag inside the open element. Returns the kind to push
    /// (for a start tag) or `None` when the element was consumed.
    fn start(
        &mut self,
        reader: &mut NsReader<&[u8]>,
        open_content: &mut OpenContent,
        e: &BytesStart<'_>,
        empty: bool,
    ) -> Result<(), XmlError> {
        let frame = self.stack.last_mut().expect("inside the body element");
        let declared = frame.declared();
        let (ns, local) = resolve_strict(reader, e)?;
        if declared.any_children {
            let owner = "ResponseMessage".to_owned();
            let ordinal = self.response_messages.saturating_sub(1);
            let local = lossy(local).into_owned();
            let entry = read_open_entry(reader, e, &local, empty)?;
            open_content.push(owner, ordinal, entry);
            return Ok(());
        }
        let index = ns.and_then(|ns| {
            declared
                .children
                .iter()
                .position(|(cns, clocal, _)| clocal.as_bytes() == local && cns.as_bytes() == ns)
        });
        let Some(index) = index else {
            // Not declared here (a newer server's addition): skip it whole.
            if !empty {
                skip_subtree(reader)?;
            }
            return Ok(());
        };
        let (_, name, ty) = declared.children[index];
        let role = role_of(frame.role, local);
        if let Err(message) = frame.accept(index) {
            self.violation(message);
        }
        let [response_class] = declared_attributes(reader, e, [b"ResponseClass"])?;
        match role {
            Role::FreeBusyResponse => {
                if self.answers.len() == self.mailboxes.len() {
                    self.too_many_answers = true;
                    return Ok(());
                }
                self.answer = Answer::default()
            }
            Role::ResponseMessage => {
                self.answer.message_ordinal = Some(self.response_messages);
                self.response_messages += 1;
                match response_class.as_deref().map(attribute_text) {
                    Some(Ok(class)) => self.answer.is_error = class.trim() == "Error",
                    Some(Err(message)) => self.violation(format!("ResponseClass: {message}")),
                    None => self.violation("ResponseMessage has no ResponseClass".into()),
                }
            }
            Role::CalendarEvent => self.event = PendingEvent::default(),
            Role::CalendarEventDetails => self.event.details = Some(EventDetails::default()),
            _ => {}
        }
        self.stack.push(Frame::new(ty, name, role));
        self.text.clear();
        if empty {
            self.end();
        }
        Ok(())
    }

    /// Text, CDATA or a reference inside the open element.
    fn text(&mut self, piece: Result<&str, String>, is_cdata: bool) {
        let frame = self.stack.last().expect("inside the body element");
        let (declared, name) = (frame.declared(), frame.name);
        match piece {
            // `xs:any` content: the deserializer ignores text there, without
            // even decoding it.
            _ if declared.any_children => {}
            Err(message) => self.violation(message),
            Ok(text) if declared.value != ValueKind::Complex => self.text.push_str(text),
            // Element-only content: the deserializers allow whitespace there
            // and nothing else.
            Ok(_) if is_cdata => self.violation(format!("CDATA in {name}")),
            Ok(text) if text.trim().is_empty() => {}
            Ok(text) => self.violation(format!("text {text:?} in {name}")),
        }
    }

    /// The open element ends.
    fn end(&mut self) {
        let frame = self.stack.pop().expect("inside the body element");
        if let Err(message) = frame.finish() {
            self.violation(message);
        }
        let value = frame.declared().value;
        if value != ValueKind::Complex {
            self.leaf(value, frame.role);
        }
        match frame.role {
            Role::CalendarEvent => {
                let event = std::mem::take(&mut self.event);
                if let (Some(start), Some(end), Some(busy_type)) =
                    (event.start, event.end, event.busy_type)
                {
                    self.answer.events.push(CalendarEvent {
                        start,
                        end,
                        busy_type,
                        details: event.details,
                    });
                }
            }
            Role::FreeBusyResponse => {
                let answer = std::mem::take(&mut self.answer);
                self.answers.push(answer);
            }
            _ => {}
        }
    }

    fn leaf(&mut self, kind: ValueKind, role: Role) {
        let text = std::mem::take(&mut self.text);
        // The deserializers trim ASCII whitespace around simple content.
        let value = text.trim_ascii();
        let checked = check_value(kind, value).and_then(|()| match role {
            Role::Value(field) => self.store(field, value),
            _ => Ok(()),
        });
        if let Err(message) = checked {
            self.violation(message);
        }
        self.text = text;
    }

    fn details(&mut self) -> &mut EventDetails {
        self.event.details.get_or_insert_with(Default::default)
    }

    fn store(&mut self, field: Field, value: &str) -> Result<(), String> {
        use Field as F;
        match field {
            F::MessageText => self.answer.message = Some(value.to_owned()),
            F::ResponseCode => self.answer.code = Some(value.trim().to_owned()),
            F::StartTime | F::EndTime => {
                let time = parse_date_time(value, self.naive_offset);
                if time.is_none() && !self.answer.is_error && self.invalid_time.is_none() {
                    if let Some(mailbox) = self.mailboxes.get(self.answers.len()) {
                        self.invalid_time = Some(AvailabilityError::InvalidTime {
                            mailbox: mailbox.clone(),
                            value: value.to_owned(),
                        });
                    }
                }
                if field == F::StartTime {
                    self.event.start = time;
                } else {
                    self.event.end = time;
                }
            }
            F::BusyType => self.event.busy_type = Some(BusyType::parse(value)),
            F::Id => self.details().id = Some(value.to_owned()),
            F::Subject => self.details().subject = Some(value.to_owned()),
            F::Location => self.details().location = Some(value.to_owned()),
            F::IsMeeting => self.details().is_meeting = bool_value(value)?,
            F::IsRecurring => self.details().is_recurring = bool_value(value)?,
            F::IsException => self.details().is_exception = bool_value(value)?,
            F::IsPrivate => self.details().is_private = bool_value(value)?,
        }
        Ok(())
    }
}

/// An `xs:boolean` as the deserializers read it.
fn bool_value(value: &str) -> Result<bool, String> {
    match value {
        "TRUE" | "True" | "true" | "YES" | "Yes" | "yes" | "1" => Ok(true),
        "FALSE" | "False" | "false" | "NO" | "No" | "no" | "0" => Ok(false),
        other => Err(format!("invalid xs:boolean {other:?}")),
    }
}

/// Checks a simple value as the schema types it.
fn check_value(kind: ValueKind, value: &str) -> Result<(), String> {
    match kind {
        ValueKind::Boolean => bool_value(value).map(drop),
        ValueKind::Int => value
            .parse::<i32>()
            .map(drop)
            .map_err(|e| format!("invalid xs:int {value:?}: {e}")),
        ValueKind::Short => value
            .parse::<i16>()
            .map(drop)
            .map_err(|e| format!("invalid xs:short {value:?}: {e}")),
        ValueKind::Text | ValueKind::Complex => Ok(()),
    }
}

/// Skips the rest of an undeclared element as the filter does: only start
/// and end tags count, nothing inside is checked.
fn skip_subtree(reader: &mut NsReader<&[u8]>) -> Result<(), XmlError> {
    let mut depth = 1usize;
    while depth > 0 {
        match reader.read_event().map_err(|e| malformed(reader, e))? {
            Event::Start(_) => depth += 1,
            Event::End(_) => depth -= 1,
            Event::Eof => return Err(XmlError::Truncated),
            _ => {}
        }
    }
    Ok(())
}

/// Reads the body element whose start tag was just read, up to its end tag.
fn read_body(
    reader: &mut NsReader<&[u8]>,
    start: &BytesStart<'_>,
    empty: bool,
    body: &mut BodyReader<'_>,
    open_content: &mut OpenContent,
) -> Result<(), XmlError> {
    declared_attributes(reader, start, [])?;
    if empty {
        return Ok(());
    }
    let root = &GetUserAvailability::RESPONSE_ELEMENT;
    let Some(ty) = FILTER_SCHEMA.root_type(root.namespace, root.local) else {
        return Err(XmlError::UnexpectedRoot {
            namespace: root.namespace.into(),
            local: root.local.into(),
        });
    };
    body.stack.push(Frame::new(ty, root.local, Role::Other));
    while !body.stack.is_empty() && !body.too_many_answers {
        match reader.read_event().map_err(|e| malformed(reader, e))? {
            Event::Start(ref e) => body.start(reader, open_content, e, false)?,
            Event::Empty(ref e) => body.start(reader, open_content, e, true)?,
            Event::End(_) => body.end(),
            Event::Text(t) => {
                let piece = t.decode();
                body.text(piece.as_deref().map_err(|e| e.to_string()), false);
            }
            Event::CData(c) => {
                let piece = c.decode();
                body.text(piece.as_deref().map_err(|e| e.to_string()), true);
            }
            Event::GeneralRef(r) => {
                if is_forbidden_char_ref(&r) {
                    continue;
                }
                let in_leaf = body
                    .stack
                    .last()
                    .is_some_and(|f| f.declared().value != ValueKind::Complex);
                if !r.starts_with(b"#") && !PREDEFINED.contains(&r.as_ref()) {
                    return Err(XmlError::UnknownEntity(lossy(&r).into_owned()));
                }
                if !in_leaf {
                    // Between elements the deserializers ignore references.
                    continue;
                }
                if r.starts_with(b"#") {
                    let resolved =
                        std::str::from_utf8(&r)
                            .map_err(|e| e.to_string())
                            .and_then(|name| {
                                quick_xml::escape::unescape(&format!("&{name};"))
                                    .map(|v| v.into_owned())
                                    .map_err(|e| e.to_string())
                            });
                    body.text(resolved.as_deref().map_err(Clone::clone), false);
                } else if let Some(i) = PREDEFINED.iter().position(|p| **p == *r) {
                    body.text(Ok(["<", ">", "&", "'", "\""][i]), false);
                }
            }
            Event::DocType(_) => return Err(XmlError::Doctype),
            Event::Eof => return Err(XmlError::Truncated),
            Event::Comment(_) | Event::PI(_) | Event::Decl(_) => {}
        }
    }
    Ok(())
}

/// The fast reader's side of the one envelope walk: the body in one pass,
/// the headers as the generated path reads them (they are small).
struct FastVisitor<'m> {
    body: BodyReader<'m>,
    open_content: OpenContent,
    /// Outcome of each ServerVersionInfo header, in order: reported after
    /// the body's schema errors, as the generated path does.
    versions: Vec<Result<ServerVersion, EnvelopeError>>,
}

impl EnvelopeVisitor for FastVisitor<'_> {
    type Output = ();
    type Error = AvailabilityError;

    fn header(
        &mut self,
        reader: &mut NsReader<&[u8]>,
        start: &BytesStart<'_>,
        empty: bool,
        name: (&str, &str),
    ) -> Result<(), AvailabilityError> {
        let copy = copy_header(
            reader,
            start,
            empty,
            name,
            &FILTER_SCHEMA,
            &mut self.open_content,
        )
        .map_err(EnvelopeError::from)?;
        if let (true, Some(copy)) = (name == (TYPES_NS, "ServerVersionInfo"), copy) {
            self.versions.push(
                read_server_version::<crate::types::ServerVersionInfoElement>(OPERATION, &copy),
            );
        }
        Ok(())
    }

    fn body(
        &mut self,
        reader: &mut NsReader<&[u8]>,
        start: &BytesStart<'_>,
        empty: bool,
    ) -> Result<(), AvailabilityError> {
        read_body(reader, start, empty, &mut self.body, &mut self.open_content)
            .map_err(EnvelopeError::from)?;
        if self.body.too_many_answers {
            return Err(AvailabilityError::TooManyAnswers {
                asked: self.body.mailboxes.len(),
            });
        }
        Ok(())
    }
}

/// Parses a GetUserAvailability response in one pass (see the module
/// documentation); same results and errors as the generated path.
pub(crate) fn parse_response(
    mailboxes: &[String],
    xml: &[u8],
    naive_offset: FixedOffset,
) -> Result<(Vec<MailboxAvailability>, Response<()>), AvailabilityError> {
    let mut visitor = FastVisitor {
        body: BodyReader {
            mailboxes,
            naive_offset,
            stack: Vec::with_capacity(16),
            text: String::with_capacity(256),
            schema_error: None,
            invalid_time: None,
            answers: Vec::with_capacity(mailboxes.len()),
            answer: Answer::default(),
            event: PendingEvent::default(),
            response_messages: 0,
            too_many_answers: false,
        },
        open_content: OpenContent::default(),
        versions: Vec::new(),
    };
    walk_envelope(
        &mut NsReader::from_reader(xml),
        OPERATION,
        GetUserAvailability::RESPONSE_ELEMENT,
        &mut visitor,
    )?;
    let FastVisitor {
        body,
        open_content,
        versions,
    } = visitor;
    // Checks in the generated path's order: body schema, header schema,
    // mailbox count, times.
    let deserialize = |message: String| {
        AvailabilityError::Envelope(EnvelopeError::Deserialize {
            operation: OPERATION,
            message,
        })
    };
    if let Some(message) = body.schema_error {
        return Err(deserialize(message));
    }
    let mut server_version = None;
    for version in versions {
        server_version = Some(version?);
    }
    if body.answers.len() != mailboxes.len() {
        return Err(AvailabilityError::CountMismatch {
            asked: mailboxes.len(),
            answered: body.answers.len(),
        });
    }
    if let Some(error) = body.invalid_time {
        return Err(error);
    }
    let out = mailboxes
        .iter()
        .zip(body.answers)
        .map(|(mailbox, answer)| MailboxAvailability {
            mailbox: mailbox.clone(),
            result: if answer.is_error {
                let ordinal = answer.message_ordinal.unwrap_or(0);
                Err(MailboxError {
                    code: answer.code.unwrap_or_else(|| "ErrorUnknown".into()),
                    message: answer.message,
                    back_off: back_off_of(open_content.values("ResponseMessage", ordinal)),
                })
            } else {
                Ok(answer.events)
            },
        })
        .collect();
    Ok((
        out,
        Response {
            body: (),
            server_version,
            open_content,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values the output keeps are named by element; the schema must
    /// declare each where the reader looks for it, as a simple type, or the
    /// value would silently never be read.
    #[test]
    fn every_kept_value_is_declared_by_the_schema_where_the_reader_looks() {
        fn walk(ty: usize, role: Role, path: &str, found: &mut Vec<String>) {
            if path.matches('/').count() > 8 {
                return;
            }
            for (_, local, child) in FILTER_SCHEMA.types[ty].children {
                let child_role = role_of(role, local.as_bytes());
                if let Role::Value(_) = child_role {
                    assert_ne!(
                        FILTER_SCHEMA.types[*child].value,
                        ValueKind::Complex,
                        "{path}/{local} is simple-typed"
                    );
                }
                found.push(format!("{child_role:?}"));
                walk(*child, child_role, &format!("{path}/{local}"), found);
            }
        }
        let root = &GetUserAvailability::RESPONSE_ELEMENT;
        let ty = FILTER_SCHEMA.root_type(root.namespace, root.local).unwrap();
        let mut found = Vec::new();
        // FreeBusyResponse is below FreeBusyResponseArray (role Other)
        for (_, local, child) in FILTER_SCHEMA.types[ty].children {
            walk(
                *child,
                role_of(Role::Other, local.as_bytes()),
                local,
                &mut found,
            );
        }
        for role in [
            "FreeBusyResponse",
            "ResponseMessage",
            "CalendarEvent",
            "CalendarEventDetails",
            "Value(MessageText)",
            "Value(ResponseCode)",
            "Value(StartTime)",
            "Value(EndTime)",
            "Value(BusyType)",
            "Value(Id)",
            "Value(Subject)",
            "Value(Location)",
            "Value(IsMeeting)",
            "Value(IsRecurring)",
            "Value(IsException)",
            "Value(IsPrivate)",
        ] {
            assert!(
                found.iter().any(|f| f == role),
                "{role} not reached: {found:?}"
            );
        }
    }
}
