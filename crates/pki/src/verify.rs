//! Signature verification for X.509 objects: certificates, CRLs, CSRs, OCSP responses.
//!
//! One entry point, [`verify_signature`], takes the signer's `SubjectPublicKeyInfo`, the
//! `AlgorithmIdentifier` that the signed object names, the signed bytes and the signature bytes.
//! Callers that verify many signatures with one key parse it once with
//! [`PublicKey::from_spki`] and the algorithm once with [`SignatureAlgorithm::from_identifier`],
//! then call [`PublicKey::verify`].
//!
//! Supported (RFC 5280 / RFC 4055 / RFC 5758 / RFC 8410):
//!
//! | algorithm identifier | key |
//! | --- | --- |
//! | `id-Ed25519` (no parameters) | Ed25519 (`id-Ed25519`), strict verification |
//! | `ecdsa-with-SHA256/384/512` (no parameters) | `id-ecPublicKey` with `namedCurve` P-256 or P-384 |
//! | `sha256/384/512WithRSAEncryption` (NULL parameters) | `rsaEncryption`, modulus 2048..=8192 bits, whole bytes |
//! | `id-RSASSA-PSS` with `RSASSA-PSS-params` (SHA-256/384/512, MGF1 with the same hash, trailer 1) | `rsaEncryption`, as above |
//!
//! Policy: SHA-1 (in any role) is refused as [`SignatureError::WeakAlgorithm`]; RSA moduli below
//! 2048 bits or not a whole number of bytes as [`SignatureError::WeakKey`]; explicit EC curve
//! parameters as [`SignatureError::UnsupportedKey`]. An RSA PKCS#1 v1.5 `DigestInfo` without the
//! NULL hash parameter (Wycheproof's `MissingNull`) is rejected: the encoded message must be the
//! exact RFC 8017 §9.2 encoding.
//!
//! ```text
//! AlgorithmIdentifier ::= SEQUENCE { algorithm OBJECT IDENTIFIER, parameters ANY OPTIONAL }
//! RSASSA-PSS-params  ::= SEQUENCE {
//!     hashAlgorithm      [0] HashAlgorithm    DEFAULT sha1,
//!     maskGenAlgorithm   [1] MaskGenAlgorithm DEFAULT mgf1SHA1,
//!     saltLength         [2] INTEGER          DEFAULT 20,
//!     trailerField       [3] TrailerField     DEFAULT trailerFieldBC }
//! ```

use const_oid::ObjectIdentifier;
use const_oid::db::{rfc5912, rfc8410};
use der::asn1::AnyRef;
use der::{Tag, Tagged};
use rsa::pkcs1::RsaPssParamsOwned;
use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256, Sha384, Sha512};
use signature::Verifier;
use signature::hazmat::PrehashVerifier;
use spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};

/// `ecdsa-with-SHA1` (RFC 3279 §2.2.3), missing from `const_oid::db::rfc5912`.
const ECDSA_WITH_SHA_1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.1");

/// Smallest RSA modulus accepted, in bits (NIST SP 800-131A: 2048 bits since 2014).
pub const MIN_RSA_MODULUS_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits: bounds the cost of one verification an attacker can
/// make us perform (a 16384-bit key costs ~16x a 4096-bit one).
pub const MAX_RSA_MODULUS_BITS: usize = 8192;

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The signature algorithm identifier is not one we verify.
    #[error("unsupported signature algorithm {0}")]
    UnsupportedAlgorithm(ObjectIdentifier),
    /// The algorithm uses SHA-1 (or another broken primitive) and is refused by policy.
    #[error("signature algorithm {0} is too weak")]
    WeakAlgorithm(ObjectIdentifier),
    /// The algorithm identifier's parameters are malformed or not the ones the algorithm needs.
    #[error("invalid signature algorithm parameters")]
    InvalidAlgorithmParameters,
    /// The public key's algorithm (or curve) is not one we support.
    #[error("unsupported public key algorithm {0}")]
    UnsupportedKey(ObjectIdentifier),
    /// The key is of a different kind than the signature algorithm needs.
    #[error("public key does not match the signature algorithm")]
    KeyAlgorithmMismatch,
    /// The public key could not be decoded or is not a valid key.
    #[error("malformed public key")]
    InvalidKey,
    /// The key is too small (or has an odd size) for our policy.
    #[error("public key of {bits} bits refused by policy")]
    WeakKey {
        /// Size of the refused key, in bits.
        bits: usize,
    },
    /// The signature does not verify (including malformed signature encodings).
    #[error("signature verification failed")]
    BadSignature,
}

/// A hash function allowed inside a signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlgorithm {
    fn from_oid(oid: ObjectIdentifier) -> Result<Self, SignatureError> {
        match oid {
            rfc5912::ID_SHA_256 => Ok(Self::Sha256),
            rfc5912::ID_SHA_384 => Ok(Self::Sha384),
            rfc5912::ID_SHA_512 => Ok(Self::Sha512),
            rfc5912::ID_SHA_1 => Err(SignatureError::WeakAlgorithm(oid)),
            _ => Err(SignatureError::InvalidAlgorithmParameters),
        }
    }

    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    fn digest(self, message: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(message).to_vec(),
            Self::Sha384 => Sha384::digest(message).to_vec(),
            Self::Sha512 => Sha512::digest(message).to_vec(),
        }
    }
}

/// A parsed, supported signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureAlgorithm {
    /// Pure Ed25519 (RFC 8410).
    Ed25519,
    /// ECDSA with the given hash; the curve comes from the key.
    Ecdsa(HashAlgorithm),
    /// RSASSA-PKCS1-v1_5 with the given hash.
    RsaPkcs1(HashAlgorithm),
    /// RSASSA-PSS with MGF1 over the same hash and the given salt length in bytes.
    RsaPss {
        /// Message and MGF1 hash.
        hash: HashAlgorithm,
        /// Salt length in bytes.
        salt_len: u8,
    },
}

impl SignatureAlgorithm {
    /// Parses and checks an `AlgorithmIdentifier` naming a signature algorithm.
    pub fn from_identifier(alg: &AlgorithmIdentifierRef<'_>) -> Result<Self, SignatureError> {
        match alg.oid {
            rfc8410::ID_ED_25519 => {
                require_absent(alg.parameters)?;
                Ok(Self::Ed25519)
            }
            rfc5912::ECDSA_WITH_SHA_256 => ecdsa(alg, HashAlgorithm::Sha256),
            rfc5912::ECDSA_WITH_SHA_384 => ecdsa(alg, HashAlgorithm::Sha384),
            rfc5912::ECDSA_WITH_SHA_512 => ecdsa(alg, HashAlgorithm::Sha512),
            rfc5912::SHA_256_WITH_RSA_ENCRYPTION => rsa_pkcs1(alg, HashAlgorithm::Sha256),
            rfc5912::SHA_384_WITH_RSA_ENCRYPTION => rsa_pkcs1(alg, HashAlgorithm::Sha384),
            rfc5912::SHA_512_WITH_RSA_ENCRYPTION => rsa_pkcs1(alg, HashAlgorithm::Sha512),
            rfc5912::ID_RSASSA_PSS => rsa_pss(alg),
            rfc5912::SHA_1_WITH_RSA_ENCRYPTION
            | ECDSA_WITH_SHA_1
            | rfc5912::DSA_WITH_SHA_1
            | rfc5912::MD_5_WITH_RSA_ENCRYPTION
            | rfc5912::MD_2_WITH_RSA_ENCRYPTION => Err(SignatureError::WeakAlgorithm(alg.oid)),
            other => Err(SignatureError::UnsupportedAlgorithm(other)),
        }
    }
}

fn ecdsa(
    alg: &AlgorithmIdentifierRef<'_>,
    hash: HashAlgorithm,
) -> Result<SignatureAlgorithm, SignatureError> {
    // RFC 5758 §3.2: the parameters field MUST be absent.
    require_absent(alg.parameters)?;
    Ok(SignatureAlgorithm::Ecdsa(hash))
}

fn rsa_pkcs1(
    alg: &AlgorithmIdentifierRef<'_>,
    hash: HashAlgorithm,
) -> Result<SignatureAlgorithm, SignatureError> {
    // RFC 4055 §5: the parameters MUST be NULL.
    require_null(alg.parameters)?;
    Ok(SignatureAlgorithm::RsaPkcs1(hash))
}

fn rsa_pss(alg: &AlgorithmIdentifierRef<'_>) -> Result<SignatureAlgorithm, SignatureError> {
    let params = alg
        .parameters
        .ok_or(SignatureError::InvalidAlgorithmParameters)?
        .decode_as::<RsaPssParamsOwned>()
        .map_err(|_| SignatureError::InvalidAlgorithmParameters)?;
    let hash = HashAlgorithm::from_oid(params.hash.oid)?;
    null_or_absent(params.hash.parameters.as_ref().map(der::Any::to_ref))?;
    if params.mask_gen.oid != rfc5912::ID_MGF_1 {
        return Err(SignatureError::InvalidAlgorithmParameters);
    }
    let mgf_hash = params
        .mask_gen
        .parameters
        .as_ref()
        .ok_or(SignatureError::InvalidAlgorithmParameters)?;
    if HashAlgorithm::from_oid(mgf_hash.oid)? != hash {
        return Err(SignatureError::InvalidAlgorithmParameters);
    }
    null_or_absent(mgf_hash.parameters.as_ref().map(der::Any::to_ref))?;
    Ok(SignatureAlgorithm::RsaPss {
        hash,
        salt_len: params.salt_len,
    })
}

fn require_absent(params: Option<AnyRef<'_>>) -> Result<(), SignatureError> {
    match params {
        None => Ok(()),
        Some(_) => Err(SignatureError::InvalidAlgorithmParameters),
    }
}

fn is_null(any: &AnyRef<'_>) -> bool {
    any.tag() == Tag::Null && any.value().is_empty()
}

fn require_null(params: Option<AnyRef<'_>>) -> Result<(), SignatureError> {
    match params {
        Some(any) if is_null(&any) => Ok(()),
        _ => Err(SignatureError::InvalidAlgorithmParameters),
    }
}

fn null_or_absent(params: Option<AnyRef<'_>>) -> Result<(), SignatureError> {
    match params {
        None => Ok(()),
        Some(any) if is_null(&any) => Ok(()),
        Some(_) => Err(SignatureError::InvalidAlgorithmParameters),
    }
}

/// A parsed public key that can verify signatures.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum PublicKey {
    /// Ed25519.
    Ed25519(ed25519_dalek::VerifyingKey),
    /// ECDSA on P-256.
    P256(p256::ecdsa::VerifyingKey),
    /// ECDSA on P-384.
    P384(p384::ecdsa::VerifyingKey),
    /// RSA (PKCS#1 v1.5 or PSS signatures).
    Rsa(rsa::PublicKey),
}

impl PublicKey {
    /// Parses a `SubjectPublicKeyInfo` and applies the key policy (curves, RSA sizes).
    pub fn from_spki(spki: &SubjectPublicKeyInfoRef<'_>) -> Result<Self, SignatureError> {
        let alg = &spki.algorithm;
        let key_bytes = spki
            .subject_public_key
            .as_bytes()
            .ok_or(SignatureError::InvalidKey)?;
        match alg.oid {
            rfc8410::ID_ED_25519 => {
                require_absent(alg.parameters)?;
                let bytes: &[u8; 32] = key_bytes
                    .try_into()
                    .map_err(|_| SignatureError::InvalidKey)?;
                ed25519_dalek::VerifyingKey::from_bytes(bytes)
                    .map(Self::Ed25519)
                    .map_err(|_| SignatureError::InvalidKey)
            }
            rfc5912::ID_EC_PUBLIC_KEY => {
                // RFC 5480 §2.1.1: namedCurve only; explicit parameters (limbo
                // `webpki::explicit-curve`) and implicitCurve are refused.
                let curve = alg
                    .parameters
                    .ok_or(SignatureError::InvalidKey)?
                    .decode_as::<ObjectIdentifier>()
                    .map_err(|_| SignatureError::UnsupportedKey(alg.oid))?;
                match curve {
                    rfc5912::SECP_256_R_1 => p256::ecdsa::VerifyingKey::from_sec1_bytes(key_bytes)
                        .map(Self::P256)
                        .map_err(|_| SignatureError::InvalidKey),
                    rfc5912::SECP_384_R_1 => p384::ecdsa::VerifyingKey::from_sec1_bytes(key_bytes)
                        .map(Self::P384)
                        .map_err(|_| SignatureError::InvalidKey),
                    other => Err(SignatureError::UnsupportedKey(other)),
                }
            }
            rfc5912::RSA_ENCRYPTION => {
                require_null(alg.parameters).map_err(|_| SignatureError::InvalidKey)?;
                let pkcs1 = rsa::pkcs1::RsaPublicKeyRef::try_from(key_bytes)
                    .map_err(|_| SignatureError::InvalidKey)?;
                let modulus = pkcs1.modulus.as_bytes();
                let bits = modulus_bits(modulus);
                if bits < MIN_RSA_MODULUS_BITS
                    || !bits.is_multiple_of(8)
                    || bits > MAX_RSA_MODULUS_BITS
                {
                    return Err(SignatureError::WeakKey { bits });
                }
                let key =
                    rsa::PublicKey::try_from(pkcs1).map_err(|_| SignatureError::InvalidKey)?;
                debug_assert_eq!(key.n().bit_width_vartime() as usize, bits);
                Ok(Self::Rsa(key))
            }
            other => Err(SignatureError::UnsupportedKey(other)),
        }
    }

    /// Verifies `signature` over `message` with this key and `algorithm`.
    pub fn verify(
        &self,
        algorithm: SignatureAlgorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureError> {
        match (self, algorithm) {
            (Self::Ed25519(key), SignatureAlgorithm::Ed25519) => {
                let sig = ed25519_dalek::Signature::from_slice(signature)
                    .map_err(|_| SignatureError::BadSignature)?;
                // Strict: rejects non-canonical S, small-order R and A (RFC 8032 §5.1.7 plus
                // the malleability checks Wycheproof expects).
                key.verify_strict(message, &sig)
                    .map_err(|_| SignatureError::BadSignature)
            }
            (Self::P256(key), SignatureAlgorithm::Ecdsa(hash)) => {
                let sig = p256::ecdsa::Signature::from_der(signature)
                    .map_err(|_| SignatureError::BadSignature)?;
                key.verify_prehash(&hash.digest(message), &sig)
                    .map_err(|_| SignatureError::BadSignature)
            }
            (Self::P384(key), SignatureAlgorithm::Ecdsa(hash)) => {
                let sig = p384::ecdsa::Signature::from_der(signature)
                    .map_err(|_| SignatureError::BadSignature)?;
                key.verify_prehash(&hash.digest(message), &sig)
                    .map_err(|_| SignatureError::BadSignature)
            }
            (Self::Rsa(key), SignatureAlgorithm::RsaPkcs1(hash)) => {
                rsa_signature_len_ok(key, signature)?;
                let sig = rsa::pkcs1v15::Signature::try_from(signature)
                    .map_err(|_| SignatureError::BadSignature)?;
                let result = match hash {
                    HashAlgorithm::Sha256 => {
                        rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key.clone())
                            .verify(message, &sig)
                    }
                    HashAlgorithm::Sha384 => {
                        rsa::pkcs1v15::VerifyingKey::<Sha384>::new(key.clone())
                            .verify(message, &sig)
                    }
                    HashAlgorithm::Sha512 => {
                        rsa::pkcs1v15::VerifyingKey::<Sha512>::new(key.clone())
                            .verify(message, &sig)
                    }
                };
                result.map_err(|_| SignatureError::BadSignature)
            }
            (Self::Rsa(key), SignatureAlgorithm::RsaPss { hash, salt_len }) => {
                rsa_signature_len_ok(key, signature)?;
                let sig = rsa::pss::Signature::try_from(signature)
                    .map_err(|_| SignatureError::BadSignature)?;
                let salt_len = usize::from(salt_len);
                let result = match hash {
                    HashAlgorithm::Sha256 => {
                        rsa::pss::VerifyingKey::<Sha256>::new_with_salt_len(key.clone(), salt_len)
                            .verify(message, &sig)
                    }
                    HashAlgorithm::Sha384 => {
                        rsa::pss::VerifyingKey::<Sha384>::new_with_salt_len(key.clone(), salt_len)
                            .verify(message, &sig)
                    }
                    HashAlgorithm::Sha512 => {
                        rsa::pss::VerifyingKey::<Sha512>::new_with_salt_len(key.clone(), salt_len)
                            .verify(message, &sig)
                    }
                };
                result.map_err(|_| SignatureError::BadSignature)
            }
            _ => Err(SignatureError::KeyAlgorithmMismatch),
        }
    }
}

/// RFC 8017 §8.2.2 step 1: the signature is exactly `k` octets, `k` the modulus length.
fn rsa_signature_len_ok(key: &rsa::PublicKey, signature: &[u8]) -> Result<(), SignatureError> {
    if signature.len() == key.size() {
        Ok(())
    } else {
        Err(SignatureError::BadSignature)
    }
}

/// Bit length of a big-endian unsigned integer (leading zero bytes ignored).
fn modulus_bits(be: &[u8]) -> usize {
    let mut iter = be.iter().skip_while(|b| **b == 0);
    match iter.next() {
        None => 0,
        Some(first) => {
            let rest = iter.count();
            rest * 8 + (8 - first.leading_zeros() as usize)
        }
    }
}

/// Verifies `signature` over `message` by the key in `spki`, with the signature algorithm
/// `algorithm` (as named by the signed object).
pub fn verify_signature(
    spki: &SubjectPublicKeyInfoRef<'_>,
    algorithm: &AlgorithmIdentifierRef<'_>,
    message: &[u8],
    signature: &[u8],
) -> Result<(), SignatureError> {
    let algorithm = SignatureAlgorithm::from_identifier(algorithm)?;
    let key = PublicKey::from_spki(spki)?;
    key.verify(algorithm, message, signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modulus_bits_counts_from_the_top_bit() {
        assert_eq!(modulus_bits(&[]), 0);
        assert_eq!(modulus_bits(&[0, 0]), 0);
        assert_eq!(modulus_bits(&[0, 1]), 1);
        assert_eq!(modulus_bits(&[0, 0x80, 0]), 16);
        assert_eq!(modulus_bits(&[0x7f, 0xff]), 15);
    }

    #[test]
    fn sha1_is_weak_and_unknown_is_unsupported() {
        let sha1 = AlgorithmIdentifierRef {
            oid: rfc5912::SHA_1_WITH_RSA_ENCRYPTION,
            parameters: Some(AnyRef::NULL),
        };
        assert!(matches!(
            SignatureAlgorithm::from_identifier(&sha1),
            Err(SignatureError::WeakAlgorithm(_))
        ));
        let unknown = AlgorithmIdentifierRef {
            oid: rfc5912::ID_DSA,
            parameters: None,
        };
        assert!(matches!(
            SignatureAlgorithm::from_identifier(&unknown),
            Err(SignatureError::UnsupportedAlgorithm(_))
        ));
    }

    #[test]
    fn parameter_rules() {
        let ed_with_null = AlgorithmIdentifierRef {
            oid: rfc8410::ID_ED_25519,
            parameters: Some(AnyRef::NULL),
        };
        assert_eq!(
            SignatureAlgorithm::from_identifier(&ed_with_null),
            Err(SignatureError::InvalidAlgorithmParameters)
        );
        let rsa_absent = AlgorithmIdentifierRef {
            oid: rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
            parameters: None,
        };
        assert_eq!(
            SignatureAlgorithm::from_identifier(&rsa_absent),
            Err(SignatureError::InvalidAlgorithmParameters)
        );
        let pss_absent = AlgorithmIdentifierRef {
            oid: rfc5912::ID_RSASSA_PSS,
            parameters: None,
        };
        assert_eq!(
            SignatureAlgorithm::from_identifier(&pss_absent),
            Err(SignatureError::InvalidAlgorithmParameters)
        );
    }
}
