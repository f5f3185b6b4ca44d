//! Device lists of recipient accounts, kept for a moment so that a send does not read the
//! directory each time.
//!
//! A send checks its envelopes against the recipient's devices (`MismatchedDevices` when they
//! differ). The list changes only at enrollment, and devices are never removed, so an entry can
//! only be stale by **missing** a device enrolled after it was read:
//!
//! * on this node, enrollment forgets the account's entry at once
//!   ([`DeviceCache::forget`]);
//! * an entry lives at most [`DEVICE_CACHE_TTL`], which bounds how long a device enrolled on
//!   another node can go unnoticed here — the same race a send has with an enrollment that
//!   commits just after the send's check;
//! * a send whose envelopes do not match a cached list is checked again against the directory
//!   before it is refused (see `handlers/messages.rs`), so a stale entry costs one directory read,
//!   never a refused send that should have been accepted, and never a lost message: the writer
//!   stores each envelope only for a device that exists, in its own transaction.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::store::Device;

/// How long a device list is reused. Short, because it bounds how long a device enrolled on
/// another node can miss messages sent through this one; long enough that a busy conversation
/// reads the directory a few times a second at most instead of once per message.
pub const DEVICE_CACHE_TTL: Duration = Duration::from_secs(1);

/// Accounts whose device lists are kept at most. A sender names the recipient, so the number
/// of entries is attacker-influenced; at this bound the cache holds a few megabytes.
pub const DEVICE_CACHE_ENTRIES: usize = 16_384;

/// One device of a recipient account, as a send checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownDevice {
    pub device_id: u32,
    pub registration_id: u32,
}

impl From<&Device> for KnownDevice {
    fn from(device: &Device) -> Self {
        Self {
            device_id: device.address.device_id,
            registration_id: device.registration_id,
        }
    }
}

/// A device list and when it was read.
type Entries = HashMap<String, (Arc<[KnownDevice]>, Instant)>;

/// Device lists by account address. See the module docs.
#[derive(Debug)]
pub struct DeviceCache {
    entries: Mutex<Entries>,
    ttl: Duration,
    capacity: usize,
}

impl Default for DeviceCache {
    fn default() -> Self {
        Self::new(DEVICE_CACHE_TTL, DEVICE_CACHE_ENTRIES)
    }
}

impl DeviceCache {
    /// A cache keeping lists for `ttl`, for at most `capacity` accounts.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            ttl,
            capacity,
        }
    }

    /// `address`'s devices as read less than the TTL before `now`, if any.
    pub fn get(&self, address: &str, now: Instant) -> Option<Arc<[KnownDevice]>> {
        self.lock()
            .get(address)
            .filter(|(_, read)| now.saturating_duration_since(*read) < self.ttl)
            .map(|(devices, _)| devices.clone())
    }

    /// Remembers `devices` as `address`'s list read at `now`. An empty list (no such account)
    /// is not kept: the account may be enrolled next.
    pub fn put(&self, address: &str, devices: Arc<[KnownDevice]>, now: Instant) {
        if devices.is_empty() {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(address) {
            entries.retain(|_, (_, read)| now.saturating_duration_since(*read) < self.ttl);
            if entries.len() >= self.capacity {
                let oldest = entries
                    .iter()
                    .min_by_key(|(_, (_, read))| *read)
                    .map(|(address, _)| address.clone());
                if let Some(oldest) = oldest {
                    entries.remove(&oldest);
                }
            }
        }
        entries.insert(address.to_owned(), (devices, now));
    }

    /// Forgets `address`'s list (a device of it was just enrolled).
    pub fn forget(&self, address: &str) {
        self.lock().remove(address);
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(ids: &[u32]) -> Arc<[KnownDevice]> {
        ids.iter()
            .map(|&device_id| KnownDevice {
                device_id,
                registration_id: device_id + 100,
            })
            .collect()
    }

    #[test]
    fn a_list_lives_for_the_ttl_and_is_forgotten_on_enrollment() {
        let cache = DeviceCache::new(Duration::from_secs(1), 4);
        let start = Instant::now();
        cache.put("alice@example.org", list(&[1, 2]), start);
        assert_eq!(cache.get("alice@example.org", start), Some(list(&[1, 2])));
        let just_before = start + Duration::from_millis(999);
        assert_eq!(
            cache.get("alice@example.org", just_before),
            Some(list(&[1, 2]))
        );
        assert_eq!(
            cache.get("alice@example.org", start + Duration::from_secs(1)),
            None
        );

        cache.forget("alice@example.org");
        assert_eq!(cache.get("alice@example.org", start), None);
    }

    #[test]
    fn an_unknown_account_is_not_kept() {
        let cache = DeviceCache::new(Duration::from_secs(1), 4);
        let now = Instant::now();
        cache.put("nobody@example.org", list(&[]), now);
        assert_eq!(cache.get("nobody@example.org", now), None);
    }

    #[test]
    fn capacity_holds_n_accounts_and_the_next_evicts_the_oldest() {
        const N: usize = 3;
        let cache = DeviceCache::new(Duration::from_secs(60), N);
        let start = Instant::now();
        for index in 0..N {
            let at = start + Duration::from_millis(index as u64);
            cache.put(&format!("user{index}@example.org"), list(&[1]), at);
        }
        let now = start + Duration::from_secs(1);
        for index in 0..N {
            assert!(
                cache
                    .get(&format!("user{index}@example.org"), now)
                    .is_some()
            );
        }
        // Entry N + 1: the oldest goes, the others stay.
        cache.put("late@example.org", list(&[1]), now);
        assert_eq!(cache.lock().len(), N);
        assert_eq!(cache.get("user0@example.org", now), None);
        assert!(cache.get("user1@example.org", now).is_some());
        assert!(cache.get("late@example.org", now).is_some());
    }

    #[test]
    fn expired_lists_make_room_before_a_fresh_one_is_evicted() {
        let cache = DeviceCache::new(Duration::from_secs(1), 2);
        let start = Instant::now();
        cache.put("old@example.org", list(&[1]), start);
        let later = start + Duration::from_secs(5);
        cache.put("fresh@example.org", list(&[1]), later);
        cache.put("new@example.org", list(&[1]), later);
        assert!(cache.get("fresh@example.org", later).is_some());
        assert!(cache.get("new@example.org", later).is_some());
    }
}
