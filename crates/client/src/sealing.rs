//! Secrets at rest: every secret row of the store is AES-256-GCM under one random 32-byte
//! *store key*, with the row's identity as associated data.
//!
//! ```text
//! sealed row = nonce (12) || AES-256-GCM(store key, nonce, snapshot, ad = "confianza-client v1" || 0 || table || 0 || row key)
//! ```
//!
//! Binding the table and row key means a row cannot be moved to another contact or another
//! purpose without failing authentication. The store key itself is kept one of two ways:
//!
//! * **passphrase**: wrapped with `confianza_pki::seal` (Argon2id + AES-256-GCM, the same format
//!   as sealed CA keys), so Argon2id runs once per unlock, not once per row;
//! * **key file**: the raw key in `store.key`, mode 0600, for users who chose no passphrase.
//!   A key check value in the database tells a wrong or damaged key file from a corrupted row.

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use confianza_pki::seal::{self, OpenError, SealParams};
use rand_core::CryptoRng;
use zeroize::{Zeroize, Zeroizing};

use crate::limits::{MAX_PASSPHRASE_LEN, MAX_SEALED_LEN};

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const AD_PREFIX: &[u8] = b"confianza-client v1";
/// The plaintext of the key check value: proves a key is this store's key.
const KEY_CHECK_PLAINTEXT: &[u8] = b"confianza store key check";

/// Argon2id costs for a client store's passphrase: RFC 9106's second recommended option
/// (64 MiB, 3 passes), as a phone or laptop unlocks it at every start.
pub const CLIENT_SEAL_PARAMS: SealParams = SealParams {
    m_cost_kib: 64 * 1024,
    t_cost: 3,
    p_cost: 1,
};

/// The key every secret row is sealed under. Zeroized on drop, never printed.
pub struct StoreKey([u8; 32]);

impl Drop for StoreKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreKey(..)")
    }
}

/// A passphrase from the user or the environment; zeroized on drop.
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// Wraps a passphrase; refused when empty or longer than [`MAX_PASSPHRASE_LEN`].
    pub fn new(text: impl Into<String>) -> Result<Self, SealingError> {
        let text = Zeroizing::new(text.into());
        if text.is_empty() || text.len() > MAX_PASSPHRASE_LEN {
            return Err(SealingError::BadPassphraseLength);
        }
        Ok(Self(text))
    }

    /// `CONFIANZA_PASSPHRASE`, if set and non-empty.
    pub fn from_env() -> Result<Option<Self>, SealingError> {
        match std::env::var("CONFIANZA_PASSPHRASE") {
            Ok(text) if !text.is_empty() => Self::new(text).map(Some),
            _ => Ok(None),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

/// Sealing or opening failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealingError {
    /// The passphrase does not open the store (or its wrapped key was altered).
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// The key file does not hold this store's key.
    #[error("the key file does not match this store")]
    WrongKeyFile,
    /// An empty passphrase, or one longer than the limit.
    #[error("a passphrase must be 1 to {MAX_PASSPHRASE_LEN} bytes")]
    BadPassphraseLength,
    /// A sealed row failed authentication or has the wrong shape.
    #[error("sealed {table} entry {key:?} is corrupted")]
    Corrupt { table: &'static str, key: String },
    /// A value is too large to seal.
    #[error("value of {len} bytes is too large to seal (limit {MAX_SEALED_LEN})")]
    TooLarge { len: usize },
    /// The wrapped store key is malformed.
    #[error("the wrapped store key is malformed: {0}")]
    WrappedKey(String),
}

impl StoreKey {
    /// A fresh random key.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        Self(key)
    }

    /// The key read from a key file (exactly 32 bytes).
    pub fn from_key_file_bytes(bytes: &[u8]) -> Result<Self, SealingError> {
        let key: [u8; 32] = bytes.try_into().map_err(|_| SealingError::WrongKeyFile)?;
        Ok(Self(key))
    }

    /// The bytes to write to a key file (mode 0600).
    pub fn key_file_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0)
    }

    /// This key wrapped under `passphrase` (Argon2id with `params`).
    pub fn wrap(
        &self,
        passphrase: &Passphrase,
        params: SealParams,
        rng: &mut impl CryptoRng,
    ) -> Result<Vec<u8>, SealingError> {
        seal::seal(passphrase.as_bytes(), &self.0, params, rng)
            .map_err(|error| SealingError::WrappedKey(error.to_string()))
    }

    /// Unwraps a key wrapped by [`StoreKey::wrap`].
    pub fn unwrap_with(passphrase: &Passphrase, wrapped: &[u8]) -> Result<Self, SealingError> {
        let opened = seal::open(passphrase.as_bytes(), wrapped).map_err(|error| match error {
            OpenError::WrongPassphraseOrCorrupt => SealingError::WrongPassphrase,
            other => SealingError::WrappedKey(other.to_string()),
        })?;
        let key: [u8; 32] = opened
            .as_bytes()
            .try_into()
            .map_err(|_| SealingError::WrappedKey("wrong key length".into()))?;
        Ok(Self(key))
    }

    /// A value that proves a key is this one, stored beside a key-file store.
    pub fn key_check(&self, rng: &mut impl CryptoRng) -> Result<Vec<u8>, SealingError> {
        self.seal("meta", "key-check", KEY_CHECK_PLAINTEXT, rng)
    }

    /// Whether `check` (from [`StoreKey::key_check`]) was made with this key.
    pub fn matches_key_check(&self, check: &[u8]) -> bool {
        self.open("meta", "key-check", check)
            .is_ok_and(|plain| plain.as_slice() == KEY_CHECK_PLAINTEXT)
    }

    /// Seals `plaintext` as row `key` of `table`.
    pub fn seal(
        &self,
        table: &'static str,
        key: &str,
        plaintext: &[u8],
        rng: &mut impl CryptoRng,
    ) -> Result<Vec<u8>, SealingError> {
        if plaintext.len() + NONCE_LEN + TAG_LEN > MAX_SEALED_LEN {
            return Err(SealingError::TooLarge {
                len: plaintext.len(),
            });
        }
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let cipher = Aes256Gcm::new_from_slice(&self.0).map_err(|_| corrupt(table, key))?;
        let ad = associated_data(table, key);
        let ciphertext = cipher
            .encrypt(
                &Nonce::<U12>::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &ad,
                },
            )
            .map_err(|_| corrupt(table, key))?;
        let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// Opens row `key` of `table`; [`SealingError::Corrupt`] unless it authenticates.
    pub fn open(
        &self,
        table: &'static str,
        key: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealingError> {
        if sealed.len() < NONCE_LEN + TAG_LEN || sealed.len() > MAX_SEALED_LEN {
            return Err(corrupt(table, key));
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| corrupt(table, key))?;
        let cipher = Aes256Gcm::new_from_slice(&self.0).map_err(|_| corrupt(table, key))?;
        let ad = associated_data(table, key);
        cipher
            .decrypt(
                &Nonce::<U12>::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &ad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| corrupt(table, key))
    }
}

fn corrupt(table: &'static str, key: &str) -> SealingError {
    SealingError::Corrupt {
        table,
        key: key.to_owned(),
    }
}

fn associated_data(table: &str, key: &str) -> Vec<u8> {
    let mut ad = Vec::with_capacity(AD_PREFIX.len() + table.len() + key.len() + 2);
    ad.extend_from_slice(AD_PREFIX);
    ad.push(0);
    ad.extend_from_slice(table.as_bytes());
    ad.push(0);
    ad.extend_from_slice(key.as_bytes());
    ad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_open_only_where_they_were_sealed() {
        let mut rng = rand::rng();
        let key = StoreKey::generate(&mut rng);
        let sealed = key
            .seal("sessions", "bob@example.org.1", b"state", &mut rng)
            .expect("seal");
        assert_eq!(
            key.open("sessions", "bob@example.org.1", &sealed)
                .expect("open")
                .as_slice(),
            b"state"
        );
        assert!(matches!(
            key.open("sessions", "carol@example.org.1", &sealed),
            Err(SealingError::Corrupt { .. })
        ));
        assert!(key.open("secrets", "bob@example.org.1", &sealed).is_err());
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(key.open("sessions", "bob@example.org.1", &flipped).is_err());
        assert!(
            key.open("sessions", "bob@example.org.1", &sealed[..20])
                .is_err()
        );
        let other = StoreKey::generate(&mut rng);
        assert!(
            other
                .open("sessions", "bob@example.org.1", &sealed)
                .is_err()
        );
    }

    #[test]
    fn arbitrary_bytes_never_open_and_never_panic() {
        use rand::Rng;
        let mut rng = rand::rng();
        let key = StoreKey::generate(&mut rng);
        for len in [0usize, 1, 11, 12, 27, 28, 29, 64, 1000] {
            for _ in 0..20 {
                let mut junk = vec![0u8; len];
                rng.fill_bytes(&mut junk);
                assert!(key.open("sessions", "x", &junk).is_err());
            }
        }
        assert!(
            key.open("sessions", "x", &vec![0u8; MAX_SEALED_LEN + 1])
                .is_err()
        );
    }

    #[test]
    fn sealed_size_limit_at_n_and_n_plus_one() {
        let mut rng = rand::rng();
        let key = StoreKey::generate(&mut rng);
        let at_limit = vec![0u8; MAX_SEALED_LEN - NONCE_LEN - TAG_LEN];
        let sealed = key
            .seal("t", "k", &at_limit, &mut rng)
            .expect("at the limit");
        assert_eq!(sealed.len(), MAX_SEALED_LEN);
        assert!(key.open("t", "k", &sealed).is_ok());
        let over = vec![0u8; MAX_SEALED_LEN - NONCE_LEN - TAG_LEN + 1];
        assert!(matches!(
            key.seal("t", "k", &over, &mut rng),
            Err(SealingError::TooLarge { .. })
        ));
    }

    #[test]
    fn wrapping_needs_the_passphrase() {
        let mut rng = rand::rng();
        let key = StoreKey::generate(&mut rng);
        let right = Passphrase::new("correct horse").expect("passphrase");
        let wrapped = key
            .wrap(&right, SealParams::INSECURE_FOR_TESTS, &mut rng)
            .expect("wrap");
        let unwrapped = StoreKey::unwrap_with(&right, &wrapped).expect("unwrap");
        assert_eq!(unwrapped.0, key.0);
        let wrong = Passphrase::new("battery staple").expect("passphrase");
        assert_eq!(
            StoreKey::unwrap_with(&wrong, &wrapped).err(),
            Some(SealingError::WrongPassphrase)
        );
    }

    #[test]
    fn key_check_tells_keys_apart() {
        let mut rng = rand::rng();
        let key = StoreKey::generate(&mut rng);
        let check = key.key_check(&mut rng).expect("check");
        assert!(key.matches_key_check(&check));
        assert!(!StoreKey::generate(&mut rng).matches_key_check(&check));
        assert!(StoreKey::from_key_file_bytes(&[0u8; 31]).is_err());
        assert!(StoreKey::from_key_file_bytes(&[0u8; 33]).is_err());
    }

    #[test]
    fn passphrase_length_at_n_and_n_plus_one() {
        assert!(Passphrase::new("x".repeat(MAX_PASSPHRASE_LEN)).is_ok());
        assert_eq!(
            Passphrase::new("x".repeat(MAX_PASSPHRASE_LEN + 1)).err(),
            Some(SealingError::BadPassphraseLength)
        );
        assert!(Passphrase::new("").is_err());
    }
}
