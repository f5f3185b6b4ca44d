//! The data directory's CA, online: the issuing (intermediate) CA, its delegated OCSP signer,
//! the RA policy and the operator console's RA officer, the server's Noise key and
//! certificate, and the CA database. [`Authority`] is what the messaging service and the HTTP
//! repository call; [`init`] creates a data directory; the operator commands in
//! [`crate::ops`] use both.
//!
//! Every operation is: sans-IO PKI step (`confianza_pki`), then one [`CaStore`] transaction.
//! Issuance signs first and records second, in one transaction together with the enrollment
//! code it consumes: a certificate the database does not hold is never handed out, and a
//! crash never leaves one half-recorded. Every revocation publishes a new CRL (database and
//! `DIR/ca/intermediate.crl`); OCSP answers from the live database.

mod error;
pub mod init;
pub mod layout;
mod ocsp_signer;
mod officers;
mod requests;
mod rotation;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use confianza_pki::ca::{IssuedCertificate, Issuer, IssuerRole, IssuerUrls};
use confianza_pki::crl::{self, CrlParams, RevocationReason, RevokedEntry};
use confianza_pki::csr::{self, IdentityRequest, VerifiedIdentityRequest};
use confianza_pki::ocsp::{
    self, Answer, CertIdHash, CertStatusSource, IssuerHashes, Status, StatusUnavailable,
};
use confianza_pki::profile::{CertificateKind, SubjectName};
use confianza_pki::ra::{
    self, Action, Actor, Approval, ApprovedRequest, EnrollmentCode, PendingRequest, RaId,
    RaOfficer, RaPolicy, RaScope, StoredEnrollmentCode,
};
use confianza_pki::serial::Serial;
use confianza_pki::signer::CaKey;
use der::{Decode, Encode};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use x509_cert::ext::pkix::crl::CrlReason;
use zeroize::Zeroizing;

pub use error::AuthorityError;
pub use layout::{Config, Layout};
pub use ocsp_signer::{OCSP_SIGNER_RENEWAL_FRACTION, OCSP_SIGNER_VALIDITY_DAYS, OcspSignerRenewal};
pub use officers::{NewCredential, PLAIN_KEY_LABEL, SEALED_KEY_LABEL, officer_name};

use crate::store::Database;
use crate::store::ca::{
    CaStore, CertificateQuery, CertificateRecord, CrlRecord, EnrollmentCodeRecord, EventRecord,
    Issuance, RequestRecord, RequestState, RevocationRecord, SqlCaStore, StoredStatus,
};

/// How long an OCSP response is good for (nextUpdate − thisUpdate). Responses come from the
/// live database, so this only bounds how long a cached or stapled response is believed.
pub const OCSP_VALIDITY: Duration = Duration::from_secs(3600);

/// A CRL is republished when less than this is left before its nextUpdate (half of its
/// seven-day lifetime), so relying parties always find a CRL with days to spare.
pub const CRL_REFRESH_MARGIN: Duration = Duration::from_secs(7 * 86_400 / 2);

/// Longest enrollment-code lifetime an officer may choose.
pub const MAX_CODE_VALIDITY: Duration = Duration::from_secs(90 * 86_400);

/// The Signal type byte of a Curve25519 public key.
const DJB_TYPE: u8 = 0x05;

/// A certificate issued to a device: the certificate, the chain to the root (intermediate
/// first, root last) and the serial (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedIdentity {
    /// The identity certificate, DER.
    pub certificate_der: Vec<u8>,
    /// Intermediate then root, DER.
    pub chain_der: Vec<Vec<u8>>,
    /// Serial, lower-case hex.
    pub serial_hex: String,
}

/// The data directory's CA (cheap to clone: an `Arc` inside).
#[derive(Clone)]
pub struct Authority {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("dir", &self.inner.layout.dir())
            .field("name", &self.inner.config.name)
            .finish_non_exhaustive()
    }
}

struct Inner {
    layout: Layout,
    config: Config,
    store: SqlCaStore,
    intermediate: Issuer,
    issuer_key_id: String,
    issuer_hashes: IssuerHashes,
    root_der: Vec<u8>,
    /// The delegated OCSP signer in use; swapped whole when it is renewed, so the responder
    /// and stapling always sign with a key and certificate that belong together.
    ocsp: RwLock<Arc<ocsp_signer::OcspSigner>>,
    /// The passphrase the keys were opened with (`None`: unsealed keys), kept so that a key
    /// the service renews by itself (the OCSP signer) is sealed like the others. The process
    /// already holds the unsealed intermediate key; this adds no new capability.
    passphrase: Option<Zeroizing<Vec<u8>>>,
    /// Held while the OCSP signer is being renewed: one renewal at a time.
    ocsp_renewal: tokio::sync::Mutex<()>,
    /// The console's RA officer, or why its credential is unusable (expired, say): the service
    /// still runs, only new enrollment codes are refused.
    officer: Result<RaOfficer, String>,
    policy: RaPolicy,
    noise_private: Zeroizing<[u8; 32]>,
    noise_cert_der: Vec<u8>,
}

/// Unix seconds of a time (times before 1970 are clamped to 0).
pub fn unix(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The time of Unix seconds (negative values are clamped to the epoch).
pub fn from_unix(secs: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

/// Lower-case hex.
pub fn hex_lower(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Parses a serial as the operator types it: 32 hex digits, any case, optionally with
/// `serial=` (as `openssl x509 -serial` prints) or colons.
pub fn parse_serial(text: &str) -> Result<Serial, AuthorityError> {
    let trimmed = text.trim();
    let digits: String = trimmed
        .strip_prefix("serial=")
        .unwrap_or(trimmed)
        .chars()
        .filter(|c| *c != ':')
        .collect();
    let bytes = hex::decode(&digits).map_err(|_| AuthorityError::InvalidSerial(text.into()))?;
    let bytes: [u8; confianza_pki::limits::SERIAL_RANDOM_BYTES] = bytes
        .try_into()
        .map_err(|_| AuthorityError::InvalidSerial(text.into()))?;
    Serial::from_bytes(bytes).ok_or_else(|| AuthorityError::InvalidSerial(text.into()))
}

/// The repository URLs (under `http_url`) of the issuing CA: its CRL, the OCSP responder and
/// its certificate.
pub fn intermediate_urls(http_url: &str) -> IssuerUrls {
    let base = http_url.trim_end_matches('/');
    IssuerUrls {
        crl: format!("{base}/crl"),
        ocsp: format!("{base}/ocsp"),
        ca_issuers: format!("{base}/ca/intermediate.crt"),
    }
}

/// The repository URLs of the root: its CRL (listing revoked intermediates) and certificate.
pub fn root_urls(http_url: &str) -> IssuerUrls {
    let base = http_url.trim_end_matches('/');
    IssuerUrls {
        crl: format!("{base}/crl/root"),
        ocsp: format!("{base}/ocsp"),
        ca_issuers: format!("{base}/ca/root.crt"),
    }
}

/// How an [`Actor`] is written in the database.
pub fn actor_text(actor: &Actor) -> String {
    match actor {
        Actor::Officer(id) => format!("officer:{} ({})", id.name, id.credential),
        Actor::EnrollmentCode { created_by } => format!("code:{}", created_by.name),
        Actor::Holder(serial) => format!("holder:{serial}"),
        Actor::Requester => "requester".into(),
        Actor::CaOperator(name) => format!("operator:{name}"),
        other => format!("{other:?}"),
    }
}

fn action_text(action: &Action) -> String {
    match action {
        Action::Submitted => "submitted".into(),
        Action::Approved => "approved".into(),
        Action::Rejected => "rejected".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn crl_reason(reason: RevocationReason) -> Option<CrlReason> {
    use RevocationReason as R;
    Some(match reason {
        // RFC 5280 5.3.1: unspecified is expressed by leaving the reason out.
        R::Unspecified => return None,
        R::KeyCompromise => CrlReason::KeyCompromise,
        R::CaCompromise => CrlReason::CaCompromise,
        R::AffiliationChanged => CrlReason::AffiliationChanged,
        R::Superseded => CrlReason::Superseded,
        R::CessationOfOperation => CrlReason::CessationOfOperation,
        R::CertificateHold => CrlReason::CertificateHold,
        R::RemoveFromCrl => CrlReason::RemoveFromCRL,
        R::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
        R::AaCompromise => CrlReason::AaCompromise,
        _ => CrlReason::Unspecified,
    })
}

/// The database record of a certificate the CA just issued.
pub fn certificate_record(
    issued: &IssuedCertificate,
    issuer_key_id: &str,
    request_id: Option<i64>,
) -> Result<CertificateRecord, AuthorityError> {
    let cert = issued.certificate()?;
    let spki = cert.tbs_certificate().subject_public_key_info().to_der()?;
    let sans: Vec<String> = issued.names.iter().map(|n| n.as_str().to_owned()).collect();
    let subject = issued
        .common_name
        .clone()
        .or_else(|| sans.first().cloned())
        .unwrap_or_default();
    Ok(CertificateRecord {
        serial: issued.serial.to_hex(),
        issuer_key_id: issuer_key_id.to_owned(),
        kind: issued.kind.name().to_owned(),
        subject,
        sans,
        key_sha256: hex_lower(&Sha256::digest(&spki)),
        not_before: unix(issued.not_before),
        not_after: unix(issued.not_after),
        approved_by: actor_text(&issued.approval.by),
        approved_at: unix(issued.approval.at),
        previous_serial: issued.previous.map(|s| s.to_hex()),
        request_id,
        revocation: None,
        der: issued.der.clone(),
    })
}

/// Rebuilds the [`IssuedCertificate`] of a stored record (for renewal and revocation).
fn issued_from_record(record: &CertificateRecord) -> Result<IssuedCertificate, AuthorityError> {
    let corrupt = || AuthorityError::Corrupt(format!("certificate {}", record.serial));
    let serial = parse_serial(&record.serial).map_err(|_| corrupt())?;
    let kind = CertificateKind::from_name(&record.kind).ok_or_else(corrupt)?;
    let cert = Certificate::from_der(&record.der).map_err(|_| corrupt())?;
    let common_name = cert
        .tbs_certificate()
        .subject()
        .common_name()
        .ok()
        .flatten()
        .map(|cn| cn.value().into_owned());
    let names = record
        .sans
        .iter()
        .map(|n| {
            if n.contains('@') {
                SubjectName::address(n)
            } else {
                SubjectName::dns(n)
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| corrupt())?;
    let previous = match &record.previous_serial {
        Some(p) => Some(parse_serial(p).map_err(|_| corrupt())?),
        None => None,
    };
    Ok(IssuedCertificate {
        der: record.der.clone(),
        serial,
        kind,
        common_name,
        names,
        not_before: from_unix(record.not_before),
        not_after: from_unix(record.not_after),
        previous,
        approval: Approval {
            by: Actor::CaOperator(record.approved_by.clone()),
            at: from_unix(record.approved_at),
        },
    })
}

fn request_record(
    approved: &ApprovedRequest,
    subject: &str,
    issued_at: SystemTime,
) -> Result<RequestRecord, AuthorityError> {
    let mut events: Vec<EventRecord> = approved
        .history()
        .iter()
        .map(|e| EventRecord {
            action: action_text(&e.action),
            actor: actor_text(&e.by),
            at: unix(e.at),
            comment: e.comment.clone(),
        })
        .collect();
    events.push(EventRecord {
        action: "issued".into(),
        actor: "ca".into(),
        at: unix(issued_at),
        comment: None,
    });
    let created_at = events.first().map_or(unix(issued_at), |e| e.at);
    Ok(RequestRecord {
        id: i64::try_from(approved.id())
            .map_err(|_| AuthorityError::Corrupt("request id out of range".into()))?,
        kind: approved.template().kind().name().to_owned(),
        subject: subject.to_owned(),
        state: RequestState::Issued,
        created_at,
        events,
    })
}

/// Checks and strips the Signal type byte of an identity key.
fn identity_u(identity_key: &[u8; 33]) -> Result<[u8; 32], AuthorityError> {
    let (ty, u) = identity_key
        .split_first()
        .ok_or(AuthorityError::InvalidIdentityKey)?;
    if *ty != DJB_TYPE {
        return Err(AuthorityError::InvalidIdentityKey);
    }
    u.try_into().map_err(|_| AuthorityError::InvalidIdentityKey)
}

/// Statuses looked up from the database before the (synchronous) responder runs.
struct LookedUp(HashMap<Vec<u8>, Result<Status, StatusUnavailable>>);

impl CertStatusSource for LookedUp {
    fn status(
        &self,
        _issuer_key_hash: &[u8],
        serial: &x509_cert::serial_number::SerialNumber,
    ) -> Result<Status, StatusUnavailable> {
        self.0
            .get(serial.as_bytes())
            .cloned()
            .unwrap_or(Ok(Status::Unknown))
    }
}

impl Authority {
    /// Opens DIR; the sealed intermediate/OCSP keys are opened with `passphrase`
    /// (None when the operator chose --no-passphrase). Uses DIR's SQLite database unless
    /// `database_url` is given (PostgreSQL for several nodes).
    pub async fn open(
        dir: &Path,
        passphrase: Option<&[u8]>,
        database_url: Option<&str>,
    ) -> Result<Self, AuthorityError> {
        let layout = Layout::new(dir);
        // Refuse a directory that is not a CA before creating a database in it.
        layout::read_config(&layout)?;
        let store = SqlCaStore::new(match database_url {
            Some(url) => Database::connect(url).await?,
            None => Database::open_sqlite_file(&layout.database()).await?,
        });
        Self::open_with_store(dir, passphrase, store).await
    }

    /// Opens DIR with an already opened store (the operator commands and tests share one).
    pub async fn open_with_store(
        dir: &Path,
        passphrase: Option<&[u8]>,
        store: SqlCaStore,
    ) -> Result<Self, AuthorityError> {
        let layout = Layout::new(dir);
        let config = layout::read_config(&layout)?;
        let owned_passphrase = passphrase.map(|p| Zeroizing::new(p.to_vec()));
        // Finish (or discard) an interrupted `ca new-intermediate` before reading the keys.
        rotation::recover(&layout, &store, &config.operator_officer).await?;
        let loaded = {
            let layout = layout.clone();
            let config = config.clone();
            let passphrase = owned_passphrase.clone();
            // Argon2id and key parsing take a while: off the async workers.
            tokio::task::spawn_blocking(move || {
                load_keys(&layout, &config, passphrase.as_ref().map(|p| p.as_slice()))
            })
            .await
            .map_err(|e| AuthorityError::Corrupt(format!("key loading panicked: {e}")))??
        };
        let ocsp =
            ocsp_signer::reconcile(&layout, &store, loaded.ocsp_key, loaded.ocsp_cert_der).await?;
        Self::assemble(layout, config, store, loaded.rest, ocsp, owned_passphrase)
    }

    fn assemble(
        layout: Layout,
        config: Config,
        store: SqlCaStore,
        loaded: LoadedKeys,
        ocsp: (CaKey, Vec<u8>),
        passphrase: Option<Zeroizing<Vec<u8>>>,
    ) -> Result<Self, AuthorityError> {
        let int_cert = Certificate::from_der(loaded.intermediate.certificate_der())?;
        let ocsp = ocsp_signer::OcspSigner::new(&int_cert, ocsp.0, ocsp.1)?;
        let issuer_hashes = IssuerHashes::new(&int_cert)?;
        let domains: Vec<&str> = config.domains.iter().map(String::as_str).collect();
        let officer = RaOfficer::from_credential(
            &loaded.officer_cert_der,
            loaded.intermediate.certificate_der(),
            SystemTime::now(),
            operator_scope(&config),
        )
        .map_err(|e| format!("the RA officer credential is unusable: {e}"));
        Ok(Self {
            inner: Arc::new(Inner {
                issuer_key_id: hex_lower(loaded.intermediate.key_id()),
                layout,
                policy: RaPolicy::for_domains(&domains),
                config,
                store,
                intermediate: loaded.intermediate,
                issuer_hashes,
                root_der: loaded.root_der,
                ocsp: RwLock::new(Arc::new(ocsp)),
                passphrase,
                ocsp_renewal: tokio::sync::Mutex::new(()),
                officer,
                noise_private: loaded.noise_private,
                noise_cert_der: loaded.noise_cert_der,
            }),
        })
    }

    /// The RA checks the one-time code for `address` (consumed here; `code: None` only when
    /// open registration is on) and the CA issues the identity certificate for the X25519
    /// identity key (33-byte Signal form). The proof of possession was checked by the caller.
    pub async fn enroll_identity(
        &self,
        address: &str,
        code: Option<&str>,
        identity_key: &[u8; 33],
        now: SystemTime,
    ) -> Result<IssuedIdentity, AuthorityError> {
        let u = identity_u(identity_key)?;
        // The caller verified possession (XEdDSA over its RA challenge) before calling; this
        // builds the verified request from the same inputs so that the profile checks (address
        // syntax, small-order keys) run here too.
        let request = IdentityRequest {
            identity_key: u,
            address,
            challenge: &[0u8; confianza_pki::limits::MIN_CHALLENGE_LEN],
            signature: [0u8; 64],
        };
        let verified = csr::verify_identity_request(&request, |_, _, _| true)?;
        self.enroll_verified_identity(verified, code, now).await
    }

    /// [`Authority::enroll_identity`] for a request whose proof of possession was checked with
    /// `confianza_pki::csr::verify_identity_request`.
    pub async fn enroll_verified_identity(
        &self,
        verified: VerifiedIdentityRequest,
        code: Option<&str>,
        now: SystemTime,
    ) -> Result<IssuedIdentity, AuthorityError> {
        let inner = &self.inner;
        let address = verified.address().as_str().to_owned();
        let template = verified.into_template()?;
        let id = inner.store.next_request_id().await?;
        let request_id =
            u64::try_from(id).map_err(|_| AuthorityError::Corrupt("request id".into()))?;
        let pending = PendingRequest::submit(request_id, template, Actor::Requester, now);
        let (approved, consume) = match code {
            Some(code) => {
                let (redeemed, hash) = self.redeem_code(&address, code, now).await?;
                let approved = pending
                    .approve_with_code(redeemed, &inner.policy, now)
                    .map_err(|refused| AuthorityError::Refused(refused.error.to_string()))?;
                (approved, Some((hash, unix(now))))
            }
            None => {
                let domain = SubjectName::address(&address)?.domain().to_owned();
                if !inner.config.open_registration || !inner.config.domains.contains(&domain) {
                    return Err(AuthorityError::CodeRequired);
                }
                let pending_template = pending.template().clone();
                (
                    ApprovedRequest::by_ca_operator(
                        request_id,
                        pending_template,
                        "open-registration",
                        now,
                    ),
                    None,
                )
            }
        };
        let issued = self
            .issue_and_record(approved, &address, consume, now)
            .await?;
        Ok(self.issued_identity(issued))
    }

    /// Finds the stored code for `address` that `presented` matches and redeems it (in memory;
    /// the database marks it used in the issuance transaction).
    async fn redeem_code(
        &self,
        address: &str,
        presented: &str,
        now: SystemTime,
    ) -> Result<(ra::RedeemedCode, [u8; 32]), AuthorityError> {
        let address = SubjectName::address(address)?.as_str().to_owned();
        for record in self.inner.store.enrollment_codes(&address).await? {
            let Some(kind) = CertificateKind::from_name(&record.kind) else {
                continue;
            };
            let created_by = RaId {
                name: record.created_by.clone(),
                credential: parse_serial(&record.created_by_serial)
                    .map_err(|_| AuthorityError::Corrupt("enrollment code officer".into()))?,
            };
            let mut stored = StoredEnrollmentCode {
                hash: record.hash,
                address: record.address.clone(),
                kind,
                created_by,
                created_at: from_unix(record.created_at),
                expires_at: from_unix(record.expires_at),
                used_at: record.used_at.map(from_unix),
            };
            match stored.redeem(presented, now) {
                Ok(redeemed) => return Ok((redeemed, record.hash)),
                Err(ra::RaError::CodeMismatch) => continue,
                Err(ra::RaError::CodeAlreadyUsed) => return Err(AuthorityError::CodeUsed),
                Err(ra::RaError::CodeExpired) => return Err(AuthorityError::CodeExpired),
                Err(_) => return Err(AuthorityError::InvalidCode),
            }
        }
        Err(AuthorityError::InvalidCode)
    }

    /// Signs an approved request and records certificate, request history and (optionally)
    /// the consumed code in one transaction.
    async fn issue_and_record(
        &self,
        approved: ApprovedRequest,
        subject: &str,
        consume_code: Option<([u8; 32], i64)>,
        now: SystemTime,
    ) -> Result<IssuedCertificate, AuthorityError> {
        let inner = &self.inner;
        let request = request_record(&approved, subject, now)?;
        let issued = inner.intermediate.issue(approved, now, &mut rand::rng())?;
        let certificate = certificate_record(&issued, &inner.issuer_key_id, Some(request.id))?;
        let result = inner
            .store
            .record_issuance(Issuance {
                certificate,
                request: Some(request),
                consume_code,
            })
            .await;
        match result {
            Ok(()) => Ok(issued),
            // The code was redeemed concurrently (another node, another connection).
            Err(crate::store::StoreError::Conflict(m)) if m.contains("enrollment code") => {
                Err(AuthorityError::CodeUsed)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn issued_identity(&self, issued: IssuedCertificate) -> IssuedIdentity {
        IssuedIdentity {
            serial_hex: issued.serial.to_hex(),
            certificate_der: issued.der,
            chain_der: self.chain_der(),
        }
    }

    /// Looks a presented certificate up: it must be byte-for-byte one this CA issued.
    async fn our_certificate(&self, cert_der: &[u8]) -> Result<CertificateRecord, AuthorityError> {
        let cert =
            Certificate::from_der(cert_der).map_err(|_| AuthorityError::NotOurCertificate)?;
        let serial = Serial::from_der_content(cert.tbs_certificate().serial_number().as_bytes())
            .ok_or(AuthorityError::NotOurCertificate)?;
        let record = self
            .inner
            .store
            .certificate(&serial.to_hex())
            .await?
            .ok_or_else(|| AuthorityError::UnknownSerial(serial.to_hex()))?;
        if record.der != cert_der {
            return Err(AuthorityError::NotOurCertificate);
        }
        Ok(record)
    }

    /// Renewal/re-key: new certificate with the same subject, linked to `previous_serial`.
    pub async fn renew_identity(
        &self,
        previous_der: &[u8],
        identity_key: &[u8; 33],
        now: SystemTime,
    ) -> Result<IssuedIdentity, AuthorityError> {
        let u = identity_u(identity_key)?;
        let record = self.our_certificate(previous_der).await?;
        if record.revocation.is_some() {
            return Err(AuthorityError::Revoked(record.serial));
        }
        if unix(now) >= record.not_after {
            return Err(AuthorityError::Expired(record.serial));
        }
        let previous = issued_from_record(&record)?;
        if previous.kind != CertificateKind::UserIdentity {
            return Err(AuthorityError::InvalidRequest(
                "only identity certificates are renewed here".into(),
            ));
        }
        let address = previous
            .names
            .first()
            .map(|n| n.as_str().to_owned())
            .ok_or_else(|| {
                AuthorityError::Corrupt("identity certificate without address".into())
            })?;
        let old_key = Certificate::from_der(&record.der)?
            .tbs_certificate()
            .subject_public_key_info()
            .subject_public_key
            .raw_bytes()
            .to_vec();
        let template = if old_key == u {
            csr::renewal_template(&previous)?
        } else {
            let request = IdentityRequest {
                identity_key: u,
                address: &address,
                challenge: &[0u8; confianza_pki::limits::MIN_CHALLENGE_LEN],
                signature: [0u8; 64],
            };
            // Possession of the new key was checked by the caller, as for enrollment.
            csr::verify_identity_request(&request, |_, _, _| true)?
                .into_rekey_template(&previous)?
        };
        let id = self.inner.store.next_request_id().await?;
        let request_id =
            u64::try_from(id).map_err(|_| AuthorityError::Corrupt("request id".into()))?;
        let approved =
            PendingRequest::submit(request_id, template, Actor::Holder(previous.serial), now)
                .approve_renewal(now)
                .map_err(|refused| AuthorityError::Refused(refused.error.to_string()))?;
        let issued = self.issue_and_record(approved, &address, None, now).await?;
        Ok(self.issued_identity(issued))
    }

    /// Holder-requested revocation of its own certificate.
    pub async fn revoke_by_holder(
        &self,
        cert_der: &[u8],
        reason: RevocationReason,
        now: SystemTime,
    ) -> Result<(), AuthorityError> {
        let record = self.our_certificate(cert_der).await?;
        let serial = parse_serial(&record.serial)?;
        let revocation = ra::revoke_by_holder(serial, reason, now)
            .map_err(|e| AuthorityError::Refused(e.to_string()))?;
        self.record_revocation(&record.serial, revocation).await
    }

    /// Revocation by the CA operator at the console (any reason).
    pub async fn revoke_by_operator(
        &self,
        serial: &str,
        reason: RevocationReason,
        operator: &str,
        now: SystemTime,
    ) -> Result<CertificateRecord, AuthorityError> {
        let serial = parse_serial(serial)?;
        let revocation = crl::Revocation {
            serial,
            reason,
            revoked_at: now,
            by: Actor::CaOperator(operator.to_owned()),
        };
        self.record_revocation(&serial.to_hex(), revocation).await?;
        self.inner
            .store
            .certificate(&serial.to_hex())
            .await?
            .ok_or_else(|| AuthorityError::UnknownSerial(serial.to_hex()))
    }

    async fn record_revocation(
        &self,
        serial_hex: &str,
        revocation: crl::Revocation,
    ) -> Result<(), AuthorityError> {
        let record = RevocationRecord {
            at: unix(revocation.revoked_at),
            reason: revocation.reason.code(),
            by: actor_text(&revocation.by),
        };
        match self.inner.store.revoke(serial_hex, record).await {
            Ok(_) => {}
            Err(crate::store::StoreError::NotFound(_)) => {
                return Err(AuthorityError::UnknownSerial(serial_hex.to_owned()));
            }
            Err(crate::store::StoreError::Conflict(_)) => {
                return Err(AuthorityError::Revoked(serial_hex.to_owned()));
            }
            Err(e) => return Err(e.into()),
        }
        self.publish_crl(revocation.revoked_at).await?;
        Ok(())
    }

    /// Builds, signs and publishes a new CRL of the issuing CA (database and
    /// `DIR/ca/intermediate.crl`).
    pub async fn publish_crl(&self, now: SystemTime) -> Result<CrlRecord, AuthorityError> {
        let inner = &self.inner;
        let number = inner.store.next_crl_number(&inner.issuer_key_id).await?;
        let rows = inner.store.revoked(&inner.issuer_key_id).await?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in rows {
            entries.push(RevokedEntry {
                serial: parse_serial(&row.serial)?,
                revoked_at: from_unix(row.at),
                reason: RevocationReason::from_code(row.reason)
                    .ok_or_else(|| AuthorityError::Corrupt(format!("reason {}", row.reason)))?,
            });
        }
        let params = CrlParams::new(
            u64::try_from(number).map_err(|_| AuthorityError::Corrupt("CRL number".into()))?,
            now,
        );
        let this = self.clone();
        // A large CRL takes a while to sign and encode: off the async workers.
        let der = tokio::task::spawn_blocking(move || {
            crl::build_crl(&this.inner.intermediate, &params, &entries)
        })
        .await
        .map_err(|e| AuthorityError::Corrupt(format!("CRL building panicked: {e}")))??;
        let record = CrlRecord {
            issuer_key_id: inner.issuer_key_id.clone(),
            number,
            this_update: unix(params.this_update),
            next_update: unix(params.next_update),
            der,
        };
        inner.store.publish_crl(record.clone()).await?;
        layout::write_file(&inner.layout.intermediate_crl(), &record.der, 0o644)?;
        Ok(record)
    }

    /// The current CRL, republished first when it is missing or within
    /// [`CRL_REFRESH_MARGIN`] of its nextUpdate.
    pub async fn current_crl(&self, now: SystemTime) -> Result<CrlRecord, AuthorityError> {
        let latest = self
            .inner
            .store
            .latest_crl(&self.inner.issuer_key_id)
            .await?;
        let margin = i64::try_from(CRL_REFRESH_MARGIN.as_secs()).unwrap_or(i64::MAX);
        match latest {
            Some(crl) if crl.next_update - unix(now) > margin => Ok(crl),
            _ => self.publish_crl(now).await,
        }
    }

    /// The root's CRL (DER) as last written by `init` or `ca new-intermediate`, if any.
    pub fn root_crl(&self) -> Option<Vec<u8>> {
        layout::read_file(&self.inner.layout.root_crl()).ok()
    }

    /// Answers a DER `OCSPRequest` from the live database, signed by the delegated OCSP signer.
    /// Never fails: problems become OCSP error responses.
    pub async fn ocsp_respond(&self, request: &[u8], now: SystemTime) -> Answer {
        let inner = &self.inner;
        let mut looked_up = HashMap::new();
        if let Ok(parsed) = ocsp::parse_request(request) {
            for id in parsed.cert_ids() {
                if !inner.issuer_hashes.matches(id) {
                    continue;
                }
                let serial = id.serial_number.as_bytes().to_vec();
                let status = match Serial::from_der_content(&serial) {
                    // Not a serial shape this CA ever issues.
                    None => Ok(Status::Unknown),
                    Some(s) => match inner.store.status(&inner.issuer_key_id, &s.to_hex()).await {
                        Ok(None) => Ok(Status::Unknown),
                        Ok(Some(StoredStatus::Good)) => Ok(Status::Good),
                        Ok(Some(StoredStatus::Revoked(r))) => Ok(Status::Revoked {
                            time: from_unix(r.at),
                            reason: RevocationReason::from_code(r.reason).and_then(crl_reason),
                        }),
                        Err(e) => {
                            tracing::warn!(error = %e, "OCSP status lookup failed");
                            Err(StatusUnavailable::TryLater)
                        }
                    },
                };
                looked_up.insert(serial, status);
            }
        }
        let signer = self.ocsp_signer();
        signer
            .responder
            .respond(request, now, &LookedUp(looked_up), |tbs: &[u8]| {
                signer.key.sign(tbs)
            })
    }

    /// Whether `cert_der` names a certificate of the issuing CA that the database holds as
    /// good (issued, not revoked): an indexed read by serial, no signature. A certificate that
    /// does not parse or is unknown is not good.
    pub async fn certificate_still_good(&self, cert_der: &[u8]) -> Result<bool, AuthorityError> {
        let Ok(cert) = Certificate::from_der(cert_der) else {
            return Ok(false);
        };
        let Some(serial) =
            Serial::from_der_content(cert.tbs_certificate().serial_number().as_bytes())
        else {
            return Ok(false);
        };
        let inner = &self.inner;
        let status = inner
            .store
            .status(&inner.issuer_key_id, &serial.to_hex())
            .await?;
        Ok(status == Some(StoredStatus::Good))
    }

    /// A fresh DER OCSP response (signed by the delegated OCSP signer) for a certificate,
    /// from the live database — for stapling in prekey bundles.
    pub async fn ocsp_for_certificate(
        &self,
        cert_der: &[u8],
        now: SystemTime,
    ) -> Result<Vec<u8>, AuthorityError> {
        let record = self.our_certificate(cert_der).await?;
        let serial = parse_serial(&record.serial)?.to_serial_number()?;
        let issuer = Certificate::from_der(self.inner.intermediate.certificate_der())?;
        let request = ocsp::RequestBuilder::new()
            .certificate(&issuer, &serial, CertIdHash::Sha1)
            .map_err(|e| AuthorityError::Ocsp(e.to_string()))?
            .to_der()
            .map_err(|e| AuthorityError::Ocsp(e.to_string()))?;
        let answer = self.ocsp_respond(&request, now).await;
        if answer.status != ocsp::OcspResponseStatus::Successful {
            return Err(AuthorityError::Ocsp(format!(
                "responder answered {:?}",
                answer.status
            )));
        }
        Ok(answer.der)
    }

    /// Creates a one-time enrollment code for a user identity at `address`, valid for `ttl`,
    /// by the operator console's RA officer. Only the hash is stored; the code is returned
    /// once.
    pub async fn create_enrollment_code(
        &self,
        address: &str,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<EnrollmentCode, AuthorityError> {
        let officer = self.console_officer()?;
        self.create_enrollment_code_by(officer, address, ttl, now)
            .await
    }

    /// [`Authority::create_enrollment_code`] by an authenticated RA officer (see
    /// [`Authority::authenticate_officer`]), who must be responsible for the address's domain.
    pub async fn create_enrollment_code_by(
        &self,
        officer: &RaOfficer,
        address: &str,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<EnrollmentCode, AuthorityError> {
        if ttl.is_zero() || ttl > MAX_CODE_VALIDITY {
            return Err(AuthorityError::InvalidRequest(format!(
                "validity must be between 1 second and {} days",
                MAX_CODE_VALIDITY.as_secs() / 86_400
            )));
        }
        let name = SubjectName::address(address)?;
        if !self.inner.config.domains.iter().any(|d| d == name.domain()) {
            return Err(AuthorityError::Refused(format!(
                "{} is not one of this CA's domains ({})",
                name.domain(),
                self.inner.config.domains.join(", ")
            )));
        }
        let (code, stored) = officer
            .create_enrollment_code(
                &name,
                CertificateKind::UserIdentity,
                ttl,
                now,
                &mut rand::rng(),
            )
            .map_err(|e| AuthorityError::Refused(e.to_string()))?;
        self.inner
            .store
            .add_enrollment_code(EnrollmentCodeRecord {
                hash: stored.hash,
                address: stored.address,
                kind: stored.kind.name().to_owned(),
                created_by: stored.created_by.name.clone(),
                created_by_serial: stored.created_by.credential.to_hex(),
                created_at: unix(stored.created_at),
                expires_at: unix(stored.expires_at),
                used_at: None,
            })
            .await?;
        Ok(code)
    }

    /// Issues a certificate of `kind` (TLS server, TLS client, RA officer, OCSP signer) from
    /// a PKCS#10 request (PEM or DER), approved by the CA operator at the console.
    pub async fn issue_from_csr(
        &self,
        csr: &[u8],
        kind: CertificateKind,
        operator: &str,
        now: SystemTime,
    ) -> Result<IssuedCertificate, AuthorityError> {
        let template = csr::parse_csr(csr)?.into_template(kind)?;
        let subject = template
            .common_name()
            .map(str::to_owned)
            .or_else(|| template.names().first().map(|n| n.as_str().to_owned()))
            .unwrap_or_default();
        let id = self.inner.store.next_request_id().await?;
        let request_id =
            u64::try_from(id).map_err(|_| AuthorityError::Corrupt("request id".into()))?;
        let approved = ApprovedRequest::by_ca_operator(request_id, template, operator, now);
        self.issue_and_record(approved, &subject, None, now).await
    }

    /// DER certificates, intermediate first, root last.
    pub fn chain_der(&self) -> Vec<Vec<u8>> {
        vec![
            self.inner.intermediate.certificate_der().to_vec(),
            self.inner.root_der.clone(),
        ]
    }

    /// The root CA certificate, DER (what clients pin).
    pub fn root_der(&self) -> &[u8] {
        &self.inner.root_der
    }

    /// The issuing CA certificate, DER.
    pub fn intermediate_der(&self) -> &[u8] {
        self.inner.intermediate.certificate_der()
    }

    /// The delegated OCSP signer's certificate in use, DER.
    pub fn ocsp_signer_der(&self) -> Vec<u8> {
        self.ocsp_signer().cert_der.clone()
    }

    /// The server's Noise static key pair (32-byte private) and the certificate binding its
    /// public half to the server's name (what the Noise handshake payload carries).
    pub fn noise_static_private(&self) -> Zeroizing<[u8; 32]> {
        self.inner.noise_private.clone()
    }

    /// The public half of [`Authority::noise_static_private`].
    pub fn noise_static_public(&self) -> [u8; 32] {
        let secret = x25519_dalek::StaticSecret::from(*self.inner.noise_private);
        x25519_dalek::PublicKey::from(&secret).to_bytes()
    }

    /// The Noise static key's certificate, DER.
    pub fn noise_certificate_der(&self) -> Vec<u8> {
        self.inner.noise_cert_der.clone()
    }

    /// Whether users of the configured domains may enroll without a code.
    pub fn open_registration(&self) -> bool {
        self.inner.config.open_registration
    }

    /// The configuration of the data directory.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The data directory's layout.
    pub fn layout(&self) -> &Layout {
        &self.inner.layout
    }

    /// The CA database.
    pub fn store(&self) -> &SqlCaStore {
        &self.inner.store
    }

    /// Key identifier (hex) of the issuing CA, as stored with its certificates.
    pub fn issuer_key_id(&self) -> &str {
        &self.inner.issuer_key_id
    }

    /// One certificate by serial (as the operator types it).
    pub async fn certificate(&self, serial: &str) -> Result<CertificateRecord, AuthorityError> {
        let serial = parse_serial(serial)?.to_hex();
        self.inner
            .store
            .certificate(&serial)
            .await?
            .ok_or(AuthorityError::UnknownSerial(serial))
    }

    /// Certificates matching `query`.
    pub async fn certificates(
        &self,
        query: &CertificateQuery,
    ) -> Result<Vec<CertificateRecord>, AuthorityError> {
        Ok(self.inner.store.certificates(query).await?)
    }

    /// Certificates that expire within `days` and were not renewed.
    pub async fn expiring(
        &self,
        days: u32,
        now: SystemTime,
    ) -> Result<Vec<CertificateRecord>, AuthorityError> {
        let now = unix(now);
        let horizon = now.saturating_add(i64::from(days) * 86_400);
        Ok(self.inner.store.expiring(None, now, horizon).await?)
    }
}

/// The operator console's RA officer scope: user identities and TLS certificates of the
/// configured domains.
fn operator_scope(config: &Config) -> RaScope {
    RaScope {
        kinds: officers::OFFICER_KINDS.to_vec(),
        domains: config.domains.clone(),
    }
}

/// What `load_keys` reads: the OCSP signer's key and certificate, checked against each other
/// by [`ocsp_signer::reconcile`], and the rest.
struct LoadedFiles {
    ocsp_key: CaKey,
    ocsp_cert_der: Vec<u8>,
    rest: LoadedKeys,
}

struct LoadedKeys {
    intermediate: Issuer,
    root_der: Vec<u8>,
    officer_cert_der: Vec<u8>,
    noise_private: Zeroizing<[u8; 32]>,
    noise_cert_der: Vec<u8>,
}

fn load_keys(
    layout: &Layout,
    config: &Config,
    passphrase: Option<&[u8]>,
) -> Result<LoadedFiles, AuthorityError> {
    let root_der = layout::read_certificate(&layout.root_cert())?;
    let int_der = layout::read_certificate(&layout.intermediate_cert())?;
    let int_key =
        CaKey::from_pkcs8_der(&layout::read_key(&layout.intermediate_key(), passphrase)?)?;
    let intermediate = Issuer::from_certificate(
        int_key,
        &int_der,
        IssuerRole::Intermediate,
        Some(intermediate_urls(&config.http_url)),
    )?;
    let ocsp_key = CaKey::from_pkcs8_der(&layout::read_key(&layout.ocsp_key(), passphrase)?)?;
    let ocsp_cert_der = layout::read_certificate(&layout.ocsp_cert())?;
    let noise = Zeroizing::new(layout::read_file(&layout.noise_key())?);
    let noise_private: [u8; 32] = noise
        .as_slice()
        .try_into()
        .map_err(|_| AuthorityError::Corrupt("server/noise.key is not 32 bytes".into()))?;
    Ok(LoadedFiles {
        ocsp_key,
        ocsp_cert_der,
        rest: LoadedKeys {
            intermediate,
            root_der,
            officer_cert_der: layout::read_certificate(&layout.officer_cert())?,
            noise_private: Zeroizing::new(noise_private),
            noise_cert_der: layout::read_certificate(&layout.noise_cert())?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_parse_as_openssl_prints_them() {
        let s = parse_serial("serial=4A0B0C0D0E0F00112233445566778899").expect("parse");
        assert_eq!(s.to_hex(), "4a0b0c0d0e0f00112233445566778899");
        assert!(parse_serial("4a").is_err());
        assert!(parse_serial("zz0b0c0d0e0f00112233445566778899").is_err());
        // Top bits 00 are not a serial shape this CA issues.
        assert!(parse_serial("0a0b0c0d0e0f00112233445566778899").is_err());
    }

    #[test]
    fn identity_keys_need_the_djb_type_byte() {
        let mut key = [9u8; 33];
        assert!(identity_u(&key).is_err());
        key[0] = DJB_TYPE;
        assert_eq!(identity_u(&key).expect("key"), [9u8; 32]);
    }
}
