//! Confianza noise (work in progress).
#![forbid(unsafe_code)]
