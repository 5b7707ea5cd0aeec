//! Issue #15: the GetUserAvailability reader's work grows linearly with the
//! response. A response of one error answer (with `MessageXml` open content)
//! per mailbox made it quadratic: every answer's open content was searched
//! for among all earlier ones, so 15 MB took 34 s of CPU.
//!
//! Tests may not time anything, so the work is counted: the open-content
//! entries the readers examine (`filter::open_content_probes`). The tests of
//! this file take turns (`COUNTER`) so that no other parse adds to that
//! process-wide counter while it is read.
//! The CPU seconds are in the README (Reliability, Hostile servers).
//! Its own test binary: that counter is process-wide, and parses in other
//! tests of the same process would add to it.

use chrono::FixedOffset;
use ews_toolkit::availability::{parse_response, parse_response_generated, AvailabilityError};
use ews_toolkit::filter::open_content_probes;

mod hostile_support;
use hostile_support::{error_answers, error_answers_of};

static COUNTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn mailboxes(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| format!("user{i}@corp.example.com"))
        .collect()
}

/// CPU seconds this thread has run (for the figures printed, never
/// asserted).
fn thread_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e9)
}

#[test]
fn open_content_work_per_megabyte_stays_flat_from_1_to_60_mb() {
    let _turn = COUNTER.lock().unwrap_or_else(|e| e.into_inner());
    let utc = FixedOffset::east_opt(0).unwrap();
    let mut per_megabyte = Vec::new();
    for megabytes in [1, 15, 60] {
        let (xml, count) = error_answers_of(megabytes);
        let mailboxes = mailboxes(count);
        let before = open_content_probes();
        let cpu = thread_cpu_seconds();
        let (results, _) = parse_response(&mailboxes, &xml, utc).expect("parses");
        let cpu = thread_cpu_seconds() - cpu;
        let probes = open_content_probes() - before;
        eprintln!(
            "{megabytes} MB ({count} error answers): {probes} open-content probes, {cpu:.2} CPU s"
        );
        assert_eq!(results.len(), count);
        assert!(results.iter().all(|r| r.result.is_err()));
        per_megabyte.push((megabytes, probes as f64 / megabytes as f64));
    }
    let (_, first) = per_megabyte[0];
    for (megabytes, work) in &per_megabyte {
        // Linear: the same work per MB at every size (a little slack for the
        // rounding of the answer count). Quadratic work grows 60-fold.
        assert!(
            *work <= first * 1.1,
            "open-content work per MB at {megabytes} MB is {work:.0}, at 1 MB {first:.0}: {per_megabyte:?}"
        );
    }
}

#[test]
fn more_answers_than_mailboxes_stop_the_reader_with_a_clear_error() {
    let _turn = COUNTER.lock().unwrap_or_else(|e| e.into_inner());
    let utc = FixedOffset::east_opt(0).unwrap();
    // 1,000 answers, 10 asked for; the document is cut short after the 11th
    // answer, which the reader must never reach the end of.
    let xml = error_answers(1_000);
    let eleventh = xml
        .windows(b"<FreeBusyResponse>".len())
        .enumerate()
        .filter(|(_, w)| *w == b"<FreeBusyResponse>")
        .nth(10)
        .map(|(at, _)| at)
        .unwrap();
    let cut = &xml[..eleventh + b"<FreeBusyResponse>".len() + 20];
    let err = parse_response(&mailboxes(10), cut, utc).unwrap_err();
    assert_eq!(err, AvailabilityError::TooManyAnswers { asked: 10 });
    assert!(
        err.to_string()
            .contains("more than the 10 mailboxes asked for"),
        "{err}"
    );
    // The reference reads the whole document, and says so too.
    let err = parse_response_generated(&mailboxes(10), &xml, utc).unwrap_err();
    assert_eq!(err, AvailabilityError::TooManyAnswers { asked: 10 });
}
