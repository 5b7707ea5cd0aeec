//! Everything generated at build time (see `build.rs` and the
//! `ews-toolkit-codegen` crate), included here and nowhere else: the other
//! modules re-export what they offer from it. The files themselves are in
//! `OUT_DIR`, formatted, each with a banner naming its inputs.
//!
//! Four schema families, each generated on its own (element names repeat
//! across them): EWS, SOAP autodiscover, and the POX autodiscover request and
//! response documents. Each has its types and the filter table that the
//! runtime's unknown-content filter (`crate::filter`) walks; the two SOAP
//! families also have their operations.

/// The lints generated bindings are not held to.
macro_rules! generated_types {
    ($file:literal) => {
        #[allow(
            missing_docs,
            clippy::all,
            clippy::pedantic,
            dead_code,
            unused_imports,
            non_camel_case_types,
            unused_mut,
            unused_variables
        )]
        pub mod types {
            include!(concat!(env!("OUT_DIR"), "/", $file));
        }
    };
}

macro_rules! generated_filter_table {
    ($file:literal) => {
        pub(crate) mod filter_table {
            use crate::filter::{FilterSchema, FilterType, Occurs, ValueKind};
            include!(concat!(env!("OUT_DIR"), "/", $file));
        }
    };
}

macro_rules! generated_operations {
    ($file:literal) => {
        pub mod operations {
            use super::filter_table::FILTER_SCHEMA;
            use super::types;
            use crate::filter::FilterSchema;
            use crate::operation::sealed::Sealed;
            use crate::operation::{Operation, QName};
            include!(concat!(env!("OUT_DIR"), "/", $file));
        }
    };
}

/// The EWS bindings (from `wsdl/` or `EWS_SCHEMA_DIR`).
pub mod ews {
    generated_types!("ews_types.rs");
    generated_filter_table!("ews_filter_table.rs");
    generated_operations!("ews_operations.rs");
}

/// SOAP autodiscover (`wsdl/Autodiscover.wsdl`, `wsdl/autodiscover.xsd`).
pub mod autodiscover {
    generated_types!("autodiscover_types.rs");
    generated_filter_table!("autodiscover_filter_table.rs");
    generated_operations!("autodiscover_operations.rs");
}

/// The POX autodiscover request document (`wsdl/pox-request.xsd`).
pub mod pox_request {
    generated_types!("pox_request_types.rs");
    generated_filter_table!("pox_request_filter_table.rs");
}

/// The POX autodiscover response document (`wsdl/pox-response.xsd`).
pub mod pox_response {
    generated_types!("pox_response_types.rs");
    generated_filter_table!("pox_response_filter_table.rs");
}
