//! The monitoring endpoints (`[monitoring] listen`, issue #16) against the
//! simulators: `/metrics` read with a Prometheus parser after real cycles,
//! `/healthz` turning 503 when the UCServer stops, the status page in
//! headless Chromium, and no appointment subject on any endpoint.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use crate::support::lab::*;
use chrono::{Duration as ChronoDuration, Utc};
use ews_calendar_replicator::app::{assemble, ConfiguredEngine};
use ews_calendar_replicator::config;
use ews_calendar_replicator::monitoring::{Monitor, MonitoringServer};
use ews_calendar_replicator::replication::{CycleOptions, CycleReport};
use ews_calendar_replicator::sim::ucserver::{UcServerSim, UcServerSimConfig, UserDatabase};
use ews_calendar_replicator::state::MemoryStateStore;
use ews_toolkit::sim::exchange::{BusyMode, InjectedFault, SimBusyType, SimEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A subject planted in a normal (not private) appointment: it reaches the
/// UCServer, and must reach none of the monitoring endpoints.
const PLANTED_SUBJECT: &str = "PLANTED-SUBJECT-7f3a Board <meeting>";
const PLANTED_MARK: &str = "PLANTED-SUBJECT-7f3a";

// ------------------------------------------------------------------ HTTP

/// One HTTP answer.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// Sends `request` as it is and reads the whole answer (the server closes
/// every connection after one answer).
async fn exchange_raw(addr: SocketAddr, request: &[u8]) -> String {
    let talk = async {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        // A reset after the answer (request bytes left unread) is fine.
        let _ = tcp.read_to_end(&mut answer).await;
        String::from_utf8_lossy(&answer).into_owned()
    };
    tokio::time::timeout(Duration::from_secs(60), talk)
        .await
        .expect("the monitoring endpoint answers")
}

async fn get(addr: SocketAddr, path: &str) -> Answer {
    let raw = exchange_raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    parse_answer(&raw)
}

fn parse_answer(raw: &str) -> Answer {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {raw:?}"));
    Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// Asks `path` of the service's endpoints until the raw answer satisfies
/// `done` (the service starts, connects and runs its first cycle
/// meanwhile); the answer. Fails if the service ends or after 2 minutes.
async fn wait_for_answer(
    addr: SocketAddr,
    path: &str,
    service: &mut tokio::process::Child,
    done: impl Fn(&str) -> bool,
) -> String {
    let mut last = String::new();
    for _ in 0..1200 {
        if let Ok(Ok(mut tcp)) =
            tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr)).await
        {
            let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
            let _ = tcp.write_all(request.as_bytes()).await;
            let mut raw = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut raw)).await;
            last = String::from_utf8_lossy(&raw).into_owned();
            if done(&last) {
                return last;
            }
        }
        if let Ok(Some(status)) = service.try_wait() {
            panic!("the service ended early: {status}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} never gave the expected answer; the last one:\n{last}");
}

// ------------------------------------------------------------------ metrics

fn scrape(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

/// The value of the sample `name` with exactly `labels`.
fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| {
            s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
        .filter_map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => Some(v),
            _ => None,
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one sample {name}{labels:?} in {:#?}",
        scrape.samples
    );
    found[0]
}

async fn metrics(addr: SocketAddr) -> prometheus_parse::Scrape {
    let answer = get(addr, "/metrics").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        answer
            .head
            .to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "{}",
        answer.head
    );
    assert!(answer.body.ends_with("# EOF\n"), "{}", answer.body);
    scrape(&answer.body)
}

// ------------------------------------------------------------------ setup

/// The configured engine of `lab`, watched by a monitor that serves on a
/// free loopback port.
async fn observed_engine(
    lab: &Lab,
) -> (
    ConfiguredEngine<Arc<MemoryStateStore>>,
    Arc<Monitor>,
    MonitoringServer,
) {
    let config = config::load(&lab.config).unwrap();
    let engine = assemble(&config, Arc::new(MemoryStateStore::new()))
        .await
        .unwrap();
    let monitor = Arc::new(Monitor::new(config.replication.interval));
    let engine = engine.with_observer(monitor.clone());
    engine.calendars().observe(monitor.clone());
    let server = MonitoringServer::start(([127, 0, 0, 1], 0).into(), monitor.clone())
        .await
        .unwrap();
    (engine, monitor, server)
}

async fn cycle(engine: &ConfiguredEngine<Arc<MemoryStateStore>>) -> CycleReport {
    engine.run_cycle(Utc::now(), &CycleOptions::default()).await
}

/// Adds an appointment with [`PLANTED_SUBJECT`] to `email`'s calendar.
fn plant_subject(lab: &Lab, email: &str) {
    let start = (Utc::now() + ChronoDuration::days(2))
        .date_naive()
        .and_hms_opt(10, 0, 0)
        .unwrap()
        .and_utc();
    lab.exchange
        .mailbox_mut(email, |m| {
            m.events.push(SimEvent {
                id: "planted".into(),
                start,
                end: start + ChronoDuration::hours(1),
                busy_type: SimBusyType::Busy,
                subject: Some(PLANTED_SUBJECT.into()),
                location: Some(format!("{PLANTED_MARK} room")),
                private: false,
                meeting: true,
                all_day: false,
                recurrence: None,
            })
        })
        .unwrap();
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn metrics_after_real_cycles_count_what_the_simulators_saw() {
    let lab = Lab::start_with(LabOptions {
        static_directory: true,
        ..LabOptions::default()
    })
    .await;
    let offline = lab.offline().len() as f64;
    let (engine, _monitor, server) = observed_engine(&lab).await;
    let addr = server.local_addr();
    // Before any cycle: the build, no cycle, no server state yet.
    let before = metrics(addr).await;
    assert_eq!(
        value(
            &before,
            "ews_replicator_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    assert_eq!(
        value(&before, "ews_replicator_exchange_requests_total", &[]),
        0.0
    );
    assert!(!before
        .samples
        .iter()
        .any(|s| s.metric == "ews_replicator_server_up"));

    // Exchange answers the first request busy (100 ms back-off).
    lab.exchange.inject(
        InjectedFault::Busy(BusyMode::SoapFault { back_off_ms: 100 }),
        1,
    );
    let first = cycle(&engine).await;
    assert_eq!(first.error, None);
    assert_eq!(first.counters.written as f64, offline);
    let m = metrics(addr).await;
    assert_eq!(
        value(&m, "ews_replicator_cycles_total", &[("outcome", "success")]),
        1.0
    );
    assert_eq!(
        value(&m, "ews_replicator_cycle_duration_seconds_count", &[]),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "ews_replicator_last_cycle_users",
            &[("result", "written")]
        ),
        offline
    );
    for result in ["unchanged", "failed"] {
        assert_eq!(
            value(&m, "ews_replicator_last_cycle_users", &[("result", result)]),
            0.0
        );
    }
    assert_eq!(
        value(
            &m,
            "ews_replicator_last_cycle_users",
            &[("result", "skipped")]
        ),
        first.counters.skipped as f64
    );
    // The busy answer and its retry: two requests, as the simulator saw.
    assert_eq!(lab.exchange.counters().requests, 2);
    assert_eq!(
        value(&m, "ews_replicator_exchange_requests_total", &[]),
        2.0
    );
    assert_eq!(
        value(&m, "ews_replicator_exchange_busy_answers_total", &[]),
        1.0
    );
    assert_eq!(value(&m, "ews_replicator_exchange_retries_total", &[]), 1.0);
    assert_eq!(
        value(&m, "ews_replicator_exchange_back_off_seconds_total", &[]),
        0.1
    );
    // The reader's own totals, which the observer mirrors.
    let stats = engine.calendars().reader(None).await.unwrap().stats();
    assert_eq!(
        (stats.requests_sent, stats.busy_answers, stats.retries),
        (2, 1, 1)
    );
    assert_eq!(stats.back_off, Duration::from_millis(100));
    assert_eq!(lab.ucserver.total_writes() as f64, offline);
    assert_eq!(
        value(
            &m,
            "ews_replicator_ucserver_writes_total",
            &[("result", "accepted")]
        ),
        offline
    );
    for server in ["ucserver", "directory", "exchange"] {
        assert_eq!(
            value(&m, "ews_replicator_server_up", &[("server", server)]),
            1.0,
            "{server}"
        );
    }
    let last_success = value(
        &m,
        "ews_replicator_last_successful_cycle_timestamp_seconds",
        &[],
    );
    let finished = first.finished_at.timestamp_millis() as f64 / 1000.0;
    assert_eq!(last_success, finished);

    // Nothing changed: everyone unchanged, nothing written.
    let second = cycle(&engine).await;
    assert_eq!(second.counters.unchanged as f64, offline);
    let m = metrics(addr).await;
    assert_eq!(
        value(&m, "ews_replicator_cycles_total", &[("outcome", "success")]),
        2.0
    );
    assert_eq!(
        value(&m, "ews_replicator_cycle_duration_seconds_count", &[]),
        2.0
    );
    assert_eq!(
        value(
            &m,
            "ews_replicator_last_cycle_users",
            &[("result", "written")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &m,
            "ews_replicator_last_cycle_users",
            &[("result", "unchanged")]
        ),
        offline
    );
    assert_eq!(
        value(&m, "ews_replicator_users_total", &[("result", "written")]),
        offline
    );
    assert_eq!(
        value(&m, "ews_replicator_users_total", &[("result", "unchanged")]),
        offline
    );
    assert_eq!(
        value(&m, "ews_replicator_exchange_requests_total", &[]),
        3.0
    );
    assert_eq!(
        value(
            &m,
            "ews_replicator_ucserver_writes_total",
            &[("result", "accepted")]
        ),
        offline
    );
    assert!(
        value(
            &m,
            "ews_replicator_last_successful_cycle_timestamp_seconds",
            &[]
        ) > last_success
    );
}

#[tokio::test]
async fn healthz_answers_200_then_503_when_the_ucserver_simulator_is_stopped() {
    let mut lab = Lab::start_with(LabOptions {
        static_directory: true,
        ..LabOptions::default()
    })
    .await;
    let (engine, _monitor, server) = observed_engine(&lab).await;
    let addr = server.local_addr();
    // Just started: healthy, no cycle yet.
    let health = get(addr, "/healthz").await;
    assert_eq!(health.status, 200, "{}", health.body);

    let report = cycle(&engine).await;
    assert_eq!(report.error, None);
    let health = get(addr, "/healthz").await;
    assert_eq!(health.status, 200, "{}", health.body);
    assert!(health.body.starts_with("ok"), "{}", health.body);

    // Stop the UCServer (its replacement listens elsewhere): the next
    // cycle cannot list the users.
    let elsewhere = UcServerSim::start(
        UcServerSimConfig::new(UserDatabase { users: Vec::new() }),
        None,
    )
    .await
    .unwrap();
    drop(std::mem::replace(&mut lab.ucserver, elsewhere));
    let report = cycle(&engine).await;
    assert!(report.error.is_some(), "{report:?}");
    let health = get(addr, "/healthz").await;
    assert_eq!(health.status, 503, "{}", health.body);
    assert!(
        health.body.contains("the UCServer cannot be used since"),
        "{}",
        health.body
    );
    let m = metrics(addr).await;
    assert_eq!(
        value(&m, "ews_replicator_server_up", &[("server", "ucserver")]),
        0.0
    );
    assert_eq!(
        value(&m, "ews_replicator_cycles_total", &[("outcome", "failed")]),
        1.0
    );
}

#[tokio::test]
async fn only_get_is_served_and_a_huge_request_head_is_refused() {
    let monitor = Arc::new(Monitor::new(Duration::from_secs(900)));
    let server = MonitoringServer::start(([127, 0, 0, 1], 0).into(), monitor)
        .await
        .unwrap();
    let addr = server.local_addr();
    let post = parse_answer(
        &exchange_raw(
            addr,
            b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd",
        )
        .await,
    );
    assert_eq!(post.status, 405);
    assert!(
        post.head.to_ascii_lowercase().contains("allow: get"),
        "{}",
        post.head
    );
    assert_eq!(get(addr, "/nothing-here").await.status, 404);
    // A 1 MiB header: refused (431) without reading it all.
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(1024 * 1024)
    );
    let answer = exchange_raw(addr, huge.as_bytes()).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{}",
        &answer[..answer.len().min(200)]
    );
    // The server still serves afterwards.
    assert_eq!(get(addr, "/healthz").await.status, 200);
}

/// Headless Chromium from Debian's package; the tests fail without it.
fn chromium() -> &'static str {
    let found = std::process::Command::new("chromium")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "chromium is missing: install it with `apt-get install chromium` (scripts/install-test-packages.sh does)"
    );
    "chromium"
}

/// Runs headless Chromium on `url` with `args`; its standard output.
async fn headless(profile: &Path, args: &[&str], url: &str) -> String {
    let mut command = tokio::process::Command::new(chromium());
    command
        .arg("--headless")
        .arg("--no-sandbox")
        .arg("--disable-gpu")
        .arg("--no-first-run")
        .arg("--hide-scrollbars")
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(180), command.output())
        .await
        .expect("chromium finishes")
        .expect("chromium runs");
    assert!(output.status.success(), "chromium: {}", text(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn run_serves_the_status_page_in_chromium_and_no_endpoint_shows_a_subject() {
    let lab = Lab::start_with(LabOptions {
        static_directory: true,
        ..LabOptions::default()
    })
    .await;
    let offline = lab.offline();
    // One calendar carries the planted subject (written to the UCServer);
    // two mailboxes are gone from Exchange: the same failure, grouped, with
    // Exchange's `<>SMTP:` text that the page must escape.
    plant_subject(&lab, &offline[0].email);
    let gone = [offline[1], offline[2]];
    for user in gone {
        assert!(lab.exchange.remove_mailbox(&user.email));
    }
    let port = closed_port();
    lab.edit_config(|c| format!("{c}\n[monitoring]\nlisten = \"127.0.0.1:{port}\"\n"));
    let mut service = lab.spawn_service();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();

    // Wait for the first cycle to be counted.
    wait_for_answer(addr, "/metrics", &mut service, |raw| {
        raw.contains("ews_replicator_cycles_total{outcome=\"partial\"} 1")
    })
    .await;
    let planted_writes = lab
        .ucserver
        .appointments(&offline[0].user_name)
        .unwrap()
        .iter()
        .filter(|a| format!("{a:?}").contains(PLANTED_MARK))
        .count();
    assert_eq!(
        planted_writes, 1,
        "the planted subject reached the UCServer"
    );

    let m = metrics(addr).await;
    assert_eq!(
        value(
            &m,
            "ews_replicator_last_cycle_users",
            &[("result", "failed")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &m,
            "ews_replicator_last_cycle_users",
            &[("result", "written")]
        ),
        (offline.len() - 2) as f64
    );

    let health = get(addr, "/healthz").await;
    assert_eq!(health.status, 200, "{}", health.body);
    let page = get(addr, "/").await;
    assert_eq!(page.status, 200);
    assert!(
        page.head
            .to_ascii_lowercase()
            .contains("content-type: text/html"),
        "{}",
        page.head
    );
    for (endpoint, body) in [
        ("/metrics", get(addr, "/metrics").await.body),
        ("/healthz", health.body.clone()),
        ("/", page.body.clone()),
    ] {
        assert!(
            !body.contains(PLANTED_MARK) && !body.contains(PRIVATE_MARKER),
            "{endpoint} shows an appointment subject:\n{body}"
        );
    }

    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{addr}/");
    let dom = headless(profile.path(), &["--dump-dom"], &url).await;
    assert!(dom.contains("<h2>Service</h2>"), "{dom}");
    assert!(
        dom.contains("Healthy: ok: the last cycle finished"),
        "{dom}"
    );
    assert!(dom.contains("http-equiv=\"refresh\""), "{dom}");
    for server in ["UCServer", "directory", "Exchange"] {
        assert!(
            dom.contains(&format!("<td>{server}</td><td class=\"ok\">reachable</td>")),
            "{server}: {dom}"
        );
    }
    assert!(dom.contains("<td class=\"unknown\">partial</td>"), "{dom}");
    // The two missing mailboxes are one group, Exchange's `<>` escaped.
    assert!(dom.contains("<h3>2 users: "), "{dom}");
    assert!(dom.contains("&lt;&gt;SMTP:&lt;mailbox&gt;"), "{dom}");
    for user in gone {
        assert!(
            dom.contains(&format!("<li>{}</li>", user.user_name)),
            "{dom}"
        );
    }
    assert!(!dom.contains("<script"), "{dom}");
    assert!(!dom.contains(PLANTED_MARK), "{dom}");

    let shot = profile.path().join("page.png");
    headless(
        profile.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1024,768",
        ],
        &url,
    )
    .await;
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((frame.width, frame.height), (1024, 768));
    let pixels = &pixels[..frame.buffer_size()];
    let step = frame.color_type.samples() * usize::from(frame.bit_depth as u8).div_ceil(8);
    let first = &pixels[..step];
    let distinct = pixels
        .chunks(step)
        .filter(|p| *p != first)
        .take(1000)
        .count();
    assert!(distinct >= 1000, "the screenshot is (nearly) one colour");

    send_signal(service.id().unwrap(), "TERM");
    let output = tokio::time::timeout(Duration::from_secs(60), service.wait_with_output())
        .await
        .expect("the service stops after SIGTERM")
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
}

/// Log lines written while the test's subscriber is the default.
#[derive(Clone, Default)]
struct CapturedLog(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_non_loopback_address_is_served_with_a_warning_and_loopback_without() {
    let log = CapturedLog::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);
    let monitor = Arc::new(Monitor::new(Duration::from_secs(900)));

    let loopback = MonitoringServer::start(([127, 0, 0, 1], 0).into(), monitor.clone())
        .await
        .unwrap();
    assert_eq!(get(loopback.local_addr(), "/healthz").await.status, 200);
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(!text.contains("WARN"), "{text}");

    let everywhere = MonitoringServer::start(([0, 0, 0, 0], 0).into(), monitor)
        .await
        .unwrap();
    let port = everywhere.local_addr().port();
    assert_eq!(
        get(([127, 0, 0, 1], port).into(), "/healthz").await.status,
        200
    );
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("WARN") && text.contains("is not a loopback address"),
        "{text}"
    );
}

#[tokio::test]
async fn run_with_the_ucserver_down_at_start_answers_503_naming_it() {
    let lab = Lab::start_with(LabOptions {
        static_directory: true,
        ..LabOptions::default()
    })
    .await;
    let url = lab.ucserver.base_url().to_string();
    let closed = format!("http://127.0.0.1:{}/", closed_port());
    let port = closed_port();
    lab.edit_config(|c| {
        format!(
            "{}\n[monitoring]\nlisten = \"127.0.0.1:{port}\"\n",
            c.replace(&url, &closed)
        )
    });
    let mut service = lab.spawn_service();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let last = wait_for_answer(addr, "/healthz", &mut service, |raw| {
        raw.starts_with("HTTP/1.1 503")
    })
    .await;
    assert!(last.starts_with("HTTP/1.1 503"), "{last}");
    assert!(last.contains("the UCServer cannot be used since"), "{last}");
    let page = get(addr, "/").await;
    assert!(
        page.body
            .contains("<td>UCServer</td><td class=\"bad\">unreachable</td>"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("starting: no cycle has run yet"),
        "{}",
        page.body
    );
    send_signal(service.id().unwrap(), "TERM");
    let output = tokio::time::timeout(Duration::from_secs(60), service.wait_with_output())
        .await
        .expect("the service stops after SIGTERM")
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
}
