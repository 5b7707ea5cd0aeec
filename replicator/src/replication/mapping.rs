//! Exchange calendar events -> UCServer appointments.
//!
//! - Busy types: `Free`, `Tentative`, `Busy`, `OOF` map to the UCServer's
//!   free / tentative / busy / out-of-office; `WorkingElsewhere` and values
//!   this client does not know go through [`BusyTypeMap`]; `NoData` (Exchange
//!   could not tell) is dropped rather than shown as free.
//! - Subject and location are copied only when Exchange sent them (the
//!   account's detail level decides); privacy is applied before mapping
//!   ([`super::privacy`]), so a hidden subject never enters an appointment.
//! - `all_day` is always false. `GetUserAvailability` has no
//!   `IsAllDayEvent` and reports times in UTC without the organiser's zone:
//!   an all-day event in Berlin is 23:00Z-23:00Z, while 00:00Z-00:00Z may be
//!   a timed event of a user in Berlin (01:00-01:00). No rule on UTC times is
//!   sound, and a wrong all-day flag makes the UCServer show a whole day, so
//!   the exact times are sent instead.
//! - Entry ids are stable: the Exchange item id when given; otherwise a hash
//!   of mailbox, start, end and busy type (never of the subject, so an id
//!   leaks nothing). Ids repeated within one list (occurrences of a series
//!   can share the item id) get their start time appended.
//! - The list is sorted by start, end, status and id, so equal calendars give
//!   equal lists (and equal hashes, see [`super::diff`]).

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::ucserver::{Appointment, AppointmentStatus, Importance, Sensitivity};
use ews_toolkit::availability::{BusyType, CalendarEvent};

use super::privacy;
use super::settings::{BusyTypeMap, ReplicationSettings};

/// The UCServer state for an Exchange busy type; `None` for `NoData`.
pub fn appointment_status(busy_type: &BusyType, map: &BusyTypeMap) -> Option<AppointmentStatus> {
    let mapped = |name: &str| map.overrides.get(name).copied().unwrap_or(map.unknown);
    Some(match busy_type {
        BusyType::Free => AppointmentStatus::Free,
        BusyType::Tentative => AppointmentStatus::Tentative,
        BusyType::Busy => AppointmentStatus::Busy,
        BusyType::OutOfOffice => AppointmentStatus::OutOfOffice,
        BusyType::NoData => return None,
        BusyType::WorkingElsewhere => mapped("WorkingElsewhere"),
        BusyType::Other(name) => mapped(name),
    })
}

/// Exchange's name of a busy type (`OOF`, `WorkingElsewhere`, ...).
pub fn busy_type_name(busy_type: &BusyType) -> &str {
    match busy_type {
        BusyType::Free => "Free",
        BusyType::Tentative => "Tentative",
        BusyType::Busy => "Busy",
        BusyType::OutOfOffice => "OOF",
        BusyType::WorkingElsewhere => "WorkingElsewhere",
        BusyType::NoData => "NoData",
        BusyType::Other(name) => name,
    }
}

/// The entry id of an event: its Exchange item id, or (without one) `fb-`
/// and 32 hex digits of SHA-256 over mailbox (lower case), start, end and
/// busy type.
pub fn entry_id(mailbox: &str, event: &CalendarEvent) -> String {
    if let Some(id) = event
        .details
        .as_ref()
        .and_then(|d| d.id.as_deref())
        .map(str::trim)
        .filter(|id| !id.is_empty())
    {
        return id.to_owned();
    }
    let mut hasher = Sha256::new();
    for part in [
        mailbox.trim().to_lowercase().as_str(),
        &event.start.timestamp().to_string(),
        &event.end.timestamp().to_string(),
        busy_type_name(&event.busy_type),
    ] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("fb-{hex}")
}

/// One event as an appointment, privacy not applied; `None` for `NoData`
/// and for events that end before they start.
pub fn map_event(mailbox: &str, event: &CalendarEvent, map: &BusyTypeMap) -> Option<Appointment> {
    let status = appointment_status(&event.busy_type, map)?;
    if event.end < event.start {
        return None;
    }
    let details = event.details.as_ref();
    let non_empty = |value: Option<&String>| {
        value
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let is_private = details.is_some_and(|d| d.is_private);
    Some(Appointment {
        entry_id: entry_id(mailbox, event),
        start: event.start,
        end: event.end,
        subject: non_empty(details.and_then(|d| d.subject.as_ref())),
        location: non_empty(details.and_then(|d| d.location.as_ref())),
        all_day: false,
        status,
        sensitivity: if is_private {
            Sensitivity::Private
        } else {
            Sensitivity::Normal
        },
        importance: Importance::Normal,
    })
}

/// A mailbox's events as the list written to the UCServer: privacy applied
/// (per `settings.private_appointments`), mapped, sorted, ids unique.
pub fn map_calendar(
    mailbox: &str,
    events: &[CalendarEvent],
    settings: &ReplicationSettings,
) -> Vec<Appointment> {
    let mut appointments: Vec<Appointment> = events
        .iter()
        .filter_map(|event| privacy::apply(settings.private_appointments, event))
        .filter_map(|event| map_event(mailbox, &event, &settings.busy_type_map))
        .collect();
    sort_appointments(&mut appointments);
    make_ids_unique(&mut appointments);
    appointments
}

/// The canonical order: start, end, status, id.
pub fn sort_appointments(appointments: &mut [Appointment]) {
    appointments.sort_by(canonical_order);
}

/// The order of [`sort_appointments`], for sorting references.
pub fn canonical_order(a: &Appointment, b: &Appointment) -> std::cmp::Ordering {
    (a.start, a.end, a.status as u8, &a.entry_id).cmp(&(
        b.start,
        b.end,
        b.status as u8,
        &b.entry_id,
    ))
}

/// Ids that occur more than once get `@<start>` appended (occurrences of a
/// series); any still repeated (identical events) a running `#n`.
fn make_ids_unique(appointments: &mut [Appointment]) {
    let repeated: Vec<bool> = {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for a in appointments.iter() {
            *counts.entry(&a.entry_id).or_default() += 1;
        }
        appointments
            .iter()
            .map(|a| counts[a.entry_id.as_str()] > 1)
            .collect()
    };
    if !repeated.contains(&true) {
        return;
    }
    for (a, repeated) in appointments.iter_mut().zip(repeated) {
        if repeated {
            a.entry_id = format!("{}@{}", a.entry_id, a.start.format("%Y%m%dT%H%M%SZ"));
        }
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for a in appointments.iter_mut() {
        let n = seen.entry(a.entry_id.clone()).or_default();
        *n += 1;
        if *n > 1 {
            a.entry_id = format!("{}#{}", a.entry_id, n);
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeZone, Utc};

    use super::*;
    use crate::replication::settings::PrivateAppointments;
    use ews_toolkit::availability::EventDetails;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, day, hour, 0, 0).unwrap()
    }

    fn event(day: u32, hour: u32, busy: BusyType, details: Option<EventDetails>) -> CalendarEvent {
        CalendarEvent {
            start: at(day, hour),
            end: at(day, hour + 1),
            busy_type: busy,
            details,
        }
    }

    fn details(id: Option<&str>, subject: Option<&str>, location: Option<&str>) -> EventDetails {
        EventDetails {
            id: id.map(str::to_owned),
            subject: subject.map(str::to_owned),
            location: location.map(str::to_owned),
            ..EventDetails::default()
        }
    }

    fn full() -> ReplicationSettings {
        ReplicationSettings {
            private_appointments: PrivateAppointments::Full,
            ..ReplicationSettings::default()
        }
    }

    #[test]
    fn the_four_exchange_states_map_to_the_four_ucserver_states_and_no_data_is_dropped() {
        let map = BusyTypeMap::default();
        let cases = [
            (BusyType::Free, Some(AppointmentStatus::Free)),
            (BusyType::Tentative, Some(AppointmentStatus::Tentative)),
            (BusyType::Busy, Some(AppointmentStatus::Busy)),
            (BusyType::OutOfOffice, Some(AppointmentStatus::OutOfOffice)),
            (BusyType::NoData, None),
        ];
        for (busy, expected) in cases {
            assert_eq!(appointment_status(&busy, &map), expected, "{busy:?}");
        }
        let events = [
            event(1, 9, BusyType::NoData, None),
            event(1, 10, BusyType::Busy, None),
        ];
        let list = map_calendar("a@x", &events, &full());
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].status, AppointmentStatus::Busy);
    }

    #[test]
    fn working_elsewhere_and_unknown_values_follow_the_configured_map() {
        let default = BusyTypeMap::default();
        assert_eq!(
            appointment_status(&BusyType::WorkingElsewhere, &default),
            Some(AppointmentStatus::Free)
        );
        assert_eq!(
            appointment_status(&BusyType::Other("Focus".into()), &default),
            Some(AppointmentStatus::Free)
        );
        let mut map = BusyTypeMap::default();
        map.overrides
            .insert("WorkingElsewhere".into(), AppointmentStatus::Busy);
        map.overrides
            .insert("Focus".into(), AppointmentStatus::Tentative);
        map.unknown = AppointmentStatus::OutOfOffice;
        assert_eq!(
            appointment_status(&BusyType::WorkingElsewhere, &map),
            Some(AppointmentStatus::Busy)
        );
        assert_eq!(
            appointment_status(&BusyType::Other("Focus".into()), &map),
            Some(AppointmentStatus::Tentative)
        );
        assert_eq!(
            appointment_status(&BusyType::Other("Brand new".into()), &map),
            Some(AppointmentStatus::OutOfOffice)
        );
    }

    #[test]
    fn subject_and_location_are_copied_only_when_exchange_sent_them() {
        let events = [
            event(
                1,
                9,
                BusyType::Busy,
                Some(details(Some("id1"), Some("Review"), Some("Room 1"))),
            ),
            event(
                1,
                11,
                BusyType::Busy,
                Some(details(Some("id2"), None, None)),
            ),
            event(
                1,
                13,
                BusyType::Busy,
                Some(details(Some("id3"), Some("  "), None)),
            ),
            event(1, 15, BusyType::Tentative, None),
        ];
        let list = map_calendar("a@x", &events, &full());
        let fields: Vec<_> = list
            .iter()
            .map(|a| (a.subject.as_deref(), a.location.as_deref(), a.all_day))
            .collect();
        assert_eq!(
            fields,
            [
                (Some("Review"), Some("Room 1"), false),
                (None, None, false),
                (None, None, false),
                (None, None, false)
            ]
        );
    }

    #[test]
    fn a_whole_utc_day_is_not_marked_all_day() {
        let day = CalendarEvent {
            start: at(3, 0),
            end: at(4, 0),
            busy_type: BusyType::OutOfOffice,
            details: None,
        };
        let list = map_calendar("a@x", &[day], &full());
        assert!(!list[0].all_day);
        assert_eq!((list[0].start, list[0].end), (at(3, 0), at(4, 0)));
    }

    #[test]
    fn ids_are_the_item_id_or_a_hash_that_ignores_the_subject() {
        let with_id = event(
            1,
            9,
            BusyType::Busy,
            Some(details(Some("AAMk1"), None, None)),
        );
        assert_eq!(entry_id("a@x", &with_id), "AAMk1");

        let secret = event(
            1,
            9,
            BusyType::Busy,
            Some(details(None, Some("Secret"), None)),
        );
        let other_subject = event(
            1,
            9,
            BusyType::Busy,
            Some(details(None, Some("Other"), None)),
        );
        let id = entry_id("a@x", &secret);
        assert!(id.starts_with("fb-") && id.len() == 35, "{id}");
        assert_eq!(id, entry_id("A@X", &other_subject));
        // Stable across runs and processes: a fixed value.
        assert_eq!(id, "fb-09b7d7817df89d8777e5dafd0632a0df");
        assert_eq!(id, entry_id("a@x", &event(1, 9, BusyType::Busy, None)));
        assert_ne!(id, entry_id("b@x", &secret));
        assert_ne!(id, entry_id("a@x", &event(1, 9, BusyType::Tentative, None)));
        assert_ne!(id, entry_id("a@x", &event(1, 10, BusyType::Busy, None)));
    }

    #[test]
    fn repeated_ids_become_unique_and_the_order_is_canonical() {
        let series = |day| {
            event(
                day,
                9,
                BusyType::Busy,
                Some(details(Some("series"), None, None)),
            )
        };
        let twin = event(1, 14, BusyType::Busy, None);
        let forwards = [series(2), series(1), twin.clone(), twin.clone()];
        let mut backwards = forwards.clone();
        backwards.reverse();
        let a = map_calendar("a@x", &forwards, &full());
        let b = map_calendar("a@x", &backwards, &full());
        assert_eq!(a, b);
        let ids: Vec<_> = a.iter().map(|x| x.entry_id.as_str()).collect();
        assert_eq!(ids[0], "series@20261201T090000Z");
        assert!(ids[1].starts_with("fb-") && ids[1].ends_with("@20261201T140000Z"));
        assert_eq!(ids[2], format!("{}#2", ids[1]));
        assert_eq!(ids[3], "series@20261202T090000Z");
    }
}
