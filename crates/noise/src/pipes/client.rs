//! The client side of Noise Pipes: `ClientHandshake` → `UnauthenticatedServer` →
//! `ClientEstablished`.

use rand_core::CryptoRng;

use crate::error::{AuthenticateError, HandshakeMessageError, ReadResponseError, StartError};
use crate::handshake::{
    HandshakeFault, HandshakeInit, HandshakeState, IK, SplitState, XX, XX_FALLBACK,
};
use crate::keys::{PublicKey, StaticKeyPair};
use crate::limits::MAX_HANDSHAKE_PAYLOAD_LEN;
use crate::transport::Transport;
use crate::verify::ServerKeyVerifier;
use crate::wire::{self, HandshakePattern};

/// A device's side of the connection: its registered static key and the prologue.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    static_key: StaticKeyPair,
    prologue: Vec<u8>,
}

impl ClientConfig {
    /// A config with [`wire::DEFAULT_PROLOGUE`].
    #[must_use]
    pub fn new(static_key: StaticKeyPair) -> Self {
        Self {
            static_key,
            prologue: wire::DEFAULT_PROLOGUE.to_vec(),
        }
    }

    /// Replaces the prologue (both sides must use the same one).
    #[must_use]
    pub fn with_prologue(mut self, prologue: &[u8]) -> Self {
        self.prologue = prologue.to_vec();
        self
    }

    /// The device's static public key.
    #[must_use]
    pub fn public_key(&self) -> PublicKey {
        self.static_key.public_key()
    }
}

enum ClientStep {
    /// Sent XX message 1; expecting XX message 2.
    Xx(HandshakeState),
    /// Sent IK message 1; expecting IK message 2 or an XXfallback message 1.
    Ik {
        handshake: HandshakeState,
        ephemeral: StaticKeyPair,
        cached_server_key: PublicKey,
    },
}

/// A client that has sent its first message and waits for the server's response.
pub struct ClientHandshake {
    step: ClientStep,
    static_key: StaticKeyPair,
    prologue: Vec<u8>,
}

impl core::fmt::Debug for ClientHandshake {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ClientHandshake").finish_non_exhaustive()
    }
}

impl ClientHandshake {
    /// Starts a handshake: IK when a server key is cached from an earlier connection, XX
    /// otherwise. Returns the state and the first handshake frame's contents (frame them with
    /// [`crate::encode_frame`]).
    pub fn start(
        config: &ClientConfig,
        cached_server_key: Option<PublicKey>,
        rng: &mut impl CryptoRng,
    ) -> Result<(Self, Vec<u8>), StartError> {
        let ephemeral = StaticKeyPair::generate(rng);
        Self::start_with_ephemeral(config, cached_server_key, ephemeral)
    }

    fn start_with_ephemeral(
        config: &ClientConfig,
        cached_server_key: Option<PublicKey>,
        ephemeral: StaticKeyPair,
    ) -> Result<(Self, Vec<u8>), StartError> {
        let init = |pattern, rs| HandshakeInit {
            pattern,
            initiator: true,
            prologue: &config.prologue,
            s: config.static_key.clone(),
            e: ephemeral.clone(),
            rs,
            re: None,
        };
        let weak = |_: HandshakeFault| StartError::WeakServerKey;
        let (step, kind, message) = match cached_server_key {
            None => {
                let mut handshake = HandshakeState::new(init(XX, None)).map_err(weak)?;
                // XX message 1 has no encryption yet: the payload stays empty.
                let message = handshake.write_message(&[]).map_err(weak)?;
                (ClientStep::Xx(handshake), wire::XX_HELLO, message)
            }
            Some(server_key) => {
                let mut handshake =
                    HandshakeState::new(init(IK, Some(server_key))).map_err(weak)?;
                // The IK payload would be replayable 0-RTT data: it stays empty, and the client's
                // payload travels in the finish message instead.
                let message = handshake.write_message(&[]).map_err(weak)?;
                let step = ClientStep::Ik {
                    handshake,
                    ephemeral,
                    cached_server_key: server_key,
                };
                (step, wire::IK_HELLO, message)
            }
        };
        // A hello is at most 96 bytes, so it always fits; the error arm is unreachable.
        let frame = wire::with_type(kind, &message).ok_or(StartError::WeakServerKey)?;
        let client = Self {
            step,
            static_key: config.static_key.clone(),
            prologue: config.prologue.clone(),
        };
        Ok((client, frame))
    }

    /// Which pattern the first message started (XX or IK).
    #[must_use]
    pub fn pattern(&self) -> HandshakePattern {
        match self.step {
            ClientStep::Xx(_) => HandshakePattern::Xx,
            ClientStep::Ik { .. } => HandshakePattern::Ik,
        }
    }

    /// Reads the server's response. The server's static key is now known but not yet trusted:
    /// the result must go through [`UnauthenticatedServer::authenticate`].
    pub fn read_response(self, frame: &[u8]) -> Result<UnauthenticatedServer, ReadResponseError> {
        let (kind, message) = wire::split_type(frame)?;
        let fault = HandshakeMessageError::from_fault;
        match (self.step, kind) {
            (ClientStep::Xx(mut handshake), wire::XX_RESPONSE) => {
                let certificate = handshake.read_message(message).map_err(fault)?;
                let static_key = handshake
                    .remote_static()
                    .ok_or(HandshakeMessageError::Decrypt)?;
                Ok(UnauthenticatedServer {
                    static_key,
                    certificate,
                    next: NextStep::Write {
                        handshake: Box::new(handshake),
                        kind: wire::XX_FINISH,
                    },
                    pattern: HandshakePattern::Xx,
                })
            }
            (
                ClientStep::Ik {
                    mut handshake,
                    cached_server_key,
                    ..
                },
                wire::IK_RESPONSE,
            ) => {
                let certificate = handshake.read_message(message).map_err(fault)?;
                let split = handshake.split().map_err(fault)?;
                Ok(UnauthenticatedServer {
                    static_key: cached_server_key,
                    certificate,
                    next: NextStep::Confirm(Box::new(split)),
                    pattern: HandshakePattern::Ik,
                })
            }
            (ClientStep::Ik { ephemeral, .. }, wire::FALLBACK_RESPONSE) => {
                // Roles reverse: the server initiates XXfallback, and the client responds with
                // its IK ephemeral as the pre-message `<- e`.
                let mut handshake = HandshakeState::new(HandshakeInit {
                    pattern: XX_FALLBACK,
                    initiator: false,
                    prologue: &self.prologue,
                    s: self.static_key,
                    e: ephemeral,
                    rs: None,
                    re: None,
                })
                .map_err(fault)?;
                let certificate = handshake.read_message(message).map_err(fault)?;
                let static_key = handshake
                    .remote_static()
                    .ok_or(HandshakeMessageError::Decrypt)?;
                Ok(UnauthenticatedServer {
                    static_key,
                    certificate,
                    next: NextStep::Write {
                        handshake: Box::new(handshake),
                        kind: wire::FALLBACK_FINISH,
                    },
                    pattern: HandshakePattern::XxFallback,
                })
            }
            (_, other) => Err(HandshakeMessageError::UnexpectedType(other).into()),
        }
    }
}

enum NextStep {
    /// XX message 3 or XXfallback message 2 remains to be written.
    Write {
        handshake: Box<HandshakeState>,
        kind: u8,
    },
    /// IK is complete; the first transport message confirms it to the server.
    Confirm(Box<SplitState>),
}

/// The server proved it holds `static_key`'s private half; nobody has said whose key it is.
pub struct UnauthenticatedServer {
    static_key: PublicKey,
    certificate: Vec<u8>,
    next: NextStep,
    pattern: HandshakePattern,
}

impl core::fmt::Debug for UnauthenticatedServer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("UnauthenticatedServer")
            .field("static_key", &self.static_key)
            .field("pattern", &self.pattern)
            .finish_non_exhaustive()
    }
}

impl UnauthenticatedServer {
    /// The server's static key as proven by the handshake.
    #[must_use]
    pub fn static_key(&self) -> &PublicKey {
        &self.static_key
    }

    /// The certificate the server sent, not yet checked.
    #[must_use]
    pub fn certificate(&self) -> &[u8] {
        &self.certificate
    }

    /// The pattern in use.
    #[must_use]
    pub fn pattern(&self) -> HandshakePattern {
        self.pattern
    }

    /// Asks `verifier` about the server's key and certificate; if it accepts, writes the final
    /// message carrying `client_payload` (encrypted, and sent only to an authenticated server).
    pub fn authenticate(
        self,
        verifier: &impl ServerKeyVerifier,
        client_payload: &[u8],
    ) -> Result<ClientEstablished, AuthenticateError> {
        verifier.verify_server_key(&self.static_key, &self.certificate)?;
        if client_payload.len() > MAX_HANDSHAKE_PAYLOAD_LEN {
            return Err(AuthenticateError::PayloadTooLong {
                len: client_payload.len(),
                max: MAX_HANDSHAKE_PAYLOAD_LEN,
            });
        }
        let (transport, kind, message) = match self.next {
            NextStep::Write {
                mut handshake,
                kind,
            } => {
                let message = handshake
                    .write_message(client_payload)
                    .map_err(|_| AuthenticateError::Write)?;
                let split = handshake.split().map_err(|_| AuthenticateError::Write)?;
                (Transport::from_split(split), kind, message)
            }
            NextStep::Confirm(split) => {
                let mut transport = Transport::from_split(*split);
                let message = transport
                    .encrypt(client_payload)
                    .map_err(|_| AuthenticateError::Write)?;
                (transport, wire::IK_FINISH, message)
            }
        };
        let final_message = wire::with_type(kind, &message).ok_or(AuthenticateError::Write)?;
        Ok(ClientEstablished {
            final_message,
            transport,
            server: AuthenticatedServer {
                static_key: self.static_key,
                certificate: self.certificate,
                pattern: self.pattern,
            },
        })
    }
}

/// A server whose static key the client's [`ServerKeyVerifier`] accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedServer {
    static_key: PublicKey,
    certificate: Vec<u8>,
    pattern: HandshakePattern,
}

impl AuthenticatedServer {
    /// The authenticated key; cache it to resume with IK next time.
    #[must_use]
    pub fn static_key(&self) -> &PublicKey {
        &self.static_key
    }

    /// The certificate that authenticated it.
    #[must_use]
    pub fn certificate(&self) -> &[u8] {
        &self.certificate
    }

    /// The pattern the handshake used.
    #[must_use]
    pub fn pattern(&self) -> HandshakePattern {
        self.pattern
    }
}

/// The client's end of an established channel.
#[derive(Debug)]
#[non_exhaustive]
pub struct ClientEstablished {
    /// The last handshake frame's contents, to send to the server before any other message.
    pub final_message: Vec<u8>,
    /// The channel.
    pub transport: Transport,
    /// Who is at the other end.
    pub server: AuthenticatedServer,
}
