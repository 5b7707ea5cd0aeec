//! One WebSocket of the simulator: strict ROSE decoding and the operations.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::state::{Knobs, Shared, State, WriteRecord};
use crate::ucserver::asn::{
    self, AdminPassword, AsnAdminGetUserProfilesArgument, AsnAdminGetUserProfilesResult,
    AsnAdminLoginArgument, AsnAdminLoginResult, AsnAppointmentSetEntryListArgument,
    AsnAppointmentSetEntryListResult, AsnNetDatabaseContact, AsnRequestError,
    AsnTransportKeepAliveArgument, AsnUserProfile, AsnUserPropertyBag, OnlineStateFilter,
    Operation,
};
use crate::ucserver::rose::{
    general_problem, invoke_problem, RejectProblem, RoseInvoke, RoseMessage, EVENT_INVOKE_ID,
};

/// `iErrorDetail` the simulator answers when no user matches (as
/// `AsnAdminGetUserProfilesErrorEnum.nouserfound`).
pub const ERROR_NO_SUCH_USER: i64 = 1;
/// `iErrorDetail` for an operation the session may not call (as
/// `AsnAdminGetUserProfilesErrorEnum.accessdenied`).
pub const ERROR_ACCESS_DENIED: i64 = 2;
/// `iErrorDetail` for a feature the simulator does not implement.
pub const ERROR_NOT_SUPPORTED: i64 = 3;

/// What to do after a message.
pub(super) enum Action {
    Reply(String),
    Nothing,
    /// Drop the socket without a close frame (a network failure).
    Drop,
    /// Close the socket: the session is gone.
    Expired,
}

fn reject(id: Option<i64>, problem: RejectProblem, details: impl Into<String>) -> Action {
    Action::Reply(RoseMessage::reject(id, problem, details.into()).to_json())
}

fn mistyped(id: i64, details: impl Into<String>) -> Action {
    reject(
        Some(id),
        RejectProblem::Invoke(invoke_problem::MISTYPED_ARGUMENT),
        details,
    )
}

enum Outcome {
    /// The result as JSON text: a listing of 10,000 profiles goes from its
    /// typed form to text in one step.
    Result(Box<RawValue>),
    Error(AsnRequestError),
    Mistyped(String),
    Expired,
}

fn request_error(detail: i64, text: impl Into<String>) -> Outcome {
    Outcome::Error(AsnRequestError {
        error_detail: detail,
        error_string: text.into(),
    })
}

fn decode<T: DeserializeOwned>(operation: Operation, argument: &RawValue) -> Result<T, String> {
    serde_json::from_str(argument.get())
        .map_err(|e| format!("argument of {} does not decode: {e}", operation.name))
}

/// Serves ROSE on an accepted WebSocket of `session_id`.
pub(super) async fn serve_socket<S>(
    shared: Arc<Shared>,
    session_id: String,
    socket: WebSocketStream<S>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (epoch, idle) = {
        let state = shared.lock();
        (state.drop_epoch, state.session_idle_timeout)
    };
    let mut changes = shared.changes.subscribe();
    let mut events = shared.events.subscribe();
    let (mut sink, mut stream) = socket.split();
    let mut sweep =
        tokio::time::interval((idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(1)));
    let expired = loop {
        tokio::select! {
            incoming = stream.next() => {
                let text = match incoming {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Binary(_))) => {
                        let answer = RoseMessage::reject(
                            None,
                            RejectProblem::General(general_problem::UNRECOGNISED_APDU),
                            "binary (BER) messages are not supported by the simulator; send JSON text frames".into(),
                        );
                        if sink.send(Message::text(answer.to_json())).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    Some(Ok(_)) => continue,
                };
                let invoke = shared.start_invoke();
                let action = handle_text(&shared, &session_id, text.as_str()).await;
                drop(invoke);
                match action {
                    Action::Reply(answer) => {
                        if sink.send(Message::text(answer)).await.is_err() {
                            return;
                        }
                    }
                    Action::Nothing => {}
                    Action::Drop => return,
                    Action::Expired => break true,
                }
            }
            event = events.recv() => {
                match event {
                    Ok(text) => {
                        if sink.send(Message::text(text)).await.is_err() {
                            return;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                let state = shared.lock();
                if state.drop_epoch > epoch {
                    return;
                }
                if !state.sessions.contains_key(&session_id) {
                    break true;
                }
            }
            _ = sweep.tick() => {
                let mut state = shared.lock();
                state.expire_idle();
                if !state.sessions.contains_key(&session_id) {
                    break true;
                }
            }
        }
    };
    if expired {
        let frame = CloseFrame {
            code: CloseCode::Policy,
            reason: "session expired".into(),
        };
        let _ = sink.send(Message::Close(Some(frame))).await;
    }
}

pub(super) async fn handle_text(shared: &Shared, session_id: &str, text: &str) -> Action {
    {
        let mut state = shared.lock();
        state.received.push(text.to_owned());
        match state.sessions.get_mut(session_id) {
            Some(session) => session.last_activity = Instant::now(),
            None => return Action::Expired,
        }
    }
    let message: RoseMessage = match serde_json::from_str(text) {
        Ok(m) => m,
        Err(e) => {
            return reject(
                None,
                RejectProblem::General(general_problem::BADLY_STRUCTURED_APDU),
                format!("cannot decode the ROSE message: {e}"),
            )
        }
    };
    let invoke = match message {
        RoseMessage::Invoke(invoke) => invoke,
        // Answers to invokes the simulator never sends.
        _ => return Action::Nothing,
    };
    let id = invoke.invoke_id;
    let Some(name) = invoke.operation_name.clone() else {
        return reject(
            Some(id),
            RejectProblem::Invoke(invoke_problem::UNRECOGNISED_OPERATION),
            "operationName is missing; the UCServer dispatches by operationName",
        );
    };
    let Some(operation) = asn::operation_by_name(&name) else {
        return reject(
            Some(id),
            RejectProblem::Invoke(invoke_problem::UNRECOGNISED_OPERATION),
            format!("unknown operation {name:?}"),
        );
    };
    if invoke.operation_id != operation.id {
        return reject(
            Some(id),
            RejectProblem::General(general_problem::MISTYPED_APDU),
            format!(
                "operationID {} does not match {} ({})",
                invoke.operation_id, operation.name, operation.id
            ),
        );
    }
    if id == EVENT_INVOKE_ID || operation == asn::TRANSPORT_KEEP_ALIVE {
        return handle_event(shared, invoke, operation);
    }
    let Some(argument) = invoke.argument else {
        return mistyped(id, format!("{} needs an argument", operation.name));
    };

    let (latency, failure) = {
        let mut state = shared.lock();
        if Knobs::take(&mut state.knobs.drop_before, operation.name) {
            return Action::Drop;
        }
        let failure = match state.knobs.fail.get_mut(operation.name) {
            Some((n, error)) if *n > 0 => {
                *n -= 1;
                Some(error.clone())
            }
            _ => None,
        };
        (state.knobs.latency, failure)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if operation == asn::APPOINTMENT_SET_ENTRY_LIST {
        shared.hold_if_asked().await;
    }
    let outcome = match failure {
        Some(error) => Outcome::Error(error),
        None => {
            let mut state = shared.lock();
            dispatch(&mut state, session_id, operation, &argument)
        }
    };
    if Knobs::take(&mut shared.lock().knobs.drop_after, operation.name) {
        return Action::Drop;
    }
    match outcome {
        Outcome::Result(value) => Action::Reply(RoseMessage::result(id, value).to_json()),
        Outcome::Error(error) => Action::Reply(
            RoseMessage::error(id, serde_json::to_value(error).expect("encodes")).to_json(),
        ),
        Outcome::Mistyped(details) => mistyped(id, details),
        Outcome::Expired => Action::Expired,
    }
}

fn handle_event(shared: &Shared, invoke: RoseInvoke, operation: Operation) -> Action {
    let id = invoke.invoke_id;
    if operation != asn::TRANSPORT_KEEP_ALIVE {
        return reject(
            Some(id),
            RejectProblem::Invoke(invoke_problem::UNRECOGNISED_OPERATION),
            format!("{} is not an event the server accepts", operation.name),
        );
    }
    if id != EVENT_INVOKE_ID {
        return mistyped(
            id,
            format!(
                "{} is an event: send it with invokeID {EVENT_INVOKE_ID}",
                operation.name
            ),
        );
    }
    let null = RawValue::NULL;
    let argument = invoke.argument.as_deref().unwrap_or(null);
    if let Err(details) = decode::<AsnTransportKeepAliveArgument>(operation, argument) {
        return mistyped(id, details);
    }
    shared.lock().keep_alives += 1;
    Action::Nothing
}

fn dispatch(
    state: &mut State,
    session_id: &str,
    operation: Operation,
    argument: &RawValue,
) -> Outcome {
    if !state.sessions.contains_key(session_id) {
        return Outcome::Expired;
    }
    let result = match operation {
        asn::ADMIN_LOGIN => admin_login(state, session_id, argument),
        asn::ADMIN_GET_USER_PROFILES => get_user_profiles(state, session_id, argument),
        asn::APPOINTMENT_SET_ENTRY_LIST => set_entry_list(state, session_id, argument),
        other => Err(format!("{} has no handler", other.name)),
    };
    result.unwrap_or_else(Outcome::Mistyped)
}

fn session_admin(state: &State, session_id: &str) -> bool {
    state.sessions.get(session_id).is_some_and(|s| s.admin)
}

fn admin_login(
    state: &mut State,
    session_id: &str,
    argument: &RawValue,
) -> Result<Outcome, String> {
    let arg: AsnAdminLoginArgument = decode(asn::ADMIN_LOGIN, argument)?;
    let password = match arg.admin_password {
        AdminPassword::Plain(p) => p,
        AdminPassword::Crypted(_) => {
            return Ok(request_error(
                ERROR_NOT_SUPPORTED,
                "the simulator supports u8sAdminPassword only, not u8sAdminPasswordCrypted",
            ))
        }
    };
    let accepted = state
        .user(&arg.admin_username)
        .is_some_and(|u| u.admin && u.enabled && u.password.as_deref() == Some(password.as_str()));
    let result = if accepted {
        state.admin_logins += 1;
        if let Some(session) = state.sessions.get_mut(session_id) {
            session.admin = true;
        }
        asn::ADMIN_LOGIN_SUCCESS
    } else {
        asn::ADMIN_LOGIN_FAILED
    };
    Ok(Outcome::Result(
        serde_json::value::to_raw_value(&AsnAdminLoginResult { result }).expect("encodes"),
    ))
}

fn get_user_profiles(
    state: &mut State,
    session_id: &str,
    argument: &RawValue,
) -> Result<Outcome, String> {
    let arg: AsnAdminGetUserProfilesArgument = decode(asn::ADMIN_GET_USER_PROFILES, argument)?;
    let Some(filter) = OnlineStateFilter::from_wire(arg.filter_online_state) else {
        return Err(format!(
            "iFilterOnlineState {} is not an AsnAdminUserOnlineStateFilter (0 all, 1 online only, 2 offline only)",
            arg.filter_online_state
        ));
    };
    if !matches!(arg.active_users_only, 0 | 1) {
        return Err(format!(
            "iActiveUsersOnly must be 0 or 1, got {}",
            arg.active_users_only
        ));
    }
    if !session_admin(state, session_id) {
        return Ok(request_error(
            ERROR_ACCESS_DENIED,
            "asnAdminGetUserProfiles needs an administrator: call asnAdminLogin first",
        ));
    }
    let profiles = state
        .users
        .iter()
        .filter(|u| arg.active_users_only == 0 || u.enabled)
        .filter(|u| match filter {
            OnlineStateFilter::All => true,
            OnlineStateFilter::OnlineOnly => u.online,
            OnlineStateFilter::OfflineOnly => !u.online,
        })
        .map(|u| AsnUserProfile {
            enabled: i64::from(u.enabled),
            dn_path: u.dn.clone(),
            user_name: u.user_name.clone(),
            sip_uri: u.sip_uri.clone(),
            object_guid: u.object_guid.clone(),
            phone_number: String::new(),
            phone_secondary: String::new(),
            monitor_lines: Vec::new(),
            monitor_line_rights: 0,
            sam_account_name: u.sam_account_name.clone(),
            password: String::new(),
            call_recording_number: String::new(),
            mailbox_number: String::new(),
            home_server: String::new(),
            user_static_rights: 0,
            user_static_rights2: None,
            user_dynamic_rights: Vec::new(),
            user_contact: AsnNetDatabaseContact {
                display_name: Some(u.display_name.clone()),
                email: Some(u.email.clone()),
                sip_address: Some(u.sip_uri.trim_start_matches("sip:").to_owned()),
                ..Default::default()
            },
            user_property_bag: AsnUserPropertyBag::default(),
            optional_params: None,
            write_picture: None,
        })
        .collect();
    Ok(Outcome::Result(
        serde_json::value::to_raw_value(&AsnAdminGetUserProfilesResult {
            user_profiles: profiles,
        })
        .expect("encodes"),
    ))
}

fn set_entry_list(
    state: &mut State,
    session_id: &str,
    argument: &RawValue,
) -> Result<Outcome, String> {
    let arg: AsnAppointmentSetEntryListArgument =
        decode(asn::APPOINTMENT_SET_ENTRY_LIST, argument)?;
    for (index, entry) in arg.appointments.iter().enumerate() {
        let what = format!("appointments[{index}] ({:?})", entry.entry_id);
        if entry.entry_id.is_empty() {
            return Err(format!("{what}: u8sEntryID is empty"));
        }
        if entry.end < entry.start {
            return Err(format!("{what}: stEnd is before stStart"));
        }
        for (field, value, max) in [
            ("iStatus", entry.status, asn::APPOINTMENT_STATUS_MAX),
            (
                "iImportance",
                entry.importance,
                asn::APPOINTMENT_IMPORTANCE_MAX,
            ),
            (
                "iSensitivity",
                entry.sensitivity,
                asn::APPOINTMENT_SENSITIVITY_MAX,
            ),
        ] {
            if !(0..=max).contains(&value) {
                return Err(format!("{what}: {field} {value} is outside 0..={max}"));
            }
        }
    }
    let Some(owner) = state.user(&arg.owner).map(|u| u.user_name.clone()) else {
        return Ok(request_error(
            ERROR_NO_SUCH_USER,
            format!(
                "no UCServer user {:?} (u8sOwner takes the UCServer user name)",
                arg.owner
            ),
        ));
    };
    let session = &state.sessions[session_id];
    // The real server silently writes an ordinary session's own list and
    // ignores u8sOwner; the simulator refuses instead so that a client that
    // forgot asnAdminLogin notices.
    if !session.admin && !session.user.eq_ignore_ascii_case(&owner) {
        return Ok(request_error(
            ERROR_ACCESS_DENIED,
            format!("writing the appointments of {owner} needs an administrator: call asnAdminLogin first"),
        ));
    }
    let entries: Vec<_> = arg
        .appointments
        .into_iter()
        .map(|mut e| {
            // The server enforces ownership.
            e.owner = owner.clone();
            e
        })
        .collect();
    state
        .writes
        .entry(owner.clone())
        .or_default()
        .push(WriteRecord {
            at: chrono::Utc::now(),
            entries: entries.len(),
        });
    state.store.insert(owner, entries);
    Ok(Outcome::Result(
        serde_json::value::to_raw_value(&AsnAppointmentSetEntryListResult { result: 0 })
            .expect("encodes"),
    ))
}
