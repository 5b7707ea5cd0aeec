//! The generated EWS bindings: request envelopes (snapshots, validated against
//! Microsoft's schema by .ci/run) and parsing of realistic responses,
//! including everything real servers do that the schema does not promise.

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use ews_toolkit::availability::{self, AvailabilityView, BusyType};
use ews_toolkit::{EnvelopeError, ExchangeVersion, RequestHeaders};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/ews/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The fixtures' naive times are in W. Europe standard time (UTC+1 in February).
fn cet() -> FixedOffset {
    FixedOffset::east_opt(3600).unwrap()
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// How many `FreeBusyResponse` elements a document holds, whatever its prefixes.
fn answers_in(xml: &[u8]) -> usize {
    let text = String::from_utf8_lossy(xml);
    text.split('<')
        .skip(1)
        .filter(|tag| {
            let name = tag
                .split(|c: char| c.is_whitespace() || c == '>' || c == '/')
                .next()
                .unwrap_or("");
            name.rsplit(':').next() == Some("FreeBusyResponse")
        })
        .count()
}

fn mailboxes(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("user{i}@corp.example.com"))
        .collect()
}

/// Indents XML deterministically so that snapshots diff line by line.
fn pretty(xml: &[u8]) -> String {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut writer = quick_xml::Writer::new_with_indent(Vec::new(), b' ', 2);
    loop {
        match reader.read_event().unwrap() {
            quick_xml::events::Event::Eof => break,
            quick_xml::events::Event::Text(t) if t.iter().all(u8::is_ascii_whitespace) => {}
            e => writer.write_event(e).unwrap(),
        }
    }
    String::from_utf8(writer.into_inner()).unwrap()
}

fn snapshot(name: &str, xml: &[u8]) {
    insta::with_settings!({snapshot_path => "../../snapshots", prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!(name, pretty(xml));
    });
}

#[test]
fn get_user_availability_request_envelope() {
    let headers = RequestHeaders::new(ExchangeVersion::Exchange2013Sp1);
    let xml = availability::request(
        &headers,
        &[
            "alice@corp.example.com".into(),
            "bob@corp.example.com".into(),
        ],
        utc("2026-02-10T00:00:00Z"),
        utc("2026-03-12T00:00:00Z"),
        AvailabilityView::Detailed,
    )
    .unwrap();
    snapshot("ews_request_get_user_availability", &xml);
}

#[test]
fn get_user_availability_request_with_impersonation_and_time_zone() {
    let mut headers = RequestHeaders::new(ExchangeVersion::Exchange2010Sp2);
    headers.impersonate = Some("svc-target@corp.example.com".into());
    headers.time_zone_id = Some("W. Europe Standard Time".into());
    let xml = availability::request(
        &headers,
        &["alice@corp.example.com".into()],
        utc("2026-02-10T00:00:00Z"),
        utc("2026-02-11T00:00:00Z"),
        AvailabilityView::FreeBusy,
    )
    .unwrap();
    snapshot("ews_request_get_user_availability_impersonated", &xml);
}

#[test]
fn every_version_value_is_written_as_exchange_spells_it() {
    for version in ExchangeVersion::ALL {
        let xml = availability::request(
            &RequestHeaders::new(version),
            &["a@b.c".into()],
            utc("2026-02-10T00:00:00Z"),
            utc("2026-02-11T00:00:00Z"),
            AvailabilityView::Detailed,
        )
        .unwrap();
        let text = String::from_utf8(xml).unwrap();
        assert!(
            text.contains(&format!(
                "<t:RequestServerVersion Version=\"{}\"/>",
                version.as_str()
            )),
            "{version}: {text}"
        );
        assert_eq!(
            version.as_str().parse::<ExchangeVersion>().unwrap(),
            version
        );
    }
}

#[test]
fn detailed_view_yields_events_with_details_and_server_version() {
    let (result, meta) =
        availability::parse_response(&mailboxes(3), &fixture("gua_detailed.xml"), cet()).unwrap();
    let version = meta.server_version.unwrap();
    assert_eq!((version.major, version.minor), (Some(15), Some(1)));
    assert_eq!(version.version.as_deref(), Some("V2017_07_11"));
    let alice = result[0].result.as_ref().unwrap();
    assert_eq!(alice.len(), 3);
    assert_eq!(alice[0].start, utc("2026-02-10T08:00:00Z"));
    assert_eq!(alice[0].end, utc("2026-02-10T09:00:00Z"));
    assert_eq!(alice[0].busy_type, BusyType::Busy);
    let details = alice[0].details.as_ref().unwrap();
    assert_eq!(
        details.subject.as_deref(),
        Some("Q1 budget review & sign-off")
    );
    assert_eq!(details.location.as_deref(), Some("Room Elbe 2.04"));
    assert!(details.is_meeting && !details.is_private);
    assert_eq!(alice[1].busy_type, BusyType::Free);
    assert_eq!(alice[2].busy_type, BusyType::Tentative);
    let bob = result[1].result.as_ref().unwrap();
    assert_eq!(bob[0].busy_type, BusyType::OutOfOffice);
    assert_eq!(bob[0].start, utc("2026-02-08T23:00:00Z"));
    assert_eq!(result[2].result.as_ref().unwrap().len(), 2);
}

#[test]
fn free_busy_view_has_no_details() {
    let (result, _) =
        availability::parse_response(&mailboxes(2), &fixture("gua_freebusy.xml"), cet()).unwrap();
    let events = result[0].result.as_ref().unwrap();
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e.details.is_none()));
    assert_eq!(events[2].busy_type, BusyType::OutOfOffice);
}

#[test]
fn detailed_merged_view_parses_working_elsewhere() {
    let (result, _) =
        availability::parse_response(&mailboxes(2), &fixture("gua_detailed_merged.xml"), cet())
            .unwrap();
    let events = result[1].result.as_ref().unwrap();
    assert_eq!(events[1].busy_type, BusyType::WorkingElsewhere);
}

#[test]
fn mailbox_errors_are_per_mailbox_and_typed() {
    let (result, _) =
        availability::parse_response(&mailboxes(5), &fixture("gua_mailbox_errors.xml"), cet())
            .unwrap();
    assert_eq!(result[0].result.as_ref().unwrap().len(), 1);
    let code = |i: usize| result[i].result.as_ref().unwrap_err().code.clone();
    assert_eq!(code(1), "ErrorMailRecipientNotFound");
    assert_eq!(code(2), "ErrorNoFreeBusyAccess");
    assert_eq!(code(3), "ErrorInvalidSmtpAddress");
    assert_eq!(code(4), "ErrorServerBusy");
    let busy = result[4].result.as_ref().unwrap_err();
    assert_eq!(busy.back_off, Some(std::time::Duration::from_millis(15000)));
    assert_eq!(result[1].result.as_ref().unwrap_err().back_off, None);
}

fn fault_of(name: &str) -> ews_toolkit::SoapFault {
    match availability::parse_response(&mailboxes(1), &fixture(name), cet()) {
        Err(availability::AvailabilityError::Envelope(EnvelopeError::Fault(f))) => f,
        other => panic!("{name}: expected a fault, got {other:?}"),
    }
}

#[test]
fn server_busy_fault_carries_back_off() {
    let fault = fault_of("fault_server_busy.xml");
    assert_eq!(fault.code(), "ErrorServerBusy");
    assert_eq!(
        fault.back_off(),
        Some(std::time::Duration::from_millis(29773))
    );
}

#[test]
fn exceeded_connection_count_fault_is_typed() {
    let fault = fault_of("fault_exceeded_connection_count.xml");
    assert_eq!(fault.code(), "ErrorExceededConnectionCount");
    assert!(fault
        .message_xml
        .iter()
        .any(|(k, v)| k == "MaxConcurrencyLimit" && v == "10"));
    assert_eq!(fault.back_off(), None);
}

#[test]
fn schema_validation_fault_keeps_named_message_xml_values() {
    let fault = fault_of("fault_schema_validation.xml");
    assert_eq!(fault.code(), "ErrorSchemaValidation");
    assert!(fault
        .message_xml
        .iter()
        .any(|(k, v)| k == "LinePosition" && v == "1184"));
}

#[test]
fn unknown_elements_anywhere_are_skipped_without_losing_data() {
    let (result, meta) =
        availability::parse_response(&mailboxes(2), &fixture("tol_unknown_elements.xml"), cet())
            .unwrap();
    assert_eq!(meta.server_version.unwrap().major_build, Some(1544));
    let events = result[0].result.as_ref().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].busy_type, BusyType::Busy);
    assert_eq!(events[0].start, utc("2026-02-10T08:00:00Z"));
    assert_eq!(
        events[0].details.as_ref().unwrap().subject.as_deref(),
        Some("Security review")
    );
    assert!(events[1].details.is_none());
    assert_eq!(result[1].result.as_ref().unwrap().len(), 1);
}

#[test]
fn unknown_attributes_are_ignored() {
    let (result, _) =
        availability::parse_response(&mailboxes(2), &fixture("tol_unknown_attributes.xml"), cet())
            .unwrap();
    assert!(result[0].result.is_ok());
    assert_eq!(
        result[1].result.as_ref().unwrap_err().code,
        "ErrorMailRecipientNotFound"
    );
}

#[test]
fn default_namespace_and_swapped_prefixes_parse_alike() {
    for name in ["tol_default_namespace.xml", "tol_swapped_prefixes.xml"] {
        let xml = fixture(name);
        let count = answers_in(&xml);
        let (result, _) = availability::parse_response(&mailboxes(count), &xml, cet())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            result
                .iter()
                .any(|m| m.result.as_ref().is_ok_and(|e| !e.is_empty())),
            "{name}: no events"
        );
    }
}

#[test]
fn times_with_and_without_offsets() {
    let xml = fixture("tol_offsets.xml");
    let count = answers_in(&xml);
    let (result, _) = availability::parse_response(&mailboxes(count), &xml, cet()).unwrap();
    let events: Vec<_> = result
        .iter()
        .flat_map(|m| m.result.clone().unwrap())
        .collect();
    assert!(events.len() >= 3);
    let offset = FixedOffset::east_opt(3600).unwrap();
    assert_eq!(
        availability::parse_date_time("2026-02-10T09:00:00", offset),
        Some(Utc.with_ymd_and_hms(2026, 2, 10, 8, 0, 0).unwrap())
    );
    assert_eq!(
        availability::parse_date_time("2026-02-10T09:00:00+02:00", offset),
        Some(Utc.with_ymd_and_hms(2026, 2, 10, 7, 0, 0).unwrap())
    );
    assert_eq!(
        availability::parse_date_time("2026-02-10T09:00:00Z", offset),
        Some(Utc.with_ymd_and_hms(2026, 2, 10, 9, 0, 0).unwrap())
    );
}

#[test]
fn busy_types_outside_the_list_parse_as_other() {
    let xml = fixture("tol_busytype_unknown.xml");
    let count = answers_in(&xml);
    let (result, _) = availability::parse_response(&mailboxes(count), &xml, cet()).unwrap();
    let types: Vec<BusyType> = result
        .iter()
        .flat_map(|m| m.result.clone().unwrap())
        .map(|e| e.busy_type)
        .collect();
    assert!(types.contains(&BusyType::WorkingElsewhere), "{types:?}");
    assert!(types.contains(&BusyType::NoData), "{types:?}");
    assert!(
        types.contains(&BusyType::Other("SomethingNew2030".into())),
        "{types:?}"
    );
}

#[test]
fn partial_details_of_a_private_appointment() {
    let xml = fixture("tol_partial_details.xml");
    let count = answers_in(&xml);
    let (result, _) = availability::parse_response(&mailboxes(count), &xml, cet()).unwrap();
    let events: Vec<_> = result
        .iter()
        .flat_map(|m| m.result.clone().unwrap())
        .collect();
    let private = events
        .iter()
        .filter_map(|e| e.details.as_ref())
        .find(|d| d.is_private)
        .expect("a private appointment");
    assert_eq!(private.subject, None);
    assert_eq!(private.location, None);
}

#[test]
fn whitespace_around_values_is_tolerated() {
    let xml = fixture("tol_whitespace.xml");
    let count = answers_in(&xml);
    let (result, _) = availability::parse_response(&mailboxes(count), &xml, cet()).unwrap();
    let events: Vec<_> = result
        .iter()
        .flat_map(|m| m.result.clone().unwrap_or_default())
        .collect();
    assert!(!events.is_empty());
    assert!(
        events
            .iter()
            .all(|e| !matches!(e.busy_type, BusyType::Other(_))),
        "{events:?}"
    );
}

#[test]
fn forbidden_character_references_are_dropped() {
    let xml = fixture("tol_invalid_char_refs.xml");
    let count = answers_in(&xml);
    let (result, _) = availability::parse_response(&mailboxes(count), &xml, cet()).unwrap();
    let subjects: Vec<String> = result
        .iter()
        .flat_map(|m| m.result.clone().unwrap())
        .filter_map(|e| e.details.and_then(|d| d.subject))
        .collect();
    assert!(!subjects.is_empty());
    assert!(
        subjects
            .iter()
            .all(|s| !s.contains('\0') && !s.contains('\u{1f}')),
        "{subjects:?}"
    );
}

#[test]
fn list_values_and_empty_views_parse() {
    for name in ["tol_list_values.xml", "tol_empty_view.xml"] {
        let xml = fixture(name);
        let count = answers_in(&xml);
        availability::parse_response(&mailboxes(count), &xml, cet())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn a_dtd_is_refused_without_expansion() {
    let bomb = br#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>&lol2;</s:Body></s:Envelope>"#;
    let err = availability::parse_response(&mailboxes(1), bomb, cet()).unwrap_err();
    assert!(err.to_string().contains("DTD"), "{err}");
}

#[test]
fn a_response_not_in_utf8_is_refused_by_both_readers_naming_its_encoding() {
    let utf8 = fixture("gua_freebusy.xml");
    let declared = String::from_utf8(utf8.clone())
        .unwrap()
        .replace(r#"encoding="utf-8""#, r#"encoding="UTF-16BE""#)
        .into_bytes();
    // A byte-order mark decides only where no declaration follows.
    let undeclared = &utf8[utf8.iter().position(|b| *b == b'>').unwrap() + 1..];
    let with_bom = [&[0xFF, 0xFE][..], undeclared].concat();
    for (input, encoding) in [(declared, "UTF-16BE"), (with_bom, "UTF-16LE")] {
        for err in [
            availability::parse_response(&mailboxes(2), &input, cet()).unwrap_err(),
            availability::parse_response_generated(&mailboxes(2), &input, cet()).unwrap_err(),
        ] {
            let text = err.to_string();
            assert!(
                text.contains(encoding) && text.contains("not UTF-8"),
                "{text}"
            );
        }
    }
    assert!(availability::parse_response(&mailboxes(2), &utf8, cet()).is_ok());
}

#[test]
fn a_count_mismatch_is_an_error_not_a_guess() {
    let err = availability::parse_response(&mailboxes(4), &fixture("gua_detailed.xml"), cet())
        .unwrap_err();
    assert!(matches!(
        err,
        availability::AvailabilityError::CountMismatch {
            asked: 4,
            answered: 3
        }
    ));
}

// --- the other operations -------------------------------------------------

use ews_toolkit::response_message::{OperationError, ResponseClass};
use ews_toolkit::{calendar_view, folder, notifications, resolve_names};

fn headers() -> RequestHeaders {
    RequestHeaders::new(ExchangeVersion::Exchange2013Sp1)
}

#[test]
fn operation_request_envelopes() {
    let start = utc("2026-02-10T00:00:00Z");
    let end = utc("2026-02-17T00:00:00Z");
    let mut tz = headers();
    tz.time_zone_id = Some("W. Europe Standard Time".into());
    let mut as_alice = headers();
    as_alice.impersonate = Some("alice@corp.example.com".into());
    let ids: Vec<String> = (1..=3).map(|i| format!("sub-{i}")).collect();
    let requests: [(&str, Vec<u8>); 9] = [
        (
            "ews_request_find_item_calendar_view",
            calendar_view::request(&tz, Some("alice@corp.example.com"), start, end, Some(500))
                .unwrap(),
        ),
        (
            "ews_request_get_folder_calendar",
            folder::request(&headers(), Some("alice@corp.example.com")).unwrap(),
        ),
        (
            "ews_request_resolve_names",
            resolve_names::request(&headers(), "alice@corp.example.com").unwrap(),
        ),
        // Folder rights: the account itself, the calendar with <Mailbox>.
        (
            "ews_request_subscribe_streaming",
            notifications::subscribe_request(&headers(), Some("alice@corp.example.com")).unwrap(),
        ),
        // Impersonation: as the mailbox, the calendar without <Mailbox>.
        (
            "ews_request_subscribe_streaming_impersonated",
            notifications::subscribe_request(&as_alice, None).unwrap(),
        ),
        (
            "ews_request_get_streaming_events",
            notifications::get_events_request(&headers(), &["sub-1".into(), "sub-2".into()], 30)
                .unwrap(),
        ),
        (
            "ews_request_get_streaming_events_impersonated",
            notifications::get_events_request(&as_alice, &ids, 1).unwrap(),
        ),
        (
            "ews_request_unsubscribe",
            notifications::unsubscribe_request(&headers(), "sub-1").unwrap(),
        ),
        (
            "ews_request_unsubscribe_impersonated",
            notifications::unsubscribe_request(&as_alice, "sub-1").unwrap(),
        ),
    ];
    for (name, xml) in requests {
        snapshot(name, &xml);
    }
}

#[test]
fn a_header_the_operation_does_not_allow_is_refused() {
    let mut h = headers();
    h.time_zone_id = Some("UTC".into());
    let err = resolve_names::request(&h, "alice").unwrap_err();
    assert!(
        matches!(
            err,
            EnvelopeError::HeaderNotAllowed {
                header: "TimeZoneContext",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn calendar_view_items_with_sensitivity_and_flags() {
    let view = calendar_view::parse_response(&fixture("finditem_calendarview.xml"), cet()).unwrap();
    assert_eq!(view.items.len(), 5);
    assert!(view.includes_last_item);
    let first = &view.items[0];
    assert!(first.id.starts_with("AAMkAxwGvUY+"));
    assert_eq!(
        first.subject.as_deref(),
        Some("Q1 budget review & sign-off")
    );
    assert_eq!(first.start, utc("2026-02-10T08:00:00Z"));
    assert_eq!(first.end, utc("2026-02-10T09:00:00Z"));
    assert!(!first.is_private());
    let holiday = &view.items[1];
    assert!(holiday.is_all_day);
    assert_eq!(holiday.busy_type, BusyType::OutOfOffice);
    let dentist = &view.items[2];
    assert!(dentist.is_private());
    assert_eq!(dentist.busy_type, BusyType::Tentative);
    let home = &view.items[3];
    assert_eq!(home.busy_type, BusyType::WorkingElsewhere);
    assert_eq!(home.location, None);
    assert!(home.is_recurring);
    let cancelled = &view.items[4];
    assert!(cancelled.is_cancelled && cancelled.is_meeting);
}

#[test]
fn calendar_folder_probe_and_access_denied() {
    let found = folder::parse_response(&fixture("getfolder_calendar.xml")).unwrap();
    assert!(found
        .id
        .as_deref()
        .is_some_and(|id| id.starts_with("AAMkAaYMEtKJ")));
    match folder::parse_response(&fixture("getfolder_access_denied.xml")) {
        Err(OperationError::Response(status)) => {
            assert_eq!(status.code, "ErrorAccessDenied");
            assert_eq!(status.class, ResponseClass::Error);
        }
        other => panic!("expected ErrorAccessDenied, got {other:?}"),
    }
}

#[test]
fn resolve_names_with_multiple_results_is_a_warning_with_candidates() {
    let resolution = resolve_names::parse_response(&fixture("resolvenames_multiple.xml")).unwrap();
    assert_eq!(resolution.status.class, ResponseClass::Warning);
    assert_eq!(resolution.status.code, "ErrorNameResolutionMultipleResults");
    let addresses: Vec<_> = resolution
        .mailboxes
        .iter()
        .map(|m| m.email_address.clone().unwrap())
        .collect();
    assert_eq!(
        addresses,
        [
            "alex.meier@corp.example.com",
            "alexandra.meier-schulz@corp.example.com"
        ]
    );
    assert_eq!(
        resolution.mailboxes[0].mailbox_type.as_deref(),
        Some("Mailbox")
    );
}

#[test]
fn streaming_subscription_events_and_unsubscribe() {
    let id = notifications::parse_subscribe_response(&fixture("subscribe_streaming.xml")).unwrap();
    assert!(id.starts_with("GABleG1ieDAx"));
    let events = notifications::parse_events_response(&fixture("getstreamingevents.xml")).unwrap();
    use notifications::ConnectionStatus;
    assert_eq!(events.connection_status, Some(ConnectionStatus::Ok));
    assert!(events.failed_subscriptions.is_empty());
    assert_eq!(events.notifications.len(), 1);
    let kinds: Vec<_> = events.notifications[0]
        .events
        .iter()
        .map(|e| e.kind)
        .collect();
    use notifications::ChangeKind::*;
    assert_eq!(kinds, [Created, Modified, Modified, Deleted]);
    let folder_event = &events.notifications[0].events[2];
    assert!(folder_event.item_id.is_none() && folder_event.folder_id.is_some());
    assert_eq!(
        events.notifications[0].events[0].time_stamp,
        utc("2026-02-10T07:42:13Z")
    );
    let closed =
        notifications::parse_events_response(&fixture("getstreamingevents_closed.xml")).unwrap();
    assert_eq!(closed.connection_status, Some(ConnectionStatus::Closed));
    assert!(closed.notifications.is_empty());
    let heartbeat =
        notifications::parse_events_response(&fixture("getstreamingevents_heartbeat.xml")).unwrap();
    assert_eq!(heartbeat.connection_status, Some(ConnectionStatus::Ok));
    notifications::parse_unsubscribe_response(&fixture("unsubscribe.xml")).unwrap();
}

/// A GetStreamingEvents message as "Handling notification-related errors in
/// EWS in Exchange" describes one: an error for some subscriptions
/// (`ErrorSubscriptionIds`) next to notifications for others, with a moved
/// appointment among them.
const STREAMING_EVENTS_WITH_ERRORS: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
<m:GetStreamingEventsResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
<m:ResponseMessages>
<m:GetStreamingEventsResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>
<m:Notifications><t:Notification><t:SubscriptionId>sub-1</t:SubscriptionId>
<t:MovedEvent><t:TimeStamp>2026-02-10T07:42:13Z</t:TimeStamp><t:ItemId Id="new-item" ChangeKey="ck"/><t:ParentFolderId Id="calendar" ChangeKey="f"/>
<t:OldItemId Id="old-item" ChangeKey="ck0"/><t:OldParentFolderId Id="drafts" ChangeKey="f0"/></t:MovedEvent>
</t:Notification></m:Notifications></m:GetStreamingEventsResponseMessage>
<m:GetStreamingEventsResponseMessage ResponseClass="Error"><m:MessageText>The subscription was not found.</m:MessageText>
<m:ResponseCode>ErrorSubscriptionNotFound</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>
<m:ErrorSubscriptionIds><t:SubscriptionId>sub-2</t:SubscriptionId><t:SubscriptionId>sub-3</t:SubscriptionId></m:ErrorSubscriptionIds>
</m:GetStreamingEventsResponseMessage>
</m:ResponseMessages></m:GetStreamingEventsResponse></soap:Body></soap:Envelope>"#;

#[test]
fn streaming_errors_for_some_subscriptions_are_data() {
    let events = notifications::parse_events_response(STREAMING_EVENTS_WITH_ERRORS.as_bytes())
        .expect("an error for some subscriptions does not fail the message");
    assert_eq!(events.notifications.len(), 1);
    let moved = &events.notifications[0].events[0];
    assert_eq!(moved.kind, notifications::ChangeKind::Moved);
    assert_eq!(moved.item_id.as_deref(), Some("new-item"));
    assert_eq!(moved.parent_folder_id, "calendar");
    assert_eq!(
        events.failed_subscriptions,
        [notifications::SubscriptionFailure {
            code: "ErrorSubscriptionNotFound".into(),
            message: "The subscription was not found.".into(),
            subscription_ids: vec!["sub-2".into(), "sub-3".into()],
        }]
    );
}
