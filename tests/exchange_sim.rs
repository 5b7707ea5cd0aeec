//! The Exchange simulator against the project's own EWS client pieces (the
//! HTTP transport with NTLM and the request builders/parsers of src/ews),
//! over real TLS sockets on loopback.
#![cfg(feature = "sim")]

use std::time::Duration;

use chrono::FixedOffset;
use chrono::{DateTime, TimeZone, Utc};
use ews_calendar_replicator::ews::availability::{self, AvailabilityView, BusyType};
use ews_calendar_replicator::ews::envelope::{EnvelopeError, RequestHeaders};
use ews_calendar_replicator::ews::operation::{
    FindItem, GetFolder, GetUserAvailability, Operation, ResolveNames,
};
use ews_calendar_replicator::ews::response_message::{OperationError, ResponseClass};
use ews_calendar_replicator::ews::transport::{
    AuthScheme, Credentials, HttpResponse, HttpTransport, TransportConfig, TransportError,
};
use ews_calendar_replicator::ews::{calendar_view, folder, resolve_names, ExchangeVersion};
use ews_calendar_replicator::sim::exchange::{
    BusyMode, ExchangeSim, ExchangeSimConfig, InjectedFault, Permission, Recurrence, SimAccount,
    SimBusyType, SimEvent, SimMailbox,
};
use http::{HeaderMap, StatusCode};

const PASSWORD: &str = "Corr3ct-Horse!";

fn at(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, day, hour, minute, 0).unwrap()
}

fn event(id: &str, start: DateTime<Utc>, minutes: i64, busy: SimBusyType) -> SimEvent {
    SimEvent {
        id: id.into(),
        start,
        end: start + chrono::Duration::minutes(minutes),
        busy_type: busy,
        subject: Some(format!("Subject {id} & <more>")),
        location: Some(format!("Room {id}")),
        private: false,
        meeting: true,
        all_day: false,
        recurrence: None,
    }
}

fn mailbox(smtp: &str, permission: Permission, events: Vec<SimEvent>) -> SimMailbox {
    SimMailbox {
        smtp: smtp.into(),
        display_name: smtp.split('@').next().unwrap().replace('.', " "),
        permission,
        events,
    }
}

/// Alice (details, a private and a recurring event), Bob (free/busy only),
/// Carol (no access), Dave (details including private).
fn mailboxes() -> Vec<SimMailbox> {
    let mut private = event("a-private", at(2, 12, 0), 60, SimBusyType::Tentative);
    private.private = true;
    let mut daily = event("a-daily", at(2, 8, 0), 30, SimBusyType::WorkingElsewhere);
    daily.recurrence = Some(Recurrence {
        every_days: 1,
        count: 3,
    });
    let mut dave_private = event("d-private", at(2, 9, 0), 60, SimBusyType::OutOfOffice);
    dave_private.private = true;
    vec![
        mailbox(
            "alice.meier@contoso.test",
            Permission::Details,
            vec![
                event("a-busy", at(2, 9, 0), 60, SimBusyType::Busy),
                private,
                daily,
                event("a-nodata", at(3, 15, 0), 30, SimBusyType::NoData),
            ],
        ),
        mailbox(
            "bob.novak@contoso.test",
            Permission::FreeBusy,
            vec![event("b-busy", at(2, 10, 0), 90, SimBusyType::Busy)],
        ),
        mailbox(
            "carol.haas@contoso.test",
            Permission::None,
            vec![event("c-busy", at(2, 10, 0), 30, SimBusyType::Busy)],
        ),
        mailbox(
            "dave.costa@contoso.test",
            Permission::DetailsAndPrivate,
            vec![dave_private],
        ),
    ]
}

struct Setup {
    sim: ExchangeSim,
    _dir: tempfile::TempDir,
    ca_file: std::path::PathBuf,
}

async fn start_with(change: impl FnOnce(&mut ExchangeSimConfig)) -> Setup {
    let mut config = ExchangeSimConfig::new(mailboxes());
    config.accounts = vec![
        SimAccount::new("CONTOSO", "svc-calendar", PASSWORD),
        SimAccount::new("CONTOSO", "svc-imp", PASSWORD).with_impersonation(),
        SimAccount::new("CONTOSO", "alice", PASSWORD).with_mailbox("alice.meier@contoso.test"),
    ];
    change(&mut config);
    let sim = ExchangeSim::start(config)
        .await
        .expect("the simulator starts");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    sim.write_ca_pem(&ca_file).unwrap();
    Setup {
        sim,
        _dir: dir,
        ca_file,
    }
}

async fn start() -> Setup {
    start_with(|_| {}).await
}

impl Setup {
    fn transport_as(&self, user: &str, password: &str, channel_binding: bool) -> HttpTransport {
        let config = TransportConfig {
            ca_file: Some(self.ca_file.clone()),
            channel_binding,
            request_timeout: Duration::from_secs(20),
            ..TransportConfig::default()
        };
        let credentials = Credentials::new(user, password, AuthScheme::Ntlm).unwrap();
        HttpTransport::new(config, Some(credentials)).unwrap()
    }

    fn transport(&self) -> HttpTransport {
        self.transport_as("CONTOSO\\svc-calendar", PASSWORD, true)
    }

    async fn post<Op: Operation>(
        &self,
        transport: &HttpTransport,
        body: Vec<u8>,
    ) -> Result<HttpResponse, TransportError> {
        transport
            .post_soap(&self.sim.ews_url(), Op::SOAP_ACTION, body, HeaderMap::new())
            .await
    }

    async fn availability(
        &self,
        mailboxes: &[String],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        view: AvailabilityView,
    ) -> Vec<availability::MailboxAvailability> {
        let headers = RequestHeaders::new(ExchangeVersion::Exchange2013Sp1);
        let body = availability::request(&headers, mailboxes, start, end, view).unwrap();
        let response = self
            .post::<GetUserAvailability>(&self.transport(), body)
            .await
            .expect("an HTTP answer");
        assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
        let (answers, meta) = availability::parse_response(
            mailboxes,
            &response.body,
            FixedOffset::east_opt(0).unwrap(),
        )
        .expect("the client parses the simulator's answer");
        let version = meta.server_version.expect("ServerVersionInfo");
        assert_eq!(version.major, Some(15));
        assert_eq!(version.version.as_deref(), Some("V2017_07_11"));
        answers
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// The SOAP fault of a refused request, as the client reads it.
fn fault_of(response: &HttpResponse) -> ews_calendar_replicator::ews::SoapFault {
    assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
    match availability::parse_response(&[], &response.body, FixedOffset::east_opt(0).unwrap()) {
        Err(availability::AvailabilityError::Envelope(EnvelopeError::Fault(fault))) => fault,
        other => panic!("expected a SOAP fault, got {other:?}"),
    }
}

#[tokio::test]
async fn detailed_availability_round_trips_with_details_private_and_recurring_events() {
    let setup = start().await;
    let asked = names(&["alice.meier@contoso.test", "dave.costa@contoso.test"]);
    let answers = setup
        .availability(&asked, at(2, 0, 0), at(5, 0, 0), AvailabilityView::Detailed)
        .await;
    let alice = answers[0].result.as_ref().expect("alice's events");
    // a-busy, a-private, a-daily x3, a-nodata, by start.
    assert_eq!(alice.len(), 6, "{alice:#?}");
    let busy = alice.iter().find(|e| e.start == at(2, 9, 0)).unwrap();
    assert_eq!(busy.busy_type, BusyType::Busy);
    assert_eq!(busy.end, at(2, 10, 0));
    let details = busy.details.as_ref().expect("details for a reviewer");
    assert_eq!(details.subject.as_deref(), Some("Subject a-busy & <more>"));
    assert_eq!(details.location.as_deref(), Some("Room a-busy"));
    assert!(details.is_meeting && !details.is_recurring && !details.is_private);
    // A private item shows its time, not its subject, to a reviewer.
    let private = alice.iter().find(|e| e.start == at(2, 12, 0)).unwrap();
    let details = private.details.as_ref().unwrap();
    assert!(details.is_private);
    assert_eq!(details.subject, None);
    let recurring: Vec<_> = alice
        .iter()
        .filter(|e| e.busy_type == BusyType::WorkingElsewhere)
        .collect();
    assert_eq!(recurring.len(), 3);
    assert!(recurring
        .iter()
        .all(|e| e.details.as_ref().unwrap().is_recurring));
    assert!(alice.iter().any(|e| e.busy_type == BusyType::NoData));
    // Dave lets the account see private items.
    let dave = answers[1].result.as_ref().unwrap();
    let details = dave[0].details.as_ref().unwrap();
    assert!(details.is_private);
    assert_eq!(
        details.subject.as_deref(),
        Some("Subject d-private & <more>")
    );
    assert_eq!(dave[0].busy_type, BusyType::OutOfOffice);

    let counters = setup.sim.counters();
    assert_eq!(counters.requests_by_operation["GetUserAvailability"], 1);
    assert_eq!(counters.mailboxes_requested, 2);
    assert!(counters.auth.ntlm_authenticated >= 1);
    let record = &setup.sim.requests()[0];
    assert_eq!(record.mailboxes, asked);
    assert_eq!(record.window, Some((at(2, 0, 0), at(5, 0, 0))));
    assert_eq!(record.account.as_deref(), Some("CONTOSO\\svc-calendar"));
}

#[tokio::test]
async fn mailbox_errors_and_permissions_come_per_mailbox_without_failing_the_others() {
    let setup = start().await;
    let asked = names(&[
        "bob.novak@contoso.test",
        "carol.haas@contoso.test",
        "nobody@contoso.test",
        "not an address",
        "alice.meier@contoso.test",
    ]);
    let answers = setup
        .availability(&asked, at(2, 0, 0), at(3, 0, 0), AvailabilityView::Detailed)
        .await;
    // Free/busy only: times without details.
    let bob = answers[0].result.as_ref().unwrap();
    assert_eq!(bob.len(), 1);
    assert_eq!(bob[0].details, None);
    let code = |i: usize| answers[i].result.as_ref().unwrap_err().code.clone();
    assert_eq!(code(1), "ErrorNoFreeBusyAccess");
    assert_eq!(code(2), "ErrorMailRecipientNotFound");
    assert_eq!(code(3), "ErrorInvalidSmtpAddress");
    assert!(answers[4].result.is_ok());
}

#[tokio::test]
async fn merged_views_carry_one_digit_per_interval_with_the_strongest_busy_type() {
    let setup = start().await;
    let asked = names(&["alice.meier@contoso.test"]);
    let headers = RequestHeaders::new(ExchangeVersion::Exchange2013Sp1);
    // 08:00-13:00 in 30-minute slots: daily WorkingElsewhere 08:00-08:30,
    // Busy 09:00-10:00, private Tentative 12:00-13:00.
    let body = availability::request(
        &headers,
        &asked,
        at(2, 8, 0),
        at(2, 13, 0),
        AvailabilityView::DetailedMerged,
    )
    .unwrap();
    let response = setup
        .post::<GetUserAvailability>(&setup.transport(), body)
        .await
        .unwrap();
    let xml = String::from_utf8_lossy(&response.body).into_owned();
    assert!(
        xml.contains("<t:MergedFreeBusy>4022000011</t:MergedFreeBusy>"),
        "{xml}"
    );
    assert!(xml.contains("<t:FreeBusyViewType>DetailedMerged</t:FreeBusyViewType>"));
    let (answers, _) =
        availability::parse_response(&asked, &response.body, FixedOffset::east_opt(0).unwrap())
            .unwrap();
    assert_eq!(answers[0].result.as_ref().unwrap().len(), 3);
}

#[tokio::test]
async fn calendars_changed_while_running_are_answered_from_then_on() {
    let setup = start().await;
    let asked = names(&["bob.novak@contoso.test"]);
    let before = setup
        .availability(&asked, at(2, 0, 0), at(3, 0, 0), AvailabilityView::FreeBusy)
        .await;
    assert_eq!(before[0].result.as_ref().unwrap().len(), 1);
    assert!(setup.sim.set_calendar(
        "Bob.Novak@contoso.test",
        vec![
            event("n1", at(2, 14, 0), 30, SimBusyType::OutOfOffice),
            event("n2", at(2, 16, 0), 30, SimBusyType::Tentative),
        ],
    ));
    let after = setup
        .availability(&asked, at(2, 0, 0), at(3, 0, 0), AvailabilityView::FreeBusy)
        .await;
    let events = after[0].result.as_ref().unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| e.busy_type.clone())
            .collect::<Vec<_>>(),
        vec![BusyType::OutOfOffice, BusyType::Tentative]
    );
    assert!(!setup.sim.set_calendar("nobody@contoso.test", Vec::new()));
}
