#![no_main]
//! SenderKeyDistributionMessage parsing.
use confianza_protocol::sender_keys::SenderKeyDistributionMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = SenderKeyDistributionMessage::deserialize(data) {
        assert_eq!(message.serialized(), data);
        let _ = (
            message.chain_id(),
            message.iteration(),
            message.signing_key(),
        );
    }
});
