//! The message type byte that starts every handshake frame (see the crate docs).

/// Which Noise pattern a completed handshake used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HandshakePattern {
    /// First contact: `Noise_XX_25519_AESGCM_SHA256`.
    Xx,
    /// Resumption with the cached server key: `Noise_IK_25519_AESGCM_SHA256`.
    Ik,
    /// The cached key was stale: `Noise_XXfallback_25519_AESGCM_SHA256`.
    XxFallback,
}

/// Client → server: XX message 1 (`-> e`).
pub const XX_HELLO: u8 = 0x01;
/// Client → server: IK message 1 (`-> e, es, s, ss`).
pub const IK_HELLO: u8 = 0x02;
/// Server → client: XX message 2 (`<- e, ee, s, es`), payload = server certificate.
pub const XX_RESPONSE: u8 = 0x11;
/// Server → client: IK message 2 (`<- e, ee, se`), payload = server certificate.
pub const IK_RESPONSE: u8 = 0x12;
/// Server → client: XXfallback message 1 (`-> e, ee, s, se`, the server initiating),
/// payload = server certificate.
pub const FALLBACK_RESPONSE: u8 = 0x13;
/// Client → server: XX message 3 (`-> s, se`), payload = client payload.
pub const XX_FINISH: u8 = 0x21;
/// Client → server: the first IK transport message, payload = client payload.
pub const IK_FINISH: u8 = 0x22;
/// Client → server: XXfallback message 2 (`<- s, es`, the client responding),
/// payload = client payload.
pub const FALLBACK_FINISH: u8 = 0x23;

/// Default prologue: both sides mix it into `h`, so a peer speaking another protocol version
/// fails at the first encrypted payload.
pub const DEFAULT_PROLOGUE: &[u8] = b"Confianza Noise Pipes v1";

/// Splits a handshake frame into its type byte and Noise message.
pub(crate) fn split_type(frame: &[u8]) -> Result<(u8, &[u8]), crate::HandshakeMessageError> {
    match frame.split_first() {
        Some((&kind, message)) => {
            if message.len() > crate::limits::MAX_HANDSHAKE_MESSAGE_LEN {
                return Err(crate::HandshakeMessageError::TooLong);
            }
            Ok((kind, message))
        }
        None => Err(crate::HandshakeMessageError::Empty),
    }
}

/// `kind || message`, or `None` if that would not fit a frame.
pub(crate) fn with_type(kind: u8, message: &[u8]) -> Option<Vec<u8>> {
    if message.len() > crate::limits::MAX_HANDSHAKE_MESSAGE_LEN {
        return None;
    }
    let mut frame = Vec::with_capacity(1 + message.len());
    frame.push(kind);
    frame.extend_from_slice(message);
    Some(frame)
}
