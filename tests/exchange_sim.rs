//! The Exchange simulator against the project's own EWS client pieces (the
//! HTTP transport with NTLM and the request builders/parsers of src/ews),
//! over real TLS sockets on loopback.

use std::time::Duration;

use chrono::FixedOffset;
use chrono::{DateTime, TimeZone, Utc};
use ews_toolkit::availability::{self, AvailabilityView, BusyType};
use ews_toolkit::envelope::{EnvelopeError, RequestHeaders};
use ews_toolkit::operation::{FindItem, GetFolder, GetUserAvailability, Operation, ResolveNames};
use ews_toolkit::response_message::{OperationError, ResponseClass};
use ews_toolkit::sim::exchange::{
    BusyMode, ExchangeSim, ExchangeSimConfig, InjectedFault, Permission, Recurrence, SimAccount,
    SimBusyType, SimEvent, SimMailbox,
};
use ews_toolkit::transport::{
    AuthScheme, Credentials, HttpResponse, HttpTransport, TransportConfig, TransportError,
};
use ews_toolkit::{calendar_view, folder, resolve_names, ExchangeVersion};
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
    if sim.ca_pem().is_some() {
        sim.write_ca_pem(&ca_file).unwrap();
    }
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
fn fault_of(response: &HttpResponse) -> ews_toolkit::SoapFault {
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

fn gua_body(mailboxes: &[String], start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<u8> {
    let headers = RequestHeaders::new(ExchangeVersion::Exchange2013Sp1);
    availability::request(&headers, mailboxes, start, end, AvailabilityView::Detailed).unwrap()
}

fn replace(body: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.contains(from), "{from} not in {text}");
    text.replacen(from, to, 1).into_bytes()
}

#[tokio::test]
async fn a_misspelled_element_is_refused_with_error_schema_validation() {
    let setup = start().await;
    let body = gua_body(
        &names(&["alice.meier@contoso.test"]),
        at(2, 0, 0),
        at(3, 0, 0),
    );
    let body = replace(&body, "RequestedView>", "RequestedVeiw>");
    let body = replace(&body, "RequestedView>", "RequestedVeiw>");
    let response = setup
        .post::<GetUserAvailability>(&setup.transport(), body)
        .await
        .unwrap();
    let fault = fault_of(&response);
    assert_eq!(fault.code(), "ErrorSchemaValidation");
    assert!(fault.fault_string.contains("RequestedVeiw"), "{fault:?}");
    // Not XML at all.
    let response = setup
        .post::<GetUserAvailability>(&setup.transport(), b"<soap:Envelope".to_vec())
        .await
        .unwrap();
    assert_eq!(fault_of(&response).code(), "ErrorSchemaValidation");
    // A required element missing (MailboxDataArray): the generated types refuse it.
    let body = gua_body(
        &names(&["alice.meier@contoso.test"]),
        at(2, 0, 0),
        at(3, 0, 0),
    );
    let text = String::from_utf8(body).unwrap();
    let from = text.find("<m:MailboxDataArray").unwrap();
    let to = text.find("</m:MailboxDataArray>").unwrap() + "</m:MailboxDataArray>".len();
    let body = format!("{}{}", &text[..from], &text[to..]).into_bytes();
    let response = setup
        .post::<GetUserAvailability>(&setup.transport(), body)
        .await
        .unwrap();
    assert_eq!(fault_of(&response).code(), "ErrorSchemaValidation");
}

#[tokio::test]
async fn request_server_version_must_be_present_valid_and_not_newer_than_the_server() {
    let setup = start_with(|c| {
        c.server_version = ews_toolkit::sim::exchange::ServerVersionInfo::exchange_2013()
    })
    .await;
    let asked = names(&["alice.meier@contoso.test"]);
    let body = gua_body(&asked, at(2, 0, 0), at(3, 0, 0));
    let text = String::from_utf8(body.clone()).unwrap();
    let from = text.find("<t:RequestServerVersion").unwrap();
    let to = from + text[from..].find("/>").unwrap() + 2;
    let without = format!("{}{}", &text[..from], &text[to..]).into_bytes();
    let transport = setup.transport();
    let response = setup
        .post::<GetUserAvailability>(&transport, without)
        .await
        .unwrap();
    assert_eq!(fault_of(&response).code(), "ErrorInvalidServerVersion");

    let invalid = replace(&body, "Exchange2013_SP1", "Exchange2099");
    let response = setup
        .post::<GetUserAvailability>(&transport, invalid)
        .await
        .unwrap();
    assert_eq!(fault_of(&response).code(), "ErrorSchemaValidation");

    let newer = replace(&body, "Exchange2013_SP1", "Exchange2016");
    let response = setup
        .post::<GetUserAvailability>(&transport, newer)
        .await
        .unwrap();
    assert_eq!(fault_of(&response).code(), "ErrorInvalidServerVersion");

    let response = setup
        .post::<GetUserAvailability>(&transport, body)
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::OK);
}

#[tokio::test]
async fn more_than_100_mailboxes_and_more_than_42_days_are_refused_with_exchange_codes() {
    let setup = start().await;
    let transport = setup.transport();
    let many: Vec<String> = (0..101).map(|i| format!("user{i}@contoso.test")).collect();
    let response = setup
        .post::<GetUserAvailability>(&transport, gua_body(&many, at(2, 0, 0), at(3, 0, 0)))
        .await
        .unwrap();
    assert_eq!(fault_of(&response).code(), "ErrorMailboxDataArrayTooBig");
    // 100 are fine (each unknown one gets its own error).
    let answers = setup
        .availability(
            &many[..100],
            at(2, 0, 0),
            at(3, 0, 0),
            AvailabilityView::FreeBusy,
        )
        .await;
    assert_eq!(answers.len(), 100);

    let asked = names(&["alice.meier@contoso.test"]);
    let start = at(1, 0, 0);
    let response = setup
        .post::<GetUserAvailability>(
            &transport,
            gua_body(&asked, start, start + chrono::Duration::days(43)),
        )
        .await
        .unwrap();
    assert_eq!(fault_of(&response).code(), "ErrorTimeIntervalTooBig");
    let answers = setup
        .availability(
            &asked,
            start,
            start + chrono::Duration::days(42),
            AvailabilityView::Detailed,
        )
        .await;
    assert!(answers[0].result.is_ok());
}

#[tokio::test]
async fn a_lower_mailbox_cap_answers_error_mailbox_data_array_too_big() {
    let setup = start().await;
    setup.sim.update_knobs(|k| k.max_mailboxes_per_request = 2);
    let asked = names(&[
        "alice.meier@contoso.test",
        "bob.novak@contoso.test",
        "dave.costa@contoso.test",
    ]);
    let response = setup
        .post::<GetUserAvailability>(
            &setup.transport(),
            gua_body(&asked, at(2, 0, 0), at(3, 0, 0)),
        )
        .await
        .unwrap();
    assert_eq!(fault_of(&response).code(), "ErrorMailboxDataArrayTooBig");
    let answers = setup
        .availability(
            &asked[..2],
            at(2, 0, 0),
            at(3, 0, 0),
            AvailabilityView::Detailed,
        )
        .await;
    assert_eq!(answers.len(), 2);
}

#[tokio::test]
async fn a_wrong_password_is_refused() {
    let setup = start().await;
    let transport = setup.transport_as("CONTOSO\\svc-calendar", "wrong", true);
    let body = gua_body(
        &names(&["alice.meier@contoso.test"]),
        at(2, 0, 0),
        at(3, 0, 0),
    );
    let error = setup
        .post::<GetUserAvailability>(&transport, body)
        .await
        .unwrap_err();
    assert!(matches!(error, TransportError::Auth { .. }), "{error}");
    assert_eq!(setup.sim.counters().requests, 0);
    assert!(setup.sim.counters().auth.failures >= 1);
}

#[tokio::test]
async fn extended_protection_refuses_a_client_without_channel_binding_and_accepts_one_with_it() {
    let setup = start_with(|c| c.extended_protection = true).await;
    let body = gua_body(
        &names(&["alice.meier@contoso.test"]),
        at(2, 0, 0),
        at(3, 0, 0),
    );
    let without = setup.transport_as("CONTOSO\\svc-calendar", PASSWORD, false);
    let error = setup
        .post::<GetUserAvailability>(&without, body.clone())
        .await
        .unwrap_err();
    assert!(matches!(error, TransportError::Auth { .. }), "{error}");
    assert_eq!(
        setup.sim.counters().auth.last_failure,
        Some(ews_toolkit::sim::auth::AuthFailure::ChannelBindingMissing)
    );
    let with = setup.transport_as("CONTOSO\\svc-calendar", PASSWORD, true);
    let response = setup
        .post::<GetUserAvailability>(&with, body)
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::OK);
}

#[tokio::test]
async fn find_item_calendar_view_round_trips_with_permissions_and_unknown_mailboxes() {
    let setup = start().await;
    let transport = setup.transport();
    let headers = RequestHeaders::new(ExchangeVersion::Exchange2013Sp1);
    let find = |mailbox: Option<&str>, max: Option<i32>| {
        calendar_view::request(&headers, mailbox, at(2, 0, 0), at(3, 0, 0), max).unwrap()
    };
    let utc = FixedOffset::east_opt(0).unwrap();
    let response = setup
        .post::<FindItem>(&transport, find(Some("alice.meier@contoso.test"), None))
        .await
        .unwrap();
    let view = calendar_view::parse_response(&response.body, utc).unwrap();
    assert_eq!(view.items.len(), 3, "{view:#?}");
    assert!(view.includes_last_item);
    let busy = &view.items[1];
    assert_eq!((busy.start, busy.end), (at(2, 9, 0), at(2, 10, 0)));
    assert_eq!(busy.subject.as_deref(), Some("Subject a-busy & <more>"));
    assert_eq!(busy.busy_type, BusyType::Busy);
    let private = view.items.iter().find(|i| i.is_private()).unwrap();
    assert_eq!(private.subject, None);
    assert!(view.items[0].is_recurring);

    let response = setup
        .post::<FindItem>(&transport, find(Some("alice.meier@contoso.test"), Some(1)))
        .await
        .unwrap();
    let view = calendar_view::parse_response(&response.body, utc).unwrap();
    assert_eq!(view.items.len(), 1);
    assert!(!view.includes_last_item);

    for (mailbox, code) in [
        ("bob.novak@contoso.test", "ErrorAccessDenied"),
        ("carol.haas@contoso.test", "ErrorAccessDenied"),
        ("nobody@contoso.test", "ErrorNonExistentMailbox"),
    ] {
        let response = setup
            .post::<FindItem>(&transport, find(Some(mailbox), None))
            .await
            .unwrap();
        match calendar_view::parse_response(&response.body, utc) {
            Err(OperationError::Response(status)) => {
                assert_eq!(status.code, code, "{mailbox}");
                assert_eq!(status.class, ResponseClass::Error);
            }
            other => panic!("{mailbox}: {other:?}"),
        }
    }

    // The account's own calendar, private subjects included.
    let own = setup.transport_as("CONTOSO\\alice", PASSWORD, true);
    let response = setup
        .post::<FindItem>(&own, find(None, None))
        .await
        .unwrap();
    let view = calendar_view::parse_response(&response.body, utc).unwrap();
    let private = view.items.iter().find(|i| i.is_private()).unwrap();
    assert_eq!(
        private.subject.as_deref(),
        Some("Subject a-private & <more>")
    );
}

#[tokio::test]
async fn impersonation_needs_the_right_and_then_acts_as_the_mailbox() {
    let setup = start().await;
    let utc = FixedOffset::east_opt(0).unwrap();
    let mut headers = RequestHeaders::new(ExchangeVersion::Exchange2013Sp1);
    headers.impersonate = Some("carol.haas@contoso.test".into());
    let body = calendar_view::request(&headers, None, at(2, 0, 0), at(3, 0, 0), None).unwrap();
    let response = setup
        .post::<FindItem>(&setup.transport(), body.clone())
        .await
        .unwrap();
    match calendar_view::parse_response(&response.body, utc) {
        Err(OperationError::Envelope(EnvelopeError::Fault(fault))) => {
            assert_eq!(fault.code(), "ErrorImpersonateUserDenied")
        }
        other => panic!("{other:?}"),
    }
    let impersonator = setup.transport_as("CONTOSO\\svc-imp", PASSWORD, true);
    let response = setup.post::<FindItem>(&impersonator, body).await.unwrap();
    let view = calendar_view::parse_response(&response.body, utc).unwrap();
    assert_eq!(view.items.len(), 1);
    assert_eq!(
        view.items[0].subject.as_deref(),
        Some("Subject c-busy & <more>")
    );

    headers.impersonate = Some("nobody@contoso.test".into());
    let body = calendar_view::request(&headers, None, at(2, 0, 0), at(3, 0, 0), None).unwrap();
    let response = setup.post::<FindItem>(&impersonator, body).await.unwrap();
    match calendar_view::parse_response(&response.body, utc) {
        Err(OperationError::Envelope(EnvelopeError::Fault(fault))) => {
            assert_eq!(fault.code(), "ErrorNonExistentMailbox")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn get_folder_probes_the_calendar_as_exchange_answers_it() {
    let setup = start().await;
    let transport = setup.transport();
    let headers = RequestHeaders::new(ExchangeVersion::Exchange2013Sp1);
    let response = setup
        .post::<GetFolder>(
            &transport,
            folder::request(&headers, Some("alice.meier@contoso.test")).unwrap(),
        )
        .await
        .unwrap();
    let found = folder::parse_response(&response.body).unwrap();
    assert_eq!(found.display_name.as_deref(), Some("Calendar"));
    assert_eq!(found.total_count, Some(4));
    assert!(found.server_version.is_some());
    for (mailbox, code) in [
        ("carol.haas@contoso.test", "ErrorAccessDenied"),
        ("nobody@contoso.test", "ErrorNonExistentMailbox"),
    ] {
        let response = setup
            .post::<GetFolder>(
                &transport,
                folder::request(&headers, Some(mailbox)).unwrap(),
            )
            .await
            .unwrap();
        match folder::parse_response(&response.body) {
            Err(OperationError::Response(status)) => assert_eq!(status.code, code),
            other => panic!("{mailbox}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn resolve_names_finds_one_several_or_no_mailboxes() {
    let setup = start().await;
    let transport = setup.transport();
    let headers = RequestHeaders::new(ExchangeVersion::Exchange2013Sp1);
    let resolve = |entry: &str| resolve_names::request(&headers, entry).unwrap();
    let response = setup
        .post::<ResolveNames>(&transport, resolve("alice.meier@contoso.test"))
        .await
        .unwrap();
    let one = resolve_names::parse_response(&response.body).unwrap();
    assert_eq!(one.status.class, ResponseClass::Success);
    assert_eq!(
        one.mailboxes[0].email_address.as_deref(),
        Some("alice.meier@contoso.test")
    );
    assert_eq!(one.mailboxes[0].mailbox_type.as_deref(), Some("Mailbox"));
    let response = setup
        .post::<ResolveNames>(&transport, resolve("c"))
        .await
        .unwrap();
    let several = resolve_names::parse_response(&response.body).unwrap();
    assert_eq!(several.status.class, ResponseClass::Warning);
    assert_eq!(several.status.code, "ErrorNameResolutionMultipleResults");
    assert_eq!(several.mailboxes.len(), 2);
    let response = setup
        .post::<ResolveNames>(&transport, resolve("zzz"))
        .await
        .unwrap();
    match resolve_names::parse_response(&response.body) {
        Err(OperationError::Response(status)) => {
            assert_eq!(status.code, "ErrorNameResolutionNoResults")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_http_layer_is_strict_about_path_method_content_type_and_soap_action() {
    let setup = start().await;
    let transport = setup.transport();
    let body = gua_body(
        &names(&["alice.meier@contoso.test"]),
        at(2, 0, 0),
        at(3, 0, 0),
    );
    let mut url = setup.sim.ews_url();
    url.set_path("/EWS/Other.asmx");
    let response = transport
        .post_soap(
            &url,
            GetUserAvailability::SOAP_ACTION,
            body.clone(),
            HeaderMap::new(),
        )
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    let response = transport
        .send(ews_toolkit::transport::HttpRequest::get(
            setup.sim.ews_url(),
        ))
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED);
    let response = transport
        .send(ews_toolkit::transport::HttpRequest::post(
            setup.sim.ews_url(),
            "application/json",
            body.clone(),
        ))
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let response = transport
        .post_soap(
            &setup.sim.ews_url(),
            FindItem::SOAP_ACTION,
            body,
            HeaderMap::new(),
        )
        .await
        .unwrap();
    assert_eq!(fault_of(&response).code(), "ErrorInvalidRequest");
}

/// Waits (without a deadline of its own: the test runner's timeout applies)
/// until the simulator has `n` requests in flight.
async fn until_in_flight(sim: &ExchangeSim, n: usize) {
    while sim.counters().current_concurrent < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn beyond_the_concurrency_limit_the_server_answers_busy_in_the_configured_mode() {
    let setup = start().await;
    let asked = names(&["alice.meier@contoso.test"]);
    let body = gua_body(&asked, at(2, 0, 0), at(3, 0, 0));
    let utc = FixedOffset::east_opt(0).unwrap();
    for mode in [
        BusyMode::SoapFault { back_off_ms: 1234 },
        BusyMode::InnerError { back_off_ms: 4321 },
        BusyMode::Http503,
        BusyMode::ExceededConnectionCount,
    ] {
        setup.sim.update_knobs(|k| {
            k.max_concurrent_requests = Some(1);
            k.busy_mode = mode;
            // Holds the first request in flight until the second was answered.
            k.request_latency = Duration::from_secs(30);
        });
        let transport = setup.transport();
        let first = {
            let transport = transport.clone();
            let url = setup.sim.ews_url();
            let body = body.clone();
            tokio::spawn(async move {
                transport
                    .post_soap(
                        &url,
                        GetUserAvailability::SOAP_ACTION,
                        body,
                        HeaderMap::new(),
                    )
                    .await
            })
        };
        until_in_flight(&setup.sim, 1).await;
        let response = setup
            .post::<GetUserAvailability>(&transport, body.clone())
            .await
            .unwrap();
        match mode {
            BusyMode::SoapFault { .. } => {
                let fault = fault_of(&response);
                assert_eq!(fault.code(), "ErrorServerBusy");
                assert_eq!(fault.back_off(), Some(Duration::from_millis(1234)));
            }
            BusyMode::InnerError { .. } => {
                assert_eq!(response.status, StatusCode::OK);
                let (answers, _) =
                    availability::parse_response(&asked, &response.body, utc).unwrap();
                let error = answers[0].result.as_ref().unwrap_err();
                assert_eq!(error.code, "ErrorServerBusy");
                assert_eq!(error.back_off, Some(Duration::from_millis(4321)));
            }
            BusyMode::Http503 => assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE),
            BusyMode::ExceededConnectionCount => {
                assert_eq!(fault_of(&response).code(), "ErrorExceededConnectionCount")
            }
        }
        first.abort();
        let _ = first.await;
        // The aborted request's connection closes; its handler ends with it.
        setup
            .sim
            .update_knobs(|k| k.request_latency = Duration::ZERO);
        while setup.sim.counters().current_concurrent > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let counters = setup.sim.counters();
    assert_eq!(counters.busy_answers, 4);
    assert_eq!(counters.peak_concurrent, 2);
    let outcomes: Vec<String> = setup
        .sim
        .requests()
        .into_iter()
        .map(|r| r.outcome)
        .collect();
    assert!(outcomes.contains(&"http:503".to_owned()), "{outcomes:?}");
}

#[tokio::test]
async fn injected_busy_answers_come_once_each_and_are_recorded_with_arrival_times() {
    let setup = start().await;
    let asked = names(&["alice.meier@contoso.test"]);
    let body = gua_body(&asked, at(2, 0, 0), at(3, 0, 0));
    let transport = setup.transport();
    setup.sim.inject(
        InjectedFault::Busy(BusyMode::SoapFault { back_off_ms: 50 }),
        2,
    );
    assert_eq!(setup.sim.pending_faults(), 2);
    for _ in 0..2 {
        let response = setup
            .post::<GetUserAvailability>(&transport, body.clone())
            .await
            .unwrap();
        assert_eq!(fault_of(&response).code(), "ErrorServerBusy");
    }
    let response = setup
        .post::<GetUserAvailability>(&transport, body)
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::OK);
    let records = setup.sim.requests();
    assert_eq!(records.len(), 3);
    assert!(records.windows(2).all(|w| w[0].arrived <= w[1].arrived));
    assert_eq!(records[0].outcome, "ErrorServerBusy");
    assert_eq!(records[2].outcome, "ok");
    assert_eq!(setup.sim.counters().busy_answers, 2);
}

#[tokio::test]
async fn each_injected_transport_fault_is_observable_by_the_client() {
    let setup = start().await;
    let asked = names(&["alice.meier@contoso.test"]);
    let body = gua_body(&asked, at(2, 0, 0), at(3, 0, 0));
    let utc = FixedOffset::east_opt(0).unwrap();

    // A new transport each time: a fresh connection is not silently retried.
    setup.sim.inject(InjectedFault::ConnectionReset, 1);
    let error = setup
        .post::<GetUserAvailability>(&setup.transport(), body.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(error, TransportError::ConnectionReset { .. }),
        "{error}"
    );

    setup.sim.inject(InjectedFault::TruncatedBody, 1);
    let error = setup
        .post::<GetUserAvailability>(&setup.transport(), body.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(error, TransportError::ConnectionReset { .. }),
        "{error}"
    );

    setup.sim.inject(InjectedFault::TruncatedXml, 1);
    let response = setup
        .post::<GetUserAvailability>(&setup.transport(), body.clone())
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::OK);
    let error = availability::parse_response(&asked, &response.body, utc).unwrap_err();
    assert!(
        matches!(
            error,
            availability::AvailabilityError::Envelope(EnvelopeError::Xml(_))
        ),
        "{error}"
    );

    setup.sim.inject(InjectedFault::MalformedXml, 1);
    let response = setup
        .post::<GetUserAvailability>(&setup.transport(), body.clone())
        .await
        .unwrap();
    let error = availability::parse_response(&asked, &response.body, utc).unwrap_err();
    assert!(
        matches!(
            error,
            availability::AvailabilityError::Envelope(EnvelopeError::Xml(_))
        ),
        "{error}"
    );

    setup.sim.inject(InjectedFault::HttpStatus(502), 1);
    let response = setup
        .post::<GetUserAvailability>(&setup.transport(), body.clone())
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::BAD_GATEWAY);

    // A slow body: a client with a short request timeout gives up.
    setup.sim.inject(
        InjectedFault::SlowBody {
            delay: Duration::from_secs(30),
        },
        1,
    );
    let impatient = HttpTransport::new(
        TransportConfig {
            ca_file: Some(setup.ca_file.clone()),
            request_timeout: Duration::from_millis(500),
            ..TransportConfig::default()
        },
        Some(Credentials::new("CONTOSO\\svc-calendar", PASSWORD, AuthScheme::Ntlm).unwrap()),
    )
    .unwrap();
    let error = setup
        .post::<GetUserAvailability>(&impatient, body.clone())
        .await
        .unwrap_err();
    assert!(matches!(error, TransportError::Timeout { .. }), "{error}");

    // A slow body that does arrive is complete and correct.
    setup.sim.inject(
        InjectedFault::SlowBody {
            delay: Duration::from_millis(1),
        },
        1,
    );
    let response = setup
        .post::<GetUserAvailability>(&setup.transport(), body)
        .await
        .unwrap();
    let (answers, _) = availability::parse_response(&asked, &response.body, utc).unwrap();
    assert!(answers[0].result.is_ok());
    assert_eq!(setup.sim.counters().faults_injected, 7);
    assert_eq!(setup.sim.pending_faults(), 0);
}

#[tokio::test]
async fn plain_http_and_basic_work_when_configured() {
    let setup = start_with(|c| c.tls = false).await;
    assert_eq!(setup_url_scheme(&setup.sim), "http");
    assert!(setup.sim.ca_pem().is_none());
    let transport = HttpTransport::new(
        TransportConfig {
            allow_plain_http: true,
            allow_basic_without_tls: true,
            ..TransportConfig::default()
        },
        Some(Credentials::new("CONTOSO\\svc-calendar", PASSWORD, AuthScheme::Basic).unwrap()),
    )
    .unwrap();
    let body = gua_body(
        &names(&["alice.meier@contoso.test"]),
        at(2, 0, 0),
        at(3, 0, 0),
    );
    let response = setup
        .post::<GetUserAvailability>(&transport, body)
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(setup.sim.counters().auth.basic_authenticated, 1);
}

fn setup_url_scheme(sim: &ExchangeSim) -> String {
    sim.ews_url().scheme().to_owned()
}

/// Every kind of answer the simulator gives validates against Microsoft's
/// EWS schema (../shared/tools/ews-validate with xmllint), where that tool
/// is present; CI (`CI=true`) requires it.
#[tokio::test]
async fn the_answers_validate_against_the_ews_schema() {
    let tool =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tools/ews-validate");
    if !tool.exists() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "{} is missing",
            tool.display()
        );
        eprintln!("skipped: {} is not here", tool.display());
        return;
    }
    let setup = start().await;
    let transport = setup.transport();
    let headers = RequestHeaders::new(ExchangeVersion::Exchange2013Sp1);
    let everyone = names(&[
        "alice.meier@contoso.test",
        "bob.novak@contoso.test",
        "carol.haas@contoso.test",
        "dave.costa@contoso.test",
        "nobody@contoso.test",
        "not an address",
    ]);
    let mut bodies: Vec<(String, Vec<u8>)> = Vec::new();
    for view in [
        AvailabilityView::FreeBusy,
        AvailabilityView::Detailed,
        AvailabilityView::DetailedMerged,
    ] {
        let body =
            availability::request(&headers, &everyone, at(2, 0, 0), at(4, 0, 0), view).unwrap();
        let response = setup
            .post::<GetUserAvailability>(&transport, body)
            .await
            .unwrap();
        bodies.push((format!("gua_{view:?}"), response.body.to_vec()));
    }
    setup.sim.inject(
        InjectedFault::Busy(BusyMode::InnerError { back_off_ms: 10 }),
        1,
    );
    let body = availability::request(
        &headers,
        &everyone,
        at(2, 0, 0),
        at(4, 0, 0),
        AvailabilityView::Detailed,
    )
    .unwrap();
    let response = setup
        .post::<GetUserAvailability>(&transport, body)
        .await
        .unwrap();
    bodies.push(("gua_inner_busy".into(), response.body.to_vec()));
    for mailbox in ["alice.meier@contoso.test", "carol.haas@contoso.test"] {
        let body = calendar_view::request(&headers, Some(mailbox), at(2, 0, 0), at(4, 0, 0), None)
            .unwrap();
        let response = setup.post::<FindItem>(&transport, body).await.unwrap();
        bodies.push((format!("finditem_{mailbox}"), response.body.to_vec()));
        let body = folder::request(&headers, Some(mailbox)).unwrap();
        let response = setup.post::<GetFolder>(&transport, body).await.unwrap();
        bodies.push((format!("getfolder_{mailbox}"), response.body.to_vec()));
    }
    for entry in ["alice", "c", "zzz"] {
        let body = resolve_names::request(&headers, entry).unwrap();
        let response = setup.post::<ResolveNames>(&transport, body).await.unwrap();
        bodies.push((format!("resolvenames_{entry}"), response.body.to_vec()));
    }
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, body) in bodies {
        let path = dir
            .path()
            .join(format!("{}.xml", name.replace(['@', '.'], "_")));
        std::fs::write(&path, body).unwrap();
        files.push(path);
    }
    let output = std::process::Command::new("python3")
        .arg(&tool)
        .args(&files)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn a_mailbox_error_set_at_runtime_fails_only_that_mailbox() {
    let setup = start().await;
    let asked = names(&["alice.meier@contoso.test", "dave.costa@contoso.test"]);
    setup.sim.set_mailbox_error(
        "Alice.Meier@contoso.test",
        Some("ErrorProxyRequestProcessingFailed"),
    );
    let answers = setup
        .availability(&asked, at(2, 0, 0), at(3, 0, 0), AvailabilityView::Detailed)
        .await;
    let error = answers[0].result.as_ref().unwrap_err();
    assert_eq!(error.code, "ErrorProxyRequestProcessingFailed");
    assert!(answers[1].result.is_ok());
    setup
        .sim
        .set_mailbox_error("alice.meier@contoso.test", None);
    let answers = setup
        .availability(&asked, at(2, 0, 0), at(3, 0, 0), AvailabilityView::Detailed)
        .await;
    assert!(answers[0].result.is_ok());
}

#[tokio::test]
async fn the_merged_only_view_has_the_merged_string_and_no_events() {
    let setup = start().await;
    let asked = names(&["alice.meier@contoso.test"]);
    let headers = RequestHeaders::new(ExchangeVersion::Exchange2013Sp1);
    let body = availability::request(
        &headers,
        &asked,
        at(2, 8, 0),
        at(2, 10, 0),
        AvailabilityView::Detailed,
    )
    .unwrap();
    let body = replace(&body, ">Detailed<", ">MergedOnly<");
    let response = setup
        .post::<GetUserAvailability>(&setup.transport(), body)
        .await
        .unwrap();
    let xml = String::from_utf8_lossy(&response.body).into_owned();
    assert!(
        xml.contains("<t:MergedFreeBusy>4022</t:MergedFreeBusy>"),
        "{xml}"
    );
    assert!(!xml.contains("CalendarEventArray"), "{xml}");
    let (answers, _) =
        availability::parse_response(&asked, &response.body, FixedOffset::east_opt(0).unwrap())
            .unwrap();
    assert_eq!(answers[0].result.as_ref().unwrap().len(), 0);
}

#[tokio::test]
async fn a_slow_mailbox_holds_only_the_requests_that_ask_for_it() {
    let setup = start().await;
    setup
        .sim
        .set_mailbox_latency("alice.meier@contoso.test", Duration::from_secs(60));
    let transport = setup.transport();
    let slow = {
        let transport = transport.clone();
        let url = setup.sim.ews_url();
        let body = gua_body(
            &names(&["alice.meier@contoso.test"]),
            at(2, 0, 0),
            at(3, 0, 0),
        );
        tokio::spawn(async move {
            transport
                .post_soap(
                    &url,
                    GetUserAvailability::SOAP_ACTION,
                    body,
                    HeaderMap::new(),
                )
                .await
        })
    };
    until_in_flight(&setup.sim, 1).await;
    let answers = setup
        .availability(
            &names(&["dave.costa@contoso.test"]),
            at(2, 0, 0),
            at(3, 0, 0),
            AvailabilityView::Detailed,
        )
        .await;
    assert!(answers[0].result.is_ok());
    assert_eq!(
        setup.sim.counters().current_concurrent,
        1,
        "alice's request still waits"
    );
    assert!(!slow.is_finished());
    slow.abort();
}

#[tokio::test]
async fn anonymous_requests_get_401_offering_negotiate_and_ntlm_and_basic_can_be_switched_off() {
    let setup = start_with(|c| c.basic = false).await;
    let anonymous = HttpTransport::new(
        TransportConfig {
            ca_file: Some(setup.ca_file.clone()),
            ..TransportConfig::default()
        },
        None,
    )
    .unwrap();
    let body = gua_body(
        &names(&["alice.meier@contoso.test"]),
        at(2, 0, 0),
        at(3, 0, 0),
    );
    let response = setup
        .post::<GetUserAvailability>(&anonymous, body.clone())
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    let offered = ews_toolkit::transport::offered_schemes(&response.headers);
    assert!(offered.iter().any(|s| s == "NTLM"), "{offered:?}");
    assert!(offered.iter().any(|s| s == "Negotiate"), "{offered:?}");
    assert!(!offered.iter().any(|s| s == "Basic"), "{offered:?}");
    assert_eq!(setup.sim.counters().requests, 0);

    let basic = HttpTransport::new(
        TransportConfig {
            ca_file: Some(setup.ca_file.clone()),
            ..TransportConfig::default()
        },
        Some(Credentials::new("CONTOSO\\svc-calendar", PASSWORD, AuthScheme::Basic).unwrap()),
    )
    .unwrap();
    let error = setup
        .post::<GetUserAvailability>(&basic, body)
        .await
        .unwrap_err();
    assert!(matches!(error, TransportError::Auth { .. }), "{error}");
}

/// Autodiscover is served by the same host, as on a Client Access server:
/// POX at `https://<mail domain>/autodiscover/autodiscover.xml` (the
/// transport's fixed address stands in for DNS) finds the simulator's EWS URL.
#[tokio::test]
async fn autodiscover_on_the_same_host_finds_the_simulators_ews_url() {
    use ews_toolkit::autodiscover::{AutodiscoverClient, AutodiscoverSettings};
    let setup = start_with(|c| c.tls_names = vec!["contoso.test".into()]).await;
    let mut config = TransportConfig {
        ca_file: Some(setup.ca_file.clone()),
        ..TransportConfig::default()
    };
    config
        .resolve
        .insert(("contoso.test".into(), 443), setup.sim.local_addr());
    let credentials =
        Credentials::new("CONTOSO\\svc-calendar", PASSWORD, AuthScheme::Ntlm).unwrap();
    let transport = HttpTransport::new(config, Some(credentials)).unwrap();
    let client = AutodiscoverClient::new(transport, AutodiscoverSettings::default()).unwrap();
    let found = client
        .discover("alice.meier@contoso.test")
        .await
        .expect("autodiscover finds the EWS URL");
    assert_eq!(found.ews_url, setup.sim.ews_url());
    assert!(setup.sim.autodiscover().counters().pox >= 1);
    // The autodiscover request is not an EWS request.
    assert_eq!(setup.sim.counters().requests, 0);
}
