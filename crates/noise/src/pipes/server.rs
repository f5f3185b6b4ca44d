//! The server side of Noise Pipes: `ServerHandshake::accept` → `ServerHandshake::finish` →
//! `ServerEstablished`.

use rand_core::CryptoRng;

use crate::error::{AcceptError, FinishError, HandshakeMessageError, ServerConfigError};
use crate::handshake::{HandshakeFault, HandshakeInit, HandshakeState, IK, XX, XX_FALLBACK};
use crate::keys::{PUBLIC_KEY_LEN, PublicKey, StaticKeyPair};
use crate::limits::{MAX_HANDSHAKE_PAYLOAD_LEN, MAX_HELLO_FRAME_LEN, TAG_LEN};
use crate::transport::Transport;
use crate::wire::{self, HandshakePattern};

/// The server's static key, the certificate binding it to the server's name, and the prologue.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    static_key: StaticKeyPair,
    certificate: Vec<u8>,
    prologue: Vec<u8>,
}

impl ServerConfig {
    /// A config with [`wire::DEFAULT_PROLOGUE`]. `certificate` is sent, encrypted, in every
    /// server handshake message; it must fit [`MAX_HANDSHAKE_PAYLOAD_LEN`].
    pub fn new(static_key: StaticKeyPair, certificate: Vec<u8>) -> Result<Self, ServerConfigError> {
        if certificate.len() > MAX_HANDSHAKE_PAYLOAD_LEN {
            return Err(ServerConfigError::CertificateTooLong {
                len: certificate.len(),
                max: MAX_HANDSHAKE_PAYLOAD_LEN,
            });
        }
        Ok(Self {
            static_key,
            certificate,
            prologue: wire::DEFAULT_PROLOGUE.to_vec(),
        })
    }

    /// Replaces the prologue (both sides must use the same one).
    #[must_use]
    pub fn with_prologue(mut self, prologue: &[u8]) -> Self {
        self.prologue = prologue.to_vec();
        self
    }

    /// The server's static public key.
    #[must_use]
    pub fn public_key(&self) -> PublicKey {
        self.static_key.public_key()
    }
}

enum ServerStep {
    /// Expecting XX message 3 or XXfallback message 2.
    Read {
        handshake: Box<HandshakeState>,
        kind: u8,
    },
    /// IK is complete on our side; expecting the client's first transport message.
    Confirm {
        transport: Box<Transport>,
        client_key: PublicKey,
    },
}

/// A server that answered a client's first message and waits for the client's final one.
///
/// It holds everything in memory and has changed nothing else: dropping it (on error, timeout or
/// disconnect) leaves no trace. This is what makes a replayed IK first message harmless: the
/// replayer gets a response it cannot use, and `finish` needs keys only the real client has.
pub struct ServerHandshake {
    step: ServerStep,
    pattern: HandshakePattern,
}

impl core::fmt::Debug for ServerHandshake {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ServerHandshake")
            .field("pattern", &self.pattern)
            .finish_non_exhaustive()
    }
}

impl ServerHandshake {
    /// Reads a client's first handshake frame (at most [`MAX_HELLO_FRAME_LEN`] bytes) and
    /// writes the response frame's contents.
    ///
    /// An XX hello gets an XX response. An IK hello that authenticates to this server's key
    /// gets an IK response; one that does not (the client cached an old or wrong key) gets an
    /// XXfallback response carrying the current key and certificate.
    pub fn accept(
        config: &ServerConfig,
        frame: &[u8],
        rng: &mut impl CryptoRng,
    ) -> Result<(Self, Vec<u8>), AcceptError> {
        let ephemeral = StaticKeyPair::generate(rng);
        Self::accept_with_ephemeral(config, frame, ephemeral)
    }

    fn accept_with_ephemeral(
        config: &ServerConfig,
        frame: &[u8],
        ephemeral: StaticKeyPair,
    ) -> Result<(Self, Vec<u8>), AcceptError> {
        if frame.len() > MAX_HELLO_FRAME_LEN {
            return Err(HandshakeMessageError::TooLong.into());
        }
        let (kind, message) = wire::split_type(frame)?;
        let fault = HandshakeMessageError::from_fault;
        let init = |pattern, initiator, re| HandshakeInit {
            pattern,
            initiator,
            prologue: &config.prologue,
            s: config.static_key.clone(),
            e: ephemeral.clone(),
            rs: None,
            re,
        };
        match kind {
            wire::XX_HELLO => {
                // `e` and nothing else: our hellos carry no payload.
                if message.len() > PUBLIC_KEY_LEN {
                    return Err(HandshakeMessageError::TooLong.into());
                }
                let mut handshake = HandshakeState::new(init(XX, false, None)).map_err(fault)?;
                handshake.read_message(message).map_err(fault)?;
                let response = handshake
                    .write_message(&config.certificate)
                    .map_err(fault)?;
                let step = ServerStep::Read {
                    handshake: Box::new(handshake),
                    kind: wire::XX_FINISH,
                };
                Self::respond(step, HandshakePattern::Xx, wire::XX_RESPONSE, &response)
            }
            wire::IK_HELLO => {
                // e (32) + encrypted s (48) + the empty payload's tag (16).
                if message.len() < PUBLIC_KEY_LEN + PUBLIC_KEY_LEN + TAG_LEN + TAG_LEN {
                    return Err(HandshakeMessageError::Truncated.into());
                }
                let mut handshake = HandshakeState::new(init(IK, false, None)).map_err(fault)?;
                match handshake.read_message(message) {
                    Ok(_empty_payload) => {
                        let client_key = handshake
                            .remote_static()
                            .ok_or(HandshakeMessageError::Decrypt)?;
                        let response = handshake
                            .write_message(&config.certificate)
                            .map_err(fault)?;
                        let transport =
                            Box::new(Transport::from_split(handshake.split().map_err(fault)?));
                        let step = ServerStep::Confirm {
                            transport,
                            client_key,
                        };
                        Self::respond(step, HandshakePattern::Ik, wire::IK_RESPONSE, &response)
                    }
                    Err(HandshakeFault::Decrypt) => {
                        // The client's cached key is not ours. Its ephemeral key is the
                        // pre-message `<- e` of XXfallback, which we initiate.
                        let client_ephemeral = message
                            .get(..PUBLIC_KEY_LEN)
                            .and_then(PublicKey::from_slice)
                            .ok_or(HandshakeMessageError::Truncated)?;
                        let mut handshake =
                            HandshakeState::new(init(XX_FALLBACK, true, Some(client_ephemeral)))
                                .map_err(fault)?;
                        let response = handshake
                            .write_message(&config.certificate)
                            .map_err(fault)?;
                        let step = ServerStep::Read {
                            handshake: Box::new(handshake),
                            kind: wire::FALLBACK_FINISH,
                        };
                        Self::respond(
                            step,
                            HandshakePattern::XxFallback,
                            wire::FALLBACK_RESPONSE,
                            &response,
                        )
                    }
                    Err(other) => Err(fault(other).into()),
                }
            }
            other => Err(HandshakeMessageError::UnexpectedType(other).into()),
        }
    }

    fn respond(
        step: ServerStep,
        pattern: HandshakePattern,
        kind: u8,
        message: &[u8],
    ) -> Result<(Self, Vec<u8>), AcceptError> {
        let frame = wire::with_type(kind, message).ok_or(HandshakeMessageError::TooLong)?;
        Ok((Self { step, pattern }, frame))
    }

    /// Which pattern this handshake follows.
    #[must_use]
    pub fn pattern(&self) -> HandshakePattern {
        self.pattern
    }

    /// Reads the client's final frame. Only now is the client's static key proven for this
    /// connection and its payload released.
    pub fn finish(self, frame: &[u8]) -> Result<ServerEstablished, FinishError> {
        let (kind, message) = wire::split_type(frame)?;
        let fault = HandshakeMessageError::from_fault;
        let (transport, static_key, payload) = match self.step {
            ServerStep::Read {
                mut handshake,
                kind: expected,
            } => {
                if kind != expected {
                    return Err(HandshakeMessageError::UnexpectedType(kind).into());
                }
                let payload = handshake.read_message(message).map_err(fault)?;
                let static_key = handshake
                    .remote_static()
                    .ok_or(HandshakeMessageError::Decrypt)?;
                (
                    Transport::from_split(handshake.split().map_err(fault)?),
                    static_key,
                    payload,
                )
            }
            ServerStep::Confirm {
                mut transport,
                client_key,
            } => {
                if kind != wire::IK_FINISH {
                    return Err(HandshakeMessageError::UnexpectedType(kind).into());
                }
                let payload = transport
                    .decrypt(message)
                    .map_err(|_| HandshakeMessageError::Decrypt)?;
                (*transport, client_key, payload)
            }
        };
        Ok(ServerEstablished {
            transport,
            client: ClientIdentity {
                static_key,
                payload,
                pattern: self.pattern,
            },
        })
    }
}

/// The client as the handshake proved it: it holds the private half of `static_key`.
///
/// Whether that key belongs to a registered device is the caller's check (the server keeps the
/// public keys registered at enrollment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    static_key: PublicKey,
    payload: Vec<u8>,
    pattern: HandshakePattern,
}

impl ClientIdentity {
    /// The client's static key.
    #[must_use]
    pub fn static_key(&self) -> &PublicKey {
        &self.static_key
    }

    /// The payload of the client's final message.
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The pattern the handshake used.
    #[must_use]
    pub fn pattern(&self) -> HandshakePattern {
        self.pattern
    }
}

/// The server's end of an established channel.
#[derive(Debug)]
#[non_exhaustive]
pub struct ServerEstablished {
    /// The channel.
    pub transport: Transport,
    /// Who is at the other end.
    pub client: ClientIdentity,
}
