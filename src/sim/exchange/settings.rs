//! What a test sets: the accounts that may log on, the runtime knobs, the
//! faults to inject, and the limits Exchange has. Below every other module
//! of the simulator, which all read it.

use std::time::Duration;

use crate::sim::auth::Account;

/// Mailboxes per GetUserAvailability that Exchange accepts.
pub const EXCHANGE_MAX_MAILBOXES: usize = 100;

/// The EWS path, as on every Exchange server.
pub const EWS_PATH: &str = "/EWS/Exchange.asmx";

/// An account that may log on. `Debug` hides the password.
#[derive(Clone)]
pub struct SimAccount {
    /// NetBIOS domain (`CONTOSO`).
    pub domain: String,
    /// sAMAccountName (`svc-calendar`).
    pub user: String,
    password: String,
    /// The account's own mailbox (FindItem/GetFolder without a mailbox).
    pub smtp: Option<String>,
    /// Holds the ApplicationImpersonation role.
    pub impersonation: bool,
}

impl SimAccount {
    pub fn new(
        domain: impl Into<String>,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        SimAccount {
            domain: domain.into(),
            user: user.into(),
            password: password.into(),
            smtp: None,
            impersonation: false,
        }
    }

    pub fn with_impersonation(mut self) -> Self {
        self.impersonation = true;
        self
    }

    pub fn with_mailbox(mut self, smtp: impl Into<String>) -> Self {
        self.smtp = Some(smtp.into());
        self
    }

    pub(super) fn auth_account(&self) -> Account {
        Account::new(&self.domain, &self.user, &self.password)
    }
}

impl std::fmt::Debug for SimAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimAccount")
            .field("domain", &self.domain)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("smtp", &self.smtp)
            .field("impersonation", &self.impersonation)
            .finish()
    }
}

/// How the server answers a request beyond [`Knobs::max_concurrent_requests`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusyMode {
    /// HTTP 500 with an `ErrorServerBusy` SOAP fault carrying
    /// `BackOffMilliseconds` (Exchange 2013+).
    SoapFault { back_off_ms: u64 },
    /// HTTP 200 whose every mailbox answer is an `ErrorServerBusy` response
    /// message with `BackOffMilliseconds` (GetUserAvailability; other
    /// operations get the SOAP fault).
    InnerError { back_off_ms: u64 },
    /// A bare HTTP 503 (a load balancer or IIS queue limit).
    Http503,
    /// HTTP 500 with an `ErrorExceededConnectionCount` SOAP fault.
    ExceededConnectionCount,
}

/// A fault for the next request(s), see [`ExchangeSim::inject`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectedFault {
    /// Close the connection without answering.
    ConnectionReset,
    /// Announce the whole body, send half of it, close the connection.
    TruncatedBody,
    /// A complete HTTP 200 whose XML stops half-way.
    TruncatedXml,
    /// A complete HTTP 200 whose XML is not well-formed.
    MalformedXml,
    /// The response body in 64-byte pieces with `delay` between them.
    SlowBody { delay: Duration },
    /// A bare HTTP status (e.g. 500, 502, 503) with a short text body.
    HttpStatus(u16),
    /// One answer as in the given busy mode.
    Busy(BusyMode),
}

/// Runtime knobs; change them with [`ExchangeSim::set_knobs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Knobs {
    /// Time from an EWS request's arrival (after authentication) to its
    /// answer; composing the answer happens within it.
    pub request_latency: Duration,
    /// Added per mailbox of a GetUserAvailability request, like
    /// `request_latency`.
    pub per_mailbox_latency: Duration,
    /// Requests in flight at once; beyond it, [`Knobs::busy_mode`].
    pub max_concurrent_requests: Option<usize>,
    pub busy_mode: BusyMode,
    /// Mailboxes per GetUserAvailability; above it,
    /// `ErrorMailboxDataArrayTooBig` (Exchange's own limit is 100; a lower
    /// value tests a client that halves its chunks).
    pub max_mailboxes_per_request: usize,
    /// Streaming notifications (Subscribe, GetStreamingEvents).
    pub notifications: NotificationKnobs,
}

/// How the simulator's streaming notifications behave. The defaults are
/// Exchange on-premises' where Microsoft documents them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationKnobs {
    /// GetStreamingEvents connections one account may hold open; beyond it
    /// `ErrorExceededConnectionCount`. "Handling notification-related
    /// errors in EWS in Exchange": on-premises `HangingConnectionLimit`
    /// (EWS web.config) defaults to 3 (Exchange Online: 10).
    pub hanging_connection_limit: usize,
    /// Subscriptions one account may hold; beyond it
    /// `ErrorExceededSubscriptionCount`. The throttling policy's
    /// `EWSMaxSubscriptions`, on-premises default 5000.
    pub max_subscriptions: usize,
    /// Subscription ids one GetStreamingEvents may name. "Maintain affinity
    /// between a group of subscriptions and the Mailbox server": at most
    /// 200 per group; Exchange's enforcement is not documented, so above it
    /// the simulator answers `ErrorInvalidArgument` to catch a client that
    /// overfills a group.
    pub max_subscriptions_per_stream: usize,
    /// Time between keep-alive messages (`ConnectionStatus` `OK`) on an
    /// open stream. Exchange's interval is not documented; the EWS Managed
    /// API gives up on a connection after 45 s without data, so it must be
    /// shorter: 30 s.
    pub keep_alive: Duration,
    /// Time from a calendar change to its event on the stream (Exchange's
    /// own delay is not documented; it is short).
    pub notification_delay: Duration,
    /// How long a subscription outlives the last connection that read it
    /// before it expires (`ErrorSubscriptionNotFound` from then on).
    /// Microsoft documents that unread streaming subscriptions expire, not
    /// after how long: 30 minutes, Exchange's maximum `ConnectionTimeout`.
    pub subscription_expiry: Duration,
    /// The length of one minute of GetStreamingEvents' `ConnectionTimeout`
    /// (given in minutes, 1 to 30). A real minute by default; tests shorten
    /// it (e.g. 200 ms) to see `Closed` without waiting minutes.
    pub connection_timeout_minute: Duration,
    /// Events queued for one subscription while nobody reads it; beyond it
    /// the subscription fails with `ErrorMissedNotificationEvents` (Exchange
    /// keeps a bounded queue too; its size is not documented).
    pub max_queued_events: usize,
    /// Deleting an item moves it to Deleted Items, as Outlook and OWA do:
    /// the subscription gets a `MovedEvent` (the old item id, the calendar
    /// as old parent, `deleteditems` as the new one) instead of a
    /// `DeletedEvent`, and only when it asked for `MovedEvent`. Off: hard
    /// deletes.
    pub deletes_as_moves: bool,
}

impl Default for NotificationKnobs {
    fn default() -> Self {
        NotificationKnobs {
            hanging_connection_limit: 3,
            max_subscriptions: 5000,
            max_subscriptions_per_stream: 200,
            keep_alive: Duration::from_secs(30),
            notification_delay: Duration::ZERO,
            subscription_expiry: Duration::from_secs(30 * 60),
            connection_timeout_minute: Duration::from_secs(60),
            max_queued_events: 1000,
            deletes_as_moves: false,
        }
    }
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            request_latency: Duration::ZERO,
            per_mailbox_latency: Duration::ZERO,
            max_concurrent_requests: None,
            busy_mode: BusyMode::SoapFault { back_off_ms: 5000 },
            max_mailboxes_per_request: EXCHANGE_MAX_MAILBOXES,
            notifications: NotificationKnobs::default(),
        }
    }
}
