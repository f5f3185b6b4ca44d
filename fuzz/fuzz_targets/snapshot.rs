#![no_main]
//! Snapshot loading: corrupted or hostile snapshots are refused with a typed error.
use confianza_protocol::keys::IdentityKeyPair;
use confianza_protocol::prekeys::{KyberPreKeyRecord, PreKeyRecord, SignedPreKeyRecord};
use confianza_protocol::sender_keys::SenderKeyRecord;
use confianza_protocol::state::SessionRecord;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = SessionRecord::from_snapshot(data) {
        let again = SessionRecord::from_snapshot(&record.snapshot()).expect("re-snapshot loads");
        assert_eq!(again.snapshot(), record.snapshot());
    }
    let _ = IdentityKeyPair::from_snapshot(data);
    let _ = PreKeyRecord::from_snapshot(data);
    let _ = SignedPreKeyRecord::from_snapshot(data);
    let _ = KyberPreKeyRecord::from_snapshot(data);
    let _ = SenderKeyRecord::from_snapshot(data);
});
