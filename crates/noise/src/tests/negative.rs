//! Negative tests derived from the vectors (README "Negative tests to derive"): every altered,
//! cut, replayed or misdirected message fails cleanly.

use serde_json::Value;

use super::*;
use crate::handshake::{HandshakeFault, HandshakeState};
use crate::limits::{MAX_FRAME_LEN, MAX_TRANSPORT_PLAINTEXT_LEN};
use crate::transport::Transport;
use crate::{ReceiveError, SendError};

fn selected() -> Vec<Value> {
    load("noise_25519_AESGCM_SHA256_XX_IK_XXfallback.json")
}

/// Runs a vector's handshake and transport messages, passing message `target` through
/// `mutate` on its way. Returns the index of the first message whose read failed, or `None`
/// when every message was accepted.
fn first_failure(vector: &Value, target: usize, mutate: &dyn Fn(&mut Vec<u8>)) -> Option<usize> {
    let messages = messages(vector);
    let (mut even, mut odd, mut index) = parties(vector, false);
    while !even.is_finished() || !odd.is_finished() {
        let (sender, receiver): (&mut HandshakeState, &mut HandshakeState) =
            if index.is_multiple_of(2) {
                (&mut even, &mut odd)
            } else {
                (&mut odd, &mut even)
            };
        let mut message = sender.write_message(&messages[index].0).expect("write");
        if index == target {
            mutate(&mut message);
        }
        if receiver.read_message(&message).is_err() {
            return Some(index);
        }
        index += 1;
    }
    let mut even = Transport::from_split(even.split().expect("split"));
    let mut odd = Transport::from_split(odd.split().expect("split"));
    while index < messages.len() {
        let (sender, receiver) = if index.is_multiple_of(2) {
            (&mut even, &mut odd)
        } else {
            (&mut odd, &mut even)
        };
        let mut message = sender.encrypt(&messages[index].0).expect("encrypt");
        if index == target {
            mutate(&mut message);
        }
        if receiver.decrypt(&message).is_err() {
            return Some(index);
        }
        index += 1;
    }
    None
}

/// The first message whose tampering the receiver can detect at once: XX message 0 is plain
/// (`e` and a clear payload), so its alteration shows when message 1 fails to decrypt.
fn detected_at(vector: &Value, target: usize) -> usize {
    if target == 0 && pattern_of(vector) == XX {
        1
    } else {
        target
    }
}

fn first_index(vector: &Value) -> usize {
    usize::from(vector["fallback"].as_bool().unwrap_or(false))
}

#[test]
fn unaltered_runs_succeed() {
    for vector in selected() {
        assert_eq!(
            first_failure(&vector, usize::MAX, &|_| {}),
            None,
            "{}",
            name(&vector)
        );
    }
}

#[test]
fn a_flipped_bit_in_any_message_is_detected() {
    let mut cases = 0;
    for vector in selected() {
        let count = messages(&vector).len();
        for target in first_index(&vector)..count {
            let len = first_failure_len(&vector, target);
            // One bit in each part a message can have: `e`, the sealed `s` and its tag, the
            // payload and its tag. (Debug builds of X25519 are slow; every byte would take
            // minutes.)
            let positions = [0, 40, len.saturating_sub(17), len.saturating_sub(1)];
            for &position in positions.iter().filter(|&&p| p < len) {
                let flip = move |message: &mut Vec<u8>| message[position] ^= 1 << (position % 8);
                assert_eq!(
                    first_failure(&vector, target, &flip),
                    Some(detected_at(&vector, target)),
                    "{} message {target} byte {position}",
                    name(&vector)
                );
                cases += 1;
            }
        }
    }
    assert!(cases > 100, "{cases}");
}

/// Length of message `target` as this run writes it (the vectors' ciphertext lengths).
fn first_failure_len(vector: &Value, target: usize) -> usize {
    messages(vector)[target].1.len()
}

#[test]
fn truncated_messages_are_detected() {
    for vector in selected() {
        for target in first_index(&vector)..messages(&vector).len() {
            let len = first_failure_len(&vector, target);
            for cut in [0, 31, 32 + 15, len.saturating_sub(16)] {
                if cut >= len {
                    continue;
                }
                let truncate = move |message: &mut Vec<u8>| message.truncate(cut);
                let failed = first_failure(&vector, target, &truncate);
                // A cut XX message 0 may still parse (plain payload) and fail one step later.
                let expected = if cut < 32 {
                    target
                } else {
                    detected_at(&vector, target)
                };
                assert_eq!(
                    failed,
                    Some(expected),
                    "{} message {target} cut to {cut}",
                    name(&vector)
                );
            }
        }
    }
}

#[test]
fn a_wrong_prologue_fails_at_the_first_encrypted_payload() {
    for vector in selected() {
        let messages = messages(&vector);
        let (mut even, mut odd, mut index) = parties(&vector, false);
        // Rebuild the receiver of the first encrypted message with another prologue.
        let wrong = |v: &Value, side: &str| Party {
            prologue: b"another protocol".to_vec(),
            ..party(v, side)
        };
        let fallback = first_index(&vector) == 1;
        if fallback {
            let alice = handshake(
                XX_FALLBACK,
                false,
                &Party {
                    rs: None,
                    ..wrong(&vector, "init")
                },
                None,
            );
            even = alice;
        } else {
            odd = handshake(pattern_of(&vector), false, &wrong(&vector, "resp"), None);
        }
        let expected_failure = if pattern_of(&vector) == XX { 1 } else { index };
        let failed = loop {
            let (sender, receiver): (&mut HandshakeState, &mut HandshakeState) =
                if index.is_multiple_of(2) {
                    (&mut even, &mut odd)
                } else {
                    (&mut odd, &mut even)
                };
            let message = sender.write_message(&messages[index].0).expect("write");
            if let Err(fault) = receiver.read_message(&message) {
                assert_eq!(fault, HandshakeFault::Decrypt);
                break index;
            }
            index += 1;
            assert!(
                index < 3,
                "{}: the handshake must not complete",
                name(&vector)
            );
        };
        assert_eq!(failed, expected_failure, "{}", name(&vector));
    }
}

#[test]
fn ik_to_the_wrong_static_key_fails_at_the_responder() {
    let vector = selected()
        .into_iter()
        .find(|v| first_index(v) == 1)
        .expect("fallback vector");
    let alice = party(&vector, "init");
    let bob = party(&vector, "resp");
    let mut alice_ik = handshake(IK, true, &alice, None);
    let message = alice_ik
        .write_message(&messages(&vector)[0].0)
        .expect("write");
    let mut bob_ik = handshake(IK, false, &bob, None);
    assert_eq!(bob_ik.read_message(&message), Err(HandshakeFault::Decrypt));
    // The same message to the right key is accepted.
    let mut alice_right = handshake(
        IK,
        true,
        &Party {
            rs: Some(bob.s.public_key()),
            ..party(&vector, "init")
        },
        None,
    );
    let message = alice_right.write_message(b"").expect("write");
    assert!(
        handshake(IK, false, &bob, None)
            .read_message(&message)
            .is_ok()
    );
}

fn established(vector: &Value) -> (Transport, Transport) {
    let (mut even, mut odd, mut index) = parties(vector, false);
    while !even.is_finished() || !odd.is_finished() {
        let (sender, receiver): (&mut HandshakeState, &mut HandshakeState) =
            if index.is_multiple_of(2) {
                (&mut even, &mut odd)
            } else {
                (&mut odd, &mut even)
            };
        let message = sender.write_message(b"").expect("write");
        receiver.read_message(&message).expect("read");
        index += 1;
    }
    (
        Transport::from_split(even.split().expect("split")),
        Transport::from_split(odd.split().expect("split")),
    )
}

#[test]
fn transport_replay_and_reordering_fail_without_changing_state() {
    for vector in selected() {
        let (mut alice, mut bob) = established(&vector);
        let first = alice.encrypt(b"k").expect("encrypt");
        let second = alice.encrypt(b"k+1").expect("encrypt");
        // Reordered: k+1 before k fails and leaves the counter on k.
        assert_eq!(bob.decrypt(&second), Err(ReceiveError::Decrypt));
        assert_eq!(bob.decrypt(&first).expect("k"), b"k");
        assert_eq!(bob.decrypt(&second).expect("k+1"), b"k+1");
        // Replayed: k after k+1 fails.
        assert_eq!(bob.decrypt(&first), Err(ReceiveError::Decrypt));
        assert_eq!(bob.decrypt(&second), Err(ReceiveError::Decrypt));
        // Own messages do not decrypt on the sending side's receiving key (directions differ).
        let third = alice.encrypt(b"k+2").expect("encrypt");
        assert_eq!(alice.decrypt(&third), Err(ReceiveError::Decrypt));
        assert_eq!(bob.decrypt(&third).expect("k+2"), b"k+2");
    }
}

#[test]
fn oversized_messages_are_refused() {
    let vector = &selected()[0];
    let (mut even, _odd, _) = parties(vector, false);
    let _ = even.write_message(b"").expect("write");
    // The next read is the initiator's: a message over 65 535 bytes is refused before parsing.
    assert_eq!(
        even.read_message(&vec![0u8; MAX_FRAME_LEN + 1]),
        Err(HandshakeFault::TooLong)
    );

    let (mut alice, mut bob) = established(vector);
    assert!(
        alice
            .encrypt(&vec![0u8; MAX_TRANSPORT_PLAINTEXT_LEN])
            .is_ok()
    );
    assert_eq!(
        alice.encrypt(&vec![0u8; MAX_TRANSPORT_PLAINTEXT_LEN + 1]),
        Err(SendError::TooLong {
            len: MAX_TRANSPORT_PLAINTEXT_LEN + 1,
            max: MAX_TRANSPORT_PLAINTEXT_LEN
        })
    );
    assert_eq!(
        bob.decrypt(&vec![0u8; MAX_FRAME_LEN + 1]),
        Err(ReceiveError::TooLong {
            len: MAX_FRAME_LEN + 1,
            max: MAX_FRAME_LEN
        })
    );
    // A 65 535-byte message is of legal size; it fails only authentication.
    assert_eq!(
        bob.decrypt(&vec![0u8; MAX_FRAME_LEN]),
        Err(ReceiveError::Decrypt)
    );
}

#[test]
fn a_handshake_payload_that_overflows_the_message_is_refused() {
    let vectors = selected();
    let vector = vectors
        .iter()
        .find(|v| pattern_of(v) == XX)
        .expect("an XX vector");
    let (mut even, _odd, _) = parties(vector, false);
    // XX message 0 is `e` (32) plus the clear payload.
    assert_eq!(
        even.write_message(&vec![0u8; MAX_FRAME_LEN - 32 + 1]),
        Err(HandshakeFault::TooLong)
    );
    let (mut even, _odd, _) = parties(vector, false);
    assert!(even.write_message(&vec![0u8; MAX_FRAME_LEN - 32]).is_ok());
}

#[test]
fn transport_stops_at_nonce_exhaustion() {
    let (mut alice, mut bob) = established(&selected()[0]);
    alice.set_nonces_for_test(crate::limits::MAX_NONCE, 0);
    bob.set_nonces_for_test(0, crate::limits::MAX_NONCE);
    let last = alice.encrypt(b"last").expect("nonce 2^64-2");
    assert_eq!(bob.decrypt(&last).expect("decrypts"), b"last");
    assert_eq!(alice.encrypt(b"one more"), Err(SendError::NonceExhausted));
    assert_eq!(bob.decrypt(&last), Err(ReceiveError::NonceExhausted));
}

#[test]
fn out_of_turn_calls_are_refused() {
    let vector = &selected()[0];
    let (mut even, mut odd, _) = parties(vector, false);
    assert_eq!(
        odd.write_message(b"").err(),
        Some(HandshakeFault::OutOfTurn)
    );
    assert_eq!(
        even.read_message(&[0u8; 64]).err(),
        Some(HandshakeFault::OutOfTurn)
    );
    assert!(even.split().is_err());
}
