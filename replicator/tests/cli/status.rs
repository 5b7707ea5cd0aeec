//! `status` and `once`'s exit codes (issue #16): the binary with a
//! configuration file, a state database prepared through the library or
//! written by the binary itself, and the UCServer simulator or a closed
//! port. No domain controller: the directory is a static list.

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use ews_calendar_replicator::replication::report::could_not_run;
use ews_calendar_replicator::replication::{CycleRecord, StateStore, UserFailure};
use ews_calendar_replicator::state::SqliteStateStore;
use serde_json::Value;

use crate::support::lab::{closed_port, json, run_binary, text, write_private, BIN};

/// A configuration whose passwords all come from environment variables
/// that are not set, and a state path.
struct Site {
    _dir: tempfile::TempDir,
    config: PathBuf,
    state: PathBuf,
}

fn site(ucserver_url: &str) -> Site {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("users.toml"),
        "[[user]]\nsam_account_name = \"alice\"\nsmtp = \"alice@example.org\"\n",
    )
    .unwrap();
    let config = dir.path().join("config.toml");
    write_private(
        &config,
        format!(
            r#"[ucserver]
url = "{ucserver_url}"
allow_plain_http = true
username = "ucadmin"
password_env = "STATUS_TEST_UNSET_UC_PASSWORD"

[directory]
kind = "static"
file = "users.toml"

[exchange]
url = "https://127.0.0.1:9/EWS/Exchange.asmx"
username = 'CORP\svc-ews'
password_env = "STATUS_TEST_UNSET_EWS_PASSWORD"

[state]
path = "state/state.sqlite"
"#
        ),
    );
    let state = dir.path().join("state/state.sqlite");
    Site {
        _dir: dir,
        config,
        state,
    }
}

async fn run(site: &Site, args: &[&str], env: &[(&str, &str)]) -> Output {
    run_binary(&site.config, args, Duration::from_secs(120), |command| {
        command
            .env_remove("STATUS_TEST_UNSET_UC_PASSWORD")
            .env_remove("STATUS_TEST_UNSET_EWS_PASSWORD")
            .envs(env.iter().copied());
    })
    .await
}

fn at(hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, hour, minute, 0).unwrap()
}

fn cycle(hour: u32, minute: u32, failed: Vec<UserFailure>) -> CycleRecord {
    CycleRecord {
        started_at: at(hour, minute),
        finished_at: at(hour, minute) + chrono::Duration::seconds(3),
        users_listed: 600,
        written: 10,
        unchanged: 80,
        skipped: 9,
        failed,
        overran: false,
        error: None,
        partial: false,
        could_not_run: false,
        attempts: 1,
    }
}

#[tokio::test]
async fn status_needs_no_password() {
    let site = site("http://127.0.0.1:9");
    let store = SqliteStateStore::open(&site.state).unwrap();
    store.record_cycle(&cycle(9, 0, Vec::new())).unwrap();
    drop(store);
    for args in [&["status"][..], &["status", "--json"]] {
        let output = run(&site, args, &[]).await;
        assert!(output.status.success(), "{args:?}: {}", text(&output));
    }
    let status = json(&run(&site, &["status", "--json"], &[]).await);
    assert_eq!(status["cycles"][0]["written"], 10, "{status:#}");
}

#[tokio::test]
async fn status_json_reports_errors_as_json_with_a_failing_exit_code() {
    let site = site("http://127.0.0.1:9");
    // No state database yet.
    let output = run(&site, &["status", "--json"], &[]).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let error = json(&output)["error"].as_str().unwrap().to_owned();
    assert!(error.contains("no state database"), "{error}");

    // A configuration that does not parse.
    std::fs::write(&site.config, "[state\npath = 3").unwrap();
    let output = run(&site, &["status", "--json"], &[]).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let error = json(&output)["error"].as_str().unwrap().to_owned();
    assert!(error.contains("config.toml"), "{error}");
}

#[tokio::test]
async fn identical_failures_are_one_line_with_the_count() {
    let site = site("http://127.0.0.1:9");
    let store = SqliteStateStore::open(&site.state).unwrap();
    let down =
        "Exchange could not be read: cannot connect to mail.example.org:443: connection refused";
    let mut failed = Vec::new();
    for n in 0..500 {
        let user = format!("user{n:03}");
        store.record_failure(&user, down, at(9, 0)).unwrap();
        failed.push(UserFailure {
            user_name: user,
            reason: down.to_owned(),
        });
    }
    store
        .record_failure("zoe", "ErrorMailRecipientNotFound", at(9, 0))
        .unwrap();
    store.record_cycle(&cycle(9, 0, failed)).unwrap();
    drop(store);

    let output = run(&site, &["status"], &[]).await;
    assert!(output.status.success(), "{}", text(&output));
    let shown = String::from_utf8_lossy(&output.stdout);
    assert_eq!(shown.matches(down).count(), 1, "{shown}");
    assert!(
        shown.contains(&format!("500 users, last at 2026-11-30 09:00:00: {down}")),
        "{shown}"
    );
    assert!(shown.contains("and 495 more"), "{shown}");
    assert!(shown.contains("ErrorMailRecipientNotFound"), "{shown}");
    assert!(shown.lines().count() < 20, "{shown}");

    let status = json(&run(&site, &["status", "--json"], &[]).await);
    let groups = status["failures_by_reason"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{groups:#?}");
    assert_eq!(groups[0]["count"], 500);
    assert_eq!(groups[0]["reason"], down);
    assert_eq!(groups[1]["count"], 1);
}

#[tokio::test]
async fn a_partial_run_is_marked_and_failed_starts_show_no_cycle_since() {
    let site = site("http://127.0.0.1:9");
    let store = SqliteStateStore::open(&site.state).unwrap();
    store.record_cycle(&cycle(9, 12, Vec::new())).unwrap();
    let mut partial = cycle(9, 20, Vec::new());
    partial.partial = true;
    store.record_cycle(&partial).unwrap();
    for minute in [30, 35, 40] {
        store
            .record_cycle(&could_not_run(
                "could not connect to the UCServer: connection refused",
                at(9, minute),
            ))
            .unwrap();
    }
    drop(store);

    let output = run(&site, &["status"], &[]).await;
    assert!(output.status.success(), "{}", text(&output));
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(
        shown.contains(
            "no cycle since 2026-11-30 09:20 UTC: could not connect to the UCServer: connection refused (3 attempts"
        ),
        "{shown}"
    );
    assert!(shown.contains("partial"), "{shown}");

    let status = json(&run(&site, &["status", "--json"], &[]).await);
    assert_eq!(status["not_running"]["attempts"], 3, "{status:#}");
    let cycles = status["cycles"].as_array().unwrap();
    assert_eq!(
        cycles.len(),
        3,
        "one row for the three failed starts: {cycles:#?}"
    );
    assert_eq!(cycles[0]["could_not_run"], true);
    assert_eq!(cycles[1]["partial"], true);
    assert_eq!(cycles[2]["partial"], false);
}

#[tokio::test]
async fn the_service_records_that_it_could_not_connect_and_status_shows_it() {
    let site = site(&format!("http://127.0.0.1:{}", closed_port()));
    let env = [
        ("STATUS_TEST_UNSET_UC_PASSWORD", "uc-secret"),
        ("STATUS_TEST_UNSET_EWS_PASSWORD", "ews-secret"),
    ];
    let mut child = tokio::process::Command::new(BIN)
        .arg("run")
        .arg("--config")
        .arg(&site.config)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut recorded = Value::Null;
    for _ in 0..600 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if site.state.exists() {
            let output = run(&site, &["status", "--json"], &[]).await;
            if output.status.success() {
                recorded = json(&output);
                if !recorded["not_running"].is_null() {
                    break;
                }
            }
        }
    }
    child.start_kill().unwrap();
    let _ = child.wait().await;
    let reason = recorded["not_running"]["reason"]
        .as_str()
        .unwrap_or_else(|| panic!("no failed start recorded: {recorded:#}"))
        .to_owned();
    assert!(
        reason.contains("could not connect to the UCServer"),
        "{reason}"
    );
    let shown = String::from_utf8_lossy(&run(&site, &["status"], &[]).await.stdout).to_string();
    assert!(
        shown.contains("no cycle has run yet: could not connect to the UCServer"),
        "{shown}"
    );
    assert!(!shown.contains("uc-secret"), "{shown}");
}

#[tokio::test]
async fn once_exits_2_when_the_cycle_cannot_run_and_records_it() {
    let site = site(&format!("http://127.0.0.1:{}", closed_port()));
    let env = [
        ("STATUS_TEST_UNSET_UC_PASSWORD", "uc-secret"),
        ("STATUS_TEST_UNSET_EWS_PASSWORD", "ews-secret"),
    ];
    let output = run(&site, &["once"], &env).await;
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let status = json(&run(&site, &["status", "--json"], &[]).await);
    assert_eq!(status["cycles"][0]["could_not_run"], true, "{status:#}");

    // A configuration error (the password variable is not set) is 2 as well.
    let output = run(&site, &["once"], &[]).await;
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("STATUS_TEST_UNSET_UC_PASSWORD"),
        "{}",
        text(&output)
    );
}

#[tokio::test]
async fn once_help_documents_the_exit_codes() {
    let output = tokio::process::Command::new(BIN)
        .args(["once", "--help"])
        .output()
        .await
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for line in [
        "0  nothing failed",
        "1  some users failed",
        "2  the cycle could not run",
    ] {
        assert!(help.contains(line), "{line:?} in {help}");
    }
}
