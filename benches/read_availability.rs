//! End-to-end throughput of `AvailabilityReader` against the Exchange
//! simulator over TLS with NTLM: 1000 mailboxes × 10 events over 14 days,
//! at concurrency 1, 4 and 8, with 20 ms simulated latency per request, then
//! with the server limited to 2 concurrent requests (answering `ErrorServerBusy`
//! with a 50 ms back-off beyond it) to show what throttling costs.
//!
//! ```text
//! cargo bench --bench read_availability
//! ```
//!
//! Reported per run: wall time, mailboxes/s, requests sent, retries, busy
//! answers (the reader's counters) and the simulator's peak concurrency. Each
//! run's result is checked first: every mailbox read.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use ews_toolkit::sim::exchange::{BusyMode, ExchangeSim, ExchangeSimConfig, Permission};
use ews_toolkit::transport::{AuthScheme, Credentials, HttpTransport, TransportConfig};
use ews_toolkit::{AvailabilityReader, AvailabilityReaderConfig, EwsClient, ResilienceConfig};

const MAILBOXES: usize = 1000;
const EVENTS: usize = 10;
const PASSWORD: &str = "Passw0rd!";

struct Run {
    label: &'static str,
    concurrency: usize,
    server_limit: Option<usize>,
}

#[tokio::main]
async fn main() {
    let mut config = ExchangeSimConfig::generated(MAILBOXES, EVENTS, 42);
    for mailbox in &mut config.mailboxes {
        mailbox.permission = Permission::Details;
    }
    config.knobs.request_latency = Duration::from_millis(20);
    config.knobs.busy_mode = BusyMode::SoapFault { back_off_ms: 50 };
    let sim = ExchangeSim::start(config).await.expect("simulator starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let ca_file = dir.path().join("ca.pem");
    sim.write_ca_pem(&ca_file).expect("CA written");
    let mailboxes: Vec<String> = sim.mailboxes().into_iter().map(|m| m.smtp).collect();

    let runs = [
        Run {
            label: "concurrency 1",
            concurrency: 1,
            server_limit: None,
        },
        Run {
            label: "concurrency 4",
            concurrency: 4,
            server_limit: None,
        },
        Run {
            label: "concurrency 8",
            concurrency: 8,
            server_limit: None,
        },
        Run {
            label: "concurrency 8, server limit 2",
            concurrency: 8,
            server_limit: Some(2),
        },
    ];
    println!(
        "{:<32} {:>9} {:>12} {:>9} {:>8} {:>6} {:>10}",
        "run", "wall ms", "mailboxes/s", "requests", "retries", "busy", "sim peak"
    );
    for run in runs {
        sim.update_knobs(|k| k.max_concurrent_requests = run.server_limit);
        sim.reset_counters();
        let transport = HttpTransport::new(
            TransportConfig {
                ca_file: Some(ca_file.clone()),
                ..TransportConfig::default()
            },
            Some(Credentials::new("CONTOSO\\svc-calendar", PASSWORD, AuthScheme::Ntlm).unwrap()),
        )
        .expect("transport");
        let client = EwsClient::new(Arc::new(transport), sim.ews_url())
            .with_resilience(ResilienceConfig {
                concurrency: run.concurrency,
                max_busy_retries: 1000,
                initial_back_off: Duration::from_millis(50),
                ..ResilienceConfig::default()
            })
            .expect("client");
        let reader = AvailabilityReader::new(
            Arc::new(client),
            AvailabilityReaderConfig {
                max_mailboxes_per_request: 50,
                ..AvailabilityReaderConfig::default()
            },
        )
        .expect("reader");
        let start = Utc::now();
        let end = start + chrono::Duration::days(14);
        let began = Instant::now();
        let results = reader.read(&mailboxes, start, end).await.expect("read");
        let wall = began.elapsed();
        assert_eq!(results.len(), MAILBOXES);
        assert!(
            results.iter().all(|r| r.result.is_ok()),
            "every mailbox read"
        );
        let stats = reader.stats();
        println!(
            "{:<32} {:>9} {:>12.0} {:>9} {:>8} {:>6} {:>10}",
            run.label,
            wall.as_millis(),
            MAILBOXES as f64 / wall.as_secs_f64(),
            stats.requests_sent,
            stats.retries,
            stats.busy_answers,
            sim.counters().peak_concurrent
        );
    }
}
