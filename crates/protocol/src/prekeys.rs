//! Pre-keys and bundles.
//!
//! A responder publishes a bundle: identity key, a signed pre-key, optionally a one-time pre-key
//! and (for PQXDH) a signed Kyber pre-key. An initiator may start a session only from a
//! [`VerifiedPreKeyBundle`], and the only way to get one is [`PreKeyBundle::verify`], which checks
//! both signatures. The signed pre-key signature covers the 33-byte serialized EC key; the Kyber
//! pre-key signature covers the 1569-byte serialized KEM key.

use rand_core::CryptoRng;

use crate::kem::{KemKeyPair, KemPublicKey};
use crate::keys::{IdentityKey, IdentityKeyPair, KeyPair, PublicKey};

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
