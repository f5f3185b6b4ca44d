#![no_main]
//! X.509 certificate parsing for path validation.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = confianza_pki::path::parse_certificate(data);
});
