//! The HTTP Negotiate handshake with Kerberos in SPNEGO (RFC 4559, RFC 4178).
