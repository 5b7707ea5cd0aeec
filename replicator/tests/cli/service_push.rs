//! `run` with streaming notifications (issue #19): the service subscribes
//! the mailboxes its first cycle replicated, and a calendar change reaches
//! the UCServer within seconds, long before the next cycle; `status` shows
//! the subscription and the push refresh.

use std::process::Stdio;
use std::time::Duration;

use chrono::{Duration as ChronoDuration, DurationRound, Utc};
use ews_toolkit::sim::exchange::{SimBusyType, SimEvent};

use super::check_evidence::{Lab, MAILBOX};
use crate::support::lab::{json, run_binary, send_signal, text, wait_until, BIN};

#[tokio::test]
async fn the_service_writes_a_calendar_change_within_seconds_and_status_shows_the_feed() {
    let lab = Lab::start().await;
    let mut service = tokio::process::Command::new(BIN)
        .arg("run")
        .arg("--config")
        .arg(&lab.config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_until(
        "the first cycle's write and the subscription's stream",
        || {
            lab.ucserver.write_count("alice") == 1
                && lab.exchange.notification_counters().open_streams == 1
        },
    )
    .await;

    let start = (Utc::now() + ChronoDuration::days(1))
        .duration_trunc(ChronoDuration::hours(1))
        .unwrap();
    lab.exchange
        .mailbox_mut(MAILBOX, |m| {
            m.events.push(SimEvent {
                id: "pushed".into(),
                start,
                end: start + ChronoDuration::minutes(30),
                busy_type: SimBusyType::Busy,
                subject: Some("Pushed meeting".into()),
                location: None,
                private: false,
                meeting: true,
                all_day: false,
                recurrence: None,
            })
        })
        .unwrap();
    // The interval is 15 minutes: only the push loop writes this soon.
    wait_until("the change written by the push loop", || {
        lab.ucserver.write_count("alice") == 2
    })
    .await;
    let stored = lab.ucserver.appointments("alice").unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");

    let mut notifications = serde_json::Value::Null;
    for _ in 0..600 {
        let output = run_binary(
            &lab.config,
            &["status", "--json"],
            Duration::from_secs(60),
            |_| {},
        )
        .await;
        assert!(output.status.success(), "{}", text(&output));
        notifications = json(&output)["notifications"].clone();
        if notifications["push_written"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(notifications["subscribed"], 1, "{notifications:#}");
    assert_eq!(notifications["connections"], 1, "{notifications:#}");
    assert_eq!(notifications["push_written"], 1, "{notifications:#}");
    assert!(
        notifications["last_event_at"].is_string(),
        "{notifications:#}"
    );

    send_signal(service.id().unwrap(), "TERM");
    let status = tokio::time::timeout(Duration::from_secs(60), service.wait())
        .await
        .expect("the service stops")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

/// The demo's push phase: churn in the simulated Exchange, and changes
/// written to the UCServer by the push loop within seconds.
#[tokio::test]
async fn the_demo_pushes_churned_calendar_changes_to_the_ucserver() {
    let output = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::process::Command::new(BIN)
            .args(["demo", "--users", "30", "--show-users", "0"])
            .args(["--push-seconds", "3", "--churn-per-minute", "600"])
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("the demo finishes")
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", text(&output));
    assert!(stdout.contains("Streaming notifications: "), "{stdout}");
    let summary = stdout
        .lines()
        .find(|l| l.contains("pushed to the UCServer (median"))
        .unwrap_or_else(|| panic!("{stdout}"));
    let pushed: usize = summary
        .split(", ")
        .nth(1)
        .and_then(|p| p.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{summary}"));
    assert!(pushed > 0, "{stdout}");
    assert!(stdout.contains("-> written to the UCServer"), "{stdout}");
}
