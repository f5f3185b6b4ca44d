//! Every quantity a peer or the local user controls, with the reason for its value. Each is
//! tested at `N` and `N + 1` beside the code that enforces it.

/// One-time EC prekeys minted per upload: the API's per-upload maximum, so one request refills
/// the stock.
pub const ONE_TIME_PREKEY_BATCH: usize = confianza_api::limits::MAX_ONE_TIME_PREKEYS_PER_UPLOAD;

/// One-time Kyber prekeys minted per upload. Eight signed Kyber1024 keys are about 13 KiB, so an
/// enrollment request with 100 EC keys stays well inside one frame; replenishment tops up the
/// rest in further uploads.
pub const KYBER_PREKEY_BATCH: usize = 8;

/// The stock below which the client replenishes one-time prekeys even without a `PreKeysLow`
/// notice (checked after each connection): a fifth of a batch.
pub const PREKEY_LOW_WATERMARK: u32 = 20;

/// Longest text message in bytes. A `Content` with this much text, its Signal framing and
/// padding still fits the API's largest envelope body with room for six devices in one frame.
pub const MAX_TEXT_LEN: usize = 8 * 1024;

/// Longest passphrase in bytes accepted for a store: far above any typed passphrase, and it
/// bounds the work Argon2id does on input from the environment.
pub const MAX_PASSPHRASE_LEN: usize = 1024;

/// Largest sealed secret in the store (a session record with its archived states is the
/// largest: libsignal keeps at most 40 previous states of a few KiB each).
pub const MAX_SEALED_LEN: usize = 512 * 1024;

/// Requests in flight on one connection before `request` waits: the server answers in any
/// order, and this bounds the pending-response table.
pub const MAX_REQUESTS_IN_FLIGHT: usize = 64;

/// Deliveries buffered between the connection's reader and the application before the reader
/// stops reading (back-pressure; the server holds the rest in the mailbox).
pub const DELIVERY_BUFFER: usize = confianza_api::limits::MAX_ACKS_PER_FRAME;

/// Seconds a request waits for its response before the connection is considered dead.
pub const REQUEST_TIMEOUT_SECS: u64 = 30;

/// Longest profile name: it becomes a directory name.
pub const MAX_PROFILE_NAME_LEN: usize = 64;
