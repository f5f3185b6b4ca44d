//! What a run measures: counts, latency percentiles, and a process's CPU time from `/proc`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Clock ticks per second of `/proc/PID/stat` (`USER_HZ`). Linux reports 100 on every
/// architecture it exports to user space, whatever the kernel's internal `HZ`.
const USER_HZ: u64 = 100;

/// CPU time (user + system) of process `pid` so far, from `/proc/PID/stat`.
pub fn process_cpu(pid: u32) -> std::io::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_cpu(&stat).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("/proc/{pid}/stat has no utime/stime fields"),
        )
    })
}

/// utime + stime of one `/proc/PID/stat` line. The command name (field 2) is in parentheses
/// and may hold spaces, so fields are counted after the last `)`: state is the first there,
/// utime the 12th and stime the 13th (fields 14 and 15 of proc(5)).
fn parse_cpu(stat: &str) -> Option<Duration> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = utime.checked_add(stime)?;
    Some(Duration::from_micros(
        ticks.checked_mul(1_000_000 / USER_HZ)?,
    ))
}

/// What one load client saw.
#[derive(Debug, Default)]
pub struct ClientTally {
    /// Sends answered `Sent` with the envelope newly stored.
    pub accepted: u64,
    /// Sends answered `Sent` as duplicates.
    pub duplicates: u64,
    /// Refused sends by error code.
    pub refused: BTreeMap<String, u64>,
    /// Envelopes delivered to this client.
    pub delivered: u64,
    /// Messages of this client confirmed by the delivery receipts it received.
    pub receipts: u64,
    /// Send → delivered latencies, microseconds.
    pub delivery_latency_us: Vec<u32>,
    /// Send → `Sent` latencies, microseconds.
    pub accept_latency_us: Vec<u32>,
    /// When this client's last `Sent` arrived.
    pub last_accepted: Option<Instant>,
    /// When this client's last delivery arrived.
    pub last_delivered: Option<Instant>,
    /// Why the connection ended early, if it did.
    pub failure: Option<String>,
}

impl ClientTally {
    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: ClientTally) {
        self.accepted += other.accepted;
        self.duplicates += other.duplicates;
        for (code, count) in other.refused {
            *self.refused.entry(code).or_default() += count;
        }
        self.delivered += other.delivered;
        self.receipts += other.receipts;
        self.delivery_latency_us.extend(other.delivery_latency_us);
        self.accept_latency_us.extend(other.accept_latency_us);
        self.last_accepted = self.last_accepted.max(other.last_accepted);
        self.last_delivered = self.last_delivered.max(other.last_delivered);
        if self.failure.is_none() {
            self.failure = other.failure;
        }
    }
}

/// The `q`-quantile (0 ..= 1, nearest rank) of `samples`, sorting them; `None` when empty.
pub fn quantile(samples: &mut [u32], q: f64) -> Option<u32> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let rank = (q.clamp(0.0, 1.0) * samples.len() as f64).ceil() as usize;
    samples.get(rank.saturating_sub(1)).copied()
}

/// A latency in microseconds for humans.
pub fn format_us(us: Option<u32>) -> String {
    match us {
        None => "-".to_owned(),
        Some(us) if us < 10_000 => format!("{us} µs"),
        Some(us) => format!("{:.1} ms", f64::from(us) / 1_000.0),
    }
}

/// Microseconds between `from` and `to`, saturated to `u32` (71 minutes).
pub fn micros_between(from: Instant, to: Instant) -> u32 {
    u32::try_from(to.saturating_duration_since(from).as_micros()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_read_after_the_command_name() {
        // A command name with spaces and a parenthesis must not shift the fields.
        let line =
            "4242 (confianza (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0";
        assert_eq!(parse_cpu(line), Some(Duration::from_millis(3_250)));
        assert_eq!(parse_cpu("4242 (short) S 1 2"), None);
        assert_eq!(parse_cpu("no parenthesis at all"), None);
    }

    #[test]
    fn this_process_has_a_cpu_time() {
        assert!(process_cpu(std::process::id()).is_ok());
    }

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let mut samples: Vec<u32> = (1..=100).rev().collect();
        assert_eq!(quantile(&mut samples, 0.5), Some(50));
        assert_eq!(quantile(&mut samples, 0.99), Some(99));
        assert_eq!(quantile(&mut samples, 1.0), Some(100));
        assert_eq!(quantile(&mut [7], 0.99), Some(7));
        assert_eq!(quantile(&mut [], 0.5), None);
    }
}
