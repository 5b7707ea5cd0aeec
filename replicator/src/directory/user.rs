//! Directory users as the replicator sees them, and the in-memory index that
//! matches UCServer users (who carry DN, sAMAccountName and objectGUID) to
//! them.

use std::collections::HashMap;

use super::guid::{InvalidGuid, ObjectGuid};

/// One user object read from the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    pub object_guid: ObjectGuid,
    /// `distinguishedName`.
    pub dn: String,
    pub sam_account_name: Option<String>,
    pub user_principal_name: Option<String>,
    /// The address the mailbox is opened with; `None`: the user has no mailbox.
    pub primary_smtp: Option<String>,
    /// Every SMTP address of the user (primary, secondary `smtp:` proxy
    /// addresses and `mail`), for matching by address.
    pub smtp_addresses: Vec<String>,
    /// `homeMDB` (Exchange schema; absent on directories without Exchange).
    /// Kept for later use, not interpreted.
    pub home_mdb: Option<String>,
}

impl DirectoryUser {
    pub fn has_mailbox(&self) -> bool {
        self.primary_smtp.is_some()
    }
}

/// The primary SMTP address: the `proxyAddresses` value with the upper-case
/// `SMTP:` prefix (Exchange marks the primary that way, secondaries use
/// `smtp:`); when there is none, `mail`.
pub fn primary_smtp_address(proxy_addresses: &[String], mail: Option<&str>) -> Option<String> {
    proxy_addresses
        .iter()
        .find_map(|value| value.strip_prefix("SMTP:"))
        .map(str::trim)
        .filter(|address| !address.is_empty())
        .or_else(|| mail.map(str::trim).filter(|m| !m.is_empty()))
        .map(str::to_owned)
}

/// Every SMTP address: `smtp:`/`SMTP:` proxy addresses and `mail`, without
/// duplicates (compared case-insensitively), primary first.
pub fn all_smtp_addresses(proxy_addresses: &[String], mail: Option<&str>) -> Vec<String> {
    let mut addresses: Vec<String> = Vec::new();
    let primary = primary_smtp_address(proxy_addresses, mail);
    let secondaries = proxy_addresses.iter().filter_map(|value| {
        let (prefix, address) = value.split_once(':')?;
        prefix
            .eq_ignore_ascii_case("smtp")
            .then_some(address.trim())
    });
    for address in primary
        .iter()
        .map(String::as_str)
        .chain(secondaries)
        .chain(mail)
    {
        let address = address.trim();
        if !address.is_empty() && !addresses.iter().any(|a| a.eq_ignore_ascii_case(address)) {
            addresses.push(address.to_owned());
        }
    }
    addresses
}

/// What a user is looked up by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserKey {
    ObjectGuid(ObjectGuid),
    /// A distinguished name (compared case-insensitively, ignoring spaces
    /// around the RDN separators).
    Dn(String),
    /// `sAMAccountName`, optionally as `DOMAIN\name`.
    SamAccountName(String),
    UserPrincipalName(String),
    /// Any SMTP address of the user, primary or secondary.
    SmtpAddress(String),
}

impl UserKey {
    /// A GUID key from its string form (registry form, braces optional).
    pub fn object_guid(text: &str) -> Result<Self, InvalidGuid> {
        Ok(Self::ObjectGuid(text.parse()?))
    }
}

/// One relative distinguished name: its attribute type and value pairs
/// (lowercased, escapes resolved, sorted: `+` joins them in any order).
type Rdn = Vec<(String, String)>;

/// Parses a DN (RFC 4514) into its RDNs, first (leaf) to last (root);
/// `None` when it is malformed (an unfinished escape, a pair without `=`).
fn parse_dn(dn: &str) -> Option<Vec<Rdn>> {
    let mut rdns = Vec::new();
    let mut rdn: Rdn = Vec::new();
    let mut attribute = String::new();
    // Value bytes, and how many of them end in escaped (kept) spaces.
    let mut value: Vec<u8> = Vec::new();
    let mut kept = 0usize;
    let mut in_value = false;
    let bytes = dn.trim().as_bytes();
    let mut i = 0;
    let finish_pair =
        |attribute: &mut String, value: &mut Vec<u8>, kept: usize, rdn: &mut Rdn| -> Option<()> {
            let name = attribute.trim().to_ascii_lowercase();
            if name.is_empty() {
                return None;
            }
            // Unescaped spaces around a value do not belong to it.
            let start = value.iter().take_while(|b| **b == b' ').count();
            let mut end = value.len();
            while end > start.max(kept) && value[end - 1] == b' ' {
                end -= 1;
            }
            let text = String::from_utf8(value[start..end].to_vec()).ok()?;
            rdn.push((name, text.to_lowercase()));
            attribute.clear();
            value.clear();
            Some(())
        };
    while i < bytes.len() {
        let b = bytes[i];
        if !in_value {
            match b {
                b'=' => in_value = true,
                b',' | b'+' | b'\\' => return None,
                _ => attribute.push(b as char),
            }
            i += 1;
            continue;
        }
        match b {
            b'\\' => {
                let next = *bytes.get(i + 1)?;
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(next), bytes.get(i + 2).and_then(|c| hex(*c))) {
                    (Some(high), Some(low)) => {
                        value.push((high * 16 + low) as u8);
                        i += 3;
                    }
                    _ => {
                        value.push(next);
                        i += 2;
                    }
                }
                kept = value.len();
            }
            b',' | b'+' => {
                finish_pair(&mut attribute, &mut value, kept, &mut rdn)?;
                kept = 0;
                in_value = false;
                if b == b',' {
                    rdn.sort();
                    rdns.push(std::mem::take(&mut rdn));
                }
                i += 1;
            }
            _ => {
                value.push(b);
                i += 1;
            }
        }
    }
    if !in_value {
        return if rdns.is_empty() && rdn.is_empty() && attribute.trim().is_empty() {
            Some(rdns)
        } else {
            None
        };
    }
    finish_pair(&mut attribute, &mut value, kept, &mut rdn)?;
    rdn.sort();
    rdns.push(rdn);
    Some(rdns)
}

/// Whether `dn` is `base` or below it, compared RDN by RDN (attribute types
/// and values without regard to case, escapes resolved), so that an escaped
/// separator (`CN=x\,DC=corp,DC=com`) or a value ending like the base
/// (`OU=xDC=corp,...`) is not mistaken for a place inside the base. A DN
/// that does not parse is in no base.
pub(crate) fn dn_is_within(dn: &str, base: &str) -> bool {
    let (Some(dn), Some(base)) = (parse_dn(dn), parse_dn(base)) else {
        return false;
    };
    dn.len() >= base.len() && dn[dn.len() - base.len()..] == base[..]
}

/// A DN in a form that compares equal however case and separator spacing
/// differ (`CN=Alice, OU=Staff` equals `cn=alice,ou=staff`).
pub fn normalize_dn(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    let mut chars = dn.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push('\\');
                if let Some(next) = chars.next() {
                    out.extend(next.to_lowercase());
                }
            }
            ',' | '=' | '+' => {
                while out.ends_with(' ') && !out.ends_with("\\ ") {
                    out.pop();
                }
                out.push(c);
                while chars.peek() == Some(&' ') {
                    chars.next();
                }
            }
            _ => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// `DOMAIN\name` -> `name`; the name itself otherwise.
fn strip_domain(sam: &str) -> &str {
    sam.rsplit_once('\\').map_or(sam, |(_, name)| name)
}

/// Users indexed by every lookup key, built from one read of the directory.
#[derive(Debug, Clone, Default)]
pub struct UserIndex {
    users: Vec<DirectoryUser>,
    by_guid: HashMap<ObjectGuid, usize>,
    by_dn: HashMap<String, usize>,
    by_sam: HashMap<String, usize>,
    by_upn: HashMap<String, usize>,
    by_smtp: HashMap<String, usize>,
}

impl UserIndex {
    pub fn new(users: Vec<DirectoryUser>) -> Self {
        let mut index = Self::default();
        for (i, user) in users.iter().enumerate() {
            index.by_guid.insert(user.object_guid, i);
            index.by_dn.insert(normalize_dn(&user.dn), i);
            if let Some(sam) = &user.sam_account_name {
                index.by_sam.insert(sam.to_lowercase(), i);
            }
            if let Some(upn) = &user.user_principal_name {
                index.by_upn.insert(upn.to_lowercase(), i);
            }
            for address in &user.smtp_addresses {
                index.by_smtp.entry(address.to_lowercase()).or_insert(i);
            }
        }
        index.users = users;
        index
    }

    pub fn get(&self, key: &UserKey) -> Option<&DirectoryUser> {
        let position = match key {
            UserKey::ObjectGuid(guid) => self.by_guid.get(guid),
            UserKey::Dn(dn) => self.by_dn.get(&normalize_dn(dn)),
            UserKey::SamAccountName(sam) => self.by_sam.get(&strip_domain(sam).to_lowercase()),
            UserKey::UserPrincipalName(upn) => self.by_upn.get(&upn.trim().to_lowercase()),
            UserKey::SmtpAddress(address) => {
                let address = address.trim();
                let address = address
                    .get(..5)
                    .filter(|p| p.eq_ignore_ascii_case("smtp:"))
                    .map_or(address, |_| &address[5..]);
                self.by_smtp.get(&address.to_lowercase())
            }
        }?;
        self.users.get(*position)
    }

    pub fn users(&self) -> &[DirectoryUser] {
        &self.users
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// Strips a `DOMAIN\` prefix from a sAMAccountName lookup value.
pub(crate) fn sam_without_domain(sam: &str) -> &str {
    strip_domain(sam)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn primary_is_the_upper_case_smtp_proxy_address_wherever_it_is_listed() {
        let proxies = strings(&[
            "smtp:alias@corp.example",
            "X500:/o=x",
            "SMTP:Primary@corp.example",
        ]);
        assert_eq!(
            primary_smtp_address(&proxies, Some("mail@corp.example")).as_deref(),
            Some("Primary@corp.example")
        );
    }

    #[test]
    fn mail_is_used_when_no_proxy_address_is_primary() {
        let proxies = strings(&["smtp:alias@corp.example"]);
        assert_eq!(
            primary_smtp_address(&proxies, Some("mail@corp.example")).as_deref(),
            Some("mail@corp.example")
        );
        assert_eq!(primary_smtp_address(&[], None), None);
        assert_eq!(primary_smtp_address(&[], Some("  ")), None);
    }

    #[test]
    fn all_addresses_list_primary_first_without_duplicates() {
        let proxies = strings(&["smtp:a@x", "SMTP:P@x", "x400:c=us", "smtp:p@X"]);
        assert_eq!(all_smtp_addresses(&proxies, Some("a@x")), ["P@x", "a@x"]);
    }

    #[test]
    fn dn_scope_compares_rdns_not_text() {
        let base = "DC=corp,DC=example,DC=com";
        for (dn, within) in [
            ("CN=Alice,OU=Staff,DC=corp,DC=example,DC=com", true),
            ("cn=alice, ou=staff , dc=CORP,dc=Example,DC=COM", true),
            (base, true),
            // An escaped comma is part of the value: the DN is under
            // DC=example,DC=com, not under DC=corp.
            ("CN=evil\\,DC=corp,DC=example,DC=com", false),
            ("CN=evil\\2CDC=corp,DC=example,DC=com", false),
            // A value that ends like the base's first RDN.
            ("CN=a,OU=xDC=corp,DC=example,DC=com", false),
            ("CN=a,DC=notcorp,DC=example,DC=com", false),
            ("CN=a,DC=corp,DC=example,DC=com,DC=evil", false),
            ("DC=example,DC=com", false),
            // Escapes of the same character compare equal.
            ("CN=a,DC=c\\6Frp,DC=example,DC=com", true),
            // A multi-valued RDN's order does not matter, nor the case of
            // its types.
            ("CN=a+UID=1,DC=corp,DC=example,DC=com", true),
            // Malformed: never within.
            ("CN=a,DC=corp,DC=example,DC=com\\", false),
            ("CN=a,noequals,DC=corp,DC=example,DC=com", false),
        ] {
            assert_eq!(dn_is_within(dn, base), within, "{dn}");
        }
        assert!(dn_is_within("CN=x,OU=A+CN=B,DC=corp", "cn=b+ou=a,DC=corp"));
        assert!(!dn_is_within(
            "CN=x,OU=Smith\\, Alice,DC=corp",
            "OU=Alice,DC=corp"
        ));
        assert!(dn_is_within(
            "CN=x,OU=Smith\\, Alice,DC=corp",
            "OU=smith\\2c alice,DC=corp"
        ));
        // Escaped spaces at the ends of a value stay; unescaped ones go.
        assert!(!dn_is_within("CN=x,OU=a\\ ,DC=corp", "OU=a,DC=corp"));
        assert!(dn_is_within("CN=x,OU= a ,DC=corp", "OU=a,DC=corp"));
    }

    #[test]
    fn normalized_dns_ignore_case_and_separator_spaces_but_keep_escapes() {
        assert_eq!(
            normalize_dn(" CN=Alice Smith, OU=Staff ,DC=corp"),
            "cn=alice smith,ou=staff,dc=corp"
        );
        assert_eq!(
            normalize_dn("CN=Smith\\, Alice,DC=corp"),
            "cn=smith\\, alice,dc=corp"
        );
    }

    fn user(guid_last: u8, sam: &str, addresses: &[&str]) -> DirectoryUser {
        let mut bytes = [0u8; 16];
        bytes[15] = guid_last;
        DirectoryUser {
            object_guid: ObjectGuid::from_ad_bytes(&bytes).unwrap(),
            dn: format!("CN={sam},OU=Staff,DC=corp,DC=example"),
            sam_account_name: Some(sam.to_owned()),
            user_principal_name: Some(format!("{sam}@corp.example")),
            primary_smtp: addresses.first().map(|a| a.to_string()),
            smtp_addresses: strings(addresses),
            home_mdb: None,
        }
    }

    #[test]
    fn index_finds_users_by_every_key() {
        let index = UserIndex::new(vec![
            user(1, "alice", &["alice@corp.example", "a@corp.example"]),
            user(2, "bob", &[]),
        ]);
        let bob_guid = index.users()[1].object_guid;
        let cases = [
            (UserKey::ObjectGuid(bob_guid), "bob"),
            (
                UserKey::Dn("cn=ALICE, ou=staff,dc=corp,dc=example".into()),
                "alice",
            ),
            (UserKey::SamAccountName("CORP\\Bob".into()), "bob"),
            (
                UserKey::UserPrincipalName("Alice@Corp.Example".into()),
                "alice",
            ),
            (UserKey::SmtpAddress("A@corp.example".into()), "alice"),
            (
                UserKey::SmtpAddress("SMTP:alice@corp.example".into()),
                "alice",
            ),
        ];
        for (key, expected) in cases {
            let found = index
                .get(&key)
                .unwrap_or_else(|| panic!("{key:?} not found"));
            assert_eq!(found.sam_account_name.as_deref(), Some(expected), "{key:?}");
        }
        assert!(index
            .get(&UserKey::SmtpAddress("nobody@corp.example".into()))
            .is_none());
        assert!(index
            .get(&UserKey::SamAccountName("carol".into()))
            .is_none());
    }
}
