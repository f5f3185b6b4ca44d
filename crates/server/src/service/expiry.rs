//! The expiry task: deletes mailbox entries nobody fetched within the message TTL.

use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;
use super::state::unix_ms;
use crate::store::MessageStore;

/// Sweeps every `interval` until `stop` is cancelled (one sweep at start).
pub async fn run<S: MessageStore>(
    store: S,
    metrics: Metrics,
    interval: Duration,
    stop: CancellationToken,
) {
    super::schedule::every(interval, stop, || async {
        match store.expire_messages(unix_ms(SystemTime::now())).await {
            Ok(0) => {}
            Ok(expired) => {
                metrics.messages_expired_total.inc_by(expired);
                tracing::info!(expired, "expired undelivered mailbox entries");
            }
            Err(error) => tracing::error!(%error, "expiring mailbox entries failed"),
        }
    })
    .await;
}
