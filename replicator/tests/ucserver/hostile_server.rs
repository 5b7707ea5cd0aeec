//! Servers that lie (issue #15): a "UCServer" whose createsession answer
//! never ends must not fill the client's memory. The client reads at most
//! `MAX_CREATESESSION_BODY` bytes of it and hangs up with a clear error.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use ews_calendar_replicator::ucserver::transport::MAX_CREATESESSION_BODY;
use ews_calendar_replicator::ucserver::{UcError, UcServerClient, UcServerSettings};

/// Accepts one connection, reads the request head and answers 200 with a
/// chunked body that does not end; returns the bytes of body it managed to
/// write before the client hung up. (It stops writing after 64 MiB and then
/// only waits, so that a client without a limit fails by its timeout, not
/// by exhausting the test machine's memory.)
async fn endless_createsession(listener: TcpListener) -> u64 {
    let (mut tcp, _) = listener.accept().await.unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(n > 0, "the client sent no request");
        head.extend_from_slice(&buf[..n]);
    }
    tcp.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\ne\r\n{\"sessionid\":\"\r\n",
    )
    .await
    .ok();
    let chunk = format!("1000\r\n{}\r\n", "A".repeat(0x1000));
    let mut written = 0u64;
    // Until the client closes: every write then fails.
    while written < 64 << 20 && tcp.write_all(chunk.as_bytes()).await.is_ok() {
        written += 0x1000;
    }
    while tcp.read(&mut buf).await.is_ok_and(|n| n > 0) {}
    written
}

#[tokio::test]
async fn an_endless_createsession_answer_is_cut_off_at_the_limit() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(endless_createsession(listener));
    let mut settings =
        UcServerSettings::new(format!("http://{addr}/").parse().unwrap(), "ucadmin", "pw");
    // Long enough that only the limit, not the timeout, can end it.
    settings.connect_timeout = Duration::from_secs(60);
    let err = UcServerClient::connect(settings)
        .await
        .err()
        .expect("no session from an endless answer");
    match &err {
        UcError::Protocol {
            operation: "createsession",
            reason,
        } => {
            assert!(
                reason.contains(&MAX_CREATESESSION_BODY.to_string()),
                "{reason}"
            );
            assert!(reason.contains("ucserver.url"), "{reason}");
        }
        other => panic!("expected the length limit error, got {other:?}"),
    }
    // The client hung up: the server's writes ended.
    let written = server.await.unwrap();
    assert!(
        (MAX_CREATESESSION_BODY as u64..64 << 20).contains(&written),
        "{written}"
    );
}
