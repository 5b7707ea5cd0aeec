//! How to reach and log in to the UCServer.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::error::UcError;
use ews_toolkit::secret::Secret;

/// The UCServer web service's default HTTP port.
pub const DEFAULT_HTTP_PORT: u16 = 7224;
/// The UCServer web service's default HTTPS port.
pub const DEFAULT_HTTPS_PORT: u16 = 7225;
/// `clientappid` of the Exchange calendar replicator
/// (`eCLIENTAPPIDEXCHANGECALENDARREPLICATOR`).
pub const CLIENT_APP_ID: u32 = 22;
/// `iClientProtocolVersion` of the createsession negotiate body (ProCall 7).
pub const CLIENT_PROTOCOL_VERSION: u32 = 70;

/// `X-ucsid` of a direct connection to a UCServer, as the web service's
/// page sends it (docs/ucws-wsclient.txt:12, web-examples/SessionWithEvents.html:40).
pub const DEFAULT_UCSID: &str = "local";

/// Settings of [`super::UcServerClient`].
#[derive(Clone)]
pub struct UcServerSettings {
    /// `http://host:7224` or `https://host:7225` (the web service root), or
    /// `tcp://host:7222` / `tcp+starttls://host:7222` (the native port).
    pub base_url: Url,
    /// Sent as `X-ucsid` on createsession (default [`DEFAULT_UCSID`]; the
    /// UCServer's own id behind UCWeb/UCConnect); `None` or empty: not sent.
    pub ucsid: Option<String>,
    pub admin_user: String,
    /// Zeroed when dropped; `Debug` shows a placeholder.
    pub admin_password: Secret,
    /// Extra CA certificates (PEM) to trust for HTTPS.
    pub ca_file: Option<PathBuf>,
    /// Longest wait for the answer to one request.
    pub request_timeout: Duration,
    /// Longest wait for TCP, TLS, createsession and the WebSocket handshake.
    pub connect_timeout: Duration,
    /// Interval of `asnTransportKeepAlive` events.
    pub keep_alive_interval: Duration,
    /// First wait before reconnecting; doubles up to `reconnect_max_delay`.
    pub reconnect_initial_delay: Duration,
    pub reconnect_max_delay: Duration,
}

impl UcServerSettings {
    /// Settings with the defaults for everything but address and account.
    pub fn new(
        base_url: Url,
        admin_user: impl Into<String>,
        admin_password: impl Into<Secret>,
    ) -> Self {
        UcServerSettings {
            base_url,
            ucsid: Some(DEFAULT_UCSID.to_owned()),
            admin_user: admin_user.into(),
            admin_password: admin_password.into(),
            ca_file: None,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(15),
            keep_alive_interval: Duration::from_secs(10),
            reconnect_initial_delay: Duration::from_millis(500),
            reconnect_max_delay: Duration::from_secs(60),
        }
    }

    /// The web service URL of `host` on the default port (7225 with TLS,
    /// 7224 without).
    pub fn default_url(host: &str, tls: bool) -> Result<Url, UcError> {
        let (scheme, port) = if tls {
            ("https", DEFAULT_HTTPS_PORT)
        } else {
            ("http", DEFAULT_HTTP_PORT)
        };
        Url::parse(&format!("{scheme}://{host}:{port}/")).map_err(|e| {
            UcError::InvalidSettings(format!(
                "UCServer host {host:?} does not form a URL ({e}); give a host name or IP address"
            ))
        })
    }

    pub(crate) fn validate(&self) -> Result<(), UcError> {
        match self.base_url.scheme() {
            "http" | "https" => {}
            scheme if super::native::is_native_scheme(scheme) => {}
            other => {
                return Err(UcError::InvalidSettings(format!(
                    "UCServer URL {} has scheme {other:?}; use http://host:{DEFAULT_HTTP_PORT} or https://host:{DEFAULT_HTTPS_PORT} (web service), or tcp://host:{} (native port)",
                    self.base_url,
                    super::native::DEFAULT_NATIVE_PORT
                )))
            }
        }
        if self.base_url.host_str().is_none() {
            return Err(UcError::InvalidSettings(format!(
                "UCServer URL {} has no host",
                self.base_url
            )));
        }
        if self.admin_user.is_empty() {
            return Err(UcError::InvalidSettings(
                "the UCServer administrator user name is empty".into(),
            ));
        }
        for (name, value) in [
            ("request_timeout", self.request_timeout),
            ("connect_timeout", self.connect_timeout),
            ("keep_alive_interval", self.keep_alive_interval),
            ("reconnect_initial_delay", self.reconnect_initial_delay),
        ] {
            if value.is_zero() {
                return Err(UcError::InvalidSettings(format!(
                    "{name} must be greater than zero"
                )));
            }
        }
        Ok(())
    }

    /// Whether the URL names the native port (`tcp://`, `tcp+starttls://`)
    /// rather than the web service.
    pub fn uses_native_port(&self) -> bool {
        super::native::is_native_scheme(self.base_url.scheme())
    }

    /// The transport the URL selects, for reports: "native TCP port" or
    /// "web service".
    pub fn transport_name(&self) -> &'static str {
        match self.base_url.scheme() {
            super::native::SCHEME_TCP => "native port (ROSE over TCP)",
            super::native::SCHEME_TCP_STARTTLS => "native port (ROSE over TCP, asnStartTLS)",
            "https" => "web service (WebSocket over HTTPS)",
            _ => "web service (WebSocket over HTTP)",
        }
    }
}

impl fmt::Debug for UcServerSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UcServerSettings")
            .field("base_url", &self.base_url.as_str())
            .field("ucsid", &self.ucsid)
            .field("admin_user", &self.admin_user)
            .field("admin_password", &"<redacted>")
            .field("ca_file", &self.ca_file)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("keep_alive_interval", &self.keep_alive_interval)
            .field("reconnect_initial_delay", &self.reconnect_initial_delay)
            .field("reconnect_max_delay", &self.reconnect_max_delay)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_password() {
        let settings = UcServerSettings::new(
            UcServerSettings::default_url("ucserver.example.com", true).unwrap(),
            "admin",
            "s3cr3t-pw",
        );
        let text = format!("{settings:?}");
        assert!(!text.contains("s3cr3t-pw"), "{text}");
        assert!(
            text.contains("https://ucserver.example.com:7225/"),
            "{text}"
        );
    }

    #[test]
    fn a_non_http_scheme_is_refused_with_the_fix() {
        let settings = UcServerSettings::new(Url::parse("ftp://host/").unwrap(), "admin", "pw");
        let err = settings.validate().unwrap_err().to_string();
        assert!(err.contains("http://host:7224"), "{err}");
    }
}
