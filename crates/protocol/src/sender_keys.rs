//! Sender Keys: group messaging as Signal's library does it (WIRE.md §4, §9, §11).
//!
//! Each member sending to a group owns a *sender key* per distribution id: a hash chain and an
//! XEdDSA signing key pair. It hands the current chain key and the public signing key to every
//! other member pairwise (inside the 1:1 sessions) as a [`SenderKeyDistributionMessage`], then
//! sends one [`SenderKeyMessage`] per group message, which the server fans out.
//!
//! ```text
//! chain step   seed = HMAC-SHA256(chain key, 0x01)     next chain key = HMAC-SHA256(chain key, 0x02)
//! message key  HKDF-SHA256(salt none, seed, "WhisperGroup", 48) → IV = [0..16], key = [16..48]
//! body         AES-256-CBC-PKCS#7(key, IV, plaintext)      (no MAC)
//! SKM          0x33 ‖ protobuf {1 distribution_uuid, 2 chain_id, 3 iteration, 4 ciphertext}
//!                   ‖ XEdDSA(signing key, everything before)   (64 bytes)
//! SKDM         0x33 ‖ protobuf {1 distribution_uuid, 2 chain_id, 3 iteration, 4 chain_key,
//!                               5 signing_key}
//! ```
//!
//! Receiving checks the signature first; then an older iteration needs a stored skipped key (else
//! [`GroupDecryptError::DuplicatedMessage`]), a newer one may be at most
//! [`MAX_FORWARD_JUMPS`] ahead, and at most [`MAX_MESSAGE_KEYS`] skipped keys are kept per state.
//! The state changes only when decryption succeeds.
//!
//! The crate does no IO: the caller keeps one [`SenderKeyRecord`] per (sender address,
//! distribution id), either itself or in a [`SenderKeyStore`] such as
//! [`InMemorySenderKeyStore`]. When a member leaves, every remaining member removes its own
//! record ([`SenderKeyStore::remove_sender_key_record`]) and distributes a fresh one, which the
//! departed member never receives.
//!
//! ```
//! use confianza_protocol::address::ProtocolAddress;
//! use confianza_protocol::sender_keys::*;
//! let mut rng = rand::rng();
//!
//! let alice = ProtocolAddress::new("alice", 1);
//! let group = DistributionId::random(&mut rng);
//! let (mut alice_store, mut bob_store) = (InMemorySenderKeyStore::new(), InMemorySenderKeyStore::new());
//!
//! let skdm = create_sender_key_distribution_message(&mut alice_store, &alice, group, &mut rng);
//! // ... sent to Bob inside the 1:1 session ...
//! let received = SenderKeyDistributionMessage::deserialize(skdm.serialized()).unwrap();
//! process_sender_key_distribution_message(&mut bob_store, &alice, &received);
//!
//! let message = group_encrypt(&mut alice_store, &alice, group, b"hi all", &mut rng).unwrap();
//! let plaintext = group_decrypt(&mut bob_store, &alice, message.serialized()).unwrap();
//! assert_eq!(plaintext, b"hi all");
//! ```

use std::collections::{HashMap, VecDeque};

use prost::Message as _;
use rand_core::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::address::ProtocolAddress;
use crate::crypto::{aes256_cbc_decrypt, aes256_cbc_encrypt, hkdf_sha256, hmac_sha256};
use crate::keys::{KeyPair, PUBLIC_KEY_LENGTH, PrivateKey, PublicKey};
use crate::limits::{
    MAX_FORWARD_JUMPS, MAX_MESSAGE_KEYS, MAX_MESSAGE_LENGTH, MAX_SENDER_KEY_STATES,
};
use crate::proto::wire;
use crate::xeddsa::SIGNATURE_LENGTH;

/// `SENDERKEY_MESSAGE_CURRENT_VERSION`: the only sender-key message version.
pub const SENDER_KEY_MESSAGE_VERSION: u8 = 3;
/// First byte of every SenderKeyMessage and SKDM: `(3 << 4) | 3`.
pub const SENDER_KEY_VERSION_BYTE: u8 =
    (SENDER_KEY_MESSAGE_VERSION << 4) | SENDER_KEY_MESSAGE_VERSION;
/// Length of a sender chain key.
pub const CHAIN_KEY_LENGTH: usize = 32;
/// Length of a distribution id (a UUID in RFC 4122 byte order).
pub const DISTRIBUTION_ID_LENGTH: usize = 16;
/// Shortest SenderKeyMessage or SKDM accepted: the version byte and 64 bytes (the signature of a
/// SenderKeyMessage), as in Signal's library.
pub const MIN_SENDER_KEY_MESSAGE_LENGTH: usize = 1 + SIGNATURE_LENGTH;

/// Largest [`SenderKeyRecord`] snapshot accepted (1 MiB). A record at every limit — 5 states of
/// 2 000 skipped keys of about 42 encoded bytes each — is about 420 KB; the bound keeps a
/// corrupted or hostile snapshot from making the loader allocate more.
pub const MAX_SENDER_KEY_SNAPSHOT_LENGTH: usize = 1024 * 1024;
/// Format byte at the front of a [`SenderKeyRecord`] snapshot.
pub const SENDER_KEY_SNAPSHOT_VERSION: u8 = 1;

const WHISPER_GROUP_INFO: &[u8] = b"WhisperGroup";
const MESSAGE_KEY_SEED: &[u8] = &[0x01];
const CHAIN_KEY_SEED: &[u8] = &[0x02];

/// A group's distribution id: 16 raw UUID bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DistributionId([u8; DISTRIBUTION_ID_LENGTH]);

impl DistributionId {
    /// From the 16 UUID bytes.
    pub const fn from_bytes(bytes: [u8; DISTRIBUTION_ID_LENGTH]) -> Self {
        Self(bytes)
    }

    /// A random (version 4) UUID.
    pub fn random(rng: &mut impl CryptoRng) -> Self {
        let mut bytes = [0u8; DISTRIBUTION_ID_LENGTH];
        rng.fill_bytes(&mut bytes);
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Self(bytes)
    }

    /// The 16 UUID bytes.
    pub fn as_bytes(&self) -> &[u8; DISTRIBUTION_ID_LENGTH] {
        &self.0
    }
}

// ---------------------------------------------------------------------------------------------
// Wire messages
// ---------------------------------------------------------------------------------------------

/// Why a sender-key message or SKDM could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SenderKeyDecodeError {
    /// Fewer than [`MIN_SENDER_KEY_MESSAGE_LENGTH`] bytes.
    #[error("sender-key message is {0} bytes, too short")]
    TooShort(usize),
    /// More than [`MAX_MESSAGE_LENGTH`] bytes.
    #[error("sender-key message is {got} bytes; the limit is {limit}")]
    TooLong {
        /// Received length.
        got: usize,
        /// The limit.
        limit: usize,
    },
    /// High nibble of the version byte below 3.
    #[error("legacy sender-key message version {0}")]
    LegacyVersion(u8),
    /// High nibble of the version byte above 3.
    #[error("unrecognized sender-key message version {0}")]
    UnrecognizedVersion(u8),
    /// Not a protobuf of the expected shape.
    #[error("malformed protobuf")]
    Protobuf,
    /// A required field is absent.
    #[error("required field {0} is missing")]
    MissingField(&'static str),
    /// A field has the wrong length.
    #[error("field {0} has the wrong length")]
    BadFieldLength(&'static str),
    /// The signing key is not a Curve25519 public key.
    #[error("signing key is not a valid public key")]
    BadSigningKey,
}

fn check_length(bytes: &[u8]) -> Result<(), SenderKeyDecodeError> {
    if bytes.len() > MAX_MESSAGE_LENGTH {
        return Err(SenderKeyDecodeError::TooLong {
            got: bytes.len(),
            limit: MAX_MESSAGE_LENGTH,
        });
    }
    if bytes.len() < MIN_SENDER_KEY_MESSAGE_LENGTH {
        return Err(SenderKeyDecodeError::TooShort(bytes.len()));
    }
    // Only the high nibble matters; the low nibble (the writer's current version) is ignored.
    match bytes[0] >> 4 {
        SENDER_KEY_MESSAGE_VERSION => Ok(()),
        v if v < SENDER_KEY_MESSAGE_VERSION => Err(SenderKeyDecodeError::LegacyVersion(v)),
        v => Err(SenderKeyDecodeError::UnrecognizedVersion(v)),
    }
}

fn required<T>(value: Option<T>, field: &'static str) -> Result<T, SenderKeyDecodeError> {
    value.ok_or(SenderKeyDecodeError::MissingField(field))
}

fn distribution_id(value: Option<Vec<u8>>) -> Result<DistributionId, SenderKeyDecodeError> {
    let bytes = required(value, "distribution_uuid")?;
    let array = <[u8; DISTRIBUTION_ID_LENGTH]>::try_from(bytes.as_slice())
        .map_err(|_| SenderKeyDecodeError::BadFieldLength("distribution_uuid"))?;
    Ok(DistributionId(array))
}

/// Exact length of the SenderKeyMessage for a plaintext of `plaintext_len` bytes.
fn encoded_message_len(chain_id: u32, iteration: u32, plaintext_len: usize) -> usize {
    use prost::encoding::encoded_len_varint;
    let body = (plaintext_len / 16 + 1) * 16;
    let proto = (2 + DISTRIBUTION_ID_LENGTH)
        + (1 + encoded_len_varint(u64::from(chain_id)))
        + (1 + encoded_len_varint(u64::from(iteration)))
        + (1 + encoded_len_varint(body as u64) + body);
    1 + proto + SIGNATURE_LENGTH
}

fn encode_with_version(message: &impl prost::Message, extra: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + message.encoded_len() + extra);
    out.push(SENDER_KEY_VERSION_BYTE);
    // Encoding into a Vec cannot run out of space.
    message.encode(&mut out).unwrap_or_else(|_| unreachable!());
    out
}

/// A group message: `0x33 ‖ protobuf ‖ signature (64)`.
#[derive(Clone, Debug)]
pub struct SenderKeyMessage {
    distribution_id: DistributionId,
    chain_id: u32,
    iteration: u32,
    ciphertext: Vec<u8>,
    serialized: Vec<u8>,
}

impl SenderKeyMessage {
    /// Builds and signs a message (XEdDSA over every byte before the signature).
    pub fn new(
        distribution_id: DistributionId,
        chain_id: u32,
        iteration: u32,
        ciphertext: Vec<u8>,
        signing_key: &PrivateKey,
        rng: &mut impl CryptoRng,
    ) -> Self {
        let proto = wire::SenderKeyMessage {
            distribution_uuid: Some(distribution_id.0.to_vec()),
            chain_id: Some(chain_id),
            iteration: Some(iteration),
            ciphertext: Some(ciphertext),
        };
        let mut serialized = encode_with_version(&proto, SIGNATURE_LENGTH);
        let signature = signing_key.sign(&serialized, rng);
        serialized.extend_from_slice(&signature);
        Self {
            distribution_id,
            chain_id,
            iteration,
            ciphertext: proto.ciphertext.unwrap_or_default(),
            serialized,
        }
    }

    /// Parses a message (the signature is checked by [`SenderKeyRecord::decrypt`], which knows
    /// the key).
    pub fn deserialize(bytes: &[u8]) -> Result<Self, SenderKeyDecodeError> {
        check_length(bytes)?;
        let body = &bytes[1..bytes.len() - SIGNATURE_LENGTH];
        let proto =
            wire::SenderKeyMessage::decode(body).map_err(|_| SenderKeyDecodeError::Protobuf)?;
        Ok(Self {
            distribution_id: distribution_id(proto.distribution_uuid)?,
            chain_id: required(proto.chain_id, "chain_id")?,
            iteration: required(proto.iteration, "iteration")?,
            ciphertext: required(proto.ciphertext, "ciphertext")?,
            serialized: bytes.to_vec(),
        })
    }

    /// The message version (always 3).
    pub fn message_version(&self) -> u8 {
        SENDER_KEY_MESSAGE_VERSION
    }
    /// Which group distribution this message belongs to.
    pub fn distribution_id(&self) -> DistributionId {
        self.distribution_id
    }
    /// Which of the sender's chains encrypted it.
    pub fn chain_id(&self) -> u32 {
        self.chain_id
    }
    /// Position in the chain.
    pub fn iteration(&self) -> u32 {
        self.iteration
    }
    /// The AES-256-CBC ciphertext.
    pub fn ciphertext(&self) -> &[u8] {
        &self.ciphertext
    }
    /// The bytes on the wire.
    pub fn serialized(&self) -> &[u8] {
        &self.serialized
    }

    /// Whether the signature verifies under `signing_key`.
    pub fn verify_signature(&self, signing_key: &PublicKey) -> bool {
        let split = self.serialized.len() - SIGNATURE_LENGTH;
        signing_key.verify_signature(&self.serialized[..split], &self.serialized[split..])
    }
}

/// A sender key handed to one member: `0x33 ‖ protobuf`. Carries a chain key, so it is zeroized
/// on drop and has no `Debug`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SenderKeyDistributionMessage {
    #[zeroize(skip)]
    distribution_id: DistributionId,
    chain_id: u32,
    iteration: u32,
    chain_key: [u8; CHAIN_KEY_LENGTH],
    #[zeroize(skip)]
    signing_key: PublicKey,
    serialized: Vec<u8>,
}

impl SenderKeyDistributionMessage {
    /// Builds a distribution message.
    pub fn new(
        distribution_id: DistributionId,
        chain_id: u32,
        iteration: u32,
        chain_key: [u8; CHAIN_KEY_LENGTH],
        signing_key: PublicKey,
    ) -> Self {
        let mut proto = wire::SenderKeyDistributionMessage {
            distribution_uuid: Some(distribution_id.0.to_vec()),
            chain_id: Some(chain_id),
            iteration: Some(iteration),
            chain_key: Some(chain_key.to_vec()),
            signing_key: Some(signing_key.serialize().to_vec()),
        };
        let serialized = encode_with_version(&proto, 0);
        if let Some(key) = proto.chain_key.as_mut() {
            key.zeroize();
        }
        Self {
            distribution_id,
            chain_id,
            iteration,
            chain_key,
            signing_key,
            serialized,
        }
    }

    /// Parses a distribution message: every field required, chain key exactly 32 bytes, signing
    /// key exactly 33.
    pub fn deserialize(bytes: &[u8]) -> Result<Self, SenderKeyDecodeError> {
        check_length(bytes)?;
        let mut proto = wire::SenderKeyDistributionMessage::decode(&bytes[1..])
            .map_err(|_| SenderKeyDecodeError::Protobuf)?;
        let chain_key = Zeroizing::new(required(proto.chain_key.take(), "chain_key")?);
        let chain_key = <[u8; CHAIN_KEY_LENGTH]>::try_from(chain_key.as_slice())
            .map_err(|_| SenderKeyDecodeError::BadFieldLength("chain_key"))?;
        let signing_key = required(proto.signing_key, "signing_key")?;
        if signing_key.len() != PUBLIC_KEY_LENGTH {
            return Err(SenderKeyDecodeError::BadFieldLength("signing_key"));
        }
        Ok(Self {
            distribution_id: distribution_id(proto.distribution_uuid)?,
            chain_id: required(proto.chain_id, "chain_id")?,
            iteration: required(proto.iteration, "iteration")?,
            chain_key,
            signing_key: PublicKey::deserialize(&signing_key)
                .map_err(|_| SenderKeyDecodeError::BadSigningKey)?,
            serialized: bytes.to_vec(),
        })
    }

    /// The message version (always 3).
    pub fn message_version(&self) -> u8 {
        SENDER_KEY_MESSAGE_VERSION
    }
    /// The group distribution.
    pub fn distribution_id(&self) -> DistributionId {
        self.distribution_id
    }
    /// The sender's chain.
    pub fn chain_id(&self) -> u32 {
        self.chain_id
    }
    /// The chain position of `chain_key`.
    pub fn iteration(&self) -> u32 {
        self.iteration
    }
    /// The chain key at `iteration`.
    pub fn chain_key(&self) -> &[u8; CHAIN_KEY_LENGTH] {
        &self.chain_key
    }
    /// The sender's public signing key.
    pub fn signing_key(&self) -> &PublicKey {
        &self.signing_key
    }
    /// The bytes to send (inside a 1:1 encrypted message).
    pub fn serialized(&self) -> &[u8] {
        &self.serialized
    }
}

// ---------------------------------------------------------------------------------------------
// Chains and states
// ---------------------------------------------------------------------------------------------

/// A chain key at an iteration.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
struct SenderChainKey {
    iteration: u32,
    key: [u8; CHAIN_KEY_LENGTH],
}

impl SenderChainKey {
    fn seed(&self) -> [u8; 32] {
        hmac_sha256(&self.key, &[MESSAGE_KEY_SEED])
    }

    /// The next chain key; `None` when the iteration counter is exhausted.
    fn next(&self) -> Option<Self> {
        Some(Self {
            iteration: self.iteration.checked_add(1)?,
            key: hmac_sha256(&self.key, &[CHAIN_KEY_SEED]),
        })
    }
}

/// A message key seed kept for a message that has not arrived yet.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
struct SkippedKey {
    iteration: u32,
    seed: [u8; 32],
}

/// The AES key and IV of one group message.
#[derive(Zeroize, ZeroizeOnDrop)]
struct MessageKeys {
    iv: [u8; 16],
    key: [u8; 32],
}

impl MessageKeys {
    fn derive(seed: &[u8; 32]) -> Self {
        let okm = Zeroizing::new(hkdf_sha256::<48>(None, seed, WHISPER_GROUP_INFO));
        let mut keys = Self {
            iv: [0; 16],
            key: [0; 32],
        };
        keys.iv.copy_from_slice(&okm[..16]);
        keys.key.copy_from_slice(&okm[16..]);
        keys
    }
}

/// One chain of one sender: its id, position, chain key, signing key (with the private half
/// only for our own chains) and skipped message keys. Zeroized on drop; no `Debug`.
#[derive(Clone)]
pub struct SenderKeyState {
    chain_id: u32,
    chain: SenderChainKey,
    signing_public: PublicKey,
    signing_private: Option<PrivateKey>,
    skipped: VecDeque<SkippedKey>,
}

/// How a received iteration's key is obtained, computed without touching the state.
enum KeyPlan {
    /// A stored skipped key, at this position in the queue.
    Stored { position: usize },
    /// Walk the chain forward: keys to store, and the chain after the message.
    Advance {
        skipped: Vec<SkippedKey>,
        next: SenderChainKey,
    },
}

impl SenderKeyState {
    /// The chain id.
    pub fn chain_id(&self) -> u32 {
        self.chain_id
    }
    /// The next iteration to be sent (own chain) or expected (received chain).
    pub fn iteration(&self) -> u32 {
        self.chain.iteration
    }
    /// The public signing key.
    pub fn signing_key(&self) -> &PublicKey {
        &self.signing_public
    }
    /// Whether this is one of our own chains (it can sign).
    pub fn can_send(&self) -> bool {
        self.signing_private.is_some()
    }
    /// Number of skipped message keys held.
    pub fn skipped_keys(&self) -> usize {
        self.skipped.len()
    }

    fn plan(&self, iteration: u32) -> Result<(KeyPlan, MessageKeys), GroupDecryptError> {
        let current = self.chain.iteration;
        if iteration < current {
            let position = self
                .skipped
                .iter()
                .position(|k| k.iteration == iteration)
                .ok_or(GroupDecryptError::DuplicatedMessage { current, iteration })?;
            let keys = MessageKeys::derive(&self.skipped[position].seed);
            return Ok((KeyPlan::Stored { position }, keys));
        }
        if iteration - current > MAX_FORWARD_JUMPS {
            return Err(GroupDecryptError::TooFarInFuture { current, iteration });
        }
        // Only the last MAX_MESSAGE_KEYS skipped keys could survive the eviction that storing
        // them would cause, so only those are kept.
        let keep_from = iteration.saturating_sub(MAX_MESSAGE_KEYS as u32);
        let mut skipped = Vec::new();
        let mut chain = self.chain.clone();
        while chain.iteration < iteration {
            if chain.iteration >= keep_from {
                skipped.push(SkippedKey {
                    iteration: chain.iteration,
                    seed: chain.seed(),
                });
            }
            // chain.iteration < iteration ≤ u32::MAX, so this step cannot overflow.
            chain = chain.next().ok_or(GroupDecryptError::ChainExhausted)?;
        }
        let keys = MessageKeys::derive(&chain.seed());
        let next = chain.next().ok_or(GroupDecryptError::ChainExhausted)?;
        Ok((KeyPlan::Advance { skipped, next }, keys))
    }

    fn commit(&mut self, plan: KeyPlan) {
        match plan {
            KeyPlan::Stored { position } => {
                self.skipped.remove(position);
            }
            KeyPlan::Advance { skipped, next } => {
                self.skipped.extend(skipped);
                while self.skipped.len() > MAX_MESSAGE_KEYS {
                    self.skipped.pop_front();
                }
                self.chain = next;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

/// Why a group message could not be encrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupEncryptError {
    /// No sender key for this distribution: create and distribute one first.
    #[error("no sender key state for this distribution")]
    NoSenderKeyState,
    /// The newest state is someone else's (no private signing key).
    #[error("the sender key state has no private signing key")]
    NoSigningKey,
    /// The chain reached iteration 2^32 − 1; distribute a new sender key.
    #[error("sender chain exhausted")]
    ChainExhausted,
    /// The message would exceed what receivers accept.
    #[error("group message would be {got} bytes; the limit is {limit}")]
    MessageTooLong {
        /// Length the message would have.
        got: usize,
        /// [`MAX_MESSAGE_LENGTH`].
        limit: usize,
    },
}

/// Why a group message was refused. The record is unchanged in every case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupDecryptError {
    /// The bytes are not a SenderKeyMessage.
    #[error("invalid sender-key message: {0}")]
    Decode(#[from] SenderKeyDecodeError),
    /// No state for this sender and distribution, or none with this chain id.
    #[error("no sender key state for chain {chain_id}")]
    NoSenderKeyState {
        /// The message's chain id.
        chain_id: u32,
    },
    /// The signature does not verify under the chain's signing key.
    #[error("sender-key message signature is invalid")]
    BadSignature,
    /// An iteration already consumed (or whose skipped key was dropped).
    #[error("duplicate group message: iteration {iteration}, chain at {current}")]
    DuplicatedMessage {
        /// The chain's next iteration.
        current: u32,
        /// The message's iteration.
        iteration: u32,
    },
    /// More than [`MAX_FORWARD_JUMPS`] ahead of the chain.
    #[error(
        "group message from too far into the future: iteration {iteration}, chain at {current}"
    )]
    TooFarInFuture {
        /// The chain's next iteration.
        current: u32,
        /// The message's iteration.
        iteration: u32,
    },
    /// The chain cannot advance past iteration 2^32 − 1.
    #[error("sender chain exhausted")]
    ChainExhausted,
    /// AES-CBC decryption failed (bad length or padding).
    #[error("group message decryption failed")]
    DecryptionFailed,
}

/// The sender-key states of one (sender, distribution id): at most
/// [`MAX_SENDER_KEY_STATES`], newest first. Zeroized on drop; no `Debug`.
#[derive(Clone, Default)]
pub struct SenderKeyRecord {
    states: VecDeque<SenderKeyState>,
}

impl SenderKeyRecord {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the record holds no state.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// The states, newest first.
    pub fn states(&self) -> impl ExactSizeIterator<Item = &SenderKeyState> {
        self.states.iter()
    }

    /// The state for `chain_id`.
    pub fn state_for_chain_id(&self, chain_id: u32) -> Option<&SenderKeyState> {
        self.states.iter().find(|s| s.chain_id == chain_id)
    }

    /// Our own record: makes a fresh chain (31-bit random chain id, iteration 0, random chain
    /// key, new signing key pair) if there is none, and returns the distribution message for the
    /// newest chain at its current iteration.
    pub fn create_distribution(
        &mut self,
        distribution_id: DistributionId,
        rng: &mut impl CryptoRng,
    ) -> SenderKeyDistributionMessage {
        if self.states.is_empty() {
            let chain_id = rng.next_u32() >> 1;
            let mut key = [0u8; CHAIN_KEY_LENGTH];
            rng.fill_bytes(&mut key);
            let signing = KeyPair::generate(rng);
            self.states.push_front(SenderKeyState {
                chain_id,
                chain: SenderChainKey { iteration: 0, key },
                signing_public: signing.public,
                signing_private: Some(signing.private),
                skipped: VecDeque::new(),
            });
            key.zeroize();
        }
        let state = &self.states[0];
        SenderKeyDistributionMessage::new(
            distribution_id,
            state.chain_id,
            state.chain.iteration,
            state.chain.key,
            state.signing_public,
        )
    }

    /// A member's distribution message: adds its chain as the newest state. The same chain id
    /// with the same signing key keeps the existing state (it is not rewound, only moved to the
    /// front); the same chain id with another key replaces it; beyond
    /// [`MAX_SENDER_KEY_STATES`] the oldest state is dropped.
    pub fn process_distribution(&mut self, message: &SenderKeyDistributionMessage) {
        let existing = self
            .states
            .iter()
            .position(|s| s.chain_id == message.chain_id && s.signing_public == message.signing_key)
            .and_then(|i| self.states.remove(i));
        self.states.retain(|s| s.chain_id != message.chain_id);
        let state = existing.unwrap_or_else(|| SenderKeyState {
            chain_id: message.chain_id,
            chain: SenderChainKey {
                iteration: message.iteration,
                key: message.chain_key,
            },
            signing_public: message.signing_key,
            signing_private: None,
            skipped: VecDeque::new(),
        });
        while self.states.len() >= MAX_SENDER_KEY_STATES {
            self.states.pop_back();
        }
        self.states.push_front(state);
    }

    /// Encrypts with our newest chain, signs, and advances the chain.
    pub fn encrypt(
        &mut self,
        distribution_id: DistributionId,
        plaintext: &[u8],
        rng: &mut impl CryptoRng,
    ) -> Result<SenderKeyMessage, GroupEncryptError> {
        let state = self
            .states
            .front_mut()
            .ok_or(GroupEncryptError::NoSenderKeyState)?;
        let signing_key = state
            .signing_private
            .as_ref()
            .ok_or(GroupEncryptError::NoSigningKey)?;
        let next = state
            .chain
            .next()
            .ok_or(GroupEncryptError::ChainExhausted)?;
        let got = encoded_message_len(state.chain_id, state.chain.iteration, plaintext.len());
        if got > MAX_MESSAGE_LENGTH {
            return Err(GroupEncryptError::MessageTooLong {
                got,
                limit: MAX_MESSAGE_LENGTH,
            });
        }
        let keys = MessageKeys::derive(&state.chain.seed());
        let ciphertext = aes256_cbc_encrypt(&keys.key, &keys.iv, plaintext);
        let message = SenderKeyMessage::new(
            distribution_id,
            state.chain_id,
            state.chain.iteration,
            ciphertext,
            signing_key,
            rng,
        );
        state.chain = next;
        Ok(message)
    }

    /// Verifies and decrypts a member's message. The signature is checked before anything else,
    /// and the record changes only if decryption succeeds.
    pub fn decrypt(&mut self, message: &SenderKeyMessage) -> Result<Vec<u8>, GroupDecryptError> {
        let state = self
            .states
            .iter_mut()
            .find(|s| s.chain_id == message.chain_id)
            .ok_or(GroupDecryptError::NoSenderKeyState {
                chain_id: message.chain_id,
            })?;
        if !message.verify_signature(&state.signing_public) {
            return Err(GroupDecryptError::BadSignature);
        }
        let (plan, keys) = state.plan(message.iteration)?;
        let plaintext = aes256_cbc_decrypt(&keys.key, &keys.iv, &message.ciphertext)
            .ok_or(GroupDecryptError::DecryptionFailed)?;
        state.commit(plan);
        Ok(plaintext)
    }
}

// ---------------------------------------------------------------------------------------------
// Store
// ---------------------------------------------------------------------------------------------

/// Where sender-key records live, keyed by (sender address, distribution id). The caller
/// persists them (see [`SenderKeyRecord::to_snapshot`]).
pub trait SenderKeyStore {
    /// The record, if any.
    fn sender_key_record(
        &mut self,
        sender: &ProtocolAddress,
        distribution_id: DistributionId,
    ) -> Option<&mut SenderKeyRecord>;

    /// The record, created empty if absent.
    fn sender_key_record_or_default(
        &mut self,
        sender: &ProtocolAddress,
        distribution_id: DistributionId,
    ) -> &mut SenderKeyRecord;

    /// Drops the record: a member who left (their keys), or our own keys before redistributing.
    fn remove_sender_key_record(
        &mut self,
        sender: &ProtocolAddress,
        distribution_id: DistributionId,
    ) -> Option<SenderKeyRecord>;
}

/// A [`SenderKeyStore`] in memory.
#[derive(Default)]
pub struct InMemorySenderKeyStore {
    records: HashMap<ProtocolAddress, HashMap<DistributionId, SenderKeyRecord>>,
}

impl InMemorySenderKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of records held.
    pub fn len(&self) -> usize {
        self.records.values().map(HashMap::len).sum()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

impl SenderKeyStore for InMemorySenderKeyStore {
    fn sender_key_record(
        &mut self,
        sender: &ProtocolAddress,
        distribution_id: DistributionId,
    ) -> Option<&mut SenderKeyRecord> {
        self.records.get_mut(sender)?.get_mut(&distribution_id)
    }

    fn sender_key_record_or_default(
        &mut self,
        sender: &ProtocolAddress,
        distribution_id: DistributionId,
    ) -> &mut SenderKeyRecord {
        // Only distribution messages come here (rarely); the hot paths borrow the address.
        self.records
            .entry(sender.clone())
            .or_default()
            .entry(distribution_id)
            .or_default()
    }

    fn remove_sender_key_record(
        &mut self,
        sender: &ProtocolAddress,
        distribution_id: DistributionId,
    ) -> Option<SenderKeyRecord> {
        let by_sender = self.records.get_mut(sender)?;
        let removed = by_sender.remove(&distribution_id);
        if by_sender.is_empty() {
            self.records.remove(sender);
        }
        removed
    }
}

/// Our distribution message for `distribution_id`, creating our sender key on first use.
pub fn create_sender_key_distribution_message(
    store: &mut impl SenderKeyStore,
    own_address: &ProtocolAddress,
    distribution_id: DistributionId,
    rng: &mut impl CryptoRng,
) -> SenderKeyDistributionMessage {
    store
        .sender_key_record_or_default(own_address, distribution_id)
        .create_distribution(distribution_id, rng)
}

/// Records a member's distribution message (received inside the 1:1 session with `sender`).
pub fn process_sender_key_distribution_message(
    store: &mut impl SenderKeyStore,
    sender: &ProtocolAddress,
    message: &SenderKeyDistributionMessage,
) {
    store
        .sender_key_record_or_default(sender, message.distribution_id)
        .process_distribution(message);
}

/// Encrypts a group message with our sender key for `distribution_id`.
pub fn group_encrypt(
    store: &mut impl SenderKeyStore,
    own_address: &ProtocolAddress,
    distribution_id: DistributionId,
    plaintext: &[u8],
    rng: &mut impl CryptoRng,
) -> Result<SenderKeyMessage, GroupEncryptError> {
    store
        .sender_key_record(own_address, distribution_id)
        .ok_or(GroupEncryptError::NoSenderKeyState)?
        .encrypt(distribution_id, plaintext, rng)
}

/// Parses, verifies and decrypts a group message from `sender`.
pub fn group_decrypt(
    store: &mut impl SenderKeyStore,
    sender: &ProtocolAddress,
    bytes: &[u8],
) -> Result<Vec<u8>, GroupDecryptError> {
    let message = SenderKeyMessage::deserialize(bytes)?;
    store
        .sender_key_record(sender, message.distribution_id)
        .ok_or(GroupDecryptError::NoSenderKeyState {
            chain_id: message.chain_id,
        })?
        .decrypt(&message)
}

// ---------------------------------------------------------------------------------------------
// Snapshots
// ---------------------------------------------------------------------------------------------

/// Snapshot layout: `SENDER_KEY_SNAPSHOT_VERSION ‖ protobuf SenderKeyRecord`
/// (`proto/snapshot.proto`).
mod snapshot_pb {
    pub use crate::proto::snapshot::{
        SenderKeyRecord as RecordSnapshot, SenderKeySkipped as SkippedSnapshot,
        SenderKeyState as StateSnapshot,
    };

    impl RecordSnapshot {
        /// Wipes the secrets held in the intermediate protobuf values.
        pub fn wipe(&mut self) {
            use zeroize::Zeroize;
            for state in &mut self.states {
                state.chain_key.zeroize();
                state.signing_private.zeroize();
                for skipped in &mut state.skipped {
                    skipped.seed.zeroize();
                }
            }
        }
    }
}

/// Why a [`SenderKeyRecord`] snapshot could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SenderKeySnapshotError {
    /// No bytes at all.
    #[error("sender key snapshot is empty")]
    Empty,
    /// Longer than [`MAX_SENDER_KEY_SNAPSHOT_LENGTH`].
    #[error("sender key snapshot is {got} bytes; the limit is {limit}")]
    TooLong {
        /// Received length.
        got: usize,
        /// The limit.
        limit: usize,
    },
    /// A format byte this build does not read.
    #[error("sender key snapshot format {0} is not supported")]
    UnknownVersion(u8),
    /// Not a protobuf of the snapshot's shape.
    #[error("sender key snapshot is not a valid protobuf")]
    Malformed,
    /// A required field is absent.
    #[error("sender key snapshot field {0} is missing")]
    Missing(&'static str),
    /// A field breaks an invariant (length, key validity, ordering, uniqueness).
    #[error("sender key snapshot field {0} is invalid")]
    Invalid(&'static str),
    /// More states or skipped keys than the limits allow.
    #[error("sender key snapshot holds more {0} than the limit allows")]
    OverLimit(&'static str),
}

fn snapshot_array32(
    value: Option<Vec<u8>>,
    field: &'static str,
) -> Result<[u8; 32], SenderKeySnapshotError> {
    let bytes = Zeroizing::new(value.ok_or(SenderKeySnapshotError::Missing(field))?);
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| SenderKeySnapshotError::Invalid(field))
}

impl SenderKeyRecord {
    /// The versioned snapshot bytes. They hold chain keys and private keys: seal them before
    /// they reach a disk.
    pub fn to_snapshot(&self) -> Zeroizing<Vec<u8>> {
        let mut proto = snapshot_pb::RecordSnapshot {
            states: self
                .states
                .iter()
                .map(|s| snapshot_pb::StateSnapshot {
                    message_version: Some(u32::from(SENDER_KEY_MESSAGE_VERSION)),
                    chain_id: Some(s.chain_id),
                    iteration: Some(s.chain.iteration),
                    chain_key: Some(s.chain.key.to_vec()),
                    signing_public: Some(s.signing_public.serialize().to_vec()),
                    signing_private: s.signing_private.as_ref().map(|p| p.to_bytes().to_vec()),
                    skipped: s
                        .skipped
                        .iter()
                        .map(|k| snapshot_pb::SkippedSnapshot {
                            iteration: Some(k.iteration),
                            seed: Some(k.seed.to_vec()),
                        })
                        .collect(),
                })
                .collect(),
        };
        let mut out = Zeroizing::new(Vec::with_capacity(1 + proto.encoded_len()));
        out.push(SENDER_KEY_SNAPSHOT_VERSION);
        // Encoding into a Vec cannot run out of space.
        proto.encode(&mut *out).unwrap_or_else(|_| unreachable!());
        proto.wipe();
        out
    }

    /// Loads a snapshot, checking every length, key and limit.
    pub fn from_snapshot(bytes: &[u8]) -> Result<Self, SenderKeySnapshotError> {
        if bytes.len() > MAX_SENDER_KEY_SNAPSHOT_LENGTH {
            return Err(SenderKeySnapshotError::TooLong {
                got: bytes.len(),
                limit: MAX_SENDER_KEY_SNAPSHOT_LENGTH,
            });
        }
        let (&version, body) = bytes.split_first().ok_or(SenderKeySnapshotError::Empty)?;
        if version != SENDER_KEY_SNAPSHOT_VERSION {
            return Err(SenderKeySnapshotError::UnknownVersion(version));
        }
        let mut proto = snapshot_pb::RecordSnapshot::decode(body)
            .map_err(|_| SenderKeySnapshotError::Malformed)?;
        let result = Self::from_proto(&mut proto);
        proto.wipe();
        result
    }

    fn from_proto(proto: &mut snapshot_pb::RecordSnapshot) -> Result<Self, SenderKeySnapshotError> {
        use SenderKeySnapshotError as E;
        if proto.states.len() > MAX_SENDER_KEY_STATES {
            return Err(E::OverLimit("states"));
        }
        let mut states = VecDeque::with_capacity(proto.states.len());
        for s in &mut proto.states {
            match s.message_version {
                Some(v) if v == u32::from(SENDER_KEY_MESSAGE_VERSION) => {}
                Some(_) => return Err(E::Invalid("message_version")),
                None => return Err(E::Missing("message_version")),
            }
            let chain_id = s.chain_id.ok_or(E::Missing("chain_id"))?;
            if states
                .iter()
                .any(|other: &SenderKeyState| other.chain_id == chain_id)
            {
                return Err(E::Invalid("chain_id"));
            }
            let iteration = s.iteration.ok_or(E::Missing("iteration"))?;
            let key = snapshot_array32(s.chain_key.take(), "chain_key")?;
            let public_bytes = s
                .signing_public
                .take()
                .ok_or(E::Missing("signing_public"))?;
            if public_bytes.len() != PUBLIC_KEY_LENGTH {
                return Err(E::Invalid("signing_public"));
            }
            let signing_public =
                PublicKey::deserialize(&public_bytes).map_err(|_| E::Invalid("signing_public"))?;
            let signing_private = match s.signing_private.take() {
                None => None,
                Some(bytes) => {
                    let bytes = Zeroizing::new(bytes);
                    let private = PrivateKey::from_bytes(&bytes)
                        .map_err(|_| E::Invalid("signing_private"))?;
                    if private.public_key() != signing_public {
                        return Err(E::Invalid("signing_private"));
                    }
                    Some(private)
                }
            };
            if s.skipped.len() > MAX_MESSAGE_KEYS {
                return Err(E::OverLimit("skipped keys"));
            }
            let mut skipped = VecDeque::with_capacity(s.skipped.len());
            let mut previous: Option<u32> = None;
            for k in &mut s.skipped {
                let at = k.iteration.ok_or(E::Missing("skipped.iteration"))?;
                // Skipped keys are stored in increasing order, all before the chain's position.
                if at >= iteration || previous.is_some_and(|p| at <= p) {
                    return Err(E::Invalid("skipped.iteration"));
                }
                previous = Some(at);
                skipped.push_back(SkippedKey {
                    iteration: at,
                    seed: snapshot_array32(k.seed.take(), "skipped.seed")?,
                });
            }
            states.push_back(SenderKeyState {
                chain_id,
                chain: SenderChainKey { iteration, key },
                signing_public,
                signing_private,
                skipped,
            });
        }
        Ok(Self { states })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_byte_is_0x33() {
        assert_eq!(SENDER_KEY_VERSION_BYTE, 0x33);
    }

    #[test]
    fn plan_keeps_only_the_last_max_message_keys() {
        let state = SenderKeyState {
            chain_id: 1,
            chain: SenderChainKey {
                iteration: 0,
                key: [7; 32],
            },
            signing_public: PublicKey::from_u([9; 32]),
            signing_private: None,
            skipped: VecDeque::new(),
        };
        let (plan, _) = state.plan(2_500).expect("within the jump limit");
        match plan {
            KeyPlan::Advance { skipped, next } => {
                assert_eq!(skipped.len(), MAX_MESSAGE_KEYS);
                assert_eq!(skipped.first().map(|k| k.iteration), Some(500));
                assert_eq!(skipped.last().map(|k| k.iteration), Some(2_499));
                assert_eq!(next.iteration, 2_501);
            }
            KeyPlan::Stored { .. } => panic!("expected a forward walk"),
        }
    }

    #[test]
    fn chain_cannot_pass_u32_max() {
        let chain = SenderChainKey {
            iteration: u32::MAX,
            key: [1; 32],
        };
        assert!(chain.next().is_none());
    }
}
