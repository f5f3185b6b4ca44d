//! What the authority's operations fail with.

use std::path::PathBuf;

use crate::store::StoreError;

/// Errors of [`super::Authority`] and of the data directory's set-up. The messages are meant
/// for an operator's terminal or a client's error code; none contains key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorityError {
    /// No enrollment code for this address matches the presented one.
    #[error("invalid enrollment code")]
    InvalidCode,
    /// The code matched but has expired.
    #[error("enrollment code expired")]
    CodeExpired,
    /// The code matched but was already used.
    #[error("enrollment code already used")]
    CodeUsed,
    /// No code was presented and open registration is off (or the domain is not served).
    #[error("an enrollment code is required")]
    CodeRequired,
    /// The RA refused the request (policy, scope, subject).
    #[error("registration authority refused: {0}")]
    Refused(String),
    /// No request with this id.
    #[error("unknown request {0}")]
    UnknownRequest(i64),
    /// No certificate with this serial was issued by this CA.
    #[error("unknown certificate serial {0}")]
    UnknownSerial(String),
    /// The certificate is revoked.
    #[error("certificate {0} is revoked")]
    Revoked(String),
    /// The certificate has expired.
    #[error("certificate {0} has expired")]
    Expired(String),
    /// The presented certificate does not parse or is not the one this CA issued.
    #[error("not a certificate issued by this CA")]
    NotOurCertificate,
    /// The identity key is not a 33-byte Signal Curve25519 key (type byte 0x05).
    #[error("invalid identity key")]
    InvalidIdentityKey,
    /// The request does not fit the certificate profile (address, names, key).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A serial that is not 32 hexadecimal digits.
    #[error("invalid serial {0:?}: expected 32 hexadecimal digits")]
    InvalidSerial(String),
    /// A sealed key needs the passphrase and none was given.
    #[error("the CA keys are sealed: a passphrase is required (CONFIANZA_CA_PASSPHRASE)")]
    PassphraseRequired,
    /// The passphrase does not open the keys.
    #[error("wrong passphrase (or corrupted key file)")]
    WrongPassphrase,
    /// The data directory has no configuration.
    #[error("{0} is not a Confianza data directory (run `confianza-server init` first)")]
    NotInitialised(PathBuf),
    /// `init` on a directory that already holds a CA.
    #[error("{0} already holds a CA")]
    AlreadyInitialised(PathBuf),
    /// A file of the data directory is missing.
    #[error("missing file {0}")]
    MissingFile(PathBuf),
    /// A file of the data directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The configuration is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// A file or row is not what the CA wrote.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// The operation needs the root key, which is offline.
    #[error("the root key is offline (import it with `ca import-root-key`)")]
    RootKeyOffline,
    /// A key could not be generated, loaded or used.
    #[error("key: {0}")]
    Key(#[from] confianza_pki::signer::KeyError),
    /// Issuing failed.
    #[error("issuing: {0}")]
    Issue(#[from] confianza_pki::ca::IssueError),
    /// Building a CRL failed.
    #[error("CRL: {0}")]
    Crl(#[from] confianza_pki::crl::CrlError),
    /// The OCSP responder could not be set up.
    #[error("OCSP: {0}")]
    Ocsp(String),
    /// The database failed.
    #[error("database: {0}")]
    Database(StoreError),
}

impl From<StoreError> for AuthorityError {
    fn from(e: StoreError) -> Self {
        Self::Database(e)
    }
}

impl From<confianza_pki::csr::CsrError> for AuthorityError {
    fn from(e: confianza_pki::csr::CsrError) -> Self {
        Self::InvalidRequest(e.to_string())
    }
}

impl From<confianza_pki::profile::ProfileError> for AuthorityError {
    fn from(e: confianza_pki::profile::ProfileError) -> Self {
        Self::InvalidRequest(e.to_string())
    }
}

impl From<der::Error> for AuthorityError {
    fn from(e: der::Error) -> Self {
        Self::Corrupt(format!("DER: {e}"))
    }
}
