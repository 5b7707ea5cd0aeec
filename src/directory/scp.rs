//! Active Directory as the source of Exchange autodiscover service
//! connection points for the EWS client.

use std::future::Future;

use super::ad::AdDirectory;
use crate::ews::autodiscover::{ScpSource, ServiceConnectionPoint};

impl ScpSource for AdDirectory {
    fn service_connection_points(
        &self,
    ) -> impl Future<
        Output = Result<Vec<ServiceConnectionPoint>, Box<dyn std::error::Error + Send + Sync>>,
    > + Send {
        async move { self.autodiscover_scps().await.map_err(Into::into) }
    }
}
