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

/// Stands for "no directory configured": the SCP step is skipped. Never
/// constructed.
#[derive(Debug, Clone, Copy)]
pub enum NoScp {}

impl ScpSource for NoScp {
    async fn service_connection_points(
        &self,
    ) -> Result<Vec<ServiceConnectionPoint>, Box<dyn std::error::Error + Send + Sync>> {
        match *self {}
    }
}

/// The points in the order to try them: those of `local_site` first, then
/// those that name no site (they serve every site), then the other sites'.
/// Directory order is kept within each group.
pub fn order_by_site(
    mut points: Vec<ServiceConnectionPoint>,
    local_site: Option<&str>,
) -> Vec<ServiceConnectionPoint> {
    let rank = |point: &ServiceConnectionPoint| {
        let here = local_site.is_some_and(|site| {
            point
                .sites
                .iter()
                .any(|s| s.trim().eq_ignore_ascii_case(site.trim()))
        });
        if here {
            0
        } else if point.sites.is_empty() {
            1
        } else {
            2
        }
    };
    points.sort_by_key(rank);
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(url: &str, sites: &[&str]) -> ServiceConnectionPoint {
        ServiceConnectionPoint {
            url: url.into(),
            sites: sites.iter().map(|s| (*s).to_owned()).collect(),
            dn: format!("CN={url}"),
        }
    }

    #[test]
    fn the_local_site_comes_first_then_siteless_points_then_other_sites() {
        let points = vec![
            point("other", &["Branch"]),
            point("any", &[]),
            point("here", &["Branch2", "HQ"]),
        ];
        let urls = |points: Vec<ServiceConnectionPoint>| -> Vec<String> {
            points.into_iter().map(|p| p.url).collect()
        };
        assert_eq!(
            urls(order_by_site(points.clone(), Some("hq"))),
            ["here", "any", "other"]
        );
        // Without a known site, site-less points still go before the others.
        assert_eq!(urls(order_by_site(points, None)), ["any", "other", "here"]);
    }
}
