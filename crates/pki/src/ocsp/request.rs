//! Building and parsing `OCSPRequest`s.

use der::asn1::OctetString;
use der::{Decode, Encode};
use x509_cert::Certificate;
use x509_cert::ext::Extension;
use x509_cert::serial_number::SerialNumber;

use super::asn1::{CertId, ID_PKIX_OCSP_NONCE, OcspRequest, Request, TbsRequest, Version};
use super::certid::{CertIdHash, cert_id};
use super::limits::{MAX_NONCE_LEN, MAX_REQUEST_BYTES, MAX_REQUESTS};

/// Why an `OCSPRequest` was refused. Every variant maps to `malformedRequest`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// Larger than [`MAX_REQUEST_BYTES`].
    #[error("OCSP request of {0} bytes exceeds the limit")]
    TooLarge(usize),
    /// Not a DER `OCSPRequest`.
    #[error("OCSP request is not valid DER: {0}")]
    Der(#[from] der::Error),
    /// `requestList` is empty.
    #[error("OCSP request asks about no certificate")]
    Empty,
    /// More than [`MAX_REQUESTS`] certificates.
    #[error("OCSP request asks about {0} certificates, over the limit")]
    TooManyRequests(usize),
    /// A nonce of length 0 or over [`MAX_NONCE_LEN`].
    #[error("OCSP nonce of {0} octets is out of range 1..=32")]
    BadNonceLength(usize),
    /// The same extension twice.
    #[error("duplicate extension {0}")]
    DuplicateExtension(der::asn1::ObjectIdentifier),
    /// A critical extension this responder does not understand.
    #[error("unsupported critical extension {0}")]
    UnsupportedCriticalExtension(der::asn1::ObjectIdentifier),
    /// Builder misuse: no certificate added.
    #[error("no certificate added to the request")]
    NothingRequested,
}

/// A parsed, bounds-checked `OCSPRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedRequest {
    request: OcspRequest,
    nonce: Option<Nonce>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Nonce {
    value: Vec<u8>,
    extension: Extension,
}

impl ParsedRequest {
    /// The `CertID`s asked about, in request order.
    pub fn cert_ids(&self) -> impl Iterator<Item = &CertId> {
        self.request
            .tbs_request
            .request_list
            .iter()
            .map(|r| &r.req_cert)
    }

    /// The nonce octets, if the request carries one.
    pub fn nonce(&self) -> Option<&[u8]> {
        self.nonce.as_ref().map(|n| n.value.as_slice())
    }

    /// The nonce extension exactly as received, to echo in the response.
    pub fn nonce_extension(&self) -> Option<&Extension> {
        self.nonce.as_ref().map(|n| &n.extension)
    }

    /// The decoded request.
    pub fn request(&self) -> &OcspRequest {
        &self.request
    }
}

/// Parses a DER `OCSPRequest` and checks it against the limits in [`super::limits`].
///
/// Safe on any input (this is the fuzz entry point for requests).
pub fn parse_request(der: &[u8]) -> Result<ParsedRequest, RequestError> {
    if der.len() > MAX_REQUEST_BYTES {
        return Err(RequestError::TooLarge(der.len()));
    }
    let request = OcspRequest::from_der(der)?;
    let tbs = &request.tbs_request;
    match tbs.request_list.len() {
        0 => return Err(RequestError::Empty),
        n if n > MAX_REQUESTS => return Err(RequestError::TooManyRequests(n)),
        _ => {}
    }
    let mut nonce = None;
    let extensions = tbs.request_extensions.as_deref().unwrap_or(&[]);
    check_extensions(extensions)?;
    for ext in extensions {
        if ext.extn_id == ID_PKIX_OCSP_NONCE {
            let value = nonce_value(ext.extn_value.as_bytes());
            if value.is_empty() || value.len() > MAX_NONCE_LEN {
                return Err(RequestError::BadNonceLength(value.len()));
            }
            nonce = Some(Nonce {
                value,
                extension: ext.clone(),
            });
        }
    }
    for single in &tbs.request_list {
        check_extensions(single.single_request_extensions.as_deref().unwrap_or(&[]))?;
    }
    Ok(ParsedRequest { request, nonce })
}

/// Rejects duplicates and critical extensions other than the nonce.
fn check_extensions(extensions: &[Extension]) -> Result<(), RequestError> {
    for (i, ext) in extensions.iter().enumerate() {
        if extensions
            .iter()
            .skip(i + 1)
            .any(|other| other.extn_id == ext.extn_id)
        {
            return Err(RequestError::DuplicateExtension(ext.extn_id));
        }
        if ext.critical && ext.extn_id != ID_PKIX_OCSP_NONCE {
            return Err(RequestError::UnsupportedCriticalExtension(ext.extn_id));
        }
    }
    Ok(())
}

/// The nonce inside an extension value. RFC 8954 wraps it in an OCTET STRING (as OpenSSL
/// does); some old clients put the bare octets in `extnValue`, which is accepted too.
pub(crate) fn nonce_value(extn_value: &[u8]) -> Vec<u8> {
    match OctetString::from_der(extn_value) {
        Ok(inner) => inner.as_bytes().to_vec(),
        Err(_) => extn_value.to_vec(),
    }
}

/// Builds an `OCSPRequest` (for clients and tests).
#[derive(Debug, Clone, Default)]
pub struct RequestBuilder {
    requests: Vec<Request>,
    extensions: Vec<Extension>,
}

impl RequestBuilder {
    /// An empty request.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks about the certificate with `serial` issued by `issuer`.
    pub fn certificate(
        self,
        issuer: &Certificate,
        serial: &SerialNumber,
        hash: CertIdHash,
    ) -> Result<Self, der::Error> {
        Ok(self.cert_id(cert_id(issuer, serial, hash)?))
    }

    /// Asks about the certificate named by `id`.
    pub fn cert_id(mut self, id: CertId) -> Self {
        self.requests.push(Request {
            req_cert: id,
            single_request_extensions: None,
        });
        self
    }

    /// Adds a nonce extension (RFC 8954: the octets wrapped in an OCTET STRING).
    pub fn nonce(mut self, nonce: &[u8]) -> Result<Self, der::Error> {
        let inner = OctetString::new(nonce)?.to_der()?;
        self.extensions.retain(|e| e.extn_id != ID_PKIX_OCSP_NONCE);
        self.extensions.push(Extension {
            extn_id: ID_PKIX_OCSP_NONCE,
            critical: false,
            extn_value: OctetString::new(inner)?,
        });
        Ok(self)
    }

    /// The request structure.
    pub fn build(self) -> Result<OcspRequest, RequestError> {
        if self.requests.is_empty() {
            return Err(RequestError::NothingRequested);
        }
        Ok(OcspRequest {
            tbs_request: TbsRequest {
                version: Version::V1,
                requestor_name: None,
                request_list: self.requests,
                request_extensions: if self.extensions.is_empty() {
                    None
                } else {
                    Some(self.extensions)
                },
            },
            optional_signature: None,
        })
    }

    /// The request as DER.
    pub fn to_der(self) -> Result<Vec<u8>, RequestError> {
        Ok(self.build()?.to_der()?)
    }
}
