#![no_main]
//! PreKeySignalMessage parsing (and the SignalMessage inside it).
use confianza_protocol::message::PreKeySignalMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = PreKeySignalMessage::deserialize(data) {
        assert_eq!(message.serialized(), data);
        if message.message_version() == 4 {
            assert!(message.kyber().is_some());
        }
    }
});
