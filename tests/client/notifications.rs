//! Streaming notifications over real sockets, against a small hand-made
//! server that answers GetStreamingEvents as "Streaming notifications"
//! (Microsoft, "Notification subscriptions, mailbox events, and EWS in
//! Exchange") describes: a chunked body of SOAP envelopes sent one at a
//! time, keep-alives among them, a `Closed` one at the end. The script of
//! each answer decides what is sent when, so the tests can cut a stream in
//! the middle of an envelope, fall silent, or send too much.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use ews_toolkit::notifications::{
    self, Affinity, ConnectionStatus, MailboxAccess, StreamLimits, SubscriptionFailure,
};
use ews_toolkit::resilience::ResilienceConfig;
use ews_toolkit::sim::auth::{Account, AuthOutcome, AuthPolicy, Authenticator};
use ews_toolkit::sim::tls::TestPki;
use ews_toolkit::transport::{
    AuthScheme, Credentials, HttpTransport, TransportConfig, TransportError,
};
use ews_toolkit::EwsClient;
use http::HeaderMap;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Notify};
use url::Url;

const PASSWORD: &str = "Corr3ct-Horse!";
/// How long a test waits for something that should happen at once.
const GENEROUS: Duration = Duration::from_secs(30);

// --- the server ----------------------------------------------------------

/// One request as the server saw it (after authentication).
#[derive(Debug, Clone)]
struct Seen {
    action: String,
    headers: HeaderMap,
    body: String,
    user: Option<String>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What the body of a streamed answer does next.
enum Step {
    Send(String),
    /// Waits until the test says so (never, if it never does).
    WaitFor(Arc<Notify>),
    /// Ends the connection without finishing the chunked body.
    Cut,
    /// Sends keep-alives until the client is gone (the connection closed),
    /// then tells `gone`.
    KeepAliveUntilGone(Arc<Notify>),
}

enum Reply {
    /// A complete answer.
    Full {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
    /// A 200 whose chunked body follows `steps` (ends after the last).
    Stream {
        headers: Vec<(&'static str, String)>,
        steps: Vec<Step>,
    },
}

type Script = Arc<dyn Fn(&Seen, usize) -> Reply + Send + Sync>;

struct Server {
    url: Url,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn seen_of(&self, action: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.action.ends_with(action))
            .collect()
    }
}

/// The body of a streamed answer: frames as the script sends them.
struct ChannelBody(mpsc::Receiver<Result<Frame<Bytes>, std::io::Error>>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx)
    }
}

fn body_of(text: String) -> ChannelBody {
    let (tx, rx) = mpsc::channel(1);
    tx.try_send(Ok(Frame::data(Bytes::from(text)))).unwrap();
    ChannelBody(rx)
}

fn stream_body(steps: Vec<Step>) -> ChannelBody {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        for step in steps {
            match step {
                Step::Send(text) => {
                    if tx.send(Ok(Frame::data(Bytes::from(text)))).await.is_err() {
                        return;
                    }
                }
                Step::WaitFor(signal) => signal.notified().await,
                Step::Cut => {
                    let cut = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "cut");
                    let _ = tx.send(Err(cut)).await;
                    return;
                }
                Step::KeepAliveUntilGone(gone) => {
                    // hyper drops the body once writing to the closed
                    // connection fails.
                    while tx
                        .send(Ok(Frame::data(Bytes::from(keep_alive()))))
                        .await
                        .is_ok()
                    {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    gone.notify_one();
                    return;
                }
            }
        }
    });
    ChannelBody(rx)
}

/// Starts the server on loopback: TLS and NTLM (Extended Protection on) when
/// `pki` is given, plain HTTP without authentication otherwise.
async fn start(
    pki: Option<&TestPki>,
    script: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static,
) -> Server {
    let script: Script = Arc::new(script);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let auth = pki.map(|pki| {
        let mut policy = AuthPolicy::new(vec![Account::new("CONTOSO", "svc-calendar", PASSWORD)]);
        policy.server_certificate = Some(pki.leaf_der().to_vec());
        policy.extended_protection = true;
        Arc::new(Authenticator::new(policy))
    });
    let acceptor = pki.map(|pki| tokio_rustls::TlsAcceptor::from(pki.server_config()));
    let url = match pki {
        Some(_) => format!("https://localhost:{port}/EWS/Exchange.asmx"),
        None => format!("http://127.0.0.1:{port}/EWS/Exchange.asmx"),
    };
    let accept_seen = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (script, seen, auth, acceptor) = (
                script.clone(),
                accept_seen.clone(),
                auth.clone(),
                acceptor.clone(),
            );
            tokio::spawn(async move {
                let connection_auth = Arc::new(Mutex::new(
                    auth.as_ref().map(|a| a.new_connection(acceptor.is_some())),
                ));
                let service = service_fn(move |request: http::Request<Incoming>| {
                    let (script, seen, auth, connection_auth) = (
                        script.clone(),
                        seen.clone(),
                        auth.clone(),
                        connection_auth.clone(),
                    );
                    async move {
                        Ok::<_, Infallible>(
                            answer(request, &script, &seen, auth, &connection_auth).await,
                        )
                    }
                });
                let builder = hyper::server::conn::http1::Builder::new();
                match acceptor {
                    Some(acceptor) => {
                        if let Ok(tls) = acceptor.accept(tcp).await {
                            let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                        }
                    }
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                    }
                }
            });
        }
    });
    Server {
        url: Url::parse(&url).unwrap(),
        seen,
    }
}

async fn answer(
    request: http::Request<Incoming>,
    script: &Script,
    seen: &Mutex<Vec<Seen>>,
    auth: Option<Arc<Authenticator>>,
    connection_auth: &Mutex<Option<ews_toolkit::sim::auth::ConnectionAuth>>,
) -> http::Response<ChannelBody> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let mut user = None;
    if let Some(auth) = auth {
        let outcome = {
            let mut state = connection_auth.lock().unwrap();
            auth.authenticate(
                state.as_mut().unwrap(),
                parts.headers.get(http::header::AUTHORIZATION),
            )
        };
        match outcome {
            AuthOutcome::Allowed { user: who } => user = Some(who),
            AuthOutcome::Unauthorized {
                www_authenticate, ..
            } => {
                let mut response = http::Response::new(body_of(String::new()));
                *response.status_mut() = http::StatusCode::UNAUTHORIZED;
                for value in www_authenticate {
                    response
                        .headers_mut()
                        .append(http::header::WWW_AUTHENTICATE, value);
                }
                return response;
            }
        }
    }
    let request = Seen {
        action: parts
            .headers
            .get("soapaction")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .trim_matches('"')
            .to_owned(),
        headers: parts.headers.clone(),
        body: String::from_utf8_lossy(&body).into_owned(),
        user,
    };
    let index = {
        let mut seen = seen.lock().unwrap();
        seen.push(request.clone());
        seen.len() - 1
    };
    let (status, headers, body) = match script(&request, index) {
        Reply::Full {
            status,
            headers,
            body,
        } => (status, headers, body_of(body)),
        Reply::Stream { headers, steps } => (200, headers, stream_body(steps)),
    };
    let mut response = http::Response::new(body);
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    for (name, value) in headers {
        response
            .headers_mut()
            .append(name, http::HeaderValue::from_str(&value).unwrap());
    }
    response
}

// --- what Exchange sends -------------------------------------------------

fn envelope(operation: &str, messages: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header><t:ServerVersionInfo xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types" MajorVersion="15" MinorVersion="1" MajorBuildNumber="2507" MinorBuildNumber="39" Version="V2017_07_11"/></soap:Header><soap:Body><m:{operation}Response xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><m:ResponseMessages>{messages}</m:ResponseMessages></m:{operation}Response></soap:Body></soap:Envelope>"#
    )
}

fn events(content: &str) -> String {
    envelope(
        "GetStreamingEvents",
        &format!(
            r#"<m:GetStreamingEventsResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>{content}</m:GetStreamingEventsResponseMessage>"#
        ),
    )
}

fn keep_alive() -> String {
    events("<m:ConnectionStatus>OK</m:ConnectionStatus>")
}

fn closed() -> String {
    events("<m:ConnectionStatus>Closed</m:ConnectionStatus>")
}

fn created(subscription: &str, item: &str) -> String {
    events(&format!(
        r#"<m:Notifications><t:Notification><t:SubscriptionId>{subscription}</t:SubscriptionId><t:CreatedEvent><t:Watermark>AQAAAA==</t:Watermark><t:TimeStamp>2026-02-10T07:42:13Z</t:TimeStamp><t:ItemId Id="{item}" ChangeKey="DwAAAA=="/><t:ParentFolderId Id="calendar-folder" ChangeKey="AQAAAA=="/></t:CreatedEvent></t:Notification></m:Notifications><m:ConnectionStatus>OK</m:ConnectionStatus>"#
    ))
}

/// A message of class `Error` for `ids` (none: all of the request's).
fn failure(code: &str, ids: &[&str]) -> String {
    let ids = if ids.is_empty() {
        String::new()
    } else {
        let ids: String = ids
            .iter()
            .map(|id| format!("<t:SubscriptionId>{id}</t:SubscriptionId>"))
            .collect();
        format!("<m:ErrorSubscriptionIds>{ids}</m:ErrorSubscriptionIds>")
    };
    envelope(
        "GetStreamingEvents",
        &format!(
            r#"<m:GetStreamingEventsResponseMessage ResponseClass="Error"><m:MessageText>{code} happened.</m:MessageText><m:ResponseCode>{code}</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>{ids}</m:GetStreamingEventsResponseMessage>"#
        ),
    )
}

fn subscribed(id: &str) -> String {
    envelope(
        "Subscribe",
        &format!(
            r#"<m:SubscribeResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:SubscriptionId>{id}</m:SubscriptionId></m:SubscribeResponseMessage>"#
        ),
    )
}

fn subscribe_refused(code: &str) -> String {
    envelope(
        "Subscribe",
        &format!(
            r#"<m:SubscribeResponseMessage ResponseClass="Error"><m:MessageText>Refused.</m:MessageText><m:ResponseCode>{code}</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey></m:SubscribeResponseMessage>"#
        ),
    )
}

fn unsubscribed(class: &str, code: &str) -> String {
    envelope(
        "Unsubscribe",
        &format!(
            r#"<m:UnsubscribeResponseMessage ResponseClass="{class}"><m:ResponseCode>{code}</m:ResponseCode></m:UnsubscribeResponseMessage>"#
        ),
    )
}

/// A SOAP fault answer (HTTP 500), as Exchange refuses a whole request.
fn fault(code: &str, back_off_ms: u64) -> Reply {
    Reply::Full {
        status: 500,
        headers: Vec::new(),
        body: format!(
            r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:{code}</faultcode><faultstring xml:lang="en-US">{code}</faultstring><detail><e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">{code}</e:ResponseCode><e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">{code}</e:Message><t:MessageXml xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><t:Value Name="BackOffMilliseconds">{back_off_ms}</t:Value></t:MessageXml></detail></s:Fault></s:Body></s:Envelope>"#
        ),
    }
}

fn stream(steps: Vec<Step>) -> Reply {
    Reply::Stream {
        headers: Vec::new(),
        steps,
    }
}

const COOKIE_SET: &str =
    "X-BackEndOverrideCookie=EXMBX01.corp.example.com~1941997017; path=/; secure; HttpOnly";
const COOKIE_VALUE: &str = "EXMBX01.corp.example.com~1941997017";

// --- the client ------------------------------------------------------------

fn plain_client(server: &Server, configure: impl FnOnce(&mut TransportConfig)) -> EwsClient {
    let mut config = TransportConfig {
        allow_plain_http: true,
        ..TransportConfig::default()
    };
    configure(&mut config);
    let transport = Arc::new(HttpTransport::new(config, None).unwrap());
    EwsClient::new(transport, server.url.clone())
        .with_resilience(ResilienceConfig {
            initial_back_off: Duration::from_millis(10),
            ..ResilienceConfig::default()
        })
        .unwrap()
}

fn ids(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("sub-{i}")).collect()
}

async fn next(
    stream: &mut notifications::EventStream,
) -> Option<Result<notifications::StreamingEvents, ews_toolkit::EwsError>> {
    tokio::time::timeout(GENEROUS, stream.next_message())
        .await
        .expect("the stream answers within the test's patience")
}

// --- the tests -------------------------------------------------------------

#[tokio::test]
async fn each_envelope_is_handed_out_as_it_arrives_however_the_chunks_cut_it() {
    let notification_read = Arc::new(Notify::new());
    let signal = notification_read.clone();
    let server = start(None, move |_, _| {
        let notification = created("sub-2", "item-1");
        let (head, tail) = notification.split_at(notification.len() / 3);
        stream(vec![
            Step::Send(keep_alive()),
            // One envelope in two chunks, the next starting in the second.
            Step::Send(head.to_owned()),
            Step::Send(format!("{tail}{}", &keep_alive()[..10])),
            Step::Send(keep_alive()[10..].to_owned()),
            // The rest only once the client has handed the event out: it
            // must not wait for the body's end.
            Step::WaitFor(signal.clone()),
            Step::Send(closed()),
        ])
    })
    .await;
    let client = plain_client(&server, |_| {});
    let affinity = Affinity::new("alice@corp.example.com");
    let mut stream = notifications::open_event_stream(
        &client,
        &ids(3),
        30,
        &affinity,
        None,
        StreamLimits::default(),
    )
    .await
    .unwrap();
    let first = next(&mut stream).await.unwrap().unwrap();
    assert_eq!(first.connection_status, Some(ConnectionStatus::Ok));
    assert!(first.notifications.is_empty());
    let event = next(&mut stream).await.unwrap().unwrap();
    assert_eq!(event.notifications.len(), 1);
    assert_eq!(event.notifications[0].subscription_id, "sub-2");
    assert_eq!(
        event.notifications[0].events[0].item_id.as_deref(),
        Some("item-1")
    );
    let again = next(&mut stream).await.unwrap().unwrap();
    assert!(again.notifications.is_empty());
    notification_read.notify_one();
    let last = next(&mut stream).await.unwrap().unwrap();
    assert_eq!(last.connection_status, Some(ConnectionStatus::Closed));
    assert!(next(&mut stream).await.is_none());
    assert!(next(&mut stream).await.is_none());

    let seen = server.seen_of("/GetStreamingEvents");
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].header("x-anchormailbox"),
        Some("alice@corp.example.com")
    );
    for id in ids(3) {
        assert!(
            seen[0].body.contains(&format!(">{id}<")),
            "{}",
            seen[0].body
        );
    }
    assert!(
        seen[0].body.contains("ConnectionTimeout>30<"),
        "{}",
        seen[0].body
    );
}

#[tokio::test]
async fn a_stream_cut_inside_an_envelope_is_an_error() {
    let server = start(None, |_, _| {
        let half = created("sub-1", "item-1");
        stream(vec![
            Step::Send(keep_alive()),
            Step::Send(half[..half.len() / 2].to_owned()),
            Step::Cut,
        ])
    })
    .await;
    let client = plain_client(&server, |_| {});
    let mut stream = notifications::open_event_stream(
        &client,
        &ids(1),
        1,
        &Affinity::new("alice@corp.example.com"),
        None,
        StreamLimits::default(),
    )
    .await
    .unwrap();
    assert!(next(&mut stream).await.unwrap().is_ok());
    let err = next(&mut stream).await.unwrap().unwrap_err();
    assert!(
        matches!(
            err.transport(),
            Some(TransportError::ConnectionReset { .. })
        ),
        "{err:?}"
    );
    assert!(next(&mut stream).await.is_none());
}

#[tokio::test]
async fn an_envelope_over_the_limit_is_an_error() {
    let server = start(None, |_, _| {
        let padding = " ".repeat(4096);
        let big = created("sub-1", &format!("item{padding}"));
        stream(vec![
            Step::Send(keep_alive()),
            Step::Send(big[..3000].to_owned()),
            Step::Send(big[3000..].to_owned()),
            Step::Send(closed()),
        ])
    })
    .await;
    let client = plain_client(&server, |_| {});
    let limits = StreamLimits {
        max_message_bytes: 2048,
        ..StreamLimits::default()
    };
    let mut stream = notifications::open_event_stream(
        &client,
        &ids(1),
        1,
        &Affinity::new("alice@corp.example.com"),
        None,
        limits,
    )
    .await
    .unwrap();
    assert!(next(&mut stream).await.unwrap().is_ok());
    let err = next(&mut stream).await.unwrap().unwrap_err();
    assert!(
        matches!(
            err.transport(),
            Some(TransportError::BodyTooLarge { limit: 2048, .. })
        ),
        "{err:?}"
    );
    assert!(next(&mut stream).await.is_none());
}

#[tokio::test]
async fn silence_longer_than_the_heartbeat_timeout_is_an_error() {
    let never = Arc::new(Notify::new());
    let server = start(None, move |_, _| {
        stream(vec![Step::Send(keep_alive()), Step::WaitFor(never.clone())])
    })
    .await;
    let client = plain_client(&server, |_| {});
    let limits = StreamLimits {
        heartbeat_timeout: Duration::from_millis(200),
        ..StreamLimits::default()
    };
    let mut stream = notifications::open_event_stream(
        &client,
        &ids(1),
        1,
        &Affinity::new("alice@corp.example.com"),
        None,
        limits,
    )
    .await
    .unwrap();
    assert!(next(&mut stream).await.unwrap().is_ok());
    let err = next(&mut stream).await.unwrap().unwrap_err();
    assert!(
        matches!(err.transport(), Some(TransportError::Timeout { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("heartbeat"), "{err}");
}

#[tokio::test]
async fn errors_for_some_subscriptions_are_data_for_all_a_refusal() {
    let server = start(None, |seen, _| {
        if seen.body.contains(">sub-3<") {
            // All three refused: the request failed.
            stream(vec![Step::Send(failure("ErrorSubscriptionNotFound", &[]))])
        } else {
            stream(vec![
                Step::Send(failure("ErrorSubscriptionNotFound", &["sub-2"])),
                Step::Send(closed()),
            ])
        }
    })
    .await;
    let client = plain_client(&server, |_| {});
    let affinity = Affinity::new("alice@corp.example.com");
    let mut stream = notifications::open_event_stream(
        &client,
        &ids(2),
        1,
        &affinity,
        None,
        StreamLimits::default(),
    )
    .await
    .unwrap();
    let first = next(&mut stream).await.unwrap().unwrap();
    assert_eq!(
        first.failed_subscriptions,
        [SubscriptionFailure {
            code: "ErrorSubscriptionNotFound".into(),
            message: "ErrorSubscriptionNotFound happened.".into(),
            subscription_ids: vec!["sub-2".into()],
        }]
    );
    let err = notifications::open_event_stream(
        &client,
        &ids(3),
        1,
        &affinity,
        None,
        StreamLimits::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.fault_code(), Some("ErrorSubscriptionNotFound"), "{err}");
}

#[tokio::test]
async fn too_many_connections_is_handed_back_at_once_busy_is_retried() {
    let server = start(None, |seen, index| {
        if seen.body.contains(">sub-2<") {
            return stream(vec![Step::Send(failure(
                "ErrorExceededConnectionCount",
                &[],
            ))]);
        }
        match index {
            0 => fault("ErrorServerBusy", 50),
            _ => stream(vec![Step::Send(keep_alive()), Step::Send(closed())]),
        }
    })
    .await;
    let client = plain_client(&server, |_| {});
    let affinity = Affinity::new("alice@corp.example.com");
    let mut stream = notifications::open_event_stream(
        &client,
        &ids(1),
        1,
        &affinity,
        None,
        StreamLimits::default(),
    )
    .await
    .expect("the busy answer is waited out and the request sent again");
    assert!(next(&mut stream).await.unwrap().is_ok());
    assert_eq!(server.seen().len(), 2);
    assert_eq!(client.stats().busy_answers, 1);

    let err = notifications::open_event_stream(
        &client,
        &ids(2),
        1,
        &affinity,
        None,
        StreamLimits::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.fault_code(),
        Some("ErrorExceededConnectionCount"),
        "{err}"
    );
    assert_eq!(server.seen().len(), 3, "not sent again");
}

#[tokio::test]
async fn a_group_keeps_affinity_and_streams_leave_the_pool_to_other_requests() {
    let held = Arc::new(Notify::new());
    let release = held.clone();
    let server = start(None, move |seen, _| match seen.action.rsplit('/').next() {
        Some("Subscribe") => Reply::Full {
            status: 200,
            headers: vec![("set-cookie", COOKIE_SET.to_owned())],
            body: if seen.body.contains("bob@") {
                subscribe_refused("ErrorAccessDenied")
            } else {
                subscribed("sub-1")
            },
        },
        Some("Unsubscribe") => Reply::Full {
            status: 200,
            headers: Vec::new(),
            body: if seen.body.contains(">gone<") {
                unsubscribed("Error", "ErrorSubscriptionNotFound")
            } else {
                unsubscribed("Success", "NoError")
            },
        },
        _ => stream(vec![
            Step::Send(keep_alive()),
            Step::WaitFor(release.clone()),
        ]),
    })
    .await;
    // One pooled connection: a held stream must not take it.
    let client = plain_client(&server, |c| c.max_connections_per_host = 1);
    let affinity = Affinity::new("alice@corp.example.com");

    let id = notifications::subscribe(
        &client,
        "carol@corp.example.com",
        MailboxAccess::Impersonation,
        &affinity,
    )
    .await
    .unwrap();
    assert_eq!(id, "sub-1");
    assert_eq!(affinity.backend_cookie().as_deref(), Some(COOKIE_VALUE));
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut stream = notifications::open_event_stream(
            &client,
            std::slice::from_ref(&id),
            30,
            &affinity,
            Some("carol@corp.example.com"),
            StreamLimits::default(),
        )
        .await
        .unwrap();
        assert!(next(&mut stream).await.unwrap().is_ok());
        streams.push(stream);
    }
    // Three streams held open, and still a request on the one pooled connection.
    let id = tokio::time::timeout(
        GENEROUS,
        notifications::subscribe(
            &client,
            "dave@corp.example.com",
            MailboxAccess::FolderRights,
            &affinity,
        ),
    )
    .await
    .expect("a held stream takes no pool permit")
    .unwrap();
    assert_eq!(id, "sub-1");
    let refused = notifications::subscribe(
        &client,
        "bob@corp.example.com",
        MailboxAccess::FolderRights,
        &affinity,
    )
    .await
    .unwrap_err();
    assert_eq!(refused.fault_code(), Some("ErrorAccessDenied"), "{refused}");
    notifications::unsubscribe(&client, "sub-1", Some("carol@corp.example.com"), &affinity)
        .await
        .unwrap();
    notifications::unsubscribe(&client, "gone", None, &affinity)
        .await
        .expect("a subscription Exchange no longer knows is gone as asked");
    held.notify_waiters();
    drop(streams);

    let seen = server.seen();
    let subscribes = server.seen_of("/Subscribe");
    assert_eq!(subscribes.len(), 3);
    // The first Subscribe asks for affinity and has no cookie yet; the
    // group's later requests carry the cookie it was answered with.
    assert_eq!(subscribes[0].header("cookie"), None);
    for request in &seen {
        assert_eq!(
            request.header("x-anchormailbox"),
            Some("alice@corp.example.com"),
            "{}",
            request.action
        );
        if request.action.ends_with("/Subscribe") {
            assert_eq!(request.header("x-preferserveraffinity"), Some("true"));
        } else {
            assert_eq!(request.header("x-preferserveraffinity"), None);
        }
    }
    for request in seen.iter().skip(1) {
        assert_eq!(
            request.header("cookie"),
            Some(format!("X-BackEndOverrideCookie={COOKIE_VALUE}").as_str()),
            "{}",
            request.action
        );
    }
    // Impersonation: ExchangeImpersonation, the calendar without <Mailbox>.
    let as_carol = &subscribes[0].body;
    assert!(
        as_carol.contains("ExchangeImpersonation") && as_carol.contains("carol@corp.example.com")
    );
    assert!(!as_carol.contains("<t:Mailbox>"), "{as_carol}");
    // Folder rights: the account itself, the calendar with <Mailbox>.
    let for_dave = &subscribes[1].body;
    assert!(!for_dave.contains("ExchangeImpersonation"), "{for_dave}");
    assert!(for_dave.contains("<t:EmailAddress>dave@corp.example.com</t:EmailAddress>"));
    for stream in server.seen_of("/GetStreamingEvents") {
        assert!(stream.body.contains("ExchangeImpersonation"));
    }
}

#[tokio::test]
async fn a_stream_authenticates_its_own_connection_with_ntlm_and_channel_binding() {
    let pki = TestPki::generate(&[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    pki.write_ca_pem(&ca_file).unwrap();
    let server = start(Some(&pki), |_, _| {
        stream(vec![
            Step::Send(keep_alive()),
            Step::Send(created("sub-1", "item-1")),
            Step::Send(closed()),
        ])
    })
    .await;
    let transport = Arc::new(
        HttpTransport::new(
            TransportConfig {
                ca_file: Some(ca_file),
                ..TransportConfig::default()
            },
            Some(Credentials::new("CONTOSO\\svc-calendar", PASSWORD, AuthScheme::Ntlm).unwrap()),
        )
        .unwrap(),
    );
    let client = EwsClient::new(transport.clone(), server.url.clone());
    for _ in 0..2 {
        let mut stream = notifications::open_event_stream(
            &client,
            &ids(1),
            1,
            &Affinity::new("alice@corp.example.com"),
            None,
            StreamLimits::default(),
        )
        .await
        .unwrap();
        let mut notifications = 0;
        while let Some(message) = next(&mut stream).await {
            notifications += message.unwrap().notifications.len();
        }
        assert_eq!(notifications, 1);
    }
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen
        .iter()
        .all(|s| s.user.as_deref() == Some("CONTOSO\\svc-calendar")));
    // Each stream on a connection of its own, each authenticated.
    assert_eq!(transport.stats().connections_opened, 2);
    assert_eq!(transport.stats().ntlm_handshakes, 2);
}

#[tokio::test]
async fn dropping_a_stream_closes_its_connection() {
    // Exchange counts held connections against HangingConnectionLimit: a
    // stream given up must not hold one.
    let gone = Arc::new(Notify::new());
    let server_gone = gone.clone();
    let server = start(None, move |_, _| {
        stream(vec![Step::KeepAliveUntilGone(server_gone.clone())])
    })
    .await;
    let client = plain_client(&server, |_| {});
    let mut stream = notifications::open_event_stream(
        &client,
        &ids(1),
        30,
        &Affinity::new("alice@corp.example.com"),
        None,
        StreamLimits::default(),
    )
    .await
    .unwrap();
    assert!(next(&mut stream).await.unwrap().is_ok());
    drop(stream);
    tokio::time::timeout(GENEROUS, gone.notified())
        .await
        .expect("the server sees the connection closed");
}

#[tokio::test]
async fn a_busy_subscribe_answer_is_waited_out_and_sent_again() {
    // Inside a 200 answer, as a response message: paced and retried as the
    // SOAP fault is, under the client's shared pause.
    let server = start(None, |_, index| Reply::Full {
        status: 200,
        headers: Vec::new(),
        body: match index {
            0 => subscribe_refused("ErrorServerBusy"),
            _ => subscribed("sub-7"),
        },
    })
    .await;
    let client = plain_client(&server, |_| {});
    let id = notifications::subscribe(
        &client,
        "alice@corp.example.com",
        MailboxAccess::FolderRights,
        &Affinity::new("alice@corp.example.com"),
    )
    .await
    .unwrap();
    assert_eq!(id, "sub-7");
    assert_eq!(server.seen().len(), 2);
    assert_eq!(client.stats().busy_answers, 1);
}
