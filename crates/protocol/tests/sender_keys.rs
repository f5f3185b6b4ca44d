//! Sender keys (group messaging): known answers, round trips, reordering, limits at N and N+1,
//! refusals that leave the record unchanged, codecs and snapshots.
//!
//! `TestSender` is an independent sender written directly on the primitives (HMAC chain, HKDF
//! "WhisperGroup", AES-256-CBC), so messages at any iteration can be made without walking the
//! module's own chain, and the module's key schedule is cross-checked.

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockModeEncrypt, KeyIvInit};
use confianza_protocol::address::ProtocolAddress;
use confianza_protocol::keys::{KeyPair, PrivateKey, PublicKey};
use confianza_protocol::limits::{
    MAX_FORWARD_JUMPS, MAX_MESSAGE_KEYS, MAX_MESSAGE_LENGTH, MAX_SENDER_KEY_STATES,
};
use confianza_protocol::sender_keys::{
    DistributionId, GroupDecryptError, GroupEncryptError, InMemorySenderKeyStore,
    MAX_SENDER_KEY_SNAPSHOT_LENGTH, SenderKeyDecodeError, SenderKeyDistributionMessage,
    SenderKeyMessage, SenderKeyRecord, SenderKeySnapshotError, SenderKeyStore,
    create_sender_key_distribution_message, group_decrypt, group_encrypt,
    process_sender_key_distribution_message,
};
use hmac::{KeyInit, Mac};
use proptest::prelude::*;
use prost::Message as _;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn rng() -> StdRng {
    StdRng::seed_from_u64(11)
}

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).expect("test hex")
}

const DIST: DistributionId = DistributionId::from_bytes([0xd1; 16]);
const CHAIN_ID: u32 = 0x0234_5678;

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).expect("any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// An independent sender on the primitives.
struct TestSender {
    chain_id: u32,
    start_iteration: u32,
    chain_key: [u8; 32],
    signing: PrivateKey,
}

impl TestSender {
    fn new(chain_key: [u8; 32], signing: PrivateKey) -> Self {
        Self {
            chain_id: CHAIN_ID,
            start_iteration: 0,
            chain_key,
            signing,
        }
    }

    fn chain_key_at(&self, iteration: u32) -> [u8; 32] {
        let mut key = self.chain_key;
        for _ in self.start_iteration..iteration {
            key = hmac(&key, &[0x02]);
        }
        key
    }

    fn skdm(&self) -> SenderKeyDistributionMessage {
        SenderKeyDistributionMessage::new(
            DIST,
            self.chain_id,
            self.start_iteration,
            self.chain_key,
            self.signing.public_key(),
        )
    }

    fn ciphertext(&self, iteration: u32, plaintext: &[u8]) -> Vec<u8> {
        let seed = hmac(&self.chain_key_at(iteration), &[0x01]);
        let mut okm = [0u8; 48];
        hkdf::Hkdf::<sha2::Sha256>::new(None, &seed)
            .expand(b"WhisperGroup", &mut okm)
            .expect("48 bytes");
        let (iv, key) = okm.split_at(16);
        cbc::Encryptor::<aes::Aes256>::new(key.try_into().expect("32"), iv.try_into().expect("16"))
            .encrypt_padded_vec::<Pkcs7>(plaintext)
    }

    fn message(&self, iteration: u32, plaintext: &[u8]) -> SenderKeyMessage {
        SenderKeyMessage::new(
            DIST,
            self.chain_id,
            iteration,
            self.ciphertext(iteration, plaintext),
            &self.signing,
            &mut rng(),
        )
    }
}

fn test_sender() -> TestSender {
    TestSender::new(
        core::array::from_fn(|i| i as u8),
        PrivateKey::from_bytes(&[0x40; 32]).expect("32 bytes"),
    )
}

/// Bob's record after processing `sender`'s distribution message.
fn receiver_of(sender: &TestSender) -> SenderKeyRecord {
    let mut record = SenderKeyRecord::new();
    let skdm = SenderKeyDistributionMessage::deserialize(sender.skdm().serialized()).expect("ok");
    record.process_distribution(&skdm);
    record
}

fn snapshot(record: &SenderKeyRecord) -> Vec<u8> {
    record.to_snapshot().to_vec()
}

// ------------------------------------------------------------------------------------------
// Known answers (computed independently with Python `cryptography` + hmac/hashlib)
// ------------------------------------------------------------------------------------------

const KAT_SIGNING_PUBLIC: &str = "d7b5e81d336e578b13b8d706e82d061e3038c96bce66cdcf50d566b96ddbba10";
const KAT_SKDM: &str = "330a10d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d110f8acd11118002220000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2a2105d7b5e81d336e578b13b8d706e82d061e3038c96bce66cdcf50d566b96ddbba10";
const KAT_BODY_0: &str =
    "330a10d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d110f8acd11118002210a1ef70d7e0e1372d1ff1795cdd41aef2";
const KAT_BODY_5: &str =
    "330a10d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d110f8acd111180522107f6062f0c8ab02c20d65747f92cda1b1";

#[test]
fn known_answer_skdm_bytes() {
    let sender = test_sender();
    assert_eq!(
        sender.signing.public_key().u()[..],
        h(KAT_SIGNING_PUBLIC)[..]
    );
    assert_eq!(hex::encode(sender.skdm().serialized()), KAT_SKDM);
    let parsed = SenderKeyDistributionMessage::deserialize(&h(KAT_SKDM)).expect("valid");
    assert_eq!(parsed.distribution_id(), DIST);
    assert_eq!(parsed.chain_id(), CHAIN_ID);
    assert_eq!(parsed.iteration(), 0);
    assert_eq!(parsed.chain_key(), &sender.chain_key);
    assert_eq!(parsed.signing_key(), &sender.signing.public_key());
    assert_eq!(parsed.message_version(), 3);
}

#[test]
fn known_answer_messages_decrypt() {
    let sender = test_sender();
    let mut bob = receiver_of(&sender);
    for (iteration, body) in [(5, KAT_BODY_5), (0, KAT_BODY_0)] {
        let message = sender.message(iteration, b"group hello");
        let serialized = message.serialized();
        assert_eq!(hex::encode(&serialized[..serialized.len() - 64]), body);
        let parsed = SenderKeyMessage::deserialize(serialized).expect("valid");
        assert_eq!(bob.decrypt(&parsed), Ok(b"group hello".to_vec()));
    }
}

/// The module's own sender agrees with the independent one.
#[test]
fn module_sender_matches_independent_key_schedule() {
    let mut r = rng();
    let mut alice = SenderKeyRecord::new();
    let skdm = alice.create_distribution(DIST, &mut r);
    assert_eq!(skdm.iteration(), 0);
    assert!(skdm.chain_id() < 1 << 31, "chain ids are 31 bits");
    let independent = TestSender {
        chain_id: skdm.chain_id(),
        start_iteration: 0,
        chain_key: *skdm.chain_key(),
        signing: PrivateKey::from_bytes(&[1; 32]).expect("unused"),
    };
    for iteration in 0..3 {
        let message = alice.encrypt(DIST, b"abc", &mut r).expect("own state");
        assert_eq!(message.iteration(), iteration);
        assert_eq!(message.chain_id(), skdm.chain_id());
        assert_eq!(message.serialized()[0], 0x33);
        assert_eq!(
            message.ciphertext(),
            independent.ciphertext(iteration, b"abc")
        );
        assert!(message.verify_signature(skdm.signing_key()));
    }
    // A later distribution message reports the current iteration and chain key.
    let later = alice.create_distribution(DIST, &mut r);
    assert_eq!(later.chain_id(), skdm.chain_id());
    assert_eq!(later.iteration(), 3);
    assert_eq!(later.chain_key(), &independent.chain_key_at(3));
}

// ------------------------------------------------------------------------------------------
// Store-level flows
// ------------------------------------------------------------------------------------------

#[test]
fn group_round_trip_through_stores() {
    let mut r = rng();
    let alice = ProtocolAddress::new("alice", 1);
    let mut alice_store = InMemorySenderKeyStore::new();
    let mut bob_store = InMemorySenderKeyStore::new();
    let mut carol_store = InMemorySenderKeyStore::new();
    let skdm = create_sender_key_distribution_message(&mut alice_store, &alice, DIST, &mut r);
    for store in [&mut bob_store, &mut carol_store] {
        let received = SenderKeyDistributionMessage::deserialize(skdm.serialized()).expect("ok");
        process_sender_key_distribution_message(store, &alice, &received);
    }
    for i in 0..20u8 {
        let text = vec![i; usize::from(i) * 7];
        let message = group_encrypt(&mut alice_store, &alice, DIST, &text, &mut r).expect("ok");
        for store in [&mut bob_store, &mut carol_store] {
            assert_eq!(
                group_decrypt(store, &alice, message.serialized()),
                Ok(text.clone())
            );
        }
    }
    assert_eq!(bob_store.len(), 1);
}

#[test]
fn encrypt_without_a_usable_state() {
    let mut r = rng();
    let alice = ProtocolAddress::new("alice", 1);
    let mut store = InMemorySenderKeyStore::new();
    assert_eq!(
        group_encrypt(&mut store, &alice, DIST, b"x", &mut r).err(),
        Some(GroupEncryptError::NoSenderKeyState)
    );
    // A record holding only someone else's chain cannot sign.
    let mut bob = receiver_of(&test_sender());
    assert_eq!(
        bob.encrypt(DIST, b"x", &mut r).err(),
        Some(GroupEncryptError::NoSigningKey)
    );
}

#[test]
fn unknown_sender_distribution_or_chain() {
    let sender = test_sender();
    let alice = ProtocolAddress::new("alice", 1);
    let mut store = InMemorySenderKeyStore::new();
    let message = sender.message(0, b"x");
    assert_eq!(
        group_decrypt(&mut store, &alice, message.serialized()),
        Err(GroupDecryptError::NoSenderKeyState { chain_id: CHAIN_ID })
    );
    process_sender_key_distribution_message(&mut store, &alice, &sender.skdm());
    // Another sender address.
    assert_eq!(
        group_decrypt(
            &mut store,
            &ProtocolAddress::new("mallory", 1),
            message.serialized()
        ),
        Err(GroupDecryptError::NoSenderKeyState { chain_id: CHAIN_ID })
    );
    // Wrong chain id.
    let mut other = test_sender();
    other.chain_id = CHAIN_ID + 1;
    assert_eq!(
        group_decrypt(&mut store, &alice, other.message(0, b"x").serialized()),
        Err(GroupDecryptError::NoSenderKeyState {
            chain_id: CHAIN_ID + 1
        })
    );
    assert_eq!(
        group_decrypt(&mut store, &alice, message.serialized()),
        Ok(b"x".to_vec())
    );
}

/// A member leaves: the remaining sender drops its own key and distributes a new one to the
/// remaining members only; the departed member can no longer read.
#[test]
fn member_removal_resets_the_sender_key() {
    let mut r = rng();
    let alice = ProtocolAddress::new("alice", 1);
    let carol = ProtocolAddress::new("carol", 1);
    let mut alice_store = InMemorySenderKeyStore::new();
    let mut bob_store = InMemorySenderKeyStore::new();
    let mut carol_store = InMemorySenderKeyStore::new();
    let old = create_sender_key_distribution_message(&mut alice_store, &alice, DIST, &mut r);
    process_sender_key_distribution_message(&mut bob_store, &alice, &old);
    process_sender_key_distribution_message(&mut carol_store, &alice, &old);
    let before = group_encrypt(&mut alice_store, &alice, DIST, b"before", &mut r).expect("ok");

    // Carol leaves.
    assert!(alice_store.remove_sender_key_record(&alice, DIST).is_some());
    assert!(bob_store.remove_sender_key_record(&carol, DIST).is_none());
    let new = create_sender_key_distribution_message(&mut alice_store, &alice, DIST, &mut r);
    assert_ne!(new.signing_key(), old.signing_key());
    assert_ne!(new.chain_key(), old.chain_key());
    process_sender_key_distribution_message(&mut bob_store, &alice, &new);

    let after = group_encrypt(&mut alice_store, &alice, DIST, b"after", &mut r).expect("ok");
    assert_eq!(
        group_decrypt(&mut bob_store, &alice, after.serialized()),
        Ok(b"after".to_vec())
    );
    assert!(matches!(
        group_decrypt(&mut carol_store, &alice, after.serialized()),
        Err(GroupDecryptError::NoSenderKeyState { .. })
    ));
    // Bob still reads the late message from the old chain (kept among his ≤ 5 states).
    assert_eq!(
        group_decrypt(&mut bob_store, &alice, before.serialized()),
        Ok(b"before".to_vec())
    );
    // Dropping Alice's record at Bob's: nothing of hers decrypts any more.
    assert!(bob_store.remove_sender_key_record(&alice, DIST).is_some());
    assert!(bob_store.is_empty());
    assert!(matches!(
        group_decrypt(&mut bob_store, &alice, after.serialized()),
        Err(GroupDecryptError::NoSenderKeyState { .. })
    ));
}

// ------------------------------------------------------------------------------------------
// Ordering, duplicates and limits
// ------------------------------------------------------------------------------------------

#[test]
fn reordering_within_limits() {
    let sender = test_sender();
    let mut bob = receiver_of(&sender);
    let order = [7u32, 2, 9, 0, 1, 8, 3, 6, 5, 4];
    for &i in &order {
        let text = format!("message {i}");
        let message = sender.message(i, text.as_bytes());
        assert_eq!(
            bob.decrypt(&message),
            Ok(text.into_bytes()),
            "iteration {i}"
        );
    }
    let state = bob.state_for_chain_id(CHAIN_ID).expect("state");
    assert_eq!(state.iteration(), 10);
    assert_eq!(state.skipped_keys(), 0);
}

#[test]
fn duplicate_is_refused_and_record_unchanged() {
    let sender = test_sender();
    let mut bob = receiver_of(&sender);
    let first = sender.message(0, b"once");
    assert_eq!(bob.decrypt(&first), Ok(b"once".to_vec()));
    let before = snapshot(&bob);
    assert_eq!(
        bob.decrypt(&first),
        Err(GroupDecryptError::DuplicatedMessage {
            current: 1,
            iteration: 0
        })
    );
    assert_eq!(snapshot(&bob), before);
    // Skipped then consumed: the second delivery is a duplicate too.
    let third = sender.message(3, b"three");
    let second = sender.message(2, b"two");
    assert_eq!(bob.decrypt(&third), Ok(b"three".to_vec()));
    assert_eq!(bob.decrypt(&second), Ok(b"two".to_vec()));
    let before = snapshot(&bob);
    assert_eq!(
        bob.decrypt(&second),
        Err(GroupDecryptError::DuplicatedMessage {
            current: 4,
            iteration: 2
        })
    );
    assert_eq!(snapshot(&bob), before);
}

#[test]
fn forward_jump_at_n_and_n_plus_one() {
    let sender = test_sender();
    // N + 1: refused, record unchanged.
    let mut bob = receiver_of(&sender);
    let before = snapshot(&bob);
    let too_far = sender.message(MAX_FORWARD_JUMPS + 1, b"far");
    assert_eq!(
        bob.decrypt(&too_far),
        Err(GroupDecryptError::TooFarInFuture {
            current: 0,
            iteration: MAX_FORWARD_JUMPS + 1
        })
    );
    assert_eq!(snapshot(&bob), before);
    // N: accepted; only the newest MAX_MESSAGE_KEYS skipped keys are kept.
    let far = sender.message(MAX_FORWARD_JUMPS, b"far");
    assert_eq!(bob.decrypt(&far), Ok(b"far".to_vec()));
    let state = bob.state_for_chain_id(CHAIN_ID).expect("state");
    assert_eq!(state.iteration(), MAX_FORWARD_JUMPS + 1);
    assert_eq!(state.skipped_keys(), MAX_MESSAGE_KEYS);
    let oldest_kept = MAX_FORWARD_JUMPS - MAX_MESSAGE_KEYS as u32;
    assert_eq!(
        bob.decrypt(&sender.message(oldest_kept, b"k")),
        Ok(b"k".to_vec())
    );
    assert!(matches!(
        bob.decrypt(&sender.message(oldest_kept - 1, b"k")),
        Err(GroupDecryptError::DuplicatedMessage { .. })
    ));
    // The jump is measured from the chain's current position.
    let next_far = sender.message(MAX_FORWARD_JUMPS + 1 + MAX_FORWARD_JUMPS + 1, b"x");
    assert!(matches!(
        bob.decrypt(&next_far),
        Err(GroupDecryptError::TooFarInFuture { .. })
    ));
}

#[test]
fn skipped_keys_at_n_and_n_plus_one() {
    let sender = test_sender();
    let n = MAX_MESSAGE_KEYS as u32;
    // N skipped keys (iterations 0..N) are all kept.
    let mut bob = receiver_of(&sender);
    assert_eq!(
        bob.decrypt(&sender.message(n, b"last")),
        Ok(b"last".to_vec())
    );
    assert_eq!(
        bob.state_for_chain_id(CHAIN_ID).map(|s| s.skipped_keys()),
        Some(MAX_MESSAGE_KEYS)
    );
    assert_eq!(
        bob.decrypt(&sender.message(0, b"first")),
        Ok(b"first".to_vec())
    );
    // N + 1 skipped keys: the oldest is dropped.
    let mut bob = receiver_of(&sender);
    assert_eq!(
        bob.decrypt(&sender.message(n + 1, b"last")),
        Ok(b"last".to_vec())
    );
    assert_eq!(
        bob.state_for_chain_id(CHAIN_ID).map(|s| s.skipped_keys()),
        Some(MAX_MESSAGE_KEYS)
    );
    assert_eq!(
        bob.decrypt(&sender.message(0, b"first")),
        Err(GroupDecryptError::DuplicatedMessage {
            current: n + 2,
            iteration: 0
        })
    );
    assert_eq!(
        bob.decrypt(&sender.message(1, b"second")),
        Ok(b"second".to_vec())
    );
    // Skipped keys accumulate across jumps and stay bounded.
    let mut bob = receiver_of(&sender);
    for step in 1..=4u32 {
        assert!(bob.decrypt(&sender.message(step * 900, b"s")).is_ok());
    }
    assert_eq!(
        bob.state_for_chain_id(CHAIN_ID).map(|s| s.skipped_keys()),
        Some(MAX_MESSAGE_KEYS)
    );
}

#[test]
fn chain_at_u32_max_is_exhausted() {
    let mut sender = test_sender();
    sender.start_iteration = u32::MAX;
    let mut bob = receiver_of(&sender);
    let before = snapshot(&bob);
    assert_eq!(
        bob.decrypt(&sender.message(u32::MAX, b"x")),
        Err(GroupDecryptError::ChainExhausted)
    );
    assert_eq!(snapshot(&bob), before);
}

// ------------------------------------------------------------------------------------------
// Forgery and corruption: refused before anything changes
// ------------------------------------------------------------------------------------------

#[test]
fn forged_or_altered_messages_are_refused() {
    let sender = test_sender();
    let mut bob = receiver_of(&sender);
    let genuine = sender.message(0, b"genuine").serialized().to_vec();
    let before = snapshot(&bob);
    // Any flipped bit in the signed part or the signature.
    for i in [
        0usize,
        5,
        20,
        genuine.len() - 65,
        genuine.len() - 64,
        genuine.len() - 1,
    ] {
        let mut bad = genuine.clone();
        bad[i] ^= 0x01;
        let result = SenderKeyMessage::deserialize(&bad)
            .map_err(GroupDecryptError::from)
            .and_then(|m| bob.decrypt(&m));
        assert!(
            matches!(
                result,
                Err(GroupDecryptError::BadSignature)
                    | Err(GroupDecryptError::Decode(_))
                    | Err(GroupDecryptError::NoSenderKeyState { .. })
            ),
            "byte {i}: {result:?}"
        );
        assert_eq!(snapshot(&bob), before);
    }
    // Signed by another key (right chain id, right keys otherwise).
    let mut impostor = test_sender();
    impostor.signing = PrivateKey::from_bytes(&[0x41; 32]).expect("32");
    assert_eq!(
        bob.decrypt(&impostor.message(0, b"forged")),
        Err(GroupDecryptError::BadSignature)
    );
    assert_eq!(snapshot(&bob), before);
    assert_eq!(
        bob.decrypt(&SenderKeyMessage::deserialize(&genuine).expect("ok")),
        Ok(b"genuine".to_vec())
    );
}

#[test]
fn undecryptable_body_leaves_record_unchanged() {
    let sender = test_sender();
    let mut bob = receiver_of(&sender);
    let before = snapshot(&bob);
    for body in [vec![], vec![0u8; 15], vec![0u8; 32]] {
        let message = SenderKeyMessage::new(DIST, CHAIN_ID, 4, body, &sender.signing, &mut rng());
        assert_eq!(
            bob.decrypt(&message),
            Err(GroupDecryptError::DecryptionFailed)
        );
        assert_eq!(snapshot(&bob), before);
    }
    assert_eq!(bob.decrypt(&sender.message(4, b"ok")), Ok(b"ok".to_vec()));
}

// ------------------------------------------------------------------------------------------
// Distribution processing
// ------------------------------------------------------------------------------------------

#[test]
fn same_chain_and_key_is_not_rewound() {
    let sender = test_sender();
    let mut bob = receiver_of(&sender);
    assert!(bob.decrypt(&sender.message(0, b"a")).is_ok());
    assert!(bob.decrypt(&sender.message(3, b"b")).is_ok());
    let before = snapshot(&bob);
    bob.process_distribution(&sender.skdm());
    assert_eq!(snapshot(&bob), before);
    assert!(matches!(
        bob.decrypt(&sender.message(0, b"a")),
        Err(GroupDecryptError::DuplicatedMessage { .. })
    ));
}

#[test]
fn same_chain_other_key_replaces_the_state() {
    let sender = test_sender();
    let mut bob = receiver_of(&sender);
    assert!(bob.decrypt(&sender.message(0, b"a")).is_ok());
    let mut replacement = test_sender();
    replacement.signing = PrivateKey::from_bytes(&[0x42; 32]).expect("32");
    bob.process_distribution(&replacement.skdm());
    assert_eq!(bob.states().len(), 1);
    // Rewound to the new state's iteration 0, with the new key.
    assert_eq!(
        bob.decrypt(&replacement.message(0, b"new")),
        Ok(b"new".to_vec())
    );
    assert_eq!(
        bob.decrypt(&sender.message(1, b"old key")),
        Err(GroupDecryptError::BadSignature)
    );
}

#[test]
fn at_most_five_states_newest_first() {
    let mut bob = SenderKeyRecord::new();
    let senders: Vec<TestSender> = (0..=MAX_SENDER_KEY_STATES as u32)
        .map(|i| {
            let mut s = test_sender();
            s.chain_id = 100 + i;
            s
        })
        .collect();
    for s in &senders {
        bob.process_distribution(&s.skdm());
    }
    let ids: Vec<u32> = bob.states().map(|s| s.chain_id()).collect();
    assert_eq!(ids, [105, 104, 103, 102, 101]);
    assert!(matches!(
        bob.decrypt(&senders[0].message(0, b"x")),
        Err(GroupDecryptError::NoSenderKeyState { chain_id: 100 })
    ));
    assert_eq!(bob.decrypt(&senders[1].message(0, b"x")), Ok(b"x".to_vec()));
    // Re-processing an existing chain moves it to the front without dropping anything.
    bob.process_distribution(&senders[2].skdm());
    let ids: Vec<u32> = bob.states().map(|s| s.chain_id()).collect();
    assert_eq!(ids, [102, 105, 104, 103, 101]);
}

// ------------------------------------------------------------------------------------------
// Codecs
// ------------------------------------------------------------------------------------------

fn proto_field(tag: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![(tag << 3) | 2];
    prost::encoding::encode_varint(bytes.len() as u64, &mut out);
    out.extend_from_slice(bytes);
    out
}

fn proto_u32(tag: u8, value: u32) -> Vec<u8> {
    let mut out = vec![tag << 3];
    prost::encoding::encode_varint(u64::from(value), &mut out);
    out
}

fn skdm_bytes(uuid: &[u8], chain_key: &[u8], signing_key: &[u8], skip: Option<u8>) -> Vec<u8> {
    let mut out = vec![0x33];
    let fields = [
        (1, proto_field(1, uuid)),
        (2, proto_u32(2, 7)),
        (3, proto_u32(3, 0)),
        (4, proto_field(4, chain_key)),
        (5, proto_field(5, signing_key)),
    ];
    for (tag, field) in fields {
        if Some(tag) != skip {
            out.extend(field);
        }
    }
    out
}

#[test]
fn skdm_parsing_rules() {
    let key = KeyPair::generate(&mut rng()).public.serialize();
    let ok = skdm_bytes(&[1; 16], &[2; 32], &key, None);
    assert!(SenderKeyDistributionMessage::deserialize(&ok).is_ok());
    let cases: [(Vec<u8>, SenderKeyDecodeError); 10] = [
        (
            skdm_bytes(&[1; 15], &[2; 32], &key, None),
            SenderKeyDecodeError::BadFieldLength("distribution_uuid"),
        ),
        (
            skdm_bytes(&[1; 17], &[2; 32], &key, None),
            SenderKeyDecodeError::BadFieldLength("distribution_uuid"),
        ),
        (
            skdm_bytes(&[1; 16], &[2; 31], &key, None),
            SenderKeyDecodeError::BadFieldLength("chain_key"),
        ),
        (
            skdm_bytes(&[1; 16], &[2; 33], &key, None),
            SenderKeyDecodeError::BadFieldLength("chain_key"),
        ),
        (
            skdm_bytes(&[1; 16], &[2; 32], &key[..32], None),
            SenderKeyDecodeError::BadFieldLength("signing_key"),
        ),
        (
            skdm_bytes(&[1; 16], &[2; 32], &[key.as_slice(), &[0]].concat(), None),
            SenderKeyDecodeError::BadFieldLength("signing_key"),
        ),
        (
            skdm_bytes(&[1; 16], &[2; 32], &[0x06; 33], None),
            SenderKeyDecodeError::BadSigningKey,
        ),
        (
            skdm_bytes(&[1; 16], &[2; 32], &key, Some(1)),
            SenderKeyDecodeError::MissingField("distribution_uuid"),
        ),
        (
            skdm_bytes(&[1; 16], &[2; 32], &key, Some(2)),
            SenderKeyDecodeError::MissingField("chain_id"),
        ),
        (
            skdm_bytes(&[1; 16], &[2; 32], &key, Some(3)),
            SenderKeyDecodeError::MissingField("iteration"),
        ),
    ];
    for (bytes, expected) in cases {
        assert_eq!(
            SenderKeyDistributionMessage::deserialize(&bytes).err(),
            Some(expected)
        );
    }
    // Missing chain key or signing key (long enough otherwise, padded with an unknown field).
    for (skip, field) in [(4, "chain_key"), (5, "signing_key")] {
        let mut bytes = skdm_bytes(&[1; 16], &[2; 32], &key, Some(skip));
        bytes.extend(proto_field(15, &[0; 40]));
        assert_eq!(
            SenderKeyDistributionMessage::deserialize(&bytes).err(),
            Some(SenderKeyDecodeError::MissingField(field))
        );
    }
}

#[test]
fn version_nibbles() {
    let good = test_sender().message(0, b"v").serialized().to_vec();
    for (byte, expected) in [
        (0x33, None),
        (0x30, None),
        (0x3f, None),
        (0x23, Some(SenderKeyDecodeError::LegacyVersion(2))),
        (0x03, Some(SenderKeyDecodeError::LegacyVersion(0))),
        (0x43, Some(SenderKeyDecodeError::UnrecognizedVersion(4))),
        (0xf3, Some(SenderKeyDecodeError::UnrecognizedVersion(15))),
    ] {
        let mut bytes = good.clone();
        bytes[0] = byte;
        assert_eq!(
            SenderKeyMessage::deserialize(&bytes).err(),
            expected,
            "{byte:#x}"
        );
        let mut skdm = h(KAT_SKDM);
        skdm[0] = byte;
        assert_eq!(
            SenderKeyDistributionMessage::deserialize(&skdm).err(),
            expected,
            "{byte:#x}"
        );
    }
}

#[test]
fn sender_key_message_parsing_rules() {
    let sig = [0u8; 64];
    let build = |fields: &[Vec<u8>]| {
        let mut out = vec![0x33];
        for f in fields {
            out.extend_from_slice(f);
        }
        out.extend_from_slice(&sig);
        out
    };
    let uuid = proto_field(1, &[1; 16]);
    let chain = proto_u32(2, 1);
    let iteration = proto_u32(3, 1);
    let body = proto_field(4, &[0; 16]);
    assert!(
        SenderKeyMessage::deserialize(&build(&[
            uuid.clone(),
            chain.clone(),
            iteration.clone(),
            body.clone()
        ]))
        .is_ok()
    );
    let cases = [
        (
            build(&[chain.clone(), iteration.clone(), body.clone()]),
            SenderKeyDecodeError::MissingField("distribution_uuid"),
        ),
        (
            build(&[uuid.clone(), iteration.clone(), body.clone()]),
            SenderKeyDecodeError::MissingField("chain_id"),
        ),
        (
            build(&[uuid.clone(), chain.clone(), body.clone()]),
            SenderKeyDecodeError::MissingField("iteration"),
        ),
        (
            build(&[uuid.clone(), chain.clone(), iteration.clone()]),
            SenderKeyDecodeError::MissingField("ciphertext"),
        ),
        (
            build(&[
                proto_field(1, &[1; 15]),
                chain.clone(),
                iteration.clone(),
                body.clone(),
            ]),
            SenderKeyDecodeError::BadFieldLength("distribution_uuid"),
        ),
        (build(&[vec![0x0a, 0x7f]]), SenderKeyDecodeError::Protobuf),
    ];
    for (bytes, expected) in cases {
        assert_eq!(SenderKeyMessage::deserialize(&bytes).err(), Some(expected));
    }
}

#[test]
fn length_limits_n_and_n_plus_one() {
    // Too short: 64 bytes refused, 65 parsed (then fails on content, not length).
    for bytes in [vec![], vec![0x33], vec![0x33; 64]] {
        assert_eq!(
            SenderKeyMessage::deserialize(&bytes).err(),
            Some(SenderKeyDecodeError::TooShort(bytes.len()))
        );
        assert_eq!(
            SenderKeyDistributionMessage::deserialize(&bytes).err(),
            Some(SenderKeyDecodeError::TooShort(bytes.len()))
        );
    }
    let min = [0x33u8; 65];
    assert!(!matches!(
        SenderKeyMessage::deserialize(&min).err(),
        Some(SenderKeyDecodeError::TooShort(_))
    ));
    // Too long: a valid message of exactly MAX_MESSAGE_LENGTH parses; one byte more does not.
    let sender = test_sender();
    let signed_len = |body: usize| {
        SenderKeyMessage::new(
            DIST,
            CHAIN_ID,
            0,
            vec![0; body],
            &sender.signing,
            &mut rng(),
        )
        .serialized()
        .len()
    };
    let overhead = signed_len(0);
    // The ciphertext length varint grows by one byte past 16383 and again past 2^21.
    let mut body = MAX_MESSAGE_LENGTH - overhead - 2;
    while signed_len(body) < MAX_MESSAGE_LENGTH {
        body += 1;
    }
    assert_eq!(signed_len(body), MAX_MESSAGE_LENGTH);
    let at_limit = SenderKeyMessage::new(
        DIST,
        CHAIN_ID,
        0,
        vec![0; body],
        &sender.signing,
        &mut rng(),
    );
    assert!(SenderKeyMessage::deserialize(at_limit.serialized()).is_ok());
    let over = SenderKeyMessage::new(
        DIST,
        CHAIN_ID,
        0,
        vec![0; body + 1],
        &sender.signing,
        &mut rng(),
    );
    assert_eq!(over.serialized().len(), MAX_MESSAGE_LENGTH + 1);
    assert_eq!(
        SenderKeyMessage::deserialize(over.serialized()).err(),
        Some(SenderKeyDecodeError::TooLong {
            got: MAX_MESSAGE_LENGTH + 1,
            limit: MAX_MESSAGE_LENGTH
        })
    );
    let mut long_skdm = h(KAT_SKDM);
    long_skdm.resize(MAX_MESSAGE_LENGTH + 1, 0);
    assert!(matches!(
        SenderKeyDistributionMessage::deserialize(&long_skdm).err(),
        Some(SenderKeyDecodeError::TooLong { .. })
    ));
}

#[test]
fn encrypt_refuses_plaintext_receivers_would_refuse() {
    let mut r = rng();
    let mut alice = SenderKeyRecord::new();
    alice.create_distribution(DIST, &mut r);
    // Find the largest plaintext whose message fits, by its length formula: bodies are padded
    // to 16 bytes, so try around the limit.
    let mut largest_ok = None;
    for len in (MAX_MESSAGE_LENGTH - 200)..MAX_MESSAGE_LENGTH {
        match alice.clone().encrypt(DIST, &vec![0; len], &mut r) {
            Ok(message) => {
                assert!(message.serialized().len() <= MAX_MESSAGE_LENGTH);
                largest_ok = Some(len);
            }
            Err(GroupEncryptError::MessageTooLong { got, limit }) => {
                assert_eq!(limit, MAX_MESSAGE_LENGTH);
                assert!(got > MAX_MESSAGE_LENGTH);
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    let largest_ok = largest_ok.expect("some plaintext fits");
    let before = snapshot(&alice);
    assert!(matches!(
        alice.encrypt(DIST, &vec![0; largest_ok + 1], &mut r),
        Err(GroupEncryptError::MessageTooLong { .. })
    ));
    assert_eq!(
        snapshot(&alice),
        before,
        "refused encryption does not advance the chain"
    );
    let message = alice
        .encrypt(DIST, &vec![0; largest_ok], &mut r)
        .expect("fits");
    assert!(SenderKeyMessage::deserialize(message.serialized()).is_ok());
}

// ------------------------------------------------------------------------------------------
// Snapshots
// ------------------------------------------------------------------------------------------

/// The snapshot layout, mirrored to craft hostile snapshots.
mod mirror {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RecordSnapshot {
        #[prost(message, repeated, tag = "1")]
        pub states: Vec<StateSnapshot>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StateSnapshot {
        #[prost(uint32, optional, tag = "1")]
        pub message_version: Option<u32>,
        #[prost(uint32, optional, tag = "2")]
        pub chain_id: Option<u32>,
        #[prost(uint32, optional, tag = "3")]
        pub iteration: Option<u32>,
        #[prost(bytes = "vec", optional, tag = "4")]
        pub chain_key: Option<Vec<u8>>,
        #[prost(bytes = "vec", optional, tag = "5")]
        pub signing_public: Option<Vec<u8>>,
        #[prost(bytes = "vec", optional, tag = "6")]
        pub signing_private: Option<Vec<u8>>,
        #[prost(message, repeated, tag = "7")]
        pub skipped: Vec<SkippedSnapshot>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SkippedSnapshot {
        #[prost(uint32, optional, tag = "1")]
        pub iteration: Option<u32>,
        #[prost(bytes = "vec", optional, tag = "2")]
        pub seed: Option<Vec<u8>>,
    }
}

fn sample_record() -> SenderKeyRecord {
    // One own chain and one received chain with skipped keys.
    let mut r = rng();
    let mut record = SenderKeyRecord::new();
    record.create_distribution(DIST, &mut r);
    record.encrypt(DIST, b"advance", &mut r).expect("own");
    let sender = test_sender();
    record.process_distribution(&sender.skdm());
    record.decrypt(&sender.message(5, b"x")).expect("ok");
    record
}

fn tampered(record: &SenderKeyRecord, change: impl FnOnce(&mut mirror::RecordSnapshot)) -> Vec<u8> {
    let bytes = record.to_snapshot();
    let mut proto = mirror::RecordSnapshot::decode(&bytes[1..]).expect("own snapshot parses");
    change(&mut proto);
    let mut out = vec![1];
    out.extend(proto.encode_to_vec());
    out
}

#[test]
fn snapshot_round_trip_keeps_behaviour() {
    let record = sample_record();
    let bytes = record.to_snapshot();
    assert_eq!(bytes[0], 1);
    let mut loaded = SenderKeyRecord::from_snapshot(&bytes).expect("loads");
    assert_eq!(*loaded.to_snapshot(), *bytes);
    let sender = test_sender();
    // A skipped key survives.
    assert_eq!(
        loaded.decrypt(&sender.message(2, b"late")),
        Ok(b"late".to_vec())
    );
    assert_eq!(loaded.states().len(), 2);
    // An own record keeps signing and continues where it was.
    let mut r = rng();
    let mut own = SenderKeyRecord::new();
    let skdm = own.create_distribution(DIST, &mut r);
    own.encrypt(DIST, b"first", &mut r).expect("own chain");
    let mut own = SenderKeyRecord::from_snapshot(&own.to_snapshot()).expect("loads");
    let message = own.encrypt(DIST, b"more", &mut r).expect("own chain");
    assert_eq!(message.iteration(), 1);
    assert!(message.verify_signature(skdm.signing_key()));
    assert!(SenderKeyRecord::from_snapshot(&SenderKeyRecord::new().to_snapshot()).is_ok());
}

#[test]
fn snapshot_errors() {
    use SenderKeySnapshotError as E;
    let record = sample_record();
    let good = record.to_snapshot().to_vec();
    assert_eq!(SenderKeyRecord::from_snapshot(&[]).err(), Some(E::Empty));
    let mut other_version = good.clone();
    other_version[0] = 2;
    assert_eq!(
        SenderKeyRecord::from_snapshot(&other_version).err(),
        Some(E::UnknownVersion(2))
    );
    assert_eq!(
        SenderKeyRecord::from_snapshot(&good[..good.len() - 1]).err(),
        Some(E::Malformed)
    );
    let cases: Vec<(Vec<u8>, E)> = vec![
        (
            tampered(&record, |p| {
                let s = p.states[0].clone();
                for i in 0..5u32 {
                    let mut extra = s.clone();
                    extra.chain_id = Some(1000 + i);
                    p.states.push(extra);
                }
            }),
            E::OverLimit("states"),
        ),
        (
            tampered(&record, |p| p.states[0].message_version = Some(4)),
            E::Invalid("message_version"),
        ),
        (
            tampered(&record, |p| p.states[0].message_version = None),
            E::Missing("message_version"),
        ),
        (
            tampered(&record, |p| p.states[1].chain_id = p.states[0].chain_id),
            E::Invalid("chain_id"),
        ),
        (
            tampered(&record, |p| p.states[0].chain_key = Some(vec![0; 31])),
            E::Invalid("chain_key"),
        ),
        (
            tampered(&record, |p| p.states[0].iteration = None),
            E::Missing("iteration"),
        ),
        (
            tampered(&record, |p| p.states[0].signing_public = Some(vec![5; 34])),
            E::Invalid("signing_public"),
        ),
        (
            tampered(&record, |p| p.states[0].signing_public = Some(vec![6; 33])),
            E::Invalid("signing_public"),
        ),
        (
            tampered(&record, |p| {
                // The received chain (newest) gets a private key that does not match.
                p.states[0].signing_private = Some(vec![3; 32])
            }),
            E::Invalid("signing_private"),
        ),
        (
            tampered(&record, |p| p.states[1].signing_private = Some(vec![3; 31])),
            E::Invalid("signing_private"),
        ),
        (
            tampered(&record, |p| {
                let keys = &mut p.states[0].skipped;
                keys.swap(0, 1);
            }),
            E::Invalid("skipped.iteration"),
        ),
        (
            tampered(&record, |p| p.states[0].skipped[4].iteration = Some(6)),
            E::Invalid("skipped.iteration"),
        ),
        (
            tampered(&record, |p| p.states[0].skipped[0].seed = None),
            E::Missing("skipped.seed"),
        ),
        (
            tampered(&record, |p| {
                let state = &mut p.states[0];
                state.iteration = Some(5_000);
                state.skipped = (0..=MAX_MESSAGE_KEYS as u32)
                    .map(|i| mirror::SkippedSnapshot {
                        iteration: Some(i),
                        seed: Some(vec![0; 32]),
                    })
                    .collect();
            }),
            E::OverLimit("skipped keys"),
        ),
    ];
    for (i, (bytes, expected)) in cases.into_iter().enumerate() {
        assert_eq!(
            SenderKeyRecord::from_snapshot(&bytes).err(),
            Some(expected),
            "case {i}"
        );
    }
    // MAX_MESSAGE_KEYS skipped keys exactly: accepted.
    let at_limit = tampered(&record, |p| {
        let state = &mut p.states[0];
        state.iteration = Some(5_000);
        state.skipped = (0..MAX_MESSAGE_KEYS as u32)
            .map(|i| mirror::SkippedSnapshot {
                iteration: Some(i),
                seed: Some(vec![0; 32]),
            })
            .collect();
    });
    assert!(SenderKeyRecord::from_snapshot(&at_limit).is_ok());
}

#[test]
fn snapshot_length_n_and_n_plus_one() {
    // N bytes: not refused for length (an unknown field pads a valid snapshot).
    let pad_to = |total: usize| {
        let mut bytes = SenderKeyRecord::new().to_snapshot().to_vec();
        let mut pad = vec![(15 << 3) | 2];
        let len = total - bytes.len() - 1 - 3;
        prost::encoding::encode_varint(len as u64, &mut pad);
        pad.resize(pad.len() + len, 0);
        bytes.extend(pad);
        bytes
    };
    let at_limit = pad_to(MAX_SENDER_KEY_SNAPSHOT_LENGTH);
    assert_eq!(at_limit.len(), MAX_SENDER_KEY_SNAPSHOT_LENGTH);
    assert!(SenderKeyRecord::from_snapshot(&at_limit).is_ok());
    let over = pad_to(MAX_SENDER_KEY_SNAPSHOT_LENGTH + 1);
    assert_eq!(
        SenderKeyRecord::from_snapshot(&over).err(),
        Some(SenderKeySnapshotError::TooLong {
            got: MAX_SENDER_KEY_SNAPSHOT_LENGTH + 1,
            limit: MAX_SENDER_KEY_SNAPSHOT_LENGTH
        })
    );
    // A record at every limit fits under the snapshot limit.
    let full = tampered(&sample_record(), |p| {
        let template = p.states[0].clone();
        p.states = (0..MAX_SENDER_KEY_STATES as u32)
            .map(|c| {
                let mut s = template.clone();
                s.chain_id = Some(c);
                s.iteration = Some(u32::MAX);
                s.skipped = (0..MAX_MESSAGE_KEYS as u32)
                    .map(|i| mirror::SkippedSnapshot {
                        iteration: Some(u32::MAX - 1 - MAX_MESSAGE_KEYS as u32 + i),
                        seed: Some(vec![0xff; 32]),
                    })
                    .collect();
                s
            })
            .collect();
    });
    assert!(
        full.len() <= MAX_SENDER_KEY_SNAPSHOT_LENGTH,
        "{}",
        full.len()
    );
    assert!(SenderKeyRecord::from_snapshot(&full).is_ok());
}

// ------------------------------------------------------------------------------------------
// Property tests
// ------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn skdm_codec_round_trip(
        uuid in proptest::array::uniform16(any::<u8>()),
        chain_id in any::<u32>(),
        iteration in any::<u32>(),
        chain_key in proptest::array::uniform32(any::<u8>()),
        u in proptest::array::uniform32(any::<u8>()),
    ) {
        let key = PublicKey::from_u(u);
        let m = SenderKeyDistributionMessage::new(DistributionId::from_bytes(uuid), chain_id, iteration, chain_key, key);
        let p = SenderKeyDistributionMessage::deserialize(m.serialized()).expect("round trip");
        prop_assert_eq!(p.distribution_id(), DistributionId::from_bytes(uuid));
        prop_assert_eq!(p.chain_id(), chain_id);
        prop_assert_eq!(p.iteration(), iteration);
        prop_assert_eq!(p.chain_key(), &chain_key);
        prop_assert_eq!(p.signing_key(), &key);
        prop_assert_eq!(p.serialized(), m.serialized());
    }

    #[test]
    fn skm_codec_round_trip(
        uuid in proptest::array::uniform16(any::<u8>()),
        chain_id in any::<u32>(),
        iteration in any::<u32>(),
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let signing = PrivateKey::from_bytes(&[0x40; 32]).expect("32");
        let m = SenderKeyMessage::new(DistributionId::from_bytes(uuid), chain_id, iteration, body.clone(), &signing, &mut rng());
        let p = SenderKeyMessage::deserialize(m.serialized()).expect("round trip");
        prop_assert_eq!(p.distribution_id(), DistributionId::from_bytes(uuid));
        prop_assert_eq!(p.chain_id(), chain_id);
        prop_assert_eq!(p.iteration(), iteration);
        prop_assert_eq!(p.ciphertext(), &body[..]);
        prop_assert!(p.verify_signature(&signing.public_key()));
    }

    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = SenderKeyMessage::deserialize(&bytes);
        let _ = SenderKeyDistributionMessage::deserialize(&bytes);
        let _ = SenderKeyRecord::from_snapshot(&bytes);
    }

    #[test]
    fn mutated_snapshots_load_or_fail_cleanly(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let good = sample_record().to_snapshot().to_vec();
        let mut bytes = good.clone();
        for (index, value) in flips {
            let i = index.index(bytes.len());
            bytes[i] ^= value;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        if let Ok(record) = SenderKeyRecord::from_snapshot(&bytes) {
            // Whatever loads satisfies the invariants, so it snapshots and loads again.
            let again = record.to_snapshot();
            prop_assert!(SenderKeyRecord::from_snapshot(&again).is_ok());
            prop_assert!(record.states().len() <= MAX_SENDER_KEY_STATES);
            for state in record.states() {
                prop_assert!(state.skipped_keys() <= MAX_MESSAGE_KEYS);
            }
        }
    }

    #[test]
    fn any_delivery_order_within_limits(order in Just((0u32..12).collect::<Vec<_>>()).prop_shuffle()) {
        let sender = test_sender();
        let mut bob = receiver_of(&sender);
        for &i in &order {
            prop_assert_eq!(bob.decrypt(&sender.message(i, &[i as u8; 3])), Ok(vec![i as u8; 3]));
        }
        for &i in &order {
            let is_duplicate = matches!(
                bob.decrypt(&sender.message(i, b"again")),
                Err(GroupDecryptError::DuplicatedMessage { .. })
            );
            prop_assert!(is_duplicate);
        }
    }
}
