//! The EWS types, generated at build time from the schema (see `build.rs`
//! and `crate::generated`).

pub use crate::generated::ews::types::*;
