//! Certificate revocation lists for path validation (RFC 5280 §5, §6.3), and the
//! [`RevocationSource`] extension point through which OCSP can be plugged in.
//!
//! ```text
//! CertificateList  ::=  SEQUENCE  {
//!      tbsCertList          TBSCertList,
//!      signatureAlgorithm   AlgorithmIdentifier,
//!      signatureValue       BIT STRING  }
//! TBSCertList  ::=  SEQUENCE  {
//!      version                 Version OPTIONAL, -- if present, MUST be v2
//!      signature               AlgorithmIdentifier,
//!      issuer                  Name,
//!      thisUpdate              Time,
//!      nextUpdate              Time OPTIONAL,
//!      revokedCertificates     SEQUENCE OF SEQUENCE  { … } OPTIONAL,
//!      crlExtensions           [0]  EXPLICIT Extensions OPTIONAL }
//! ```
//!
//! Policy (strict, as rustls-webpki): only complete, direct v2 CRLs are used. Parsing refuses a
//! CRL without `nextUpdate`, without extensions, without a CRL number (or with a critical,
//! negative or over-long one), a delta CRL, an unknown critical CRL or entry extension, an
//! unknown reason code, an indirect-CRL entry (`certificateIssuer`) and inner/outer signature
//! algorithm mismatches. At use, a CRL speaks for a certificate only if it is issued by the
//! certificate's issuer and its scope (issuing distribution point) covers the certificate
//! ([`ParsedCrl::covers`], RFC 5280 §6.3.3 (b)); such a CRL must then be signed by the issuer,
//! whose key usage (if present) must assert `cRLSign`, with `thisUpdate <= now <= nextUpdate`.

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5280 as oids;
use der::asn1::{AnyRef, BitStringRef};
use der::{Decode, Encode, Sequence};
use spki::AlgorithmIdentifierRef;
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::crl::dp::IssuingDistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, CrlNumber, CrlReason, KeyUsages};
use x509_cert::name::Name;

use super::cert::ParsedCertificate;
use super::limits::MAX_CRL_BYTES;
use crate::ocsp::CheckError;
use crate::verify::{PublicKey, SignatureAlgorithm, SignatureError};

/// Longest CRL number, in content octets (RFC 5280 §5.2.3: at most 20 octets).
const MAX_CRL_NUMBER_LEN: usize = 20;

/// Why a CRL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CrlError {
    /// Larger than [`MAX_CRL_BYTES`].
    #[error("CRL too large")]
    TooLarge,
    /// Not DER, or not a CRL (includes bad times, bad booleans, unknown tags).
    #[error("malformed CRL: {0}")]
    Malformed(der::Error),
    /// Only v2 CRLs are accepted.
    #[error("unsupported CRL version")]
    UnsupportedVersion,
    /// `signatureAlgorithm` differs from `tbsCertList.signature`.
    #[error("signature algorithm mismatch between CRL and TBS")]
    SignatureAlgorithmMismatch,
    /// `nextUpdate` is required.
    #[error("CRL has no nextUpdate")]
    MissingNextUpdate,
    /// A v2 CRL without extensions (so without the mandatory CRL number).
    #[error("CRL has no extensions")]
    MissingExtensions,
    /// RFC 5280 §5.2.3: conforming CRLs carry a CRL number.
    #[error("CRL has no CRL number")]
    MissingCrlNumber,
    /// The CRL number is critical, negative or longer than 20 octets.
    #[error("invalid CRL number")]
    InvalidCrlNumber,
    /// Delta CRLs are not supported.
    #[error("delta CRLs are not supported")]
    DeltaCrl,
    /// An extension appears twice.
    #[error("duplicate CRL extension {0}")]
    DuplicateExtension(ObjectIdentifier),
    /// A known extension does not decode.
    #[error("malformed CRL extension {0}")]
    MalformedExtension(ObjectIdentifier),
    /// A critical extension we do not process.
    #[error("unknown critical CRL extension {0}")]
    UnknownCriticalExtension(ObjectIdentifier),
    /// An entry names another issuer (indirect CRL).
    #[error("indirect CRLs are not supported")]
    IndirectCrl,
    /// An issuing distribution point scope we do not support (reasons, attribute certificates).
    #[error("unsupported CRL scope")]
    UnsupportedScope,
    /// The CRL signature does not verify with the issuer's key.
    #[error("bad CRL signature: {0}")]
    BadSignature(SignatureError),
    /// The issuer's key usage does not assert cRLSign.
    #[error("CRL issuer lacks cRLSign")]
    IssuerNotCrlSigner,
    /// `now` is before `thisUpdate`.
    #[error("CRL not yet valid")]
    NotYetValid,
    /// `now` is after `nextUpdate`.
    #[error("CRL expired")]
    Expired,
}

/// A revoked certificate entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedEntry {
    /// The serial number's content octets, exactly as encoded.
    pub serial: Vec<u8>,
    /// `revocationDate`, seconds since the Unix epoch.
    pub revoked_at: u64,
    /// The reason code, if present.
    pub reason: Option<CrlReason>,
    /// The invalidity date, seconds since the Unix epoch, if present.
    pub invalidity_date: Option<u64>,
}

#[derive(Sequence)]
struct CrlParts<'a> {
    tbs_cert_list: AnyRef<'a>,
    signature_algorithm: AlgorithmIdentifierRef<'a>,
    signature: BitStringRef<'a>,
}

/// A parsed and structurally checked CRL. Its signature is checked when it is used, against the
/// issuer found in the path.
#[derive(Debug, Clone)]
pub struct ParsedCrl {
    tbs_der: Vec<u8>,
    signature: Vec<u8>,
    signature_algorithm: Result<SignatureAlgorithm, SignatureError>,
    issuer: Name,
    this_update: u64,
    next_update: u64,
    crl_number: Vec<u8>,
    authority_key_id: Option<Vec<u8>>,
    idp: Option<IssuingDistributionPoint>,
    entries: Vec<RevokedEntry>,
}

/// Parses a DER CRL (a fuzzing entry point: never panics).
pub fn parse_crl(der: &[u8]) -> Result<ParsedCrl, CrlError> {
    ParsedCrl::from_der(der)
}

impl ParsedCrl {
    /// Parses and checks a DER CRL.
    pub fn from_der(der: &[u8]) -> Result<Self, CrlError> {
        if der.len() > MAX_CRL_BYTES {
            return Err(CrlError::TooLarge);
        }
        let parts = CrlParts::from_der(der).map_err(CrlError::Malformed)?;
        let crl = CertificateList::from_der(der).map_err(CrlError::Malformed)?;
        let tbs = &crl.tbs_cert_list;
        if tbs.version != x509_cert::Version::V2 {
            return Err(CrlError::UnsupportedVersion);
        }
        if tbs.signature != crl.signature_algorithm {
            return Err(CrlError::SignatureAlgorithmMismatch);
        }
        let next_update = tbs.next_update.ok_or(CrlError::MissingNextUpdate)?;
        let exts = tbs
            .crl_extensions
            .as_ref()
            .filter(|e| !e.is_empty())
            .ok_or(CrlError::MissingExtensions)?;

        let mut seen = Vec::new();
        let mut crl_number = None;
        let mut authority_key_id = None;
        let mut idp = None;
        for ext in exts {
            let oid = ext.extn_id;
            if seen.contains(&oid) {
                return Err(CrlError::DuplicateExtension(oid));
            }
            seen.push(oid);
            let bytes = ext.extn_value.as_bytes();
            match oid {
                oids::ID_CE_CRL_NUMBER => {
                    if ext.critical {
                        return Err(CrlError::InvalidCrlNumber);
                    }
                    let number =
                        CrlNumber::from_der(bytes).map_err(|_| CrlError::InvalidCrlNumber)?;
                    let octets = number.0.as_bytes();
                    if octets.len() > MAX_CRL_NUMBER_LEN {
                        return Err(CrlError::InvalidCrlNumber);
                    }
                    crl_number = Some(octets.to_vec());
                }
                oids::ID_CE_DELTA_CRL_INDICATOR => return Err(CrlError::DeltaCrl),
                oids::ID_CE_AUTHORITY_KEY_IDENTIFIER => {
                    let aki = AuthorityKeyIdentifier::from_der(bytes)
                        .map_err(|_| CrlError::MalformedExtension(oid))?;
                    authority_key_id = aki.key_identifier.map(|k| k.as_bytes().to_vec());
                }
                oids::ID_CE_ISSUING_DISTRIBUTION_POINT => {
                    idp = Some(
                        IssuingDistributionPoint::from_der(bytes)
                            .map_err(|_| CrlError::MalformedExtension(oid))?,
                    );
                }
                _ if ext.critical => return Err(CrlError::UnknownCriticalExtension(oid)),
                _ => {}
            }
        }
        let crl_number = crl_number.ok_or(CrlError::MissingCrlNumber)?;

        let mut entries = Vec::new();
        for revoked in tbs.revoked_certificates.as_deref().unwrap_or(&[]) {
            entries.push(parse_entry(revoked)?);
        }

        let signature_algorithm = SignatureAlgorithm::from_identifier(&parts.signature_algorithm);
        let signature = parts
            .signature
            .as_bytes()
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        let tbs_der = parts.tbs_cert_list.to_der().map_err(CrlError::Malformed)?;
        Ok(Self {
            tbs_der,
            signature,
            signature_algorithm,
            issuer: tbs.issuer.clone(),
            this_update: tbs.this_update.to_unix_duration().as_secs(),
            next_update: next_update.to_unix_duration().as_secs(),
            crl_number,
            authority_key_id,
            idp,
            entries,
        })
    }

    /// The CRL issuer's name.
    pub fn issuer(&self) -> &Name {
        &self.issuer
    }

    /// The CRL number's content octets.
    pub fn crl_number(&self) -> &[u8] {
        &self.crl_number
    }

    /// `thisUpdate` and `nextUpdate`, seconds since the Unix epoch.
    pub fn update_times(&self) -> (u64, u64) {
        (self.this_update, self.next_update)
    }

    /// The issuing distribution point, if any.
    pub fn issuing_distribution_point(&self) -> Option<&IssuingDistributionPoint> {
        self.idp.as_ref()
    }

    /// The revoked entries.
    pub fn entries(&self) -> &[RevokedEntry] {
        &self.entries
    }

    /// Finds the entry for a serial number (raw content octets, compared exactly).
    pub fn find(&self, serial: &[u8]) -> Option<&RevokedEntry> {
        self.entries.iter().find(|e| e.serial == serial)
    }

    /// Verifies the CRL's signature with `key`.
    pub fn verify_signature(&self, key: &PublicKey) -> Result<(), CrlError> {
        let algorithm = self
            .signature_algorithm
            .clone()
            .map_err(CrlError::BadSignature)?;
        key.verify(algorithm, &self.tbs_der, &self.signature)
            .map_err(CrlError::BadSignature)
    }

    /// Whether this CRL speaks for certificates issued by `issuer` (same name; when both key
    /// identifiers are present, the same key identifier).
    pub fn is_issued_by(&self, issuer: &ParsedCertificate) -> bool {
        if &self.issuer != issuer.subject() {
            return false;
        }
        match (&self.authority_key_id, issuer.subject_key_id()) {
            (Some(aki), Some(ski)) => aki.as_slice() == ski,
            _ => true,
        }
    }

    /// Whether this CRL's scope covers `cert` (RFC 5280 §6.3.3 (b)), for a CRL already known to
    /// be issued by `cert`'s issuer:
    ///
    /// - a CRL without an issuing distribution point is complete: it covers every certificate
    ///   of its issuer, whatever the certificate's cRLDistributionPoints say;
    /// - `onlyContainsUserCerts` / `onlyContainsCACerts` must agree with the certificate's cA;
    /// - when the issuing distribution point names a distribution point, the CRL is one
    ///   partition of the issuer's CRLs, and covers `cert` only if one of the certificate's
    ///   distribution points (without `cRLIssuer`) has a name in common with it (§6.3.3
    ///   (b)(ii)(1)); a certificate without cRLDistributionPoints is in no partition.
    ///
    /// ```text
    /// IssuingDistributionPoint ::= SEQUENCE {
    ///      distributionPoint          [0] DistributionPointName OPTIONAL,
    ///      onlyContainsUserCerts      [1] BOOLEAN DEFAULT FALSE,
    ///      onlyContainsCACerts        [2] BOOLEAN DEFAULT FALSE,
    ///      onlySomeReasons            [3] ReasonFlags OPTIONAL,
    ///      indirectCRL                [4] BOOLEAN DEFAULT FALSE,
    ///      onlyContainsAttributeCerts [5] BOOLEAN DEFAULT FALSE }
    /// DistributionPointName ::= CHOICE {
    ///      fullName                   [0] GeneralNames,
    ///      nameRelativeToCRLIssuer    [1] RelativeDistinguishedName }
    /// ```
    ///
    /// Indirect CRLs, partial-reason CRLs and attribute-certificate CRLs are refused with
    /// [`CrlError::UnsupportedScope`]; a distribution point with `cRLIssuer` (an indirect CRL's)
    /// never matches.
    pub fn covers(&self, cert: &ParsedCertificate) -> Result<bool, CrlError> {
        let Some(idp) = &self.idp else {
            return Ok(true);
        };
        if idp.indirect_crl || idp.only_contains_attribute_certs || idp.only_some_reasons.is_some()
        {
            return Err(CrlError::UnsupportedScope);
        }
        if idp.only_contains_user_certs && cert.is_ca() {
            return Ok(false);
        }
        if idp.only_contains_ca_certs && !cert.is_ca() {
            return Ok(false);
        }
        let Some(crl_dp) = &idp.distribution_point else {
            return Ok(true);
        };
        let Some(cert_dps) = cert.crl_distribution_points() else {
            return Ok(false);
        };
        Ok(cert_dps
            .iter()
            .filter(|dp| dp.crl_issuer.is_none())
            .filter_map(|dp| dp.distribution_point.as_ref())
            .any(|cert_dp| dp_names_match(crl_dp, cert_dp, &self.issuer)))
    }
}

/// Whether two distribution point names share a name, `nameRelativeToCRLIssuer` standing for
/// the directory name `crl_issuer` followed by that RDN (RFC 5280 §4.2.1.13).
fn dp_names_match(a: &DistributionPointName, b: &DistributionPointName, crl_issuer: &Name) -> bool {
    use DistributionPointName::{FullName, NameRelativeToCRLIssuer as Relative};
    match (a, b) {
        (FullName(x), FullName(y)) => x.iter().any(|n| y.contains(n)),
        (Relative(x), Relative(y)) => x == y,
        (FullName(full), Relative(rdn)) | (Relative(rdn), FullName(full)) => {
            full.iter().any(|name| match name {
                GeneralName::DirectoryName(dn) => {
                    dn.len() == crl_issuer.len() + 1
                        && dn
                            .iter_rdn()
                            .zip(crl_issuer.iter_rdn().chain(std::iter::once(rdn)))
                            .all(|(have, want)| have == want)
                }
                _ => false,
            })
        }
    }
}

fn parse_entry(revoked: &x509_cert::crl::RevokedCert) -> Result<RevokedEntry, CrlError> {
    let mut reason = None;
    let mut invalidity_date = None;
    let mut seen = Vec::new();
    for ext in revoked.crl_entry_extensions.as_deref().unwrap_or(&[]) {
        let oid = ext.extn_id;
        if seen.contains(&oid) {
            return Err(CrlError::DuplicateExtension(oid));
        }
        seen.push(oid);
        let bytes = ext.extn_value.as_bytes();
        match oid {
            oids::ID_CE_CRL_REASONS => {
                reason = Some(
                    CrlReason::from_der(bytes).map_err(|_| CrlError::MalformedExtension(oid))?,
                );
            }
            oids::ID_CE_INVALIDITY_DATE => {
                // RFC 5280 §5.3.2 says GeneralizedTime; UTCTime is seen in the wild (and in
                // webpki's vectors), so either time form is read.
                let date = x509_cert::time::Time::from_der(bytes)
                    .map_err(|_| CrlError::MalformedExtension(oid))?;
                invalidity_date = Some(date.to_unix_duration().as_secs());
            }
            oids::ID_CE_CERTIFICATE_ISSUER => return Err(CrlError::IndirectCrl),
            _ if ext.critical => return Err(CrlError::UnknownCriticalExtension(oid)),
            _ => {}
        }
    }
    Ok(RevokedEntry {
        serial: revoked.serial_number.as_bytes().to_vec(),
        revoked_at: revoked.revocation_date.to_unix_duration().as_secs(),
        reason,
        invalidity_date,
    })
}

/// What a revocation source knows about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevocationStatus {
    /// Known not revoked.
    Good,
    /// Revoked.
    Revoked {
        /// The reason code, if given.
        reason: Option<CrlReason>,
        /// When, seconds since the Unix epoch.
        revoked_at: u64,
    },
    /// This source has nothing to say about the certificate.
    Unknown,
}

/// Why a revocation source could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RevocationError {
    /// A CRL for the issuer is unusable.
    #[error(transparent)]
    Crl(#[from] CrlError),
    /// A stapled OCSP response about the certificate is unusable: stale, not yet valid,
    /// signed by a responder the issuer did not authorize, badly signed, or malformed.
    #[error("OCSP: {0}")]
    Ocsp(#[from] CheckError),
    /// Another source failed; the message is for logs.
    #[error("revocation source failed: {0}")]
    Source(String),
}

/// Something that can tell whether a certificate is revoked: a set of CRLs ([`CrlSet`]),
/// stapled OCSP responses ([`super::StapledOcsp`]), an OCSP response cache, … The validator
/// asks every source once for every certificate in scope: a `Revoked` answer from any source
/// refuses the path; otherwise a `Good` from any source settles the certificate; an error is
/// reported only when no source gave either (so a stale stapled response falls back to a CRL).
pub trait RevocationSource {
    /// Status of `cert`, issued by `issuer` (whose key is `issuer_key`), at `now` (seconds since
    /// the Unix epoch).
    fn status(
        &self,
        cert: &ParsedCertificate,
        issuer: &ParsedCertificate,
        issuer_key: &PublicKey,
        now: u64,
    ) -> Result<RevocationStatus, RevocationError>;
}

/// A set of CRLs, consulted by issuer.
#[derive(Debug, Clone, Default)]
pub struct CrlSet {
    crls: Vec<ParsedCrl>,
}

impl CrlSet {
    /// A set of parsed CRLs.
    pub fn new(crls: Vec<ParsedCrl>) -> Self {
        Self { crls }
    }

    /// The CRLs.
    pub fn crls(&self) -> &[ParsedCrl] {
        &self.crls
    }
}

impl RevocationSource for CrlSet {
    fn status(
        &self,
        cert: &ParsedCertificate,
        issuer: &ParsedCertificate,
        issuer_key: &PublicKey,
        now: u64,
    ) -> Result<RevocationStatus, RevocationError> {
        let mut status = RevocationStatus::Unknown;
        for crl in self.crls.iter().take(super::limits::MAX_CRLS) {
            // RFC 5280 §6.3.3 (b): only a CRL of this issuer whose scope covers the
            // certificate (distribution point, user/CA flags) speaks for it; the others are
            // not even verified.
            if !crl.is_issued_by(issuer) || !crl.covers(cert)? {
                continue;
            }
            // RFC 5280 §6.3.3 (f): the CRL issuer must be allowed to sign CRLs.
            if !issuer.allows_key_usage(KeyUsages::CRLSign) {
                return Err(CrlError::IssuerNotCrlSigner.into());
            }
            crl.verify_signature(issuer_key)?;
            if now < crl.this_update {
                return Err(CrlError::NotYetValid.into());
            }
            if now > crl.next_update {
                return Err(CrlError::Expired.into());
            }
            if let Some(entry) = crl.find(cert.serial()) {
                return Ok(RevocationStatus::Revoked {
                    reason: entry.reason,
                    revoked_at: entry.revoked_at,
                });
            }
            status = RevocationStatus::Good;
        }
        Ok(status)
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use der::asn1::Ia5String;
    use x509_cert::name::RelativeDistinguishedName;

    use super::*;

    fn uri(text: &str) -> GeneralName {
        GeneralName::UniformResourceIdentifier(Ia5String::new(text).expect("ia5"))
    }

    fn full(names: Vec<GeneralName>) -> DistributionPointName {
        DistributionPointName::FullName(names)
    }

    fn rdn(text: &str) -> RelativeDistinguishedName {
        Name::from_str(text)
            .expect("name")
            .iter_rdn()
            .next()
            .expect("one RDN")
            .clone()
    }

    #[test]
    fn full_names_match_when_they_share_a_name() {
        let issuer = Name::from_str("CN=CA,O=Example").expect("name");
        let a = full(vec![
            uri("http://a.example/1.crl"),
            uri("ldap://a.example/1"),
        ]);
        let b = full(vec![uri("ldap://a.example/1")]);
        let c = full(vec![uri("http://a.example/2.crl")]);
        assert!(dp_names_match(&a, &b, &issuer));
        assert!(dp_names_match(&b, &a, &issuer));
        assert!(!dp_names_match(&a, &c, &issuer));
    }

    #[test]
    fn relative_names_are_the_crl_issuer_plus_one_rdn() {
        // RFC 4514 strings list the last RDN first: the DN below is O=Example, CN=CA, OU=dp1.
        let issuer = Name::from_str("CN=CA,O=Example").expect("name");
        let relative = DistributionPointName::NameRelativeToCRLIssuer(rdn("OU=dp1"));
        let same = DistributionPointName::NameRelativeToCRLIssuer(rdn("OU=dp1"));
        let other = DistributionPointName::NameRelativeToCRLIssuer(rdn("OU=dp2"));
        assert!(dp_names_match(&relative, &same, &issuer));
        assert!(!dp_names_match(&relative, &other, &issuer));
        let as_full = full(vec![GeneralName::DirectoryName(
            Name::from_str("OU=dp1,CN=CA,O=Example").expect("name"),
        )]);
        assert!(dp_names_match(&relative, &as_full, &issuer));
        assert!(dp_names_match(&as_full, &relative, &issuer));
        let wrong_base = full(vec![GeneralName::DirectoryName(
            Name::from_str("OU=dp1,CN=Other,O=Example").expect("name"),
        )]);
        assert!(!dp_names_match(&relative, &wrong_base, &issuer));
        let just_the_issuer = full(vec![GeneralName::DirectoryName(issuer.clone())]);
        assert!(!dp_names_match(&relative, &just_the_issuer, &issuer));
    }
}
