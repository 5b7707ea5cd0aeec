//! The first autodiscover step: service connection points that Exchange
//! publishes in Active Directory. The EWS client only defines what it needs;
//! the directory module (or a test) supplies the points.

use std::future::Future;

/// The `keywords` values that mark an Exchange autodiscover service
/// connection point (`serviceConnectionPoint` objects under the
/// configuration naming context); a point carries at least one of them.
pub const AUTODISCOVER_SCP_KEYWORDS: [&str; 2] = [
    "77378F46-2C66-4aa9-A6A6-3E7A48B19596",
    "67661d7F-8FC4-4fa7-BFAC-E1D7794C1F68",
];

/// One autodiscover service connection point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConnectionPoint {
    /// `serviceBindingInformation`: the autodiscover URL
    /// (`https://mail.example.com/Autodiscover/Autodiscover.xml`).
    pub url: String,
    /// The AD sites from the `Site=<name>` keywords; empty when the point
    /// names no site (it then serves every site).
    pub sites: Vec<String>,
    /// The point's distinguished name, for diagnostics.
    pub dn: String,
}

/// A source of service connection points (Active Directory in production).
pub trait ScpSource: Send + Sync {
    /// All autodiscover service connection points, in directory order.
    fn service_connection_points(
        &self,
    ) -> impl Future<
        Output = Result<Vec<ServiceConnectionPoint>, Box<dyn std::error::Error + Send + Sync>>,
    > + Send;

    /// The AD site this machine belongs to, when known: points for this site
    /// are tried first.
    fn local_site(&self) -> Option<String> {
        None
    }
}
