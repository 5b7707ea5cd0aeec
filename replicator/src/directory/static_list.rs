//! A directory without a server: users and their mailboxes from a TOML file
//! (`[directory] kind = "static"`), for sites without Active Directory and
//! for the demo. UCServer users are matched to its entries exactly as to AD
//! users (objectGUID, then DN, then sAMAccountName).
//!
//! TOML rather than CSV: distinguished names contain commas, which CSV would
//! need quoted (a classic mistake in hand-edited files); TOML needs no
//! quoting rules beyond its strings, allows comments, and its parser names
//! the line of every syntax error. The format:
//!
//! ```toml
//! # One [[user]] per person. At least one of object_guid, dn and
//! # sam_account_name: they are compared with the UCServer user's values.
//! [[user]]
//! object_guid = "{6F9619FF-8B86-D011-B42D-00C04FC964FF}"  # braces optional
//! dn = "CN=Alice Smith,OU=Staff,DC=example,DC=com"  # 'single quotes' keep a backslash (CN=Smith\, Alice)
//! sam_account_name = "alice"
//! smtp = "alice@example.com"  # the mailbox; without it the user is reported as having none
//! ```
//!
//! A file-based directory re-reads the file for every cycle, so edits apply
//! without a restart; an edit that breaks the file fails that cycle (nothing
//! is written) with the line at fault.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

use super::error::DirectoryError;
use super::guid::ObjectGuid;
use super::user::{normalize_dn, sam_without_domain, DirectoryUser, UserIndex, UserKey};
use super::UserDirectory;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListFile {
    #[serde(default)]
    user: Vec<Spanned<Row>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    object_guid: Option<Spanned<String>>,
    dn: Option<Spanned<String>>,
    sam_account_name: Option<Spanned<String>>,
    smtp: Option<Spanned<String>>,
}

/// Where the users come from.
#[derive(Debug, Clone)]
enum Source {
    File(PathBuf),
    Fixed(Vec<DirectoryUser>),
}

/// A [`UserDirectory`] from a static list.
#[derive(Debug, Clone)]
pub struct StaticDirectory {
    source: Source,
}

impl StaticDirectory {
    /// Reads and checks `path` now (so start-up fails on a broken file);
    /// the file is read again for every [`UserDirectory::users`] call.
    pub fn from_file(path: impl Into<PathBuf>) -> Result<Self, DirectoryError> {
        let path = path.into();
        read_file(&path)?;
        Ok(StaticDirectory {
            source: Source::File(path),
        })
    }

    /// A fixed list (the demo's generated organisation).
    pub fn from_users(users: Vec<DirectoryUser>) -> Self {
        StaticDirectory {
            source: Source::Fixed(users),
        }
    }

    /// Parses the TOML text of a user list; `name` (the file) is used in
    /// errors.
    pub fn parse(text: &str, name: &str) -> Result<Vec<DirectoryUser>, DirectoryError> {
        parse_list(text, name)
    }

    fn load(&self) -> Result<Vec<DirectoryUser>, DirectoryError> {
        match &self.source {
            Source::File(path) => read_file(path),
            Source::Fixed(users) => Ok(users.clone()),
        }
    }
}

impl UserDirectory for StaticDirectory {
    async fn users(&self) -> Result<Vec<DirectoryUser>, DirectoryError> {
        self.load()
    }

    async fn find_user(&self, key: &UserKey) -> Result<Option<DirectoryUser>, DirectoryError> {
        let empty = match key {
            UserKey::ObjectGuid(_) => false,
            UserKey::Dn(v)
            | UserKey::SamAccountName(v)
            | UserKey::UserPrincipalName(v)
            | UserKey::SmtpAddress(v) => v.trim().is_empty(),
        };
        if empty {
            return Ok(None);
        }
        Ok(UserIndex::new(self.load()?).get(key).cloned())
    }
}

fn read_file(path: &Path) -> Result<Vec<DirectoryUser>, DirectoryError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| DirectoryError::StaticList {
        location: name.clone(),
        message: format!("cannot be read: {e}"),
    })?;
    parse_list(&text, &name)
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .unwrap_or(text)
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

fn parse_list(text: &str, name: &str) -> Result<Vec<DirectoryUser>, DirectoryError> {
    let error_at = |offset: usize, message: String| DirectoryError::StaticList {
        location: format!("{name} line {}", line_of(text, offset)),
        message,
    };
    let file: ListFile = toml::from_str(text).map_err(|e| match e.span() {
        Some(span) => error_at(
            span.start,
            format!(
                "{} (expected [[user]] tables with object_guid, dn, sam_account_name and smtp)",
                e.message().trim()
            ),
        ),
        None => DirectoryError::StaticList {
            location: name.to_owned(),
            message: e.message().trim().to_owned(),
        },
    })?;
    if file.user.is_empty() {
        return Err(DirectoryError::StaticList {
            location: name.to_owned(),
            message: "contains no [[user]] entries; add one per user whose calendar is replicated"
                .into(),
        });
    }

    let mut users = Vec::with_capacity(file.user.len());
    // Key -> line of the first entry with it, to name both duplicates.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for entry in &file.user {
        let row = entry.get_ref();
        let entry_line = line_of(text, entry.span().start);
        let value = |field: &Option<Spanned<String>>| {
            field
                .as_ref()
                .map(|v| (v.get_ref().trim().to_owned(), v.span().start))
                .filter(|(v, _)| !v.is_empty())
        };
        let guid = value(&row.object_guid);
        let dn = value(&row.dn);
        let sam = value(&row.sam_account_name);
        let smtp = value(&row.smtp);
        if guid.is_none() && dn.is_none() && sam.is_none() {
            return Err(error_at(
                entry.span().start,
                "this [[user]] has none of object_guid, dn and sam_account_name; at least one is needed to match it to a UCServer user".into(),
            ));
        }
        let object_guid = match &guid {
            Some((text, offset)) => text
                .parse::<ObjectGuid>()
                .map_err(|e| error_at(*offset, format!("object_guid: {e}")))?,
            None => synthetic_guid(
                dn.as_ref().map(|d| d.0.as_str()),
                sam.as_ref().map(|s| s.0.as_str()),
            ),
        };
        if let Some((address, offset)) = &smtp {
            let valid = address.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && (domain.contains('.') || domain == "localhost")
            }) && !address.contains(char::is_whitespace);
            if !valid {
                return Err(error_at(
                    *offset,
                    format!("smtp {address:?} is not an e-mail address; expected the primary SMTP address of the mailbox, like alice@example.com"),
                ));
            }
        }
        let keys = [
            guid.as_ref()
                .map(|(_, o)| (format!("object_guid {object_guid}"), *o)),
            dn.as_ref()
                .map(|(d, o)| (format!("dn {}", normalize_dn(d)), *o)),
            sam.as_ref().map(|(s, o)| {
                (
                    format!("sam_account_name {}", sam_without_domain(s).to_lowercase()),
                    *o,
                )
            }),
        ];
        for (key, offset) in keys.into_iter().flatten() {
            if let Some(first) = seen.insert(key.clone(), entry_line) {
                return Err(error_at(
                    offset,
                    format!("the {key} is already used by the [[user]] at line {first}; each user may appear once"),
                ));
            }
        }
        users.push(DirectoryUser {
            object_guid,
            dn: dn.map(|d| d.0).unwrap_or_default(),
            // As AD stores it: without a `DOMAIN\` prefix.
            sam_account_name: sam.map(|s| sam_without_domain(&s.0).to_owned()),
            user_principal_name: None,
            smtp_addresses: smtp.iter().map(|s| s.0.clone()).collect(),
            primary_smtp: smtp.map(|s| s.0),
            home_mdb: None,
        });
    }
    Ok(users)
}

/// The objectGUID of an entry without one: derived from its DN and
/// sAMAccountName, so it is stable, and (being a hash) never equal to a
/// real objectGUID, so such entries match by DN or sAMAccountName only.
fn synthetic_guid(dn: Option<&str>, sam: Option<&str>) -> ObjectGuid {
    let mut hasher = Sha256::new();
    hasher.update(b"static-user-list\0");
    hasher.update(dn.map(normalize_dn).unwrap_or_default().as_bytes());
    hasher.update(b"\0");
    hasher.update(
        sam.map(|s| sam_without_domain(s).to_lowercase())
            .unwrap_or_default()
            .as_bytes(),
    );
    let digest = hasher.finalize();
    ObjectGuid::from_ad_bytes(&digest[..16]).expect("16 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = r#"
# two users
[[user]]
object_guid = "{6F9619FF-8B86-D011-B42D-00C04FC964FF}"
dn = 'CN=Smith\, Alice,OU=Staff,DC=example,DC=com'
sam_account_name = "alice"
smtp = "alice@example.com"

[[user]]
sam_account_name = "bob"
"#;

    fn parse_err(text: &str) -> String {
        StaticDirectory::parse(text, "users.toml")
            .unwrap_err()
            .to_string()
    }

    #[tokio::test]
    async fn users_are_found_by_guid_dn_and_sam_like_ad_users() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        std::fs::write(&path, LIST).unwrap();
        let directory = StaticDirectory::from_file(&path).unwrap();
        let users = directory.users().await.unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].primary_smtp.as_deref(), Some("alice@example.com"));
        assert!(!users[1].has_mailbox());

        let index = UserIndex::new(users.clone());
        let by_guid = UserKey::object_guid("6f9619ff-8b86-d011-b42d-00c04fc964ff").unwrap();
        let by_dn = UserKey::Dn("cn=smith\\, alice, ou=staff,dc=example,dc=com".into());
        let by_sam = UserKey::SamAccountName("EXAMPLE\\Bob".into());
        assert_eq!(index.get(&by_guid), Some(&users[0]));
        assert_eq!(index.get(&by_dn), Some(&users[0]));
        assert_eq!(index.get(&by_sam), Some(&users[1]));
        assert_eq!(
            directory.find_user(&by_sam).await.unwrap().as_ref(),
            Some(&users[1])
        );
        // bob has no DN: an empty DN never finds him.
        assert_eq!(
            directory.find_user(&UserKey::Dn(" ".into())).await.unwrap(),
            None
        );

        // Edits apply on the next read; a broken edit is an error, not an empty list.
        std::fs::write(&path, LIST.replace("bob", "robert")).unwrap();
        let names: Vec<_> = directory
            .users()
            .await
            .unwrap()
            .into_iter()
            .filter_map(|u| u.sam_account_name)
            .collect();
        assert_eq!(names, ["alice", "robert"]);
        std::fs::write(&path, "[[user]\n").unwrap();
        assert!(directory.users().await.is_err());
    }

    #[test]
    fn errors_name_the_file_the_line_and_the_fix() {
        let cases = [
            ("[[user]]\nsam = \"a\"\n", "line 2", "sam"),
            (
                "[[user]]\nsmtp = \"a@x.example\"\n",
                "line 1",
                "at least one is needed",
            ),
            (
                "[[user]]\nsam_account_name = \"a\"\nobject_guid = \"1234\"\n",
                "line 3",
                "is not a GUID",
            ),
            (
                "[[user]]\nsam_account_name = \"a\"\nsmtp = \"not an address\"\n",
                "line 3",
                "not an e-mail address",
            ),
            (
                "[[user]]\nsam_account_name = \"a\"\n[[user]]\nsam_account_name = \"DOM\\\\A\"\n",
                "line 4",
                "already used by the [[user]] at line 1",
            ),
            (
                "[[user]]\ndn = \"CN=A,DC=x\"\n[[user]]\ndn = \"cn=a, dc=x\"\n",
                "line 4",
                "already used",
            ),
            ("# nothing\n", "users.toml", "no [[user]] entries"),
            ("[[user]\n", "line 1", ""),
        ];
        for (text, location, message) in cases {
            let err = parse_err(text);
            assert!(err.starts_with("user list users.toml"), "{err}");
            assert!(err.contains(location), "{text:?}: {err}");
            assert!(err.contains(message), "{text:?}: {err}");
        }
        let missing = StaticDirectory::from_file("/nonexistent/users.toml")
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("/nonexistent/users.toml") && missing.contains("cannot be read"),
            "{missing}"
        );
    }

    #[test]
    fn entries_without_a_guid_get_a_stable_one_of_their_own() {
        let a = StaticDirectory::parse(LIST, "x").unwrap();
        let b = StaticDirectory::parse(LIST, "x").unwrap();
        assert_eq!(a[1].object_guid, b[1].object_guid);
        assert_ne!(a[1].object_guid, a[0].object_guid);
    }
}
