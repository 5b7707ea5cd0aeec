//! The simulator's web service routes: `/ws/client/createsession` and the
//! WebSocket upgrade at `/ws/client/websocket`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use super::state::{RecordedCreateSession, Session, Shared};
use crate::ucserver::CLIENT_PROTOCOL_VERSION;

type HttpResponse = Response<Full<Bytes>>;

/// `AsnLogonErrorEnum` values the simulator answers.
const LOGON_INVALID_USER: i64 = 101;
const LOGON_INVALID_VERSION: i64 = 104;
const LOGON_USER_NOT_ENABLED: i64 = 107;

fn json_response(status: StatusCode, body: Value) -> HttpResponse {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json;charset=utf-8")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("valid response")
}

fn ws_error(status: StatusCode, detail: i64, text: &str, details: String) -> HttpResponse {
    json_response(
        status,
        json!({"error": {"details": details, "_type": "WsError", "iErrorDetail": detail, "u8sErrorString": text}}),
    )
}

/// The documented 400 answer of createsession.
fn logon_error(detail: i64, text: &str, user: &str) -> HttpResponse {
    json_response(
        StatusCode::BAD_REQUEST,
        json!({
            "error": {
                "_type": "AsnLogonError",
                "iErrorDetail": detail,
                "sAuthCredetials": "",
                "u8sErrorString": text,
                "u8sFailedUser": user
            },
            "error_value": 0,
            "invokedID": 0,
            "sessionID": ""
        }),
    )
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = header_text(headers, header::AUTHORIZATION.as_str())?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

pub(super) async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<HttpResponse, Infallible> {
    let response = match request.uri().path() {
        "/ws/client/createsession" => create_session(&shared, request).await,
        "/ws/client/websocket" => websocket(shared, request),
        path => ws_error(
            StatusCode::NOT_FOUND,
            404,
            "Not found",
            format!("the simulator serves /ws/client/createsession and /ws/client/websocket, not {path}"),
        ),
    };
    Ok(response)
}

async fn create_session(shared: &Shared, request: Request<Incoming>) -> HttpResponse {
    let (parts, body) = request.into_parts();
    if parts.method != Method::POST && parts.method != Method::GET {
        return ws_error(
            StatusCode::METHOD_NOT_ALLOWED,
            405,
            "Method not allowed",
            "use POST".into(),
        );
    }
    let body = match Limited::new(body, 64 * 1024).collect().await {
        Ok(collected) => String::from_utf8_lossy(&collected.to_bytes()).into_owned(),
        Err(e) => {
            return ws_error(
                StatusCode::BAD_REQUEST,
                400,
                "Bad request",
                format!("cannot read the body: {e}"),
            )
        }
    };
    let credentials = basic_credentials(&parts.headers);
    let x_ucsid = header_text(&parts.headers, "x-ucsid");
    let no401 = header_text(&parts.headers, "x-no401");
    let mut state = shared.lock();
    state.createsession_requests.push(RecordedCreateSession {
        method: parts.method.to_string(),
        path_and_query: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        basic_user: credentials.as_ref().map(|(user, _)| user.clone()),
        content_type: header_text(&parts.headers, header::CONTENT_TYPE.as_str()),
        x_no401: no401.clone(),
        x_simple: header_text(&parts.headers, "x-simple"),
        x_ucsid: x_ucsid.clone(),
        body: body.clone(),
    });
    if state.knobs.refuse_sessions > 0 {
        state.knobs.refuse_sessions -= 1;
        return ws_error(
            StatusCode::SERVICE_UNAVAILABLE,
            503,
            "UCServer is not available",
            "the simulator was told to refuse this session".into(),
        );
    }
    if let (Some(asked), Some(served)) = (&x_ucsid, &state.ucsid) {
        if asked != served {
            return ws_error(
                StatusCode::BAD_GATEWAY,
                119,
                "UCServer is not connected here",
                format!("server not connected here: [{asked}]"),
            );
        }
    }
    let version = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v.get("negotiate")?.get("iClientProtocolVersion")?.as_i64());
    match version {
        Some(v) if v >= i64::from(CLIENT_PROTOCOL_VERSION) => {}
        _ => {
            return logon_error(
                LOGON_INVALID_VERSION,
                &format!("the body must be {{\"negotiate\":{{\"iClientProtocolVersion\":{CLIENT_PROTOCOL_VERSION}}}}} (protocol {CLIENT_PROTOCOL_VERSION} or newer)"),
                "",
            )
        }
    }
    let Some((user, password)) = credentials else {
        if no401.is_some() {
            return logon_error(LOGON_INVALID_USER, "User Authentication failed", "");
        }
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header(header::WWW_AUTHENTICATE, "Basic realm=\"UCServer\"")
            .body(Full::new(Bytes::new()))
            .expect("valid response");
    };
    let (canonical, enabled) = match state.user(&user) {
        Some(u) if u.password.as_deref() == Some(password.as_str()) => {
            (u.user_name.clone(), u.enabled)
        }
        _ => return logon_error(LOGON_INVALID_USER, "User Authentication failed", &user),
    };
    if !enabled {
        return logon_error(
            LOGON_USER_NOT_ENABLED,
            "The user is not enabled on this UCServer",
            &user,
        );
    }
    state.expire_idle();
    state.next_session += 1;
    let session_id = format!(
        "{:016X}{:016X}",
        state.next_session,
        state.next_session.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5ce5_5105
    );
    state.sessions.insert(
        session_id.clone(),
        Session {
            user: canonical,
            admin: false,
            last_activity: Instant::now(),
        },
    );
    state.sessions_created += 1;
    json_response(StatusCode::OK, json!({ "sessionid": session_id }))
}

fn websocket(shared: Arc<Shared>, mut request: Request<Incoming>) -> HttpResponse {
    let headers = request.headers();
    let is_upgrade = header_text(headers, header::UPGRADE.as_str())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let key = header_text(headers, header::SEC_WEBSOCKET_KEY.as_str());
    let (true, Some(key)) = (is_upgrade && request.method() == Method::GET, key) else {
        return ws_error(
            StatusCode::BAD_REQUEST,
            400,
            "Bad request",
            "/ws/client/websocket needs a WebSocket upgrade (GET with Upgrade: websocket)".into(),
        );
    };
    let session_id = url::form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
        .find(|(name, _)| name.eq_ignore_ascii_case("x-ucsessionid"))
        .map(|(_, value)| value.into_owned());
    let Some(session_id) = session_id else {
        return ws_error(
            StatusCode::BAD_REQUEST,
            400,
            "Bad request",
            "x-ucsessionid query parameter missing".into(),
        );
    };
    {
        let mut state = shared.lock();
        state.expire_idle();
        match state.sessions.get_mut(&session_id) {
            Some(session) => session.last_activity = Instant::now(),
            None => {
                return ws_error(
                    StatusCode::NOT_FOUND,
                    404,
                    "Session not found",
                    "the session does not exist or has expired; create a new one".into(),
                )
            }
        }
    }
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                let socket =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                super::rose::serve_socket(shared, session_id, socket).await;
            }
            Err(e) => tracing::debug!("WebSocket upgrade failed: {e}"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(
            header::SEC_WEBSOCKET_ACCEPT,
            derive_accept_key(key.as_bytes()),
        )
        .body(Full::new(Bytes::new()))
        .expect("valid response")
}
