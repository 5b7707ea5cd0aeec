//! Autodiscover against autodiscover responders on loopback over real TLS
//! (one server per host name; the transport's fixed addresses stand in for
//! DNS), with NTLM authentication, the plain-HTTP redirect probe, and a real
//! UDP DNS server for the SRV step.
#![cfg(feature = "sim")]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ews_calendar_replicator::ews::autodiscover::{
    AutodiscoverClient, AutodiscoverSettings, FailureReason, ScpSource, ServiceConnectionPoint,
    SrvRecord, SrvResolver, StepKind, StepOutcome, UdpSrvResolver, Via,
};
use ews_calendar_replicator::ews::transport::{
    AuthScheme, Credentials, HttpRequest, HttpTransport, TransportConfig,
};
use ews_calendar_replicator::sim::auth::{Account, AuthPolicy, Authenticator};
use ews_calendar_replicator::sim::autodiscover::{AutodiscoverAnswer, AutodiscoverResponder};
use ews_calendar_replicator::sim::dns::SrvDnsServer;
use ews_calendar_replicator::sim::http::SimHttpServer;
use ews_calendar_replicator::sim::tls::TestPki;
use http::StatusCode;
use url::Url;

const PASSWORD: &str = "Autod1scover-Secret!";
const MAILBOX: &str = "alice@corp.example.test";
const EWS_URL: &str = "https://mail.corp.example.test/EWS/Exchange.asmx";
const DOMAINS: [&str; 3] = [
    "corp.example.test",
    "branch.example.test",
    "corp.example.com",
];

/// Servers on loopback standing in for a company's hosts.
struct Lab {
    pki: TestPki,
    _dir: tempfile::TempDir,
    ca_file: std::path::PathBuf,
    resolve: HashMap<(String, u16), SocketAddr>,
    servers: Vec<SimHttpServer>,
    /// A port nothing listens on: hosts without a server point here, so
    /// connecting fails at once instead of asking real DNS.
    closed: SocketAddr,
}

impl Lab {
    fn new() -> Lab {
        let mut names = vec![
            "mail.corp.example.test",
            "ex1.corp.example.test",
            "ex2.corp.example.test",
            "ex3.corp.example.test",
            // The hosts of the test domain controller's seeded SCPs.
            "ex1.corp.example.com",
            "ex2.corp.example.com",
        ];
        for domain in DOMAINS {
            names.push(domain);
            names.push(Box::leak(format!("autodiscover.{domain}").into_boxed_str()));
        }
        let pki = TestPki::generate(&names).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        pki.write_ca_pem(&ca_file).unwrap();
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        Lab {
            pki,
            _dir: dir,
            ca_file,
            resolve: HashMap::new(),
            servers: Vec::new(),
            closed,
        }
    }

    /// An HTTPS autodiscover server for `host` (port 443) that accepts the
    /// service account.
    async fn https(&mut self, host: &str) -> Arc<AutodiscoverResponder> {
        self.https_with_accounts(host, 443, vec![service_account()])
            .await
    }

    async fn https_with_accounts(
        &mut self,
        host: &str,
        port: u16,
        accounts: Vec<Account>,
    ) -> Arc<AutodiscoverResponder> {
        let mut policy = AuthPolicy::new(accounts);
        policy.server_certificate = Some(self.pki.leaf_der().to_vec());
        let responder = Arc::new(AutodiscoverResponder::new());
        let server = responder
            .serve(
                "127.0.0.1:0",
                Some(self.pki.server_config()),
                Some(Arc::new(Authenticator::new(policy))),
            )
            .await
            .unwrap();
        self.resolve
            .insert((host.to_owned(), port), server.local_addr());
        self.servers.push(server);
        responder
    }

    /// A plain-HTTP server for `host` (port 80) without authentication, as
    /// IIS serves the redirect.
    async fn http(&mut self, host: &str) -> Arc<AutodiscoverResponder> {
        let responder = Arc::new(AutodiscoverResponder::new());
        let server = responder.serve("127.0.0.1:0", None, None).await.unwrap();
        self.resolve
            .insert((host.to_owned(), 80), server.local_addr());
        self.servers.push(server);
        responder
    }

    fn transport(&self) -> HttpTransport {
        let mut resolve = self.resolve.clone();
        for domain in DOMAINS {
            for host in [domain.to_owned(), format!("autodiscover.{domain}")] {
                for port in [443, 80] {
                    resolve.entry((host.clone(), port)).or_insert(self.closed);
                }
            }
        }
        let config = TransportConfig {
            ca_file: Some(self.ca_file.clone()),
            resolve,
            ..TransportConfig::default()
        };
        let credentials =
            Credentials::new("CORP\\svc-calendar", PASSWORD, AuthScheme::Ntlm).unwrap();
        HttpTransport::new(config, Some(credentials)).unwrap()
    }

    fn client(&self) -> AutodiscoverClient {
        self.client_with(AutodiscoverSettings::default())
    }

    fn client_with(&self, settings: AutodiscoverSettings) -> AutodiscoverClient {
        AutodiscoverClient::new(self.transport(), settings).unwrap()
    }
}

fn service_account() -> Account {
    Account::new("CORP", "svc-calendar", PASSWORD)
}

fn settings(url: &str) -> AutodiscoverAnswer {
    AutodiscoverAnswer::Settings {
        internal_ews_url: Some(url.to_owned()),
        external_ews_url: None,
    }
}

fn pox_url(host: &str) -> String {
    format!("https://{host}/autodiscover/autodiscover.xml")
}

/// Service connection points from a list, as the directory would give them.
struct ListedPoints {
    points: Vec<ServiceConnectionPoint>,
    site: Option<String>,
}

impl ScpSource for ListedPoints {
    async fn service_connection_points(
        &self,
    ) -> Result<Vec<ServiceConnectionPoint>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.points.clone())
    }

    fn local_site(&self) -> Option<String> {
        self.site.clone()
    }
}

fn point(host: &str, sites: &[&str]) -> ServiceConnectionPoint {
    ServiceConnectionPoint {
        url: format!("https://{host}/Autodiscover/Autodiscover.xml"),
        sites: sites.iter().map(|s| (*s).to_owned()).collect(),
        dn: format!("CN={host},CN=Autodiscover,CN=Protocols"),
    }
}

#[tokio::test]
async fn finds_the_url_through_the_scp_of_the_local_site_first() {
    let mut lab = Lab::new();
    let ex1 = lab.https("ex1.corp.example.test").await;
    let ex2 = lab.https("ex2.corp.example.test").await;
    let ex3 = lab.https("ex3.corp.example.test").await;
    let domain = lab.https("corp.example.test").await;
    ex1.answer_for_domain(
        "corp.example.test",
        settings("https://ex1.corp.example.test/EWS/Exchange.asmx"),
    );
    ex2.answer_for_domain(
        "corp.example.test",
        settings("https://ex2.corp.example.test/EWS/Exchange.asmx"),
    );
    ex3.answer_for_domain("corp.example.test", settings(EWS_URL));
    domain.answer_for_domain(
        "corp.example.test",
        settings("https://wrong/EWS/Exchange.asmx"),
    );
    let client = lab.client().with_scp(ListedPoints {
        points: vec![
            point("ex1.corp.example.test", &["Branch"]),
            point("ex2.corp.example.test", &[]),
            point("ex3.corp.example.test", &["Branch2", "HQ"]),
        ],
        site: Some("HQ".into()),
    });

    let found = client.discover(MAILBOX).await.unwrap();

    assert_eq!(found.ews_url.as_str(), EWS_URL);
    assert_eq!(
        found.autodiscover_url,
        "https://ex3.corp.example.test/Autodiscover/Autodiscover.xml"
    );
    assert_eq!(found.steps[0].kind, StepKind::ScpLookup);
    assert_eq!(found.steps[0].outcome, StepOutcome::Candidates { count: 3 });
    assert_eq!(found.steps[1].via, Via::Scp);
    assert_eq!(ex3.counters().pox, 1);
    assert_eq!(
        ex1.counters().pox + ex2.counters().pox + domain.counters().pox,
        0
    );
}

#[tokio::test]
async fn finds_the_url_through_pox_at_the_domain() {
    let mut lab = Lab::new();
    let domain = lab.https("corp.example.test").await;
    let autodiscover = lab.https("autodiscover.corp.example.test").await;
    domain.answer_for_mailbox(MAILBOX, settings(EWS_URL));
    autodiscover.answer_for_mailbox(MAILBOX, settings("https://wrong/EWS/Exchange.asmx"));

    let found = lab.client().discover(MAILBOX).await.unwrap();

    assert_eq!(found.ews_url.as_str(), EWS_URL);
    assert_eq!(found.autodiscover_url, pox_url("corp.example.test"));
    assert_eq!(found.steps.len(), 1, "{:#?}", found.steps);
    assert_eq!(
        (found.steps[0].kind, found.steps[0].via),
        (StepKind::Pox, Via::Domain)
    );
    assert_eq!(domain.counters().pox, 1);
    assert_eq!(autodiscover.counters().pox, 0);
}

#[tokio::test]
async fn finds_the_url_through_pox_at_autodiscover_domain_when_the_domain_does_not_answer() {
    let mut lab = Lab::new();
    let autodiscover = lab.https("autodiscover.corp.example.test").await;
    autodiscover.answer_for_mailbox(MAILBOX, settings(EWS_URL));

    let found = lab.client().discover(MAILBOX).await.unwrap();

    assert_eq!(found.ews_url.as_str(), EWS_URL);
    assert_eq!(
        found.autodiscover_url,
        pox_url("autodiscover.corp.example.test")
    );
    let first = &found.steps[0];
    assert_eq!((first.kind, first.via), (StepKind::Pox, Via::Domain));
    assert!(
        matches!(&first.outcome, StepOutcome::Failed { reason } if reason.contains("cannot connect")),
        "{first}"
    );
}

#[tokio::test]
async fn finds_the_url_through_the_unauthenticated_http_redirect() {
    let mut lab = Lab::new();
    let probe = lab.http("autodiscover.corp.example.test").await;
    probe.set_redirect_probe(Some(pox_url("mail.corp.example.test")));
    let mail = lab.https("mail.corp.example.test").await;
    mail.answer_for_mailbox(MAILBOX, settings(EWS_URL));

    let found = lab.client().discover(MAILBOX).await.unwrap();

    assert_eq!(found.ews_url.as_str(), EWS_URL);
    assert_eq!(found.autodiscover_url, pox_url("mail.corp.example.test"));
    assert_eq!(probe.counters().redirect_probes, 1);
    let probe_step = found
        .steps
        .iter()
        .find(|s| s.kind == StepKind::RedirectProbe)
        .expect("a probe step");
    assert_eq!(
        probe_step.outcome,
        StepOutcome::Redirect {
            to: pox_url("mail.corp.example.test")
        }
    );
    assert_eq!(found.steps.last().unwrap().via, Via::HttpRedirect);
}

#[tokio::test]
async fn finds_the_url_through_the_srv_record() {
    let mut lab = Lab::new();
    let mail = lab
        .https_with_accounts("mail.corp.example.test", 8443, vec![service_account()])
        .await;
    mail.answer_for_mailbox(MAILBOX, settings(EWS_URL));
    let dns = SrvDnsServer::start(
        "127.0.0.1:0",
        HashMap::from([(
            "_autodiscover._tcp.corp.example.test".to_owned(),
            vec![SrvRecord {
                priority: 0,
                weight: 0,
                port: 8443,
                target: "mail.corp.example.test".into(),
            }],
        )]),
    )
    .await
    .unwrap();
    let client = lab.client().with_srv(UdpSrvResolver::new(
        vec![dns.local_addr()],
        Duration::from_secs(5),
    ));

    let found = client.discover(MAILBOX).await.unwrap();

    assert_eq!(found.ews_url.as_str(), EWS_URL);
    assert_eq!(
        found.autodiscover_url,
        "https://mail.corp.example.test:8443/autodiscover/autodiscover.xml"
    );
    assert_eq!(dns.queries(), 1);
    let lookup = found
        .steps
        .iter()
        .find(|s| s.kind == StepKind::SrvLookup)
        .expect("an SRV step");
    assert_eq!(lookup.target, "_autodiscover._tcp.corp.example.test");
    assert_eq!(lookup.outcome, StepOutcome::Candidates { count: 1 });
}

#[tokio::test]
async fn the_srv_resolver_moves_on_from_a_name_server_that_does_not_answer() {
    let dns = SrvDnsServer::start(
        "127.0.0.1:0",
        HashMap::from([(
            "_autodiscover._tcp.corp.example.test".to_owned(),
            vec![
                SrvRecord {
                    priority: 10,
                    weight: 0,
                    port: 443,
                    target: "backup.corp.example.test".into(),
                },
                SrvRecord {
                    priority: 0,
                    weight: 5,
                    port: 443,
                    target: "mail.corp.example.test".into(),
                },
            ],
        )]),
    )
    .await
    .unwrap();
    // A bound UDP socket that never answers.
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let resolver = UdpSrvResolver::new(
        vec![silent.local_addr().unwrap(), dns.local_addr()],
        Duration::from_millis(300),
    );

    let records = resolver
        .lookup_srv("_autodiscover._tcp.corp.example.test")
        .await
        .unwrap();

    let targets: Vec<&str> = records.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(
        targets,
        ["mail.corp.example.test", "backup.corp.example.test"]
    );
    assert_eq!(dns.queries(), 1);
}

#[tokio::test]
async fn an_srv_name_that_does_not_exist_ends_the_search_with_every_step_listed() {
    let lab = Lab::new();
    let dns = SrvDnsServer::start("127.0.0.1:0", HashMap::new())
        .await
        .unwrap();
    let client = lab.client().with_srv(UdpSrvResolver::new(
        vec![dns.local_addr()],
        Duration::from_secs(5),
    ));

    let error = client.discover(MAILBOX).await.unwrap_err();

    assert_eq!(error.reason, FailureReason::Exhausted);
    let kinds: Vec<(StepKind, Via)> = error.steps.iter().map(|s| (s.kind, s.via)).collect();
    assert_eq!(
        kinds,
        [
            (StepKind::Pox, Via::Domain),
            (StepKind::Pox, Via::AutodiscoverHost),
            (StepKind::RedirectProbe, Via::HttpRedirect),
            (StepKind::SrvLookup, Via::Srv),
        ]
    );
    assert_eq!(error.steps[3].outcome, StepOutcome::Candidates { count: 0 });
    let text = error.to_string();
    assert!(text.contains("configure the EWS URL explicitly"), "{text}");
    assert!(
        text.contains("4. SRV lookup _autodiscover._tcp.corp.example.test"),
        "{text}"
    );
}

#[tokio::test]
async fn follows_a_redirect_url_then_a_redirect_addr_chain() {
    let mut lab = Lab::new();
    let domain = lab.https("corp.example.test").await;
    let mail = lab.https("mail.corp.example.test").await;
    let branch = lab.https("branch.example.test").await;
    domain.answer_for_mailbox(
        MAILBOX,
        AutodiscoverAnswer::RedirectUrl(pox_url("mail.corp.example.test")),
    );
    mail.answer_for_mailbox(
        MAILBOX,
        AutodiscoverAnswer::RedirectAddress("alice@branch.example.test".into()),
    );
    branch.answer_for_mailbox(
        "alice@branch.example.test",
        settings("https://mail.branch.example.test/EWS/Exchange.asmx"),
    );

    let found = lab.client().discover(MAILBOX).await.unwrap();

    assert_eq!(found.mailbox, MAILBOX);
    assert_eq!(
        found.ews_url.as_str(),
        "https://mail.branch.example.test/EWS/Exchange.asmx"
    );
    let redirects: Vec<&StepOutcome> = found
        .steps
        .iter()
        .map(|s| &s.outcome)
        .filter(|o| matches!(o, StepOutcome::Redirect { .. }))
        .collect();
    assert_eq!(
        redirects,
        [
            &StepOutcome::Redirect {
                to: pox_url("mail.corp.example.test")
            },
            &StepOutcome::Redirect {
                to: "alice@branch.example.test".into()
            },
        ]
    );
    let last = found.steps.last().unwrap();
    assert_eq!(last.mailbox, "alice@branch.example.test");
    assert_eq!(last.target, pox_url("branch.example.test"));
    assert_eq!(
        (
            domain.counters().pox,
            mail.counters().pox,
            branch.counters().pox
        ),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn a_redirect_loop_stops_with_a_clear_error() {
    let mut lab = Lab::new();
    let domain = lab.https("corp.example.test").await;
    let mail = lab.https("mail.corp.example.test").await;
    domain.answer_for_mailbox(
        MAILBOX,
        AutodiscoverAnswer::RedirectUrl(pox_url("mail.corp.example.test")),
    );
    mail.answer_for_mailbox(
        MAILBOX,
        AutodiscoverAnswer::RedirectUrl(pox_url("corp.example.test")),
    );

    let error = lab.client().discover(MAILBOX).await.unwrap_err();

    assert_eq!(error.reason, FailureReason::Exhausted);
    let text = error.to_string();
    assert!(
        text.contains(&format!(
            "redirect loop: {} was already asked for {MAILBOX}",
            pox_url("corp.example.test")
        )),
        "{text}"
    );
    // Each server was asked once: the loop was not followed around again.
    assert_eq!((domain.counters().pox, mail.counters().pox), (1, 1));
}

#[tokio::test]
async fn a_redirect_addr_back_to_an_address_already_searched_is_a_loop() {
    let mut lab = Lab::new();
    let domain = lab.https("corp.example.test").await;
    domain.answer_for_mailbox(
        MAILBOX,
        AutodiscoverAnswer::RedirectAddress("bob@corp.example.test".into()),
    );
    domain.answer_for_mailbox(
        "bob@corp.example.test",
        AutodiscoverAnswer::RedirectAddress(MAILBOX.into()),
    );

    let error = lab.client().discover(MAILBOX).await.unwrap_err();

    let text = error.to_string();
    assert!(
        text.contains(&format!(
            "redirect loop: {MAILBOX} was already searched for"
        )),
        "{text}"
    );
    assert_eq!(domain.counters().pox, 2);
}

#[tokio::test]
async fn a_401_on_the_first_candidate_does_not_end_the_search() {
    let mut lab = Lab::new();
    let refusing = lab
        .https_with_accounts(
            "corp.example.test",
            443,
            vec![Account::new("OTHER", "someone", "Else-Entirely-1")],
        )
        .await;
    refusing.answer_for_mailbox(MAILBOX, settings("https://wrong/EWS/Exchange.asmx"));
    let autodiscover = lab.https("autodiscover.corp.example.test").await;
    autodiscover.answer_for_mailbox(MAILBOX, settings(EWS_URL));

    let found = lab.client().discover(MAILBOX).await.unwrap();

    assert_eq!(found.ews_url.as_str(), EWS_URL);
    let first = &found.steps[0];
    assert_eq!(first.target, pox_url("corp.example.test"));
    assert!(
        matches!(&first.outcome, StepOutcome::Failed { reason } if reason.contains("HTTP 401")),
        "{first}"
    );
    assert!(!format!("{:?}", found.steps).contains(PASSWORD));
    assert_eq!(refusing.counters().pox, 0, "refused before the handler");
}

#[tokio::test]
async fn more_than_ten_redirects_stop_the_search() {
    let mut lab = Lab::new();
    let domain = lab.https("corp.example.test").await;
    for n in 0..12 {
        domain.answer_for_mailbox(
            &format!("user{n}@corp.example.test"),
            AutodiscoverAnswer::RedirectAddress(format!("user{}@corp.example.test", n + 1)),
        );
    }
    domain.answer_for_mailbox("user12@corp.example.test", settings(EWS_URL));

    let error = lab
        .client()
        .discover("user0@corp.example.test")
        .await
        .unwrap_err();

    assert_eq!(error.reason, FailureReason::TooManyRedirects { limit: 10 });
    // user0 .. user10 were asked; the 11th redirect was not followed.
    assert_eq!(domain.counters().pox, 11);
    assert!(
        error.to_string().contains("stopped after 10 redirects"),
        "{error}"
    );
}

#[tokio::test]
async fn http_redirect_targets_are_refused() {
    let mut lab = Lab::new();
    let domain = lab.https("corp.example.test").await;
    domain.answer_for_mailbox(
        MAILBOX,
        AutodiscoverAnswer::RedirectUrl(
            "http://mail.corp.example.test/autodiscover/autodiscover.xml".into(),
        ),
    );
    let plain_mail = lab.http("mail.corp.example.test").await;
    plain_mail.answer_for_mailbox(MAILBOX, settings("https://wrong/EWS/Exchange.asmx"));
    // The probe, too, may only lead to https://.
    let probe = lab.http("autodiscover.corp.example.test").await;
    probe.set_redirect_probe(Some(
        "http://mail.corp.example.test/autodiscover/autodiscover.xml".into(),
    ));

    let error = lab.client().discover(MAILBOX).await.unwrap_err();

    let text = error.to_string();
    assert!(
        text.contains("refused: redirectUrl targets must be https:// URLs"),
        "{text}"
    );
    assert!(
        text.contains("only https:// targets are followed"),
        "{text}"
    );
    assert_eq!(probe.counters().redirect_probes, 1);
    let plain = plain_mail.counters();
    assert_eq!(plain.pox + plain.unauthenticated + plain.invalid, 0);
}

#[tokio::test]
async fn the_cache_answers_the_second_lookup_without_requests_until_it_expires() {
    let mut lab = Lab::new();
    let domain = lab.https("corp.example.test").await;
    domain.answer_for_mailbox(MAILBOX, settings(EWS_URL));
    let client = lab.client();

    let first = client.discover(MAILBOX).await.unwrap();
    let second = client.discover("Alice@Corp.Example.Test").await.unwrap();

    assert!(!first.from_cache);
    assert!(second.from_cache);
    assert_eq!(second.ews_url, first.ews_url);
    assert_eq!(second.steps.len(), 1);
    assert_eq!(second.steps[0].kind, StepKind::Cache);
    assert_eq!(domain.counters().pox, 1);

    client.forget(MAILBOX);
    assert!(!client.discover(MAILBOX).await.unwrap().from_cache);
    assert_eq!(domain.counters().pox, 2);

    // An expired entry is not used.
    let expiring = lab.client_with(AutodiscoverSettings {
        cache_ttl: Duration::ZERO,
        ..AutodiscoverSettings::default()
    });
    expiring.discover(MAILBOX).await.unwrap();
    assert!(!expiring.discover(MAILBOX).await.unwrap().from_cache);
    assert_eq!(domain.counters().pox, 4);
}

#[tokio::test]
async fn soap_get_user_settings_is_used_when_preferred_and_pox_where_soap_is_not_offered() {
    let mut lab = Lab::new();
    let domain = lab.https("corp.example.test").await;
    domain.answer_for_mailbox(
        MAILBOX,
        AutodiscoverAnswer::Settings {
            internal_ews_url: Some(EWS_URL.into()),
            external_ews_url: Some("https://webmail.corp.example.test/EWS/Exchange.asmx".into()),
        },
    );
    let client = lab.client_with(AutodiscoverSettings {
        prefer_soap: true,
        ..AutodiscoverSettings::default()
    });

    let found = client.discover(MAILBOX).await.unwrap();

    assert_eq!(found.ews_url.as_str(), EWS_URL);
    assert_eq!(
        found.external_ews_url.as_deref(),
        Some("https://webmail.corp.example.test/EWS/Exchange.asmx")
    );
    assert_eq!(found.server_version.as_deref(), Some("15.1.2507.39"));
    assert_eq!(found.steps[0].kind, StepKind::Soap);
    assert_eq!(
        found.autodiscover_url,
        "https://corp.example.test/autodiscover/autodiscover.svc"
    );
    assert_eq!((domain.counters().soap, domain.counters().pox), (1, 0));

    // A server without the SOAP service: 404, then POX at the same place.
    domain.set_soap_offered(false);
    client.forget(MAILBOX);
    let found = client.discover(MAILBOX).await.unwrap();
    assert_eq!(found.ews_url.as_str(), EWS_URL);
    assert!(
        matches!(&found.steps[0].outcome, StepOutcome::Failed { reason } if reason.contains("404")),
        "{}",
        found.steps[0]
    );
    assert_eq!(found.steps[1].kind, StepKind::Pox);
    assert_eq!(domain.counters().pox, 1);
}

#[tokio::test]
async fn the_responder_is_strict_like_exchange() {
    let mut lab = Lab::new();
    let domain = lab.https("corp.example.test").await;
    domain.answer_for_mailbox(MAILBOX, settings(EWS_URL));
    let transport = lab.transport();
    let pox = Url::parse(&pox_url("corp.example.test")).unwrap();
    let post =
        |body: &str| HttpRequest::post(pox.clone(), "text/xml; charset=utf-8", body.to_owned());

    // Anonymous: 401 offering Negotiate and NTLM.
    let anonymous = transport.send(post("<x/>").anonymous()).await.unwrap();
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    // Another schema, or no EMailAddress: Exchange's "600 Invalid Request".
    for body in [
        r#"<Autodiscover xmlns="urn:other"><Request><EMailAddress>alice@corp.example.test</EMailAddress></Request></Autodiscover>"#,
        r#"<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>"#,
    ] {
        let response = transport.send(post(body)).await.unwrap();
        let text = String::from_utf8_lossy(&response.body).into_owned();
        assert!(text.contains("<ErrorCode>600</ErrorCode>"), "{text}");
    }
    assert_eq!(domain.counters().invalid, 2);

    // SOAP without the WS-Addressing Action header: a fault.
    let svc = Url::parse("https://corp.example.test/autodiscover/autodiscover.svc").unwrap();
    let body = String::from_utf8(
        ews_calendar_replicator::ews::autodiscover::soap::request(svc.as_str(), MAILBOX).unwrap(),
    )
    .unwrap();
    let without_action = body.replace(
        "<wsa:Action>http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettings</wsa:Action>",
        "",
    );
    assert_ne!(without_action, body);
    let response = transport
        .post_soap(
            &svc,
            "http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettings",
            without_action,
            http::HeaderMap::new(),
        )
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(String::from_utf8_lossy(&response.body).contains("Action header"));
    assert_eq!(domain.counters().invalid, 3);
}

/// The service connection points seeded in the Samba test domain
/// (`scripts/test-dc.sh`): ex1 (Site=Default-First-Site-Name) and ex2 (no
/// site), read through the directory module's `AdDirectory`.
#[cfg(feature = "directory")]
mod from_active_directory {
    use super::*;
    use ews_calendar_replicator::directory::{AdDirectory, DirectorySettings, Secret};

    async fn directory() -> AdDirectory {
        let script =
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/test-dc.sh");
        let output = std::process::Command::new(&script)
            .arg("env")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            output.status.success(),
            "these tests need the Samba test domain controller; start it with `scripts/test-dc.sh start`: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let vars: HashMap<String, String> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
            .collect();
        let settings = DirectorySettings::new(
            vars["LDAP_URL"].clone(),
            vars["BIND_USER"].clone(),
            Secret::new(vars["BIND_PASSWORD"].clone()),
        );
        AdDirectory::connect(settings)
            .await
            .unwrap_or_else(|e| panic!("connecting to the test DC failed: {e}"))
    }

    async fn lab_with_both_servers() -> (Lab, Arc<AutodiscoverResponder>, Arc<AutodiscoverResponder>)
    {
        let mut lab = Lab::new();
        let ex1 = lab.https("ex1.corp.example.com").await;
        let ex2 = lab.https("ex2.corp.example.com").await;
        ex1.answer_for_domain(
            "corp.example.com",
            settings("https://ex1.corp.example.com/EWS/Exchange.asmx"),
        );
        ex2.answer_for_domain(
            "corp.example.com",
            settings("https://ex2.corp.example.com/EWS/Exchange.asmx"),
        );
        (lab, ex1, ex2)
    }

    #[tokio::test]
    async fn the_seeded_scp_of_the_local_site_answers_first() {
        let (lab, ex1, ex2) = lab_with_both_servers().await;
        let client = lab
            .client_with(AutodiscoverSettings {
                local_site: Some("Default-First-Site-Name".into()),
                ..AutodiscoverSettings::default()
            })
            .with_scp(directory().await);

        let found = client.discover("alice@corp.example.com").await.unwrap();

        assert_eq!(
            found.ews_url.as_str(),
            "https://ex1.corp.example.com/EWS/Exchange.asmx"
        );
        assert_eq!(found.steps[0].outcome, StepOutcome::Candidates { count: 2 });
        assert_eq!((ex1.counters().pox, ex2.counters().pox), (1, 0));
    }

    #[tokio::test]
    async fn without_a_known_site_the_siteless_scp_answers_first() {
        let (lab, ex1, ex2) = lab_with_both_servers().await;
        let client = lab.client().with_scp(directory().await);

        let found = client.discover("alice@corp.example.com").await.unwrap();

        assert_eq!(
            found.ews_url.as_str(),
            "https://ex2.corp.example.com/EWS/Exchange.asmx"
        );
        assert_eq!((ex1.counters().pox, ex2.counters().pox), (0, 1));
    }
}
