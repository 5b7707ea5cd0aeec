//! The real clients behind the engine's ports.

use chrono::{DateTime, Utc};
use tokio::sync::mpsc::UnboundedSender;

use crate::ucserver::{Appointment, UcError, UcServerClient, UserFilter, UserProfile};
use ews_toolkit::availability::MailboxAvailability;
use ews_toolkit::AvailabilityReader;

use super::ports::{CalendarSource, SourceError, UcServerPort, WriteError};

/// Exchange through the batched, throttling-aware availability reader. Its
/// `Err` means no mailbox could be read; per-mailbox errors stay inside.
impl CalendarSource for AvailabilityReader {
    async fn read_calendars(
        &self,
        mailboxes: &[String],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<MailboxAvailability>, SourceError> {
        self.read(mailboxes, start, end)
            .await
            .map_err(|e| SourceError {
                message: e.to_string(),
            })
    }

    async fn read_calendars_each(
        &self,
        mailboxes: &[String],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        ready: UnboundedSender<MailboxAvailability>,
    ) -> Result<(), SourceError> {
        self.read_each(mailboxes, start, end, |answer| {
            // A closed receiver means the cycle stopped listening.
            let _ = ready.send(answer);
        })
        .await
        .map_err(|e| SourceError {
            message: e.to_string(),
        })
    }
}

impl From<UcError> for WriteError {
    fn from(error: UcError) -> Self {
        WriteError {
            retryable: error.is_retryable(),
            message: error.to_string(),
        }
    }
}

impl UcServerPort for UcServerClient {
    async fn list_users(&self, filter: UserFilter) -> Result<Vec<UserProfile>, WriteError> {
        Ok(self.users(filter).await?)
    }

    async fn write_appointments(
        &self,
        user_name: &str,
        appointments: &[Appointment],
    ) -> Result<(), WriteError> {
        Ok(self.set_appointments(user_name, appointments).await?)
    }
}
