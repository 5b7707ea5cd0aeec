//! One WebSocket of the simulator: ROSE read and answered as estos's C++
//! runtime does (cpp-runtime/SnaccROSEBase.cpp; lines cited where each rule
//! is applied), and the operations.

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
use super::MessageForm;
use crate::ucserver::asn::{
    self, AdminPassword, AsnAdminGetUserProfilesArgument, AsnAdminGetUserProfilesResult,
    AsnAdminLoginArgument, AsnAdminLoginResult, AsnAppointmentSetEntryListArgument,
    AsnAppointmentSetEntryListResult, AsnNetDatabaseContact, AsnRequestError,
    AsnTransportKeepAliveArgument, AsnUserProfile, AsnUserPropertyBag, OnlineStateFilter,
    Operation,
};
use crate::ucserver::asn::{AsnOptionalParam, AsnOptionalParamValue, AsnOptionalParameters};
use crate::ucserver::rose::{
    general_problem, invoke_problem, DecodeError, RejectProblem, RoseInvoke, RoseMessage,
    EVENT_INVOKE_ID,
};

/// `iErrorDetail` the simulator answers when no user matches (as
/// `AsnAdminGetUserProfilesErrorEnum.nouserfound`).
pub const ERROR_NO_SUCH_USER: i64 = 1;
/// `iErrorDetail` for an operation the session may not call (as
/// `AsnAdminGetUserProfilesErrorEnum.accessdenied`).
pub const ERROR_ACCESS_DENIED: i64 = 2;
/// `iErrorDetail` for a feature the simulator does not implement.
pub const ERROR_NOT_SUPPORTED: i64 = 3;

/// `message` as JSON text in `form`.
pub(super) fn encode(form: MessageForm, message: &RoseMessage) -> String {
    match form {
        MessageForm::WebService => message.to_json_array(),
        MessageForm::Plain => message.to_json(),
    }
}

/// What to do after a message.
pub(super) enum Action {
    Reply(RoseMessage),
    Nothing,
    /// Drop the socket without a close frame (a network failure).
    Drop,
    /// Close the socket: the session is gone.
    Expired,
}

fn reject(id: Option<i64>, problem: RejectProblem, details: impl Into<String>) -> Action {
    Action::Reply(RoseMessage::reject(id, problem, details.into()))
}

/// `SendRejectInvoke` (SnaccROSEBase.cpp:730-754): an invoke problem for
/// `id`; events (invokeID 99999) get no answer (SnaccROSEBase.cpp:732-736).
fn reject_invoke(id: i64, problem: i64, details: impl Into<String>) -> Action {
    if id == EVENT_INVOKE_ID {
        return Action::Nothing;
    }
    reject(Some(id), RejectProblem::Invoke(problem), details)
}

/// A mistyped argument (SnaccROSEBase.cpp:775-797: the runtime's details
/// are `mistypedArgument`; the simulator adds why).
fn mistyped(id: i64, details: impl Into<String>) -> Action {
    reject_invoke(
        id,
        invoke_problem::MISTYPED_ARGUMENT,
        format!("mistypedArgument: {}", details.into()),
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
    let (epoch, idle, form) = {
        let state = shared.lock();
        (state.drop_epoch, state.session_idle_timeout, state.form)
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
                    None | Some(Err(_)) => return,
                    Some(Ok(Message::Close(_))) => {
                        shared.lock().close_frames += 1;
                        return;
                    }
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Binary(_))) => {
                        let answer = RoseMessage::reject(
                            None,
                            RejectProblem::General(general_problem::UNRECOGNISED_APDU),
                            "binary (BER) messages are not supported by the simulator; send JSON text frames".into(),
                        );
                        if sink.send(Message::text(encode(form, &answer))).await.is_err() {
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
                        if sink.send(Message::text(encode(form, &answer))).await.is_err() {
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
                        let text = match form {
                            MessageForm::WebService => format!("[{text}]"),
                            MessageForm::Plain => text,
                        };
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

/// What the runtime answers to a message that does not decode (on either
/// transport).
pub(super) fn undecodable(error: DecodeError) -> Action {
    match error {
        // SnaccROSEBase.cpp:547-580: text that is not JSON gets a reject
        // with invokednull and invokeProblem mistypedArgument.
        DecodeError::NotJson(e) => reject(
            None,
            RejectProblem::Invoke(invoke_problem::MISTYPED_ARGUMENT),
            format!("mistypedArgument: the message is not JSON: {e}"),
        ),
        // SnaccROSEBase.cpp:510-546: JSON that does not decode as a ROSE
        // message: an invoke is rejected (its invokeID, or invokednull when
        // that is 0) with invokeProblem mistypedArgument; anything else is
        // dropped unanswered.
        DecodeError::NotRose {
            reason,
            invoke_id: Some(id),
        } => reject(
            (id != 0).then_some(id),
            RejectProblem::Invoke(invoke_problem::MISTYPED_ARGUMENT),
            format!("mistypedArgument: the invoke does not decode: {reason}"),
        ),
        DecodeError::NotRose {
            reason,
            invoke_id: None,
        } => {
            tracing::debug!("UCServer sim: undecodable message dropped: {reason}");
            Action::Nothing
        }
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
    let message = match RoseMessage::from_json(text) {
        Ok(m) => m,
        Err(e) => return undecodable(e),
    };
    let invoke = match message {
        RoseMessage::Invoke(invoke) => invoke,
        // Answers to invokes the simulator never sends.
        _ => return Action::Nothing,
    };
    let id = invoke.invoke_id;
    // SnaccROSEBase.cpp:611: an invoke with neither operationID nor
    // operationName is dropped unanswered.
    if invoke.operation_id == 0 && invoke.operation_name.is_none() {
        return Action::Nothing;
    }
    // SnaccROSEBase.cpp:770-771: operationID 0 is looked up from
    // operationName; any other operationID is dispatched on as it is, and
    // operationName is not read.
    let operation_id = match (invoke.operation_id, invoke.operation_name.as_deref()) {
        (0, Some(name)) => asn::operation_by_name(name).map_or(0, |op| op.id),
        (number, _) => number,
    };
    // SnaccROSEBase.cpp:794-795: an unknown operation is unrecognisedOperation.
    let Some(operation) = asn::operation_by_id(operation_id) else {
        return reject_invoke(
            id,
            invoke_problem::UNRECOGNISED_OPERATION,
            format!(
                "unrecognisedOperation: the simulator implements no operation {} ({:?})",
                invoke.operation_id,
                invoke.operation_name.as_deref().unwrap_or_default()
            ),
        );
    };
    if id == EVENT_INVOKE_ID || operation == asn::TRANSPORT_KEEP_ALIVE {
        return handle_event(shared, invoke, operation);
    }
    // SnaccROSEBase.cpp:812-813: argumentMissing is a mistypedArgument.
    let Some(argument) = invoke.argument else {
        return reject_invoke(
            id,
            invoke_problem::MISTYPED_ARGUMENT,
            format!("argumentMissing: {} needs an argument", operation.name),
        );
    };

    let (latency, failure, form) = {
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
        (state.knobs.latency, failure, state.form)
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
        Outcome::Result(value) => Action::Reply(RoseMessage::result(id, value)),
        Outcome::Error(error) => {
            let mut error = serde_json::to_value(error).expect("encodes");
            if form == MessageForm::WebService {
                // As the web service sends errors (ucws-wsclient.txt:55-56).
                error["_type"] = "AsnRequestError".into();
            }
            Action::Reply(RoseMessage::error(id, error))
        }
        Outcome::Mistyped(details) => mistyped(id, details),
        Outcome::Expired => Action::Expired,
    }
}

fn handle_event(shared: &Shared, invoke: RoseInvoke, operation: Operation) -> Action {
    let id = invoke.invoke_id;
    if operation != asn::TRANSPORT_KEEP_ALIVE {
        // An event of an operation the server does not take as one: as an
        // event it gets no answer (SnaccROSEBase.cpp:732-736).
        return reject_invoke(
            id,
            invoke_problem::UNRECOGNISED_OPERATION,
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
    if decode::<AsnTransportKeepAliveArgument>(operation, argument).is_err() {
        // A malformed event is not answered either (SnaccROSEBase.cpp:732-736).
        return Action::Nothing;
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
        .is_some_and(|u| u.admin && u.enabled && u.password.as_deref() == Some(password.expose()));
    let result = if accepted {
        state.admin_logins += 1;
        if let Some(session) = state.sessions.get_mut(session_id) {
            session.admin = true;
        }
        asn::ADMIN_LOGIN_SUCCESS
    } else {
        asn::ADMIN_LOGIN_FAILED
    };
    Ok(Outcome::Result(typed_result(
        state.form,
        "AsnAdminLoginResult",
        &AsnAdminLoginResult { result },
    )))
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
        .enumerate()
        .map(|(index, u)| AsnUserProfile {
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
            optional_params: Some(profile_optional_params(index)),
            write_picture: None,
        })
        .collect::<Vec<_>>();
    let result = match state.form {
        MessageForm::WebService => {
            #[derive(serde::Serialize)]
            struct TypedProfiles<'a> {
                #[serde(rename = "userProfiles")]
                user_profiles: Vec<Typed<'a, AsnUserProfile>>,
            }
            let user_profiles = profiles
                .iter()
                .map(|p| Typed {
                    type_name: "AsnUserProfile",
                    value: p,
                })
                .collect();
            typed_result(
                state.form,
                "AsnAdminGetUserProfilesResult",
                &TypedProfiles { user_profiles },
            )
        }
        MessageForm::Plain => {
            let mut result = serde_json::to_value(AsnAdminGetUserProfilesResult {
                user_profiles: profiles,
            })
            .expect("encodes");
            for profile in result["userProfiles"].as_array_mut().into_iter().flatten() {
                if let Some(params) = profile.get_mut("optionalParams") {
                    *params = array_form(params);
                }
            }
            serde_json::value::to_raw_value(&result).expect("encodes")
        }
    };
    Ok(Outcome::Result(result))
}

/// The `optionalParams` of a profile, with keys ENetUC_Admin.asn1:97-103
/// lists (as an Active Directory-backed UCServer fills them).
fn profile_optional_params(index: usize) -> AsnOptionalParameters {
    let param = |key: &str, value| AsnOptionalParam {
        key: key.to_owned(),
        value,
    };
    AsnOptionalParameters(vec![
        param("ADDisabled", AsnOptionalParamValue::Integer(0)),
        param(
            "SourceDB",
            AsnOptionalParamValue::String("ActiveDirectory".into()),
        ),
        param("primaryGroupID", AsnOptionalParamValue::Integer(513)),
        param(
            "objectSID",
            AsnOptionalParamValue::String(format!(
                "S-1-5-21-1004336348-1177238915-682003330-{}",
                1100 + index
            )),
        ),
    ])
}

/// The old array form of `optionalParams` (cpp-runtime/asn-optionalparam.cpp:13-23),
/// from the object form.
fn array_form(object_form: &serde_json::Value) -> serde_json::Value {
    let members = object_form.as_object().cloned().unwrap_or_default();
    members
        .into_iter()
        .map(|(key, value)| {
            let value = match value {
                serde_json::Value::String(_) => serde_json::json!({ "stringdata": value }),
                serde_json::Value::Number(_) => serde_json::json!({ "integerdata": value }),
                other => other,
            };
            serde_json::json!({"key": key, "value": value})
        })
        .collect()
}

/// A SEQUENCE with the `_type` member estos's encoder adds.
#[derive(serde::Serialize)]
struct Typed<'a, T> {
    #[serde(rename = "_type")]
    type_name: &'static str,
    #[serde(flatten)]
    value: &'a T,
}

/// A result as JSON text; in the web service's form with `_type` naming its
/// type, as estos's examples read it (SessionWithEvents.html:179).
pub(super) fn typed_result<T: serde::Serialize>(
    form: MessageForm,
    type_name: &'static str,
    value: &T,
) -> Box<RawValue> {
    match form {
        MessageForm::WebService => serde_json::value::to_raw_value(&Typed { type_name, value }),
        MessageForm::Plain => serde_json::value::to_raw_value(value),
    }
    .expect("results encode")
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
    Ok(Outcome::Result(typed_result(
        state.form,
        "AsnAppointmentSetEntryListResult",
        &AsnAppointmentSetEntryListResult { result: 0 },
    )))
}
