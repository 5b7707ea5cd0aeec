//! Kerberos in the transport where no real KDC is needed: the `Negotiate`
//! fallback to NTLM (against the simulator's NTLM acceptor), and KDCs that
//! are absent, silent or hostile. The handshake against Samba's KDC and MIT's
//! acceptor is in `tests/kerberos.rs`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ews_toolkit::sim::auth::{Account, AuthPolicy, Authenticator};
use ews_toolkit::sim::http::{ServerRequest, SimHttpServer};
use ews_toolkit::sim::tls::TestPki;
use ews_toolkit::transport::{
    AuthMechanism, AuthScheme, Credentials, HttpTransport, KerberosFailure, TransportConfig,
    TransportError,
};
use http::{HeaderMap, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use url::Url;

const PASSWORD: &str = "Corr3ct-Horse!";
const USER: &str = "svc-calendar@contoso.test";

struct Lab {
    _dir: tempfile::TempDir,
    ca_file: std::path::PathBuf,
    server: SimHttpServer,
    auth: Arc<Authenticator>,
}

async fn ok(_: ServerRequest) -> http::Response<Bytes> {
    http::Response::new(Bytes::from_static(b"ok"))
}

/// The simulator offers `Negotiate` and `NTLM` and accepts NTLM only, as an
/// Exchange whose Kerberos is not set up.
async fn ntlm_only_exchange() -> Lab {
    let pki = TestPki::generate(&[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    pki.write_ca_pem(&ca_file).unwrap();
    let mut policy = AuthPolicy::new(vec![Account::new("CONTOSO", "svc-calendar", PASSWORD)]);
    policy.server_certificate = Some(pki.leaf_der().to_vec());
    let auth = Arc::new(Authenticator::new(policy));
    let server = SimHttpServer::start(
        "127.0.0.1:0",
        Some(pki.server_config()),
        Some(auth.clone()),
        ok,
    )
    .await
    .unwrap();
    Lab {
        _dir: dir,
        ca_file,
        server,
        auth,
    }
}

impl Lab {
    fn transport(&self, scheme: AuthScheme, kdc: &str, allow_ntlm_fallback: bool) -> HttpTransport {
        let mut config = TransportConfig {
            ca_file: Some(self.ca_file.clone()),
            ..TransportConfig::default()
        };
        config.kerberos.kdcs = vec![kdc.to_owned()];
        config.kerberos.allow_ntlm_fallback = allow_ntlm_fallback;
        config.kerberos.kdc_timeout = Duration::from_secs(5);
        HttpTransport::new(
            config,
            Some(Credentials::new(USER, PASSWORD, scheme).unwrap()),
        )
        .unwrap()
    }

    fn url(&self) -> Url {
        Url::parse(&format!(
            "https://localhost:{}/EWS/Exchange.asmx",
            self.server.local_addr().port()
        ))
        .unwrap()
    }
}

async fn post(transport: &HttpTransport, url: &Url) -> Result<StatusCode, TransportError> {
    transport
        .post_soap(url, "urn:test", "<x/>", HeaderMap::new())
        .await
        .map(|response| response.status)
}

/// A "KDC" that counts connections and closes each at once, as a port
/// nobody listens on behaves for a client, but countable.
async fn closing_kdc() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (address, connections)
}

fn kerberos_failure(error: TransportError) -> KerberosFailure {
    match error {
        TransportError::Kerberos { failure, .. } => failure,
        other => panic!("expected a Kerberos failure, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiate_falls_back_to_ntlm_when_no_kdc_answers_and_says_why() {
    let lab = ntlm_only_exchange().await;
    let (kdc, _) = closing_kdc().await;
    let transport = lab.transport(AuthScheme::Negotiate, &kdc, true);
    assert_eq!(post(&transport, &lab.url()).await.unwrap(), StatusCode::OK);
    assert_eq!(transport.last_mechanism(), Some(AuthMechanism::Ntlm));
    let reason = transport.last_ntlm_fallback_reason().unwrap();
    assert!(
        reason.contains("no KDC answered") && reason.contains(&kdc),
        "{reason}"
    );
    let stats = transport.stats();
    assert_eq!((stats.ntlm_fallbacks, stats.kerberos_handshakes), (1, 0));
    assert_eq!(lab.auth.counters().ntlm_authenticated, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_fallback_new_connections_do_not_ask_the_missing_kdc_again() {
    let lab = ntlm_only_exchange().await;
    let (kdc, kdc_connections) = closing_kdc().await;
    let transport = lab.transport(AuthScheme::Negotiate, &kdc, true);
    let url = lab.url();
    post(&transport, &url).await.unwrap();
    let asked = kdc_connections.load(Ordering::SeqCst);
    assert!(asked >= 1, "the KDC was never asked");
    // Two at once: one reuses the pooled connection, the other opens one.
    let (a, b) = tokio::join!(post(&transport, &url), post(&transport, &url));
    assert_eq!((a.unwrap(), b.unwrap()), (StatusCode::OK, StatusCode::OK));
    assert_eq!(
        lab.server.connections(),
        2,
        "the second request needed its own connection"
    );
    assert_eq!(kdc_connections.load(Ordering::SeqCst), asked);
    assert_eq!(lab.auth.counters().ntlm_authenticated, 2);
    assert_eq!(transport.stats().ntlm_fallbacks, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_fallback_negotiate_fails_with_the_kdc_and_the_fix() {
    let lab = ntlm_only_exchange().await;
    let (kdc, _) = closing_kdc().await;
    let transport = lab.transport(AuthScheme::Negotiate, &kdc, false);
    let error = post(&transport, &lab.url()).await.unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("exchange.kerberos_kdc") && text.contains("port 88"),
        "{text}"
    );
    assert!(matches!(
        kerberos_failure(error),
        KerberosFailure::KdcUnreachable { .. }
    ));
    assert_eq!(lab.auth.counters().ntlm_challenges, 0, "NTLM was tried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kerberos_never_falls_back_to_ntlm() {
    let lab = ntlm_only_exchange().await;
    let (kdc, _) = closing_kdc().await;
    // allow_ntlm_fallback is for Negotiate only
    let transport = lab.transport(AuthScheme::Kerberos, &kdc, true);
    let failure = kerberos_failure(post(&transport, &lab.url()).await.unwrap_err());
    assert!(
        matches!(failure, KerberosFailure::KdcUnreachable { .. }),
        "{failure:?}"
    );
    assert_eq!(lab.auth.counters().ntlm_challenges, 0, "NTLM was tried");
    assert_eq!(transport.stats().ntlm_fallbacks, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_level_user_name_without_a_realm_is_named_with_the_fix() {
    let lab = ntlm_only_exchange().await;
    let (kdc, kdc_connections) = closing_kdc().await;
    let mut config = TransportConfig {
        ca_file: Some(lab.ca_file.clone()),
        ..TransportConfig::default()
    };
    config.kerberos.kdcs = vec![kdc];
    let credentials =
        Credentials::new("CONTOSO\\svc-calendar", PASSWORD, AuthScheme::Kerberos).unwrap();
    let transport = HttpTransport::new(config, Some(credentials)).unwrap();
    let error = post(&transport, &lab.url()).await.unwrap_err();
    assert!(
        error.to_string().contains("exchange.kerberos_realm"),
        "{error}"
    );
    assert!(matches!(
        kerberos_failure(error),
        KerberosFailure::NoRealm { .. }
    ));
    assert_eq!(kdc_connections.load(Ordering::SeqCst), 0);
}

/// A KDC that accepts, reads the request and answers with `answer`.
async fn answering_kdc(answer: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = vec![0u8; 64 * 1024];
                let _ = stream.read(&mut request).await;
                let _ = stream.write_all(answer).await;
                // keep it open: the client must not wait for more than it was told
                tokio::time::sleep(Duration::from_secs(60)).await;
            });
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kdc_announcing_four_gibibytes_is_refused_before_reading_them() {
    let lab = ntlm_only_exchange().await;
    let kdc = answering_kdc(&[0xff, 0xff, 0xff, 0xff, 0x7e]).await;
    let transport = lab.transport(AuthScheme::Kerberos, &kdc, false);
    let failure = kerberos_failure(post(&transport, &lab.url()).await.unwrap_err());
    let KerberosFailure::KdcUnreachable { reason, .. } = &failure else {
        panic!("{failure:?}")
    };
    assert!(
        reason.contains("announced an answer of 4294967295 bytes"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kdc_answering_garbage_is_a_named_failure_not_a_panic() {
    let lab = ntlm_only_exchange().await;
    let kdc = answering_kdc(&[0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]).await;
    let transport = lab.transport(AuthScheme::Kerberos, &kdc, false);
    let error = post(&transport, &lab.url()).await.unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("Kerberos authentication to localhost failed"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_kdc_ends_in_the_kdc_timeout() {
    let lab = ntlm_only_exchange().await;
    // accepts and never answers
    let kdc = answering_kdc(b"").await;
    let mut config = TransportConfig {
        ca_file: Some(lab.ca_file.clone()),
        ..TransportConfig::default()
    };
    config.kerberos.kdcs = vec![kdc];
    config.kerberos.kdc_timeout = Duration::from_millis(300);
    let credentials = Credentials::new(USER, PASSWORD, AuthScheme::Kerberos).unwrap();
    let transport = HttpTransport::new(config, Some(credentials)).unwrap();
    let failure = kerberos_failure(post(&transport, &lab.url()).await.unwrap_err());
    let KerberosFailure::KdcUnreachable { reason, .. } = &failure else {
        panic!("{failure:?}")
    };
    assert!(
        reason.contains("no answer from") && reason.contains("300ms"),
        "{reason}"
    );
}
