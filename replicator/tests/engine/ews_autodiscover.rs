//! Autodiscover against autodiscover responders on loopback over real TLS
//! (one server per host name; the transport's fixed addresses stand in for
//! DNS), with NTLM authentication, the plain-HTTP redirect probe, and a real
//! UDP DNS server for the SRV step.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ews_toolkit::autodiscover::{
    pox, AutodiscoverClient, AutodiscoverSettings, AutodiscoverStep, FailureReason, ScpSource,
    ServiceConnectionPoint, SrvRecord, SrvResolver, StepKind, StepOutcome, TrustedHosts,
    UdpSrvResolver, Via, TRUSTED_HOSTS_KEY,
};
use ews_toolkit::sim::auth::{Account, AuthPolicy, Authenticator};
use ews_toolkit::sim::autodiscover::{AutodiscoverAnswer, AutodiscoverResponder};
use ews_toolkit::sim::dns::SrvDnsServer;
use ews_toolkit::sim::http::{plain_response, ServerRequest, SimHttpServer};
use ews_toolkit::sim::tls::TestPki;
use ews_toolkit::transport::{
    AuthScheme, Credentials, HttpRequest, HttpTransport, TransportConfig,
};
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
            // Hostile hosts: outside the mail domain corp.example.test, one
            // of them ending in its name without being below it.
            "evilcorp.example.test",
            "attacker.example.net",
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

    /// The servers' addresses, and the closed port for the domains' other
    /// hosts.
    fn resolve_map(&self) -> HashMap<(String, u16), SocketAddr> {
        let mut resolve = self.resolve.clone();
        for domain in DOMAINS {
            for host in [domain.to_owned(), format!("autodiscover.{domain}")] {
                for port in [443, 80] {
                    resolve.entry((host.clone(), port)).or_insert(self.closed);
                }
            }
        }
        resolve
    }

    fn transport(&self) -> HttpTransport {
        self.transport_with(AuthScheme::Ntlm)
    }

    fn transport_with(&self, scheme: AuthScheme) -> HttpTransport {
        let config = TransportConfig {
            ca_file: Some(self.ca_file.clone()),
            resolve: self.resolve_map(),
            ..TransportConfig::default()
        };
        let credentials = Credentials::new("CORP\\svc-calendar", PASSWORD, scheme).unwrap();
        HttpTransport::new(config, Some(credentials)).unwrap()
    }

    /// A server on `host`:`port` (TLS) that wants the credentials: it
    /// answers 401 offering Basic, NTLM and Negotiate, except that POX
    /// requests get `pox_answer` when given (to anyone), and it records the
    /// scheme of every `Authorization` header it receives.
    async fn hostile(&mut self, host: &str, port: u16, pox_answer: Option<String>) -> Hostile {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(AtomicU64::new(0));
        let (record, count) = (seen.clone(), requests.clone());
        let server = SimHttpServer::start(
            "127.0.0.1:0",
            Some(self.pki.server_config()),
            None,
            move |request: ServerRequest| {
                count.fetch_add(1, Ordering::Relaxed);
                for value in request
                    .request
                    .headers()
                    .get_all(http::header::AUTHORIZATION)
                {
                    let scheme = value.to_str().unwrap_or("?").split(' ').next();
                    record
                        .lock()
                        .unwrap()
                        .push(scheme.unwrap_or("?").to_owned());
                }
                let pox = request
                    .request
                    .uri()
                    .path()
                    .eq_ignore_ascii_case("/autodiscover/autodiscover.xml");
                let response = match (&pox_answer, pox) {
                    (Some(body), true) => {
                        let mut response = http::Response::new(bytes::Bytes::from(body.clone()));
                        response.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static("text/xml; charset=utf-8"),
                        );
                        response
                    }
                    _ => {
                        let mut response = plain_response(StatusCode::UNAUTHORIZED, "401");
                        for offer in ["Basic realm=\"mail\"", "NTLM", "Negotiate"] {
                            response.headers_mut().append(
                                http::header::WWW_AUTHENTICATE,
                                http::HeaderValue::from_static(offer),
                            );
                        }
                        response
                    }
                };
                async move { response }
            },
        )
        .await
        .unwrap();
        self.resolve
            .insert((host.to_owned(), port), server.local_addr());
        self.servers.push(server);
        Hostile { seen, requests }
    }

    fn client(&self) -> AutodiscoverClient {
        self.client_with(AutodiscoverSettings::default())
    }

    fn client_with(&self, settings: AutodiscoverSettings) -> AutodiscoverClient {
        AutodiscoverClient::new(self.transport(), settings).unwrap()
    }
}

/// What a hostile server got.
struct Hostile {
    /// The scheme of each `Authorization` header received.
    seen: Arc<Mutex<Vec<String>>>,
    requests: Arc<AtomicU64>,
}

impl Hostile {
    fn authorization_schemes(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

/// A POX answer naming `ews_url`, as any server could send it.
fn pox_settings_body(ews_url: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="{}"><Response xmlns="{}"><Account><AccountType>email</AccountType><Action>settings</Action><Protocol><Type>EXCH</Type><EwsUrl>{ews_url}</EwsUrl></Protocol></Account></Response></Autodiscover>"#,
        pox::RESPONSE_NS,
        pox::OUTLOOK_RESPONSE_NS
    )
}

fn refused_hosts(steps: &[AutodiscoverStep]) -> Vec<String> {
    steps
        .iter()
        .filter_map(|s| match &s.outcome {
            StepOutcome::Refused { host, .. } => Some(host.clone()),
            _ => None,
        })
        .collect()
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
    // branch.example.test is outside the mail domain: listed, it is trusted.
    let found = lab
        .client_with(AutodiscoverSettings {
            trusted_hosts: TrustedHosts::parse(&["branch.example.test"]).unwrap(),
            ..AutodiscoverSettings::default()
        })
        .discover(MAILBOX)
        .await
        .unwrap();

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

/// Issue #15 (High): a hostile answer to the unauthenticated HTTP probe
/// points at a host outside the mail domain whose name ends in the domain's
/// (`evilcorp.example.test` for `corp.example.test`). It is asked without
/// credentials, gets no NTLM message, and is reported as refused with the
/// key that would allow it.
#[tokio::test]
async fn hostile_probe_redirect_outside_the_mail_domain_gets_no_credentials() {
    let mut lab = Lab::new();
    let probe = lab.http("autodiscover.corp.example.test").await;
    probe.set_redirect_probe(Some(pox_url("evilcorp.example.test")));
    let hostile = lab.hostile("evilcorp.example.test", 443, None).await;

    let error = lab.client().discover(MAILBOX).await.unwrap_err();

    assert!(
        hostile.requests() > 0,
        "the redirect target was never asked"
    );
    assert_eq!(hostile.authorization_schemes(), Vec::<String>::new());
    assert_eq!(error.reason, FailureReason::Exhausted);
    assert!(refused_hosts(&error.steps).contains(&"evilcorp.example.test".to_owned()));
    let text = error.to_string();
    assert!(
        text.contains("refused credentials") && text.contains(TRUSTED_HOSTS_KEY),
        "{text}"
    );
    assert!(!text.contains(PASSWORD));
}

/// A host outside the domain that answers anonymously with an EWS URL on
/// itself: the replicator would send the credentials there, so the answer
/// is not used.
#[tokio::test]
async fn hostile_anonymous_answer_naming_its_own_ews_url_is_not_used() {
    let mut lab = Lab::new();
    let probe = lab.http("autodiscover.corp.example.test").await;
    probe.set_redirect_probe(Some(pox_url("attacker.example.net")));
    let hostile = lab
        .hostile(
            "attacker.example.net",
            443,
            Some(pox_settings_body(
                "https://attacker.example.net/EWS/Exchange.asmx",
            )),
        )
        .await;

    let error = lab.client().discover(MAILBOX).await.unwrap_err();

    assert!(hostile.requests() > 0);
    assert_eq!(hostile.authorization_schemes(), Vec::<String>::new());
    let refusal = error
        .steps
        .iter()
        .find(|s| matches!(s.outcome, StepOutcome::Refused { .. }))
        .expect("a refused step");
    assert!(
        refusal
            .to_string()
            .contains("https://attacker.example.net/EWS/Exchange.asmx"),
        "{refusal}"
    );
}

/// An anonymous answer from an untrusted host may still point into the
/// mail domain: that URL gets the credentials only because its own host is
/// trusted.
#[tokio::test]
async fn an_anonymous_answer_naming_an_ews_url_in_the_mail_domain_is_used() {
    let mut lab = Lab::new();
    let probe = lab.http("autodiscover.corp.example.test").await;
    probe.set_redirect_probe(Some(pox_url("attacker.example.net")));
    let hostile = lab
        .hostile(
            "attacker.example.net",
            443,
            Some(pox_settings_body(EWS_URL)),
        )
        .await;

    let found = lab.client().discover(MAILBOX).await.unwrap();

    assert_eq!(found.ews_url.as_str(), EWS_URL);
    assert_eq!(hostile.authorization_schemes(), Vec::<String>::new());
}

/// A spoofable SRV answer naming a host outside the domain.
#[tokio::test]
async fn hostile_srv_target_outside_the_mail_domain_gets_no_credentials() {
    let mut lab = Lab::new();
    let hostile = lab.hostile("attacker.example.net", 443, None).await;
    let dns = SrvDnsServer::start(
        "127.0.0.1:0",
        HashMap::from([(
            "_autodiscover._tcp.corp.example.test".to_owned(),
            vec![SrvRecord {
                priority: 0,
                weight: 0,
                port: 443,
                target: "attacker.example.net".into(),
            }],
        )]),
    )
    .await
    .unwrap();
    let client = lab.client().with_srv(UdpSrvResolver::new(
        vec![dns.local_addr()],
        Duration::from_secs(5),
    ));

    let error = client.discover(MAILBOX).await.unwrap_err();

    assert!(hostile.requests() > 0);
    assert_eq!(hostile.authorization_schemes(), Vec::<String>::new());
    assert_eq!(
        refused_hosts(&error.steps),
        ["attacker.example.net", "attacker.example.net"],
        "POX and SOAP, both refused"
    );
}

/// A trusted server's `redirectUrl` and `redirectAddr` answers follow the
/// same rule: the host they name is judged by the original mail domain.
#[tokio::test]
async fn redirect_url_and_redirect_addr_outside_the_mail_domain_get_no_credentials() {
    for answer in [
        AutodiscoverAnswer::RedirectUrl(pox_url("attacker.example.net")),
        AutodiscoverAnswer::RedirectAddress("alice@attacker.example.net".into()),
    ] {
        let mut lab = Lab::new();
        let domain = lab.https("corp.example.test").await;
        domain.answer_for_mailbox(MAILBOX, answer.clone());
        let hostile = lab.hostile("attacker.example.net", 443, None).await;

        let error = lab.client().discover(MAILBOX).await.unwrap_err();

        assert!(hostile.requests() > 0, "{answer:?}");
        assert_eq!(
            hostile.authorization_schemes(),
            Vec::<String>::new(),
            "{answer:?}"
        );
        assert!(
            refused_hosts(&error.steps).contains(&"attacker.example.net".to_owned()),
            "{answer:?}: {error}"
        );
    }
}

/// Listing the host in `exchange.autodiscover_trusted_hosts` is what lets
/// a redirect outside the domain authenticate.
#[tokio::test]
async fn a_listed_host_outside_the_mail_domain_is_sent_the_credentials() {
    let mut lab = Lab::new();
    let probe = lab.http("autodiscover.corp.example.test").await;
    probe.set_redirect_probe(Some(pox_url("attacker.example.net")));
    let listed = lab.https("attacker.example.net").await;
    listed.answer_for_mailbox(MAILBOX, settings(EWS_URL));

    let refused = lab.client().discover(MAILBOX).await.unwrap_err();
    let found = lab
        .client_with(AutodiscoverSettings {
            trusted_hosts: TrustedHosts::parse(&["attacker.example.net"]).unwrap(),
            ..AutodiscoverSettings::default()
        })
        .discover(MAILBOX)
        .await
        .unwrap();

    assert_eq!(
        refused_hosts(&refused.steps),
        ["attacker.example.net", "attacker.example.net"]
    );
    assert_eq!(found.ews_url.as_str(), EWS_URL);
    assert_eq!(listed.counters().pox, 1);
}

/// Basic is never sent during autodiscover, not even to the mail domain:
/// a redirect could hand the cleartext password to anyone.
#[tokio::test]
async fn basic_credentials_are_never_sent_during_autodiscover() {
    let mut lab = Lab::new();
    let domain = lab.hostile("corp.example.test", 443, None).await;
    let probe = lab.http("autodiscover.corp.example.test").await;
    probe.set_redirect_probe(Some(pox_url("attacker.example.net")));
    let hostile = lab.hostile("attacker.example.net", 443, None).await;
    let client =
        AutodiscoverClient::new(lab.transport_with(AuthScheme::Basic), Default::default()).unwrap();

    let error = client.discover(MAILBOX).await.unwrap_err();

    assert!(domain.requests() > 0 && hostile.requests() > 0);
    assert_eq!(domain.authorization_schemes(), Vec::<String>::new());
    assert_eq!(hostile.authorization_schemes(), Vec::<String>::new());
    let text = error.to_string();
    assert!(text.contains("never sends Basic"), "{text}");
}

/// Server text in the trace (a `redirectAddr` with line breaks; XML carries
/// no ESC) cannot forge a line of the error, the log or `check`'s output.
#[tokio::test]
async fn server_text_in_the_trace_cannot_forge_a_line() {
    let mut lab = Lab::new();
    let domain = lab.https("corp.example.test").await;
    domain.answer_for_mailbox(
        MAILBOX,
        AutodiscoverAnswer::RedirectAddress("x\n  99. INFO forged\tline@corp.example.test".into()),
    );

    let error = lab.client().discover(MAILBOX).await.unwrap_err();

    let text = error.to_string();
    // The error's own layout puts each step on a line of its own; no
    // step's text adds one.
    for line in text.lines() {
        assert!(!line.chars().any(char::is_control), "{line:?}");
    }
    assert!(!text.lines().any(|l| l.starts_with("  99.")), "{text}");
    assert!(text.contains("x   99. INFO forged line@"), "{text}");
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
    let body =
        String::from_utf8(ews_toolkit::autodiscover::soap::request(svc.as_str(), MAILBOX).unwrap())
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
mod from_active_directory {
    use super::*;
    use ews_calendar_replicator::app::DirectoryScp;
    use ews_calendar_replicator::directory::{AdDirectory, DirectorySettings, Secret};

    /// The directory's points as the service hands them to autodiscover.
    async fn directory() -> DirectoryScp {
        let script =
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/test-dc.sh");
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
        DirectoryScp::of(Arc::new(
            AdDirectory::connect(settings)
                .await
                .unwrap_or_else(|e| panic!("connecting to the test DC failed: {e}")),
        ))
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

/// Issue #15: SRV answers come over plain UDP. A name server on loopback
/// that lies in one way each; the resolver must take only what answers its
/// own question.
mod lying_dns {
    use super::*;
    use ews_toolkit::autodiscover::srv::encode_name;
    use ews_toolkit::autodiscover::SrvError;

    const ASKED: &str = "_autodiscover._tcp.corp.example.test";
    const SRV: u16 = 33;
    const CNAME: u16 = 5;
    const IN: u16 = 1;
    const CHAOS: u16 = 3;

    fn name(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        encode_name(&mut out, text).unwrap();
        out
    }

    fn srv_data(port: u16, target: &str) -> Vec<u8> {
        let mut data = vec![0, 0, 0, 0];
        data.extend_from_slice(&port.to_be_bytes());
        data.extend(name(target));
        data
    }

    /// A response with `id`, the question `question` (SRV IN) and `records`
    /// (owner, type, class, data).
    fn response(id: u16, question: &str, records: &[(&str, u16, u16, Vec<u8>)]) -> Vec<u8> {
        let mut m = id.to_be_bytes().to_vec();
        m.extend_from_slice(&[0x81, 0x80, 0, 1]);
        m.extend_from_slice(&(records.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0]);
        m.extend(name(question));
        m.extend_from_slice(&SRV.to_be_bytes());
        m.extend_from_slice(&IN.to_be_bytes());
        for (owner, rtype, class, data) in records {
            m.extend(name(owner));
            m.extend_from_slice(&rtype.to_be_bytes());
            m.extend_from_slice(&class.to_be_bytes());
            m.extend_from_slice(&300u32.to_be_bytes());
            m.extend_from_slice(&(data.len() as u16).to_be_bytes());
            m.extend_from_slice(data);
        }
        m
    }

    /// A UDP name server on loopback that answers each query with the
    /// datagrams `answer(query id)` makes, in order.
    async fn liar(
        answer: impl Fn(u16) -> Vec<Vec<u8>> + Send + 'static,
    ) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut buffer = [0u8; 512];
            while let Ok((n, peer)) = socket.recv_from(&mut buffer).await {
                if n < 2 {
                    continue;
                }
                for datagram in answer(u16::from_be_bytes([buffer[0], buffer[1]])) {
                    let _ = socket.send_to(&datagram, peer).await;
                }
            }
        });
        (addr, task)
    }

    async fn lookup(server: SocketAddr) -> Result<Vec<SrvRecord>, SrvError> {
        UdpSrvResolver::new(vec![server], Duration::from_secs(5))
            .lookup_srv(ASKED)
            .await
    }

    fn targets(records: &[SrvRecord]) -> Vec<&str> {
        records.iter().map(|r| r.target.as_str()).collect()
    }

    #[tokio::test]
    async fn an_answer_with_another_query_id_is_ignored_for_the_real_one() {
        let (server, _task) = liar(|id| {
            vec![
                response(
                    id.wrapping_add(1),
                    ASKED,
                    &[(ASKED, SRV, IN, srv_data(443, "attacker.example.net"))],
                ),
                response(
                    id,
                    ASKED,
                    &[(ASKED, SRV, IN, srv_data(443, "mail.corp.example.test"))],
                ),
            ]
        })
        .await;

        let records = lookup(server).await.unwrap();

        assert_eq!(targets(&records), ["mail.corp.example.test"]);
    }

    #[tokio::test]
    async fn an_answer_to_another_question_is_refused() {
        let (server, _task) = liar(|id| {
            let other = "_autodiscover._tcp.attacker.example.net";
            vec![response(
                id,
                other,
                &[(other, SRV, IN, srv_data(443, "attacker.example.net"))],
            )]
        })
        .await;

        let error = lookup(server).await.unwrap_err();

        assert!(matches!(error, SrvError::Malformed { .. }), "{error}");
        assert!(error.to_string().contains("another question"), "{error}");
    }

    #[tokio::test]
    async fn records_owned_by_another_name_or_class_are_not_taken() {
        let (server, _task) = liar(|id| {
            vec![response(
                id,
                ASKED,
                &[
                    (
                        "_autodiscover._tcp.attacker.example.net",
                        SRV,
                        IN,
                        srv_data(443, "attacker.example.net"),
                    ),
                    (ASKED, SRV, CHAOS, srv_data(443, "chaos.example.net")),
                    (ASKED, SRV, IN, srv_data(8443, "mail.corp.example.test")),
                ],
            )]
        })
        .await;

        let records = lookup(server).await.unwrap();

        assert_eq!(targets(&records), ["mail.corp.example.test"]);
        assert_eq!(records[0].port, 8443);
    }

    #[tokio::test]
    async fn the_question_is_compared_case_insensitively_and_a_cname_chain_is_followed() {
        let (server, _task) = liar(|id| {
            let alias = "_autodiscover._tcp.hosting.example.test";
            vec![response(
                id,
                &ASKED.to_ascii_uppercase(),
                &[
                    (ASKED, CNAME, IN, name(alias)),
                    (alias, SRV, IN, srv_data(443, "mail.corp.example.test")),
                ],
            )]
        })
        .await;

        let records = lookup(server).await.unwrap();

        assert_eq!(targets(&records), ["mail.corp.example.test"]);
    }
}

/// `check` with no `exchange.url`, in-process, against the lab: a hostile
/// redirect must not end in `[PASS] exchange autodiscover`.
mod check_command {
    use super::*;
    use ews_calendar_replicator::app::check::{self, Outcome};
    use ews_calendar_replicator::config::{self, LoadContext};

    fn config_for(lab: &Lab) -> config::Config {
        let closed = lab.closed.port();
        let text = format!(
            r#"
[ucserver]
url = "http://127.0.0.1:{closed}"
allow_plain_http = true
username = "Administrator"
password = "uc-secret"

[directory]
url = "ldap://127.0.0.1:{closed}"
bind_user = "svc@corp.example.test"
password = "ldap-secret"

[exchange]
username = 'CORP\svc-calendar'
password = "{PASSWORD}"
ca_file = "{}"
"#,
            lab.ca_file.display()
        );
        let mut config = config::parse(
            &text,
            std::path::Path::new("/nonexistent/config.toml"),
            &LoadContext::with_vars([("HOME", "/nonexistent")]),
        )
        .unwrap();
        config.exchange.transport.resolve = lab.resolve_map();
        config
    }

    #[tokio::test]
    async fn check_does_not_pass_autodiscover_that_a_hostile_redirect_led_outside_the_domain() {
        let mut lab = Lab::new();
        let probe = lab.http("autodiscover.corp.example.test").await;
        probe.set_redirect_probe(Some(pox_url("attacker.example.net")));
        // It would accept the account and answer with an EWS URL on itself.
        let attacker = lab.https("attacker.example.net").await;
        attacker.answer_for_mailbox(
            MAILBOX,
            settings("https://attacker.example.net/EWS/Exchange.asmx"),
        );

        let report = check::run(&config_for(&lab), Some(MAILBOX.to_owned())).await;

        let step = report
            .steps
            .iter()
            .find(|s| s.area == "exchange" && s.name == "autodiscover")
            .expect("an autodiscover step");
        assert_ne!(step.outcome, Outcome::Pass, "{step:?}");
        assert_eq!(
            attacker.counters().pox,
            0,
            "the attacker authenticated a request"
        );
        assert!(
            step.detail.contains("refused credentials"),
            "{}",
            step.detail
        );
        let fix = step.fix.as_deref().unwrap_or_default();
        assert!(
            fix.contains("attacker.example.net") && fix.contains(TRUSTED_HOSTS_KEY),
            "{fix}"
        );
    }
}
