//! The service's limits: every quantity a client can drive, with the reason for its value.
//! Wire-level limits (frame size, prekeys per upload, envelopes per send…) are
//! `confianza_api::limits`; these are the server's own.

use std::time::Duration;

/// Mailbox entries one device may have waiting. A device offline for a long time while busy
/// groups talk to it fills up; past this, sends to it fail with `MailboxFull` (retryable)
/// instead of growing the database without bound. Signal's service keeps a similar cap.
pub const MAX_QUEUE_PER_DEVICE: u64 = 10_000;

/// How long an undelivered message waits in a mailbox before it is deleted unread.
pub const MESSAGE_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// How often the expiry task sweeps mailboxes.
pub const EXPIRY_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// Deliveries pushed to one connection and not yet acknowledged. Equal to the most ids one
/// `Ack` frame may carry, so a client can always acknowledge everything in flight at once.
pub const MAX_DELIVERIES_IN_FLIGHT: usize = confianza_api::limits::MAX_ACKS_PER_FRAME;

/// Entries the writer hands straight to one connected device's pump and the pump has not
/// taken yet. A pump whose window is full stops taking; past this the writer stops handing
/// over and the pump reads its mailbox instead once it has room, so a client that does not
/// acknowledge costs the server this many entries in memory, not its whole queue. Twice the
/// window: a burst arriving while a full window drains still goes by hand.
pub const MAX_HANDED_OFF: usize = 2 * MAX_DELIVERIES_IN_FLIGHT;

/// A device is told `PreKeysLow` when its one-time EC or Kyber prekeys fall below this after a
/// bundle fetch, or after an upload that leaves it below. A tenth of one upload: enough
/// headroom for a burst of new contacts while the client replenishes.
pub const PREKEYS_LOW_THRESHOLD: u32 = 10;

/// How long an enrollment challenge may be answered. Long enough for a slow client to build
/// and sign its keys, short enough that a stolen one is useless soon.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(5 * 60);

/// How long a stapled OCSP response is reused for bundle fetches of the same certificate.
/// Responses are valid for longer; a revocation shows in bundles within this time.
pub const OCSP_CACHE_TTL: Duration = Duration::from_secs(5 * 60);

/// Certificates whose OCSP response is cached at once; the oldest entries go first.
pub const OCSP_CACHE_ENTRIES: usize = 10_000;

/// How long a new TCP connection may take to finish the Noise handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Concurrent client connections per node. Each costs two tasks and a few KiB; the issue's
/// target is 10 000 held connections.
pub const MAX_CONNECTIONS: usize = 16_384;

/// Server frames queued for one connection's socket. A client that stops reading fills it and
/// is disconnected rather than holding server memory.
pub const OUTBOUND_QUEUE_LEN: usize = 1_024;

/// Notices queued for one connection (membership changes, prekeys low). They are hints: when a
/// client is this far behind, further notices are dropped.
pub const NOTICE_QUEUE_LEN: usize = 64;

/// Sends queued for the writer. A full queue makes senders wait (back-pressure).
pub const WRITER_QUEUE_LEN: usize = 8_192;

/// Messages committed in one database transaction at most. One commit of this many messages
/// takes a few milliseconds on SQLite, so a large batch never delays the first sender long.
pub const MAX_WRITER_BATCH: usize = 1_024;

/// Bundle fetches one device may make: a burst, then a steady rate. A bundle fetch claims a
/// one-time prekey, so a fast fetcher could drain another device's stock.
pub const BUNDLE_FETCH_BURST: u32 = 100;
/// See [`BUNDLE_FETCH_BURST`].
pub const BUNDLE_FETCHES_PER_SECOND: u32 = 10;

/// Sends (one or group) one device may make: a burst, then a steady rate. Generous for people,
/// tight for a compromised device flooding mailboxes.
pub const SEND_BURST: u32 = 2_000;
/// See [`SEND_BURST`].
pub const SENDS_PER_SECOND: u32 = 1_000;

/// How long a graceful shutdown waits for connections to finish their requests in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
