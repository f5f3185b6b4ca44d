//! Errors: what a peer sent wrong ([`DecodeError`]), what a caller asked that cannot be sent
//! ([`EncodeError`]), and what a server answers ([`ApiError`] with its [`ErrorCode`]).

/// A field of a message breaks the protocol's rules. Shared by decoding and encoding, so both
/// directions refuse exactly the same values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldError {
    /// A required field is absent (or empty, for bytes and strings).
    #[error("missing field `{0}`")]
    Missing(&'static str),
    /// A fixed-size field has the wrong length.
    #[error("field `{field}` is {len} bytes, expected {expected}")]
    Length {
        field: &'static str,
        len: usize,
        expected: usize,
    },
    /// A variable-size field is longer than its limit.
    #[error("field `{field}` is {len} bytes, more than {max}")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    /// A list has more items than its limit.
    #[error("field `{field}` has {count} items, more than {max}")]
    TooMany {
        field: &'static str,
        count: usize,
        max: usize,
    },
    /// A value outside its range or enumeration.
    #[error("field `{0}` has an invalid value")]
    Invalid(&'static str),
}

/// Bytes from a peer are not a valid frame. The connection that sent them should be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The buffer is larger than any frame may be; it was not parsed.
    #[error("frame is {len} bytes, more than {max}")]
    FrameTooLarge { len: usize, max: usize },
    /// The bytes are not a protobuf message of the expected type.
    #[error("malformed frame: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// The frame carries no known variant (empty, or from a newer protocol version).
    #[error("frame of unknown kind")]
    UnknownKind,
    /// A request of a kind this version does not know (a newer client). A server may answer
    /// [`ErrorCode::Unsupported`] with this id and keep the connection.
    #[error("request {request_id} is of an unknown kind")]
    UnknownRequest { request_id: u64 },
    /// A notice of a kind this version does not know (a newer server). A client may ignore it:
    /// notices need no answer.
    #[error("notice of an unknown kind")]
    UnknownNotice,
    /// A field breaks a rule.
    #[error(transparent)]
    Field(#[from] FieldError),
}

/// A frame the caller built cannot be sent: the peer would refuse it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The encoded frame does not fit one Noise transport message; split the request
    /// (fewer prekeys, fewer envelopes, smaller chunks).
    #[error("frame is {len} bytes, more than {max}")]
    FrameTooLarge { len: usize, max: usize },
    /// A field breaks a rule.
    #[error(transparent)]
    Field(#[from] FieldError),
}

/// Why a server refused a request.
///
/// # Mapping at the server edge
///
/// The server maps its own errors to these codes in one place (its request dispatcher), never
/// by formatting an inner error into `message`:
///
/// | server condition | code |
/// | --- | --- |
/// | frame decodes but a request is inconsistent (offset not at the resume point, unknown ciphertext type for a group) | `BadRequest` |
/// | connection's Noise key is not a registered device (and the request is not enrollment) | `Unauthenticated` |
/// | not a group admin, another account's mailbox or blob, open registration off | `Forbidden` |
/// | unknown address, device, group, blob | `NotFound` |
/// | rate limiter refused (bundle fetches, sends) | `RateLimited` + `retry_after_ms` |
/// | blob larger than the configured limit, group full | `TooLarge` |
/// | a new blob would take the account past its blob quota (bytes or count) | `QuotaExceeded` |
/// | recipient device's queue at its limit | `MailboxFull` |
/// | enrollment challenge, blob upload or certificate past its time | `Expired` |
/// | address already enrolled, blob already complete | `Conflict` |
/// | sender's device list differs from the account's | `MismatchedDevices` + detail |
/// | RA refused the enrollment code | `InvalidEnrollmentCode` |
/// | proof of possession does not verify | `InvalidProof` |
/// | a prekey signature does not verify | `InvalidSignature` |
/// | the caller's certificate is revoked | `Revoked` |
/// | storage or CA failure | `Internal` (details only in the server log) |
/// | shutting down, database unreachable | `Unavailable` + `retry_after_ms` |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    BadRequest,
    Unauthenticated,
    Forbidden,
    NotFound,
    RateLimited,
    TooLarge,
    MailboxFull,
    Expired,
    Conflict,
    Internal,
    Unavailable,
    MismatchedDevices,
    InvalidEnrollmentCode,
    InvalidProof,
    InvalidSignature,
    Revoked,
    Unsupported,
    /// The account holds as many unexpired blobs (bytes or count) as the server allows; the
    /// quota frees up as its blobs expire.
    QuotaExceeded,
}

impl ErrorCode {
    /// Every code, in wire order.
    pub const ALL: [ErrorCode; 18] = [
        Self::BadRequest,
        Self::Unauthenticated,
        Self::Forbidden,
        Self::NotFound,
        Self::RateLimited,
        Self::TooLarge,
        Self::MailboxFull,
        Self::Expired,
        Self::Conflict,
        Self::Internal,
        Self::Unavailable,
        Self::MismatchedDevices,
        Self::InvalidEnrollmentCode,
        Self::InvalidProof,
        Self::InvalidSignature,
        Self::Revoked,
        Self::Unsupported,
        Self::QuotaExceeded,
    ];

    /// Whether the same request may succeed later without change.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::RateLimited | Self::Unavailable | Self::MailboxFull
        )
    }

    pub(crate) fn to_wire(self) -> i32 {
        use crate::proto::ErrorCode as W;
        (match self {
            Self::BadRequest => W::BadRequest,
            Self::Unauthenticated => W::Unauthenticated,
            Self::Forbidden => W::Forbidden,
            Self::NotFound => W::NotFound,
            Self::RateLimited => W::RateLimited,
            Self::TooLarge => W::TooLarge,
            Self::MailboxFull => W::MailboxFull,
            Self::Expired => W::Expired,
            Self::Conflict => W::Conflict,
            Self::Internal => W::Internal,
            Self::Unavailable => W::Unavailable,
            Self::MismatchedDevices => W::MismatchedDevices,
            Self::InvalidEnrollmentCode => W::InvalidEnrollmentCode,
            Self::InvalidProof => W::InvalidProof,
            Self::InvalidSignature => W::InvalidSignature,
            Self::Revoked => W::Revoked,
            Self::Unsupported => W::Unsupported,
            Self::QuotaExceeded => W::QuotaExceeded,
        }) as i32
    }

    /// A code unknown to this version (a newer server) reads as `Internal`: the request failed
    /// and there is nothing more specific to do about it.
    pub(crate) fn from_wire(value: i32) -> Result<Self, FieldError> {
        use crate::proto::ErrorCode as W;
        Ok(match W::try_from(value) {
            Ok(W::Unspecified) => return Err(FieldError::Invalid("error.code")),
            Ok(W::BadRequest) => Self::BadRequest,
            Ok(W::Unauthenticated) => Self::Unauthenticated,
            Ok(W::Forbidden) => Self::Forbidden,
            Ok(W::NotFound) => Self::NotFound,
            Ok(W::RateLimited) => Self::RateLimited,
            Ok(W::TooLarge) => Self::TooLarge,
            Ok(W::MailboxFull) => Self::MailboxFull,
            Ok(W::Expired) => Self::Expired,
            Ok(W::Conflict) => Self::Conflict,
            Ok(W::Internal) | Err(_) => Self::Internal,
            Ok(W::Unavailable) => Self::Unavailable,
            Ok(W::MismatchedDevices) => Self::MismatchedDevices,
            Ok(W::InvalidEnrollmentCode) => Self::InvalidEnrollmentCode,
            Ok(W::InvalidProof) => Self::InvalidProof,
            Ok(W::InvalidSignature) => Self::InvalidSignature,
            Ok(W::Revoked) => Self::Revoked,
            Ok(W::Unsupported) => Self::Unsupported,
            Ok(W::QuotaExceeded) => Self::QuotaExceeded,
        })
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::BadRequest => "bad request",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not found",
            Self::RateLimited => "rate limited",
            Self::TooLarge => "too large",
            Self::MailboxFull => "mailbox full",
            Self::Expired => "expired",
            Self::Conflict => "conflict",
            Self::Internal => "internal server error",
            Self::Unavailable => "unavailable",
            Self::MismatchedDevices => "mismatched devices",
            Self::InvalidEnrollmentCode => "invalid enrollment code",
            Self::InvalidProof => "invalid proof of possession",
            Self::InvalidSignature => "invalid signature",
            Self::Revoked => "certificate revoked",
            Self::Unsupported => "unsupported",
            Self::QuotaExceeded => "quota exceeded",
        })
    }
}

/// The sender's view of a recipient's devices is out of date (with
/// [`ErrorCode::MismatchedDevices`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MismatchedDevices {
    /// Devices the account has but the send left out: fetch their bundles.
    pub missing: Vec<u32>,
    /// Devices the send addressed that the account does not have: drop their sessions.
    pub extra: Vec<u32>,
    /// Devices whose registration id changed (re-enrolled): start new sessions.
    pub stale: Vec<u32>,
}

/// A server's refusal of one request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    /// A sentence for logs (at most [`crate::limits::MAX_ERROR_MESSAGE_LEN`] bytes); never key
    /// material.
    pub message: String,
    /// When to try again, with `RateLimited` and `Unavailable`.
    pub retry_after_ms: Option<u64>,
    /// With `MismatchedDevices` only.
    pub mismatched_devices: Option<MismatchedDevices>,
}

impl ApiError {
    /// An error with a code and a message, no details.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_ms: None,
            mismatched_devices: None,
        }
    }
}
