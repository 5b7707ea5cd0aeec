//! The demo (the README's first command) does what it tells: the first cycle
//! writes every readable offline calendar, the second writes nothing, the
//! third writes exactly the calendars changed in between, all over real
//! sockets to the in-process simulators.

use std::collections::BTreeSet;

use ews_calendar_replicator::app::demo::{self, DemoOptions};
use ews_calendar_replicator::replication::PrivateAppointments;

#[tokio::test]
async fn demo_writes_everything_then_nothing_then_only_the_changed_calendars() {
    let options = DemoOptions {
        users: 60,
        changed: 4,
        ..DemoOptions::default()
    };
    let mut output = Vec::new();
    let outcome = demo::run(&options, &mut output)
        .await
        .expect("the demo runs");
    let text = String::from_utf8(output).unwrap();

    assert_eq!(outcome.cycles.len(), 3);
    let first = outcome.cycles[0];
    assert!(first.written > 0, "{text}");
    assert_eq!(outcome.ucserver_writes[0], first.written, "{text}");
    // Nothing changed: nothing written, nothing sent.
    assert_eq!(outcome.cycles[1].written, 0, "{text}");
    assert_eq!(outcome.ucserver_writes[1], 0, "{text}");
    assert_eq!(outcome.cycles[1].unchanged, first.written, "{text}");
    // Exactly the changed calendars, once each.
    assert_eq!(outcome.changed_users.len(), 4, "{text}");
    let changed: BTreeSet<_> = outcome.changed_users.iter().collect();
    let written: BTreeSet<_> = outcome.written_in_third.iter().collect();
    assert_eq!(written, changed, "{text}");
    assert_eq!(outcome.ucserver_writes[2], 4, "{text}");
    // The table shows the change that reached the UCServer.
    assert!(
        text.contains("Customer visit (added by the demo)"),
        "{text}"
    );
}

#[tokio::test]
async fn demo_skipping_private_appointments_writes_fewer_than_full() {
    // The generated calendars mark every fifth item private; with `skip`
    // the demo's UCServer must hold fewer appointments than with `full`.
    let mut counts = Vec::new();
    for mode in [PrivateAppointments::Skip, PrivateAppointments::Full] {
        let options = DemoOptions {
            users: 30,
            changed: 0,
            private_appointments: mode,
            ..DemoOptions::default()
        };
        let mut output = Vec::new();
        let outcome = demo::run(&options, &mut output)
            .await
            .expect("the demo runs");
        counts.push(outcome.cycles[0].appointments_written);
    }
    assert!(
        counts[0] < counts[1],
        "skip wrote {} appointments, full {}",
        counts[0],
        counts[1]
    );
}
