//! The EWS HTTP transport against a real TLS server on loopback that
//! authenticates like Exchange (sim::http + sim::auth + sim::tls).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ews_toolkit::sim::auth::{Account, AuthFailure, AuthPolicy, Authenticator};
use ews_toolkit::sim::http::{ServerRequest, SimHttpServer};
use ews_toolkit::sim::tls::TestPki;
use ews_toolkit::transport::{
    certificate_hash, AuthScheme, Credentials, HttpRequest, HttpTransport, TransportConfig,
    TransportError,
};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use url::Url;

const PASSWORD: &str = "Corr3ct-Horse!";

struct Setup {
    pki: TestPki,
    _dir: tempfile::TempDir,
    ca_file: std::path::PathBuf,
}

fn setup() -> Setup {
    setup_with(TestPki::generate(&[]).unwrap())
}

fn setup_with(pki: TestPki) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    pki.write_ca_pem(&ca_file).unwrap();
    Setup {
        pki,
        _dir: dir,
        ca_file,
    }
}

/// Echoes who the request was authenticated as and what it carried.
async fn echo(request: ServerRequest) -> http::Response<Bytes> {
    let header = |name: &str| {
        request
            .request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    let text = format!(
        "user={}\nsoapaction={}\nanchor={}\ncontent-type={}\nbody={}",
        request.user.as_deref().unwrap_or("-"),
        header("soapaction"),
        header("x-anchormailbox"),
        header("content-type"),
        String::from_utf8_lossy(request.request.body())
    );
    http::Response::new(Bytes::from(text))
}

async fn start_server(
    setup: &Setup,
    configure: impl FnOnce(&mut AuthPolicy),
) -> (SimHttpServer, Arc<Authenticator>) {
    let mut policy = AuthPolicy::new(vec![Account::new("CONTOSO", "svc-calendar", PASSWORD)]);
    policy.server_certificate = Some(setup.pki.leaf_der().to_vec());
    configure(&mut policy);
    let auth = Arc::new(Authenticator::new(policy));
    let server = SimHttpServer::start(
        "127.0.0.1:0",
        Some(setup.pki.server_config()),
        Some(auth.clone()),
        echo,
    )
    .await
    .unwrap();
    (server, auth)
}

fn client(setup: &Setup, user: &str, password: &str, scheme: AuthScheme) -> HttpTransport {
    client_with(
        setup,
        Some(Credentials::new(user, password, scheme).unwrap()),
        |_| {},
    )
}

fn client_with(
    setup: &Setup,
    credentials: Option<Credentials>,
    configure: impl FnOnce(&mut TransportConfig),
) -> HttpTransport {
    let mut config = TransportConfig {
        ca_file: Some(setup.ca_file.clone()),
        ..TransportConfig::default()
    };
    configure(&mut config);
    HttpTransport::new(config, credentials).unwrap()
}

fn ews_url(server: &SimHttpServer, host: &str) -> Url {
    Url::parse(&format!(
        "https://{host}:{}/EWS/Exchange.asmx",
        server.local_addr().port()
    ))
    .unwrap()
}

fn body_text(body: &Bytes) -> String {
    String::from_utf8_lossy(body).into_owned()
}

#[tokio::test]
async fn ntlm_handshake_authenticates_the_connection_and_later_requests_reuse_it() {
    let setup = setup();
    let (server, auth) = start_server(&setup, |_| {}).await;
    let transport = client(&setup, "CONTOSO\\svc-calendar", PASSWORD, AuthScheme::Ntlm);
    let url = ews_url(&server, "localhost");
    for n in 0..3 {
        let mut extra = HeaderMap::new();
        extra.insert(
            HeaderName::from_static("x-anchormailbox"),
            HeaderValue::from_static("room1@contoso.test"),
        );
        let response = transport
            .post_soap(
                &url,
                "http://schemas.microsoft.com/exchange/services/2006/messages/GetUserAvailability",
                format!("<request n='{n}'/>"),
                extra,
            )
            .await
            .unwrap();
        assert_eq!(response.status, StatusCode::OK);
        let text = body_text(&response.body);
        assert!(text.contains("user=CONTOSO\\svc-calendar"), "{text}");
        assert!(text.contains(&format!("body=<request n='{n}'/>")), "{text}");
        assert!(text.contains("anchor=room1@contoso.test"), "{text}");
        assert!(
            text.contains("content-type=text/xml; charset=utf-8"),
            "{text}"
        );
        assert!(
            text.contains("soapaction=\"http://schemas.microsoft.com/exchange/services/2006/messages/GetUserAvailability\""),
            "{text}"
        );
    }
    let counters = auth.counters();
    assert_eq!(counters.ntlm_challenges, 1, "{counters:?}");
    assert_eq!(counters.ntlm_authenticated, 1, "{counters:?}");
    assert_eq!(counters.failures, 0, "{counters:?}");
    assert_eq!(server.connections(), 1);
    let stats = transport.stats();
    assert_eq!(stats.connections_opened, 1);
    assert_eq!(stats.ntlm_handshakes, 1);
}

#[tokio::test]
async fn a_401_on_an_authenticated_connection_triggers_a_new_handshake_on_it() {
    let setup = setup();
    let (server, auth) = start_server(&setup, |_| {}).await;
    let transport = client(&setup, "CONTOSO\\svc-calendar", PASSWORD, AuthScheme::Ntlm);
    let url = ews_url(&server, "localhost");
    let first = transport.send(HttpRequest::get(url.clone())).await.unwrap();
    assert_eq!(first.status, StatusCode::OK);
    auth.forget_connections();
    let second = transport
        .post_soap(&url, "a", "<after-recycle/>", HeaderMap::new())
        .await
        .unwrap();
    assert_eq!(second.status, StatusCode::OK);
    assert!(body_text(&second.body).contains("body=<after-recycle/>"));
    assert_eq!(auth.counters().ntlm_authenticated, 2);
    assert_eq!(
        server.connections(),
        1,
        "re-authenticated on the same connection"
    );
    assert_eq!(transport.stats().ntlm_handshakes, 2);
}

#[tokio::test]
async fn ntlm_with_a_user_principal_name() {
    let setup = setup();
    let (server, auth) = start_server(&setup, |_| {}).await;
    let transport = client(
        &setup,
        "svc-calendar@contoso.test",
        PASSWORD,
        AuthScheme::Ntlm,
    );
    let response = transport
        .send(HttpRequest::get(ews_url(&server, "localhost")))
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert!(body_text(&response.body).contains("user=CONTOSO\\svc-calendar"));
    assert_eq!(auth.counters().ntlm_authenticated, 1);
}

#[tokio::test]
async fn negotiate_without_a_kerberos_realm_falls_back_to_ntlm_tokens() {
    let setup = setup();
    let (server, auth) = start_server(&setup, |_| {}).await;
    let transport = client(
        &setup,
        "CONTOSO\\svc-calendar",
        PASSWORD,
        AuthScheme::Negotiate,
    );
    let response = transport
        .send(HttpRequest::get(ews_url(&server, "localhost")))
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(auth.counters().ntlm_authenticated, 1);
    // a NetBIOS domain is no Kerberos realm: Kerberos could not start
    let reason = transport.last_ntlm_fallback_reason().unwrap();
    assert!(reason.contains("no realm"), "{reason}");
}

#[tokio::test]
async fn concurrent_requests_share_a_bounded_pool_of_authenticated_connections() {
    let setup = setup();
    let (server, auth) = start_server(&setup, |_| {}).await;
    let transport = client_with(
        &setup,
        Some(Credentials::new("CONTOSO\\svc-calendar", PASSWORD, AuthScheme::Ntlm).unwrap()),
        |c| c.max_connections_per_host = 2,
    );
    let url = ews_url(&server, "localhost");
    let mut tasks = Vec::new();
    for n in 0..8 {
        let transport = transport.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            transport
                .post_soap(&url, "a", format!("{n}"), HeaderMap::new())
                .await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().status, StatusCode::OK);
    }
    let connections = server.connections();
    assert!((1..=2).contains(&connections), "{connections} connections");
    // Every connection authenticated exactly once, however many requests it carried.
    assert_eq!(auth.counters().ntlm_authenticated, connections);
    assert_eq!(transport.stats().ntlm_handshakes, connections);
}

#[tokio::test]
async fn wrong_password_names_the_offered_and_tried_schemes() {
    let setup = setup();
    let (server, auth) = start_server(&setup, |_| {}).await;
    let transport = client(
        &setup,
        "CONTOSO\\svc-calendar",
        "not-the-password",
        AuthScheme::Ntlm,
    );
    let err = transport
        .send(HttpRequest::get(ews_url(&server, "localhost")))
        .await
        .unwrap_err();
    let TransportError::Auth { offered, tried, .. } = &err else {
        panic!("expected an authentication error, got {err:?}");
    };
    assert_eq!(offered, &["Negotiate", "NTLM", "Basic"]);
    assert_eq!(*tried, AuthScheme::Ntlm);
    let message = err.to_string();
    assert!(
        message.contains("refused authentication with NTLM"),
        "{message}"
    );
    assert!(
        message.contains("offers: Negotiate, NTLM, Basic"),
        "{message}"
    );
    assert!(!message.contains("not-the-password"), "{message}");
    assert!(!err.is_retryable());
    assert_eq!(
        auth.counters().last_failure,
        Some(AuthFailure::WrongPassword("CONTOSO\\svc-calendar".into()))
    );
}

#[tokio::test]
async fn anonymous_requests_get_401_offering_negotiate_and_ntlm() {
    let setup = setup();
    let (server, auth) = start_server(&setup, |p| p.basic = false).await;
    let transport = client_with(&setup, None, |_| {});
    let response = transport
        .get_anonymous(&ews_url(&server, "localhost"))
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    let offered: Vec<_> = response
        .headers
        .get_all(http::header::WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(offered, ["Negotiate", "NTLM"]);
    assert_eq!(auth.counters().anonymous, 1);
}

#[tokio::test]
async fn extended_protection_accepts_the_channel_binding_of_the_connection() {
    let setup = setup();
    let (server, auth) = start_server(&setup, |p| p.extended_protection = true).await;
    let transport = client(&setup, "CONTOSO\\svc-calendar", PASSWORD, AuthScheme::Ntlm);
    let response = transport
        .send(HttpRequest::get(ews_url(&server, "localhost")))
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(auth.counters().ntlm_authenticated, 1);
}

#[tokio::test]
async fn extended_protection_with_a_sha384_certificate() {
    let pki = TestPki::generate_with(&[], &rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    // RFC 5929: the binding hashes with the certificate's own hash, SHA-384 here.
    use sha2::Digest;
    assert_eq!(
        certificate_hash(pki.leaf_der()),
        sha2::Sha384::digest(pki.leaf_der().as_ref()).to_vec()
    );
    let setup = setup_with(pki);
    let (server, auth) = start_server(&setup, |p| p.extended_protection = true).await;
    let transport = client(&setup, "CONTOSO\\svc-calendar", PASSWORD, AuthScheme::Ntlm);
    let response = transport
        .send(HttpRequest::get(ews_url(&server, "localhost")))
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(auth.counters().ntlm_authenticated, 1);
}

#[tokio::test]
async fn extended_protection_refuses_a_client_without_channel_binding() {
    let setup = setup();
    let (server, auth) = start_server(&setup, |p| p.extended_protection = true).await;
    let transport = client_with(
        &setup,
        Some(Credentials::new("CONTOSO\\svc-calendar", PASSWORD, AuthScheme::Ntlm).unwrap()),
        |c| c.channel_binding = false,
    );
    let err = transport
        .send(HttpRequest::get(ews_url(&server, "localhost")))
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Auth { .. }), "{err:?}");
    assert!(err.to_string().contains("enable channel binding"), "{err}");
    assert_eq!(
        auth.counters().last_failure,
        Some(AuthFailure::ChannelBindingMissing)
    );
    assert_eq!(auth.counters().ntlm_authenticated, 0);
}

#[tokio::test]
async fn basic_authentication_succeeds_and_fails_by_password() {
    let setup = setup();
    let (server, auth) = start_server(&setup, |_| {}).await;
    let url = ews_url(&server, "localhost");
    let good = client(&setup, "CONTOSO\\svc-calendar", PASSWORD, AuthScheme::Basic);
    let response = good.send(HttpRequest::get(url.clone())).await.unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert!(body_text(&response.body).contains("user=CONTOSO\\svc-calendar"));
    assert_eq!(auth.counters().basic_authenticated, 1);

    let bad = client(&setup, "CONTOSO\\svc-calendar", "wrong", AuthScheme::Basic);
    let err = bad.send(HttpRequest::get(url)).await.unwrap_err();
    let TransportError::Auth { tried, offered, .. } = &err else {
        panic!("expected an authentication error, got {err:?}");
    };
    assert_eq!(*tried, AuthScheme::Basic);
    assert!(offered.contains(&"Basic".to_owned()));
    assert_eq!(
        auth.counters().last_failure,
        Some(AuthFailure::WrongPassword("CONTOSO\\svc-calendar".into()))
    );
}

#[tokio::test]
async fn plain_http_and_basic_without_tls_need_explicit_permission() {
    let mut policy = AuthPolicy::new(vec![Account::new("CONTOSO", "svc-calendar", PASSWORD)]);
    policy.ntlm = false;
    let auth = Arc::new(Authenticator::new(policy));
    let server = SimHttpServer::start("127.0.0.1:0", None, Some(auth.clone()), echo)
        .await
        .unwrap();
    let url = Url::parse(&format!(
        "http://127.0.0.1:{}/EWS/Exchange.asmx",
        server.local_addr().port()
    ))
    .unwrap();
    let credentials =
        || Some(Credentials::new("CONTOSO\\svc-calendar", PASSWORD, AuthScheme::Basic).unwrap());
    let setup = setup();

    let no_plain = client_with(&setup, credentials(), |_| {});
    let err = no_plain
        .send(HttpRequest::get(url.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Config(_)), "{err:?}");
    assert!(err.to_string().contains("refusing plain http://"), "{err}");

    let plain_only = client_with(&setup, credentials(), |c| c.allow_plain_http = true);
    let err = plain_only
        .send(HttpRequest::get(url.clone()))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("refusing Basic authentication over plain http://"),
        "{err}"
    );
    assert_eq!(
        server.requests(),
        0,
        "nothing may be sent before the refusal"
    );

    let allowed = client_with(&setup, credentials(), |c| {
        c.allow_plain_http = true;
        c.allow_basic_without_tls = true;
    });
    let response = allowed.send(HttpRequest::get(url)).await.unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(auth.counters().basic_authenticated, 1);
}

#[tokio::test]
async fn missing_ca_gives_the_unknown_issuer_error_with_the_fix() {
    let setup = setup();
    let (server, _auth) = start_server(&setup, |_| {}).await;
    let transport = client_with(
        &setup,
        Some(Credentials::new("CONTOSO\\svc-calendar", PASSWORD, AuthScheme::Ntlm).unwrap()),
        |c| c.ca_file = None,
    );
    let err = transport
        .send(HttpRequest::get(ews_url(&server, "localhost")))
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Tls { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("localhost"), "{message}");
    assert!(message.contains("unknown issuer"), "{message}");
    assert!(message.contains("set `ca_file`"), "{message}");
}

#[tokio::test]
async fn wrong_host_name_gives_the_name_mismatch_error() {
    let setup = setup();
    let mut policy = AuthPolicy::new(vec![Account::new("CONTOSO", "svc-calendar", PASSWORD)]);
    policy.server_certificate = Some(setup.pki.leaf_der().to_vec());
    let auth = Arc::new(Authenticator::new(policy));
    // 127.0.0.2 is loopback too, but the certificate names only localhost and 127.0.0.1.
    let server = SimHttpServer::start(
        "127.0.0.2:0",
        Some(setup.pki.server_config()),
        Some(auth),
        echo,
    )
    .await
    .unwrap();
    let transport = client(&setup, "CONTOSO\\svc-calendar", PASSWORD, AuthScheme::Ntlm);
    let err = transport
        .send(HttpRequest::get(ews_url(&server, "127.0.0.2")))
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Tls { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("127.0.0.2"), "{message}");
    assert!(message.contains("name mismatch"), "{message}");
}

#[tokio::test]
async fn a_response_over_the_size_limit_is_refused() {
    let setup = setup();
    let server = SimHttpServer::start(
        "127.0.0.1:0",
        Some(setup.pki.server_config()),
        None,
        |_request| async { http::Response::new(Bytes::from(vec![b'x'; 300_000])) },
    )
    .await
    .unwrap();
    let transport = client_with(&setup, None, |c| c.max_response_bytes = 100_000);
    let err = transport
        .send(HttpRequest::get(ews_url(&server, "localhost")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, TransportError::BodyTooLarge { limit: 100_000, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("larger than the limit of 100000 bytes"),
        "{err}"
    );

    let roomy = client_with(&setup, None, |c| c.max_response_bytes = 300_000);
    let response = roomy
        .send(HttpRequest::get(ews_url(&server, "localhost")))
        .await
        .unwrap();
    assert_eq!(response.body.len(), 300_000);
}

#[tokio::test]
async fn a_server_that_does_not_answer_times_out() {
    let setup = setup();
    let server = SimHttpServer::start(
        "127.0.0.1:0",
        Some(setup.pki.server_config()),
        None,
        |_request| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            http::Response::new(Bytes::new())
        },
    )
    .await
    .unwrap();
    let transport = client_with(&setup, None, |c| {
        c.request_timeout = Duration::from_millis(300)
    });
    let err = transport
        .send(HttpRequest::get(ews_url(&server, "localhost")))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::Timeout {
                what: "the request",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert!(err.to_string().contains("request timeout"), "{err}");
}

#[tokio::test]
async fn a_connection_reset_mid_response_is_a_retryable_error() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let setup = setup();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(setup.pki.server_config());
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.unwrap();
        let mut request = vec![0u8; 4096];
        let _ = tls.read(&mut request).await.unwrap();
        tls.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 5000\r\n\r\n<partial",
        )
        .await
        .unwrap();
        tls.flush().await.unwrap();
        // Abort: RST instead of a TLS close_notify and FIN.
        let (tcp, _) = tls.into_inner();
        // A zero linger does not block on drop: it makes the close an RST.
        #[allow(deprecated)]
        tcp.set_linger(Some(Duration::ZERO)).unwrap();
        drop(tcp);
    });
    let transport = client_with(&setup, None, |_| {});
    let url = Url::parse(&format!("https://localhost:{port}/EWS/Exchange.asmx")).unwrap();
    let err = transport.send(HttpRequest::get(url)).await.unwrap_err();
    assert!(
        matches!(err, TransportError::ConnectionReset { .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());
}
