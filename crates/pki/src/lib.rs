//! Confianza's public-key infrastructure: sans-IO X.509 (time and randomness are passed in).
#![forbid(unsafe_code)]

pub mod ca;
pub mod crl;
pub mod csr;
pub mod limits;
pub mod ocsp;
pub mod path;
pub mod profile;
pub mod ra;
pub mod seal;
pub mod serial;
pub mod signer;
pub mod text;
pub mod textbook;
pub mod verify;
