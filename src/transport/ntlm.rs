//! The client half of an NTLMv2 handshake, done by `sspi`: it writes the
//! NEGOTIATE message, and from the server's CHALLENGE the AUTHENTICATE message
//! with MIC and (over TLS) the `tls-server-end-point` channel binding.

use sspi::{
    AuthIdentity, AuthIdentityBuffers, BufferType, ClientRequestFlags, CredentialUse,
    DataRepresentation, Ntlm, SecurityBuffer, Sspi, SspiImpl, Username,
};

use super::Credentials;

/// One handshake: a fresh context per connection (NTLM authenticates the
/// connection, not the request).
pub(crate) struct NtlmHandshake {
    ntlm: Ntlm,
    credentials_handle: Option<AuthIdentityBuffers>,
}

/// sspi's error, reduced to a message that carries no secret.
pub(crate) type NtlmError = String;

impl NtlmHandshake {
    /// `channel_binding` is the `tls-server-end-point:`+hash application data,
    /// `None` on a plain-HTTP connection or when binding is switched off.
    pub(crate) fn new(
        credentials: &Credentials,
        channel_binding: Option<&[u8]>,
    ) -> Result<Self, NtlmError> {
        let username = Username::parse(credentials.username())
            .map_err(|e| format!("user name {:?}: {e}", credentials.username()))?;
        let identity = AuthIdentity {
            username,
            password: credentials.password().expose().to_string().into(),
        };
        let mut ntlm = Ntlm::new();
        if let Some(token) = channel_binding {
            ntlm.set_channel_bindings(token);
        }
        let acquired = ntlm
            .acquire_credentials_handle()
            .with_credential_use(CredentialUse::Outbound)
            .with_auth_data(&identity)
            .execute(&mut ntlm)
            .map_err(|e| format!("NTLM credentials: {}", e.description))?;
        Ok(NtlmHandshake {
            ntlm,
            credentials_handle: acquired.credentials_handle,
        })
    }

    /// The NEGOTIATE (type 1) message.
    pub(crate) fn negotiate(&mut self) -> Result<Vec<u8>, NtlmError> {
        self.step(None)
    }

    /// The AUTHENTICATE (type 3) message answering `challenge` (type 2).
    pub(crate) fn authenticate(&mut self, challenge: &[u8]) -> Result<Vec<u8>, NtlmError> {
        self.step(Some(challenge))
    }

    fn step(&mut self, input: Option<&[u8]>) -> Result<Vec<u8>, NtlmError> {
        let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
        let mut input_buffers =
            input.map(|token| vec![SecurityBuffer::new(token.to_vec(), BufferType::Token)]);
        let mut builder = self
            .ntlm
            .initialize_security_context()
            .with_credentials_handle(&mut self.credentials_handle)
            .with_context_requirements(
                ClientRequestFlags::INTEGRITY | ClientRequestFlags::CONFIDENTIALITY,
            )
            .with_target_data_representation(DataRepresentation::Native)
            .with_output(&mut output);
        if let Some(buffers) = input_buffers.as_mut() {
            builder = builder.with_input(buffers);
        }
        self.ntlm
            .initialize_security_context_impl(&mut builder)
            .and_then(|mut generator| generator.resolve_to_result())
            .map_err(|e| format!("NTLM: {}", e.description))?;
        Ok(std::mem::take(&mut output[0].buffer))
    }
}
