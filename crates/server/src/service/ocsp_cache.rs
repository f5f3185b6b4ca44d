//! Stapled OCSP responses, reused for a few minutes per certificate so that bundle fetches do
//! not sign a fresh response each time.
//!
//! A cached response is served again only after the certificate's status row in the CA
//! database still says "good" ([`IdentityAuthority::certificate_still_good`], one indexed
//! read, far cheaper than signing). A revocation made anywhere — through the service, by
//! `confianza-server ca revoke` in another process, or by another node sharing the database —
//! is therefore never hidden by the cache: the next bundle carries a fresh response that says
//! "revoked". Revocation is final in Confianza (no certificateHold), so a cached response can
//! only go from true to false in that one direction, which is the direction checked.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use super::authority::IdentityAuthority;

/// A response and when it was stored, by the SHA-256 of its certificate.
type Entries = HashMap<[u8; 32], (Vec<u8>, Instant)>;

/// Responses by the SHA-256 of the certificate they answer for.
#[derive(Debug)]
pub struct OcspCache {
    entries: Mutex<Entries>,
    ttl: Duration,
    capacity: usize,
}

impl OcspCache {
    /// A cache keeping responses for `ttl`, at most `capacity` of them.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            ttl,
            capacity,
        }
    }

    /// The cached response for `certificate_der`, if it is younger than the TTL at `now`.
    pub fn get(&self, certificate_der: &[u8], now: Instant) -> Option<Vec<u8>> {
        let key = Self::key(certificate_der);
        let entries = self.lock();
        entries
            .get(&key)
            .filter(|(_, stored)| now.saturating_duration_since(*stored) < self.ttl)
            .map(|(response, _)| response.clone())
    }

    /// Remembers `response` for `certificate_der` as of `now`.
    pub fn put(&self, certificate_der: &[u8], response: Vec<u8>, now: Instant) {
        let key = Self::key(certificate_der);
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, (_, stored)| now.saturating_duration_since(*stored) < self.ttl);
            if entries.len() >= self.capacity {
                let oldest = entries
                    .iter()
                    .min_by_key(|(_, (_, stored))| *stored)
                    .map(|(key, _)| *key);
                if let Some(oldest) = oldest {
                    entries.remove(&oldest);
                }
            }
        }
        entries.insert(key, (response, now));
    }

    /// The response to staple beside `certificate_der`: the cached one while the CA database
    /// still holds the certificate as good, else a fresh one from `authority` (cached for the
    /// next fetches). `None` when the CA cannot produce one (the client falls back to the CRL).
    pub async fn staple(
        &self,
        authority: &dyn IdentityAuthority,
        certificate_der: &[u8],
        now: SystemTime,
        clock: Instant,
    ) -> Option<Vec<u8>> {
        if let Some(cached) = self.get(certificate_der, clock) {
            match authority.certificate_still_good(certificate_der).await {
                Ok(true) => return Some(cached),
                Ok(false) => self.forget(certificate_der),
                Err(error) => {
                    // Cannot tell whether the cached "good" still holds: do not staple it.
                    tracing::warn!(%error, "status check of a stapled OCSP response failed");
                    self.forget(certificate_der);
                    return None;
                }
            }
        }
        match authority.ocsp_for_certificate(certificate_der, now).await {
            Ok(response) => {
                self.put(certificate_der, response.clone(), clock);
                Some(response)
            }
            Err(error) => {
                tracing::warn!(%error, "no OCSP response to staple");
                None
            }
        }
    }

    /// Forgets the response for `certificate_der` (after a revocation or renewal).
    pub fn forget(&self, certificate_der: &[u8]) {
        self.lock().remove(&Self::key(certificate_der));
    }

    fn key(certificate_der: &[u8]) -> [u8; 32] {
        Sha256::digest(certificate_der).into()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authority::Authority;
    use crate::authority::init::{InitOptions, init};
    use confianza_pki::crl::RevocationReason;
    use confianza_pki::ocsp::{CheckOptions, Status, check_response};
    use der::Decode;
    use x509_cert::Certificate;

    #[tokio::test]
    async fn a_revocation_by_another_process_is_never_hidden_by_a_cached_staple() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        init(&dir, InitOptions::example(), None, None)
            .await
            .expect("init");
        // The running service's authority, and its stapling cache.
        let service = Authority::open(&dir, None, None).await.expect("open");
        let now = SystemTime::now();
        let code = service
            .create_enrollment_code("alice@example.org", Duration::from_secs(600), now)
            .await
            .expect("code");
        let mut key = [0x05u8; 33];
        key[1..].fill(9);
        let alice = service
            .enroll_identity("alice@example.org", Some(code.as_str()), &key, now)
            .await
            .expect("enroll");
        let issuer = Certificate::from_der(service.intermediate_der()).expect("issuer");
        let serial = Certificate::from_der(&alice.certificate_der)
            .expect("alice")
            .tbs_certificate()
            .serial_number()
            .clone();
        let status_of = |der: &[u8]| {
            check_response(der, &issuer, &serial, &CheckOptions::at(now))
                .expect("verifies")
                .status()
        };
        let cache = OcspCache::new(Duration::from_secs(300), 16);
        let clock = Instant::now();
        let first = cache
            .staple(&service, &alice.certificate_der, now, clock)
            .await
            .expect("stapled");
        assert_eq!(status_of(&first), Status::Good);
        // Served from the cache while the certificate is good.
        let again = cache
            .staple(&service, &alice.certificate_der, now, clock)
            .await
            .expect("stapled");
        assert_eq!(again, first);

        // The operator revokes from another process: its own Authority, its own database
        // connections, nothing shared with the service but the database file.
        let console = Authority::open(&dir, None, None).await.expect("open");
        console
            .revoke_by_operator(
                &alice.serial_hex,
                RevocationReason::KeyCompromise,
                "operator",
                now,
            )
            .await
            .expect("revoke");
        drop(console);

        // The stale "good" is still in the cache, within its lifetime ...
        assert_eq!(
            cache.get(&alice.certificate_der, clock).as_deref(),
            Some(first.as_slice())
        );
        // ... but the bundle's staple says revoked, at once.
        let after = cache
            .staple(&service, &alice.certificate_der, now, clock)
            .await
            .expect("stapled");
        assert!(matches!(status_of(&after), Status::Revoked { .. }));
        // A certificate the CA does not know is never served from the cache either.
        cache.put(b"not a certificate", first.clone(), clock);
        assert!(
            !service
                .certificate_still_good(b"not a certificate")
                .await
                .expect("lookup")
        );
    }

    #[test]
    fn entries_live_for_the_ttl_and_capacity_is_kept() {
        let cache = OcspCache::new(Duration::from_secs(60), 2);
        let start = Instant::now();
        cache.put(b"cert a", b"ocsp a".to_vec(), start);
        assert_eq!(cache.get(b"cert a", start), Some(b"ocsp a".to_vec()));
        assert_eq!(
            cache.get(b"cert a", start + Duration::from_secs(59)),
            Some(b"ocsp a".to_vec())
        );
        assert_eq!(cache.get(b"cert a", start + Duration::from_secs(60)), None);

        // At capacity (2), a third certificate evicts the oldest.
        cache.put(
            b"cert b",
            b"ocsp b".to_vec(),
            start + Duration::from_secs(1),
        );
        cache.put(
            b"cert c",
            b"ocsp c".to_vec(),
            start + Duration::from_secs(2),
        );
        let later = start + Duration::from_secs(3);
        assert_eq!(cache.get(b"cert a", later), None);
        assert_eq!(cache.get(b"cert b", later), Some(b"ocsp b".to_vec()));
        assert_eq!(cache.get(b"cert c", later), Some(b"ocsp c".to_vec()));

        cache.forget(b"cert b");
        assert_eq!(cache.get(b"cert b", later), None);
    }
}
