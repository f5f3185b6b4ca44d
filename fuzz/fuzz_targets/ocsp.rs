#![no_main]
//! OCSP request and response parsing.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = confianza_pki::ocsp::parse_request(data);
    let _ = confianza_pki::ocsp::parse_response(data);
});
