//! The CRL schedule: republishes the issuing CA's CRL before half its lifetime has passed
//! (`Authority::current_crl` republishes within [`CRL_REFRESH_MARGIN`] of nextUpdate), so a
//! relying party always finds a current CRL even when nothing was revoked for days.
//!
//! [`CRL_REFRESH_MARGIN`]: crate::authority::CRL_REFRESH_MARGIN

use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::authority::Authority;

/// How often the schedule looks at the current CRL. Far below the refresh margin (days), so
/// a node that was down for a while republishes within the hour of starting again; every
/// node of a cluster may run it (the CRL number is allocated in the shared database).
pub const CRL_CHECK_INTERVAL: Duration = Duration::from_secs(3600);

/// Checks every `interval` (once at start) until `stop` is cancelled.
pub async fn run(authority: Authority, interval: Duration, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        refresh_once(&authority, SystemTime::now()).await;
    }
}

/// One look: republishes the CRL when it is missing or near its nextUpdate.
pub async fn refresh_once(authority: &Authority, now: SystemTime) {
    match authority.current_crl(now).await {
        Ok(crl) => tracing::debug!(number = crl.number, "CRL is current"),
        Err(error) => tracing::error!(%error, "republishing the CRL failed"),
    }
}
