//! `ews-calendar-replicator sim exchange` runs standalone: the EWS client
//! reads availability from it over TLS with NTLM and the CA it wrote.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use chrono::{Duration, FixedOffset, Utc};
use ews_toolkit::availability::{self, AvailabilityView};
use ews_toolkit::envelope::RequestHeaders;
use ews_toolkit::operation::{GetUserAvailability, Operation};
use ews_toolkit::sim::exchange::MailboxFile;
use ews_toolkit::transport::{
    AuthScheme, Credentials, HttpTransport, TransportConfig, TransportError,
};
use ews_toolkit::ExchangeVersion;
use http::{HeaderMap, StatusCode};

/// Kills the simulator when the test ends, however it ends.
struct Running(std::process::Child);
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_simulator_command_serves_availability_over_tls_with_ntlm() {
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    let dump = dir.path().join("mailboxes.json");
    let mut child = Command::new(crate::support::lab::BIN)
        .args([
            "sim",
            "exchange",
            "--listen",
            "127.0.0.1:0",
            "--users",
            "12",
        ])
        .args(["--events", "15", "--password", "S1m-secret"])
        .arg("--extended-protection")
        .arg("--tls-ca-out")
        .arg(&ca_file)
        .arg("--dump-mailboxes")
        .arg(&dump)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().unwrap();
    let _running = Running(child);
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().expect("a first line").unwrap();
    let url = first
        .strip_prefix("simulated Exchange at ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .parse()
        .unwrap();
    let second = lines.next().unwrap().unwrap();
    assert!(second.starts_with("test CA written to"), "{second}");
    let rest: Vec<String> = lines.take(3).map(|l| l.unwrap()).collect();
    assert!(
        rest.iter().all(|l| !l.contains("S1m-secret")),
        "the password is never printed: {rest:?}"
    );

    let served = MailboxFile::load(&dump).expect("the dumped mailboxes");
    assert_eq!(served.mailboxes.len(), 12);
    let mailboxes: Vec<String> = served.mailboxes.iter().map(|m| m.smtp.clone()).collect();

    let config = TransportConfig {
        ca_file: Some(ca_file.clone()),
        ..TransportConfig::default()
    };
    let credentials = Credentials::new("CONTOSO\\svc-calendar", "S1m-secret", AuthScheme::Ntlm);
    let transport = HttpTransport::new(config.clone(), Some(credentials.unwrap())).unwrap();
    let start = Utc::now() - Duration::days(1);
    let body = availability::request(
        &RequestHeaders::new(ExchangeVersion::Exchange2016),
        &mailboxes,
        start,
        start + Duration::days(14),
        AvailabilityView::Detailed,
    )
    .unwrap();
    let response = transport
        .post_soap(
            &url,
            GetUserAvailability::SOAP_ACTION,
            body.clone(),
            HeaderMap::new(),
        )
        .await
        .expect("an answer");
    assert_eq!(response.status, StatusCode::OK);
    let (answers, _) = availability::parse_response(
        &mailboxes,
        &response.body,
        FixedOffset::east_opt(0).unwrap(),
    )
    .unwrap();
    let with_events = answers
        .iter()
        .filter(|a| a.result.as_ref().is_ok_and(|e| !e.is_empty()))
        .count();
    assert!(with_events > 0, "{answers:#?}");
    // Generated permissions include mailboxes the account may not read.
    assert!(answers.iter().any(|a| a.result.is_err()));

    let wrong = Credentials::new("CONTOSO\\svc-calendar", "wrong", AuthScheme::Ntlm).unwrap();
    let transport = HttpTransport::new(config, Some(wrong)).unwrap();
    let error = transport
        .post_soap(
            &url,
            GetUserAvailability::SOAP_ACTION,
            body,
            HeaderMap::new(),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, TransportError::Auth { .. }), "{error}");
}

#[test]
fn an_unknown_busy_mode_is_refused_with_the_choices() {
    let output = Command::new(crate::support::lab::BIN)
        .args([
            "sim",
            "exchange",
            "--listen",
            "127.0.0.1:0",
            "--busy-mode",
            "sometimes",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--busy-mode \"sometimes\" is not known; use soap-fault"),
        "{stderr}"
    );
}
