//! Known-answer tests from `shared/vectors/signal` (they need the crate's internals).

use std::collections::VecDeque;

use rand_core::{Infallible, TryCryptoRng, TryRng};
use serde_json::Value;

use crate::keys::{IdentityKeyPair, KeyPair, PrivateKey, PublicKey};
use crate::message::SignalMessage;
use crate::prekeys::{PreKeyBundle, SignedPreKeyRecord};
use crate::ratchet::ChainKey;
use crate::session::{self, EncryptOptions, PreKeySource};
use crate::state::SessionRecord;
use crate::xeddsa;

fn vectors() -> Value {
    let dir = std::env::var("CONFIANZA_SHARED")
        .unwrap_or_else(|_| format!("{}/../../../shared", env!("CARGO_MANIFEST_DIR")));
    let text = std::fs::read_to_string(format!("{dir}/vectors/signal/signal_vectors.json"))
        .expect("the shared Signal vectors are readable");
    serde_json::from_str(&text).expect("the vectors are JSON")
}

fn hex(v: &Value) -> Vec<u8> {
    ::hex::decode(v.as_str().expect("a hex string")).expect("valid hex")
}

fn arr<const N: usize>(v: &Value) -> [u8; N] {
    hex(v).try_into().expect("right length")
}

/// Hands out the given byte strings in order: the key pairs a vector fixes.
struct Scripted(VecDeque<Vec<u8>>);

impl TryRng for Scripted {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        unreachable!("only fill_bytes is scripted")
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        unreachable!("only fill_bytes is scripted")
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        let next = self
            .0
            .pop_front()
            .expect("script has a value for this draw");
        assert_eq!(next.len(), dst.len(), "scripted draw length");
        dst.copy_from_slice(&next);
        Ok(())
    }
}
impl TryCryptoRng for Scripted {}

#[test]
fn x25519_agreement() {
    let v = &vectors()["x25519_agreement"][0];
    let alice = PrivateKey::from_bytes(&hex(&v["alice_private"])).expect("32 bytes");
    let bob = PrivateKey::from_bytes(&hex(&v["bob_private"])).expect("32 bytes");
    assert_eq!(alice.public_key().u().to_vec(), hex(&v["alice_public"]));
    assert_eq!(bob.public_key().u().to_vec(), hex(&v["bob_public"]));
    let bob_public = PublicKey::from_u(arr(&v["bob_public"]));
    let shared = alice.agree(&bob_public).expect("not zero");
    assert_eq!(shared.as_bytes().to_vec(), hex(&v["shared"]));
}

#[test]
fn x25519_iterated() {
    let v = &vectors()["x25519_iterated"][0];
    let clamp = curve25519_dalek::scalar::clamp_integer;
    let mut p = [0u8; 32];
    p[0] = 100;
    let mut n = [0u8; 32];
    n[0] = 100;
    n = clamp(n);
    let mut q = [0u8; 32];
    for _ in 0..1000 {
        q = x25519_dalek::x25519(n, p);
        p = q;
        q = x25519_dalek::x25519(n, p);
        n = clamp(q);
    }
    assert_eq!(q.to_vec(), hex(&v["result"]));
}

#[test]
fn xeddsa_deterministic_signature() {
    let v = &vectors()["xeddsa_sign"][0];
    let private: [u8; 32] = arr(&v["private_key"]);
    let public: [u8; 32] = arr(&v["public_key"]);
    let random: [u8; 64] = arr(&v["random_Z"]);
    let message = hex(&v["message"]);
    // The vector follows the XEdDSA paper, whose nonce hashes the scalar reduced mod l; Signal's
    // library hashes the 32 private-key bytes as stored, so its signatures differ. Both verify.
    let signature: [u8; 64] = arr(&v["signature"]);
    assert!(xeddsa::verify(&public, &message, &signature));
    let mut bad = signature;
    bad[0] ^= 1;
    assert!(!xeddsa::verify(&public, &message, &bad));
    assert!(!xeddsa::verify(&[0xff; 32], &message, &signature));
    let ours = xeddsa::sign(&private, &message, &random);
    assert_eq!(
        ours,
        xeddsa::sign(&private, &message, &random),
        "deterministic in Z"
    );
    assert!(xeddsa::verify(&public, &message, &ours));
}

#[test]
fn xeddsa_libsignal_sign_bit_variant() {
    let v = &vectors()["xeddsa_verify"][0];
    let public: [u8; 32] = arr(&v["public_key"]);
    let message = hex(&v["message"]);
    let signature: [u8; 64] = arr(&v["signature"]);
    assert_eq!(signature[63] >> 7, 1, "the vector carries sign bit 1");
    assert!(xeddsa::verify(&public, &message, &signature));
    for i in 0..64 {
        let mut bad = signature;
        bad[i] ^= 0x01;
        assert!(!xeddsa::verify(&public, &message, &bad), "flip in byte {i}");
    }
    let private = PrivateKey::from_bytes(&hex(&v["private_key"])).expect("32 bytes");
    assert_eq!(private.public_key().u(), &public);
}

#[test]
fn chain_key_derivation() {
    let v = &vectors()["chain_key_v3"][0];
    let chain = ChainKey {
        key: arr(&v["chain_key"]),
        index: 0,
    };
    let keys = chain.seed().derive();
    assert_eq!(keys.cipher_key.to_vec(), hex(&v["cipher_key"]));
    assert_eq!(keys.mac_key.to_vec(), hex(&v["mac_key"]));
    assert_eq!(keys.iv.to_vec(), hex(&v["collector_derived"]["iv"]));
    assert_eq!(chain.next().key.to_vec(), hex(&v["next_chain_key"]));
    assert_eq!(chain.next().index, 1);
}

struct OneSignedPreKey(SignedPreKeyRecord);

impl PreKeySource for OneSignedPreKey {
    fn signed_pre_key(&self, id: u32) -> Option<SignedPreKeyRecord> {
        (id == self.0.id).then(|| self.0.clone())
    }
    fn pre_key(&self, _: u32) -> Option<crate::prekeys::PreKeyRecord> {
        None
    }
    fn kyber_pre_key(&self, _: u32) -> Option<crate::prekeys::KyberPreKeyRecord> {
        None
    }
}

#[test]
fn first_message_v3_byte_for_byte() {
    let v = &vectors()["first_message_v3"][0];
    let mut rng = rand::rng();
    let alice = IdentityKeyPair::from_private(
        PrivateKey::from_bytes(&hex(&v["alice_identity_private"])).expect("32 bytes"),
    );
    assert_eq!(
        alice.identity_key().serialize().to_vec(),
        hex(&v["alice_identity_public_serialized"])
    );
    let bob = IdentityKeyPair::from_private(
        PrivateKey::from_bytes(&hex(&v["bob_identity_private"])).expect("32 bytes"),
    );
    let spk = KeyPair::from_private(
        PrivateKey::from_bytes(&hex(&v["bob_signed_prekey_and_ratchet_private"]))
            .expect("32 bytes"),
    );
    let signature = bob.sign(&spk.public.serialize(), &mut rng);
    let bundle = PreKeyBundle {
        registration_id: 7,
        device_id: 1,
        identity_key: *bob.identity_key(),
        pre_key: None,
        signed_pre_key_id: 1,
        signed_pre_key: spk.public,
        signed_pre_key_signature: signature.to_vec(),
        kyber_pre_key: None,
    }
    .verify()
    .expect("signature verifies");

    let mut script = Scripted(VecDeque::from([
        hex(&v["alice_base_private"]),
        hex(&v["alice_sending_ratchet_private"]),
    ]));
    let state = session::initiate(&alice, 5, &bundle, 0, &mut script).expect("setup");
    assert_eq!(
        state.root_key.0.to_vec(),
        hex(&v["expected_alice_root_key_after_sending_ratchet"])
    );
    assert_eq!(
        state.sender.chain.key.to_vec(),
        hex(&v["expected_alice_sending_chain_key"])
    );
    let keys = state.sender.chain.seed().derive();
    let expected_keys = &v["expected_message_keys_counter0"];
    assert_eq!(keys.cipher_key.to_vec(), hex(&expected_keys["cipher_key"]));
    assert_eq!(keys.mac_key.to_vec(), hex(&expected_keys["mac_key"]));
    assert_eq!(keys.iv.to_vec(), hex(&expected_keys["iv"]));

    let mut record = SessionRecord::new();
    record.promote(state);
    let legacy = EncryptOptions {
        legacy_version_byte: true,
    };
    let sent = session::encrypt(&mut record, &hex(&v["plaintext"]), legacy, 0).expect("encrypts");
    let crate::message::CiphertextMessage::PreKey(prekey) = sent else {
        panic!("the first message is a PreKey message");
    };
    assert_eq!(
        prekey.message().serialized().to_vec(),
        hex(&v["serialized_whisper_message"])
    );

    // Bob decrypts it, and his session's root matches the vector's initial root.
    let mut bob_record = SessionRecord::new();
    let source = OneSignedPreKey(SignedPreKeyRecord {
        id: 1,
        key_pair: spk,
        signature,
        timestamp: 0,
    });
    let outcome =
        session::decrypt_pre_key(&mut bob_record, &bob, 7, &source, &prekey, None, &mut rng)
            .expect("Bob decrypts");
    assert_eq!(outcome.plaintext, hex(&v["plaintext"]));
    let parsed =
        SignalMessage::deserialize(&hex(&v["serialized_whisper_message"])).expect("parses");
    assert_eq!(parsed.counter(), 0);
}

#[test]
fn x3dh_session_init_chain_keys() {
    let v = &vectors()["x3dh_session_init"][0];
    let mut rng = rand::rng();
    let bob = IdentityKeyPair::from_private(
        PrivateKey::from_bytes(&hex(&v["bob_identity_private"])).expect("32 bytes"),
    );
    let alice = IdentityKeyPair::from_private(
        PrivateKey::from_bytes(&hex(&v["alice_identity_private"])).expect("32 bytes"),
    );
    let spk = KeyPair::from_private(
        PrivateKey::from_bytes(&hex(&v["bob_signed_prekey_private"])).expect("32 bytes"),
    );
    assert_eq!(
        spk.public.serialize().to_vec(),
        hex(&v["bob_signed_prekey_public_serialized"])
    );
    let signature = bob.sign(&spk.public.serialize(), &mut rng);
    let bundle = PreKeyBundle {
        registration_id: 1,
        device_id: 1,
        identity_key: *bob.identity_key(),
        pre_key: None,
        signed_pre_key_id: 9,
        signed_pre_key: spk.public,
        signed_pre_key_signature: signature.to_vec(),
        kyber_pre_key: None,
    }
    .verify()
    .expect("verifies");
    let mut random = [0u8; 32];
    rand_core::Rng::fill_bytes(&mut rng, &mut random);
    let mut script = Scripted(VecDeque::from([
        hex(&v["alice_base_private"]),
        random.to_vec(),
    ]));
    let state = session::initiate(&alice, 2, &bundle, 0, &mut script).expect("setup");
    let receiving = state.receivers.back().expect("Bob's chain");
    assert_eq!(
        receiving.chain.key.to_vec(),
        hex(&v["expected_alice_receiver_chain_key"])
    );
}

fn wycheproof(name: &str) -> Value {
    let dir = std::env::var("CONFIANZA_SHARED")
        .unwrap_or_else(|_| format!("{}/../../../shared", env!("CARGO_MANIFEST_DIR")));
    let text = std::fs::read_to_string(format!("{dir}/vectors/wycheproof/{name}"))
        .expect("the shared Wycheproof vectors are readable");
    serde_json::from_str(&text).expect("JSON")
}

/// Every Wycheproof X25519 case through the agreement the ratchet uses. "valid" and
/// "acceptable" cases must give the expected secret, except that an all-zero secret is refused
/// (as Signal's library does); no case is "invalid" for raw X25519.
#[test]
fn wycheproof_x25519() {
    let file = wycheproof("x25519_test.json");
    let mut checked = 0;
    for group in file["testGroups"].as_array().expect("groups") {
        for case in group["tests"].as_array().expect("tests") {
            let private = PrivateKey::from_bytes(&hex(&case["private"])).expect("32 bytes");
            let public = PublicKey::from_u(arr(&case["public"]));
            let expected = hex(&case["shared"]);
            let id = &case["tcId"];
            match private.agree(&public) {
                Ok(shared) => assert_eq!(shared.as_bytes().to_vec(), expected, "tcId {id}"),
                Err(_) => assert!(expected.iter().all(|&b| b == 0), "tcId {id} refused"),
            }
            checked += 1;
        }
    }
    assert!(checked > 500, "only {checked} cases");
}

/// Wycheproof HKDF-SHA256 through the KDF the ratchet uses.
#[test]
fn wycheproof_hkdf_sha256() {
    let file = wycheproof("hkdf_sha256_test.json");
    let mut checked = 0;
    for group in file["testGroups"].as_array().expect("groups") {
        for case in group["tests"].as_array().expect("tests") {
            let salt = hex(&case["salt"]);
            let mut out = vec![0u8; case["size"].as_u64().expect("size") as usize];
            let result = crate::crypto::hkdf_sha256_into(
                (!salt.is_empty()).then_some(salt.as_slice()),
                &hex(&case["ikm"]),
                &hex(&case["info"]),
                &mut out,
            );
            match case["result"].as_str() {
                Some("valid") => {
                    result.expect("valid case expands");
                    assert_eq!(out, hex(&case["okm"]), "tcId {}", case["tcId"]);
                }
                _ => assert!(result.is_err(), "tcId {}", case["tcId"]),
            }
            checked += 1;
        }
    }
    assert!(checked > 50);
}
