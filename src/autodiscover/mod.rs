//! Autodiscover: finding the EWS URL of a mailbox when none is configured.
//! `soap` (GetUserSettings) and `pox` (autodiscover.xml) are the two
//! protocols; `scp` (Active Directory) and `srv` (DNS) are where candidate
//! servers come from; `client` runs the documented search, `trust` decides
//! which hosts may be sent the credentials and `trace` records what it tried.

mod client;
pub mod pox;
mod scp;
pub mod soap;
pub mod srv;
mod trace;
pub mod trust;

pub use client::{AutodiscoverClient, AutodiscoverSettings, Discovery};
pub use scp::{order_by_site, NoScp, ScpSource, ServiceConnectionPoint, AUTODISCOVER_SCP_KEYWORDS};
pub use srv::{NoSrv, SrvError, SrvRecord, SrvResolver, UdpSrvResolver};
pub use trace::{AutodiscoverError, AutodiscoverStep, FailureReason, StepKind, StepOutcome, Via};
pub use trust::{TrustedHosts, TRUSTED_HOSTS_KEY};
