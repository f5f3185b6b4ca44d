//! Snapshots: a restored session carries on exactly; corrupted snapshots are refused cleanly.

use confianza_protocol::keys::IdentityKeyPair;
use confianza_protocol::message::CiphertextMessage;
use confianza_protocol::prekeys::{
    InMemoryPreKeys, KyberPreKeyRecord, PreKeyRecord, SignedPreKeyRecord,
};
use confianza_protocol::session::{self, EncryptOptions};
use confianza_protocol::snapshot::SnapshotError;
use confianza_protocol::state::SessionRecord;
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn restore(record: &SessionRecord) -> SessionRecord {
    SessionRecord::from_snapshot(&record.snapshot()).expect("own snapshot loads")
}

fn sessions() -> (SessionRecord, SessionRecord, StdRng) {
    let mut rng = StdRng::seed_from_u64(77);
    let alice = IdentityKeyPair::generate(&mut rng);
    let bob = IdentityKeyPair::generate(&mut rng);
    // Every Bob key goes through its snapshot before use.
    let mut keys = InMemoryPreKeys::default();
    let signed = SignedPreKeyRecord::generate(1, &bob, 5, &mut rng).snapshot();
    let kyber = KyberPreKeyRecord::generate(2, &bob, 5, &mut rng).snapshot();
    let one_time = PreKeyRecord::generate(3, &mut rng).snapshot();
    keys.signed.insert(
        1,
        SignedPreKeyRecord::from_snapshot(&signed).expect("loads"),
    );
    keys.kyber
        .insert(2, KyberPreKeyRecord::from_snapshot(&kyber).expect("loads"));
    keys.one_time
        .insert(3, PreKeyRecord::from_snapshot(&one_time).expect("loads"));
    let bob = IdentityKeyPair::from_snapshot(&bob.snapshot()).expect("loads");
    let bundle = keys
        .bundle(&bob, 2, 1, Some(3), true)
        .expect("keys exist")
        .verify()
        .expect("verifies");
    let mut a = SessionRecord::new();
    session::process_bundle(&mut a, &alice, 1, &bundle, 0, &mut rng).expect("setup");
    let mut a = restore(&a);
    let CiphertextMessage::PreKey(first) =
        session::encrypt(&mut a, b"one", EncryptOptions::default(), 0).expect("enc")
    else {
        panic!("prekey")
    };
    let mut b = SessionRecord::new();
    session::decrypt_pre_key(&mut b, &bob, 2, &keys, &first, None, &mut rng).expect("dec");
    (a, restore(&b), rng)
}

#[test]
fn restored_sessions_carry_on() {
    let (mut a, mut b, mut rng) = sessions();
    let mut late = Vec::new();
    for round in 0..4u8 {
        let skipped = session::encrypt(&mut a, &[round], EncryptOptions::default(), 0).expect("e");
        late.push(skipped);
        let m = session::encrypt(&mut a, b"m", EncryptOptions::default(), 0).expect("enc");
        let CiphertextMessage::Whisper(m) = m else {
            // Before Bob's first reply Alice still sends PreKey messages.
            b = restore(&b);
            continue;
        };
        b = restore(&b);
        assert_eq!(
            session::decrypt(&mut b, &m, None, &mut rng).expect("d"),
            b"m"
        );
        let CiphertextMessage::Whisper(r) =
            session::encrypt(&mut b, b"r", EncryptOptions::default(), 0).expect("enc")
        else {
            panic!("whisper")
        };
        a = restore(&a);
        assert_eq!(
            session::decrypt(&mut a, &r, None, &mut rng).expect("d"),
            b"r"
        );
    }
    let b_snapshot = b.snapshot();
    let mut b = SessionRecord::from_snapshot(&b_snapshot).expect("loads");
    for (i, m) in late.iter().enumerate().skip(1) {
        let CiphertextMessage::Whisper(w) = m else {
            continue;
        };
        assert_eq!(
            session::decrypt(&mut b, w, None, &mut rng).expect("late"),
            [i as u8]
        );
    }
}

#[test]
fn snapshot_errors_are_typed() {
    let (a, _, _) = sessions();
    let mut bytes = a.snapshot().to_vec();
    assert_eq!(bytes[0], 0x08, "field 1 (format) first");
    bytes[1] = 9;
    assert_eq!(
        SessionRecord::from_snapshot(&bytes).err(),
        Some(SnapshotError::UnknownFormat(9))
    );
    assert_eq!(
        SessionRecord::from_snapshot(&[0xff, 0xff]).err(),
        Some(SnapshotError::Malformed)
    );
    assert_eq!(
        IdentityKeyPair::from_snapshot(&[]).err(),
        Some(SnapshotError::Missing("format"))
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn corrupted_snapshots_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>()) {
        let (a, _, _) = sessions();
        let mut bytes = a.snapshot().to_vec();
        for (position, value) in flips {
            let i = position % bytes.len();
            bytes[i] ^= value;
        }
        bytes.truncate(cut % (bytes.len() + 1));
        let _ = SessionRecord::from_snapshot(&bytes);
        let _ = IdentityKeyPair::from_snapshot(&bytes);
        let _ = KyberPreKeyRecord::from_snapshot(&bytes);
    }
}
