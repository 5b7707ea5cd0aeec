//! End to end: the `ews-calendar-replicator` binary with a configuration
//! file against the Samba test domain controller (`scripts/test-dc.sh`), the
//! Exchange simulator (TLS, NTLMv2) and the UCServer simulator, all over
//! real sockets. The UCServer's users are generated directory users
//! (gen-0001...), so matching goes through real LDAP reads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use chrono::{DateTime, Duration as ChronoDuration, DurationRound, Utc};
use ews_calendar_replicator::directory::{
    AdDirectory, DirectorySettings, DirectoryUser, Secret, UserDirectory,
};
use ews_calendar_replicator::sim::ucserver::{
    SimUser, UcServerSim, UcServerSimConfig, UserDatabase,
};
use ews_toolkit::sim::exchange::{
    ExchangeSim, ExchangeSimConfig, InjectedFault, Knobs, Permission, SimAccount, SimBusyType,
    SimEvent, SimMailbox,
};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ews-calendar-replicator");
const UC_PASSWORD: &str = "Uc-Adm1n-Secret!";
const EWS_PASSWORD: &str = "Ews-Svc-Secret!";
/// Appears only as the subject of private appointments.
const PRIVATE_MARKER: &str = "PRIVATE-MARKER-7f3a";
const USERS: usize = 12;

fn test_dc() -> HashMap<String, String> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/test-dc.sh");
    let output = std::process::Command::new(&script)
        .arg("env")
        .output()
        .expect("run scripts/test-dc.sh env");
    assert!(
        output.status.success(),
        "these tests need the Samba test domain controller (scripts/test-dc.sh start; .ci/run starts it): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
        .collect()
}

fn events(now: DateTime<Utc>, n: usize) -> Vec<SimEvent> {
    let day = now.duration_trunc(ChronoDuration::hours(1)).unwrap() + ChronoDuration::days(1);
    let event = |id: &str, hours: i64, busy: SimBusyType, subject: &str, private: bool| SimEvent {
        id: id.into(),
        start: day + ChronoDuration::hours(hours),
        end: day + ChronoDuration::hours(hours + 1),
        busy_type: busy,
        subject: Some(subject.into()),
        location: Some(if private {
            format!("{PRIVATE_MARKER} room")
        } else {
            "Room 1".into()
        }),
        private,
        meeting: true,
        all_day: false,
        recurrence: None,
    };
    vec![
        event(
            "busy",
            0,
            SimBusyType::Busy,
            &format!("Planning {n}"),
            false,
        ),
        event("tentative", 2, SimBusyType::Tentative, "Maybe", false),
        event("private", 4, SimBusyType::Busy, PRIVATE_MARKER, true),
        event("oof", 30, SimBusyType::OutOfOffice, "Away", false),
    ]
}

/// The three servers, a configuration file and a state path.
struct Lab {
    dir: tempfile::TempDir,
    config: PathBuf,
    state: PathBuf,
    ucserver: UcServerSim,
    exchange: ExchangeSim,
    users: Vec<SimUser>,
}

impl Lab {
    async fn start() -> Lab {
        Lab::start_with("").await
    }

    /// `extra` is appended to the `[replication]` section.
    async fn start_with(extra_replication: &str) -> Lab {
        let dc = test_dc();
        let base = format!("OU=Generated,OU=Replicator Test,{}", dc["BASE_DN"]);
        let mut settings = DirectorySettings::new(
            dc["LDAP_URL"].clone(),
            dc["BIND_USER"].clone(),
            Secret::new(dc["BIND_PASSWORD"].clone()),
        );
        settings.base_dn = Some(base.clone());
        let directory = AdDirectory::connect(settings)
            .await
            .expect("bind at the test DC");
        let mut people: Vec<DirectoryUser> = directory.users().await.expect("read users");
        people.sort_by(|a, b| a.sam_account_name.cmp(&b.sam_account_name));
        people.truncate(USERS);
        assert_eq!(people.len(), USERS, "the test DC has generated users");

        let now = Utc::now();
        let mut users = vec![SimUser {
            user_name: "ucadmin".into(),
            display_name: "UC Admin".into(),
            dn: "CN=ucadmin,OU=Service,DC=example,DC=org".into(),
            object_guid: "{00000000-0000-4000-8000-0000000000AD}".into(),
            sam_account_name: "ucadmin".into(),
            sip_uri: "sip:ucadmin@example.org".into(),
            email: String::new(),
            online: true,
            admin: true,
            password: Some(UC_PASSWORD.into()),
            enabled: true,
        }];
        let mut mailboxes = Vec::new();
        for (n, person) in people.iter().enumerate() {
            let smtp = person
                .primary_smtp
                .clone()
                .expect("generated users have mail");
            let sam = person.sam_account_name.clone().unwrap();
            users.push(SimUser {
                user_name: sam.clone(),
                display_name: sam.clone(),
                dn: person.dn.clone(),
                object_guid: person.object_guid.to_string(),
                sam_account_name: sam,
                sip_uri: format!("sip:{smtp}"),
                email: smtp.clone(),
                // Every third user is logged on: not replicated.
                online: n % 3 == 2,
                admin: false,
                password: None,
                enabled: true,
            });
            mailboxes.push(SimMailbox {
                smtp,
                display_name: format!("User {n}"),
                permission: Permission::DetailsAndPrivate,
                events: events(now, n),
            });
        }
        let ucserver = UcServerSim::start(
            UcServerSimConfig::new(UserDatabase {
                users: users.clone(),
            }),
            None,
        )
        .await
        .unwrap();
        let mut exchange_config = ExchangeSimConfig::new(mailboxes);
        exchange_config.accounts = vec![SimAccount::new("CORP", "svc-ews", EWS_PASSWORD)];
        exchange_config.extended_protection = true;
        let exchange = ExchangeSim::start(exchange_config).await.unwrap();

        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        exchange.write_ca_pem(&path("exchange-ca.pem")).unwrap();
        write_private(&path("uc.password"), format!("{UC_PASSWORD}\n"));
        write_private(&path("ldap.password"), &dc["BIND_PASSWORD"]);
        write_private(&path("ews.password"), EWS_PASSWORD);
        let state = path("state/state.sqlite");
        let config = path("config.toml");
        std::fs::write(
            &config,
            format!(
                r#"[ucserver]
url = "{uc}"
allow_plain_http = true
username = "ucadmin"
password_file = "uc.password"

[directory]
url = "{ldap}"
bind_user = "{bind}"
password_file = "ldap.password"
base_dn = "{base}"

[exchange]
url = "{ews}"
username = 'CORP\svc-ews'
password_file = "ews.password"
ca_file = "exchange-ca.pem"

[replication]
{extra_replication}

[logging]
level = "debug"
directory = "logs"

[state]
path = "{state}"
"#,
                uc = ucserver.base_url(),
                ldap = dc["LDAP_URL"],
                bind = dc["BIND_USER"],
                ews = exchange.ews_url(),
                state = state.display(),
            ),
        )
        .unwrap();
        Lab {
            dir,
            config,
            state,
            ucserver,
            exchange,
            users: users.into_iter().filter(|u| !u.admin).collect(),
        }
    }

    async fn run(&self, args: &[&str]) -> Output {
        let mut command = tokio::process::Command::new(BIN);
        command
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null());
        tokio::time::timeout(Duration::from_secs(120), command.output())
            .await
            .expect("the command finishes")
            .expect("the binary runs")
    }

    fn offline(&self) -> Vec<&SimUser> {
        self.users.iter().filter(|u| !u.online).collect()
    }

    /// Everything the replicator wrote or logged, for the privacy check.
    fn everything_written(&self, outputs: &[&Output]) -> String {
        let mut all = String::new();
        for user in &self.users {
            for entry in self
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
        for file in walk(self.dir.path()) {
            let name = file.file_name().unwrap().to_string_lossy().to_string();
            if name.ends_with(".password") || name == "config.toml" {
                continue;
            }
            all.push_str(&String::from_utf8_lossy(&std::fs::read(&file).unwrap()));
        }
        all
    }
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

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(output)))
}

#[tokio::test]
async fn check_passes_every_step_against_the_three_servers() {
    let lab = Lab::start().await;
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
    let lab = Lab::start().await;
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
    let lab = Lab::start().await;
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
    assert!(!lab.everything_written(&[&output]).contains(PRIVATE_MARKER));
}

#[tokio::test]
async fn cycles_write_offline_users_once_then_only_changes_and_status_reports_them() {
    let lab = Lab::start().await;
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
        !lab.everything_written(&[&first, &second, &third])
            .contains(PRIVATE_MARKER),
        "a private subject or location reached the UCServer, a log, the state or the output"
    );
}

#[tokio::test]
async fn exchange_down_for_a_cycle_leaves_the_ucserver_untouched_and_the_next_cycle_catches_up() {
    let lab = Lab::start().await;
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
    let lab = Lab::start_with("private_appointments = \"times_only\"").await;
    let output = lab.run(&["once"]).await;
    assert!(output.status.success(), "{}", text(&output));
    for user in lab.offline() {
        let list = lab.ucserver.appointments(&user.user_name).unwrap();
        assert_eq!(list.len(), 4, "the private one is sent too");
        let private: Vec<_> = list.iter().filter(|a| a.sensitivity == 2).collect();
        assert_eq!(private.len(), 1);
        assert!(private[0].subject.is_empty() && private[0].location().is_none());
    }
    assert!(!lab.everything_written(&[&output]).contains(PRIVATE_MARKER));
}

#[tokio::test]
async fn full_sends_private_subjects() {
    let lab = Lab::start_with("private_appointments = \"full\"").await;
    let output = lab.run(&["once"]).await;
    assert!(output.status.success(), "{}", text(&output));
    let user = lab.offline()[0];
    let list = lab.ucserver.appointments(&user.user_name).unwrap();
    assert!(list.iter().any(|a| a.subject == PRIVATE_MARKER), "{list:?}");
}

#[tokio::test]
async fn a_configuration_error_names_the_file_line_and_key() {
    let lab = Lab::start().await;
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
    let lab = Lab::start().await;
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
    let lab = Lab::start().await;
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
    let lab = Lab::start_with("only_offline_users = false").await;
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
    let lab = Lab::start().await;
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
    let lab = Lab::start().await;
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

/// Writes a password file as an administrator would: readable by its owner
/// only (`run` refuses a password file every user can read).
fn write_private(path: &std::path::Path, text: impl AsRef<[u8]>) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_ref()))
        .unwrap();
}
