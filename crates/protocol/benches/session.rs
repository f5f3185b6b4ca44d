//! 1:1 sessions measured beside vodozemac (Matrix's Olm Double Ratchet) doing the same work.
//!
//! `cargo bench -p confianza-protocol --bench session`

use std::hint::black_box;

use confianza_protocol::keys::{IdentityKeyPair, KeyPair, PrivateKey};
use confianza_protocol::message::CiphertextMessage;
use confianza_protocol::prekeys::{InMemoryPreKeys, PreKeyBundle};
use confianza_protocol::session::{self, EncryptOptions};
use confianza_protocol::state::SessionRecord;
use criterion::{Criterion, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::StdRng;
use vodozemac::olm::{Account, OlmMessage, SessionConfig};

const PLAINTEXT: [u8; 100] = [7u8; 100];

struct Bob {
    identity: IdentityKeyPair,
    keys: InMemoryPreKeys,
}

fn bob(rng: &mut StdRng) -> Bob {
    let identity = IdentityKeyPair::generate(rng);
    let mut keys = InMemoryPreKeys::generate(&identity, 0, rng);
    keys.add_one_time(3, rng);
    Bob { identity, keys }
}

fn bundle(bob: &Bob, kyber: bool) -> PreKeyBundle {
    bob.keys
        .bundle(&bob.identity, 2, 1, Some(3), kyber)
        .expect("keys exist")
}

/// Full setup: verify the bundle, initiate, encrypt the first message, respond, decrypt.
fn setup(
    alice: &IdentityKeyPair,
    bob: &Bob,
    kyber: bool,
    rng: &mut StdRng,
) -> (SessionRecord, SessionRecord) {
    let verified = bundle(bob, kyber).verify().expect("verifies");
    let mut a = SessionRecord::new();
    session::process_bundle(&mut a, alice, 1, &verified, 0, rng).expect("setup");
    let CiphertextMessage::PreKey(first) =
        session::encrypt(&mut a, &PLAINTEXT, EncryptOptions::default(), 0).expect("enc")
    else {
        unreachable!()
    };
    let mut b = SessionRecord::new();
    session::decrypt_pre_key(&mut b, &bob.identity, 2, &bob.keys, &first, None, rng).expect("dec");
    (a, b)
}

fn established(rng: &mut StdRng) -> (SessionRecord, SessionRecord) {
    let alice = IdentityKeyPair::generate(rng);
    let bob = bob(rng);
    let (mut a, mut b) = setup(&alice, &bob, true, rng);
    let reply = session::encrypt(&mut b, &PLAINTEXT, EncryptOptions::default(), 0).expect("enc");
    let CiphertextMessage::Whisper(reply) = reply else {
        unreachable!()
    };
    session::decrypt(&mut a, &reply, None, rng).expect("dec");
    (a, b)
}

fn send(from: &mut SessionRecord, to: &mut SessionRecord, rng: &mut StdRng) {
    let m = session::encrypt(from, &PLAINTEXT, EncryptOptions::default(), 0).expect("enc");
    let CiphertextMessage::Whisper(m) = m else {
        unreachable!()
    };
    black_box(session::decrypt(to, &m, None, rng).expect("dec"));
}

fn vodozemac_pair() -> (vodozemac::olm::Session, vodozemac::olm::Session) {
    let alice = Account::new();
    let mut bob = Account::new();
    bob.generate_one_time_keys(1);
    let otk = *bob.one_time_keys().values().next().expect("one key");
    let mut a = alice
        .create_outbound_session(SessionConfig::version_1(), bob.curve25519_key(), otk)
        .expect("outbound");
    let OlmMessage::PreKey(first) = a.encrypt(PLAINTEXT).expect("enc") else {
        unreachable!()
    };
    let mut inbound = bob
        .create_inbound_session(SessionConfig::version_1(), alice.curve25519_key(), &first)
        .expect("inbound");
    let reply = inbound.session.encrypt(PLAINTEXT).expect("enc");
    a.decrypt(&reply).expect("dec");
    (a, inbound.session)
}

fn established_messages(c: &mut Criterion) {
    let mut group = c.benchmark_group("encrypt_decrypt_100B");
    let mut rng = StdRng::seed_from_u64(1);
    let (mut a, mut b) = established(&mut rng);
    group.bench_function("confianza", |bench| {
        bench.iter(|| send(&mut a, &mut b, &mut rng))
    });
    let (mut va, mut vb) = vodozemac_pair();
    group.bench_function("vodozemac", |bench| {
        bench.iter(|| {
            let m = va.encrypt(PLAINTEXT).expect("enc");
            black_box(vb.decrypt(&m).expect("dec"));
        })
    });
    group.finish();
}

fn ping_pong(c: &mut Criterion) {
    let mut group = c.benchmark_group("ping_pong_dh_step_per_message");
    let mut rng = StdRng::seed_from_u64(2);
    let (mut a, mut b) = established(&mut rng);
    group.bench_function("confianza", |bench| {
        bench.iter(|| {
            send(&mut a, &mut b, &mut rng);
            send(&mut b, &mut a, &mut rng);
        })
    });
    let (mut va, mut vb) = vodozemac_pair();
    group.bench_function("vodozemac", |bench| {
        bench.iter(|| {
            let m = va.encrypt(PLAINTEXT).expect("enc");
            black_box(vb.decrypt(&m).expect("dec"));
            let m = vb.encrypt(PLAINTEXT).expect("enc");
            black_box(va.decrypt(&m).expect("dec"));
        })
    });
    // The X25519 work two DH-ratchet steps cannot avoid: per step, two agreements and one
    // key generation.
    let ours = KeyPair::generate(&mut rng);
    let theirs = KeyPair::generate(&mut rng).public;
    group.bench_function("x25519_floor", |bench| {
        bench.iter(|| {
            for _ in 0..2 {
                black_box(ours.private.agree(&theirs).expect("dh"));
                let fresh = KeyPair::from_private(PrivateKey::generate(&mut rng));
                black_box(fresh.private.agree(&theirs).expect("dh"));
            }
        })
    });
    group.finish();
}

fn session_setup(c: &mut Criterion) {
    let mut group = c.benchmark_group("session_setup_initiator_and_responder");
    let mut rng = StdRng::seed_from_u64(3);
    let alice = IdentityKeyPair::generate(&mut rng);
    let bob = bob(&mut rng);
    group.bench_function("x3dh_v3", |bench| {
        bench.iter(|| black_box(setup(&alice, &bob, false, &mut rng)))
    });
    group.bench_function("pqxdh_v4", |bench| {
        bench.iter(|| black_box(setup(&alice, &bob, true, &mut rng)))
    });
    let vbob = {
        let mut account = Account::new();
        account.generate_one_time_keys(1);
        account
    };
    let valice = Account::new();
    let otk = *vbob.one_time_keys().values().next().expect("one key");
    group.bench_function("vodozemac_olm", |bench| {
        bench.iter(|| {
            let mut bob = Account::from_pickle(vbob.pickle());
            let mut a = valice
                .create_outbound_session(SessionConfig::version_1(), bob.curve25519_key(), otk)
                .expect("outbound");
            let OlmMessage::PreKey(first) = a.encrypt(PLAINTEXT).expect("enc") else {
                unreachable!()
            };
            black_box(
                bob.create_inbound_session(
                    SessionConfig::version_1(),
                    valice.curve25519_key(),
                    &first,
                )
                .expect("inbound"),
            );
        })
    });
    group.finish();
}

criterion_group!(benches, established_messages, ping_pong, session_setup);
criterion_main!(benches);
