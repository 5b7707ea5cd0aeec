//! The autodiscover search, in the documented order: service connection
//! points (local site first), POX at `https://<domain>/` and
//! `https://autodiscover.<domain>/`, the unauthenticated HTTP redirect, and
//! the `_autodiscover._tcp` SRV record. Each candidate is asked with POX or
//! SOAP `GetUserSettings` (the other one when the first is not offered);
//! `redirectAddr`/`redirectUrl` are followed over HTTPS only, never back to
//! a request already made, at most `max_redirects` times. The answer is
//! cached per mailbox.
//!
//! Credentials go only to hosts [`super::trust`] allows (the mail domain, the
//! listed hosts) and to service connection points (written into Active
//! Directory by Exchange setup and read over the authenticated directory
//! connection; MS-OXDISCO trusts them without asking the user). Any other
//! host is asked anonymously, its refusal recorded with the key that would
//! allow it; an anonymous answer's EWS URL is used only on a trusted host.
//! Basic is never sent during autodiscover: a service configured for Basic
//! asks anonymously everywhere.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::StatusCode;
use url::Url;

use super::scp::{order_by_site, NoScp, ScpSource, ServiceConnectionPoint};
use super::soap::GetUserSettings;
use super::srv::{NoSrv, SrvResolver};
use super::trace::{
    AutodiscoverError, AutodiscoverStep, FailureReason, StepKind, StepOutcome, Via,
};
use super::trust::{Trust, TrustedHosts, TRUSTED_HOSTS_KEY};
use super::{pox, soap};
use crate::operation::Operation;
use crate::resilience::{doubled, ResilienceConfig};
use crate::transport::{
    AuthScheme, HttpRequest, HttpResponse, HttpTransport, TransportConfig, TransportError,
};

/// How the search runs; the defaults fit an on-premises Exchange.
#[derive(Debug, Clone)]
pub struct AutodiscoverSettings {
    /// The AD site of this machine (points for it are tried first); when
    /// `None`, the SCP source's [`local_site`](ScpSource::local_site).
    pub local_site: Option<String>,
    /// Ask SOAP `GetUserSettings` (`autodiscover.svc`) before POX.
    pub prefer_soap: bool,
    /// Use the external EWS URL when the answer has both.
    pub prefer_external_url: bool,
    /// Redirects (`redirectAddr`, `redirectUrl`, the HTTP probe's) allowed.
    pub max_redirects: usize,
    /// How long a found URL is reused without asking again.
    pub cache_ttl: Duration,
    /// Hosts outside the mail domain that may be sent the credentials
    /// (`exchange.autodiscover_trusted_hosts`).
    pub trusted_hosts: TrustedHosts,
    /// The EWS client's retry policy, for a candidate that answered and then
    /// failed in a way that may pass (a dropped connection, HTTP 502/503/504):
    /// its transient retries and back-off (a 503's `Retry-After`, capped).
    /// A host that cannot be reached or does not answer in time is not asked
    /// again: that means "try the next candidate".
    pub retry: ResilienceConfig,
}

impl Default for AutodiscoverSettings {
    fn default() -> Self {
        AutodiscoverSettings {
            local_site: None,
            prefer_soap: false,
            prefer_external_url: false,
            max_redirects: 10,
            cache_ttl: Duration::from_secs(24 * 60 * 60),
            trusted_hosts: TrustedHosts::default(),
            retry: ResilienceConfig::default(),
        }
    }
}

/// What autodiscover found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// The mailbox asked for.
    pub mailbox: String,
    /// The EWS URL to use (internal unless external is preferred or the
    /// only one).
    pub ews_url: Url,
    pub internal_ews_url: Option<String>,
    pub external_ews_url: Option<String>,
    /// The autodiscover endpoint that answered.
    pub autodiscover_url: String,
    /// Exchange's version, when the SOAP service sent it.
    pub server_version: Option<String>,
    /// Whether this came from the cache (then `steps` holds only that).
    pub from_cache: bool,
    /// Every step of the search, in order.
    pub steps: Vec<AutodiscoverStep>,
}

/// The autodiscover client. `S` supplies service connection points, `R`
/// answers SRV lookups; [`NoScp`] / [`NoSrv`] mean that step is skipped.
pub struct AutodiscoverClient<S = NoScp, R = NoSrv> {
    /// The configured credentials, for trusted hosts (none when they are
    /// Basic: see `basic_withheld`).
    transport: HttpTransport,
    /// No credentials: the redirect probe (plain HTTP allowed there only)
    /// and every host that is not trusted.
    probe_transport: HttpTransport,
    /// The configured scheme is Basic, which autodiscover never sends (a
    /// redirect would put the cleartext password on the wire to whoever
    /// answers); noted in the 401s it causes.
    basic_withheld: bool,
    scp: Option<S>,
    srv: Option<R>,
    settings: AutodiscoverSettings,
    cache: Mutex<HashMap<String, (Instant, Discovery)>>,
}

impl AutodiscoverClient {
    /// A client that asks with `transport` (its credentials authenticate the
    /// POX and SOAP requests). Add sources with
    /// [`with_scp`](Self::with_scp) and [`with_srv`](Self::with_srv).
    pub fn new(
        transport: HttpTransport,
        settings: AutodiscoverSettings,
    ) -> Result<Self, TransportError> {
        // The probe is plain HTTP by design and must never carry credentials:
        // a transport of its own, without any, is the simplest guarantee.
        let probe_transport = HttpTransport::new(
            TransportConfig {
                allow_plain_http: true,
                allow_basic_without_tls: false,
                ..transport.config().clone()
            },
            None,
        )?;
        let basic_withheld = transport.auth_scheme() == Some(AuthScheme::Basic);
        let transport = if basic_withheld {
            HttpTransport::new(transport.config().clone(), None)?
        } else {
            transport
        };
        Ok(AutodiscoverClient {
            transport,
            probe_transport,
            basic_withheld,
            scp: None,
            srv: None,
            settings,
            cache: Mutex::new(HashMap::new()),
        })
    }
}

impl<S, R> AutodiscoverClient<S, R> {
    /// Uses `source` (Active Directory) for the first step.
    pub fn with_scp<S2: ScpSource>(self, source: S2) -> AutodiscoverClient<S2, R> {
        AutodiscoverClient {
            transport: self.transport,
            probe_transport: self.probe_transport,
            basic_withheld: self.basic_withheld,
            scp: Some(source),
            srv: self.srv,
            settings: self.settings,
            cache: self.cache,
        }
    }

    /// Uses `resolver` for the SRV step.
    pub fn with_srv<R2: SrvResolver>(self, resolver: R2) -> AutodiscoverClient<S, R2> {
        AutodiscoverClient {
            transport: self.transport,
            probe_transport: self.probe_transport,
            basic_withheld: self.basic_withheld,
            scp: self.scp,
            srv: Some(resolver),
            settings: self.settings,
            cache: self.cache,
        }
    }

    pub fn settings(&self) -> &AutodiscoverSettings {
        &self.settings
    }

    /// Drops the cached answer for `mailbox` (e.g. after the EWS URL stopped
    /// working).
    pub fn forget(&self, mailbox: &str) {
        self.cache
            .lock()
            .expect("cache lock")
            .remove(&mailbox.trim().to_ascii_lowercase());
    }
}

/// How one candidate ended for the search.
enum Flow {
    Found(Box<Found>),
    /// Go on with the next candidate.
    Next,
    /// `redirectAddr`: start again for this address.
    Restart(String),
    /// Give up (too many redirects).
    Stop(FailureReason),
}

struct Found {
    internal: Option<String>,
    external: Option<String>,
    server_version: Option<String>,
    autodiscover_url: String,
}

/// An answer of either protocol.
enum Answer {
    Settings {
        internal: Option<String>,
        external: Option<String>,
        server_version: Option<String>,
    },
    RedirectAddress(String),
    RedirectUrl(String),
    Error {
        code: String,
        message: Option<String>,
    },
}

/// A request that got no answer; `other_protocol` says whether the other
/// protocol at the same host may still work (not for a host that cannot
/// be reached at all).
struct AskFailure {
    reason: String,
    other_protocol: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Pox,
    Soap,
}

/// The state of one search.
struct Search {
    steps: Vec<AutodiscoverStep>,
    /// (URL, address) pairs already asked: never again.
    asked: HashSet<(String, String)>,
    /// Addresses already searched for.
    addresses: HashSet<String>,
    redirects: usize,
    /// The directory's points, read once per search (a `redirectAddr`
    /// restarts the steps, not the directory query).
    scp_points: Option<Vec<ServiceConnectionPoint>>,
    /// Who may get the credentials: decided by the mailbox asked for, not by
    /// a `redirectAddr` (which any server may answer).
    trust: Trust,
}

impl Search {
    fn record(
        &mut self,
        kind: StepKind,
        via: Via,
        target: &str,
        mailbox: &str,
        outcome: StepOutcome,
    ) {
        let step = AutodiscoverStep {
            kind,
            via,
            target: target.to_owned(),
            mailbox: mailbox.to_owned(),
            outcome,
        };
        match step.outcome {
            StepOutcome::Failed { .. } => tracing::info!(target: "autodiscover", "{step}"),
            _ => tracing::debug!(target: "autodiscover", "{step}"),
        }
        self.steps.push(step);
    }

    /// Counts a redirect; `false` when that is one too many.
    fn redirect(&mut self, limit: usize) -> bool {
        self.redirects += 1;
        self.redirects <= limit
    }
}

impl<S: ScpSource, R: SrvResolver> AutodiscoverClient<S, R> {
    /// The EWS URL of `mailbox` (an SMTP address), from the cache when a
    /// fresh answer is there.
    pub async fn discover(&self, mailbox: &str) -> Result<Discovery, AutodiscoverError> {
        let mailbox = mailbox.trim();
        let key = mailbox.to_ascii_lowercase();
        if domain_of(mailbox).is_none() {
            return Err(AutodiscoverError {
                mailbox: mailbox.to_owned(),
                reason: FailureReason::InvalidMailbox,
                steps: Vec::new(),
            });
        }
        if let Some(cached) = self.cached(&key) {
            return Ok(cached);
        }
        let mut search = Search {
            steps: Vec::new(),
            asked: HashSet::new(),
            addresses: HashSet::new(),
            redirects: 0,
            scp_points: None,
            trust: Trust::new(
                domain_of(mailbox).expect("checked above"),
                &self.settings.trusted_hosts,
            ),
        };
        let mut address = mailbox.to_owned();
        loop {
            search.addresses.insert(address.to_ascii_lowercase());
            let reason = match self.search_address(&mut search, &address).await {
                Flow::Found(found) => {
                    return self.finish(mailbox, &key, *found, search);
                }
                Flow::Restart(next) => {
                    address = next;
                    continue;
                }
                Flow::Next => FailureReason::Exhausted,
                Flow::Stop(reason) => reason,
            };
            let error = AutodiscoverError {
                mailbox: mailbox.to_owned(),
                reason,
                steps: search.steps,
            };
            tracing::warn!(target: "autodiscover", "{error}");
            return Err(error);
        }
    }

    fn cached(&self, key: &str) -> Option<Discovery> {
        let mut cache = self.cache.lock().expect("cache lock");
        let (stored, discovery) = cache.get(key)?;
        if stored.elapsed() >= self.settings.cache_ttl {
            cache.remove(key);
            return None;
        }
        let mut discovery = discovery.clone();
        discovery.from_cache = true;
        discovery.steps = vec![AutodiscoverStep {
            kind: StepKind::Cache,
            via: Via::Cache,
            target: discovery.autodiscover_url.clone(),
            mailbox: discovery.mailbox.clone(),
            outcome: StepOutcome::Found {
                ews_url: discovery.ews_url.to_string(),
            },
        }];
        Some(discovery)
    }

    fn finish(
        &self,
        mailbox: &str,
        key: &str,
        found: Found,
        search: Search,
    ) -> Result<Discovery, AutodiscoverError> {
        let preferred = if self.settings.prefer_external_url {
            found.external.clone().or(found.internal.clone())
        } else {
            found.internal.clone().or(found.external.clone())
        };
        // `ask_once` only reports Settings with a URL that parses.
        let ews_url = preferred
            .and_then(|url| Url::parse(&url).ok())
            .expect("a found answer has a valid EWS URL");
        let discovery = Discovery {
            mailbox: mailbox.to_owned(),
            ews_url,
            internal_ews_url: found.internal,
            external_ews_url: found.external,
            autodiscover_url: found.autodiscover_url,
            server_version: found.server_version,
            from_cache: false,
            steps: search.steps,
        };
        tracing::info!(target: "autodiscover", mailbox, ews_url = %discovery.ews_url, "found the EWS URL");
        self.cache
            .lock()
            .expect("cache lock")
            .insert(key.to_owned(), (Instant::now(), discovery.clone()));
        Ok(discovery)
    }

    /// All steps for one address.
    async fn search_address(&self, search: &mut Search, address: &str) -> Flow {
        let domain = domain_of(address).expect("checked before").to_owned();

        if let Some(scp) = &self.scp {
            let points = match search.scp_points.clone() {
                Some(points) => Ok(points),
                None => scp.service_connection_points().await,
            };
            match points {
                Ok(points) => {
                    search.scp_points = Some(points.clone());
                    let site = self
                        .settings
                        .local_site
                        .clone()
                        .or_else(|| scp.local_site());
                    let points = order_by_site(points, site.as_deref());
                    search.record(
                        StepKind::ScpLookup,
                        Via::Scp,
                        &format!(
                            "Active Directory (local site: {})",
                            site.as_deref().unwrap_or("unknown")
                        ),
                        address,
                        StepOutcome::Candidates {
                            count: points.len(),
                        },
                    );
                    for point in points {
                        match self
                            .try_candidate(search, Via::Scp, &point.url, address)
                            .await
                        {
                            Flow::Next => {}
                            flow => return flow,
                        }
                    }
                }
                Err(e) => search.record(
                    StepKind::ScpLookup,
                    Via::Scp,
                    "Active Directory",
                    address,
                    StepOutcome::Failed {
                        reason: e.to_string(),
                    },
                ),
            }
        }

        for (via, url) in [
            (
                Via::Domain,
                format!("https://{domain}/autodiscover/autodiscover.xml"),
            ),
            (
                Via::AutodiscoverHost,
                format!("https://autodiscover.{domain}/autodiscover/autodiscover.xml"),
            ),
        ] {
            match self.try_candidate(search, via, &url, address).await {
                Flow::Next => {}
                flow => return flow,
            }
        }

        match self.redirect_probe(search, &domain, address).await {
            Flow::Next => {}
            flow => return flow,
        }

        if let Some(srv) = &self.srv {
            let name = format!("_autodiscover._tcp.{domain}");
            match srv.lookup_srv(&name).await {
                Ok(records) => {
                    search.record(
                        StepKind::SrvLookup,
                        Via::Srv,
                        &name,
                        address,
                        StepOutcome::Candidates {
                            count: records.len(),
                        },
                    );
                    for record in records {
                        let host = record.target.trim_end_matches('.');
                        let url = if record.port == 443 {
                            format!("https://{host}/autodiscover/autodiscover.xml")
                        } else {
                            format!(
                                "https://{host}:{}/autodiscover/autodiscover.xml",
                                record.port
                            )
                        };
                        match self.try_candidate(search, Via::Srv, &url, address).await {
                            Flow::Next => {}
                            flow => return flow,
                        }
                    }
                }
                Err(e) => search.record(
                    StepKind::SrvLookup,
                    Via::Srv,
                    &name,
                    address,
                    StepOutcome::Failed {
                        reason: e.to_string(),
                    },
                ),
            }
        }
        Flow::Next
    }

    /// The unauthenticated `GET http://autodiscover.<domain>/...`: a redirect
    /// to an HTTPS URL gives a candidate.
    async fn redirect_probe(&self, search: &mut Search, domain: &str, address: &str) -> Flow {
        let probe = format!("http://autodiscover.{domain}/autodiscover/autodiscover.xml");
        let url = Url::parse(&probe).expect("built from a valid domain");
        let kind = StepKind::RedirectProbe;
        // The probe does not depend on the address: once per search.
        if !search.asked.insert((probe.clone(), String::new())) {
            search.record(
                kind,
                Via::HttpRedirect,
                &probe,
                address,
                StepOutcome::Skipped {
                    reason: "already asked".to_owned(),
                },
            );
            return Flow::Next;
        }
        let response = match self
            .probe_transport
            .send(HttpRequest::get(url.clone()).anonymous())
            .await
        {
            Ok(response) => response,
            Err(e) => {
                search.record(
                    kind,
                    Via::HttpRedirect,
                    &probe,
                    address,
                    failed(e.to_string()),
                );
                return Flow::Next;
            }
        };
        let location = response
            .headers
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok());
        let (true, Some(location)) = (response.status.is_redirection(), location) else {
            search.record(
                kind,
                Via::HttpRedirect,
                &probe,
                address,
                failed(format!("HTTP {} without a redirect", response.status)),
            );
            return Flow::Next;
        };
        let Ok(target) = url.join(location) else {
            search.record(
                kind,
                Via::HttpRedirect,
                &probe,
                address,
                failed(format!("the redirect target {location:?} is not a URL")),
            );
            return Flow::Next;
        };
        if target.scheme() != "https" {
            search.record(
                kind,
                Via::HttpRedirect,
                &probe,
                address,
                failed(format!(
                    "refused the redirect to {target}: only https:// targets are followed"
                )),
            );
            return Flow::Next;
        }
        search.record(
            kind,
            Via::HttpRedirect,
            &probe,
            address,
            StepOutcome::Redirect {
                to: target.to_string(),
            },
        );
        if !search.redirect(self.settings.max_redirects) {
            return self.too_many_redirects();
        }
        self.try_candidate(search, Via::HttpRedirect, target.as_str(), address)
            .await
    }

    fn too_many_redirects(&self) -> Flow {
        Flow::Stop(FailureReason::TooManyRedirects {
            limit: self.settings.max_redirects,
        })
    }

    /// Asks one autodiscover URL and follows its `redirectUrl` answers.
    async fn try_candidate(&self, search: &mut Search, via: Via, url: &str, address: &str) -> Flow {
        let mut via = via;
        let mut url = url.to_owned();
        loop {
            let attempts = self.attempts(&url, via);
            let mut redirect = None;
            for (protocol, target) in attempts {
                let kind = match protocol {
                    Protocol::Pox => StepKind::Pox,
                    Protocol::Soap => StepKind::Soap,
                };
                let key = (request_key(&target), address.to_ascii_lowercase());
                if search.asked.contains(&key) {
                    let reason = if via == Via::RedirectUrl {
                        format!("redirect loop: {target} was already asked for {address}")
                    } else {
                        "already asked".to_owned()
                    };
                    search.record(kind, via, &target, address, StepOutcome::Skipped { reason });
                    continue;
                }
                search.asked.insert(key);
                let parsed_target = Url::parse(&target).ok();
                let trusted = via == Via::Scp
                    || parsed_target
                        .as_ref()
                        .is_some_and(|u| search.trust.allows(u));
                match self.ask(protocol, &target, address, trusted).await {
                    Err(failure) => {
                        let outcome = if trusted {
                            failed(self.with_basic_note(failure.reason))
                        } else {
                            refused(&search.trust, parsed_target.as_ref(), &failure.reason)
                        };
                        search.record(kind, via, &target, address, outcome);
                        if failure.other_protocol {
                            continue;
                        }
                        break;
                    }
                    Ok(Answer::Settings {
                        internal,
                        external,
                        server_version,
                    }) => {
                        let valid = |u: Option<String>| u.filter(|u| Url::parse(u).is_ok());
                        let (internal, external) = (valid(internal), valid(external));
                        if internal.is_none() && external.is_none() {
                            search.record(
                                kind,
                                via,
                                &target,
                                address,
                                failed("the answer holds no valid EWS URL".to_owned()),
                            );
                            break;
                        }
                        // The replicator sends the credentials to the EWS
                        // URL: an anonymous answer may only name a trusted one.
                        let trust = &search.trust;
                        let usable = |u: Option<String>| {
                            u.filter(|u| trusted || Url::parse(u).is_ok_and(|p| trust.allows(&p)))
                        };
                        let named = internal.clone().or(external.clone()).unwrap_or_default();
                        let (internal, external) = (usable(internal), usable(external));
                        if internal.is_none() && external.is_none() {
                            let outcome = refused(
                                trust,
                                parsed_target.as_ref(),
                                &format!(
                                    "its anonymous answer names the EWS URL {named}, whose host is not trusted either, so it is not used"
                                ),
                            );
                            search.record(kind, via, &target, address, outcome);
                            break;
                        }
                        let shown = if self.settings.prefer_external_url {
                            external.clone().or(internal.clone())
                        } else {
                            internal.clone().or(external.clone())
                        };
                        search.record(
                            kind,
                            via,
                            &target,
                            address,
                            StepOutcome::Found {
                                ews_url: shown.unwrap_or_default(),
                            },
                        );
                        return Flow::Found(Box::new(Found {
                            internal,
                            external,
                            server_version,
                            autodiscover_url: target,
                        }));
                    }
                    Ok(Answer::Error { code, message }) => {
                        let reason = match message {
                            Some(message) => format!("the server answered {code}: {message}"),
                            None => format!("the server answered {code}"),
                        };
                        search.record(kind, via, &target, address, failed(reason));
                        break;
                    }
                    Ok(Answer::RedirectAddress(next)) => {
                        search.record(
                            kind,
                            via,
                            &target,
                            address,
                            StepOutcome::Redirect { to: next.clone() },
                        );
                        if !search.redirect(self.settings.max_redirects) {
                            return self.too_many_redirects();
                        }
                        if domain_of(&next).is_none() {
                            search.record(
                                kind,
                                via,
                                &target,
                                address,
                                StepOutcome::Skipped {
                                    reason: format!(
                                        "redirectAddr {next:?} is not an e-mail address"
                                    ),
                                },
                            );
                            break;
                        }
                        if search.addresses.contains(&next.to_ascii_lowercase()) {
                            search.record(
                                kind,
                                via,
                                &target,
                                address,
                                StepOutcome::Skipped {
                                    reason: format!(
                                        "redirect loop: {next} was already searched for"
                                    ),
                                },
                            );
                            break;
                        }
                        return Flow::Restart(next);
                    }
                    Ok(Answer::RedirectUrl(next)) => {
                        search.record(
                            kind,
                            via,
                            &target,
                            address,
                            StepOutcome::Redirect { to: next.clone() },
                        );
                        if !search.redirect(self.settings.max_redirects) {
                            return self.too_many_redirects();
                        }
                        match Url::parse(&next) {
                            Ok(parsed) if parsed.scheme() == "https" => {
                                redirect = Some(parsed.to_string());
                            }
                            _ => search.record(
                                kind,
                                Via::RedirectUrl,
                                &next,
                                address,
                                StepOutcome::Skipped {
                                    reason: "refused: redirectUrl targets must be https:// URLs"
                                        .to_owned(),
                                },
                            ),
                        }
                        break;
                    }
                }
            }
            match redirect {
                Some(next) => {
                    url = next;
                    via = Via::RedirectUrl;
                }
                None => return Flow::Next,
            }
        }
    }

    /// The requests to make for a candidate URL: a `.svc` URL is SOAP, any
    /// other POX; besides a redirect's own URL, the other protocol at the
    /// same place is the fallback (first when SOAP is preferred).
    fn attempts(&self, url: &str, via: Via) -> Vec<(Protocol, String)> {
        let lower = url.to_ascii_lowercase();
        let (pox_url, soap_url) = if lower.ends_with(".svc") {
            (replace_suffix(url, "autodiscover.xml"), url.to_owned())
        } else {
            (url.to_owned(), replace_suffix(url, "autodiscover.svc"))
        };
        if via == Via::RedirectUrl {
            return if lower.ends_with(".svc") {
                vec![(Protocol::Soap, soap_url)]
            } else {
                vec![(Protocol::Pox, pox_url)]
            };
        }
        if self.settings.prefer_soap {
            vec![(Protocol::Soap, soap_url), (Protocol::Pox, pox_url)]
        } else {
            vec![(Protocol::Pox, pox_url), (Protocol::Soap, soap_url)]
        }
    }

    /// The reason with a note when a 401 may come from Basic being withheld.
    fn with_basic_note(&self, reason: String) -> String {
        if self.basic_withheld && reason.contains("401") {
            format!("{reason} (autodiscover never sends Basic credentials, and exchange.auth is \"basic\": set exchange.url, or use auth = \"ntlm\")")
        } else {
            reason
        }
    }

    /// One request; with the credentials only when `authenticate`.
    async fn ask(
        &self,
        protocol: Protocol,
        url: &str,
        address: &str,
        authenticate: bool,
    ) -> Result<Answer, AskFailure> {
        let parsed = Url::parse(url).map_err(|e| AskFailure {
            reason: format!("{url:?} is not a URL: {e}"),
            other_protocol: false,
        })?;
        if parsed.scheme() != "https" {
            return Err(AskFailure {
                reason: "refused: autodiscover requests go over https:// only".into(),
                other_protocol: false,
            });
        }
        let serialize = |e: crate::EnvelopeError| AskFailure {
            reason: e.to_string(),
            other_protocol: false,
        };
        let request = match protocol {
            Protocol::Pox => HttpRequest::post(
                parsed.clone(),
                "text/xml; charset=utf-8",
                pox::request(address).map_err(serialize)?,
            ),
            Protocol::Soap => HttpRequest::soap(
                parsed.clone(),
                GetUserSettings::SOAP_ACTION,
                soap::request(url, address).map_err(serialize)?,
            )
            .map_err(|e| AskFailure {
                reason: e.to_string(),
                other_protocol: false,
            })?,
        };
        let (transport, request) = if authenticate {
            (&self.transport, request)
        } else {
            (&self.probe_transport, request.anonymous())
        };
        let response = self.send_retrying(transport, request).await.map_err(|e| {
            // A host that cannot be reached will not answer the other
            // protocol either; a refusal (401, ...) may be per endpoint.
            let other_protocol = matches!(
                e,
                TransportError::Auth { .. }
                    | TransportError::Http { .. }
                    | TransportError::BodyTooLarge { .. }
            );
            AskFailure {
                reason: e.to_string(),
                other_protocol,
            }
        })?;
        let is_soap_fault = protocol == Protocol::Soap
            && response.status == StatusCode::INTERNAL_SERVER_ERROR
            && !response.body.is_empty();
        if !response.status.is_success() && !is_soap_fault {
            return Err(AskFailure {
                reason: format!("HTTP {}", response.status),
                other_protocol: true,
            });
        }
        let parse_failure = |e: crate::EnvelopeError| AskFailure {
            reason: format!("the answer is not usable: {e}"),
            other_protocol: true,
        };
        Ok(match protocol {
            Protocol::Pox => match pox::parse_response(&response.body).map_err(parse_failure)? {
                pox::PoxAnswer::Settings {
                    internal_ews_url,
                    external_ews_url,
                    ..
                } => Answer::Settings {
                    internal: internal_ews_url,
                    external: external_ews_url,
                    server_version: None,
                },
                pox::PoxAnswer::RedirectAddress(a) => Answer::RedirectAddress(a),
                pox::PoxAnswer::RedirectUrl(u) => Answer::RedirectUrl(u),
                pox::PoxAnswer::Error { code, message } => Answer::Error { code, message },
            },
            Protocol::Soap => match soap::parse_response(&response.body).map_err(parse_failure)? {
                soap::UserSettingsAnswer::Settings {
                    internal_ews_url,
                    external_ews_url,
                    server_version,
                } => Answer::Settings {
                    internal: internal_ews_url,
                    external: external_ews_url,
                    server_version,
                },
                soap::UserSettingsAnswer::RedirectAddress(a) => Answer::RedirectAddress(a),
                soap::UserSettingsAnswer::RedirectUrl(u) => Answer::RedirectUrl(u),
                soap::UserSettingsAnswer::Error { code, message } => {
                    Answer::Error { code, message }
                }
            },
        })
    }
}

impl<S, R> AutodiscoverClient<S, R> {
    /// Sends `request`, again after a transient failure of a host that
    /// answered, as [`AutodiscoverSettings::retry`] allows.
    async fn send_retrying(
        &self,
        transport: &HttpTransport,
        request: HttpRequest,
    ) -> Result<HttpResponse, TransportError> {
        let policy = &self.settings.retry;
        let mut retries = 0;
        loop {
            let sent = transport.send(request.clone()).await;
            let asked = match &sent {
                Err(TransportError::ConnectionReset { .. }) => None,
                Ok(response) if matches!(response.status.as_u16(), 502 | 504) => None,
                Ok(response) if response.status == StatusCode::SERVICE_UNAVAILABLE => {
                    crate::client::retry_after(&response.headers, chrono::Utc::now())
                }
                _ => return sent,
            };
            if retries >= policy.max_transient_retries {
                return sent;
            }
            let pause = asked
                .map(|asked| asked.min(policy.max_back_off))
                .unwrap_or_else(|| doubled(policy.initial_back_off, retries, policy.max_back_off));
            retries += 1;
            tracing::debug!(target: "autodiscover", url = %request.url, pause_ms = pause.as_millis() as u64,
                "the autodiscover request failed in a way that may pass; asking again");
            tokio::time::sleep(pause).await;
        }
    }
}

impl<S, R> std::fmt::Debug for AutodiscoverClient<S, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AutodiscoverClient")
            .field("transport", &self.transport)
            .field("scp", &self.scp.is_some())
            .field("srv", &self.srv.is_some())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn failed(reason: String) -> StepOutcome {
    StepOutcome::Failed { reason }
}

/// A host that was not sent the credentials, and what would allow it.
fn refused(trust: &Trust, url: Option<&Url>, what: &str) -> StepOutcome {
    let host = url
        .and_then(Url::host_str)
        .unwrap_or("(no host)")
        .to_owned();
    StepOutcome::Refused {
        reason: format!(
            "{host} is outside the mail domain {} and not in {TRUSTED_HOSTS_KEY}, so it was asked without credentials: {what}; if the host is yours, add \"{host}\" to {TRUSTED_HOSTS_KEY}",
            trust.mail_domain()
        ),
        host,
    }
}

/// The domain of `user@domain`, lower case; `None` when it is no address.
fn domain_of(address: &str) -> Option<&str> {
    let (user, domain) = address.rsplit_once('@')?;
    let valid = !user.is_empty()
        && !domain.is_empty()
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && !domain.starts_with('.')
        && !domain.ends_with('.');
    valid.then_some(domain)
}

/// The form of a URL used to recognise it again: parsed (default port
/// dropped, host lower case) and, as IIS paths are, case-insensitive.
fn request_key(url: &str) -> String {
    Url::parse(url)
        .map(|u| u.to_string())
        .unwrap_or_else(|_| url.to_owned())
        .to_ascii_lowercase()
}

/// `url` with its last path segment replaced by `file`.
fn replace_suffix(url: &str, file: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) => {
            if let Ok(mut segments) = parsed.path_segments_mut() {
                segments.pop().push(file);
            }
            parsed.to_string()
        }
        Err(_) => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_address_with_a_domain_is_a_mailbox() {
        assert_eq!(
            domain_of("alice@corp.example.test"),
            Some("corp.example.test")
        );
        assert_eq!(domain_of("alice"), None);
        assert_eq!(domain_of("@corp.example.test"), None);
        assert_eq!(domain_of("alice@corp/evil"), None);
    }

    #[test]
    fn a_url_is_recognised_with_an_explicit_default_port_and_other_case() {
        assert_eq!(
            request_key("https://Mail.Example.test:443/Autodiscover/Autodiscover.xml"),
            request_key("https://mail.example.test/autodiscover/autodiscover.xml")
        );
    }

    #[test]
    fn the_other_protocol_lives_next_to_the_url() {
        assert_eq!(
            replace_suffix(
                "https://h/Autodiscover/Autodiscover.xml",
                "autodiscover.svc"
            ),
            "https://h/Autodiscover/autodiscover.svc"
        );
    }
}
