//! Serde types for the UCServer messages this project uses, written from the
//! estos ASN.1 modules (ENetUC_Common, ENetUC_Common_Appointments,
//! ENetUC_Appointments, ENetUC_Admin, ENetUC_Transport).
//!
//! JSON conventions of the estos encoding: field names as in the ASN.1 (`-`
//! becomes `_`), OPTIONAL fields left out when absent, `AsnSystemTime` as an
//! ISO-8601 UTC string, a CHOICE as an object holding exactly the chosen
//! alternative (`{"stringdata": "..."}`), NULL as `null`.
//!
//! Every SEQUENCE here has the `...` extension marker, so decoding accepts
//! members it does not know (a newer peer may send them) but insists on every
//! mandatory one. The CHOICEs have no extension marker and reject unknown
//! alternatives.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A ROSE operation: the name the server dispatches by, and its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Operation {
    pub name: &'static str,
    pub id: i64,
}

/// `asnAdminLogin` (ENetUC_Admin).
pub const ADMIN_LOGIN: Operation = Operation {
    name: "asnAdminLogin",
    id: 2904,
};
/// `asnAdminGetUserProfiles` (ENetUC_Admin).
pub const ADMIN_GET_USER_PROFILES: Operation = Operation {
    name: "asnAdminGetUserProfiles",
    id: 2913,
};
/// `asnAppointmentSetEntryList` (ENetUC_Appointments).
pub const APPOINTMENT_SET_ENTRY_LIST: Operation = Operation {
    name: "asnAppointmentSetEntryList",
    id: 400,
};
/// `asnTransportKeepAlive` (ENetUC_Transport), sent as an event.
pub const TRANSPORT_KEEP_ALIVE: Operation = Operation {
    name: "asnTransportKeepAlive",
    id: 1706,
};

/// The operations this project's client sends and its simulator serves.
pub const KNOWN_OPERATIONS: [Operation; 4] = [
    ADMIN_LOGIN,
    ADMIN_GET_USER_PROFILES,
    APPOINTMENT_SET_ENTRY_LIST,
    TRANSPORT_KEEP_ALIVE,
];

/// Looks an operation up by the name the server dispatches by.
pub fn operation_by_name(name: &str) -> Option<Operation> {
    KNOWN_OPERATIONS.iter().copied().find(|op| op.name == name)
}

/// Data source string the EWS Calendar Replicator writes with.
pub const DATA_SOURCE_EWS: &str = "EWS";

/// `AsnSystemTime` in JSON: an ISO-8601 date-time; we always write UTC with
/// a `Z` and whole seconds.
pub mod system_time {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(time: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&time.to_rfc3339_opts(SecondsFormat::Secs, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "AsnSystemTime must be an ISO-8601 date-time such as 2024-05-01T08:00:00Z, got {text:?}: {e}"
                ))
            })
    }
}

// ---------------------------------------------------------------- Common

/// `AsnRequestError`: the generic error of an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsnRequestError {
    #[serde(rename = "iErrorDetail")]
    pub error_detail: i64,
    #[serde(rename = "u8sErrorString")]
    pub error_string: String,
}

/// `AsnOptionalParam`: a typed key/value pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsnOptionalParam {
    pub key: String,
    pub value: AsnOptionalParamValue,
}

/// The `value` CHOICE of `AsnOptionalParam`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AsnOptionalParamValue {
    #[serde(rename = "stringdata")]
    String(String),
    /// OCTET STRING, base64 in JSON.
    #[serde(rename = "binarydata")]
    Binary(String),
    #[serde(rename = "integerdata")]
    Integer(i64),
}

/// `AsnOptionalParameters`.
pub type AsnOptionalParameters = Vec<AsnOptionalParam>;

/// `AsnStringPair`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsnStringPair {
    pub key: String,
    pub value: String,
}

/// `AsnUserPropertyBag`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsnUserPropertyBag {
    #[serde(rename = "asnProperties")]
    pub properties: Vec<AsnStringPair>,
}

/// `AsnNetDatabaseContact`: every member is OPTIONAL; only the members this
/// project reads are modelled (the type is extensible, the rest is ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsnNetDatabaseContact {
    #[serde(rename = "u8sDisplayName", skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(rename = "u8sFirstName", skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(rename = "u8sLastName", skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(rename = "u8sEMail", skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(rename = "u8sSIPAddress", skip_serializing_if = "Option::is_none")]
    pub sip_address: Option<String>,
}

// ---------------------------------------------------------------- Transport

/// `AsnTransportKeepAliveArgument`: `dummy NULL`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsnTransportKeepAliveArgument {
    pub dummy: (),
}

// ---------------------------------------------------------------- Admin

/// `AsnAdminLoginArgument`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsnAdminLoginArgument {
    #[serde(rename = "u8sAdminUsername")]
    pub admin_username: String,
    #[serde(rename = "adminPassword")]
    pub admin_password: AdminPassword,
}

/// The `adminPassword` CHOICE of `AsnAdminLoginArgument`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminPassword {
    #[serde(rename = "u8sAdminPassword")]
    Plain(String),
    #[serde(rename = "u8sAdminPasswordCrypted")]
    Crypted(String),
}

impl fmt::Debug for AdminPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminPassword::Plain(_) => f.write_str("Plain(<redacted>)"),
            AdminPassword::Crypted(_) => f.write_str("Crypted(<redacted>)"),
        }
    }
}

/// `AsnAdminLoginResult`: `result` is ENUMERATED success(0) / failed(1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsnAdminLoginResult {
    pub result: i64,
}

/// `AsnAdminLoginResult.result` success.
pub const ADMIN_LOGIN_SUCCESS: i64 = 0;
/// `AsnAdminLoginResult.result` failed.
pub const ADMIN_LOGIN_FAILED: i64 = 1;

/// `AsnAdminUserOnlineStateFilter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnlineStateFilter {
    /// eNOSTATEFILTER (0)
    All = 0,
    /// eISONLINEONLY (1)
    OnlineOnly = 1,
    /// eISOFFLINEONLY (2)
    OfflineOnly = 2,
}

impl OnlineStateFilter {
    pub fn from_wire(value: i64) -> Option<Self> {
        match value {
            0 => Some(Self::All),
            1 => Some(Self::OnlineOnly),
            2 => Some(Self::OfflineOnly),
            _ => None,
        }
    }
}

/// `AsnAdminGetUserProfilesArgument`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsnAdminGetUserProfilesArgument {
    /// CTI-enabled users only (0/1).
    #[serde(rename = "iActiveUsersOnly")]
    pub active_users_only: i64,
    /// An `AsnAdminUserOnlineStateFilter` value.
    #[serde(rename = "iFilterOnlineState")]
    pub filter_online_state: i64,
}

/// `AsnAdminGetUserProfilesResult`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsnAdminGetUserProfilesResult {
    #[serde(rename = "userProfiles")]
    pub user_profiles: Vec<AsnUserProfile>,
}

/// `AsnUserMonitorLine`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsnUserMonitorLine {
    #[serde(rename = "u8sPhoneNumber")]
    pub phone_number: String,
}

/// `AsnUserDynamicRights`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsnUserDynamicRights {
    #[serde(rename = "u8sObjectID")]
    pub object_id: String,
    #[serde(rename = "iPresenceRights")]
    pub presence_rights: i64,
    #[serde(rename = "iPhoneControlRightsPrimary")]
    pub phone_control_rights_primary: i64,
    #[serde(rename = "iPhoneControlRightsSecondary")]
    pub phone_control_rights_secondary: i64,
}

/// `AsnUserProfile` (ENetUC_Admin).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsnUserProfile {
    #[serde(rename = "iEnabled")]
    pub enabled: i64,
    #[serde(rename = "u8sDNPath")]
    pub dn_path: String,
    #[serde(rename = "u8sUserName")]
    pub user_name: String,
    #[serde(rename = "u8sSIPURI")]
    pub sip_uri: String,
    #[serde(rename = "u8sobjectGUID")]
    pub object_guid: String,
    #[serde(rename = "u8sPhoneNumber")]
    pub phone_number: String,
    #[serde(rename = "u8sPhoneSecondary")]
    pub phone_secondary: String,
    #[serde(rename = "userMonitorLineList")]
    pub monitor_lines: Vec<AsnUserMonitorLine>,
    #[serde(rename = "iMonitorLineRights")]
    pub monitor_line_rights: i64,
    #[serde(rename = "u8sSAMAccountName")]
    pub sam_account_name: String,
    /// Always empty in what a server sends; never logged.
    #[serde(rename = "u8sPassword")]
    pub password: String,
    #[serde(rename = "u8sCallRecordingNumber")]
    pub call_recording_number: String,
    #[serde(rename = "u8sMailboxNumber")]
    pub mailbox_number: String,
    #[serde(rename = "u8sHomeServer")]
    pub home_server: String,
    #[serde(rename = "iUserStaticRights")]
    pub user_static_rights: i64,
    #[serde(rename = "iUserStaticRights2", skip_serializing_if = "Option::is_none")]
    pub user_static_rights2: Option<i64>,
    #[serde(rename = "userDynamicRights")]
    pub user_dynamic_rights: Vec<AsnUserDynamicRights>,
    #[serde(rename = "asnUserContact")]
    pub user_contact: AsnNetDatabaseContact,
    #[serde(rename = "asnUserPropertyBag")]
    pub user_property_bag: AsnUserPropertyBag,
    #[serde(rename = "optionalParams", skip_serializing_if = "Option::is_none")]
    pub optional_params: Option<AsnOptionalParameters>,
    #[serde(rename = "bWritePicture", skip_serializing_if = "Option::is_none")]
    pub write_picture: Option<bool>,
}

impl fmt::Debug for AsnUserProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsnUserProfile")
            .field("user_name", &self.user_name)
            .field("dn_path", &self.dn_path)
            .field("object_guid", &self.object_guid)
            .field("sam_account_name", &self.sam_account_name)
            .field("sip_uri", &self.sip_uri)
            .field("enabled", &self.enabled)
            .field("password", &"<redacted>")
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------- Appointments

/// `EnumAppointmentState` values of `AsnAppointmentEntry.iStatus`.
pub const APPOINTMENT_STATUS_MAX: i64 = 3;
/// `EnumAppointmentImportance` values of `AsnAppointmentEntry.iImportance`.
pub const APPOINTMENT_IMPORTANCE_MAX: i64 = 2;
/// `EnumAppointmentSensitivity` values of `AsnAppointmentEntry.iSensitivity`.
pub const APPOINTMENT_SENSITIVITY_MAX: i64 = 3;

/// Key of the `optionalParams` entry holding the location.
pub const OPTIONAL_PARAM_LOCATION: &str = "Location";

/// `AsnAppointmentEntry` (ENetUC_Common_Appointments).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsnAppointmentEntry {
    #[serde(rename = "u8sEntryID")]
    pub entry_id: String,
    #[serde(rename = "u8sOwner")]
    pub owner: String,
    #[serde(rename = "u8sDataSource")]
    pub data_source: String,
    #[serde(rename = "stStart", with = "system_time")]
    pub start: DateTime<Utc>,
    #[serde(rename = "stEnd", with = "system_time")]
    pub end: DateTime<Utc>,
    /// Minutes.
    #[serde(rename = "iDuration")]
    pub duration: i64,
    #[serde(rename = "u8sSubject")]
    pub subject: String,
    #[serde(rename = "u8sText")]
    pub text: String,
    #[serde(rename = "bAllDay")]
    pub all_day: bool,
    /// An `EnumAppointmentState` value.
    #[serde(rename = "iStatus")]
    pub status: i64,
    #[serde(rename = "u8sCategory")]
    pub category: String,
    /// An `EnumAppointmentImportance` value.
    #[serde(rename = "iImportance")]
    pub importance: i64,
    /// An `EnumAppointmentSensitivity` value.
    #[serde(rename = "iSensitivity")]
    pub sensitivity: i64,
    #[serde(rename = "bIsValid")]
    pub is_valid: bool,
    #[serde(rename = "optionalParams", skip_serializing_if = "Option::is_none")]
    pub optional_params: Option<AsnOptionalParameters>,
}

impl AsnAppointmentEntry {
    /// The `Location` optional parameter, when present as a string.
    pub fn location(&self) -> Option<&str> {
        self.optional_params
            .iter()
            .flatten()
            .find(|p| p.key == OPTIONAL_PARAM_LOCATION)
            .and_then(|p| match &p.value {
                AsnOptionalParamValue::String(s) => Some(s.as_str()),
                _ => None,
            })
    }
}

/// `AsnAppointmentSetEntryListArgument`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsnAppointmentSetEntryListArgument {
    #[serde(rename = "u8sOwner")]
    pub owner: String,
    #[serde(rename = "u8sDataSource")]
    pub data_source: String,
    pub appointments: Vec<AsnAppointmentEntry>,
}

/// `AsnAppointmentSetEntryListResult`: `iResult` 0 means saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsnAppointmentSetEntryListResult {
    #[serde(rename = "iResult")]
    pub result: i64,
}
