//! Change detection: a user's list is written only when its hash differs
//! from the hash of the last successful write kept in the state store.
//!
//! The hash is SHA-256 over a canonical, versioned serialization of every
//! field that reaches the UCServer, each length-prefixed, in the canonical
//! order of [`super::mapping::sort_appointments`]: equal lists hash equal in
//! every run and process, and no two different lists share a serialization.

use sha2::{Digest, Sha256};

use crate::ucserver::Appointment;

use super::mapping::canonical_order;
use super::ports::UserRecord;

/// Bumped when the serialization changes (every list is rewritten once).
const FORMAT: &[u8] = b"ews-calendar-replicator/appointment-list/v1";

/// The hash of an appointment list, as 64 lower-case hex digits; the order
/// of `appointments` does not matter.
pub fn list_hash(appointments: &[Appointment]) -> String {
    let mut sorted: Vec<&Appointment> = appointments.iter().collect();
    sorted.sort_by(|a, b| canonical_order(a, b));
    let mut hasher = Sha256::new();
    hasher.update(FORMAT);
    hasher.update((sorted.len() as u64).to_be_bytes());
    // One field: its length, then its bytes (given in parts, so that
    // `+text` needs no buffer).
    let mut field = |parts: &[&[u8]]| {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        hasher.update((len as u64).to_be_bytes());
        for part in parts {
            hasher.update(part);
        }
    };
    for a in &sorted {
        field(&[a.entry_id.as_bytes()]);
        field(&[&a.start.timestamp().to_be_bytes()]);
        field(&[&a.start.timestamp_subsec_nanos().to_be_bytes()]);
        field(&[&a.end.timestamp().to_be_bytes()]);
        field(&[&a.end.timestamp_subsec_nanos().to_be_bytes()]);
        for text in [&a.subject, &a.location] {
            match text {
                None => field(&[b"-"]),
                Some(text) => field(&[b"+", text.as_bytes()]),
            }
        }
        field(&[&[
            a.all_day as u8,
            a.status as u8,
            a.sensitivity as u8,
            a.importance as u8,
        ]]);
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(64);
    for b in hasher.finalize() {
        hex.push(HEX[usize::from(b >> 4)] as char);
        hex.push(HEX[usize::from(b & 15)] as char);
    }
    hex
}

/// Whether a list with `hash` must be written, given the user's record: it
/// differs from the last list written, or a list sent earlier got no answer
/// and may be stored by the UCServer late (see [`UserRecord::unsettled_hash`]).
pub fn needs_write(record: Option<&UserRecord>, hash: &str) -> bool {
    match record {
        None => true,
        Some(r) => r.written_hash.as_deref() != Some(hash) || r.unsettled_hash.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::ucserver::{AppointmentStatus, Importance, Sensitivity};

    fn appointment(id: &str, hour: u32) -> Appointment {
        Appointment {
            entry_id: id.into(),
            start: Utc.with_ymd_and_hms(2026, 12, 1, hour, 0, 0).unwrap(),
            end: Utc.with_ymd_and_hms(2026, 12, 1, hour + 1, 0, 0).unwrap(),
            subject: Some("Review".into()),
            location: None,
            all_day: false,
            status: AppointmentStatus::Busy,
            sensitivity: Sensitivity::Normal,
            importance: Importance::Normal,
        }
    }

    #[test]
    fn the_hash_is_a_fixed_value_independent_of_order() {
        let list = [appointment("a", 9), appointment("b", 11)];
        let reversed = [appointment("b", 11), appointment("a", 9)];
        assert_eq!(list_hash(&list), list_hash(&reversed));
        // Pinned: a change here means every user is rewritten after upgrade.
        assert_eq!(list_hash(&list), PINNED_HASH);
        assert_eq!(list_hash(&[]).len(), 64);
    }

    const PINNED_HASH: &str = "bad307d4b482e3238a2eee8533ffc462f56ca532e7909883254199d40f9f0c75";

    #[test]
    fn every_field_that_reaches_the_ucserver_changes_the_hash() {
        let base = appointment("a", 9);
        let reference = list_hash(std::slice::from_ref(&base));
        let variants: Vec<(&str, Appointment)> = vec![
            (
                "id",
                Appointment {
                    entry_id: "b".into(),
                    ..base.clone()
                },
            ),
            (
                "start",
                Appointment {
                    start: base.start - chrono::Duration::minutes(1),
                    ..base.clone()
                },
            ),
            (
                "end",
                Appointment {
                    end: base.end + chrono::Duration::seconds(1),
                    ..base.clone()
                },
            ),
            (
                "subject",
                Appointment {
                    subject: Some("Revie".into()),
                    ..base.clone()
                },
            ),
            (
                "no subject",
                Appointment {
                    subject: None,
                    ..base.clone()
                },
            ),
            (
                "empty subject",
                Appointment {
                    subject: Some(String::new()),
                    ..base.clone()
                },
            ),
            (
                "location",
                Appointment {
                    location: Some("Review".into()),
                    ..base.clone()
                },
            ),
            (
                "all day",
                Appointment {
                    all_day: true,
                    ..base.clone()
                },
            ),
            (
                "status",
                Appointment {
                    status: AppointmentStatus::Tentative,
                    ..base.clone()
                },
            ),
            (
                "sensitivity",
                Appointment {
                    sensitivity: Sensitivity::Private,
                    ..base.clone()
                },
            ),
            (
                "importance",
                Appointment {
                    importance: Importance::High,
                    ..base.clone()
                },
            ),
        ];
        let mut seen = std::collections::HashSet::from([reference.clone()]);
        for (what, variant) in variants {
            let hash = list_hash(&[variant]);
            assert!(
                seen.insert(hash),
                "changing the {what} did not change the hash"
            );
        }
        // Moving text between fields changes it too (length prefixes).
        let moved = Appointment {
            subject: None,
            location: Some("Review".into()),
            ..base.clone()
        };
        assert_ne!(list_hash(&[moved]), reference);
        assert_ne!(list_hash(&[]), reference);
    }

    #[test]
    fn a_list_is_written_only_when_its_hash_differs_from_the_last_write() {
        let hash = list_hash(&[appointment("a", 9)]);
        let record = |written: Option<&str>| UserRecord {
            user_name: "alice".into(),
            written_hash: written.map(str::to_owned),
            written_at: None,
            last_error: Some("earlier failure".into()),
            last_error_at: None,
            sending_hash: None,
            unsettled_hash: None,
        };
        assert!(needs_write(None, &hash));
        assert!(needs_write(Some(&record(None)), &hash));
        assert!(needs_write(Some(&record(Some("0000"))), &hash));
        assert!(!needs_write(Some(&record(Some(&hash))), &hash));
    }

    #[test]
    fn a_user_with_an_unanswered_send_is_written_even_when_unchanged() {
        let hash = list_hash(&[appointment("a", 9)]);
        let record = |unsettled: Option<&str>| UserRecord {
            user_name: "alice".into(),
            written_hash: Some(hash.clone()),
            written_at: None,
            last_error: None,
            last_error_at: None,
            sending_hash: None,
            unsettled_hash: unsettled.map(str::to_owned),
        };
        assert!(needs_write(Some(&record(Some("0000"))), &hash));
        assert!(needs_write(Some(&record(Some(&hash))), &hash));
        assert!(!needs_write(Some(&record(None)), &hash));
    }
}
