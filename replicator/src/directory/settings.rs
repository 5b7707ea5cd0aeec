//! How to reach and read the directory.

use std::path::PathBuf;
use std::time::Duration;

use super::error::DirectoryError;
use ews_toolkit::secret::Secret;

/// Enabled person accounts: the default user filter.
pub const DEFAULT_USER_FILTER: &str =
    "(&(objectCategory=person)(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))";

/// AD's matching rule for transitive (nested) group membership.
pub const MATCHING_RULE_IN_CHAIN: &str = "1.2.840.113556.1.4.1941";

/// AD returns at most 1,000 entries per page by default (MaxPageSize).
pub const PAGE_SIZE: i32 = 1000;

/// Default `max_entries`: ten times the largest benchmarked organisation.
pub const DEFAULT_MAX_ENTRIES: usize = 200_000;

/// Default `max_response_mb`: room for [`DEFAULT_MAX_ENTRIES`] users of
/// about 1 KB each (the seven attributes read, several proxy addresses).
pub const DEFAULT_MAX_RESPONSE_MB: u64 = 256;

/// Connection and search settings for Active Directory.
#[derive(Debug, Clone)]
pub struct DirectorySettings {
    /// `ldap://host[:389]` or `ldaps://host[:636]`.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS.
    pub starttls: bool,
    /// PEM file with the CA that issued the domain controller's certificate,
    /// in addition to the public roots.
    pub ca_file: Option<PathBuf>,
    /// The bind account: `svc@corp.example.com` (UPN), `CORP\svc` or a DN.
    pub bind_user: String,
    pub bind_password: Secret,
    /// Where users are searched; `None`: the domain (RootDSE
    /// `defaultNamingContext`).
    pub base_dn: Option<String>,
    /// `None`: [`DEFAULT_USER_FILTER`].
    pub user_filter: Option<String>,
    /// Only members of this group (DN), nested membership included.
    pub include_group: Option<String>,
    /// Nobody who is a member of this group (DN), nested membership included.
    pub exclude_group: Option<String>,
    /// Limit for connecting and for each LDAP operation.
    pub timeout: Duration,
    /// Most entries one search may return (ldap3 gathers them all in
    /// memory); more stop the search with an error naming this setting.
    pub max_entries: usize,
    /// Most bytes (in MB) the server may send on one connection: ldap3
    /// buffers a whole message, whatever length it announces.
    pub max_response_mb: u64,
}

impl DirectorySettings {
    /// Settings with defaults for everything but the server and account.
    pub fn new(
        url: impl Into<String>,
        bind_user: impl Into<String>,
        bind_password: Secret,
    ) -> Self {
        Self {
            url: url.into(),
            starttls: false,
            ca_file: None,
            bind_user: bind_user.into(),
            bind_password,
            base_dn: None,
            user_filter: None,
            include_group: None,
            exclude_group: None,
            timeout: Duration::from_secs(30),
            max_entries: DEFAULT_MAX_ENTRIES,
            max_response_mb: DEFAULT_MAX_RESPONSE_MB,
        }
    }

    pub fn user_filter(&self) -> &str {
        self.user_filter.as_deref().unwrap_or(DEFAULT_USER_FILTER)
    }

    /// The user filter with the group scoping applied.
    pub fn scoped_user_filter(&self) -> String {
        let mut parts = vec![self.user_filter().to_owned()];
        if let Some(group) = &self.include_group {
            parts.push(format!(
                "(memberOf:{MATCHING_RULE_IN_CHAIN}:={})",
                ldap3::ldap_escape(group.trim())
            ));
        }
        if let Some(group) = &self.exclude_group {
            parts.push(format!(
                "(!(memberOf:{MATCHING_RULE_IN_CHAIN}:={}))",
                ldap3::ldap_escape(group.trim())
            ));
        }
        if parts.len() == 1 {
            parts.remove(0)
        } else {
            format!("(&{})", parts.concat())
        }
    }

    /// Checks everything that can be checked without the server.
    pub(crate) fn validate(&self) -> Result<ServerAddress, DirectoryError> {
        let address = ServerAddress::parse(&self.url)?;
        if self.starttls && address.implicit_tls {
            return Err(DirectoryError::Settings(format!(
                "StartTLS applies to ldap:// URLs only, but the URL is {}; use either ldaps:// or ldap:// with StartTLS",
                self.url
            )));
        }
        if self.bind_user.trim().is_empty() {
            return Err(DirectoryError::Settings(
                "the bind user is empty; set it to the service account, e.g. svc-replicator@corp.example.com"
                    .into(),
            ));
        }
        // AD treats a simple bind with an empty password as an anonymous
        // bind that "succeeds": refuse it instead of silently reading nothing.
        if self.bind_password.is_empty() {
            return Err(DirectoryError::Settings(format!(
                "the bind password for {} is empty; configure the service account's password",
                self.bind_user
            )));
        }
        if ldap3::parse_filter(self.user_filter()).is_err() {
            return Err(DirectoryError::Settings(format!(
                "the user filter {:?} is not a valid LDAP filter (RFC 4515: parenthesised, e.g. {DEFAULT_USER_FILTER})",
                self.user_filter()
            )));
        }
        for (name, group) in [
            ("include_group", &self.include_group),
            ("exclude_group", &self.exclude_group),
        ] {
            if let Some(group) = group {
                if !group.contains('=') {
                    return Err(DirectoryError::Settings(format!(
                        "{name} {group:?} is not a distinguished name; give the group's DN, e.g. CN=Calendar Users,OU=Groups,DC=corp,DC=example,DC=com"
                    )));
                }
            }
        }
        Ok(address)
    }
}

/// The parsed server URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerAddress {
    pub host: String,
    pub port: u16,
    pub implicit_tls: bool,
}

impl ServerAddress {
    fn parse(text: &str) -> Result<Self, DirectoryError> {
        let bad = |reason: &str| {
            DirectoryError::Settings(format!(
                "directory URL {text:?} {reason}; expected ldap://dc.corp.example.com (port 389) or ldaps://dc.corp.example.com (port 636)"
            ))
        };
        let url = url::Url::parse(text.trim()).map_err(|e| bad(&format!("is not a URL ({e})")))?;
        let implicit_tls = match url.scheme() {
            "ldap" => false,
            "ldaps" => true,
            other => return Err(bad(&format!("has the scheme {other:?}"))),
        };
        let host = match url.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(host) => host.to_string(),
            None => return Err(bad("names no host")),
        };
        if host.is_empty() {
            return Err(bad("names no host"));
        }
        let port = url.port().unwrap_or(if implicit_tls { 636 } else { 389 });
        Ok(Self {
            host,
            port,
            implicit_tls,
        })
    }

    /// `host:port`, with IPv6 addresses bracketed.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> DirectorySettings {
        DirectorySettings::new(url, "svc@corp.example.com", Secret::new("pw"))
    }

    #[test]
    fn urls_get_their_default_ports() {
        let plain = settings("ldap://dc1.corp.example.com").validate().unwrap();
        assert_eq!((plain.port, plain.implicit_tls), (389, false));
        let tls = settings("ldaps://dc1.corp.example.com").validate().unwrap();
        assert_eq!((tls.port, tls.implicit_tls), (636, true));
        let custom = settings("ldap://[::1]:3268").validate().unwrap();
        assert_eq!(custom.authority(), "[::1]:3268");
    }

    #[test]
    fn bad_settings_are_refused_with_the_reason() {
        let cases = [
            (settings("http://dc1"), "scheme"),
            (settings("dc1.corp.example.com"), "is not a URL"),
            (
                DirectorySettings {
                    starttls: true,
                    ..settings("ldaps://dc1")
                },
                "StartTLS applies to ldap:// URLs only",
            ),
            (
                DirectorySettings::new("ldap://dc1", "svc", Secret::new("")),
                "password for svc is empty",
            ),
            (
                DirectorySettings {
                    user_filter: Some("objectClass=user)".into()),
                    ..settings("ldap://dc1")
                },
                "not a valid LDAP filter",
            ),
            (
                DirectorySettings {
                    include_group: Some("Calendar Users".into()),
                    ..settings("ldap://dc1")
                },
                "include_group \"Calendar Users\" is not a distinguished name",
            ),
        ];
        for (settings, expected) in cases {
            let err = settings.validate().unwrap_err().to_string();
            assert!(
                err.contains(expected),
                "{err:?} should contain {expected:?}"
            );
        }
    }

    #[test]
    fn group_scoping_uses_the_in_chain_rule_and_escapes_the_dn() {
        let scoped = DirectorySettings {
            include_group: Some("CN=Staff (All),OU=Groups,DC=corp".into()),
            exclude_group: Some("CN=No Sync,DC=corp".into()),
            ..settings("ldap://dc1")
        };
        assert_eq!(
            scoped.scoped_user_filter(),
            format!(
                "(&{DEFAULT_USER_FILTER}(memberOf:1.2.840.113556.1.4.1941:=CN=Staff \\28All\\29,OU=Groups,DC=corp)(!(memberOf:1.2.840.113556.1.4.1941:=CN=No Sync,DC=corp)))"
            )
        );
        assert_eq!(
            settings("ldap://dc1").scoped_user_filter(),
            DEFAULT_USER_FILTER
        );
    }

    #[test]
    fn debug_output_hides_the_password() {
        let text = format!(
            "{:?}",
            DirectorySettings::new("ldap://dc1", "svc", Secret::new("s3cr3t-pw"))
        );
        assert!(!text.contains("s3cr3t-pw"), "{text}");
    }
}
