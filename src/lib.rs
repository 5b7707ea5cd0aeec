//! A client for Exchange Web Services (EWS) of on-premises Exchange
//! (2013, 2016, 2019, Subscription Edition).
//!
//! * `types`, `operation`: generated from the WSDL/XSD at build time;
//! * `envelope`, `filter`, `fault`: the SOAP layer every operation shares;
//! * `transport`: HTTP(S) with NTLM/Negotiate/Basic and channel binding;
//! * `autodiscover`: finding a mailbox's EWS endpoint (SCP, SRV, POX, SOAP);
//! * `client`: one server's endpoint, version, impersonation and errors,
//!   and the one way to call an operation; `resilience`: how the client paces
//!   and retries every operation (busy pauses, adaptive concurrency, bounded
//!   retries); `availability_reader`: any number of mailboxes and any window,
//!   batched and split;
//! * one module per operation with plain Rust types: `availability`
//!   (GetUserAvailability), `calendar_view` (FindItem), `folder` (GetFolder),
//!   `resolve_names`, `notifications` (streaming notifications: Subscribe, GetStreamingEvents, Unsubscribe);
//! * `secret`, `server_text`, `tls`: passwords zeroed on drop, server text
//!   made safe for errors and logs, TLS configuration and its errors;
//! * `sim` (feature `sim`): an Exchange simulator on real sockets, for tests
//!   and demonstrations.

pub mod autodiscover;
pub mod availability;
pub mod availability_reader;
pub mod calendar_view;
pub mod client;
pub mod envelope;
pub mod fault;
pub mod filter;
pub mod folder;
mod generated;
pub mod notifications;
pub mod operation;
pub mod resilience;
pub mod resolve_names;
pub mod response_message;
pub mod secret;
pub mod server_text;
#[cfg(feature = "sim")]
pub mod sim;
pub mod tls;
pub mod transport;
pub mod types;
pub mod version;

pub use availability_reader::{AvailabilityReader, AvailabilityReaderConfig, AvailabilityStats};
pub use client::{EwsClient, EwsError};
pub use envelope::{EnvelopeError, RequestHeaders, Response, ServerVersion};
pub use fault::SoapFault;
pub use operation::{Operation, QName};
pub use resilience::{NoRequestObserver, RequestObserver, RequestStats, ResilienceConfig};
pub use version::ExchangeVersion;
