//! Private appointments in each mode (`skip`, `times_only`, `full`): a
//! marker subject and location of a private event never reach the UCServer,
//! the state, the reports or any log line unless `full`. In a test binary of
//! its own, with one global log subscriber, so that the captured log lines
//! are exactly this test's.

#[allow(dead_code)]
mod support;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use crate::support::replication::*;
use ews_calendar_replicator::replication::{
    CycleOptions, PrivateAppointments, ReplicationSettings, StateStore,
};

/// Log output captured as text.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Every log line of the process at trace level, from the first call on.
fn capture_logs() -> Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let captured = Captured::default();
            let writer = captured.clone();
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .init();
            captured
        })
        .clone()
}

/// Two cycles (dry run and real) with a private event in alice's calendar
/// under `mode`; everything the private details could reach, as text: the
/// stored list, the state, the reports, every log line at trace level.
async fn private_event_traces(
    mode: PrivateAppointments,
) -> (String, String, String, String, Setup) {
    let captured = capture_logs();
    captured.0.lock().unwrap().clear();
    let s = setup_with(ReplicationSettings {
        private_appointments: mode,
        ..ReplicationSettings::default()
    })
    .await;
    s.engine.calendars().set(
        "alice@example.com",
        vec![meeting("a1", 2, 9, "Planning"), private_event(2)],
    );
    let dry = s
        .engine
        .run_cycle(
            now(),
            &CycleOptions {
                dry_run: true,
                ..CycleOptions::default()
            },
        )
        .await;
    let real = s
        .engine
        .run_cycle(
            now(),
            &CycleOptions {
                keep_appointments: true,
                ..CycleOptions::default()
            },
        )
        .await;
    assert!(real.succeeded(), "{real:#?}");
    let stored = serde_json::to_string(&s.sim.appointments("alice").unwrap()).unwrap();
    let state = format!(
        "{:?}{:?}",
        s.engine.state().users().unwrap(),
        s.engine.state().recent_cycles(10).unwrap()
    );
    let reports = format!(
        "{}{}{dry:?}{real:?}",
        serde_json::to_string(&dry).unwrap(),
        serde_json::to_string(&real).unwrap()
    );
    let logs = captured.text();
    assert!(
        logs.contains("replication cycle finished"),
        "the log capture is not working: {logs}"
    );
    (stored, state, reports, logs, s)
}

fn assert_no_marker(what: &str, text: &str) {
    for marker in [MARKER_SUBJECT, MARKER_LOCATION] {
        assert!(
            !text.contains(marker),
            "{marker} reached the {what}: {text}"
        );
    }
}

async fn skip_sends_no_private_appointment_and_its_details_go_nowhere() {
    let (stored, state, reports, logs, s) = private_event_traces(PrivateAppointments::Skip).await;
    for (what, text) in [
        ("UCServer", &stored),
        ("state", &state),
        ("report", &reports),
        ("log", &logs),
    ] {
        assert_no_marker(what, text);
    }
    let entries = s.sim.appointments("alice").unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].entry_id, "a1");
}

async fn times_only_sends_a_private_busy_block_without_its_details() {
    let (stored, state, reports, logs, s) =
        private_event_traces(PrivateAppointments::TimesOnly).await;
    for (what, text) in [
        ("UCServer", &stored),
        ("state", &state),
        ("report", &reports),
        ("log", &logs),
    ] {
        assert_no_marker(what, text);
    }
    let entries = s.sim.appointments("alice").unwrap();
    assert_eq!(entries.len(), 2);
    let private = &entries[1];
    assert_eq!(private.entry_id, "private-1");
    assert_eq!((private.start, private.end), (at(2, 12), at(2, 13)));
    assert_eq!(private.sensitivity, 2, "sensitivity private");
    assert_eq!(private.status, 3, "out of office kept");
    assert_eq!((private.subject.as_str(), private.text.as_str()), ("", ""));
    assert_eq!(private.optional_params, None, "no location");
}

async fn full_sends_private_appointments_with_their_details() {
    let (stored, _state, reports, _logs, s) = private_event_traces(PrivateAppointments::Full).await;
    // The marker checks above can fail: with `full` the details do arrive.
    assert!(stored.contains(MARKER_SUBJECT) && stored.contains(MARKER_LOCATION));
    assert!(reports.contains(MARKER_SUBJECT));
    let private = &s.sim.appointments("alice").unwrap()[1];
    assert_eq!(private.sensitivity, 2);
}

/// The modes in sequence (one test: the log capture is process-wide), `full`
/// last, since it is the one mode whose details may appear.
#[tokio::test]
async fn private_details_reach_nothing_unless_full() {
    skip_sends_no_private_appointment_and_its_details_go_nowhere().await;
    times_only_sends_a_private_busy_block_without_its_details().await;
    full_sends_private_appointments_with_their_details().await;
}
