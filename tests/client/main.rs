//! The EWS client against the Exchange simulator over real sockets: the
//! transport (TLS, NTLMv2 with channel binding, name resolution), an
//! independent NTLM acceptor, retries and back-off for every operation, and
//! the availability reader. One test binary (each binary is linked on its
//! own).

mod availability;
mod kerberos;
mod notifications;
mod ntlm_acceptor;
mod resilience;
mod resolve;
mod transport;
