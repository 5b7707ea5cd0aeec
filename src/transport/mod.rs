//! HTTP transport of the EWS client: POST/GET over TLS (plain HTTP only when
//! allowed) with connect and request timeouts, a response size limit, and
//! NTLMv2 (MIC + channel binding), Negotiate or Basic authentication.
//!
//! NTLM authenticates a *connection*: the handshake and the request travel on
//! one HTTP/1.1 connection, which is then kept in a small per-host pool and
//! reused without a new handshake until the server answers 401 again.

mod channel_binding;
mod connection;
mod credentials;
mod error;
mod kerberos;
mod ntlm;
mod streaming;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use http_body_util::Full;
use tokio::sync::Semaphore;
use url::Url;

pub use channel_binding::{certificate_hash, tls_server_end_point, TLS_SERVER_END_POINT_PREFIX};
pub use credentials::{AuthScheme, Credentials, CredentialsError};
pub use error::TransportError;
pub use kerberos::{AuthMechanism, KerberosFailure, KerberosSettings};
pub use streaming::StreamingResponse;

use connection::{read_body, Connection};
use hyper::body::Incoming;
use ntlm::NtlmHandshake;

/// How the transport connects; every field has a sensible default.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Extra CA certificates (PEM) trusted besides the public roots.
    pub ca_file: Option<PathBuf>,
    /// Limit for TCP connect plus TLS handshake.
    pub connect_timeout: Duration,
    /// Limit for one whole exchange (authentication included).
    pub request_timeout: Duration,
    /// Largest response body accepted, in bytes.
    pub max_response_bytes: usize,
    /// Connections kept per host (and so requests in flight per host).
    pub max_connections_per_host: usize,
    /// Allow `http://` URLs (never needed against a real Exchange).
    pub allow_plain_http: bool,
    /// Allow Basic authentication over plain HTTP (sends the password readable).
    pub allow_basic_without_tls: bool,
    /// Send the `tls-server-end-point` channel binding with NTLM (needed
    /// where Extended Protection is on; harmless elsewhere).
    pub channel_binding: bool,
    pub user_agent: String,
    /// Fixed addresses used instead of DNS, like curl's `--connect-to`: a
    /// URL's (lower-case host, port) is connected at this address. The `Host`
    /// header and TLS (SNI, certificate name check) still use the URL's host.
    pub resolve: HashMap<(String, u16), SocketAddr>,
    /// KDC, realm, SPN and NTLM fallback for `Negotiate` and `Kerberos`.
    pub kerberos: KerberosSettings,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            ca_file: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(100),
            max_response_bytes: 64 * 1024 * 1024,
            max_connections_per_host: 8,
            allow_plain_http: false,
            allow_basic_without_tls: false,
            channel_binding: true,
            user_agent: concat!("ews-calendar-replicator/", env!("CARGO_PKG_VERSION")).to_owned(),
            resolve: HashMap::new(),
            kerberos: KerberosSettings::default(),
        }
    }
}

/// One request: method, absolute URL, headers, body.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// `false` sends no credentials at all (autodiscover's redirect probe).
    pub authenticate: bool,
}

impl HttpRequest {
    pub fn get(url: Url) -> Self {
        HttpRequest {
            method: Method::GET,
            url,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            authenticate: true,
        }
    }

    pub fn post(url: Url, content_type: &'static str, body: impl Into<Bytes>) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        HttpRequest {
            method: Method::POST,
            url,
            headers,
            body: body.into(),
            authenticate: true,
        }
    }

    /// A SOAP 1.1 POST: `Content-Type: text/xml; charset=utf-8` and `SOAPAction`.
    pub fn soap(
        url: Url,
        soap_action: &str,
        body: impl Into<Bytes>,
    ) -> Result<Self, TransportError> {
        let mut request = Self::post(url, "text/xml; charset=utf-8", body);
        let action = HeaderValue::from_str(&format!("\"{soap_action}\"")).map_err(|_| {
            TransportError::Config(format!(
                "SOAPAction {soap_action:?} is not a valid header value"
            ))
        })?;
        request
            .headers
            .insert(HeaderName::from_static("soapaction"), action);
        Ok(request)
    }

    /// Adds a header such as `X-AnchorMailbox`.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// Sends no credentials.
    pub fn anonymous(mut self) -> Self {
        self.authenticate = false;
        self
    }
}

/// A complete response; any status except a final 401 ends up here.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The host that answered (for error messages).
    pub host: String,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl HttpResponse {
    /// `Err(TransportError::Http)` unless the status is 2xx.
    pub fn error_for_status(self) -> Result<Self, TransportError> {
        if self.status.is_success() {
            return Ok(self);
        }
        let excerpt: String = String::from_utf8_lossy(&self.body)
            .chars()
            .take(300)
            .collect();
        let excerpt = crate::server_text::sanitized(&excerpt);
        Err(TransportError::Http {
            host: self.host,
            status: self.status,
            body_excerpt: excerpt,
        })
    }
}

/// Counters a test or diagnostics can read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportStats {
    pub connections_opened: u64,
    /// Completed NTLM handshakes (accepted or not).
    pub ntlm_handshakes: u64,
    /// Kerberos handshakes the server accepted with a verified token.
    pub kerberos_handshakes: u64,
    /// NTLM handshakes done because Kerberos could not start (`Negotiate`).
    pub ntlm_fallbacks: u64,
}

/// The HTTP client. Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub struct HttpTransport {
    inner: Arc<Inner>,
}

struct Inner {
    config: TransportConfig,
    credentials: Option<Credentials>,
    tls: Arc<rustls::ClientConfig>,
    pools: Mutex<HashMap<Origin, Arc<OriginPool>>>,
    connections_opened: AtomicU64,
    ntlm_handshakes: AtomicU64,
    kerberos_handshakes: AtomicU64,
    ntlm_fallbacks: AtomicU64,
    /// The mechanism of the last accepted handshake, and why Kerberos was
    /// not used when `Negotiate` fell back to NTLM.
    last_auth: Mutex<Option<(AuthMechanism, Option<KerberosFailure>)>>,
    /// Why Kerberos could not start, and when: `Negotiate` goes straight to
    /// NTLM for [`KERBEROS_FAILURE_MEMORY`] after it.
    kerberos_failure: Mutex<Option<(std::time::Instant, KerberosFailure)>>,
}

/// How long `Negotiate` skips Kerberos after it could not start.
const KERBEROS_FAILURE_MEMORY: Duration = Duration::from_secs(10 * 60);

/// Scheme, host and port: what a connection can be reused for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Origin {
    pub(crate) tls: bool,
    /// As in the URL (IPv6 in brackets); used for messages and `Host`.
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl Origin {
    fn of(url: &Url) -> Result<Origin, TransportError> {
        let tls = match url.scheme() {
            "https" => true,
            "http" => false,
            other => {
                return Err(TransportError::Config(format!(
                    "URL {url} has scheme {other:?}; only https:// (or http:// when allowed) is supported"
                )))
            }
        };
        let host = url
            .host_str()
            .ok_or_else(|| TransportError::Config(format!("URL {url} has no host")))?
            .to_owned();
        let port = url
            .port_or_known_default()
            .unwrap_or(if tls { 443 } else { 80 });
        Ok(Origin { tls, host, port })
    }

    /// The host without IPv6 brackets, for connecting and TLS SNI.
    pub(crate) fn connect_host(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }

    fn host_header(&self) -> String {
        let default_port = if self.tls { 443 } else { 80 };
        if self.port == default_port {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

struct OriginPool {
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Connection>>,
}

impl HttpTransport {
    /// `credentials` `None` sends requests anonymously.
    pub fn new(
        config: TransportConfig,
        credentials: Option<Credentials>,
    ) -> Result<Self, TransportError> {
        let tls = crate::tls::client_config(config.ca_file.as_deref())
            .map_err(|e| TransportError::Config(e.to_string()))?;
        if config.max_connections_per_host == 0 {
            return Err(TransportError::Config(
                "max_connections_per_host must be at least 1".to_owned(),
            ));
        }
        Ok(HttpTransport {
            inner: Arc::new(Inner {
                config,
                credentials,
                tls,
                pools: Mutex::new(HashMap::new()),
                connections_opened: AtomicU64::new(0),
                ntlm_handshakes: AtomicU64::new(0),
                kerberos_handshakes: AtomicU64::new(0),
                ntlm_fallbacks: AtomicU64::new(0),
                last_auth: Mutex::new(None),
                kerberos_failure: Mutex::new(None),
            }),
        })
    }

    pub fn config(&self) -> &TransportConfig {
        &self.inner.config
    }

    /// The scheme of the configured credentials; `None` when anonymous.
    pub fn auth_scheme(&self) -> Option<AuthScheme> {
        self.inner.credentials.as_ref().map(Credentials::scheme)
    }

    pub fn stats(&self) -> TransportStats {
        TransportStats {
            connections_opened: self.inner.connections_opened.load(Ordering::Relaxed),
            ntlm_handshakes: self.inner.ntlm_handshakes.load(Ordering::Relaxed),
            kerberos_handshakes: self.inner.kerberos_handshakes.load(Ordering::Relaxed),
            ntlm_fallbacks: self.inner.ntlm_fallbacks.load(Ordering::Relaxed),
        }
    }

    /// The mechanism of the last handshake the server accepted; `None`
    /// before one (or when anonymous).
    pub fn last_mechanism(&self) -> Option<AuthMechanism> {
        self.last_auth().map(|(mechanism, _)| mechanism)
    }

    /// Why Kerberos was not used, when the last accepted handshake was an
    /// NTLM fallback under `Negotiate`.
    pub fn last_ntlm_fallback_reason(&self) -> Option<String> {
        self.last_ntlm_fallback().map(|failure| failure.to_string())
    }

    /// [`last_ntlm_fallback_reason`](Self::last_ntlm_fallback_reason) as
    /// the failure itself, with its [`fix`](KerberosFailure::fix).
    pub fn last_ntlm_fallback(&self) -> Option<KerberosFailure> {
        self.last_auth().and_then(|(_, failure)| failure)
    }

    fn last_auth(&self) -> Option<(AuthMechanism, Option<KerberosFailure>)> {
        self.inner
            .last_auth
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn record_auth(&self, mechanism: AuthMechanism, fallback_reason: Option<KerberosFailure>) {
        *self
            .inner
            .last_auth
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((mechanism, fallback_reason));
    }

    /// POSTs a SOAP body (`SOAPAction`, `Content-Type: text/xml`), with
    /// `extra_headers` (e.g. `X-AnchorMailbox`).
    pub async fn post_soap(
        &self,
        url: &Url,
        soap_action: &str,
        body: impl Into<Bytes>,
        extra_headers: HeaderMap,
    ) -> Result<HttpResponse, TransportError> {
        let mut request = HttpRequest::soap(url.clone(), soap_action, body)?;
        request.headers.extend(extra_headers);
        self.send(request).await
    }

    /// An anonymous GET (autodiscover's unauthenticated redirect probe).
    pub async fn get_anonymous(&self, url: &Url) -> Result<HttpResponse, TransportError> {
        self.send(HttpRequest::get(url.clone()).anonymous()).await
    }

    /// Sends `request` and reads the whole response. A 401 after
    /// authenticating is [`TransportError::Auth`]; other statuses are returned.
    pub async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let origin = Origin::of(&request.url)?;
        self.check_allowed(&origin, &request)?;
        let timeout = self.inner.config.request_timeout;
        tokio::time::timeout(timeout, self.send_on_pool(&origin, &request))
            .await
            .map_err(|_| TransportError::Timeout {
                host: origin.host.clone(),
                what: "the request",
                setting: "request timeout",
                after: timeout,
            })?
    }

    /// Sends `request` on a connection of its own and returns once the
    /// response head is here, its body to be read piece by piece as it
    /// arrives (GetStreamingEvents). The connection is outside the per-host
    /// pool and its permits: a stream holds it for up to half an hour and
    /// must not starve the other requests. Authenticated as every request
    /// (NTLM/Negotiate on this connection, channel binding, Basic); the
    /// request timeout bounds connecting and authenticating up to the head,
    /// the caller bounds the body's reading. Dropping the response closes
    /// the connection.
    pub async fn send_streaming(
        &self,
        request: HttpRequest,
    ) -> Result<StreamingResponse, TransportError> {
        let origin = Origin::of(&request.url)?;
        self.check_allowed(&origin, &request)?;
        let timeout = self.inner.config.request_timeout;
        let opened = async {
            let mut connection = Connection::open(
                &origin,
                self.resolved(&origin),
                &self.inner.tls,
                self.inner.config.connect_timeout,
            )
            .await?;
            self.inner
                .connections_opened
                .fetch_add(1, Ordering::Relaxed);
            let (head, body) = self
                .exchange_head(&mut connection, &origin, &request)
                .await?;
            Ok::<_, TransportError>(StreamingResponse::new(
                origin.host.clone(),
                head,
                body,
                connection,
            ))
        };
        tokio::time::timeout(timeout, opened)
            .await
            .map_err(|_| TransportError::Timeout {
                host: origin.host.clone(),
                what: "opening the stream",
                setting: "request timeout",
                after: timeout,
            })?
    }

    fn check_allowed(&self, origin: &Origin, request: &HttpRequest) -> Result<(), TransportError> {
        let config = &self.inner.config;
        if !origin.tls && !config.allow_plain_http {
            return Err(TransportError::Config(format!(
                "refusing plain http:// URL {}: use https://, or allow plain HTTP explicitly in the configuration",
                request.url
            )));
        }
        let basic =
            self.credentials_for(request).map(Credentials::scheme) == Some(AuthScheme::Basic);
        if basic && !origin.tls && !config.allow_basic_without_tls {
            return Err(TransportError::Config(format!(
                "refusing Basic authentication over plain http:// to {}: it would send the password readable; \
                 use https://, or allow Basic without TLS explicitly",
                origin.host
            )));
        }
        Ok(())
    }

    /// The address configured for `origin` instead of DNS, if any.
    fn resolved(&self, origin: &Origin) -> Option<SocketAddr> {
        self.inner
            .config
            .resolve
            .get(&(origin.connect_host().to_ascii_lowercase(), origin.port))
            .copied()
    }

    fn credentials_for(&self, request: &HttpRequest) -> Option<&Credentials> {
        self.inner
            .credentials
            .as_ref()
            .filter(|_| request.authenticate)
    }

    fn pool(&self, origin: &Origin) -> Arc<OriginPool> {
        let mut pools = self.inner.pools.lock().expect("pool lock");
        pools
            .entry(origin.clone())
            .or_insert_with(|| {
                Arc::new(OriginPool {
                    permits: Arc::new(Semaphore::new(self.inner.config.max_connections_per_host)),
                    idle: Mutex::new(Vec::new()),
                })
            })
            .clone()
    }

    async fn send_on_pool(
        &self,
        origin: &Origin,
        request: &HttpRequest,
    ) -> Result<HttpResponse, TransportError> {
        let pool = self.pool(origin);
        let _permit = pool
            .permits
            .acquire()
            .await
            .expect("semaphore never closed");
        loop {
            let idle = {
                let mut idle = pool.idle.lock().expect("idle lock");
                idle.retain(Connection::is_open);
                idle.pop()
            };
            let mut connection = match idle {
                Some(connection) => connection,
                None => {
                    let connection = Connection::open(
                        origin,
                        self.resolved(origin),
                        &self.inner.tls,
                        self.inner.config.connect_timeout,
                    )
                    .await?;
                    self.inner
                        .connections_opened
                        .fetch_add(1, Ordering::Relaxed);
                    connection
                }
            };
            let reused = connection.reused;
            match self.exchange(&mut connection, origin, request).await {
                Ok((response, keep_alive)) => {
                    connection.reused = true;
                    if keep_alive && connection.is_open() {
                        pool.idle.lock().expect("idle lock").push(connection);
                    }
                    return Ok(response);
                }
                // The server may close an idle kept-alive connection at any
                // time; that is no failure of this request: use a new one.
                Err(TransportError::ConnectionReset { .. }) if reused => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// One request on `connection`, authenticating it first when needed.
    /// Returns the response and whether the connection may be reused.
    async fn exchange(
        &self,
        connection: &mut Connection,
        origin: &Origin,
        request: &HttpRequest,
    ) -> Result<(HttpResponse, bool), TransportError> {
        let head = self.exchange_head(connection, origin, request).await?;
        self.read_whole(head, origin).await
    }

    /// [`exchange`](Self::exchange) up to the final response's head: its
    /// body is left unread (a stream's body never ends on its own).
    async fn exchange_head(
        &self,
        connection: &mut Connection,
        origin: &Origin,
        request: &HttpRequest,
    ) -> Result<(http::response::Parts, Incoming), TransportError> {
        let Some(credentials) = self.credentials_for(request) else {
            return self
                .round_trip_head(connection, origin, request, None)
                .await;
        };
        match credentials.scheme() {
            AuthScheme::Basic => {
                let token = base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    credentials.username(),
                    credentials.password().expose()
                ));
                let authorization = format!("Basic {token}");
                let (head, body) = self
                    .round_trip_head(connection, origin, request, Some(&authorization))
                    .await?;
                if head.status == StatusCode::UNAUTHORIZED {
                    return Err(auth_error(
                        origin,
                        &head.headers,
                        AuthScheme::Basic,
                        "check the user name and password",
                    ));
                }
                self.record_auth(AuthMechanism::Basic, None);
                Ok((head, body))
            }
            scheme @ (AuthScheme::Ntlm | AuthScheme::Negotiate | AuthScheme::Kerberos) => {
                if connection.authenticated {
                    let head = self
                        .round_trip_head(connection, origin, request, None)
                        .await?;
                    if head.0.status != StatusCode::UNAUTHORIZED {
                        return Ok(head);
                    }
                    // Read the 401's body so the connection can carry the handshake.
                    let (_, keep_alive) = self.read_whole(head, origin).await?;
                    // The server forgot this connection's authentication
                    // (e.g. it restarted the session): authenticate again.
                    connection.authenticated = false;
                    if !keep_alive {
                        return Err(TransportError::ConnectionReset {
                            host: origin.host.clone(),
                            reason: "the server closed the connection with a 401".to_owned(),
                        });
                    }
                }
                match scheme {
                    AuthScheme::Kerberos => self
                        .kerberos_exchange(connection, origin, request, credentials)
                        .await
                        .map_err(|e| e.into_transport(origin)),
                    AuthScheme::Negotiate => {
                        self.negotiate_exchange(connection, origin, request, credentials)
                            .await
                    }
                    _ => {
                        self.ntlm_exchange(connection, origin, request, credentials, scheme, None)
                            .await
                    }
                }
            }
        }
    }

    async fn ntlm_exchange(
        &self,
        connection: &mut Connection,
        origin: &Origin,
        request: &HttpRequest,
        credentials: &Credentials,
        scheme: AuthScheme,
        fallback_reason: Option<KerberosFailure>,
    ) -> Result<(http::response::Parts, Incoming), TransportError> {
        let binding = if self.inner.config.channel_binding {
            connection
                .leaf_certificate
                .as_deref()
                .map(tls_server_end_point)
        } else {
            None
        };
        let ntlm_failure = |message: String| TransportError::Auth {
            host: origin.host.clone(),
            offered: Vec::new(),
            tried: scheme,
            hint: message,
        };
        let mut handshake =
            NtlmHandshake::new(credentials, binding.as_deref()).map_err(ntlm_failure)?;
        let negotiate = handshake.negotiate().map_err(ntlm_failure)?;
        let authorization = format!("{} {}", scheme.header_name(), base64_encode(&negotiate));
        // The NEGOTIATE message goes with an empty body: the server answers it
        // with a 401 anyway, so the real body is sent only once, with AUTHENTICATE.
        let probe = HttpRequest {
            body: Bytes::new(),
            ..request.clone()
        };
        let (challenge_response, keep_alive) = self
            .round_trip(connection, origin, &probe, Some(&authorization))
            .await?;
        if challenge_response.status != StatusCode::UNAUTHORIZED {
            // No authentication required after all: send the real request.
            return self
                .round_trip_head(connection, origin, request, None)
                .await;
        }
        let Some(challenge) = find_challenge(&challenge_response.headers, scheme) else {
            return Err(auth_error(
                origin,
                &challenge_response.headers,
                scheme,
                &format!("the server sent no {scheme} challenge; configure a scheme it offers"),
            ));
        };
        if !keep_alive {
            return Err(TransportError::ConnectionReset {
                host: origin.host.clone(),
                reason: format!("the server closed the connection after the {scheme} challenge, so the handshake cannot complete on it"),
            });
        }
        let authenticate = handshake.authenticate(&challenge).map_err(ntlm_failure)?;
        let authorization = format!("{} {}", scheme.header_name(), base64_encode(&authenticate));
        let (head, body) = self
            .round_trip_head(connection, origin, request, Some(&authorization))
            .await?;
        self.inner.ntlm_handshakes.fetch_add(1, Ordering::Relaxed);
        if head.status == StatusCode::UNAUTHORIZED {
            let hint = if binding.is_none() && origin.tls {
                "check the user name and password; if the server has Extended Protection on, enable channel binding"
            } else {
                "check the user name and password (and that the account may use this service)"
            };
            return Err(auth_error(origin, &head.headers, scheme, hint));
        }
        connection.authenticated = true;
        self.record_auth(AuthMechanism::Ntlm, fallback_reason);
        Ok((head, body))
    }

    /// `Negotiate`: Kerberos; NTLM when Kerberos could not start and the
    /// settings allow it. A failure that allows the fallback is remembered
    /// for a while, so that each new connection does not wait for an
    /// unreachable KDC again (Windows keeps such negative results too).
    async fn negotiate_exchange(
        &self,
        connection: &mut Connection,
        origin: &Origin,
        request: &HttpRequest,
        credentials: &Credentials,
    ) -> Result<(http::response::Parts, Incoming), TransportError> {
        let settings = &self.inner.config.kerberos;
        let remembered = settings
            .allow_ntlm_fallback
            .then(|| self.remembered_kerberos_failure())
            .flatten();
        let failure = match remembered {
            Some(failure) => failure,
            None => match self
                .kerberos_exchange(connection, origin, request, credentials)
                .await
            {
                Ok(answer) => return Ok(answer),
                Err(kerberos::http::KerberosError::Failure(failure))
                    if settings.allow_ntlm_fallback && failure.allows_ntlm_fallback() =>
                {
                    self.remember_kerberos_failure(&failure);
                    failure
                }
                Err(kerberos::http::KerberosError::FailureOnClosedConnection(failure))
                    if settings.allow_ntlm_fallback =>
                {
                    self.remember_kerberos_failure(&failure);
                    return Err(TransportError::ConnectionReset {
                        host: origin.host.clone(),
                        reason: "the server closed the connection with its 401 to Kerberos; NTLM follows on a new connection".to_owned(),
                    });
                }
                Err(other) => return Err(other.into_transport(origin)),
            },
        };
        tracing::warn!(
            host = %origin.host,
            reason = %failure,
            "Kerberos not used, falling back to NTLM (exchange.allow_ntlm_fallback)"
        );
        self.inner.ntlm_fallbacks.fetch_add(1, Ordering::Relaxed);
        // A server that offers only `NTLM` gets it under its own name.
        let scheme = match &failure {
            KerberosFailure::NotOffered { offered }
                if offered.iter().any(|s| s.eq_ignore_ascii_case("NTLM")) =>
            {
                AuthScheme::Ntlm
            }
            _ => AuthScheme::Negotiate,
        };
        self.ntlm_exchange(
            connection,
            origin,
            request,
            credentials,
            scheme,
            Some(failure),
        )
        .await
    }

    fn remembered_kerberos_failure(&self) -> Option<KerberosFailure> {
        let remembered = self
            .inner
            .kerberos_failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        remembered
            .as_ref()
            .filter(|(at, _)| at.elapsed() < KERBEROS_FAILURE_MEMORY)
            .map(|(_, failure)| failure.clone())
    }

    fn remember_kerberos_failure(&self, failure: &KerberosFailure) {
        *self
            .inner
            .kerberos_failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) =
            Some((std::time::Instant::now(), failure.clone()));
    }

    /// Sends the request (with `authorization`, when given) and reads the
    /// whole response body.
    async fn round_trip(
        &self,
        connection: &mut Connection,
        origin: &Origin,
        request: &HttpRequest,
        authorization: Option<&str>,
    ) -> Result<(HttpResponse, bool), TransportError> {
        let head = self
            .round_trip_head(connection, origin, request, authorization)
            .await?;
        self.read_whole(head, origin).await
    }

    /// Reads the body of a response whose head is here, within the size
    /// limit; the response and whether the connection may be reused.
    async fn read_whole(
        &self,
        (parts, body): (http::response::Parts, Incoming),
        origin: &Origin,
    ) -> Result<(HttpResponse, bool), TransportError> {
        let keep_alive = !connection_close(&parts.headers);
        let content_length = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let body = read_body(
            body,
            content_length,
            self.inner.config.max_response_bytes,
            &origin.host,
        )
        .await?;
        Ok((
            HttpResponse {
                host: origin.host.clone(),
                status: parts.status,
                headers: parts.headers,
                body,
            },
            keep_alive,
        ))
    }

    /// Sends the request (with `authorization`, when given) and returns the
    /// response head with the body unread.
    async fn round_trip_head(
        &self,
        connection: &mut Connection,
        origin: &Origin,
        request: &HttpRequest,
        authorization: Option<&str>,
    ) -> Result<(http::response::Parts, Incoming), TransportError> {
        let path = match request.url.query() {
            Some(query) => format!("{}?{query}", request.url.path()),
            None => request.url.path().to_owned(),
        };
        let mut builder = http::Request::builder()
            .method(request.method.clone())
            .uri(path);
        let headers = builder.headers_mut().expect("fresh builder");
        headers.extend(request.headers.clone());
        headers.insert(
            header::HOST,
            HeaderValue::from_str(&origin.host_header())
                .map_err(|_| TransportError::Config(format!("invalid host {:?}", origin.host)))?,
        );
        if !headers.contains_key(header::USER_AGENT) {
            if let Ok(agent) = HeaderValue::from_str(&self.inner.config.user_agent) {
                headers.insert(header::USER_AGENT, agent);
            }
        }
        if let Some(value) = authorization {
            let mut value = HeaderValue::from_str(value).map_err(|_| {
                TransportError::Config(
                    "credentials contain characters not allowed in a header".to_owned(),
                )
            })?;
            value.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, value);
        }
        if request.method == Method::POST || !request.body.is_empty() {
            headers.insert(
                header::CONTENT_LENGTH,
                HeaderValue::from(request.body.len()),
            );
        }
        let http_request = builder.body(Full::new(request.body.clone())).map_err(|e| {
            TransportError::Config(format!("invalid request to {}: {e}", request.url))
        })?;
        let response = connection.send(http_request, &origin.host).await?;
        Ok(response.into_parts())
    }
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport")
            .field("config", &self.inner.config)
            .field("credentials", &self.inner.credentials)
            .finish_non_exhaustive()
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn connection_close(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|token| token.trim().eq_ignore_ascii_case("close"))
        })
}

/// The scheme names of all `WWW-Authenticate` headers, in order
/// (`Negotiate`, `NTLM`, `Basic` ...), whether sent as separate headers or
/// comma-separated in one.
pub fn offered_schemes(headers: &HeaderMap) -> Vec<String> {
    let mut schemes = Vec::new();
    for value in headers.get_all(header::WWW_AUTHENTICATE) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let Some(word) = item.split_whitespace().next() else {
                continue;
            };
            // `realm="x"` and other parameters are not scheme names.
            if word.contains('=') || word.contains('"') {
                continue;
            }
            if !schemes
                .iter()
                .any(|s: &String| s.eq_ignore_ascii_case(word))
            {
                schemes.push(word.to_owned());
            }
        }
    }
    schemes
}

/// The decoded token of a `WWW-Authenticate: <scheme> <base64>` header.
fn find_challenge(headers: &HeaderMap, scheme: AuthScheme) -> Option<Vec<u8>> {
    headers
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .find_map(|value| {
            let value = value.to_str().ok()?;
            let (name, token) = value.trim().split_once(' ')?;
            if !name.eq_ignore_ascii_case(scheme.header_name()) {
                return None;
            }
            base64::engine::general_purpose::STANDARD
                .decode(token.trim())
                .ok()
        })
}

fn auth_error(
    origin: &Origin,
    headers: &HeaderMap,
    tried: AuthScheme,
    hint: &str,
) -> TransportError {
    TransportError::Auth {
        host: origin.host.clone(),
        offered: offered_schemes(headers),
        tried,
        hint: hint.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offered_schemes_from_separate_and_combined_headers() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Negotiate"),
        );
        headers.append(header::WWW_AUTHENTICATE, HeaderValue::from_static("NTLM"));
        headers.append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"mail\", NTLM"),
        );
        assert_eq!(offered_schemes(&headers), ["Negotiate", "NTLM", "Basic"]);
    }
}
