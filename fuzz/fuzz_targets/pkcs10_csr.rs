#![no_main]
//! PKCS#10 request intake (PEM or DER) with its proof-of-possession check.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = confianza_pki::csr::parse_csr(data);
});
