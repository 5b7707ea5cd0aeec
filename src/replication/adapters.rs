//! The real clients behind the engine's ports.

use crate::ucserver::{Appointment, UcError, UcServerClient, UserFilter, UserProfile};

use super::ports::{UcServerPort, WriteError};

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
