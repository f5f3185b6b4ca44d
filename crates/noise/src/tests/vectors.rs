//! Known-answer tests: `vectors/noise`, byte for byte.

use serde_json::Value;

use super::*;
use crate::handshake::HandshakeState;
use crate::transport::Transport;

/// How a vector was run, for the caller's counts.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    messages: usize,
    checked_hash: bool,
}

/// The two sides in the roles the vector's messages alternate between: `first` sends the even
/// messages. For XX and IK that is the vector's initiator; after an XXfallback it is the
/// original responder (Bob), who initiates the fallback.
fn run(vector: &Value) -> Outcome {
    let messages = messages(vector);
    let (mut even_sender, mut odd_sender, first_index) = parties(vector, true);

    let sends_even = |index: usize| index.is_multiple_of(2);
    let mut index = first_index;
    while !even_sender.is_finished() || !odd_sender.is_finished() {
        let (payload, expected) = &messages[index];
        let (sender, receiver): (&mut HandshakeState, &mut HandshakeState) = if sends_even(index) {
            (&mut even_sender, &mut odd_sender)
        } else {
            (&mut odd_sender, &mut even_sender)
        };
        let written = sender.write_message(payload).expect("write");
        assert_eq!(
            hex::encode(&written),
            hex::encode(expected),
            "{} message {index}",
            name(vector)
        );
        assert_eq!(
            &receiver.read_message(expected).expect("read"),
            payload,
            "message {index}"
        );
        index += 1;
    }

    let mut even = Transport::from_split(even_sender.split().expect("finished"));
    let mut odd = Transport::from_split(odd_sender.split().expect("finished"));
    assert_eq!(even.handshake_hash(), odd.handshake_hash());
    let checked_hash = match opt_bytes(vector, "handshake_hash") {
        Some(hash) => {
            assert_eq!(
                hex::encode(even.handshake_hash()),
                hex::encode(hash),
                "handshake hash"
            );
            true
        }
        None => false,
    };
    for (payload, expected) in &messages[index..] {
        let (sender, receiver) = if sends_even(index) {
            (&mut even, &mut odd)
        } else {
            (&mut odd, &mut even)
        };
        assert_eq!(
            hex::encode(sender.encrypt(payload).expect("encrypt")),
            hex::encode(expected),
            "transport {index}"
        );
        assert_eq!(
            &receiver.decrypt(expected).expect("decrypt"),
            payload,
            "transport {index}"
        );
        index += 1;
    }
    Outcome {
        messages: index,
        checked_hash,
    }
}

#[test]
fn the_seven_selected_vectors_pass_byte_for_byte() {
    let vectors = load("noise_25519_AESGCM_SHA256_XX_IK_XXfallback.json");
    assert_eq!(vectors.len(), 7);
    let mut by_name = std::collections::BTreeMap::<&str, usize>::new();
    for vector in &vectors {
        let outcome = run(vector);
        assert_eq!(
            outcome.messages,
            vector["messages"].as_array().map_or(0, Vec::len)
        );
        *by_name.entry(name(vector)).or_default() += 1;
    }
    assert_eq!(by_name.get("Noise_XX_25519_AESGCM_SHA256"), Some(&3));
    assert_eq!(by_name.get("Noise_IK_25519_AESGCM_SHA256"), Some(&3));
    assert_eq!(
        by_name.get("Noise_XXfallback_25519_AESGCM_SHA256"),
        Some(&1)
    );
}

#[test]
fn upstream_vectors_for_our_suites_pass() {
    let mut ran = 0;
    let mut hashes = 0;
    for file in [
        "upstream/cacophony.txt",
        "upstream/snow.txt",
        "upstream/noise-c-basic.txt",
        "upstream/noise-c-fallback.txt",
    ] {
        for vector in load(file) {
            // `NoisePSK_*` (obsolete PSK scheme) and other suites are filtered out by name.
            if !OUR_SUITES.contains(&name(&vector)) {
                continue;
            }
            let psks = ["init_psks", "resp_psks"]
                .iter()
                .any(|f| vector[*f].as_array().is_some_and(|a| !a.is_empty()));
            assert!(!psks, "{file}: our suites carry no PSK");
            let outcome = run(&vector);
            ran += 1;
            hashes += usize::from(outcome.checked_hash);
        }
    }
    // cacophony 2, snow 2, noise-c basic 2, noise-c fallback 1.
    assert_eq!(ran, 7);
    assert_eq!(hashes, 5);
}

#[test]
fn long_protocol_names_are_hashed() {
    assert!(XX_FALLBACK.protocol_name.len() > 32);
    assert!(XX.protocol_name.len() <= 32 && IK.protocol_name.len() <= 32);
}
