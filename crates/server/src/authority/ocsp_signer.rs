//! The delegated OCSP signer (RFC 6960 §4.2.2.2): issued, checked against its key, swapped
//! in whole, and renewed by the running service before it expires.
//!
//! The signer certificate carries `id-pkix-ocsp-nocheck`, so relying parties cannot check its
//! own revocation; RFC 6960 §4.2.2.2.1 advises a short lifetime renewed often. Confianza
//! issues it for [`OCSP_SIGNER_VALIDITY_DAYS`] and the service renews it once less than
//! [`OCSP_SIGNER_RENEWAL_FRACTION`] of that lifetime is left (30 of 90 days), checking at
//! start and every [`crate::service`] OCSP renewal interval. Responses already stapled with
//! the old signer stay verifiable: it is still valid for weeks.
//!
//! Renewal order, so a crash at any point leaves a usable directory:
//! 1. the new certificate is recorded in the CA database (linked to the one it replaces);
//! 2. the new key is written (`DIR/ca/ocsp.key`, sealed like the key it replaces);
//! 3. the new certificate is written (`DIR/ca/ocsp.pem`);
//! 4. the in-memory signer is replaced in one step.
//!
//! A crash between 2 and 3 leaves a key without its certificate on disk: [`reconcile`], run
//! when the directory is opened, finds the certificate of that key in the database (step 1)
//! and rewrites `ocsp.pem`. Several nodes sharing one database each renew their own signer;
//! every one is a valid delegate of the CA. A signer renewed on disk by
//! `ca renew-service-certs` while the service runs is adopted at the next check instead of
//! issuing another.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use confianza_pki::ca::{IssuedCertificate, Issuer};
use confianza_pki::csr;
use confianza_pki::ocsp::Responder;
use confianza_pki::profile::CertificateKind;
use confianza_pki::ra::ApprovedRequest;
use confianza_pki::seal::{self, SealParams};
use confianza_pki::serial::Serial;
use confianza_pki::signer::CaKey;
use der::{Decode, Encode};
use ed25519_dalek::pkcs8::EncodePrivateKey;
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use zeroize::Zeroizing;

use super::init::{INIT_OPERATOR, ed25519_csr, record_replacement};
use super::layout::{self, Layout};
use super::{Authority, AuthorityError, OCSP_VALIDITY, hex_lower};
use crate::store::ca::{CaStore, CertificateQuery, SqlCaStore};

/// Lifetime of a delegated OCSP signing certificate.
pub const OCSP_SIGNER_VALIDITY_DAYS: u32 = 90;

/// The signer is renewed once less than 1/N of its lifetime is left (here the last third).
pub const OCSP_SIGNER_RENEWAL_FRACTION: u32 = 3;

/// The signer in use: key, certificate, and the responder built on them.
pub(super) struct OcspSigner {
    pub(super) key: CaKey,
    pub(super) cert_der: Vec<u8>,
    pub(super) responder: Responder,
    serial_hex: String,
    not_before: SystemTime,
    not_after: SystemTime,
}

impl OcspSigner {
    /// Checks `cert_der` as a delegate of `issuer` (RFC 6960 §4.2.2.2) for `key`.
    pub(super) fn new(
        issuer: &Certificate,
        key: CaKey,
        cert_der: Vec<u8>,
    ) -> Result<Self, AuthorityError> {
        let cert = Certificate::from_der(&cert_der)?;
        if cert.tbs_certificate().subject_public_key_info().to_der()? != key.public_key_info_der() {
            return Err(AuthorityError::Corrupt(
                "the OCSP signer's key is not its certificate's".into(),
            ));
        }
        let responder = Responder::new(
            issuer,
            Some(&cert),
            key.signature_algorithm(),
            OCSP_VALIDITY,
        )
        .map_err(|e| AuthorityError::Ocsp(e.to_string()))?;
        let serial = Serial::from_der_content(cert.tbs_certificate().serial_number().as_bytes())
            .ok_or_else(|| AuthorityError::Corrupt("OCSP signer serial".into()))?;
        let validity = cert.tbs_certificate().validity();
        Ok(Self {
            key,
            responder,
            serial_hex: serial.to_hex(),
            not_before: validity.not_before.to_system_time(),
            not_after: validity.not_after.to_system_time(),
            cert_der,
        })
    }

    /// Whether less than 1/[`OCSP_SIGNER_RENEWAL_FRACTION`] of the lifetime is left at `now`
    /// (or the certificate is not valid at `now` at all).
    fn due(&self, now: SystemTime) -> bool {
        let lifetime = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or(Duration::ZERO);
        let margin = lifetime / OCSP_SIGNER_RENEWAL_FRACTION;
        let left = self.not_after.duration_since(now).unwrap_or(Duration::ZERO);
        now < self.not_before || left < margin
    }
}

/// What a renewal did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcspSignerRenewal {
    /// Serial (hex) of the signer replaced.
    pub old_serial: String,
    /// Serial (hex) of the signer now in use.
    pub new_serial: String,
    /// `true` when the new signer was found on disk (renewed by `ca renew-service-certs`)
    /// rather than issued here.
    pub adopted: bool,
}

/// Issues a delegated OCSP signer for a fresh Ed25519 key (responses are signed on every
/// request, and Ed25519 is the fastest to sign) under `intermediate`, approved by the CA
/// operator; returns the certificate and the PKCS#8 key.
pub(super) fn issue_ocsp_signer(
    intermediate: &Issuer,
    organisation: &str,
    now: SystemTime,
) -> Result<(IssuedCertificate, Zeroizing<Vec<u8>>), AuthorityError> {
    let mut rng = rand::rng();
    let key = ed25519_dalek::SigningKey::generate(&mut rng);
    let template = csr::parse_csr(&ed25519_csr(
        &key,
        &format!("{organisation} OCSP Responder"),
        None,
    )?)?
    .into_template(CertificateKind::OcspSigner)?
    .with_validity_days(OCSP_SIGNER_VALIDITY_DAYS)?;
    let approved = ApprovedRequest::by_ca_operator(0, template, INIT_OPERATOR, now);
    let cert = intermediate.issue(approved, now, &mut rng)?;
    let key_der = Zeroizing::new(
        key.to_pkcs8_der()
            .map_err(|_| AuthorityError::Config("cannot encode the OCSP key".into()))?
            .as_bytes()
            .to_vec(),
    );
    Ok((cert, key_der))
}

/// Makes sure the OCSP key and certificate read from DIR belong together. When they do not
/// (a crash between writing the new key and its certificate), the certificate of the key is
/// taken from the CA database, where renewal records it first, and `ocsp.pem` is rewritten.
pub(super) async fn reconcile(
    layout: &Layout,
    store: &SqlCaStore,
    key: CaKey,
    cert_der: Vec<u8>,
) -> Result<(CaKey, Vec<u8>), AuthorityError> {
    let cert = Certificate::from_der(&cert_der)?;
    let spki = key.public_key_info_der();
    if cert.tbs_certificate().subject_public_key_info().to_der()? == spki {
        return Ok((key, cert_der));
    }
    let fingerprint = hex_lower(&Sha256::digest(spki));
    let query = CertificateQuery {
        status: None,
        subject: None,
        kind: Some(CertificateKind::OcspSigner.name().to_owned()),
        now: super::unix(SystemTime::now()),
        limit: crate::store::ca::MAX_LIST_ROWS,
    };
    let found = store
        .certificates(&query)
        .await?
        .into_iter()
        .filter(|record| record.key_sha256 == fingerprint)
        .max_by_key(|record| record.not_before);
    let Some(record) = found else {
        return Err(AuthorityError::Corrupt(format!(
            "{} does not belong to {} and no certificate for it is recorded",
            layout.ocsp_key().display(),
            layout.ocsp_cert().display()
        )));
    };
    tracing::warn!(
        serial = %record.serial,
        "the OCSP certificate on disk was not the key's (interrupted renewal): restored from the database"
    );
    layout::write_certificate(&layout.ocsp_cert(), &record.der)?;
    Ok((key, record.der))
}

impl Authority {
    /// The OCSP signer in use (a snapshot: a renewal swaps in a new one).
    pub(super) fn ocsp_signer(&self) -> Arc<OcspSigner> {
        self.inner
            .ocsp
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// When the OCSP signer in use expires.
    pub fn ocsp_signer_not_after(&self) -> SystemTime {
        self.ocsp_signer().not_after
    }

    /// Whether the OCSP signer in use is within its renewal window at `now`.
    pub fn ocsp_signer_due(&self, now: SystemTime) -> bool {
        self.ocsp_signer().due(now)
    }

    /// Renews the OCSP signer if it is within its renewal window at `now`; `None` when it is
    /// not due.
    pub async fn renew_ocsp_signer_if_due(
        &self,
        now: SystemTime,
    ) -> Result<Option<OcspSignerRenewal>, AuthorityError> {
        let _one_at_a_time = self.inner.ocsp_renewal.lock().await;
        let current = self.ocsp_signer();
        if !current.due(now) {
            return Ok(None);
        }
        if let Some(adopted) = self.adopt_signer_from_disk(&current, now).await? {
            return Ok(Some(adopted));
        }
        self.issue_and_swap_signer(&current, now).await.map(Some)
    }

    /// Issues a new OCSP signer now, records it, writes it to DIR and swaps it in.
    pub async fn renew_ocsp_signer(
        &self,
        now: SystemTime,
    ) -> Result<OcspSignerRenewal, AuthorityError> {
        let _one_at_a_time = self.inner.ocsp_renewal.lock().await;
        let current = self.ocsp_signer();
        self.issue_and_swap_signer(&current, now).await
    }

    async fn issue_and_swap_signer(
        &self,
        current: &OcspSigner,
        now: SystemTime,
    ) -> Result<OcspSignerRenewal, AuthorityError> {
        let this = self.clone();
        let (issued, key_der) = tokio::task::spawn_blocking(move || {
            issue_ocsp_signer(
                &this.inner.intermediate,
                &this.inner.config.organisation,
                now,
            )
        })
        .await
        .map_err(|e| AuthorityError::Corrupt(format!("OCSP signer issuance panicked: {e}")))??;
        record_replacement(
            &self.inner.store,
            &issued,
            &self.inner.issuer_key_id,
            Some(&current.serial_hex),
        )
        .await?;
        let layout = self.inner.layout.clone();
        let passphrase = self.inner.passphrase.clone();
        let cert_der = issued.der.clone();
        let key = {
            let key_der = key_der.clone();
            tokio::task::spawn_blocking(move || {
                let key_path = layout.ocsp_key();
                // Sealed like the key it replaces (Argon2id costs the operator chose).
                let params = layout::read_file(&key_path)
                    .ok()
                    .and_then(|old| seal::params_of(&old))
                    .unwrap_or(SealParams::RECOMMENDED);
                layout::write_key(
                    &key_path,
                    &key_der,
                    passphrase.as_ref().map(|p| p.as_slice()),
                    params,
                )?;
                layout::write_certificate(&layout.ocsp_cert(), &cert_der)?;
                Ok::<_, AuthorityError>(CaKey::from_pkcs8_der(&key_der)?)
            })
            .await
            .map_err(|e| {
                AuthorityError::Corrupt(format!("writing the OCSP signer panicked: {e}"))
            })??
        };
        self.swap_signer(key, issued.der, &current.serial_hex)
    }

    /// Takes the signer on disk when another process (`ca renew-service-certs`) replaced it
    /// with one that is not itself due.
    async fn adopt_signer_from_disk(
        &self,
        current: &OcspSigner,
        now: SystemTime,
    ) -> Result<Option<OcspSignerRenewal>, AuthorityError> {
        let layout = self.inner.layout.clone();
        let passphrase = self.inner.passphrase.clone();
        let on_disk = tokio::task::spawn_blocking(move || {
            let cert_der = layout::read_certificate(&layout.ocsp_cert())?;
            let key = layout::read_key(
                &layout.ocsp_key(),
                passphrase.as_ref().map(|p| p.as_slice()),
            )?;
            Ok::<_, AuthorityError>((cert_der, CaKey::from_pkcs8_der(&key)?))
        })
        .await
        .map_err(|e| AuthorityError::Corrupt(format!("reading the OCSP signer panicked: {e}")))?;
        let Ok((cert_der, key)) = on_disk else {
            return Ok(None);
        };
        if cert_der == current.cert_der {
            return Ok(None);
        }
        let issuer = Certificate::from_der(self.inner.intermediate.certificate_der())?;
        match OcspSigner::new(&issuer, key, cert_der) {
            Ok(candidate) if !candidate.due(now) => {
                let serial = candidate.serial_hex.clone();
                self.replace_signer(candidate);
                Ok(Some(OcspSignerRenewal {
                    old_serial: current.serial_hex.clone(),
                    new_serial: serial,
                    adopted: true,
                }))
            }
            // Half-written, from another intermediate, or itself due: issue our own.
            _ => Ok(None),
        }
    }

    fn swap_signer(
        &self,
        key: CaKey,
        cert_der: Vec<u8>,
        old_serial: &str,
    ) -> Result<OcspSignerRenewal, AuthorityError> {
        let issuer = Certificate::from_der(self.inner.intermediate.certificate_der())?;
        let signer = OcspSigner::new(&issuer, key, cert_der)?;
        let renewal = OcspSignerRenewal {
            old_serial: old_serial.to_owned(),
            new_serial: signer.serial_hex.clone(),
            adopted: false,
        };
        self.replace_signer(signer);
        Ok(renewal)
    }

    fn replace_signer(&self, signer: OcspSigner) {
        *self
            .inner
            .ocsp
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(signer);
    }
}
