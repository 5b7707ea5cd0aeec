//! Issue #15: servers that lie, on loopback. A directory server may not make
//! the replicator buffer what it announces (one 4 GiB LDAP message) or
//! gather every entry it sends: both stop at a limit, with an error naming
//! the setting that raises it.
//!
//! The LDAP servers (`hostile_support`) are raw TCP listeners speaking just
//! enough BER (RFC 4511) to get past the bind.

use std::net::SocketAddr;
use std::time::Duration;

use ews_calendar_replicator::directory::{AdDirectory, DirectoryError, DirectorySettings, Secret};

use crate::hostile_support;
use ews_calendar_replicator::directory::UserKey;
use hostile_support::{ldap_announcing_4_gib, ldap_finding_anything, ldap_sending_entries, Sent};

fn settings(addr: SocketAddr) -> DirectorySettings {
    let mut settings = DirectorySettings::new(
        format!("ldap://{addr}"),
        "svc-replicator@corp.example.com",
        Secret::new("bind-password"),
    );
    settings.timeout = Duration::from_secs(20);
    settings
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The figure: with `max_response_mb = 4` the server gets at most the limit
/// plus the loopback socket buffers out (under 36 MB of the 256 MB it
/// offers), and the process's peak memory stays under 64 MB. Before the
/// limit, ldap3 buffered what the server sent until the timeout (1 GiB in
/// the review; all 256 MB here, and the server's hang-up, not the limit,
/// ended the search).
#[tokio::test]
async fn an_announced_4_gib_ldap_message_is_cut_at_max_response_mb() {
    let sent = Sent::default();
    let addr = ldap_announcing_4_gib(256 << 20, sent.clone());
    let mut settings = settings(addr);
    settings.max_response_mb = 4;
    let directory = AdDirectory::connect(settings).await.unwrap();
    let err = directory.read_users().await.unwrap_err();
    assert!(
        matches!(
            &err,
            DirectoryError::ResponseTooLarge { limit_mb: 4, operation, .. } if operation == "user search"
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("directory.max_response_mb"),
        "{err}"
    );
    let sent_mb = sent.get() as f64 / (1 << 20) as f64;
    let peak_mb = peak_rss_kb() / 1024;
    eprintln!(
        "hostile LDAP message: the server got {sent_mb:.1} MB out before the connection closed; peak RSS of this test process {peak_mb} MB"
    );
    assert!(sent_mb < 4.0 + 32.0, "the server sent {sent_mb:.1} MB");
    assert!(peak_mb < 64, "peak RSS {peak_mb} MB");
}

/// The figure: a server sending 5,000 entries is stopped at `max_entries`
/// (100) with an error naming the key; before, every entry was gathered.
#[tokio::test]
async fn a_search_returning_more_than_max_entries_stops_with_an_error_naming_the_setting() {
    let addr = ldap_sending_entries(5_000, Sent::default());
    let mut settings = settings(addr);
    settings.max_entries = 100;
    let directory = AdDirectory::connect(settings).await.unwrap();
    let err = directory.read_users().await.unwrap_err();
    assert!(
        matches!(
            &err,
            DirectoryError::TooManyEntries { limit: 100, operation, .. } if operation == "user search"
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("directory.max_entries"), "{err}");
}

/// The DN scope check compares parsed DNs (issue #15, Low): a UCServer user
/// naming a DN that merely ends like the base (`OU=xDC=corp,...`) or hides
/// the base behind an escaped comma is outside it, and is not even looked
/// up, although this server would answer any search with a user. The old
/// check, a text suffix test, sent a search for each and took the answer.
#[tokio::test]
async fn a_dn_that_only_ends_like_the_base_is_not_looked_up() {
    let searches = Sent::default();
    let addr = ldap_finding_anything(searches.clone());
    let directory = AdDirectory::connect(settings(addr)).await.unwrap();
    assert_eq!(directory.base_dn(), hostile_support::LDAP_BASE_DN);
    for outside in [
        "CN=Mallory,OU=xDC=corp,DC=example,DC=com",
        "cn=mallory, ou=evil xdc=corp,dc=example,dc=com",
        "CN=Mallory\\,DC=corp,DC=example,DC=com",
        "CN=Mallory\\2cDC=corp,DC=example,DC=com",
    ] {
        let found = directory.find(&UserKey::Dn(outside.to_owned())).await;
        assert!(matches!(found, Ok(None)), "{outside}: {found:?}");
    }
    assert_eq!(searches.get(), 0, "searches sent for DNs outside the base");
    // Inside the base, however spelt, the directory is asked.
    let inside = "cn=alice , OU=Staff,dc=CORP,DC=example,DC=com";
    let found = directory.find(&UserKey::Dn(inside.to_owned())).await;
    assert!(matches!(found, Ok(Some(_))), "{inside}: {found:?}");
    assert_eq!(searches.get(), 1);
}
