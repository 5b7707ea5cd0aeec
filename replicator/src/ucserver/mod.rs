//! The estos UCServer connection: serde types for the ROSE/JSON messages the
//! replicator uses (written from the estos ASN.1 modules), the transport
//! (UCServer web service: createsession + WebSocket; or the native TCP port
//! 7222), and a client with
//! keep-alive, request timeouts and automatic reconnects.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ews_calendar_replicator::ucserver::UcError> {
//! use ews_calendar_replicator::ucserver::{UcServerClient, UcServerSettings};
//! let url = UcServerSettings::default_url("ucserver.example.com", true)?;
//! let client = UcServerClient::connect(UcServerSettings::new(url, "admin", "password")).await?;
//! for user in client.offline_users().await? {
//!     client.set_appointments(&user.user_name, &[]).await?;
//! }
//! # Ok(()) }
//! ```

pub mod asn;
mod client;
mod error;
pub mod framing;
mod model;
pub mod native;
pub mod rose;
mod settings;
pub mod transport;

pub use client::{RoseEvent, UcServerClient, CLOSE_TIMEOUT};
pub use error::UcError;
pub use model::{Appointment, AppointmentStatus, Importance, Sensitivity, UserFilter, UserProfile};
pub use native::{NativeTransport, DEFAULT_NATIVE_PORT};
pub use settings::{
    UcServerSettings, CLIENT_APP_ID, CLIENT_PROTOCOL_VERSION, DEFAULT_HTTPS_PORT,
    DEFAULT_HTTP_PORT, DEFAULT_UCSID,
};
pub use transport::{MessageSink, MessageStream, RoseTransport, WebSocketTransport};
