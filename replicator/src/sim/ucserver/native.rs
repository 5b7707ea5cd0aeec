//! The simulator's native port (the UCServer's TCP 7222): ROSE JSON framed
//! `J` + 7 digits + JSON (cpp-runtime/SnaccROSEBase.cpp `GetJsonAsnPrefix`),
//! a logon the client does itself (`asnNegotiateServerConnectionV2`,
//! `asnLoginV2`), then the same operations, users and knobs as the web
//! service: after the logon every message goes to the WebSocket's handler.
//! Every message, the logon's included, is read by the shared codec
//! ([`RoseMessage::from_json`] and the argument types the client encodes
//! with), so the native port reads the forms the runtime reads (bare or in a
//! one-element array, `_type` and other unknown members ignored) and refuses
//! what it refuses with the same reject codes as the WebSocket.
//!
//! Where the SDK leaves the logon open, the simulator accepts what a real
//! server plausibly takes: `asnLoginV2` without `auth` is answered with the
//! supported methods (ENetUC_Common_Auth.asn1, `AsnLoginV2Argument`), and
//! `asnAdminLogin` straight after negotiating logs on as well. The session is
//! the connection: it ends when the connection does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::rose::{handle_text, typed_result, undecodable, Action};
use super::state::{Session, Shared};
use crate::ucserver::asn::{self, AsnRequestError};
use crate::ucserver::framing::{self, MAX_FRAME_LEN};
use crate::ucserver::native::{
    framed_channel_after, AsnLoginV2Argument, AsnLoginV2ChoiceArgument, AsnLoginV2Result,
    AsnLoginV2ResultSuccess, AsnLoginV2ResultSupportedAuthMethods,
    AsnNegotiateServerConnectionV2Argument,
    AsnNegotiateServerConnectionV2IncompatibleInterfaceVersion,
    AsnNegotiateServerConnectionV2Result, AsnNegotiateServerConnectionV2ResultChoice,
    AsnNegotiateServerConnectionV2ServerBusy, AsnStartTls, AUTH_METHOD_BASIC, INTERFACE_VERSION,
    LOGIN_V2, NEGOTIATE_SERVER_CONNECTION_V2, START_TLS,
};
use crate::ucserver::rose::{
    invoke_problem, RejectProblem, RoseInvoke, RoseMessage, EVENT_INVOKE_ID,
};
use crate::ucserver::transport::Io;

/// `AsnLogonErrorEnum` values the simulator answers to `asnLoginV2`.
const LOGON_INVALID_USER: i64 = 101;
const LOGON_USER_NOT_ENABLED: i64 = 107;
/// `InvokeProblem.authenticationIncomplete` (SNACCROSE.asn1), answered to
/// operations sent before the logon.
const AUTHENTICATION_INCOMPLETE: i64 = 9;
/// Highest `AsnClientAppID` in ENetUC_Auth.asn1 (`eCLIENTAPPIDMSTEAMSAPP`).
const MAX_CLIENT_APP_ID: i64 = 28;

/// Accepts native connections until the task is aborted.
pub(super) async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        let Ok((tcp, _peer)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(serve_connection(shared.clone(), tcp, tls.clone()));
    }
}

/// Where a connection is in the logon.
enum Phase {
    Connected,
    Negotiated,
    LoggedOn(String),
}

async fn serve_connection(
    shared: Arc<Shared>,
    mut tcp: TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let mut received = BytesMut::new();
    // The first frame decides whether the connection switches to TLS.
    let first = loop {
        match framing::decode_frame_limited(&mut received, MAX_FRAME_LEN) {
            Ok(Some(text)) => break text,
            Ok(None) => {}
            Err(e) => {
                tracing::debug!("UCServer sim (native): malformed first frame: {e}");
                return;
            }
        }
        match tcp.read_buf(&mut received).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    };
    let (io, pending): (Box<dyn Io>, Option<String>) = match start_tls_invoke_id(&first) {
        Some(id) => {
            shared.lock().received.push(first);
            let Some(acceptor) = tls else {
                let reject = RoseMessage::reject(
                    Some(id),
                    RejectProblem::Invoke(invoke_problem::UNRECOGNISED_OPERATION),
                    "this simulator has no TLS certificate (start it with TLS to use asnStartTLS)"
                        .into(),
                );
                let _ = write_frame(&mut tcp, &reject.to_json()).await;
                return;
            };
            if !received.is_empty() {
                // Bytes after asnStartTLS and before its result cannot be TLS.
                return;
            }
            let result = RoseMessage::result(id, to_raw(&AsnStartTls {}));
            if write_frame(&mut tcp, &result.to_json()).await.is_err() {
                return;
            }
            match acceptor.accept(tcp).await {
                Ok(stream) => (Box::new(stream), None),
                Err(e) => {
                    tracing::debug!("UCServer sim (native): TLS handshake failed: {e}");
                    return;
                }
            }
        }
        None => (Box::new(tcp), Some(first)),
    };
    let (mut sink, mut stream) = framed_channel_after(io, received, MAX_FRAME_LEN);
    let mut phase = Phase::Connected;
    if let Some(text) = pending {
        match handle(&shared, &mut phase, &text).await {
            Action::Reply(answer) => {
                if sink.send(answer.to_json()).await.is_err() {
                    return end(&shared, &phase);
                }
            }
            Action::Nothing => {}
            Action::Drop | Action::Expired => return end(&shared, &phase),
        }
    }
    let (epoch, idle) = {
        let state = shared.lock();
        (state.drop_epoch, state.session_idle_timeout)
    };
    let mut changes = shared.changes.subscribe();
    let mut events = shared.events.subscribe();
    let mut sweep =
        tokio::time::interval((idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(1)));
    loop {
        tokio::select! {
            incoming = stream.next() => {
                let text = match incoming {
                    Some(Ok(text)) => text,
                    Some(Err(e)) => {
                        // A broken frame cannot be resynchronised: close.
                        tracing::debug!("UCServer sim (native): {e}");
                        break;
                    }
                    None => break,
                };
                match handle(&shared, &mut phase, &text).await {
                    Action::Reply(answer) => {
                        // The runtime writes bare messages on the raw stream,
                        // whatever the form: GetEncoded encodes the bare
                        // ROSEMessage (SnaccROSEBase.cpp:410-420) and only
                        // the `J` prefix goes before it (SnaccROSEBase.cpp:698).
                        if sink.send(answer.to_json()).await.is_err() {
                            break;
                        }
                    }
                    Action::Nothing => {}
                    Action::Drop | Action::Expired => break,
                }
            }
            event = events.recv() => {
                match event {
                    Ok(text) if matches!(phase, Phase::LoggedOn(_)) => {
                        if sink.send(text).await.is_err() {
                            break;
                        }
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
            changed = changes.changed() => {
                if changed.is_err() {
                    break;
                }
                let state = shared.lock();
                if state.drop_epoch > epoch {
                    break;
                }
                if let Phase::LoggedOn(id) = &phase {
                    if !state.sessions.contains_key(id) {
                        break;
                    }
                }
            }
            _ = sweep.tick() => {
                if let Phase::LoggedOn(id) = &phase {
                    let mut state = shared.lock();
                    state.expire_idle();
                    if !state.sessions.contains_key(id) {
                        break;
                    }
                }
            }
        }
    }
    end(&shared, &phase);
}

/// The session of a native connection ends with it.
fn end(shared: &Shared, phase: &Phase) {
    if let Phase::LoggedOn(id) = phase {
        shared.lock().sessions.remove(id);
    }
}

async fn write_frame(tcp: &mut TcpStream, json: &str) -> std::io::Result<()> {
    let mut frame = BytesMut::new();
    framing::encode_frame(json, &mut frame).map_err(std::io::Error::other)?;
    tcp.write_all(&frame).await
}

fn to_raw<T: serde::Serialize>(value: &T) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).expect("simulator answers encode")
}

/// The operation an invoke names: `operationID`, or looked up from
/// `operationName` when the id is 0 (SnaccROSEBase.cpp:770-771 dispatches on
/// the id and resolves 0 from the name); 0 when neither names one.
fn operation_id(invoke: &RoseInvoke) -> i64 {
    if invoke.operation_id != 0 {
        return invoke.operation_id;
    }
    let name = invoke.operation_name.as_deref();
    [NEGOTIATE_SERVER_CONNECTION_V2, LOGIN_V2, START_TLS]
        .into_iter()
        .chain(asn::KNOWN_OPERATIONS)
        .find(|op| Some(op.name) == name)
        .map_or(0, |op| op.id)
}

/// The invoke a text holds, read by the shared codec in every form the
/// runtime reads (bare or in a one-element array, unknown members ignored).
fn invoke_of(text: &str) -> Option<RoseInvoke> {
    match RoseMessage::from_json(text) {
        Ok(RoseMessage::Invoke(invoke)) => Some(invoke),
        _ => None,
    }
}

fn start_tls_invoke_id(text: &str) -> Option<i64> {
    let invoke = invoke_of(text)?;
    (operation_id(&invoke) == START_TLS.id).then_some(invoke.invoke_id)
}

fn reject(id: i64, problem: i64, details: impl Into<String>) -> Action {
    Action::Reply(RoseMessage::reject(
        Some(id),
        RejectProblem::Invoke(problem),
        details.into(),
    ))
}

/// The argument of a logon invoke, decoded by the types the client encodes
/// with (unknown members and `_type` ignored, CHOICEs read as the runtime
/// reads them). A missing argument is `argumentMissing`
/// (SnaccROSEBase.cpp:812-813).
fn decode<T: DeserializeOwned>(invoke: &RoseInvoke, operation: &str) -> Result<T, String> {
    let argument = invoke
        .argument
        .as_deref()
        .ok_or_else(|| format!("argumentMissing: {operation} needs an argument"))?;
    serde_json::from_str(argument.get())
        .map_err(|e| format!("argument of {operation} does not decode: {e}"))
}

/// One message of a native connection.
async fn handle(shared: &Shared, phase: &mut Phase, text: &str) -> Action {
    let message = RoseMessage::from_json(text);
    if let Phase::LoggedOn(session_id) = phase {
        let id = match &message {
            Ok(RoseMessage::Invoke(invoke)) => operation_id(invoke),
            _ => 0,
        };
        if id != NEGOTIATE_SERVER_CONNECTION_V2.id && id != LOGIN_V2.id {
            return handle_text(shared, session_id, text).await;
        }
    }
    shared.lock().received.push(text.to_owned());
    let invoke = match message {
        Ok(RoseMessage::Invoke(invoke)) => invoke,
        // Answers to invokes the simulator never sends.
        Ok(_) => return Action::Nothing,
        // As on the WebSocket (SnaccROSEBase.cpp:510-580).
        Err(e) => return undecodable(e),
    };
    let id = invoke.invoke_id;
    match operation_id(&invoke) {
        // SnaccROSEBase.cpp:611: neither operationID nor a known name:
        // dropped unanswered.
        0 => Action::Nothing,
        1006 => negotiate(shared, phase, id, &invoke),
        1005 => login(shared, phase, id, &invoke),
        1103 => reject(
            id,
            invoke_problem::MISTYPED_ARGUMENT,
            "asnStartTLS must be the first message on the connection (ENetUC_Transport.asn1)",
        ),
        // Keep-alives before the logon are harmless.
        1706 if id == EVENT_INVOKE_ID => Action::Nothing,
        2904 if matches!(phase, Phase::Negotiated) => {
            // asnAdminLogin as the logon itself: a session of nobody in
            // particular that only the admin login can make useful.
            let session_id = new_session(shared, "");
            *phase = Phase::LoggedOn(session_id.clone());
            // handle_text records the message again.
            shared.lock().received.pop();
            handle_text(shared, &session_id, text).await
        }
        _ => reject(
            id,
            AUTHENTICATION_INCOMPLETE,
            "log on first: asnNegotiateServerConnectionV2, then asnLoginV2",
        ),
    }
}

fn negotiate(shared: &Shared, phase: &mut Phase, id: i64, invoke: &RoseInvoke) -> Action {
    let arg: AsnNegotiateServerConnectionV2Argument =
        match decode(invoke, NEGOTIATE_SERVER_CONNECTION_V2.name) {
            Ok(arg) => arg,
            Err(details) => return reject(id, invoke_problem::MISTYPED_ARGUMENT, details),
        };
    if !(0..=MAX_CLIENT_APP_ID).contains(&arg.client_app_id) {
        return reject(
            id,
            invoke_problem::MISTYPED_ARGUMENT,
            format!(
                "eClientAppID {} is not an AsnClientAppID",
                arg.client_app_id
            ),
        );
    }
    let answer = {
        let mut state = shared.lock();
        let major = |v: &str| v.split('.').next().and_then(|m| m.parse::<u32>().ok());
        if state.knobs.refuse_sessions > 0 {
            state.knobs.refuse_sessions -= 1;
            AsnNegotiateServerConnectionV2ResultChoice::Busy(
                AsnNegotiateServerConnectionV2ServerBusy {
                    server_busy_timeout: 1,
                },
            )
        } else if major(&arg.min_interface_version) > major(INTERFACE_VERSION) {
            AsnNegotiateServerConnectionV2ResultChoice::Incompatible(
                AsnNegotiateServerConnectionV2IncompatibleInterfaceVersion {
                    server_interface_version: INTERFACE_VERSION.to_owned(),
                },
            )
        } else {
            state.next_session += 1;
            *phase = Phase::Negotiated;
            AsnNegotiateServerConnectionV2ResultChoice::Result(
                AsnNegotiateServerConnectionV2Result {
                    server_type: 0,
                    server_interface_version: INTERFACE_VERSION.to_owned(),
                    authentication_method: 0,
                    server_authentication: String::new(),
                    server_time: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                    server_version: "ews-calendar-replicator UCServer simulator".to_owned(),
                    connection_guid: format!("{{{:032X}}}", state.next_session),
                    presence_domains: Vec::new(),
                },
            )
        }
    };
    let form = shared.lock().form;
    Action::Reply(RoseMessage::result(
        id,
        typed_result(form, "AsnNegotiateServerConnectionV2ResultChoice", &answer),
    ))
}

fn login(shared: &Shared, phase: &mut Phase, id: i64, invoke: &RoseInvoke) -> Action {
    if matches!(phase, Phase::Connected) {
        return reject(
            id,
            AUTHENTICATION_INCOMPLETE,
            "call asnNegotiateServerConnectionV2 before asnLoginV2",
        );
    }
    let arg: AsnLoginV2Argument = match decode(invoke, LOGIN_V2.name) {
        Ok(arg) => arg,
        Err(details) => return reject(id, invoke_problem::MISTYPED_ARGUMENT, details),
    };
    let credential = match arg.auth {
        Some(AsnLoginV2ChoiceArgument::Basic(credential)) => credential,
        // No auth, or a method the simulator does not do: the methods it does.
        _ => {
            let answer =
                AsnLoginV2Result::SupportedAuthMethods(AsnLoginV2ResultSupportedAuthMethods {
                    auth_methods_ordered: vec![AUTH_METHOD_BASIC],
                });
            return login_result(shared, id, &answer);
        }
    };
    let error = |detail: i64, text: &str| {
        let error = AsnRequestError {
            error_detail: detail,
            error_string: text.to_owned(),
        };
        Action::Reply(RoseMessage::error(
            id,
            serde_json::to_value(error).expect("encodes"),
        ))
    };
    let Some((user, password)) = credential.decode() else {
        return error(LOGON_INVALID_USER, "User Authentication failed");
    };
    let canonical = {
        let state = shared.lock();
        match state.user(&user) {
            Some(u) if u.password.as_deref() == Some(password.as_str()) => {
                if !u.enabled {
                    return error(
                        LOGON_USER_NOT_ENABLED,
                        "The user is not enabled on this UCServer",
                    );
                }
                u.user_name.clone()
            }
            _ => return error(LOGON_INVALID_USER, "User Authentication failed"),
        }
    };
    if let Phase::LoggedOn(old) = phase {
        shared.lock().sessions.remove(old);
    }
    let session_id = new_session(shared, &canonical);
    *phase = Phase::LoggedOn(session_id);
    let answer = AsnLoginV2Result::Succeeded(AsnLoginV2ResultSuccess {
        logged_in_user: Some(canonical),
    });
    login_result(shared, id, &answer)
}

/// An `asnLoginV2` result, with `_type` in the web service form as on the
/// WebSocket (web-examples/SessionWithEvents.html:179).
fn login_result(shared: &Shared, id: i64, answer: &AsnLoginV2Result) -> Action {
    let form = shared.lock().form;
    Action::Reply(RoseMessage::result(
        id,
        typed_result(form, "AsnLoginV2Result", answer),
    ))
}

fn new_session(shared: &Shared, user: &str) -> String {
    let mut state = shared.lock();
    state.expire_idle();
    state.next_session += 1;
    let session_id = format!("NATIVE{:016X}", state.next_session);
    state.sessions.insert(
        session_id.clone(),
        Session {
            user: user.to_owned(),
            admin: false,
            last_activity: Instant::now(),
        },
    );
    state.sessions_created += 1;
    session_id
}
