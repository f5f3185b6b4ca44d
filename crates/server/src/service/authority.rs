//! What the service asks of the certification authority, as an object-safe trait: the data
//! directory's [`crate::authority::Authority`] implements it, and the service never depends on
//! how certificates are issued or stored.

use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

use confianza_api::{EcPublicKey, RevocationReason};

/// A boxed, sendable future (the trait is used as `dyn`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An identity certificate issued at enrollment or renewal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    /// DER of the new certificate.
    pub certificate_der: Vec<u8>,
    /// DER, issuing CA first, root last.
    pub chain_der: Vec<Vec<u8>>,
}

/// Why the authority refused. Each variant maps to one API error code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorityRefusal {
    /// The RA refused the enrollment code (unknown, used, or for another address).
    #[error("the enrollment code was refused")]
    InvalidCode,
    /// The enrollment code or the certificate is past its time.
    #[error("expired")]
    Expired,
    /// No code was given and open registration is off.
    #[error("open registration is off")]
    RegistrationClosed,
    /// The certificate is revoked.
    #[error("the certificate is revoked")]
    Revoked,
    /// The certificate is not one this CA issued.
    #[error("unknown certificate")]
    UnknownCertificate,
    /// Anything else (database, keys): details for the log only.
    #[error("authority failure: {0}")]
    Internal(String),
}

/// The CA operations the messaging service performs. Proofs of possession are checked by the
/// service before any of these is called.
pub trait IdentityAuthority: Send + Sync + 'static {
    /// The RA checks `code` for `address` (`None`: open registration) and the CA issues the
    /// identity certificate for `identity_key`.
    fn enroll_identity<'a>(
        &'a self,
        address: &'a str,
        code: Option<&'a str>,
        identity_key: &'a EcPublicKey,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<IssuedCertificate, AuthorityRefusal>>;

    /// A new certificate with the same subject as `previous_der`, for `identity_key`.
    fn renew_identity<'a>(
        &'a self,
        previous_der: &'a [u8],
        identity_key: &'a EcPublicKey,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<IssuedCertificate, AuthorityRefusal>>;

    /// Revocation of its own certificate, asked by its holder.
    fn revoke_by_holder<'a>(
        &'a self,
        certificate_der: &'a [u8],
        reason: RevocationReason,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<(), AuthorityRefusal>>;

    /// A fresh DER OCSP response for `certificate_der`, for stapling in bundles.
    fn ocsp_for_certificate<'a>(
        &'a self,
        certificate_der: &'a [u8],
        now: SystemTime,
    ) -> BoxFuture<'a, Result<Vec<u8>, AuthorityRefusal>>;

    /// Whether the CA database still holds `certificate_der` as issued and not revoked: one
    /// indexed read, made before a cached stapled OCSP response is served again.
    fn certificate_still_good<'a>(
        &'a self,
        certificate_der: &'a [u8],
    ) -> BoxFuture<'a, Result<bool, AuthorityRefusal>>;

    /// Whether enrollment without an RA code is allowed.
    fn open_registration(&self) -> bool;
}

impl IdentityAuthority for crate::authority::Authority {
    fn enroll_identity<'a>(
        &'a self,
        address: &'a str,
        code: Option<&'a str>,
        identity_key: &'a EcPublicKey,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<IssuedCertificate, AuthorityRefusal>> {
        Box::pin(async move {
            let issued = crate::authority::Authority::enroll_identity(
                self,
                address,
                code,
                identity_key,
                now,
            )
            .await
            .map_err(refusal)?;
            Ok(IssuedCertificate {
                certificate_der: issued.certificate_der,
                chain_der: issued.chain_der,
            })
        })
    }

    fn renew_identity<'a>(
        &'a self,
        previous_der: &'a [u8],
        identity_key: &'a EcPublicKey,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<IssuedCertificate, AuthorityRefusal>> {
        Box::pin(async move {
            let issued =
                crate::authority::Authority::renew_identity(self, previous_der, identity_key, now)
                    .await
                    .map_err(refusal)?;
            Ok(IssuedCertificate {
                certificate_der: issued.certificate_der,
                chain_der: issued.chain_der,
            })
        })
    }

    fn revoke_by_holder<'a>(
        &'a self,
        certificate_der: &'a [u8],
        reason: RevocationReason,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<(), AuthorityRefusal>> {
        use confianza_pki::crl::RevocationReason as Rfc5280;
        let reason = match reason {
            RevocationReason::Unspecified => Rfc5280::Unspecified,
            RevocationReason::KeyCompromise => Rfc5280::KeyCompromise,
            RevocationReason::AffiliationChanged => Rfc5280::AffiliationChanged,
            RevocationReason::Superseded => Rfc5280::Superseded,
            RevocationReason::CessationOfOperation => Rfc5280::CessationOfOperation,
        };
        Box::pin(async move {
            crate::authority::Authority::revoke_by_holder(self, certificate_der, reason, now)
                .await
                .map_err(refusal)
        })
    }

    fn ocsp_for_certificate<'a>(
        &'a self,
        certificate_der: &'a [u8],
        now: SystemTime,
    ) -> BoxFuture<'a, Result<Vec<u8>, AuthorityRefusal>> {
        Box::pin(async move {
            crate::authority::Authority::ocsp_for_certificate(self, certificate_der, now)
                .await
                .map_err(refusal)
        })
    }

    fn certificate_still_good<'a>(
        &'a self,
        certificate_der: &'a [u8],
    ) -> BoxFuture<'a, Result<bool, AuthorityRefusal>> {
        Box::pin(async move {
            crate::authority::Authority::certificate_still_good(self, certificate_der)
                .await
                .map_err(refusal)
        })
    }

    fn open_registration(&self) -> bool {
        crate::authority::Authority::open_registration(self)
    }
}

/// The authority's errors, as the service distinguishes them.
fn refusal(error: crate::authority::AuthorityError) -> AuthorityRefusal {
    use crate::authority::AuthorityError as E;
    match error {
        E::InvalidCode | E::CodeUsed | E::Refused(_) | E::InvalidRequest(_) => {
            AuthorityRefusal::InvalidCode
        }
        E::CodeExpired | E::Expired(_) => AuthorityRefusal::Expired,
        E::CodeRequired => AuthorityRefusal::RegistrationClosed,
        E::Revoked(_) => AuthorityRefusal::Revoked,
        E::UnknownSerial(_) | E::NotOurCertificate => AuthorityRefusal::UnknownCertificate,
        other => AuthorityRefusal::Internal(other.to_string()),
    }
}
