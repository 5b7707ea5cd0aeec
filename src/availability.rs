//! `GetUserAvailability` with plain Rust types: mailboxes and a UTC window in,
//! each mailbox's events (or its own error) out.

use chrono::{DateTime, FixedOffset, NaiveDateTime, SecondsFormat, Utc};

use super::envelope::{read_response, write_request, EnvelopeError, RequestHeaders, Response};
use super::fault::back_off_of;
use super::operation::GetUserAvailability;
use super::response_message::wire;
use super::types;

mod fast_parser;

/// Exchange's limit on mailboxes per `GetUserAvailability` request.
pub const MAX_MAILBOXES_PER_REQUEST: usize = 100;
/// Exchange's limit on the time window of one request, in days.
pub const MAX_WINDOW_DAYS: i64 = 42;

/// What an event blocks, as Exchange reports it (`LegacyFreeBusyType`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BusyType {
    Free,
    Tentative,
    Busy,
    OutOfOffice,
    WorkingElsewhere,
    NoData,
    /// A value this client does not know (a newer server's).
    Other(String),
}

impl BusyType {
    pub fn parse(value: &str) -> BusyType {
        match value.trim() {
            "Free" => BusyType::Free,
            "Tentative" => BusyType::Tentative,
            "Busy" => BusyType::Busy,
            "OOF" => BusyType::OutOfOffice,
            "WorkingElsewhere" => BusyType::WorkingElsewhere,
            "NoData" => BusyType::NoData,
            other => BusyType::Other(other.to_owned()),
        }
    }
}

/// One calendar event of a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarEvent {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub busy_type: BusyType,
    /// Present when the account may see details (`Detailed` view).
    pub details: Option<EventDetails>,
}

/// `CalendarEventDetails`: only what the server chose to reveal.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventDetails {
    pub id: Option<String>,
    pub subject: Option<String>,
    pub location: Option<String>,
    pub is_meeting: bool,
    pub is_recurring: bool,
    pub is_exception: bool,
    pub is_private: bool,
}

/// A mailbox-level error inside a successful response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxError {
    /// `ResponseCode` (`ErrorMailRecipientNotFound`).
    pub code: String,
    pub message: Option<String>,
    /// `BackOffMilliseconds`, for `ErrorServerBusy`.
    pub back_off: Option<std::time::Duration>,
}

impl std::fmt::Display for MailboxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Exchange's text, shown in errors, logs and `status`: no control
        // characters.
        write!(f, "{}", crate::server_text::sanitize(&self.code))?;
        if let Some(m) = &self.message {
            write!(f, ": {}", crate::server_text::sanitize(m))?;
        }
        Ok(())
    }
}

/// The answer for one mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxAvailability {
    pub mailbox: String,
    pub result: Result<Vec<CalendarEvent>, MailboxError>,
}

/// Detail the request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AvailabilityView {
    FreeBusy,
    #[default]
    Detailed,
    DetailedMerged,
}

/// Builds the request envelope for up to 100 mailboxes and a window of up to
/// 42 days (the caller splits larger sets). Times are sent in UTC with a
/// zero-bias `TimeZone`, so the naive times Exchange answers with are UTC.
pub fn request(
    headers: &RequestHeaders,
    mailboxes: &[String],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    view: AvailabilityView,
) -> Result<Vec<u8>, EnvelopeError> {
    let utc_transition = |month: i16| types::SerializableTimeZoneTime {
        bias: 0,
        time: "00:00:00".into(),
        day_order: 1,
        month,
        day_of_week: types::DayOfWeekType::String("Sunday".into()),
        year: None,
    };
    let view = match view {
        AvailabilityView::FreeBusy => "FreeBusy",
        AvailabilityView::Detailed => "Detailed",
        AvailabilityView::DetailedMerged => "DetailedMerged",
    };
    let body = types::GetUserAvailabilityRequestType {
        time_zone: Some(types::SerializableTimeZone {
            bias: 0,
            standard_time: utc_transition(10),
            daylight_time: utc_transition(3),
        }),
        mailbox_data_array: types::ArrayOfMailboxData {
            mailbox_data: mailboxes
                .iter()
                .map(|address| types::MailboxData {
                    email: types::EmailAddress {
                        name: None,
                        address: address.clone(),
                        routing_type: Some("SMTP".into()),
                    },
                    attendee_type: types::MeetingAttendeeType::String("Required".into()),
                    exclude_conflicts: Some(false),
                })
                .collect(),
        },
        free_busy_view_options: Some(types::FreeBusyViewOptionsType {
            time_window: types::Duration {
                start_time: naive_utc(start),
                end_time: naive_utc(end),
            },
            merged_free_busy_interval_in_minutes: Some(30),
            requested_view: Some(types::FreeBusyViewType(vec![
                types::FreeBusyViewItem::String(view.into()),
            ])),
        }),
    };
    write_request::<GetUserAvailability>(headers, &body)
}

fn naive_utc(t: DateTime<Utc>) -> String {
    t.naive_utc().format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// Parses `xs:dateTime` as Exchange sends it: with `Z`, with an offset, or
/// naive (then in `naive_offset`, the zone the request asked for).
pub fn parse_date_time(value: &str, naive_offset: FixedOffset) -> Option<DateTime<Utc>> {
    let value = value.trim();
    let naive = match plain_date_time(value) {
        Some(naive) => naive,
        None => {
            if let Ok(t) = DateTime::parse_from_rfc3339(value) {
                return Some(t.with_timezone(&Utc));
            }
            NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S%.f").ok()?
        }
    };
    naive
        .and_local_timezone(naive_offset)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

/// `YYYY-MM-DDTHH:MM:SS` exactly, the form Exchange uses for every event
/// time, without chrono's format-string parser (a quarter of the parse time
/// of a large response). Anything else is left to the general parsers.
fn plain_date_time(value: &str) -> Option<NaiveDateTime> {
    let b = value.as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        b[range].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let date = chrono::NaiveDate::from_ymd_opt(
        i32::try_from(number(0..4)?).ok()?,
        number(5..7)?,
        number(8..10)?,
    )?;
    date.and_hms_opt(number(11..13)?, number(14..16)?, number(17..19)?)
}

/// Formats a time as Exchange's `xs:dateTime` in UTC.
pub fn format_date_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Why a response could not be turned into availability.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AvailabilityError {
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error("Exchange answered for {answered} mailboxes but {asked} were asked for")]
    CountMismatch { asked: usize, answered: usize },
    /// Checked while reading, so that the rest of the document is not read.
    #[error("Exchange answered for more than the {asked} mailboxes asked for; the rest of the response was not read (a server answers once per mailbox asked for)")]
    TooManyAnswers { asked: usize },
    #[error("mailbox {mailbox}: invalid time {value:?}")]
    InvalidTime { mailbox: String, value: String },
}

/// Turns the response to a request for `mailboxes` into per-mailbox results.
/// `naive_offset` is the offset of the time zone the request named (UTC for
/// requests made by [`request`]): Exchange sends times without an offset.
///
/// One streaming pass over the bytes; gives the same results and errors as
/// [`parse_response_generated`], the reference it is tested against.
pub fn parse_response(
    mailboxes: &[String],
    xml: &[u8],
    naive_offset: FixedOffset,
) -> Result<(Vec<MailboxAvailability>, Response<()>), AvailabilityError> {
    fast_parser::parse_response(mailboxes, xml, naive_offset)
}

/// [`parse_response`] through the generated bindings (filtered copy, then
/// xsd-parser's deserializers): slower, kept as the reference the streaming
/// reader is compared with (differential tests, fuzzing, benchmark).
#[doc(hidden)]
pub fn parse_response_generated(
    mailboxes: &[String],
    xml: &[u8],
    naive_offset: FixedOffset,
) -> Result<(Vec<MailboxAvailability>, Response<()>), AvailabilityError> {
    let response = read_response::<GetUserAvailability>(xml)?;
    let answers = response
        .body
        .free_busy_response_array
        .map(|a| a.free_busy_response)
        .unwrap_or_default();
    if answers.len() > mailboxes.len() {
        return Err(AvailabilityError::TooManyAnswers {
            asked: mailboxes.len(),
        });
    }
    if answers.len() != mailboxes.len() {
        return Err(AvailabilityError::CountMismatch {
            asked: mailboxes.len(),
            answered: answers.len(),
        });
    }
    let mut out = Vec::with_capacity(answers.len());
    let mut message_ordinal = 0;
    for (mailbox, answer) in mailboxes.iter().zip(answers) {
        if let Some(message) = &answer.response_message {
            let open = response
                .open_content
                .values("ResponseMessage", message_ordinal);
            message_ordinal += 1;
            let class = response_class(&message.response_class);
            if class == "Error" {
                let content = message.content.as_ref();
                out.push(MailboxAvailability {
                    mailbox: mailbox.clone(),
                    result: Err(MailboxError {
                        code: content
                            .and_then(|c| c.response_code.as_ref())
                            .map(response_code)
                            .unwrap_or_else(|| "ErrorUnknown".into()),
                        message: content.and_then(|c| c.message_text.clone()),
                        back_off: back_off_of(open),
                    }),
                });
                continue;
            }
        }
        let mut events = Vec::new();
        let calendar = answer
            .free_busy_view
            .and_then(|v| v.calendar_event_array)
            .map(|a| a.calendar_event)
            .unwrap_or_default();
        for event in calendar {
            let time = |v: &str| {
                parse_date_time(v, naive_offset).ok_or_else(|| AvailabilityError::InvalidTime {
                    mailbox: mailbox.clone(),
                    value: v.to_owned(),
                })
            };
            let details = event.calendar_event_details.map(|d| EventDetails {
                id: d.id,
                subject: d.subject,
                location: d.location,
                is_meeting: d.is_meeting.unwrap_or(false),
                is_recurring: d.is_recurring.unwrap_or(false),
                is_exception: d.is_exception.unwrap_or(false),
                is_private: d.is_private.unwrap_or(false),
            });
            events.push(CalendarEvent {
                start: time(&event.start_time)?,
                end: time(&event.end_time)?,
                busy_type: busy_type(&event.busy_type),
                details,
            });
        }
        out.push(MailboxAvailability {
            mailbox: mailbox.clone(),
            result: Ok(events),
        });
    }
    let meta = Response {
        body: (),
        server_version: response.server_version,
        open_content: response.open_content,
    };
    Ok((out, meta))
}

fn busy_type(value: &types::LegacyFreeBusyType) -> BusyType {
    BusyType::parse(&wire(value))
}

fn response_class(value: &types::ResponseClassType) -> String {
    wire(value)
}

fn response_code(value: &types::ResponseCodeType) -> String {
    wire(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_mailbox_error_shows_exchange_text_without_control_characters() {
        // Issue #15 (Low): MessageText reaches `once`, `status` and the log.
        let error = MailboxError {
            code: "ErrorMailRecipientNotFound\u{1b}[31m".into(),
            message: Some("not found\r\n2026-12-04T00:00:00Z ERROR forged".into()),
            back_off: None,
        };
        assert_eq!(
            error.to_string(),
            "ErrorMailRecipientNotFound\u{fffd}[31m: not found  2026-12-04T00:00:00Z ERROR forged"
        );
    }

    #[test]
    fn the_plain_form_parses_exactly_as_chrono_does() {
        let general = |v: &str| NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S%.f").ok();
        for value in [
            "2026-11-28T09:00:00",
            "2024-02-29T23:59:59",
            "2025-02-29T10:00:00", // no such day
            "2026-11-28T24:00:00", // no such hour
            "2026-13-01T00:00:00",
            "2026-11-28T09:00:60",
            "2026-11-28T09:00:00Z",
            "2026-11-28T09:00:00+02:00",
            "0001-01-01T00:00:00",
            "2026-11-28 09:00:00",
            "2026-11-2aT09:00:00",
            "+2026-11-28T09:00",
        ] {
            // The fast form gives chrono's answer or leaves the value to it
            // (a leap second, anything not in the plain form).
            if let Some(plain) = plain_date_time(value) {
                assert_eq!(Some(plain), general(value), "{value}");
            }
            let offset = FixedOffset::east_opt(0).unwrap();
            let old = DateTime::parse_from_rfc3339(value)
                .map(|t| t.with_timezone(&Utc))
                .ok()
                .or_else(|| general(value).map(|n| n.and_utc()));
            assert_eq!(parse_date_time(value, offset), old, "{value}");
        }
        let offset = FixedOffset::east_opt(3600).unwrap();
        assert_eq!(
            parse_date_time("2026-11-28T09:00:00", offset),
            Some(Utc.with_ymd_and_hms(2026, 11, 28, 8, 0, 0).unwrap())
        );
        assert_eq!(
            parse_date_time("2026-11-28T09:00:00Z", offset),
            Some(Utc.with_ymd_and_hms(2026, 11, 28, 9, 0, 0).unwrap())
        );
        assert_eq!(
            parse_date_time("2026-11-28T09:00:00.500", offset).map(|t| t.timestamp_millis() % 1000),
            Some(500)
        );
    }
}
