//! What every connection of the service shares.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::authority::IdentityAuthority;
use super::blobs::BlobStore;
use super::device_cache::DeviceCache;
use super::events::{EventBus, Registry};
use super::metrics::Metrics;
use super::ocsp_cache::OcspCache;
use super::writer::Writer;

/// The service's shared state: storage, the CA, the writer, the registry of connected devices
/// and the bus that reaches them, metrics.
pub struct Shared<S> {
    pub store: S,
    pub authority: Arc<dyn IdentityAuthority>,
    pub writer: Writer,
    pub bus: Arc<dyn EventBus>,
    pub registry: Arc<Registry>,
    pub metrics: Metrics,
    pub ocsp: OcspCache,
    /// Recipients' device lists, reused for a moment by sends.
    pub devices: DeviceCache,
    /// Per-device mailbox limit.
    pub max_queue: u64,
    /// How long a message waits unread before expiry.
    pub message_ttl: Duration,
    /// Attachment storage; `None`: blob requests are answered `Unsupported`.
    pub blobs: Option<BlobStore>,
}

impl<S> std::fmt::Debug for Shared<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("registry", &self.registry)
            .field("max_queue", &self.max_queue)
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the Unix epoch (0 for a clock before 1970).
pub fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
