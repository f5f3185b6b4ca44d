#![no_main]
//! Client and server frame decoding, and the server's handshake payload: anything that decodes
//! re-encodes to the same value.
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
    if let Ok(payload) = confianza_api::ServerHandshakePayload::decode(data) {
        let again = payload.encode().expect("a decoded payload encodes");
        assert_eq!(
            confianza_api::ServerHandshakePayload::decode(&again).ok(),
            Some(payload)
        );
    }
});
