//! Active Directory over LDAP (ldap3): connecting, binding, paged searches.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry, StdStream};

use super::error::{bind_failure, result_code_name, DirectoryError};
use super::guid::ObjectGuid;
use super::scp_entry::ScpEntry;
use super::settings::{DirectorySettings, ServerAddress, PAGE_SIZE};
use super::user::{all_smtp_addresses, dn_is_within, primary_smtp_address, sam_without_domain};
use super::user::{DirectoryUser, UserKey};

/// The attributes read for each user.
const USER_ATTRIBUTES: [&str; 7] = [
    "objectGUID",
    "distinguishedName",
    "sAMAccountName",
    "userPrincipalName",
    "proxyAddresses",
    "mail",
    "homeMDB",
];

/// An Active Directory domain read with one service account. Every operation
/// opens its own connection, so a long-running replicator never holds a
/// connection the domain controller has already dropped for idleness.
#[derive(Debug)]
pub struct AdDirectory {
    settings: DirectorySettings,
    address: ServerAddress,
    tls_config: Option<Arc<rustls::ClientConfig>>,
    base_dn: String,
    configuration_dn: String,
}

impl AdDirectory {
    /// Checks the settings, connects, binds and reads the RootDSE (default
    /// and configuration naming contexts), so that a wrong setting fails
    /// here with its explanation.
    pub async fn connect(settings: DirectorySettings) -> Result<Self, DirectoryError> {
        let address = settings.validate()?;
        let tls_config = if address.implicit_tls || settings.starttls {
            Some(ews_toolkit::tls::client_config(
                settings.ca_file.as_deref(),
            )?)
        } else {
            None
        };
        let mut directory = Self {
            settings,
            address,
            tls_config,
            base_dn: String::new(),
            configuration_dn: String::new(),
        };
        let mut session = directory.session().await?;
        let root = directory.read_root_dse(&mut session).await;
        let _ = session.ldap.unbind().await;
        let (default_nc, configuration_nc) = root?;
        directory.base_dn = match &directory.settings.base_dn {
            Some(base) if !base.trim().is_empty() => base.trim().to_owned(),
            _ => default_nc.ok_or_else(|| {
                DirectoryError::Settings(format!(
                    "the server {} publishes no defaultNamingContext in its RootDSE (is it a domain controller?); set `base_dn`",
                    directory.address.authority()
                ))
            })?,
        };
        directory.configuration_dn = configuration_nc.unwrap_or_default();
        tracing::debug!(
            server = %directory.address.authority(),
            base = %directory.base_dn,
            "connected to Active Directory"
        );
        Ok(directory)
    }

    /// Where users are searched.
    pub fn base_dn(&self) -> &str {
        &self.base_dn
    }

    /// The configuration naming context (RootDSE
    /// `configurationNamingContext`), empty when the server has none.
    pub fn configuration_dn(&self) -> &str {
        &self.configuration_dn
    }

    pub fn settings(&self) -> &DirectorySettings {
        &self.settings
    }

    /// Every user the filter and group scoping select, read in pages.
    pub async fn read_users(&self) -> Result<Vec<DirectoryUser>, DirectoryError> {
        let filter = self.settings.scoped_user_filter();
        let mut session = self.session().await?;
        let entries = self
            .paged_search(
                &mut session,
                &self.base_dn,
                Scope::Subtree,
                &filter,
                &USER_ATTRIBUTES,
                "user search",
            )
            .await;
        let _ = session.ldap.unbind().await;
        let users = entries?
            .into_iter()
            .map(user_from_entry)
            .collect::<Result<Vec<_>, _>>()?;
        // AD leaves out attributes the account may not read instead of
        // refusing the search: without this check an ACL problem would look
        // like a domain without mailboxes.
        if !users.is_empty() && users.iter().all(|u| u.smtp_addresses.is_empty()) {
            return Err(DirectoryError::MailAttributesUnreadable {
                user: self.settings.bind_user.clone(),
                base: self.base_dn.clone(),
                users: users.len(),
            });
        }
        tracing::debug!(users = users.len(), "read directory users");
        Ok(users)
    }

    /// One user by `key`, when the filter and group scoping select it.
    pub async fn find(&self, key: &UserKey) -> Result<Option<DirectoryUser>, DirectoryError> {
        let scoped = self.settings.scoped_user_filter();
        let (base, scope, key_filter) = match key {
            UserKey::Dn(dn) => {
                if !dn_is_within(dn, &self.base_dn) {
                    return Ok(None);
                }
                (dn.trim().to_owned(), Scope::Base, None)
            }
            UserKey::ObjectGuid(guid) => (
                self.base_dn.clone(),
                Scope::Subtree,
                Some(format!("(objectGUID={})", guid.filter_value())),
            ),
            UserKey::SamAccountName(sam) => (
                self.base_dn.clone(),
                Scope::Subtree,
                Some(format!(
                    "(sAMAccountName={})",
                    ldap3::ldap_escape(sam_without_domain(sam.trim()))
                )),
            ),
            UserKey::UserPrincipalName(upn) => (
                self.base_dn.clone(),
                Scope::Subtree,
                Some(format!(
                    "(userPrincipalName={})",
                    ldap3::ldap_escape(upn.trim())
                )),
            ),
            UserKey::SmtpAddress(address) => {
                let address = address.trim();
                let address = address
                    .get(..5)
                    .filter(|p| p.eq_ignore_ascii_case("smtp:"))
                    .map_or(address, |_| &address[5..]);
                let escaped = ldap3::ldap_escape(address);
                // proxyAddresses compares case-insensitively: smtp: matches SMTP: too
                (
                    self.base_dn.clone(),
                    Scope::Subtree,
                    Some(format!(
                        "(|(proxyAddresses=smtp:{escaped})(mail={escaped}))"
                    )),
                )
            }
        };
        let filter = match key_filter {
            Some(key_filter) => format!("(&{scoped}{key_filter})"),
            None => scoped,
        };
        let mut session = self.session().await?;
        let entries = self
            .paged_search(
                &mut session,
                &base,
                scope,
                &filter,
                &USER_ATTRIBUTES,
                "user lookup",
            )
            .await;
        let _ = session.ldap.unbind().await;
        let entries = match entries {
            Err(DirectoryError::NoSuchBase { .. }) if scope == Scope::Base => return Ok(None),
            other => other?,
        };
        if entries.len() > 1 {
            tracing::warn!(
                ?key,
                matches = entries.len(),
                "several directory users match; using the first"
            );
        }
        entries.into_iter().next().map(user_from_entry).transpose()
    }

    /// The service connection points under the configuration naming
    /// context that carry one of `keywords` (Exchange autodiscover's, for
    /// its first step).
    pub async fn service_connection_points(
        &self,
        keywords: &[&str],
    ) -> Result<Vec<ScpEntry>, DirectoryError> {
        if self.configuration_dn.is_empty() {
            return Err(DirectoryError::Settings(format!(
                "the server {} publishes no configurationNamingContext; autodiscover service connection points cannot be read",
                self.address.authority()
            )));
        }
        let keywords: String = keywords.iter().map(|k| format!("(keywords={k})")).collect();
        let filter = format!("(&(objectClass=serviceConnectionPoint)(|{keywords}))");
        let mut session = self.session().await?;
        let entries = self
            .paged_search(
                &mut session,
                &self.configuration_dn,
                Scope::Subtree,
                &filter,
                &["serviceBindingInformation", "keywords"],
                "autodiscover SCP search",
            )
            .await;
        let _ = session.ldap.unbind().await;
        let mut points = Vec::new();
        for entry in entries? {
            let sites = text_values(&entry, "keywords")
                .into_iter()
                .filter_map(|k| {
                    k.get(..5)
                        .filter(|p| p.eq_ignore_ascii_case("site="))
                        .map(|_| k[5..].trim().to_owned())
                })
                .filter(|site| !site.is_empty())
                .collect::<Vec<_>>();
            for url in text_values(&entry, "serviceBindingInformation") {
                points.push(ScpEntry {
                    url: url.trim().to_owned(),
                    sites: sites.clone(),
                    dn: entry.dn.clone(),
                });
            }
        }
        Ok(points)
    }

    /// A connected, bound LDAP handle.
    async fn session(&self) -> Result<Session, DirectoryError> {
        let authority = self.address.authority();
        let timeout = self.settings.timeout;
        let tcp = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(authority.as_str()))
            .await
            .map_err(|_| self.timeout_error("connecting"))?
            .map_err(|source| DirectoryError::Unreachable {
                address: authority.clone(),
                source,
            })?;
        let (std_stream, over_limit) =
            self.limited_relay(tcp)
                .await
                .map_err(|source| DirectoryError::Unreachable {
                    address: authority.clone(),
                    source,
                })?;
        let limit = |e: DirectoryError| self.read_limit_error(&over_limit, "connecting", e);
        let mut conn_settings = LdapConnSettings::new()
            .set_conn_timeout(timeout)
            .set_starttls(self.settings.starttls)
            .set_std_stream(StdStream::Tcp(std_stream));
        if let Some(config) = &self.tls_config {
            conn_settings = conn_settings.set_config(config.clone());
        }
        let scheme = if self.address.implicit_tls {
            "ldaps"
        } else {
            "ldap"
        };
        let url = format!("{scheme}://{authority}");
        let (conn, mut ldap) =
            tokio::time::timeout(timeout, LdapConnAsync::with_settings(conn_settings, &url))
                .await
                .map_err(|_| limit(self.timeout_error("opening the connection")))?
                .map_err(|e| limit(self.connect_error(e)))?;
        ldap3::drive!(conn);

        let user = self.settings.bind_user.trim();
        let result = ldap
            .with_timeout(timeout)
            .simple_bind(user, self.settings.bind_password.expose())
            .await
            .map_err(|e| {
                self.read_limit_error(&over_limit, "bind", self.operation_error("bind", e))
            })?;
        if result.rc != 0 {
            return Err(bind_failure(user, result.rc, &result.text));
        }
        Ok(Session { ldap, over_limit })
    }

    /// Puts a relay between ldap3 and the server that closes the connection
    /// once the server has sent more than `max_response_mb`: ldap3 takes a
    /// socket, not a stream, and buffers a message of any announced length.
    /// The relay passes bytes through unchanged (TLS stays end to end,
    /// between ldap3 and the server). Returns ldap3's end of a loopback
    /// connection and the flag the relay raises when it cut the connection.
    async fn limited_relay(
        &self,
        server: tokio::net::TcpStream,
    ) -> std::io::Result<(std::net::TcpStream, Arc<AtomicBool>)> {
        let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let ours = tokio::net::TcpStream::connect(listener.local_addr()?).await?;
        let expected_peer = ours.local_addr()?;
        // Another local process could connect first: take only our own.
        let theirs = loop {
            let (stream, peer) = listener.accept().await?;
            if peer == expected_peer {
                break stream;
            }
        };
        drop(listener);
        let over_limit = Arc::new(AtomicBool::new(false));
        let limit = self.settings.max_response_mb.saturating_mul(1 << 20);
        let flag = over_limit.clone();
        tokio::spawn(async move {
            let (mut server_read, mut server_write) = server.into_split();
            let (mut local_read, mut local_write) = theirs.into_split();
            let requests = async {
                let _ = tokio::io::copy(&mut local_read, &mut server_write).await;
                let _ = server_write.shutdown().await;
            };
            let responses = async {
                let mut buffer = vec![0u8; 16 * 1024];
                let mut received: u64 = 0;
                loop {
                    let n = match server_read.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    received += n as u64;
                    if received > limit {
                        flag.store(true, Ordering::SeqCst);
                        break;
                    }
                    if local_write.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = local_write.shutdown().await;
            };
            // Either side ending ends both: dropping the halves closes them.
            tokio::select! {
                _ = requests => {}
                _ = responses => {}
            }
        });
        Ok((ours.into_std()?, over_limit))
    }

    /// `error`, or the read limit's error when the relay cut the connection
    /// (ldap3 then sees only a closed connection).
    fn read_limit_error(
        &self,
        over_limit: &AtomicBool,
        operation: &str,
        error: DirectoryError,
    ) -> DirectoryError {
        if over_limit.load(Ordering::SeqCst) {
            DirectoryError::ResponseTooLarge {
                address: self.address.authority(),
                operation: operation.to_owned(),
                limit_mb: self.settings.max_response_mb,
            }
        } else {
            error
        }
    }

    async fn read_root_dse(
        &self,
        session: &mut Session,
    ) -> Result<(Option<String>, Option<String>), DirectoryError> {
        let attrs = ["defaultNamingContext", "configurationNamingContext"];
        let result = session
            .ldap
            .with_timeout(self.settings.timeout)
            .search("", Scope::Base, "(objectClass=*)", attrs)
            .await
            .map_err(|e| {
                let error = self.operation_error("RootDSE read", e);
                self.read_limit_error(&session.over_limit, "RootDSE read", error)
            })?;
        let (entries, status) = (result.0, result.1);
        if status.rc != 0 {
            return Err(self.result_error("RootDSE read", "", status.rc, &status.text));
        }
        let entry = entries
            .into_iter()
            .find(|e| !e.is_ref() && !e.is_intermediate())
            .map(SearchEntry::construct);
        let first = |name: &str| {
            entry
                .as_ref()
                .and_then(|e| text_values(e, name).into_iter().next())
        };
        Ok((first(attrs[0]), first(attrs[1])))
    }

    /// A subtree or base search in pages of [`PAGE_SIZE`]. Referrals (to
    /// other domains or the DNS application partitions) are skipped: the
    /// replicator reads one domain, and following them would need other
    /// credentials and servers.
    async fn paged_search(
        &self,
        session: &mut Session,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        operation: &str,
    ) -> Result<Vec<SearchEntry>, DirectoryError> {
        let attrs: Vec<String> = attrs.iter().map(|a| a.to_string()).collect();
        let adapters: Vec<Box<dyn Adapter<String, Vec<String>>>> = vec![
            Box::new(EntriesOnly::new()),
            Box::new(PagedResults::new(PAGE_SIZE)),
        ];
        let over_limit = session.over_limit.clone();
        let failed = |e: LdapError| {
            self.read_limit_error(&over_limit, operation, self.operation_error(operation, e))
        };
        let mut stream = session
            .ldap
            .with_timeout(self.settings.timeout)
            .streaming_search_with(adapters, base, scope, filter, attrs)
            .await
            .map_err(failed)?;
        let mut entries = Vec::new();
        loop {
            match stream.next().await {
                Ok(Some(_)) if entries.len() >= self.settings.max_entries => {
                    // Dropping the stream abandons the search; the session
                    // is unbound by the caller.
                    return Err(DirectoryError::TooManyEntries {
                        operation: operation.to_owned(),
                        base: base.to_owned(),
                        limit: self.settings.max_entries,
                    });
                }
                Ok(Some(entry)) => entries.push(SearchEntry::construct(entry)),
                Ok(None) => break,
                Err(e) => {
                    let _ = stream.finish().await;
                    return Err(failed(e));
                }
            }
        }
        let status = stream.finish().await;
        if !status.refs.is_empty() {
            tracing::debug!(referrals = ?status.refs, "{operation}: skipped referrals");
        }
        match status.rc {
            // 10: the base itself is a referral; the entries before it stand
            0 | 10 => Ok(entries),
            rc => Err(self.result_error(operation, base, rc, &status.text)),
        }
    }

    fn result_error(&self, operation: &str, base: &str, rc: u32, text: &str) -> DirectoryError {
        match rc {
            32 => DirectoryError::NoSuchBase {
                base: base.to_owned(),
            },
            50 => DirectoryError::InsufficientRights {
                user: self.settings.bind_user.clone(),
                operation: operation.to_owned(),
                text: text.to_owned(),
            },
            _ => DirectoryError::Ldap {
                operation: operation.to_owned(),
                code: rc,
                code_name: result_code_name(rc),
                text: text.to_owned(),
            },
        }
    }

    fn timeout_error(&self, during: &'static str) -> DirectoryError {
        DirectoryError::Timeout {
            address: self.address.authority(),
            during,
            seconds: self.settings.timeout.as_secs(),
        }
    }

    /// An error while opening the connection: TLS handshake or StartTLS.
    fn connect_error(&self, err: LdapError) -> DirectoryError {
        let address = self.address.authority();
        let host = &self.address.host;
        match err {
            LdapError::LdapResult { result } => DirectoryError::StartTlsRefused {
                address,
                reason: format!(
                    "{} (result code {} {})",
                    result.text,
                    result.rc,
                    result_code_name(result.rc)
                ),
            },
            LdapError::Io { source } if self.tls_config.is_some() => DirectoryError::Tls {
                message: ews_toolkit::tls::explain_handshake_error(host, &source),
                address,
            },
            LdapError::Rustls { source } => DirectoryError::Tls {
                message: format!("TLS with {host} failed: {source}"),
                address,
            },
            LdapError::DNSName { source } => DirectoryError::Tls {
                message: format!("{host:?} cannot be checked against a certificate: {source}"),
                address,
            },
            other => self.operation_error("connecting", other),
        }
    }

    fn operation_error(&self, operation: &str, err: LdapError) -> DirectoryError {
        if let LdapError::Timeout { .. } = err {
            return self.timeout_error("waiting for an LDAP response");
        }
        let hint = if matches!(
            err,
            LdapError::EndOfStream | LdapError::ResultRecv { .. } | LdapError::Io { .. }
        ) {
            if self.address.implicit_tls {
                "; the server closed the connection"
            } else {
                "; the server closed the connection (if this port expects TLS, use ldaps://)"
            }
        } else {
            ""
        };
        DirectoryError::Connection {
            address: self.address.authority(),
            operation: operation.to_owned(),
            detail: format!("{err}{hint}"),
        }
    }
}

/// One bound connection and the flag its read limit raises.
struct Session {
    ldap: Ldap,
    over_limit: Arc<AtomicBool>,
}

/// The string values of `name` (attribute names compare case-insensitively).
fn text_values(entry: &SearchEntry, name: &str) -> Vec<String> {
    entry
        .attrs
        .iter()
        .filter(|(key, _)| key.eq_ignore_ascii_case(name))
        .flat_map(|(_, values)| values.iter().cloned())
        .collect()
}

/// The raw bytes of a binary attribute; ldap3 files values that happen to be
/// valid UTF-8 under the text attributes, so both maps are searched.
fn binary_value(entry: &SearchEntry, name: &str) -> Option<Vec<u8>> {
    let binary = entry
        .bin_attrs
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .and_then(|(_, values)| values.first().cloned());
    binary.or_else(|| {
        text_values(entry, name)
            .into_iter()
            .next()
            .map(String::into_bytes)
    })
}

fn user_from_entry(entry: SearchEntry) -> Result<DirectoryUser, DirectoryError> {
    let object_guid = binary_value(&entry, "objectGUID")
        .and_then(|bytes| ObjectGuid::from_ad_bytes(&bytes))
        .ok_or_else(|| DirectoryError::InvalidEntry {
            dn: entry.dn.clone(),
        })?;
    let first = |name: &str| text_values(&entry, name).into_iter().next();
    let proxy_addresses = text_values(&entry, "proxyAddresses");
    let mail = first("mail");
    Ok(DirectoryUser {
        object_guid,
        dn: first("distinguishedName").unwrap_or_else(|| entry.dn.clone()),
        sam_account_name: first("sAMAccountName"),
        user_principal_name: first("userPrincipalName"),
        primary_smtp: primary_smtp_address(&proxy_addresses, mail.as_deref()),
        smtp_addresses: all_smtp_addresses(&proxy_addresses, mail.as_deref()),
        home_mdb: first("homeMDB"),
    })
}
