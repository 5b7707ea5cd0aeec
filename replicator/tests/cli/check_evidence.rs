//! `check` never says PASS for a step that did not happen (issue #16): the
//! binary with a configuration file against the Exchange and UCServer
//! simulators and against deliberately broken listeners, over real
//! sockets. The directory is a static list (or an unreachable Active
//! Directory), so these tests need no domain controller.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use ews_calendar_replicator::sim::ucserver::{
    SimUser, UcServerSim, UcServerSimConfig, UserDatabase,
};
use ews_toolkit::sim::exchange::{
    BusyMode, ExchangeSim, ExchangeSimConfig, InjectedFault, Permission, SimAccount, SimMailbox,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use crate::support::lab::{run_binary, text, write_private, EWS_PASSWORD, UC_PASSWORD};

pub(crate) const MAILBOX: &str = "alice@example.org";

fn sim_user(name: &str, admin: bool) -> SimUser {
    SimUser {
        user_name: name.into(),
        display_name: name.into(),
        dn: format!("CN={name},OU=Staff,DC=example,DC=org"),
        object_guid: format!(
            "{{00000000-0000-4000-8000-{:012}}}",
            if admin { 1 } else { 2 }
        ),
        sam_account_name: name.into(),
        sip_uri: format!("sip:{name}@example.org"),
        email: format!("{name}@example.org"),
        online: admin,
        admin,
        password: admin.then(|| UC_PASSWORD.to_owned()),
        enabled: true,
    }
}

/// The Exchange and UCServer simulators, a static directory and a
/// configuration whose `[exchange] url` and `[ucserver] url` a test sets.
pub(crate) struct Lab {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) config: PathBuf,
    pub(crate) ucserver: UcServerSim,
    pub(crate) exchange: ExchangeSim,
}

impl Lab {
    pub(crate) async fn start() -> Lab {
        let ucserver = UcServerSim::start(
            UcServerSimConfig::new(UserDatabase {
                users: vec![sim_user("ucadmin", true), sim_user("alice", false)],
            }),
            None,
        )
        .await
        .unwrap();
        let mut exchange_config = ExchangeSimConfig::new(vec![SimMailbox {
            smtp: MAILBOX.into(),
            display_name: "Alice".into(),
            permission: Permission::DetailsAndPrivate,
            events: Vec::new(),
        }]);
        exchange_config.accounts = vec![SimAccount::new("CORP", "svc-ews", EWS_PASSWORD)];
        let exchange = ExchangeSim::start(exchange_config).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        exchange
            .write_ca_pem(&dir.path().join("exchange-ca.pem"))
            .unwrap();
        std::fs::write(
            dir.path().join("users.toml"),
            format!("[[user]]\nsam_account_name = \"alice\"\nsmtp = \"{MAILBOX}\"\n"),
        )
        .unwrap();
        let config = dir.path().join("config.toml");
        let lab = Lab {
            dir,
            config,
            ucserver,
            exchange,
        };
        let ews = lab.exchange.ews_url().to_string();
        let uc = lab.ucserver.base_url().to_string();
        lab.write_config(&ews, &uc, "kind = \"static\"\nfile = \"users.toml\"", "");
        lab
    }

    fn write_config(&self, ews_url: &str, uc_url: &str, directory: &str, extra_exchange: &str) {
        write_private(
            &self.config,
            format!(
                r#"[ucserver]
url = "{uc_url}"
allow_plain_http = true
username = "ucadmin"
password = "{UC_PASSWORD}"

[directory]
{directory}

[exchange]
url = "{ews_url}"
username = 'CORP\svc-ews'
password = "{EWS_PASSWORD}"
ca_file = "exchange-ca.pem"
{extra_exchange}

[logging]
directory = "logs"

[state]
path = "state/state.sqlite"
"#
            ),
        );
    }

    async fn check(&self, extra: &[&str]) -> Output {
        let args: Vec<&str> = ["check", "--json"].iter().chain(extra).copied().collect();
        run_binary(&self.config, &args, Duration::from_secs(300), |_| {}).await
    }
}

fn steps_of(output: &Output) -> Vec<Value> {
    let report: Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(output)));
    report["steps"].as_array().unwrap().clone()
}

fn step<'a>(steps: &'a [Value], area: &str, name: &str) -> Option<&'a Value> {
    steps
        .iter()
        .find(|s| s["area"] == area && s["name"] == name)
}

fn outcome(steps: &[Value], area: &str, name: &str) -> String {
    step(steps, area, name)
        .map(|s| s["outcome"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| "absent".to_owned())
}

/// The Exchange steps in order as `name/outcome`.
fn exchange_steps(steps: &[Value]) -> Vec<String> {
    steps
        .iter()
        .filter(|s| s["area"] == "exchange")
        .map(|s| {
            format!(
                "{}/{}",
                s["name"].as_str().unwrap(),
                s["outcome"].as_str().unwrap()
            )
        })
        .collect()
}

/// No Exchange step passes after the first failed one.
fn assert_no_pass_after_the_failure(steps: &[Value]) {
    let exchange = exchange_steps(steps);
    let first_fail = exchange
        .iter()
        .position(|s| s.ends_with("/fail"))
        .unwrap_or_else(|| panic!("an Exchange step fails: {exchange:?}"));
    assert!(
        exchange[first_fail..].iter().all(|s| !s.ends_with("/pass")),
        "{exchange:?}"
    );
}

/// Accepts connections and holds them open without ever sending a byte.
async fn silent_listener() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (address, task)
}

/// Answers every HTTP request with 404 Not Found.
async fn not_found_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = vec![0u8; 16 * 1024];
                let mut read = 0;
                while !request[..read].windows(4).any(|w| w == b"\r\n\r\n") && read < request.len()
                {
                    match stream.read(&mut request[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                }
                let body = "<html><body>404 Not Found</body></html>";
                let _ = stream
                    .write_all(
                        format!(
                            "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    (address, task)
}

#[tokio::test]
async fn every_step_passes_against_the_simulators_on_evidence_of_its_own() {
    let lab = Lab::start().await;
    let output = lab.check(&[]).await;
    assert!(output.status.success(), "{}", text(&output));
    let steps = steps_of(&output);
    assert_eq!(
        exchange_steps(&steps),
        [
            "EWS URL/pass",
            "reachable/pass",
            "TLS/pass",
            "HTTP/pass",
            "authentication/pass",
            "server version/pass",
            "availability query/pass",
            "notifications/pass"
        ]
    );
    let tls = step(&steps, "exchange", "TLS").unwrap();
    assert!(
        tls["detail"]
            .as_str()
            .unwrap()
            .contains("handshake completed"),
        "{tls}"
    );
    for name in ["log directory", "state database"] {
        assert_eq!(outcome(&steps, "service", name), "pass", "{name}");
    }
}

#[tokio::test]
async fn an_https_listener_that_never_answers_fails_at_tls_and_passes_nothing_after_it() {
    let lab = Lab::start().await;
    let (silent, _task) = silent_listener().await;
    let uc = lab.ucserver.base_url().to_string();
    lab.write_config(
        &format!("https://127.0.0.1:{}/EWS/Exchange.asmx", silent.port()),
        &uc,
        "kind = \"static\"\nfile = \"users.toml\"",
        "",
    );
    let output = lab.check(&[]).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let steps = steps_of(&output);
    assert_eq!(outcome(&steps, "exchange", "reachable"), "pass");
    assert_eq!(outcome(&steps, "exchange", "TLS"), "fail", "{steps:#?}");
    assert_ne!(outcome(&steps, "exchange", "authentication"), "pass");
    assert_no_pass_after_the_failure(&steps);
}

#[tokio::test]
async fn a_plain_http_listener_that_never_answers_fails_at_http() {
    let lab = Lab::start().await;
    let (silent, _task) = silent_listener().await;
    let uc = lab.ucserver.base_url().to_string();
    lab.write_config(
        &format!("http://127.0.0.1:{}/EWS/Exchange.asmx", silent.port()),
        &uc,
        "kind = \"static\"\nfile = \"users.toml\"",
        "request_timeout_seconds = 2",
    );
    let output = lab.check(&[]).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let steps = steps_of(&output);
    assert_eq!(outcome(&steps, "exchange", "reachable"), "pass");
    assert_eq!(outcome(&steps, "exchange", "HTTP"), "fail", "{steps:#?}");
    assert_ne!(outcome(&steps, "exchange", "authentication"), "pass");
    assert_no_pass_after_the_failure(&steps);
}

#[tokio::test]
async fn http_pointed_at_the_tls_port_fails_at_http_and_says_to_use_https() {
    let lab = Lab::start().await;
    let mut url = lab.exchange.ews_url();
    url.set_scheme("http").unwrap();
    let uc = lab.ucserver.base_url().to_string();
    lab.write_config(
        url.as_str(),
        &uc,
        "kind = \"static\"\nfile = \"users.toml\"",
        "request_timeout_seconds = 5",
    );
    let output = lab.check(&[]).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let steps = steps_of(&output);
    assert_eq!(outcome(&steps, "exchange", "HTTP"), "fail", "{steps:#?}");
    let fix = step(&steps, "exchange", "HTTP").unwrap()["fix"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(fix.contains("https://"), "{fix}");
    assert_no_pass_after_the_failure(&steps);
}

#[tokio::test]
async fn a_ucserver_url_answering_404_is_blamed_on_the_url_not_the_password() {
    let lab = Lab::start().await;
    let (server, _task) = not_found_server().await;
    let ews = lab.exchange.ews_url().to_string();
    lab.write_config(
        &ews,
        &format!("http://127.0.0.1:{}", server.port()),
        "kind = \"static\"\nfile = \"users.toml\"",
        "",
    );
    let output = lab.check(&[]).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let steps = steps_of(&output);
    let failed: Vec<&Value> = steps
        .iter()
        .filter(|s| s["area"] == "ucserver" && s["outcome"] == "fail")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:#?}");
    let fix = failed[0]["fix"].as_str().unwrap();
    assert!(fix.contains("ucserver.url"), "{fix}");
    assert!(!fix.contains("password"), "{fix}");
}

#[tokio::test]
async fn a_busy_exchange_is_waited_out_as_the_service_does() {
    let lab = Lab::start().await;
    // Two busy answers in a row; the old check gave up after one retry.
    lab.exchange.inject(
        InjectedFault::Busy(BusyMode::SoapFault { back_off_ms: 500 }),
        2,
    );
    let output = lab.check(&[]).await;
    assert!(output.status.success(), "{}", text(&output));
    let steps = steps_of(&output);
    let query = step(&steps, "exchange", "availability query").unwrap();
    assert_eq!(query["outcome"], "pass", "{query}");
    assert!(
        query["detail"].as_str().unwrap().contains("busy 2 time(s)"),
        "{query}"
    );
}

#[tokio::test]
async fn a_busy_exchange_asking_for_longer_than_check_waits_gets_the_throttling_fix() {
    let lab = Lab::start().await;
    lab.exchange.inject(
        InjectedFault::Busy(BusyMode::SoapFault {
            back_off_ms: 600_000,
        }),
        1,
    );
    let output = lab.check(&[]).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let steps = steps_of(&output);
    assert_eq!(outcome(&steps, "exchange", "authentication"), "pass");
    let query = step(&steps, "exchange", "availability query").unwrap();
    assert_eq!(query["outcome"], "fail", "{query}");
    let fix = query["fix"].as_str().unwrap();
    assert!(fix.contains("throttling policy"), "{fix}");
    assert!(!fix.contains("documentation of the code"), "{fix}");
}

#[tokio::test]
async fn with_the_directory_down_exchange_is_tested_with_the_given_mailbox() {
    let lab = Lab::start().await;
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let ews = lab.exchange.ews_url().to_string();
    let uc = lab.ucserver.base_url().to_string();
    lab.write_config(
        &ews,
        &uc,
        &format!(
            "url = \"ldap://127.0.0.1:{port}\"\nbind_user = \"svc@example.org\"\npassword = \"x\""
        ),
        "",
    );
    let output = lab.check(&["--mailbox", MAILBOX]).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let steps = steps_of(&output);
    assert_eq!(outcome(&steps, "directory", "reachable"), "fail");
    assert_eq!(outcome(&steps, "exchange", "authentication"), "pass");
    let query = step(&steps, "exchange", "availability query").unwrap();
    assert_eq!(query["outcome"], "pass", "{query}");
    assert!(
        query["detail"].as_str().unwrap().contains(MAILBOX),
        "{query}"
    );

    // Without --mailbox (and a DOMAIN\user account): Exchange is still
    // connected to, and the skipped steps say how to test the rest.
    let output = lab.check(&[]).await;
    let steps = steps_of(&output);
    assert_eq!(outcome(&steps, "exchange", "TLS"), "pass", "{steps:#?}");
    let query = step(&steps, "exchange", "availability query").unwrap();
    assert_eq!(query["outcome"], "skip", "{query}");
    assert!(
        query["detail"].as_str().unwrap().contains("--mailbox"),
        "{query}"
    );
}

#[tokio::test]
async fn what_run_would_refuse_fails_check() {
    let lab = Lab::start().await;
    let blocker = lab.dir.path().join("not-a-directory");
    std::fs::write(&blocker, b"").unwrap();
    let config = std::fs::read_to_string(&lab.config).unwrap();
    std::fs::write(
        &lab.config,
        config
            .replace(
                "directory = \"logs\"",
                "directory = \"not-a-directory/logs\"",
            )
            .replace(
                "path = \"state/state.sqlite\"",
                "path = \"not-a-directory/state/state.sqlite\"",
            ),
    )
    .unwrap();
    let output = lab.check(&[]).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let steps = steps_of(&output);
    for name in ["log directory", "state database"] {
        let found = step(&steps, "service", name).unwrap();
        assert_eq!(found["outcome"], "fail", "{found}");
        assert!(
            found["detail"]
                .as_str()
                .unwrap()
                .contains("not-a-directory"),
            "{found}"
        );
    }
    assert!(
        !Path::new(&lab.dir.path().join("not-a-directory/logs")).exists(),
        "check creates nothing"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    for secret in [UC_PASSWORD, EWS_PASSWORD] {
        assert!(!stdout.contains(secret));
    }
}

/// `check`'s subscription probe: the mode the account gets, and why.
#[tokio::test]
async fn check_says_which_notification_mode_the_account_gets_and_why() {
    let lab = Lab::start().await;
    let output = lab.check(&[]).await;
    let steps = steps_of(&output);
    let probe = step(&steps, "exchange", "notifications").unwrap();
    let detail = probe["detail"].as_str().unwrap();
    assert!(
        detail.contains("can be subscribed with the account's folder rights"),
        "{probe}"
    );
    assert!(detail.contains("within seconds"), "{probe}");
    assert_eq!(
        lab.exchange.notification_counters().active_subscriptions,
        0,
        "the probe's subscription was ended"
    );

    // Free/busy rights only: the cycle still reads the mailbox, Subscribe is
    // refused. With "auto" a warning naming the rights, with "streaming" a failure.
    lab.exchange
        .mailbox_mut(MAILBOX, |m| m.permission = Permission::FreeBusy)
        .unwrap();
    let output = lab.check(&[]).await;
    assert!(output.status.success(), "{}", text(&output));
    let steps = steps_of(&output);
    let probe = step(&steps, "exchange", "notifications").unwrap();
    assert_eq!(probe["outcome"], "warn", "{probe}");
    assert!(
        probe["detail"]
            .as_str()
            .unwrap()
            .contains("ErrorAccessDenied"),
        "{probe}"
    );
    assert!(
        probe["detail"]
            .as_str()
            .unwrap()
            .contains("read by the cycle only"),
        "{probe}"
    );
    assert!(
        probe["fix"].as_str().unwrap().contains("Reviewer"),
        "{probe}"
    );

    let ews = lab.exchange.ews_url().to_string();
    let uc = lab.ucserver.base_url().to_string();
    let directory = "kind = \"static\"\nfile = \"users.toml\"";
    lab.write_config(&ews, &uc, directory, "notifications = \"streaming\"");
    let output = lab.check(&[]).await;
    assert!(!output.status.success(), "{}", text(&output));
    assert_eq!(
        outcome(&steps_of(&output), "exchange", "notifications"),
        "fail"
    );

    lab.write_config(&ews, &uc, directory, "notifications = \"off\"");
    let output = lab.check(&[]).await;
    let steps = steps_of(&output);
    let probe = step(&steps, "exchange", "notifications").unwrap();
    assert_eq!(probe["outcome"], "pass", "{probe}");
    assert!(
        probe["detail"].as_str().unwrap().starts_with("off"),
        "{probe}"
    );
}

/// `check` with Kerberos against the simulator (which offers Negotiate and
/// NTLM but has no Kerberos acceptor) and a KDC that refuses connections.
#[tokio::test]
async fn check_names_the_mechanism_and_why_kerberos_was_not_used() {
    let lab = Lab::start().await;
    let ews = lab.exchange.ews_url().to_string();
    let uc = lab.ucserver.base_url().to_string();
    let directory = "kind = \"static\"\nfile = \"users.toml\"";
    let kdc = "kerberos_kdc = \"127.0.0.1:1\"\nkerberos_realm = \"EXAMPLE.ORG\"\nkerberos_kdc_timeout_seconds = 5";

    // kerberos: failed, with the KDC-unreachable reason and its fix.
    lab.write_config(&ews, &uc, directory, &format!("auth = \"kerberos\"\n{kdc}"));
    let output = lab.check(&[]).await;
    assert!(!output.status.success(), "{}", text(&output));
    let steps = steps_of(&output);
    let auth = step(&steps, "exchange", "authentication").expect("an authentication step");
    assert_eq!(auth["outcome"], "fail", "{auth}");
    assert!(
        auth["detail"].as_str().unwrap().contains("no KDC answered"),
        "{auth}"
    );
    assert!(
        auth["fix"].as_str().unwrap().contains("TCP port 88"),
        "{auth}"
    );
    assert_no_pass_after_the_failure(&steps);

    // negotiate with the fallback: NTLM authenticated, a warning naming why.
    lab.write_config(
        &ews,
        &uc,
        directory,
        &format!("auth = \"negotiate\"\n{kdc}"),
    );
    let output = lab.check(&[]).await;
    assert!(output.status.success(), "{}", text(&output));
    let steps = steps_of(&output);
    let auth = step(&steps, "exchange", "authentication").expect("an authentication step");
    assert_eq!(auth["outcome"], "warn", "{auth}");
    let detail = auth["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("NTLM accepted as CORP\\svc-ews"),
        "{auth}"
    );
    assert!(
        detail.contains("Kerberos was not used: no KDC answered"),
        "{auth}"
    );
    assert!(
        auth["fix"]
            .as_str()
            .unwrap()
            .contains("allow_ntlm_fallback = false"),
        "{auth}"
    );
    assert_eq!(outcome(&steps, "exchange", "availability query"), "pass");

    // negotiate without the fallback: failed like kerberos.
    lab.write_config(
        &ews,
        &uc,
        directory,
        &format!("auth = \"negotiate\"\nallow_ntlm_fallback = false\n{kdc}"),
    );
    let output = lab.check(&[]).await;
    assert!(!output.status.success(), "{}", text(&output));
    let steps = steps_of(&output);
    assert_eq!(outcome(&steps, "exchange", "authentication"), "fail");
    assert_eq!(outcome(&steps, "exchange", "availability query"), "skip");

    // ntlm: named as such, a pass.
    lab.write_config(&ews, &uc, directory, "");
    let output = lab.check(&[]).await;
    let steps = steps_of(&output);
    let auth = step(&steps, "exchange", "authentication").unwrap();
    assert_eq!(auth["outcome"], "pass", "{auth}");
    assert!(
        auth["detail"]
            .as_str()
            .unwrap()
            .starts_with("NTLM accepted"),
        "{auth}"
    );
}
