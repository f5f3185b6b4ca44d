//! CA private keys sealed at rest under a passphrase: Argon2id (RFC 9106) + AES-256-GCM.
//!
//! Format, version 1 (all integers big-endian):
//!
//! ```text
//! offset  size  field
//! 0       4     magic "CZSK" (Confianza sealed key)
//! 4       1     format version = 1
//! 5       1     KDF = 1 (Argon2id, Argon2 version 0x13)
//! 6       4     m_cost (KiB)
//! 10      4     t_cost (passes)
//! 14      4     p_cost (lanes)
//! 18      16    salt
//! 34      12    AES-GCM nonce
//! 46      n+16  AES-256-GCM(key = Argon2id(passphrase, salt, 32 bytes), nonce,
//!               plaintext = PKCS#8 DER, associated data = bytes 0..46)
//! ```
//!
//! The header is authenticated as associated data, so changing the parameters, the salt or the
//! version makes `open` fail with [`OpenError::WrongPassphraseOrCorrupt`]; the KDF parameters
//! are bounded by [`crate::limits`] before any memory is allocated for them. Unsealed keys (the
//! operator chose no passphrase) are plain PKCS#8 and are not handled here: the server writes
//! them with mode 0600.

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::limits::{
    MAX_SEAL_M_COST_KIB, MAX_SEAL_P_COST, MAX_SEAL_T_COST, MAX_SEALED_KEY_BYTES,
    MIN_SEAL_M_COST_KIB,
};

const MAGIC: &[u8; 4] = b"CZSK";
const VERSION_1: u8 = 1;
const KDF_ARGON2ID: u8 = 1;
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const HEADER_LEN: usize = 4 + 1 + 1 + 12 + SALT_LEN + NONCE_LEN;
const TAG_LEN: usize = 16;

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl SealParams {
    /// What `confianza-server init` uses: 256 MiB, 3 passes, 1 lane (RFC 9106 section 4's
    /// second recommended option is 64 MiB / 3 passes; a CA key is opened rarely, so we spend
    /// more).
    pub const RECOMMENDED: Self = Self {
        m_cost_kib: 256 * 1024,
        t_cost: 3,
        p_cost: 1,
    };

    /// Cheapest parameters `open` accepts; for tests only.
    pub const INSECURE_FOR_TESTS: Self = Self {
        m_cost_kib: MIN_SEAL_M_COST_KIB,
        t_cost: 1,
        p_cost: 1,
    };

    fn check(self) -> Result<(), OpenError> {
        let ok = (MIN_SEAL_M_COST_KIB..=MAX_SEAL_M_COST_KIB).contains(&self.m_cost_kib)
            && (1..=MAX_SEAL_T_COST).contains(&self.t_cost)
            && (1..=MAX_SEAL_P_COST).contains(&self.p_cost)
            && self.m_cost_kib >= 8 * self.p_cost;
        if ok {
            Ok(())
        } else {
            Err(OpenError::ParametersOutOfBounds)
        }
    }
}

/// Errors from [`seal`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The parameters are outside the bounds `open` would accept.
    #[error("Argon2id parameters out of bounds")]
    ParametersOutOfBounds,
    /// The key is larger than a sealed file may be.
    #[error("key too large to seal")]
    TooLarge,
    /// Key derivation or encryption failed.
    #[error("sealing failed")]
    Crypto,
}

/// Errors from [`open`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenError {
    /// Not a sealed key file (wrong magic or too short).
    #[error("not a sealed key file")]
    NotSealed,
    /// A format version this build does not know.
    #[error("unsupported sealed key version {0}")]
    UnsupportedVersion(u8),
    /// A KDF this build does not know.
    #[error("unsupported key derivation function {0}")]
    UnsupportedKdf(u8),
    /// Argon2id parameters outside [`crate::limits`].
    #[error("Argon2id parameters out of bounds")]
    ParametersOutOfBounds,
    /// Larger than [`MAX_SEALED_KEY_BYTES`].
    #[error("sealed key file too large")]
    TooLarge,
    /// The tag did not verify: wrong passphrase, or the file was altered.
    #[error("wrong passphrase or corrupted key file")]
    WrongPassphraseOrCorrupt,
}

/// A decrypted PKCS#8 private key; zeroized on drop, no `Debug`.
pub struct SecretKeyDer(Zeroizing<Vec<u8>>);

impl SecretKeyDer {
    /// The PKCS#8 DER.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

fn derive_key(passphrase: &[u8], salt: &[u8], params: SealParams) -> Option<Zeroizing<[u8; 32]>> {
    let argon_params =
        argon2::Params::new(params.m_cost_kib, params.t_cost, params.p_cost, Some(32)).ok()?;
    let argon = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon_params,
    );
    let mut key = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase, salt, key.as_mut())
        .ok()?;
    Some(key)
}

fn header(params: SealParams, salt: &[u8; SALT_LEN], nonce: &[u8; NONCE_LEN]) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(MAGIC);
    h.push(VERSION_1);
    h.push(KDF_ARGON2ID);
    h.extend_from_slice(&params.m_cost_kib.to_be_bytes());
    h.extend_from_slice(&params.t_cost.to_be_bytes());
    h.extend_from_slice(&params.p_cost.to_be_bytes());
    h.extend_from_slice(salt);
    h.extend_from_slice(nonce);
    h
}

/// Seals a PKCS#8 DER private key under `passphrase`.
pub fn seal(
    passphrase: &[u8],
    pkcs8_der: &[u8],
    params: SealParams,
    rng: &mut (impl CryptoRng + ?Sized),
) -> Result<Vec<u8>, SealError> {
    params
        .check()
        .map_err(|_| SealError::ParametersOutOfBounds)?;
    if HEADER_LEN + pkcs8_der.len() + TAG_LEN > MAX_SEALED_KEY_BYTES {
        return Err(SealError::TooLarge);
    }
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut salt);
    rng.fill_bytes(&mut nonce);
    let key = derive_key(passphrase, &salt, params).ok_or(SealError::Crypto)?;
    let cipher = Aes256Gcm::new_from_slice(key.as_ref()).map_err(|_| SealError::Crypto)?;
    let mut out = header(params, &salt, &nonce);
    let ct = cipher
        .encrypt(
            &Nonce::<U12>::from(nonce),
            Payload {
                msg: pkcs8_der,
                aad: &out,
            },
        )
        .map_err(|_| SealError::Crypto)?;
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Whether `bytes` look like a sealed key (magic matches); plain PKCS#8 DER starts with 0x30.
pub fn is_sealed(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

/// The Argon2id parameters a sealed key was written with, read from its (unauthenticated)
/// header: to seal a replacement key like the one it replaces. `None` when `sealed` is not a
/// version-1 sealed key or the parameters are outside the bounds [`open`] accepts.
pub fn params_of(sealed: &[u8]) -> Option<SealParams> {
    if sealed.len() < HEADER_LEN || !is_sealed(sealed) {
        return None;
    }
    if sealed.get(4) != Some(&VERSION_1) || sealed.get(5) != Some(&KDF_ARGON2ID) {
        return None;
    }
    let params = SealParams {
        m_cost_kib: be_u32(sealed, 6)?,
        t_cost: be_u32(sealed, 10)?,
        p_cost: be_u32(sealed, 14)?,
    };
    params.check().ok().map(|()| params)
}

/// Opens a sealed key. A wrong passphrase gives [`OpenError::WrongPassphraseOrCorrupt`].
pub fn open(passphrase: &[u8], sealed: &[u8]) -> Result<SecretKeyDer, OpenError> {
    if sealed.len() > MAX_SEALED_KEY_BYTES {
        return Err(OpenError::TooLarge);
    }
    if sealed.len() < HEADER_LEN + TAG_LEN || !is_sealed(sealed) {
        return Err(OpenError::NotSealed);
    }
    let (head, ct) = sealed.split_at(HEADER_LEN);
    match head.get(4).copied() {
        Some(VERSION_1) => {}
        Some(v) => return Err(OpenError::UnsupportedVersion(v)),
        None => return Err(OpenError::NotSealed),
    }
    match head.get(5).copied() {
        Some(KDF_ARGON2ID) => {}
        Some(k) => return Err(OpenError::UnsupportedKdf(k)),
        None => return Err(OpenError::NotSealed),
    }
    let params = SealParams {
        m_cost_kib: be_u32(head, 6).ok_or(OpenError::NotSealed)?,
        t_cost: be_u32(head, 10).ok_or(OpenError::NotSealed)?,
        p_cost: be_u32(head, 14).ok_or(OpenError::NotSealed)?,
    };
    params.check()?;
    let salt = head.get(18..18 + SALT_LEN).ok_or(OpenError::NotSealed)?;
    let nonce: [u8; NONCE_LEN] = head
        .get(18 + SALT_LEN..HEADER_LEN)
        .and_then(|n| n.try_into().ok())
        .ok_or(OpenError::NotSealed)?;
    let key = derive_key(passphrase, salt, params).ok_or(OpenError::ParametersOutOfBounds)?;
    let cipher =
        Aes256Gcm::new_from_slice(key.as_ref()).map_err(|_| OpenError::WrongPassphraseOrCorrupt)?;
    let pt = cipher
        .decrypt(&Nonce::<U12>::from(nonce), Payload { msg: ct, aad: head })
        .map_err(|_| OpenError::WrongPassphraseOrCorrupt)?;
    Ok(SecretKeyDer(Zeroizing::new(pt)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const P: SealParams = SealParams::INSECURE_FOR_TESTS;

    fn sealed() -> Vec<u8> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        seal(b"correct horse", b"\x30\x03pk8", P, &mut rng).expect("seal")
    }

    #[test]
    fn params_are_read_back_from_the_header() {
        let s = sealed();
        assert_eq!(params_of(&s), Some(P));
        assert_eq!(params_of(b"\x30\x03pk8"), None);
        assert_eq!(params_of(&s[..HEADER_LEN - 1]), None);
        let mut bad = s.clone();
        bad[4] = 2;
        assert_eq!(params_of(&bad), None);
        let mut huge = s;
        huge[6..10].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(params_of(&huge), None);
    }

    #[test]
    fn round_trip() {
        let s = sealed();
        assert!(is_sealed(&s));
        assert_eq!(s.len(), HEADER_LEN + 5 + TAG_LEN);
        let k = open(b"correct horse", &s).expect("open");
        assert_eq!(k.as_bytes(), b"\x30\x03pk8");
    }

    #[test]
    fn wrong_passphrase_is_typed() {
        assert_eq!(
            open(b"wrong", &sealed()).err(),
            Some(OpenError::WrongPassphraseOrCorrupt)
        );
    }

    #[test]
    fn tampering_anywhere_fails() {
        let s = sealed();
        // Flip one bit in every byte after the version/KDF fields, one at a time.
        for i in 6..s.len() {
            let mut t = s.clone();
            t[i] ^= 1;
            assert!(open(b"correct horse", &t).is_err(), "byte {i}");
        }
    }

    #[test]
    fn header_errors_are_typed() {
        let s = sealed();
        assert_eq!(open(b"x", b"CZSK").err(), Some(OpenError::NotSealed));
        assert_eq!(open(b"x", &[0x30; 80]).err(), Some(OpenError::NotSealed));
        let mut v = s.clone();
        v[4] = 2;
        assert_eq!(open(b"x", &v).err(), Some(OpenError::UnsupportedVersion(2)));
        let mut k = s.clone();
        k[5] = 9;
        assert_eq!(open(b"x", &k).err(), Some(OpenError::UnsupportedKdf(9)));
        // A tampered memory cost above the limit is refused before Argon2 allocates it.
        let mut m = s.clone();
        m[6..10].copy_from_slice(&(MAX_SEAL_M_COST_KIB + 1).to_be_bytes());
        assert_eq!(open(b"x", &m).err(), Some(OpenError::ParametersOutOfBounds));
        let mut t = s;
        t[10..14].copy_from_slice(&(MAX_SEAL_T_COST + 1).to_be_bytes());
        assert_eq!(open(b"x", &t).err(), Some(OpenError::ParametersOutOfBounds));
    }

    #[test]
    fn size_limit_at_n_and_n_plus_one() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let fits = vec![0u8; MAX_SEALED_KEY_BYTES - HEADER_LEN - TAG_LEN];
        let s = seal(b"pw", &fits, P, &mut rng).expect("seal at N");
        assert_eq!(s.len(), MAX_SEALED_KEY_BYTES);
        assert!(open(b"pw", &s).is_ok());
        let too_big = vec![0u8; fits.len() + 1];
        assert!(matches!(
            seal(b"pw", &too_big, P, &mut rng),
            Err(SealError::TooLarge)
        ));
        let mut long = s;
        long.push(0);
        assert_eq!(open(b"pw", &long).err(), Some(OpenError::TooLarge));
    }

    #[test]
    fn params_bounds() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let low = SealParams {
            m_cost_kib: MIN_SEAL_M_COST_KIB - 1,
            ..P
        };
        assert!(matches!(
            seal(b"pw", b"k", low, &mut rng),
            Err(SealError::ParametersOutOfBounds)
        ));
        assert!(SealParams::RECOMMENDED.check().is_ok());
    }
}
