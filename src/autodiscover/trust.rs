//! Which hosts autodiscover may authenticate to. A redirect (the HTTP
//! probe's `Location`, an SRV target, `redirectUrl`, `redirectAddr`) can name
//! any host, and whoever answers the unauthenticated probe or plain UDP DNS
//! picks it; MS-OXDISCO has a client ask the user before following one, which
//! a service cannot. So credentials go only to hosts of the mail domain (the
//! domain of the mailbox autodiscover runs for, and its subdomains) and to
//! hosts the administrator listed; every other host is asked anonymously.
//!
//! Host names are compared as the URL parser normalises them (lower case,
//! IDNs as punycode, percent-escapes decoded), without one trailing dot, and
//! a domain matches only at a label boundary: `evilcorp.example.com` is not
//! in `corp.example.com`. An IP address is never in a domain; it is trusted
//! only when listed itself.

use url::{Host, Url};

/// The configuration key that lists further trusted hosts, named in every
/// refusal so that an administrator knows what would allow the host.
pub const TRUSTED_HOSTS_KEY: &str = "exchange.autodiscover_trusted_hosts";

/// One allow-list entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// This host (or IP address) only.
    Exact(Host<String>),
    /// `*.domain`: every host below `domain` (not `domain` itself).
    Below(String),
}

/// Hosts trusted besides the mail domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedHosts {
    entries: Vec<Entry>,
}

impl TrustedHosts {
    /// Parses host names (`mail.corp.example.com`, an IDN, an IP address,
    /// `[::1]`) and `*.domain` patterns. The error names the entry and what
    /// is expected.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<TrustedHosts, String> {
        let mut parsed = Vec::with_capacity(entries.len());
        for entry in entries {
            let text = entry.as_ref().trim();
            let invalid = |why: &str| {
                format!("{text:?} is not a host name ({why}); expected e.g. \"mail.corp.example.com\" or \"*.corp.example.com\"")
            };
            if text.contains(['/', '@', '?', '#', ' '])
                || (text.contains(':') && !text.starts_with('['))
            {
                return Err(invalid(
                    "write the host alone, without scheme, port, path or user",
                ));
            }
            if let Some(domain) = text.strip_prefix("*.") {
                match normalise(domain) {
                    Some(Host::Domain(domain)) => parsed.push(Entry::Below(domain)),
                    _ => return Err(invalid("`*.` must be followed by a domain")),
                }
            } else {
                match normalise(text) {
                    Some(host) => parsed.push(Entry::Exact(host)),
                    None => return Err(invalid("it does not parse as a host")),
                }
            }
        }
        Ok(TrustedHosts { entries: parsed })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn allows(&self, host: &Host<String>) -> bool {
        self.entries.iter().any(|entry| match (entry, host) {
            (Entry::Exact(listed), host) => listed == host,
            (Entry::Below(domain), Host::Domain(name)) => is_below(name, domain),
            (Entry::Below(_), _) => false,
        })
    }
}

/// The trust decision of one search: its mail domain and the allow-list.
#[derive(Debug, Clone)]
pub(crate) struct Trust {
    /// `None` when the mailbox's domain does not parse as a domain (then
    /// only listed hosts are trusted).
    mail_domain: Option<String>,
    listed: TrustedHosts,
}

impl Trust {
    pub(crate) fn new(mail_domain: &str, listed: &TrustedHosts) -> Trust {
        let mail_domain = match normalise(mail_domain) {
            Some(Host::Domain(domain)) => Some(domain),
            _ => None,
        };
        Trust {
            mail_domain,
            listed: listed.clone(),
        }
    }

    pub(crate) fn mail_domain(&self) -> &str {
        self.mail_domain.as_deref().unwrap_or("(none)")
    }

    /// Whether credentials may be sent to `url`'s host.
    pub(crate) fn allows(&self, url: &Url) -> bool {
        let Some(host) = url.host().map(|h| without_trailing_dot(h.to_owned())) else {
            return false;
        };
        let in_mail_domain = match (&host, &self.mail_domain) {
            (Host::Domain(name), Some(domain)) => name == domain || is_below(name, domain),
            _ => false,
        };
        in_mail_domain || self.listed.allows(&host)
    }
}

/// `text` as the URL parser reads a host, without one trailing dot.
fn normalise(text: &str) -> Option<Host<String>> {
    if text.is_empty() {
        return None;
    }
    Host::parse(text).ok().map(without_trailing_dot)
}

fn without_trailing_dot(host: Host<String>) -> Host<String> {
    match host {
        Host::Domain(name) => Host::Domain(match name.strip_suffix('.') {
            Some(stripped) => stripped.to_owned(),
            None => name,
        }),
        other => other,
    }
}

/// `name` is a subdomain of `domain`, at a label boundary.
fn is_below(name: &str, domain: &str) -> bool {
    name.len() > domain.len() + 1
        && name.ends_with(domain)
        && name.as_bytes()[name.len() - domain.len() - 1] == b'.'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trust(domain: &str, listed: &[&str]) -> Trust {
        Trust::new(domain, &TrustedHosts::parse(listed).unwrap())
    }

    fn allows(trust: &Trust, url: &str) -> bool {
        trust.allows(&Url::parse(url).unwrap())
    }

    #[test]
    fn the_mail_domain_and_its_subdomains_are_trusted_at_label_boundaries_only() {
        let t = trust("corp.example.com", &[]);
        for url in [
            "https://corp.example.com/autodiscover/autodiscover.xml",
            "https://autodiscover.corp.example.com/",
            "https://a.b.corp.example.com:8443/x",
            "https://CORP.Example.COM/",
            "https://mail.corp.example.com./",
        ] {
            assert!(allows(&t, url), "{url}");
        }
        for url in [
            "https://evilcorp.example.com/",
            "https://corp.example.com.evil.test/",
            "https://example.com/",
            "https://xcorp.example.com./",
            "https://corp.example.co/",
        ] {
            assert!(!allows(&t, url), "{url}");
        }
    }

    #[test]
    fn a_trailing_dot_or_capitals_in_the_mailbox_domain_change_nothing() {
        let t = trust("Corp.Example.com.", &[]);
        assert!(allows(&t, "https://mail.corp.example.com/"));
        assert!(!allows(&t, "https://evilcorp.example.com/"));
    }

    #[test]
    fn ip_addresses_are_never_in_a_domain_and_trusted_only_when_listed() {
        // A mail "domain" that is an IP literal trusts nothing by itself.
        let t = trust("127.0.0.1", &[]);
        assert!(!allows(&t, "https://127.0.0.1/"));
        let t = trust("corp.example.com", &["192.0.2.7", "[2001:db8::1]"]);
        assert!(!allows(&t, "https://192.0.2.8/"));
        assert!(allows(&t, "https://192.0.2.7/"));
        assert!(allows(&t, "https://[2001:db8:0::1]/"));
        // The URL parser reads 0xC0.0.2.7 as 192.0.2.7: the same address.
        assert!(allows(&t, "https://0xC0.0.2.7/"));
    }

    #[test]
    fn idns_are_compared_as_punycode() {
        let t = trust("bücher.example", &[]);
        assert!(allows(&t, "https://mail.xn--bcher-kva.example/"));
        assert!(allows(&t, "https://mail.bücher.example/"));
        assert!(!allows(&t, "https://mail.bucher.example/"));
        let t = trust("corp.example.com", &["autodiscover.bücher.example"]);
        assert!(allows(&t, "https://autodiscover.xn--bcher-kva.example/"));
    }

    #[test]
    fn listed_hosts_are_exact_and_star_dot_lists_the_subdomains() {
        let t = trust(
            "corp.example.com",
            &["autodiscover-s.outlook.com", "*.corp.local"],
        );
        assert!(allows(&t, "https://autodiscover-s.outlook.com/"));
        assert!(allows(&t, "https://AUTODISCOVER-S.outlook.com./"));
        assert!(!allows(&t, "https://x.autodiscover-s.outlook.com/"));
        assert!(!allows(&t, "https://outlook.com/"));
        assert!(allows(&t, "https://ex1.corp.local/"));
        assert!(!allows(&t, "https://corp.local/"));
        assert!(!allows(&t, "https://evilcorp.local/"));
    }

    #[test]
    fn entries_with_a_scheme_port_or_path_are_refused_with_the_entry_named() {
        for bad in [
            "https://mail.example.com",
            "mail.example.com:443",
            "mail.example.com/x",
            "",
            "*.",
            "*.192.0.2.1",
            "svc@mail.example.com",
        ] {
            let error = TrustedHosts::parse(&[bad]).unwrap_err();
            assert!(error.contains(&format!("{bad:?}")), "{error}");
        }
    }
}
