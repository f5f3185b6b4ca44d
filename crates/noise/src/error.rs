//! One error enum per operation. Peer misbehaviour (`Decrypt`, `Truncated`, …) is kept apart
//! from misuse by the caller (`PayloadTooLong`, …). No error carries key material.

use crate::handshake::HandshakeFault;
use crate::verify::ServerKeyRejected;

/// [`crate::encode_frame`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeFrameError {
    /// The message does not fit a frame.
    #[error("message of {len} bytes exceeds the frame limit of {max}")]
    TooLong { len: usize, max: usize },
}

/// [`crate::FrameDecoder`] rejected the input. The stream cannot be resynchronised after this.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeFrameError {
    /// The header declares more than the decoder's maximum; nothing was allocated for it.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLong { len: usize, max: usize },
    /// A previous call failed; the decoder no longer knows where frames start.
    #[error("the frame decoder failed earlier and cannot continue")]
    Failed,
}

/// [`crate::FrameDecoder::with_max_len`] was given a maximum above 65 535.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("frame limit {max} exceeds the Noise maximum of {limit}")]
pub struct FrameLimitError {
    pub max: usize,
    pub limit: usize,
}

/// [`crate::Transport::encrypt`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The plaintext is larger than one transport message can carry.
    #[error("plaintext of {len} bytes exceeds the transport limit of {max}")]
    TooLong { len: usize, max: usize },
    /// Every nonce of the sending key has been used; reconnect.
    #[error("sending nonces exhausted")]
    NonceExhausted,
    /// The AEAD refused to encrypt (cannot happen below the AES-GCM length bound).
    #[error("encryption failed")]
    Encrypt,
}

/// [`crate::Transport::decrypt`] failed. The receiving state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveError {
    /// The ciphertext is larger than a Noise message.
    #[error("message of {len} bytes exceeds the limit of {max}")]
    TooLong { len: usize, max: usize },
    /// Authentication failed: altered, truncated, replayed or reordered message.
    #[error("message authentication failed")]
    Decrypt,
    /// Every nonce of the receiving key has been used; reconnect.
    #[error("receiving nonces exhausted")]
    NonceExhausted,
}

/// How a peer's handshake message was malformed. Shared by the handshake errors below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeMessageError {
    /// The frame holds no message type byte.
    #[error("empty handshake message")]
    Empty,
    /// The type byte is not the one this step of the protocol expects.
    #[error("unexpected handshake message type {0:#04x}")]
    UnexpectedType(u8),
    /// The message is shorter than its pattern requires.
    #[error("truncated handshake message")]
    Truncated,
    /// A tag did not verify: altered message, wrong prologue, or keys that do not match.
    #[error("handshake message authentication failed")]
    Decrypt,
    /// The peer sent a low-order X25519 key.
    #[error("weak public key in handshake")]
    WeakKey,
    /// The message exceeds the Noise maximum.
    #[error("handshake message too long")]
    TooLong,
}

impl HandshakeMessageError {
    pub(crate) fn from_fault(fault: HandshakeFault) -> Self {
        match fault {
            HandshakeFault::Truncated => Self::Truncated,
            HandshakeFault::WeakKey => Self::WeakKey,
            HandshakeFault::TooLong => Self::TooLong,
            // Out-of-turn or missing keys cannot follow from peer bytes under the typed phases;
            // treating them as an authentication failure aborts the handshake all the same.
            HandshakeFault::Decrypt | HandshakeFault::OutOfTurn | HandshakeFault::MissingKey => {
                Self::Decrypt
            }
        }
    }
}

/// [`crate::ClientHandshake::start`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The cached server key is a low-order point; drop it and start with XX.
    #[error("the cached server key is not a usable X25519 key")]
    WeakServerKey,
}

/// [`crate::ClientHandshake::read_response`] failed; the handshake is over.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadResponseError {
    /// The server's message is malformed or does not authenticate.
    #[error("bad server handshake message: {0}")]
    Message(#[from] HandshakeMessageError),
}

/// [`crate::UnauthenticatedServer::authenticate`] failed; the handshake is over.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthenticateError {
    /// The verifier did not accept the server's key and certificate. Nothing was sent.
    #[error(transparent)]
    Rejected(#[from] ServerKeyRejected),
    /// The client payload exceeds [`crate::limits::MAX_HANDSHAKE_PAYLOAD_LEN`].
    #[error("client payload of {len} bytes exceeds the limit of {max}")]
    PayloadTooLong { len: usize, max: usize },
    /// Writing the final message failed (an internal fault, never peer input).
    #[error("could not write the final handshake message")]
    Write,
}

/// [`crate::ServerConfig::new`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ServerConfigError {
    /// The certificate does not fit the server's handshake message.
    #[error("certificate of {len} bytes exceeds the handshake payload limit of {max}")]
    CertificateTooLong { len: usize, max: usize },
}

/// [`crate::ServerHandshake::accept`] failed; nothing was stored and nothing should be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AcceptError {
    /// The client's first message is malformed.
    #[error("bad client first message: {0}")]
    Message(#[from] HandshakeMessageError),
}

/// [`crate::ServerHandshake::finish`] failed; the handshake is over and left no trace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FinishError {
    /// The client's final message is malformed or does not authenticate (a replayed first
    /// message ends here: the replayer cannot produce it).
    #[error("bad client final message: {0}")]
    Message(#[from] HandshakeMessageError),
}
