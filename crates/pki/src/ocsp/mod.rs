//! OCSP (RFC 6960): requests, responses, a responder and a client-side checker.
//!
//! - [`RequestBuilder`] makes an `OCSPRequest` (one or more certificates, optional nonce).
//! - [`parse_request`] parses and bounds-checks one (the server decodes GET base64url / POST
//!   bodies and hands the DER here).
//! - [`Responder`] answers a request from a [`CertStatusSource`] (the live CA database), signing
//!   with a caller-supplied closure, so the key can live anywhere (file, HSM, another process).
//!   It always produces an `OCSPResponse`: failures become `malformedRequest`, `unauthorized`,
//!   `tryLater` or `internalError` responses.
//! - [`BasicResponseBuilder`] is the lower-level builder the responder uses.
//! - [`check_response`] verifies a response for a client or for path validation (stapled
//!   response): signature by the CA or by a delegated responder certificate issued by it, the
//!   `CertID`, freshness and the nonce. Only it (and [`StapledResponse::check`], the same check
//!   on a response parsed once) produces a [`VerifiedStatus`]. Path validation uses stapled
//!   responses through [`crate::path::StapledOcsp`].
//!
//! ```
//! use confianza_pki::ocsp::{self, CertIdHash, RequestBuilder};
//! # fn demo(issuer: &x509_cert::Certificate, serial: &x509_cert::serial_number::SerialNumber)
//! #     -> Result<(), Box<dyn std::error::Error>> {
//! let der = RequestBuilder::new()
//!     .certificate(issuer, serial, CertIdHash::Sha1)?
//!     .nonce(&[7u8; 16])?
//!     .to_der()?;
//! let parsed = ocsp::parse_request(&der)?;
//! assert_eq!(parsed.nonce(), Some(&[7u8; 16][..]));
//! # Ok(()) }
//! ```

pub mod asn1;
mod certid;
mod check;
pub mod limits;
mod request;
mod responder;
mod response;

pub use certid::{CertIdHash, IssuerHashes, cert_id, responder_key_hash};
pub use check::{CheckError, CheckOptions, StapledResponse, VerifiedStatus, check_response};
pub use request::{ParsedRequest, RequestBuilder, RequestError, parse_request};
pub use responder::{Answer, CertStatusSource, Responder, ResponderError, StatusUnavailable};
pub use response::{
    BasicResponseBuilder, BuildError, ParsedResponse, ResponseError, SingleStatus, Status,
    error_response, parse_response,
};

pub use asn1::OcspResponseStatus;
