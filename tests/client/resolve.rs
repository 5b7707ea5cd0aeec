//! The transport's fixed host addresses (`TransportConfig::resolve`, like
//! curl's `--connect-to`): the connection goes to the configured address
//! while the `Host` header and the TLS name check keep the URL's host.

use std::collections::HashMap;
use std::net::SocketAddr;

use bytes::Bytes;
use ews_toolkit::sim::http::{ServerRequest, SimHttpServer};
use ews_toolkit::sim::tls::TestPki;
use ews_toolkit::transport::{HttpTransport, TransportConfig, TransportError};
use http::StatusCode;
use url::Url;

async fn echo_host(request: ServerRequest) -> http::Response<Bytes> {
    let host = request
        .request
        .headers()
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    http::Response::new(Bytes::from(format!("host={host}")))
}

struct Fixture {
    server: SimHttpServer,
    _dir: tempfile::TempDir,
    ca_file: std::path::PathBuf,
}

async fn fixture() -> Fixture {
    let pki = TestPki::generate(&["mail.corp.example.test"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    pki.write_ca_pem(&ca_file).unwrap();
    let server = SimHttpServer::start("127.0.0.1:0", Some(pki.server_config()), None, echo_host)
        .await
        .unwrap();
    Fixture {
        server,
        _dir: dir,
        ca_file,
    }
}

fn transport(fixture: &Fixture, resolve: &[(&str, u16, SocketAddr)]) -> HttpTransport {
    let config = TransportConfig {
        ca_file: Some(fixture.ca_file.clone()),
        resolve: resolve
            .iter()
            .map(|(host, port, addr)| (((*host).to_owned(), *port), *addr))
            .collect::<HashMap<_, _>>(),
        ..TransportConfig::default()
    };
    HttpTransport::new(config, None).unwrap()
}

#[tokio::test]
async fn a_configured_address_replaces_dns_and_the_url_host_stays_in_host_and_tls() {
    let fixture = fixture().await;
    let addr = fixture.server.local_addr();
    let transport = transport(&fixture, &[("mail.corp.example.test", 443, addr)]);
    let url = Url::parse("https://mail.corp.example.test/EWS/Exchange.asmx").unwrap();
    let response = transport.get_anonymous(&url).await.unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(
        String::from_utf8_lossy(&response.body),
        "host=mail.corp.example.test"
    );
    assert_eq!(fixture.server.requests(), 1);
}

#[tokio::test]
async fn the_certificate_is_still_checked_against_the_url_host() {
    let fixture = fixture().await;
    let addr = fixture.server.local_addr();
    // The address is the right server, but its certificate does not name
    // this host: the override must not weaken the name check.
    let transport = transport(&fixture, &[("other.corp.example.test", 443, addr)]);
    let url = Url::parse("https://other.corp.example.test/EWS/Exchange.asmx").unwrap();
    let error = transport.get_anonymous(&url).await.unwrap_err();
    assert!(
        matches!(error, TransportError::Tls { ref host, .. } if host == "other.corp.example.test"),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_override_is_per_port_and_a_closed_address_is_named_in_the_error() {
    let fixture = fixture().await;
    let addr = fixture.server.local_addr();
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let transport = transport(
        &fixture,
        &[
            ("mail.corp.example.test", 443, addr),
            ("mail.corp.example.test", 8443, closed),
        ],
    );
    let url = Url::parse("https://mail.corp.example.test:8443/EWS/Exchange.asmx").unwrap();
    let error = transport.get_anonymous(&url).await.unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(error, TransportError::Connect { port: 8443, .. }),
        "{error:?}"
    );
    assert!(text.contains(&closed.to_string()), "{text}");
    assert_eq!(fixture.server.requests(), 0);
}
