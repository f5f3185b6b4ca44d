//! Token buckets for per-device rate limits (bundle fetches, sends).

use std::time::{Duration, Instant};

/// A token bucket: `burst` tokens, refilled at `per_second`. Not shared: each connection (one
/// per device, a newer one displaces the older) keeps its own.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    burst: f64,
    per_second: f64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(burst: u32, per_second: u32, now: Instant) -> Self {
        Self {
            burst: f64::from(burst),
            per_second: f64::from(per_second),
            tokens: f64::from(burst),
            updated: now,
        }
    }

    /// Takes one token, or says how long until one is available.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else if self.per_second > 0.0 {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / self.per_second,
            ))
        } else {
            Err(Duration::MAX)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_n_passes_and_n_plus_one_waits() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(5, 10, start);
        for _ in 0..5 {
            assert_eq!(bucket.take(start), Ok(()));
        }
        let wait = bucket.take(start).expect_err("sixth refused");
        assert!(wait <= Duration::from_millis(100) && wait > Duration::ZERO);
        // 100 ms later one token is back.
        assert_eq!(bucket.take(start + Duration::from_millis(100)), Ok(()));
        // Refill stops at the burst size.
        let later = start + Duration::from_secs(60);
        for _ in 0..5 {
            assert_eq!(bucket.take(later), Ok(()));
        }
        assert!(bucket.take(later).is_err());
    }
}
