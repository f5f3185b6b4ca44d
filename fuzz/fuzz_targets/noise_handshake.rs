#![no_main]
//! Noise Pipes handshakes fed arbitrary messages on both sides: never completes, never panics.
use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;
use rand::rngs::StdRng;

fuzz_target!(|data: &[u8]| {
    let mut rng = StdRng::seed_from_u64(7);
    assert!(!confianza_noise::fuzzing::server_read_first_message(
        data, &mut rng
    ));
    let _ = confianza_noise::fuzzing::client_read_response(data, &mut rng);
});
