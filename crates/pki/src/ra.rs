//! Registration Authority: enrollment codes, request states, officers, policies, renewal
//! reminders and revocation requests. Sans-IO: every value here is plain data the server
//! stores; every step takes `now` (and an RNG where it draws secrets) and records who did what
//! and when.
//!
//! ```text
//!              submit            approve (officer | code policy | CA operator)
//!   request ─────────> Pending ────────────────────────────────────────> Approved ──issue──> Issued
//!                         │                                                  (ca::Issuer::issue)
//!                         └────── reject (officer) ──────> Rejected
//! ```
//!
//! Each phase is a type and each step consumes the previous phase, so an [`ApprovedRequest`]
//! can only come out of an approval, and it is the only thing [`crate::ca::Issuer::issue`]
//! accepts. An approval that is refused hands the pending request back
//! ([`Refused::request`]).
//!
//! Enrollment codes are 100 random bits shown once to the RA officer and given to the user
//! out of band; only their SHA-256 is stored, compared in constant time, and a code is
//! one-time and expires.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::ca::IssuedCertificate;
use crate::crl::{Revocation, RevocationReason};
use crate::limits::{MAX_COMMENT_LEN, MAX_ENROLLMENT_CODE_LEN};
use crate::profile::{
    CertificateKind, CertificateTemplate, ID_KP_CONFIANZA_RA_OFFICER, ProfileError, SubjectName,
};
use crate::serial::Serial;

/// Identifies an RA officer: a name and the serial of the officer's credential certificate.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RaId {
    /// The officer's address, from the credential's subjectAltName.
    pub name: String,
    /// Serial of the RA officer certificate.
    pub credential: Serial,
}

/// Who performed a step.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Actor {
    /// An RA officer, authenticated by their credential.
    Officer(RaId),
    /// The automatic policy, on an enrollment code created by `created_by`.
    EnrollmentCode {
        /// The officer who created the code (and checked the person's identity).
        created_by: RaId,
    },
    /// The holder of a certificate (renewal, revocation of their own certificate).
    Holder(Serial),
    /// The requester of a new certificate (before any certificate exists).
    Requester,
    /// The CA operator on the server console (CA set-up: intermediate, OCSP, Noise key).
    CaOperator(String),
}

/// A recorded step: what, by whom, when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub action: Action,
    /// Who did it.
    pub by: Actor,
    /// When.
    pub at: SystemTime,
    /// Optional free text (bounded by [`MAX_COMMENT_LEN`]).
    pub comment: Option<String>,
}

/// The steps of a request's life.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// The request was submitted.
    Submitted,
    /// The request was approved.
    Approved,
    /// The request was rejected.
    Rejected,
}

/// Who approved a certificate and when; copied into [`IssuedCertificate::approval`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approval {
    /// Approver.
    pub by: Actor,
    /// Time of approval.
    pub at: SystemTime,
}

/// Errors from RA steps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RaError {
    /// The officer's scope does not cover this certificate kind or domain.
    #[error("this RA officer is not authorised for that request")]
    NotAuthorised,
    /// The credential is not an RA officer certificate from this CA, or is not valid now.
    #[error("invalid RA officer credential: {0}")]
    BadCredential(&'static str),
    /// The approval policy for this kind does not allow that kind of approval.
    #[error("the policy for {0:?} certificates does not allow this approval")]
    PolicyForbids(CertificateKind),
    /// The enrollment code does not match.
    #[error("enrollment code does not match")]
    CodeMismatch,
    /// The enrollment code has expired.
    #[error("enrollment code expired")]
    CodeExpired,
    /// The enrollment code was already used.
    #[error("enrollment code already used")]
    CodeAlreadyUsed,
    /// The code was issued for another address or certificate kind.
    #[error("enrollment code is for another subject")]
    CodeForOtherSubject,
    /// The code is longer than [`MAX_ENROLLMENT_CODE_LEN`].
    #[error("enrollment code too long")]
    CodeTooLong,
    /// A comment longer than [`MAX_COMMENT_LEN`].
    #[error("comment too long")]
    CommentTooLong,
    /// The revocation reason is not one this actor may give.
    #[error("revocation reason {0:?} not allowed here")]
    ReasonNotAllowed(RevocationReason),
    /// A renewal approval for a request that renews nothing.
    #[error("not a renewal")]
    NotARenewal,
}

fn check_comment(comment: Option<&str>) -> Result<Option<String>, RaError> {
    match comment {
        Some(c) if c.len() > MAX_COMMENT_LEN => Err(RaError::CommentTooLong),
        other => Ok(other.map(str::to_owned)),
    }
}

/// What an officer may act on.
///
/// Each entry of [`RaScope::domains`] is read with the name-constraint semantics of RFC 5280
/// §4.2.1.10, by the form of the name it is compared with:
///
/// | entry | DNS name (dNSName) | address `local@host` (rfc822Name) |
/// | --- | --- | --- |
/// | `example.org` | `example.org` and every name made by adding labels on the left (`chat.example.org`, `a.b.example.org`) | every mailbox at the host `example.org` exactly |
/// | `.example.org` | the names below `example.org`, not `example.org` itself | every mailbox at a host below `example.org` (`alice@eng.example.org`), not at `example.org` |
/// | `alice@example.org` | none | that one mailbox |
///
/// Matching is by whole labels: `example.org` never covers `evil-example.org` nor
/// `example.org.evil`. Hosts are compared case-insensitively (names are stored lower-case);
/// the local part of an address is compared exactly (RFC 5280: it is case-sensitive). For
/// dNSName, RFC 5280 gives a leading dot no meaning; Confianza reads it as "subdomains only",
/// as for rfc822Name, so that one entry means the same for both forms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaScope {
    /// Certificate kinds the officer may approve and create codes for.
    pub kinds: Vec<CertificateKind>,
    /// Name constraints (see the table above), normalised with [`RaScope::parse_entry`];
    /// empty = any name.
    pub domains: Vec<String>,
}

impl RaScope {
    /// Validates and normalises one scope entry: `example.org`, `.example.org` or
    /// `alice@example.org` (host lower-cased, a trailing dot dropped).
    pub fn parse_entry(entry: &str) -> Result<String, ProfileError> {
        if let Some(subdomains) = entry.strip_prefix('.') {
            let host = SubjectName::dns(subdomains)?;
            return Ok(format!(".{}", host.as_str()));
        }
        if entry.contains('@') {
            return Ok(SubjectName::address(entry)?.as_str().to_owned());
        }
        Ok(SubjectName::dns(entry)?.as_str().to_owned())
    }

    /// Whether one scope entry (normalised by [`RaScope::parse_entry`]) covers `name`.
    pub fn entry_covers(entry: &str, name: &SubjectName) -> bool {
        match name {
            SubjectName::Dns(host) => match entry.strip_prefix('.') {
                Some(base) => is_strictly_below(host, base),
                None if entry.contains('@') => false,
                None => host == entry || is_strictly_below(host, entry),
            },
            SubjectName::Address(address) => {
                if entry.contains('@') {
                    return address == entry;
                }
                let host = name.domain();
                match entry.strip_prefix('.') {
                    Some(base) => is_strictly_below(host, base),
                    None => host == entry,
                }
            }
        }
    }

    fn covers(&self, template: &CertificateTemplate) -> bool {
        self.covers_names(template.kind(), template.names())
    }

    fn covers_names(&self, kind: CertificateKind, names: &[SubjectName]) -> bool {
        self.kinds.contains(&kind)
            && (self.domains.is_empty()
                || names
                    .iter()
                    .all(|n| self.domains.iter().any(|d| Self::entry_covers(d, n))))
    }
}

/// Whether `host` is `base` with one or more whole labels added on the left.
fn is_strictly_below(host: &str, base: &str) -> bool {
    host.strip_suffix(base)
        .is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.'))
}

/// An authenticated RA officer: built from the officer's credential certificate, which must be
/// an RA officer certificate signed by this CA's intermediate and valid now. (That the person
/// at the keyboard holds the credential's key is for the server's transport to establish.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaOfficer {
    id: RaId,
    scope: RaScope,
}

impl RaOfficer {
    /// Checks `credential_der` against the intermediate certificate `issuer_cert_der` and
    /// builds the officer with `scope`.
    pub fn from_credential(
        credential_der: &[u8],
        issuer_cert_der: &[u8],
        now: SystemTime,
        scope: RaScope,
    ) -> Result<Self, RaError> {
        use der::{Decode, Encode};
        use x509_cert::Certificate;
        use x509_cert::ext::pkix::ExtendedKeyUsage;
        let cert = Certificate::from_der(credential_der)
            .map_err(|_| RaError::BadCredential("does not parse"))?;
        let issuer = Certificate::from_der(issuer_cert_der)
            .map_err(|_| RaError::BadCredential("issuer does not parse"))?;
        let tbs = cert.tbs_certificate();
        if tbs.issuer() != issuer.tbs_certificate().subject() {
            return Err(RaError::BadCredential("not issued by this CA"));
        }
        let tbs_der = tbs
            .to_der()
            .map_err(|_| RaError::BadCredential("does not encode"))?;
        let spki_der = issuer
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(|_| RaError::BadCredential("issuer key"))?;
        let alg_der = cert
            .signature_algorithm()
            .to_der()
            .map_err(|_| RaError::BadCredential("algorithm"))?;
        let spki = spki::SubjectPublicKeyInfoRef::from_der(&spki_der)
            .map_err(|_| RaError::BadCredential("issuer key"))?;
        let alg = spki::AlgorithmIdentifierRef::from_der(&alg_der)
            .map_err(|_| RaError::BadCredential("algorithm"))?;
        let signature = cert
            .signature()
            .as_bytes()
            .ok_or(RaError::BadCredential("signature has unused bits"))?;
        crate::verify::verify_signature(&spki, &alg, &tbs_der, signature)
            .map_err(|_| RaError::BadCredential("signature does not verify"))?;
        let validity = tbs.validity();
        if now < validity.not_before.to_system_time() || now > validity.not_after.to_system_time() {
            return Err(RaError::BadCredential("not valid now"));
        }
        match tbs.get_extension::<ExtendedKeyUsage>() {
            Ok(Some((_, eku))) if eku.0.contains(&ID_KP_CONFIANZA_RA_OFFICER) => {}
            _ => return Err(RaError::BadCredential("not an RA officer certificate")),
        }
        let serial = Serial::from_der_content(tbs.serial_number().as_bytes())
            .ok_or(RaError::BadCredential("serial not from this CA"))?;
        let name = tbs
            .subject()
            .common_name()
            .ok()
            .flatten()
            .map(|cn| cn.value().into_owned())
            .unwrap_or_else(|| format!("serial:{serial}"));
        Ok(Self {
            id: RaId {
                name,
                credential: serial,
            },
            scope,
        })
    }

    /// The officer's identity.
    pub fn id(&self) -> &RaId {
        &self.id
    }

    /// The officer's scope.
    pub fn scope(&self) -> &RaScope {
        &self.scope
    }

    /// Creates a one-time enrollment code for `address` and `kind`, valid for `ttl`. The
    /// [`EnrollmentCode`] is shown once and never stored; the [`StoredEnrollmentCode`] is.
    pub fn create_enrollment_code(
        &self,
        address: &SubjectName,
        kind: CertificateKind,
        ttl: Duration,
        now: SystemTime,
        rng: &mut (impl CryptoRng + ?Sized),
    ) -> Result<(EnrollmentCode, StoredEnrollmentCode), RaError> {
        if !self.scope.covers_names(kind, std::slice::from_ref(address)) {
            return Err(RaError::NotAuthorised);
        }
        let mut raw = Zeroizing::new([0u8; CODE_BYTES]);
        rng.fill_bytes(raw.as_mut());
        let code = EnrollmentCode(Zeroizing::new(format_code(&raw)));
        let stored = StoredEnrollmentCode {
            hash: hash_code(&normalise_code(code.as_str())),
            address: address.as_str().to_owned(),
            kind,
            created_by: self.id.clone(),
            created_at: now,
            expires_at: now + ttl,
            used_at: None,
        };
        Ok((code, stored))
    }

    /// Approves a pending request by hand (allowed under every [`ApprovalPolicy`]): the
    /// officer's scope must cover the kind and every name.
    pub fn approve(
        &self,
        request: PendingRequest,
        now: SystemTime,
        comment: Option<&str>,
    ) -> Result<ApprovedRequest, Refused> {
        let check = if self.scope.covers(&request.template) {
            check_comment(comment)
        } else {
            Err(RaError::NotAuthorised)
        };
        match check {
            Ok(comment) => Ok(request.into_approved(Actor::Officer(self.id.clone()), now, comment)),
            Err(error) => Err(Refused {
                request: Box::new(request),
                error,
            }),
        }
    }

    /// Rejects a pending request.
    pub fn reject(
        &self,
        request: PendingRequest,
        now: SystemTime,
        reason: Option<&str>,
    ) -> Result<RejectedRequest, Refused> {
        let check = if self.scope.covers(&request.template) {
            check_comment(reason)
        } else {
            Err(RaError::NotAuthorised)
        };
        match check {
            Ok(comment) => {
                let mut history = request.history;
                history.push(Event {
                    action: Action::Rejected,
                    by: Actor::Officer(self.id.clone()),
                    at: now,
                    comment,
                });
                Ok(RejectedRequest {
                    id: request.id,
                    template: request.template,
                    history,
                })
            }
            Err(error) => Err(Refused {
                request: Box::new(request),
                error,
            }),
        }
    }

    /// Revokes a certificate of a kind (and domain) the officer is responsible for. Officers
    /// may give every reason except the CA-only ones (cACompromise, aACompromise) and the
    /// hold mechanics (certificateHold, removeFromCRL), which Confianza does not use.
    pub fn revoke(
        &self,
        certificate: &IssuedCertificate,
        reason: RevocationReason,
        now: SystemTime,
    ) -> Result<Revocation, RaError> {
        if !self
            .scope
            .covers_names(certificate.kind, &certificate.names)
        {
            return Err(RaError::NotAuthorised);
        }
        use RevocationReason::*;
        if matches!(
            reason,
            CaCompromise | AaCompromise | CertificateHold | RemoveFromCrl
        ) {
            return Err(RaError::ReasonNotAllowed(reason));
        }
        Ok(Revocation {
            serial: certificate.serial,
            reason,
            revoked_at: now,
            by: Actor::Officer(self.id.clone()),
        })
    }
}

/// A holder revokes their own certificate (the server has authenticated them with it).
/// Holders may say unspecified, keyCompromise, affiliationChanged, superseded or
/// cessationOfOperation (the reasons RFC 5280 gives a subscriber).
pub fn revoke_by_holder(
    serial: Serial,
    reason: RevocationReason,
    now: SystemTime,
) -> Result<Revocation, RaError> {
    use RevocationReason::*;
    if !matches!(
        reason,
        Unspecified | KeyCompromise | AffiliationChanged | Superseded | CessationOfOperation
    ) {
        return Err(RaError::ReasonNotAllowed(reason));
    }
    Ok(Revocation {
        serial,
        reason,
        revoked_at: now,
        by: Actor::Holder(serial),
    })
}

/// An approval that was refused, with the request handed back unchanged.
#[derive(Debug)]
pub struct Refused {
    /// The request, still pending.
    pub request: Box<PendingRequest>,
    /// Why.
    pub error: RaError,
}

/// How requests of one certificate kind are approved.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApprovalPolicy {
    /// Automatic when a valid enrollment code for the subject is presented and every name is
    /// in one of `domains`; an officer may also approve manually.
    AutomaticWithCode {
        /// Domains (lower-case, exact) the automatic policy covers.
        domains: Vec<String>,
    },
    /// Only an RA officer may approve.
    Manual,
}

/// Per-kind approval policies. Kinds not listed are [`ApprovalPolicy::Manual`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaPolicy {
    policies: BTreeMap<CertificateKind, ApprovalPolicy>,
}

static MANUAL: ApprovalPolicy = ApprovalPolicy::Manual;

impl RaPolicy {
    /// The usual set-up: user identities in `domains` are approved automatically with a code;
    /// everything else needs an officer.
    pub fn for_domains(domains: &[&str]) -> Self {
        let mut p = Self::default();
        p.set(
            CertificateKind::UserIdentity,
            ApprovalPolicy::AutomaticWithCode {
                domains: domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
            },
        );
        p
    }

    /// Sets the policy of one kind.
    pub fn set(&mut self, kind: CertificateKind, policy: ApprovalPolicy) {
        self.policies.insert(kind, policy);
    }

    /// The policy of one kind.
    pub fn get(&self, kind: CertificateKind) -> &ApprovalPolicy {
        self.policies.get(&kind).unwrap_or(&MANUAL)
    }
}

const CODE_BYTES: usize = 15; // 120 bits drawn, 100 used by the 20 base32 characters
const CODE_CHARS: usize = 20;
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

fn format_code(raw: &[u8; CODE_BYTES]) -> String {
    let mut acc: u128 = 0;
    for b in raw {
        acc = (acc << 8) | u128::from(*b);
    }
    let mut out = String::with_capacity(CODE_CHARS + 4);
    for i in 0..CODE_CHARS {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        let idx = ((acc >> (5 * (CODE_CHARS - 1 - i))) & 31) as usize;
        out.push(char::from(CROCKFORD.get(idx).copied().unwrap_or(b'0')));
    }
    out
}

/// Upper-cases, drops dashes and spaces, and maps the Crockford look-alikes (O→0, I/L→1).
fn normalise_code(code: &str) -> Zeroizing<String> {
    Zeroizing::new(
        code.chars()
            .filter(|c| *c != '-' && !c.is_whitespace())
            .map(|c| match c.to_ascii_uppercase() {
                'O' => '0',
                'I' | 'L' => '1',
                other => other,
            })
            .collect(),
    )
}

fn hash_code(normalised: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"confianza enrollment code v1\0");
    h.update(normalised.as_bytes());
    h.finalize().into()
}

/// An enrollment code as shown to the officer once (`XXXX-XXXX-XXXX-XXXX-XXXX`, Crockford
/// base32, 100 bits). Zeroized on drop; no `Debug`.
pub struct EnrollmentCode(Zeroizing<String>);

impl EnrollmentCode {
    /// The code text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the server stores for an enrollment code: its hash, never the code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEnrollmentCode {
    /// SHA-256 of the normalised code (domain-separated).
    pub hash: [u8; 32],
    /// The address it is for.
    pub address: String,
    /// The certificate kind it is for.
    pub kind: CertificateKind,
    /// The officer who checked the person's identity and created it.
    pub created_by: RaId,
    /// Creation time.
    pub created_at: SystemTime,
    /// Expiry.
    pub expires_at: SystemTime,
    /// When it was used; `Some` means it can never be used again.
    pub used_at: Option<SystemTime>,
}

/// Proof that a code was presented, matched and consumed; spent by
/// [`PendingRequest::approve_with_code`].
#[derive(Debug)]
pub struct RedeemedCode {
    address: String,
    kind: CertificateKind,
    created_by: RaId,
}

impl StoredEnrollmentCode {
    /// Checks `presented` (constant-time on the hash) and marks the code used. The caller
    /// stores the updated record before approving, so a code is used at most once even if
    /// issuance fails later.
    pub fn redeem(&mut self, presented: &str, now: SystemTime) -> Result<RedeemedCode, RaError> {
        if presented.len() > MAX_ENROLLMENT_CODE_LEN {
            return Err(RaError::CodeTooLong);
        }
        let hash = hash_code(&normalise_code(presented));
        if !bool::from(hash.ct_eq(&self.hash)) {
            return Err(RaError::CodeMismatch);
        }
        if self.used_at.is_some() {
            return Err(RaError::CodeAlreadyUsed);
        }
        if now >= self.expires_at {
            return Err(RaError::CodeExpired);
        }
        self.used_at = Some(now);
        Ok(RedeemedCode {
            address: self.address.clone(),
            kind: self.kind,
            created_by: self.created_by.clone(),
        })
    }
}

/// Opaque request identifier chosen by the server's storage.
pub type RequestId = u64;

/// A submitted request awaiting a decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingRequest {
    id: RequestId,
    template: CertificateTemplate,
    history: Vec<Event>,
}

impl PendingRequest {
    /// Records a new request for `template` (built from a verified request by
    /// [`crate::csr`]).
    pub fn submit(
        id: RequestId,
        template: CertificateTemplate,
        by: Actor,
        now: SystemTime,
    ) -> Self {
        Self {
            id,
            template,
            history: vec![Event {
                action: Action::Submitted,
                by,
                at: now,
                comment: None,
            }],
        }
    }

    /// The request id.
    pub fn id(&self) -> RequestId {
        self.id
    }

    /// What would be certified.
    pub fn template(&self) -> &CertificateTemplate {
        &self.template
    }

    /// Steps so far.
    pub fn history(&self) -> &[Event] {
        &self.history
    }

    fn into_approved(
        mut self,
        by: Actor,
        at: SystemTime,
        comment: Option<String>,
    ) -> ApprovedRequest {
        self.history.push(Event {
            action: Action::Approved,
            by: by.clone(),
            at,
            comment,
        });
        ApprovedRequest {
            id: self.id,
            template: self.template,
            history: self.history,
            approval: Approval { by, at },
        }
    }

    /// Approves automatically with a redeemed enrollment code: the policy for the kind must be
    /// [`ApprovalPolicy::AutomaticWithCode`] covering every name's domain, and the code must have
    /// been made for this address and kind.
    pub fn approve_with_code(
        self,
        code: RedeemedCode,
        policy: &RaPolicy,
        now: SystemTime,
    ) -> Result<ApprovedRequest, Refused> {
        let kind = self.template.kind();
        let check = match policy.get(kind) {
            ApprovalPolicy::AutomaticWithCode { domains } => {
                let names = self.template.names();
                if code.kind != kind
                    || names.len() != 1
                    || names.first().map(|n| n.as_str()) != Some(code.address.as_str())
                {
                    Err(RaError::CodeForOtherSubject)
                } else if !names
                    .iter()
                    .all(|n| domains.iter().any(|d| d == n.domain()))
                {
                    Err(RaError::PolicyForbids(kind))
                } else {
                    Ok(())
                }
            }
            ApprovalPolicy::Manual => Err(RaError::PolicyForbids(kind)),
        };
        match check {
            Ok(()) => Ok(self.into_approved(
                Actor::EnrollmentCode {
                    created_by: code.created_by,
                },
                now,
                None,
            )),
            Err(error) => Err(Refused {
                request: Box::new(self),
                error,
            }),
        }
    }

    /// Approves a renewal or re-key requested by the holder of the previous certificate (the
    /// server has authenticated them with it and checked it is neither revoked nor expired).
    pub fn approve_renewal(self, now: SystemTime) -> Result<ApprovedRequest, Refused> {
        match self.template.previous() {
            Some(prev) => Ok(self.into_approved(Actor::Holder(prev), now, None)),
            None => Err(Refused {
                request: Box::new(self),
                error: RaError::NotARenewal,
            }),
        }
    }
}

/// A rejected request (final).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedRequest {
    /// The request id.
    pub id: RequestId,
    /// What was asked for.
    pub template: CertificateTemplate,
    /// Steps, ending with the rejection.
    pub history: Vec<Event>,
}

/// An approved request: the only input [`crate::ca::Issuer::issue`] takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovedRequest {
    id: RequestId,
    template: CertificateTemplate,
    history: Vec<Event>,
    approval: Approval,
}

impl ApprovedRequest {
    /// Approval by the CA operator at the server console, for the CA's own certificates
    /// (intermediate, OCSP signer, the server's Noise key, the first RA officer).
    pub fn by_ca_operator(
        id: RequestId,
        template: CertificateTemplate,
        operator: &str,
        now: SystemTime,
    ) -> Self {
        PendingRequest::submit(id, template, Actor::CaOperator(operator.to_owned()), now)
            .into_approved(Actor::CaOperator(operator.to_owned()), now, None)
    }

    /// The request id.
    pub fn id(&self) -> RequestId {
        self.id
    }

    /// What will be certified.
    pub fn template(&self) -> &CertificateTemplate {
        &self.template
    }

    /// Steps so far.
    pub fn history(&self) -> &[Event] {
        &self.history
    }

    /// The approval.
    pub fn approval(&self) -> &Approval {
        &self.approval
    }

    pub(crate) fn into_parts(self) -> (CertificateTemplate, Approval) {
        (self.template, self.approval)
    }
}

/// Certificates that expire within `days` of `now` and should be renewed: not yet expired, not
/// revoked, and not already renewed (no certificate in `issued` names them as previous).
pub fn expiring<'a>(
    issued: &'a [IssuedCertificate],
    revoked: &std::collections::HashSet<Serial>,
    now: SystemTime,
    days: u32,
) -> Vec<&'a IssuedCertificate> {
    let horizon = now + Duration::from_secs(86_400) * days;
    let renewed: std::collections::HashSet<Serial> =
        issued.iter().filter_map(|c| c.previous).collect();
    let mut out: Vec<&IssuedCertificate> = issued
        .iter()
        .filter(|c| {
            c.not_after > now
                && c.not_after <= horizon
                && !revoked.contains(&c.serial)
                && !renewed.contains(&c.serial)
        })
        .collect();
    out.sort_by_key(|c| c.not_after);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn code_format_and_normalisation() {
        let raw = [0xffu8; CODE_BYTES];
        let code = format_code(&raw);
        assert_eq!(code.len(), CODE_CHARS + 4);
        assert_eq!(code, "ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ");
        assert_eq!(
            normalise_code("abcd-efgh-ijkl-mnop-0000").as_str(),
            "ABCDEFGH1JK1MN0P0000"
        );
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut raw = [0u8; CODE_BYTES];
        rng.fill_bytes(&mut raw);
        let c = format_code(&raw);
        assert!(
            c.chars()
                .all(|ch| ch == '-' || CROCKFORD.contains(&(ch as u8)))
        );
    }

    fn stored(code: &str, expires_in: Duration) -> StoredEnrollmentCode {
        StoredEnrollmentCode {
            hash: hash_code(&normalise_code(code)),
            address: "alice@example.org".into(),
            kind: CertificateKind::UserIdentity,
            created_by: RaId {
                name: "ra@example.org".into(),
                credential: Serial::from_bytes([0x40; 16]).expect("serial"),
            },
            created_at: SystemTime::UNIX_EPOCH,
            expires_at: SystemTime::UNIX_EPOCH + expires_in,
            used_at: None,
        }
    }

    #[test]
    fn redeem_is_one_time_and_expires_exactly_at_expiry() {
        let t0 = SystemTime::UNIX_EPOCH;
        let mut s = stored("ABCD-EFGH-JKMN-PQRS-TVWX", Duration::from_secs(60));
        // Just before expiry works, and marks the code used.
        let r = s
            .redeem("abcd efgh jkmn pqrs tvwx", t0 + Duration::from_secs(59))
            .expect("redeem");
        assert_eq!(r.address, "alice@example.org");
        assert_eq!(s.used_at, Some(t0 + Duration::from_secs(59)));
        assert_eq!(
            s.redeem("ABCD-EFGH-JKMN-PQRS-TVWX", t0).err(),
            Some(RaError::CodeAlreadyUsed)
        );
        // At expiry it no longer works.
        let mut s = stored("ABCD-EFGH-JKMN-PQRS-TVWX", Duration::from_secs(60));
        assert_eq!(
            s.redeem("ABCD-EFGH-JKMN-PQRS-TVWX", t0 + Duration::from_secs(60))
                .err(),
            Some(RaError::CodeExpired)
        );
        assert_eq!(s.used_at, None);
    }

    fn covered(entry: &str, name: &str) -> bool {
        let entry = RaScope::parse_entry(entry).expect("scope entry");
        let name = if name.contains('@') {
            SubjectName::address(name)
        } else {
            SubjectName::dns(name)
        }
        .expect("name");
        RaScope::entry_covers(&entry, &name)
    }

    #[test]
    fn dns_scopes_cover_the_domain_and_its_subdomains_by_whole_labels() {
        assert!(covered("example.org", "example.org"));
        assert!(covered("example.org", "chat.example.org"));
        assert!(covered("example.org", "a.b.example.org"));
        assert!(covered("Example.ORG.", "CHAT.example.org"));
        // Not a label boundary, or the domain is only a prefix.
        assert!(!covered("example.org", "evil-example.org"));
        assert!(!covered("example.org", "example.org.evil"));
        assert!(!covered("example.org", "org"));
        assert!(!covered("chat.example.org", "example.org"));
        // A leading dot: below the domain only.
        assert!(covered(".example.org", "chat.example.org"));
        assert!(!covered(".example.org", "example.org"));
        assert!(!covered(".example.org", "evil-example.org"));
        // A mailbox entry constrains addresses only.
        assert!(!covered("alice@example.org", "example.org"));
    }

    #[test]
    fn address_scopes_follow_rfc5280_rfc822_name_rules() {
        // A host: every mailbox at that host exactly.
        assert!(covered("example.org", "alice@example.org"));
        assert!(covered("example.org", "alice@EXAMPLE.org"));
        assert!(!covered("example.org", "alice@eng.example.org"));
        assert!(!covered("example.org", "alice@evil-example.org"));
        assert!(!covered("example.org", "alice@example.org.evil"));
        // A leading dot: mailboxes at hosts below the domain, not at the domain.
        assert!(covered(".example.org", "alice@eng.example.org"));
        assert!(covered(".example.org", "alice@a.b.example.org"));
        assert!(!covered(".example.org", "alice@example.org"));
        assert!(!covered(".example.org", "alice@evil-example.org"));
        // A mailbox: that one only; the local part is case-sensitive.
        assert!(covered("alice@example.org", "alice@Example.org"));
        assert!(!covered("alice@example.org", "Alice@example.org"));
        assert!(!covered("alice@example.org", "bob@example.org"));
    }

    #[test]
    fn scope_entries_are_validated() {
        assert_eq!(
            RaScope::parse_entry(".Example.org").expect("entry"),
            ".example.org"
        );
        assert_eq!(
            RaScope::parse_entry("alice@Example.org").expect("entry"),
            "alice@example.org"
        );
        for bad in [
            "",
            ".",
            "..example.org",
            "exa mple.org",
            "@example.org",
            "a@b@c.org",
        ] {
            assert!(RaScope::parse_entry(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn an_officer_scope_needs_every_name_covered() {
        let scope = RaScope {
            kinds: vec![CertificateKind::TlsServer],
            domains: vec!["example.org".into()],
        };
        let names = |list: &[&str]| -> Vec<SubjectName> {
            list.iter()
                .map(|n| SubjectName::dns(n).expect("name"))
                .collect()
        };
        assert!(scope.covers_names(
            CertificateKind::TlsServer,
            &names(&["example.org", "chat.example.org"])
        ));
        assert!(!scope.covers_names(
            CertificateKind::TlsServer,
            &names(&["chat.example.org", "chat.evil-example.org"])
        ));
        assert!(!scope.covers_names(CertificateKind::TlsClient, &names(&["example.org"])));
    }

    #[test]
    fn policies_default_to_manual() {
        let p = RaPolicy::for_domains(&["Example.ORG"]);
        assert_eq!(
            p.get(CertificateKind::UserIdentity),
            &ApprovalPolicy::AutomaticWithCode {
                domains: vec!["example.org".into()]
            }
        );
        for kind in CertificateKind::ALL {
            if kind != CertificateKind::UserIdentity {
                assert_eq!(p.get(kind), &ApprovalPolicy::Manual);
            }
        }
    }

    #[test]
    fn comment_limit_at_n_and_n_plus_one() {
        let at = "x".repeat(MAX_COMMENT_LEN);
        assert!(check_comment(Some(&at)).is_ok());
        let over = "x".repeat(MAX_COMMENT_LEN + 1);
        assert_eq!(check_comment(Some(&over)), Err(RaError::CommentTooLong));
    }

    #[test]
    fn holder_reasons() {
        let serial = Serial::from_bytes([0x41; 16]).expect("serial");
        for r in crate::crl::RevocationReason::ALL {
            let allowed = revoke_by_holder(serial, r, SystemTime::UNIX_EPOCH).is_ok();
            assert_eq!(allowed, [0, 1, 3, 4, 5].contains(&r.code()), "{r:?}");
        }
    }
}
