//! A single-pass reader for `GetUserAvailability` responses: quick-xml
//! events straight into [`MailboxAvailability`] values, with no filtered copy
//! of the body and no generated deserializers in between.
//!
//! It is the replication cycle's hot path (one 0.7 MB response per 100
//! mailboxes), so element names are compared as resolved namespace and
//! local-name bytes against constants, and only values the output keeps are
//! allocated.
//!
//! The generated path (`envelope::read_response` → `filter::copy_element` →
//! xsd-parser deserializers) stays the reference: this reader reproduces its
//! results and errors, which `tests/ews_parse_differential.rs` and the
//! `availability_differential` fuzz target check. That is why it mirrors the
//! filter's order of checks (XML errors while reading the body win over schema
//! errors, which the generated path finds only after the copy is complete) and
//! validates what the deserializers validate (sequence order, required
//! elements, `xs:int`/`xs:short`/`xs:boolean` values) even for data the output
//! drops, such as `WorkingHours`.

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
    is_forbidden_char_ref, read_open_entry, OpenContent, XmlError, FILTER_SCHEMA, PREDEFINED,
};
use crate::operation::{GetUserAvailability, Operation};

const OPERATION: &str = "GetUserAvailability";
const MESSAGES: &[u8] = b"http://schemas.microsoft.com/exchange/services/2006/messages";
const TYPES: &[u8] = b"http://schemas.microsoft.com/exchange/services/2006/types";

/// The elements of the response body this reader knows, by schema type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Response,
    FreeBusyResponseArray,
    FreeBusyResponse,
    ResponseMessage,
    /// `xs:any` content: name/value pairs (`BackOffMilliseconds`).
    MessageXml,
    FreeBusyView,
    CalendarEventArray,
    CalendarEvent,
    CalendarEventDetails,
    WorkingHours,
    TimeZone,
    TimeZoneTime,
    WorkingPeriodArray,
    WorkingPeriod,
    Leaf(Field),
}

/// Simple-typed elements: what their text becomes.
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
    /// `xs:boolean` the output does not keep (`IsReminderSet`).
    Bool,
    /// `xs:int` the output does not keep.
    Int,
    /// `xs:short` the output does not keep.
    Short,
    /// Any text the output does not keep (strings, open enumerations, lists).
    Text,
}

#[derive(Debug, Clone, Copy)]
enum Ns {
    M,
    T,
}

/// One element of a type's `xs:sequence`.
struct Child {
    ns: Ns,
    local: &'static [u8],
    kind: Kind,
    required: bool,
    repeats: bool,
}

const fn child(ns: Ns, local: &'static [u8], kind: Kind, required: bool) -> Child {
    Child {
        ns,
        local,
        kind,
        required,
        repeats: false,
    }
}

const fn list(ns: Ns, local: &'static [u8], kind: Kind) -> Child {
    Child {
        ns,
        local,
        kind,
        required: false,
        repeats: true,
    }
}

use Field as F;
use Kind as K;
use Ns::{M, T};

const TIME_ZONE_TIME: &[Child] = &[
    child(T, b"Bias", K::Leaf(F::Int), true),
    child(T, b"Time", K::Leaf(F::Text), true),
    child(T, b"DayOrder", K::Leaf(F::Short), true),
    child(T, b"Month", K::Leaf(F::Short), true),
    child(T, b"DayOfWeek", K::Leaf(F::Text), true),
    child(T, b"Year", K::Leaf(F::Text), false),
];

/// The declared content of each complex type, in sequence order (from
/// messages.xsd / types.xsd).
fn children(kind: Kind) -> &'static [Child] {
    match kind {
        K::Response => {
            const {
                &[child(
                    M,
                    b"FreeBusyResponseArray",
                    K::FreeBusyResponseArray,
                    false,
                )]
            }
        }
        K::FreeBusyResponseArray => const { &[list(M, b"FreeBusyResponse", K::FreeBusyResponse)] },
        K::FreeBusyResponse => {
            const {
                &[
                    child(M, b"ResponseMessage", K::ResponseMessage, false),
                    child(M, b"FreeBusyView", K::FreeBusyView, false),
                ]
            }
        }
        K::ResponseMessage => {
            const {
                &[
                    child(M, b"MessageText", K::Leaf(F::MessageText), false),
                    child(M, b"ResponseCode", K::Leaf(F::ResponseCode), false),
                    child(M, b"DescriptiveLinkKey", K::Leaf(F::Int), false),
                    child(M, b"MessageXml", K::MessageXml, false),
                ]
            }
        }
        K::FreeBusyView => {
            const {
                &[
                    child(T, b"FreeBusyViewType", K::Leaf(F::Text), true),
                    child(T, b"MergedFreeBusy", K::Leaf(F::Text), false),
                    child(T, b"CalendarEventArray", K::CalendarEventArray, false),
                    child(T, b"WorkingHours", K::WorkingHours, false),
                ]
            }
        }
        K::CalendarEventArray => const { &[list(T, b"CalendarEvent", K::CalendarEvent)] },
        K::CalendarEvent => {
            const {
                &[
                    child(T, b"StartTime", K::Leaf(F::StartTime), true),
                    child(T, b"EndTime", K::Leaf(F::EndTime), true),
                    child(T, b"BusyType", K::Leaf(F::BusyType), true),
                    child(T, b"CalendarEventDetails", K::CalendarEventDetails, false),
                ]
            }
        }
        K::CalendarEventDetails => {
            const {
                &[
                    child(T, b"ID", K::Leaf(F::Id), false),
                    child(T, b"Subject", K::Leaf(F::Subject), false),
                    child(T, b"Location", K::Leaf(F::Location), false),
                    child(T, b"IsMeeting", K::Leaf(F::IsMeeting), false),
                    child(T, b"IsRecurring", K::Leaf(F::IsRecurring), false),
                    child(T, b"IsException", K::Leaf(F::IsException), false),
                    child(T, b"IsReminderSet", K::Leaf(F::Bool), false),
                    child(T, b"IsPrivate", K::Leaf(F::IsPrivate), false),
                ]
            }
        }
        K::WorkingHours => {
            const {
                &[
                    child(T, b"TimeZone", K::TimeZone, true),
                    child(T, b"WorkingPeriodArray", K::WorkingPeriodArray, true),
                ]
            }
        }
        K::TimeZone => {
            const {
                &[
                    child(T, b"Bias", K::Leaf(F::Int), true),
                    child(T, b"StandardTime", K::TimeZoneTime, true),
                    child(T, b"DaylightTime", K::TimeZoneTime, true),
                ]
            }
        }
        K::TimeZoneTime => TIME_ZONE_TIME,
        K::WorkingPeriodArray => const { &[list(T, b"WorkingPeriod", K::WorkingPeriod)] },
        K::WorkingPeriod => {
            const {
                &[
                    child(T, b"DayOfWeek", K::Leaf(F::Text), true),
                    child(T, b"StartTimeInMinutes", K::Leaf(F::Int), true),
                    child(T, b"EndTimeInMinutes", K::Leaf(F::Int), true),
                ]
            }
        }
        K::MessageXml | K::Leaf(_) => const { &[] },
    }
}

fn name_of(kind: Kind) -> &'static str {
    match kind {
        K::Response => "GetUserAvailabilityResponse",
        K::FreeBusyResponseArray => "FreeBusyResponseArray",
        K::FreeBusyResponse => "FreeBusyResponse",
        K::ResponseMessage => "ResponseMessage",
        K::MessageXml => "MessageXml",
        K::FreeBusyView => "FreeBusyView",
        K::CalendarEventArray => "CalendarEventArray",
        K::CalendarEvent => "CalendarEvent",
        K::CalendarEventDetails => "CalendarEventDetails",
        K::WorkingHours => "WorkingHours",
        K::TimeZone => "TimeZone",
        K::TimeZoneTime => "StandardTime/DaylightTime",
        K::WorkingPeriodArray => "WorkingPeriodArray",
        K::WorkingPeriod => "WorkingPeriod",
        K::Leaf(_) => "a simple-typed element",
    }
}

/// An open element: its kind and how far its sequence has got.
struct Frame {
    kind: Kind,
    /// Sequence slots passed (the next child must be at this index or later).
    passed: usize,
    /// Index of the last child seen, which may repeat if it is a list.
    last: Option<usize>,
    /// `ResponseMessage` only: one child out of order was read and dropped.
    dropped_one: bool,
}

/// What to do with a child the sequence accepts.
#[derive(Debug, PartialEq, Eq)]
enum Accepted {
    Keep,
    /// Read and validated, but its value is not used (see `Frame::accept`).
    Drop,
}

impl Frame {
    fn new(kind: Kind) -> Self {
        Frame {
            kind,
            passed: 0,
            last: None,
            dropped_one: false,
        }
    }

    /// Accepts child `index` of the sequence, or says why it is out of place.
    fn accept(&mut self, index: usize) -> Result<Accepted, String> {
        let seq = children(self.kind);
        if self.dropped_one {
            return Err(format!(
                "{} follows an element out of order in {}",
                lossy(seq[index].local),
                name_of(self.kind)
            ));
        }
        // `ResponseMessage`'s content is an optional sequence group; the
        // generated deserializer reads ONE element that would start a second
        // group (out of order, or repeated) and drops it, unless the group
        // ended with `MessageXml`. A reference quirk (the schema refuses such
        // input), reproduced so that both readers agree.
        let out_of_order = self.last == Some(index) || index < self.passed;
        if self.kind == K::ResponseMessage && out_of_order && self.last != Some(seq.len() - 1) {
            self.dropped_one = true;
            return Ok(Accepted::Drop);
        }
        if self.last == Some(index) {
            return if seq[index].repeats {
                Ok(Accepted::Keep)
            } else {
                Err(format!(
                    "{} appears twice in {}",
                    lossy(seq[index].local),
                    name_of(self.kind)
                ))
            };
        }
        if index < self.passed {
            return Err(format!(
                "{} is out of order in {}",
                lossy(seq[index].local),
                name_of(self.kind)
            ));
        }
        if let Some(missing) = seq[self.passed..index].iter().find(|c| c.required) {
            return Err(missing_message(missing, self.kind));
        }
        self.last = Some(index);
        self.passed = index + 1;
        Ok(Accepted::Keep)
    }

    /// At the end tag: every required child must have been seen.
    fn finish(&self) -> Result<(), String> {
        match children(self.kind)[self.passed..]
            .iter()
            .find(|c| c.required)
        {
            Some(missing) => Err(missing_message(missing, self.kind)),
            None => Ok(()),
        }
    }
}

fn missing_message(missing: &Child, parent: Kind) -> String {
    format!("{} is missing in {}", lossy(missing.local), name_of(parent))
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
        let parent = frame.kind;
        let (ns, local) = resolve_strict(reader, e)?;
        if parent == K::MessageXml {
            let owner = "ResponseMessage".to_owned();
            let ordinal = self.response_messages.saturating_sub(1);
            let local = lossy(local).into_owned();
            let entry = read_open_entry(reader, e, &local, empty)?;
            open_content.push(owner, ordinal, entry);
            return Ok(());
        }
        let seq = children(parent);
        let index = ns.and_then(|ns| {
            seq.iter().position(|c| {
                c.local == local
                    && match c.ns {
                        M => ns == MESSAGES,
                        T => ns == TYPES,
                    }
            })
        });
        let Some(index) = index else {
            // Not declared here (a newer server's addition): skip it whole.
            if !empty {
                skip_subtree(reader)?;
            }
            return Ok(());
        };
        let mut kind = seq[index].kind;
        match frame.accept(index) {
            Ok(Accepted::Keep) => {}
            // Validated like the kept element, value unused.
            Ok(Accepted::Drop) => {
                if let K::Leaf(F::MessageText | F::ResponseCode) = kind {
                    kind = K::Leaf(F::Text);
                }
            }
            Err(message) => self.violation(message),
        }
        let [response_class] = declared_attributes(reader, e, [b"ResponseClass"])?;
        match kind {
            K::FreeBusyResponse => {
                if self.answers.len() == self.mailboxes.len() {
                    self.too_many_answers = true;
                    return Ok(());
                }
                self.answer = Answer::default()
            }
            K::ResponseMessage => {
                self.answer.message_ordinal = Some(self.response_messages);
                self.response_messages += 1;
                match response_class.as_deref().map(attribute_text) {
                    Some(Ok(class)) => self.answer.is_error = class.trim() == "Error",
                    Some(Err(message)) => self.violation(format!("ResponseClass: {message}")),
                    None => self.violation("ResponseMessage has no ResponseClass".into()),
                }
            }
            K::CalendarEvent => self.event = PendingEvent::default(),
            K::CalendarEventDetails => self.event.details = Some(EventDetails::default()),
            _ => {}
        }
        self.stack.push(Frame::new(kind));
        self.text.clear();
        if empty {
            self.end();
        }
        Ok(())
    }

    /// Text, CDATA or a reference inside the open element.
    fn text(&mut self, piece: Result<&str, String>, is_cdata: bool) {
        let kind = self.stack.last().expect("inside the body element").kind;
        match (kind, piece) {
            // `xs:any` content: the deserializer ignores text there, without
            // even decoding it.
            (K::MessageXml, _) => {}
            (_, Err(message)) => self.violation(message),
            (K::Leaf(_), Ok(text)) => self.text.push_str(text),
            // Element-only content: the deserializers allow whitespace there
            // and nothing else.
            (_, Ok(_)) if is_cdata => self.violation(format!("CDATA in {}", name_of(kind))),
            (_, Ok(text)) if text.trim().is_empty() => {}
            (_, Ok(text)) => self.violation(format!("text {text:?} in {}", name_of(kind))),
        }
    }

    /// The open element ends.
    fn end(&mut self) {
        let frame = self.stack.pop().expect("inside the body element");
        if let Err(message) = frame.finish() {
            self.violation(message);
        }
        match frame.kind {
            K::Leaf(field) => self.leaf(field),
            K::CalendarEvent => {
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
            K::FreeBusyResponse => {
                let answer = std::mem::take(&mut self.answer);
                self.answers.push(answer);
            }
            _ => {}
        }
    }

    fn leaf(&mut self, field: Field) {
        let text = std::mem::take(&mut self.text);
        // The deserializers trim ASCII whitespace around simple content.
        let value = text.trim_ascii();
        if let Err(message) = self.store(field, value) {
            self.violation(message);
        }
        self.text = text;
    }

    fn details(&mut self) -> &mut EventDetails {
        self.event.details.get_or_insert_with(Default::default)
    }

    fn store(&mut self, field: Field, value: &str) -> Result<(), String> {
        let bool_value = |v: &str| match v {
            "TRUE" | "True" | "true" | "YES" | "Yes" | "yes" | "1" => Ok(true),
            "FALSE" | "False" | "false" | "NO" | "No" | "no" | "0" => Ok(false),
            other => Err(format!("invalid xs:boolean {other:?}")),
        };
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
            F::Bool => {
                bool_value(value)?;
            }
            F::Int => {
                value
                    .parse::<i32>()
                    .map_err(|e| format!("invalid xs:int {value:?}: {e}"))?;
            }
            F::Short => {
                value
                    .parse::<i16>()
                    .map_err(|e| format!("invalid xs:short {value:?}: {e}"))?;
            }
            F::Text => {}
        }
        Ok(())
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
    body.stack.push(Frame::new(K::Response));
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
                let in_leaf = matches!(
                    body.stack.last(),
                    Some(Frame {
                        kind: K::Leaf(_),
                        ..
                    })
                );
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

    fn text(bytes: &[u8]) -> String {
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// `children` restates the response's types by hand (with what the
    /// generated filter table lacks: required, repeats, what a value
    /// becomes); the filter table is generated from `wsdl/`. Both must name
    /// the same children in the same order, down the whole response, or this
    /// reader and the generated path read different schemas.
    #[test]
    fn the_sequence_table_names_what_the_generated_schema_declares() {
        fn walk(kind: Kind, ty: usize, path: &str) {
            let declared = &FILTER_SCHEMA.types[ty];
            match kind {
                K::MessageXml => {
                    assert!(declared.any_children, "{path} has xs:any content");
                    return;
                }
                K::Leaf(_) => {
                    assert!(
                        declared.children.is_empty() && !declared.any_children,
                        "{path} is simple-typed in the generated table too"
                    );
                    return;
                }
                _ => {}
            }
            // A child named twice in the generated table (a choice) counts once.
            let mut generated: Vec<(&str, &str, usize)> = Vec::new();
            for child in declared.children {
                if !generated.contains(child) {
                    generated.push(*child);
                }
            }
            let ours: Vec<(String, String)> = children(kind)
                .iter()
                .map(|c| {
                    let ns = match c.ns {
                        M => MESSAGES,
                        T => TYPES,
                    };
                    (text(ns), text(c.local))
                })
                .collect();
            let theirs: Vec<(String, String)> = generated
                .iter()
                .map(|(ns, local, _)| (ns.to_string(), local.to_string()))
                .collect();
            assert_eq!(ours, theirs, "children of {path}");
            for (child, (_, local, ty)) in children(kind).iter().zip(&generated) {
                walk(child.kind, *ty, &format!("{path}/{local}"));
            }
        }
        let root = FILTER_SCHEMA
            .root_type(&text(MESSAGES), "GetUserAvailabilityResponse")
            .expect("the response is a root of the generated table");
        walk(K::Response, root, "GetUserAvailabilityResponse");
    }
}
