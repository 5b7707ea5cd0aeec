//! The UCServer client against the simulator over real loopback sockets.
//! The core behaviours run once per transport (web service, native port
//! 7222) and message form (web service form, plain form):
//! [`for_each_transport_and_form!`] at the end lists them.

use std::time::Duration;

use crate::support::ucserver::*;
use ews_calendar_replicator::sim::ucserver::{
    UcServerSimConfig, ERROR_ACCESS_DENIED, ERROR_NO_SUCH_USER,
};
use ews_calendar_replicator::ucserver::asn::{
    AsnAdminGetUserProfilesResult, AsnOptionalParamValue, AsnRequestError, ADMIN_GET_USER_PROFILES,
    APPOINTMENT_SET_ENTRY_LIST,
};
use ews_calendar_replicator::ucserver::{UcError, UcServerClient};

fn names(users: &[ews_calendar_replicator::ucserver::UserProfile]) -> Vec<&str> {
    users.iter().map(|u| u.user_name.as_str()).collect()
}

async fn admin_login_succeeds_and_both_user_filters_list_the_right_users(case: Case) {
    let sim = start_sim_for(case).await;
    let client = UcServerClient::connect(settings_for(case, &sim))
        .await
        .unwrap();
    assert_eq!(sim.admin_logins(), 1);

    let all = client.all_users().await.unwrap();
    assert_eq!(names(&all), ["alice", "bob", "carol", ADMIN]);
    let offline = client.offline_users().await.unwrap();
    assert_eq!(names(&offline), ["alice", "carol", ADMIN]);

    let alice = &all[0];
    assert_eq!(alice.dn, "CN=alice,OU=Staff,DC=example,DC=com");
    assert_eq!(alice.sam_account_name, "alice");
    assert_eq!(alice.sip_uri, "sip:alice@example.com");
    assert_eq!(alice.email.as_deref(), Some("alice@example.com"));
    assert_eq!(alice.object_guid, sim.users()[0].object_guid);
    assert!(alice.enabled);
    // optionalParams as the form has them: the object form (web service
    // form) or the array form (plain form) read alike.
    let raw: AsnAdminGetUserProfilesResult = client
        .invoke(
            ADMIN_GET_USER_PROFILES,
            &serde_json::json!({"iActiveUsersOnly": 0, "iFilterOnlineState": 0}),
        )
        .await
        .unwrap();
    let params = raw.user_profiles[0].optional_params.as_ref().unwrap();
    assert_eq!(
        params.get("SourceDB"),
        Some(&AsnOptionalParamValue::String("ActiveDirectory".into()))
    );

    // Online state changes while the server runs.
    assert!(sim.set_online("alice", true));
    assert!(sim.set_online("bob", false));
    let offline = client.offline_users().await.unwrap();
    assert_eq!(names(&offline), ["bob", "carol", ADMIN]);
}

async fn a_wrong_password_is_a_logon_failure_that_is_not_retried(case: Case) {
    let sim = start_sim_for(case).await;
    let mut s = settings_for(case, &sim);
    s.admin_password = "wrong-password".into();
    let err = UcServerClient::connect(s).await.err().expect("login fails");
    match &err {
        UcError::LogonFailed { detail, user, .. } => {
            assert_eq!(*detail, 101);
            assert_eq!(user, ADMIN);
        }
        other => panic!("expected LogonFailed, got {other:?}"),
    }
    assert!(!err.is_retryable());
    assert!(!err.to_string().contains("wrong-password"), "{err}");
    assert_eq!(sim.sessions_created(), 0);
}

async fn an_account_without_administrator_rights_is_refused_clearly(case: Case) {
    let sim = start_sim_for(case).await;
    let mut s = settings_for(case, &sim);
    s.admin_user = "carol".into();
    s.admin_password = "carol-pw".into();
    let err = UcServerClient::connect(s)
        .await
        .err()
        .expect("admin login fails");
    assert!(
        matches!(&err, UcError::NotAdministrator { user, .. } if user == "carol"),
        "{err:?}"
    );
    assert!(err.to_string().contains("administrat"), "{err}");
    // The session itself was created: only asnAdminLogin failed.
    assert_eq!(sim.sessions_created(), 1);
    assert_eq!(sim.admin_logins(), 0);
}

#[tokio::test]
async fn an_unknown_ucsid_gets_the_502_answer() {
    let mut config = UcServerSimConfig::new(users());
    config.ucsid = Some("ucs-main".into());
    let sim = start_sim_with(config).await;
    let mut s = settings(&sim);
    s.ucsid = Some("ucs-other".into());
    let err = UcServerClient::connect(s).await.err().expect("fails");
    assert!(
        matches!(&err, UcError::UnknownUcsid { ucsid, .. } if ucsid == "ucs-other"),
        "{err:?}"
    );

    let mut s = settings(&sim);
    s.ucsid = Some("ucs-main".into());
    UcServerClient::connect(s)
        .await
        .expect("the right UCSID connects");
}

async fn a_refused_session_is_retryable_and_the_next_attempt_connects(case: Case) {
    let sim = start_sim_for(case).await;
    sim.refuse_sessions(1);
    let err = UcServerClient::connect(settings_for(case, &sim))
        .await
        .err()
        .expect("refused");
    match case.transport {
        // createsession answers 503.
        Transport::WebService => assert!(
            matches!(err, UcError::SessionRefused { status: 503, .. }),
            "{err:?}"
        ),
        // asnNegotiateServerConnectionV2 answers busy.
        Transport::Native => assert!(
            matches!(&err, UcError::Unavailable { reason, .. } if reason.contains("busy")),
            "{err:?}"
        ),
    }
    assert!(err.is_retryable());
    UcServerClient::connect(settings_for(case, &sim))
        .await
        .expect("second attempt");
}

async fn writing_replaces_the_whole_list_and_an_empty_list_clears_it(case: Case) {
    let sim = start_sim_for(case).await;
    let client = UcServerClient::connect(settings_for(case, &sim))
        .await
        .unwrap();
    assert_eq!(sim.appointments("alice"), None);

    client
        .set_appointments("alice", &[meeting("m1", 9), meeting("m2", 13), holiday()])
        .await
        .unwrap();
    let stored = sim.appointments("alice").unwrap();
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[0].entry_id, "m1");
    assert_eq!(stored[0].owner, "alice");
    assert_eq!(stored[0].data_source, "EWS");
    assert_eq!(stored[0].start, meeting("m1", 9).start);
    assert_eq!(stored[0].duration, 90);
    assert_eq!(stored[0].status, 2);
    assert_eq!(stored[0].location(), Some("Room 4.12"));
    assert_eq!(stored[2].subject, "");
    assert!(stored[2].all_day);
    assert_eq!(stored[2].status, 3);
    assert_eq!(stored[2].sensitivity, 2);
    assert_eq!(stored[2].location(), None);

    client
        .set_appointments("alice", &[meeting("m3", 15)])
        .await
        .unwrap();
    let stored = sim.appointments("alice").unwrap();
    assert_eq!(
        stored
            .iter()
            .map(|e| e.entry_id.as_str())
            .collect::<Vec<_>>(),
        ["m3"]
    );

    client.set_appointments("alice", &[]).await.unwrap();
    assert_eq!(sim.appointments("alice"), Some(vec![]));
    let writes = sim.writes("alice");
    assert_eq!(
        writes.iter().map(|w| w.entries).collect::<Vec<_>>(),
        [3, 1, 0]
    );
    assert!(writes.windows(2).all(|w| w[0].at <= w[1].at));
    assert_eq!(sim.write_count("bob"), 0);
}

async fn a_write_for_an_unknown_owner_is_refused(case: Case) {
    let sim = start_sim_for(case).await;
    let client = UcServerClient::connect(settings_for(case, &sim))
        .await
        .unwrap();
    let err = client
        .set_appointments("mallory", &[meeting("m1", 9)])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, UcError::Request { detail, message, .. } if *detail == ERROR_NO_SUCH_USER && message.contains("mallory")),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert_eq!(sim.total_writes(), 0);
}

async fn an_invalid_appointment_is_refused_before_sending(case: Case) {
    let sim = start_sim_for(case).await;
    let client = UcServerClient::connect(settings_for(case, &sim))
        .await
        .unwrap();
    let mut backwards = meeting("m1", 9);
    std::mem::swap(&mut backwards.start, &mut backwards.end);
    let err = client
        .set_appointments("alice", &[backwards])
        .await
        .unwrap_err();
    assert!(
        matches!(err, UcError::InvalidAppointment(ref m) if m.contains("m1")),
        "{err:?}"
    );
    assert!(sim
        .received_messages()
        .iter()
        .all(|m| !m.contains("asnAppointmentSetEntryList")));
}

async fn error_answers_of_the_server_become_typed_errors(case: Case) {
    let sim = start_sim_for(case).await;
    let client = UcServerClient::connect(settings_for(case, &sim))
        .await
        .unwrap();
    sim.fail_operation(
        ADMIN_GET_USER_PROFILES,
        1,
        AsnRequestError {
            error_detail: ERROR_ACCESS_DENIED,
            error_string: "denied by test".into(),
        },
    );
    let err = client.all_users().await.unwrap_err();
    assert!(
        matches!(&err, UcError::Request { operation: "asnAdminGetUserProfiles", detail, message } if *detail == ERROR_ACCESS_DENIED && message == "denied by test"),
        "{err:?}"
    );
    assert_eq!(client.all_users().await.unwrap().len(), 4);
}

async fn keep_alives_reach_the_server_while_idle(case: Case) {
    let sim = start_sim_for(case).await;
    let mut s = settings_for(case, &sim);
    s.keep_alive_interval = Duration::from_millis(50);
    let _client = UcServerClient::connect(s).await.unwrap();
    wait_until("the sim counted three keep-alives", || {
        sim.keep_alive_count() >= 3
    })
    .await;
}

async fn a_write_cut_off_by_a_dropped_socket_fails_retryably_and_the_retry_arrives_once(
    case: Case,
) {
    let sim = start_sim_for(case).await;
    let client = UcServerClient::connect(settings_for(case, &sim))
        .await
        .unwrap();
    sim.drop_before_processing(APPOINTMENT_SET_ENTRY_LIST, 1);

    let list = [meeting("m1", 9), meeting("m2", 11)];
    let err = client.set_appointments("alice", &list).await.unwrap_err();
    assert!(
        matches!(
            err,
            UcError::ConnectionLost {
                operation: "asnAppointmentSetEntryList"
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(
        sim.write_count("alice"),
        0,
        "the dropped write was not processed"
    );

    client.set_appointments("alice", &list).await.unwrap();
    assert_eq!(sim.write_count("alice"), 1);
    assert_eq!(sim.appointments("alice").unwrap().len(), 2);
    // A new session and admin login were needed.
    assert_eq!(sim.sessions_created(), 2);
    assert_eq!(sim.admin_logins(), 2);
    // The session of the dropped connection is not used again.
    if case.transport == Transport::Native {
        assert_eq!(sim.live_sessions(), 1);
    }
}

async fn a_write_whose_answer_is_lost_is_safe_to_repeat(case: Case) {
    let sim = start_sim_for(case).await;
    let client = UcServerClient::connect(settings_for(case, &sim))
        .await
        .unwrap();
    sim.drop_after_processing(APPOINTMENT_SET_ENTRY_LIST, 1);
    let list = [meeting("m1", 9)];
    let err = client.set_appointments("alice", &list).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    client.set_appointments("alice", &list).await.unwrap();
    // Processed twice, but the list is replaced, not appended to.
    assert_eq!(sim.write_count("alice"), 2);
    assert_eq!(sim.appointments("alice").unwrap().len(), 1);
}

async fn the_client_reconnects_after_every_socket_is_dropped(case: Case) {
    let sim = start_sim_for(case).await;
    let client = UcServerClient::connect(settings_for(case, &sim))
        .await
        .unwrap();
    sim.drop_all_connections();
    wait_until("the client logged in again", || sim.admin_logins() >= 2).await;
    client
        .set_appointments("bob", &[meeting("b1", 10)])
        .await
        .unwrap();
    assert_eq!(sim.write_count("bob"), 1);
}

async fn an_expired_session_is_replaced_by_a_new_one_with_admin_login(case: Case) {
    let sim = start_sim_for(case).await;
    let client = UcServerClient::connect(settings_for(case, &sim))
        .await
        .unwrap();
    sim.expire_all_sessions();
    wait_until("a new session exists", || {
        sim.sessions_created() >= 2 && sim.admin_logins() >= 2
    })
    .await;
    client
        .set_appointments("alice", &[meeting("m1", 9)])
        .await
        .unwrap();
    assert_eq!(sim.write_count("alice"), 1);
}

async fn a_session_idle_past_the_timeout_expires_and_the_client_recovers(case: Case) {
    let mut config = UcServerSimConfig::new(users());
    config.session_idle_timeout = Duration::from_millis(200);
    let sim = start_sim_for_with(case, config).await;
    // Keep-alives far apart: nothing keeps the session alive.
    let client = UcServerClient::connect(settings_for(case, &sim))
        .await
        .unwrap();
    wait_until("the idle session expired and a new one was made", || {
        sim.sessions_created() >= 2
    })
    .await;
    // The new session idles out too, so a write may meet an expiring session:
    // it then fails retryably and unprocessed, as the caller's retry shows.
    let mut attempts = 0;
    loop {
        attempts += 1;
        match client.set_appointments("alice", &[holiday()]).await {
            Ok(()) => break,
            Err(e) if e.is_retryable() && attempts < 20 => continue,
            Err(e) => panic!("write failed: {e:?}"),
        }
    }
    assert_eq!(sim.write_count("alice"), 1);
}

async fn a_request_without_an_answer_times_out_retryably(case: Case) {
    let sim = start_sim_for(case).await;
    let mut s = settings_for(case, &sim);
    s.request_timeout = Duration::from_millis(200);
    let client = UcServerClient::connect(s).await.unwrap();
    sim.set_latency(Duration::from_secs(3));
    let err = client.all_users().await.unwrap_err();
    assert!(
        matches!(
            err,
            UcError::Timeout {
                operation: "asnAdminGetUserProfiles",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
}

async fn nothing_listens_on_the_port_gives_a_retryable_connect_error(case: Case) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let sim = start_sim_for(case).await;
    let mut s = settings_for(case, &sim);
    let scheme = match case.transport {
        Transport::WebService => "http",
        Transport::Native => "tcp",
    };
    s.base_url = format!("{scheme}://127.0.0.1:{port}/").parse().unwrap();
    let err = UcServerClient::connect(s).await.err().expect("fails");
    assert!(matches!(err, UcError::Connect { .. }), "{err:?}");
    assert!(err.is_retryable());
}

async fn events_from_the_server_are_dispatched_to_subscribers(case: Case) {
    let sim = start_sim_for(case).await;
    let client = UcServerClient::connect(settings_for(case, &sim))
        .await
        .unwrap();
    let mut events = client.events();
    // The socket is registered with the sim once the admin login is through.
    assert_eq!(
        sim.send_event(
            "asnUpdateMyCustomNote",
            1511,
            serde_json::json!({"u8sNote": "on leave"})
        ),
        1
    );
    let event = events.recv().await.unwrap();
    assert_eq!(event.operation_name, "asnUpdateMyCustomNote");
    assert_eq!(event.operation_id, 1511);
    assert_eq!(event.argument["u8sNote"], "on leave");
    // Requests still work next to events.
    assert_eq!(client.all_users().await.unwrap().len(), 4);
}

async fn while_reconnecting_fails_requests_carry_the_reason(case: Case) {
    let sim = start_sim_for(case).await;
    let mut s = settings_for(case, &sim);
    // A long back-off, so that the request meets it.
    s.reconnect_initial_delay = Duration::from_secs(30);
    s.reconnect_max_delay = Duration::from_secs(30);
    let client = UcServerClient::connect(s).await.unwrap();
    // Every new session is refused from now on, then the socket drops.
    sim.refuse_sessions(u32::MAX);
    sim.drop_all_connections();
    wait_until("the reconnect was refused", || {
        logon_attempts(case, &sim) >= 2
    })
    .await;
    let err = loop {
        match client.all_users().await {
            // Lost with the dropped socket, before the reconnect attempt.
            Err(UcError::ConnectionLost { .. }) => continue,
            other => break other.unwrap_err(),
        }
    };
    assert!(
        matches!(&err, UcError::Unavailable { reason, retryable: true }
        if reason.contains(match case.transport {
            Transport::WebService => "HTTP 503",
            Transport::Native => "busy",
        })),
        "{err:?}"
    );
}

#[tokio::test]
async fn closing_the_client_sends_a_websocket_close_frame() {
    let sim = start_sim().await;
    let client = UcServerClient::connect(settings(&sim)).await.unwrap();
    client.close().await;
    wait_until("the close frame arrived", || {
        sim.close_frames_received() == 1
    })
    .await;
}

#[tokio::test]
async fn dropping_the_client_sends_a_websocket_close_frame() {
    let sim = start_sim().await;
    let client = UcServerClient::connect(settings(&sim)).await.unwrap();
    drop(client);
    wait_until("the close frame arrived", || {
        sim.close_frames_received() == 1
    })
    .await;
}

#[tokio::test]
async fn createsession_sends_x_ucsid_local_by_default_as_ucws_wsclient_12_documents() {
    let sim = start_sim().await;
    let client = UcServerClient::connect(settings(&sim)).await.unwrap();
    client.close().await;
    let request = &sim.createsession_requests()[0];
    assert_eq!(request.x_ucsid.as_deref(), Some("local"));
    assert_eq!(request.x_no401.as_deref(), Some("1"));
    assert_eq!(request.x_simple.as_deref(), Some("1"));

    let mut s = settings(&sim);
    s.ucsid = Some(String::new());
    UcServerClient::connect(s).await.unwrap().close().await;
    assert_eq!(sim.createsession_requests()[1].x_ucsid, None);
}

/// Neither the settings' `Debug` nor the text of any logon error shows the
/// administrator password, in clear or as the Basic credential (issue #15).
async fn no_settings_or_error_text_shows_the_password(case: Case) {
    let sim = start_sim_for(case).await;
    let mut texts = vec![format!("{:?}", settings_for(case, &sim))];
    let mut wrong = settings_for(case, &sim);
    wrong.admin_password = "wr0ng-Secret-pw".into();
    texts.push(format!("{wrong:?}"));
    let err = UcServerClient::connect(wrong).await.err().expect("refused");
    texts.push(format!("{err} {err:?}"));
    let mut carol = settings_for(case, &sim);
    carol.admin_user = "carol".into();
    carol.admin_password = "carol-pw".into();
    let err = UcServerClient::connect(carol).await.err().expect("refused");
    texts.push(format!("{err} {err:?}"));
    let client = UcServerClient::connect(settings_for(case, &sim))
        .await
        .unwrap();
    let err = client.set_appointments("mallory", &[]).await.unwrap_err();
    texts.push(format!("{err} {err:?}"));
    use base64::Engine as _;
    let base64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    for text in &texts {
        for secret in ["wr0ng-Secret-pw", "carol-pw", ADMIN_PASSWORD] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        for credential in [
            format!("{ADMIN}:wr0ng-Secret-pw"),
            format!("{ADMIN}:{ADMIN_PASSWORD}"),
        ] {
            assert!(!text.contains(&base64(&credential)), "{text}");
        }
    }
}

crate::for_each_transport_and_form!(
    admin_login_succeeds_and_both_user_filters_list_the_right_users,
    a_wrong_password_is_a_logon_failure_that_is_not_retried,
    an_account_without_administrator_rights_is_refused_clearly,
    a_refused_session_is_retryable_and_the_next_attempt_connects,
    writing_replaces_the_whole_list_and_an_empty_list_clears_it,
    a_write_for_an_unknown_owner_is_refused,
    an_invalid_appointment_is_refused_before_sending,
    error_answers_of_the_server_become_typed_errors,
    keep_alives_reach_the_server_while_idle,
    a_write_cut_off_by_a_dropped_socket_fails_retryably_and_the_retry_arrives_once,
    a_write_whose_answer_is_lost_is_safe_to_repeat,
    the_client_reconnects_after_every_socket_is_dropped,
    an_expired_session_is_replaced_by_a_new_one_with_admin_login,
    a_session_idle_past_the_timeout_expires_and_the_client_recovers,
    a_request_without_an_answer_times_out_retryably,
    nothing_listens_on_the_port_gives_a_retryable_connect_error,
    events_from_the_server_are_dispatched_to_subscribers,
    while_reconnecting_fails_requests_carry_the_reason,
    no_settings_or_error_text_shows_the_password,
);
