//! A reusable Exchange Web Services client.
//!
//! * `types`, `operation`: generated from the WSDL/XSD at build time;
//! * `envelope`, `filter`, `fault`: the SOAP layer every operation shares;
//! * `transport`: HTTP(S) with NTLM/Negotiate/Basic and channel binding;
//! * `availability`: `GetUserAvailability` with real time types.

pub mod autodiscover;
pub mod availability;
pub mod envelope;
pub mod fault;
pub mod filter;
pub mod operation;
pub mod transport;
pub mod types;
pub mod version;

pub use envelope::{EnvelopeError, RequestHeaders, Response, ServerVersion};
pub use fault::SoapFault;
pub use operation::{Operation, QName};
pub use version::ExchangeVersion;
