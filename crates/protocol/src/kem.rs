//! Kyber1024 keys as Signal's library uses them for PQXDH.
//!
//! This is round-3 Kyber (libcrux's `kyber1024`), **not** FIPS 203 ML-KEM: the two differ in
//! their hashing and would not agree on a shared secret. Keys and ciphertexts carry a type byte,
//! `0x08`, then the raw bytes; the length must match the type exactly.

use libcrux_ml_kem::kyber1024;
use libcrux_ml_kem::mlkem1024::{MlKem1024Ciphertext, MlKem1024PrivateKey, MlKem1024PublicKey};
use rand_core::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Type byte of a Kyber1024 key or ciphertext.
pub const KYBER1024_TYPE: u8 = 0x08;
/// Raw length of a Kyber1024 public key.
pub const PUBLIC_KEY_RAW_LENGTH: usize = 1568;
/// Raw length of a Kyber1024 secret key.
pub const SECRET_KEY_RAW_LENGTH: usize = 3168;
/// Raw length of a Kyber1024 ciphertext.
pub const CIPHERTEXT_RAW_LENGTH: usize = 1568;
/// Serialized lengths (type byte + raw).
pub const PUBLIC_KEY_LENGTH: usize = PUBLIC_KEY_RAW_LENGTH + 1;
pub const CIPHERTEXT_LENGTH: usize = CIPHERTEXT_RAW_LENGTH + 1;

/// Why a KEM value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KemError {
    #[error("KEM value is empty")]
    Empty,
    #[error("unknown KEM type byte {0:#04x}; only 0x08 (Kyber1024) is supported")]
    UnknownType(u8),
    #[error("KEM {what} is {got} bytes; Kyber1024 needs {want}")]
    BadLength {
        what: &'static str,
        got: usize,
        want: usize,
    },
    #[error("Kyber1024 public key is not well formed")]
    InvalidPublicKey,
}

fn strip_type<'a>(bytes: &'a [u8], what: &'static str, want: usize) -> Result<&'a [u8], KemError> {
    let (&kind, raw) = bytes.split_first().ok_or(KemError::Empty)?;
    if kind != KYBER1024_TYPE {
        return Err(KemError::UnknownType(kind));
    }
    if raw.len() != want {
        return Err(KemError::BadLength {
            what,
            got: raw.len(),
            want,
        });
    }
    Ok(raw)
}

/// A Kyber1024 public key.
#[derive(Clone, PartialEq, Eq)]
pub struct KemPublicKey(Box<[u8; PUBLIC_KEY_RAW_LENGTH]>);

impl KemPublicKey {
    /// Parses `0x08 ‖ 1568 bytes`.
    pub fn deserialize(bytes: &[u8]) -> Result<Self, KemError> {
        let raw = strip_type(bytes, "public key", PUBLIC_KEY_RAW_LENGTH)?;
        let mut key = Box::new([0u8; PUBLIC_KEY_RAW_LENGTH]);
        key.copy_from_slice(raw);
        let checked = MlKem1024PublicKey::from(*key);
        if !kyber1024::validate_public_key(&checked) {
            return Err(KemError::InvalidPublicKey);
        }
        Ok(Self(key))
    }

    /// `0x08 ‖ raw key` (1569 bytes).
    pub fn serialize(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PUBLIC_KEY_LENGTH);
        out.push(KYBER1024_TYPE);
        out.extend_from_slice(&self.0[..]);
        out
    }

    /// Encapsulates a fresh secret to this key: (serialized ciphertext, 32-byte shared secret).
    pub fn encapsulate(&self, rng: &mut impl CryptoRng) -> (Vec<u8>, KemSharedSecret) {
        let mut randomness = [0u8; 32];
        rng.fill_bytes(&mut randomness);
        let key = MlKem1024PublicKey::from(*self.0);
        let (ciphertext, shared) = kyber1024::encapsulate(&key, randomness);
        randomness.zeroize();
        let mut out = Vec::with_capacity(CIPHERTEXT_LENGTH);
        out.push(KYBER1024_TYPE);
        out.extend_from_slice(ciphertext.as_slice());
        (out, KemSharedSecret(shared))
    }
}

impl std::fmt::Debug for KemPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KemPublicKey({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

/// A Kyber1024 secret key. Zeroized on drop; no `Debug`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct KemSecretKey(Box<[u8; SECRET_KEY_RAW_LENGTH]>);

impl KemSecretKey {
    /// Parses `0x08 ‖ 3168 bytes` (Signal's storage form).
    pub fn deserialize(bytes: &[u8]) -> Result<Self, KemError> {
        let raw = strip_type(bytes, "secret key", SECRET_KEY_RAW_LENGTH)?;
        let mut key = Box::new([0u8; SECRET_KEY_RAW_LENGTH]);
        key.copy_from_slice(raw);
        Ok(Self(key))
    }

    /// `0x08 ‖ raw key`, for snapshots.
    pub fn serialize(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SECRET_KEY_RAW_LENGTH + 1);
        out.push(KYBER1024_TYPE);
        out.extend_from_slice(&self.0[..]);
        out
    }

    /// Decapsulates a serialized ciphertext (`0x08 ‖ 1568 bytes`).
    pub fn decapsulate(&self, ciphertext: &[u8]) -> Result<KemSharedSecret, KemError> {
        let raw = strip_type(ciphertext, "ciphertext", CIPHERTEXT_RAW_LENGTH)?;
        let mut ct = [0u8; CIPHERTEXT_RAW_LENGTH];
        ct.copy_from_slice(raw);
        let ct = MlKem1024Ciphertext::from(ct);
        let key = MlKem1024PrivateKey::from(*self.0);
        Ok(KemSharedSecret(kyber1024::decapsulate(&key, &ct)))
    }
}

/// A Kyber1024 key pair.
#[derive(Clone)]
pub struct KemKeyPair {
    pub public: KemPublicKey,
    pub secret: KemSecretKey,
}

impl KemKeyPair {
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut seed = [0u8; 64];
        rng.fill_bytes(&mut seed);
        let pair = kyber1024::generate_key_pair(seed);
        seed.zeroize();
        Self {
            public: KemPublicKey(Box::new(*pair.public_key().as_slice())),
            secret: KemSecretKey(Box::new(*pair.private_key().as_slice())),
        }
    }
}

/// The 32-byte KEM shared secret. Zeroized on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct KemSharedSecret([u8; 32]);

impl KemSharedSecret {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encapsulation_round_trip_and_length_rules() {
        let mut rng = rand::rng();
        let pair = KemKeyPair::generate(&mut rng);
        let serialized = pair.public.serialize();
        assert_eq!(serialized.len(), 1569);
        let public = KemPublicKey::deserialize(&serialized).expect("own key parses");
        let (ct, alice) = public.encapsulate(&mut rng);
        assert_eq!(ct.len(), 1569);
        let bob = pair.secret.decapsulate(&ct).expect("decapsulates");
        assert_eq!(alice.as_bytes(), bob.as_bytes());

        assert!(matches!(
            KemPublicKey::deserialize(&serialized[..1568]),
            Err(KemError::BadLength { .. })
        ));
        let mut wrong_type = serialized.clone();
        wrong_type[0] = 0x0a;
        assert_eq!(
            KemPublicKey::deserialize(&wrong_type),
            Err(KemError::UnknownType(0x0a))
        );
        assert!(pair.secret.decapsulate(&ct[..100]).is_err());
        let sk = KemSecretKey::deserialize(&pair.secret.serialize()).expect("round trip");
        assert_eq!(sk.decapsulate(&ct).expect("ok").as_bytes(), bob.as_bytes());
    }
}
