//! `EwsClient`: one Exchange server as the rest of the program sees it. It
//! owns the transport, the EWS URL, the requested schema version and the
//! optional impersonation, sends any operation through one path
//! ([`EwsClient::execute`]) that paces and retries it ([`crate::resilience`]:
//! the server-wide pause throttling asks for, the adaptive concurrency
//! limit, bounded retries), turns every way a request can fail into one
//! typed [`EwsError`], and remembers the `ServerVersionInfo` the server last
//! answered with.

use crate::server_text::sanitize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use http::StatusCode;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;
use url::Url;
use xsd_parser_types::quick_xml::{DeserializeSync, ErrorReader, SliceReader, WithSerializer};

use super::availability::{self, AvailabilityError, AvailabilityView, MailboxAvailability};
use super::envelope::{
    read_response, write_request, EnvelopeError, RequestHeaders, Response, ServerVersion, SOAP_NS,
};
use super::fault::{read_fault, SoapFault};
use super::operation::{GetStreamingEvents, GetUserAvailability, Operation};
use super::resilience::{
    Attempts, NoRequestObserver, RequestObserver, RequestStats, Resilience, ResilienceConfig,
};
use super::response_message::OperationError;
use super::transport::{
    HttpRequest, HttpResponse, HttpTransport, StreamingResponse, TransportError,
};

/// The most read of a stream's error answer (a SOAP fault or an HTML page).
const FAILED_ANSWER_LIMIT: usize = 256 * 1024;
use super::version::ExchangeVersion;

/// Routes a request to the impersonated mailbox's server (Exchange 2013+
/// needs it with `ExchangeImpersonation`).
pub const ANCHOR_MAILBOX_HEADER: &str = "x-anchormailbox";

/// Response codes that mean "the server is overloaded, send it again later".
const BUSY_CODES: [&str; 2] = ["ErrorServerBusy", "ErrorTooManyObjectsOpened"];
/// Response codes that mean "this failed now, the same request may succeed".
const TRANSIENT_CODES: [&str; 4] = [
    "ErrorExceededConnectionCount",
    "ErrorInternalServerTransientError",
    "ErrorTimeoutExpired",
    "ErrorMailboxStoreUnavailable",
];

/// Why a request to Exchange failed. Every message names the server and,
/// where there is one, the fix; none contains credentials.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EwsError {
    /// The client is configured wrongly (no request was sent).
    #[error("{0}")]
    Config(String),
    /// Connecting, TLS, authentication or HTTP failed.
    #[error(transparent)]
    Transport(Arc<TransportError>),
    /// Exchange refused the whole request with a SOAP fault, or (the
    /// notification operations) with a response message of class `Error`,
    /// whose `ResponseCode` is then the fault's code.
    #[error("{server} refused the request: {fault}{}", fault_hint(.fault))]
    Fault {
        server: String,
        fault: Box<SoapFault>,
    },
    /// HTTP 503: the server (or a load balancer before it) is overloaded.
    #[error("{server} answered HTTP 503 Service Unavailable{}", retry_after_text(.retry_after))]
    ServiceUnavailable {
        server: String,
        /// `Retry-After`, when the answer had one.
        retry_after: Option<Duration>,
    },
    /// Another non-success HTTP status without a SOAP fault.
    #[error("{server} answered HTTP {status}{}: {}", status_hint(*.status), sanitize(.body_excerpt))]
    Http {
        server: String,
        status: StatusCode,
        body_excerpt: String,
    },
    /// The answer is not a valid EWS response.
    #[error("invalid answer from {server}: {}", sanitize(&.source.to_string()))]
    Envelope {
        server: String,
        source: Box<EnvelopeError>,
    },
    /// The answer is valid but says the operation failed (or makes no sense).
    #[error("{server}: {}", sanitize(.message))]
    Response { server: String, message: String },
}

fn fault_hint(fault: &SoapFault) -> &'static str {
    match fault.code() {
        "ErrorInvalidServerVersion" | "ErrorIncorrectSchemaVersion" | "ErrorSchemaValidation" => {
            "; the server does not accept this request for the configured Exchange version: configure the version the server runs (e.g. Exchange2010_SP2 for Exchange 2010)"
        }
        "ErrorImpersonateUserDenied" | "ErrorImpersonationDenied" => {
            "; grant the service account the ApplicationImpersonation role, or turn impersonation off"
        }
        "ErrorNonExistentMailbox" => "; the impersonated mailbox does not exist: check the impersonation address",
        "ErrorServerBusy" => "; the server is throttling this account",
        "ErrorExceededConnectionCount" => "; lower the number of concurrent requests",
        "ErrorMailboxDataArrayTooBig" => "; lower the number of mailboxes per request",
        "ErrorExceededSubscriptionCount" => {
            "; the account holds as many notification subscriptions as its throttling policy allows (EWSMaxSubscriptions, 5000 on-premises by default): subscribe fewer mailboxes or raise the limit"
        }
        "ErrorAccessDenied" => {
            "; the account may not read this mailbox's calendar: grant it the ApplicationImpersonation role (with impersonation) or at least Reviewer on the calendar"
        }
        _ => "",
    }
}

fn retry_after_text(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!(" (Retry-After {} s)", d.as_secs()),
        None => String::new(),
    }
}

fn status_hint(status: StatusCode) -> &'static str {
    match status.as_u16() {
        404 => " (check the EWS URL; it normally ends in /EWS/Exchange.asmx)",
        403 => " (the account may not use EWS, or the URL requires a client certificate)",
        _ => "",
    }
}

impl From<TransportError> for EwsError {
    fn from(e: TransportError) -> Self {
        EwsError::Transport(Arc::new(e))
    }
}

impl EwsError {
    /// Whether the same request may succeed when sent again (after a pause
    /// for [`EwsError::is_busy`] answers).
    pub fn is_retryable(&self) -> bool {
        match self {
            EwsError::Transport(e) => e.is_retryable(),
            EwsError::Fault { fault, .. } => {
                BUSY_CODES.contains(&fault.code()) || TRANSIENT_CODES.contains(&fault.code())
            }
            EwsError::ServiceUnavailable { .. } => true,
            EwsError::Http { status, .. } => matches!(status.as_u16(), 502 | 504),
            EwsError::Config(_) | EwsError::Envelope { .. } | EwsError::Response { .. } => false,
        }
    }

    /// The server is overloaded and asked (or is assumed to ask) for a pause
    /// of all requests: `ErrorServerBusy` or HTTP 503.
    pub fn is_busy(&self) -> bool {
        match self {
            EwsError::Fault { fault, .. } => BUSY_CODES.contains(&fault.code()),
            EwsError::ServiceUnavailable { .. } => true,
            _ => false,
        }
    }

    /// The pause the server asked for (`BackOffMilliseconds`, `Retry-After`).
    pub fn back_off(&self) -> Option<Duration> {
        match self {
            EwsError::Fault { fault, .. } => fault.back_off(),
            EwsError::ServiceUnavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The Exchange response code of a SOAP fault.
    pub fn fault_code(&self) -> Option<&str> {
        match self {
            EwsError::Fault { fault, .. } => Some(fault.code()),
            _ => None,
        }
    }

    /// Whether every further request to this server would fail the same way
    /// (authentication refused, TLS not trusted, configuration): retrying or
    /// trying other mailboxes is pointless.
    pub fn affects_every_request(&self) -> bool {
        match self {
            EwsError::Config(_) => true,
            EwsError::Transport(e) => matches!(
                **e,
                TransportError::Auth { .. }
                    | TransportError::Tls { .. }
                    | TransportError::Config(_)
            ),
            EwsError::Fault { fault, .. } => matches!(
                fault.code(),
                "ErrorInvalidServerVersion"
                    | "ErrorIncorrectSchemaVersion"
                    | "ErrorImpersonateUserDenied"
                    | "ErrorImpersonationDenied"
                    | "ErrorAccessDenied"
            ),
            _ => false,
        }
    }

    /// The transport error, when that is what failed.
    pub fn transport(&self) -> Option<&TransportError> {
        match self {
            EwsError::Transport(e) => Some(e),
            _ => None,
        }
    }
}

/// One Exchange server's EWS endpoint. Share it (`Arc`) between everything
/// that talks to that server: the throttling pause and the concurrency limit
/// are kept here.
pub struct EwsClient {
    transport: Arc<HttpTransport>,
    url: Url,
    version: ExchangeVersion,
    impersonate: Option<String>,
    last_server_version: Mutex<Option<ServerVersion>>,
    resilience: Resilience,
}

impl std::fmt::Debug for EwsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The transport's Debug redacts the password.
        f.debug_struct("EwsClient")
            .field("url", &self.url.as_str())
            .field("version", &self.version)
            .field("impersonate", &self.impersonate)
            .field("resilience", self.resilience.config())
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

impl EwsClient {
    /// A client for the EWS endpoint `url` (`https://mail.contoso.com/EWS/Exchange.asmx`),
    /// asking for the default version (`Exchange2013_SP1`), not impersonating,
    /// paced and retried as [`ResilienceConfig::default`] says.
    pub fn new(transport: Arc<HttpTransport>, url: Url) -> EwsClient {
        EwsClient {
            transport,
            url,
            version: ExchangeVersion::default(),
            impersonate: None,
            last_server_version: Mutex::new(None),
            resilience: Resilience::new(ResilienceConfig::default(), Arc::new(NoRequestObserver)),
        }
    }

    /// How requests are paced and retried (concurrency, retries, back-off).
    pub fn with_resilience(mut self, config: ResilienceConfig) -> Result<EwsClient, EwsError> {
        config.validate()?;
        let observer = self.resilience.observer().clone();
        self.resilience = Resilience::new(config, observer);
        Ok(self)
    }

    /// Tells `observer` about each request, busy answer, retry and pause.
    pub fn with_observer(mut self, observer: Arc<dyn RequestObserver>) -> EwsClient {
        self.resilience = Resilience::new(self.resilience.config().clone(), observer);
        self
    }

    pub fn resilience(&self) -> &ResilienceConfig {
        self.resilience.config()
    }

    /// This client's requests so far (every operation), and its current
    /// concurrency limit.
    pub fn stats(&self) -> RequestStats {
        self.resilience.stats()
    }

    /// The `RequestServerVersion` every request carries.
    pub fn with_version(mut self, version: ExchangeVersion) -> EwsClient {
        self.version = version;
        self
    }

    /// Act as `smtp_address` (`ExchangeImpersonation` + `X-AnchorMailbox`);
    /// the account needs the ApplicationImpersonation role.
    pub fn with_impersonation(mut self, smtp_address: &str) -> Result<EwsClient, EwsError> {
        let address = smtp_address.trim();
        let valid = address
            .split_once('@')
            .is_some_and(|(user, domain)| !user.is_empty() && !domain.is_empty())
            && HeaderValue::from_str(address).is_ok();
        if !valid {
            return Err(EwsError::Config(format!(
                "impersonation address {smtp_address:?} is not an SMTP address; write it as user@domain"
            )));
        }
        self.impersonate = Some(address.to_owned());
        Ok(self)
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The host of the EWS URL, as error messages name it.
    pub fn server(&self) -> &str {
        self.url.host_str().unwrap_or("the Exchange server")
    }

    pub fn version(&self) -> ExchangeVersion {
        self.version
    }

    pub fn impersonation(&self) -> Option<&str> {
        self.impersonate.as_deref()
    }

    pub fn transport(&self) -> &Arc<HttpTransport> {
        &self.transport
    }

    /// The SOAP headers of every request.
    pub fn request_headers(&self) -> RequestHeaders {
        self.request_headers_as(self.impersonate.as_deref())
    }

    /// The SOAP headers of a request that acts as `impersonate` (or as the
    /// account itself when `None`), whatever the client's own setting.
    pub fn request_headers_as(&self, impersonate: Option<&str>) -> RequestHeaders {
        RequestHeaders {
            version: self.version,
            impersonate: impersonate.map(str::to_owned),
            time_zone_id: None,
        }
    }

    /// The `ServerVersionInfo` of the last response that had one.
    pub fn last_server_version(&self) -> Option<ServerVersion> {
        self.last_server_version
            .lock()
            .expect("version lock")
            .clone()
    }

    fn record_server_version(&self, version: Option<&ServerVersion>) {
        if let Some(version) = version {
            *self.last_server_version.lock().expect("version lock") = Some(version.clone());
        }
    }

    /// Holds every request to this server back for `pause` from now (a
    /// longer pause already in force is kept).
    pub fn pause_for(&self, pause: Duration) {
        self.resilience.pause_for(pause);
    }

    /// When the current pause ends, if one is in force.
    pub fn paused_until(&self) -> Option<Instant> {
        self.resilience.paused_until()
    }

    /// Sends a request envelope of `Op` made with
    /// [`request_headers_as`](Self::request_headers_as)`(impersonate)` (the
    /// request is routed to that mailbox, `X-AnchorMailbox`) and returns the
    /// body of a successful HTTP answer: paced, and sent again as the
    /// [`resilience`](crate::resilience) layer decides, drawing on
    /// `attempts`. Not counted as a calm answer: the caller knows.
    pub(crate) async fn send_as<Op: Operation>(
        &self,
        envelope: Vec<u8>,
        impersonate: Option<&str>,
        attempts: &mut Attempts,
    ) -> Result<Bytes, EwsError> {
        let mut headers = HeaderMap::new();
        if let Some(address) = impersonate {
            let value = HeaderValue::from_str(address).map_err(|_| {
                EwsError::Config(format!("invalid impersonation address {address:?}"))
            })?;
            headers.insert(HeaderName::from_static(ANCHOR_MAILBOX_HEADER), value);
        }
        let envelope = Bytes::from(envelope);
        // Exchange holds a GetStreamingEvents request open by design (up to
        // its ConnectionTimeout) and counts it against a limit of its own
        // (HangingConnectionLimit): it must not keep a slot from the others.
        let take_slot = Op::NAME != GetStreamingEvents::NAME;
        self.resilience
            .send(attempts, take_slot, self.server(), Op::NAME, || {
                self.send_once::<Op>(envelope.clone(), headers.clone())
            })
            .await
    }

    /// One HTTP exchange, its failure as an [`EwsError`].
    async fn send_once<Op: Operation>(
        &self,
        envelope: Bytes,
        headers: HeaderMap,
    ) -> Result<Bytes, EwsError> {
        Ok(self
            .send_once_with_head::<Op>(envelope, headers)
            .await?
            .body)
    }

    /// [`send_once`](Self::send_once) with the answer's headers.
    async fn send_once_with_head<Op: Operation>(
        &self,
        envelope: Bytes,
        headers: HeaderMap,
    ) -> Result<HttpResponse, EwsError> {
        let response = self
            .transport
            .post_soap(&self.url, Op::SOAP_ACTION, envelope, headers)
            .await?;
        if response.status.is_success() {
            return Ok(response);
        }
        Err(self.failed_answer(response.status, &response.headers, &response.body))
    }

    /// The error a non-success HTTP answer means: busy (503), a SOAP
    /// fault, or the status with an excerpt of the body.
    fn failed_answer(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> EwsError {
        let server = self.server().to_owned();
        let fault = find_fault(body);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            let retry_after = retry_after(headers, Utc::now())
                .or_else(|| fault.as_ref().and_then(SoapFault::back_off));
            return EwsError::ServiceUnavailable {
                server,
                retry_after,
            };
        }
        if let Some(fault) = fault {
            return EwsError::Fault {
                server,
                fault: Box::new(fault),
            };
        }
        EwsError::Http {
            server,
            status,
            body_excerpt: crate::server_text::sanitized(
                &String::from_utf8_lossy(body)
                    .chars()
                    .take(300)
                    .collect::<String>(),
            ),
        }
    }

    /// Sends an envelope of `Op` with `headers` (affinity: `X-AnchorMailbox`,
    /// `Cookie`, ...), paced and retried as every request; `read` turns the
    /// successful answer (headers and body) into the result, and its errors
    /// are classified for retrying like the HTTP exchange's (a response
    /// message saying `ErrorServerBusy` pauses and retries as a fault does).
    pub(crate) async fn send_reading<Op: Operation, T>(
        &self,
        envelope: Vec<u8>,
        headers: HeaderMap,
        read: impl Fn(&HttpResponse) -> Result<T, EwsError>,
    ) -> Result<T, EwsError> {
        let envelope = Bytes::from(envelope);
        let (envelope, headers, read) = (&envelope, &headers, &read);
        let result = self
            .resilience
            .send(
                &mut Attempts::default(),
                true,
                self.server(),
                Op::NAME,
                move || async move {
                    let response = self
                        .send_once_with_head::<Op>(envelope.clone(), headers.clone())
                        .await?;
                    read(&response)
                },
            )
            .await?;
        self.resilience.answered_calmly();
        Ok(result)
    }

    /// Opens a streamed answer (GetStreamingEvents) for an envelope of `Op`
    /// with `headers`, on a connection outside the pool's permits and
    /// without a concurrency slot (Exchange counts these against its
    /// `HangingConnectionLimit`, not the request concurrency). `first`
    /// reads the opened answer up to what decides whether the request was
    /// refused (the first message). Waits out the server-wide pause and
    /// retries busy and transient failures as every request, except
    /// `ErrorExceededConnectionCount`: for a stream it means too many held
    /// connections, which only the caller can fix (by holding fewer).
    pub(crate) async fn open_stream<Op, T, F, Fut>(
        &self,
        envelope: Vec<u8>,
        headers: HeaderMap,
        first: F,
    ) -> Result<T, EwsError>
    where
        Op: Operation,
        F: Fn(StreamingResponse) -> Fut,
        Fut: std::future::Future<Output = Result<T, EwsError>>,
    {
        let envelope = Bytes::from(envelope);
        let (envelope, headers, first) = (&envelope, &headers, &first);
        let opened = self
            .resilience
            .send(
                &mut Attempts::default(),
                false,
                self.server(),
                Op::NAME,
                move || {
                    async move {
                        let result = self
                            .open_stream_once::<Op>(envelope.clone(), headers.clone())
                            .await;
                        let result = match result {
                            Ok(response) => first(response).await,
                            Err(e) => Err(e),
                        };
                        match result {
                            // Not retried here: handed out as a success of the
                            // retry loop, an error again below.
                            Err(e) if e.fault_code() == Some("ErrorExceededConnectionCount") => {
                                Ok(Err(e))
                            }
                            other => other.map(Ok),
                        }
                    }
                },
            )
            .await??;
        Ok(opened)
    }

    async fn open_stream_once<Op: Operation>(
        &self,
        envelope: Bytes,
        headers: HeaderMap,
    ) -> Result<StreamingResponse, EwsError> {
        let mut request = HttpRequest::soap(self.url.clone(), Op::SOAP_ACTION, envelope)?;
        request.headers.extend(headers);
        let response = self.transport.send_streaming(request).await?;
        if response.status.is_success() {
            return Ok(response);
        }
        let status = response.status;
        let headers = response.headers.clone();
        // An error answer is small and complete: read it for its fault.
        let body = response.into_body(FAILED_ANSWER_LIMIT).await?;
        Err(self.failed_answer(status, &headers, &body))
    }

    /// Turns an envelope-layer failure into an [`EwsError`] (a fault inside a
    /// 200 answer becomes [`EwsError::Fault`]).
    pub fn envelope_error(&self, error: EnvelopeError) -> EwsError {
        let server = self.server().to_owned();
        match error {
            EnvelopeError::Fault(fault) => EwsError::Fault {
                server,
                fault: Box::new(fault),
            },
            source @ (EnvelopeError::Serialize { .. } | EnvelopeError::HeaderNotAllowed { .. }) => {
                EwsError::Config(format!("cannot send to {server}: {source}"))
            }
            source => EwsError::Envelope {
                server,
                source: Box::new(source),
            },
        }
    }

    /// Turns a typed operation's failure into an [`EwsError`].
    pub fn operation_error(&self, error: OperationError) -> EwsError {
        match error {
            OperationError::Envelope(e) => self.envelope_error(e),
            other => EwsError::Response {
                server: self.server().to_owned(),
                message: other.to_string(),
            },
        }
    }

    /// Sends any operation with its generated request type and reads the
    /// generated response type: the one way to call an operation, paced and
    /// retried (busy, dropped connections, 503, ...) as
    /// [`resilience`](crate::resilience) describes. The operation modules
    /// (`calendar_view::find`, `folder::probe`, ...) call it with their
    /// plain types.
    pub async fn execute<Op>(&self, body: &Op::Request) -> Result<Response<Op::Response>, EwsError>
    where
        Op: Operation,
        Op::Request: WithSerializer,
        for<'a> Op::Response: DeserializeSync<'a, ErrorReader<SliceReader<'a>>>,
        for<'a> <Op::Response as DeserializeSync<'a, ErrorReader<SliceReader<'a>>>>::Error:
            std::fmt::Display,
    {
        let envelope = write_request::<Op>(&self.request_headers(), body)
            .map_err(|e| self.envelope_error(e))?;
        let answer = self
            .send_as::<Op>(
                envelope,
                self.impersonate.as_deref(),
                &mut Attempts::default(),
            )
            .await?;
        self.resilience.answered_calmly();
        let response = read_response::<Op>(&answer).map_err(|e| self.envelope_error(e))?;
        self.record_server_version(response.server_version.as_ref());
        Ok(response)
    }

    /// One `GetUserAvailability` request (at most 100 mailboxes, 42 days; see
    /// [`AvailabilityReader`](super::availability_reader::AvailabilityReader)
    /// for any number and window). Times are UTC.
    pub async fn get_user_availability(
        &self,
        mailboxes: &[String],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        view: AvailabilityView,
    ) -> Result<Vec<MailboxAvailability>, EwsError> {
        self.get_user_availability_as(mailboxes, start, end, view, self.impersonate.as_deref())
            .await
    }

    /// [`get_user_availability`](Self::get_user_availability) acting as
    /// `impersonate`: asked as its owner, a mailbox shows the details of its
    /// own private items, which a service account never sees.
    pub async fn get_user_availability_as(
        &self,
        mailboxes: &[String],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        view: AvailabilityView,
        impersonate: Option<&str>,
    ) -> Result<Vec<MailboxAvailability>, EwsError> {
        let answer = self
            .send_user_availability_as(
                mailboxes,
                start,
                end,
                view,
                impersonate,
                &mut Attempts::default(),
            )
            .await?;
        let answers = self.parse_user_availability(mailboxes, &answer)?;
        let busy = answers
            .iter()
            .any(|a| matches!(&a.result, Err(e) if e.code == "ErrorServerBusy"));
        if !busy {
            self.resilience.answered_calmly();
        }
        Ok(answers)
    }

    /// The request half of
    /// [`get_user_availability_as`](Self::get_user_availability_as): the
    /// body of the server's successful answer, not parsed yet. The
    /// availability reader needs the two halves apart (not `execute`): the
    /// concurrency slot is freed once the answer is here, so the next
    /// request goes while this one is parsed (off the runtime, by the fast
    /// reader), and busy errors inside the answer send its mailboxes again
    /// on the same retry budget (`attempts`).
    pub(crate) async fn send_user_availability_as(
        &self,
        mailboxes: &[String],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        view: AvailabilityView,
        impersonate: Option<&str>,
        attempts: &mut Attempts,
    ) -> Result<Bytes, EwsError> {
        let headers = self.request_headers_as(impersonate);
        let envelope = availability::request(&headers, mailboxes, start, end, view)
            .map_err(|e| self.envelope_error(e))?;
        self.send_as::<GetUserAvailability>(envelope, impersonate, attempts)
            .await
    }

    /// The busy errors inside an answer (`ErrorServerBusy` for some
    /// mailboxes): counted and paced as a busy fault is; the pause, when
    /// `attempts` allow sending those mailboxes again.
    pub(crate) fn busy_inside_answer(
        &self,
        attempts: &mut Attempts,
        asked: Option<Duration>,
    ) -> Option<Duration> {
        self.resilience.busy(attempts, asked)
    }

    /// An answer without busy errors inside (the availability reader's).
    pub(crate) fn answered_calmly(&self) {
        self.resilience.answered_calmly();
    }

    /// The parsing half of
    /// [`get_user_availability_as`](Self::get_user_availability_as), for the
    /// `answer` to a request for `mailboxes`.
    pub(crate) fn parse_user_availability(
        &self,
        mailboxes: &[String],
        answer: &[u8],
    ) -> Result<Vec<MailboxAvailability>, EwsError> {
        match availability::parse_response(
            mailboxes,
            answer,
            chrono::FixedOffset::east_opt(0).expect("zero offset"),
        ) {
            Ok((results, meta)) => {
                self.record_server_version(meta.server_version.as_ref());
                Ok(results)
            }
            Err(AvailabilityError::Envelope(e)) => Err(self.envelope_error(e)),
            Err(other) => Err(EwsError::Response {
                server: self.server().to_owned(),
                message: other.to_string(),
            }),
        }
    }
}

/// `Retry-After` as seconds or as an HTTP date (relative to `now`).
pub(crate) fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// The `soap:Fault` of a SOAP envelope, if it holds one.
fn find_fault(xml: &[u8]) -> Option<SoapFault> {
    let mut reader = NsReader::from_reader(xml);
    loop {
        match reader.read_event().ok()? {
            Event::Start(ref e) => {
                let (ns, local) = reader.resolver().resolve_element(e.name());
                let is_fault = matches!(ns, ResolveResult::Bound(n) if n.as_ref() == SOAP_NS.as_bytes())
                    && local.as_ref() == b"Fault";
                if is_fault {
                    return read_fault(&mut reader).ok();
                }
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAULT: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>
<faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:ErrorServerBusy</faultcode>
<faultstring xml:lang="en-US">The server cannot service this request right now. Try again later.</faultstring>
<detail><e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">ErrorServerBusy</e:ResponseCode>
<e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">The server cannot service this request right now. Try again later.</e:Message>
<t:MessageXml xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><t:Value Name="BackOffMilliseconds">1234</t:Value></t:MessageXml>
</detail></s:Fault></s:Body></s:Envelope>"#;

    #[test]
    fn a_busy_fault_is_found_with_its_back_off() {
        let fault = find_fault(FAULT.as_bytes()).expect("fault");
        assert_eq!(fault.code(), "ErrorServerBusy");
        assert_eq!(fault.back_off(), Some(Duration::from_millis(1234)));
        let error = EwsError::Fault {
            server: "mail.contoso.com".into(),
            fault: Box::new(fault),
        };
        assert!(error.is_busy() && error.is_retryable());
        assert!(error.to_string().contains("mail.contoso.com"), "{error}");
    }

    #[test]
    fn no_fault_in_a_normal_body() {
        assert!(find_fault(b"<html><body>Service Unavailable</body></html>").is_none());
        assert!(find_fault(b"not xml at all <").is_none());
    }

    #[test]
    fn retry_after_in_seconds_and_as_a_date() {
        let now = DateTime::parse_from_rfc3339("2026-11-26T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(7)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Thu, 26 Nov 2026 10:00:30 GMT"),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(30)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now), None);
    }

    #[test]
    fn impersonation_needs_an_smtp_address() {
        let transport = Arc::new(
            HttpTransport::new(super::super::transport::TransportConfig::default(), None).unwrap(),
        );
        let url = Url::parse("https://mail.contoso.com/EWS/Exchange.asmx").unwrap();
        let err = EwsClient::new(transport.clone(), url.clone())
            .with_impersonation("just-a-name")
            .unwrap_err();
        assert!(err.to_string().contains("user@domain"), "{err}");
        let client = EwsClient::new(transport, url)
            .with_impersonation("room1@contoso.com")
            .unwrap();
        assert_eq!(
            client.request_headers().impersonate.as_deref(),
            Some("room1@contoso.com")
        );
        assert_eq!(
            client.request_headers().version,
            ExchangeVersion::Exchange2013Sp1
        );
    }
}
