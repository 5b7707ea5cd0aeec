//! Throughput of `availability::parse_response` on a large GetUserAvailability
//! answer: 100 mailboxes (Exchange's per-request limit) × 10 events each.
//!
//! Run (release profile):
//!
//! ```text
//! scripts/bench-parse.sh
//! # or directly:
//! cargo bench --no-default-features --bench parse_availability
//! ```
//!
//! The response is generated here, deterministically (fixed-seed LCG), in the
//! shape of `tests/fixtures/ews/gua_detailed.xml`: default-namespace form as
//! Exchange writes it, `ServerVersionInfo` header, `Detailed` view with full
//! `CalendarEventDetails`, `WorkingHours`, varied busy types, and unknown
//! elements (as newer servers send) so the unknown-content filter does real
//! work. Before timing, the parse result is checked against what was generated.
//!
//! Three things are timed on the same bytes: the full parse through the public
//! API (the streaming reader), the same parse through the generated bindings
//! (`parse_response_generated`: filtered copy and xsd-parser deserializers,
//! the reference the streaming reader is tested against), and a bare
//! `quick_xml::Reader` scan of all events to `Eof` (the floor any
//! quick-xml-based parser pays). The three run interleaved, round by round,
//! so that each finds the input as the others left it and a slow phase of a
//! shared machine hits all three; the ratios are medians of the per-round
//! ratios. Reported: median and minimum over `ITERATIONS` rounds after
//! `WARM_UP` rounds; MB is 10^6 bytes.

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{FixedOffset, NaiveDate, TimeZone, Utc};
use ews_toolkit::availability::{self, BusyType};
use quick_xml::events::Event;

const MAILBOXES: usize = 100;
const EVENTS_PER_MAILBOX: usize = 10;
const WARM_UP: usize = 10;
const ITERATIONS: usize = 60;

const TYPES_NS: &str = "http://schemas.microsoft.com/exchange/services/2006/types";
const MESSAGES_NS: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";

/// Knuth's MMIX linear congruential generator: deterministic, no dependency.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// What the generator wrote for one event, to check the parse against.
struct ExpectedEvent {
    start_hour_utc: u32,
    busy_type: BusyType,
    subject: String,
    location: Option<String>,
    is_meeting: bool,
}

const BUSY_TYPES: &[(&str, BusyType)] = &[
    ("Busy", BusyType::Busy),
    ("Free", BusyType::Free),
    ("Tentative", BusyType::Tentative),
    ("OOF", BusyType::OutOfOffice),
    ("WorkingElsewhere", BusyType::WorkingElsewhere),
];

const SUBJECTS: &[&str] = &[
    "Q1 budget review &amp; sign-off",
    "Daily stand-up",
    "Vendor demo: ticketing system",
    "1:1 Carol / Dave",
    "Lunch walk",
    "Architecture board",
    "Customer call &lt;ACME&gt;",
    "Release planning",
];

const LOCATIONS: &[&str] = &[
    "Room Elbe 2.04",
    "Microsoft Teams Meeting",
    "Carol's office",
    "Team room",
    "",
];

fn unescape(text: &str) -> String {
    text.replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}

fn bool_text(value: bool) -> &'static str {
    if value {
        "true"
    } else {
        "false"
    }
}

/// Builds the response document and the events it holds, per mailbox.
fn generate(seed: u64) -> (Vec<u8>, Vec<Vec<ExpectedEvent>>) {
    use std::fmt::Write;
    let mut rng = Lcg(seed);
    let mut xml = String::with_capacity(4 << 20);
    let mut expected = Vec::with_capacity(MAILBOXES);
    xml.push_str(r#"<?xml version="1.0" encoding="utf-8"?>"#);
    xml.push_str(r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header>"#);
    write!(
        xml,
        r#"<h:ServerVersionInfo MajorVersion="15" MinorVersion="1" MajorBuildNumber="2507" MinorBuildNumber="39" Version="V2017_07_11" xmlns:h="{TYPES_NS}" xmlns="{TYPES_NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema"/>"#
    )
    .unwrap();
    xml.push_str(r#"</s:Header><s:Body xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">"#);
    write!(
        xml,
        r#"<GetUserAvailabilityResponse xmlns="{MESSAGES_NS}"><FreeBusyResponseArray>"#
    )
    .unwrap();
    for mailbox in 0..MAILBOXES {
        let mut events = Vec::with_capacity(EVENTS_PER_MAILBOX);
        xml.push_str("<FreeBusyResponse>");
        xml.push_str(
            r#"<ResponseMessage ResponseClass="Success"><ResponseCode>NoError</ResponseCode>"#,
        );
        if mailbox % 4 == 0 {
            // unknown element inside a known one, messages namespace
            xml.push_str("<ResponseTimeMs>23</ResponseTimeMs>");
        }
        xml.push_str("</ResponseMessage><FreeBusyView>");
        write!(
            xml,
            r#"<FreeBusyViewType xmlns="{TYPES_NS}">Detailed</FreeBusyViewType><CalendarEventArray xmlns="{TYPES_NS}">"#
        )
        .unwrap();
        for event in 0..EVENTS_PER_MAILBOX {
            // events on 2026-02-10, one hour slot each, naive times = UTC here
            let start_hour = 6 + event as u32;
            let minutes: u32 = [15, 30, 45, 60][rng.below(4) as usize];
            let (busy_wire, busy_type) = &BUSY_TYPES[rng.below(BUSY_TYPES.len() as u64) as usize];
            let subject = rng.pick(SUBJECTS);
            let location = rng.pick(LOCATIONS);
            let is_meeting = rng.below(3) != 0;
            let id = format!(
                "00000000{:016X}{:016X}07006E3B1A9C44F2D84B9A1C0E7F52B36D8A00000000010D0000{:08X}",
                rng.next(),
                rng.next(),
                mailbox * EVENTS_PER_MAILBOX + event
            );
            xml.push_str("<CalendarEvent>");
            if event % 3 == 1 {
                xml.push_str("<EventSequence>7</EventSequence>");
            }
            let (end_hour, end_minute) = (start_hour + minutes / 60, minutes % 60);
            write!(
                xml,
                "<StartTime>2026-02-10T{start_hour:02}:00:00</StartTime><EndTime>2026-02-10T{end_hour:02}:{end_minute:02}:00</EndTime>"
            )
            .unwrap();
            if event % 4 == 2 {
                xml.push_str("<ShowAsColor>#C0392B</ShowAsColor>");
            }
            write!(
                xml,
                "<BusyType>{busy_wire}</BusyType><CalendarEventDetails>"
            )
            .unwrap();
            if event % 5 == 3 {
                xml.push_str("<ChangeMarker/>");
            }
            write!(xml, "<ID>{id}</ID><Subject>{subject}</Subject>").unwrap();
            if location.is_empty() {
                xml.push_str("<Location/>");
            } else {
                write!(xml, "<Location>{location}</Location>").unwrap();
            }
            write!(
                xml,
                "<IsMeeting>{}</IsMeeting><IsRecurring>{}</IsRecurring><IsException>false</IsException><IsReminderSet>{}</IsReminderSet><IsPrivate>false</IsPrivate>",
                bool_text(is_meeting),
                bool_text(rng.below(2) == 0),
                bool_text(rng.below(2) == 0),
            )
            .unwrap();
            if event % 3 == 0 {
                // nested unknown subtree with an element named like a known one
                xml.push_str("<Organizer><Name>Ivan Organizer</Name><Address>ivan@corp.example.com</Address><Subject>not the subject</Subject></Organizer>");
            }
            xml.push_str("</CalendarEventDetails>");
            if event % 7 == 5 {
                xml.push_str(r#"<x:OnlineMeeting xmlns:x="urn:example:future"><x:Provider>TeamsForBusiness</x:Provider><x:BusyType>Free</x:BusyType></x:OnlineMeeting>"#);
            }
            xml.push_str("</CalendarEvent>");
            events.push(ExpectedEvent {
                start_hour_utc: start_hour,
                busy_type: busy_type.clone(),
                subject: unescape(subject),
                location: (!location.is_empty()).then(|| location.to_owned()),
                is_meeting,
            });
        }
        write!(
            xml,
            r#"</CalendarEventArray><WorkingHours xmlns="{TYPES_NS}"><TimeZone><Bias>-60</Bias><StandardTime><Bias>0</Bias><Time>03:00:00</Time><DayOrder>5</DayOrder><Month>10</Month><DayOfWeek>Sunday</DayOfWeek></StandardTime><DaylightTime><Bias>-60</Bias><Time>02:00:00</Time><DayOrder>5</DayOrder><Month>3</Month><DayOfWeek>Sunday</DayOfWeek></DaylightTime></TimeZone><WorkingPeriodArray><WorkingPeriod><DayOfWeek>Monday Tuesday Wednesday Thursday Friday</DayOfWeek><StartTimeInMinutes>{}</StartTimeInMinutes><EndTimeInMinutes>1020</EndTimeInMinutes></WorkingPeriod></WorkingPeriodArray></WorkingHours>"#,
            420 + 30 * rng.below(4)
        )
        .unwrap();
        xml.push_str("</FreeBusyView></FreeBusyResponse>");
        expected.push(events);
    }
    xml.push_str("</FreeBusyResponseArray></GetUserAvailabilityResponse></s:Body></s:Envelope>");
    (xml.into_bytes(), expected)
}

fn mailbox_names() -> Vec<String> {
    (0..MAILBOXES)
        .map(|i| format!("user{i:03}@corp.example.com"))
        .collect()
}

/// The generated document must parse to exactly what was generated, or the
/// timings below would measure the wrong thing.
fn check_parse(mailboxes: &[String], xml: &[u8], expected: &[Vec<ExpectedEvent>]) {
    let (parsed, _meta) = availability::parse_response(mailboxes, xml, utc_offset())
        .expect("generated response must parse");
    let (reference, _meta) = availability::parse_response_generated(mailboxes, xml, utc_offset())
        .expect("generated response must parse through the bindings");
    assert_eq!(parsed, reference, "both readers give the same result");
    assert_eq!(parsed.len(), MAILBOXES);
    let day = NaiveDate::from_ymd_opt(2026, 2, 10).unwrap();
    for ((answer, want), name) in parsed.iter().zip(expected).zip(mailboxes) {
        assert_eq!(&answer.mailbox, name);
        let events = answer
            .result
            .as_ref()
            .expect("mailbox answered without error");
        assert_eq!(events.len(), EVENTS_PER_MAILBOX);
        for (event, want) in events.iter().zip(want) {
            let start = Utc.from_utc_datetime(&day.and_hms_opt(want.start_hour_utc, 0, 0).unwrap());
            assert_eq!(event.start, start);
            assert!(event.end > event.start);
            assert_eq!(event.busy_type, want.busy_type);
            let details = event.details.as_ref().expect("Detailed view has details");
            assert_eq!(details.subject.as_deref(), Some(want.subject.as_str()));
            assert_eq!(
                details.location.as_deref().filter(|l| !l.is_empty()),
                want.location.as_deref()
            );
            assert_eq!(details.is_meeting, want.is_meeting);
            assert!(details.id.as_deref().is_some_and(|id| id.len() > 60));
        }
    }
}

fn utc_offset() -> FixedOffset {
    FixedOffset::east_opt(0).unwrap()
}

/// Reads every XML event to `Eof` without building anything: the floor.
fn bare_scan(xml: &[u8]) -> usize {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut count = 0usize;
    loop {
        match reader.read_event().expect("generated XML is well-formed") {
            Event::Eof => return count,
            event => {
                black_box(&event);
                count += 1;
            }
        }
    }
}

struct Timing {
    median: Duration,
    min: Duration,
}

impl Timing {
    fn of(mut samples: Vec<Duration>) -> Timing {
        samples.sort();
        Timing {
            median: samples[samples.len() / 2],
            min: samples[0],
        }
    }
}

/// Times the `runs` interleaved: every round runs each once (in an order
/// that rotates between rounds), so that a slow phase of a shared machine
/// slows all of them alike instead of one block of runs. Returns each run's
/// samples, one per round.
fn time_interleaved(runs: &mut [&mut dyn FnMut()]) -> Vec<Vec<Duration>> {
    for _ in 0..WARM_UP {
        for run in runs.iter_mut() {
            run();
        }
    }
    let mut samples = vec![Vec::with_capacity(ITERATIONS); runs.len()];
    for round in 0..ITERATIONS {
        for k in 0..runs.len() {
            let i = (round + k) % runs.len();
            let started = Instant::now();
            runs[i]();
            samples[i].push(started.elapsed());
        }
    }
    samples
}

/// The median over rounds of `a`'s time divided by `b`'s in the same round.
fn median_ratio(a: &[Duration], b: &[Duration]) -> f64 {
    let mut ratios: Vec<f64> = a
        .iter()
        .zip(b)
        .map(|(a, b)| a.as_secs_f64() / b.as_secs_f64())
        .collect();
    ratios.sort_by(f64::total_cmp);
    ratios[ratios.len() / 2]
}

fn row(name: &str, bytes: usize, events: usize, t: &Duration) -> String {
    let secs = t.as_secs_f64();
    format!(
        "| {name:<30} | {:>8.1} | {:>10.3} | {:>10.0} |",
        bytes as f64 / secs / 1e6,
        secs * 1e6 / events as f64,
        secs * 1e6,
    )
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too, so
    // a test run only checks the document and times nothing.
    let timing = std::env::args().any(|a| a == "--bench");

    let mailboxes = mailbox_names();
    let (xml, expected) = generate(0x5EED_2026_0210);
    check_parse(&mailboxes, &xml, &expected);
    // `--write-response PATH`: the same bytes for a peer parser
    // (scripts/bench-peer-parse.sh), written after the check above.
    let args: Vec<String> = std::env::args().collect();
    if let Some(path) = args
        .iter()
        .position(|a| a == "--write-response")
        .and_then(|i| args.get(i + 1))
    {
        std::fs::write(path, &xml).expect("writing the response");
        println!("wrote {} bytes to {path}", xml.len());
        return;
    }
    let events = MAILBOXES * EVENTS_PER_MAILBOX;
    let xml_events = bare_scan(&xml);
    if !timing {
        println!("parse_availability: generated document checked (run with cargo bench to time)");
        return;
    }

    let mut full_run = || {
        black_box(
            availability::parse_response(black_box(&mailboxes), black_box(&xml), utc_offset())
                .unwrap(),
        );
    };
    let mut generated_run = || {
        black_box(
            availability::parse_response_generated(
                black_box(&mailboxes),
                black_box(&xml),
                utc_offset(),
            )
            .unwrap(),
        );
    };
    let mut scan_run = || {
        black_box(bare_scan(black_box(&xml)));
    };
    let samples = time_interleaved(&mut [&mut full_run, &mut generated_run, &mut scan_run]);
    let full_over_scan = median_ratio(&samples[0], &samples[2]);
    let generated_over_full = median_ratio(&samples[1], &samples[0]);
    let [full, generated, scan]: [Timing; 3] = samples
        .into_iter()
        .map(Timing::of)
        .collect::<Vec<_>>()
        .try_into()
        .unwrap_or_else(|_| unreachable!("three runs"));
    println!();
    println!(
        "GetUserAvailability response: {MAILBOXES} mailboxes x {EVENTS_PER_MAILBOX} events = {events} events, {} bytes ({:.2} MB), {xml_events} XML events",
        xml.len(),
        xml.len() as f64 / 1e6
    );
    println!("{WARM_UP} warm-up rounds, {ITERATIONS} timed rounds, each round runs the three once (interleaved); MB = 10^6 bytes");
    println!();
    println!(
        "| {:<30} | {:>8} | {:>10} | {:>10} |",
        "", "MB/s", "µs/event", "µs/doc"
    );
    println!("|{:-<32}|{:->9}:|{:->11}:|{:->11}:|", "", "", "", "");
    println!(
        "{}",
        row("parse_response (median)", xml.len(), events, &full.median)
    );
    println!(
        "{}",
        row("parse_response (min)", xml.len(), events, &full.min)
    );
    println!(
        "{}",
        row(
            "generated bindings (median)",
            xml.len(),
            events,
            &generated.median
        )
    );
    println!(
        "{}",
        row(
            "generated bindings (min)",
            xml.len(),
            events,
            &generated.min
        )
    );
    println!(
        "{}",
        row(
            "bare quick-xml scan (median)",
            xml.len(),
            events,
            &scan.median
        )
    );
    println!(
        "{}",
        row("bare quick-xml scan (min)", xml.len(), events, &scan.min)
    );
    println!();
    println!(
        "full parse / bare scan: {full_over_scan:.2}x (median of the rounds' ratios; {:.2}x of the minimums)",
        full.min.as_secs_f64() / scan.min.as_secs_f64()
    );
    println!(
        "generated bindings / parse_response: {generated_over_full:.1}x (median of the rounds' ratios)"
    );
    // for scripts (bench-peer-parse.sh, bench.sh)
    println!(
        "RESULT parse_median_us={:.0} parse_min_us={:.0} generated_median_us={:.0} generated_min_us={:.0} scan_median_us={:.1} scan_min_us={:.1} parse_over_scan={full_over_scan:.2} bytes={}",
        full.median.as_secs_f64() * 1e6,
        full.min.as_secs_f64() * 1e6,
        generated.median.as_secs_f64() * 1e6,
        generated.min.as_secs_f64() * 1e6,
        scan.median.as_secs_f64() * 1e6,
        scan.min.as_secs_f64() * 1e6,
        xml.len()
    );
}
