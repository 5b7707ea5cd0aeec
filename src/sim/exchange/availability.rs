//! `GetUserAvailability`: the request-level limits (mailbox count, window)
//! as SOAP faults, and per mailbox its free/busy view or its own error, in
//! the view the permission allows.

use chrono::{DateTime, Duration, NaiveDateTime, Utc};

use crate::response_message::wire;
use crate::types;

use super::answer::{Answer, Caller};
use super::mailbox::is_valid_smtp;
use super::mailbox::{Permission, SimBusyType, SimMailbox};
use super::settings::EXCHANGE_MAX_MAILBOXES;
use super::soap::{body_start, esc, Fault};
use super::state::State;
use super::zone::RequestZone;

/// Days a GetUserAvailability window may span on Exchange.
pub const EXCHANGE_MAX_WINDOW_DAYS: i64 = 42;

/// The views Exchange knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    None,
    MergedOnly,
    FreeBusy,
    FreeBusyMerged,
    Detailed,
    DetailedMerged,
}

impl View {
    fn parse(value: &str) -> Option<View> {
        Some(match value {
            "None" => View::None,
            "MergedOnly" => View::MergedOnly,
            "FreeBusy" => View::FreeBusy,
            "FreeBusyMerged" => View::FreeBusyMerged,
            "Detailed" => View::Detailed,
            "DetailedMerged" => View::DetailedMerged,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            View::None => "None",
            View::MergedOnly => "MergedOnly",
            View::FreeBusy => "FreeBusy",
            View::FreeBusyMerged => "FreeBusyMerged",
            View::Detailed => "Detailed",
            View::DetailedMerged => "DetailedMerged",
        }
    }

    fn merged(self) -> bool {
        matches!(
            self,
            View::MergedOnly | View::FreeBusyMerged | View::DetailedMerged
        )
    }

    fn events(self) -> bool {
        !matches!(self, View::None | View::MergedOnly)
    }

    fn details(self) -> bool {
        matches!(self, View::Detailed | View::DetailedMerged)
    }

    /// What a free/busy-only permission gets instead.
    fn without_details(self) -> View {
        match self {
            View::Detailed => View::FreeBusy,
            View::DetailedMerged => View::FreeBusyMerged,
            other => other,
        }
    }
}

fn zone_of(request: &types::GetUserAvailabilityRequestType) -> Result<RequestZone, Fault> {
    match &request.time_zone {
        None => Ok(RequestZone::UTC),
        Some(zone) => {
            RequestZone::from_request(zone).map_err(|m| Fault::new("ErrorInvalidRequest", m))
        }
    }
}

fn parse_local(value: &str) -> Option<NaiveDateTime> {
    let value = value.trim();
    NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S%.f").ok()
}

/// The requested window in UTC. Times with an offset are taken as such;
/// naive ones are in the request's time zone (as Exchange reads them).
pub(crate) fn window_utc(
    request: &types::GetUserAvailabilityRequestType,
) -> Result<(DateTime<Utc>, DateTime<Utc>), Fault> {
    let zone = zone_of(request)?;
    let Some(options) = &request.free_busy_view_options else {
        return Err(Fault::new(
            "ErrorInvalidRequest",
            "The request has no FreeBusyViewOptions; this simulator answers free/busy requests only.",
        ));
    };
    let time = |value: &str, what: &str| -> Result<DateTime<Utc>, Fault> {
        if let Ok(t) = DateTime::parse_from_rfc3339(value.trim()) {
            return Ok(t.with_timezone(&Utc));
        }
        parse_local(value).map(|t| zone.to_utc(t)).ok_or_else(|| {
            Fault::schema_validation(
                format!("The '{what}' element is invalid - The value '{value}' is invalid according to its datatype 'http://www.w3.org/2001/XMLSchema:dateTime'."),
                0,
            )
        })
    };
    Ok((
        time(&options.time_window.start_time, "StartTime")?,
        time(&options.time_window.end_time, "EndTime")?,
    ))
}

/// Answers the request.
pub(crate) fn answer(
    state: &State,
    caller: &Caller,
    request: &types::GetUserAvailabilityRequestType,
) -> Answer {
    match build(state, caller, request) {
        Ok(xml) => Answer::Ok(xml),
        Err(fault) => Answer::Fault(fault),
    }
}

fn build(
    state: &State,
    caller: &Caller,
    request: &types::GetUserAvailabilityRequestType,
) -> Result<String, Fault> {
    let mailboxes = &request.mailbox_data_array.mailbox_data;
    if mailboxes.is_empty() {
        return Err(Fault::new(
            "ErrorMailboxDataArrayEmpty",
            "The MailboxData array of the request is empty.",
        ));
    }
    let limit = state
        .knobs
        .max_mailboxes_per_request
        .min(EXCHANGE_MAX_MAILBOXES);
    if mailboxes.len() > limit {
        return Err(Fault::new(
            "ErrorMailboxDataArrayTooBig",
            format!(
                "There are {} mailboxes in the request; the limit is {limit}. Split the request.",
                mailboxes.len()
            ),
        )
        .with_value("MaxMailboxCount", limit));
    }
    let zone = zone_of(request)?;
    let (start, end) = window_utc(request)?;
    if end <= start {
        return Err(Fault::new(
            "ErrorInvalidTimeInterval",
            "The end of the time window is not after its start.",
        ));
    }
    if end - start > Duration::days(EXCHANGE_MAX_WINDOW_DAYS) {
        return Err(Fault::new(
            "ErrorTimeIntervalTooBig",
            format!(
                "The time interval specified for the availability request is too big: {} days; the maximum is {EXCHANGE_MAX_WINDOW_DAYS} days.",
                (end - start).num_days()
            ),
        ));
    }
    let options = request
        .free_busy_view_options
        .as_ref()
        .expect("window_utc checked it");
    let requested = match &options.requested_view {
        None => View::FreeBusy,
        Some(list) => {
            let names: Vec<String> = list.0.iter().map(wire).collect();
            let first = names.first().map(String::as_str).unwrap_or("None");
            View::parse(first).ok_or_else(|| {
                Fault::schema_validation(
                    format!("The 'RequestedView' element is invalid - The value '{first}' is invalid according to its datatype 'FreeBusyViewType'."),
                    0,
                )
            })?
        }
    };
    let interval = options.merged_free_busy_interval_in_minutes.unwrap_or(30);
    if !(5..=1440).contains(&interval) {
        return Err(Fault::new(
            "ErrorInvalidRequest",
            format!("MergedFreeBusyIntervalInMinutes {interval} is outside 5..1440."),
        ));
    }

    let mut xml = body_start("GetUserAvailabilityResponse");
    xml.push_str("<m:FreeBusyResponseArray>");
    for data in mailboxes {
        let address = data.email.address.trim();
        xml.push_str("<m:FreeBusyResponse>");
        match mailbox_answer(state, caller, address) {
            Err((code, text, exception)) => {
                xml.push_str(&format!(
                    r#"<m:ResponseMessage ResponseClass="Error"><m:MessageText>{}</m:MessageText><m:ResponseCode>{code}</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey><m:MessageXml><ExceptionType xmlns="http://schemas.microsoft.com/exchange/services/2006/errors">Microsoft.Exchange.InfoWorker.Common.Availability.{exception}</ExceptionType><ExceptionServerName xmlns="http://schemas.microsoft.com/exchange/services/2006/errors">EXCH01</ExceptionServerName></m:MessageXml></m:ResponseMessage>"#,
                    esc(&text)
                ));
                xml.push_str("<m:FreeBusyView><t:FreeBusyViewType>None</t:FreeBusyViewType></m:FreeBusyView>");
            }
            Ok((mailbox, permission)) => {
                xml.push_str(r#"<m:ResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode></m:ResponseMessage>"#);
                let view = if permission == Permission::FreeBusy {
                    requested.without_details()
                } else {
                    requested
                };
                free_busy_view(
                    &mut xml, mailbox, permission, view, &zone, start, end, interval,
                );
            }
        }
        xml.push_str("</m:FreeBusyResponse>");
    }
    xml.push_str("</m:FreeBusyResponseArray></m:GetUserAvailabilityResponse>");
    Ok(xml)
}

type MailboxError = (String, String, &'static str);

fn mailbox_answer<'a>(
    state: &'a State,
    caller: &Caller,
    address: &str,
) -> Result<(&'a SimMailbox, Permission), MailboxError> {
    if let Some(code) = state.mailbox_errors.get(&address.to_ascii_lowercase()) {
        return Err((
            code.clone(),
            format!("The request for {address} failed on its mailbox server ({code})."),
            "ProxyRequestProcessingFailedException",
        ));
    }
    if !is_valid_smtp(address) {
        return Err((
            "ErrorInvalidSmtpAddress".into(),
            format!("The address <>SMTP:{address} is not a valid SMTP e-mail address."),
            "InvalidSmtpAddressException",
        ));
    }
    let Some(mailbox) = state.mailbox(address) else {
        return Err((
            "ErrorMailRecipientNotFound".into(),
            format!(
                "Unable to resolve e-mail address <>SMTP:{address} to an Active Directory object."
            ),
            "MailRecipientNotFoundException",
        ));
    };
    let permission = effective_permission(caller, mailbox);
    if permission == Permission::None {
        return Err((
            "ErrorNoFreeBusyAccess".into(),
            format!("The requesting account does not have permission to read free/busy information of {address}."),
            "NoFreeBusyAccessException",
        ));
    }
    Ok((mailbox, permission))
}

/// The owner (or whoever impersonates them) sees everything.
pub(crate) fn effective_permission(caller: &Caller, mailbox: &SimMailbox) -> Permission {
    match &caller.acting_as {
        Some(me) if me.eq_ignore_ascii_case(&mailbox.smtp) => Permission::DetailsAndPrivate,
        _ => mailbox.permission,
    }
}

#[allow(clippy::too_many_arguments)]
fn free_busy_view(
    xml: &mut String,
    mailbox: &SimMailbox,
    permission: Permission,
    view: View,
    zone: &RequestZone,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    interval: i32,
) {
    let occurrences = mailbox.occurrences(start, end);
    xml.push_str("<m:FreeBusyView>");
    xml.push_str(&format!(
        "<t:FreeBusyViewType>{}</t:FreeBusyViewType>",
        view.as_str()
    ));
    if view.merged() {
        let step = Duration::minutes(interval as i64);
        let mut merged = String::new();
        let mut slot = start;
        while slot < end {
            let slot_end = slot + step;
            let top = occurrences
                .iter()
                .filter(|o| o.start < slot_end && o.end > slot)
                .map(|o| o.event.busy_type)
                .max_by_key(|b| b.rank());
            merged.push(top.unwrap_or(SimBusyType::Free).merged_digit() as char);
            slot = slot_end;
        }
        xml.push_str(&format!("<t:MergedFreeBusy>{merged}</t:MergedFreeBusy>"));
    }
    if view.events() && !occurrences.is_empty() {
        let local = |t: DateTime<Utc>| zone.to_local(t).format("%Y-%m-%dT%H:%M:%S").to_string();
        xml.push_str("<t:CalendarEventArray>");
        for o in &occurrences {
            let event = o.event;
            xml.push_str(&format!(
                "<t:CalendarEvent><t:StartTime>{}</t:StartTime><t:EndTime>{}</t:EndTime><t:BusyType>{}</t:BusyType>",
                local(o.start),
                local(o.end),
                event.busy_type.as_str()
            ));
            if view.details() {
                let open = !event.private || permission == Permission::DetailsAndPrivate;
                xml.push_str("<t:CalendarEventDetails>");
                if open {
                    xml.push_str(&format!("<t:ID>{}</t:ID>", esc(&o.item_id(&mailbox.smtp))));
                    if let Some(subject) = &event.subject {
                        xml.push_str(&format!("<t:Subject>{}</t:Subject>", esc(subject)));
                    }
                    if let Some(location) = &event.location {
                        xml.push_str(&format!("<t:Location>{}</t:Location>", esc(location)));
                    }
                }
                xml.push_str(&format!(
                    "<t:IsMeeting>{}</t:IsMeeting><t:IsRecurring>{}</t:IsRecurring><t:IsException>false</t:IsException><t:IsReminderSet>false</t:IsReminderSet><t:IsPrivate>{}</t:IsPrivate>",
                    event.meeting,
                    event.recurrence.is_some(),
                    event.private
                ));
                xml.push_str("</t:CalendarEventDetails>");
            }
            xml.push_str("</t:CalendarEvent>");
        }
        xml.push_str("</t:CalendarEventArray>");
    }
    if view != View::None {
        xml.push_str(WORKING_HOURS);
    }
    xml.push_str("</m:FreeBusyView>");
}

/// Monday to Friday 08:00-17:00 UTC.
const WORKING_HOURS: &str = concat!(
    "<t:WorkingHours><t:TimeZone><t:Bias>0</t:Bias>",
    "<t:StandardTime><t:Bias>0</t:Bias><t:Time>00:00:00</t:Time><t:DayOrder>0</t:DayOrder><t:Month>0</t:Month><t:DayOfWeek>Sunday</t:DayOfWeek></t:StandardTime>",
    "<t:DaylightTime><t:Bias>0</t:Bias><t:Time>00:00:00</t:Time><t:DayOrder>0</t:DayOrder><t:Month>0</t:Month><t:DayOfWeek>Sunday</t:DayOfWeek></t:DaylightTime>",
    "</t:TimeZone><t:WorkingPeriodArray><t:WorkingPeriod><t:DayOfWeek>Monday Tuesday Wednesday Thursday Friday</t:DayOfWeek>",
    "<t:StartTimeInMinutes>480</t:StartTimeInMinutes><t:EndTimeInMinutes>1020</t:EndTimeInMinutes></t:WorkingPeriod></t:WorkingPeriodArray></t:WorkingHours>"
);

/// A 200 whose every mailbox is `ErrorServerBusy` with `BackOffMilliseconds`.
pub(crate) fn all_busy(mailboxes: usize, back_off_ms: u64) -> String {
    let mut xml = body_start("GetUserAvailabilityResponse");
    xml.push_str("<m:FreeBusyResponseArray>");
    for _ in 0..mailboxes {
        xml.push_str(&format!(
            r#"<m:FreeBusyResponse><m:ResponseMessage ResponseClass="Error"><m:MessageText>The server is too busy to handle this request at the moment. Retry later.</m:MessageText><m:ResponseCode>ErrorServerBusy</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey><m:MessageXml><t:Value Name="BackOffMilliseconds">{back_off_ms}</t:Value></m:MessageXml></m:ResponseMessage><m:FreeBusyView><t:FreeBusyViewType>None</t:FreeBusyViewType></m:FreeBusyView></m:FreeBusyResponse>"#
        ));
    }
    xml.push_str("</m:FreeBusyResponseArray></m:GetUserAvailabilityResponse>");
    xml
}
