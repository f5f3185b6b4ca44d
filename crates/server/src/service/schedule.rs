//! The loop of a periodic task: one run at start, then one every interval, until stopped.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Runs `task` at once and then every `interval` (a late run delays the next one rather than
/// bunching them) until `stop` is cancelled; a run in progress finishes first.
pub async fn every<F, Fut>(interval: Duration, stop: CancellationToken, mut task: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        task().await;
    }
}
