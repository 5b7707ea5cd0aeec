//! The simulator's NTLMv2 acceptor, fed messages written by sspi's client:
//! what a real Exchange refuses (tampered MIC or message, wrong proof, a
//! binding of another connection) it refuses too, and for the named reason.

use base64::Engine as _;
use ews_toolkit::sim::auth::{
    Account, AuthFailure, AuthOutcome, AuthPolicy, Authenticator, ConnectionAuth,
};
use ews_toolkit::sim::tls::TestPki;
use ews_toolkit::transport::tls_server_end_point;
use http::HeaderValue;
use sspi::{
    AuthIdentity, AuthIdentityBuffers, BufferType, ClientRequestFlags, CredentialUse,
    DataRepresentation, Ntlm, SecurityBuffer, Sspi, SspiImpl, Username,
};

const PASSWORD: &str = "Corr3ct-Horse!";
const MIC_OFFSET: usize = 72;

struct Client {
    ntlm: Ntlm,
    handle: Option<AuthIdentityBuffers>,
}

impl Client {
    fn new(password: &str, binding: Option<Vec<u8>>) -> Client {
        let mut ntlm = Ntlm::new();
        if let Some(binding) = binding {
            ntlm.set_channel_bindings(&binding);
        }
        let identity = AuthIdentity {
            username: Username::parse("CONTOSO\\svc-calendar").unwrap(),
            password: password.to_string().into(),
        };
        let handle = ntlm
            .acquire_credentials_handle()
            .with_credential_use(CredentialUse::Outbound)
            .with_auth_data(&identity)
            .execute(&mut ntlm)
            .unwrap()
            .credentials_handle;
        Client { ntlm, handle }
    }

    fn step(&mut self, input: Option<Vec<u8>>) -> Vec<u8> {
        let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
        let mut input = input.map(|token| vec![SecurityBuffer::new(token, BufferType::Token)]);
        let mut builder = self
            .ntlm
            .initialize_security_context()
            .with_credentials_handle(&mut self.handle)
            .with_context_requirements(
                ClientRequestFlags::INTEGRITY | ClientRequestFlags::CONFIDENTIALITY,
            )
            .with_target_data_representation(DataRepresentation::Native)
            .with_output(&mut output);
        if let Some(input) = input.as_mut() {
            builder = builder.with_input(input);
        }
        self.ntlm
            .initialize_security_context_impl(&mut builder)
            .unwrap()
            .resolve_to_result()
            .unwrap();
        std::mem::take(&mut output[0].buffer)
    }
}

fn header(scheme: &str, message: &[u8]) -> HeaderValue {
    let token = base64::engine::general_purpose::STANDARD.encode(message);
    HeaderValue::from_str(&format!("{scheme} {token}")).unwrap()
}

struct Acceptor {
    pki: TestPki,
    auth: Authenticator,
}

fn acceptor(extended_protection: bool) -> Acceptor {
    let pki = TestPki::generate(&[]).unwrap();
    let mut policy = AuthPolicy::new(vec![Account::new("CONTOSO", "svc-calendar", PASSWORD)]);
    policy.extended_protection = extended_protection;
    policy.server_certificate = Some(pki.leaf_der().to_vec());
    Acceptor {
        pki,
        auth: Authenticator::new(policy),
    }
}

/// Runs NEGOTIATE/CHALLENGE on `connection` and returns the client's
/// AUTHENTICATE message.
fn authenticate_message(
    acceptor: &Acceptor,
    connection: &mut ConnectionAuth,
    client: &mut Client,
) -> Vec<u8> {
    let negotiate = client.step(None);
    let outcome = acceptor
        .auth
        .authenticate(connection, Some(&header("NTLM", &negotiate)));
    let AuthOutcome::Unauthorized {
        www_authenticate,
        failure: None,
    } = outcome
    else {
        panic!("expected a challenge, got {outcome:?}");
    };
    let challenge = www_authenticate[0]
        .to_str()
        .unwrap()
        .strip_prefix("NTLM ")
        .unwrap();
    let challenge = base64::engine::general_purpose::STANDARD
        .decode(challenge)
        .unwrap();
    client.step(Some(challenge))
}

fn binding_of(pki: &TestPki) -> Option<Vec<u8>> {
    Some(tls_server_end_point(pki.leaf_der()))
}

fn refusal(outcome: AuthOutcome) -> AuthFailure {
    match outcome {
        AuthOutcome::Unauthorized {
            failure: Some(failure),
            ..
        } => failure,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn an_untampered_handshake_authenticates_the_connection_for_later_requests() {
    let acceptor = acceptor(true);
    let mut connection = acceptor.auth.new_connection(true);
    let mut client = Client::new(PASSWORD, binding_of(&acceptor.pki));
    let message = authenticate_message(&acceptor, &mut connection, &mut client);
    let outcome = acceptor
        .auth
        .authenticate(&mut connection, Some(&header("NTLM", &message)));
    assert_eq!(
        outcome,
        AuthOutcome::Allowed {
            user: "CONTOSO\\svc-calendar".into()
        }
    );
    // Connection-scoped: the next request needs no Authorization header.
    assert!(matches!(
        acceptor.auth.authenticate(&mut connection, None),
        AuthOutcome::Allowed { .. }
    ));
    // ...but a new connection does.
    let mut other = acceptor.auth.new_connection(true);
    assert_eq!(
        refusal_or_anonymous(acceptor.auth.authenticate(&mut other, None)),
        None
    );
}

fn refusal_or_anonymous(outcome: AuthOutcome) -> Option<AuthFailure> {
    match outcome {
        AuthOutcome::Unauthorized { failure, .. } => failure,
        other => panic!("expected a 401, got {other:?}"),
    }
}

#[test]
fn a_tampered_mic_is_refused() {
    let acceptor = acceptor(false);
    let mut connection = acceptor.auth.new_connection(true);
    let mut client = Client::new(PASSWORD, None);
    let mut message = authenticate_message(&acceptor, &mut connection, &mut client);
    message[MIC_OFFSET] ^= 0x01;
    let outcome = acceptor
        .auth
        .authenticate(&mut connection, Some(&header("NTLM", &message)));
    assert_eq!(refusal(outcome), AuthFailure::MicMismatch);
    assert_eq!(acceptor.auth.counters().ntlm_authenticated, 0);
}

#[test]
fn a_message_changed_outside_the_mic_is_refused_by_the_mic() {
    let acceptor = acceptor(false);
    let mut connection = acceptor.auth.new_connection(true);
    let mut client = Client::new(PASSWORD, None);
    let mut message = authenticate_message(&acceptor, &mut connection, &mut client);
    // Drop the "sign" negotiate flag (byte 60 holds the low flag bits): a
    // downgrade that only the MIC can reveal.
    message[60] &= !0x10;
    let outcome = acceptor
        .auth
        .authenticate(&mut connection, Some(&header("NTLM", &message)));
    assert_eq!(refusal(outcome), AuthFailure::MicMismatch);
}

#[test]
fn a_wrong_password_fails_the_proof() {
    let acceptor = acceptor(false);
    let mut connection = acceptor.auth.new_connection(true);
    let mut client = Client::new("wrong", None);
    let message = authenticate_message(&acceptor, &mut connection, &mut client);
    let outcome = acceptor
        .auth
        .authenticate(&mut connection, Some(&header("NTLM", &message)));
    assert_eq!(
        refusal(outcome),
        AuthFailure::WrongPassword("CONTOSO\\svc-calendar".into())
    );
}

#[test]
fn a_channel_binding_of_another_certificate_is_refused() {
    let acceptor = acceptor(true);
    let relay = TestPki::generate(&[]).unwrap();
    let mut connection = acceptor.auth.new_connection(true);
    let mut client = Client::new(PASSWORD, binding_of(&relay));
    let message = authenticate_message(&acceptor, &mut connection, &mut client);
    let outcome = acceptor
        .auth
        .authenticate(&mut connection, Some(&header("NTLM", &message)));
    assert_eq!(refusal(outcome), AuthFailure::ChannelBindingMismatch);
}

#[test]
fn without_extended_protection_a_missing_binding_is_accepted() {
    let acceptor = acceptor(false);
    let mut connection = acceptor.auth.new_connection(true);
    let mut client = Client::new(PASSWORD, None);
    let message = authenticate_message(&acceptor, &mut connection, &mut client);
    let outcome = acceptor
        .auth
        .authenticate(&mut connection, Some(&header("NTLM", &message)));
    assert!(
        matches!(outcome, AuthOutcome::Allowed { .. }),
        "{outcome:?}"
    );
}

#[test]
fn an_authenticate_message_without_a_challenge_on_this_connection_is_refused() {
    let acceptor = acceptor(false);
    let mut first = acceptor.auth.new_connection(true);
    let mut client = Client::new(PASSWORD, None);
    let message = authenticate_message(&acceptor, &mut first, &mut client);
    // Replayed on another connection, which never saw the challenge.
    let mut second = acceptor.auth.new_connection(true);
    let outcome = acceptor
        .auth
        .authenticate(&mut second, Some(&header("NTLM", &message)));
    assert_eq!(refusal(outcome), AuthFailure::OutOfSequence);
}
