//! Autodiscover: finding the EWS URL of a mailbox when none is configured.

mod scp;

pub use scp::{ScpSource, ServiceConnectionPoint, AUTODISCOVER_SCP_KEYWORDS};
