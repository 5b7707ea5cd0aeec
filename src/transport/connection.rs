//! One HTTP/1.1 connection (TLS or, when allowed, plain TCP) driven by
//! hyper's low-level client, so that an NTLM handshake and the request it
//! authenticates travel on the same socket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::{Origin, TransportError};

/// An open connection; `authenticated` is set once an NTLM handshake on it
/// succeeded (the server then treats every request on it as that user).
pub(crate) struct Connection {
    sender: SendRequest<Full<Bytes>>,
    /// DER of the server's leaf certificate (TLS only), for channel binding.
    pub(crate) leaf_certificate: Option<Vec<u8>>,
    pub(crate) authenticated: bool,
    /// Whether this connection already carried a request (a failure on a
    /// reused connection may just mean the server closed it while idle).
    pub(crate) reused: bool,
}

impl Connection {
    /// Connects to `origin`, at `address` instead of the host's DNS address
    /// when given.
    pub(crate) async fn open(
        origin: &Origin,
        address: Option<SocketAddr>,
        tls: &Arc<rustls::ClientConfig>,
        connect_timeout: Duration,
    ) -> Result<Connection, TransportError> {
        tokio::time::timeout(connect_timeout, Self::open_inner(origin, address, tls))
            .await
            .map_err(|_| TransportError::Timeout {
                host: origin.host.clone(),
                what: "connecting",
                setting: "connect timeout",
                after: connect_timeout,
            })?
    }

    async fn open_inner(
        origin: &Origin,
        address: Option<SocketAddr>,
        tls: &Arc<rustls::ClientConfig>,
    ) -> Result<Connection, TransportError> {
        let tcp = match address {
            Some(address) => TcpStream::connect(address).await,
            None => TcpStream::connect((origin.connect_host(), origin.port)).await,
        };
        let tcp = tcp.map_err(|e| TransportError::Connect {
            host: origin.host.clone(),
            port: origin.port,
            reason: match address {
                Some(address) => format!("{e} (connecting to {address}, the configured address)"),
                None => e.to_string(),
            },
        })?;
        // Small SOAP requests and handshake messages: don't wait for Nagle.
        let _ = tcp.set_nodelay(true);
        if !origin.tls {
            let sender = handshake(TokioIo::new(tcp), origin).await?;
            return Ok(Connection {
                sender,
                leaf_certificate: None,
                authenticated: false,
                reused: false,
            });
        }
        let server_name = rustls::pki_types::ServerName::try_from(origin.connect_host().to_owned())
            .map_err(|e| {
                TransportError::Config(format!("invalid host name {:?}: {e}", origin.host))
            })?;
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(server_name, tcp)
            .await
            .map_err(|e| TransportError::Tls {
                host: origin.host.clone(),
                message: crate::tls::explain_handshake_error(&origin.host, &e),
            })?;
        let leaf_certificate = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|cert| cert.as_ref().to_vec());
        let sender = handshake(TokioIo::new(stream), origin).await?;
        Ok(Connection {
            sender,
            leaf_certificate,
            authenticated: false,
            reused: false,
        })
    }

    /// Whether the connection can carry another request.
    pub(crate) fn is_open(&self) -> bool {
        !self.sender.is_closed()
    }

    /// Sends one request and returns the response head with its body unread.
    pub(crate) async fn send(
        &mut self,
        request: http::Request<Full<Bytes>>,
        host: &str,
    ) -> Result<http::Response<Incoming>, TransportError> {
        self.sender
            .ready()
            .await
            .map_err(|e| classify_hyper_error(&e, host))?;
        self.sender
            .send_request(request)
            .await
            .map_err(|e| classify_hyper_error(&e, host))
    }
}

async fn handshake<T>(
    io: TokioIo<T>,
    origin: &Origin,
) -> Result<SendRequest<Full<Bytes>>, TransportError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| classify_hyper_error(&e, &origin.host))?;
    tokio::spawn(async move {
        // Errors surface on the request side; the task only drives the socket.
        let _ = connection.await;
    });
    Ok(sender)
}

/// Reads the whole body, failing as soon as it exceeds `limit` bytes.
pub(crate) async fn read_body(
    body: Incoming,
    content_length: Option<u64>,
    limit: usize,
    host: &str,
) -> Result<Bytes, TransportError> {
    let too_large = || TransportError::BodyTooLarge {
        host: host.to_owned(),
        limit,
    };
    if content_length.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    let mut body = body;
    let mut collected = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| classify_hyper_error(&e, host))?;
        if let Ok(data) = frame.into_data() {
            if collected.len() + data.len() > limit {
                return Err(too_large());
            }
            collected.extend_from_slice(&data);
        }
    }
    Ok(collected.freeze())
}

/// Turns hyper's error into ours: resets and early closes are retryable,
/// malformed HTTP is not.
pub(crate) fn classify_hyper_error(err: &hyper::Error, host: &str) -> TransportError {
    let reason = error_chain(err);
    if err.is_parse() || err.is_parse_status() {
        return TransportError::Protocol {
            host: host.to_owned(),
            reason,
        };
    }
    TransportError::ConnectionReset {
        host: host.to_owned(),
        reason,
    }
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
