//! Client-side checking of an OCSP response (for a live query or a stapled response).

use std::time::{Duration, SystemTime};

use der::Encode;
use der::referenced::OwnedToRef;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::Certificate;
use x509_cert::ext::pkix::KeyUsage;
use x509_cert::serial_number::SerialNumber;

use super::asn1::{
    BasicOcspResponse, CertStatus, ID_PKIX_OCSP_NONCE, OcspResponseStatus, ResponderId,
    SingleResponse,
};
use super::certid::{IssuerHashes, responder_key_hash};
use super::request::nonce_value;
use super::responder::has_ocsp_signing;
use super::response::{ParsedResponse, ResponseError, Status, parse_response};
use crate::verify::{SignatureError, verify_signature};

/// What the client expects of a response.
#[derive(Debug, Clone, Copy)]
pub struct CheckOptions<'a> {
    /// The current time.
    pub now: SystemTime,
    /// Clock difference tolerated between client and responder.
    pub max_clock_skew: Duration,
    /// How old `thisUpdate` may be when the response has no `nextUpdate` (RFC 6960 §4.2.2.1
    /// leaves this to local policy).
    pub max_age_without_next_update: Duration,
    /// The nonce sent in the request: the response must echo it. `None` for stapled or
    /// pre-signed responses, which carry no nonce.
    pub nonce: Option<&'a [u8]>,
}

impl CheckOptions<'_> {
    /// Five minutes of skew, one day of age without `nextUpdate`, no nonce.
    pub fn at(now: SystemTime) -> Self {
        CheckOptions {
            now,
            max_clock_skew: Duration::from_secs(300),
            max_age_without_next_update: Duration::from_secs(24 * 3600),
            nonce: None,
        }
    }
}

/// Why a response was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// Unparseable.
    #[error(transparent)]
    Malformed(#[from] ResponseError),
    /// The responder answered with an error status.
    #[error("OCSP responder returned {0:?}")]
    Unsuccessful(OcspResponseStatus),
    /// Neither the CA nor a certificate in `certs` matches the `ResponderID`.
    #[error("no certificate for the OCSP responder")]
    UnknownResponder,
    /// The responder certificate is not a valid delegate of the CA (wrong issuer, bad
    /// signature, no `id-kp-OCSPSigning`, or outside its validity).
    #[error("the OCSP responder is not authorized by the CA: {0}")]
    UnauthorizedResponder(&'static str),
    /// The response signature does not verify.
    #[error("OCSP response signature is invalid: {0}")]
    BadSignature(SignatureError),
    /// No single response names the certificate.
    #[error("the OCSP response does not cover this certificate")]
    NoMatchingResponse,
    /// `thisUpdate` (or `producedAt`) is in the future beyond the skew.
    #[error("the OCSP response is not yet valid")]
    NotYetValid,
    /// `nextUpdate` has passed, or the response is too old.
    #[error("the OCSP response is stale")]
    Stale,
    /// The nonce is absent or different.
    #[error("the OCSP response nonce does not match the request")]
    NonceMismatch,
}

/// A response that passed [`check_response`]: the certificate's status, and when it was known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedStatus {
    status: Status,
    this_update: SystemTime,
    next_update: Option<SystemTime>,
    produced_at: SystemTime,
}

impl VerifiedStatus {
    /// The certificate's status.
    pub fn status(&self) -> Status {
        self.status
    }
    /// When the status was known to be correct.
    pub fn this_update(&self) -> SystemTime {
        self.this_update
    }
    /// When newer information will be available.
    pub fn next_update(&self) -> Option<SystemTime> {
        self.next_update
    }
    /// When the response was signed.
    pub fn produced_at(&self) -> SystemTime {
        self.produced_at
    }
}

/// Checks a DER `OCSPResponse` about the certificate `serial` issued by `issuer`.
///
/// The response must be signed by `issuer` itself or by a certificate in its `certs` that
/// `issuer` signed, that carries `id-kp-OCSPSigning` and that is valid at `now` (RFC 6960
/// §4.2.2.2); one of its single responses must carry the certificate's `CertID` (SHA-1 or
/// SHA-256) with `thisUpdate ≤ now + skew` and `now − skew ≤ nextUpdate`; and the nonce, when
/// expected, must be echoed.
pub fn check_response(
    der: &[u8],
    issuer: &Certificate,
    serial: &SerialNumber,
    options: &CheckOptions<'_>,
) -> Result<VerifiedStatus, CheckError> {
    StapledResponse::from_der(der)?.check(issuer, serial, options)
}

/// A successful `OCSPResponse` parsed once (as a server staples it beside a certificate), to be
/// checked with [`StapledResponse::check`] for each certificate it may speak for. Parsing
/// authenticates nothing.
#[derive(Debug, Clone)]
pub struct StapledResponse {
    basic: Box<BasicOcspResponse>,
    /// `tbsResponseData` as DER, the bytes the signature covers.
    tbs_der: Vec<u8>,
}

impl StapledResponse {
    /// Parses a DER `OCSPResponse`; an unsuccessful one (`tryLater`, …) is
    /// [`CheckError::Unsuccessful`].
    pub fn from_der(der: &[u8]) -> Result<Self, CheckError> {
        let basic = match parse_response(der)? {
            ParsedResponse::Unsuccessful(status) => return Err(CheckError::Unsuccessful(status)),
            ParsedResponse::Basic(basic) => basic,
        };
        let tbs_der = basic
            .tbs_response_data
            .to_der()
            .map_err(|e| CheckError::Malformed(e.into()))?;
        Ok(Self { basic, tbs_der })
    }

    /// Whether one of the single responses carries the `CertID` of the certificate `serial`
    /// of the issuer hashed in `issuer` — a cheap, unauthenticated pre-selection; only
    /// [`StapledResponse::check`] says what the status is.
    pub fn names(&self, issuer: &IssuerHashes, serial: &SerialNumber) -> bool {
        self.basic
            .tbs_response_data
            .responses
            .iter()
            .any(|s| issuer.matches(&s.cert_id) && s.cert_id.serial_number == *serial)
    }

    /// Checks the response for the certificate `serial` issued by `issuer`, as
    /// [`check_response`] describes.
    pub fn check(
        &self,
        issuer: &Certificate,
        serial: &SerialNumber,
        options: &CheckOptions<'_>,
    ) -> Result<VerifiedStatus, CheckError> {
        let basic = &self.basic;
        let signer_key = responder_key(basic, issuer, options)?;
        verify_with(
            &signer_key,
            &basic.signature_algorithm,
            &self.tbs_der,
            basic.signature.raw_bytes(),
        )
        .map_err(CheckError::BadSignature)?;

        let data = &basic.tbs_response_data;
        if let Some(expected) = options.nonce {
            let echoed = data
                .response_extensions
                .as_deref()
                .unwrap_or(&[])
                .iter()
                .find(|e| e.extn_id == ID_PKIX_OCSP_NONCE)
                .map(|e| nonce_value(e.extn_value.as_bytes()));
            if echoed.as_deref() != Some(expected) {
                return Err(CheckError::NonceMismatch);
            }
        }

        let hashes = IssuerHashes::new(issuer).map_err(|e| CheckError::Malformed(e.into()))?;
        let single = data
            .responses
            .iter()
            .find(|s| hashes.matches(&s.cert_id) && s.cert_id.serial_number == *serial)
            .ok_or(CheckError::NoMatchingResponse)?;
        let produced_at = data.produced_at.to_system_time();
        check_times(single, produced_at, options)?;
        let status = match &single.cert_status {
            CertStatus::Good(_) => Status::Good,
            CertStatus::Unknown(_) => Status::Unknown,
            CertStatus::Revoked(info) => Status::Revoked {
                time: info.revocation_time.to_system_time(),
                reason: info.revocation_reason,
            },
        };
        Ok(VerifiedStatus {
            status,
            this_update: single.this_update.to_system_time(),
            next_update: single.next_update.map(|t| t.to_system_time()),
            produced_at,
        })
    }
}

fn check_times(
    single: &SingleResponse,
    produced_at: SystemTime,
    options: &CheckOptions<'_>,
) -> Result<(), CheckError> {
    let now = options.now;
    let skew = options.max_clock_skew;
    let latest_acceptable = now.checked_add(skew).unwrap_or(now);
    let this_update = single.this_update.to_system_time();
    if this_update > latest_acceptable || produced_at > latest_acceptable {
        return Err(CheckError::NotYetValid);
    }
    match single.next_update {
        Some(next) => {
            if next.to_system_time() < this_update {
                return Err(CheckError::Stale);
            }
            let deadline = next.to_system_time().checked_add(skew);
            if deadline.is_none_or(|d| d < now) {
                return Err(CheckError::Stale);
            }
        }
        None => {
            let oldest = options
                .max_age_without_next_update
                .checked_add(skew)
                .and_then(|age| this_update.checked_add(age));
            if oldest.is_none_or(|d| d < now) {
                return Err(CheckError::Stale);
            }
        }
    }
    Ok(())
}

/// The key that must have signed the response: the CA's, or an authorized delegate's.
fn responder_key(
    basic: &BasicOcspResponse,
    issuer: &Certificate,
    options: &CheckOptions<'_>,
) -> Result<SubjectPublicKeyInfoOwned, CheckError> {
    let ca_spki = issuer.tbs_certificate().subject_public_key_info();
    let responder_id = &basic.tbs_response_data.responder_id;
    if names(responder_id, issuer) {
        return Ok(ca_spki.clone());
    }
    let signer = basic
        .certs
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .find(|c| names(responder_id, c))
        .ok_or(CheckError::UnknownResponder)?;
    if signer.tbs_certificate().issuer() != issuer.tbs_certificate().subject() {
        return Err(CheckError::UnauthorizedResponder("not issued by the CA"));
    }
    verify_certificate_signature(signer, issuer)
        .map_err(|_| CheckError::UnauthorizedResponder("CA signature does not verify"))?;
    if !has_ocsp_signing(signer) {
        return Err(CheckError::UnauthorizedResponder(
            "no id-kp-OCSPSigning extended key usage",
        ));
    }
    // RFC 5280 §4.2.1.3: a key that signs responses needs digitalSignature when keyUsage is
    // present.
    match signer.tbs_certificate().get_extension::<KeyUsage>() {
        Ok(None) => {}
        Ok(Some((_, usage))) if usage.digital_signature() => {}
        _ => {
            return Err(CheckError::UnauthorizedResponder(
                "key usage without digitalSignature",
            ));
        }
    }
    // The same clock skew as for the response's own times.
    let validity = signer.tbs_certificate().validity();
    let not_before = validity.not_before.to_system_time();
    let not_after = validity.not_after.to_system_time();
    let now = options.now;
    let skew = options.max_clock_skew;
    let too_early = now.checked_add(skew).is_some_and(|t| t < not_before);
    let too_late = not_after.checked_add(skew).is_none_or(|t| t < now);
    if too_early || too_late {
        return Err(CheckError::UnauthorizedResponder(
            "outside its validity period",
        ));
    }
    Ok(signer.tbs_certificate().subject_public_key_info().clone())
}

/// Whether `id` names `cert` (by key hash or by subject name).
fn names(id: &ResponderId, cert: &Certificate) -> bool {
    match id {
        ResponderId::ByKey(hash) => {
            hash.as_bytes()
                == responder_key_hash(cert.tbs_certificate().subject_public_key_info()).as_slice()
        }
        ResponderId::ByName(name) => name == cert.tbs_certificate().subject(),
    }
}

/// Verifies `signature` over `message` with `spki` and `algorithm`.
pub(crate) fn verify_with(
    spki: &SubjectPublicKeyInfoOwned,
    algorithm: &AlgorithmIdentifierOwned,
    message: &[u8],
    signature: &[u8],
) -> Result<(), SignatureError> {
    verify_signature(
        &spki.owned_to_ref(),
        &algorithm.owned_to_ref(),
        message,
        signature,
    )
}

/// Verifies that `issuer`'s key signed `cert`.
pub(crate) fn verify_certificate_signature(
    cert: &Certificate,
    issuer: &Certificate,
) -> Result<(), SignatureError> {
    let tbs = cert
        .tbs_certificate()
        .to_der()
        .map_err(|_| SignatureError::BadSignature)?;
    verify_with(
        issuer.tbs_certificate().subject_public_key_info(),
        cert.signature_algorithm(),
        &tbs,
        cert.signature().raw_bytes(),
    )
}
