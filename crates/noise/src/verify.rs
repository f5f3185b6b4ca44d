//! How a client decides to trust the server's static key.

use crate::keys::PublicKey;

/// The verifier refused the server's key; the reason is for logs and users, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("server key rejected: {reason}")]
pub struct ServerKeyRejected {
    reason: String,
}

impl ServerKeyRejected {
    /// A rejection with a human-readable reason.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }

    /// The reason given by the verifier.
    #[must_use]
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// Authenticates a server's Noise static key from the certificate it sent in its handshake.
///
/// The Noise handshake proves only that the server holds the private half of `static_key`;
/// the certificate (opaque to this crate; X.509 from the organisation's CA in Confianza) says
/// whose key it is. An implementation validates the certificate to its trust anchors at the
/// time it chooses and checks that it binds `static_key` to the expected server name.
///
/// Closures `Fn(&PublicKey, &[u8]) -> Result<(), ServerKeyRejected>` implement it.
pub trait ServerKeyVerifier {
    /// Accepts or rejects `static_key` with its `certificate`.
    fn verify_server_key(
        &self,
        static_key: &PublicKey,
        certificate: &[u8],
    ) -> Result<(), ServerKeyRejected>;
}

impl<F> ServerKeyVerifier for F
where
    F: Fn(&PublicKey, &[u8]) -> Result<(), ServerKeyRejected>,
{
    fn verify_server_key(
        &self,
        static_key: &PublicKey,
        certificate: &[u8],
    ) -> Result<(), ServerKeyRejected> {
        self(static_key, certificate)
    }
}
