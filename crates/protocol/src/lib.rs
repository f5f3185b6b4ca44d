//! Confianza's Signal protocol core: sans-IO, byte-compatible with Signal's library.
//!
//! Nothing here does IO, reads a clock or owns a random number generator: time and randomness
//! are passed in, bytes go in and out.
#![forbid(unsafe_code)]

pub mod address;
pub mod attachment;
pub mod call;
pub(crate) mod crypto;
pub mod fingerprint;
#[cfg(test)]
mod kat_tests;
pub mod kem;
pub mod keys;
pub mod limits;
pub mod message;
pub mod prekeys;
pub(crate) mod proto;
pub(crate) mod ratchet;
pub mod sender_keys;
pub mod session;
pub mod snapshot;
pub mod state;
pub mod xeddsa;
