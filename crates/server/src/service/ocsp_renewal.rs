//! The OCSP signer schedule: at start and every [`OCSP_RENEWAL_CHECK_INTERVAL`], renews the
//! delegated OCSP signing certificate once it is in its renewal window (the last third of
//! its lifetime, see [`crate::authority::OCSP_SIGNER_RENEWAL_FRACTION`]), so the responder
//! and the responses stapled into bundles never run on an expired signer while the service
//! runs. The new signer is recorded in the CA database, written to the data directory and
//! swapped in whole ([`Authority::renew_ocsp_signer_if_due`]).

use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::authority::{Authority, OcspSignerRenewal};

/// How often the schedule looks at the signer: far below the renewal window (30 days), so a
/// node that was down past the window renews within the hour of starting again (and at
/// start).
pub const OCSP_RENEWAL_CHECK_INTERVAL: Duration = Duration::from_secs(3600);

/// Checks every `interval` (once at start) until `stop` is cancelled.
pub async fn run(authority: Authority, interval: Duration, stop: CancellationToken) {
    super::schedule::every(interval, stop, || async {
        renew_once(&authority, SystemTime::now()).await;
    })
    .await;
}

/// One look: renews the signer when it is due at `now`.
pub async fn renew_once(authority: &Authority, now: SystemTime) -> Option<OcspSignerRenewal> {
    match authority.renew_ocsp_signer_if_due(now).await {
        Ok(Some(renewal)) => {
            tracing::info!(
                old = %renewal.old_serial,
                new = %renewal.new_serial,
                adopted = renewal.adopted,
                "OCSP signer renewed"
            );
            Some(renewal)
        }
        Ok(None) => None,
        Err(error) => {
            tracing::error!(%error, "renewing the OCSP signer failed; the current one stays");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authority::OCSP_SIGNER_VALIDITY_DAYS;
    use crate::authority::init::{InitOptions, init};
    use confianza_pki::ocsp::{CheckOptions, Status, check_response};
    use confianza_pki::seal::SealParams;
    use der::Decode;
    use x509_cert::Certificate;

    const PASSPHRASE: &[u8] = b"correct horse battery staple";
    const DAY: Duration = Duration::from_secs(86_400);

    async fn authority(dir: &std::path::Path) -> Authority {
        init(dir, InitOptions::example(), Some(PASSPHRASE), None)
            .await
            .expect("init");
        Authority::open(dir, Some(PASSPHRASE), None)
            .await
            .expect("open")
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[tokio::test]
    async fn a_signer_near_expiry_is_renewed_and_responses_use_the_new_one() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        let authority = authority(&dir).await;
        let now = SystemTime::now();
        let code = authority
            .create_enrollment_code("alice@example.org", DAY, now)
            .await
            .expect("code");
        let mut key = [0x05u8; 33];
        key[1..].fill(7);
        let alice = authority
            .enroll_identity("alice@example.org", Some(code.as_str()), &key, now)
            .await
            .expect("enroll");

        // Fresh: kept.
        let old_der = authority.ocsp_signer_der();
        assert!(renew_once(&authority, now).await.is_none());
        assert_eq!(authority.ocsp_signer_der(), old_der);

        // Lifetime 90 days; just outside the last third (31 days left): kept; inside it: renewed.
        let not_after = authority.ocsp_signer_not_after();
        assert!(renew_once(&authority, not_after - 31 * DAY).await.is_none());
        let later = not_after - 29 * DAY;
        let renewal = renew_once(&authority, later).await.expect("renewed");
        assert!(!renewal.adopted);
        let new_der = authority.ocsp_signer_der();
        assert_ne!(new_der, old_der);
        let new_cert = Certificate::from_der(&new_der).expect("signer");
        let validity = new_cert.tbs_certificate().validity();
        assert_eq!(
            validity
                .not_after
                .to_system_time()
                .duration_since(validity.not_before.to_system_time())
                .expect("validity"),
            DAY * OCSP_SIGNER_VALIDITY_DAYS
        );
        // Recorded, linked to the signer it replaces.
        let record = authority
            .certificate(&renewal.new_serial)
            .await
            .expect("recorded");
        assert_eq!(record.der, new_der);
        assert_eq!(record.previous_serial, Some(renewal.old_serial.clone()));
        // Not due again right after.
        assert!(renew_once(&authority, later).await.is_none());

        // Responses (responder and stapling) are signed by the new signer and verify.
        let issuer = Certificate::from_der(authority.intermediate_der()).expect("issuer");
        let alice_cert = Certificate::from_der(&alice.certificate_der).expect("alice");
        let serial = alice_cert.tbs_certificate().serial_number().clone();
        let stapled = authority
            .ocsp_for_certificate(&alice.certificate_der, later)
            .await
            .expect("OCSP");
        assert!(contains(&stapled, &new_der) && !contains(&stapled, &old_der));
        let status =
            check_response(&stapled, &issuer, &serial, &CheckOptions::at(later)).expect("verifies");
        assert_eq!(status.status(), Status::Good);
        // Even after the old signer has expired.
        let past_old = not_after + DAY;
        let stapled = authority
            .ocsp_for_certificate(&alice.certificate_der, past_old)
            .await
            .expect("OCSP");
        check_response(&stapled, &issuer, &serial, &CheckOptions::at(past_old))
            .expect("verifies after the old signer expired");

        // The data directory holds the new signer, sealed under the same passphrase.
        let reopened = Authority::open(&dir, Some(PASSPHRASE), None)
            .await
            .expect("reopen");
        assert_eq!(reopened.ocsp_signer_der(), new_der);
    }

    #[tokio::test]
    async fn an_interrupted_renewal_is_repaired_and_an_operator_renewal_adopted() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        let authority = authority(&dir).await;
        let layout = authority.layout().clone();
        let read_signer = || {
            crate::authority::layout::read_certificate(&layout.ocsp_cert()).expect("certificate")
        };
        let old_pem = std::fs::read(layout.ocsp_cert()).expect("old certificate");
        let t0 = SystemTime::now();
        authority.renew_ocsp_signer(t0).await.expect("renew");
        let new_der = authority.ocsp_signer_der();
        assert_eq!(read_signer(), new_der);

        // A crash after the key was written but before its certificate: the old certificate
        // is still on disk. Opening restores the key's certificate from the database.
        std::fs::write(layout.ocsp_cert(), &old_pem).expect("write");
        let service = Authority::open(&dir, Some(PASSPHRASE), None)
            .await
            .expect("reopen repairs");
        assert_eq!(service.ocsp_signer_der(), new_der);
        assert_eq!(read_signer(), new_der);

        // `ca renew-service-certs` run by the operator in another process (here at t0 + 60
        // days): the running service, once its own signer is due, adopts the one on disk
        // instead of issuing another.
        crate::authority::init::renew_service_certificates(
            &authority,
            Some(PASSPHRASE),
            SealParams::INSECURE_FOR_TESTS,
            t0 + 60 * DAY,
        )
        .await
        .expect("operator renewal");
        let operator_der = read_signer();
        assert_ne!(operator_der, new_der);
        assert!(
            renew_once(&service, t0 + 59 * DAY).await.is_none(),
            "not due yet"
        );
        let adopted = renew_once(&service, t0 + 61 * DAY).await.expect("renewed");
        assert!(adopted.adopted);
        assert_eq!(service.ocsp_signer_der(), operator_der);
        assert_eq!(read_signer(), operator_der);
    }
}
