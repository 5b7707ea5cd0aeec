//! The toolkit's Kerberos against a real KDC (Samba AD, `scripts/test-dc.sh`;
//! CI: started by `.ci/run`) and an independent acceptor (MIT Kerberos via
//! python-gssapi, `tests/fixtures/kerberos/acceptor.py`). `tests/kerberos_fixture.rs`
//! checks both fixtures with MIT's own client, so a failure here is ours.

mod kerberos_support;

use std::time::Duration;

use ews_toolkit::transport::{
    AuthMechanism, AuthScheme, Credentials, HttpTransport, KerberosFailure, TransportConfig,
    TransportError,
};
use ews_toolkit::EwsClient;
use http::{HeaderMap, StatusCode};
use kerberos_support::{Acceptor, AcceptorMode, AcceptorOptions, ChannelBindings, KerberosDc};
use url::Url;

const GUA_ANSWER: &str = include_str!("fixtures/ews/gua_detailed.xml");

fn acceptor(dc: &KerberosDc, mode: AcceptorMode) -> Acceptor {
    Acceptor::start_with(
        dc,
        AcceptorOptions {
            mode,
            answer: GUA_ANSWER.as_bytes().to_vec(),
            ..AcceptorOptions::default()
        },
    )
}

fn config(dc: &KerberosDc, acceptor: &Acceptor) -> TransportConfig {
    let mut config = TransportConfig {
        ca_file: Some(acceptor.ca_file().to_path_buf()),
        ..TransportConfig::default()
    };
    config.kerberos.kdcs = vec![dc.kdc.clone()];
    config.kerberos.kdc_timeout = Duration::from_secs(20);
    config
}

fn transport_as(
    dc: &KerberosDc,
    acceptor: &Acceptor,
    user: &str,
    password: &str,
    scheme: AuthScheme,
    configure: impl FnOnce(&mut TransportConfig),
) -> HttpTransport {
    let mut config = config(dc, acceptor);
    configure(&mut config);
    let credentials = Credentials::new(user, password.to_owned(), scheme).unwrap();
    HttpTransport::new(config, Some(credentials)).unwrap()
}

fn service_user(dc: &KerberosDc, acceptor: &Acceptor, scheme: AuthScheme) -> HttpTransport {
    transport_as(
        dc,
        acceptor,
        &dc.client_user,
        &dc.client_password,
        scheme,
        |_| {},
    )
}

async fn post(transport: &HttpTransport, acceptor: &Acceptor) -> Result<String, TransportError> {
    let url = Url::parse(&acceptor.url()).unwrap();
    let response = transport
        .post_soap(&url, "urn:test", "<request/>", HeaderMap::new())
        .await?;
    assert_eq!(response.status, StatusCode::OK);
    Ok(String::from_utf8_lossy(&response.body).into_owned())
}

fn failure_of(result: Result<String, TransportError>) -> KerberosFailure {
    match result {
        Err(TransportError::Kerberos { failure, .. }) => failure,
        other => panic!("expected a Kerberos failure, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kerberos_authenticates_once_per_connection_with_verified_mutual_authentication() {
    let dc = KerberosDc::from_env();
    let acceptor = acceptor(&dc, AcceptorMode::Normal);
    let transport = service_user(&dc, &acceptor, AuthScheme::Kerberos);
    for _ in 0..3 {
        assert_eq!(post(&transport, &acceptor).await.unwrap(), GUA_ANSWER);
    }
    assert_eq!(transport.last_mechanism(), Some(AuthMechanism::Kerberos));
    let stats = transport.stats();
    assert_eq!(
        (stats.kerberos_handshakes, stats.connections_opened),
        (1, 1)
    );
    let handshakes = acceptor.handshakes();
    assert_eq!(handshakes.len(), 1, "{handshakes:?}");
    assert_eq!(handshakes[0].outcome, "ok");
    assert_eq!(
        handshakes[0].initiator.as_deref(),
        Some(format!("svc-ews@{}", dc.realm).as_str())
    );
    assert_eq!(
        handshakes[0].token_mechanism.as_deref(),
        Some(kerberos_support::SPNEGO_OID)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiate_uses_kerberos_when_it_works() {
    let dc = KerberosDc::from_env();
    let acceptor = acceptor(&dc, AcceptorMode::Normal);
    let transport = service_user(&dc, &acceptor, AuthScheme::Negotiate);
    post(&transport, &acceptor).await.unwrap();
    assert_eq!(transport.last_mechanism(), Some(AuthMechanism::Kerberos));
    assert_eq!(transport.stats().ntlm_fallbacks, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ews_operation_reads_its_answer_through_kerberos() {
    let dc = KerberosDc::from_env();
    let acceptor = acceptor(&dc, AcceptorMode::Normal);
    let transport = std::sync::Arc::new(service_user(&dc, &acceptor, AuthScheme::Kerberos));
    let client = EwsClient::new(transport, Url::parse(&acceptor.url()).unwrap());
    let mailboxes: Vec<String> = ["alice", "bob", "carol"]
        .iter()
        .map(|name| format!("{name}@corp.example.com"))
        .collect();
    let start = "2026-02-09T23:00:00Z".parse().unwrap();
    let end = "2026-02-10T23:00:00Z".parse().unwrap();
    let answers = client
        .get_user_availability(
            &mailboxes,
            start,
            end,
            ews_toolkit::availability::AvailabilityView::Detailed,
        )
        .await
        .unwrap();
    assert_eq!(answers.len(), 3);
    assert_eq!(answers[0].result.as_ref().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kdcs_are_found_by_the_realms_srv_record() {
    let dc = KerberosDc::from_env();
    let dns_server = dc.dns_server.expect("test-dc.sh env prints KRB_DNS_SERVER");
    let acceptor = acceptor(&dc, AcceptorMode::Normal);
    let transport = transport_as(
        &dc,
        &acceptor,
        &dc.client_user,
        &dc.client_password,
        AuthScheme::Kerberos,
        |config| {
            config.kerberos.kdcs.clear();
            config.kerberos.dns_server = Some(dns_server);
        },
    );
    post(&transport, &acceptor).await.unwrap();
    assert_eq!(transport.last_mechanism(), Some(AuthMechanism::Kerberos));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_srv_record_the_fallback_kdc_is_asked() {
    let dc = KerberosDc::from_env();
    let acceptor = acceptor(&dc, AcceptorMode::Normal);
    let transport = transport_as(
        &dc,
        &acceptor,
        &dc.client_user,
        &dc.client_password,
        AuthScheme::Kerberos,
        |config| {
            config.kerberos.kdcs.clear();
            // a DNS server that does not answer: no SRV record
            config.kerberos.dns_server = Some("127.0.0.1:9".parse().unwrap());
            config.kerberos.kdc_timeout = Duration::from_secs(2);
            config.kerberos.fallback_kdc = Some(dc.kdc.clone());
        },
    );
    post(&transport, &acceptor).await.unwrap();
    assert_eq!(transport.last_mechanism(), Some(AuthMechanism::Kerberos));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_named_by_the_kdc() {
    let dc = KerberosDc::from_env();
    let acceptor = acceptor(&dc, AcceptorMode::Normal);
    let user = dc.upn("grace");
    let transport = transport_as(
        &dc,
        &acceptor,
        &user,
        "Wrong-Pass-1!",
        AuthScheme::Kerberos,
        |_| {},
    );
    let result = post(&transport, &acceptor).await;
    let text = format!("{:?}", result.as_ref().err());
    assert!(
        !text.contains("Wrong-Pass-1!"),
        "the password leaked: {text}"
    );
    assert_eq!(failure_of(result), KerberosFailure::WrongPassword);
    assert!(acceptor.handshakes().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_and_locked_accounts_are_revoked_credentials_with_the_fix() {
    let dc = KerberosDc::from_env();
    let acceptor = acceptor(&dc, AcceptorMode::Normal);
    for name in ["erin", "frank"] {
        let user = dc.upn(name);
        let transport = transport_as(
            &dc,
            &acceptor,
            &user,
            &dc.test_user_password,
            AuthScheme::Kerberos,
            |_| {},
        );
        let failure = failure_of(post(&transport, &acceptor).await);
        assert_eq!(failure, KerberosFailure::CredentialsRevoked, "{name}");
        assert!(
            failure.fix().contains("disabled, locked out"),
            "{}",
            failure.fix()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_spn_names_setspn() {
    let dc = KerberosDc::from_env();
    let acceptor = acceptor(&dc, AcceptorMode::Normal);
    let spn = "HTTP/nowhere.corp.example.com";
    let transport = transport_as(
        &dc,
        &acceptor,
        &dc.client_user,
        &dc.client_password,
        AuthScheme::Kerberos,
        |config| {
            config.kerberos.spn = Some(spn.to_owned());
        },
    );
    let failure = failure_of(post(&transport, &acceptor).await);
    assert_eq!(
        failure,
        KerberosFailure::UnknownSpn {
            spn: spn.to_owned()
        }
    );
    assert!(
        failure.fix().contains(&format!("setspn -S {spn}")),
        "{}",
        failure.fix()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rc4_only_service_account_asks_for_aes() {
    let dc = KerberosDc::from_env();
    let acceptor = acceptor(&dc, AcceptorMode::Normal);
    let spn = dc.vars["KRB_SPN_RC4_ONLY"].clone();
    let transport = transport_as(
        &dc,
        &acceptor,
        &dc.client_user,
        &dc.client_password,
        AuthScheme::Kerberos,
        |config| {
            config.kerberos.spn = Some(spn);
        },
    );
    assert_eq!(
        failure_of(post(&transport, &acceptor).await),
        KerberosFailure::NoCommonEncryption
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_without_the_servers_token_is_a_failure() {
    let dc = KerberosDc::from_env();
    let acceptor = acceptor(&dc, AcceptorMode::NoMutualToken);
    let transport = service_user(&dc, &acceptor, AuthScheme::Kerberos);
    assert_eq!(
        failure_of(post(&transport, &acceptor).await),
        KerberosFailure::NoMutualAuthentication
    );
    assert_eq!(transport.stats().kerberos_handshakes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_server_token_is_refused() {
    let dc = KerberosDc::from_env();
    let acceptor = acceptor(&dc, AcceptorMode::ReplayServerToken);
    // the first handshake gets its own token and sets the replay up
    post(
        &service_user(&dc, &acceptor, AuthScheme::Kerberos),
        &acceptor,
    )
    .await
    .unwrap();
    let second = service_user(&dc, &acceptor, AuthScheme::Kerberos);
    let failure = failure_of(post(&second, &acceptor).await);
    assert!(
        matches!(failure, KerberosFailure::BadServerToken { .. }),
        "{failure:?}"
    );
    assert!(acceptor
        .handshakes()
        .iter()
        .any(|h| h.server_token_replayed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_refuses_the_ticket_is_not_answered_with_ntlm() {
    let dc = KerberosDc::from_env();
    let acceptor = acceptor(&dc, AcceptorMode::Refuse);
    // even with the fallback allowed: the server saw a ticket
    let transport = service_user(&dc, &acceptor, AuthScheme::Negotiate);
    let failure = failure_of(post(&transport, &acceptor).await);
    assert_eq!(
        failure,
        KerberosFailure::ServerRefused {
            spn: dc.spn.clone()
        }
    );
    assert_eq!(transport.stats().ntlm_fallbacks, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_clock_an_hour_ahead_is_named_as_clock_skew() {
    let dc = KerberosDc::from_env();
    let acceptor = Acceptor::start_with(
        &dc,
        AcceptorOptions {
            faketime: Some("+1h".to_owned()),
            ..AcceptorOptions::default()
        },
    );
    let transport = service_user(&dc, &acceptor, AuthScheme::Kerberos);
    let failure = failure_of(post(&transport, &acceptor).await);
    assert_eq!(failure, KerberosFailure::ClockSkew);
    assert!(failure.fix().contains("NTP"), "{}", failure.fix());
}

/// Channel binding is not sent with Kerberos (see `src/transport/kerberos.rs`):
/// an acceptor that knows its binding, as Exchange with Extended Protection
/// "Accept", takes a ticket without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kerberos_without_channel_binding_passes_an_acceptor_that_checks_bindings_when_sent() {
    let dc = KerberosDc::from_env();
    let acceptor = Acceptor::start_with(
        &dc,
        AcceptorOptions {
            channel_bindings: ChannelBindings::TlsServerEndPoint,
            ..AcceptorOptions::default()
        },
    );
    let transport = service_user(&dc, &acceptor, AuthScheme::Kerberos);
    assert!(
        transport.config().channel_binding,
        "binding stays on for NTLM"
    );
    post(&transport, &acceptor).await.unwrap();
    assert_eq!(transport.last_mechanism(), Some(AuthMechanism::Kerberos));
}
