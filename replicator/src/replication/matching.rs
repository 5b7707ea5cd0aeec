//! UCServer users -> directory users: objectGUID first, then DN, then
//! sAMAccountName, each only when the UCServer has a value for it. A user
//! none of these find is reported, never guessed (no fuzzy names, no
//! matching by display name or e-mail).

use crate::directory::{DirectoryUser, ObjectGuid, UserIndex, UserKey};
use crate::ucserver::UserProfile;

use super::report::MatchedBy;

/// The directory user of `profile` and the key that found it, or why none
/// was found.
pub fn match_user<'a>(
    profile: &UserProfile,
    index: &'a UserIndex,
) -> Result<(&'a DirectoryUser, MatchedBy), String> {
    let guid_text = profile.object_guid.trim();
    let guid = (!guid_text.is_empty())
        .then(|| guid_text.parse::<ObjectGuid>())
        .transpose();
    let dn = profile.dn.trim();
    let sam = profile.sam_account_name.trim();

    let keys = [
        (
            guid.as_ref()
                .ok()
                .copied()
                .flatten()
                .map(UserKey::ObjectGuid),
            MatchedBy::ObjectGuid,
        ),
        (
            (!dn.is_empty()).then(|| UserKey::Dn(dn.to_owned())),
            MatchedBy::Dn,
        ),
        (
            (!sam.is_empty()).then(|| UserKey::SamAccountName(sam.to_owned())),
            MatchedBy::SamAccountName,
        ),
    ];
    for (key, by) in keys {
        if let Some(user) = key.and_then(|key| index.get(&key)) {
            return Ok((user, by));
        }
    }

    let mut tried = Vec::new();
    match guid {
        Ok(Some(guid)) => tried.push(format!("objectGUID {guid}")),
        Ok(None) => {}
        Err(e) => tried.push(format!("objectGUID (unusable: {e})")),
    }
    if !dn.is_empty() {
        tried.push(format!("DN {dn:?}"));
    }
    if !sam.is_empty() {
        tried.push(format!("sAMAccountName {sam:?}"));
    }
    Err(if tried.is_empty() {
        "the UCServer has no objectGUID, DN or sAMAccountName for this user, so it cannot be matched to a directory user".to_owned()
    } else {
        format!(
            "no directory user in scope has the {}; check the directory's base DN, filter and group scoping (or the static user list)",
            tried.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guid(last: u8) -> ObjectGuid {
        let mut bytes = [0x11u8; 16];
        bytes[15] = last;
        ObjectGuid::from_ad_bytes(&bytes).unwrap()
    }

    fn directory_user(last: u8, dn: &str, sam: &str) -> DirectoryUser {
        DirectoryUser {
            object_guid: guid(last),
            dn: dn.into(),
            sam_account_name: Some(sam.into()),
            user_principal_name: None,
            primary_smtp: Some(format!("{sam}@x")),
            smtp_addresses: vec![format!("{sam}@x")],
            home_mdb: None,
        }
    }

    fn profile(guid: &str, dn: &str, sam: &str) -> UserProfile {
        UserProfile {
            user_name: "u".into(),
            dn: dn.into(),
            object_guid: guid.into(),
            sam_account_name: sam.into(),
            sip_uri: String::new(),
            email: None,
            display_name: None,
            enabled: true,
        }
    }

    fn index() -> UserIndex {
        UserIndex::new(vec![
            directory_user(1, "CN=A,DC=x", "a"),
            directory_user(2, "CN=B,DC=x", "b"),
            directory_user(3, "CN=C,DC=x", "c"),
        ])
    }

    #[test]
    fn the_guid_wins_over_dn_and_sam_then_dn_then_sam() {
        let index = index();
        let name = |r: Result<(&DirectoryUser, MatchedBy), String>| {
            let (user, by) = r.unwrap();
            (user.sam_account_name.clone().unwrap(), by)
        };
        // GUID of b, DN of a, sam of c: the GUID decides.
        let by_guid = profile(&guid(2).to_string(), "cn=a, dc=x", "c");
        assert_eq!(
            name(match_user(&by_guid, &index)),
            ("b".into(), MatchedBy::ObjectGuid)
        );
        // Unknown GUID: the DN decides.
        let by_dn = profile(&guid(9).to_string(), "cn=a, dc=x", "c");
        assert_eq!(
            name(match_user(&by_dn, &index)),
            ("a".into(), MatchedBy::Dn)
        );
        let by_sam = profile("", "", "X\\C");
        assert_eq!(
            name(match_user(&by_sam, &index)),
            ("c".into(), MatchedBy::SamAccountName)
        );
    }

    #[test]
    fn unmatched_users_are_explained_and_empty_keys_never_match() {
        let mut users = vec![directory_user(1, "", "")];
        users[0].sam_account_name = Some(String::new());
        let index = UserIndex::new(users);
        let err = match_user(&profile("", "", ""), &index).unwrap_err();
        assert!(err.contains("no objectGUID, DN or sAMAccountName"), "{err}");

        let err = match_user(&profile("not-a-guid", "CN=Z,DC=x", "z"), &self::index()).unwrap_err();
        assert!(err.contains("objectGUID (unusable"), "{err}");
        assert!(err.contains("CN=Z,DC=x") && err.contains("\"z\""), "{err}");
    }
}
