//! The 1:1 wire messages: `SignalMessage` (a.k.a. WhisperMessage) and `PreKeySignalMessage`.
//!
//! ```text
//! SignalMessage       = version ‖ protobuf { 1 ratchet_key, 2 counter, 3 previous_counter,
//!                                            4 ciphertext, 5 pq_ratchet, 6 addresses } ‖ MAC[8]
//! PreKeySignalMessage = version ‖ protobuf { 1 pre_key_id, 2 base_key, 3 identity_key, 4 message,
//!                                            5 registration_id, 6 signed_pre_key_id,
//!                                            7 kyber_pre_key_id, 8 kyber_ciphertext }
//! version             = (message version << 4) | writer's current version
//! ```
//! Parsing looks only at the high nibble (3 or 4), as Signal's library does.

use prost::Message as _;

use crate::keys::{IdentityKey, KeyError, PublicKey};
use crate::limits::MAX_MESSAGE_LENGTH;
use crate::proto::wire;

/// Length of the truncated HMAC-SHA256 at the end of a `SignalMessage`.
pub const MAC_LENGTH: usize = 8;
/// Message version of X3DH sessions.
pub const VERSION_X3DH: u8 = 3;
/// Message version of PQXDH sessions.
pub const VERSION_PQXDH: u8 = 4;

/// Why a message could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("message is {0} bytes, too short")]
    TooShort(usize),
    #[error("message is {got} bytes; the limit is {limit}")]
    TooLong { got: usize, limit: usize },
    #[error("legacy ciphertext version {0} is not supported")]
    LegacyVersion(u8),
    #[error("unrecognized ciphertext version {0}")]
    UnrecognizedVersion(u8),
    #[error("malformed protobuf")]
    Protobuf,
    #[error("required field {0} is missing")]
    MissingField(&'static str),
    #[error("field {0} has the wrong length")]
    BadFieldLength(&'static str),
    #[error("Kyber pre-key id and ciphertext must be both present or both absent")]
    KyberFieldsMismatch,
    #[error("version-4 PreKey message without Kyber fields")]
    MissingKyberFields,
    #[error("bad key in field {field}: {source}")]
    BadKey {
        field: &'static str,
        source: KeyError,
    },
}

fn check_length(bytes: &[u8], min: usize) -> Result<(), DecodeError> {
    if bytes.len() > MAX_MESSAGE_LENGTH {
        return Err(DecodeError::TooLong {
            got: bytes.len(),
            limit: MAX_MESSAGE_LENGTH,
        });
    }
    if bytes.len() < min {
        return Err(DecodeError::TooShort(bytes.len()));
    }
    Ok(())
}

fn message_version(byte: u8) -> Result<u8, DecodeError> {
    match byte >> 4 {
        v @ 0..=2 => Err(DecodeError::LegacyVersion(v)),
        v @ 3..=4 => Ok(v),
        v => Err(DecodeError::UnrecognizedVersion(v)),
    }
}

fn parse_key(bytes: Option<Vec<u8>>, field: &'static str) -> Result<PublicKey, DecodeError> {
    let bytes = bytes.ok_or(DecodeError::MissingField(field))?;
    PublicKey::deserialize(&bytes).map_err(|source| DecodeError::BadKey { field, source })
}

/// A parsed `SignalMessage`. The MAC is checked by the session, which knows the key.
#[derive(Clone, Debug)]
pub struct SignalMessage {
    version: u8,
    ratchet_key: PublicKey,
    counter: u32,
    previous_counter: u32,
    ciphertext: Vec<u8>,
    addresses: Option<Vec<u8>>,
    serialized: Vec<u8>,
}

impl SignalMessage {
    /// Builds and MACs a message. `mac` computes the MAC over `version ‖ protobuf`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        version_byte: u8,
        ratchet_key: PublicKey,
        counter: u32,
        previous_counter: u32,
        ciphertext: Vec<u8>,
        mac: impl FnOnce(&[u8]) -> [u8; 32],
    ) -> Self {
        let proto = wire::SignalMessage {
            ratchet_key: Some(ratchet_key.serialize().to_vec()),
            counter: Some(counter),
            previous_counter: Some(previous_counter),
            ciphertext: Some(ciphertext),
            pq_ratchet: None,
            addresses: None,
        };
        let mut serialized = Vec::with_capacity(1 + proto.encoded_len() + MAC_LENGTH);
        serialized.push(version_byte);
        // Encoding into a Vec cannot run out of space.
        proto
            .encode(&mut serialized)
            .unwrap_or_else(|_| unreachable!());
        let tag = mac(&serialized);
        serialized.extend_from_slice(&tag[..MAC_LENGTH]);
        Self {
            version: version_byte >> 4,
            ratchet_key,
            counter,
            previous_counter,
            ciphertext: proto.ciphertext.unwrap_or_default(),
            addresses: None,
            serialized,
        }
    }

    /// Parses a message (without checking its MAC).
    pub fn deserialize(bytes: &[u8]) -> Result<Self, DecodeError> {
        check_length(bytes, 1 + MAC_LENGTH)?;
        let version = message_version(bytes[0])?;
        let body = &bytes[1..bytes.len() - MAC_LENGTH];
        let proto = wire::SignalMessage::decode(body).map_err(|_| DecodeError::Protobuf)?;
        let ratchet_key = parse_key(proto.ratchet_key, "ratchet_key")?;
        Ok(Self {
            version,
            ratchet_key,
            counter: proto.counter.ok_or(DecodeError::MissingField("counter"))?,
            previous_counter: proto.previous_counter.unwrap_or(0),
            ciphertext: proto
                .ciphertext
                .ok_or(DecodeError::MissingField("ciphertext"))?,
            addresses: proto.addresses,
            serialized: bytes.to_vec(),
        })
    }

    pub fn message_version(&self) -> u8 {
        self.version
    }
    pub fn ratchet_key(&self) -> &PublicKey {
        &self.ratchet_key
    }
    pub fn counter(&self) -> u32 {
        self.counter
    }
    pub fn previous_counter(&self) -> u32 {
        self.previous_counter
    }
    pub fn body(&self) -> &[u8] {
        &self.ciphertext
    }
    /// The optional sender/recipient address binding (field 6).
    pub fn addresses(&self) -> Option<&[u8]> {
        self.addresses.as_deref()
    }
    pub fn serialized(&self) -> &[u8] {
        &self.serialized
    }
    /// `version ‖ protobuf`, the part the MAC covers (after the two identity keys).
    pub(crate) fn mac_input(&self) -> &[u8] {
        &self.serialized[..self.serialized.len() - MAC_LENGTH]
    }
    pub(crate) fn mac(&self) -> &[u8] {
        &self.serialized[self.serialized.len() - MAC_LENGTH..]
    }
}

/// A parsed `PreKeySignalMessage`: the first messages of a session, carrying what the responder
/// needs to build it.
#[derive(Clone, Debug)]
pub struct PreKeySignalMessage {
    version: u8,
    registration_id: u32,
    pre_key_id: Option<u32>,
    signed_pre_key_id: u32,
    kyber: Option<(u32, Vec<u8>)>,
    base_key: PublicKey,
    identity_key: IdentityKey,
    message: SignalMessage,
    serialized: Vec<u8>,
}

/// The fields of a `PreKeySignalMessage` other than the inner message.
#[derive(Clone, Debug)]
pub(crate) struct PreKeyFields {
    pub registration_id: u32,
    pub pre_key_id: Option<u32>,
    pub signed_pre_key_id: u32,
    pub kyber: Option<(u32, Vec<u8>)>,
    pub base_key: PublicKey,
    pub identity_key: IdentityKey,
}

impl PreKeySignalMessage {
    pub(crate) fn new(version_byte: u8, fields: PreKeyFields, message: SignalMessage) -> Self {
        let (kyber_pre_key_id, kyber_ciphertext) = match &fields.kyber {
            Some((id, ct)) => (Some(*id), Some(ct.clone())),
            None => (None, None),
        };
        let proto = wire::PreKeySignalMessage {
            registration_id: Some(fields.registration_id),
            pre_key_id: fields.pre_key_id,
            signed_pre_key_id: Some(fields.signed_pre_key_id),
            kyber_pre_key_id,
            kyber_ciphertext,
            base_key: Some(fields.base_key.serialize().to_vec()),
            identity_key: Some(fields.identity_key.serialize().to_vec()),
            message: Some(message.serialized().to_vec()),
        };
        let mut serialized = Vec::with_capacity(1 + proto.encoded_len());
        serialized.push(version_byte);
        proto
            .encode(&mut serialized)
            .unwrap_or_else(|_| unreachable!());
        Self {
            version: version_byte >> 4,
            registration_id: fields.registration_id,
            pre_key_id: fields.pre_key_id,
            signed_pre_key_id: fields.signed_pre_key_id,
            kyber: fields.kyber,
            base_key: fields.base_key,
            identity_key: fields.identity_key,
            message,
            serialized,
        }
    }

    /// Parses a PreKey message and the SignalMessage inside it.
    pub fn deserialize(bytes: &[u8]) -> Result<Self, DecodeError> {
        check_length(bytes, 1)?;
        let version = message_version(bytes[0])?;
        let proto =
            wire::PreKeySignalMessage::decode(&bytes[1..]).map_err(|_| DecodeError::Protobuf)?;
        let base_key = parse_key(proto.base_key, "base_key")?;
        let identity_key = IdentityKey(parse_key(proto.identity_key, "identity_key")?);
        let inner = proto.message.ok_or(DecodeError::MissingField("message"))?;
        let message = SignalMessage::deserialize(&inner)?;
        let signed_pre_key_id = proto
            .signed_pre_key_id
            .ok_or(DecodeError::MissingField("signed_pre_key_id"))?;
        let kyber = match (proto.kyber_pre_key_id, proto.kyber_ciphertext) {
            (Some(id), Some(ct)) => Some((id, ct)),
            (None, None) => None,
            _ => return Err(DecodeError::KyberFieldsMismatch),
        };
        if version == VERSION_PQXDH && kyber.is_none() {
            return Err(DecodeError::MissingKyberFields);
        }
        Ok(Self {
            version,
            registration_id: proto.registration_id.unwrap_or(0),
            pre_key_id: proto.pre_key_id,
            signed_pre_key_id,
            kyber,
            base_key,
            identity_key,
            message,
            serialized: bytes.to_vec(),
        })
    }

    pub fn message_version(&self) -> u8 {
        self.version
    }
    pub fn registration_id(&self) -> u32 {
        self.registration_id
    }
    pub fn pre_key_id(&self) -> Option<u32> {
        self.pre_key_id
    }
    pub fn signed_pre_key_id(&self) -> u32 {
        self.signed_pre_key_id
    }
    /// The Kyber pre-key id and the serialized KEM ciphertext (version 4).
    pub fn kyber(&self) -> Option<(u32, &[u8])> {
        self.kyber.as_ref().map(|(id, ct)| (*id, ct.as_slice()))
    }
    pub fn base_key(&self) -> &PublicKey {
        &self.base_key
    }
    pub fn identity_key(&self) -> &IdentityKey {
        &self.identity_key
    }
    pub fn message(&self) -> &SignalMessage {
        &self.message
    }
    pub fn serialized(&self) -> &[u8] {
        &self.serialized
    }
}

/// An encrypted 1:1 message as it leaves `encrypt`.
#[derive(Clone, Debug)]
pub enum CiphertextMessage {
    /// An ordinary message of an established session (type 2).
    Whisper(SignalMessage),
    /// A message that also sets up the session at the responder (type 3).
    PreKey(PreKeySignalMessage),
}

impl CiphertextMessage {
    pub fn serialized(&self) -> &[u8] {
        match self {
            Self::Whisper(m) => m.serialized(),
            Self::PreKey(m) => m.serialized(),
        }
    }

    /// Signal's ciphertext type number: Whisper = 2, PreKey = 3.
    pub fn type_number(&self) -> u8 {
        match self {
            Self::Whisper(_) => 2,
            Self::PreKey(_) => 3,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_limit_at_n_and_n_plus_one() {
        let at_limit = vec![0x34u8; MAX_MESSAGE_LENGTH];
        // At the limit the length check passes and parsing fails later (not a valid protobuf).
        assert!(!matches!(
            SignalMessage::deserialize(&at_limit),
            Err(DecodeError::TooLong { .. })
        ));
        let over = vec![0x34u8; MAX_MESSAGE_LENGTH + 1];
        assert!(matches!(
            SignalMessage::deserialize(&over),
            Err(DecodeError::TooLong { .. })
        ));
        assert!(matches!(
            PreKeySignalMessage::deserialize(&over),
            Err(DecodeError::TooLong { .. })
        ));
    }

    #[test]
    fn version_nibbles() {
        assert_eq!(message_version(0x33), Ok(3));
        assert_eq!(message_version(0x34), Ok(3));
        assert_eq!(message_version(0x44), Ok(4));
        assert_eq!(message_version(0x23), Err(DecodeError::LegacyVersion(2)));
        assert_eq!(
            message_version(0x54),
            Err(DecodeError::UnrecognizedVersion(5))
        );
        assert_eq!(
            SignalMessage::deserialize(&[0x34; 8]).err(),
            Some(DecodeError::TooShort(8))
        );
    }
}
