//! CA signing keys: Ed25519 (default), ECDSA P-256 and RSA-3072 (PKCS#1 v1.5 with SHA-256).
//!
//! A [`CaKey`] holds the private key; it is zeroized on drop, has no `Debug` and no
//! `PartialEq`. Its public twin is [`CaKey::public_key_info`]. Keys move in and out as PKCS#8
//! (RFC 5208 / RFC 5958) DER, which [`crate::seal`] encrypts at rest.
//!
//! | algorithm | signatureAlgorithm (RFC 8410 / RFC 5758 / RFC 4055) |
//! | --- | --- |
//! | Ed25519 | `id-Ed25519` 1.3.101.112, parameters absent |
//! | P-256 | `ecdsa-with-SHA256` 1.2.840.10045.4.3.2, parameters absent |
//! | RSA-3072 | `sha256WithRSAEncryption` 1.2.840.113549.1.1.11, parameters NULL |

use const_oid::ObjectIdentifier;
use der::Decode;
use der::asn1::AnyRef;
use rand_core::CryptoRng;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, PrivateKeyInfoRef};
use rsa::traits::PublicKeyParts;
use signature::{Keypair, Signer};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use zeroize::Zeroizing;

/// id-Ed25519 (RFC 8410).
pub const ID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
/// id-X25519 (RFC 8410).
pub const ID_X25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.110");
/// id-ecPublicKey (RFC 5480).
pub const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// secp256r1 (RFC 5480).
pub const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// secp384r1 (RFC 5480).
pub const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
/// rsaEncryption (RFC 8017).
pub const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// ecdsa-with-SHA256 (RFC 5758).
pub const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
/// ecdsa-with-SHA384 (RFC 5758).
pub const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
/// sha256WithRSAEncryption (RFC 4055).
pub const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
/// sha384WithRSAEncryption (RFC 4055).
pub const SHA384_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
/// sha512WithRSAEncryption (RFC 4055).
pub const SHA512_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");

/// RSA modulus size of [`CaAlgorithm::Rsa3072`] keys.
pub const RSA_CA_BITS: usize = 3072;

/// Which signature algorithm a CA key uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum CaAlgorithm {
    /// Ed25519 (RFC 8032, RFC 8410). The default: small, fast, deterministic.
    #[default]
    Ed25519,
    /// ECDSA over P-256 with SHA-256, deterministic nonces (RFC 6979).
    P256,
    /// RSA-3072, PKCS#1 v1.5 signatures with SHA-256.
    Rsa3072,
}

impl CaAlgorithm {
    /// Every algorithm, for tests and option parsing.
    pub const ALL: [CaAlgorithm; 3] = [Self::Ed25519, Self::P256, Self::Rsa3072];

    /// The name used in configuration and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ed25519 => "ed25519",
            Self::P256 => "p256",
            Self::Rsa3072 => "rsa3072",
        }
    }

    /// Parses [`CaAlgorithm::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The `AlgorithmIdentifier` of signatures made by keys of this algorithm.
    pub fn signature_algorithm(self) -> AlgorithmIdentifierOwned {
        match self {
            Self::Ed25519 => AlgorithmIdentifierOwned {
                oid: ID_ED25519,
                parameters: None,
            },
            Self::P256 => AlgorithmIdentifierOwned {
                oid: ECDSA_WITH_SHA256,
                parameters: None,
            },
            Self::Rsa3072 => AlgorithmIdentifierOwned {
                oid: SHA256_WITH_RSA,
                parameters: Some(AnyRef::NULL.into()),
            },
        }
    }
}

/// Errors from generating, importing or using a CA key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The PKCS#8 document does not parse.
    #[error("malformed PKCS#8 private key")]
    MalformedPkcs8,
    /// The PKCS#8 document holds a key type a CA cannot use.
    #[error("unsupported CA key algorithm {0}")]
    UnsupportedAlgorithm(ObjectIdentifier),
    /// An RSA key of another size than 3072 bits.
    #[error("RSA CA keys must be {RSA_CA_BITS} bits, got {0}")]
    WrongRsaSize(usize),
    /// Key generation failed.
    #[error("key generation failed")]
    Generation,
    /// The signer refused (should not happen with a valid key).
    #[error("signing failed")]
    Signing,
    /// Encoding the key failed.
    #[error("key encoding failed")]
    Encoding,
}

enum KeyInner {
    Ed25519(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
    Rsa3072(Box<rsa::pkcs1v15::SigningKey<rsa::sha2::Sha256>>),
}

/// A CA private key. Zeroized on drop (each inner key type zeroizes itself); no `Debug`.
pub struct CaKey {
    inner: KeyInner,
    spki_der: Vec<u8>,
    spki: SubjectPublicKeyInfoOwned,
}

impl CaKey {
    /// Generates a fresh key. RSA-3072 generation takes a second or more in optimised builds.
    pub fn generate(
        algorithm: CaAlgorithm,
        rng: &mut (impl CryptoRng + ?Sized),
    ) -> Result<Self, KeyError> {
        let inner = match algorithm {
            CaAlgorithm::Ed25519 => KeyInner::Ed25519(ed25519_dalek::SigningKey::generate(rng)),
            CaAlgorithm::P256 => {
                use p256::elliptic_curve::Generate;
                KeyInner::P256(p256::ecdsa::SigningKey::generate_from_rng(rng))
            }
            CaAlgorithm::Rsa3072 => {
                let key =
                    rsa::PrivateKey::new(rng, RSA_CA_BITS).map_err(|_| KeyError::Generation)?;
                KeyInner::Rsa3072(Box::new(rsa::pkcs1v15::SigningKey::new(key)))
            }
        };
        Self::from_inner(inner)
    }

    fn from_inner(inner: KeyInner) -> Result<Self, KeyError> {
        let doc = match &inner {
            KeyInner::Ed25519(k) => k.verifying_key().to_public_key_der(),
            KeyInner::P256(k) => k.verifying_key().to_public_key_der(),
            KeyInner::Rsa3072(k) => k.verifying_key().to_public_key_der(),
        }
        .map_err(|_| KeyError::Encoding)?;
        let spki =
            SubjectPublicKeyInfoOwned::from_der(doc.as_bytes()).map_err(|_| KeyError::Encoding)?;
        Ok(Self {
            inner,
            spki_der: doc.as_bytes().to_vec(),
            spki,
        })
    }

    /// Which algorithm this key signs with.
    pub fn algorithm(&self) -> CaAlgorithm {
        match self.inner {
            KeyInner::Ed25519(_) => CaAlgorithm::Ed25519,
            KeyInner::P256(_) => CaAlgorithm::P256,
            KeyInner::Rsa3072(_) => CaAlgorithm::Rsa3072,
        }
    }

    /// Signs `msg`; the result is what goes into the signature BIT STRING (raw 64 bytes for
    /// Ed25519, a DER `Ecdsa-Sig-Value` for ECDSA, the 384-byte block for RSA).
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.inner {
            KeyInner::Ed25519(k) => Ok(k.sign(msg).to_bytes().to_vec()),
            KeyInner::P256(k) => {
                let sig: p256::ecdsa::DerSignature =
                    k.try_sign(msg).map_err(|_| KeyError::Signing)?;
                Ok(sig.as_bytes().to_vec())
            }
            KeyInner::Rsa3072(k) => {
                let sig = k.try_sign(msg).map_err(|_| KeyError::Signing)?;
                Ok(Box::<[u8]>::from(sig).into_vec())
            }
        }
    }

    /// The signatureAlgorithm this key's signatures carry.
    pub fn signature_algorithm(&self) -> AlgorithmIdentifierOwned {
        self.algorithm().signature_algorithm()
    }

    /// The public key as a `SubjectPublicKeyInfo`.
    pub fn public_key_info(&self) -> &SubjectPublicKeyInfoOwned {
        &self.spki
    }

    /// DER of the `SubjectPublicKeyInfo`.
    pub fn public_key_info_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// Exports the private key as PKCS#8 DER (zeroized when dropped).
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let doc = match &self.inner {
            KeyInner::Ed25519(k) => k.to_pkcs8_der(),
            KeyInner::P256(k) => k.to_pkcs8_der(),
            KeyInner::Rsa3072(k) => k.to_pkcs8_der(),
        }
        .map_err(|_| KeyError::Encoding)?;
        Ok(Zeroizing::new(doc.as_bytes().to_vec()))
    }

    /// Imports a PKCS#8 DER private key (Ed25519, P-256 or RSA-3072).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let info = PrivateKeyInfoRef::from_der(der).map_err(|_| KeyError::MalformedPkcs8)?;
        let oid = info.algorithm.oid;
        let inner = if oid == ID_ED25519 {
            KeyInner::Ed25519(
                ed25519_dalek::SigningKey::from_pkcs8_der(der)
                    .map_err(|_| KeyError::MalformedPkcs8)?,
            )
        } else if oid == ID_EC_PUBLIC_KEY {
            let curve = info
                .algorithm
                .parameters_oid()
                .map_err(|_| KeyError::MalformedPkcs8)?;
            if curve != SECP256R1 {
                return Err(KeyError::UnsupportedAlgorithm(curve));
            }
            KeyInner::P256(
                p256::ecdsa::SigningKey::from_pkcs8_der(der)
                    .map_err(|_| KeyError::MalformedPkcs8)?,
            )
        } else if oid == RSA_ENCRYPTION {
            let key = rsa::PrivateKey::from_pkcs8_der(der).map_err(|_| KeyError::MalformedPkcs8)?;
            let bits = key.size() * 8;
            if bits != RSA_CA_BITS {
                return Err(KeyError::WrongRsaSize(bits));
            }
            KeyInner::Rsa3072(Box::new(rsa::pkcs1v15::SigningKey::new(key)))
        } else {
            return Err(KeyError::UnsupportedAlgorithm(oid));
        };
        Self::from_inner(inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use signature::Verifier;

    fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(42)
    }

    #[test]
    fn ed25519_sign_verify_and_pkcs8_round_trip() {
        let key = CaKey::generate(CaAlgorithm::Ed25519, &mut rng()).expect("generate");
        let sig = key.sign(b"tbs").expect("sign");
        let der = key.to_pkcs8_der().expect("export");
        let back = CaKey::from_pkcs8_der(&der).expect("import");
        assert_eq!(back.public_key_info_der(), key.public_key_info_der());
        assert_eq!(back.sign(b"tbs").expect("sign"), sig);
        let spki = key.public_key_info();
        let vk =
            ed25519_dalek::VerifyingKey::try_from(spki.subject_public_key.raw_bytes()).expect("vk");
        let sig = ed25519_dalek::Signature::from_slice(&sig).expect("sig");
        assert!(vk.verify(b"tbs", &sig).is_ok());
        assert_eq!(key.signature_algorithm().oid, ID_ED25519);
    }

    #[test]
    fn p256_sign_verify_and_pkcs8_round_trip() {
        let key = CaKey::generate(CaAlgorithm::P256, &mut rng()).expect("generate");
        let sig = key.sign(b"tbs").expect("sign");
        let der = key.to_pkcs8_der().expect("export");
        let back = CaKey::from_pkcs8_der(&der).expect("import");
        assert_eq!(back.algorithm(), CaAlgorithm::P256);
        let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(
            key.public_key_info().subject_public_key.raw_bytes(),
        )
        .expect("vk");
        let sig = p256::ecdsa::DerSignature::try_from(sig.as_slice()).expect("sig");
        assert!(vk.verify(b"tbs", &sig).is_ok());
    }

    #[test]
    #[ignore = "RSA-3072 generation takes minutes in a debug build; run with --release --ignored"]
    fn rsa3072_generate_sign_and_round_trip() {
        let key = CaKey::generate(CaAlgorithm::Rsa3072, &mut rng()).expect("generate");
        let sig = key.sign(b"tbs").expect("sign");
        assert_eq!(sig.len(), RSA_CA_BITS / 8);
        let back = CaKey::from_pkcs8_der(&key.to_pkcs8_der().expect("export")).expect("import");
        assert_eq!(back.sign(b"tbs").expect("sign"), sig);
        assert_eq!(key.signature_algorithm().oid, SHA256_WITH_RSA);
    }

    #[test]
    fn import_rejects_garbage_and_other_algorithms() {
        assert!(matches!(
            CaKey::from_pkcs8_der(b"not a key"),
            Err(KeyError::MalformedPkcs8)
        ));
        // An X25519 PKCS#8 key (RFC 8410 example 10.3) cannot sign.
        let x25519 = [
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22,
            0x04, 0x20, 0xd4, 0xee, 0x72, 0xdb, 0xf9, 0x13, 0x58, 0x4a, 0xd5, 0xb6, 0xd8, 0xf1,
            0xf7, 0x69, 0xf8, 0xad, 0x3a, 0xfe, 0x7c, 0x28, 0xcb, 0xf1, 0xd4, 0xfb, 0xe0, 0x97,
            0xa8, 0x8f, 0x44, 0x75, 0x58, 0x42,
        ];
        assert!(matches!(
            CaKey::from_pkcs8_der(&x25519),
            Err(KeyError::UnsupportedAlgorithm(oid)) if oid == ID_X25519
        ));
    }

    #[test]
    fn algorithm_names_round_trip() {
        for a in CaAlgorithm::ALL {
            assert_eq!(CaAlgorithm::from_name(a.name()), Some(a));
        }
        assert_eq!(CaAlgorithm::from_name("dsa"), None);
    }
}
