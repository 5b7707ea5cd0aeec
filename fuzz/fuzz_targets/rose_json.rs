//! Any bytes as what the UCServer sends: the TCP framing (`J` + length), the
//! ROSE envelope, and the results the replicator decodes from it.
#![no_main]

use bytes::BytesMut;
use ews_calendar_replicator::ucserver::asn::{
    AsnAdminGetUserProfilesResult, AsnAppointmentSetEntryListResult,
};
use ews_calendar_replicator::ucserver::framing::decode_frame;
use ews_calendar_replicator::ucserver::rose::RoseMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buffer = BytesMut::from(data);
    while let Ok(Some(_frame)) = decode_frame(&mut buffer) {}
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(RoseMessage::Result(result)) = RoseMessage::from_json(text) {
            if let Some(body) = result.result {
                let _ = serde_json::from_str::<AsnAdminGetUserProfilesResult>(body.result.get());
                let _ = serde_json::from_str::<AsnAppointmentSetEntryListResult>(body.result.get());
            }
        }
    }
});
