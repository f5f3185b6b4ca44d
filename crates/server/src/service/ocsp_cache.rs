//! Stapled OCSP responses, reused for a few minutes per certificate so that bundle fetches do
//! not sign a fresh response each time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

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
