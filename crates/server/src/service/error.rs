//! Failures of request handling and their mapping to API error codes — the one place where the
//! server's errors become [`ApiError`]s. Storage and CA details go to the log, never to the peer.

use confianza_api::{ApiError, ErrorCode};

use super::authority::AuthorityRefusal;
use super::writer::WriteError;
use crate::store::StoreError;

/// A request failed.
#[derive(Debug)]
pub enum Failure {
    /// The request is refused; the connection goes on.
    Refused(ApiError),
    /// The peer broke the rules: answer, then close the connection.
    Close(ApiError),
}

impl Failure {
    /// A refusal with `code` and a message for the peer's logs.
    pub fn refuse(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Refused(ApiError::new(code, message))
    }

    /// A protocol violation: the connection is closed after the answer.
    pub fn close(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Close(ApiError::new(code, message))
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(what) => Self::refuse(ErrorCode::NotFound, what),
            StoreError::Conflict(what) => Self::refuse(ErrorCode::Conflict, what),
            StoreError::Forbidden(what) => Self::refuse(ErrorCode::Forbidden, what),
            other => {
                tracing::error!(error = %other, "storage failure");
                Self::refuse(ErrorCode::Internal, "internal server error")
            }
        }
    }
}

impl From<AuthorityRefusal> for Failure {
    fn from(refusal: AuthorityRefusal) -> Self {
        match refusal {
            AuthorityRefusal::InvalidCode => {
                Self::refuse(ErrorCode::InvalidEnrollmentCode, "enrollment code refused")
            }
            AuthorityRefusal::Expired => Self::refuse(ErrorCode::Expired, "expired"),
            AuthorityRefusal::RegistrationClosed => {
                Self::refuse(ErrorCode::Forbidden, "open registration is off")
            }
            AuthorityRefusal::Revoked => Self::refuse(ErrorCode::Revoked, "certificate revoked"),
            AuthorityRefusal::UnknownCertificate => {
                Self::refuse(ErrorCode::NotFound, "unknown certificate")
            }
            AuthorityRefusal::Internal(detail) => {
                tracing::error!(%detail, "certification authority failure");
                Self::refuse(ErrorCode::Internal, "internal server error")
            }
        }
    }
}

/// How long a client should wait before retrying when the server is shutting down.
const RETRY_AFTER_SHUTDOWN_MS: u64 = 1_000;

impl From<WriteError> for Failure {
    fn from(error: WriteError) -> Self {
        match error {
            WriteError::Failed => Self::refuse(ErrorCode::Internal, "the message was not stored"),
            WriteError::Closed => Self::Refused(ApiError {
                retry_after_ms: Some(RETRY_AFTER_SHUTDOWN_MS),
                ..ApiError::new(ErrorCode::Unavailable, "the server is shutting down")
            }),
        }
    }
}
