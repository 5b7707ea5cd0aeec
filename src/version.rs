//! `RequestServerVersion` values the client can ask for.

use std::str::FromStr;

/// The EWS schema version a request asks for. Exchange 2019 answers as
/// `Exchange2016`; there is no later value for on-premises servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExchangeVersion {
    Exchange2007Sp1,
    Exchange2010,
    Exchange2010Sp1,
    Exchange2010Sp2,
    Exchange2013,
    #[default]
    Exchange2013Sp1,
    Exchange2016,
}

impl ExchangeVersion {
    pub const ALL: [ExchangeVersion; 7] = [
        ExchangeVersion::Exchange2007Sp1,
        ExchangeVersion::Exchange2010,
        ExchangeVersion::Exchange2010Sp1,
        ExchangeVersion::Exchange2010Sp2,
        ExchangeVersion::Exchange2013,
        ExchangeVersion::Exchange2013Sp1,
        ExchangeVersion::Exchange2016,
    ];

    /// The wire value (`Exchange2013_SP1`).
    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeVersion::Exchange2007Sp1 => "Exchange2007_SP1",
            ExchangeVersion::Exchange2010 => "Exchange2010",
            ExchangeVersion::Exchange2010Sp1 => "Exchange2010_SP1",
            ExchangeVersion::Exchange2010Sp2 => "Exchange2010_SP2",
            ExchangeVersion::Exchange2013 => "Exchange2013",
            ExchangeVersion::Exchange2013Sp1 => "Exchange2013_SP1",
            ExchangeVersion::Exchange2016 => "Exchange2016",
        }
    }
}

impl std::fmt::Display for ExchangeVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown Exchange version {0:?}; expected one of Exchange2007_SP1, Exchange2010, Exchange2010_SP1, Exchange2010_SP2, Exchange2013, Exchange2013_SP1, Exchange2016 (also as Exchange2019 or ExchangeSE)")]
pub struct UnknownVersion(pub String);

impl FromStr for ExchangeVersion {
    type Err = UnknownVersion;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Exchange 2019 and Subscription Edition added no schema version:
        // they are asked for with Exchange2016, under the names people use.
        if ["Exchange2019", "ExchangeSE"]
            .iter()
            .any(|alias| alias.eq_ignore_ascii_case(s.trim()))
        {
            return Ok(ExchangeVersion::Exchange2016);
        }
        ExchangeVersion::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownVersion(s.to_owned()))
    }
}
