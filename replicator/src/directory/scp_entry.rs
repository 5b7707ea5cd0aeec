//! Service connection points as Active Directory holds them: plain entries,
//! found by the keywords the caller names (the EWS autodiscover ones, which
//! the composition root passes in and turns the entries into autodiscover
//! input).

/// One `serviceConnectionPoint` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScpEntry {
    /// `serviceBindingInformation`.
    pub url: String,
    /// The AD sites from the `Site=<name>` keywords; empty when the point
    /// names no site.
    pub sites: Vec<String>,
    /// The point's distinguished name, for diagnostics.
    pub dn: String,
}
