//! One EWS request from arrival to answer: HTTP checks as IIS makes them,
//! concurrency admission, injected faults, latency, strict parsing of the
//! envelope and its headers, and dispatch to the operation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};

use crate::envelope::{deserialize, read_envelope_body, HeaderCopies, MESSAGES_NS};
use crate::filter::FILTER_SCHEMA;
use crate::operation::{
    FindItem, GetFolder, GetStreamingEvents, GetUserAvailability, Operation, ResolveNames,
    Subscribe, Unsubscribe,
};
use crate::response_message::wire;
use crate::sim::http::{plain_response, ResponseFault, ServerRequest};
use crate::types;

use super::answer::{AffinityHeaders, Answer, Caller};
use super::settings::{BusyMode, InjectedFault, SimAccount, EWS_PATH};
use super::soap::{self, Fault, VERSION_ORDER};
use super::state::{RequestRecord, Shared, MAX_RECORDS};

/// Counts a request in flight; uncounts it when the answer is done.
struct InFlight(Arc<Shared>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.lock().counters.current_concurrent -= 1;
    }
}

pub(crate) async fn handle(shared: Arc<Shared>, request: ServerRequest) -> http::Response<Bytes> {
    let arrived = Instant::now();
    if let Some(response) = shared.autodiscover.handle(&request) {
        return response;
    }
    let ServerRequest { request, user } = request;
    let (parts, body) = request.into_parts();
    if !parts.uri.path().eq_ignore_ascii_case(EWS_PATH) {
        return plain_response(StatusCode::NOT_FOUND, "404 - File or directory not found.");
    }
    if parts.method != Method::POST {
        let mut response = plain_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "EWS accepts SOAP requests by POST only.",
        );
        response
            .headers_mut()
            .insert(http::header::ALLOW, http::HeaderValue::from_static("POST"));
        return response;
    }
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !content_type.starts_with("text/xml") {
        return plain_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!(
                "Cannot process the message because the content type '{content_type}' was not the expected type 'text/xml; charset=utf-8'."
            ),
        );
    }
    let soap_action = parts
        .headers
        .get("soapaction")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().trim_matches('"').to_owned());

    // Admission: every request counts while it is in flight.
    let (over_limit, busy_mode, latency) = {
        let mut state = shared.lock();
        state.counters.requests += 1;
        state.counters.current_concurrent += 1;
        state.counters.peak_concurrent = state
            .counters
            .peak_concurrent
            .max(state.counters.current_concurrent);
        let over = state
            .knobs
            .max_concurrent_requests
            .is_some_and(|max| state.counters.current_concurrent > max);
        (over, state.knobs.busy_mode, state.knobs.request_latency)
    };
    let _in_flight = InFlight(shared.clone());

    let affinity = affinity_headers(&parts.headers);
    let mut record = RequestRecord {
        arrived,
        operation: "-".into(),
        mailboxes: Vec::new(),
        window: None,
        account: user.clone(),
        outcome: "ok".into(),
        anchor_mailbox: affinity.anchor_mailbox.clone(),
        backend_cookie: affinity.backend_cookie.clone(),
    };
    let parsed = parse(&shared, &body, soap_action.as_deref(), user.as_deref());
    if let Ok(request) = &parsed {
        record.operation = request.operation().to_owned();
        if let EwsRequest::GetUserAvailability(gua, _) = request {
            record.mailboxes = gua
                .mailbox_data_array
                .mailbox_data
                .iter()
                .map(|m| m.email.address.clone())
                .collect();
            record.window = super::availability::window_utc(gua).ok();
        }
    }

    let version = shared.server_version.clone();
    // A request refused for concurrency leaves queued faults for the next.
    let injected = if over_limit {
        None
    } else {
        shared.lock().faults.pop_front()
    };
    let response = if over_limit {
        busy(&shared, &mut record, busy_mode, &parsed)
    } else if let Some(InjectedFault::Busy(mode)) = injected {
        shared.lock().counters.faults_injected += 1;
        busy(&shared, &mut record, mode, &parsed)
    } else if let Some(fault @ (InjectedFault::ConnectionReset | InjectedFault::HttpStatus(_))) =
        injected
    {
        shared.lock().counters.faults_injected += 1;
        record.outcome = format!("fault:{fault:?}");
        let mut response = match fault {
            InjectedFault::HttpStatus(code) => {
                let status =
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                plain_response(status, status.canonical_reason().unwrap_or("error"))
            }
            _ => plain_response(StatusCode::OK, ""),
        };
        if fault == InjectedFault::ConnectionReset {
            response
                .extensions_mut()
                .insert(ResponseFault::CloseConnection);
        }
        response
    } else {
        // The latency knobs are the server's whole cost: the answer leaves
        // `latency` after the request arrived, however long the simulator
        // took to compose it (its own CPU time would otherwise be added to
        // every request a benchmark makes).
        let mut due = arrived + latency;
        let answer = match parsed {
            Err(fault) => Answer::Fault(fault),
            Ok(request) => {
                due += extra_latency(&shared, &request);
                execute(&shared, request, &affinity)
            }
        };
        let mut response = match answer {
            Answer::Http(response) => response,
            Answer::Ok(body) => soap::xml_response(StatusCode::OK, soap::envelope(&version, &body)),
            Answer::Refused(body, code) => {
                record.outcome = code.to_owned();
                soap::xml_response(StatusCode::OK, soap::envelope(&version, &body))
            }
            Answer::Fault(fault) => {
                record.outcome = fault.code.to_owned();
                soap::xml_response(StatusCode::INTERNAL_SERVER_ERROR, fault.to_xml(&version))
            }
        };
        tokio::time::sleep_until(due.into()).await;
        if let Some(fault) = injected {
            shared.lock().counters.faults_injected += 1;
            record.outcome = format!("fault:{fault:?}");
            mangle(&mut response, fault);
        }
        response
    };
    {
        let mut state = shared.lock();
        *state
            .counters
            .requests_by_operation
            .entry(record.operation.clone())
            .or_default() += 1;
        state.counters.mailboxes_requested += record.mailboxes.len() as u64;
        if state.records.len() >= MAX_RECORDS {
            // A long-running simulator keeps the most recent requests only.
            state.records.drain(..MAX_RECORDS / 10);
        }
        state.records.push(record);
    }
    response
}

/// The affinity headers ("Maintain affinity between a group of
/// subscriptions and the Mailbox server in Exchange"), read on every request
/// (Exchange's front end routes every request by them).
fn affinity_headers(headers: &http::HeaderMap) -> AffinityHeaders {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    AffinityHeaders {
        anchor_mailbox: text("x-anchormailbox"),
        prefer_server_affinity: text("x-preferserveraffinity")
            .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        backend_cookie: headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(super::notifications::cookie_value),
    }
}

/// Breaks a finished response as `fault` says.
fn mangle(response: &mut http::Response<Bytes>, fault: InjectedFault) {
    let body = response.body().clone();
    match fault {
        InjectedFault::TruncatedBody => {
            response
                .extensions_mut()
                .insert(ResponseFault::TruncateBody {
                    bytes: body.len() / 2,
                });
        }
        InjectedFault::TruncatedXml => {
            *response.body_mut() = body.slice(..body.len() / 2);
        }
        InjectedFault::MalformedXml => {
            // An end tag that closes nothing, half-way through.
            let cut = body.len() / 2;
            let mut broken = body.slice(..cut).to_vec();
            broken.extend_from_slice(b"</t:Unopened>");
            broken.extend_from_slice(&body[cut..]);
            *response.body_mut() = Bytes::from(broken);
        }
        InjectedFault::SlowBody { delay } => {
            response
                .extensions_mut()
                .insert(ResponseFault::SlowBody { chunk: 64, delay });
        }
        InjectedFault::ConnectionReset | InjectedFault::HttpStatus(_) | InjectedFault::Busy(_) => {}
    }
}

/// The busy answer in `mode`.
fn busy(
    shared: &Shared,
    record: &mut RequestRecord,
    mode: BusyMode,
    parsed: &Result<EwsRequest, Fault>,
) -> http::Response<Bytes> {
    shared.lock().counters.busy_answers += 1;
    let version = &shared.server_version;
    let server_busy = |back_off_ms: u64| {
        Fault::new(
            "ErrorServerBusy",
            "The server is too busy to handle this request at the moment. Retry later.",
        )
        .with_value("BackOffMilliseconds", back_off_ms)
    };
    match mode {
        BusyMode::Http503 => {
            record.outcome = "http:503".into();
            plain_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable: the server is too busy.",
            )
        }
        BusyMode::SoapFault { back_off_ms } => {
            record.outcome = "ErrorServerBusy".into();
            soap::xml_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                server_busy(back_off_ms).to_xml(version),
            )
        }
        BusyMode::ExceededConnectionCount => {
            record.outcome = "ErrorExceededConnectionCount".into();
            let limit = shared.lock().knobs.max_concurrent_requests.unwrap_or(0);
            let fault = Fault::new(
                "ErrorExceededConnectionCount",
                "The account has reached its limit of concurrent connections. Retry once its other requests have finished.",
            )
            .with_value("Policy", "MaxConcurrency")
            .with_value("MaxConcurrencyLimit", limit)
            .with_value(
                "ErrorMessage",
                format!("Throttling budget exceeded: policy part 'MaxConcurrency', limit '{limit}', budget type 'Ews'. Suggested backoff time 0 ms."),
            );
            soap::xml_response(StatusCode::INTERNAL_SERVER_ERROR, fault.to_xml(version))
        }
        BusyMode::InnerError { back_off_ms } => {
            record.outcome = "ErrorServerBusy".into();
            match parsed {
                Ok(EwsRequest::GetUserAvailability(request, _)) => soap::xml_response(
                    StatusCode::OK,
                    soap::envelope(
                        version,
                        &super::availability::all_busy(
                            request.mailbox_data_array.mailbox_data.len(),
                            back_off_ms,
                        ),
                    ),
                ),
                _ => soap::xml_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    server_busy(back_off_ms).to_xml(version),
                ),
            }
        }
    }
}

fn extra_latency(shared: &Shared, request: &EwsRequest) -> Duration {
    match request {
        EwsRequest::GetUserAvailability(r, _) => {
            let state = shared.lock();
            let mailboxes = &r.mailbox_data_array.mailbox_data;
            let specific: Duration = mailboxes
                .iter()
                .filter_map(|m| {
                    state
                        .mailbox_latency
                        .get(&m.email.address.trim().to_ascii_lowercase())
                })
                .sum();
            state.knobs.per_mailbox_latency * mailboxes.len() as u32 + specific
        }
        _ => Duration::ZERO,
    }
}

/// A parsed request and who it acts as.
pub(crate) enum EwsRequest {
    GetUserAvailability(Box<types::GetUserAvailabilityRequestType>, Caller),
    FindItem(Box<types::FindItemType>, Caller),
    GetFolder(Box<types::GetFolderType>, Caller),
    ResolveNames(Box<types::ResolveNamesType>),
    Subscribe(Box<types::SubscribeType>, Caller),
    GetStreamingEvents(Box<types::GetStreamingEventsType>, Caller),
    Unsubscribe(Box<types::UnsubscribeType>, Caller),
}

impl EwsRequest {
    fn operation(&self) -> &'static str {
        match self {
            EwsRequest::GetUserAvailability(..) => GetUserAvailability::NAME,
            EwsRequest::FindItem(..) => FindItem::NAME,
            EwsRequest::GetFolder(..) => GetFolder::NAME,
            EwsRequest::ResolveNames(_) => ResolveNames::NAME,
            EwsRequest::Subscribe(..) => Subscribe::NAME,
            EwsRequest::GetStreamingEvents(..) => GetStreamingEvents::NAME,
            EwsRequest::Unsubscribe(..) => Unsubscribe::NAME,
        }
    }
}

fn execute(shared: &Arc<Shared>, request: EwsRequest, affinity: &AffinityHeaders) -> Answer {
    use super::notifications;
    let request = match request {
        EwsRequest::Subscribe(r, caller) => {
            return notifications::subscribe(shared, &caller, affinity, &r)
        }
        EwsRequest::GetStreamingEvents(r, caller) => {
            return notifications::get_streaming_events(shared, &caller, &r)
        }
        EwsRequest::Unsubscribe(r, caller) => {
            return notifications::unsubscribe(shared, &caller, &r)
        }
        other => other,
    };
    let state = shared.lock();
    match request {
        EwsRequest::GetUserAvailability(r, caller) => {
            super::availability::answer(&state, &caller, &r)
        }
        EwsRequest::FindItem(r, caller) => super::items::find_item(&state, &caller, &r),
        EwsRequest::GetFolder(r, caller) => super::items::get_folder(&state, &caller, &r),
        EwsRequest::ResolveNames(r) => super::items::resolve_names(&state, &r),
        EwsRequest::Subscribe(..)
        | EwsRequest::GetStreamingEvents(..)
        | EwsRequest::Unsubscribe(..) => unreachable!("answered above"),
    }
}

/// Reads the request strictly: SOAP 1.1, a known operation whose
/// `SOAPAction` (when sent) matches, only declared elements, the generated
/// types, a valid `RequestServerVersion`, allowed impersonation.
fn parse(
    shared: &Shared,
    body: &[u8],
    soap_action: Option<&str>,
    user: Option<&str>,
) -> Result<EwsRequest, Fault> {
    let (ns, local) = soap::body_element(body)?;
    if ns != MESSAGES_NS {
        return Err(Fault::schema_validation(
            format!("The element '{local}' in namespace '{ns}' is not an EWS request."),
            0,
        ));
    }
    let known = [
        (
            GetUserAvailability::REQUEST_ELEMENT.local,
            GetUserAvailability::SOAP_ACTION,
        ),
        (FindItem::REQUEST_ELEMENT.local, FindItem::SOAP_ACTION),
        (GetFolder::REQUEST_ELEMENT.local, GetFolder::SOAP_ACTION),
        (
            ResolveNames::REQUEST_ELEMENT.local,
            ResolveNames::SOAP_ACTION,
        ),
        (Subscribe::REQUEST_ELEMENT.local, Subscribe::SOAP_ACTION),
        (
            GetStreamingEvents::REQUEST_ELEMENT.local,
            GetStreamingEvents::SOAP_ACTION,
        ),
        (Unsubscribe::REQUEST_ELEMENT.local, Unsubscribe::SOAP_ACTION),
    ];
    let Some(&(_, action)) = known.iter().find(|(element, _)| *element == local) else {
        return Err(Fault::new(
            "ErrorInvalidRequest",
            format!("The request '{local}' is not served by this simulator (GetUserAvailability, FindItem, GetFolder, ResolveNames, Subscribe, GetStreamingEvents, Unsubscribe are)."),
        ));
    };
    if let Some(sent) = soap_action {
        if !sent.is_empty() && sent != action {
            return Err(Fault::new(
                "ErrorInvalidRequest",
                format!("The SOAPAction header '{sent}' does not match the request element '{local}' (expected '{action}')."),
            ));
        }
    }
    soap::check_declared(&FILTER_SCHEMA, body)?;
    let account = account_of(shared, user);
    macro_rules! read {
        ($op:ty) => {{
            let (request, headers, _) = read_envelope_body::<<$op as Operation>::Request>(
                <$op as Operation>::FILTER,
                <$op as Operation>::NAME,
                <$op as Operation>::REQUEST_ELEMENT,
                body,
            )
            .map_err(|e| Fault::schema_validation(e.to_string(), 0))?;
            let caller = check_headers::<$op>(shared, &headers, account, user)?;
            (Box::new(request), caller)
        }};
    }
    Ok(match local.as_str() {
        "GetUserAvailabilityRequest" => {
            let (request, caller) = read!(GetUserAvailability);
            EwsRequest::GetUserAvailability(request, caller)
        }
        "FindItem" => {
            let (request, caller) = read!(FindItem);
            EwsRequest::FindItem(request, caller)
        }
        "GetFolder" => {
            let (request, caller) = read!(GetFolder);
            EwsRequest::GetFolder(request, caller)
        }
        "Subscribe" => {
            let (request, caller) = read!(Subscribe);
            EwsRequest::Subscribe(request, caller)
        }
        "GetStreamingEvents" => {
            let (request, caller) = read!(GetStreamingEvents);
            EwsRequest::GetStreamingEvents(request, caller)
        }
        "Unsubscribe" => {
            let (request, caller) = read!(Unsubscribe);
            EwsRequest::Unsubscribe(request, caller)
        }
        _ => EwsRequest::ResolveNames(read!(ResolveNames).0),
    })
}

fn account_of<'a>(shared: &'a Shared, user: Option<&str>) -> Option<&'a SimAccount> {
    let user = user?;
    let (domain, name) = user.split_once('\\').unwrap_or(("", user));
    shared.accounts.iter().find(|a| {
        a.user.eq_ignore_ascii_case(name)
            && (domain.is_empty() || a.domain.eq_ignore_ascii_case(domain))
    })
}

fn check_headers<Op: Operation>(
    shared: &Shared,
    headers: &HeaderCopies,
    account: Option<&SimAccount>,
    user: Option<&str>,
) -> Result<Caller, Fault> {
    // One name per account however it authenticated (NTLM, Basic, UPN).
    let account_name = match account {
        Some(a) => format!("{}\\{}", a.domain, a.user),
        None => user.unwrap_or_default().to_owned(),
    }
    .to_ascii_lowercase();
    let mut version = None;
    let mut impersonate = None;
    for (local, copy) in headers {
        if !Op::INPUT_HEADERS.iter().any(|h| h.local == local) {
            return Err(Fault::schema_validation(
                format!(
                    "The {} operation does not accept the SOAP header '{local}'.",
                    Op::NAME
                ),
                0,
            ));
        }
        match local.as_str() {
            "RequestServerVersion" => {
                let value: types::RequestServerVersionElementType = deserialize(Op::NAME, copy)
                    .map_err(|e| Fault::schema_validation(e.to_string(), 0))?;
                version = Some(wire(&value.version));
            }
            "ExchangeImpersonation" => {
                let value: types::ExchangeImpersonationType = deserialize(Op::NAME, copy)
                    .map_err(|e| Fault::schema_validation(e.to_string(), 0))?;
                impersonate = Some(value.connecting_sid);
            }
            _ => {}
        }
    }
    let Some(version) = version else {
        return Err(Fault::new(
            "ErrorInvalidServerVersion",
            "The request has no RequestServerVersion SOAP header; this server requires one (e.g. <t:RequestServerVersion Version=\"Exchange2013_SP1\"/>).",
        ));
    };
    let Some(requested) = VERSION_ORDER.iter().position(|v| *v == version) else {
        return Err(Fault::schema_validation(
            format!("The 'Version' attribute is invalid - The value '{version}' is invalid according to its datatype 'http://schemas.microsoft.com/exchange/services/2006/types:ExchangeVersionType' - The Enumeration constraint failed."),
            0,
        ));
    };
    let served = VERSION_ORDER
        .iter()
        .position(|v| *v == shared.server_version.version)
        .unwrap_or(VERSION_ORDER.len() - 1);
    if requested > served {
        return Err(Fault::new(
            "ErrorInvalidServerVersion",
            format!(
                "The specified server version is invalid: {version} is newer than this server's {}.",
                shared.server_version.version
            ),
        ));
    }
    let own = account.and_then(|a| a.smtp.clone());
    let Some(sid) = impersonate else {
        return Ok(Caller {
            acting_as: own,
            account: account_name,
        });
    };
    if !account.is_some_and(|a| a.impersonation) {
        return Err(Fault::new(
            "ErrorImpersonateUserDenied",
            "The account does not have permission to impersonate the requested user.",
        ));
    }
    let target = match sid {
        types::ConnectingSidType::SmtpAddress(s) => s.content,
        types::ConnectingSidType::PrimarySmtpAddress(s) => s.content,
        types::ConnectingSidType::PrincipalName(p) => p.content,
        types::ConnectingSidType::Sid(_) => {
            return Err(Fault::new(
                "ErrorImpersonationFailed",
                "Impersonation by SID is not supported by this simulator; use SmtpAddress.",
            ))
        }
    };
    if shared.lock().mailbox(&target).is_none() {
        return Err(Fault::new(
            "ErrorNonExistentMailbox",
            format!("The SMTP address {target} has no mailbox associated with it."),
        ));
    }
    Ok(Caller {
        acting_as: Some(target),
        account: account_name,
    })
}
