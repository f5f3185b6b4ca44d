//! Confianza's Signal protocol core: sans-IO, byte-compatible with Signal's library.
//!
//! Nothing here does IO, reads a clock or owns a random number generator: time and randomness
//! are passed in, bytes go in and out.
#![forbid(unsafe_code)]

pub mod attachment;
pub mod call;
pub mod fingerprint;
pub mod limits;
pub(crate) mod proto;
pub mod keys;
pub mod xeddsa;
pub mod kem;
pub(crate) mod crypto;
pub mod message;
pub mod prekeys;
pub(crate) mod ratchet;
pub mod address;
pub mod state;
pub mod session;
#[cfg(test)]
mod kat_tests;
