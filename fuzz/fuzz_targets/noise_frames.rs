#![no_main]
//! Noise frame decoding in arbitrary chunking.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = confianza_noise::fuzzing::decode_frames(data);
});
