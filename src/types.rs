//! The EWS types, generated at build time from the schema (see `build.rs`).
#![allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    dead_code,
    unused_imports,
    non_camel_case_types,
    unused_mut,
    unused_variables
)]

include!(concat!(env!("OUT_DIR"), "/ews_types.rs"));
