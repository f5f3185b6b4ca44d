#![no_main]
//! Client and server frame decoding: anything that decodes re-encodes to the same frame.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = confianza_api::decode_client_frame(data) {
        let again = frame.encode().expect("a decoded frame encodes");
        assert_eq!(confianza_api::decode_client_frame(&again).ok(), Some(frame));
    }
    if let Ok(frame) = confianza_api::decode_server_frame(data) {
        let again = frame.encode().expect("a decoded frame encodes");
        assert_eq!(confianza_api::decode_server_frame(&again).ok(), Some(frame));
    }
});
