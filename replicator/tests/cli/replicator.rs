//! End to end: the `ews-calendar-replicator` binary with a configuration
//! file against the Samba test domain controller (`scripts/test-dc.sh`), the
//! Exchange simulator (TLS, NTLMv2) and the UCServer simulator, all over
//! real sockets. The UCServer's users are generated directory users
//! (gen-0001...), so matching goes through real LDAP reads.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use ews_toolkit::sim::exchange::{InjectedFault, Knobs};
use serde_json::Value;

use crate::support::lab::{
    json, text, Lab, LabOptions, BIN, EWS_PASSWORD, PRIVATE_MARKER, UC_PASSWORD,
};

const USERS: usize = 12;

/// The shared laboratory with [`USERS`] users; `extra_replication` is
/// appended to the `[replication]` section.
async fn start(extra_replication: &str) -> Lab {
    Lab::start_with(LabOptions {
        users: USERS,
        replication: extra_replication.to_owned(),
        ..LabOptions::default()
    })
    .await
}

/// Everything the replicator wrote or logged, for the privacy check.
fn everything_written(lab: &Lab, outputs: &[&Output]) -> String {
    let mut all = String::new();
    for user in &lab.users {
        for entry in lab
            .ucserver
            .appointments(&user.user_name)
            .unwrap_or_default()
        {
            all.push_str(&format!("{entry:?}\n"));
        }
    }
    for output in outputs {
        all.push_str(&String::from_utf8_lossy(&output.stdout));
        all.push_str(&String::from_utf8_lossy(&output.stderr));
    }
    for file in walk(lab.dir.path()) {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".password") || name == "config.toml" {
            continue;
        }
        all.push_str(&String::from_utf8_lossy(&std::fs::read(&file).unwrap()));
    }
    all
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test]
async fn check_passes_every_step_against_the_three_servers() {
    let lab = start("").await;
    let output = lab.run(&["check", "--json"]).await;
    assert!(output.status.success(), "{}", text(&output));
    let report = json(&output);
    let steps = report["steps"].as_array().unwrap();
    let names: Vec<String> = steps
        .iter()
        .map(|s| format!("{}/{}/{}", s["area"], s["name"], s["outcome"]))
        .collect();
    for expected in [
        "\"directory\"/\"bind\"/\"pass\"",
        "\"directory\"/\"users found\"/\"pass\"",
        "\"exchange\"/\"TLS\"/\"pass\"",
        "\"exchange\"/\"authentication\"/\"pass\"",
        "\"exchange\"/\"server version\"/\"pass\"",
        "\"exchange\"/\"availability query\"/\"pass\"",
        "\"ucserver\"/\"admin login\"/\"pass\"",
        "\"ucserver\"/\"users\"/\"pass\"",
    ] {
        assert!(
            names.contains(&expected.to_owned()),
            "{expected} in {names:#?}"
        );
    }
    let users = steps
        .iter()
        .find(|s| s["area"] == "ucserver" && s["name"] == "users")
        .unwrap();
    let detail = users["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!(
            "{} users, {} not logged on",
            USERS + 1,
            lab.offline().len()
        )),
        "{detail}"
    );
    // No password anywhere in the output.
    let all = text(&output);
    for secret in [UC_PASSWORD, EWS_PASSWORD] {
        assert!(!all.contains(secret));
    }
}

#[tokio::test]
async fn check_names_the_failing_step_and_its_fix_for_a_wrong_exchange_password() {
    let lab = start("").await;
    std::fs::write(lab.dir.path().join("ews.password"), "wrong-password").unwrap();
    let output = lab.run(&["check", "--json"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let report = json(&output);
    let failed: Vec<&Value> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["outcome"] == "fail")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0]["area"], "exchange");
    assert_eq!(failed[0]["name"], "authentication");
    assert!(failed[0]["fix"].as_str().unwrap().contains("password"));
}

#[tokio::test]
async fn dry_run_prints_the_lists_and_writes_nothing_anywhere() {
    let lab = start("").await;
    let output = lab.run(&["once", "--dry-run", "--json"]).await;
    assert!(output.status.success(), "{}", text(&output));
    let report = json(&output);
    assert_eq!(report["dry_run"], true);
    let users = report["users"].as_array().unwrap();
    assert_eq!(
        users.len(),
        lab.offline().len(),
        "only offline users: {users:#?}"
    );
    for user in users {
        assert_eq!(user["outcome"], "would_write", "{user}");
        // Busy, tentative, OOF; the private one is skipped by default.
        assert_eq!(user["appointments"].as_array().unwrap().len(), 3, "{user}");
    }
    assert_eq!(lab.ucserver.total_writes(), 0);
    assert!(!lab.state.exists(), "a dry run creates no state database");
    assert!(!everything_written(&lab, &[&output]).contains(PRIVATE_MARKER));
}

#[tokio::test]
async fn cycles_write_offline_users_once_then_only_changes_and_status_reports_them() {
    let lab = start("").await;
    let offline = lab.offline();

    let first = lab.run(&["once"]).await;
    assert!(first.status.success(), "{}", text(&first));
    assert_eq!(lab.ucserver.total_writes(), offline.len());
    for user in &offline {
        assert_eq!(lab.ucserver.write_count(&user.user_name), 1);
        assert_eq!(lab.ucserver.appointments(&user.user_name).unwrap().len(), 3);
    }
    for user in lab.users.iter().filter(|u| u.online) {
        assert_eq!(
            lab.ucserver.write_count(&user.user_name),
            0,
            "{} is logged on",
            user.user_name
        );
    }

    // Nothing changed: nothing written (the state survived the process).
    let second = lab.run(&["once"]).await;
    assert!(second.status.success(), "{}", text(&second));
    assert_eq!(lab.ucserver.total_writes(), offline.len());

    // One calendar changes, one user logs on: one write, not to the latter.
    let changed = offline[0];
    let logs_on = offline[1];
    lab.exchange
        .mailbox_mut(&changed.email, |m| m.events.remove(0))
        .unwrap();
    lab.ucserver.set_online(&logs_on.user_name, true);
    lab.exchange
        .mailbox_mut(&logs_on.email, |m| m.events.remove(0))
        .unwrap();
    let third = lab.run(&["once"]).await;
    assert!(third.status.success(), "{}", text(&third));
    assert_eq!(lab.ucserver.total_writes(), offline.len() + 1);
    assert_eq!(lab.ucserver.write_count(&changed.user_name), 2);
    assert_eq!(lab.ucserver.write_count(&logs_on.user_name), 1);

    let status = lab.run(&["status", "--json"]).await;
    assert!(status.status.success(), "{}", text(&status));
    let status = json(&status);
    let cycles = status["cycles"].as_array().unwrap();
    assert_eq!(cycles.len(), 3);
    assert_eq!(cycles[0]["written"], 1, "newest first: {cycles:#?}");
    assert_eq!(cycles[1]["written"], 0);
    assert_eq!(cycles[2]["written"], offline.len());

    assert!(
        !everything_written(&lab, &[&first, &second, &third]).contains(PRIVATE_MARKER),
        "a private subject or location reached the UCServer, a log, the state or the output"
    );
}

#[tokio::test]
async fn exchange_down_for_a_cycle_leaves_the_ucserver_untouched_and_the_next_cycle_catches_up() {
    let lab = start("").await;
    let offline = lab.offline();
    assert!(lab.run(&["once"]).await.status.success());
    let before: Vec<_> = offline
        .iter()
        .map(|u| lab.ucserver.appointments(&u.user_name).unwrap())
        .collect();

    // A change that cannot be read: Exchange fails every request.
    lab.exchange
        .mailbox_mut(&offline[0].email, |m| m.events.remove(0))
        .unwrap();
    lab.exchange.inject(InjectedFault::HttpStatus(500), 1000);
    let down = lab.run(&["once"]).await;
    assert_eq!(down.status.code(), Some(1), "{}", text(&down));
    assert!(
        String::from_utf8_lossy(&down.stdout).contains("FAILED"),
        "{}",
        text(&down)
    );
    let during: Vec<_> = offline
        .iter()
        .map(|u| lab.ucserver.appointments(&u.user_name).unwrap())
        .collect();
    assert_eq!(before, during, "a failed read never changes the UCServer");
    assert_eq!(lab.ucserver.total_writes(), offline.len());

    lab.exchange.clear_faults();
    let healthy = lab.run(&["once"]).await;
    assert!(healthy.status.success(), "{}", text(&healthy));
    assert_eq!(lab.ucserver.total_writes(), offline.len() + 1);
    assert_eq!(
        lab.ucserver
            .appointments(&offline[0].user_name)
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn times_only_sends_private_appointments_as_private_blocks_without_their_text() {
    let lab = start("private_appointments = \"times_only\"").await;
    let output = lab.run(&["once"]).await;
    assert!(output.status.success(), "{}", text(&output));
    for user in lab.offline() {
        let list = lab.ucserver.appointments(&user.user_name).unwrap();
        assert_eq!(list.len(), 4, "the private one is sent too");
        let private: Vec<_> = list.iter().filter(|a| a.sensitivity == 2).collect();
        assert_eq!(private.len(), 1);
        assert!(private[0].subject.is_empty() && private[0].location().is_none());
    }
    assert!(!everything_written(&lab, &[&output]).contains(PRIVATE_MARKER));
}

#[tokio::test]
async fn full_sends_private_subjects() {
    let lab = start("private_appointments = \"full\"").await;
    let output = lab.run(&["once"]).await;
    assert!(output.status.success(), "{}", text(&output));
    let user = lab.offline()[0];
    let list = lab.ucserver.appointments(&user.user_name).unwrap();
    assert!(list.iter().any(|a| a.subject == PRIVATE_MARKER), "{list:?}");
}

#[tokio::test]
async fn a_configuration_error_names_the_file_line_and_key() {
    let lab = start("").await;
    let config = std::fs::read_to_string(&lab.config).unwrap();
    std::fs::write(
        &lab.config,
        config.replace("[replication]\n", "[replication]\ninterval_minuts = 5\n"),
    )
    .unwrap();
    let output = lab.run(&["once"]).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("config.toml:"), "{stderr}");
    assert!(stderr.contains("replication.interval_minuts"), "{stderr}");
    assert_eq!(lab.ucserver.total_writes(), 0);
}

#[tokio::test]
async fn sigterm_during_a_cycle_stops_the_service_cleanly_with_intact_state() {
    let lab = start("").await;
    // Slow Exchange: the cycle is still reading when SIGTERM arrives.
    lab.exchange.set_knobs(Knobs {
        request_latency: Duration::from_secs(20),
        ..lab.exchange.knobs()
    });
    let child = tokio::process::Command::new(BIN)
        .arg("run")
        .arg("--config")
        .arg(&lab.config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the availability request is in flight.
    let mut waited = 0;
    let mut child = child;
    while lab.exchange.counters().current_concurrent == 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
        if waited >= 1200 || child.try_wait().unwrap().is_some() {
            child.start_kill().ok();
            let output = child.wait_with_output().await.unwrap();
            panic!("the service never asked Exchange\n{}", text(&output));
        }
    }
    let pid = child.id().unwrap() as i32;
    assert_eq!(send_sigterm(pid), 0);
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the service stops after SIGTERM")
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(lab.ucserver.total_writes(), 0, "nothing half-written");
    // The state database is intact and readable.
    let status = lab.run(&["status", "--json"]).await;
    assert!(status.status.success(), "{}", text(&status));
}

/// `once --user NAME` handles only that user; `status` marks the run
/// partial (its counts are not the whole site's), a full run is not.
#[tokio::test]
async fn once_with_user_is_recorded_as_partial() {
    let lab = start("").await;
    let user = lab.offline()[0].user_name.clone();
    let output = lab.run(&["once", "--user", &user]).await;
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("[partial: --user]"),
        "{}",
        text(&output)
    );
    assert!(lab.run(&["once"]).await.status.success());
    let status = lab.run(&["status", "--json"]).await;
    let status = json(&status);
    let cycles = status["cycles"].as_array().unwrap();
    assert_eq!(cycles[1]["partial"], true, "{cycles:#?}");
    assert_eq!(cycles[1]["written"], 1, "{cycles:#?}");
    assert_eq!(cycles[0]["partial"], false, "{cycles:#?}");
    let shown = lab.run(&["status"]).await;
    assert!(
        String::from_utf8_lossy(&shown.stdout)
            .contains("partial: only the users named by once --user"),
        "{}",
        text(&shown)
    );
}

/// The UCServer's administrator is listed (all users, online ones too) and
/// skipped by rule: no directory match. That is not a failure: exit 0.
#[tokio::test]
async fn once_exits_0_when_users_are_only_skipped_by_rule() {
    let lab = start("only_offline_users = false").await;
    let output = lab.run(&["once", "--json"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let report = json(&output);
    let admin = report["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user_name"] == "ucadmin")
        .unwrap_or_else(|| panic!("the administrator is listed: {report:#}"));
    assert_eq!(admin["outcome"], "skipped", "{admin}");
    assert_eq!(report["counters"]["failed"], 0);
}

/// Some users fail (one mailbox's error), the others are written: exit 1.
#[tokio::test]
async fn once_exits_1_when_some_users_failed() {
    let lab = start("").await;
    let broken = lab.offline()[0];
    lab.exchange
        .set_mailbox_error(&broken.email, Some("ErrorMailboxStoreUnavailable"));
    let output = lab.run(&["once"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
}

/// `once --dry-run | head -1`: the reader is gone before the report is
/// printed (the pipe's read end is closed at start, so the first write
/// meets a closed pipe whatever the timing). The process exits with the
/// cycle's code (0) and no panic message; it used to panic (rc 101).
#[tokio::test]
async fn once_dry_run_into_a_closed_pipe_exits_quietly_with_the_cycle_code() {
    let lab = start("").await;
    for args in [&["once", "--dry-run"][..], &["once", "--dry-run", "--json"]] {
        let mut child = tokio::process::Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(&lab.config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .expect("the command finishes")
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
    }
}

/// SIGTERM to `pid` through the `kill` command (no libc in tests).
fn send_sigterm(pid: i32) -> i32 {
    std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap()
        .code()
        .unwrap()
}
