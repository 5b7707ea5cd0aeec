//! One Kerberos-authenticated HTTP exchange on a connection (RFC 4559): the
//! request goes with `Authorization: Negotiate <AP-REQ>` at once (Kerberos
//! needs no challenge), and the final answer must carry the server's
//! token, which is verified before the answer is believed.

use std::sync::atomic::Ordering;

use http::StatusCode;
use hyper::body::Incoming;

use super::handshake::{client_principal, krb_error_code, KerberosHandshake};
use super::kdc::{locate, TcpKdcClient};
use super::KerberosFailure;
use crate::transport::connection::Connection;
use crate::transport::{
    base64_encode, find_challenge, offered_schemes, AuthMechanism, AuthScheme, Credentials,
    HttpRequest, HttpTransport, Origin, TransportError,
};

/// `KRB_AP_ERR_SKEW` (RFC 4120 7.5.9).
const KRB_AP_ERR_SKEW: u32 = 37;

/// Why a Kerberos exchange ended without an answer.
pub(crate) enum KerberosError {
    /// Kerberos itself failed; [`KerberosFailure::allows_ntlm_fallback`]
    /// says whether NTLM may be tried instead.
    Failure(KerberosFailure),
    /// As `Failure`, and the server closed the connection with its 401.
    FailureOnClosedConnection(KerberosFailure),
    /// The connection failed, whatever the mechanism.
    Transport(TransportError),
}

impl From<TransportError> for KerberosError {
    fn from(error: TransportError) -> Self {
        KerberosError::Transport(error)
    }
}

impl KerberosError {
    pub(crate) fn into_transport(self, origin: &Origin) -> TransportError {
        match self {
            KerberosError::Failure(failure) | KerberosError::FailureOnClosedConnection(failure) => {
                TransportError::Kerberos {
                    host: origin.host.clone(),
                    failure,
                }
            }
            KerberosError::Transport(error) => error,
        }
    }
}

impl HttpTransport {
    pub(crate) async fn kerberos_exchange(
        &self,
        connection: &mut Connection,
        origin: &Origin,
        request: &HttpRequest,
        credentials: &Credentials,
    ) -> Result<(http::response::Parts, Incoming), KerberosError> {
        let settings = &self.inner.config.kerberos;
        let principal = client_principal(credentials, settings.realm.as_deref())
            .map_err(KerberosError::Failure)?;
        let spn = settings
            .spn
            .clone()
            .unwrap_or_else(|| format!("HTTP/{}", origin.connect_host()));
        let kdcs = locate(settings, &principal.realm)
            .await
            .map_err(KerberosError::Failure)?;
        let kdc = TcpKdcClient::new(kdcs, settings.kdc_timeout);
        let (mut handshake, token) = {
            let credentials = credentials.clone();
            let spn = spn.clone();
            // The KDC round trips block: keep them off the runtime's workers.
            tokio::task::spawn_blocking(move || {
                KerberosHandshake::start(&credentials, &principal, &spn, &kdc)
            })
            .await
            .map_err(|e| {
                KerberosError::Failure(KerberosFailure::Other {
                    reason: format!("the Kerberos task failed: {e}"),
                })
            })?
            .map_err(KerberosError::Failure)?
        };
        let authorization = format!("Negotiate {}", base64_encode(&token));
        let (head, body) = self
            .round_trip_head(connection, origin, request, Some(&authorization))
            .await?;
        if head.status == StatusCode::UNAUTHORIZED {
            let server_token = find_challenge(&head.headers, AuthScheme::Kerberos);
            let offered = offered_schemes(&head.headers);
            // Read the 401's body so the connection can carry an NTLM fallback.
            let (_, keep_alive) = self.read_whole((head, body), origin).await?;
            let failure = if !offered
                .iter()
                .any(|scheme| scheme.eq_ignore_ascii_case("Negotiate"))
            {
                KerberosFailure::NotOffered { offered }
            } else if server_token.as_deref().and_then(krb_error_code) == Some(KRB_AP_ERR_SKEW) {
                KerberosFailure::ClockSkew
            } else {
                KerberosFailure::ServerRefused { spn }
            };
            if failure.allows_ntlm_fallback() && !keep_alive {
                // The fallback needs another connection; the caller retries
                // on one, and the remembered failure sends it straight to NTLM.
                return Err(KerberosError::FailureOnClosedConnection(failure));
            }
            return Err(KerberosError::Failure(failure));
        }
        // Any other answer was produced after authentication: it counts only
        // if the server proves it holds the service key.
        let Some(server_token) = find_challenge(&head.headers, AuthScheme::Kerberos) else {
            return Err(KerberosError::Failure(
                KerberosFailure::NoMutualAuthentication,
            ));
        };
        handshake
            .finish(&server_token)
            .map_err(KerberosError::Failure)?;
        connection.authenticated = true;
        self.inner
            .kerberos_handshakes
            .fetch_add(1, Ordering::Relaxed);
        self.record_auth(AuthMechanism::Kerberos, None);
        Ok((head, body))
    }
}
