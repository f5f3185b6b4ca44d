//! Confianza client (work in progress).
#![forbid(unsafe_code)]
