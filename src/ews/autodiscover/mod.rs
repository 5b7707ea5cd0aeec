//! Autodiscover: finding the EWS URL of a mailbox when none is configured.
//! `soap` (GetUserSettings) and `pox` (autodiscover.xml) are the two
//! protocols; `scp` is the Active Directory step that comes first.

pub mod pox;
mod scp;
pub mod soap;

pub use scp::{ScpSource, ServiceConnectionPoint, AUTODISCOVER_SCP_KEYWORDS};
