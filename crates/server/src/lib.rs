//! Confianza server (work in progress).
#![forbid(unsafe_code)]
