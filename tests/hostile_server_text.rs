//! Issue #15 (Low): text a server sends (an HTTP error body, a SOAP fault
//! string) reaches errors, log lines, `once` and `status` only without
//! control characters, so it cannot forge a log line or drive the terminal.
//! Exchange stands on loopback as a plain HTTP server that answers every
//! request with the hostile text.
#![cfg(feature = "sim")]

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use ews_calendar_replicator::ews::availability::AvailabilityView;
use ews_calendar_replicator::ews::transport::{HttpTransport, TransportConfig};
use ews_calendar_replicator::ews::EwsClient;
use ews_calendar_replicator::sim::http::{plain_response, SimHttpServer};
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

async fn error_from(server: &SimHttpServer) -> String {
    let transport = HttpTransport::new(
        TransportConfig {
            allow_plain_http: true,
            ..TransportConfig::default()
        },
        None,
    )
    .unwrap();
    let url = format!("http://{}/EWS/Exchange.asmx", server.local_addr());
    let client = EwsClient::new(Arc::new(transport), url.parse().unwrap());
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
