//! The simulator's user database: from a JSON file or generated from a seed.

use std::fmt;
use std::path::Path;

use ews_toolkit::sim::rng::SplitMix64;
use serde::{Deserialize, Serialize};

/// One UCServer user.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimUser {
    /// UCServer user name (login name and `u8sOwner`).
    pub user_name: String,
    pub display_name: String,
    pub dn: String,
    pub object_guid: String,
    pub sam_account_name: String,
    pub sip_uri: String,
    pub email: String,
    /// Whether a client of the user is logged in.
    #[serde(default)]
    pub online: bool,
    /// Whether the user may call `asnAdminLogin`.
    #[serde(default)]
    pub admin: bool,
    /// Password for createsession / asnAdminLogin; users without one cannot
    /// log in.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default = "enabled_default")]
    pub enabled: bool,
}

fn enabled_default() -> bool {
    true
}

impl fmt::Debug for SimUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimUser")
            .field("user_name", &self.user_name)
            .field("dn", &self.dn)
            .field("online", &self.online)
            .field("admin", &self.admin)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// The users of a simulated UCServer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserDatabase {
    pub users: Vec<SimUser>,
}

#[derive(Debug, thiserror::Error)]
pub enum UserDatabaseError {
    #[error("cannot read the user database {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("user database {path} is not valid: {source} (expected {{\"users\": [{{\"user_name\": ..., \"display_name\": ..., \"dn\": ..., \"object_guid\": ..., \"sam_account_name\": ..., \"sip_uri\": ..., \"email\": ..., \"online\": false, \"admin\": false, \"password\": null}}]}})")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("user database: user name {0:?} appears twice (user names are case-insensitive)")]
    Duplicate(String),
}

impl UserDatabase {
    /// Reads a JSON user database (`{"users": [...]}`).
    pub fn from_json_file(path: &Path) -> Result<Self, UserDatabaseError> {
        let display = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| UserDatabaseError::Read {
            path: display.clone(),
            source,
        })?;
        let db: UserDatabase =
            serde_json::from_str(&text).map_err(|source| UserDatabaseError::Parse {
                path: display,
                source,
            })?;
        db.check()?;
        Ok(db)
    }

    /// `count` users named `user0001`…, a fraction `offline_fraction` of them
    /// offline (chosen by `seed`), plus the administrator `admin_user`.
    pub fn generate(
        count: usize,
        offline_fraction: f64,
        seed: u64,
        admin_user: &str,
        admin_password: &str,
    ) -> Self {
        let mut rng = SplitMix64(seed);
        let mut users: Vec<SimUser> = (1..=count)
            .map(|n| {
                let name = format!("user{n:04}");
                let guid = format!(
                    "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                    rng.next_u64() as u32,
                    rng.next_u64() as u16,
                    rng.next_u64() as u16,
                    rng.next_u64() as u16,
                    rng.next_u64() & 0xffff_ffff_ffff
                );
                let online = (rng.next_u64() as f64 / u64::MAX as f64) >= offline_fraction;
                SimUser {
                    display_name: format!("User {n:04}"),
                    dn: format!("CN=User {n:04},OU=Staff,DC=example,DC=com"),
                    object_guid: guid,
                    sam_account_name: name.clone(),
                    sip_uri: format!("sip:{name}@example.com"),
                    email: format!("{name}@example.com"),
                    online,
                    admin: false,
                    password: Some(format!("{name}-password")),
                    enabled: true,
                    user_name: name,
                }
            })
            .collect();
        users.push(SimUser {
            user_name: admin_user.to_owned(),
            display_name: "UCServer Administrator".into(),
            dn: format!("CN={admin_user},OU=Service,DC=example,DC=com"),
            object_guid: "00000000-0000-4000-8000-00000000ad01".into(),
            sam_account_name: admin_user.to_owned(),
            sip_uri: format!("sip:{admin_user}@example.com"),
            email: format!("{admin_user}@example.com"),
            online: false,
            admin: true,
            password: Some(admin_password.to_owned()),
            enabled: true,
        });
        UserDatabase { users }
    }

    fn check(&self) -> Result<(), UserDatabaseError> {
        let mut seen = std::collections::HashSet::new();
        for user in &self.users {
            if !seen.insert(user.user_name.to_lowercase()) {
                return Err(UserDatabaseError::Duplicate(user.user_name.clone()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_honours_the_offline_fraction() {
        let a = UserDatabase::generate(200, 0.25, 7, "admin", "pw");
        let b = UserDatabase::generate(200, 0.25, 7, "admin", "pw");
        assert_eq!(a, b);
        let offline = a.users.iter().filter(|u| !u.admin && !u.online).count();
        assert!((30..=70).contains(&offline), "offline {offline} of 200");
        let c = UserDatabase::generate(200, 0.25, 8, "admin", "pw");
        assert_ne!(a, c);
    }

    #[test]
    fn a_file_with_an_unknown_field_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.json");
        std::fs::write(&path, r#"{"users":[{"user_name":"a","nick":"x"}]}"#).unwrap();
        let err = UserDatabase::from_json_file(&path).unwrap_err().to_string();
        assert!(err.contains("nick"), "{err}");
    }
}
