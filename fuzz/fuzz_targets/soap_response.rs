//! Any bytes as a GetUserAvailability response (the replicator's main input
//! from the network) and as an autodiscover answer: the parsers must return
//! an error, never panic, hang or allocate without bound.
#![no_main]

use chrono::FixedOffset;
use ews_toolkit::autodiscover::{pox, soap};
use ews_toolkit::availability;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mailboxes = ["a@corp.example.com".to_owned(), "b@corp.example.com".to_owned()];
    let utc = FixedOffset::east_opt(0).expect("zero offset");
    let _ = availability::parse_response(&mailboxes, data, utc);
    let _ = availability::parse_response(&mailboxes[..1], data, utc);
    let _ = pox::parse_response(data);
    let _ = soap::parse_response(data);
});
