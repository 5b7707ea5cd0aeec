//! The UCServer client over HTTPS/WSS (the server's port 7225 setup): the
//! simulator serves a certificate from the test CA; the client trusts it only
//! through `ca_file`.

use crate::support::ucserver::{settings, users};
use ews_calendar_replicator::sim::ucserver::{UcServerSim, UcServerSimConfig};
use ews_calendar_replicator::ucserver::UcServerClient;
use ews_toolkit::sim::tls::TestPki;

async fn tls_sim(pki: &TestPki) -> UcServerSim {
    UcServerSim::start(UcServerSimConfig::new(users()), Some(pki.server_config()))
        .await
        .expect("simulator starts")
}

#[tokio::test]
async fn client_lists_users_over_tls_with_the_ca_file() {
    let pki = TestPki::generate(&[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    pki.write_ca_pem(&ca).unwrap();
    let sim = tls_sim(&pki).await;
    assert_eq!(sim.base_url().scheme(), "https");
    let mut s = settings(&sim);
    s.ca_file = Some(ca);
    let client = UcServerClient::connect(s)
        .await
        .expect("TLS session and admin login");
    let offline: Vec<String> = client
        .offline_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.user_name)
        .collect();
    assert!(offline.contains(&"alice".to_string()), "{offline:?}");
    assert!(!offline.contains(&"bob".to_string()), "{offline:?}");
}

#[tokio::test]
async fn without_the_ca_file_the_error_names_the_unknown_issuer_and_the_fix() {
    let pki = TestPki::generate(&[]).unwrap();
    let sim = tls_sim(&pki).await;
    let err = match UcServerClient::connect(settings(&sim)).await {
        Ok(_) => panic!("a certificate from an unknown CA was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("unknown issuer"), "{err}");
    assert!(err.contains("ca_file"), "{err}");
    assert_eq!(sim.sessions_created(), 0);
}
