//! objectGUID values: AD stores 16 bytes whose first three fields are
//! little-endian (Microsoft's GUID layout); people and the UCServer use the
//! registry-style string `{6F9619FF-8B86-D011-B42D-00C04FC964FF}`.

use std::fmt;
use std::str::FromStr;

/// An Active Directory objectGUID.
///
/// Displays in registry form: upper-case hex, with braces
/// (`{6F9619FF-8B86-D011-B42D-00C04FC964FF}`), the form the estos UCServer
/// stores in its user profiles. Parsing accepts upper or lower case, with or
/// without braces.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectGuid([u8; 16]);

impl ObjectGuid {
    /// From the 16 bytes of the `objectGUID` attribute, as AD sends them.
    pub fn from_ad_bytes(bytes: &[u8]) -> Option<Self> {
        Some(Self(bytes.try_into().ok()?))
    }

    /// The 16 bytes as AD stores them (for search filters).
    pub fn ad_bytes(&self) -> [u8; 16] {
        self.0
    }

    /// An LDAP filter value matching this GUID: every byte `\xx`-escaped.
    pub fn filter_value(&self) -> String {
        self.0.iter().map(|b| format!("\\{b:02x}")).collect()
    }
}

impl fmt::Display for ObjectGuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{{{:02X}{:02X}{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}{:02X}{:02X}{:02X}{:02X}}}",
            b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
        )
    }
}

impl fmt::Debug for ObjectGuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectGuid({self})")
    }
}

/// A string that is not a GUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a GUID; expected the form {{6F9619FF-8B86-D011-B42D-00C04FC964FF}} (braces optional)")]
pub struct InvalidGuid(pub String);

impl FromStr for ObjectGuid {
    type Err = InvalidGuid;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidGuid(s.to_owned());
        let trimmed = s.trim();
        let inner = trimmed
            .strip_prefix('{')
            .and_then(|t| t.strip_suffix('}'))
            .unwrap_or(trimmed);
        let groups: Vec<&str> = inner.split('-').collect();
        let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
        if lengths != [8, 4, 4, 4, 12] {
            return Err(invalid());
        }
        let hex: String = groups.concat();
        let mut text = [0u8; 16];
        for (i, byte) in text.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(invalid)?, 16)
                .map_err(|_| invalid())?;
        }
        // text order -> AD byte order: the first three fields are little-endian
        let order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
        let mut bytes = [0u8; 16];
        for (ad_index, text_index) in order.iter().enumerate() {
            bytes[ad_index] = text[*text_index];
        }
        Ok(Self(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Microsoft's documented example: the bytes FF 19 96 6F 86 8B 11 D0 B4 2D
    // 00 C0 4F C9 64 FF are {6F9619FF-8B86-D011-B42D-00C04FC964FF}.
    const AD_BYTES: [u8; 16] = [
        0xFF, 0x19, 0x96, 0x6F, 0x86, 0x8B, 0x11, 0xD0, 0xB4, 0x2D, 0x00, 0xC0, 0x4F, 0xC9, 0x64,
        0xFF,
    ];

    #[test]
    fn formats_ad_bytes_in_registry_form() {
        let guid = ObjectGuid::from_ad_bytes(&AD_BYTES).unwrap();
        assert_eq!(guid.to_string(), "{6F9619FF-8B86-D011-B42D-00C04FC964FF}");
    }

    #[test]
    fn parses_with_or_without_braces_in_any_case() {
        let expected = ObjectGuid::from_ad_bytes(&AD_BYTES).unwrap();
        for text in [
            "{6F9619FF-8B86-D011-B42D-00C04FC964FF}",
            "6f9619ff-8b86-d011-b42d-00c04fc964ff",
            " {6f9619ff-8B86-D011-B42D-00C04FC964FF} ",
        ] {
            assert_eq!(text.parse::<ObjectGuid>().unwrap(), expected, "{text}");
        }
    }

    #[test]
    fn rejects_malformed_text_naming_it() {
        for text in [
            "",
            "6F9619FF8B86D011B42D00C04FC964FF",
            "{6F9619FF-8B86-D011-B42D-00C04FC964FG}",
        ] {
            let err = text.parse::<ObjectGuid>().unwrap_err();
            assert!(err.to_string().contains("is not a GUID"), "{err}");
        }
    }

    #[test]
    fn filter_value_escapes_every_byte_in_ad_order() {
        let guid = ObjectGuid::from_ad_bytes(&AD_BYTES).unwrap();
        assert_eq!(
            guid.filter_value(),
            "\\ff\\19\\96\\6f\\86\\8b\\11\\d0\\b4\\2d\\00\\c0\\4f\\c9\\64\\ff"
        );
    }

    #[test]
    fn wrong_length_is_not_a_guid() {
        assert!(ObjectGuid::from_ad_bytes(&AD_BYTES[..15]).is_none());
    }
}
