//! Active Directory as the source of Exchange autodiscover service
//! connection points for the EWS client.

use super::ad::AdDirectory;
use ews_toolkit::autodiscover::{ScpSource, ServiceConnectionPoint};

impl ScpSource for AdDirectory {
    async fn service_connection_points(
        &self,
    ) -> Result<Vec<ServiceConnectionPoint>, Box<dyn std::error::Error + Send + Sync>> {
        self.autodiscover_scps().await.map_err(Into::into)
    }
}
