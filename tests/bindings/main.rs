//! The generated bindings and the readers built on them: requests against
//! snapshots, responses from the fixture corpus, the fast availability parser
//! against the generated deserializer. One test binary (each binary is linked
//! on its own); `availability_parse_work` counts process-wide work and keeps
//! its own.

mod autodiscover;
mod ews;
mod parse_differential;
