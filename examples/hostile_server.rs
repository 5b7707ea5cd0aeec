//! One server that lies (issue #15) on 127.0.0.1, for
//! `scripts/hostile-figures.sh`: the same servers the `hostile_*` tests
//! run (`tests/hostile_support`), so that the release binary can be
//! measured against them.
//!
//! ```text
//! cargo run --example hostile_server -- ATTACK
//! ```
//!
//! It prints the address it listens on (`127.0.0.1:PORT`), serves until its
//! standard input is closed, then prints what it got out (`sent N bytes`, or
//! `sent N entries`) and exits. ATTACK is one of:
//!
//! - `ldap-4gib-message`: LDAP; the user search is answered with one message
//!   announcing 4 GiB, then filler for as long as the client reads.
//! - `ldap-endless-entries`: LDAP; the user search gets entries without end.
//! - `createsession-endless`: HTTP; a 200 whose chunked body never ends.
//! - `ews-error-answers-60mb`: EWS; every availability request gets 60 MB of
//!   error answers (one per mailbox, each with open content).
//! - `ews-endless-body`: EWS; a 200 whose chunked body never ends.
//! - `ews-escape-text`: EWS; a 400 whose body holds ESC sequences and a
//!   forged log line.

#[path = "../tests/hostile_support/mod.rs"]
mod hostile_support;

use std::io::{Read, Write};

use hostile_support::*;

/// What "without end" means here: more than any limit lets through.
const ENDLESS: u64 = u64::MAX;

fn main() {
    let attack = std::env::args().nth(1).unwrap_or_default();
    let sent = Sent::default();
    let (addr, unit) = match attack.as_str() {
        "ldap-4gib-message" => (ldap_announcing_4_gib(ENDLESS, sent.clone()), "bytes"),
        "ldap-endless-entries" => (ldap_sending_entries(ENDLESS, sent.clone()), "entries"),
        "createsession-endless" => (http_endless_chunked(ENDLESS, sent.clone()), "bytes"),
        "ews-error-answers-60mb" => {
            let (body, _) = error_answers_of(60);
            (ews_answering("200 OK", body, sent.clone()), "bytes")
        }
        "ews-endless-body" => (http_endless_chunked(ENDLESS, sent.clone()), "bytes"),
        "ews-escape-text" => (
            ews_answering("400 Bad Request", escape_text_body(), sent.clone()),
            "bytes",
        ),
        other => {
            eprintln!(
                "unknown attack {other:?}; one of: ldap-4gib-message, ldap-endless-entries, createsession-endless, ews-error-answers-60mb, ews-endless-body, ews-escape-text"
            );
            std::process::exit(2);
        }
    };
    let mut out = std::io::stdout();
    writeln!(out, "{addr}").unwrap();
    out.flush().unwrap();
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    writeln!(out, "sent {} {unit}", sent.get()).unwrap();
}
