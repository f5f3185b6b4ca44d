#![no_main]
//! CRL parsing.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = confianza_pki::path::parse_crl(data);
});
