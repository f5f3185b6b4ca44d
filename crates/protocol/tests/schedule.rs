//! Property tests: random schedules of send / deliver / drop / reorder between two parties never
//! lose a deliverable message, and the wire codecs round-trip and never panic on any input.

use confianza_protocol::keys::{IdentityKeyPair, PublicKey};
use confianza_protocol::limits::MAX_RECEIVER_CHAINS;
use confianza_protocol::message::{CiphertextMessage, PreKeySignalMessage, SignalMessage};
use confianza_protocol::prekeys::InMemoryPreKeys;
use confianza_protocol::session::{self, EncryptOptions};
use confianza_protocol::state::SessionRecord;
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

#[derive(Clone, Debug)]
enum Op {
    Send(bool),
    Deliver(bool, usize),
    Drop(bool, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<bool>().prop_map(Op::Send),
        4 => (any::<bool>(), any::<usize>()).prop_map(|(d, i)| Op::Deliver(d, i)),
        1 => (any::<bool>(), any::<usize>()).prop_map(|(d, i)| Op::Drop(d, i)),
    ]
}

struct Side {
    record: SessionRecord,
    /// Ratchet keys of the peer in the order this side first saw them.
    seen_chains: Vec<PublicKey>,
    sent: u32,
}

fn established(seed: u64) -> ([Side; 2], StdRng) {
    let mut rng = StdRng::seed_from_u64(seed);
    let alice = IdentityKeyPair::generate(&mut rng);
    let bob = IdentityKeyPair::generate(&mut rng);
    let keys = InMemoryPreKeys::generate(&bob, 0, &mut rng);
    let bundle = keys
        .bundle(&bob, 2, 1, None, false)
        .expect("keys exist")
        .verify()
        .expect("verifies");
    let mut a = SessionRecord::new();
    session::process_bundle(&mut a, &alice, 1, &bundle, 0, &mut rng).expect("setup");
    let first = session::encrypt(&mut a, b"hi", EncryptOptions::default(), 0).expect("enc");
    let CiphertextMessage::PreKey(first) = first else {
        panic!("prekey")
    };
    let mut b = SessionRecord::new();
    session::decrypt_pre_key(&mut b, &bob, 2, &keys, &first, None, &mut rng).expect("dec");
    let reply = session::encrypt(&mut b, b"yo", EncryptOptions::default(), 0).expect("enc");
    let CiphertextMessage::Whisper(reply) = reply else {
        panic!("whisper")
    };
    session::decrypt(&mut a, &reply, None, &mut rng).expect("dec");
    let side = |record| Side {
        record,
        seen_chains: Vec::new(),
        sent: 0,
    };
    ([side(a), side(b)], rng)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_deliverable_message_decrypts(seed in any::<u64>(), ops in proptest::collection::vec(op(), 1..160)) {
        let (mut sides, mut rng) = established(seed);
        // In flight, per direction (index 0: from side 0 to side 1).
        let mut in_flight: [Vec<(SignalMessage, Vec<u8>)>; 2] = [Vec::new(), Vec::new()];
        for op in ops {
            match op {
                Op::Send(from_b) => {
                    let from = usize::from(from_b);
                    let side = &mut sides[from];
                    let plaintext = format!("{from}:{}", side.sent).into_bytes();
                    side.sent += 1;
                    let message = session::encrypt(&mut side.record, &plaintext, EncryptOptions::default(), 0)
                        .expect("an established session encrypts");
                    let CiphertextMessage::Whisper(message) = message else {
                        panic!("acknowledged sessions send whisper messages")
                    };
                    in_flight[from].push((message, plaintext));
                }
                Op::Drop(from_b, index) => {
                    let queue = &mut in_flight[usize::from(from_b)];
                    if !queue.is_empty() {
                        let i = index % queue.len();
                        queue.remove(i);
                    }
                }
                Op::Deliver(from_b, index) => {
                    let from = usize::from(from_b);
                    let queue = &mut in_flight[from];
                    if queue.is_empty() {
                        continue;
                    }
                    let (message, plaintext) = queue.remove(index % queue.len());
                    let receiver = &mut sides[1 - from];
                    let key = *message.ratchet_key();
                    let age = receiver.seen_chains.iter().rev().position(|k| *k == key);
                    let result = session::decrypt(&mut receiver.record, &message, None, &mut rng);
                    match age {
                        Some(age) if age >= MAX_RECEIVER_CHAINS => {
                            // Its chain was dropped: refusing it is within the limits.
                        }
                        _ => {
                            prop_assert_eq!(result.expect("deliverable message decrypts"), plaintext);
                            if age.is_none() {
                                receiver.seen_chains.push(key);
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn signal_message_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = SignalMessage::deserialize(&bytes);
        let _ = PreKeySignalMessage::deserialize(&bytes);
        let _ = PublicKey::deserialize(&bytes);
    }

    #[test]
    fn messages_round_trip_through_the_codec(seed in any::<u64>(), plaintext in proptest::collection::vec(any::<u8>(), 0..300)) {
        let (mut sides, _) = established(seed);
        let sent = session::encrypt(&mut sides[0].record, &plaintext, EncryptOptions::default(), 0).expect("enc");
        let parsed = SignalMessage::deserialize(sent.serialized()).expect("own message parses");
        prop_assert_eq!(parsed.serialized(), sent.serialized());
        let CiphertextMessage::Whisper(original) = &sent else { panic!("whisper") };
        prop_assert_eq!(parsed.counter(), original.counter());
        prop_assert_eq!(parsed.ratchet_key(), original.ratchet_key());
        prop_assert_eq!(parsed.body(), original.body());
    }
}

#[test]
fn truncations_of_a_real_message_are_refused_cleanly() {
    let (mut sides, mut rng) = established(1);
    let sent =
        session::encrypt(&mut sides[0].record, b"x", EncryptOptions::default(), 0).expect("enc");
    let bytes = sent.serialized();
    for cut in 0..bytes.len() {
        if let Ok(parsed) = SignalMessage::deserialize(&bytes[..cut]) {
            assert!(session::decrypt(&mut sides[1].record, &parsed, None, &mut rng).is_err());
        }
    }
    let parsed = SignalMessage::deserialize(bytes).expect("whole message parses");
    assert!(session::decrypt(&mut sides[1].record, &parsed, None, &mut rng).is_ok());
}
