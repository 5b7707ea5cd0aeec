//! A UCServer simulator: the web service routes (`/ws/client/createsession`,
//! the WebSocket at `/ws/client/websocket`) over real HTTP(S) on loopback.
//! It reads and answers ROSE/JSON as estos's own runtime does
//! (../shared/reference/ucserver-sdk/cpp-runtime), not as this project's
//! client writes it: what the runtime accepts is accepted, what it refuses
//! is refused with its reject codes, and answers come in the web service's
//! form ([`MessageForm`]); on request also on the native TCP port
//! ([`UcServerSim::listen_native`]). Tests and the demo read what was stored and turn
//! knobs (latency, dropped connections, refused sessions, error answers,
//! session expiry).

mod http;
mod native;
mod rose;
mod state;
mod users;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use url::Url;

pub use rose::{ERROR_ACCESS_DENIED, ERROR_NOT_SUPPORTED, ERROR_NO_SUCH_USER};
pub use state::{RecordedCreateSession, WriteRecord};
pub use users::{SimUser, UserDatabase, UserDatabaseError};

use crate::ucserver::asn::{AsnAppointmentEntry, AsnRequestError, Operation};
use crate::ucserver::rose::{RoseInvoke, RoseMessage, EVENT_INVOKE_ID};
use state::{Knobs, Shared, State, Users};

/// The form of the messages the simulator sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MessageForm {
    /// As the UCServer web service sends them: each message in a
    /// one-element array (estos's examples read `JSON.parse(text)[0]`,
    /// web-examples/SessionWithEvents.html:124, ChangePresence.html:169),
    /// `_type` on results, errors and profiles (SessionWithEvents.html:179,
    /// ChangePresence.html:220), `optionalParams` of profiles in the object
    /// form the runtime writes (cpp-runtime/asn-optionalparam.cpp:34-56).
    #[default]
    WebService,
    /// Bare messages, no `_type`, `optionalParams` as the old array form:
    /// the plainest form the runtime reads.
    Plain,
}

/// How the simulated UCServer behaves.
#[derive(Debug, Clone)]
pub struct UcServerSimConfig {
    pub users: UserDatabase,
    /// The form of what the simulator sends.
    pub form: MessageForm,
    /// The UCSID this server answers to; an `X-ucsid` naming another gets
    /// 502. `None`: any `X-ucsid` is accepted (a direct connection).
    pub ucsid: Option<String>,
    /// A session without messages for this long expires.
    pub session_idle_timeout: Duration,
}

impl UcServerSimConfig {
    pub fn new(users: UserDatabase) -> Self {
        UcServerSimConfig {
            users,
            form: MessageForm::default(),
            ucsid: None,
            session_idle_timeout: Duration::from_secs(300),
        }
    }
}

/// A running simulated UCServer; stops when dropped.
pub struct UcServerSim {
    addr: SocketAddr,
    tls: bool,
    shared: Arc<Shared>,
    listener: JoinHandle<()>,
    /// The native port's address, whether it offers asnStartTLS, its task.
    native: std::sync::Mutex<Option<(SocketAddr, bool, JoinHandle<()>)>>,
}

impl UcServerSim {
    /// Starts on 127.0.0.1 with a free port; TLS when `tls` is given.
    pub async fn start(
        config: UcServerSimConfig,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> std::io::Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config, tls).await
    }

    /// Starts on `addr`.
    pub async fn start_on(
        addr: SocketAddr,
        config: UcServerSimConfig,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(State {
            form: config.form,
            ucsid: config.ucsid,
            session_idle_timeout: config.session_idle_timeout,
            users: Users::new(config.users.users),
            sessions: HashMap::new(),
            store: HashMap::new(),
            writes: HashMap::new(),
            keep_alives: 0,
            close_frames: 0,
            sessions_created: 0,
            admin_logins: 0,
            received: Vec::new(),
            createsession_requests: Vec::new(),
            knobs: Knobs::default(),
            drop_epoch: 0,
            next_session: 0,
        }));
        let acceptor = tls.clone().map(tokio_rustls::TlsAcceptor::from);
        let accept_shared = shared.clone();
        let listener = tokio::spawn(async move {
            loop {
                let Ok((tcp, _peer)) = listener.accept().await else {
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let shared = accept_shared.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match acceptor {
                        None => serve_http(shared, tcp).await,
                        Some(acceptor) => match acceptor.accept(tcp).await {
                            Ok(tls) => serve_http(shared, tls).await,
                            Err(e) => tracing::debug!("UCServer sim: TLS handshake failed: {e}"),
                        },
                    }
                });
            }
        });
        Ok(UcServerSim {
            addr,
            tls: tls.is_some(),
            shared,
            listener,
            native: std::sync::Mutex::new(None),
        })
    }

    /// Serves the same users on the native protocol (the UCServer's TCP
    /// port 7222) at `addr` beside the web service; with `tls`, clients may
    /// switch to TLS with `asnStartTLS`. Replaces an earlier native listener.
    pub async fn listen_native(
        &self,
        addr: SocketAddr,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(native::serve(
            self.shared.clone(),
            listener,
            tls.clone().map(tokio_rustls::TlsAcceptor::from),
        ));
        let old = self
            .native
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace((addr, tls.is_some(), task));
        if let Some((_, _, old)) = old {
            old.abort();
        }
        Ok(addr)
    }

    /// `tcp://127.0.0.1:<port>/` of the native listener
    /// (`tcp+starttls://localhost:<port>/` when it offers TLS), if one runs.
    pub fn native_url(&self) -> Option<Url> {
        let native = self.native.lock().unwrap_or_else(|e| e.into_inner());
        let (addr, tls, _) = native.as_ref()?;
        let text = if *tls {
            format!("tcp+starttls://localhost:{}/", addr.port())
        } else {
            format!("tcp://{addr}/")
        };
        Some(Url::parse(&text).expect("valid URL"))
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>/`, or `https://localhost:<port>/` with TLS
    /// (certificates name `localhost`).
    pub fn base_url(&self) -> Url {
        let text = if self.tls {
            format!("https://localhost:{}/", self.addr.port())
        } else {
            format!("http://{}/", self.addr)
        };
        Url::parse(&text).expect("valid URL")
    }

    // ------------------------------------------------------------ users

    /// Sets a user's online state; false when no such user exists.
    pub fn set_online(&self, user_name: &str, online: bool) -> bool {
        self.shared.lock().users.set_online(user_name, online)
    }

    pub fn users(&self) -> Vec<SimUser> {
        self.shared.lock().users.to_vec()
    }

    // ------------------------------------------------------------ stored data

    /// The stored appointment list of `owner` (None: never written).
    pub fn appointments(&self, owner: &str) -> Option<Vec<AsnAppointmentEntry>> {
        let state = self.shared.lock();
        let name = state.user(owner)?.user_name.clone();
        state.store.get(&name).cloned()
    }

    /// Every accepted write for `owner`, oldest first.
    pub fn writes(&self, owner: &str) -> Vec<WriteRecord> {
        let state = self.shared.lock();
        state
            .user(owner)
            .and_then(|u| state.writes.get(&u.user_name))
            .cloned()
            .unwrap_or_default()
    }

    pub fn write_count(&self, owner: &str) -> usize {
        self.writes(owner).len()
    }

    /// Accepted writes over all owners.
    pub fn total_writes(&self) -> usize {
        self.shared.lock().writes.values().map(Vec::len).sum()
    }

    // ------------------------------------------------------------ observations

    pub fn keep_alive_count(&self) -> u64 {
        self.shared.lock().keep_alives
    }

    /// WebSocket close frames received from clients.
    pub fn close_frames_received(&self) -> u64 {
        self.shared.lock().close_frames
    }

    pub fn sessions_created(&self) -> u64 {
        self.shared.lock().sessions_created
    }

    /// Successful `asnAdminLogin`s.
    pub fn admin_logins(&self) -> u64 {
        self.shared.lock().admin_logins
    }

    /// Sessions that exist now.
    pub fn live_sessions(&self) -> usize {
        self.shared.lock().sessions.len()
    }

    /// Every message received (WebSocket text or native frame), in order.
    pub fn received_messages(&self) -> Vec<String> {
        self.shared.lock().received.clone()
    }

    pub fn createsession_requests(&self) -> Vec<RecordedCreateSession> {
        self.shared.lock().createsession_requests.clone()
    }

    // ------------------------------------------------------------ knobs

    /// Delay before answering each invoke.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock().knobs.latency = latency;
    }

    /// While `hold` is set, each `asnAppointmentSetEntryList` that arrives
    /// waits, unprocessed, until [`Self::release_held_writes`]; writes that
    /// arrive after `hold` is cleared pass. Models a server that stores a
    /// write late, after its client is gone.
    pub fn hold_writes(&self, hold: bool) {
        self.shared.lock().knobs.hold_writes = hold;
    }

    /// Lets every held write go on to be processed.
    pub fn release_held_writes(&self) {
        self.shared.release_held_writes();
    }

    /// Writes waiting for a release.
    pub fn held_writes(&self) -> usize {
        self.shared.held_writes()
    }

    /// Invokes received and not finished yet (processed and answered, or
    /// dropped); a client that is gone does not stop the server's work.
    pub fn invokes_in_progress(&self) -> usize {
        self.shared.invokes_in_progress()
    }

    /// The next `times` invokes of `operation` drop the connection right
    /// after they arrive, before they are processed (nothing is stored).
    pub fn drop_before_processing(&self, operation: Operation, times: u32) {
        self.shared
            .lock()
            .knobs
            .drop_before
            .insert(operation.name.to_owned(), times);
    }

    /// The next `times` invokes of `operation` are processed, then the
    /// connection drops before the answer is sent.
    pub fn drop_after_processing(&self, operation: Operation, times: u32) {
        self.shared
            .lock()
            .knobs
            .drop_after
            .insert(operation.name.to_owned(), times);
    }

    /// The next `times` createsession requests get HTTP 503.
    pub fn refuse_sessions(&self, times: u32) {
        self.shared.lock().knobs.refuse_sessions = times;
    }

    /// The next `times` invokes of `operation` are answered with `error`.
    pub fn fail_operation(&self, operation: Operation, times: u32, error: AsnRequestError) {
        self.shared
            .lock()
            .knobs
            .fail
            .insert(operation.name.to_owned(), (times, error));
    }

    /// Sends an event (`invokeID` 99999) on every open WebSocket; returns
    /// how many sockets it went to.
    pub fn send_event(
        &self,
        operation_name: &str,
        operation_id: i64,
        argument: serde_json::Value,
    ) -> usize {
        let event = RoseMessage::Invoke(RoseInvoke {
            session_id: None,
            invoke_id: EVENT_INVOKE_ID,
            linked_id: None,
            operation_name: Some(operation_name.to_owned()),
            authentication: None,
            operation_id,
            argument: Some(serde_json::value::to_raw_value(&argument).expect("a Value encodes")),
        });
        // Bare: each connection puts it in its own form (the WebSocket in
        // the web service's array, the native port as it is).
        self.shared.events.send(event.to_json()).unwrap_or(0)
    }

    /// Drops every open WebSocket at once (sessions stay valid).
    pub fn drop_all_connections(&self) {
        self.shared.lock().drop_epoch += 1;
        self.shared.notify_connections();
    }

    /// Expires every session now; their sockets are closed.
    pub fn expire_all_sessions(&self) {
        self.shared.lock().sessions.clear();
        self.shared.notify_connections();
    }
}

impl Drop for UcServerSim {
    fn drop(&mut self) {
        self.listener.abort();
        if let Some((_, _, native)) = self.native.lock().unwrap_or_else(|e| e.into_inner()).take() {
            native.abort();
        }
        self.drop_all_connections();
    }
}

async fn serve_http<I>(shared: Arc<Shared>, io: I)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| http::handle(shared.clone(), request));
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades()
        .await
    {
        tracing::debug!("UCServer sim: HTTP connection ended: {e}");
    }
}
