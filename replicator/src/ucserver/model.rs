//! Plain Rust types the rest of the replicator uses, and their conversion to
//! and from the ASN.1 message types.

use chrono::{DateTime, Utc};

use super::asn::{
    AsnAppointmentEntry, AsnOptionalParam, AsnOptionalParamValue, AsnOptionalParameters,
    AsnUserProfile, DATA_SOURCE_EWS, OPTIONAL_PARAM_LOCATION,
};
use super::error::UcError;

/// A UCServer user as `asnAdminGetUserProfiles` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserProfile {
    /// The UCServer user name (what `u8sOwner` takes).
    pub user_name: String,
    /// Distinguished name in the directory.
    pub dn: String,
    pub object_guid: String,
    pub sam_account_name: String,
    pub sip_uri: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub enabled: bool,
}

impl From<&AsnUserProfile> for UserProfile {
    fn from(p: &AsnUserProfile) -> Self {
        let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        UserProfile {
            user_name: p.user_name.clone(),
            dn: p.dn_path.clone(),
            object_guid: p.object_guid.clone(),
            sam_account_name: p.sam_account_name.clone(),
            sip_uri: p.sip_uri.clone(),
            email: non_empty(&p.user_contact.email),
            display_name: non_empty(&p.user_contact.display_name),
            enabled: p.enabled != 0,
        }
    }
}

/// Which users `asnAdminGetUserProfiles` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserFilter {
    All,
    /// Users without a running client: their calendar presence comes from
    /// the replicator.
    OfflineOnly,
}

/// Presence state while the appointment runs (`EnumAppointmentState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppointmentStatus {
    Free = 0,
    Tentative = 1,
    Busy = 2,
    OutOfOffice = 3,
}

/// `EnumAppointmentSensitivity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sensitivity {
    #[default]
    Normal = 0,
    Personal = 1,
    Private = 2,
    Confidential = 3,
}

/// `EnumAppointmentImportance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Importance {
    Low = 0,
    #[default]
    Normal = 1,
    High = 2,
}

/// One appointment to write for a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appointment {
    /// Stable id from the source (e.g. the EWS item id or a hash of it).
    pub entry_id: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub subject: Option<String>,
    pub location: Option<String>,
    pub all_day: bool,
    pub status: AppointmentStatus,
    pub sensitivity: Sensitivity,
    pub importance: Importance,
}

impl Appointment {
    /// The `AsnAppointmentEntry` for `owner`. The body text is never
    /// replicated (`u8sText` stays empty), the duration is in minutes.
    pub fn to_asn(&self, owner: &str) -> Result<AsnAppointmentEntry, UcError> {
        if self.entry_id.is_empty() {
            return Err(UcError::InvalidAppointment(format!(
                "an appointment of {owner} starting {} has an empty entry id; every appointment needs the stable id of its source item",
                self.start
            )));
        }
        if self.end < self.start {
            return Err(UcError::InvalidAppointment(format!(
                "appointment {} of {owner} ends ({}) before it starts ({})",
                self.entry_id, self.end, self.start
            )));
        }
        Ok(AsnAppointmentEntry {
            entry_id: self.entry_id.clone(),
            owner: owner.to_owned(),
            data_source: DATA_SOURCE_EWS.to_owned(),
            start: self.start,
            end: self.end,
            duration: (self.end - self.start).num_minutes(),
            subject: self.subject.clone().unwrap_or_default(),
            text: String::new(),
            all_day: self.all_day,
            status: self.status as i64,
            category: String::new(),
            importance: self.importance as i64,
            sensitivity: self.sensitivity as i64,
            is_valid: true,
            optional_params: self.location.as_ref().map(|location| {
                AsnOptionalParameters(vec![AsnOptionalParam {
                    key: OPTIONAL_PARAM_LOCATION.to_owned(),
                    value: AsnOptionalParamValue::String(location.clone()),
                }])
            }),
        })
    }
}
