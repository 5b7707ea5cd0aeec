//! The UCServer's native port (TCP 7222): the same ROSE JSON messages as the
//! web service, framed on the raw stream as estos's C++ runtime frames them
//! (`J` + 7 digits + JSON, [`super::framing`]; cpp-runtime/SnaccROSEBase.cpp
//! `GetJsonAsnPrefix`), with the logon a direct client does itself.
//!
//! ENetUC_Auth.asn1 (module description) says web-service clients use
//! createsession *instead of* negotiating and logging in; a direct client
//! therefore does what createsession does for it:
//!
//! 1. `asnNegotiateServerConnectionV2` (1006) as `eClientAppID` 22
//!    (`eCLIENTAPPIDEXCHANGECALENDARREPLICATOR`),
//! 2. `asnLoginV2` (1005) with `authBasic` and the administrator account
//!    (the same account and method createsession gets as HTTP Basic),
//! 3. then the client above the transport sends `asnAdminLogin` exactly as
//!    on the web service.
//!
//! The SDK does not settle which account logs in with `asnLoginV2` nor
//! whether `asnLoginV2` may be skipped; we log in with the administrator
//! account (what createsession does), and the simulator also accepts a
//! connection that goes straight from negotiate to `asnAdminLogin`.
//!
//! TLS: the SDK shows no TLS port for the native protocol, only
//! `asnStartTLS` (1103, ENetUC_Transport.asn1: "use this function
//! immediately after establishing the connection. After calling this
//! function, the UCServer switches to TLS mode"). `tcp+starttls://host:7222`
//! sends it first, reads its result in the clear, then does the TLS
//! handshake on the same connection.

use std::sync::Arc;

use base64::Engine as _;
use bytes::BytesMut;
use futures_util::future::BoxFuture;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::asn::{serialize_secret, AsnRequestError, Operation};
use super::error::UcError;
use super::framing::{self, FramingError};
use super::rose::{RejectInvokedId, RoseMessage, EVENT_INVOKE_ID};
use super::settings::{UcServerSettings, CLIENT_APP_ID};
use super::transport::{self as transport, Io, MessageSink, MessageStream, RoseTransport};
use ews_toolkit::secret::Secret;

/// The UCServer's native client port.
pub const DEFAULT_NATIVE_PORT: u16 = 7222;
/// URL scheme of the native port in the clear.
pub const SCHEME_TCP: &str = "tcp";
/// URL scheme of the native port upgraded with `asnStartTLS`.
pub const SCHEME_TCP_STARTTLS: &str = "tcp+starttls";

/// Whether `scheme` names the native port rather than the web service.
pub fn is_native_scheme(scheme: &str) -> bool {
    scheme == SCHEME_TCP || scheme == SCHEME_TCP_STARTTLS
}

/// `asnNegotiateServerConnectionV2` (ENetUC_Auth).
pub const NEGOTIATE_SERVER_CONNECTION_V2: Operation = Operation {
    name: "asnNegotiateServerConnectionV2",
    id: 1006,
};
/// `asnLoginV2` (ENetUC_Auth).
pub const LOGIN_V2: Operation = Operation {
    name: "asnLoginV2",
    id: 1005,
};
/// `asnStartTLS` (ENetUC_Transport).
pub const START_TLS: Operation = Operation {
    name: "asnStartTLS",
    id: 1103,
};

/// The ASN.1 interface major version of the SDK the types here were written
/// from (asn1/interfaceversion.txt); ENetUC_Transport.asn1 advises
/// `<major>.0.0` as the minimum.
pub const INTERFACE_VERSION: &str = "8.0.0";

/// `AsnNegotiateServerConnectionClientCapabilities.eNONE`: the replicator
/// offers no softphone, AV line or V2 events.
pub const CLIENT_CAPABILITIES_NONE: i64 = 0;

/// `AsnNegotiateServerConnectionV2Argument`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsnNegotiateServerConnectionV2Argument {
    #[serde(rename = "u8sMinSupportedInterfaceVersion")]
    pub min_interface_version: String,
    #[serde(rename = "u8sMaxSupportedInterfaceVersion")]
    pub max_interface_version: String,
    #[serde(rename = "u8sClientDeviceId")]
    pub client_device_id: String,
    #[serde(rename = "u8sClientVersion")]
    pub client_version: String,
    /// `AsnClientAppID`.
    #[serde(rename = "eClientAppID")]
    pub client_app_id: i64,
    #[serde(rename = "u8sClientDeviceName")]
    pub client_device_name: String,
    /// Bit mask of `AsnNegotiateServerConnectionClientCapabilities`.
    #[serde(rename = "iClientCapabilities")]
    pub client_capabilities: i64,
    #[serde(rename = "u8sConnectionGUID", skip_serializing_if = "Option::is_none")]
    pub connection_guid: Option<String>,
}

/// `AsnNegotiateServerConnectionV2Result`. Decoded leniently (every member
/// defaulted): the client uses none of them for a decision, and a server
/// leaving one out must not stop the replication.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AsnNegotiateServerConnectionV2Result {
    /// `AsnNegotiateServerConnectionServerTypeV2`.
    #[serde(rename = "eServerType")]
    pub server_type: i64,
    #[serde(rename = "u8sServerInterfaceVersion")]
    pub server_interface_version: String,
    /// `AsnNegotiateServerConnectionAuthenticationMethod`.
    #[serde(rename = "eAuthenticationMethod")]
    pub authentication_method: i64,
    /// OCTET STRING (base64 in JSON).
    #[serde(rename = "sServerAuthentication")]
    pub server_authentication: String,
    /// `AsnSystemTime` (ISO-8601 UTC).
    #[serde(rename = "stServerTime")]
    pub server_time: String,
    #[serde(rename = "u8sServerVersion")]
    pub server_version: String,
    #[serde(rename = "u8sConnectionGUID")]
    pub connection_guid: String,
    #[serde(rename = "u8sPresenceDomains")]
    pub presence_domains: Vec<String>,
}

/// `AsnNegotiateServerConnectionV2ResultChoice`; read as the runtime reads a
/// CHOICE ([`choice_of`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum AsnNegotiateServerConnectionV2ResultChoice {
    #[serde(rename = "result")]
    Result(AsnNegotiateServerConnectionV2Result),
    #[serde(rename = "busy")]
    Busy(AsnNegotiateServerConnectionV2ServerBusy),
    #[serde(rename = "incompatible")]
    Incompatible(AsnNegotiateServerConnectionV2IncompatibleInterfaceVersion),
}

/// `AsnNegotiateServerConnectionV2ServerBusy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsnNegotiateServerConnectionV2ServerBusy {
    #[serde(rename = "iServerBusyTimeout")]
    pub server_busy_timeout: i64,
}

/// `AsnNegotiateServerConnectionV2IncompatibleInterfaceVersion`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsnNegotiateServerConnectionV2IncompatibleInterfaceVersion {
    #[serde(rename = "u8sServerInterfaceVersion")]
    pub server_interface_version: String,
}

/// `AsnLoginV2Argument` (ENetUC_Common_Auth). Without `auth` the server
/// answers the methods it supports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsnLoginV2Argument {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<AsnLoginV2ChoiceArgument>,
}

/// `AsnLoginV2ChoiceArgument`; the client only sends `authBasic`, the other
/// alternatives are kept as JSON so that a simulator can name them. Read as
/// the runtime reads a CHOICE ([`choice_of`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum AsnLoginV2ChoiceArgument {
    #[serde(rename = "authBasic")]
    Basic(AsnAuthBasicCredential),
    #[serde(rename = "authNTLM")]
    Ntlm(Value),
    #[serde(rename = "authKerberos")]
    Kerberos(Value),
    #[serde(rename = "authBearer")]
    Bearer(Value),
    #[serde(rename = "authOpenIDC")]
    OpenIdc(Value),
}

/// `AsnAuthBasicCredential`: `base64(username ":" password)` in UTF-8,
/// held as a [`Secret`] (zeroed when dropped, never shown by `Debug`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsnAuthBasicCredential {
    #[serde(serialize_with = "serialize_secret")]
    pub credential: Secret,
}

impl AsnAuthBasicCredential {
    pub fn new(user: &str, password: &str) -> Self {
        AsnAuthBasicCredential {
            credential: basic_credential(user, password),
        }
    }

    /// `(user, password)`, when the credential is well-formed.
    pub fn decode(&self) -> Option<(String, String)> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(self.credential.expose().trim())
            .ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (user, password) = text.split_once(':')?;
        Some((user.to_owned(), password.to_owned()))
    }
}

/// `base64(user ":" password)`, built in buffers sized up front and zeroed
/// afterwards: a growing buffer would leave a copy of the password in freed
/// memory. Also the `Authorization: Basic` value of createsession.
pub(crate) fn basic_credential(user: &str, password: &str) -> Secret {
    let mut plain = zeroize::Zeroizing::new(String::with_capacity(user.len() + 1 + password.len()));
    plain.push_str(user);
    plain.push(':');
    plain.push_str(password);
    let mut encoded = String::with_capacity(plain.len().div_ceil(3) * 4);
    base64::engine::general_purpose::STANDARD.encode_string(plain.as_bytes(), &mut encoded);
    Secret::new(encoded)
}

/// Reads a CHOICE as estos's runtime does ([`super::rose`]'s `choice`: the
/// first alternative present in declaration order, `_type` and other members
/// ignored) into the enum `build` makes of the alternative's name and value.
fn choice_of<'de, D, T>(
    deserializer: D,
    type_name: &str,
    alternatives: &[&'static str],
    build: impl FnOnce(&'static str, Value) -> Result<T, serde_json::Error>,
) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let (name, value) = super::rose::choice(deserializer, type_name, alternatives)?;
    build(name, value).map_err(|e| serde::de::Error::custom(format!("{type_name}.{name}: {e}")))
}

impl<'de> Deserialize<'de> for AsnNegotiateServerConnectionV2ResultChoice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        choice_of(
            d,
            "AsnNegotiateServerConnectionV2ResultChoice",
            &["result", "busy", "incompatible"],
            |name, value| {
                Ok(match name {
                    "result" => Self::Result(serde_json::from_value(value)?),
                    "busy" => Self::Busy(serde_json::from_value(value)?),
                    _ => Self::Incompatible(serde_json::from_value(value)?),
                })
            },
        )
    }
}

impl<'de> Deserialize<'de> for AsnLoginV2ChoiceArgument {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        choice_of(
            d,
            "AsnLoginV2ChoiceArgument",
            &[
                "authBasic",
                "authNTLM",
                "authKerberos",
                "authBearer",
                "authOpenIDC",
            ],
            |name, value| {
                Ok(match name {
                    "authBasic" => Self::Basic(serde_json::from_value(value)?),
                    "authNTLM" => Self::Ntlm(value),
                    "authKerberos" => Self::Kerberos(value),
                    "authBearer" => Self::Bearer(value),
                    _ => Self::OpenIdc(value),
                })
            },
        )
    }
}

impl<'de> Deserialize<'de> for AsnLoginV2Result {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        choice_of(
            d,
            "AsnLoginV2Result",
            &[
                "supportedAuthMethods",
                "succceeded",
                "succeeded",
                "serverRedirect",
                "serverBusy",
                "ntlmRenegotiate",
            ],
            |name, value| {
                Ok(match name {
                    "supportedAuthMethods" => {
                        Self::SupportedAuthMethods(serde_json::from_value(value)?)
                    }
                    "succceeded" | "succeeded" => Self::Succeeded(serde_json::from_value(value)?),
                    "serverRedirect" => Self::ServerRedirect(serde_json::from_value(value)?),
                    "serverBusy" => Self::ServerBusy(serde_json::from_value(value)?),
                    _ => Self::NtlmRenegotiate(value),
                })
            },
        )
    }
}

impl std::fmt::Debug for AsnAuthBasicCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AsnAuthBasicCredential(<redacted>)")
    }
}

/// `AsnLoginV2Result`. The success alternative is spelled `succceeded` in
/// ENetUC_Common_Auth.asn1 (three c); `succeeded` is read too in case a
/// server version corrects it. Read as the runtime reads a CHOICE
/// ([`choice_of`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum AsnLoginV2Result {
    #[serde(rename = "supportedAuthMethods")]
    SupportedAuthMethods(AsnLoginV2ResultSupportedAuthMethods),
    #[serde(rename = "succceeded")]
    Succeeded(AsnLoginV2ResultSuccess),
    #[serde(rename = "serverRedirect")]
    ServerRedirect(AsnLoginV2ResultServerRedirect),
    #[serde(rename = "serverBusy")]
    ServerBusy(AsnLoginV2ResultServerBusy),
    #[serde(rename = "ntlmRenegotiate")]
    NtlmRenegotiate(Value),
}

/// `AsnLoginV2ResultSupportedAuthMethods`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsnLoginV2ResultSupportedAuthMethods {
    /// `AsnLoginV2SupportedAuthMethod` values, in the server's order.
    #[serde(rename = "authMethodsOrdered")]
    pub auth_methods_ordered: Vec<i64>,
}

/// `AsnLoginV2SupportedAuthMethod.basic`.
pub const AUTH_METHOD_BASIC: i64 = 1;

/// `AsnLoginV2ResultSuccess`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsnLoginV2ResultSuccess {
    #[serde(rename = "u8sLoggedInUser", skip_serializing_if = "Option::is_none")]
    pub logged_in_user: Option<String>,
}

/// `AsnLoginV2ResultServerRedirect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsnLoginV2ResultServerRedirect {
    #[serde(rename = "u8sRedirectTo")]
    pub redirect_to: String,
}

/// `AsnLoginV2ResultServerBusy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsnLoginV2ResultServerBusy {
    #[serde(rename = "iRetryInSeconds")]
    pub retry_in_seconds: i64,
}

/// `AsnStartTLSArgument` / `AsnStartTLSResult`: empty extensible SEQUENCEs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsnStartTls {}

/// Splits a byte stream into framed ROSE JSON messages. Reads are bounded by
/// `max_frame_len`; a malformed frame ends the stream with an error (the
/// stream cannot be resynchronised after it).
pub(crate) fn framed_channel(
    io: Box<dyn Io>,
    max_frame_len: usize,
) -> (MessageSink, MessageStream) {
    framed_channel_after(io, BytesMut::with_capacity(8 * 1024), max_frame_len)
}

/// Like [`framed_channel`], with `received` bytes already read off `io`.
pub(crate) fn framed_channel_after(
    io: Box<dyn Io>,
    received: BytesMut,
    max_frame_len: usize,
) -> (MessageSink, MessageStream) {
    let (read, write) = tokio::io::split(io);
    let stream = futures_util::stream::unfold(Some((read, received)), move |state| async move {
        let (mut read, mut buf) = state?;
        loop {
            match framing::decode_frame_limited(&mut buf, max_frame_len) {
                Ok(Some(text)) => return Some((Ok(text), Some((read, buf)))),
                Ok(None) => {}
                Err(e) => return Some((Err(framing_error(&e)), None)),
            }
            match read.read_buf(&mut buf).await {
                // Named here: the client's generic "closed" text says WebSocket.
                Ok(0) if buf.is_empty() => {
                    return Some((
                        Err(UcError::Native("the UCServer closed the connection".into())),
                        None,
                    ))
                }
                Ok(0) => {
                    return Some((
                        Err(UcError::Native(format!(
                            "the connection ended inside a frame ({} bytes of it received)",
                            buf.len()
                        ))),
                        None,
                    ))
                }
                Ok(_) => {}
                Err(e) => return Some((Err(UcError::Native(format!("read: {e}"))), None)),
            }
        }
    });
    // Every text is zeroed once written, with its frame: the admin login
    // carries the password ([`MessageSink`]). The kernel's socket buffer,
    // and rustls's record buffer under `tcp+starttls`, are the copies left.
    let sink = futures_util::sink::unfold(write, |mut write, text: String| async move {
        let mut text = zeroize::Zeroizing::new(text);
        let mut frame = BytesMut::with_capacity(text.len() + 8);
        framing::encode_frame(&text, &mut frame).map_err(|e| framing_error(&e))?;
        let written = write.write_all(&frame).await;
        zeroize::Zeroize::zeroize(&mut frame[..]);
        zeroize::Zeroize::zeroize(&mut *text);
        written.map_err(|e| UcError::Native(format!("write: {e}")))?;
        write
            .flush()
            .await
            .map_err(|e| UcError::Native(format!("write: {e}")))?;
        Ok::<_, UcError>(write)
    });
    (Box::pin(sink), Box::pin(stream))
}

/// A framing error with the likely cause when the first byte tells it.
fn framing_error(error: &FramingError) -> UcError {
    let hint = match error {
        FramingError::NotJson(b'H') => {
            "; the peer answers HTTP: is the URL pointing at the web service (7224/7225)? use http(s):// for it, tcp:// only for port 7222"
        }
        FramingError::NotJson(0x16) => {
            "; the peer speaks TLS: use https:// for the web service on 7225"
        }
        _ => "",
    };
    UcError::Native(format!("malformed frame: {error}{hint}"))
}

/// The UCServer's native port: `tcp://host:7222` or
/// `tcp+starttls://host:7222`.
pub struct NativeTransport {
    settings: UcServerSettings,
    tls: Option<Arc<rustls::ClientConfig>>,
    max_frame_len: usize,
}

impl NativeTransport {
    pub fn new(settings: &UcServerSettings) -> Result<Self, UcError> {
        let tls = transport::checked_tls(
            settings,
            [SCHEME_TCP, SCHEME_TCP_STARTTLS],
            SCHEME_TCP_STARTTLS,
            "a native-port URL; use tcp://host:7222 or tcp+starttls://host:7222",
        )?;
        Ok(NativeTransport {
            settings: settings.clone(),
            tls,
            max_frame_len: framing::MAX_FRAME_LEN,
        })
    }

    /// Refuses frames longer than `limit` bytes (default: the 9,999,999 a
    /// 7-digit length can announce).
    pub fn with_max_frame_len(mut self, limit: usize) -> Self {
        self.max_frame_len = limit;
        self
    }

    fn host(&self) -> &str {
        self.settings.base_url.host_str().unwrap_or_default()
    }

    fn port(&self) -> u16 {
        self.settings.base_url.port().unwrap_or(DEFAULT_NATIVE_PORT)
    }

    fn address(&self) -> String {
        format!("{}:{}", self.host(), self.port())
    }

    async fn open_channel(&self) -> Result<(MessageSink, MessageStream), UcError> {
        let tcp = transport::connect_tcp(self.host(), self.port()).await?;
        let io: Box<dyn Io> = match &self.tls {
            None => Box::new(tcp),
            Some(config) => {
                let tcp = self.start_tls(tcp).await?;
                transport::tls_handshake(config, self.host(), tcp).await?
            }
        };
        let (mut sink, mut stream) = framed_channel(io, self.max_frame_len);
        self.log_on(&mut sink, &mut stream).await?;
        Ok((sink, stream))
    }

    /// `asnStartTLS` in the clear; the TLS handshake follows on `tcp`.
    async fn start_tls(&self, mut tcp: TcpStream) -> Result<TcpStream, UcError> {
        let invoke = invoke_json(1, START_TLS, &AsnStartTls {});
        let mut frame = BytesMut::new();
        framing::encode_frame(&invoke, &mut frame).map_err(|e| framing_error(&e))?;
        tcp.write_all(&frame)
            .await
            .map_err(|e| UcError::Native(format!("write: {e}")))?;
        // Read byte by byte up to the end of the one answer frame: a byte
        // more would be the server's first TLS byte.
        let mut buf = BytesMut::new();
        let text = loop {
            if let Some(text) =
                framing::decode_frame_limited(&mut buf, 64 * 1024).map_err(|e| framing_error(&e))?
            {
                break text;
            }
            let byte = tcp
                .read_u8()
                .await
                .map_err(|e| UcError::Native(format!("no answer to {}: {e}", START_TLS.name)))?;
            buf.extend_from_slice(&[byte]);
        };
        let _: AsnStartTls = answer_of(START_TLS, 1, &text, &self.settings.admin_user)?;
        Ok(tcp)
    }

    /// Negotiate and `asnLoginV2` on a fresh channel.
    async fn log_on(
        &self,
        sink: &mut MessageSink,
        stream: &mut MessageStream,
    ) -> Result<(), UcError> {
        let negotiate = AsnNegotiateServerConnectionV2Argument {
            min_interface_version: INTERFACE_VERSION.to_owned(),
            max_interface_version: INTERFACE_VERSION.to_owned(),
            client_device_id: client_device_id(),
            client_version: env!("CARGO_PKG_VERSION").to_owned(),
            client_app_id: i64::from(CLIENT_APP_ID),
            client_device_name: format!("{} {}", env!("CARGO_PKG_NAME"), client_device_id()),
            client_capabilities: CLIENT_CAPABILITIES_NONE,
            connection_guid: None,
        };
        let user = &self.settings.admin_user;
        let answer: AsnNegotiateServerConnectionV2ResultChoice = call(
            sink,
            stream,
            1,
            NEGOTIATE_SERVER_CONNECTION_V2,
            &negotiate,
            user,
        )
        .await?;
        match answer {
            AsnNegotiateServerConnectionV2ResultChoice::Result(r) => tracing::debug!(
                "UCServer {} (interface {}) accepted the connection {}",
                r.server_version,
                r.server_interface_version,
                r.connection_guid
            ),
            AsnNegotiateServerConnectionV2ResultChoice::Busy(b) => {
                return Err(UcError::Unavailable {
                    reason: format!(
                        "the UCServer is busy (asnNegotiateServerConnectionV2 asks to retry in {} s)",
                        b.server_busy_timeout
                    ),
                    retryable: true,
                })
            }
            AsnNegotiateServerConnectionV2ResultChoice::Incompatible(i) => {
                return Err(UcError::Protocol {
                    operation: NEGOTIATE_SERVER_CONNECTION_V2.name,
                    reason: format!(
                        "the UCServer's interface version {} is incompatible with {INTERFACE_VERSION}; use the web service (https://host:7225) instead",
                        i.server_interface_version
                    ),
                })
            }
        }
        let login = AsnLoginV2Argument {
            auth: Some(AsnLoginV2ChoiceArgument::Basic(
                AsnAuthBasicCredential::new(user, self.settings.admin_password.expose()),
            )),
        };
        let answer: AsnLoginV2Result = call(sink, stream, 2, LOGIN_V2, &login, user).await?;
        match answer {
            AsnLoginV2Result::Succeeded(_) => Ok(()),
            AsnLoginV2Result::ServerBusy(b) => Err(UcError::Unavailable {
                reason: format!(
                    "the UCServer is busy (asnLoginV2 asks to retry in {} s)",
                    b.retry_in_seconds
                ),
                retryable: true,
            }),
            AsnLoginV2Result::ServerRedirect(r) => Err(UcError::Protocol {
                operation: LOGIN_V2.name,
                reason: format!(
                    "the UCServer redirects this login to {:?}; set ucserver.url to that server",
                    r.redirect_to
                ),
            }),
            AsnLoginV2Result::SupportedAuthMethods(m) => Err(UcError::Protocol {
                operation: LOGIN_V2.name,
                reason: format!(
                    "the UCServer does not accept a password login (authBasic) on the native port; it offers the methods {:?} (1 basic, 2 digest, 3 ntlm, 4 kerberos, 5 bearer, 6 openidc); use the web service (https://host:7225) instead",
                    m.auth_methods_ordered
                ),
            }),
            AsnLoginV2Result::NtlmRenegotiate(_) => Err(UcError::Protocol {
                operation: LOGIN_V2.name,
                reason: "the UCServer asked for an NTLM step after a password login".into(),
            }),
        }
    }
}

impl RoseTransport for NativeTransport {
    fn open(&self) -> BoxFuture<'_, Result<(MessageSink, MessageStream), UcError>> {
        Box::pin(async move {
            let timeout = self.settings.connect_timeout;
            match tokio::time::timeout(timeout, self.open_channel()).await {
                Ok(result) => result,
                Err(_) => Err(UcError::Connect {
                    address: self.address(),
                    reason: format!("no logged-on connection within {timeout:?}"),
                }),
            }
        })
    }
}

/// Names this machine to the server's administrative view of connections.
fn client_device_id() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The invoke's text, encoded as one that carries a secret (`asnLoginV2`
/// does): [`RoseMessage::invoke_json_wiped`].
fn invoke_json<A: Serialize>(id: i64, operation: Operation, argument: &A) -> String {
    RoseMessage::invoke_json_wiped(id, operation, argument)
}

/// Sends one invoke and waits for its answer; events arriving meanwhile are
/// dropped (the client subscribes after the logon).
async fn call<A: Serialize, R: serde::de::DeserializeOwned>(
    sink: &mut MessageSink,
    stream: &mut MessageStream,
    id: i64,
    operation: Operation,
    argument: &A,
    user: &str,
) -> Result<R, UcError> {
    sink.send(invoke_json(id, operation, argument)).await?;
    loop {
        let Some(text) = stream.next().await else {
            return Err(UcError::ConnectionLost {
                operation: operation.name,
            });
        };
        let text = text?;
        match RoseMessage::from_json(&text) {
            Ok(RoseMessage::Invoke(i)) if i.invoke_id == EVENT_INVOKE_ID => continue,
            Ok(_) => return answer_of(operation, id, &text, user),
            Err(e) => {
                tracing::warn!(
                    "undecodable message from the UCServer ignored: {}",
                    ews_toolkit::server_text::sanitized(&e.to_string())
                );
            }
        }
    }
}

/// The decoded result of `operation`'s answer `text` to invoke `id`.
fn answer_of<R: serde::de::DeserializeOwned>(
    operation: Operation,
    id: i64,
    text: &str,
    user: &str,
) -> Result<R, UcError> {
    let message = RoseMessage::from_json(text).map_err(|e| UcError::Protocol {
        operation: operation.name,
        reason: format!(
            "the answer does not decode: {}",
            ews_toolkit::server_text::sanitized(&e.to_string())
        ),
    })?;
    // The server's text goes into the error only sanitised (issue #15).
    let unexpected = || UcError::Protocol {
        operation: operation.name,
        reason: format!(
            "expected the answer to invoke {id}, got {:.200}",
            ews_toolkit::server_text::sanitize(text)
        ),
    };
    match message {
        RoseMessage::Result(r) if r.invoke_id == id => {
            let raw = r.result.map(|b| b.result);
            let text = raw.as_deref().map_or("{}", RawValue::get);
            serde_json::from_str(text).map_err(|e| UcError::Protocol {
                operation: operation.name,
                reason: format!(
                    "result does not decode: {}",
                    ews_toolkit::server_text::sanitized(&e.to_string())
                ),
            })
        }
        RoseMessage::Error(e) if e.invoked_id == id => {
            let error: AsnRequestError = e
                .error
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or(AsnRequestError {
                    error_detail: -1,
                    error_string: "error without AsnRequestError".into(),
                });
            let message = ews_toolkit::server_text::sanitized(&error.error_string);
            if operation == LOGIN_V2 {
                // iErrorDetail is an AsnLogonErrorEnum value, as for createsession.
                Err(UcError::LogonFailed {
                    user: user.to_owned(),
                    detail: error.error_detail,
                    message,
                })
            } else {
                Err(UcError::Request {
                    operation: operation.name,
                    detail: error.error_detail,
                    message,
                })
            }
        }
        RoseMessage::Reject(r) if r.invoked_id == RejectInvokedId::InvokedId(id) => {
            Err(UcError::rejected(operation.name, r.reject, r.details))
        }
        RoseMessage::Reject(r) if r.invoked_id == RejectInvokedId::Null(()) => {
            Err(UcError::rejected(operation.name, r.reject, r.details))
        }
        _ => Err(unexpected()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_success_alternative_is_read_in_the_asn1_spelling_and_the_corrected_one() {
        for text in [
            r#"{"succceeded":{"u8sLoggedInUser":"a"}}"#,
            r#"{"succeeded":{"u8sLoggedInUser":"a"}}"#,
        ] {
            let result: AsnLoginV2Result = serde_json::from_str(text).unwrap();
            assert!(matches!(result, AsnLoginV2Result::Succeeded(_)), "{text}");
        }
        let written = serde_json::to_string(&AsnLoginV2Result::Succeeded(
            AsnLoginV2ResultSuccess::default(),
        ))
        .unwrap();
        assert_eq!(written, r#"{"succceeded":{}}"#);
    }

    #[test]
    fn the_basic_credential_never_shows_in_debug_output() {
        let credential = AsnAuthBasicCredential::new("admin", "s3cr3t");
        assert_eq!(credential.decode(), Some(("admin".into(), "s3cr3t".into())));
        let text = format!("{credential:?}");
        assert!(!text.contains(credential.credential.expose()), "{text}");
    }

    #[test]
    fn an_http_answer_on_the_native_port_names_the_likely_cause() {
        let error = framing_error(&FramingError::NotJson(b'H')).to_string();
        assert!(error.contains("7224/7225"), "{error}");
    }
}
