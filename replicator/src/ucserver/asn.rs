//! Serde types for the UCServer messages this project uses, written from the
//! estos ASN.1 modules (ENetUC_Common, ENetUC_Common_Appointments,
//! ENetUC_Appointments, ENetUC_Admin, ENetUC_Transport).
//!
//! JSON conventions of the estos encoding: field names as in the ASN.1 (`-`
//! becomes `_`), OPTIONAL fields left out when absent, `AsnSystemTime` as an
//! ISO-8601 UTC string, a CHOICE as an object holding exactly the chosen
//! alternative (`{"stringdata": "..."}`), NULL as `null`.
//!
//! Decoding reads what estos's runtime reads: members it does not know
//! (`_type`, or a newer peer's) are ignored, every mandatory one is
//! insisted on; a CHOICE takes the first of its alternatives present and
//! ignores other members (`_type`); `AsnOptionalParameters` and
//! `AsnSystemTime` in every form the runtime reads (see their types).

use std::fmt;

use chrono::{DateTime, Utc};
use ews_toolkit::secret::Secret;
use serde::{Deserialize, Serialize};

/// A ROSE operation: its name, and the number the server dispatches on.
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

/// Looks an operation up by its name (what the runtime does for an invoke
/// with `operationID` 0, cpp-runtime/SnaccROSEBase.cpp:770-771).
pub fn operation_by_name(name: &str) -> Option<Operation> {
    KNOWN_OPERATIONS.iter().copied().find(|op| op.name == name)
}

/// Looks an operation up by the number the runtime dispatches on.
pub fn operation_by_id(id: i64) -> Option<Operation> {
    KNOWN_OPERATIONS.iter().copied().find(|op| op.id == id)
}

/// Data source string the EWS Calendar Replicator writes with.
pub const DATA_SOURCE_EWS: &str = "EWS";

/// `AsnSystemTime` in JSON. We write what estos's runtime writes on
/// Windows, an ISO-8601 UTC string with a `Z` (cpp-runtime/asn-systemtime.cpp:68),
/// always in whole seconds. Reading takes what the runtime reads
/// (asn-systemtime.cpp:160-178): a number, the Windows variant time (days
/// since 1899-12-30, also what `true`/`null` convert to), or a string read by
/// `ISO8601ToDATE` (asn-systemtime.cpp:94-132).
pub mod system_time {
    use chrono::{DateTime, Duration, NaiveDate, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_json::Value;

    pub fn serialize<S: Serializer>(time: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&time.to_rfc3339_opts(SecondsFormat::Secs, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let days = match Value::deserialize(d)? {
            Value::Number(n) => n.as_f64().unwrap_or(0.0),
            Value::Bool(b) => f64::from(u8::from(b)),
            Value::Null => 0.0,
            Value::String(text) => iso8601_to_variant_days(&text),
            other => {
                return Err(serde::de::Error::custom(format!(
                    "AsnSystemTime must be an ISO-8601 date-time such as 2024-05-01T08:00:00Z or a variant time number, got {other}"
                )))
            }
        };
        from_variant_days(days).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "AsnSystemTime {days} (days since 1899-12-30) is out of range"
            ))
        })
    }

    fn epoch() -> DateTime<Utc> {
        NaiveDate::from_ymd_opt(1899, 12, 30)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .expect("valid date")
            .and_utc()
    }

    /// The time of a Windows variant time (days since 1899-12-30).
    pub fn from_variant_days(days: f64) -> Option<DateTime<Utc>> {
        let millis = (days * 86_400_000.0).round();
        if !millis.is_finite() || millis.abs() > 1e15 {
            return None;
        }
        epoch().checked_add_signed(Duration::milliseconds(millis as i64))
    }

    /// `ISO8601ToDATE` of asn-systemtime.cpp:94-132: a 20-character text is
    /// scanned as `%04hu-%02hu-%02huT%02hu:%02hu:%02huZ`, a longer one with
    /// fractional seconds (`%f`); scanning stops at the first mismatch, so
    /// whatever follows the seconds (an offset such as `+02:00`) is ignored;
    /// anything shorter, or without year, month and day, or not a valid
    /// date, is 0 (1899-12-30T00:00:00Z).
    pub fn iso8601_to_variant_days(text: &str) -> f64 {
        let len = text.len();
        if len < 20 {
            return 0.0;
        }
        let mut scan = Scanf(text.as_bytes());
        let mut fields = [0u32; 5];
        let separators = [b'-', b'-', b'T', b':', b':'];
        let mut seconds = 0.0f64;
        'scan: {
            for (index, field) in fields.iter_mut().enumerate() {
                let width = if index == 0 { 4 } else { 2 };
                match scan.unsigned(width) {
                    Some(v) => *field = v,
                    None => break 'scan,
                }
                if !scan.literal(separators[index]) {
                    break 'scan;
                }
            }
            seconds = if len == 20 {
                scan.unsigned(2).map(f64::from).unwrap_or(0.0)
            } else {
                scan.float().unwrap_or(0.0)
            };
        }
        let [year, month, day, hour, minute] = fields;
        if year == 0 || month == 0 || day == 0 {
            return 0.0;
        }
        let whole = seconds.trunc();
        let millis = ((seconds - whole) * 1000.0).round() as i64;
        let Some(time) = NaiveDate::from_ymd_opt(year as i32, month, day)
            .and_then(|d| d.and_hms_opt(hour, minute, whole as u32))
            .map(|t| t.and_utc() + Duration::milliseconds(millis))
        else {
            return 0.0;
        };
        (time - epoch()).num_milliseconds() as f64 / 86_400_000.0
    }

    /// The few `sscanf` conversions `ISO8601ToDATE` uses.
    struct Scanf<'a>(&'a [u8]);

    impl Scanf<'_> {
        fn skip_space(&mut self) {
            while let [b' ' | b'\t' | b'\n' | b'\r', rest @ ..] = self.0 {
                self.0 = rest;
            }
        }

        fn unsigned(&mut self, width: usize) -> Option<u32> {
            self.skip_space();
            let digits = self
                .0
                .iter()
                .take(width)
                .take_while(|b| b.is_ascii_digit())
                .count();
            if digits == 0 {
                return None;
            }
            let value = std::str::from_utf8(&self.0[..digits]).ok()?.parse().ok()?;
            self.0 = &self.0[digits..];
            Some(value)
        }

        fn literal(&mut self, byte: u8) -> bool {
            match self.0 {
                [first, rest @ ..] if *first == byte => {
                    self.0 = rest;
                    true
                }
                _ => false,
            }
        }

        fn float(&mut self) -> Option<f64> {
            self.skip_space();
            let mut end = self.0.iter().take_while(|b| b.is_ascii_digit()).count();
            if self.0.get(end) == Some(&b'.') {
                end += 1;
                end += self.0[end..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
            }
            let value = std::str::from_utf8(&self.0[..end]).ok()?.parse().ok()?;
            self.0 = &self.0[end..];
            Some(value)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use chrono::TimeZone;

        fn read(value: Value) -> DateTime<Utc> {
            deserialize(value).unwrap()
        }

        #[test]
        fn the_runtime_forms_of_asn_system_time_read_as_it_reads_them() {
            let t = |y, mo, d, h, mi, s| Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap();
            // asn-systemtime.cpp:102-110, 20 characters.
            assert_eq!(
                read("2024-05-06T09:30:15Z".into()),
                t(2024, 5, 6, 9, 30, 15)
            );
            // asn-systemtime.cpp:111-126, fractional seconds.
            assert_eq!(
                read("2024-05-06T09:30:15.5Z".into()),
                t(2024, 5, 6, 9, 30, 15) + Duration::milliseconds(500)
            );
            // The scan stops at the offset: it is ignored, not applied.
            assert_eq!(
                read("2024-05-06T09:30:15+02:00".into()),
                t(2024, 5, 6, 9, 30, 15)
            );
            // asn-systemtime.cpp:163-166, a variant time number.
            assert_eq!(read(serde_json::json!(45418.5)), t(2024, 5, 6, 12, 0, 0));
            // Too short, or no date: 0.
            assert_eq!(read("next monday".into()), t(1899, 12, 30, 0, 0, 0));
            assert_eq!(
                read("this is not a date at all".into()),
                t(1899, 12, 30, 0, 0, 0)
            );
            assert!(deserialize(serde_json::json!({})).is_err());
        }
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

/// `AsnOptionalParam`: a typed key/value pair (the array form's element).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsnOptionalParam {
    pub key: String,
    pub value: AsnOptionalParamValue,
}

/// The `value` CHOICE of `AsnOptionalParam`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AsnOptionalParamValue {
    /// `stringdata`
    String(String),
    /// `binarydata`: OCTET STRING, base64 in JSON.
    Binary(String),
    /// `integerdata`
    Integer(i64),
}

/// Written as estos's runtime writes it (cpp-runtime/asn-optionalparam.cpp:455-476):
/// a string or an integer bare, binary data as `{"binarydata": ...}`.
impl Serialize for AsnOptionalParamValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            AsnOptionalParamValue::String(text) => s.serialize_str(text),
            AsnOptionalParamValue::Integer(value) => s.serialize_i64(*value),
            AsnOptionalParamValue::Binary(data) => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry("binarydata", data)?;
                map.end()
            }
        }
    }
}

/// Read as estos's runtime reads it (asn-optionalparam.cpp:492-548): an
/// object naming the alternative (`stringdata`, `binarydata`, `integerdata`,
/// the first present wins, other members ignored), anything jsoncpp converts
/// to an integer (a number without fraction, `true`/`false`, `null`), or a
/// string.
impl<'de> Deserialize<'de> for AsnOptionalParamValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(d)?;
        let alternative = |name: &str, v: serde_json::Value| -> Result<Self, D::Error> {
            let wrong =
                |e: serde_json::Error| D::Error::custom(format!("AsnOptionalParam {name}: {e}"));
            Ok(match name {
                "stringdata" => {
                    AsnOptionalParamValue::String(String::deserialize(v).map_err(wrong)?)
                }
                "binarydata" => {
                    AsnOptionalParamValue::Binary(String::deserialize(v).map_err(wrong)?)
                }
                _ => AsnOptionalParamValue::Integer(i64::deserialize(v).map_err(wrong)?),
            })
        };
        match value {
            serde_json::Value::Object(mut members) => {
                for name in ["stringdata", "binarydata", "integerdata"] {
                    if let Some(v) = members.remove(name) {
                        return alternative(name, v);
                    }
                }
                Err(D::Error::custom(
                    "AsnOptionalParam value has none of stringdata, binarydata, integerdata",
                ))
            }
            serde_json::Value::String(text) => Ok(AsnOptionalParamValue::String(text)),
            serde_json::Value::Bool(b) => Ok(AsnOptionalParamValue::Integer(i64::from(b))),
            serde_json::Value::Null => Ok(AsnOptionalParamValue::Integer(0)),
            serde_json::Value::Number(n) => n
                .as_i64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() <= i64::MAX as f64)
                        .map(|f| f as i64)
                })
                .map(AsnOptionalParamValue::Integer)
                .ok_or_else(|| D::Error::custom(format!("AsnOptionalParam value {n} is no integer"))),
            serde_json::Value::Array(_) => Err(D::Error::custom(
                "AsnOptionalParam value is an array; expected a string, an integer or {\"binarydata\": ...}",
            )),
        }
    }
}

/// `AsnOptionalParameters`, in the order the peer sent them.
///
/// JSON has two forms (cpp-runtime/asn-optionalparam.cpp:11-31): the old
/// array of `{"key": ..., "value": {"stringdata": ...}}` and the object
/// `{"key": value, ...}`. Both are read (asn-optionalparam.cpp:58-90); the
/// object form is written, as the runtime writes it (asn-optionalparam.cpp:34-56;
/// jsoncpp keeps members sorted by key, and of two equal keys the first wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AsnOptionalParameters(pub Vec<AsnOptionalParam>);

impl AsnOptionalParameters {
    /// The value of `key`, the first when it appears more than once.
    pub fn get(&self, key: &str) -> Option<&AsnOptionalParamValue> {
        self.0.iter().find(|p| p.key == key).map(|p| &p.value)
    }
}

impl Serialize for AsnOptionalParameters {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut sorted = std::collections::BTreeMap::new();
        for param in &self.0 {
            sorted.entry(param.key.as_str()).or_insert(&param.value);
        }
        sorted.serialize(s)
    }
}

impl<'de> Deserialize<'de> for AsnOptionalParameters {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = AsnOptionalParameters;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "optionalParams as an array of {key, value} or an object {\"key\": value}",
                )
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut params = Vec::new();
                while let Some(param) = seq.next_element::<AsnOptionalParam>()? {
                    params.push(param);
                }
                Ok(AsnOptionalParameters(params))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut params = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, AsnOptionalParamValue>()? {
                    params.push(AsnOptionalParam { key, value });
                }
                Ok(AsnOptionalParameters(params))
            }
        }
        d.deserialize_any(Visitor)
    }
}

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

/// The `adminPassword` CHOICE of `AsnAdminLoginArgument`; the password is
/// a [`Secret`] (zeroed when dropped).
#[derive(Clone, PartialEq, Eq, Serialize)]
pub enum AdminPassword {
    #[serde(rename = "u8sAdminPassword", serialize_with = "serialize_secret")]
    Plain(Secret),
    #[serde(
        rename = "u8sAdminPasswordCrypted",
        serialize_with = "serialize_secret"
    )]
    Crypted(Secret),
}

/// Writes a secret into a message; only called while encoding the message
/// that carries it.
pub(crate) fn serialize_secret<S: serde::Serializer>(
    secret: &Secret,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(secret.expose())
}

impl<'de> Deserialize<'de> for AdminPassword {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (name, value) = super::rose::choice(
            d,
            "adminPassword",
            &["u8sAdminPassword", "u8sAdminPasswordCrypted"],
        )?;
        let text = Secret::deserialize(value).map_err(serde::de::Error::custom)?;
        Ok(match name {
            "u8sAdminPassword" => AdminPassword::Plain(text),
            _ => AdminPassword::Crypted(text),
        })
    }
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
        match self
            .optional_params
            .as_ref()?
            .get(OPTIONAL_PARAM_LOCATION)?
        {
            AsnOptionalParamValue::String(s) => Some(s.as_str()),
            _ => None,
        }
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
