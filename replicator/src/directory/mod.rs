//! Active Directory: finds the users whose calendars are replicated and their
//! mailboxes, over LDAP (`ldap://` port 389 by default, `ldaps://`, StartTLS).
//!
//! The replication engine talks to [`UserDirectory`]; [`AdDirectory`] is the
//! Active Directory implementation (it also finds service connection points,
//! [`ScpEntry`], which the composition root hands to EWS autodiscover).
//! Users are matched to UCServer users with a [`UserIndex`] built from one
//! paged read.

mod ad;
mod error;
mod guid;
mod scp_entry;
mod settings;
mod static_list;
mod user;

use std::future::Future;

pub use ad::AdDirectory;
pub use error::{ad_data_code, explain_ad_data_code, DirectoryError};
pub use ews_toolkit::secret::Secret;
pub use guid::{InvalidGuid, ObjectGuid};
pub use scp_entry::ScpEntry;
pub use settings::{
    DirectorySettings, DEFAULT_MAX_ENTRIES, DEFAULT_MAX_RESPONSE_MB, DEFAULT_USER_FILTER,
    MATCHING_RULE_IN_CHAIN, PAGE_SIZE,
};
pub use static_list::StaticDirectory;
pub use user::{all_smtp_addresses, normalize_dn, primary_smtp_address};
pub use user::{DirectoryUser, UserIndex, UserKey};

/// A source of directory users: Active Directory, or later a static list.
pub trait UserDirectory: Send + Sync {
    /// Every user in scope (filter and group scoping applied), including
    /// users without a mailbox (`primary_smtp` is `None`), so the caller can
    /// report them.
    fn users(&self) -> impl Future<Output = Result<Vec<DirectoryUser>, DirectoryError>> + Send;

    /// One user in scope by `key`; `None` when no user in scope matches.
    fn find_user(
        &self,
        key: &UserKey,
    ) -> impl Future<Output = Result<Option<DirectoryUser>, DirectoryError>> + Send;
}

impl UserDirectory for AdDirectory {
    fn users(&self) -> impl Future<Output = Result<Vec<DirectoryUser>, DirectoryError>> + Send {
        self.read_users()
    }

    fn find_user(
        &self,
        key: &UserKey,
    ) -> impl Future<Output = Result<Option<DirectoryUser>, DirectoryError>> + Send {
        self.find(key)
    }
}
