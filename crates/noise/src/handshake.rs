//! The Noise `HandshakeState` (spec §5.3) for the three patterns of Noise Pipes.
//!
//! This is the mechanical part: tokens in, bytes out. It knows nothing about which side is the
//! client; `pipes` maps client and server onto initiator and responder (they swap in
//! XXfallback).

use crate::keys::{PUBLIC_KEY_LEN, PublicKey, RemoteKey, StaticKeyPair};
use crate::limits::{MAX_FRAME_LEN, TAG_LEN};
use crate::symmetric::{CipherState, HASH_LEN, SymmetricState};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    E,
    S,
    Ee,
    Es,
    Se,
    Ss,
}

/// A handshake pattern (spec §7) with the names the protocol name spells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pattern {
    pub(crate) protocol_name: &'static str,
    /// Pre-message keys of the responder (`<- s` for IK, `<- e` for XXfallback).
    responder_pre_message: &'static [Token],
    messages: &'static [&'static [Token]],
}

use Token::{E, Ee, Es, S, Se, Ss};

/// `XX: -> e  <- e, ee, s, es  -> s, se`
pub(crate) const XX: Pattern = Pattern {
    protocol_name: "Noise_XX_25519_AESGCM_SHA256",
    responder_pre_message: &[],
    messages: &[&[E], &[E, Ee, S, Es], &[S, Se]],
};

/// `IK: <- s ... -> e, es, s, ss  <- e, ee, se`
pub(crate) const IK: Pattern = Pattern {
    protocol_name: "Noise_IK_25519_AESGCM_SHA256",
    responder_pre_message: &[S],
    messages: &[&[E, Es, S, Ss], &[E, Ee, Se]],
};

/// `XXfallback: <- e ... -> e, ee, s, se  <- s, es` (noise-c's table, rev34 §10.2).
pub(crate) const XX_FALLBACK: Pattern = Pattern {
    protocol_name: "Noise_XXfallback_25519_AESGCM_SHA256",
    responder_pre_message: &[E],
    messages: &[&[E, Ee, S, Se], &[S, Es]],
};

/// Why a handshake message could not be read or written. Every variant aborts the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandshakeFault {
    /// The message is shorter than its tokens need.
    Truncated,
    /// A tag did not verify: wrong key, wrong prologue, altered bytes.
    Decrypt,
    /// A remote key is of low order (the DH output is all zeros).
    WeakKey,
    /// The message would exceed 65 535 bytes.
    TooLong,
    /// Called out of turn, or after the last message.
    OutOfTurn,
    /// A key the pattern needs is missing (a construction bug, not peer input).
    MissingKey,
}

/// The handshake as spec §5.3 describes it, with the ephemeral key chosen at construction.
///
/// Choosing `e` up front (instead of inside `WriteMessage`) changes no byte on the wire and
/// lets known-answer tests inject the vectors' ephemerals without a test-only branch here.
pub(crate) struct HandshakeState {
    symmetric: SymmetricState,
    initiator: bool,
    pattern: Pattern,
    next_message: usize,
    s: StaticKeyPair,
    e: StaticKeyPair,
    /// Remote keys with their Edwards form, each mapped once for all its Diffie-Hellmans.
    rs: Option<RemoteKey>,
    re: Option<RemoteKey>,
}

pub(crate) struct HandshakeInit<'a> {
    pub(crate) pattern: Pattern,
    pub(crate) initiator: bool,
    pub(crate) prologue: &'a [u8],
    pub(crate) s: StaticKeyPair,
    pub(crate) e: StaticKeyPair,
    pub(crate) rs: Option<PublicKey>,
    pub(crate) re: Option<PublicKey>,
}

impl HandshakeState {
    /// `Initialize()`: mixes the prologue, then the responder's pre-message keys.
    pub(crate) fn new(init: HandshakeInit<'_>) -> Result<Self, HandshakeFault> {
        let mut symmetric = SymmetricState::initialize(init.pattern.protocol_name);
        symmetric.mix_hash(init.prologue);
        for token in init.pattern.responder_pre_message {
            let key = match (token, init.initiator) {
                (S, true) => init.rs.ok_or(HandshakeFault::MissingKey)?,
                (E, true) => init.re.ok_or(HandshakeFault::MissingKey)?,
                (S, false) => init.s.public_key(),
                (E, false) => init.e.public_key(),
                _ => return Err(HandshakeFault::MissingKey),
            };
            symmetric.mix_hash(key.as_bytes());
        }
        Ok(Self {
            symmetric,
            initiator: init.initiator,
            pattern: init.pattern,
            next_message: 0,
            s: init.s,
            e: init.e,
            rs: init.rs.map(RemoteKey::new),
            re: init.re.map(RemoteKey::new),
        })
    }

    fn my_turn(&self) -> bool {
        self.next_message.is_multiple_of(2) == self.initiator
    }

    fn tokens(&self) -> Result<&'static [Token], HandshakeFault> {
        self.pattern
            .messages
            .get(self.next_message)
            .copied()
            .ok_or(HandshakeFault::OutOfTurn)
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.next_message >= self.pattern.messages.len()
    }

    pub(crate) fn remote_static(&self) -> Option<PublicKey> {
        self.rs.as_ref().map(RemoteKey::key)
    }

    fn mix_dh(&mut self, token: Token) -> Result<(), HandshakeFault> {
        let missing = HandshakeFault::MissingKey;
        // `es` is DH(initiator's e, responder's s); `se` the other way round.
        let shared = match (token, self.initiator) {
            (Ee, _) => self.e.diffie_hellman(self.re.as_ref().ok_or(missing)?),
            (Ss, _) => self.s.diffie_hellman(self.rs.as_ref().ok_or(missing)?),
            (Es, true) | (Se, false) => self.e.diffie_hellman(self.rs.as_ref().ok_or(missing)?),
            (Es, false) | (Se, true) => self.s.diffie_hellman(self.re.as_ref().ok_or(missing)?),
            (E | S, _) => return Err(missing),
        }
        .ok_or(HandshakeFault::WeakKey)?;
        self.symmetric.mix_key(shared.as_slice());
        Ok(())
    }

    /// `WriteMessage(payload, message_buffer)`.
    pub(crate) fn write_message(&mut self, payload: &[u8]) -> Result<Vec<u8>, HandshakeFault> {
        if !self.my_turn() {
            return Err(HandshakeFault::OutOfTurn);
        }
        let tokens = self.tokens()?;
        let mut message = Vec::with_capacity(96 + payload.len() + TAG_LEN);
        for &token in tokens {
            match token {
                E => {
                    let public = self.e.public_key();
                    message.extend_from_slice(public.as_bytes());
                    self.symmetric.mix_hash(public.as_bytes());
                }
                S => {
                    let public = self.s.public_key();
                    let sealed = self
                        .symmetric
                        .encrypt_and_hash(public.as_bytes())
                        .map_err(|_| HandshakeFault::Decrypt)?;
                    message.extend_from_slice(&sealed);
                }
                dh => self.mix_dh(dh)?,
            }
        }
        let sealed = self
            .symmetric
            .encrypt_and_hash(payload)
            .map_err(|_| HandshakeFault::Decrypt)?;
        message.extend_from_slice(&sealed);
        if message.len() > MAX_FRAME_LEN {
            return Err(HandshakeFault::TooLong);
        }
        self.next_message += 1;
        Ok(message)
    }

    /// `ReadMessage(message, payload_buffer)`. On error the state must be dropped (spec §5.3:
    /// a failed `ReadMessage` aborts the handshake); the `pipes` types consume it by value.
    pub(crate) fn read_message(&mut self, message: &[u8]) -> Result<Vec<u8>, HandshakeFault> {
        if self.my_turn() {
            return Err(HandshakeFault::OutOfTurn);
        }
        if message.len() > MAX_FRAME_LEN {
            return Err(HandshakeFault::TooLong);
        }
        let tokens = self.tokens()?;
        let mut rest = message;
        for &token in tokens {
            match token {
                E => {
                    let (key, tail) = take(rest, PUBLIC_KEY_LEN)?;
                    let re = PublicKey::from_slice(key).ok_or(HandshakeFault::Truncated)?;
                    self.symmetric.mix_hash(key);
                    self.re = Some(RemoteKey::new(re));
                    rest = tail;
                }
                S => {
                    let len = PUBLIC_KEY_LEN + if self.symmetric.has_key() { TAG_LEN } else { 0 };
                    let (sealed, tail) = take(rest, len)?;
                    let key = self
                        .symmetric
                        .decrypt_and_hash(sealed)
                        .map_err(|_| HandshakeFault::Decrypt)?;
                    let rs = PublicKey::from_slice(&key).ok_or(HandshakeFault::Truncated)?;
                    self.rs = Some(RemoteKey::new(rs));
                    rest = tail;
                }
                dh => self.mix_dh(dh)?,
            }
        }
        let payload = self
            .symmetric
            .decrypt_and_hash(rest)
            .map_err(|_| HandshakeFault::Decrypt)?;
        self.next_message += 1;
        Ok(payload)
    }

    /// `Split()` once every message has gone: `(initiator→responder, responder→initiator)`.
    pub(crate) fn split(self) -> Result<SplitState, HandshakeFault> {
        if !self.is_finished() {
            return Err(HandshakeFault::OutOfTurn);
        }
        let handshake_hash = self.symmetric.handshake_hash();
        let (initiator_to_responder, responder_to_initiator) = self.symmetric.split();
        let (send, receive) = if self.initiator {
            (initiator_to_responder, responder_to_initiator)
        } else {
            (responder_to_initiator, initiator_to_responder)
        };
        Ok(SplitState {
            send,
            receive,
            handshake_hash,
        })
    }
}

/// What `Split()` leaves: this side's sending and receiving states.
pub(crate) struct SplitState {
    pub(crate) send: CipherState,
    pub(crate) receive: CipherState,
    pub(crate) handshake_hash: [u8; HASH_LEN],
}

fn take(bytes: &[u8], len: usize) -> Result<(&[u8], &[u8]), HandshakeFault> {
    if bytes.len() < len {
        return Err(HandshakeFault::Truncated);
    }
    Ok(bytes.split_at(len))
}
