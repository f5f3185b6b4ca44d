//! `CertID` construction and matching (RFC 6960 §4.1.1).

use der::Encode;
use der::asn1::{Null, ObjectIdentifier, OctetString};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::Certificate;
use x509_cert::serial_number::SerialNumber;

use super::asn1::{CertId, ResponderId};

/// `id-sha1` (RFC 3279 §2.2.1).
pub(crate) const ID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
/// `id-sha256` (RFC 5754 §2.2).
pub(crate) const ID_SHA256: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

/// The hash used inside a `CertID`. SHA-1 is what most clients (OpenSSL's default) send; in a
/// `CertID` it only names a certificate, it does not protect anything, so it is still accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertIdHash {
    /// SHA-1 (20 octets).
    Sha1,
    /// SHA-256 (32 octets).
    Sha256,
}

impl CertIdHash {
    /// The hash named by an `AlgorithmIdentifier` (parameters absent or NULL), if supported.
    pub fn from_algorithm(alg: &AlgorithmIdentifierOwned) -> Option<Self> {
        let params_ok = match &alg.parameters {
            None => true,
            Some(p) => p.is_null(),
        };
        if !params_ok {
            return None;
        }
        match alg.oid {
            ID_SHA1 => Some(Self::Sha1),
            ID_SHA256 => Some(Self::Sha256),
            _ => None,
        }
    }

    /// The `AlgorithmIdentifier`, with NULL parameters as OpenSSL writes them.
    pub fn algorithm(self) -> AlgorithmIdentifierOwned {
        let oid = match self {
            Self::Sha1 => ID_SHA1,
            Self::Sha256 => ID_SHA256,
        };
        AlgorithmIdentifierOwned {
            oid,
            parameters: Some(Null.into()),
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha1 => Sha1::digest(data).to_vec(),
            Self::Sha256 => Sha256::digest(data).to_vec(),
        }
    }
}

/// The issuer name and key hashes of one CA certificate, in both supported hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerHashes {
    name_sha1: Vec<u8>,
    key_sha1: Vec<u8>,
    name_sha256: Vec<u8>,
    key_sha256: Vec<u8>,
}

impl IssuerHashes {
    /// Hashes `issuer`'s subject name and public key.
    pub fn new(issuer: &Certificate) -> Result<Self, der::Error> {
        let name = issuer.tbs_certificate().subject().to_der()?;
        let key = issuer
            .tbs_certificate()
            .subject_public_key_info()
            .subject_public_key
            .raw_bytes();
        Ok(Self {
            name_sha1: CertIdHash::Sha1.digest(&name),
            key_sha1: CertIdHash::Sha1.digest(key),
            name_sha256: CertIdHash::Sha256.digest(&name),
            key_sha256: CertIdHash::Sha256.digest(key),
        })
    }

    /// SHA-1 of the issuer's public key: the canonical key a status lookup is keyed by.
    pub fn key_sha1(&self) -> &[u8] {
        &self.key_sha1
    }

    /// Whether `id` names a certificate of this issuer (any serial). Unsupported hash
    /// algorithms never match.
    pub fn matches(&self, id: &CertId) -> bool {
        let (name, key) = match CertIdHash::from_algorithm(&id.hash_algorithm) {
            Some(CertIdHash::Sha1) => (&self.name_sha1, &self.key_sha1),
            Some(CertIdHash::Sha256) => (&self.name_sha256, &self.key_sha256),
            None => return false,
        };
        id.issuer_name_hash.as_bytes() == name.as_slice()
            && id.issuer_key_hash.as_bytes() == key.as_slice()
    }
}

/// The `CertID` of the certificate with `serial` issued by `issuer`.
pub fn cert_id(
    issuer: &Certificate,
    serial: &SerialNumber,
    hash: CertIdHash,
) -> Result<CertId, der::Error> {
    let name = issuer.tbs_certificate().subject().to_der()?;
    let key = issuer
        .tbs_certificate()
        .subject_public_key_info()
        .subject_public_key
        .raw_bytes();
    Ok(CertId {
        hash_algorithm: hash.algorithm(),
        issuer_name_hash: OctetString::new(hash.digest(&name))?,
        issuer_key_hash: OctetString::new(hash.digest(key))?,
        serial_number: serial.clone(),
    })
}

/// SHA-1 of a public key's BIT STRING value: the `KeyHash` of a `ResponderID` (RFC 6960 §4.2.1).
pub fn responder_key_hash(spki: &SubjectPublicKeyInfoOwned) -> Vec<u8> {
    CertIdHash::Sha1.digest(spki.subject_public_key.raw_bytes())
}

/// `ResponderID ::= byKey` for the given key.
pub(crate) fn responder_id_by_key(
    spki: &SubjectPublicKeyInfoOwned,
) -> Result<ResponderId, der::Error> {
    Ok(ResponderId::ByKey(OctetString::new(responder_key_hash(
        spki,
    ))?))
}
