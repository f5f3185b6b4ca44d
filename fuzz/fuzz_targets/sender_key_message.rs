#![no_main]
//! SenderKeyMessage parsing.
use confianza_protocol::sender_keys::SenderKeyMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = SenderKeyMessage::deserialize(data) {
        assert_eq!(message.serialized(), data);
        let _ = (
            message.chain_id(),
            message.iteration(),
            message.ciphertext().len(),
        );
    }
});
