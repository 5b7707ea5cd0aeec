//! How ROSE messages reach the UCServer. [`RoseTransport::open`] yields an
//! authenticated channel of JSON texts; the client above it knows nothing of
//! HTTP or WebSockets. [`WebSocketTransport`] is the UCServer web service
//! (createsession + WebSocket); a raw TCP transport (port 7222, see
//! [`super::framing`]) can implement the same trait.

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use url::Url;

use super::error::UcError;
use super::settings::{UcServerSettings, CLIENT_APP_ID, CLIENT_PROTOCOL_VERSION};

/// Longest createsession answer read: the UCServer answers with a short
/// JSON object (`{"sessionid": "..."}` or an error of a few hundred bytes),
/// so anything longer is not a UCServer and is cut off here.
pub const MAX_CREATESESSION_BODY: usize = 16 * 1024;

/// Outgoing half of a ROSE channel: one JSON text per message. The
/// transports zero each text once it is written (the admin login carries the
/// password); each says which copies below it remain.
pub type MessageSink = Pin<Box<dyn Sink<String, Error = UcError> + Send>>;
/// Incoming half of a ROSE channel; ends when the peer closes.
pub type MessageStream = Pin<Box<dyn Stream<Item = Result<String, UcError>> + Send>>;

/// Opens authenticated ROSE channels to the UCServer.
pub trait RoseTransport: Send + Sync + 'static {
    /// A new channel with a fresh session (called again after every drop).
    fn open(&self) -> BoxFuture<'_, Result<(MessageSink, MessageStream), UcError>>;
}

/// A byte stream to the server, plain or TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The UCServer web service: `POST /ws/client/createsession`, then the
/// WebSocket `/ws/client/websocket?x-ucsessionid=<id>`.
pub struct WebSocketTransport {
    settings: UcServerSettings,
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// What every transport checks first: valid settings whose URL has one of
/// `schemes` (else the error says the URL is not `expected`), and the TLS
/// configuration (with `ca_file`) when the scheme is `tls_scheme`.
pub(crate) fn checked_tls<const N: usize>(
    settings: &UcServerSettings,
    schemes: [&str; N],
    tls_scheme: &str,
    expected: &str,
) -> Result<Option<Arc<rustls::ClientConfig>>, UcError> {
    settings.validate()?;
    let scheme = settings.base_url.scheme();
    if !schemes.contains(&scheme) {
        return Err(UcError::InvalidSettings(format!(
            "{} is not {expected}",
            settings.base_url
        )));
    }
    Ok(if scheme == tls_scheme {
        Some(ews_toolkit::tls::client_config(
            settings.ca_file.as_deref(),
        )?)
    } else {
        None
    })
}

/// A TCP connection to `host` (a URL host, IPv6 in brackets) and `port`.
pub(crate) async fn connect_tcp(host: &str, port: u16) -> Result<TcpStream, UcError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let tcp = TcpStream::connect((bare, port))
        .await
        .map_err(|e| UcError::Connect {
            address: format!("{host}:{port}"),
            reason: e.to_string(),
        })?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

/// The TLS handshake on `tcp`, verifying the certificate for `host`.
pub(crate) async fn tls_handshake(
    config: &Arc<rustls::ClientConfig>,
    host: &str,
    tcp: TcpStream,
) -> Result<Box<dyn Io>, UcError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(bare.to_owned()).map_err(|e| {
        UcError::InvalidSettings(format!("{bare:?} is not a valid TLS server name: {e}"))
    })?;
    let tls = tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| UcError::TlsHandshake(ews_toolkit::tls::explain_handshake_error(bare, &e)))?;
    Ok(Box::new(tls))
}

/// `text` as bytes that are zeroed when the last reference to them is
/// dropped, for messages handed to a library that takes ownership.
fn wiped_on_drop(text: String) -> Bytes {
    Bytes::from_owner(zeroize::Zeroizing::new(text.into_bytes()))
}

impl WebSocketTransport {
    pub fn new(settings: &UcServerSettings) -> Result<Self, UcError> {
        let tls = checked_tls(
            settings,
            ["http", "https"],
            "https",
            "a web-service URL; use https://host:7225 (or http://host:7224)",
        )?;
        Ok(WebSocketTransport {
            settings: settings.clone(),
            tls,
        })
    }

    fn host(&self) -> &str {
        self.settings.base_url.host_str().unwrap_or_default()
    }

    fn port(&self) -> u16 {
        self.settings.base_url.port_or_known_default().unwrap_or(80)
    }

    async fn connect_stream(&self) -> Result<Box<dyn Io>, UcError> {
        let tcp = connect_tcp(self.host(), self.port()).await?;
        match &self.tls {
            None => Ok(Box::new(tcp)),
            Some(config) => tls_handshake(config, self.host(), tcp).await,
        }
    }

    /// `POST /ws/client/createsession`: the session id.
    async fn create_session(&self) -> Result<String, UcError> {
        let settings = &self.settings;
        let io = self.connect_stream().await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| self.http_error(e))?;
        let connection = tokio::spawn(connection);
        // The header value is built in place and zeroed when hyper drops it;
        // hyper's write buffer (and rustls's, over TLS) keep a copy until
        // reused.
        let credentials =
            super::native::basic_credential(&settings.admin_user, settings.admin_password.expose());
        let mut header = zeroize::Zeroizing::new(Vec::with_capacity(
            "Basic ".len() + credentials.expose().len(),
        ));
        header.extend_from_slice(b"Basic ");
        header.extend_from_slice(credentials.expose().as_bytes());
        let mut authorization = http::HeaderValue::from_maybe_shared(Bytes::from_owner(header))
            .map_err(|e| {
                UcError::InvalidSettings(format!(
                    "the UCServer user name cannot be sent in an HTTP header: {e}"
                ))
            })?;
        authorization.set_sensitive(true);
        let body =
            format!("{{\"negotiate\":{{\"iClientProtocolVersion\":{CLIENT_PROTOCOL_VERSION}}}}}");
        let mut request = http::Request::post(format!(
            "/ws/client/createsession?clientappid={CLIENT_APP_ID}"
        ))
        .header(
            http::header::HOST,
            format!("{}:{}", self.host(), self.port()),
        )
        .header(http::header::AUTHORIZATION, authorization)
        .header(http::header::CONTENT_TYPE, "application/json;charset=utf-8")
        .header("X-no401", "1")
        .header("X-simple", "1");
        // The headers of the documented request (ucws-wsclient.txt:9-14).
        if let Some(ucsid) = settings.ucsid.as_deref().filter(|u| !u.is_empty()) {
            request = request.header("X-ucsid", ucsid);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| UcError::InvalidSettings(format!("cannot build createsession: {e}")))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| self.http_error(e))?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_CREATESESSION_BODY)
            .collect()
            .await;
        connection.abort();
        let body = match body {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(UcError::Protocol {
                    operation: "createsession",
                    reason: format!(
                        "the answer (HTTP {status}) is longer than {MAX_CREATESESSION_BODY} bytes; a UCServer answers with a short JSON object: check that ucserver.url names the UCServer web service"
                    ),
                })
            }
            Err(e) => {
                return Err(UcError::Connect {
                    address: format!("{}:{}", self.host(), self.port()),
                    reason: format!("HTTP: {e}"),
                })
            }
        };
        self.session_from_response(status, &body)
    }

    fn http_error(&self, e: hyper::Error) -> UcError {
        UcError::Connect {
            address: format!("{}:{}", self.host(), self.port()),
            reason: format!("HTTP: {e}"),
        }
    }

    fn session_from_response(&self, status: u16, body: &[u8]) -> Result<String, UcError> {
        #[derive(Deserialize)]
        struct Success {
            sessionid: String,
        }
        #[derive(Deserialize)]
        struct Failure {
            error: FailureDetail,
        }
        #[derive(Deserialize)]
        struct FailureDetail {
            #[serde(rename = "iErrorDetail", default)]
            detail: i64,
            #[serde(rename = "u8sErrorString", default)]
            message: String,
        }
        let text = String::from_utf8_lossy(body);
        if status == 200 {
            return serde_json::from_slice::<Success>(body)
                .map(|s| s.sessionid)
                .map_err(|e| UcError::Protocol {
                    operation: "createsession",
                    reason: format!(
                        "expected {{\"sessionid\": ...}}: {}",
                        ews_toolkit::server_text::sanitized(&e.to_string())
                    ),
                });
        }
        let failure = serde_json::from_slice::<Failure>(body).ok();
        let message = failure
            .as_ref()
            .map(|f| f.error.message.clone())
            .unwrap_or_else(|| text.chars().take(200).collect());
        let message = ews_toolkit::server_text::sanitized(&message);
        match (status, failure) {
            (400, Some(f)) => Err(UcError::LogonFailed {
                user: self.settings.admin_user.clone(),
                detail: f.error.detail,
                message,
            }),
            (502, _) => Err(UcError::UnknownUcsid {
                ucsid: self.settings.ucsid.clone().unwrap_or_default(),
                message,
            }),
            _ => Err(UcError::SessionRefused { status, message }),
        }
    }

    fn websocket_url(&self, session_id: &str) -> Result<Url, UcError> {
        let mut url = self
            .settings
            .base_url
            .join("ws/client/websocket")
            .map_err(|e| UcError::InvalidSettings(e.to_string()))?;
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        url.set_scheme(scheme)
            .map_err(|()| UcError::InvalidSettings("cannot form the WebSocket URL".into()))?;
        url.query_pairs_mut()
            .append_pair("x-ucsessionid", session_id);
        Ok(url)
    }

    async fn open_channel(&self) -> Result<(MessageSink, MessageStream), UcError> {
        let session_id = self.create_session().await?;
        let url = self.websocket_url(&session_id)?;
        let io = self.connect_stream().await?;
        let (socket, _response) = tokio_tungstenite::client_async(url.as_str(), io)
            .await
            .map_err(|e| UcError::WebSocket(format!("handshake: {e}")))?;
        let (sink, stream) = socket.split();
        let sink = sink
            .sink_map_err(|e| UcError::WebSocket(e.to_string()))
            // The text is zeroed when tungstenite drops the message; its
            // frame buffer (and rustls's record buffer under wss) keep a
            // copy until reused.
            .with(|text: String| async move {
                let text = Utf8Bytes::try_from(wiped_on_drop(text))
                    .map_err(|e| UcError::WebSocket(format!("message is not UTF-8: {e}")))?;
                Ok::<_, UcError>(Message::Text(text))
            });
        let stream = stream.filter_map(|item| async move {
            match item {
                Ok(Message::Text(text)) => Some(Ok(text.as_str().to_owned())),
                Ok(Message::Binary(_)) => Some(Err(UcError::WebSocket(
                    "binary frame received; this client speaks the JSON encoding only".into(),
                ))),
                // Pings are answered by tungstenite; a close ends the stream.
                Ok(_) => None,
                Err(e) => Some(Err(UcError::WebSocket(e.to_string()))),
            }
        });
        Ok((Box::pin(sink), Box::pin(stream)))
    }
}

impl RoseTransport for WebSocketTransport {
    fn open(&self) -> BoxFuture<'_, Result<(MessageSink, MessageStream), UcError>> {
        Box::pin(async move {
            let timeout = self.settings.connect_timeout;
            match tokio::time::timeout(timeout, self.open_channel()).await {
                Ok(result) => result,
                Err(_) => Err(UcError::Connect {
                    address: self.settings.base_url.to_string(),
                    reason: format!("no session within {timeout:?}"),
                }),
            }
        })
    }
}
