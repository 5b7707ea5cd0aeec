//! A reusable Exchange Web Services client.

pub mod autodiscover;
pub mod transport;
