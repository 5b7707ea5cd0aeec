//! The EWS client and its availability reader against the Exchange simulator
//! over real TLS on loopback: chunking, window splitting, concurrency,
//! throttling, faults, per-mailbox errors, authentication and TLS errors,
//! the version header and impersonation.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use ews_toolkit::availability::MailboxAvailability;
use ews_toolkit::availability_reader::REQUEST_FAILED;
use ews_toolkit::sim::exchange::{
    BusyMode, ExchangeSim, ExchangeSimConfig, InjectedFault, Permission, RequestRecord,
    ServerVersionInfo, SimAccount, SimBusyType, SimEvent, SimMailbox,
};
use ews_toolkit::sim::http::{ServerRequest, SimHttpServer};
use ews_toolkit::transport::{
    AuthScheme, Credentials, HttpTransport, TransportConfig, TransportError,
};
use ews_toolkit::{
    AvailabilityReader, AvailabilityReaderConfig, EwsClient, EwsError, ExchangeVersion,
    ResilienceConfig,
};
use http::HeaderMap;

const USER: &str = "CONTOSO\\svc-calendar";
const PASSWORD: &str = "Passw0rd!";

struct Env {
    sim: ExchangeSim,
    _dir: tempfile::TempDir,
    ca_file: PathBuf,
}

async fn start(config: ExchangeSimConfig) -> Env {
    let sim = ExchangeSim::start(config).await.expect("simulator starts");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    sim.write_ca_pem(&ca_file).unwrap();
    Env {
        sim,
        _dir: dir,
        ca_file,
    }
}

fn transport(ca_file: Option<PathBuf>, password: &str) -> Arc<HttpTransport> {
    let config = TransportConfig {
        ca_file,
        request_timeout: Duration::from_secs(20),
        ..TransportConfig::default()
    };
    let credentials = Credentials::new(USER, password, AuthScheme::Ntlm).unwrap();
    Arc::new(HttpTransport::new(config, Some(credentials)).unwrap())
}

fn client(env: &Env) -> EwsClient {
    EwsClient::new(
        transport(Some(env.ca_file.clone()), PASSWORD),
        env.sim.ews_url(),
    )
}

/// Short pauses so that the tests run quickly; the logic is the same.
fn quick() -> ResilienceConfig {
    ResilienceConfig {
        initial_back_off: Duration::from_millis(40),
        max_back_off: Duration::from_secs(5),
        ..ResilienceConfig::default()
    }
}

/// A reader with the default chunking on `client` paced as `resilience` says.
fn reader(client: EwsClient, resilience: ResilienceConfig) -> AvailabilityReader {
    reader_with(client, resilience, AvailabilityReaderConfig::default())
}

fn reader_with(
    client: EwsClient,
    resilience: ResilienceConfig,
    config: AvailabilityReaderConfig,
) -> AvailabilityReader {
    let client = client.with_resilience(resilience).unwrap();
    AvailabilityReader::new(Arc::new(client), config).unwrap()
}

fn chunks_of(mailboxes: usize) -> AvailabilityReaderConfig {
    AvailabilityReaderConfig {
        max_mailboxes_per_request: mailboxes,
        ..AvailabilityReaderConfig::default()
    }
}

fn addresses(env: &Env) -> Vec<String> {
    env.sim.mailboxes().into_iter().map(|m| m.smtp).collect()
}

fn week() -> (DateTime<Utc>, DateTime<Utc>) {
    let start = Utc::now();
    (start, start + chrono::Duration::days(7))
}

fn availability_requests(sim: &ExchangeSim) -> Vec<RequestRecord> {
    sim.requests()
        .into_iter()
        .filter(|r| r.operation == "GetUserAvailability")
        .collect()
}

fn assert_all_read(results: &[MailboxAvailability]) {
    for mailbox in results {
        assert!(
            mailbox.result.is_ok(),
            "{}: {:?}",
            mailbox.mailbox,
            mailbox.result
        );
    }
}

fn event(id: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> SimEvent {
    SimEvent {
        id: id.to_owned(),
        start,
        end,
        busy_type: SimBusyType::Busy,
        subject: Some(format!("subject {id}")),
        location: None,
        private: false,
        meeting: false,
        all_day: false,
        recurrence: None,
    }
}

fn mailbox(smtp: &str, permission: Permission, events: Vec<SimEvent>) -> SimMailbox {
    SimMailbox {
        smtp: smtp.to_owned(),
        display_name: smtp.to_owned(),
        permission,
        events,
    }
}

/// The gap between a busy answer and the next request's arrival.
fn gap_after_busy(records: &[RequestRecord], busy_outcome: &str) -> Duration {
    let busy = records
        .iter()
        .position(|r| r.outcome == busy_outcome)
        .unwrap_or_else(|| panic!("no {busy_outcome} answer among {records:?}"));
    let next = records
        .get(busy + 1)
        .unwrap_or_else(|| panic!("no request after the busy answer: {records:?}"));
    next.arrived.duration_since(records[busy].arrived)
}

#[tokio::test]
async fn mailboxes_250_become_3_requests() {
    let env = start(generated(250, 1, 7)).await;
    let reader = reader(client(&env), quick());
    let (start, end) = week();
    let mailboxes = addresses(&env);
    let results = reader.read(&mailboxes, start, end).await.unwrap();

    assert_eq!(results.len(), 250);
    let answered: Vec<&str> = results.iter().map(|r| r.mailbox.as_str()).collect();
    let asked: Vec<&str> = mailboxes.iter().map(String::as_str).collect();
    assert_eq!(answered, asked, "one answer per mailbox, in order");
    let mut sizes: Vec<usize> = availability_requests(&env.sim)
        .iter()
        .map(|r| r.mailboxes.len())
        .collect();
    sizes.sort();
    assert_eq!(sizes, [50, 100, 100]);
    assert_eq!(reader.stats().requests_sent, 3);
}

#[tokio::test]
async fn a_60_day_window_becomes_2_requests_and_events_merge() {
    let start = Utc.with_ymd_and_hms(2027, 1, 4, 0, 0, 0).unwrap();
    let boundary = start + chrono::Duration::days(42);
    let hour = chrono::Duration::hours(1);
    let day = chrono::Duration::days(1);
    let events = vec![
        event("early", start + day, start + day + hour),
        event("crossing", boundary - hour, boundary + hour),
        event("late", boundary + day * 5, boundary + day * 5 + hour),
    ];
    let env = start_with(vec![
        mailbox("alice@contoso.test", Permission::Details, events),
        mailbox("bob@contoso.test", Permission::Details, Vec::new()),
    ])
    .await;
    let reader = reader(client(&env), quick());
    let end = start + chrono::Duration::days(60);
    let results = reader.read(&addresses(&env), start, end).await.unwrap();

    let requests = availability_requests(&env.sim);
    let mut windows: Vec<_> = requests.iter().map(|r| r.window.unwrap()).collect();
    windows.sort();
    assert_eq!(windows, [(start, boundary), (boundary, end)]);
    let alice = &results[0];
    assert_eq!(alice.mailbox, "alice@contoso.test");
    let events = alice.result.as_ref().unwrap();
    let subjects: Vec<&str> = events
        .iter()
        .map(|e| e.details.as_ref().unwrap().subject.as_deref().unwrap())
        .collect();
    assert_eq!(
        subjects,
        ["subject early", "subject crossing", "subject late"]
    );
    assert_eq!(events[1].start, boundary - hour);
    assert_eq!(events[1].end, boundary + hour);
    assert_eq!(results[1].result, Ok(Vec::new()));
}

/// Generated mailboxes, all readable (the generator also makes hidden ones,
/// whose own error the tests of per-mailbox errors cover).
fn generated(users: usize, events: usize, seed: u64) -> ExchangeSimConfig {
    let mut config = ExchangeSimConfig::generated(users, events, seed);
    for mailbox in &mut config.mailboxes {
        mailbox.permission = Permission::Details;
    }
    config
}

async fn start_with(mailboxes: Vec<SimMailbox>) -> Env {
    start(ExchangeSimConfig::new(mailboxes)).await
}

#[tokio::test]
async fn concurrency_never_exceeds_the_limit() {
    let mut config = generated(40, 1, 3);
    config.knobs.request_latency = Duration::from_millis(40);
    // Beyond 3 the simulator would answer busy: none may come.
    config.knobs.max_concurrent_requests = Some(3);
    let env = start(config).await;
    let reader = reader_with(
        client(&env),
        ResilienceConfig {
            concurrency: 3,
            ..quick()
        },
        chunks_of(2),
    );
    let (start, end) = week();
    let results = reader.read(&addresses(&env), start, end).await.unwrap();

    assert_all_read(&results);
    let counters = env.sim.counters();
    assert_eq!(counters.requests_by_operation["GetUserAvailability"], 20);
    assert!(
        counters.peak_concurrent <= 3,
        "peak {}",
        counters.peak_concurrent
    );
    assert_eq!(counters.busy_answers, 0);
    let stats = reader.stats();
    assert!(stats.peak_in_flight <= 3, "{stats:?}");
    assert_eq!(stats.busy_answers, 0);
}

#[tokio::test]
async fn a_busy_soap_fault_pauses_for_its_back_off_then_retries() {
    let env = start(generated(3, 2, 1)).await;
    env.sim.inject(
        InjectedFault::Busy(BusyMode::SoapFault { back_off_ms: 300 }),
        1,
    );
    let reader = reader(client(&env), quick());
    let (start, end) = week();
    let results = reader.read(&addresses(&env), start, end).await.unwrap();

    assert_all_read(&results);
    let records = availability_requests(&env.sim);
    assert_eq!(records.len(), 2, "{records:?}");
    assert!(gap_after_busy(&records, "ErrorServerBusy") >= Duration::from_millis(300));
    let stats = reader.stats();
    assert_eq!((stats.busy_answers, stats.retries), (1, 1));
}

#[tokio::test]
async fn a_busy_error_inside_a_200_pauses_for_its_back_off_then_retries() {
    let env = start(generated(3, 2, 1)).await;
    env.sim.inject(
        InjectedFault::Busy(BusyMode::InnerError { back_off_ms: 250 }),
        1,
    );
    let reader = reader(client(&env), quick());
    let (start, end) = week();
    let results = reader.read(&addresses(&env), start, end).await.unwrap();

    assert_all_read(&results);
    let records = availability_requests(&env.sim);
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[1].mailboxes.len(), 3, "the busy mailboxes go again");
    assert!(gap_after_busy(&records, "ErrorServerBusy") >= Duration::from_millis(250));
    assert_eq!(reader.stats().busy_answers, 1);
}

#[tokio::test]
async fn a_bare_503_pauses_with_the_doubling_back_off_then_retries() {
    let env = start(generated(3, 2, 1)).await;
    env.sim.inject(InjectedFault::Busy(BusyMode::Http503), 2);
    let initial = Duration::from_millis(80);
    let reader = reader(
        client(&env),
        ResilienceConfig {
            initial_back_off: initial,
            ..quick()
        },
    );
    let (start, end) = week();
    let results = reader.read(&addresses(&env), start, end).await.unwrap();

    assert_all_read(&results);
    let records = availability_requests(&env.sim);
    assert_eq!(records.len(), 3, "{records:?}");
    // Two 503 in a row without Retry-After: 80 ms, then 160 ms.
    assert!(records[1].arrived.duration_since(records[0].arrived) >= initial);
    assert!(records[2].arrived.duration_since(records[1].arrived) >= initial * 2);
    assert_eq!(reader.stats().busy_answers, 2);
}

#[tokio::test]
async fn the_server_concurrency_limit_is_survived() {
    let mut config = generated(16, 1, 5);
    config.knobs.request_latency = Duration::from_millis(30);
    config.knobs.max_concurrent_requests = Some(1);
    config.knobs.busy_mode = BusyMode::SoapFault { back_off_ms: 20 };
    let env = start(config).await;
    let reader = reader_with(
        client(&env),
        ResilienceConfig {
            concurrency: 4,
            // The default budget: busy answers lower the concurrency, so no
            // request keeps colliding until its retries run out.
            ..quick()
        },
        chunks_of(2),
    );
    let (start, end) = week();
    let results = reader.read(&addresses(&env), start, end).await.unwrap();

    assert_all_read(&results);
    assert!(env.sim.counters().busy_answers > 0);
    let stats = reader.stats();
    assert_eq!(stats.busy_answers, env.sim.counters().busy_answers);
    // The first round sends 4 and the server serves 1: the 3 busy answers
    // lower the concurrency to 1, and the 8 requests give too few calm
    // answers to raise it back to 4.
    assert!(stats.concurrency < 4, "{stats:?}");
}

#[tokio::test]
async fn exceeded_connection_count_lowers_concurrency() {
    let env = start(generated(6, 1, 2)).await;
    env.sim
        .inject(InjectedFault::Busy(BusyMode::ExceededConnectionCount), 1);
    let reader = reader_with(
        client(&env),
        ResilienceConfig {
            concurrency: 4,
            ..quick()
        },
        chunks_of(2),
    );
    let (start, end) = week();
    let results = reader.read(&addresses(&env), start, end).await.unwrap();

    assert_all_read(&results);
    let stats = reader.stats();
    assert_eq!(stats.concurrency, 3, "{stats:?}");
    assert_eq!(stats.retries, 1);
    assert!(availability_requests(&env.sim)
        .iter()
        .any(|r| r.outcome == "ErrorExceededConnectionCount"));
}

#[tokio::test]
async fn mailbox_data_array_too_big_halves_the_chunk() {
    let mut config = generated(100, 1, 4);
    config.knobs.max_mailboxes_per_request = 30;
    let env = start(config).await;
    let reader = reader(client(&env), quick());
    let (start, end) = week();
    let results = reader.read(&addresses(&env), start, end).await.unwrap();

    assert_all_read(&results);
    assert_eq!(results.len(), 100);
    let records = availability_requests(&env.sim);
    let mut refused: Vec<usize> = records
        .iter()
        .filter(|r| r.outcome == "ErrorMailboxDataArrayTooBig")
        .map(|r| r.mailboxes.len())
        .collect();
    refused.sort();
    assert_eq!(refused, [50, 50, 100]);
    let answered: Vec<usize> = records
        .iter()
        .filter(|r| r.outcome == "ok")
        .map(|r| r.mailboxes.len())
        .collect();
    assert_eq!(answered, [25, 25, 25, 25]);
    assert_eq!(reader.stats().chunk_splits, 3);
}

#[tokio::test]
async fn a_connection_reset_is_retried() {
    let env = start(generated(3, 1, 1)).await;
    env.sim.inject(InjectedFault::ConnectionReset, 1);
    let reader = reader(client(&env), quick());
    let (start, end) = week();
    let results = reader.read(&addresses(&env), start, end).await.unwrap();

    assert_all_read(&results);
    assert_eq!(reader.stats().retries, 1);
}

#[tokio::test]
async fn resets_beyond_the_retries_fail_each_mailbox_with_the_reason() {
    let env = start(generated(3, 1, 1)).await;
    env.sim.inject(InjectedFault::ConnectionReset, 100);
    let reader = reader(
        client(&env),
        ResilienceConfig {
            max_transient_retries: 2,
            ..quick()
        },
    );
    let (start, end) = week();
    let results = reader.read(&addresses(&env), start, end).await.unwrap();

    assert_eq!(results.len(), 3);
    for mailbox in &results {
        let error = mailbox.result.as_ref().unwrap_err();
        assert_eq!(error.code, REQUEST_FAILED);
        let message = error.message.as_deref().unwrap();
        assert!(message.contains("closed or reset"), "{message}");
        assert!(message.contains("127.0.0.1"), "{message}");
    }
    assert_eq!(reader.stats().retries, 2);
    assert_eq!(reader.stats().requests_sent, 3);
}

#[tokio::test]
async fn a_timeout_is_retried() {
    let env = start(generated(3, 3, 1)).await;
    // 64-byte pieces 300 ms apart: far beyond the 1 s request timeout.
    env.sim.inject(
        InjectedFault::SlowBody {
            delay: Duration::from_millis(300),
        },
        1,
    );
    let config = TransportConfig {
        ca_file: Some(env.ca_file.clone()),
        request_timeout: Duration::from_secs(1),
        ..TransportConfig::default()
    };
    let credentials = Credentials::new(USER, PASSWORD, AuthScheme::Ntlm).unwrap();
    let transport = Arc::new(HttpTransport::new(config, Some(credentials)).unwrap());
    let reader = reader(EwsClient::new(transport, env.sim.ews_url()), quick());
    let (start, end) = week();
    let results = reader.read(&addresses(&env), start, end).await.unwrap();

    assert_all_read(&results);
    assert_eq!(reader.stats().retries, 1);
    assert_eq!(availability_requests(&env.sim).len(), 2);
}

#[tokio::test]
async fn one_mailbox_error_does_not_fail_the_others() {
    let env = start_with(vec![
        mailbox("alice@contoso.test", Permission::Details, Vec::new()),
        mailbox("hidden@contoso.test", Permission::None, Vec::new()),
        mailbox("carol@contoso.test", Permission::FreeBusy, Vec::new()),
        mailbox("remote@contoso.test", Permission::Details, Vec::new()),
    ])
    .await;
    env.sim.set_mailbox_error(
        "remote@contoso.test",
        Some("ErrorProxyRequestProcessingFailed"),
    );
    let reader = reader(client(&env), quick());
    let (start, end) = week();
    let asked: Vec<String> = [
        "alice@contoso.test",
        "nobody@contoso.test",
        "hidden@contoso.test",
        "not-an-address",
        "carol@contoso.test",
        "remote@contoso.test",
    ]
    .map(String::from)
    .to_vec();
    let results = reader.read(&asked, start, end).await.unwrap();

    assert_eq!(availability_requests(&env.sim).len(), 1, "one request");
    let codes: Vec<Result<(), String>> = results
        .iter()
        .map(|r| r.result.as_ref().map(|_| ()).map_err(|e| e.code.clone()))
        .collect();
    assert_eq!(
        codes,
        [
            Ok(()),
            Err("ErrorMailRecipientNotFound".to_owned()),
            Err("ErrorNoFreeBusyAccess".to_owned()),
            Err("ErrorInvalidSmtpAddress".to_owned()),
            Ok(()),
            Err("ErrorProxyRequestProcessingFailed".to_owned()),
        ]
    );
}

#[tokio::test]
async fn a_wrong_password_is_a_clear_error_naming_the_schemes() {
    let env = start(generated(3, 1, 1)).await;
    let client = EwsClient::new(
        transport(Some(env.ca_file.clone()), "wrong-password"),
        env.sim.ews_url(),
    );
    let reader = reader(client, quick());
    let (start, end) = week();
    let error = reader.read(&addresses(&env), start, end).await.unwrap_err();

    assert!(
        matches!(error.transport(), Some(TransportError::Auth { .. })),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("127.0.0.1"), "{message}");
    assert!(message.contains("HTTP 401"), "{message}");
    assert!(message.contains("offers: Negotiate, NTLM"), "{message}");
    assert!(message.contains("with NTLM"), "{message}");
    assert!(
        message.contains("check the user name and password"),
        "{message}"
    );
    assert!(!message.contains("wrong-password"), "{message}");
    assert_eq!(reader.stats().retries, 0, "authentication is not retried");
    assert_eq!(env.sim.counters().requests, 0);
}

#[tokio::test]
async fn a_missing_ca_is_a_clear_tls_error() {
    let env = start(generated(3, 1, 1)).await;
    let client = EwsClient::new(transport(None, PASSWORD), env.sim.ews_url());
    let reader = reader(client, quick());
    let (start, end) = week();
    let error = reader.read(&addresses(&env), start, end).await.unwrap_err();

    assert!(
        matches!(error.transport(), Some(TransportError::Tls { .. })),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("unknown issuer"), "{message}");
    assert!(message.contains("ca_file"), "{message}");
    assert!(!error.is_retryable());
    assert_eq!(reader.stats().retries, 0);
}

#[tokio::test]
async fn the_configured_version_is_sent_and_the_server_version_kept() {
    let mut config = generated(2, 1, 1);
    config.server_version = ServerVersionInfo::exchange_2013();
    let env = start(config).await;
    let (start, end) = week();

    let client = Arc::new(client(&env).with_version(ExchangeVersion::Exchange2013));
    assert!(client.last_server_version().is_none());
    let reader =
        AvailabilityReader::new(client.clone(), AvailabilityReaderConfig::default()).unwrap();
    let results = reader.read(&addresses(&env), start, end).await.unwrap();
    assert_all_read(&results);
    let seen = client
        .last_server_version()
        .expect("ServerVersionInfo kept");
    let expected = env.sim.server_version();
    assert_eq!(seen.major, Some(expected.major));
    assert_eq!(seen.minor, Some(expected.minor));
    assert_eq!(seen.major_build, Some(expected.major_build));
    assert_eq!(seen.version.as_deref(), Some(expected.version.as_str()));

    // A version newer than the server's is refused: proof the header carries
    // the configured value; the error says what to configure.
    let newer = reader_for_version(&env, ExchangeVersion::Exchange2016);
    let error = newer.read(&addresses(&env), start, end).await.unwrap_err();
    assert_eq!(error.fault_code(), Some("ErrorInvalidServerVersion"));
    let message = error.to_string();
    assert!(
        message.contains("configure the version the server runs"),
        "{message}"
    );
}

fn reader_for_version(env: &Env, version: ExchangeVersion) -> AvailabilityReader {
    reader(client(env).with_version(version), quick())
}

/// What the recording proxy saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    anchor: Option<String>,
    body: String,
}

/// A plain-HTTP proxy in front of the simulator that records each request's
/// `X-AnchorMailbox` and body, so the test sees what the client sent.
async fn recording_proxy(env: &Env) -> (SimHttpServer, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let upstream = transport(Some(env.ca_file.clone()), PASSWORD);
    let url = env.sim.ews_url();
    let record = seen.clone();
    let server = SimHttpServer::start("127.0.0.1:0", None, None, move |request: ServerRequest| {
        let upstream = upstream.clone();
        let url = url.clone();
        let record = record.clone();
        async move {
            let header = |name: &str| {
                request
                    .request
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let action = header("soapaction").unwrap_or_default();
            let body = request.request.body().clone();
            record.lock().unwrap().push(Seen {
                anchor: header("x-anchormailbox"),
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            let answer = upstream
                .post_soap(&url, action.trim_matches('"'), body, HeaderMap::new())
                .await
                .expect("the simulator answers the proxy");
            let mut response = http::Response::new(answer.body);
            *response.status_mut() = answer.status;
            response
        }
    })
    .await
    .unwrap();
    (server, seen)
}

fn proxied_client(proxy: &SimHttpServer) -> EwsClient {
    let config = TransportConfig {
        allow_plain_http: true,
        ..TransportConfig::default()
    };
    let transport = Arc::new(HttpTransport::new(config, None).unwrap());
    let url = format!("http://{}/EWS/Exchange.asmx", proxy.local_addr());
    EwsClient::new(transport, url.parse().unwrap())
}

#[tokio::test]
async fn impersonation_sends_the_header_and_x_anchor_mailbox() {
    let mut config = generated(3, 1, 1);
    config.accounts =
        vec![SimAccount::new("CONTOSO", "svc-calendar", PASSWORD).with_impersonation()];
    let env = start(config).await;
    let (proxy, seen) = recording_proxy(&env).await;
    let acting_as = addresses(&env)[0].clone();
    let client = proxied_client(&proxy)
        .with_version(ExchangeVersion::Exchange2010Sp2)
        .with_impersonation(&acting_as)
        .unwrap();
    let reader = reader(client, quick());
    let (start, end) = week();
    let results = reader.read(&addresses(&env), start, end).await.unwrap();

    assert_all_read(&results);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].anchor.as_deref(), Some(acting_as.as_str()));
    let body = &seen[0].body;
    assert!(
        body.contains(&format!("<t:SmtpAddress>{acting_as}</t:SmtpAddress>")),
        "{body}"
    );
    assert!(body.contains("ExchangeImpersonation"), "{body}");
    assert!(body.contains("Version=\"Exchange2010_SP2\""), "{body}");
    assert!(env
        .sim
        .requests()
        .iter()
        .all(|r| r.account.as_deref() == Some(USER)));
}

#[tokio::test]
async fn impersonation_without_the_role_is_a_clear_error() {
    let env = start(generated(3, 1, 1)).await;
    let acting_as = addresses(&env)[0].clone();
    let client = client(&env).with_impersonation(&acting_as).unwrap();
    let reader = reader(client, quick());
    let (start, end) = week();
    let error: EwsError = reader.read(&addresses(&env), start, end).await.unwrap_err();
    assert_eq!(error.fault_code(), Some("ErrorImpersonateUserDenied"));
    assert!(
        error.to_string().contains("ApplicationImpersonation"),
        "{error}"
    );
}

// The example's own code, run in-process: its command line in, its table out.
#[allow(dead_code)]
#[path = "../../examples/ews_availability.rs"]
mod example;

#[tokio::test]
async fn the_example_prints_availability_from_the_command_line() {
    let now = Utc::now();
    let hour = chrono::Duration::hours(1);
    let env = start_with(vec![
        mailbox(
            "alice@contoso.test",
            Permission::Details,
            vec![event("standup", now + hour, now + hour * 2)],
        ),
        mailbox("hidden@contoso.test", Permission::None, Vec::new()),
    ])
    .await;
    let command_line = [
        "--url",
        env.sim.ews_url().as_str(),
        "--ca-file",
        &env.ca_file.display().to_string(),
        "--user",
        USER,
        "--password-env",
        "EXAMPLE_EWS_PASSWORD",
        "--version",
        "Exchange2016",
        "--days",
        "3",
        "alice@contoso.test",
        "hidden@contoso.test",
    ]
    .map(String::from);
    let args = example::parse_args(command_line).unwrap();
    let read_env = |name: &str| (name == "EXAMPLE_EWS_PASSWORD").then(|| PASSWORD.to_owned());
    let (table, all_read) = example::run(args, read_env).await.unwrap();

    let line_of = |mailbox: &str| {
        table
            .lines()
            .find(|l| l.starts_with(mailbox))
            .unwrap_or_else(|| panic!("no line for {mailbox}:\n{table}"))
    };
    let alice = line_of("alice@contoso.test");
    assert!(alice.contains("subject standup"), "{alice}");
    assert!(alice.contains("Busy"), "{alice}");
    let hidden = line_of("hidden@contoso.test");
    assert!(hidden.contains("ERROR ErrorNoFreeBusyAccess"), "{hidden}");
    assert!(table.contains("version 15."), "{table}");
    assert!(!all_read, "a mailbox could not be read");

    let missing = example::parse_args(["alice@contoso.test".to_owned()])
        .err()
        .unwrap();
    assert!(missing.contains("--url is required"), "{missing}");
    let no_password = example::parse_args(
        [
            "--url",
            "https://mail.contoso.test/EWS/Exchange.asmx",
            "--user",
            USER,
            "a@contoso.test",
        ]
        .map(String::from),
    )
    .unwrap();
    let error = example::run(no_password, |_| None).await.unwrap_err();
    assert!(error.contains("--password-env"), "{error}");
}

#[tokio::test]
async fn an_unreachable_server_fails_the_read_after_the_retries() {
    // A port nobody listens on (bound, then closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("https://127.0.0.1:{port}/EWS/Exchange.asmx");
    let client = EwsClient::new(transport(None, PASSWORD), url.parse().unwrap());
    let reader = reader(
        client,
        ResilienceConfig {
            max_transient_retries: 2,
            ..quick()
        },
    );
    let (start, end) = week();
    let asked = ["a@contoso.test".to_owned(), "b@contoso.test".to_owned()];
    let error = reader.read(&asked, start, end).await.unwrap_err();

    assert!(
        matches!(error.transport(), Some(TransportError::Connect { .. })),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains(&format!("cannot connect to 127.0.0.1:{port}")),
        "{error}"
    );
    assert_eq!(reader.stats().retries, 2);
}

#[tokio::test]
async fn a_malformed_answer_fails_its_mailboxes_and_not_the_others() {
    let env = start(generated(4, 1, 9)).await;
    env.sim.inject(InjectedFault::MalformedXml, 1);
    let reader = reader_with(
        client(&env),
        ResilienceConfig {
            concurrency: 1,
            ..quick()
        },
        chunks_of(2),
    );
    let (start, end) = week();
    let asked = addresses(&env);
    let results = reader.read(&asked, start, end).await.unwrap();

    // Requests go one at a time, so the first chunk got the broken answer.
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| r.result.is_err())
        .map(|r| r.mailbox.as_str())
        .collect();
    assert_eq!(failed, [asked[0].as_str(), asked[1].as_str()]);
    for mailbox in &results[..2] {
        let error = mailbox.result.as_ref().unwrap_err();
        assert_eq!(error.code, REQUEST_FAILED);
        let message = error.message.as_deref().unwrap();
        assert!(
            message.contains("invalid answer from 127.0.0.1"),
            "{message}"
        );
    }
    assert_all_read(&results[2..]);
}

/// `impersonate_each_mailbox`: one request per mailbox, each acting as that
/// mailbox (header and X-AnchorMailbox), so a private item's subject, hidden
/// from the service account, is visible to its owner.
#[tokio::test]
async fn impersonating_each_mailbox_asks_as_its_owner_and_sees_private_subjects() {
    let (from, to) = week();
    let mut private = event(
        "private",
        from + chrono::Duration::hours(3),
        from + chrono::Duration::hours(4),
    );
    private.private = true;
    let mut config = ExchangeSimConfig::new(vec![
        mailbox(
            "anna@contoso.test",
            Permission::Details,
            vec![private.clone()],
        ),
        mailbox("ben@contoso.test", Permission::Details, vec![private]),
    ]);
    config.accounts =
        vec![SimAccount::new("CONTOSO", "svc-calendar", PASSWORD).with_impersonation()];
    let env = start(config).await;
    let (proxy, seen) = recording_proxy(&env).await;
    let mailboxes = addresses(&env);
    let subjects = |results: &[MailboxAvailability]| -> Vec<Option<String>> {
        results
            .iter()
            .map(|m| {
                let events = m.result.as_ref().expect("read");
                events[0].details.as_ref().and_then(|d| d.subject.clone())
            })
            .collect()
    };

    let as_account = reader(proxied_client(&proxy), quick())
        .read(&mailboxes, from, to)
        .await
        .unwrap();
    assert_eq!(
        subjects(&as_account),
        [None, None],
        "the account sees no private subject"
    );
    assert_eq!(seen.lock().unwrap().len(), 1, "one request for both");

    seen.lock().unwrap().clear();
    let as_owner = reader_with(
        proxied_client(&proxy),
        quick(),
        AvailabilityReaderConfig {
            impersonate_each_mailbox: true,
            ..AvailabilityReaderConfig::default()
        },
    )
    .read(&mailboxes, from, to)
    .await
    .unwrap();
    assert_eq!(
        subjects(&as_owner),
        [
            Some("subject private".to_owned()),
            Some("subject private".to_owned())
        ]
    );
    let mut anchors: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.anchor.clone().unwrap_or_default())
        .collect();
    anchors.sort();
    assert_eq!(
        anchors, mailboxes,
        "one request per mailbox, each anchored to it"
    );
}
