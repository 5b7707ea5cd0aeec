//! A reusable Exchange Web Services client.
//!
//! * `types`, `operation`: generated from the WSDL/XSD at build time;
//! * `envelope`, `filter`, `fault`: the SOAP layer every operation shares;
//! * `transport`: HTTP(S) with NTLM/Negotiate/Basic and channel binding;
//! * one module per operation with plain Rust types: `availability`
//!   (GetUserAvailability), `calendar_view` (FindItem), `folder` (GetFolder),
//!   `resolve_names`, `streaming` (Subscribe, GetStreamingEvents, Unsubscribe).

pub mod autodiscover;
pub mod availability;
pub mod calendar_view;
pub mod envelope;
pub mod fault;
pub mod filter;
pub mod folder;
pub mod operation;
pub mod resolve_names;
pub mod response_message;
pub mod streaming;
pub mod transport;
pub mod types;
pub mod version;

pub use envelope::{EnvelopeError, RequestHeaders, Response, ServerVersion};
pub use fault::SoapFault;
pub use operation::{Operation, QName};
pub use version::ExchangeVersion;
