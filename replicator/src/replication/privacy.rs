//! Private appointments (`replication.private_appointments`), applied to
//! the events as Exchange gave them, before anything else sees them: what
//! this module removes cannot reach the UCServer, the state, the report or
//! a log line.
//!
//! - `skip`: private events are not replicated at all.
//! - `times_only`: a private event keeps its times, its busy type (a private
//!   free event stays free, a private absence stays out-of-office) and its
//!   id; subject and location are removed. The mapping marks it private.
//! - `full`: unchanged.

use std::borrow::Cow;

use ews_toolkit::availability::CalendarEvent;

use super::settings::PrivateAppointments;

/// Whether Exchange marked the event private.
pub fn is_private(event: &CalendarEvent) -> bool {
    event.details.as_ref().is_some_and(|d| d.is_private)
}

/// The event as it may be replicated under `mode`; `None`: not at all.
pub fn apply(mode: PrivateAppointments, event: &CalendarEvent) -> Option<Cow<'_, CalendarEvent>> {
    if !is_private(event) {
        return Some(Cow::Borrowed(event));
    }
    match mode {
        PrivateAppointments::Skip => None,
        PrivateAppointments::Full => Some(Cow::Borrowed(event)),
        PrivateAppointments::TimesOnly => {
            let mut hidden = event.clone();
            if let Some(details) = hidden.details.as_mut() {
                details.subject = None;
                details.location = None;
            }
            Some(Cow::Owned(hidden))
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::replication::mapping::map_calendar;
    use crate::replication::settings::ReplicationSettings;
    use crate::ucserver::{AppointmentStatus, Sensitivity};
    use ews_toolkit::availability::{BusyType, EventDetails};

    const MARKER_SUBJECT: &str = "MARKER-private-subject";
    const MARKER_LOCATION: &str = "MARKER-private-location";

    fn events() -> Vec<CalendarEvent> {
        let at = |hour| Utc.with_ymd_and_hms(2026, 12, 1, hour, 0, 0).unwrap();
        vec![
            CalendarEvent {
                start: at(9),
                end: at(10),
                busy_type: BusyType::OutOfOffice,
                details: Some(EventDetails {
                    id: Some("private-1".into()),
                    subject: Some(MARKER_SUBJECT.into()),
                    location: Some(MARKER_LOCATION.into()),
                    is_private: true,
                    ..EventDetails::default()
                }),
            },
            CalendarEvent {
                start: at(11),
                end: at(12),
                busy_type: BusyType::Busy,
                details: Some(EventDetails {
                    id: Some("public-1".into()),
                    subject: Some("Team meeting".into()),
                    location: Some("Room 2".into()),
                    ..EventDetails::default()
                }),
            },
        ]
    }

    fn mapped(mode: PrivateAppointments) -> Vec<crate::ucserver::Appointment> {
        let settings = ReplicationSettings {
            private_appointments: mode,
            ..ReplicationSettings::default()
        };
        map_calendar("a@x", &events(), &settings)
    }

    fn text_of(list: &[crate::ucserver::Appointment]) -> String {
        format!("{list:?}")
    }

    #[test]
    fn skip_drops_private_events_and_keeps_the_others_whole() {
        let list = mapped(PrivateAppointments::Skip);
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].entry_id, "public-1");
        assert_eq!(list[0].subject.as_deref(), Some("Team meeting"));
        assert!(!text_of(&list).contains("MARKER"), "{list:?}");
    }

    #[test]
    fn times_only_keeps_a_private_block_without_subject_or_location() {
        let list = mapped(PrivateAppointments::TimesOnly);
        assert_eq!(list.len(), 2);
        let private = &list[0];
        assert_eq!(private.entry_id, "private-1");
        assert_eq!(private.status, AppointmentStatus::OutOfOffice);
        assert_eq!(private.sensitivity, Sensitivity::Private);
        assert_eq!(
            (private.subject.as_ref(), private.location.as_ref()),
            (None, None)
        );
        assert_eq!(list[1].sensitivity, Sensitivity::Normal);
        assert_eq!(list[1].location.as_deref(), Some("Room 2"));
        assert!(!text_of(&list).contains("MARKER"), "{list:?}");
    }

    #[test]
    fn full_sends_private_events_with_their_details_marked_private() {
        let list = mapped(PrivateAppointments::Full);
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].subject.as_deref(), Some(MARKER_SUBJECT));
        assert_eq!(list[0].location.as_deref(), Some(MARKER_LOCATION));
        assert_eq!(list[0].sensitivity, Sensitivity::Private);
    }
}
