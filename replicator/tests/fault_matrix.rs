//! The fault matrix: each test injects one fault into a real cycle (the
//! binary with a configuration file against the Samba test DC, the Exchange
//! simulator and the UCServer simulator, over sockets; the engine in-process
//! where the fault needs a setting the configuration file does not have)
//! and checks what reached the UCServer, what the state database and
//! `status` say, and what the output reports. Every row: no calendar lost,
//! none wrongly cleared, no duplicate write, and the next healthy cycle
//! converges. The README's "Reliability" table lists the rows.

#[allow(dead_code)]
mod support;

use std::time::Duration;

use crate::support::lab::*;
use chrono::{DateTime, Duration as ChronoDuration, FixedOffset, Utc};
use ews_calendar_replicator::sim::ucserver::{UcServerSim, UcServerSimConfig, UserDatabase};
use ews_calendar_replicator::ucserver::asn::{AsnRequestError, APPOINTMENT_SET_ENTRY_LIST};
use ews_toolkit::availability;
use ews_toolkit::sim::exchange::{BusyMode, InjectedFault, SimBusyType, SimEvent};

// ------------------------------------------------------------------ Exchange

/// The shape of every Exchange row that fails a cycle: after a healthy
/// first cycle one calendar changes, `inject` breaks Exchange, and `once`
/// exits 1 naming `reason` for the users; the UCServer is untouched and
/// `status` lists the failing users. Then `heal`, and the next cycle writes
/// exactly the changed calendar.
async fn exchange_fault_fails_the_cycle_safely(
    lab: &Lab,
    inject: impl FnOnce(&Lab),
    heal: impl FnOnce(&Lab),
    reason: &str,
) {
    let before = lab.first_cycle().await;
    let changed = lab.change_first_calendar();
    inject(lab);
    let broken = lab.run(&["once"]).await;
    assert_eq!(broken.status.code(), Some(1), "{}", text(&broken));
    let stdout = String::from_utf8_lossy(&broken.stdout);
    assert!(stdout.contains("FAILED"), "{}", text(&broken));
    assert!(stdout.contains(reason), "{reason:?} in {}", text(&broken));
    assert_eq!(
        lab.ucserver_view(),
        before,
        "a failed read changes nothing at the UCServer"
    );
    let status = lab.status().await;
    let failing = status["users_failing"].as_array().unwrap();
    assert_eq!(failing.len(), lab.offline().len(), "{status:#}");
    assert!(
        failing
            .iter()
            .all(|u| u["error"].as_str().unwrap().contains(reason)),
        "{status:#}"
    );
    assert_eq!(status["cycles"][0]["written"], 0);
    heal(lab);
    lab.assert_converges(&before, &[&changed]).await;
}

#[tokio::test]
async fn exchange_down_connection_refused() {
    let lab = Lab::start().await;
    let url = lab.exchange.ews_url().to_string();
    let closed = format!("https://127.0.0.1:{}/EWS/Exchange.asmx", closed_port());
    exchange_fault_fails_the_cycle_safely(
        &lab,
        |lab| lab.edit_config(|c| c.replace(&url, &closed)),
        |lab| lab.edit_config(|c| c.replace(&closed, &url)),
        "Exchange could not be read",
    )
    .await;
}

#[tokio::test]
async fn exchange_tls_failure_without_the_ca() {
    let lab = Lab::start().await;
    let line = "ca_file = \"exchange-ca.pem\"\n";
    exchange_fault_fails_the_cycle_safely(
        &lab,
        |lab| lab.edit_config(|c| c.replace(line, "")),
        |lab| lab.edit_config(|c| c.replace("[replication]", &format!("{line}\n[replication]"))),
        "ca_file",
    )
    .await;
}

#[tokio::test]
async fn exchange_401_after_a_password_change() {
    let lab = Lab::start().await;
    // The account's password changed at the domain; the file still has the old one.
    exchange_fault_fails_the_cycle_safely(
        &lab,
        |lab| std::fs::write(lab.path("ews.password"), "Old-Password-1").unwrap(),
        |lab| std::fs::write(lab.path("ews.password"), EWS_PASSWORD).unwrap(),
        "password",
    )
    .await;
    let log = std::fs::read_to_string(lab.path("logs/ews-calendar-replicator.log")).unwrap();
    assert!(log.contains("HTTP 401"), "{log}");
    assert!(!log.contains("Old-Password-1") && !log.contains(EWS_PASSWORD));
}

#[tokio::test]
async fn exchange_truncated_body() {
    let lab = Lab::start().await;
    exchange_fault_fails_the_cycle_safely(
        &lab,
        |lab| lab.exchange.inject(InjectedFault::TruncatedBody, 1000),
        |lab| lab.exchange.clear_faults(),
        "Exchange could not read the mailbox",
    )
    .await;
}

#[tokio::test]
async fn exchange_truncated_xml() {
    let lab = Lab::start().await;
    exchange_fault_fails_the_cycle_safely(
        &lab,
        |lab| lab.exchange.inject(InjectedFault::TruncatedXml, 1000),
        |lab| lab.exchange.clear_faults(),
        "Exchange could not read the mailbox",
    )
    .await;
}

#[tokio::test]
async fn exchange_malformed_xml() {
    let lab = Lab::start().await;
    exchange_fault_fails_the_cycle_safely(
        &lab,
        |lab| lab.exchange.inject(InjectedFault::MalformedXml, 1000),
        |lab| lab.exchange.clear_faults(),
        "Exchange could not read the mailbox",
    )
    .await;
}

#[tokio::test]
async fn exchange_connection_reset_once_is_retried_within_the_cycle() {
    let lab = Lab::start().await;
    let before = lab.first_cycle().await;
    let changed = lab.change_first_calendar();
    lab.exchange.inject(InjectedFault::ConnectionReset, 1);
    lab.assert_converges(&before, &[&changed]).await;
    assert_eq!(lab.exchange.pending_faults(), 0);
}

#[tokio::test]
async fn exchange_server_busy_storm_is_waited_out_within_the_cycle() {
    let lab = Lab::start().await;
    let before = lab.first_cycle().await;
    let changed = lab.change_first_calendar();
    lab.exchange.reset_counters();
    for mode in [
        BusyMode::SoapFault { back_off_ms: 100 },
        BusyMode::InnerError { back_off_ms: 100 },
        BusyMode::SoapFault { back_off_ms: 100 },
    ] {
        lab.exchange.inject(InjectedFault::Busy(mode), 1);
    }
    lab.assert_converges(&before, &[&changed]).await;
    let counters = lab.exchange.counters();
    assert_eq!(counters.busy_answers, 3, "{counters:?}");
    assert_eq!(
        counters.requests_by_operation.get("GetUserAvailability"),
        Some(&4),
        "three busy answers, then the one that worked: {counters:?}"
    );
}

#[tokio::test]
async fn exchange_503_is_waited_out_within_the_cycle() {
    let lab = Lab::start().await;
    let before = lab.first_cycle().await;
    let changed = lab.change_first_calendar();
    lab.exchange.reset_counters();
    lab.exchange.inject(InjectedFault::HttpStatus(503), 2);
    lab.assert_converges(&before, &[&changed]).await;
    assert_eq!(lab.exchange.pending_faults(), 0);
    assert_eq!(
        lab.exchange
            .counters()
            .requests_by_operation
            .get("GetUserAvailability"),
        Some(&3)
    );
}

#[tokio::test]
async fn exchange_one_mailbox_error_inside_a_good_batch() {
    let lab = Lab::start().await;
    let before = lab.first_cycle().await;
    let offline = lab.offline();
    let (broken, other) = (offline[0], offline[1]);
    for user in [broken, other] {
        lab.exchange
            .mailbox_mut(&user.email, |m| m.events.remove(0))
            .unwrap();
    }
    lab.exchange
        .set_mailbox_error(&broken.email, Some("ErrorMailboxStoreUnavailable"));
    let output = lab.run(&["once", "--json"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let report = json(&output);
    for user in report["users"].as_array().unwrap() {
        let expected = if user["user_name"] == broken.user_name.as_str() {
            "failed"
        } else if user["user_name"] == other.user_name.as_str() {
            "written"
        } else {
            "unchanged"
        };
        assert_eq!(user["outcome"], expected, "{user:#}");
    }
    assert_eq!(
        lab.ucserver.appointments(&broken.user_name),
        before.0.iter().find(|u| u.0 == broken.user_name).unwrap().1,
        "the failed mailbox keeps its list"
    );
    let status = lab.status().await;
    let failing = status["users_failing"].as_array().unwrap();
    assert_eq!(failing.len(), 1, "{status:#}");
    assert!(failing[0]["error"]
        .as_str()
        .unwrap()
        .contains("ErrorMailboxStoreUnavailable"));

    let before = lab.ucserver_view();
    lab.exchange.set_mailbox_error(&broken.email, None);
    lab.assert_converges(&before, &[&broken.user_name]).await;
}

#[tokio::test]
async fn exchange_mailbox_data_array_too_big_splits_the_request() {
    let lab = Lab::start().await;
    lab.exchange
        .update_knobs(|k| k.max_mailboxes_per_request = 2);
    let output = lab.run(&["once"]).await;
    assert!(output.status.success(), "{}", text(&output));
    for user in lab.offline() {
        assert_eq!(lab.ucserver.write_count(&user.user_name), 1);
        assert_eq!(lab.ucserver.appointments(&user.user_name).unwrap().len(), 3);
    }
    let requests = lab.exchange.requests();
    let refused = requests
        .iter()
        .filter(|r| r.outcome == "ErrorMailboxDataArrayTooBig")
        .count();
    assert!(refused >= 1, "{requests:#?}");
    assert!(requests
        .iter()
        .filter(|r| r.outcome == "ok")
        .all(|r| r.mailboxes.len() <= 2));
    assert_eq!(
        lab.status().await["cycles"][0]["written"],
        lab.offline().len()
    );
}

#[tokio::test]
async fn exchange_slow_responses_past_the_request_timeout() {
    let lab = Lab::start().await;
    lab.edit_config(|c| {
        c.replace(
            "[replication]",
            "request_timeout_seconds = 1\n\n[replication]",
        )
    });
    exchange_fault_fails_the_cycle_safely(
        &lab,
        |lab| {
            lab.exchange
                .update_knobs(|k| k.request_latency = Duration::from_secs(3))
        },
        |lab| {
            lab.exchange
                .update_knobs(|k| k.request_latency = Duration::ZERO)
        },
        "timed out after 1s",
    )
    .await;
}

#[tokio::test]
async fn exchange_body_over_the_size_limit() {
    let lab = Lab::start().await;
    lab.edit_config(|c| c.replace("[replication]", "max_response_mb = 1\n\n[replication]"));
    let other = lab.offline()[1].email.clone();
    let original = lab.exchange.mailbox(&other).unwrap().events;
    exchange_fault_fails_the_cycle_safely(
        &lab,
        // One meeting with a 1.5 MB subject makes the answer too large.
        |lab| {
            lab.exchange
                .mailbox_mut(&other, |m| {
                    m.events[0].subject = Some("x".repeat(1536 * 1024))
                })
                .unwrap();
        },
        |lab| assert!(lab.exchange.set_calendar(&other, original.clone())),
        "larger than the limit of 1048576 bytes",
    )
    .await;
}

// ----------------------------------------------------------------- Directory

/// `once` fails before writing anything, naming `expected` on stderr; the
/// UCServer and the state are untouched; `heal` and the next cycle writes
/// exactly the changed calendar.
async fn directory_fault_stops_the_cycle(
    lab: &Lab,
    inject: impl FnOnce(&Lab),
    heal: impl FnOnce(&Lab),
    expected: &str,
) {
    let before = lab.first_cycle().await;
    let changed = lab.change_first_calendar();
    inject(lab);
    let broken = lab.run(&["once"]).await;
    assert!(!broken.status.success(), "{}", text(&broken));
    let all = text(&broken);
    assert!(all.contains("directory"), "{all}");
    assert!(all.contains(expected), "{expected:?} in {all}");
    assert_eq!(lab.ucserver_view(), before);
    let status = lab.status().await;
    assert_eq!(status["users_failing"].as_array().unwrap().len(), 0);
    heal(lab);
    lab.assert_converges(&before, &[&changed]).await;
}

#[tokio::test]
async fn directory_down() {
    let lab = Lab::start().await;
    let url = test_dc()["LDAP_URL"].clone();
    let closed = format!("ldap://127.0.0.1:{}", closed_port());
    directory_fault_stops_the_cycle(
        &lab,
        |lab| lab.edit_config(|c| c.replace(&url, &closed)),
        |lab| lab.edit_config(|c| c.replace(&closed, &url)),
        "127.0.0.1",
    )
    .await;
}

#[tokio::test]
async fn directory_bind_failure() {
    let lab = Lab::start().await;
    let password = std::fs::read_to_string(lab.path("ldap.password")).unwrap();
    directory_fault_stops_the_cycle(
        &lab,
        |lab| std::fs::write(lab.path("ldap.password"), "Wrong-Bind-Pw1").unwrap(),
        |lab| std::fs::write(lab.path("ldap.password"), &password).unwrap(),
        "password",
    )
    .await;
}

#[tokio::test]
async fn directory_user_removed_between_cycles_keeps_their_appointments() {
    let lab = Lab::start_with(LabOptions {
        static_directory: true,
        ..LabOptions::default()
    })
    .await;
    let before = lab.first_cycle().await;
    let removed = lab.offline()[0];
    let rest: Vec<Person> = lab
        .people
        .iter()
        .filter(|p| p.sam != removed.user_name)
        .cloned()
        .collect();
    lab.write_static_directory(&rest);
    let output = lab.run(&["once", "--json"]).await;
    assert!(
        output.status.code().is_some(),
        "a skipped user: {}",
        text(&output)
    );
    let report = json(&output);
    let user = report["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user_name"] == removed.user_name.as_str())
        .unwrap()
        .clone();
    assert_eq!(user["outcome"], "skipped", "{user:#}");
    assert_eq!(
        lab.ucserver_view(),
        before,
        "nothing written, and the removed user's list is not cleared"
    );
    // Back in the directory with the same calendar: nothing to write.
    lab.write_static_directory(&lab.people);
    lab.assert_converges(&before, &[]).await;
}

#[tokio::test]
async fn directory_primary_smtp_changed_reads_the_new_mailbox() {
    let lab = Lab::start_with(LabOptions {
        static_directory: true,
        ..LabOptions::default()
    })
    .await;
    let before = lab.first_cycle().await;
    let moved = lab.offline()[0].user_name.clone();
    // The user's primary address is now another mailbox, with one event.
    let mut new_mailbox = lab.exchange.mailbox(&lab.offline()[0].email).unwrap();
    new_mailbox.smtp = format!("renamed.{}", new_mailbox.smtp);
    new_mailbox.events.truncate(1);
    lab.exchange.upsert_mailbox(new_mailbox.clone());
    let people: Vec<Person> = lab
        .people
        .iter()
        .cloned()
        .map(|mut p| {
            if p.sam == moved {
                p.smtp = new_mailbox.smtp.clone();
            }
            p
        })
        .collect();
    lab.write_static_directory(&people);
    let output = lab.run(&["once", "--json"]).await;
    assert!(output.status.success(), "{}", text(&output));
    let report = json(&output);
    for user in report["users"].as_array().unwrap() {
        let expected = if user["user_name"] == moved.as_str() {
            assert_eq!(user["mailbox"], new_mailbox.smtp.as_str());
            "written"
        } else {
            "unchanged"
        };
        assert_eq!(user["outcome"], expected, "{user:#}");
    }
    assert_eq!(lab.ucserver.appointments(&moved).unwrap().len(), 1);
    assert_eq!(lab.ucserver.write_count(&moved), 2);
    let after = lab.ucserver_view();
    lab.assert_converges(&after, &[]).await;
    let _ = before;
}

// ------------------------------------------------------------------ UCServer

#[tokio::test]
async fn ucserver_down_at_start_once_fails_clearly() {
    let lab = Lab::start().await;
    let url = lab.ucserver.base_url().to_string();
    let closed = format!("http://127.0.0.1:{}/", closed_port());
    lab.edit_config(|c| c.replace(&url, &closed));
    let output = lab.run(&["once"]).await;
    assert!(!output.status.success(), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("UCServer"), "{}", text(&output));
    assert_eq!(lab.ucserver.total_writes(), 0);
    assert_eq!(lab.exchange.counters().requests, 0, "nothing read in vain");
    lab.edit_config(|c| c.replace(&closed, &url));
    lab.first_cycle().await;
}

/// The service started by systemd (`Type=notify`, `WatchdogSec=`, stderr
/// to the journal, `syslog = true`) while the UCServer is down: READY=1
/// comes at once with a STATUS naming the wait, the watchdog is pinged
/// while it waits, stderr lines carry their syslog priority, and once the
/// UCServer is up the service replicates, logging the cycle's summary and
/// the one failed user (a mailbox error) once each.
#[tokio::test]
async fn ucserver_down_at_start_run_retries_and_replicates_once_it_is_up() {
    use std::os::unix::fs::MetadataExt as _;
    let lab = Lab::start().await;
    let url = lab.ucserver.base_url().to_string();
    let port = closed_port();
    lab.edit_config(|c| {
        c.replace(&url, &format!("http://127.0.0.1:{port}/"))
            .replace("[logging]\n", "[logging]\nsyslog = true\n")
    });
    // One mailbox cannot be read: that user fails, the others are written.
    let broken = lab.offline()[0].clone();
    lab.exchange
        .set_mailbox_error(&broken.email, Some("ErrorMailboxStoreUnavailable"));
    let mut notify = NotifyListener::bind(&lab);
    // stderr as the journal's stream: a file whose device and inode
    // $JOURNAL_STREAM names.
    let journal = std::fs::File::create(lab.path("journal.txt")).unwrap();
    let stream = journal.metadata().unwrap();
    let service = lab.spawn_service_with(|command| {
        command
            .env("NOTIFY_SOCKET", &notify.path)
            .env("WATCHDOG_USEC", "2000000")
            .env_remove("WATCHDOG_PID")
            .env(
                "JOURNAL_STREAM",
                format!("{}:{}", stream.dev(), stream.ino()),
            )
            .stderr(journal);
    });
    notify.wait_for("READY=1", |d| d == "READY=1").await;
    let status = notify
        .wait_for("a STATUS naming the wait", |d| {
            d.starts_with("STATUS=waiting for the UCServer: ")
        })
        .await;
    assert!(status.contains(&port.to_string()), "{status}");
    notify.wait_for("WATCHDOG=1", |d| d == "WATCHDOG=1").await;
    assert_eq!(lab.exchange.counters().requests, 0, "nothing read in vain");
    let late = UcServerSim::start_on(
        ([127, 0, 0, 1], port).into(),
        UcServerSimConfig::new(UserDatabase {
            users: lab.all_users.clone(),
        }),
        None,
    )
    .await
    .unwrap();
    let offline = lab.offline().len() - 1;
    wait_until("the service wrote every readable offline user", || {
        late.total_writes() == offline
    })
    .await;
    notify
        .wait_for("a STATUS with the cycle's summary", |d| {
            d.starts_with("STATUS=last cycle ")
                && d.contains(&format!("{offline} written"))
                && d.contains("1 failed")
        })
        .await;
    send_signal(service.id().unwrap(), "TERM");
    let output = tokio::time::timeout(Duration::from_secs(60), service.wait_with_output())
        .await
        .expect("the service stops after SIGTERM")
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    notify.wait_for("STOPPING=1", |d| d == "STOPPING=1").await;
    for user in lab.offline() {
        let expected = usize::from(user.user_name != broken.user_name);
        assert_eq!(late.write_count(&user.user_name), expected);
    }
    let log = lab.log();
    assert!(log.contains("cannot start replicating"), "{log}");
    // One cycle, one summary line (the engine's; the service no longer
    // repeats it).
    assert_eq!(
        log.lines().filter(|l| l.contains("cycle finished")).count(),
        1,
        "{log}"
    );
    // The failed user: one warning (the engine's; the service no longer
    // repeats it).
    let user_field = format!("user={}", broken.user_name);
    assert_eq!(
        log.lines()
            .filter(|l| l.contains(" WARN ") && l.contains(&user_field))
            .count(),
        1,
        "{log}"
    );
    assert_eq!(lab.status().await["cycles"][0]["written"], offline);

    // The journal's lines: each with its priority (sd-daemon(3)), none
    // without; syslog skipped rather than duplicating them.
    let journal = std::fs::read_to_string(lab.path("journal.txt")).unwrap();
    let priority = |needle: &str| {
        journal
            .lines()
            .find(|l| l.contains(needle))
            .and_then(|l| l.get(..3))
            .unwrap_or_else(|| panic!("{needle:?} in the journal: {journal}"))
            .to_owned()
    };
    assert_eq!(priority("cannot start replicating"), "<3>");
    assert_eq!(priority("starting"), "<6>");
    assert_eq!(priority("not sending to /dev/log as well"), "<6>");
    for line in journal.lines() {
        assert!(
            ["<3>", "<4>", "<6>", "<7>"].contains(&line.get(..3).unwrap_or("")),
            "a journal line without its priority: {line:?}"
        );
    }
}

#[tokio::test]
async fn ucserver_connection_dropped_mid_write() {
    connection_dropped_mid_write(&Lab::start().await).await;
}

#[tokio::test]
async fn ucserver_native_port_connection_dropped_mid_write() {
    let lab = Lab::start_with(LabOptions {
        native_ucserver: true,
        ..LabOptions::default()
    })
    .await;
    connection_dropped_mid_write(&lab).await;
    // Everything went over the native port.
    assert!(lab.ucserver.createsession_requests().is_empty());
}

/// The engine sends the cut-off write again on the client's new session.
async fn connection_dropped_mid_write(lab: &Lab) {
    let before = lab.first_cycle().await;
    let offline = lab.offline();
    for user in &offline {
        lab.exchange
            .mailbox_mut(&user.email, |m| m.events.remove(0))
            .unwrap();
    }
    lab.ucserver
        .drop_before_processing(APPOINTMENT_SET_ENTRY_LIST, 1);
    let output = lab.run(&["once", "--json"]).await;
    let report = json(&output);
    let failed: Vec<String> = report["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["outcome"] == "failed")
        .map(|u| u["user_name"].as_str().unwrap().to_owned())
        .collect();
    assert!(failed.len() <= 1, "{failed:?}");
    for user in &offline {
        let written = lab.ucserver.write_count(&user.user_name);
        let expected = if failed.contains(&user.user_name) {
            1
        } else {
            2
        };
        assert_eq!(written, expected, "{}: {}", user.user_name, text(&output));
    }
    // The dropped write left the user's old list in place.
    for name in &failed {
        assert_eq!(
            lab.ucserver.appointments(name),
            before.0.iter().find(|u| &u.0 == name).unwrap().1
        );
    }
    let view = lab.ucserver_view();
    let names: Vec<&str> = failed.iter().map(String::as_str).collect();
    lab.assert_converges(&view, &names).await;
}

#[tokio::test]
async fn ucserver_session_expired_mid_cycle() {
    let lab = Lab::start().await;
    let before = lab.first_cycle().await;
    let changed = lab.change_first_calendar();
    // Exchange is slow, so the session expires while the calendars are read.
    lab.exchange
        .update_knobs(|k| k.request_latency = Duration::from_secs(2));
    let sessions = lab.ucserver.sessions_created();
    let once = lab.run(&["once"]);
    let expire = async {
        wait_until("Exchange is asked", || {
            lab.exchange.counters().current_concurrent > 0
        })
        .await;
        lab.ucserver.expire_all_sessions();
    };
    let (output, ()) = tokio::join!(once, expire);
    lab.exchange
        .update_knobs(|k| k.request_latency = Duration::ZERO);
    let view = lab.ucserver_view();
    if output.status.success() {
        // Reconnected with a new session and wrote within the cycle.
        assert!(lab.ucserver.sessions_created() > sessions + 1);
        for (name, _, writes) in &view.0 {
            let was = before.0.iter().find(|u| &u.0 == name).unwrap().2;
            assert_eq!(*writes, was + usize::from(*name == changed), "{name}");
        }
        lab.assert_converges(&view, &[]).await;
    } else {
        assert_eq!(view, before, "{}", text(&output));
        lab.assert_converges(&before, &[&changed]).await;
    }
}

#[tokio::test]
async fn ucserver_error_answer_to_one_write() {
    let lab = Lab::start().await;
    let before = lab.first_cycle().await;
    let offline = lab.offline();
    for user in &offline {
        lab.exchange
            .mailbox_mut(&user.email, |m| m.events.remove(0))
            .unwrap();
    }
    lab.ucserver.fail_operation(
        APPOINTMENT_SET_ENTRY_LIST,
        1,
        AsnRequestError {
            error_detail: 42,
            error_string: "store temporarily unavailable".into(),
        },
    );
    let output = lab.run(&["once", "--json"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let report = json(&output);
    let failed: Vec<&serde_json::Value> = report["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["outcome"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{report:#}");
    let failed_name = failed[0]["user_name"].as_str().unwrap().to_owned();
    assert_eq!(
        lab.ucserver.appointments(&failed_name),
        before.0.iter().find(|u| u.0 == failed_name).unwrap().1
    );
    let status = lab.status().await;
    let failing = status["users_failing"].as_array().unwrap();
    assert_eq!(failing.len(), 1);
    assert!(
        failing[0]["error"]
            .as_str()
            .unwrap()
            .contains("store temporarily unavailable"),
        "{status:#}"
    );
    let view = lab.ucserver_view();
    lab.assert_converges(&view, &[&failed_name]).await;
}

#[tokio::test]
async fn ucserver_user_logs_on_between_listing_and_writing() {
    let lab = Lab::start().await;
    let before = lab.first_cycle().await;
    let user = lab.offline()[0];
    lab.exchange
        .mailbox_mut(&user.email, |m| m.events.remove(0))
        .unwrap();
    lab.exchange
        .update_knobs(|k| k.request_latency = Duration::from_secs(1));
    let once = lab.run(&["once"]);
    let log_on = async {
        wait_until("Exchange is asked", || {
            lab.exchange.counters().current_concurrent > 0
        })
        .await;
        lab.ucserver.set_online(&user.user_name, true);
    };
    let (output, ()) = tokio::join!(once, log_on);
    assert!(output.status.success(), "{}", text(&output));
    // The list was read for an offline user and is written once: the client
    // that just logged on takes over its own calendar from now on.
    assert_eq!(lab.ucserver.write_count(&user.user_name), 2);
    let view = lab.ucserver_view();
    // Logged on, the user is no longer listed: nothing more is written.
    lab.exchange
        .update_knobs(|k| k.request_latency = Duration::ZERO);
    lab.exchange
        .mailbox_mut(&user.email, |m| m.events.remove(0))
        .unwrap();
    lab.assert_converges(&view, &[]).await;
    let _ = before;
}

// ------------------------------------------------------------------- Process

/// The lab with writes sent one after the other, so that a signal lands
/// between two users' writes (with several in flight, each of those
/// finishes, or, on kill -9, may be repeated by the next cycle).
fn one_write_at_a_time() -> LabOptions {
    LabOptions {
        replication: "ucserver_writes_in_flight = 1".into(),
        ..LabOptions::default()
    }
}

/// Starts `run` with a slow UCServer, waits until `written` users are
/// written, then sends `signal`; returns the users written by then.
async fn interrupt_while_writing(lab: &Lab, signal: &str) -> UcView {
    lab.ucserver.set_latency(Duration::from_millis(700));
    let service = lab.spawn_service();
    wait_until("two users are written", || lab.ucserver.total_writes() >= 2).await;
    // The second write is recorded in the state a moment after the
    // UCServer stored it; the signal lands during the third one's latency.
    tokio::time::sleep(Duration::from_millis(300)).await;
    send_signal(service.id().unwrap(), signal);
    let output = tokio::time::timeout(Duration::from_secs(60), service.wait_with_output())
        .await
        .expect("the service stops")
        .unwrap();
    if signal == "TERM" {
        assert!(output.status.success(), "{}", text(&output));
    }
    lab.ucserver.set_latency(Duration::ZERO);
    // A write the process sent before it died is still processed by the
    // server (700 ms after it arrived): count it before comparing, or it
    // lands in the middle of the next comparison (the cause of issue #13's
    // failures on an idle machine, where the next `once` was faster).
    wait_until("the UCServer has finished the invokes it received", || {
        lab.ucserver.invokes_in_progress() == 0
    })
    .await;
    let view = lab.ucserver_view();
    assert!(
        lab.ucserver.total_writes() < lab.offline().len(),
        "stopped in the middle: {view:?}"
    );
    view
}

/// After an interruption: `status` works, and the next cycle writes
/// exactly the users not written before (none twice).
async fn finishes_the_rest(lab: &Lab, interrupted: &UcView) {
    let status = lab.status().await;
    let known = status["users_known"].as_u64().unwrap() as usize;
    let written_before: Vec<&str> = interrupted
        .0
        .iter()
        .filter(|u| u.2 > 0)
        .map(|u| u.0.as_str())
        .collect();
    assert_eq!(known, written_before.len(), "{status:#}");
    let rest: Vec<&str> = lab
        .offline()
        .iter()
        .map(|u| u.user_name.as_str())
        .filter(|n| !written_before.contains(n))
        .collect();
    assert!(!rest.is_empty());
    lab.assert_converges(interrupted, &rest).await;
    for user in lab.offline() {
        assert_eq!(lab.ucserver.write_count(&user.user_name), 1);
    }
}

#[tokio::test]
async fn process_sigterm_mid_cycle_keeps_finished_users_and_the_next_cycle_does_the_rest() {
    let lab = Lab::start_with(one_write_at_a_time()).await;
    let interrupted = interrupt_while_writing(&lab, "TERM").await;
    let log = std::fs::read_to_string(lab.path("logs/ews-calendar-replicator.log")).unwrap();
    assert!(log.contains("SIGTERM"), "{log}");
    finishes_the_rest(&lab, &interrupted).await;
}

/// SIGHUP (systemctl reload, logrotate's postrotate) while the service
/// waits for a UCServer that is down: the process lives on (rc 0 at the
/// end, not 129), the renamed log file is replaced by a new one, an invalid
/// configuration is reported and the old one stays in force, and a valid
/// one is used by the next attempt, which replicates.
#[tokio::test]
async fn process_sighup_reopens_the_log_and_reloads_the_configuration() {
    let lab = Lab::start().await;
    let url = lab.ucserver.base_url().to_string();
    let closed = format!("http://127.0.0.1:{}/", closed_port());
    lab.edit_config(|c| c.replace(&url, &closed));
    let good = std::fs::read_to_string(&lab.config).unwrap();
    let service = lab.spawn_service();
    let pid = service.id().unwrap();
    wait_until("the first attempt failed", || {
        lab.log().contains("cannot start replicating")
    })
    .await;

    // logrotate: rename, then SIGHUP.
    let rotated = lab.path("logs/ews-calendar-replicator.log-rotated");
    std::fs::rename(lab.path("logs/ews-calendar-replicator.log"), &rotated).unwrap();
    // An invalid configuration at the same time.
    std::fs::write(
        &lab.config,
        good.replace(
            "[replication]",
            "[replication]\ninterval_minutes = \"soon\"",
        ),
    )
    .unwrap();
    send_signal(pid, "HUP");
    wait_until(
        "the invalid configuration is reported in a new log file",
        || lab.log().contains("the configuration was not reloaded"),
    )
    .await;
    let log = lab.log();
    assert!(
        log.contains("log file") && log.contains("reopened"),
        "{log}"
    );
    assert!(
        log.contains("interval_minutes"),
        "names what was wrong: {log}"
    );
    assert!(log.contains("systemctl reload"), "says the fix: {log}");
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(
        !old.contains("SIGHUP"),
        "nothing after the reopen in the renamed file: {old}"
    );
    // The old configuration stays: the service goes on trying the old URL.
    wait_until("another attempt with the old configuration", || {
        let log = lab.log();
        let after = log
            .split("the configuration was not reloaded")
            .nth(1)
            .unwrap_or("");
        after.contains("cannot start replicating")
    })
    .await;
    assert_eq!(lab.ucserver.total_writes(), 0);

    // A valid configuration naming the running UCServer: the next attempt
    // uses it.
    std::fs::write(&lab.config, good.replace(&closed, &url)).unwrap();
    send_signal(pid, "HUP");
    let offline = lab.offline().len();
    wait_until("the reloaded configuration replicated", || {
        lab.ucserver.total_writes() == offline
    })
    .await;
    assert!(
        lab.log().contains("configuration reloaded"),
        "{}",
        lab.log()
    );
    send_signal(pid, "TERM");
    let output = tokio::time::timeout(Duration::from_secs(60), service.wait_with_output())
        .await
        .expect("the service stops after SIGTERM")
        .unwrap();
    assert!(output.status.success(), "rc 0, not 129: {}", text(&output));
    assert_eq!(lab.status().await["cycles"][0]["written"], offline);
}

/// SIGHUP with a valid configuration while the service replicates: the
/// cycle of the old configuration is not repeated or cut short, and the
/// next scheduled cycle uses the new one (here: another UCServer).
#[tokio::test]
async fn process_sighup_with_a_valid_configuration_applies_from_the_next_cycle() {
    let lab = Lab::start_with(LabOptions {
        replication: "interval_minutes = 1".into(),
        ..LabOptions::default()
    })
    .await;
    cycles_only(&lab);
    let service = lab.spawn_service();
    let pid = service.id().unwrap();
    let offline = lab.offline().len();
    wait_until("the first cycle wrote every offline user", || {
        lab.ucserver.total_writes() == offline
    })
    .await;
    let moved = UcServerSim::start(
        UcServerSimConfig::new(UserDatabase {
            users: lab.all_users.clone(),
        }),
        None,
    )
    .await
    .unwrap();
    let url = lab.ucserver.base_url().to_string();
    lab.edit_config(|c| c.replace(&url, moved.base_url().as_ref()));
    // Only changed lists are written: one calendar changes.
    let changed = lab.change_first_calendar();
    send_signal(pid, "HUP");
    // The next cycle comes a whole interval after the first one started.
    wait_at_most(
        Duration::from_secs(180),
        "the next cycle wrote to the UCServer the reloaded configuration names",
        || moved.write_count(&changed) == 1,
    )
    .await;
    assert_eq!(moved.total_writes(), 1);
    assert_eq!(
        lab.ucserver.total_writes(),
        offline,
        "the old UCServer got nothing more"
    );
    let log = lab.log();
    assert!(log.contains("configuration reloaded"), "{log}");
    assert!(log.contains("using the reloaded configuration"), "{log}");
    send_signal(pid, "TERM");
    let output = tokio::time::timeout(Duration::from_secs(60), service.wait_with_output())
        .await
        .expect("the service stops after SIGTERM")
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
}

#[tokio::test]
async fn process_kill_9_mid_cycle_and_restart() {
    let lab = Lab::start_with(one_write_at_a_time()).await;
    let interrupted = interrupt_while_writing(&lab, "KILL").await;
    // The state database survived a kill in the middle of the writes.
    let check = rusqlite_integrity(&lab.state);
    assert_eq!(check, "ok");
    let status = lab.status().await;
    assert!(status["users_known"].as_u64().unwrap() >= 1, "{status:#}");
    // The next cycle writes every user not yet written; a user whose write
    // the UCServer had stored when the process died may be written once
    // more (its list is the same; the state had not recorded it). Seen
    // under load: see the final report.
    let output = lab.run(&["once"]).await;
    assert!(output.status.success(), "{}", text(&output));
    let mut rewritten = 0;
    for user in lab.offline() {
        let before = interrupted
            .0
            .iter()
            .find(|u| u.0 == user.user_name)
            .unwrap()
            .2;
        let now = lab.ucserver.write_count(&user.user_name);
        assert!(now >= 1, "{} written", user.user_name);
        if before == 1 && now == 2 {
            rewritten += 1;
        }
    }
    assert!(rewritten <= 1, "at most the write in flight is repeated");
    let view = lab.ucserver_view();
    lab.assert_converges(&view, &[]).await;
}

/// A kill -9 while a write is in flight, and the UCServer stores that write
/// late: after the restarted service has written the user's newer list. The
/// service cannot prevent a server from finishing a request it has received;
/// it must make the late list harmless: the user's send got no answer, so
/// the next cycle writes the current list once more.
#[tokio::test]
async fn process_kill_9_and_a_write_the_ucserver_stores_late_is_settled_by_the_next_cycle() {
    let lab = Lab::start_with(one_write_at_a_time()).await;
    let mut view = lab.first_cycle().await;
    let user = lab.offline()[0].clone();
    let drop_first_event = |lab: &Lab| {
        lab.exchange
            .mailbox_mut(&user.email, |m| m.events.remove(0))
            .unwrap();
    };
    // The list the killed process sends: one event fewer than written.
    drop_first_event(&lab);
    lab.ucserver.hold_writes(true);
    let service = lab.spawn_service();
    wait_until("the service's write is held by the UCServer", || {
        lab.ucserver.held_writes() == 1
    })
    .await;
    send_signal(service.id().unwrap(), "KILL");
    let _ = service.wait_with_output().await;
    // The calendar changes again before the restart; the restarted service
    // writes the list now current, and the server then stores the old one.
    drop_first_event(&lab);
    lab.ucserver.hold_writes(false);
    let output = lab.run(&["once"]).await;
    assert!(output.status.success(), "{}", text(&output));
    let events = lab.exchange.mailbox(&user.email).unwrap().events;
    let current = events.iter().filter(|e| !e.private).count();
    let stored = |lab: &Lab| lab.ucserver.appointments(&user.user_name).unwrap().len();
    assert_eq!(stored(&lab), current, "the restart wrote the current list");
    lab.ucserver.release_held_writes();
    wait_until("the UCServer has stored the held write", || {
        lab.ucserver.invokes_in_progress() == 0
    })
    .await;
    assert_eq!(
        stored(&lab),
        current + 1,
        "the late write put the old list back"
    );
    // The next cycle writes the current list again, and only that user.
    for entry in view.0.iter_mut() {
        entry.2 = lab.ucserver.write_count(&entry.0);
    }
    lab.assert_converges(&view, &[user.user_name.as_str()])
        .await;
    assert_eq!(stored(&lab), current);
    // Settled: the cycle after writes nothing.
    let settled = lab.ucserver_view();
    lab.assert_converges(&settled, &[]).await;
}

/// `PRAGMA integrity_check` through the sqlite3 state store's own crate.
fn rusqlite_integrity(path: &std::path::Path) -> String {
    let db = rusqlite::Connection::open(path).unwrap();
    db.query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap()
}

// ------------------------------------------------- Process: clock jumps

// A real clock jump steps the wall clock (NTP step, VM resume, `date -s`)
// while the monotonic clock runs on; libfaketime does the same to the
// binary alone (see `SteppedClock`). The scheduler waits on the monotonic
// clock, so a step neither fires the next cycle at once nor delays it by
// the step's length. What a step legitimately changes is the availability
// window: it starts at the cycle's wall-clock `now`, so after a forward
// step an appointment that now lies in the past drops out of the list the
// UCServer should hold, and writing that shorter list is correct; after a
// backward step the window starts earlier and nothing drops. The rows
// compute the expected lists from each cycle's recorded start (= its
// window start) and require exactly the users whose expected list changed,
// plus the calendar changed in Exchange, to be written, once each.

/// Cycles recorded in the state database so far (0 while it is not there
/// or is busy).
fn recorded_cycles(lab: &Lab) -> i64 {
    let Ok(db) = rusqlite::Connection::open_with_flags(
        &lab.state,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    ) else {
        return 0;
    };
    db.query_row("SELECT COUNT(*) FROM cycles", [], |row| row.get(0))
        .unwrap_or(0)
}

/// Polls until `condition` holds, panicking with `what` after `limit`.
async fn wait_at_most(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The appointments of `user` the UCServer should hold for a window
/// starting at `window_start` (private ones are skipped by default; every
/// event lies well before the window's end).
fn expected_count(lab: &Lab, email: &str, window_start: DateTime<Utc>) -> usize {
    lab.exchange
        .mailbox(email)
        .unwrap()
        .events
        .iter()
        .filter(|e| !e.private && e.end > window_start)
        .count()
}

fn started_at(cycle: &serde_json::Value) -> DateTime<Utc> {
    cycle["started_at"].as_str().unwrap().parse().unwrap()
}

/// `status` (text and JSON) after clock steps: every recorded duration is
/// at least zero and the end is not before the start; the newest cycle
/// (first) is the one recorded last, whatever its wall-clock start. Returns
/// the JSON.
async fn assert_status_sane(lab: &Lab, cycles: usize) -> serde_json::Value {
    let status = lab.status().await;
    let recorded = status["cycles"].as_array().unwrap();
    assert_eq!(recorded.len(), cycles, "{status:#}");
    for cycle in recorded {
        assert!(cycle["duration_ms"].as_i64().unwrap() >= 0, "{status:#}");
        let finished: DateTime<Utc> = cycle["finished_at"].as_str().unwrap().parse().unwrap();
        assert!(finished >= started_at(cycle), "{status:#}");
        assert!(cycle["error"].is_null(), "{status:#}");
    }
    let output = lab.run(&["status"]).await;
    assert!(output.status.success(), "{}", text(&output));
    let shown = String::from_utf8_lossy(&output.stdout);
    // Rows start with "YYYY-MM-DD HH:MM:SS", then the duration ("1.2s").
    let rows: Vec<&str> = shown
        .lines()
        .filter(|l| l.len() > 20 && l.as_bytes()[4] == b'-' && l.as_bytes()[13] == b':')
        .collect();
    assert_eq!(rows.len(), cycles, "{shown}");
    for row in rows {
        let duration = row.split_whitespace().nth(2).unwrap();
        assert!(
            duration.ends_with('s') && !duration.starts_with('-'),
            "{row}"
        );
    }
    assert!(!shown.contains("panicked"), "{shown}");
    status
}

/// These rows are about the cycle (scheduling, reload): the calendar change
/// must reach the UCServer through the next cycle, not through a push of
/// streaming notifications (those rows are in `fault_matrix_push`).
fn cycles_only(lab: &Lab) {
    lab.edit_config(|c| c.replacen("[exchange]\n", "[exchange]\nnotifications = \"off\"\n", 1));
}

/// The service (`run`, interval 1 minute) does one cycle, the wall clock
/// steps by `offset` (`step`) and a calendar changes in Exchange; then:
/// no cycle in the first 20 s after the step (no burst), the second cycle
/// within two minutes (no stall for the step's length), written exactly
/// the changed calendar and the lists the moved window changed, and a
/// further cycle at the stepped time writes nothing.
async fn clock_step_between_cycles(step: ChronoDuration) {
    let lab = Lab::start_with(LabOptions {
        replication: "interval_minutes = 1".into(),
        ..LabOptions::default()
    })
    .await;
    cycles_only(&lab);
    // An appointment starting in half an hour: in the window before the
    // step, in the past after a forward step of hours.
    let soon_user = lab.offline()[1].clone();
    let now = Utc::now();
    lab.exchange
        .mailbox_mut(&soon_user.email, |m| {
            m.events.push(SimEvent {
                id: "soon".into(),
                start: now + ChronoDuration::minutes(30),
                end: now + ChronoDuration::minutes(90),
                busy_type: SimBusyType::Busy,
                subject: Some("Soon".into()),
                location: None,
                private: false,
                meeting: false,
                all_day: false,
                recurrence: None,
            })
        })
        .unwrap();
    let clock = SteppedClock::new(&lab);
    let service = lab.spawn_service_with_clock(Some(&clock));
    wait_at_most(Duration::from_secs(120), "the first cycle", || {
        recorded_cycles(&lab) >= 1
    })
    .await;
    let before = lab.ucserver_view();
    assert_eq!(lab.ucserver.total_writes(), lab.offline().len());
    let first = lab.status().await["cycles"][0].clone();

    clock.step(step);
    let changed = lab.change_first_calendar();
    // No burst: a scheduler on wall time would start the next cycle at
    // once after a forward step (the next start looks overdue).
    for _ in 0..80 {
        assert_eq!(recorded_cycles(&lab), 1, "no cycle right after the step");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // No stall: a scheduler on wall time would wait the step's length
    // more after a backward step.
    wait_at_most(
        Duration::from_secs(120),
        "the second cycle one interval after the first",
        || recorded_cycles(&lab) >= 2,
    )
    .await;
    send_signal(service.id().unwrap(), "TERM");
    let output = tokio::time::timeout(Duration::from_secs(60), service.wait_with_output())
        .await
        .expect("the service stops")
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert!(!text(&output).contains("panicked"), "{}", text(&output));
    assert_eq!(recorded_cycles(&lab), 2, "one cycle per interval");

    let status = assert_status_sane(&lab, 2).await;
    let second = &status["cycles"][0];
    // The binary saw the step (the preload works): the second cycle's
    // recorded start is one interval (about a minute) plus the step after
    // the first one's.
    let apart = started_at(second) - started_at(&first);
    assert!(
        apart > step && apart < step + ChronoDuration::minutes(5),
        "cycle starts {apart} apart after a step of {step}: {status:#}"
    );
    let mut expected_written = Vec::new();
    for (user, (name, list, writes)) in lab.users.iter().zip(&lab.ucserver_view().0) {
        let was = before.0.iter().find(|u| &u.0 == name).unwrap();
        if user.online {
            assert_eq!(*writes, 0, "{name}: logged on, never written");
            continue;
        }
        let then = expected_count(&lab, &user.email, started_at(&first));
        let now = expected_count(&lab, &user.email, started_at(second));
        let stored = list.as_ref().expect("written in the first cycle");
        assert_eq!(
            stored.len(),
            now,
            "{name}: the list for the window after the step"
        );
        let moved = *name == changed || then != now;
        assert_eq!(*writes, 1 + usize::from(moved), "{name}: writes");
        if moved {
            expected_written.push(name.clone());
        } else {
            assert_eq!(list, &was.1, "{name}: kept, not cleared");
        }
    }
    // A forward step of hours moves "soon" into the past: a true change.
    assert_eq!(
        expected_written.contains(&soon_user.user_name),
        step > ChronoDuration::hours(2),
        "{expected_written:?}"
    );
    assert_eq!(second["written"], expected_written.len(), "{status:#}");
    assert_eq!(status["users_failing"].as_array().unwrap().len(), 0);
    assert_eq!(rusqlite_integrity(&lab.state), "ok");

    // Converged: another cycle at the stepped time writes nothing.
    let after = lab.ucserver_view();
    let output = lab.run_with_clock(&["once"], Some(&clock)).await;
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(lab.ucserver_view(), after, "{}", text(&output));
    let status = assert_status_sane(&lab, 3).await;
    assert_eq!(status["cycles"][0]["written"], 0, "{status:#}");
}

#[tokio::test]
async fn process_clock_steps_back_2h_between_cycles() {
    clock_step_between_cycles(ChronoDuration::hours(-2)).await;
}

#[tokio::test]
async fn process_clock_steps_forward_3h_between_cycles() {
    clock_step_between_cycles(ChronoDuration::hours(3)).await;
}

#[tokio::test]
async fn process_clock_steps_forward_a_day_between_cycles() {
    clock_step_between_cycles(ChronoDuration::days(1)).await;
}

/// The wall clock steps back 2 h in the middle of a cycle's writes: the
/// cycle completes, and its recorded duration is the time it took (the
/// monotonic clock), not a negative one.
#[tokio::test]
async fn process_clock_steps_back_2h_during_a_cycle() {
    let lab = Lab::start().await;
    lab.first_cycle().await;
    for user in lab.offline() {
        lab.exchange
            .mailbox_mut(&user.email, |m| m.events.remove(0))
            .unwrap();
    }
    let clock = SteppedClock::new(&lab);
    lab.ucserver.set_latency(Duration::from_millis(700));
    let once = lab.run_with_clock(&["once", "--json"], Some(&clock));
    let step = async {
        wait_until("two users are written", || {
            lab.ucserver.total_writes() >= lab.offline().len() + 2
        })
        .await;
        clock.step(ChronoDuration::hours(-2));
    };
    let (output, ()) = tokio::join!(once, step);
    lab.ucserver.set_latency(Duration::ZERO);
    assert!(output.status.success(), "{}", text(&output));
    let report = json(&output);
    for user in lab.offline() {
        assert_eq!(lab.ucserver.write_count(&user.user_name), 2);
    }
    let status = assert_status_sane(&lab, 2).await;
    let cycle = &status["cycles"][0];
    let measured = report["durations"]["total_ms"].as_i64().unwrap();
    assert_eq!(cycle["duration_ms"], measured, "{status:#}");
    assert_eq!(cycle["written"], lab.offline().len(), "{status:#}");
    // The binary saw the step: users written after it carry a time about
    // 2 h before the cycle's start.
    let db = rusqlite::Connection::open(&lab.state).unwrap();
    let mut query = db.prepare("SELECT written_at FROM users").unwrap();
    let written: Vec<DateTime<Utc>> = query
        .query_map([], |row| row.get::<_, String>(0))
        .unwrap()
        .map(|t| t.unwrap().parse().unwrap())
        .collect();
    let start = started_at(cycle);
    assert!(
        written
            .iter()
            .any(|t| *t < start - ChronoDuration::minutes(100)),
        "{written:?} against a start at {start}"
    );
    assert_eq!(rusqlite_integrity(&lab.state), "ok");
    let view = lab.ucserver_view();
    lab.assert_converges(&view, &[]).await;
}

// ----------------------------------------------------------------- Bad input

fn mailboxes(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("user{i}@contoso.test")).collect()
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/ews")
            .join(name),
    )
    .unwrap()
}

#[test]
fn bad_input_entity_expansion_bomb_is_refused_without_expansion() {
    let bomb = fixture("bad_entity_bomb.xml");
    let err = availability::parse_response(&mailboxes(1), &bomb, FixedOffset::east_opt(0).unwrap())
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("DTD"), "{message}");
    assert!(
        message.len() < 1000,
        "nothing expanded into the error: {message}"
    );
}

#[test]
fn bad_input_external_entity_reference_is_refused() {
    let secret = std::env::temp_dir().join("fault-matrix-xxe-secret.txt");
    std::fs::write(&secret, "XXE-SECRET-CONTENT").unwrap();
    let xxe = format!(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE s:Envelope [<!ENTITY x SYSTEM \"file://{}\">]>\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body>&x;</s:Body></s:Envelope>",
        secret.display()
    );
    let err = availability::parse_response(
        &mailboxes(1),
        xxe.as_bytes(),
        FixedOffset::east_opt(0).unwrap(),
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("DTD"), "{message}");
    assert!(!message.contains("XXE-SECRET-CONTENT"));
    // An entity reference without any DTD is undeclared: refused too.
    let fixture = String::from_utf8(fixture("gua_detailed.xml")).unwrap();
    let undeclared = fixture.replacen("Lunch walk", "&x;", 1);
    assert!(availability::parse_response(
        &mailboxes(3),
        undeclared.as_bytes(),
        FixedOffset::east_opt(0).unwrap()
    )
    .is_err());
}

#[test]
fn bad_input_invalid_utf8_in_a_response_is_an_error_not_a_panic() {
    let fixture = fixture("gua_detailed.xml");
    let at = fixture
        .windows(b"Lunch walk".len())
        .position(|w| w == b"Lunch walk")
        .unwrap();
    let mut broken = fixture.clone();
    broken[at] = 0xff;
    broken[at + 1] = 0xfe;
    let result =
        availability::parse_response(&mailboxes(3), &broken, FixedOffset::east_opt(0).unwrap());
    let err = result.expect_err("invalid UTF-8 is refused");
    assert!(!err.to_string().is_empty());
}

#[tokio::test]
async fn bad_input_oversized_subject_is_replicated_without_harm() {
    let lab = Lab::start_with(LabOptions {
        replication: "private_appointments = \"full\"".into(),
        ..LabOptions::default()
    })
    .await;
    let before = lab.first_cycle().await;
    let user = lab.offline()[0];
    let huge = "S".repeat(100 * 1024);
    lab.exchange
        .mailbox_mut(&user.email, |m| m.events[0].subject = Some(huge.clone()))
        .unwrap();
    let output = lab.run(&["once"]).await;
    assert!(output.status.success(), "{}", text(&output));
    let list = lab.ucserver.appointments(&user.user_name).unwrap();
    assert_eq!(list.len(), 4);
    assert!(list.iter().any(|a| a.subject.starts_with("SSSS")));
    assert_eq!(lab.ucserver.write_count(&user.user_name), 2);
    let view = lab.ucserver_view();
    lab.assert_converges(&view, &[]).await;
    let _ = before;
}

#[tokio::test]
async fn bad_input_invalid_configuration_values_are_named_and_nothing_runs() {
    let lab = Lab::start().await;
    let original = std::fs::read_to_string(&lab.config).unwrap();
    let cases = [
        (
            "[replication]\n",
            "[replication]\ninterval_minutes = 0\n",
            "replication.interval_minutes",
        ),
        (
            "[replication]\n",
            "[replication]\nwindow_days = -3\n",
            "replication.window_days",
        ),
        (
            "[replication]\n",
            "[replication]\nprivate_appointments = \"everything\"\n",
            "private_appointments",
        ),
        (
            "[exchange]\n",
            "[exchange]\nmax_concurrency = 1000\n",
            "exchange.max_concurrency",
        ),
        (
            "url = \"http://127.0.0.1",
            "url = \"ftp://127.0.0.1",
            "ucserver.url",
        ),
        (
            "password_file = \"ews.password\"",
            "password_file = \"missing.password\"",
            "missing.password",
        ),
        ("level = \"debug\"", "level = \"loud\"", "loud"),
    ];
    for (from, to, named) in cases {
        assert!(original.contains(from), "{from}");
        std::fs::write(&lab.config, original.replacen(from, to, 1)).unwrap();
        let output = lab.run(&["once"]).await;
        // 2: the cycle could not run (`once --help`).
        assert_eq!(output.status.code(), Some(2), "{to}: {}", text(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("config.toml"), "{to}: {stderr}");
        assert!(stderr.contains(named), "{named} for {to}: {stderr}");
    }
    assert_eq!(lab.ucserver.total_writes(), 0);
    assert_eq!(lab.exchange.counters().requests, 0);
    assert!(!lab.state.exists());
}

// ------------------------------------------------------------------- Privacy

#[tokio::test]
async fn privacy_status_and_dry_run_output_never_show_a_private_subject() {
    for mode in ["skip", "times_only"] {
        let lab = Lab::start_with(LabOptions {
            replication: format!("private_appointments = \"{mode}\""),
            ..LabOptions::default()
        })
        .await;
        let mut outputs = vec![lab.run(&["once"]).await];
        // A changed calendar so the dry run has lists to print.
        lab.change_first_calendar();
        for args in [
            &["once", "--dry-run"][..],
            &["once", "--dry-run", "--json"],
            &["status"],
            &["status", "--json"],
        ] {
            let output = lab.run(args).await;
            assert!(
                output.status.success(),
                "{mode} {args:?}: {}",
                text(&output)
            );
            outputs.push(output);
        }
        let dry = json(&outputs[2]);
        let planned: Vec<&serde_json::Value> = dry["users"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["outcome"] == "would_write")
            .collect();
        assert_eq!(planned.len(), 1, "{dry:#}");
        let private = planned[0]["appointments"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["sensitivity"] == "private")
            .count();
        assert_eq!(private, usize::from(mode == "times_only"), "{dry:#}");
        for output in &outputs {
            assert!(
                !text(output).contains(PRIVATE_MARKER),
                "{mode}: {}",
                text(output)
            );
        }
    }
}
