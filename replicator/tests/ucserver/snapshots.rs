//! Snapshots (insta, in `snapshots/`) of every message the UCServer client
//! sends, as the simulator received them over a real socket: the same
//! snapshots for the web service and the native port (after its own logon,
//! whose messages ucserver_native.rs snapshots), since the runtime reads the
//! same ROSE JSON on both.

use crate::support::ucserver::*;

fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap()
}

async fn every_message_the_client_sends_matches_its_snapshot(case: Case) {
    let (sim, messages) = record_client_session(case).await;
    let admin_login = redact_password(first_invoke(&messages, "asnAdminLogin").clone());
    let invokes_of = |name: &str| -> Vec<&serde_json::Value> {
        messages
            .iter()
            .filter(|m| m["invoke"]["operationName"] == name)
            .collect()
    };
    let profiles = invokes_of("asnAdminGetUserProfiles");
    let writes = invokes_of("asnAppointmentSetEntryList");
    let keep_alive = first_invoke(&messages, "asnTransportKeepAlive");

    insta::with_settings!({snapshot_path => "../../snapshots", prepend_module_to_snapshot => false}, {
        if case.transport == Transport::WebService {
            let createsession = &sim.createsession_requests()[0];
            insta::assert_debug_snapshot!("ucserver_createsession_request", createsession);
        }
        insta::assert_snapshot!("ucserver_admin_login", pretty(&admin_login));
        insta::assert_snapshot!("ucserver_get_user_profiles_offline", pretty(profiles[0]));
        insta::assert_snapshot!("ucserver_get_user_profiles_all", pretty(profiles[1]));
        insta::assert_snapshot!("ucserver_set_entry_list", pretty(writes[0]));
        insta::assert_snapshot!("ucserver_set_entry_list_clear", pretty(writes[1]));
        insta::assert_snapshot!("ucserver_keep_alive", pretty(keep_alive));
    });
    assert!(messages
        .iter()
        .all(|m| !m.to_string().contains(ADMIN_PASSWORD)
            || m["invoke"]["operationName"] == "asnAdminLogin"));
}

crate::for_each_transport!(every_message_the_client_sends_matches_its_snapshot);
