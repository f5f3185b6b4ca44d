//! Versioned snapshots of long-lived protocol state, for the client to seal at rest.
//!
//! The live types carry no `Serialize`; each has a snapshot here in Confianza's own protobuf
//! format (`proto/snapshot.proto`) with a format number. Loading checks every length and every
//! limit, so a corrupted or hostile snapshot yields a typed error, never a panic or a state that
//! breaks an invariant. Snapshots contain private keys: they are returned in [`Zeroizing`]
//! buffers and must be encrypted before they touch a disk.

use std::collections::VecDeque;

use zeroize::Zeroizing;

use crate::kem::{KemKeyPair, KemPublicKey, KemSecretKey};
use crate::keys::{IdentityKey, IdentityKeyPair, KeyPair, PrivateKey, PublicKey};
use crate::limits::{
    ARCHIVED_STATES_MAX_LENGTH, MAX_MESSAGE_KEYS, MAX_RECEIVER_CHAINS, MAX_SNAPSHOT_LENGTH,
};
use crate::prekeys::{KyberPreKeyRecord, PreKeyRecord, SignedPreKeyRecord};
use crate::proto::snapshot as pb;
use crate::ratchet::{ChainKey, MessageKeySeed, RootKey};
use crate::state::{PendingPreKey, ReceiverChain, SenderChain, SessionRecord, SessionState};

/// The snapshot format this version writes and reads.
pub const FORMAT: u32 = 1;

/// Why a snapshot could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    #[error("snapshot is {got} bytes; the limit is {limit}")]
    TooLong { got: usize, limit: usize },
    #[error("snapshot is not a valid protobuf")]
    Malformed,
    #[error("snapshot format {0} is not supported (this build reads format {FORMAT})")]
    UnknownFormat(u32),
    #[error("snapshot field {0} is missing")]
    Missing(&'static str),
    #[error("snapshot field {0} is invalid")]
    Invalid(&'static str),
    #[error("snapshot holds more {0} than the limit allows")]
    OverLimit(&'static str),
}

fn decode<M: prost::Message + Default>(bytes: &[u8]) -> Result<M, SnapshotError> {
    if bytes.len() > MAX_SNAPSHOT_LENGTH {
        return Err(SnapshotError::TooLong {
            got: bytes.len(),
            limit: MAX_SNAPSHOT_LENGTH,
        });
    }
    M::decode(bytes).map_err(|_| SnapshotError::Malformed)
}

fn encode(message: &impl prost::Message) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(message.encode_to_vec())
}

fn check_format(format: Option<u32>) -> Result<(), SnapshotError> {
    match format {
        Some(FORMAT) => Ok(()),
        Some(other) => Err(SnapshotError::UnknownFormat(other)),
        None => Err(SnapshotError::Missing("format")),
    }
}

fn need<T>(value: Option<T>, field: &'static str) -> Result<T, SnapshotError> {
    value.ok_or(SnapshotError::Missing(field))
}

fn array32(value: Option<Vec<u8>>, field: &'static str) -> Result<[u8; 32], SnapshotError> {
    let bytes = Zeroizing::new(need(value, field)?);
    bytes[..]
        .try_into()
        .map_err(|_| SnapshotError::Invalid(field))
}

fn array64(value: Option<Vec<u8>>, field: &'static str) -> Result<[u8; 64], SnapshotError> {
    need(value, field)?
        .as_slice()
        .try_into()
        .map_err(|_| SnapshotError::Invalid(field))
}

fn public(value: Option<Vec<u8>>, field: &'static str) -> Result<PublicKey, SnapshotError> {
    PublicKey::deserialize(&need(value, field)?).map_err(|_| SnapshotError::Invalid(field))
}

fn private(value: Option<Vec<u8>>, field: &'static str) -> Result<PrivateKey, SnapshotError> {
    let bytes = Zeroizing::new(need(value, field)?);
    PrivateKey::from_bytes(&bytes).map_err(|_| SnapshotError::Invalid(field))
}

fn state_to_pb(state: &SessionState) -> pb::SessionState {
    pb::SessionState {
        session_version: Some(u32::from(state.version)),
        local_identity: Some(state.local_identity.serialize().to_vec()),
        remote_identity: Some(state.remote_identity.serialize().to_vec()),
        root_key: Some(state.root_key.0.to_vec()),
        sender_ratchet_private: Some(state.sender.ratchet.private.to_bytes().to_vec()),
        sender_chain_key: Some(state.sender.chain.key.to_vec()),
        sender_chain_index: Some(state.sender.chain.index),
        receivers: state
            .receivers
            .iter()
            .map(|r| pb::ReceiverChain {
                ratchet_key: Some(r.ratchet_key.serialize().to_vec()),
                chain_key: Some(r.chain.key.to_vec()),
                index: Some(r.chain.index),
                skipped: r
                    .skipped
                    .iter()
                    .map(|s| pb::SkippedKey {
                        counter: Some(s.counter),
                        seed: Some(s.seed.to_vec()),
                    })
                    .collect(),
            })
            .collect(),
        previous_counter: Some(state.previous_counter),
        pending: state.pending_pre_key.as_ref().map(|p| pb::PendingPreKey {
            pre_key_id: p.pre_key_id,
            signed_pre_key_id: Some(p.signed_pre_key_id),
            kyber_pre_key_id: p.kyber.as_ref().map(|(id, _)| *id),
            kyber_ciphertext: p.kyber.as_ref().map(|(_, ct)| ct.clone()),
            base_key: Some(p.base_key.serialize().to_vec()),
            created_at: Some(p.created_at),
        }),
        local_registration_id: Some(state.local_registration_id),
        remote_registration_id: Some(state.remote_registration_id),
        alice_base_key: Some(state.alice_base_key.serialize().to_vec()),
    }
}

fn state_from_pb(s: pb::SessionState) -> Result<SessionState, SnapshotError> {
    let version = need(s.session_version, "session_version")?;
    let version = match version {
        3 | 4 => version as u8,
        _ => return Err(SnapshotError::Invalid("session_version")),
    };
    if s.receivers.len() > MAX_RECEIVER_CHAINS {
        return Err(SnapshotError::OverLimit("receiver chains"));
    }
    let mut receivers = VecDeque::with_capacity(s.receivers.len());
    for r in s.receivers {
        if r.skipped.len() > MAX_MESSAGE_KEYS {
            return Err(SnapshotError::OverLimit("skipped message keys"));
        }
        let mut skipped = VecDeque::with_capacity(r.skipped.len());
        for k in r.skipped {
            skipped.push_back(MessageKeySeed {
                seed: array32(k.seed, "skipped.seed")?,
                counter: need(k.counter, "skipped.counter")?,
            });
        }
        receivers.push_back(ReceiverChain {
            ratchet_key: public(r.ratchet_key, "receiver.ratchet_key")?,
            chain: ChainKey {
                key: array32(r.chain_key, "receiver.chain_key")?,
                index: need(r.index, "receiver.index")?,
            },
            skipped,
        });
    }
    let pending = match s.pending {
        None => None,
        Some(p) => Some(PendingPreKey {
            pre_key_id: p.pre_key_id,
            signed_pre_key_id: need(p.signed_pre_key_id, "pending.signed_pre_key_id")?,
            kyber: match (p.kyber_pre_key_id, p.kyber_ciphertext) {
                (Some(id), Some(ct)) => Some((id, ct)),
                (None, None) => None,
                _ => return Err(SnapshotError::Invalid("pending.kyber")),
            },
            base_key: public(p.base_key, "pending.base_key")?,
            created_at: need(p.created_at, "pending.created_at")?,
        }),
    };
    Ok(SessionState {
        version,
        local_identity: IdentityKey(public(s.local_identity, "local_identity")?),
        remote_identity: IdentityKey(public(s.remote_identity, "remote_identity")?),
        root_key: RootKey(array32(s.root_key, "root_key")?),
        sender: SenderChain {
            ratchet: KeyPair::from_private(private(
                s.sender_ratchet_private,
                "sender_ratchet_private",
            )?),
            chain: ChainKey {
                key: array32(s.sender_chain_key, "sender_chain_key")?,
                index: need(s.sender_chain_index, "sender_chain_index")?,
            },
        },
        receivers,
        previous_counter: s.previous_counter.unwrap_or(0),
        pending_pre_key: pending,
        local_registration_id: s.local_registration_id.unwrap_or(0),
        remote_registration_id: s.remote_registration_id.unwrap_or(0),
        alice_base_key: public(s.alice_base_key, "alice_base_key")?,
    })
}

/// Wipes the secrets the intermediate protobuf value holds once it has been encoded.
fn wipe_state(s: &mut pb::SessionState) {
    use zeroize::Zeroize;
    s.root_key.zeroize();
    s.sender_ratchet_private.zeroize();
    s.sender_chain_key.zeroize();
    for receiver in &mut s.receivers {
        receiver.chain_key.zeroize();
        for skipped in &mut receiver.skipped {
            skipped.seed.zeroize();
        }
    }
}

impl SessionRecord {
    /// The record's snapshot (contains private keys).
    pub fn snapshot(&self) -> Zeroizing<Vec<u8>> {
        let mut record = pb::SessionRecord {
            format: Some(FORMAT),
            current: self.current.as_ref().map(state_to_pb),
            previous: self.previous.iter().map(state_to_pb).collect(),
        };
        let out = encode(&record);
        record.current.iter_mut().for_each(wipe_state);
        record.previous.iter_mut().for_each(wipe_state);
        out
    }

    /// Loads a snapshot made by [`SessionRecord::snapshot`].
    pub fn from_snapshot(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let record: pb::SessionRecord = decode(bytes)?;
        check_format(record.format)?;
        if record.previous.len() > ARCHIVED_STATES_MAX_LENGTH {
            return Err(SnapshotError::OverLimit("archived sessions"));
        }
        Ok(Self {
            current: record.current.map(state_from_pb).transpose()?,
            previous: record
                .previous
                .into_iter()
                .map(state_from_pb)
                .collect::<Result<_, _>>()?,
        })
    }
}

impl IdentityKeyPair {
    pub fn snapshot(&self) -> Zeroizing<Vec<u8>> {
        encode(&pb::IdentityKeyPair {
            format: Some(FORMAT),
            private_key: Some(self.private_key().to_bytes().to_vec()),
        })
    }

    pub fn from_snapshot(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let s: pb::IdentityKeyPair = decode(bytes)?;
        check_format(s.format)?;
        Ok(Self::from_private(private(s.private_key, "private_key")?))
    }
}

impl PreKeyRecord {
    pub fn snapshot(&self) -> Zeroizing<Vec<u8>> {
        encode(&pb::PreKey {
            format: Some(FORMAT),
            id: Some(self.id),
            private_key: Some(self.key_pair.private.to_bytes().to_vec()),
        })
    }

    pub fn from_snapshot(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let s: pb::PreKey = decode(bytes)?;
        check_format(s.format)?;
        Ok(Self {
            id: need(s.id, "id")?,
            key_pair: KeyPair::from_private(private(s.private_key, "private_key")?),
        })
    }
}

impl SignedPreKeyRecord {
    pub fn snapshot(&self) -> Zeroizing<Vec<u8>> {
        encode(&pb::SignedPreKey {
            format: Some(FORMAT),
            id: Some(self.id),
            private_key: Some(self.key_pair.private.to_bytes().to_vec()),
            signature: Some(self.signature.to_vec()),
            timestamp: Some(self.timestamp),
        })
    }

    pub fn from_snapshot(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let s: pb::SignedPreKey = decode(bytes)?;
        check_format(s.format)?;
        Ok(Self {
            id: need(s.id, "id")?,
            key_pair: KeyPair::from_private(private(s.private_key, "private_key")?),
            signature: array64(s.signature, "signature")?,
            timestamp: s.timestamp.unwrap_or(0),
        })
    }
}

impl KyberPreKeyRecord {
    pub fn snapshot(&self) -> Zeroizing<Vec<u8>> {
        encode(&pb::KyberPreKey {
            format: Some(FORMAT),
            id: Some(self.id),
            secret_key: Some(self.key_pair.secret.serialize()),
            public_key: Some(self.key_pair.public.serialize()),
            signature: Some(self.signature.to_vec()),
            timestamp: Some(self.timestamp),
        })
    }

    pub fn from_snapshot(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let s: pb::KyberPreKey = decode(bytes)?;
        check_format(s.format)?;
        let secret = Zeroizing::new(need(s.secret_key, "secret_key")?);
        Ok(Self {
            id: need(s.id, "id")?,
            key_pair: KemKeyPair {
                public: KemPublicKey::deserialize(&need(s.public_key, "public_key")?)
                    .map_err(|_| SnapshotError::Invalid("public_key"))?,
                secret: KemSecretKey::deserialize(&secret)
                    .map_err(|_| SnapshotError::Invalid("secret_key"))?,
            },
            signature: array64(s.signature, "signature")?,
            timestamp: s.timestamp.unwrap_or(0),
        })
    }
}
