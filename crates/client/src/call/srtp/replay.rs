//! Packet index estimation (RFC 3711 §3.3.1) and the replay list (§3.3.2).
//!
//! The 48-bit packet index is `i = 2^16 · ROC + SEQ`. The receiver keeps the highest index it
//! has authenticated, `2^16 · ROC + s_l`, and guesses the ROC of an incoming SEQ as:
//!
//! ```text
//! if s_l < 2^15:  v = ROC - 1 if SEQ - s_l > 2^15, else ROC
//! else:           v = ROC + 1 if s_l - 2^15 > SEQ, else ROC
//! ```

use super::super::limits::{SRTP_MAX_INDEX, SRTP_REPLAY_WINDOW};

/// Guesses the index of `sequence` next to the highest index seen so far.
///
/// `None` when the guess falls outside `0..=SRTP_MAX_INDEX` (a ROC of −1 at the start of the
/// stream, or past 2^32 − 1 at its very end).
pub(crate) fn estimate_index(highest: u64, sequence: u16) -> Option<u64> {
    let roc = i64::try_from(highest >> 16).ok()?;
    let s_l = i64::from(highest as u16);
    let seq = i64::from(sequence);
    let v = if s_l < 0x8000 {
        if seq - s_l > 0x8000 { roc - 1 } else { roc }
    } else if s_l - 0x8000 > seq {
        roc + 1
    } else {
        roc
    };
    let index = (u64::try_from(v).ok()? << 16) | u64::from(sequence);
    (index <= SRTP_MAX_INDEX).then_some(index)
}

/// Where an index stands against the replay list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplayCheck {
    /// Not seen and within (or ahead of) the window.
    Fresh,
    /// Already received.
    Replayed,
    /// Behind the window: can no longer be told apart from a replay.
    TooOld,
}

/// The sliding window of the last [`SRTP_REPLAY_WINDOW`] indices, anchored on the highest.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReplayWindow {
    highest: u64,
    /// Bit `k` set: index `highest - k` was received.
    seen: u64,
}

const _: () = assert!(SRTP_REPLAY_WINDOW == u64::BITS as u64);

impl ReplayWindow {
    /// A window whose first packet is `index`.
    pub(crate) fn starting_at(index: u64) -> Self {
        Self {
            highest: index,
            seen: 1,
        }
    }

    /// The highest index received.
    pub(crate) fn highest(&self) -> u64 {
        self.highest
    }

    /// Checks `index` without recording it.
    pub(crate) fn check(&self, index: u64) -> ReplayCheck {
        if index > self.highest {
            return ReplayCheck::Fresh;
        }
        let behind = self.highest - index;
        if behind >= SRTP_REPLAY_WINDOW {
            ReplayCheck::TooOld
        } else if self.seen & (1 << behind) != 0 {
            ReplayCheck::Replayed
        } else {
            ReplayCheck::Fresh
        }
    }

    /// Records `index`, which [`Self::check`] found fresh and which has authenticated.
    pub(crate) fn record(&mut self, index: u64) {
        if index > self.highest {
            let ahead = index - self.highest;
            self.seen = if ahead >= SRTP_REPLAY_WINDOW {
                0
            } else {
                self.seen << ahead
            };
            self.seen |= 1;
            self.highest = index;
        } else {
            self.seen |= 1 << (self.highest - index);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn index_estimation_follows_rfc_3711() {
        // Close to the previous packet: same ROC.
        assert_eq!(estimate_index(5, 6), Some(6));
        // s_l low, SEQ far above: a late packet from the previous ROC.
        assert_eq!(estimate_index(0x1_0002, 0xfffe), Some(0xfffe));
        // s_l high, SEQ far below: the sequence number wrapped.
        assert_eq!(estimate_index(0xfffe, 1), Some(0x1_0001));
        assert_eq!(estimate_index(0x3_ffff, 0), Some(0x4_0000));
        // Exactly 2^15 apart stays in the same ROC (strict comparisons).
        assert_eq!(estimate_index(0, 0x8000), Some(0x8000));
        assert_eq!(estimate_index(0x8000, 0), Some(0));
        assert_eq!(estimate_index(0, 0x8001), None, "ROC would be -1");
        assert_eq!(estimate_index(0x8001, 0), Some(0x1_0000));
        // The end of the index space.
        assert_eq!(
            estimate_index(SRTP_MAX_INDEX - 1, 0xffff),
            Some(SRTP_MAX_INDEX)
        );
        assert_eq!(estimate_index(SRTP_MAX_INDEX, 0), None);
    }

    #[test]
    fn window_refuses_replays_and_old_packets() {
        let mut window = ReplayWindow::starting_at(100);
        assert_eq!(window.check(100), ReplayCheck::Replayed);
        assert_eq!(window.check(101), ReplayCheck::Fresh);
        assert_eq!(window.check(99), ReplayCheck::Fresh);
        window.record(99);
        assert_eq!(window.check(99), ReplayCheck::Replayed);
        window.record(200);
        // 200 - 137 = 63: the oldest index still in a 64-packet window.
        assert_eq!(
            window.check(200 - (SRTP_REPLAY_WINDOW - 1)),
            ReplayCheck::Fresh
        );
        assert_eq!(window.check(200 - SRTP_REPLAY_WINDOW), ReplayCheck::TooOld);
        window.record(200 - (SRTP_REPLAY_WINDOW - 1));
        assert_eq!(
            window.check(200 - (SRTP_REPLAY_WINDOW - 1)),
            ReplayCheck::Replayed
        );
        window.record(201);
        assert_eq!(
            window.check(200 - (SRTP_REPLAY_WINDOW - 1)),
            ReplayCheck::TooOld,
            "slid out of the window"
        );
        assert_eq!(window.check(200), ReplayCheck::Replayed);
        assert_eq!(window.highest(), 201);
    }
}
