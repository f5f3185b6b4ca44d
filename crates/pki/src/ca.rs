//! The issuing CA: a self-signed root and an online intermediate, and the certificate encoder.
//!
//! ```text
//! Certificate  ::=  SEQUENCE  {
//!      tbsCertificate       TBSCertificate,
//!      signatureAlgorithm   AlgorithmIdentifier,
//!      signatureValue       BIT STRING  }
//!
//! TBSCertificate  ::=  SEQUENCE  {
//!      version         [0]  EXPLICIT Version DEFAULT v1,    -- always v3 here
//!      serialNumber         CertificateSerialNumber,        -- 126 random bits
//!      signature            AlgorithmIdentifier,
//!      issuer               Name,
//!      validity             Validity,
//!      subject              Name,
//!      subjectPublicKeyInfo SubjectPublicKeyInfo,
//!      extensions      [3]  EXPLICIT Extensions OPTIONAL  }
//! ```
//!
//! An [`Issuer`] precomputes everything that is constant for its certificates when it is
//! created: the issuer `Name` DER, the signature `AlgorithmIdentifier` DER, the
//! authorityKeyIdentifier, and per certificate kind the DER of basicConstraints, keyUsage,
//! extKeyUsage, cRLDistributionPoints and authorityInfoAccess. Issuing a certificate then
//! encodes only the serial, validity, subject, key, subjectKeyIdentifier and subjectAltName
//! around those bytes, each piece with the typed `der` encoders, and signs. Policy (what goes
//! into each kind of certificate) lives in [`crate::profile`]; the only way in is an
//! [`ApprovedRequest`] from [`crate::ra`].
//!
//! ```
//! use std::time::SystemTime;
//! use confianza_pki::ca::{Issuer, IssuerRole, IssuerUrls};
//! use confianza_pki::crl::{build_crl, CrlParams};
//! use confianza_pki::csr;
//! use confianza_pki::ra::ApprovedRequest;
//! use confianza_pki::signer::{CaAlgorithm, CaKey};
//! use rand::SeedableRng;
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(1); // any rand_core 0.10 CryptoRng
//! let now = SystemTime::now();
//! let urls = |n: &str| IssuerUrls {
//!     crl: format!("http://pki.example.org/{n}.crl"),
//!     ocsp: "http://pki.example.org/ocsp".into(),
//!     ca_issuers: format!("http://pki.example.org/{n}.crt"),
//! };
//! // Root (self-signed), then an online intermediate signed by it.
//! let root = Issuer::new_root(
//!     CaKey::generate(CaAlgorithm::Ed25519, &mut rng)?,
//!     "Example Root CA",
//!     Some("Example Org"),
//!     now,
//!     None,
//!     &mut rng,
//! )?
//! .with_urls(urls("root"))?;
//! let int_key = CaKey::generate(CaAlgorithm::Ed25519, &mut rng)?;
//! let template = csr::intermediate_template(int_key.public_key_info_der(), "Example Issuing CA")?;
//! let int_cert = root.issue(ApprovedRequest::by_ca_operator(1, template, "admin", now), now, &mut rng)?;
//! let intermediate =
//!     Issuer::from_certificate(int_key, &int_cert.der, IssuerRole::Intermediate, Some(urls("int")))?;
//!
//! // The server's Noise static key certificate (X25519, bound to its DNS name).
//! let noise_public = [9u8; 32];
//! let template = csr::noise_server_template(&noise_public, "chat.example.org")?;
//! let cert = intermediate.issue(ApprovedRequest::by_ca_operator(2, template, "admin", now), now, &mut rng)?;
//! assert!(cert.to_pem().starts_with("-----BEGIN CERTIFICATE-----"));
//!
//! // And a CRL (here empty) signed by the intermediate.
//! let crl = build_crl(&intermediate, &CrlParams::new(1, now), &[])?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::{Duration, SystemTime};

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5280::{
    ID_AD_CA_ISSUERS, ID_AD_OCSP, ID_CE_AUTHORITY_KEY_IDENTIFIER, ID_CE_BASIC_CONSTRAINTS,
    ID_CE_CRL_DISTRIBUTION_POINTS, ID_CE_EXT_KEY_USAGE, ID_CE_KEY_USAGE,
    ID_PE_AUTHORITY_INFO_ACCESS,
};
use der::asn1::{BitStringRef, Ia5StringRef, OctetStringRef};
use der::{Decode, Encode, Header, Length, Sequence, Tag};
use rand_core::CryptoRng;
use sha1::{Digest, Sha1};
use spki::SubjectPublicKeyInfoRef;
use x509_cert::Certificate;
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, BasicConstraints, ExtendedKeyUsage, KeyUsage,
    KeyUsages,
    crl::dp::DistributionPoint,
    name::{DistributionPointName, GeneralName},
};
use x509_cert::time::{Time, Validity};

use crate::profile::{
    CertificateKind, CertificateTemplate, DEFAULT_ROOT_VALIDITY_DAYS,
    ID_CONFIANZA_PREVIOUS_CERTIFICATE, ID_PKIX_OCSP_NOCHECK, SubjectName, encode_simple_name,
};
use crate::ra::{Approval, ApprovedRequest};
use crate::serial::Serial;
use crate::signer::{CaKey, KeyError};

const ID_CE_SUBJECT_KEY_IDENTIFIER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");
const ID_CE_SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");

/// One day.
const DAY: Duration = Duration::from_secs(86_400);

/// Where relying parties find the issuer's CRL, OCSP responder and certificate. Every leaf
/// carries them (cRLDistributionPoints and authorityInfoAccess).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerUrls {
    /// HTTP URL of the full CRL (cRLDistributionPoints, and the CRL's issuingDistributionPoint).
    pub crl: String,
    /// HTTP URL of the OCSP responder (authorityInfoAccess id-ad-ocsp).
    pub ocsp: String,
    /// HTTP URL of the issuer's certificate (authorityInfoAccess id-ad-caIssuers).
    pub ca_issuers: String,
}

/// Errors from creating an issuer or issuing a certificate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The CA key could not sign.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// DER encoding failed (a name or URL is not encodable).
    #[error("encoding failed: {0}")]
    Encoding(#[from] der::Error),
    /// The CA certificate does not parse, is not a CA, or does not match the key.
    #[error("the CA certificate does not fit: {0}")]
    BadCaCertificate(&'static str),
    /// The issuer has no repository URLs, which every leaf must carry.
    #[error("the issuer has no CRL/OCSP URLs configured")]
    NoUrls,
    /// Only a root issues intermediates and only an intermediate issues leaves.
    #[error("a {issuer} CA does not issue {kind:?} certificates")]
    WrongIssuer {
        /// "root" or "intermediate".
        issuer: &'static str,
        /// What was asked for.
        kind: CertificateKind,
    },
    /// The issuer's own certificate has expired or is not yet valid.
    #[error("the issuing CA certificate is not valid at this time")]
    IssuerNotValid,
}

/// A certificate the CA issued, with what the RA and the repository need to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedCertificate {
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// Its serial number.
    pub serial: Serial,
    /// Its kind.
    pub kind: CertificateKind,
    /// Subject common name (`None`: empty subject, the SAN names the subject).
    pub common_name: Option<String>,
    /// subjectAltName entries.
    pub names: Vec<SubjectName>,
    /// notBefore.
    pub not_before: SystemTime,
    /// notAfter.
    pub not_after: SystemTime,
    /// The certificate it renews or re-keys, if any.
    pub previous: Option<Serial>,
    /// Who approved it (RA officer, automatic policy or CA operator) and when.
    pub approval: Approval,
}

impl IssuedCertificate {
    /// PEM encoding.
    pub fn to_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.der)
    }

    /// Parses the certificate with x509-cert.
    pub fn certificate(&self) -> Result<Certificate, der::Error> {
        Certificate::from_der(&self.der)
    }
}

/// PEM-encodes `der` with `label` (RFC 7468).
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).unwrap_or_default()
}

/// Whether an issuer is the self-signed root or an intermediate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssuerRole {
    /// Self-signed; issues intermediates (and its own CRL).
    Root,
    /// Signed by the root; issues leaves.
    Intermediate,
}

/// A CA key with its certificate and the precomputed parts of every certificate it issues.
pub struct Issuer {
    key: CaKey,
    role: IssuerRole,
    cert_der: Vec<u8>,
    name_der: Vec<u8>,
    key_id: [u8; 20],
    sig_alg_der: Vec<u8>,
    not_before: SystemTime,
    not_after: SystemTime,
    urls: Option<IssuerUrls>,
    /// Per [`CertificateKind`] (index = position in `CertificateKind::ALL`): DER of the
    /// extensions that are the same in every certificate of that kind from this issuer.
    constant_extensions: Vec<Vec<u8>>,
}

fn kind_index(kind: CertificateKind) -> usize {
    CertificateKind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or_default()
}

/// SHA-1 of the subjectPublicKey BIT STRING contents (RFC 5280 4.2.1.2, method 1).
pub fn key_identifier(spki_der: &[u8]) -> Result<[u8; 20], der::Error> {
    let spki = SubjectPublicKeyInfoRef::from_der(spki_der)?;
    Ok(Sha1::digest(spki.subject_public_key.raw_bytes()).into())
}

pub(crate) fn write_header(out: &mut Vec<u8>, tag: Tag, len: usize) -> der::Result<()> {
    Header::new(tag, Length::try_from(len)?).encode_to_vec(out)?;
    Ok(())
}

pub(crate) fn header_len(len: usize) -> der::Result<usize> {
    let l = Length::try_from(len)?;
    usize::try_from(Header::new(Tag::Sequence, l).encoded_len()?)
}

/// `Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }`
/// with a borrowed value, so no copy of the value is made.
#[derive(Sequence)]
struct ExtensionRef<'a> {
    extn_id: ObjectIdentifier,
    #[asn1(default = "Default::default")]
    critical: bool,
    extn_value: &'a OctetStringRef,
}

pub(crate) fn push_extension(
    out: &mut Vec<u8>,
    oid: ObjectIdentifier,
    critical: bool,
    value: &[u8],
) -> der::Result<()> {
    ExtensionRef {
        extn_id: oid,
        critical,
        extn_value: OctetStringRef::new(value)?,
    }
    .encode_to_vec(out)?;
    Ok(())
}

fn push_encoded_extension(
    out: &mut Vec<u8>,
    oid: ObjectIdentifier,
    critical: bool,
    value: &impl Encode,
) -> der::Result<()> {
    push_extension(out, oid, critical, &value.to_der()?)
}

fn aki_value(key_id: &[u8; 20]) -> der::Result<Vec<u8>> {
    // AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING OPTIONAL, .. }
    let aki = x509_cert::ext::pkix::AuthorityKeyIdentifier {
        key_identifier: Some(der::asn1::OctetString::new(key_id.as_slice())?),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    };
    aki.to_der()
}

fn uri(s: &str) -> der::Result<GeneralName> {
    Ok(GeneralName::UniformResourceIdentifier(
        Ia5StringRef::new(s)?.into(),
    ))
}

pub(crate) fn crl_distribution_point_name(url: &str) -> der::Result<DistributionPointName> {
    Ok(DistributionPointName::FullName(vec![uri(url)?]))
}

fn revocation_extensions(out: &mut Vec<u8>, urls: &IssuerUrls) -> der::Result<()> {
    let cdp = x509_cert::ext::pkix::CrlDistributionPoints(vec![DistributionPoint {
        distribution_point: Some(crl_distribution_point_name(&urls.crl)?),
        reasons: None,
        crl_issuer: None,
    }]);
    push_encoded_extension(out, ID_CE_CRL_DISTRIBUTION_POINTS, false, &cdp)?;
    let aia = AuthorityInfoAccessSyntax(vec![
        AccessDescription {
            access_method: ID_AD_OCSP,
            access_location: uri(&urls.ocsp)?,
        },
        AccessDescription {
            access_method: ID_AD_CA_ISSUERS,
            access_location: uri(&urls.ca_issuers)?,
        },
    ]);
    push_encoded_extension(out, ID_PE_AUTHORITY_INFO_ACCESS, false, &aia)
}

fn constant_extensions_for(
    kind: CertificateKind,
    key_id: &[u8; 20],
    urls: Option<&IssuerUrls>,
) -> der::Result<Vec<u8>> {
    let profile = kind.profile();
    let mut out = Vec::with_capacity(256);
    push_extension(
        &mut out,
        ID_CE_AUTHORITY_KEY_IDENTIFIER,
        false,
        &aki_value(key_id)?,
    )?;
    let bc = BasicConstraints {
        ca: profile.ca.is_some(),
        path_len_constraint: profile.ca.flatten(),
    };
    push_encoded_extension(&mut out, ID_CE_BASIC_CONSTRAINTS, true, &bc)?;
    push_encoded_extension(
        &mut out,
        ID_CE_KEY_USAGE,
        true,
        &KeyUsage(profile.key_usage),
    )?;
    if !profile.extended_key_usage.is_empty() {
        let eku = ExtendedKeyUsage(profile.extended_key_usage.to_vec());
        push_encoded_extension(&mut out, ID_CE_EXT_KEY_USAGE, false, &eku)?;
    }
    if profile.ocsp_nocheck {
        // id-pkix-ocsp-nocheck: extnValue is an encoded NULL.
        push_extension(&mut out, ID_PKIX_OCSP_NOCHECK, false, &[0x05, 0x00])?;
    }
    if let Some(urls) = urls {
        revocation_extensions(&mut out, urls)?;
    }
    Ok(out)
}

fn x509_time(t: SystemTime) -> der::Result<Time> {
    Time::try_from(t)
}

/// Rounds down to whole seconds (X.509 times have no fractions), so the recorded times are
/// exactly the encoded ones.
fn whole_seconds(t: SystemTime) -> SystemTime {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    SystemTime::UNIX_EPOCH + Duration::from_secs(since.as_secs())
}

struct TbsParts<'a> {
    serial: Serial,
    subject_der: &'a [u8],
    spki_der: &'a [u8],
    not_before: SystemTime,
    not_after: SystemTime,
}

impl Issuer {
    /// Creates a self-signed root CA certificate for `key`:
    /// `CN=<common_name>[, O=<organisation>]`, basicConstraints `cA TRUE` (critical), keyUsage
    /// keyCertSign + cRLSign (critical), subject and authority key identifiers.
    pub fn new_root(
        key: CaKey,
        common_name: &str,
        organisation: Option<&str>,
        now: SystemTime,
        validity_days: Option<u32>,
        rng: &mut (impl CryptoRng + ?Sized),
    ) -> Result<Self, IssueError> {
        let name_der = encode_simple_name(common_name, organisation)?;
        let key_id = key_identifier(key.public_key_info_der())?;
        let not_before = whole_seconds(now);
        let not_after = not_before + DAY * validity_days.unwrap_or(DEFAULT_ROOT_VALIDITY_DAYS);
        let mut exts = Vec::with_capacity(128);
        push_extension(
            &mut exts,
            ID_CE_SUBJECT_KEY_IDENTIFIER,
            false,
            &OctetStringRef::new(&key_id)?.to_der()?,
        )?;
        push_extension(
            &mut exts,
            ID_CE_AUTHORITY_KEY_IDENTIFIER,
            false,
            &aki_value(&key_id)?,
        )?;
        let bc = BasicConstraints {
            ca: true,
            path_len_constraint: None,
        };
        push_encoded_extension(&mut exts, ID_CE_BASIC_CONSTRAINTS, true, &bc)?;
        let ku = KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign);
        push_encoded_extension(&mut exts, ID_CE_KEY_USAGE, true, &ku)?;
        let sig_alg_der = key.signature_algorithm().to_der()?;
        let spki_der = key.public_key_info_der().to_vec();
        let parts = TbsParts {
            serial: Serial::random(rng),
            subject_der: &name_der,
            spki_der: &spki_der,
            not_before,
            not_after,
        };
        let cert_der = sign_certificate(&key, &sig_alg_der, &name_der, &parts, &exts)?;
        Self::assemble(
            key,
            IssuerRole::Root,
            cert_der,
            name_der,
            key_id,
            not_before,
            not_after,
            None,
        )
    }

    /// Loads an issuer from its key and certificate (a re-imported offline root, or the online
    /// intermediate at start-up). The certificate must be a CA certificate for this key.
    pub fn from_certificate(
        key: CaKey,
        cert_der: &[u8],
        role: IssuerRole,
        urls: Option<IssuerUrls>,
    ) -> Result<Self, IssueError> {
        let cert = Certificate::from_der(cert_der)
            .map_err(|_| IssueError::BadCaCertificate("does not parse"))?;
        let tbs = cert.tbs_certificate();
        if tbs.subject_public_key_info().to_der()? != key.public_key_info_der() {
            return Err(IssueError::BadCaCertificate("key does not match"));
        }
        match tbs.get_extension::<BasicConstraints>() {
            Ok(Some((_, bc))) if bc.ca => {}
            _ => return Err(IssueError::BadCaCertificate("not a CA certificate")),
        }
        let key_id = key_identifier(key.public_key_info_der())?;
        let name_der = tbs.subject().to_der()?;
        let not_before = tbs.validity().not_before.to_system_time();
        let not_after = tbs.validity().not_after.to_system_time();
        Self::assemble(
            key,
            role,
            cert_der.to_vec(),
            name_der,
            key_id,
            not_before,
            not_after,
            urls,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        key: CaKey,
        role: IssuerRole,
        cert_der: Vec<u8>,
        name_der: Vec<u8>,
        key_id: [u8; 20],
        not_before: SystemTime,
        not_after: SystemTime,
        urls: Option<IssuerUrls>,
    ) -> Result<Self, IssueError> {
        let sig_alg_der = key.signature_algorithm().to_der()?;
        let constant_extensions = CertificateKind::ALL
            .iter()
            .map(|k| constant_extensions_for(*k, &key_id, urls.as_ref()))
            .collect::<der::Result<Vec<_>>>()?;
        Ok(Self {
            key,
            role,
            cert_der,
            name_der,
            key_id,
            sig_alg_der,
            not_before,
            not_after,
            urls,
            constant_extensions,
        })
    }

    /// Sets the repository URLs that go into every certificate this issuer signs (for a
    /// root: into its intermediates).
    pub fn with_urls(self, urls: IssuerUrls) -> Result<Self, IssueError> {
        let Self {
            key,
            role,
            cert_der,
            name_der,
            key_id,
            not_before,
            not_after,
            ..
        } = self;
        Self::assemble(
            key,
            role,
            cert_der,
            name_der,
            key_id,
            not_before,
            not_after,
            Some(urls),
        )
    }

    /// Root or intermediate.
    pub fn role(&self) -> IssuerRole {
        self.role
    }

    /// The CA certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA certificate, PEM.
    pub fn certificate_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.cert_der)
    }

    /// The CA's subject `Name`, DER (the issuer of what it signs).
    pub fn name_der(&self) -> &[u8] {
        &self.name_der
    }

    /// The CA's key identifier (SHA-1 of its public key).
    pub fn key_id(&self) -> &[u8; 20] {
        &self.key_id
    }

    /// The repository URLs.
    pub fn urls(&self) -> Option<&IssuerUrls> {
        self.urls.as_ref()
    }

    /// The CA key (to export and seal it, or to sign CRLs and OCSP responses).
    pub fn key(&self) -> &CaKey {
        &self.key
    }

    /// DER of the signature AlgorithmIdentifier.
    pub(crate) fn signature_algorithm_der(&self) -> &[u8] {
        &self.sig_alg_der
    }

    /// notAfter of the CA certificate.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// Removes the key from memory and gives back what stays online: the certificate. The
    /// operator exports the key (sealed) first; see [`crate::seal`].
    pub fn into_certificate(self) -> Vec<u8> {
        self.cert_der
    }

    /// Issues the certificate an RA approved. The serial is fresh and random; notBefore is
    /// `now` (whole seconds) and notAfter is `now + validity`, capped at the CA's own notAfter.
    pub fn issue(
        &self,
        approved: ApprovedRequest,
        now: SystemTime,
        rng: &mut (impl CryptoRng + ?Sized),
    ) -> Result<IssuedCertificate, IssueError> {
        let (template, approval) = approved.into_parts();
        let kind = template.kind();
        let allowed = match self.role {
            IssuerRole::Root => kind == CertificateKind::IntermediateCa,
            IssuerRole::Intermediate => kind != CertificateKind::IntermediateCa,
        };
        if !allowed {
            return Err(IssueError::WrongIssuer {
                issuer: match self.role {
                    IssuerRole::Root => "root",
                    IssuerRole::Intermediate => "intermediate",
                },
                kind,
            });
        }
        if kind != CertificateKind::IntermediateCa && self.urls.is_none() {
            return Err(IssueError::NoUrls);
        }
        let not_before = whole_seconds(now);
        if not_before < self.not_before || not_before >= self.not_after {
            return Err(IssueError::IssuerNotValid);
        }
        let not_after = (not_before + DAY * template.validity_days()).min(self.not_after);
        let serial = Serial::random(rng);
        let der = self.encode_and_sign(&template, serial, not_before, not_after)?;
        Ok(IssuedCertificate {
            der,
            serial,
            kind,
            common_name: template.common_name().map(str::to_owned),
            names: template.names().to_vec(),
            not_before,
            not_after,
            previous: template.previous(),
            approval,
        })
    }

    fn encode_and_sign(
        &self,
        template: &CertificateTemplate,
        serial: Serial,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<Vec<u8>, IssueError> {
        let subject_der = template.subject_der()?;
        let constant = self
            .constant_extensions
            .get(kind_index(template.kind()))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut exts = Vec::with_capacity(constant.len() + 160);
        let ski = key_identifier(template.public_key_info_der())?;
        push_extension(
            &mut exts,
            ID_CE_SUBJECT_KEY_IDENTIFIER,
            false,
            &OctetStringRef::new(&ski)?.to_der()?,
        )?;
        exts.extend_from_slice(constant);
        if !template.names().is_empty() {
            let mut san = Vec::with_capacity(64);
            template.san_der(&mut san)?;
            // RFC 5280 4.2.1.6: critical exactly when the subject is empty.
            let critical = template.common_name().is_none();
            push_extension(&mut exts, ID_CE_SUBJECT_ALT_NAME, critical, &san)?;
        }
        if let Some(prev) = template.previous() {
            push_extension(
                &mut exts,
                ID_CONFIANZA_PREVIOUS_CERTIFICATE,
                false,
                &prev.to_uint()?.to_der()?,
            )?;
        }
        let parts = TbsParts {
            serial,
            subject_der: &subject_der,
            spki_der: template.public_key_info_der(),
            not_before,
            not_after,
        };
        sign_certificate(&self.key, &self.sig_alg_der, &self.name_der, &parts, &exts)
    }
}

/// Encodes the TBSCertificate around pre-encoded pieces, signs it, and wraps it.
fn sign_certificate(
    key: &CaKey,
    sig_alg_der: &[u8],
    issuer_der: &[u8],
    parts: &TbsParts<'_>,
    extensions: &[u8],
) -> Result<Vec<u8>, IssueError> {
    const VERSION_V3: [u8; 5] = [0xa0, 0x03, 0x02, 0x01, 0x02];
    let serial = parts.serial.to_uint()?;
    let validity = Validity::<x509_cert::certificate::Rfc5280>::new(
        x509_time(parts.not_before)?,
        x509_time(parts.not_after)?,
    );
    let serial_len = usize::try_from(serial.encoded_len()?)?;
    let validity_len = usize::try_from(validity.encoded_len()?)?;
    let ext_seq_len = header_len(extensions.len())? + extensions.len();
    let ext_wrap_len = header_len(ext_seq_len)? + ext_seq_len;
    let tbs_content = VERSION_V3.len()
        + serial_len
        + sig_alg_der.len()
        + issuer_der.len()
        + validity_len
        + parts.subject_der.len()
        + parts.spki_der.len()
        + ext_wrap_len;
    let tbs_len = header_len(tbs_content)? + tbs_content;
    let mut tbs = Vec::with_capacity(tbs_len);
    write_header(&mut tbs, Tag::Sequence, tbs_content)?;
    tbs.extend_from_slice(&VERSION_V3);
    serial.encode_to_vec(&mut tbs)?;
    tbs.extend_from_slice(sig_alg_der);
    tbs.extend_from_slice(issuer_der);
    validity.encode_to_vec(&mut tbs)?;
    tbs.extend_from_slice(parts.subject_der);
    tbs.extend_from_slice(parts.spki_der);
    write_header(
        &mut tbs,
        Tag::ContextSpecific {
            constructed: true,
            number: der::TagNumber(3),
        },
        ext_seq_len,
    )?;
    write_header(&mut tbs, Tag::Sequence, extensions.len())?;
    tbs.extend_from_slice(extensions);
    debug_assert_eq!(tbs.len(), tbs_len);
    let signature = key.sign(&tbs)?;
    let signature = BitStringRef::new(0, &signature)?;
    let content_len = tbs.len() + sig_alg_der.len() + usize::try_from(signature.encoded_len()?)?;
    let mut out = Vec::with_capacity(header_len(content_len)? + content_len);
    write_header(&mut out, Tag::Sequence, content_len)?;
    out.extend_from_slice(&tbs);
    out.extend_from_slice(sig_alg_der);
    signature.encode_to_vec(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signer::CaAlgorithm;
    use rand::SeedableRng;

    #[test]
    fn root_certificate_parses_and_verifies() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for alg in [CaAlgorithm::Ed25519, CaAlgorithm::P256] {
            let key = CaKey::generate(alg, &mut rng).expect("key");
            let root = Issuer::new_root(
                key,
                "Confianza Root",
                Some("Example Org"),
                SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
                None,
                &mut rng,
            )
            .expect("root");
            let cert = Certificate::from_der(root.certificate_der()).expect("parse");
            let tbs_der = cert.tbs_certificate().to_der().expect("tbs");
            let spki = cert
                .tbs_certificate()
                .subject_public_key_info()
                .to_der()
                .expect("spki");
            let spki = SubjectPublicKeyInfoRef::from_der(&spki).expect("spki");
            let alg_der = cert.signature_algorithm().to_der().expect("alg");
            let alg = spki::AlgorithmIdentifierRef::from_der(&alg_der).expect("alg");
            crate::verify::verify_signature(&spki, &alg, &tbs_der, cert.signature().raw_bytes())
                .expect("self-signature verifies");
            assert_eq!(
                cert.tbs_certificate().subject().to_string(),
                "CN=Confianza Root,O=Example Org"
            );
            // Re-loading from key + certificate gives the same issuer.
            let key2 =
                CaKey::from_pkcs8_der(&root.key().to_pkcs8_der().expect("pk8")).expect("import");
            let again =
                Issuer::from_certificate(key2, root.certificate_der(), IssuerRole::Root, None)
                    .expect("reload");
            assert_eq!(again.key_id(), root.key_id());
            assert_eq!(again.name_der(), root.name_der());
        }
    }

    #[test]
    fn from_certificate_refuses_other_key() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(6);
        let key = CaKey::generate(CaAlgorithm::Ed25519, &mut rng).expect("key");
        let root =
            Issuer::new_root(key, "R", None, SystemTime::now(), None, &mut rng).expect("root");
        let other = CaKey::generate(CaAlgorithm::Ed25519, &mut rng).expect("key");
        assert!(matches!(
            Issuer::from_certificate(other, root.certificate_der(), IssuerRole::Root, None),
            Err(IssueError::BadCaCertificate(_))
        ));
        let key = CaKey::generate(CaAlgorithm::Ed25519, &mut rng).expect("key");
        assert!(matches!(
            Issuer::from_certificate(key, b"\x30\x00", IssuerRole::Root, None),
            Err(IssueError::BadCaCertificate(_))
        ));
    }
}
