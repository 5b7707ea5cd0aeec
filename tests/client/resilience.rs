//! The EWS client paces and retries every operation, not only
//! GetUserAvailability: FindItem, GetFolder and ResolveNames against the
//! Exchange simulator over real TLS on loopback, with dropped connections,
//! HTTP 503, `ErrorServerBusy` and its back-off, the connection limit, a
//! bounded retry budget and faults that are not retried; and autodiscover,
//! which asks a host that answered again after a 503 or a dropped
//! connection, but not one whose answer means "try the next candidate".

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use ews_toolkit::autodiscover::{
    AutodiscoverClient, AutodiscoverSettings, ScpSource, ServiceConnectionPoint,
};
use ews_toolkit::sim::auth::{Account, AuthPolicy, Authenticator};
use ews_toolkit::sim::exchange::{
    BusyMode, ExchangeSim, ExchangeSimConfig, InjectedFault, Permission, RequestRecord,
    SimBusyType, SimEvent, SimMailbox,
};
use ews_toolkit::sim::http::{plain_response, ResponseFault, SimHttpServer};
use ews_toolkit::transport::{
    AuthScheme, Credentials, HttpTransport, TransportConfig, TransportError,
};
use ews_toolkit::{calendar_view, folder, resolve_names};
use ews_toolkit::{EwsClient, EwsError, ResilienceConfig};
use http::StatusCode;

const ALICE: &str = "alice@contoso.test";

struct Env {
    sim: ExchangeSim,
    _dir: tempfile::TempDir,
    ca_file: PathBuf,
}

async fn start() -> Env {
    let event = SimEvent {
        id: "standup".to_owned(),
        start: at(9),
        end: at(10),
        busy_type: SimBusyType::Busy,
        subject: Some("stand-up".to_owned()),
        location: None,
        private: false,
        meeting: false,
        all_day: false,
        recurrence: None,
    };
    let alice = SimMailbox {
        smtp: ALICE.to_owned(),
        display_name: "Alice".to_owned(),
        permission: Permission::Details,
        events: vec![event],
    };
    let sim = ExchangeSim::start(ExchangeSimConfig::new(vec![alice]))
        .await
        .expect("simulator starts");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    sim.write_ca_pem(&ca_file).unwrap();
    Env {
        sim,
        _dir: dir,
        ca_file,
    }
}

fn at(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, hour, 0, 0).unwrap()
}

/// Short pauses so that the tests run quickly; the logic is the default's.
fn quick() -> ResilienceConfig {
    ResilienceConfig {
        initial_back_off: Duration::from_millis(40),
        max_back_off: Duration::from_secs(5),
        ..ResilienceConfig::default()
    }
}

fn client(env: &Env, resilience: ResilienceConfig) -> EwsClient {
    let config = TransportConfig {
        ca_file: Some(env.ca_file.clone()),
        request_timeout: Duration::from_secs(20),
        ..TransportConfig::default()
    };
    let credentials = Credentials::new("CONTOSO\\svc-calendar", "Passw0rd!", AuthScheme::Ntlm)
        .expect("credentials");
    let transport = Arc::new(HttpTransport::new(config, Some(credentials)).expect("transport"));
    EwsClient::new(transport, env.sim.ews_url())
        .with_resilience(resilience)
        .expect("valid resilience")
}

fn requests_of(sim: &ExchangeSim, operation: &str) -> Vec<RequestRecord> {
    sim.requests()
        .into_iter()
        .filter(|r| r.operation == operation)
        .collect()
}

fn outcomes(records: &[RequestRecord]) -> Vec<&str> {
    records.iter().map(|r| r.outcome.as_str()).collect()
}

async fn find(client: &EwsClient) -> Result<calendar_view::CalendarView, EwsError> {
    calendar_view::find(client, Some(ALICE), at(0), at(23), None).await
}

#[tokio::test]
async fn find_item_is_sent_again_after_a_dropped_connection_and_a_503() {
    let env = start().await;
    let client = client(&env, quick());
    env.sim.inject(InjectedFault::ConnectionReset, 1);
    env.sim.inject(InjectedFault::HttpStatus(503), 1);

    let view = find(&client).await.expect("read after the retries");

    assert_eq!(view.items.len(), 1, "{view:?}");
    assert_eq!(view.items[0].subject.as_deref(), Some("stand-up"));
    let records = requests_of(&env.sim, "FindItem");
    assert_eq!(
        outcomes(&records),
        ["fault:ConnectionReset", "fault:HttpStatus(503)", "ok"]
    );
    let stats = client.stats();
    assert_eq!((stats.retries, stats.busy_answers), (2, 1), "{stats:?}");
    assert!(client.last_server_version().is_some());
}

#[tokio::test]
async fn get_folder_is_sent_again_after_a_dropped_connection_and_a_503() {
    let env = start().await;
    let client = client(&env, quick());
    // The reset first: on a connection kept alive since an earlier answer,
    // the transport itself sends the request again on a new one.
    env.sim.inject(InjectedFault::ConnectionReset, 1);
    env.sim.inject(InjectedFault::Busy(BusyMode::Http503), 1);

    let found = folder::probe(&client, Some(ALICE))
        .await
        .expect("opened after the retries");

    assert_eq!(found.display_name.as_deref(), Some("Calendar"));
    let records = requests_of(&env.sim, "GetFolder");
    assert_eq!(
        outcomes(&records),
        ["fault:ConnectionReset", "http:503", "ok"]
    );
    assert_eq!(client.stats().retries, 2);
}

#[tokio::test]
async fn resolve_names_is_sent_again_after_a_502() {
    let env = start().await;
    let client = client(&env, quick());
    env.sim.inject(InjectedFault::HttpStatus(502), 1);

    let resolution = resolve_names::resolve(&client, ALICE)
        .await
        .expect("resolved after the retry");

    assert_eq!(
        resolution.mailboxes[0].email_address.as_deref(),
        Some(ALICE)
    );
    assert_eq!(requests_of(&env.sim, "ResolveNames").len(), 2);
}

/// `ErrorServerBusy` with `BackOffMilliseconds` on a FindItem: the FindItem
/// waits as long as asked, and so does every other request to the server
/// (a GetFolder sent during the pause).
#[tokio::test]
async fn a_busy_fault_pauses_every_operation_for_its_back_off() {
    let env = start().await;
    let client = Arc::new(client(&env, quick()));
    let back_off = Duration::from_millis(400);
    env.sim.inject(
        InjectedFault::Busy(BusyMode::SoapFault {
            back_off_ms: back_off.as_millis() as u64,
        }),
        1,
    );

    let finding = tokio::spawn({
        let client = client.clone();
        async move { find(&client).await }
    });
    // The pause is in force once the busy answer is read.
    while client.paused_until().is_none() {
        assert!(!finding.is_finished(), "the FindItem ended without a pause");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    folder::probe(&client, Some(ALICE))
        .await
        .expect("GetFolder after the pause");
    finding.await.unwrap().expect("FindItem after the pause");

    let records = env.sim.requests();
    let busy = records
        .iter()
        .position(|r| r.outcome == "ErrorServerBusy")
        .expect("a busy answer");
    assert_eq!(records[busy].operation, "FindItem");
    let after: Vec<&RequestRecord> = records[busy + 1..].iter().collect();
    assert_eq!(after.len(), 2, "{records:?}");
    for record in after {
        assert!(
            record.arrived.duration_since(records[busy].arrived) >= back_off,
            "{} came before the pause ended: {records:?}",
            record.operation
        );
    }
    let stats = client.stats();
    assert_eq!((stats.busy_answers, stats.retries), (1, 1), "{stats:?}");
    assert!(stats.back_off >= back_off, "{stats:?}");
}

#[tokio::test]
async fn exceeded_connection_count_on_find_item_lowers_the_client_concurrency() {
    let env = start().await;
    let client = client(
        &env,
        ResilienceConfig {
            concurrency: 4,
            ..quick()
        },
    );
    env.sim
        .inject(InjectedFault::Busy(BusyMode::ExceededConnectionCount), 1);

    find(&client).await.expect("read after the retry");

    let stats = client.stats();
    assert_eq!((stats.concurrency, stats.retries), (3, 1), "{stats:?}");
    assert_eq!(
        outcomes(&requests_of(&env.sim, "FindItem")),
        ["ErrorExceededConnectionCount", "ok"]
    );
}

#[tokio::test]
async fn retries_are_bounded_and_the_last_error_names_what_failed() {
    let env = start().await;
    let client = client(
        &env,
        ResilienceConfig {
            max_transient_retries: 2,
            max_busy_retries: 3,
            ..quick()
        },
    );
    env.sim.inject(InjectedFault::ConnectionReset, 100);

    let error = find(&client).await.unwrap_err();

    assert!(
        matches!(
            error.transport(),
            Some(TransportError::ConnectionReset { .. })
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("closed or reset"), "{message}");
    assert!(message.contains("127.0.0.1"), "{message}");
    assert_eq!(requests_of(&env.sim, "FindItem").len(), 3, "1 + 2 retries");

    env.sim.clear_faults();
    env.sim.reset_counters();
    env.sim.inject(
        InjectedFault::Busy(BusyMode::SoapFault { back_off_ms: 10 }),
        100,
    );
    let error = folder::probe(&client, Some(ALICE)).await.unwrap_err();
    assert_eq!(error.fault_code(), Some("ErrorServerBusy"), "{error:?}");
    assert!(error.to_string().contains("throttling"), "{error}");
    assert_eq!(requests_of(&env.sim, "GetFolder").len(), 4, "1 + 3 retries");
}

#[tokio::test]
async fn what_would_fail_again_is_not_sent_again() {
    let env = start().await;
    let client = client(&env, quick());

    // A bare HTTP 500 is no transient answer.
    env.sim.inject(InjectedFault::HttpStatus(500), 1);
    let error = find(&client).await.unwrap_err();
    assert!(
        matches!(&error, EwsError::Http { status, .. } if status.as_u16() == 500),
        "{error:?}"
    );
    assert_eq!(requests_of(&env.sim, "FindItem").len(), 1);

    // Nor is a refusal of the mailbox.
    let error = folder::probe(&client, Some("nobody@contoso.test"))
        .await
        .unwrap_err();
    assert!(matches!(error, EwsError::Response { .. }), "{error:?}");
    assert_eq!(requests_of(&env.sim, "GetFolder").len(), 1);
    assert_eq!(client.stats().retries, 0);
}

/// Service connection points from a list, as Active Directory would give them.
struct Points(Vec<ServiceConnectionPoint>);

impl ScpSource for Points {
    fn service_connection_points(
        &self,
    ) -> impl std::future::Future<
        Output = Result<Vec<ServiceConnectionPoint>, Box<dyn std::error::Error + Send + Sync>>,
    > + Send {
        let points = self.0.clone();
        async move { Ok(points) }
    }
}

/// An autodiscover host (the simulator's answers, on TLS with its CA, NTLM)
/// whose
/// first answers are `failures` (an HTTP status, or 0 for a dropped
/// connection), then the real ones; it counts the authenticated requests.
async fn flaky_autodiscover(env: &Env, failures: Vec<u16>) -> (SimHttpServer, Arc<AtomicUsize>) {
    let responder = env.sim.autodiscover().clone();
    let failures = Arc::new(Mutex::new(VecDeque::from(failures)));
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let pki = env.sim.pki().expect("TLS");
    let auth = Arc::new(Authenticator::new(AuthPolicy::new(vec![Account::new(
        "CONTOSO",
        "svc-calendar",
        "Passw0rd!",
    )])));
    let tls = Some(pki.server_config());
    let server = SimHttpServer::start("127.0.0.1:0", tls, Some(auth), move |request| {
        counter.fetch_add(1, Ordering::SeqCst);
        let failure = failures.lock().unwrap().pop_front();
        let answer = match failure {
            Some(0) => {
                let mut response = plain_response(StatusCode::OK, "");
                response
                    .extensions_mut()
                    .insert(ResponseFault::CloseConnection);
                response
            }
            Some(status) => plain_response(StatusCode::from_u16(status).unwrap(), "failing"),
            None => responder
                .handle(&request)
                .unwrap_or_else(|| plain_response(StatusCode::NOT_FOUND, "not here")),
        };
        async move { answer }
    })
    .await
    .expect("autodiscover host starts");
    (server, seen)
}

fn autodiscover_client(env: &Env, host: &SimHttpServer) -> AutodiscoverClient<Points> {
    let config = TransportConfig {
        ca_file: Some(env.ca_file.clone()),
        request_timeout: Duration::from_secs(5),
        ..TransportConfig::default()
    };
    let credentials = Credentials::new("CONTOSO\\svc-calendar", "Passw0rd!", AuthScheme::Ntlm)
        .expect("credentials");
    let transport = HttpTransport::new(config, Some(credentials)).expect("transport");
    let settings = AutodiscoverSettings {
        retry: quick(),
        ..AutodiscoverSettings::default()
    };
    let point = ServiceConnectionPoint {
        url: format!(
            "https://127.0.0.1:{}/autodiscover/autodiscover.xml",
            host.local_addr().port()
        ),
        sites: Vec::new(),
        dn: "CN=mail,CN=Autodiscover".to_owned(),
    };
    AutodiscoverClient::new(transport, settings)
        .expect("autodiscover client")
        .with_scp(Points(vec![point]))
}

#[tokio::test]
async fn autodiscover_asks_a_host_again_after_a_503_and_a_dropped_connection() {
    let env = start().await;
    let (host, seen) = flaky_autodiscover(&env, vec![503, 0]).await;

    let found = autodiscover_client(&env, &host)
        .discover(ALICE)
        .await
        .expect("found after the retries");

    assert_eq!(found.ews_url, env.sim.ews_url());
    assert_eq!(seen.load(Ordering::SeqCst), 3, "{:?}", found.steps);
}

#[tokio::test]
async fn autodiscover_does_not_ask_again_what_means_try_the_next_candidate() {
    let env = start().await;
    // A 404 for POX and for SOAP: this host offers neither.
    let (host, seen) = flaky_autodiscover(&env, vec![404, 404]).await;

    let error = autodiscover_client(&env, &host)
        .discover(ALICE)
        .await
        .unwrap_err();

    assert_eq!(seen.load(Ordering::SeqCst), 2, "{error}");
    assert!(error.to_string().contains("HTTP 404"), "{error}");
}
