//! Pre-keys and bundles.
//!
//! A responder publishes a bundle: identity key, a signed pre-key, optionally a one-time pre-key
//! and (for PQXDH) a signed Kyber pre-key. An initiator may start a session only from a
//! [`VerifiedPreKeyBundle`], and the only way to get one is [`PreKeyBundle::verify`], which checks
//! both signatures. The signed pre-key signature covers the 33-byte serialized EC key; the Kyber
//! pre-key signature covers the 1569-byte serialized KEM key.

use std::collections::HashMap;

use rand_core::CryptoRng;

use crate::kem::{KemKeyPair, KemPublicKey};
use crate::keys::{IdentityKey, IdentityKeyPair, KeyPair, PublicKey};
use crate::session::{PreKeyOutcome, PreKeySource};

/// Why a bundle was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    #[error("signed pre-key signature does not verify with the identity key")]
    BadSignedPreKeySignature,
    #[error("Kyber pre-key signature does not verify with the identity key")]
    BadKyberPreKeySignature,
}

/// A one-time pre-key with its id.
#[derive(Clone)]
pub struct PreKeyRecord {
    pub id: u32,
    pub key_pair: KeyPair,
}

impl PreKeyRecord {
    pub fn generate(id: u32, rng: &mut impl CryptoRng) -> Self {
        Self {
            id,
            key_pair: KeyPair::generate(rng),
        }
    }
}

/// A signed pre-key: an EC key signed by the identity key.
#[derive(Clone)]
pub struct SignedPreKeyRecord {
    pub id: u32,
    pub key_pair: KeyPair,
    pub signature: [u8; 64],
    /// Creation time, seconds since the Unix epoch.
    pub timestamp: u64,
}

impl SignedPreKeyRecord {
    pub fn generate(
        id: u32,
        identity: &IdentityKeyPair,
        timestamp: u64,
        rng: &mut impl CryptoRng,
    ) -> Self {
        let key_pair = KeyPair::generate(rng);
        let signature = identity.sign(&key_pair.public.serialize(), rng);
        Self {
            id,
            key_pair,
            signature,
            timestamp,
        }
    }
}

/// A Kyber1024 pre-key signed by the identity key.
#[derive(Clone)]
pub struct KyberPreKeyRecord {
    pub id: u32,
    pub key_pair: KemKeyPair,
    pub signature: [u8; 64],
    pub timestamp: u64,
}

impl KyberPreKeyRecord {
    pub fn generate(
        id: u32,
        identity: &IdentityKeyPair,
        timestamp: u64,
        rng: &mut impl CryptoRng,
    ) -> Self {
        let key_pair = KemKeyPair::generate(rng);
        let signature = identity.sign(&key_pair.public.serialize(), rng);
        Self {
            id,
            key_pair,
            signature,
            timestamp,
        }
    }
}

/// A bundle as received from the directory: nothing in it is trusted yet.
#[derive(Clone, Debug)]
pub struct PreKeyBundle {
    pub registration_id: u32,
    pub device_id: u32,
    pub identity_key: IdentityKey,
    pub pre_key: Option<(u32, PublicKey)>,
    pub signed_pre_key_id: u32,
    pub signed_pre_key: PublicKey,
    pub signed_pre_key_signature: Vec<u8>,
    pub kyber_pre_key: Option<KyberPreKeyPublic>,
}

/// The public half of a Kyber pre-key as it appears in a bundle.
#[derive(Clone, Debug)]
pub struct KyberPreKeyPublic {
    pub id: u32,
    pub key: KemPublicKey,
    pub signature: Vec<u8>,
}

impl PreKeyBundle {
    /// Checks the pre-key signatures against the bundle's identity key. Whether that identity
    /// key belongs to the person is a separate question (certificate, safety number).
    pub fn verify(self) -> Result<VerifiedPreKeyBundle, BundleError> {
        if !self.identity_key.verify_signature(
            &self.signed_pre_key.serialize(),
            &self.signed_pre_key_signature,
        ) {
            return Err(BundleError::BadSignedPreKeySignature);
        }
        if let Some(kyber) = &self.kyber_pre_key
            && !self
                .identity_key
                .verify_signature(&kyber.key.serialize(), &kyber.signature)
        {
            return Err(BundleError::BadKyberPreKeySignature);
        }
        Ok(VerifiedPreKeyBundle(self))
    }
}

/// A bundle whose signatures have been checked; the only input session setup accepts.
#[derive(Clone, Debug)]
pub struct VerifiedPreKeyBundle(PreKeyBundle);

impl VerifiedPreKeyBundle {
    pub fn bundle(&self) -> &PreKeyBundle {
        &self.0
    }

    /// The same bundle without its Kyber pre-key, to set up an X3DH (version 3) session.
    pub fn without_kyber(mut self) -> Self {
        self.0.kyber_pre_key = None;
        self
    }
}

/// Pre-keys held in memory, by id. Enough for a test peer, the demo and benchmarks; a client
/// with a database implements [`PreKeySource`] over its own tables.
#[derive(Clone, Default)]
pub struct InMemoryPreKeys {
    pub signed: HashMap<u32, SignedPreKeyRecord>,
    pub one_time: HashMap<u32, PreKeyRecord>,
    pub kyber: HashMap<u32, KyberPreKeyRecord>,
}

impl InMemoryPreKeys {
    /// A signed pre-key and a (last-resort) Kyber pre-key, both with id 1, signed by `identity`.
    pub fn generate(identity: &IdentityKeyPair, timestamp: u64, rng: &mut impl CryptoRng) -> Self {
        let mut keys = Self::default();
        let signed = SignedPreKeyRecord::generate(1, identity, timestamp, rng);
        let kyber = KyberPreKeyRecord::generate(1, identity, timestamp, rng);
        keys.signed.insert(signed.id, signed);
        keys.kyber.insert(kyber.id, kyber);
        keys
    }

    /// Mints a one-time pre-key with `id` and returns its public half.
    pub fn add_one_time(&mut self, id: u32, rng: &mut impl CryptoRng) -> PublicKey {
        let record = PreKeyRecord::generate(id, rng);
        let public = record.key_pair.public;
        self.one_time.insert(id, record);
        public
    }

    /// Deletes the one-time pre-key a new session used (Kyber pre-keys here are last-resort
    /// keys and stay).
    pub fn consume(&mut self, outcome: &PreKeyOutcome) {
        if let Some(id) = outcome.consumed_pre_key {
            self.one_time.remove(&id);
        }
    }

    /// The public bundle for these keys: the lowest signed and Kyber pre-key ids, and the given
    /// one-time pre-key if any.
    pub fn bundle(
        &self,
        identity: &IdentityKeyPair,
        registration_id: u32,
        device_id: u32,
        one_time: Option<u32>,
        kyber: bool,
    ) -> Option<PreKeyBundle> {
        let signed = self.signed.values().min_by_key(|k| k.id)?;
        let pre_key = match one_time {
            Some(id) => Some((id, self.one_time.get(&id)?.key_pair.public)),
            None => None,
        };
        let kyber_pre_key = match kyber {
            true => self
                .kyber
                .values()
                .min_by_key(|k| k.id)
                .map(|k| KyberPreKeyPublic {
                    id: k.id,
                    key: k.key_pair.public.clone(),
                    signature: k.signature.to_vec(),
                }),
            false => None,
        };
        Some(PreKeyBundle {
            registration_id,
            device_id,
            identity_key: *identity.identity_key(),
            pre_key,
            signed_pre_key_id: signed.id,
            signed_pre_key: signed.key_pair.public,
            signed_pre_key_signature: signed.signature.to_vec(),
            kyber_pre_key,
        })
    }
}

impl PreKeySource for InMemoryPreKeys {
    fn signed_pre_key(&self, id: u32) -> Option<SignedPreKeyRecord> {
        self.signed.get(&id).cloned()
    }
    fn pre_key(&self, id: u32) -> Option<PreKeyRecord> {
        self.one_time.get(&id).cloned()
    }
    fn kyber_pre_key(&self, id: u32) -> Option<KyberPreKeyRecord> {
        self.kyber.get(&id).cloned()
    }
}
