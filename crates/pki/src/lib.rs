//! Confianza pki (work in progress).
#![forbid(unsafe_code)]
