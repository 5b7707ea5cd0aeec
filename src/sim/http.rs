//! A small HTTP/1.1 server on loopback for the simulators and tests: TLS
//! (from [`super::tls`]) or plain, authentication by [`super::auth`] kept per
//! connection (so NTLM authenticates the connection, as with IIS), and a
//! handler that gets the authenticated user and the whole request body.
//!
//! A handler may break its own response for fault-injection tests by putting
//! a [`ResponseFault`] into the response's extensions, and may stream its
//! response (chunked, frame by frame, for as long as it likes) by putting a
//! [`ResponseStream`] there.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::auth::{AuthOutcome, Authenticator};

/// Largest request body the server reads (EWS requests are small).
pub const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

/// What a handler gets: the request with its whole body, and who sent it
/// (`None` when the server runs without an authenticator).
#[derive(Debug)]
pub struct ServerRequest {
    pub request: http::Request<Bytes>,
    pub user: Option<String>,
}

/// A running server; stops accepting when dropped.
pub struct SimHttpServer {
    addr: SocketAddr,
    accept_task: JoinHandle<()>,
    stats: Arc<ServerStats>,
}

#[derive(Debug, Default)]
struct ServerStats {
    connections: AtomicU64,
    requests: AtomicU64,
}

impl SimHttpServer {
    /// Listens on `bind` (e.g. `127.0.0.1:0`) and serves every connection
    /// with `handler`, over TLS when `tls` is given, after `auth` (when given)
    /// allowed the request.
    pub async fn start<H, F>(
        bind: &str,
        tls: Option<Arc<rustls::ServerConfig>>,
        auth: Option<Arc<Authenticator>>,
        handler: H,
    ) -> std::io::Result<SimHttpServer>
    where
        H: Fn(ServerRequest) -> F + Send + Sync + 'static,
        F: Future<Output = http::Response<Bytes>> + Send + 'static,
    {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(ServerStats::default());
        let handler = Arc::new(handler);
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let accept_stats = stats.clone();
        let accept_task = tokio::spawn(async move {
            while let Ok((tcp, _peer)) = listener.accept().await {
                accept_stats.connections.fetch_add(1, Ordering::Relaxed);
                let handler = handler.clone();
                let auth = auth.clone();
                let acceptor = acceptor.clone();
                let stats = accept_stats.clone();
                tokio::spawn(async move {
                    serve_connection(tcp, acceptor, auth, handler, stats).await;
                });
            }
        });
        Ok(SimHttpServer {
            addr,
            accept_task,
            stats,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.stats.connections.load(Ordering::Relaxed)
    }

    /// Requests received so far (authenticated or not).
    pub fn requests(&self) -> u64 {
        self.stats.requests.load(Ordering::Relaxed)
    }
}

impl Drop for SimHttpServer {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

async fn serve_connection<H, F>(
    tcp: TcpStream,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    auth: Option<Arc<Authenticator>>,
    handler: Arc<H>,
    stats: Arc<ServerStats>,
) where
    H: Fn(ServerRequest) -> F + Send + Sync + 'static,
    F: Future<Output = http::Response<Bytes>> + Send + 'static,
{
    let _ = tcp.set_nodelay(true);
    let is_tls = acceptor.is_some();
    let connection_auth = Arc::new(Mutex::new(auth.as_ref().map(|a| a.new_connection(is_tls))));
    let service = service_fn(move |request: http::Request<Incoming>| {
        let handler = handler.clone();
        let auth = auth.clone();
        let connection_auth = connection_auth.clone();
        let stats = stats.clone();
        async move {
            stats.requests.fetch_add(1, Ordering::Relaxed);
            let mut response = handle(request, auth, connection_auth, handler).await;
            let fault = response.extensions_mut().remove::<ResponseFault>();
            let stream = response.extensions_mut().remove::<ResponseStream>();
            SimBody::for_response(response, fault, stream)
        }
    });
    let builder = hyper::server::conn::http1::Builder::new();
    match acceptor {
        Some(acceptor) => {
            // A failed handshake (e.g. a client that does not trust the CA)
            // just ends the connection.
            if let Ok(stream) = acceptor.accept(tcp).await {
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            }
        }
        None => {
            let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
        }
    }
}

async fn handle<H, F>(
    request: http::Request<Incoming>,
    auth: Option<Arc<Authenticator>>,
    connection_auth: Arc<Mutex<Option<super::auth::ConnectionAuth>>>,
    handler: Arc<H>,
) -> http::Response<Bytes>
where
    H: Fn(ServerRequest) -> F + Send + Sync + 'static,
    F: Future<Output = http::Response<Bytes>> + Send + 'static,
{
    let (parts, body) = request.into_parts();
    // Read the body first, also for requests that will get a 401: the
    // connection must stay usable for the next step of an NTLM handshake.
    let body = match Limited::new(body, MAX_REQUEST_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return plain_response(
                http::StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large",
            )
        }
    };
    let user = match &auth {
        None => None,
        Some(auth) => {
            let outcome = {
                let mut state = connection_auth.lock().expect("connection auth lock");
                let state = state.get_or_insert_with(|| auth.new_connection(false));
                auth.authenticate(state, parts.headers.get(http::header::AUTHORIZATION))
            };
            match outcome {
                AuthOutcome::Allowed { user } => Some(user),
                AuthOutcome::Unauthorized {
                    www_authenticate, ..
                } => {
                    let mut response = plain_response(
                        http::StatusCode::UNAUTHORIZED,
                        "401 - Unauthorized: Access is denied due to invalid credentials.",
                    );
                    for value in www_authenticate {
                        response
                            .headers_mut()
                            .append(http::header::WWW_AUTHENTICATE, value);
                    }
                    return response;
                }
            }
        }
    };
    let request = http::Request::from_parts(parts, body);
    handler(ServerRequest { request, user }).await
}

/// A deliberately broken response, for tests of a client's error handling:
/// a handler inserts one into its response's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFault {
    /// Close the connection without sending any response.
    CloseConnection,
    /// Announce the whole body (`Content-Length`), send only its first
    /// `bytes`, then close the connection.
    TruncateBody { bytes: usize },
    /// Send the body in pieces of `chunk` bytes with `delay` between them.
    SlowBody { chunk: usize, delay: Duration },
}

/// One piece of a streamed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamFrame {
    /// Bytes to send as they are (one HTTP/1.1 chunk).
    Data(Bytes),
    /// Abort the response here: the connection is closed without the final
    /// chunk, as when a server or a load balancer in between drops it.
    Cut,
}

/// A streamed response body: a handler puts one into its response's
/// extensions, and the server sends the response's own body first, then
/// every [`StreamFrame`] as it arrives, with `Transfer-Encoding: chunked`.
/// The response ends (with the final chunk) when every sender is dropped.
/// When the client goes away the receiver is dropped, which the handler's
/// sender sees (`UnboundedSender::closed`).
#[derive(Debug)]
pub struct ResponseStream(pub tokio::sync::mpsc::UnboundedReceiver<StreamFrame>);

impl Clone for ResponseStream {
    /// Extensions must be `Clone`; a receiver cannot be shared, so the clone
    /// is an already-ended stream (the server never clones responses).
    fn clone(&self) -> Self {
        ResponseStream(tokio::sync::mpsc::unbounded_channel().1)
    }
}

/// The response body the server sends: whole, cut short, trickled or
/// streamed.
struct SimBody {
    data: Bytes,
    sent: usize,
    /// Bytes to send before ending (or failing, when `truncated`).
    limit: usize,
    truncated: bool,
    chunk: usize,
    delay: Duration,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Frames sent after `data`, until the senders are gone.
    stream: Option<tokio::sync::mpsc::UnboundedReceiver<StreamFrame>>,
}

impl SimBody {
    fn for_response(
        response: http::Response<Bytes>,
        fault: Option<ResponseFault>,
        stream: Option<ResponseStream>,
    ) -> Result<http::Response<SimBody>, std::io::Error> {
        let (parts, data) = response.into_parts();
        let len = data.len();
        let mut body = SimBody {
            data,
            sent: 0,
            limit: len,
            truncated: false,
            chunk: len.max(1),
            delay: Duration::ZERO,
            pause: None,
            stream: None,
        };
        match fault {
            None => {}
            // An error from the service makes hyper drop the connection
            // without writing a response.
            Some(ResponseFault::CloseConnection) => {
                return Err(std::io::Error::other(
                    "connection closed by fault injection",
                ))
            }
            Some(ResponseFault::TruncateBody { bytes }) => {
                body.limit = bytes.min(len);
                body.truncated = true;
            }
            Some(ResponseFault::SlowBody { chunk, delay }) => {
                body.chunk = chunk.max(1);
                body.delay = delay;
            }
        }
        // A broken response is not streamed: dropping the receiver tells the
        // handler its client is gone.
        if !body.truncated {
            body.stream = stream.map(|s| s.0);
        }
        Ok(http::Response::from_parts(parts, body))
    }
}

impl Body for SimBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        if let Some(pause) = this.pause.as_mut() {
            if pause.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.pause = None;
        }
        if this.sent >= this.limit {
            if let Some(stream) = this.stream.as_mut() {
                return match stream.poll_recv(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Some(StreamFrame::Data(bytes))) => {
                        Poll::Ready(Some(Ok(Frame::data(bytes))))
                    }
                    // An error from the body makes hyper close the connection
                    // without the final chunk.
                    Poll::Ready(Some(StreamFrame::Cut)) => {
                        this.stream = None;
                        this.truncated = true;
                        Poll::Ready(Some(Err(std::io::Error::other(
                            "stream cut by the simulator",
                        ))))
                    }
                    Poll::Ready(None) => {
                        this.stream = None;
                        Poll::Ready(None)
                    }
                };
            }
            if this.truncated {
                // Failing the body makes hyper abort the connection short of
                // the announced length.
                return Poll::Ready(Some(Err(std::io::Error::other(
                    "body truncated by fault injection",
                ))));
            }
            return Poll::Ready(None);
        }
        let end = (this.sent + this.chunk).min(this.limit);
        let frame = this.data.slice(this.sent..end);
        this.sent = end;
        if !this.delay.is_zero() && this.sent < this.limit {
            this.pause = Some(Box::pin(tokio::time::sleep(this.delay)));
        }
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        !self.truncated && self.stream.is_none() && self.sent >= self.limit
    }

    fn size_hint(&self) -> SizeHint {
        if self.stream.is_some() {
            // No exact length: hyper sends HTTP/1.1 chunked.
            SizeHint::default()
        } else {
            SizeHint::with_exact(self.data.len() as u64)
        }
    }
}

/// A `text/plain` response.
pub fn plain_response(status: http::StatusCode, text: &str) -> http::Response<Bytes> {
    let mut response = http::Response::new(Bytes::from(text.to_owned()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
