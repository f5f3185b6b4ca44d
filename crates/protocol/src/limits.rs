//! Every quantity a peer controls has a named limit here, with the reason for its value.
//! The values match Signal's library (`rust/protocol/src/consts.rs`) so that sessions behave
//! identically on both sides.

/// How far ahead of a chain's index a message counter may be. Beyond it the message is refused
/// ("too far into the future"): deriving the keys would cost the receiver unbounded work.
pub const MAX_FORWARD_JUMPS: u32 = 25_000;

/// Skipped message keys kept per receiving chain (and per sender-key state). The oldest is
/// dropped beyond it, bounding memory a sender can make us hold.
pub const MAX_MESSAGE_KEYS: usize = 2_000;

/// Receiving chains kept per session state; the oldest is dropped.
pub const MAX_RECEIVER_CHAINS: usize = 5;

/// Previous session states kept per address, newest first, so late messages for a replaced
/// session still decrypt.
pub const ARCHIVED_STATES_MAX_LENGTH: usize = 40;

/// Sender-key states (chains) kept per (sender, distribution id).
pub const MAX_SENDER_KEY_STATES: usize = 5;

/// An initiator's session that never heard back is refused for sending after this many seconds
/// (30 days), as in Signal's library.
pub const MAX_UNACKNOWLEDGED_SESSION_AGE_SECS: u64 = 30 * 24 * 60 * 60;

/// The largest serialized 1:1 or group message accepted for parsing (256 KiB). Signal's service
/// caps a message body near this size; anything larger is refused before decoding allocates.
pub const MAX_MESSAGE_LENGTH: usize = 256 * 1024;

/// The largest snapshot accepted for loading (32 MiB): a session record at every limit at once
/// (41 states × 5 chains × 2 000 skipped keys of ~40 bytes) is about 16 MiB.
pub const MAX_SNAPSHOT_LENGTH: usize = 32 * 1024 * 1024;
