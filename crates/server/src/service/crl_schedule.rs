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
    super::schedule::every(interval, stop, || {
        refresh_once(&authority, SystemTime::now())
    })
    .await;
}

/// One look: republishes the CRL when it is missing or near its nextUpdate.
pub async fn refresh_once(authority: &Authority, now: SystemTime) {
    match authority.current_crl(now).await {
        Ok(crl) => tracing::debug!(number = crl.number, "CRL is current"),
        Err(error) => tracing::error!(%error, "republishing the CRL failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authority::CRL_REFRESH_MARGIN;
    use crate::authority::init::{InitOptions, init};
    use crate::store::ca::CaStore;

    async fn latest_number(authority: &Authority) -> i64 {
        authority
            .store()
            .latest_crl(authority.issuer_key_id())
            .await
            .expect("database")
            .expect("a CRL")
            .number
    }

    #[tokio::test]
    async fn the_crl_is_republished_before_half_its_lifetime() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        init(&dir, InitOptions::example(), None, None)
            .await
            .expect("init");
        let authority = Authority::open(&dir, None, None).await.expect("open");
        let first = latest_number(&authority).await;
        let now = SystemTime::now();
        refresh_once(&authority, now).await;
        assert_eq!(latest_number(&authority).await, first, "still fresh: kept");
        // Just past half of the seven-day lifetime: republished, with the next number.
        let crl = authority.current_crl(now).await.expect("CRL");
        let later = SystemTime::UNIX_EPOCH
            + Duration::from_secs(u64::try_from(crl.next_update).expect("time"))
            - CRL_REFRESH_MARGIN
            + Duration::from_secs(1);
        refresh_once(&authority, later).await;
        assert_eq!(latest_number(&authority).await, first + 1);
        // The schedule task stops when told to.
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(
            authority.clone(),
            Duration::from_secs(3600),
            stop.clone(),
        ));
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the task stops")
            .expect("no panic");
    }
}
