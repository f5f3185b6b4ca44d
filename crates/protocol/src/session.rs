//! Session setup (X3DH, version 3; PQXDH, version 4) and the Double Ratchet cipher.
//!
//! ```text
//! secret = 0xFF×32 ‖ DH(IK_A, SPK_B) ‖ DH(EK_A, IK_B) ‖ DH(EK_A, SPK_B) [‖ DH(EK_A, OPK_B)] [‖ SS_kyber]
//! RK ‖ CK = HKDF(salt = none, secret, info, 64)
//!   info = "WhisperText" (X3DH) | "WhisperText_X25519_SHA-256_CRYSTALS-KYBER-1024" (PQXDH)
//! ```
//! Bob's signed pre-key doubles as his first ratchet key; Alice steps the root once with a fresh
//! ratchet key before her first message. Decryption computes every new key on the side and
//! commits only after the MAC and the padding check out, so a forged, replayed or truncated
//! message leaves the session exactly as it was.

use rand_core::CryptoRng;

use crate::crypto::{aes256_cbc_decrypt, aes256_cbc_encrypt, ct_eq, hkdf_sha256, hmac_sha256};
use crate::kem::KemError;
use crate::keys::{IdentityKey, IdentityKeyPair, KeyError, KeyPair, PrivateKey};
use crate::limits::{MAX_FORWARD_JUMPS, MAX_MESSAGE_KEYS, MAX_UNACKNOWLEDGED_SESSION_AGE_SECS};
use crate::message::{
    CiphertextMessage, MAC_LENGTH, PreKeyFields, PreKeySignalMessage, SignalMessage, VERSION_PQXDH,
    VERSION_X3DH,
};
use crate::prekeys::{KyberPreKeyRecord, PreKeyRecord, SignedPreKeyRecord, VerifiedPreKeyBundle};
use crate::ratchet::{ChainKey, MessageKeySeed, MessageKeys, RootKey};
use crate::state::{PendingPreKey, ReceiverChain, SenderChain, SessionRecord, SessionState};

const INFO_X3DH: &[u8] = b"WhisperText";
const INFO_PQXDH: &[u8] = b"WhisperText_X25519_SHA-256_CRYSTALS-KYBER-1024";
/// The low nibble this implementation writes in the version byte (its current version).
const CURRENT_VERSION: u8 = 4;

/// Why a session could not be set up from a bundle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    #[error("key agreement failed: {0}")]
    Agreement(#[from] KeyError),
}

/// Why a message could not be encrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncryptError {
    #[error("no session with this device")]
    NoSession,
    #[error("the session was never acknowledged and is older than 30 days; fetch a new bundle")]
    SessionExpired,
    #[error("the sending chain is exhausted")]
    ChainExhausted,
}

/// Why a message could not be decrypted. In every case the session is left unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecryptError {
    #[error("no session with this device")]
    NoSession,
    #[error("message version {message} does not match session version {session}")]
    VersionMismatch { message: u8, session: u8 },
    #[error("duplicate message (counter {counter} was already received)")]
    DuplicatedMessage { counter: u32 },
    #[error("message counter {counter} is more than {MAX_FORWARD_JUMPS} ahead of the chain")]
    TooFarInFuture { counter: u32 },
    #[error("message authentication failed")]
    InvalidMac,
    #[error("message addresses do not match the expected sender and recipient")]
    AddressMismatch,
    #[error("ciphertext is not a whole number of blocks or its padding is wrong")]
    BadCiphertext,
    #[error("key agreement failed: {0}")]
    Agreement(#[from] KeyError),
    #[error("the PreKey message names signed pre-key {0}, which is unknown")]
    UnknownSignedPreKey(u32),
    #[error("the PreKey message names one-time pre-key {0}, which is unknown or used")]
    UnknownPreKey(u32),
    #[error("the PreKey message names Kyber pre-key {0}, which is unknown")]
    UnknownKyberPreKey(u32),
    #[error("the PreKey message has no Kyber ciphertext (version 4 needs one)")]
    MissingKyber,
    #[error("Kyber decapsulation failed: {0}")]
    Kyber(#[from] KemError),
    #[error("the PreKey message's base key is not canonical")]
    NonCanonicalBaseKey,
    #[error("invalid PreKey message: decryption failed ({0})")]
    PreKeyDecryptionFailed(Box<DecryptError>),
}

/// How messages are written.
#[derive(Clone, Copy, Debug, Default)]
pub struct EncryptOptions {
    /// Write `0x33` instead of `0x34` for version-3 sessions, for peers built before Signal's
    /// library 0.24 (libsignal-node) that refuse a low nibble above 3.
    pub legacy_version_byte: bool,
}

/// Where the responder finds the private halves of the pre-keys a PreKey message names. A key
/// is only looked up, never removed: the caller removes the one-time pre-key after the first
/// message decrypts (see [`PreKeyOutcome::consumed_pre_key`]).
pub trait PreKeySource {
    fn signed_pre_key(&self, id: u32) -> Option<SignedPreKeyRecord>;
    fn pre_key(&self, id: u32) -> Option<PreKeyRecord>;
    fn kyber_pre_key(&self, id: u32) -> Option<KyberPreKeyRecord>;
}

/// What happened when a PreKey message was decrypted.
#[derive(Debug)]
pub struct PreKeyOutcome {
    pub plaintext: Vec<u8>,
    /// The one-time pre-key the new session used: delete it now.
    pub consumed_pre_key: Option<u32>,
    /// The Kyber pre-key the new session used (a one-time Kyber key is deleted now; a last-resort
    /// one is kept).
    pub used_kyber_pre_key: Option<u32>,
    /// Whether a new session was built (false: the message belonged to a known session).
    pub new_session: bool,
}

fn derive_initial(secret: &[u8], version: u8) -> (RootKey, ChainKey) {
    let info = if version == VERSION_PQXDH {
        INFO_PQXDH
    } else {
        INFO_X3DH
    };
    let okm: [u8; 64] = hkdf_sha256(None, secret, info);
    let mut root = [0u8; 32];
    let mut chain = [0u8; 32];
    root.copy_from_slice(&okm[..32]);
    chain.copy_from_slice(&okm[32..]);
    (
        RootKey(root),
        ChainKey {
            key: chain,
            index: 0,
        },
    )
}

/// Alice's side: builds a session from a verified bundle. The bundle's Kyber pre-key, when it
/// has one, makes it a PQXDH (version 4) session; use [`VerifiedPreKeyBundle::without_kyber`]
/// for X3DH.
pub fn initiate(
    our_identity: &IdentityKeyPair,
    our_registration_id: u32,
    bundle: &VerifiedPreKeyBundle,
    now: u64,
    rng: &mut impl CryptoRng,
) -> Result<SessionState, SetupError> {
    let b = bundle.bundle();
    let base = KeyPair::generate(rng);
    let version = if b.kyber_pre_key.is_some() {
        VERSION_PQXDH
    } else {
        VERSION_X3DH
    };

    let mut secret = zeroize::Zeroizing::new(Vec::with_capacity(32 * 6));
    secret.extend_from_slice(&[0xFF; 32]);
    secret.extend_from_slice(
        our_identity
            .private_key()
            .agree(&b.signed_pre_key)?
            .as_bytes(),
    );
    secret.extend_from_slice(base.private.agree(b.identity_key.public_key())?.as_bytes());
    secret.extend_from_slice(base.private.agree(&b.signed_pre_key)?.as_bytes());
    if let Some((_, one_time)) = &b.pre_key {
        secret.extend_from_slice(base.private.agree(one_time)?.as_bytes());
    }
    let kyber = match &b.kyber_pre_key {
        Some(kyber) => {
            let (ciphertext, shared) = kyber.key.encapsulate(rng);
            secret.extend_from_slice(shared.as_bytes());
            Some((kyber.id, ciphertext))
        }
        None => None,
    };
    let (root, chain) = derive_initial(&secret, version);

    let sending_ratchet = KeyPair::generate(rng);
    let (root, sending_chain) = root.step(&sending_ratchet.private, &b.signed_pre_key)?;
    let mut state = SessionState {
        version,
        local_identity: *our_identity.identity_key(),
        remote_identity: b.identity_key,
        root_key: root,
        sender: SenderChain {
            ratchet: sending_ratchet,
            chain: sending_chain,
        },
        receivers: Default::default(),
        previous_counter: 0,
        pending_pre_key: Some(PendingPreKey {
            pre_key_id: b.pre_key.map(|(id, _)| id),
            signed_pre_key_id: b.signed_pre_key_id,
            kyber,
            base_key: base.public,
            created_at: now,
        }),
        local_registration_id: our_registration_id,
        remote_registration_id: b.registration_id,
        alice_base_key: base.public,
    };
    state.push_receiver(ReceiverChain {
        ratchet_key: b.signed_pre_key,
        chain,
        skipped: Default::default(),
    });
    Ok(state)
}

/// Bob's side of the key agreement for a PreKey message.
fn respond(
    our_identity: &IdentityKeyPair,
    our_registration_id: u32,
    signed: &KeyPair,
    one_time: Option<&PrivateKey>,
    kyber_secret: Option<&[u8; 32]>,
    message: &PreKeySignalMessage,
) -> Result<SessionState, DecryptError> {
    let their_identity = message.identity_key();
    let base = message.base_key();
    let mut secret = zeroize::Zeroizing::new(Vec::with_capacity(32 * 6));
    secret.extend_from_slice(&[0xFF; 32]);
    secret.extend_from_slice(
        signed
            .private
            .agree(their_identity.public_key())?
            .as_bytes(),
    );
    secret.extend_from_slice(our_identity.private_key().agree(base)?.as_bytes());
    secret.extend_from_slice(signed.private.agree(base)?.as_bytes());
    if let Some(one_time) = one_time {
        secret.extend_from_slice(one_time.agree(base)?.as_bytes());
    }
    if let Some(kyber) = kyber_secret {
        secret.extend_from_slice(kyber);
    }
    let (root, chain) = derive_initial(&secret, message.message_version());
    Ok(SessionState {
        version: message.message_version(),
        local_identity: *our_identity.identity_key(),
        remote_identity: *their_identity,
        root_key: root,
        sender: SenderChain {
            ratchet: signed.clone(),
            chain,
        },
        receivers: Default::default(),
        previous_counter: 0,
        pending_pre_key: None,
        local_registration_id: our_registration_id,
        remote_registration_id: message.registration_id(),
        alice_base_key: *base,
    })
}

fn mac(keys: &MessageKeys, sender: &IdentityKey, receiver: &IdentityKey, data: &[u8]) -> [u8; 32] {
    hmac_sha256(
        &keys.mac_key,
        &[&sender.serialize(), &receiver.serialize(), data],
    )
}

/// Encrypts `plaintext` with the current session of `record`.
pub fn encrypt(
    record: &mut SessionRecord,
    plaintext: &[u8],
    options: EncryptOptions,
    now: u64,
) -> Result<CiphertextMessage, EncryptError> {
    let state = record.current.as_mut().ok_or(EncryptError::NoSession)?;
    if let Some(pending) = &state.pending_pre_key
        && now.saturating_sub(pending.created_at) > MAX_UNACKNOWLEDGED_SESSION_AGE_SECS
    {
        return Err(EncryptError::SessionExpired);
    }
    let chain = &state.sender.chain;
    if chain.index == u32::MAX {
        return Err(EncryptError::ChainExhausted);
    }
    let keys = chain.seed().derive();
    let ciphertext = aes256_cbc_encrypt(&keys.cipher_key, &keys.iv, plaintext);
    let low_nibble = if options.legacy_version_byte && state.version == VERSION_X3DH {
        VERSION_X3DH
    } else {
        CURRENT_VERSION
    };
    let version_byte = (state.version << 4) | low_nibble;
    let (local, remote) = (state.local_identity, state.remote_identity);
    let message = SignalMessage::new(
        version_byte,
        state.sender.ratchet.public,
        chain.index,
        state.previous_counter,
        ciphertext,
        |data| mac(&keys, &local, &remote, data),
    );
    state.sender.chain = chain.next();

    Ok(match &state.pending_pre_key {
        None => CiphertextMessage::Whisper(message),
        Some(pending) => CiphertextMessage::PreKey(PreKeySignalMessage::new(
            version_byte,
            PreKeyFields {
                registration_id: state.local_registration_id,
                pre_key_id: pending.pre_key_id,
                signed_pre_key_id: pending.signed_pre_key_id,
                kyber: pending.kyber.clone(),
                base_key: pending.base_key,
                identity_key: local,
            },
            message,
        )),
    })
}

/// How a successful decryption changes the state, applied only after the MAC checked out.
// One lives on the stack for the length of a decryption; boxing the big variant would cost an
// allocation per DH step for nothing.
#[allow(clippy::large_enum_variant)]
enum Update {
    UseSkipped {
        chain: usize,
        position: usize,
    },
    Advance {
        chain: usize,
        next: ChainKey,
        skipped: Vec<MessageKeySeed>,
    },
    NewChain {
        root: RootKey,
        receiver: ReceiverChain,
        sender: SenderChain,
        previous_counter: u32,
    },
}

/// Walks `chain` to `counter`, returning that message's seed, the chain key after it and the
/// seeds of the skipped messages worth keeping (the newest [`MAX_MESSAGE_KEYS`]).
fn walk_chain(
    chain: &ChainKey,
    counter: u32,
) -> Result<(MessageKeySeed, ChainKey, Vec<MessageKeySeed>), DecryptError> {
    let jump = counter - chain.index;
    if jump > MAX_FORWARD_JUMPS {
        return Err(DecryptError::TooFarInFuture { counter });
    }
    let keep_from = counter.saturating_sub(MAX_MESSAGE_KEYS as u32);
    let mut skipped = Vec::with_capacity((counter - chain.index.max(keep_from)) as usize);
    let mut current = chain.clone();
    while current.index < counter {
        if current.index >= keep_from {
            skipped.push(current.seed());
        }
        current = current.next();
    }
    Ok((current.seed(), current.next(), skipped))
}

/// Works out the keys of `message` under `state` without changing it.
fn plan(
    state: &SessionState,
    message: &SignalMessage,
    rng: &mut impl CryptoRng,
) -> Result<(MessageKeys, Update), DecryptError> {
    if message.message_version() != state.version {
        return Err(DecryptError::VersionMismatch {
            message: message.message_version(),
            session: state.version,
        });
    }
    let counter = message.counter();
    match state.receiver_index(message.ratchet_key()) {
        Some(index) => {
            let receiver = &state.receivers[index];
            if counter < receiver.chain.index {
                let position = receiver
                    .skipped
                    .iter()
                    .position(|s| s.counter == counter)
                    .ok_or(DecryptError::DuplicatedMessage { counter })?;
                let keys = receiver.skipped[position].derive();
                return Ok((
                    keys,
                    Update::UseSkipped {
                        chain: index,
                        position,
                    },
                ));
            }
            let (seed, next, skipped) = walk_chain(&receiver.chain, counter)?;
            Ok((
                seed.derive(),
                Update::Advance {
                    chain: index,
                    next,
                    skipped,
                },
            ))
        }
        None => {
            let theirs = message.ratchet_key();
            let (root, receiving) = state.root_key.step(&state.sender.ratchet.private, theirs)?;
            let (seed, next, skipped) = walk_chain(&receiving, counter)?;
            let ratchet = KeyPair::generate(rng);
            let (root, sending) = root.step(&ratchet.private, theirs)?;
            let mut receiver = ReceiverChain {
                ratchet_key: *theirs,
                chain: next,
                skipped: Default::default(),
            };
            receiver.store_skipped(skipped);
            Ok((
                seed.derive(),
                Update::NewChain {
                    root,
                    receiver,
                    sender: SenderChain {
                        ratchet,
                        chain: sending,
                    },
                    previous_counter: state.sender.chain.index.max(1) - 1,
                },
            ))
        }
    }
}

fn apply(state: &mut SessionState, update: Update) {
    match update {
        Update::UseSkipped { chain, position } => {
            state.receivers[chain].skipped.remove(position);
        }
        Update::Advance {
            chain,
            next,
            skipped,
        } => {
            let receiver = &mut state.receivers[chain];
            receiver.chain = next;
            receiver.store_skipped(skipped);
        }
        Update::NewChain {
            root,
            receiver,
            sender,
            previous_counter,
        } => {
            state.root_key = root;
            state.push_receiver(receiver);
            state.sender = sender;
            state.previous_counter = previous_counter;
        }
    }
    // Any message from the peer proves it has the session: stop sending PreKey messages.
    state.pending_pre_key = None;
}

/// Decrypts under one state; on success the state is updated, on failure it is untouched.
fn decrypt_with_state(
    state: &mut SessionState,
    message: &SignalMessage,
    expected_addresses: Option<&[u8; 36]>,
    rng: &mut impl CryptoRng,
) -> Result<Vec<u8>, DecryptError> {
    let (keys, update) = plan(state, message, rng)?;
    let tag = mac(
        &keys,
        &state.remote_identity,
        &state.local_identity,
        message.mac_input(),
    );
    if !ct_eq(&tag[..MAC_LENGTH], message.mac()) {
        return Err(DecryptError::InvalidMac);
    }
    if let Some(addresses) = message.addresses() {
        match expected_addresses {
            Some(expected) if ct_eq(addresses, expected) => {}
            _ => return Err(DecryptError::AddressMismatch),
        }
    }
    let plaintext = aes256_cbc_decrypt(&keys.cipher_key, &keys.iv, message.body())
        .ok_or(DecryptError::BadCiphertext)?;
    apply(state, update);
    Ok(plaintext)
}

/// Decrypts a `SignalMessage`: the current session first, then archived ones newest first. A
/// previous session that decrypts becomes current again. `expected_addresses` is the 36-byte
/// binding of (sender, us) when both are service ids (see [`crate::address::address_binding`]).
pub fn decrypt(
    record: &mut SessionRecord,
    message: &SignalMessage,
    expected_addresses: Option<&[u8; 36]>,
    rng: &mut impl CryptoRng,
) -> Result<Vec<u8>, DecryptError> {
    let mut first_error = None;
    if let Some(state) = record.current.as_mut() {
        match decrypt_with_state(state, message, expected_addresses, rng) {
            Ok(plaintext) => return Ok(plaintext),
            Err(e @ DecryptError::DuplicatedMessage { .. }) => return Err(e),
            Err(e) => first_error = Some(e),
        }
    }
    for index in 0..record.previous.len() {
        let state = &mut record.previous[index];
        match decrypt_with_state(state, message, expected_addresses, rng) {
            Ok(plaintext) => {
                if let Some(state) = record.previous.remove(index) {
                    record.promote(state);
                }
                return Ok(plaintext);
            }
            Err(e @ DecryptError::DuplicatedMessage { .. }) => return Err(e),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or(DecryptError::NoSession))
}

/// Bob's side: decrypts a PreKey message, building a new session from the pre-keys it names,
/// or reusing the session it belongs to if one exists (same version and base key). On success
/// a new session becomes current (the old one is archived). The caller has already decided to
/// trust `message.identity_key()`.
pub fn decrypt_pre_key(
    record: &mut SessionRecord,
    our_identity: &IdentityKeyPair,
    our_registration_id: u32,
    keys: &impl PreKeySource,
    message: &PreKeySignalMessage,
    expected_addresses: Option<&[u8; 36]>,
    rng: &mut impl CryptoRng,
) -> Result<PreKeyOutcome, DecryptError> {
    let matches = |s: &SessionState| {
        s.version == message.message_version() && s.alice_base_key == *message.base_key()
    };
    if let Some(state) = record.current.as_mut().filter(|s| matches(s)) {
        let plaintext = decrypt_with_state(state, message.message(), expected_addresses, rng)?;
        return Ok(PreKeyOutcome {
            plaintext,
            consumed_pre_key: None,
            used_kyber_pre_key: None,
            new_session: false,
        });
    }
    if let Some(index) = record.previous.iter().position(matches) {
        let state = &mut record.previous[index];
        let plaintext = decrypt_with_state(state, message.message(), expected_addresses, rng)?;
        if let Some(state) = record.previous.remove(index) {
            record.promote(state);
        }
        return Ok(PreKeyOutcome {
            plaintext,
            consumed_pre_key: None,
            used_kyber_pre_key: None,
            new_session: false,
        });
    }

    if !message.base_key().is_canonical() {
        return Err(DecryptError::NonCanonicalBaseKey);
    }
    let signed = keys.signed_pre_key(message.signed_pre_key_id()).ok_or(
        DecryptError::UnknownSignedPreKey(message.signed_pre_key_id()),
    )?;
    let one_time = match message.pre_key_id() {
        Some(id) => Some(keys.pre_key(id).ok_or(DecryptError::UnknownPreKey(id))?),
        None => None,
    };
    let kyber_secret = match (message.message_version(), message.kyber()) {
        (VERSION_PQXDH, Some((id, ciphertext))) => {
            let record = keys
                .kyber_pre_key(id)
                .ok_or(DecryptError::UnknownKyberPreKey(id))?;
            Some((id, record.key_pair.secret.decapsulate(ciphertext)?))
        }
        (VERSION_PQXDH, None) => return Err(DecryptError::MissingKyber),
        _ => None,
    };
    let mut state = respond(
        our_identity,
        our_registration_id,
        &signed.key_pair,
        one_time.as_ref().map(|k| &k.key_pair.private),
        kyber_secret.as_ref().map(|(_, s)| s.as_bytes()),
        message,
    )?;
    let plaintext = decrypt_with_state(&mut state, message.message(), expected_addresses, rng)
        .map_err(|e| DecryptError::PreKeyDecryptionFailed(Box::new(e)))?;
    record.promote(state);
    Ok(PreKeyOutcome {
        plaintext,
        consumed_pre_key: one_time.map(|k| k.id),
        used_kyber_pre_key: kyber_secret.map(|(id, _)| id),
        new_session: true,
    })
}

/// Starts a session from `bundle` and makes it the current one of `record`.
pub fn process_bundle(
    record: &mut SessionRecord,
    our_identity: &IdentityKeyPair,
    our_registration_id: u32,
    bundle: &VerifiedPreKeyBundle,
    now: u64,
    rng: &mut impl CryptoRng,
) -> Result<(), SetupError> {
    let state = initiate(our_identity, our_registration_id, bundle, now, rng)?;
    record.promote(state);
    Ok(())
}
