//! Stapled OCSP responses (RFC 6960) as a revocation source for path validation.
//!
//! A server staples, beside a certificate (a TLS handshake, a Confianza prekey bundle), a
//! recent OCSP response about it. [`StapledOcsp`] holds such responses, parsed once, and answers
//! [`RevocationSource::status`] for each certificate of the path: a response speaks for a
//! certificate when one of its single responses carries the certificate's `CertID` (issuer name
//! and key hashes, serial), and is then checked in full by [`StapledResponse::check`]:
//!
//! - signed by the certificate's issuer, or by a delegated responder certificate in the
//!   response that the issuer signed, with `id-kp-OCSPSigning` (and `digitalSignature` when it
//!   has keyUsage), valid at `now` (RFC 6960 §4.2.2.2);
//! - `thisUpdate ≤ now + skew` and `now − skew ≤ nextUpdate` (or, without `nextUpdate`,
//!   `thisUpdate` at most [`CheckOptions::max_age_without_next_update`] old).
//!
//! A response that names the certificate but fails those checks is an error
//! ([`RevocationError::Ocsp`]): the validator then falls back to the other sources (CRLs), and
//! only reports the error if none of them knows the status. A response that names nothing in
//! the path is ignored. The delegated responder's own revocation is not checked (RFC 6960
//! §4.2.2.2.1 lets a CA mark it `id-pkix-ocsp-nocheck`; a responder's certificate should be
//! short-lived).

use std::time::{Duration, SystemTime};

use super::cert::ParsedCertificate;
use super::crl::{RevocationError, RevocationSource, RevocationStatus};
use super::limits::MAX_STAPLED_RESPONSES;
use crate::ocsp::{CheckError, CheckOptions, IssuerHashes, StapledResponse, Status};
use crate::verify::PublicKey;

/// Stapled OCSP responses, consulted for every certificate of the path in revocation scope.
#[derive(Debug, Clone)]
pub struct StapledOcsp {
    responses: Vec<StapledResponse>,
    max_clock_skew: Duration,
    max_age_without_next_update: Duration,
}

impl StapledOcsp {
    /// Responses already parsed. Only the first [`MAX_STAPLED_RESPONSES`] are consulted.
    /// Clock skew and age without `nextUpdate` are those of [`CheckOptions::at`] (five minutes,
    /// one day).
    pub fn new(responses: Vec<StapledResponse>) -> Self {
        let defaults = CheckOptions::at(SystemTime::UNIX_EPOCH);
        Self {
            responses,
            max_clock_skew: defaults.max_clock_skew,
            max_age_without_next_update: defaults.max_age_without_next_update,
        }
    }

    /// Parses DER `OCSPResponse`s as stapled; the first that does not parse (or is an
    /// unsuccessful response such as `tryLater`) is the error.
    pub fn from_der<'a>(responses: impl IntoIterator<Item = &'a [u8]>) -> Result<Self, CheckError> {
        let parsed = responses
            .into_iter()
            .map(StapledResponse::from_der)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(parsed))
    }

    /// Sets the clock difference tolerated between this machine and the responder.
    #[must_use]
    pub fn with_clock_skew(mut self, skew: Duration) -> Self {
        self.max_clock_skew = skew;
        self
    }

    /// Sets how old `thisUpdate` may be in a response without `nextUpdate`.
    #[must_use]
    pub fn with_max_age_without_next_update(mut self, age: Duration) -> Self {
        self.max_age_without_next_update = age;
        self
    }

    /// The responses.
    pub fn responses(&self) -> &[StapledResponse] {
        &self.responses
    }
}

impl RevocationSource for StapledOcsp {
    fn status(
        &self,
        cert: &ParsedCertificate,
        issuer: &ParsedCertificate,
        _issuer_key: &PublicKey,
        now: u64,
    ) -> Result<RevocationStatus, RevocationError> {
        let issuer_cert = issuer.certificate();
        let hashes = IssuerHashes::new(issuer_cert).map_err(|e| CheckError::Malformed(e.into()))?;
        let serial = cert.certificate().tbs_certificate().serial_number();
        let now = SystemTime::UNIX_EPOCH
            .checked_add(Duration::from_secs(now))
            .ok_or(CheckError::Stale)?;
        let options = CheckOptions {
            now,
            max_clock_skew: self.max_clock_skew,
            max_age_without_next_update: self.max_age_without_next_update,
            nonce: None,
        };
        let mut first_error = None;
        for response in self.responses.iter().take(MAX_STAPLED_RESPONSES) {
            if !response.names(&hashes, serial) {
                continue;
            }
            match response.check(issuer_cert, serial, &options) {
                Ok(verified) => {
                    return Ok(match verified.status() {
                        Status::Good => RevocationStatus::Good,
                        Status::Unknown => RevocationStatus::Unknown,
                        Status::Revoked { time, reason } => RevocationStatus::Revoked {
                            reason,
                            revoked_at: time
                                .duration_since(SystemTime::UNIX_EPOCH)
                                .map_or(0, |d| d.as_secs()),
                        },
                    });
                }
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        match first_error {
            Some(error) => Err(error.into()),
            None => Ok(RevocationStatus::Unknown),
        }
    }
}
