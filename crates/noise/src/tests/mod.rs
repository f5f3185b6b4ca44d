//! Tests that need crate internals: the known-answer vectors inject fixed ephemeral keys into
//! `HandshakeState`, which the public API never allows.

mod negative;
mod vectors;

use std::path::PathBuf;

use serde_json::Value;

use crate::handshake::{HandshakeInit, HandshakeState, IK, Pattern, XX, XX_FALLBACK};
use crate::keys::{PublicKey, StaticKeyPair};

/// The shared folder: `$CONFIANZA_SHARED`, or `../../../shared` from this crate.
pub(crate) fn shared_dir() -> PathBuf {
    match std::env::var_os("CONFIANZA_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    }
}

pub(crate) fn load(relative: &str) -> Vec<Value> {
    let path = shared_dir().join("vectors/noise").join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: Value = serde_json::from_str(&text).expect("vector file is JSON");
    json["vectors"].as_array().expect("a vectors array").clone()
}

pub(crate) const OUR_SUITES: [&str; 3] = [
    "Noise_XX_25519_AESGCM_SHA256",
    "Noise_IK_25519_AESGCM_SHA256",
    "Noise_XXfallback_25519_AESGCM_SHA256",
];

pub(crate) fn name(vector: &Value) -> &str {
    vector["protocol_name"]
        .as_str()
        .or_else(|| vector["name"].as_str())
        .expect("a protocol name")
}

pub(crate) fn bytes(vector: &Value, field: &str) -> Vec<u8> {
    hex::decode(
        vector[field]
            .as_str()
            .unwrap_or_else(|| panic!("field {field}")),
    )
    .expect("hex")
}

pub(crate) fn opt_bytes(vector: &Value, field: &str) -> Option<Vec<u8>> {
    vector[field].as_str().map(|s| hex::decode(s).expect("hex"))
}

pub(crate) fn key_pair(vector: &Value, field: &str) -> StaticKeyPair {
    StaticKeyPair::from_secret_bytes(bytes(vector, field).try_into().expect("32-byte key"))
}

pub(crate) fn public(vector: &Value, field: &str) -> Option<PublicKey> {
    opt_bytes(vector, field).map(|b| PublicKey::from_bytes(b.try_into().expect("32-byte key")))
}

pub(crate) fn pattern_of(vector: &Value) -> Pattern {
    match name(vector) {
        "Noise_XX_25519_AESGCM_SHA256" => XX,
        "Noise_IK_25519_AESGCM_SHA256" => IK,
        "Noise_XXfallback_25519_AESGCM_SHA256" => XX_FALLBACK,
        other => panic!("not our suite: {other}"),
    }
}

/// One party of a vector, with the roles as the vector names them.
pub(crate) struct Party {
    pub(crate) prologue: Vec<u8>,
    pub(crate) s: StaticKeyPair,
    pub(crate) e: StaticKeyPair,
    pub(crate) rs: Option<PublicKey>,
}

pub(crate) fn party(vector: &Value, side: &str) -> Party {
    Party {
        prologue: bytes(vector, &format!("{side}_prologue")),
        s: key_pair(vector, &format!("{side}_static")),
        e: key_pair(vector, &format!("{side}_ephemeral")),
        rs: public(vector, &format!("{side}_remote_static")),
    }
}

pub(crate) fn handshake(
    pattern: Pattern,
    initiator: bool,
    party: &Party,
    re: Option<PublicKey>,
) -> HandshakeState {
    HandshakeState::new(HandshakeInit {
        pattern,
        initiator,
        prologue: &party.prologue,
        s: party.s.clone(),
        e: party.e.clone(),
        rs: party.rs,
        re,
    })
    .expect("valid initialisation")
}

/// `(payload, ciphertext)` of each message.
pub(crate) fn messages(vector: &Value) -> Vec<(Vec<u8>, Vec<u8>)> {
    vector["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            let payload = hex::decode(m["payload"].as_str().expect("payload")).expect("hex");
            let ciphertext =
                hex::decode(m["ciphertext"].as_str().expect("ciphertext")).expect("hex");
            (payload, ciphertext)
        })
        .collect()
}

/// The two handshake states of a vector, named by the messages they send: `even` sends
/// messages 0, 2, 4…, `odd` sends 1, 3, 5…, starting at the returned index.
///
/// For XX and IK, `even` is the initiator. For an XXfallback vector, message 0 is Alice's IK
/// message to a stale key; Bob fails to read it, both re-initialise under the fallback name and
/// Bob (the original responder) initiates with Alice's ephemeral as `<- e`, so `even` is Alice
/// (the fallback responder) and the run starts at message 1. With `check`, message 0 of a
/// fallback vector is compared byte for byte.
pub(crate) fn parties(vector: &Value, check: bool) -> (HandshakeState, HandshakeState, usize) {
    let init = party(vector, "init");
    let resp = party(vector, "resp");
    if !vector["fallback"].as_bool().unwrap_or(false) {
        let pattern = pattern_of(vector);
        return (
            handshake(pattern, true, &init, None),
            handshake(pattern, false, &resp, None),
            0,
        );
    }
    assert_eq!(pattern_of(vector), XX_FALLBACK);
    let messages = messages(vector);
    let (payload, expected) = &messages[0];
    let mut alice_ik = handshake(IK, true, &init, None);
    let written = alice_ik.write_message(payload).expect("writes");
    if check {
        assert_eq!(hex::encode(&written), hex::encode(expected), "IK message 0");
        let mut bob_ik = handshake(IK, false, &resp, None);
        assert_eq!(
            bob_ik.read_message(expected).err(),
            Some(crate::handshake::HandshakeFault::Decrypt)
        );
        assert_ne!(
            Some(resp.s.public_key()),
            init.rs,
            "the vector's cached key is stale"
        );
    }
    let alice_e = PublicKey::from_slice(written.get(..32).expect("32 bytes")).expect("32 bytes");
    assert_eq!(alice_e, init.e.public_key());
    let bob = handshake(XX_FALLBACK, true, &resp, Some(alice_e));
    let alice = handshake(XX_FALLBACK, false, &Party { rs: None, ..init }, None);
    (alice, bob, 1)
}
