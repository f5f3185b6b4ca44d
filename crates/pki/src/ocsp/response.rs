//! Building and parsing `OCSPResponse`s.

use std::time::SystemTime;

use der::asn1::{BitString, GeneralizedTime, Null, OctetString};
use der::{Decode, Encode};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::crl::CrlReason;

use super::asn1::{
    BasicOcspResponse, CertId, CertStatus, ID_PKIX_OCSP_BASIC, OcspResponse, OcspResponseStatus,
    ResponderId, ResponseBytes, ResponseData, RevokedInfo, SingleResponse, Version,
};
use super::limits::{MAX_RESPONSE_BYTES, MAX_RESPONSE_ENTRIES};

/// A certificate's revocation status, as the CA database knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Issued by this CA and not revoked.
    Good,
    /// Revoked at `time`, with an optional reason.
    Revoked {
        /// When it was revoked.
        time: SystemTime,
        /// Why (omitted in the response when `None`).
        reason: Option<CrlReason>,
    },
    /// The responder does not know this certificate.
    Unknown,
}

/// One answer to put in a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SingleStatus {
    /// The certificate, as named in the request.
    pub cert_id: CertId,
    /// Its status.
    pub status: Status,
    /// When the status was known to be correct.
    pub this_update: SystemTime,
    /// When newer information will be available.
    pub next_update: Option<SystemTime>,
}

/// Why a response could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError<E> {
    /// A time outside GeneralizedTime's range, or an encoding failure.
    #[error("encoding the OCSP response failed: {0}")]
    Der(#[from] der::Error),
    /// The signing closure failed.
    #[error("signing the OCSP response failed")]
    Sign(#[source] E),
    /// No single response was added.
    #[error("an OCSP response needs at least one single response")]
    Empty,
}

/// Builds and signs a `BasicOCSPResponse` wrapped in a successful `OCSPResponse`.
#[derive(Debug, Clone)]
pub struct BasicResponseBuilder {
    responder_id: ResponderId,
    produced_at: SystemTime,
    responses: Vec<SingleStatus>,
    extensions: Vec<Extension>,
    certs: Vec<Certificate>,
}

impl BasicResponseBuilder {
    /// A response from `responder_id`, produced at `produced_at`.
    pub fn new(responder_id: ResponderId, produced_at: SystemTime) -> Self {
        Self {
            responder_id,
            produced_at,
            responses: Vec::new(),
            extensions: Vec::new(),
            certs: Vec::new(),
        }
    }

    /// Adds one certificate's status.
    pub fn single(mut self, single: SingleStatus) -> Self {
        self.responses.push(single);
        self
    }

    /// Adds a response extension (for example the request's nonce extension, echoed).
    pub fn extension(mut self, extension: Extension) -> Self {
        self.extensions.push(extension);
        self
    }

    /// Includes certificates that help verify the signature (the delegated responder cert).
    pub fn certs(mut self, certs: Vec<Certificate>) -> Self {
        self.certs = certs;
        self
    }

    /// The `ResponseData` to be signed.
    pub fn tbs(&self) -> Result<ResponseData, der::Error> {
        let responses = self
            .responses
            .iter()
            .map(single_response)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ResponseData {
            version: Version::V1,
            responder_id: self.responder_id.clone(),
            produced_at: GeneralizedTime::from_system_time(self.produced_at)?,
            responses,
            response_extensions: if self.extensions.is_empty() {
                None
            } else {
                Some(self.extensions.clone())
            },
        })
    }

    /// Signs the DER of `tbsResponseData` with `sign` (which must produce a signature for
    /// `signature_algorithm`) and returns the DER `OCSPResponse`.
    pub fn sign<E>(
        self,
        signature_algorithm: AlgorithmIdentifierOwned,
        mut sign: impl FnMut(&[u8]) -> Result<Vec<u8>, E>,
    ) -> Result<Vec<u8>, BuildError<E>> {
        if self.responses.is_empty() {
            return Err(BuildError::Empty);
        }
        let tbs = self.tbs()?;
        let tbs_der = tbs.to_der()?;
        let signature = sign(&tbs_der).map_err(BuildError::Sign)?;
        let basic = BasicOcspResponse {
            tbs_response_data: tbs,
            signature_algorithm,
            signature: BitString::from_bytes(&signature)?,
            certs: if self.certs.is_empty() {
                None
            } else {
                Some(self.certs)
            },
        };
        let response = OcspResponse {
            response_status: OcspResponseStatus::Successful,
            response_bytes: Some(ResponseBytes {
                response_type: ID_PKIX_OCSP_BASIC,
                response: OctetString::new(basic.to_der()?)?,
            }),
        };
        Ok(response.to_der()?)
    }
}

fn single_response(s: &SingleStatus) -> Result<SingleResponse, der::Error> {
    let cert_status = match s.status {
        Status::Good => CertStatus::Good(Null),
        Status::Unknown => CertStatus::Unknown(Null),
        Status::Revoked { time, reason } => CertStatus::Revoked(RevokedInfo {
            revocation_time: GeneralizedTime::from_system_time(time)?,
            revocation_reason: reason,
        }),
    };
    Ok(SingleResponse {
        cert_id: s.cert_id.clone(),
        cert_status,
        this_update: GeneralizedTime::from_system_time(s.this_update)?,
        next_update: s
            .next_update
            .map(GeneralizedTime::from_system_time)
            .transpose()?,
        single_extensions: None,
    })
}

/// An unsuccessful `OCSPResponse` (no `responseBytes`): `malformedRequest`, `internalError`,
/// `tryLater`, `sigRequired` or `unauthorized`. Passing `Successful` yields `internalError`,
/// since a successful response needs a body.
pub fn error_response(status: OcspResponseStatus) -> Vec<u8> {
    let status = match status {
        OcspResponseStatus::Successful => OcspResponseStatus::InternalError,
        other => other,
    };
    // SEQUENCE { ENUMERATED status }: five fixed octets, no encoder needed.
    vec![0x30, 0x03, 0x0a, 0x01, status as u8]
}

/// Why a response could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    /// Larger than [`MAX_RESPONSE_BYTES`].
    #[error("OCSP response of {0} bytes exceeds the limit")]
    TooLarge(usize),
    /// Not valid DER.
    #[error("OCSP response is not valid DER: {0}")]
    Der(#[from] der::Error),
    /// A successful status without `responseBytes`, or an error status with them.
    #[error("OCSP response status and body disagree")]
    Inconsistent,
    /// A response type other than `id-pkix-ocsp-basic`.
    #[error("unsupported OCSP response type {0}")]
    UnsupportedType(der::asn1::ObjectIdentifier),
    /// More single responses or certificates than [`MAX_RESPONSE_ENTRIES`].
    #[error("OCSP response has too many entries ({0})")]
    TooManyEntries(usize),
}

/// A parsed `OCSPResponse`: either an error status, or a basic response (not yet verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedResponse {
    /// Any status other than `successful`.
    Unsuccessful(OcspResponseStatus),
    /// A successful response carrying a `BasicOCSPResponse`.
    Basic(Box<BasicOcspResponse>),
}

/// Parses a DER `OCSPResponse` without verifying it.
///
/// Safe on any input (this is the fuzz entry point for responses).
pub fn parse_response(der: &[u8]) -> Result<ParsedResponse, ResponseError> {
    if der.len() > MAX_RESPONSE_BYTES {
        return Err(ResponseError::TooLarge(der.len()));
    }
    let response = OcspResponse::from_der(der)?;
    match (response.response_status, response.response_bytes) {
        (OcspResponseStatus::Successful, Some(bytes)) => {
            if bytes.response_type != ID_PKIX_OCSP_BASIC {
                return Err(ResponseError::UnsupportedType(bytes.response_type));
            }
            let basic = BasicOcspResponse::from_der(bytes.response.as_bytes())?;
            let entries =
                basic.tbs_response_data.responses.len() + basic.certs.as_ref().map_or(0, Vec::len);
            if entries > MAX_RESPONSE_ENTRIES {
                return Err(ResponseError::TooManyEntries(entries));
            }
            Ok(ParsedResponse::Basic(Box::new(basic)))
        }
        (OcspResponseStatus::Successful, None) | (_, Some(_)) => Err(ResponseError::Inconsistent),
        (status, None) => Ok(ParsedResponse::Unsuccessful(status)),
    }
}
