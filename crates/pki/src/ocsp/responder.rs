//! An OCSP responder for one issuing CA.

use std::time::{Duration, SystemTime};

use der::asn1::ObjectIdentifier;
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::ext::pkix::ExtendedKeyUsage;
use x509_cert::serial_number::SerialNumber;

use super::asn1::{OcspResponseStatus, ResponderId};
use super::certid::{IssuerHashes, responder_id_by_key};
use super::request::parse_request;
use super::response::{BasicResponseBuilder, BuildError, SingleStatus, Status, error_response};

/// `id-kp-OCSPSigning` (RFC 5280 §4.2.1.12).
pub(crate) const ID_KP_OCSP_SIGNING: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");

/// Why a status could not be looked up right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StatusUnavailable {
    /// Temporarily unavailable (database busy or unreachable): answered with `tryLater`.
    TryLater,
    /// Broken: answered with `internalError`.
    Internal,
}

/// Where the responder looks up certificate status: the live CA database.
pub trait CertStatusSource {
    /// The status of the certificate with `serial` issued by the CA whose public key has the
    /// SHA-1 hash `issuer_key_hash` (RFC 6960 `KeyHash`, whatever hash the request used).
    /// A serial the CA never issued is [`Status::Unknown`].
    fn status(
        &self,
        issuer_key_hash: &[u8],
        serial: &SerialNumber,
    ) -> Result<Status, StatusUnavailable>;
}

/// Why a responder could not be configured.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResponderError {
    /// A certificate could not be encoded.
    #[error("encoding failed: {0}")]
    Der(#[from] der::Error),
    /// The delegated signing certificate was not issued by the CA (issuer name differs or the
    /// CA's signature does not verify).
    #[error("the OCSP signing certificate is not issued by this CA")]
    NotIssuedByCa,
    /// The delegated signing certificate lacks `id-kp-OCSPSigning` in its extended key usage.
    #[error("the OCSP signing certificate lacks the OCSPSigning extended key usage")]
    MissingOcspSigningEku,
}

/// The outcome of one request: the DER `OCSPResponse` to send, and its status for logs and
/// metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The DER `OCSPResponse` (`application/ocsp-response`).
    pub der: Vec<u8>,
    /// Its `responseStatus`.
    pub status: OcspResponseStatus,
}

impl Answer {
    fn error(status: OcspResponseStatus) -> Self {
        Self {
            der: error_response(status),
            status,
        }
    }
}

/// Answers OCSP requests about the certificates of one CA.
///
/// Responses are signed either by the CA itself or by a delegated OCSP signing certificate
/// issued by the CA (RFC 6960 §4.2.2.2), which is then included in `certs`. The `ResponderID`
/// is `byKey`.
#[derive(Debug, Clone)]
pub struct Responder {
    issuer: IssuerHashes,
    responder_id: ResponderId,
    certs: Vec<Certificate>,
    signature_algorithm: AlgorithmIdentifierOwned,
    validity: Duration,
}

impl Responder {
    /// A responder for `ca`. `delegated` is the OCSP signing certificate (issued by `ca`, with
    /// `id-kp-OCSPSigning`), or `None` when the CA key signs responses itself.
    /// `signature_algorithm` is what the signing closure produces; `validity` is the gap
    /// between `thisUpdate` and `nextUpdate`.
    pub fn new(
        ca: &Certificate,
        delegated: Option<&Certificate>,
        signature_algorithm: AlgorithmIdentifierOwned,
        validity: Duration,
    ) -> Result<Self, ResponderError> {
        let issuer = IssuerHashes::new(ca)?;
        let (responder_id, certs) = match delegated {
            None => (
                responder_id_by_key(ca.tbs_certificate().subject_public_key_info())?,
                Vec::new(),
            ),
            Some(signer) => {
                check_delegated(ca, signer)?;
                (
                    responder_id_by_key(signer.tbs_certificate().subject_public_key_info())?,
                    vec![signer.clone()],
                )
            }
        };
        Ok(Self {
            issuer,
            responder_id,
            certs,
            signature_algorithm,
            validity,
        })
    }

    /// The `ResponderID` this responder signs as.
    pub fn responder_id(&self) -> &ResponderId {
        &self.responder_id
    }

    /// Answers the DER `OCSPRequest` in `request` at time `now`, looking statuses up in
    /// `source` and signing with `sign`. Never fails: problems become error responses
    /// (`malformedRequest`, `unauthorized` when no certificate asked about is this CA's,
    /// `tryLater` / `internalError` from the source or the signer).
    pub fn respond<E>(
        &self,
        request: &[u8],
        now: SystemTime,
        source: &impl CertStatusSource,
        sign: impl FnMut(&[u8]) -> Result<Vec<u8>, E>,
    ) -> Answer {
        let Ok(parsed) = parse_request(request) else {
            return Answer::error(OcspResponseStatus::MalformedRequest);
        };
        if !parsed.cert_ids().any(|id| self.issuer.matches(id)) {
            return Answer::error(OcspResponseStatus::Unauthorized);
        }
        let next_update = now.checked_add(self.validity);
        let mut builder = BasicResponseBuilder::new(self.responder_id.clone(), now);
        for id in parsed.cert_ids() {
            let status = if self.issuer.matches(id) {
                match source.status(self.issuer.key_sha1(), &id.serial_number) {
                    Ok(status) => status,
                    Err(StatusUnavailable::TryLater) => {
                        return Answer::error(OcspResponseStatus::TryLater);
                    }
                    Err(StatusUnavailable::Internal) => {
                        return Answer::error(OcspResponseStatus::InternalError);
                    }
                }
            } else {
                // Another CA's certificate, asked together with one of ours.
                Status::Unknown
            };
            builder = builder.single(SingleStatus {
                cert_id: id.clone(),
                status,
                this_update: now,
                next_update,
            });
        }
        if let Some(nonce) = parsed.nonce_extension() {
            builder = builder.extension(nonce.clone());
        }
        builder = builder.certs(self.certs.clone());
        match builder.sign(self.signature_algorithm.clone(), sign) {
            Ok(der) => Answer {
                der,
                status: OcspResponseStatus::Successful,
            },
            Err(BuildError::Der(_) | BuildError::Sign(_) | BuildError::Empty) => {
                Answer::error(OcspResponseStatus::InternalError)
            }
        }
    }
}

fn check_delegated(ca: &Certificate, signer: &Certificate) -> Result<(), ResponderError> {
    if signer.tbs_certificate().issuer() != ca.tbs_certificate().subject() {
        return Err(ResponderError::NotIssuedByCa);
    }
    if super::check::verify_certificate_signature(signer, ca).is_err() {
        return Err(ResponderError::NotIssuedByCa);
    }
    if !has_ocsp_signing(signer) {
        return Err(ResponderError::MissingOcspSigningEku);
    }
    Ok(())
}

/// Whether `cert` carries `id-kp-OCSPSigning` in a well-formed extended key usage extension.
pub(crate) fn has_ocsp_signing(cert: &Certificate) -> bool {
    matches!(
        cert.tbs_certificate().get_extension::<ExtendedKeyUsage>(),
        Ok(Some((_, eku))) if eku.0.contains(&ID_KP_OCSP_SIGNING)
    )
}
