#![no_main]
//! SignalMessage parsing: any bytes give a message or a typed error, and a parsed message
//! re-serializes to exactly its input.
use confianza_protocol::message::SignalMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = SignalMessage::deserialize(data) {
        assert_eq!(message.serialized(), data);
        let _ = (
            message.counter(),
            message.previous_counter(),
            message.body().len(),
        );
    }
});
