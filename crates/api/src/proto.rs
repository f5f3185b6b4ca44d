//! Generated protobuf types (`proto/api.proto`), private to the crate: the public API speaks in
//! typed, validated messages, never in raw protobuf structs.
#![allow(clippy::all, missing_docs, dead_code)]

include!(concat!(env!("OUT_DIR"), "/confianza.api.v1.rs"));
