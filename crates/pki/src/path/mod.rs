//! RFC 5280 §6 certification path validation, sans IO.
//!
//! [`validate`] builds a path from an end-entity certificate through untrusted intermediates to
//! one of the trust anchors, backtracking over candidate issuers, and checks it: signatures,
//! validity (inclusive bounds, at a `now` the caller passes), basic constraints and path length,
//! key usage, extended key usage, name constraints, the expected peer name and revocation. The
//! only way to obtain a [`ValidatedPath`] is a successful validation.
//!
//! ```
//! use confianza_pki::path::{validate, PathOptions, ParsedCertificate};
//! # fn demo(leaf_der: &[u8], root_der: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
//! let leaf = ParsedCertificate::from_der(leaf_der)?;
//! let anchors = [ParsedCertificate::from_der(root_der)?];
//! let now = std::time::Duration::from_secs(1_700_000_000); // supplied by the caller
//! let path = validate(&leaf, &[], &anchors, now, &PathOptions::default())?;
//! assert_eq!(path.leaf().der(), leaf_der);
//! # Ok(()) }
//! ```
//!
//! Revocation comes from [`RevocationSource`]s: CRLs ([`CrlSet`], each used only for the
//! certificates its distribution point covers) and stapled OCSP responses ([`StapledOcsp`]).
//! This is how a client validates a contact's identity certificate, with the response the
//! server stapled to the prekey bundle, against its pinned root, requiring an answer:
//!
//! ```
//! use confianza_pki::path::{
//!     validate, ParsedCertificate, PathOptions, RevocationOptions, RevocationScope,
//!     StapledOcsp, UnknownStatus,
//! };
//! # fn demo(identity_der: &[u8], intermediate_der: &[u8], pinned_root_der: &[u8],
//! #         stapled_ocsp_der: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
//! let leaf = ParsedCertificate::from_der(identity_der)?;
//! let intermediates = [ParsedCertificate::from_der(intermediate_der)?];
//! let pinned = [ParsedCertificate::from_der(pinned_root_der)?];
//! let stapled = StapledOcsp::from_der([stapled_ocsp_der])?;
//! let options = PathOptions {
//!     revocation: RevocationOptions {
//!         sources: vec![&stapled],
//!         scope: RevocationScope::EndEntity,
//!         unknown: UnknownStatus::Deny,
//!     },
//!     ..PathOptions::default()
//! };
//! let now = std::time::Duration::from_secs(1_800_000_000); // supplied by the caller
//! let path = validate(&leaf, &intermediates, &pinned, now, &options)?;
//! # let _ = path;
//! # Ok(()) }
//! ```
//!
//! Trust anchors are certificates and are checked like the rest of the path (validity, CA
//! basic constraints, key usage, critical extensions, key identifiers), except for their own
//! signature. The profile is strict, in the spirit of rustls-webpki and the CA/Browser Forum
//! baseline: see `tests/limbo-exceptions.json` for where it departs from the letter of RFC 5280.

mod cert;
mod crl;
pub mod limits;
mod names;
mod ocsp;

use std::time::Duration;

use const_oid::ObjectIdentifier;
use const_oid::db::rfc4519;
use const_oid::db::rfc5280 as oids;
use x509_cert::ext::pkix::KeyUsages;
use x509_cert::ext::pkix::name::GeneralName;

pub use cert::{CertificateError, Ext, Extensions, ParsedCertificate, parse_certificate};
pub use crl::{
    CrlError, CrlSet, ParsedCrl, RevocationError, RevocationSource, RevocationStatus, RevokedEntry,
    parse_crl,
};
pub use names::{ExpectedName, NameError, is_valid_dns_name};
pub use ocsp::StapledOcsp;
pub use x509_cert::ext::pkix::CrlReason;

use crate::verify::{PublicKey, SignatureAlgorithm, SignatureError};

/// `id-kp-serverAuth`.
pub const EKU_SERVER_AUTH: ObjectIdentifier = oids::ID_KP_SERVER_AUTH;
/// `id-kp-clientAuth`.
pub const EKU_CLIENT_AUTH: ObjectIdentifier = oids::ID_KP_CLIENT_AUTH;

/// Which certificates of the path are checked for revocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RevocationScope {
    /// Only the end entity.
    EndEntity,
    /// The end entity and every intermediate.
    #[default]
    Chain,
}

/// What to do when no source knows a certificate's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownStatus {
    /// Accept (soft fail).
    #[default]
    Allow,
    /// Refuse with [`PathError::RevocationStatusUnknown`].
    Deny,
}

/// Revocation inputs: sources (a [`CrlSet`], an OCSP cache, …) and policy.
#[derive(Default)]
pub struct RevocationOptions<'a> {
    /// Sources asked for every certificate in scope, in order.
    pub sources: Vec<&'a dyn RevocationSource>,
    /// Which certificates are checked.
    pub scope: RevocationScope,
    /// What happens when no source knows a status.
    pub unknown: UnknownStatus,
}

impl std::fmt::Debug for RevocationOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationOptions")
            .field("sources", &self.sources.len())
            .field("scope", &self.scope)
            .field("unknown", &self.unknown)
            .finish()
    }
}

/// What the caller requires of the path.
#[derive(Debug)]
pub struct PathOptions<'a> {
    /// Key purposes the end entity must allow (all of them). When the end entity has an
    /// extKeyUsage extension it must list each (`anyExtendedKeyUsage` does not count); an
    /// intermediate with extKeyUsage must list each or `anyExtendedKeyUsage`.
    pub required_ekus: Vec<ObjectIdentifier>,
    /// Key usages the end entity must allow (when it has a keyUsage extension).
    pub required_key_usage: Vec<KeyUsages>,
    /// Names the end entity must be for (every one of them), matched against its
    /// subjectAltName only; common names are never used.
    pub expected_names: Vec<ExpectedName>,
    /// Most intermediates, not counting self-issued ones (at most [`limits::MAX_CHAIN_DEPTH`]).
    pub max_chain_depth: usize,
    /// CABF BR 7.1.4.3: refuse an end entity whose host-name or IP-address commonName is not
    /// a character-for-character copy of a subjectAltName entry (default `false`). Names are
    /// only ever matched against the subjectAltName, so this is a consistency check on the
    /// issuing CA rather than a matching rule; it is off by default as in rustls-webpki, Go
    /// and pyca/cryptography.
    pub require_common_names_in_san: bool,
    /// Signature algorithms accepted on certificates; `None` accepts every supported one.
    pub allowed_signature_algorithms: Option<Vec<SignatureAlgorithm>>,
    /// Revocation checking.
    pub revocation: RevocationOptions<'a>,
}

impl Default for PathOptions<'_> {
    fn default() -> Self {
        Self {
            required_ekus: Vec::new(),
            required_key_usage: Vec::new(),
            expected_names: Vec::new(),
            max_chain_depth: limits::MAX_CHAIN_DEPTH,
            require_common_names_in_san: false,
            allowed_signature_algorithms: None,
            revocation: RevocationOptions::default(),
        }
    }
}

/// `": keyCompromise"` and the like, in RFC 5280's spelling; nothing when no reason was given.
fn revocation_reason_text(reason: &Option<CrlReason>) -> String {
    let name = match reason {
        None => return String::new(),
        Some(CrlReason::Unspecified) => "unspecified",
        Some(CrlReason::KeyCompromise) => "keyCompromise",
        Some(CrlReason::CaCompromise) => "cACompromise",
        Some(CrlReason::AffiliationChanged) => "affiliationChanged",
        Some(CrlReason::Superseded) => "superseded",
        Some(CrlReason::CessationOfOperation) => "cessationOfOperation",
        Some(CrlReason::CertificateHold) => "certificateHold",
        Some(CrlReason::RemoveFromCRL) => "removeFromCRL",
        Some(CrlReason::PrivilegeWithdrawn) => "privilegeWithdrawn",
        Some(CrlReason::AaCompromise) => "aACompromise",
    };
    format!(" ({name})")
}

/// Where in the path a problem is: 0 is the end entity, counting up towards the anchor.
pub type Depth = usize;

/// Why no valid path was found. When several candidate paths fail, the error is the one of the
/// first candidate tried at the deepest level reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// A certificate given as input does not parse.
    #[error("certificate: {0}")]
    Certificate(#[from] CertificateError),
    /// `now` is after `notAfter`.
    #[error("certificate at depth {0} has expired")]
    Expired(Depth),
    /// `now` is before `notBefore`.
    #[error("certificate at depth {0} is not yet valid")]
    NotYetValid(Depth),
    /// No trust anchor or intermediate issued this certificate.
    #[error("no issuer found for the certificate at depth {0}")]
    UnknownIssuer(Depth),
    /// A signature does not verify (or uses an unsupported or refused algorithm or key).
    #[error("bad signature on the certificate at depth {depth}: {error}")]
    BadSignature {
        /// The signed certificate.
        depth: Depth,
        /// Why.
        error: SignatureError,
    },
    /// The signature algorithm is not in `allowed_signature_algorithms`.
    #[error("signature algorithm not allowed at depth {0}")]
    SignatureAlgorithmNotAllowed(Depth),
    /// The end entity's key is of a refused kind or size.
    #[error("end-entity key refused: {0}")]
    EndEntityKey(SignatureError),
    /// More intermediates than allowed.
    #[error("path too long")]
    PathTooLong,
    /// basicConstraints forbids this use (not a CA, a CA as end entity, pathLenConstraint, not
    /// critical on a CA).
    #[error("basic constraints violated at depth {0}")]
    BasicConstraints(Depth),
    /// keyUsage forbids this use.
    #[error("key usage violated at depth {0}")]
    KeyUsage(Depth),
    /// extKeyUsage forbids this use.
    #[error("extended key usage violated at depth {0}")]
    ExtendedKeyUsage(Depth),
    /// Name constraints refuse a name, or are malformed.
    #[error("name constraints at depth {depth}: {error}")]
    NameConstraints {
        /// The certificate carrying the constraints.
        depth: Depth,
        /// Why.
        error: NameError,
    },
    /// A subjectAltName or subject is malformed or inconsistent.
    #[error("invalid names at depth {depth}: {reason}")]
    InvalidNames {
        /// The certificate.
        depth: Depth,
        /// Why.
        reason: &'static str,
    },
    /// A critical extension we do not process.
    #[error("unknown critical extension {oid} at depth {depth}")]
    UnknownCriticalExtension {
        /// The certificate.
        depth: Depth,
        /// The extension.
        oid: ObjectIdentifier,
    },
    /// An extension is present where it must not be, absent where it must be, or has the wrong
    /// criticality (key identifiers, AIA, policy constraints, name constraints).
    #[error("extension profile violated at depth {depth}: {reason}")]
    ExtensionProfile {
        /// The certificate.
        depth: Depth,
        /// Why.
        reason: &'static str,
    },
    /// The certificate is revoked.
    #[error(
        "certificate at depth {depth} is revoked{}",
        revocation_reason_text(reason)
    )]
    Revoked {
        /// The revoked certificate.
        depth: Depth,
        /// The reason code, if given.
        reason: Option<CrlReason>,
    },
    /// No source could say whether the certificate is revoked, and one of them failed: a CRL
    /// that is unusable (bad signature, expired, issuer without cRLSign, …) or a stapled OCSP
    /// response that names the certificate but is stale, not yet valid, badly signed or
    /// signed by a responder the issuer did not authorize ([`RevocationError::Ocsp`]).
    #[error("revocation check failed at depth {depth}: {error}")]
    Revocation {
        /// The certificate being checked.
        depth: Depth,
        /// Why.
        error: RevocationError,
    },
    /// Revocation checking is required ([`UnknownStatus::Deny`]) but no source had
    /// information about the certificate (no stapled response for it, no CRL covering it).
    #[error("revocation status unknown at depth {0}")]
    RevocationStatusUnknown(Depth),
    /// The end entity is not for the expected name.
    #[error("certificate is not valid for the expected name")]
    NameMismatch,
    /// Path building needed more work than [`limits`] allow.
    #[error("path building work limit exceeded")]
    WorkLimitExceeded,
}

/// A path that passed validation: end entity first, trust anchor last. It borrows the
/// certificates given to [`validate`].
#[derive(Debug, Clone)]
pub struct ValidatedPath<'a> {
    chain: Vec<&'a ParsedCertificate>,
}

impl<'a> ValidatedPath<'a> {
    /// The end-entity certificate.
    pub fn leaf(&self) -> &'a ParsedCertificate {
        // A path always holds at least the end entity and the anchor.
        self.chain[0]
    }

    /// The trust anchor that ends the path.
    pub fn anchor(&self) -> &'a ParsedCertificate {
        self.chain[self.chain.len() - 1]
    }

    /// The intermediates, from the end entity's issuer up.
    pub fn intermediates(&self) -> &[&'a ParsedCertificate] {
        &self.chain[1..self.chain.len() - 1]
    }

    /// The whole path, end entity first.
    pub fn chain(&self) -> &[&'a ParsedCertificate] {
        &self.chain
    }
}

/// Validates `leaf` at `now` (time since the Unix epoch; sub-second parts are dropped, as
/// certificate times have one-second granularity) against `anchors`, using `intermediates` to
/// build the path.
pub fn validate<'a>(
    leaf: &'a ParsedCertificate,
    intermediates: &'a [ParsedCertificate],
    anchors: &'a [ParsedCertificate],
    now: Duration,
    options: &PathOptions<'_>,
) -> Result<ValidatedPath<'a>, PathError> {
    let now = now.as_secs();
    check_common(leaf, 0, now, Role::EndEntity)?;
    check_end_entity(leaf, options)?;
    let intermediates = &intermediates[..intermediates.len().min(limits::MAX_INTERMEDIATES)];
    let mut search = Search {
        intermediates,
        anchors,
        now,
        options,
        max_depth: options.max_chain_depth.min(limits::MAX_CHAIN_DEPTH),
        signature_checks: 0,
        candidates: 0,
        path: vec![Link {
            cert: leaf,
            key: None,
        }],
    };
    search.extend(0)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    EndEntity,
    Intermediate,
    Anchor,
}

struct Link<'c> {
    cert: &'c ParsedCertificate,
    key: Option<&'c PublicKey>,
}

struct Search<'c, 'o> {
    intermediates: &'c [ParsedCertificate],
    anchors: &'c [ParsedCertificate],
    now: u64,
    options: &'o PathOptions<'o>,
    max_depth: usize,
    signature_checks: usize,
    candidates: usize,
    path: Vec<Link<'c>>,
}

impl<'c> Search<'c, '_> {
    /// Tries to extend the path (whose last element has been checked) to a trust anchor.
    /// `non_self_issued` counts the intermediates in the path that are not self-issued.
    fn extend(&mut self, non_self_issued: usize) -> Result<ValidatedPath<'c>, PathError> {
        let depth = self.path.len() - 1;
        let child = self.path[depth].cert;
        let mut first_error: Option<PathError> = None;
        let candidates = self
            .anchors
            .iter()
            .map(|c| (c, Role::Anchor))
            .chain(self.intermediates.iter().map(|c| (c, Role::Intermediate)));
        for (candidate, role) in candidates {
            if candidate.subject() != child.issuer() {
                continue;
            }
            // Key identifiers, when both are present, must agree (RFC 5280 §4.2.1.1).
            if let (Some(aki), Some(ski)) = (child.authority_key_id(), candidate.subject_key_id())
                && aki != ski
            {
                continue;
            }
            // Loop protection: the same logical CA (name and key) at most once per path.
            if self.path.iter().any(|link| {
                link.cert.der() == candidate.der()
                    || (link.cert.subject() == candidate.subject()
                        && link.cert.subject_public_key_info()
                            == candidate.subject_public_key_info())
            }) {
                continue;
            }
            self.candidates += 1;
            if self.candidates > limits::MAX_CANDIDATE_ISSUERS {
                return Err(PathError::WorkLimitExceeded);
            }
            match self.try_candidate(candidate, role, non_self_issued) {
                Ok(path) => return Ok(path),
                Err(PathError::WorkLimitExceeded) => return Err(PathError::WorkLimitExceeded),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or(PathError::UnknownIssuer(depth)))
    }

    fn try_candidate(
        &mut self,
        candidate: &'c ParsedCertificate,
        role: Role,
        non_self_issued: usize,
    ) -> Result<ValidatedPath<'c>, PathError> {
        let depth = self.path.len();
        let child_depth = depth - 1;
        // Depth and path length: `non_self_issued` intermediates lie below the candidate.
        if role == Role::Intermediate {
            let counted = non_self_issued + usize::from(!candidate.is_self_issued());
            if counted > self.max_depth {
                return Err(PathError::PathTooLong);
            }
        }
        if let Some(bc) = &candidate.extensions().basic_constraints
            && let Some(max) = bc.value.path_len_constraint
            && non_self_issued > usize::from(max)
        {
            return Err(PathError::BasicConstraints(depth));
        }
        check_common(candidate, depth, self.now, role)?;
        check_ca(candidate, depth, role, self.options)?;

        let key = candidate
            .public_key()
            .map_err(|error| PathError::BadSignature {
                depth: child_depth,
                error,
            })?;
        let child = self.path[child_depth].cert;
        let algorithm = child
            .signature_algorithm()
            .map_err(|error| PathError::BadSignature {
                depth: child_depth,
                error,
            })?;
        if let Some(allowed) = &self.options.allowed_signature_algorithms
            && !allowed.contains(&algorithm)
        {
            return Err(PathError::SignatureAlgorithmNotAllowed(child_depth));
        }
        self.signature_checks += 1;
        if self.signature_checks > limits::MAX_SIGNATURE_CHECKS {
            return Err(PathError::WorkLimitExceeded);
        }
        child
            .verify_signed_by(key)
            .map_err(|error| PathError::BadSignature {
                depth: child_depth,
                error,
            })?;

        self.path.push(Link {
            cert: candidate,
            key: Some(key),
        });
        let result = if role == Role::Anchor {
            self.finish()
        } else {
            let below = non_self_issued + usize::from(!candidate.is_self_issued());
            self.extend(below)
        };
        if result.is_err() {
            self.path.pop();
        }
        result
    }

    /// Whole-path checks once an anchor is reached: name constraints, then revocation.
    fn finish(&self) -> Result<ValidatedPath<'c>, PathError> {
        check_name_constraints(&self.path)?;
        self.check_revocation()?;
        Ok(ValidatedPath {
            chain: self.path.iter().map(|link| link.cert).collect(),
        })
    }

    /// Asks every source about every certificate in scope, each with its issuer (the next
    /// link). A revocation reported by any source wins; otherwise one `Good` from any source
    /// settles the certificate, so a source that fails (a stale stapled OCSP response) falls
    /// back to the others (CRLs); when none knows, the first failure is the error, and without
    /// one [`UnknownStatus`] decides.
    fn check_revocation(&self) -> Result<(), PathError> {
        let revocation = &self.options.revocation;
        if revocation.sources.is_empty() && revocation.unknown == UnknownStatus::Allow {
            return Ok(());
        }
        let in_scope = match revocation.scope {
            RevocationScope::EndEntity => 1,
            RevocationScope::Chain => self.path.len() - 1,
        };
        for (depth, pair) in self.path.windows(2).enumerate().take(in_scope) {
            let [link, issuer] = pair else { continue };
            let Some(issuer_key) = issuer.key else {
                continue;
            };
            let mut known = false;
            let mut first_error = None;
            for source in &revocation.sources {
                match source.status(link.cert, issuer.cert, issuer_key, self.now) {
                    Ok(RevocationStatus::Revoked { reason, .. }) => {
                        return Err(PathError::Revoked { depth, reason });
                    }
                    Ok(RevocationStatus::Good) => known = true,
                    Ok(_) => {}
                    Err(error) => {
                        first_error.get_or_insert(error);
                    }
                }
            }
            if known {
                continue;
            }
            if let Some(error) = first_error {
                return Err(PathError::Revocation { depth, error });
            }
            if revocation.unknown == UnknownStatus::Deny {
                return Err(PathError::RevocationStatusUnknown(depth));
            }
        }
        Ok(())
    }
}

/// Checks every certificate in the path, whatever its role.
fn check_common(
    cert: &ParsedCertificate,
    depth: Depth,
    now: u64,
    role: Role,
) -> Result<(), PathError> {
    let (not_before, not_after) = cert.validity_secs();
    if now < not_before {
        return Err(PathError::NotYetValid(depth));
    }
    if now > not_after {
        return Err(PathError::Expired(depth));
    }
    let ext = cert.extensions();
    if let Some(oid) = ext.unknown_critical.first() {
        return Err(PathError::UnknownCriticalExtension { depth, oid: *oid });
    }
    let profile = |reason| Err(PathError::ExtensionProfile { depth, reason });
    if ext.authority_info_access_critical == Some(true) {
        return profile("authorityInfoAccess must not be critical");
    }
    if ext.policy_constraints_critical == Some(false) {
        return profile("policyConstraints must be critical");
    }
    match &ext.authority_key_identifier {
        Some(aki) => {
            if aki.critical {
                return profile("authorityKeyIdentifier must not be critical");
            }
            if aki.value.key_identifier.is_none() {
                return profile("authorityKeyIdentifier without keyIdentifier");
            }
            if aki.value.authority_cert_issuer.is_some()
                || aki.value.authority_cert_serial_number.is_some()
            {
                return profile("authorityKeyIdentifier with issuer and serial");
            }
        }
        // RFC 5280 §4.2.1.1: only a self-signed certificate may omit it. A trust anchor is
        // trusted as configured, whoever issued it.
        None if !cert.is_self_issued() && role != Role::Anchor => {
            return profile("authorityKeyIdentifier missing");
        }
        None => {}
    }
    if let Some(ski) = &ext.subject_key_identifier
        && ski.critical
    {
        return profile("subjectKeyIdentifier must not be critical");
    }
    if cert.issuer().is_empty() {
        return profile("empty issuer");
    }
    // keyCertSign requires cA (RFC 5280 §4.2.1.3, §4.2.1.9).
    if !cert.is_ca()
        && ext
            .key_usage
            .as_ref()
            .is_some_and(|ku| ku.value.0.contains(KeyUsages::KeyCertSign))
    {
        return Err(PathError::KeyUsage(depth));
    }
    // subjectAltName: well formed; critical exactly when the subject is empty (§4.2.1.6, CABF).
    match &ext.subject_alt_name {
        Some(san) => {
            names::check_san_syntax(&san.value).map_err(|_| PathError::InvalidNames {
                depth,
                reason: "malformed subjectAltName",
            })?;
            if cert.subject().is_empty() != san.critical {
                return Err(PathError::InvalidNames {
                    depth,
                    reason: "subjectAltName criticality does not match the subject",
                });
            }
        }
        None if cert.subject().is_empty() && role == Role::EndEntity => {
            return Err(PathError::InvalidNames {
                depth,
                reason: "empty subject and no subjectAltName",
            });
        }
        None => {}
    }
    Ok(())
}

/// Checks for a certificate acting as a CA (an intermediate or the anchor).
fn check_ca(
    cert: &ParsedCertificate,
    depth: Depth,
    role: Role,
    options: &PathOptions<'_>,
) -> Result<(), PathError> {
    let ext = cert.extensions();
    match &ext.basic_constraints {
        Some(bc) if bc.value.ca && bc.critical => {}
        _ => return Err(PathError::BasicConstraints(depth)),
    }
    if !cert.allows_key_usage(KeyUsages::KeyCertSign) {
        return Err(PathError::KeyUsage(depth));
    }
    if cert.subject().is_empty() {
        return Err(PathError::InvalidNames {
            depth,
            reason: "CA with an empty subject",
        });
    }
    let profile = |reason| Err(PathError::ExtensionProfile { depth, reason });
    let Some(ski) = cert.subject_key_id() else {
        return profile("CA without subjectKeyIdentifier");
    };
    if let Some(nc) = &ext.name_constraints
        && !nc.critical
    {
        return profile("nameConstraints must be critical");
    }
    match role {
        Role::Anchor => {
            // CABF 7.1.2.1: a root has no extKeyUsage; a self-signed root's key identifiers agree.
            if ext.extended_key_usage.is_some() {
                return Err(PathError::ExtendedKeyUsage(depth));
            }
            if cert.is_self_issued()
                && let Some(aki) = cert.authority_key_id()
                && aki != ski
            {
                return profile("self-signed anchor with mismatched key identifiers");
            }
        }
        Role::Intermediate | Role::EndEntity => {
            if let Some(eku) = &ext.extended_key_usage
                && !eku.value.contains(&oids::ANY_EXTENDED_KEY_USAGE)
                && !options
                    .required_ekus
                    .iter()
                    .all(|want| eku.value.contains(want))
            {
                return Err(PathError::ExtendedKeyUsage(depth));
            }
        }
    }
    Ok(())
}

/// Checks for the end entity alone.
fn check_end_entity(leaf: &ParsedCertificate, options: &PathOptions<'_>) -> Result<(), PathError> {
    let ext = leaf.extensions();
    if leaf.is_ca() {
        return Err(PathError::BasicConstraints(0));
    }
    if ext.name_constraints.is_some() {
        return Err(PathError::ExtensionProfile {
            depth: 0,
            reason: "nameConstraints in an end entity",
        });
    }
    check_end_entity_key(leaf)?;
    if let Some(eku) = &ext.extended_key_usage {
        if eku.critical {
            return Err(PathError::ExtendedKeyUsage(0));
        }
        if !options
            .required_ekus
            .iter()
            .all(|want| eku.value.contains(want))
        {
            return Err(PathError::ExtendedKeyUsage(0));
        }
        // CABF 7.1.2.7.10: anyExtendedKeyUsage in an end entity defeats the purpose check.
        if !options.required_ekus.is_empty() && eku.value.contains(&oids::ANY_EXTENDED_KEY_USAGE) {
            return Err(PathError::ExtendedKeyUsage(0));
        }
    }
    if options
        .required_key_usage
        .iter()
        .any(|usage| !leaf.allows_key_usage(*usage))
    {
        return Err(PathError::KeyUsage(0));
    }
    let san = ext.subject_alt_name.as_ref().map(|s| s.value.as_slice());
    if let Some(san) = san
        && options.require_common_names_in_san
    {
        check_common_names(leaf, san)?;
    }
    for expected in &options.expected_names {
        let matched =
            names::matches_expected(san, expected).map_err(|_| PathError::InvalidNames {
                depth: 0,
                reason: "malformed subjectAltName",
            })?;
        if !matched {
            return Err(PathError::NameMismatch);
        }
    }
    Ok(())
}

/// The end-entity key: X25519 and Ed25519 keys pass; EC keys must be on P-256 or P-384; RSA
/// keys must meet the RSA policy of [`crate::verify`]; other key types are refused.
fn check_end_entity_key(leaf: &ParsedCertificate) -> Result<(), PathError> {
    const ID_X25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.110");
    let spki = leaf.subject_public_key_info();
    if spki.algorithm.oid == ID_X25519 {
        return if spki.algorithm.parameters.is_none()
            && spki
                .subject_public_key
                .as_bytes()
                .is_some_and(|k| k.len() == 32)
        {
            Ok(())
        } else {
            Err(PathError::EndEntityKey(SignatureError::InvalidKey))
        };
    }
    leaf.public_key().map(drop).map_err(PathError::EndEntityKey)
}

/// CABF BR 7.1.4.3: a commonName that is a host name or an IP address is a
/// character-for-character copy of a dNSName, or the RFC 5952 / dotted-decimal text of an
/// iPAddress, in the subjectAltName. (Names are only ever matched against the SAN; this refuses
/// certificates whose two views of the name disagree.) Other common names (a person's name) are
/// not constrained.
fn check_common_names(leaf: &ParsedCertificate, san: &[GeneralName]) -> Result<(), PathError> {
    for atv in leaf.subject().iter() {
        if atv.oid != rfc4519::CN {
            continue;
        }
        let cn = atv.value.value();
        if !names::looks_like_host(cn) {
            continue;
        }
        let found = san.iter().any(|name| match name {
            GeneralName::DnsName(dns) => dns.as_bytes() == cn,
            GeneralName::IpAddress(ip) => {
                names::ip_text(ip.as_bytes()).is_some_and(|text| text.as_bytes() == cn)
            }
            _ => false,
        });
        if !found {
            return Err(PathError::InvalidNames {
                depth: 0,
                reason: "host-name commonName not copied from subjectAltName",
            });
        }
    }
    Ok(())
}

/// RFC 5280 §6.1.3 (b), (c) and §6.1.4 (g): each CA's name constraints apply to every
/// certificate below it; the subject of a self-issued intermediate is exempt.
fn check_name_constraints(path: &[Link<'_>]) -> Result<(), PathError> {
    let mut budget = names::comparison_budget();
    for (ca_depth, ca) in path.iter().enumerate().skip(1) {
        let Some(nc) = &ca.cert.extensions().name_constraints else {
            continue;
        };
        let error = |error| PathError::NameConstraints {
            depth: ca_depth,
            error,
        };
        let constraints = names::Constraints::new(&nc.value).map_err(error)?;
        for (depth, link) in path.iter().enumerate().take(ca_depth) {
            let cert = link.cert;
            // §6.1.4: constraints are not applied to self-issued intermediates.
            if depth > 0 && cert.is_self_issued() {
                continue;
            }
            let san = cert
                .extensions()
                .subject_alt_name
                .as_ref()
                .map(|s| s.value.as_slice());
            constraints
                .check(cert.subject(), san, &mut budget)
                .map_err(error)?;
        }
    }
    Ok(())
}
