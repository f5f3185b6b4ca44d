//! Curve25519 keys as Signal's library serializes them.
//!
//! A public key travels as 33 bytes: the type byte `0x05` ("Djb", the only type) then the 32-byte
//! X25519 u-coordinate. Parsing tolerates trailing bytes, as Signal's library does, so compare
//! parsed keys, never raw input. A private key is 32 bytes, clamped when loaded.

use std::sync::OnceLock;

use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::scalar::clamp_integer;
use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::xeddsa;

/// The type byte of a Curve25519 ("Djb") public key.
pub const DJB_TYPE: u8 = 0x05;
/// Length of a serialized public key: type byte + 32 bytes.
pub const PUBLIC_KEY_LENGTH: usize = 33;

/// Why a key could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("public key is {0} bytes; at least 33 are needed")]
    BadLength(usize),
    #[error("public key type byte is {0:#04x}; only 0x05 (Curve25519) is known")]
    UnknownType(u8),
    #[error("private key must be 32 bytes, got {0}")]
    BadPrivateKeyLength(usize),
    #[error("the Diffie-Hellman output is all zeros (a small-order public key)")]
    ZeroSharedSecret,
    #[error("public key is not a canonical u-coordinate of a torsion-free point")]
    NonCanonical,
}

/// A Curve25519 public key (X25519 u-coordinate).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// Wraps a raw u-coordinate.
    pub const fn from_u(u: [u8; 32]) -> Self {
        Self(u)
    }

    /// Parses the 33-byte form (trailing bytes are tolerated, as in Signal's library).
    pub fn deserialize(bytes: &[u8]) -> Result<Self, KeyError> {
        let (&kind, rest) = bytes.split_first().ok_or(KeyError::BadLength(0))?;
        if kind != DJB_TYPE {
            return Err(KeyError::UnknownType(kind));
        }
        let u: [u8; 32] = rest
            .get(..32)
            .and_then(|s| s.try_into().ok())
            .ok_or(KeyError::BadLength(bytes.len()))?;
        Ok(Self(u))
    }

    /// The 33-byte serialized form.
    pub fn serialize(&self) -> [u8; PUBLIC_KEY_LENGTH] {
        let mut out = [0u8; PUBLIC_KEY_LENGTH];
        out[0] = DJB_TYPE;
        out[1..].copy_from_slice(&self.0);
        out
    }

    /// The raw u-coordinate.
    pub fn u(&self) -> &[u8; 32] {
        &self.0
    }

    /// Checks an XEdDSA signature (Signal's variant) made by this key.
    pub fn verify_signature(&self, message: &[u8], signature: &[u8]) -> bool {
        match <&[u8; xeddsa::SIGNATURE_LENGTH]>::try_from(signature) {
            Ok(sig) => xeddsa::verify(&self.0, message, sig),
            Err(_) => false,
        }
    }

    /// Whether the key is a canonical encoding (u < 2^255 − 19) of a torsion-free point, as
    /// Signal's library requires of an incoming base key.
    pub fn is_canonical(&self) -> bool {
        // u must be < p = 2^255 - 19: top bit clear and not one of the 19 values p..2^255-1.
        let top_bit_clear = self.0[31] & 0x80 == 0;
        let mut at_least_p = self.0[31] == 0x7f && self.0[1..31].iter().all(|&b| b == 0xff);
        at_least_p &= self.0[0] >= 0xed;
        if !top_bit_clear || at_least_p {
            return false;
        }
        // Torsion-freeness of the Montgomery point: either sign gives the same answer.
        match MontgomeryPoint(self.0).to_edwards(0) {
            Some(point) => point.is_torsion_free(),
            None => false,
        }
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey(")?;
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// A Curve25519 private key (clamped X25519 scalar). Zeroized on drop; no `Debug`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PrivateKey {
    scalar: [u8; 32],
    /// The Edwards public key `a·B` that XEdDSA signs with, computed on the first signature and
    /// kept: a signing key (identity, sender key) signs many times. Public, so not zeroized.
    #[zeroize(skip)]
    edwards_public: OnceLock<[u8; 32]>,
}

impl PrivateKey {
    /// A fresh random key.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        let key = Self::from_clamped(clamp_integer(bytes));
        bytes.zeroize();
        key
    }

    /// Loads 32 raw bytes (clamped, as Signal's library does).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let raw: [u8; 32] = bytes
            .try_into()
            .map_err(|_| KeyError::BadPrivateKeyLength(bytes.len()))?;
        Ok(Self::from_clamped(clamp_integer(raw)))
    }

    fn from_clamped(scalar: [u8; 32]) -> Self {
        Self {
            scalar,
            edwards_public: OnceLock::new(),
        }
    }

    /// The raw 32 bytes, for snapshots only.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.scalar
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(MontgomeryPoint::mul_base_clamped(self.scalar).to_bytes())
    }

    /// X25519 with `their` key; an all-zero result (small-order input) is refused.
    pub fn agree(&self, their: &PublicKey) -> Result<SharedSecret, KeyError> {
        let shared = x25519(&self.scalar, &their.0);
        if bool::from(shared.ct_eq(&[0u8; 32])) {
            return Err(KeyError::ZeroSharedSecret);
        }
        Ok(SharedSecret(shared))
    }

    /// An XEdDSA signature over `message` (randomized).
    pub fn sign(&self, message: &[u8], rng: &mut impl CryptoRng) -> [u8; xeddsa::SIGNATURE_LENGTH] {
        let mut random = [0u8; 64];
        rng.fill_bytes(&mut random);
        let public = self
            .edwards_public
            .get_or_init(|| xeddsa::edwards_public(&self.scalar));
        let signature = xeddsa::sign_with_public(&self.scalar, public, message, &random);
        random.zeroize();
        signature
    }
}

/// X25519 (RFC 7748). A u-coordinate on the curve itself (every honest public key) takes the
/// Edwards form, whose constant-time scalar multiplication is about a third faster here than
/// the Montgomery ladder; the sign chosen for x does not change the u of the result. Points on
/// the twist, which have no Edwards form, take the ladder. Both give the RFC's answer for every
/// input (Wycheproof's x25519 vectors run against this function).
fn x25519(scalar: &[u8; 32], u: &[u8; 32]) -> [u8; 32] {
    let point = MontgomeryPoint(*u);
    match point.to_edwards(0) {
        Some(edwards) => edwards.mul_clamped(*scalar).to_montgomery().to_bytes(),
        None => point.mul_clamped(*scalar).to_bytes(),
    }
}

/// The 32-byte output of X25519. Zeroized on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SharedSecret([u8; 32]);

impl SharedSecret {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// A private key with its public key.
#[derive(Clone)]
pub struct KeyPair {
    pub public: PublicKey,
    pub private: PrivateKey,
}

impl KeyPair {
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        Self::from_private(PrivateKey::generate(rng))
    }

    pub fn from_private(private: PrivateKey) -> Self {
        Self {
            public: private.public_key(),
            private,
        }
    }
}

/// A long-term identity public key: exactly an EC public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct IdentityKey(pub PublicKey);

impl IdentityKey {
    pub fn deserialize(bytes: &[u8]) -> Result<Self, KeyError> {
        PublicKey::deserialize(bytes).map(Self)
    }

    pub fn serialize(&self) -> [u8; PUBLIC_KEY_LENGTH] {
        self.0.serialize()
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.0
    }

    pub fn verify_signature(&self, message: &[u8], signature: &[u8]) -> bool {
        self.0.verify_signature(message, signature)
    }
}

/// The identity key pair of an account.
#[derive(Clone)]
pub struct IdentityKeyPair {
    identity: IdentityKey,
    private: PrivateKey,
}

impl IdentityKeyPair {
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        Self::from_private(PrivateKey::generate(rng))
    }

    pub fn from_private(private: PrivateKey) -> Self {
        Self {
            identity: IdentityKey(private.public_key()),
            private,
        }
    }

    pub fn identity_key(&self) -> &IdentityKey {
        &self.identity
    }

    pub fn private_key(&self) -> &PrivateKey {
        &self.private
    }

    pub fn sign(&self, message: &[u8], rng: &mut impl CryptoRng) -> [u8; xeddsa::SIGNATURE_LENGTH] {
        self.private.sign(message, rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_key_parsing_rules() {
        assert_eq!(PublicKey::deserialize(&[]), Err(KeyError::BadLength(0)));
        assert_eq!(
            PublicKey::deserialize(&[0x05; 32]),
            Err(KeyError::BadLength(32))
        );
        assert_eq!(
            PublicKey::deserialize(&[0x06; 33]),
            Err(KeyError::UnknownType(0x06))
        );
        let mut long = [0x05u8; 40];
        long[1] = 9;
        let key = PublicKey::deserialize(&long).expect("trailing bytes tolerated");
        assert_eq!(key.serialize()[..], long[..33]);
    }

    #[test]
    fn small_order_agreement_is_refused() {
        let mut rng = rand::rng();
        let private = PrivateKey::generate(&mut rng);
        let zero = PublicKey::from_u([0u8; 32]);
        assert!(matches!(
            private.agree(&zero),
            Err(KeyError::ZeroSharedSecret)
        ));
    }

    #[test]
    fn canonical_check() {
        let mut rng = rand::rng();
        assert!(KeyPair::generate(&mut rng).public.is_canonical());
        let mut p = [0xffu8; 32];
        p[31] = 0x7f;
        p[0] = 0xed;
        assert!(!PublicKey::from_u(p).is_canonical());
        assert!(!PublicKey::from_u([0u8; 32]).is_canonical());
    }
}
