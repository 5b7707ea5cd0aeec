//! Any bytes through both GetUserAvailability readers: the streaming one
//! (`parse_response`) must agree with the generated bindings
//! (`parse_response_generated`, the reference): equal results, or errors of
//! the same kind (for schema errors only the variant, since the wording is
//! xsd-parser's; every other error in full, except that an early stop on too
//! many answers matches any error of the reference).
#![no_main]

use chrono::FixedOffset;
use ews_toolkit::availability::{
    parse_response, parse_response_generated, AvailabilityError,
};
use ews_toolkit::EnvelopeError;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let utc = FixedOffset::east_opt(0).expect("zero offset");
    // As many mailboxes as the input has FreeBusyResponse elements (start and
    // end tag each), so mutated fixtures reach the success path; one more now
    // and then for the count-mismatch path.
    let tags = data
        .windows(b"FreeBusyResponse>".len())
        .filter(|w| *w == b"FreeBusyResponse>")
        .count();
    let count = tags / 2 + usize::from(data.len() % 7 == 0);
    let mailboxes: Vec<String> = (0..count).map(|i| format!("u{i}@corp.example.com")).collect();
    let fast = parse_response(&mailboxes, data, utc);
    let reference = parse_response_generated(&mailboxes, data, utc);
    match (&fast, &reference) {
        (Ok((out, meta)), Ok((want, want_meta))) => {
            assert_eq!(out, want);
            assert_eq!(meta.server_version, want_meta.server_version);
            assert_eq!(meta.open_content, want_meta.open_content);
        }
        (
            Err(AvailabilityError::Envelope(EnvelopeError::Deserialize { .. })),
            Err(AvailabilityError::Envelope(EnvelopeError::Deserialize { .. })),
        ) => {}
        // A known divergence (tests/ews_parse_differential.rs,
        // KNOWN_DIVERGENCES): the schema refuses an element out of order or
        // repeated in ResponseMessage, which xsd-parser's deserializer drops.
        (Err(AvailabilityError::Envelope(EnvelopeError::Deserialize { message, .. })), Ok(_))
            if message.ends_with(" in ResponseMessage")
                && (message.contains(" is out of order ")
                    || message.contains(" appears twice ")) => {}
        // The streaming reader stops at the first answer beyond the count,
        // so it never sees what the reference may find later in the document.
        (Err(AvailabilityError::TooManyAnswers { .. }), Err(_)) => {}
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("readers disagree:\nfast: {fast:?}\ngenerated: {reference:?}"),
    }
});
