//! The server's HTTP side: the public PKI repository ([`repository_router`]): CA
//! certificates, the current CRL, OCSP and issued certificates, with the standard media types.
//! The messaging service mounts it on its `--http` listener beside `/metrics` and `/healthz`.

mod repository;

pub use repository::{MAX_OCSP_GET_CHARS, MAX_SEARCH_RESULTS, SEARCH_RESULTS, repository_router};
