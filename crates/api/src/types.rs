//! Value types carried by the API. Fixed-size fields are arrays, so a wrong length cannot be
//! built; variable-size fields are checked against [`crate::limits`] when encoding and decoding.

use crate::limits::len;

/// A Signal Curve25519 public key as the protocol serializes it: 0x05 then 32 bytes (identity
/// keys, signed and one-time prekeys). Opaque here: `confianza-protocol` parses it.
pub type EcPublicKey = [u8; len::EC_PUBLIC_KEY];

/// An XEdDSA signature by an identity key.
pub type Signature = [u8; len::SIGNATURE];

/// A device's Noise static public key.
pub type NoisePublicKey = [u8; len::NOISE_PUBLIC_KEY];

/// A 16-byte random id a client gives each message; a recipient device stores one message per id.
pub type ClientMessageId = [u8; len::CLIENT_MESSAGE_ID];

/// An enrollment (or renewal) challenge.
pub type Challenge = [u8; len::CHALLENGE];

/// A Signal Kyber1024 public key: 0x08 then 1 568 bytes. Boxed: it is large.
#[derive(Clone, PartialEq, Eq)]
pub struct KyberPublicKey(Box<[u8; len::KYBER_PUBLIC_KEY]>);

impl KyberPublicKey {
    /// The key from its serialized bytes; `None` unless they are exactly 1 569 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let boxed: Box<[u8]> = bytes.into();
        boxed.try_into().ok().map(Self)
    }

    pub fn as_bytes(&self) -> &[u8; len::KYBER_PUBLIC_KEY] {
        &self.0
    }
}

impl std::fmt::Debug for KyberPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // 1 569 bytes of hex help nobody; the first bytes identify a key in logs.
        let head = self.0.get(..8).unwrap_or_default();
        write!(f, "KyberPublicKey({head:02x?}..)")
    }
}

/// A server-assigned group id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(pub [u8; len::GROUP_ID]);

/// A server-assigned blob id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId(pub [u8; len::BLOB_ID]);

/// Signal's ciphertext types, with Signal's numbering on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CiphertextType {
    /// A `SignalMessage` (type 2): an established session.
    Whisper,
    /// A `PreKeySignalMessage` (type 3): the first messages of a session.
    PreKey,
    /// A `SenderKeyMessage` (type 7): a group message.
    SenderKey,
}

impl CiphertextType {
    /// Signal's number for the type.
    pub fn to_wire(self) -> u32 {
        match self {
            Self::Whisper => 2,
            Self::PreKey => 3,
            Self::SenderKey => 7,
        }
    }

    /// The type for Signal's number, if it is one we carry.
    pub fn from_wire(value: u32) -> Option<Self> {
        match value {
            2 => Some(Self::Whisper),
            3 => Some(Self::PreKey),
            7 => Some(Self::SenderKey),
            _ => None,
        }
    }
}

/// A signed prekey: its id, public key and the identity key's signature over the public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPreKey {
    pub id: u32,
    pub public_key: EcPublicKey,
    pub signature: Signature,
}

/// A one-time EC prekey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneTimePreKey {
    pub id: u32,
    pub public_key: EcPublicKey,
}

/// A signed Kyber prekey (one-time or last-resort).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KyberPreKey {
    pub id: u32,
    pub public_key: KyberPublicKey,
    pub signature: Signature,
}

/// Prekeys a device publishes. Present single keys replace the server's current ones; lists
/// are added to the server's stock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreKeyUpload {
    pub signed_pre_key: Option<SignedPreKey>,
    /// At most [`crate::limits::MAX_ONE_TIME_PREKEYS_PER_UPLOAD`].
    pub one_time_pre_keys: Vec<OneTimePreKey>,
    /// One-time Kyber prekeys; at most [`crate::limits::MAX_KYBER_PREKEYS_PER_UPLOAD`].
    pub kyber_pre_keys: Vec<KyberPreKey>,
    pub kyber_last_resort: Option<KyberPreKey>,
}

/// Which devices of an account a bundle fetch asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSelector {
    All,
    One(u32),
}

/// What a sender needs to start a session with one device. The client must validate the
/// certificate (to the pinned root, with the stapled OCSP response or the CRL), check that it
/// certifies `identity_key` for the address asked for, and check both prekey signatures before
/// using anything here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreKeyBundle {
    pub device_id: u32,
    pub registration_id: u32,
    pub identity_key: EcPublicKey,
    /// DER.
    pub identity_certificate: Vec<u8>,
    /// DER; `None` when the server has no fresh response (check the CRL instead).
    pub ocsp_response: Option<Vec<u8>>,
    pub signed_pre_key: SignedPreKey,
    /// `None` when the device has run out of one-time prekeys.
    pub one_time_pre_key: Option<OneTimePreKey>,
    pub kyber_pre_key: KyberPreKey,
    /// The Kyber key is the device's reusable last-resort key, not a one-time key.
    pub kyber_is_last_resort: bool,
}

/// A device's remaining stock on the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PreKeyCount {
    pub one_time: u32,
    pub kyber_one_time: u32,
    /// The last-resort Kyber key has been served since it was uploaded: replace it.
    pub kyber_last_resort_used: bool,
}

/// One device's copy of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEnvelope {
    pub device_id: u32,
    /// The registration id of the recipient device the session was set up with; a mismatch
    /// means the device was re-enrolled (`MismatchedDevices`, `stale`).
    pub registration_id: u32,
    pub ciphertext_type: CiphertextType,
    /// At most [`crate::limits::MAX_MESSAGE_BODY_LEN`] bytes.
    pub body: Vec<u8>,
    pub client_message_id: ClientMessageId,
}

/// A message pushed to a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub sender: String,
    pub sender_device_id: u32,
    pub ciphertext_type: CiphertextType,
    pub body: Vec<u8>,
    pub client_message_id: ClientMessageId,
    pub server_timestamp_ms: u64,
    /// For a group message (always with [`CiphertextType::SenderKey`]).
    pub group_id: Option<GroupId>,
}

/// A recipient device acknowledged messages the receiving device sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReceipt {
    pub recipient: String,
    pub recipient_device_id: u32,
    /// At most [`crate::limits::MAX_RECEIPT_IDS`], at least one.
    pub client_message_ids: Vec<ClientMessageId>,
    pub server_timestamp_ms: u64,
}

/// A group member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub address: String,
    pub admin: bool,
}

/// A group and its membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub id: GroupId,
    pub name: String,
    /// Incremented on every membership change.
    pub revision: u64,
    /// At least one, at most [`crate::limits::MAX_GROUP_MEMBERS`].
    pub members: Vec<GroupMember>,
}

/// A group in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    pub id: GroupId,
    pub name: String,
    pub revision: u64,
    pub member_count: u32,
}

/// An upload's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobStatus {
    pub blob_id: BlobId,
    pub size: u64,
    /// Bytes stored so far: the offset to resume at. At most `size`.
    pub received: u64,
    /// All `size` bytes are stored; the blob can be downloaded.
    pub complete: bool,
    pub expires_at_ms: u64,
}

/// RFC 5280 revocation reasons a subscriber may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevocationReason {
    Unspecified,
    KeyCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
}

/// A device of the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceInfo {
    pub device_id: u32,
    pub registration_id: u32,
    pub created_at_ms: u64,
    pub last_seen_ms: u64,
}
