//! The HTTP endpoints on a real socket (hyper, HTTP/1.1): `/metrics`,
//! `/healthz` and `/`. GET only, no keep-alive, bounded: a request's head
//! may be at most 16 KiB and must arrive within 10 s, a connection lasts
//! at most 30 s, and at most 16 are served at once (more are closed).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::monitor::Monitor;
use super::page;

/// The largest request head read (hyper's buffer; its minimum is 8 KiB).
const MAX_REQUEST_HEAD_BYTES: usize = 16 * 1024;
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_CONNECTIONS: usize = 16;

/// OpenMetrics, which prometheus-client writes and Prometheus reads.
const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The running endpoints; they stop when this is dropped.
pub struct MonitoringServer {
    addr: SocketAddr,
    accept_task: JoinHandle<()>,
}

impl MonitoringServer {
    /// Binds `listen` and serves `monitor`. A non-loopback address is
    /// served, with a warning: the page names users and failure reasons
    /// (never passwords or appointments) to anyone who can connect.
    pub async fn start(
        listen: SocketAddr,
        monitor: Arc<Monitor>,
    ) -> Result<MonitoringServer, String> {
        let listener = TcpListener::bind(listen).await.map_err(|e| {
            format!(
                "monitoring.listen: cannot listen on {listen} ({e}); choose a free port or remove the key to run without the endpoints"
            )
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("monitoring.listen: {listen}: {e}"))?;
        if !addr.ip().is_loopback() {
            tracing::warn!(
                "monitoring.listen = {addr} is not a loopback address: /metrics and the status page (user names, failure reasons; no passwords or appointments) can be read by anyone who reaches this port, without authentication; restrict it with a firewall, or listen on 127.0.0.1 behind a reverse proxy"
            );
        }
        tracing::info!("monitoring: http://{addr}/metrics, /healthz and the status page at /");
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let accept_task = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of descriptors and the like: wait, do not spin.
                        tracing::debug!("monitoring: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::debug!(%peer, "monitoring: too many connections; closing this one");
                    continue;
                };
                let monitor = monitor.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let monitor = monitor.clone();
                        async move { Ok::<_, Infallible>(respond(&monitor, &request)) }
                    });
                    let connection = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEAD_TIMEOUT)
                        .max_buf_size(MAX_REQUEST_HEAD_BYTES)
                        .keep_alive(false)
                        .serve_connection(TokioIo::new(tcp), service);
                    if tokio::time::timeout(CONNECTION_TIMEOUT, connection)
                        .await
                        .is_err()
                    {
                        tracing::debug!(%peer, "monitoring: connection closed after {CONNECTION_TIMEOUT:?}");
                    }
                    drop(slot);
                });
            }
        });
        Ok(MonitoringServer { addr, accept_task })
    }

    /// The address bound (the port, when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MonitoringServer {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

fn response(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_str(content_type)
            .unwrap_or(header::HeaderValue::from_static("text/plain")),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    headers.insert(
        "x-content-type-options",
        header::HeaderValue::from_static("nosniff"),
    );
    // The page has no script; forbid any that markup might smuggle in.
    headers.insert(
        "content-security-policy",
        header::HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    response
}

fn respond(monitor: &Monitor, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET {
        let mut r = response(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "only GET is served here\n".to_owned(),
        );
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET"));
        return r;
    }
    match request.uri().path() {
        "/metrics" => response(
            StatusCode::OK,
            METRICS_CONTENT_TYPE,
            monitor.encode_metrics(),
        ),
        "/healthz" => match monitor.health() {
            Ok(text) => response(StatusCode::OK, "text/plain; charset=utf-8", text + "\n"),
            Err(reason) => response(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain; charset=utf-8",
                reason + "\n",
            ),
        },
        "/" => response(
            StatusCode::OK,
            "text/html; charset=utf-8",
            page::render(&monitor.snapshot()),
        ),
        _ => response(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: the endpoints are /metrics, /healthz and /\n".to_owned(),
        ),
    }
}
