//! Generated protobuf types (`proto/*.proto`), private to the crate: the public API speaks in
//! typed messages, never in raw protobuf structs.
#![allow(clippy::all, missing_docs, dead_code)]

pub mod wire {
    include!(concat!(env!("OUT_DIR"), "/signal.proto.wire.rs"));
}

pub mod fingerprint {
    include!(concat!(env!("OUT_DIR"), "/signal.proto.fingerprint.rs"));
}

pub mod snapshot {
    include!(concat!(env!("OUT_DIR"), "/confianza.snapshot.rs"));
}
