//! An Exchange autodiscover responder: POX (`/autodiscover/autodiscover.xml`),
//! SOAP `GetUserSettings` (`/autodiscover/autodiscover.svc`) and the plain
//! HTTP redirect probe, answering per mailbox or per domain with EWS URLs,
//! `redirectAddr` or `redirectUrl`. Strict like Exchange: POX and SOAP need
//! an authenticated user and are parsed with the generated types.
//!
//! It runs as its own server ([`AutodiscoverResponder::serve`]; tests start
//! several, one per host name) or is mounted by the Exchange simulator,
//! which passes requests to [`AutodiscoverResponder::handle`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode};
use quick_xml::escape::escape;

use super::auth::Authenticator;
use super::http::{plain_response, ServerRequest, SimHttpServer};
use crate::autodiscover::{pox, soap};
use crate::operation::Operation;

/// What the responder answers for a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutodiscoverAnswer {
    /// The mailbox's EWS URLs (POX `EXCH`/`EXPR`, SOAP
    /// `InternalEwsUrl`/`ExternalEwsUrl`).
    Settings {
        internal_ews_url: Option<String>,
        external_ews_url: Option<String>,
    },
    /// Ask again for this address (`redirectAddr` / `RedirectAddress`).
    RedirectAddress(String),
    /// Ask this URL instead (`redirectUrl` / `RedirectUrl`).
    RedirectUrl(String),
}

/// Requests the responder handled, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AutodiscoverCounters {
    /// POX requests (valid or not) from an authenticated user.
    pub pox: u64,
    /// SOAP requests (valid or not) from an authenticated user.
    pub soap: u64,
    /// Unauthenticated GETs answered by the redirect probe.
    pub redirect_probes: u64,
    /// Requests refused as invalid (schema, headers, method).
    pub invalid: u64,
    /// POX/SOAP requests refused because no user was authenticated.
    pub unauthenticated: u64,
}

/// A configurable autodiscover service.
#[derive(Debug, Default)]
pub struct AutodiscoverResponder {
    /// Lower-case mailbox, or `@domain` for every mailbox of a domain.
    answers: Mutex<HashMap<String, AutodiscoverAnswer>>,
    soap_disabled: Mutex<bool>,
    pox_disabled: Mutex<bool>,
    redirect_probe: Mutex<Option<String>>,
    pox: AtomicU64,
    soap: AtomicU64,
    redirect_probes: AtomicU64,
    invalid: AtomicU64,
    unauthenticated: AtomicU64,
}

const POX_PATH: &str = "/autodiscover/autodiscover.xml";
const SOAP_PATH: &str = "/autodiscover/autodiscover.svc";

impl AutodiscoverResponder {
    /// A responder with no answers: every mailbox is unknown.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers `answer` for `mailbox` (case-insensitive).
    pub fn answer_for_mailbox(&self, mailbox: &str, answer: AutodiscoverAnswer) {
        self.answers
            .lock()
            .expect("answers lock")
            .insert(mailbox.to_ascii_lowercase(), answer);
    }

    /// Answers `answer` for every mailbox of `domain` without its own answer.
    pub fn answer_for_domain(&self, domain: &str, answer: AutodiscoverAnswer) {
        self.answers
            .lock()
            .expect("answers lock")
            .insert(format!("@{}", domain.to_ascii_lowercase()), answer);
    }

    /// Whether `autodiscover.svc` is offered (Exchange 2010+); when not, it
    /// answers 404 like a server without the SOAP service.
    pub fn set_soap_offered(&self, offered: bool) {
        *self.soap_disabled.lock().expect("lock") = !offered;
    }

    /// Whether `autodiscover.xml` is offered.
    pub fn set_pox_offered(&self, offered: bool) {
        *self.pox_disabled.lock().expect("lock") = !offered;
    }

    /// Makes an unauthenticated GET of `autodiscover.xml` answer
    /// `302 Found` with this `Location` (the HTTP redirect method).
    pub fn set_redirect_probe(&self, location: Option<String>) {
        *self.redirect_probe.lock().expect("lock") = location;
    }

    pub fn counters(&self) -> AutodiscoverCounters {
        AutodiscoverCounters {
            pox: self.pox.load(Ordering::Relaxed),
            soap: self.soap.load(Ordering::Relaxed),
            redirect_probes: self.redirect_probes.load(Ordering::Relaxed),
            invalid: self.invalid.load(Ordering::Relaxed),
            unauthenticated: self.unauthenticated.load(Ordering::Relaxed),
        }
    }

    fn answer(&self, mailbox: &str) -> Option<AutodiscoverAnswer> {
        let mailbox = mailbox.trim().to_ascii_lowercase();
        let answers = self.answers.lock().expect("answers lock");
        answers.get(&mailbox).cloned().or_else(|| {
            let domain = mailbox.rsplit_once('@')?.1;
            answers.get(&format!("@{domain}")).cloned()
        })
    }

    /// Serves its own server on `bind`, over TLS when `tls` is given,
    /// authenticating with `auth` (without one, POX and SOAP answer 401:
    /// such a server is only good for the redirect probe).
    pub async fn serve(
        self: &Arc<Self>,
        bind: &str,
        tls: Option<Arc<rustls::ServerConfig>>,
        auth: Option<Arc<Authenticator>>,
    ) -> std::io::Result<SimHttpServer> {
        let responder = self.clone();
        SimHttpServer::start(bind, tls, auth, move |request| {
            let responder = responder.clone();
            async move {
                responder.handle(&request).unwrap_or_else(|| {
                    plain_response(StatusCode::NOT_FOUND, "404 - File or directory not found.")
                })
            }
        })
        .await
    }

    /// Answers a request under `/autodiscover/`; `None` for other paths (the
    /// mounting server handles those).
    pub fn handle(&self, request: &ServerRequest) -> Option<http::Response<Bytes>> {
        let path = request.request.uri().path().to_ascii_lowercase();
        if !path.starts_with("/autodiscover/") {
            return None;
        }
        let method = request.request.method();
        Some(match path.as_str() {
            POX_PATH if *method == Method::GET => self.probe(request),
            POX_PATH if *self.pox_disabled.lock().expect("lock") => not_found(),
            POX_PATH if *method == Method::POST => self.pox(request),
            SOAP_PATH if *self.soap_disabled.lock().expect("lock") => not_found(),
            SOAP_PATH if *method == Method::POST => self.soap(request),
            POX_PATH | SOAP_PATH => {
                self.invalid.fetch_add(1, Ordering::Relaxed);
                plain_response(StatusCode::METHOD_NOT_ALLOWED, "405 - Method not allowed.")
            }
            _ => not_found(),
        })
    }

    fn probe(&self, request: &ServerRequest) -> http::Response<Bytes> {
        let location = self.redirect_probe.lock().expect("lock").clone();
        match location {
            Some(location) => {
                self.redirect_probes.fetch_add(1, Ordering::Relaxed);
                let mut response = plain_response(StatusCode::FOUND, "Object moved");
                if let Ok(value) = HeaderValue::from_str(&location) {
                    response.headers_mut().insert(header::LOCATION, value);
                }
                response
            }
            // Exchange answers a GET with "Invalid Request" (after auth).
            None if request.user.is_some() => {
                self.invalid.fetch_add(1, Ordering::Relaxed);
                xml_response(StatusCode::OK, pox_error("600", "Invalid Request"))
            }
            None => self.unauthorized(),
        }
    }

    fn unauthorized(&self) -> http::Response<Bytes> {
        self.unauthenticated.fetch_add(1, Ordering::Relaxed);
        let mut response = plain_response(
            StatusCode::UNAUTHORIZED,
            "401 - Unauthorized: Access is denied due to invalid credentials.",
        );
        for scheme in ["Negotiate", "NTLM"] {
            response
                .headers_mut()
                .append(header::WWW_AUTHENTICATE, HeaderValue::from_static(scheme));
        }
        response
    }

    fn pox(&self, request: &ServerRequest) -> http::Response<Bytes> {
        if request.user.is_none() {
            return self.unauthorized();
        }
        self.pox.fetch_add(1, Ordering::Relaxed);
        let parsed = match pox::parse_request(request.request.body()) {
            Ok(parsed) => parsed,
            Err(_) => {
                self.invalid.fetch_add(1, Ordering::Relaxed);
                return xml_response(StatusCode::OK, pox_error("600", "Invalid Request"));
            }
        };
        if parsed.acceptable_response_schema.trim() != pox::OUTLOOK_RESPONSE_NS {
            self.invalid.fetch_add(1, Ordering::Relaxed);
            return xml_response(
                StatusCode::OK,
                pox_error("601", "Provider is not available"),
            );
        }
        let body = match self.answer(&parsed.e_mail_address) {
            None => pox_error("500", "The email address can't be found."),
            Some(AutodiscoverAnswer::Settings {
                internal_ews_url,
                external_ews_url,
            }) => pox_settings(internal_ews_url.as_deref(), external_ews_url.as_deref()),
            Some(AutodiscoverAnswer::RedirectAddress(address)) => {
                pox_redirect("redirectAddr", "RedirectAddr", &address)
            }
            Some(AutodiscoverAnswer::RedirectUrl(url)) => {
                pox_redirect("redirectUrl", "RedirectUrl", &url)
            }
        };
        xml_response(StatusCode::OK, body)
    }

    fn soap(&self, request: &ServerRequest) -> http::Response<Bytes> {
        if request.user.is_none() {
            return self.unauthorized();
        }
        self.soap.fetch_add(1, Ordering::Relaxed);
        let parsed = match soap::parse_request(request.request.body()) {
            Ok(parsed) => parsed,
            Err(e) => {
                return self.soap_fault(&format!("The request failed schema validation: {e}"))
            }
        };
        if parsed.action.as_deref() != Some(soap::GetUserSettings::SOAP_ACTION) {
            return self
                .soap_fault("The WS-Addressing Action header is missing or not GetUserSettings.");
        }
        let to_ok = parsed
            .to
            .as_deref()
            .is_some_and(|to| to.to_ascii_lowercase().ends_with(SOAP_PATH));
        if !to_ok {
            return self.soap_fault("The WS-Addressing To header is missing or not this service.");
        }
        const VERSIONS: [&str; 5] = [
            "Exchange2010",
            "Exchange2010_SP1",
            "Exchange2010_SP2",
            "Exchange2013",
            "Exchange2013_SP1",
        ];
        if !parsed
            .requested_server_version
            .as_deref()
            .is_some_and(|v| VERSIONS.contains(&v))
        {
            return self.soap_fault("The RequestedServerVersion header is missing or invalid.");
        }
        if parsed.mailboxes.is_empty() || parsed.settings.is_empty() {
            return self.soap_fault("The request names no user or no setting.");
        }
        let users: String = parsed
            .mailboxes
            .iter()
            .map(|mailbox| soap_user_response(self.answer(mailbox), &parsed.settings))
            .collect();
        xml_response(StatusCode::OK, soap_envelope(&format!(
            "<Response><ErrorCode>NoError</ErrorCode><ErrorMessage/><UserResponses>{users}</UserResponses></Response>"
        )))
    }

    fn soap_fault(&self, message: &str) -> http::Response<Bytes> {
        self.invalid.fetch_add(1, Ordering::Relaxed);
        let body = format!(
            r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring xml:lang="en-US">{}</faultstring></s:Fault></s:Body></s:Envelope>"#,
            escape(message)
        );
        xml_response(StatusCode::INTERNAL_SERVER_ERROR, body)
    }
}

fn not_found() -> http::Response<Bytes> {
    plain_response(StatusCode::NOT_FOUND, "404 - File or directory not found.")
}

fn xml_response(status: StatusCode, body: String) -> http::Response<Bytes> {
    let mut response = http::Response::new(Bytes::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    response
}

fn pox_error(code: &str, message: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="{}"><Response><Error Time="00:00:00.0000000" Id="1"><ErrorCode>{code}</ErrorCode><Message>{}</Message><DebugData /></Error></Response></Autodiscover>"#,
        pox::RESPONSE_NS,
        escape(message)
    )
}

fn pox_account(account: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="{}"><Response xmlns="{}"><Account><AccountType>email</AccountType>{account}</Account></Response></Autodiscover>"#,
        pox::RESPONSE_NS,
        pox::OUTLOOK_RESPONSE_NS
    )
}

fn pox_settings(internal: Option<&str>, external: Option<&str>) -> String {
    let protocol = |kind: &str, url: Option<&str>| {
        url.map(|url| {
            format!(
                "<Protocol><Type>{kind}</Type><EwsUrl>{}</EwsUrl></Protocol>",
                escape(url)
            )
        })
        .unwrap_or_default()
    };
    pox_account(&format!(
        "<Action>settings</Action>{}{}",
        protocol("EXCH", internal),
        protocol("EXPR", external)
    ))
}

fn pox_redirect(action: &str, element: &str, target: &str) -> String {
    pox_account(&format!(
        "<Action>{action}</Action><{element}>{}</{element}>",
        escape(target)
    ))
}

fn soap_envelope(response: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:a="http://www.w3.org/2005/08/addressing"><s:Header><a:Action s:mustUnderstand="1">http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettingsResponse</a:Action><h:ServerVersionInfo xmlns:h="{ns}"><h:MajorVersion>15</h:MajorVersion><h:MinorVersion>1</h:MinorVersion><h:MajorBuildNumber>2507</h:MajorBuildNumber><h:MinorBuildNumber>39</h:MinorBuildNumber><h:Version>Exchange2013_SP1</h:Version></h:ServerVersionInfo></s:Header><s:Body><GetUserSettingsResponseMessage xmlns="{ns}">{response}</GetUserSettingsResponseMessage></s:Body></s:Envelope>"#,
        ns = soap::AUTODISCOVER_NS
    )
}

fn soap_user_response(answer: Option<AutodiscoverAnswer>, requested: &[String]) -> String {
    let user = |code: &str, message: &str, target: Option<&str>, settings: &str| {
        let target = match target {
            Some(t) => format!("<RedirectTarget>{}</RedirectTarget>", escape(t)),
            None => "<RedirectTarget/>".to_owned(),
        };
        format!(
            "<UserResponse><ErrorCode>{code}</ErrorCode><ErrorMessage>{}</ErrorMessage>{target}<UserSettingErrors/><UserSettings>{settings}</UserSettings></UserResponse>",
            escape(message)
        )
    };
    match answer {
        None => user("InvalidUser", "Invalid user.", None, ""),
        Some(AutodiscoverAnswer::RedirectAddress(address)) => user(
            "RedirectAddress",
            "Redirection address.",
            Some(&address),
            "",
        ),
        Some(AutodiscoverAnswer::RedirectUrl(url)) => {
            user("RedirectUrl", "Redirection URL.", Some(&url), "")
        }
        Some(AutodiscoverAnswer::Settings {
            internal_ews_url,
            external_ews_url,
        }) => {
            let settings: String = [
                ("InternalEwsUrl", internal_ews_url),
                ("ExternalEwsUrl", external_ews_url),
            ]
            .into_iter()
            .filter(|(name, _)| requested.iter().any(|r| r == name))
            .filter_map(|(name, value)| {
                value.map(|v| {
                    format!(
                        r#"<UserSetting xmlns:i="http://www.w3.org/2001/XMLSchema-instance" i:type="StringSetting"><Name>{name}</Name><Value>{}</Value></UserSetting>"#,
                        escape(&v)
                    )
                })
            })
            .collect();
            user("NoError", "No error.", None, &settings)
        }
    }
}
