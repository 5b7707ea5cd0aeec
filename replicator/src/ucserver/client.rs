//! The UCServer client: one background task owns the ROSE channel, matches
//! results to invokes by `invokeID`, sends keep-alives, dispatches events and
//! reconnects (new session + `asnAdminLogin`) with back-off when the channel
//! drops. Callers see plain async methods; a request that was in flight when
//! the channel dropped fails with a retryable error, and every request is
//! bounded by `request_timeout`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::asn::{
    self, AdminPassword, AsnAdminGetUserProfilesArgument, AsnAdminGetUserProfilesResult,
    AsnAdminLoginArgument, AsnAdminLoginResult, AsnAppointmentSetEntryListArgument,
    AsnAppointmentSetEntryListResult, AsnRequestError, AsnTransportKeepAliveArgument,
    OnlineStateFilter, Operation, DATA_SOURCE_EWS,
};
use super::error::UcError;
use super::model::{Appointment, UserFilter, UserProfile};
use super::native::NativeTransport;
use super::rose::{invoke_problem, RejectInvokedId, RejectProblem, RoseMessage, EVENT_INVOKE_ID};
use super::settings::UcServerSettings;
use super::transport::{MessageSink, MessageStream, RoseTransport, WebSocketTransport};

/// An event (invoke with `invokeID` 99999) the server sent.
#[derive(Debug, Clone, PartialEq)]
pub struct RoseEvent {
    pub operation_name: String,
    pub operation_id: i64,
    pub argument: Value,
}

type Reply = oneshot::Sender<Result<Option<Box<RawValue>>, UcError>>;

struct Command {
    operation: Operation,
    argument: Box<RawValue>,
    reply: Reply,
}

/// A connected, administratively logged-in UCServer client.
pub struct UcServerClient {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<RoseEvent>,
    request_timeout: Duration,
    admin_user: String,
    /// The worker. Dropping the client drops the command sender; the worker
    /// then sends the WebSocket close frame and ends by itself (a reconnect
    /// in progress ends at its next wait).
    task: JoinHandle<()>,
}

impl UcServerClient {
    /// Connects over the transport the URL names (web service for
    /// `http(s)://`, the native port for `tcp://`) and logs in as
    /// administrator. Fails when the first connection or login fails; later
    /// drops are repaired in the background.
    pub async fn connect(settings: UcServerSettings) -> Result<Self, UcError> {
        let transport: Arc<dyn RoseTransport> = if settings.uses_native_port() {
            Arc::new(NativeTransport::new(&settings)?)
        } else {
            Arc::new(WebSocketTransport::new(&settings)?)
        };
        Self::connect_with(transport, settings).await
    }

    /// Like [`Self::connect`] over another transport.
    pub async fn connect_with(
        transport: Arc<dyn RoseTransport>,
        settings: UcServerSettings,
    ) -> Result<Self, UcError> {
        settings.validate()?;
        let mut ids = InvokeIds::default();
        let (events, _) = broadcast::channel(256);
        let channel = establish(transport.as_ref(), &settings, &mut ids, &events).await?;
        let (commands_tx, commands_rx) = mpsc::channel(64);
        let worker = Worker {
            transport,
            settings: settings.clone(),
            ids,
            events: events.clone(),
            commands: commands_rx,
        };
        let task = tokio::spawn(worker.run(channel));
        Ok(UcServerClient {
            commands: commands_tx,
            events,
            request_timeout: settings.request_timeout,
            admin_user: settings.admin_user,
            task,
        })
    }

    /// Events from the server from now on.
    pub fn events(&self) -> broadcast::Receiver<RoseEvent> {
        self.events.subscribe()
    }

    /// Users without a running client (`iFilterOnlineState` 2).
    pub async fn offline_users(&self) -> Result<Vec<UserProfile>, UcError> {
        self.users(UserFilter::OfflineOnly).await
    }

    /// All users.
    pub async fn all_users(&self) -> Result<Vec<UserProfile>, UcError> {
        self.users(UserFilter::All).await
    }

    pub async fn users(&self, filter: UserFilter) -> Result<Vec<UserProfile>, UcError> {
        let argument = AsnAdminGetUserProfilesArgument {
            active_users_only: 0,
            filter_online_state: match filter {
                UserFilter::All => OnlineStateFilter::All,
                UserFilter::OfflineOnly => OnlineStateFilter::OfflineOnly,
            } as i64,
        };
        let result: AsnAdminGetUserProfilesResult =
            self.invoke(asn::ADMIN_GET_USER_PROFILES, &argument).await?;
        Ok(result.user_profiles.iter().map(UserProfile::from).collect())
    }

    /// Replaces the whole appointment list of `owner` (a UCServer user
    /// name). An empty slice clears it. Writing the same list twice is
    /// harmless, so a retry after a retryable error is safe.
    pub async fn set_appointments(
        &self,
        owner: &str,
        appointments: &[Appointment],
    ) -> Result<(), UcError> {
        if owner.is_empty() {
            return Err(UcError::InvalidAppointment(
                "the owner (UCServer user name) is empty".into(),
            ));
        }
        let argument = AsnAppointmentSetEntryListArgument {
            owner: owner.to_owned(),
            data_source: DATA_SOURCE_EWS.to_owned(),
            appointments: appointments
                .iter()
                .map(|a| a.to_asn(owner))
                .collect::<Result<_, _>>()?,
        };
        let result: AsnAppointmentSetEntryListResult = self
            .invoke(asn::APPOINTMENT_SET_ENTRY_LIST, &argument)
            .await?;
        if result.result != 0 {
            return Err(UcError::WriteFailed {
                owner: owner.to_owned(),
                result: result.result,
            });
        }
        Ok(())
    }

    /// The administrator account this client logs in with.
    pub fn admin_user(&self) -> &str {
        &self.admin_user
    }

    /// Invokes `operation` and decodes its result.
    pub async fn invoke<A: Serialize, R: DeserializeOwned>(
        &self,
        operation: Operation,
        argument: &A,
    ) -> Result<R, UcError> {
        let argument =
            serde_json::value::to_raw_value(argument).map_err(|e| UcError::Protocol {
                operation: operation.name,
                reason: format!("cannot encode the argument: {e}"),
            })?;
        let (reply, answer) = oneshot::channel();
        let exchange = async {
            self.commands
                .send(Command {
                    operation,
                    argument,
                    reply,
                })
                .await
                .map_err(|_| UcError::Closed)?;
            answer.await.map_err(|_| UcError::ConnectionLost {
                operation: operation.name,
            })?
        };
        let value = tokio::time::timeout(self.request_timeout, exchange)
            .await
            .map_err(|_| UcError::Timeout {
                operation: operation.name,
                after: self.request_timeout,
            })??;
        decode_result(operation, value)
    }

    /// Ends the session: the WebSocket is closed with a close frame, and
    /// this returns once it was sent (or after [`CLOSE_TIMEOUT`]).
    pub async fn close(self) {
        let UcServerClient { commands, task, .. } = self;
        // The closed command channel tells the worker to close.
        drop(commands);
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, task).await;
    }
}

/// Longest wait for the close frame to go out when a session ends.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

fn decode_result<R: DeserializeOwned>(
    operation: Operation,
    result: Option<Box<RawValue>>,
) -> Result<R, UcError> {
    let text = result.as_deref().map_or("null", RawValue::get);
    serde_json::from_str(text).map_err(|e| UcError::Protocol {
        operation: operation.name,
        reason: format!(
            "result does not decode: {}",
            ews_toolkit::server_text::sanitized(&e.to_string())
        ),
    })
}

/// Increasing invoke ids that never collide with the event id.
#[derive(Default)]
struct InvokeIds(i64);

impl InvokeIds {
    fn next(&mut self) -> i64 {
        self.0 += 1;
        if self.0 == EVENT_INVOKE_ID {
            self.0 += 1;
        }
        self.0
    }
}

type Channel = (MessageSink, MessageStream);

/// Opens a channel and logs in as administrator on it.
async fn establish(
    transport: &dyn RoseTransport,
    settings: &UcServerSettings,
    ids: &mut InvokeIds,
    events: &broadcast::Sender<RoseEvent>,
) -> Result<Channel, UcError> {
    let (mut sink, mut stream) = transport.open().await?;
    let operation = asn::ADMIN_LOGIN;
    let argument = AsnAdminLoginArgument {
        admin_username: settings.admin_user.clone(),
        admin_password: AdminPassword::Plain(settings.admin_password.clone()),
    };
    let id = ids.next();
    // The sink zeroes this text once written, and `argument` its password
    // when dropped.
    let invoke = RoseMessage::invoke_json_wiped(id, operation, &argument);
    drop(argument);
    let login = async {
        sink.send(invoke).await?;
        loop {
            let Some(text) = stream.next().await else {
                return Err(UcError::ConnectionLost {
                    operation: operation.name,
                });
            };
            let message = match RoseMessage::from_json(&text?) {
                Ok(message) => message,
                Err(e) => {
                    tracing::warn!(
                        "undecodable message from the UCServer ignored: {}",
                        ews_toolkit::server_text::sanitized(&e.to_string())
                    );
                    continue;
                }
            };
            match message {
                RoseMessage::Result(r) if r.invoke_id == id => {
                    return Ok(r.result.map(|b| b.result))
                }
                RoseMessage::Error(e) if e.invoked_id == id => {
                    let error = request_error(e.error);
                    return Err(UcError::NotAdministrator {
                        user: settings.admin_user.clone(),
                        detail: format!(": {} {}", error.error_detail, error.error_string),
                    });
                }
                RoseMessage::Reject(r) if r.invoked_id == RejectInvokedId::InvokedId(id) => {
                    return Err(UcError::rejected(operation.name, r.reject, r.details));
                }
                RoseMessage::Invoke(invoke) if invoke.invoke_id == EVENT_INVOKE_ID => {
                    dispatch_event(invoke, events);
                }
                other => tracing::debug!("ignored during admin login: {other:?}"),
            }
        }
    };
    let value = tokio::time::timeout(settings.request_timeout, login)
        .await
        .map_err(|_| UcError::Timeout {
            operation: operation.name,
            after: settings.request_timeout,
        })??;
    let result: AsnAdminLoginResult = decode_result(operation, value)?;
    if result.result != asn::ADMIN_LOGIN_SUCCESS {
        return Err(UcError::NotAdministrator {
            user: settings.admin_user.clone(),
            detail: String::new(),
        });
    }
    Ok((sink, stream))
}

/// The UCServer's error, its text made safe for errors and logs.
fn request_error(error: Option<Value>) -> AsnRequestError {
    error
        .and_then(|e| serde_json::from_value::<AsnRequestError>(e).ok())
        .map(|mut e| {
            e.error_string = ews_toolkit::server_text::sanitized(&e.error_string);
            e
        })
        .unwrap_or(AsnRequestError {
            error_detail: -1,
            error_string: "error without AsnRequestError".into(),
        })
}

fn dispatch_event(invoke: super::rose::RoseInvoke, events: &broadcast::Sender<RoseEvent>) {
    let event = RoseEvent {
        operation_name: invoke.operation_name.unwrap_or_default(),
        operation_id: invoke.operation_id,
        // Events are rare and small; subscribers get them as a `Value`.
        argument: invoke
            .argument
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
            .unwrap_or(Value::Null),
    };
    tracing::debug!("UCServer event {}", event.operation_name);
    // No subscribers is fine: events nobody listens to are dropped.
    let _ = events.send(event);
}

struct Pending {
    operation: Operation,
    reply: Reply,
}

/// Why a session loop ended.
enum SessionEnd {
    /// The client was dropped.
    Closed,
    /// The channel broke; reconnect.
    Lost(UcError),
}

struct Worker {
    transport: Arc<dyn RoseTransport>,
    settings: UcServerSettings,
    ids: InvokeIds,
    events: broadcast::Sender<RoseEvent>,
    commands: mpsc::Receiver<Command>,
}

impl Worker {
    async fn run(mut self, first: Channel) {
        let mut channel = Some(first);
        let mut delay = self.settings.reconnect_initial_delay;
        loop {
            let current = match channel.take() {
                Some(c) => c,
                None => {
                    match establish(
                        self.transport.as_ref(),
                        &self.settings,
                        &mut self.ids,
                        &self.events,
                    )
                    .await
                    {
                        Ok(c) => {
                            tracing::info!("reconnected to the UCServer");
                            delay = self.settings.reconnect_initial_delay;
                            c
                        }
                        Err(e) => {
                            tracing::warn!(
                                "reconnecting to the UCServer failed: {e}; next try in {delay:?}"
                            );
                            if !self.back_off(delay, &e).await {
                                return;
                            }
                            delay = (delay * 2).min(self.settings.reconnect_max_delay);
                            continue;
                        }
                    }
                }
            };
            match self.session(current).await {
                SessionEnd::Closed => return,
                SessionEnd::Lost(e) => {
                    tracing::warn!("connection to the UCServer lost: {e}; reconnecting");
                }
            }
        }
    }

    /// Waits `delay` before the next reconnect. Requests arriving meanwhile
    /// fail at once with the reason (e.g. a changed password), instead of
    /// waiting for their timeout. False when the client was dropped.
    async fn back_off(&mut self, delay: Duration, error: &UcError) -> bool {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return true,
                command = self.commands.recv() => {
                    let Some(command) = command else { return false };
                    let _ = command.reply.send(Err(UcError::Unavailable {
                        reason: error.to_string(),
                        retryable: error.is_retryable(),
                    }));
                }
            }
        }
    }

    async fn session(&mut self, (mut sink, mut stream): Channel) -> SessionEnd {
        let mut pending: HashMap<i64, Pending> = HashMap::new();
        let mut keep_alive = tokio::time::interval(self.settings.keep_alive_interval);
        keep_alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        keep_alive.tick().await;
        let end = loop {
            tokio::select! {
                command = self.commands.recv() => {
                    let Some(command) = command else {
                        // The client was dropped or closed: end the session
                        // with a close frame, not a vanished connection.
                        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
                        break SessionEnd::Closed;
                    };
                    if command.reply.is_closed() {
                        continue; // the caller gave up while it was queued
                    }
                    let id = self.ids.next();
                    let text = RoseMessage::invoke(id, command.operation, command.argument).to_json();
                    pending.insert(id, Pending { operation: command.operation, reply: command.reply });
                    if let Err(e) = sink.send(text).await {
                        break SessionEnd::Lost(e);
                    }
                }
                incoming = stream.next() => {
                    match incoming {
                        None => break SessionEnd::Lost(UcError::WebSocket("closed by the server".into())),
                        Some(Err(e)) => break SessionEnd::Lost(e),
                        Some(Ok(text)) => {
                            if let Some(answer) = self.handle(&text, &mut pending) {
                                if let Err(e) = sink.send(answer).await {
                                    break SessionEnd::Lost(e);
                                }
                            }
                        }
                    }
                }
                _ = keep_alive.tick() => {
                    pending.retain(|_, p| !p.reply.is_closed());
                    let text = RoseMessage::invoke(
                        EVENT_INVOKE_ID,
                        asn::TRANSPORT_KEEP_ALIVE,
                        serde_json::value::to_raw_value(&AsnTransportKeepAliveArgument::default()).expect("encodes"),
                    ).to_json();
                    if let Err(e) = sink.send(text).await {
                        break SessionEnd::Lost(e);
                    }
                }
            }
        };
        for (_, p) in pending.drain() {
            let _ = p.reply.send(Err(UcError::ConnectionLost {
                operation: p.operation.name,
            }));
        }
        end
    }

    /// Handles one incoming message; returns a message to send back, if any.
    fn handle(&self, text: &str, pending: &mut HashMap<i64, Pending>) -> Option<String> {
        let message = match RoseMessage::from_json(text) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(
                    "undecodable message from the UCServer ignored: {}",
                    ews_toolkit::server_text::sanitized(&e.to_string())
                );
                return None;
            }
        };
        match message {
            RoseMessage::Result(r) => {
                if let Some(p) = pending.remove(&r.invoke_id) {
                    let _ = p.reply.send(Ok(r.result.map(|b| b.result)));
                }
            }
            RoseMessage::Error(e) => {
                if let Some(p) = pending.remove(&e.invoked_id) {
                    let error = request_error(e.error);
                    let _ = p.reply.send(Err(UcError::Request {
                        operation: p.operation.name,
                        detail: error.error_detail,
                        message: error.error_string,
                    }));
                }
            }
            RoseMessage::Reject(r) => match r.invoked_id {
                RejectInvokedId::InvokedId(id) => {
                    if let Some(p) = pending.remove(&id) {
                        let _ = p.reply.send(Err(UcError::rejected(
                            p.operation.name,
                            r.reject,
                            r.details,
                        )));
                    }
                }
                RejectInvokedId::Null(()) => {
                    tracing::warn!(
                        "the UCServer rejected a message it could not decode: {}",
                        r.details.unwrap_or_default()
                    );
                }
            },
            RoseMessage::Invoke(invoke) if invoke.invoke_id == EVENT_INVOKE_ID => {
                dispatch_event(invoke, &self.events);
            }
            RoseMessage::Invoke(invoke) => {
                return Some(
                    RoseMessage::reject(
                        Some(invoke.invoke_id),
                        RejectProblem::Invoke(invoke_problem::UNRECOGNISED_OPERATION),
                        format!(
                            "this client implements no operation {}",
                            invoke.operation_name.unwrap_or_default()
                        ),
                    )
                    .to_json(),
                );
            }
        }
        None
    }
}
