//! Every quantity a peer controls, with the reason for its value.
//!
//! The ceiling of them all is [`MAX_FRAME_PAYLOAD_LEN`]: one API frame travels in one Noise
//! transport message. The other limits are chosen so that a frame with every field at its limit
//! still fits (the `*_fits_a_frame` tests build such frames), except where a message is a list of
//! independently sized items (envelopes of one send): there the frame limit is the last word and
//! [`crate::EncodeError::FrameTooLarge`] says so before anything is sent.
//!
//! Each limit is tested at `N` (accepted) and `N + 1` (refused) in `src/limits_tests.rs`.

/// Largest encoded frame: the plaintext of one Noise transport message (65 535 − 16-byte tag).
/// Decoders refuse a larger buffer before parsing it.
pub const MAX_FRAME_PAYLOAD_LEN: usize = 65_519;

/// Devices an account may have (Signal's cap: a primary and five linked). Bounds bundle
/// responses, device lists and the envelopes of one send.
pub const MAX_DEVICES_PER_ACCOUNT: usize = 6;

/// Longest account address in bytes (`alice@example.org`). 128 bytes is far above real names
/// and keeps a maximal group (256 members) inside one frame.
pub const MAX_ADDRESS_LEN: usize = 128;

/// Longest RA enrollment code in bytes. Codes are short random strings typed by people.
pub const MAX_ENROLLMENT_CODE_LEN: usize = 64;

/// Smallest and largest registration id: Signal's clients draw it from `1..=16380` (14 bits,
/// minus the top values).
pub const MIN_REGISTRATION_ID: u32 = 1;
/// See [`MIN_REGISTRATION_ID`].
pub const MAX_REGISTRATION_ID: u32 = 16_380;

/// EC one-time prekeys per upload (Signal's service accepts 100 per call). 100 keys are about
/// 4 KiB.
pub const MAX_ONE_TIME_PREKEYS_PER_UPLOAD: usize = 100;

/// Kyber one-time prekeys per upload. A signed Kyber1024 prekey is about 1.65 KiB encoded, so
/// Signal's 100 would not fit a frame; 32 of them plus a last-resort key, a signed prekey and
/// 100 EC prekeys inside an enrollment request do (about 60 KiB). Clients upload in batches.
pub const MAX_KYBER_PREKEYS_PER_UPLOAD: usize = 32;

/// Largest DER certificate (identity certificate, CA certificate). Our profiles produce well
/// under 1 KiB; 4 KiB leaves room for other CAs' extensions while six bundles still fit a frame.
pub const MAX_CERTIFICATE_LEN: usize = 4096;

/// Largest stapled DER OCSP response. A response signed by the CA with its responder
/// certificate included is under 2 KiB.
pub const MAX_OCSP_RESPONSE_LEN: usize = 4096;

/// Certificates in a CA chain (issuing CA .. root). Ours has two; four allows an intermediate
/// more on each side.
pub const MAX_CA_CHAIN_LEN: usize = 4;

/// Largest Signal message body in one envelope. A delivery with a body this large and a
/// sender address at its limit still fits one frame. Messages to several devices share the
/// frame: `k` envelopes have about `65 519 / k` bytes each.
pub const MAX_MESSAGE_BODY_LEN: usize = 64_512;

/// Envelopes in one send: one per device of the recipient account.
pub const MAX_ENVELOPES_PER_SEND: usize = MAX_DEVICES_PER_ACCOUNT;

/// Delivery ids acknowledged in one frame. Also the unacknowledged window a server should keep
/// per device (Signal's service stops at 256 unacknowledged messages), so one frame can
/// acknowledge everything in flight.
pub const MAX_ACKS_PER_FRAME: usize = 256;

/// Client message ids in one delivery receipt. A server batches the acknowledgements of one
/// recipient device; 100 ids are about 1.8 KiB.
pub const MAX_RECEIPT_IDS: usize = 100;

/// Members of a group, creator included. A full membership listing (256 addresses at their
/// limit) is about 34 KiB.
pub const MAX_GROUP_MEMBERS: usize = 256;

/// Longest group name in bytes.
pub const MAX_GROUP_NAME_LEN: usize = 128;

/// Groups in one listing. A user in more groups sees the first ones only (the list has no
/// paging in version 1).
pub const MAX_GROUPS_PER_LIST: usize = 256;

/// Largest blob chunk, uploaded or downloaded: 32 KiB, so a chunk with its framing fits one
/// Noise message with room to spare and a download interleaves with deliveries.
pub const MAX_BLOB_CHUNK_LEN: usize = 32 * 1024;

/// Largest blob: an attachment of 512 MiB of plaintext (the protocol's limit) after
/// AES-CBC padding, IV and MAC, rounded up to 64 KiB of slack. Servers apply their own,
/// usually smaller, configured limit and answer `TooLarge`.
pub const MAX_BLOB_SIZE: u64 = 512 * 1024 * 1024 + 64 * 1024;

/// Longest error message in bytes: a sentence for logs, not a payload.
pub const MAX_ERROR_MESSAGE_LEN: usize = 512;

/// Byte lengths of fixed-size fields.
pub mod len {
    /// A Signal Curve25519 public key: type byte 0x05 then 32 bytes.
    pub const EC_PUBLIC_KEY: usize = 33;
    /// A Signal Kyber1024 public key: type byte 0x08 then 1 568 bytes.
    pub const KYBER_PUBLIC_KEY: usize = 1569;
    /// An XEdDSA signature.
    pub const SIGNATURE: usize = 64;
    /// A Noise static public key (X25519, no type byte).
    pub const NOISE_PUBLIC_KEY: usize = 32;
    /// An enrollment challenge.
    pub const CHALLENGE: usize = 32;
    /// A client message id (random, for deduplication).
    pub const CLIENT_MESSAGE_ID: usize = 16;
    /// A server-assigned group id.
    pub const GROUP_ID: usize = 16;
    /// A server-assigned blob id.
    pub const BLOB_ID: usize = 16;
}
