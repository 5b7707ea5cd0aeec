//! Issue #15 (Low): text a server sends (an HTTP error body, a SOAP fault
//! string, a per-mailbox message, a UCServer error string) reaches errors,
//! log lines, `once` and `status` only without control characters, so it
//! cannot forge a log line or drive the terminal. Exchange and the UCServer
//! stand on loopback as plain servers that answer every request with the
//! hostile text.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use ews_calendar_replicator::ucserver::{UcServerClient, UcServerSettings};
use ews_toolkit::availability::AvailabilityView;
use ews_toolkit::sim::http::{plain_response, SimHttpServer};
use ews_toolkit::transport::{HttpTransport, TransportConfig};
use ews_toolkit::EwsClient;
use http::StatusCode;

const FORGED: &str = "2026-12-04T00:00:00.000000Z ERROR ews_calendar_replicator: forged";

async fn exchange_answering(
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> SimHttpServer {
    SimHttpServer::start("127.0.0.1:0", None, None, move |_request| {
        let mut response = plain_response(status, "");
        *response.body_mut() = bytes::Bytes::from(body.clone());
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(content_type),
        );
        async move { response }
    })
    .await
    .unwrap()
}

fn client_of(server: &SimHttpServer) -> EwsClient {
    let transport = HttpTransport::new(
        TransportConfig {
            allow_plain_http: true,
            ..TransportConfig::default()
        },
        None,
    )
    .unwrap();
    let url = format!("http://{}/EWS/Exchange.asmx", server.local_addr());
    EwsClient::new(Arc::new(transport), url.parse().unwrap())
}

async fn error_from(server: &SimHttpServer) -> String {
    let client = client_of(server);
    let start = Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap();
    client
        .get_user_availability(
            &["alice@corp.example.test".to_owned()],
            start,
            start + chrono::Duration::days(1),
            AvailabilityView::Detailed,
        )
        .await
        .unwrap_err()
        .to_string()
}

fn assert_inert(text: &str) {
    assert!(!text.chars().any(char::is_control), "{text:?}");
    assert!(!text.contains('\u{1b}'), "{text:?}");
}

#[tokio::test]
async fn an_exchange_error_body_with_escapes_and_a_newline_is_inert_in_the_error() {
    let body = format!("\u{1b}[2J\u{1b}]0;pwned\u{7}boom\u{1b}[0m\r\n{FORGED}\n");
    let server = exchange_answering(StatusCode::BAD_REQUEST, "text/plain", body).await;

    let error = error_from(&server).await;

    assert_inert(&error);
    assert!(
        error.contains(&format!("boom\u{fffd}[0m  {FORGED}")),
        "{error}"
    );
}

#[tokio::test]
async fn a_soap_fault_string_with_line_breaks_is_inert_in_the_error() {
    let body = format!(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>bad&#13;&#10;{FORGED}&#x85;x</faultstring></s:Fault></s:Body></s:Envelope>"#
    );
    let server = exchange_answering(
        StatusCode::INTERNAL_SERVER_ERROR,
        "text/xml; charset=utf-8",
        body,
    )
    .await;

    let error = error_from(&server).await;

    assert_inert(&error);
    assert!(error.contains(&format!("bad  {FORGED} x")), "{error}");
}

/// A per-mailbox error inside a good answer: its `MessageText` carries a
/// line break and a C1 CSI (U+009B, which some terminals take as ESC [),
/// both legal in XML. The user's error, what `once` and `status` print and
/// the state database keep, is one inert line.
#[tokio::test]
async fn a_per_mailbox_message_with_a_line_break_and_a_c1_escape_is_inert() {
    let body = format!(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><GetUserAvailabilityResponse xmlns="http://schemas.microsoft.com/exchange/services/2006/messages"><FreeBusyResponseArray><FreeBusyResponse><ResponseMessage ResponseClass="Error"><MessageText>denied&#10;{FORGED}&#x9b;31m</MessageText><ResponseCode>ErrorNoFreeBusyAccess</ResponseCode></ResponseMessage></FreeBusyResponse></FreeBusyResponseArray></GetUserAvailabilityResponse></s:Body></s:Envelope>"#
    );
    let server = exchange_answering(StatusCode::OK, "text/xml; charset=utf-8", body).await;
    let answers = client_of(&server)
        .get_user_availability(
            &["alice@corp.example.test".to_owned()],
            Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 1, 6, 0, 0, 0).unwrap(),
            AvailabilityView::Detailed,
        )
        .await
        .expect("a good answer with one mailbox's error");
    let error = answers[0]
        .result
        .as_ref()
        .expect_err("the mailbox's error")
        .to_string();

    assert_inert(&error);
    assert!(
        error.contains(&format!("denied {FORGED}\u{fffd}31m")),
        "{error}"
    );
}

/// The UCServer refusing createsession with its JSON error: the text it
/// gives goes into the error without its escapes and line breaks.
#[tokio::test]
async fn a_ucserver_createsession_refusal_with_escapes_is_inert() {
    let refusal = serde_json::json!({"error": {
        "iErrorDetail": 7,
        "u8sErrorString": format!("\u{1b}[2Jno\r\n{FORGED}\u{7}"),
    }})
    .to_string();
    let server = exchange_answering(StatusCode::BAD_REQUEST, "application/json", refusal).await;
    let url = format!("http://{}/", server.local_addr());
    let settings = UcServerSettings::new(url.parse().unwrap(), "ucadmin", "pw");

    let error = UcServerClient::connect(settings)
        .await
        .err()
        .expect("createsession refused")
        .to_string();

    assert_inert(&error);
    assert!(
        error.contains(&format!("\u{fffd}[2Jno  {FORGED}\u{fffd}")),
        "{error}"
    );
}

/// A "UCServer" on the native port (tcp://) that answers the client's first
/// invoke with a ROSE error whose `u8sErrorString` holds escapes and a
/// forged log line.
#[tokio::test]
async fn a_ucserver_rose_error_string_with_escapes_is_inert() {
    use bytes::BytesMut;
    use ews_calendar_replicator::ucserver::framing::{decode_frame, encode_frame};
    use ews_calendar_replicator::ucserver::rose::RoseMessage;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = BytesMut::new();
        let invoke = loop {
            if let Some(frame) = decode_frame(&mut buf).unwrap() {
                break frame;
            }
            if tcp.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                return;
            }
        };
        let RoseMessage::Invoke(invoke) = RoseMessage::from_json(&invoke).unwrap() else {
            panic!("the client's first message is an invoke: {invoke}");
        };
        let error = RoseMessage::error(
            invoke.invoke_id,
            serde_json::json!({
                "iErrorDetail": 7,
                "u8sErrorString": format!("\u{1b}]0;pwned\u{7}no\n{FORGED}\u{1b}[0m"),
            }),
        );
        let mut out = BytesMut::new();
        encode_frame(&error.to_json(), &mut out).unwrap();
        let _ = tcp.write_all(&out).await;
        let mut rest = [0u8; 4096];
        while tcp.read(&mut rest).await.is_ok_and(|n| n > 0) {}
    });
    let settings = UcServerSettings::new(format!("tcp://{addr}").parse().unwrap(), "ucadmin", "pw");

    let error = UcServerClient::connect(settings)
        .await
        .err()
        .expect("the first invoke failed")
        .to_string();

    assert_inert(&error);
    assert!(
        error.contains(&format!("\u{fffd}]0;pwned\u{fffd}no {FORGED}\u{fffd}[0m")),
        "{error}"
    );
}

/// A peer on the UCServer's native port that answers the client's first
/// message (the negotiate, invoke 1) with `json`, framed.
async fn native_peer_answering(json: String) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = tcp.read(&mut buf).await;
        let mut frame = bytes::BytesMut::new();
        ews_calendar_replicator::ucserver::framing::encode_frame(&json, &mut frame).unwrap();
        let _ = tcp.write_all(&frame).await;
        // Held open: the client ends the exchange.
        let _ = tcp.read(&mut buf).await;
    });
    addr
}

#[tokio::test]
async fn a_native_port_answer_to_another_invoke_is_inert_in_the_error() {
    use ews_calendar_replicator::ucserver::{UcServerClient, UcServerSettings};
    // JSON allows line breaks between tokens: the answer's text, quoted in
    // the error, would otherwise start a forged log line.
    let answer = format!("{{\"result\":{{\"invokeID\":77,\r\n\"sessionID\":\"{FORGED}\"}}}}");
    let addr = native_peer_answering(answer).await;
    let mut settings =
        UcServerSettings::new(format!("tcp://{addr}/").parse().unwrap(), "ucadmin", "pw");
    settings.connect_timeout = std::time::Duration::from_secs(20);

    let error = UcServerClient::connect(settings)
        .await
        .err()
        .expect("an answer to another invoke fails the logon")
        .to_string();

    assert_inert(&error);
    assert!(error.contains("invoke 1"), "{error}");
    assert!(
        error.contains(&format!("  \"sessionID\":\"{FORGED}")),
        "{error}"
    );
}
