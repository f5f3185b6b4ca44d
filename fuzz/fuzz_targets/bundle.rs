#![no_main]
//! Bundle parsing and verification: keys and signatures from arbitrary bytes never verify by
//! accident and never panic.
use confianza_protocol::kem::KemPublicKey;
use confianza_protocol::keys::{IdentityKey, PublicKey};
use confianza_protocol::prekeys::{KyberPreKeyPublic, PreKeyBundle};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (keys, rest) = data.split_at(data.len().min(99));
    let key = |i: usize| PublicKey::deserialize(keys.get(i * 33..).unwrap_or(&[]));
    let kyber = KemPublicKey::deserialize(rest).ok();
    let (Ok(identity), Ok(signed)) = (key(0), key(1)) else {
        return;
    };
    let bundle = PreKeyBundle {
        registration_id: 1,
        device_id: 1,
        identity_key: IdentityKey(identity),
        pre_key: key(2).ok().map(|k| (1, k)),
        signed_pre_key_id: 1,
        signed_pre_key: signed,
        signed_pre_key_signature: rest.iter().rev().take(64).copied().collect(),
        kyber_pre_key: kyber.map(|key| KyberPreKeyPublic {
            id: 1,
            key,
            signature: rest.iter().take(64).copied().collect(),
        }),
    };
    let _ = bundle.verify();
});
