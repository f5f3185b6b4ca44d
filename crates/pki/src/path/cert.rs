//! A certificate parsed once for path validation: typed ASN.1 (x509-cert), the exact signed
//! bytes, and every extension the validator understands decoded up front.
//!
//! ```text
//! Certificate  ::=  SEQUENCE  {
//!      tbsCertificate       TBSCertificate,
//!      signatureAlgorithm   AlgorithmIdentifier,
//!      signatureValue       BIT STRING  }
//! ```
//!
//! Parsing refuses what no valid path may contain: trailing data, a version other than v3,
//! a serial number that is zero, negative or longer than 20 octets, inner and outer signature
//! algorithms that differ, duplicate extensions and malformed known extensions. Checks that depend
//! on the certificate's role in a path (CA or end entity, critical extensions we do not know)
//! are made by the validator, so an unrelated certificate with such a defect does not spoil a
//! validation it takes no part in.

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5280 as oids;
use der::asn1::{AnyRef, BitStringRef};
use der::{Decode, Encode, Sequence};
use spki::AlgorithmIdentifierRef;
use x509_cert::Certificate;
use x509_cert::certificate::Version;
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints, CertificatePolicies,
    CrlDistributionPoints, ExtendedKeyUsage, InhibitAnyPolicy, KeyUsage, KeyUsages,
    NameConstraints, PolicyConstraints, PolicyMappings, SubjectAltName, SubjectInfoAccessSyntax,
    SubjectKeyIdentifier,
};
use x509_cert::name::Name;

use super::limits::MAX_CERTIFICATE_BYTES;
use crate::verify::{PublicKey, SignatureAlgorithm, SignatureError};

/// Why bytes are not a certificate the validator will use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// Larger than [`MAX_CERTIFICATE_BYTES`].
    #[error("certificate too large")]
    TooLarge,
    /// Not DER, or not an X.509 certificate.
    #[error("malformed certificate: {0}")]
    Malformed(der::Error),
    /// Only X.509 v3 certificates are accepted.
    #[error("unsupported certificate version")]
    UnsupportedVersion,
    /// RFC 5280 §4.1.2.2: serial numbers are positive and at most 20 octets.
    #[error("invalid serial number")]
    InvalidSerialNumber,
    /// RFC 5280 §4.1.1.2: `signatureAlgorithm` must equal `tbsCertificate.signature`.
    #[error("signature algorithm mismatch between certificate and TBS")]
    SignatureAlgorithmMismatch,
    /// RFC 5280 §4.2: an extension may appear at most once.
    #[error("duplicate extension {0}")]
    DuplicateExtension(ObjectIdentifier),
    /// A known extension does not decode.
    #[error("malformed extension {0}")]
    MalformedExtension(ObjectIdentifier),
}

/// The exact encoded pieces of a certificate, so the signature is checked over the bytes that
/// were signed rather than a re-encoding.
#[derive(Sequence)]
struct CertificateParts<'a> {
    tbs_certificate: AnyRef<'a>,
    signature_algorithm: AlgorithmIdentifierRef<'a>,
    signature: BitStringRef<'a>,
}

/// An extension's criticality and decoded value.
#[derive(Debug, Clone)]
pub struct Ext<T> {
    /// The `critical` flag.
    pub critical: bool,
    /// The decoded value.
    pub value: T,
}

/// The extensions the validator understands, decoded.
#[derive(Debug, Clone, Default)]
pub struct Extensions {
    /// basicConstraints (RFC 5280 §4.2.1.9).
    pub basic_constraints: Option<Ext<BasicConstraints>>,
    /// keyUsage (§4.2.1.3).
    pub key_usage: Option<Ext<KeyUsage>>,
    /// extKeyUsage (§4.2.1.12).
    pub extended_key_usage: Option<Ext<Vec<ObjectIdentifier>>>,
    /// subjectAltName (§4.2.1.6).
    pub subject_alt_name: Option<Ext<Vec<GeneralName>>>,
    /// nameConstraints (§4.2.1.10).
    pub name_constraints: Option<Ext<NameConstraints>>,
    /// authorityKeyIdentifier (§4.2.1.1).
    pub authority_key_identifier: Option<Ext<AuthorityKeyIdentifier>>,
    /// subjectKeyIdentifier (§4.2.1.2).
    pub subject_key_identifier: Option<Ext<Vec<u8>>>,
    /// authorityInfoAccess (§4.2.2.1), which must not be critical.
    pub authority_info_access_critical: Option<bool>,
    /// policyConstraints (§4.2.1.11), which must be critical.
    pub policy_constraints_critical: Option<bool>,
    /// cRLDistributionPoints (§4.2.1.13): where the certificate's CRLs are, which decides
    /// which CRLs speak for it (§6.3.3).
    pub crl_distribution_points: Option<Ext<Vec<DistributionPoint>>>,
    /// Critical extensions the validator does not process.
    pub unknown_critical: Vec<ObjectIdentifier>,
}

/// A parsed certificate, ready for path validation.
#[derive(Debug, Clone)]
pub struct ParsedCertificate {
    der: Vec<u8>,
    tbs_der: Vec<u8>,
    signature: Vec<u8>,
    cert: Certificate,
    signature_algorithm: Result<SignatureAlgorithm, SignatureError>,
    /// Parsed once: a path validation may try this certificate's key many times.
    public_key: Result<PublicKey, SignatureError>,
    extensions: Extensions,
}

/// Parses a DER certificate for path validation (a fuzzing entry point: never panics).
pub fn parse_certificate(der: &[u8]) -> Result<ParsedCertificate, CertificateError> {
    ParsedCertificate::from_der(der)
}

impl ParsedCertificate {
    /// Parses and sanity-checks a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, CertificateError> {
        if der.len() > MAX_CERTIFICATE_BYTES {
            return Err(CertificateError::TooLarge);
        }
        let parts = CertificateParts::from_der(der).map_err(CertificateError::Malformed)?;
        let cert = Certificate::from_der(der).map_err(CertificateError::Malformed)?;
        let tbs_der = parts
            .tbs_certificate
            .to_der()
            .map_err(CertificateError::Malformed)?;
        let tbs = cert.tbs_certificate();
        if tbs.version() != Version::V3 {
            return Err(CertificateError::UnsupportedVersion);
        }
        check_serial(tbs.serial_number().as_bytes())?;
        if tbs.signature() != cert.signature_algorithm() {
            return Err(CertificateError::SignatureAlgorithmMismatch);
        }
        let signature_algorithm = SignatureAlgorithm::from_identifier(&parts.signature_algorithm);
        // A signature with unused bits cannot be a valid signature encoding; keep it empty so
        // verification fails rather than refusing to parse.
        let signature = parts
            .signature
            .as_bytes()
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        let extensions = decode_extensions(tbs.extensions().map(Vec::as_slice).unwrap_or(&[]))?;
        let public_key = parse_public_key(tbs.subject_public_key_info());
        Ok(Self {
            der: der.to_vec(),
            tbs_der,
            signature,
            cert,
            signature_algorithm,
            public_key,
            extensions,
        })
    }

    /// The certificate's DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The typed certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    /// The subject name.
    pub fn subject(&self) -> &Name {
        self.cert.tbs_certificate().subject()
    }

    /// The issuer name.
    pub fn issuer(&self) -> &Name {
        self.cert.tbs_certificate().issuer()
    }

    /// The serial number's content octets (two's complement, as encoded).
    pub fn serial(&self) -> &[u8] {
        self.cert.tbs_certificate().serial_number().as_bytes()
    }

    /// The decoded extensions.
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// `notBefore` and `notAfter`, in seconds since the Unix epoch.
    pub fn validity_secs(&self) -> (u64, u64) {
        let validity = self.cert.tbs_certificate().validity();
        (
            validity.not_before.to_unix_duration().as_secs(),
            validity.not_after.to_unix_duration().as_secs(),
        )
    }

    /// RFC 5280 §6.1: self-issued means subject and issuer are the same name.
    pub fn is_self_issued(&self) -> bool {
        self.subject() == self.issuer()
    }

    /// basicConstraints with `cA` asserted.
    pub fn is_ca(&self) -> bool {
        self.extensions
            .basic_constraints
            .as_ref()
            .is_some_and(|bc| bc.value.ca)
    }

    /// Whether keyUsage is absent or asserts `usage`.
    pub fn allows_key_usage(&self, usage: KeyUsages) -> bool {
        self.extensions
            .key_usage
            .as_ref()
            .is_none_or(|ku| ku.value.0.contains(usage))
    }

    /// The subject public key, parsed with the key policy of [`crate::verify`].
    pub fn public_key(&self) -> Result<&PublicKey, SignatureError> {
        self.public_key.as_ref().map_err(Clone::clone)
    }

    /// The subject public key info.
    pub fn subject_public_key_info(&self) -> &spki::SubjectPublicKeyInfoOwned {
        self.cert.tbs_certificate().subject_public_key_info()
    }

    /// Verifies this certificate's signature with `issuer_key`.
    pub fn verify_signed_by(&self, issuer_key: &PublicKey) -> Result<(), SignatureError> {
        let algorithm = self.signature_algorithm.clone()?;
        issuer_key.verify(algorithm, &self.tbs_der, &self.signature)
    }

    /// The signature algorithm, if supported.
    pub fn signature_algorithm(&self) -> Result<SignatureAlgorithm, SignatureError> {
        self.signature_algorithm.clone()
    }

    /// The authority key identifier's keyIdentifier, if present.
    pub fn authority_key_id(&self) -> Option<&[u8]> {
        self.extensions
            .authority_key_identifier
            .as_ref()
            .and_then(|aki| aki.value.key_identifier.as_ref())
            .map(|id| id.as_bytes())
    }

    /// The cRLDistributionPoints, if present.
    pub fn crl_distribution_points(&self) -> Option<&[DistributionPoint]> {
        self.extensions
            .crl_distribution_points
            .as_ref()
            .map(|dps| dps.value.as_slice())
    }

    /// The subject key identifier, if present.
    pub fn subject_key_id(&self) -> Option<&[u8]> {
        self.extensions
            .subject_key_identifier
            .as_ref()
            .map(|ski| ski.value.as_slice())
    }
}

fn parse_public_key(spki: &spki::SubjectPublicKeyInfoOwned) -> Result<PublicKey, SignatureError> {
    let der = spki.to_der().map_err(|_| SignatureError::InvalidKey)?;
    let spki_ref =
        spki::SubjectPublicKeyInfoRef::from_der(&der).map_err(|_| SignatureError::InvalidKey)?;
    PublicKey::from_spki(&spki_ref)
}

fn check_serial(serial: &[u8]) -> Result<(), CertificateError> {
    let negative = serial.first().is_some_and(|b| b & 0x80 != 0);
    let zero = serial.iter().all(|b| *b == 0);
    // 20 octets of value; a leading 0x00 that keeps the integer positive does not count.
    let significant = match serial {
        [0, rest @ ..] => rest.len(),
        all => all.len(),
    };
    if negative || zero || significant > 20 {
        Err(CertificateError::InvalidSerialNumber)
    } else {
        Ok(())
    }
}

fn decode<'a, T: Decode<'a>>(
    oid: ObjectIdentifier,
    bytes: &'a [u8],
) -> Result<T, CertificateError> {
    T::from_der(bytes).map_err(|_| CertificateError::MalformedExtension(oid))
}

fn decode_extensions(exts: &[x509_cert::ext::Extension]) -> Result<Extensions, CertificateError> {
    let mut out = Extensions::default();
    let mut seen: Vec<ObjectIdentifier> = Vec::with_capacity(exts.len());
    for ext in exts {
        let oid = ext.extn_id;
        if seen.contains(&oid) {
            return Err(CertificateError::DuplicateExtension(oid));
        }
        seen.push(oid);
        let critical = ext.critical;
        let bytes = ext.extn_value.as_bytes();
        match oid {
            oids::ID_CE_BASIC_CONSTRAINTS => {
                let value: BasicConstraints = decode(oid, bytes)?;
                out.basic_constraints = Some(Ext { critical, value });
            }
            oids::ID_CE_KEY_USAGE => {
                let value: KeyUsage = decode(oid, bytes)?;
                out.key_usage = Some(Ext { critical, value });
            }
            oids::ID_CE_EXT_KEY_USAGE => {
                let value: ExtendedKeyUsage = decode(oid, bytes)?;
                // ExtKeyUsageSyntax ::= SEQUENCE SIZE (1..MAX) OF KeyPurposeId
                if value.0.is_empty() {
                    return Err(CertificateError::MalformedExtension(oid));
                }
                out.extended_key_usage = Some(Ext {
                    critical,
                    value: value.0,
                });
            }
            oids::ID_CE_SUBJECT_ALT_NAME => {
                let value: SubjectAltName = decode(oid, bytes)?;
                // GeneralNames ::= SEQUENCE SIZE (1..MAX) OF GeneralName
                if value.0.is_empty() {
                    return Err(CertificateError::MalformedExtension(oid));
                }
                out.subject_alt_name = Some(Ext {
                    critical,
                    value: value.0,
                });
            }
            oids::ID_CE_NAME_CONSTRAINTS => {
                let value: NameConstraints = decode(oid, bytes)?;
                out.name_constraints = Some(Ext { critical, value });
            }
            oids::ID_CE_AUTHORITY_KEY_IDENTIFIER => {
                let value: AuthorityKeyIdentifier = decode(oid, bytes)?;
                out.authority_key_identifier = Some(Ext { critical, value });
            }
            oids::ID_CE_SUBJECT_KEY_IDENTIFIER => {
                let value: SubjectKeyIdentifier = decode(oid, bytes)?;
                out.subject_key_identifier = Some(Ext {
                    critical,
                    value: value.0.as_bytes().to_vec(),
                });
            }
            oids::ID_PE_AUTHORITY_INFO_ACCESS => {
                let _: AuthorityInfoAccessSyntax = decode(oid, bytes)?;
                out.authority_info_access_critical = Some(critical);
            }
            oids::ID_CE_POLICY_CONSTRAINTS => {
                let _: PolicyConstraints = decode(oid, bytes)?;
                out.policy_constraints_critical = Some(critical);
            }
            // Understood well enough to be safe to accept, even when critical: the validator
            // does not restrict paths by policy (no initial policy set), so these can only
            // narrow what an application that does would accept.
            oids::ID_CE_CERTIFICATE_POLICIES => {
                let _: CertificatePolicies = decode(oid, bytes)?;
            }
            oids::ID_CE_POLICY_MAPPINGS => {
                let _: PolicyMappings = decode(oid, bytes)?;
            }
            oids::ID_CE_INHIBIT_ANY_POLICY => {
                let _: InhibitAnyPolicy = decode(oid, bytes)?;
            }
            oids::ID_CE_CRL_DISTRIBUTION_POINTS => {
                let value: CrlDistributionPoints = decode(oid, bytes)?;
                // CRLDistributionPoints ::= SEQUENCE SIZE (1..MAX) OF DistributionPoint
                if value.0.is_empty() {
                    return Err(CertificateError::MalformedExtension(oid));
                }
                // RFC 5280 §4.2.1.13 says SHOULD be non-critical; a critical one is processed
                // all the same (it decides which CRLs speak for the certificate).
                out.crl_distribution_points = Some(Ext {
                    critical,
                    value: value.0,
                });
            }
            oids::ID_PE_SUBJECT_INFO_ACCESS => {
                let _: SubjectInfoAccessSyntax = decode(oid, bytes)?;
                if critical {
                    out.unknown_critical.push(oid);
                }
            }
            _ => {
                if critical {
                    out.unknown_critical.push(oid);
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_rules() {
        assert!(check_serial(&[1]).is_ok());
        assert!(check_serial(&[0, 0x80]).is_ok());
        assert!(check_serial(&[0]).is_err());
        assert!(check_serial(&[0x80]).is_err());
        assert!(check_serial(&[0x7f; 20]).is_ok());
        assert!(check_serial(&[0x7f; 21]).is_err());
        let mut twenty_one = vec![0u8];
        twenty_one.extend_from_slice(&[0xff; 20]);
        assert!(check_serial(&twenty_one).is_ok());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_certificate(&[]).is_err());
        assert!(parse_certificate(&[0x30, 0x03, 0x02, 0x01, 0x01]).is_err());
        assert_eq!(
            parse_certificate(&vec![0u8; MAX_CERTIFICATE_BYTES + 1]).err(),
            Some(CertificateError::TooLarge)
        );
    }
}
