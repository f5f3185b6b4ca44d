//! Confianza's public-key infrastructure: sans-IO X.509 (time and randomness are passed in).
#![forbid(unsafe_code)]

pub mod path;
