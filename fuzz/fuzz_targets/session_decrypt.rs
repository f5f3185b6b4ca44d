#![no_main]
//! The session state machine under hostile input: arbitrary messages delivered to an established
//! session are refused, and a refused message never changes the session (a genuine message
//! still decrypts afterwards).
use confianza_protocol::keys::IdentityKeyPair;
use confianza_protocol::message::{CiphertextMessage, SignalMessage};
use confianza_protocol::prekeys::InMemoryPreKeys;
use confianza_protocol::session::{self, EncryptOptions};
use confianza_protocol::state::SessionRecord;
use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;
use rand::rngs::StdRng;

fuzz_target!(|data: &[u8]| {
    let mut rng = StdRng::seed_from_u64(1);
    let alice = IdentityKeyPair::generate(&mut rng);
    let bob = IdentityKeyPair::generate(&mut rng);
    let keys = InMemoryPreKeys::generate(&bob, 0, &mut rng);
    let bundle = keys
        .bundle(&bob, 2, 1, None, false)
        .expect("keys exist")
        .verify()
        .expect("own bundle verifies");
    let mut a = SessionRecord::new();
    session::process_bundle(&mut a, &alice, 1, &bundle, 0, &mut rng).expect("setup");
    let CiphertextMessage::PreKey(first) =
        session::encrypt(&mut a, b"one", EncryptOptions::default(), 0).expect("enc")
    else {
        return;
    };
    let mut b = SessionRecord::new();
    session::decrypt_pre_key(&mut b, &bob, 2, &keys, &first, None, &mut rng).expect("dec");
    let genuine = session::encrypt(&mut a, b"two", EncryptOptions::default(), 0).expect("enc");

    for chunk in data.split(|&b| b == 0xff) {
        if let Ok(message) = SignalMessage::deserialize(chunk)
            && message.serialized() != genuine.serialized()
        {
            let _ = session::decrypt(&mut b, &message, None, &mut rng);
        }
    }
    let CiphertextMessage::PreKey(genuine) = genuine else {
        return;
    };
    let out = session::decrypt_pre_key(&mut b, &bob, 2, &keys, &genuine, None, &mut rng)
        .expect("a genuine message still decrypts after hostile ones");
    assert_eq!(out.plaintext, b"two");
});
