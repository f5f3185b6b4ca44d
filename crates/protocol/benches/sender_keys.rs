//! Group messaging cost per 100-byte message: encrypt (chain step, HKDF, AES-256-CBC, XEdDSA
//! sign) and decrypt (parse, XEdDSA verify, chain step, HKDF, AES-256-CBC).
//!
//! Beside it, vodozemac's Megolm (Matrix's group ratchet) doing the same work: encrypt, sign
//! (Ed25519) and MAC, then verify and decrypt.
//!
//! `cargo bench -p confianza-protocol --bench sender_keys`

use std::hint::black_box;

use confianza_protocol::sender_keys::{
    DistributionId, SenderKeyDistributionMessage, SenderKeyMessage, SenderKeyRecord,
};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::StdRng;

const DIST: DistributionId = DistributionId::from_bytes([3; 16]);

fn group(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(1);
    let plaintext = [0x42u8; 100];
    let mut alice = SenderKeyRecord::new();
    let skdm = alice.create_distribution(DIST, &mut rng);
    let mut bob = SenderKeyRecord::new();
    bob.process_distribution(
        &SenderKeyDistributionMessage::deserialize(skdm.serialized()).expect("valid"),
    );

    let mut g = c.benchmark_group("sender keys 100 B");
    g.bench_function("encrypt+decrypt", |b| {
        b.iter(|| {
            let message = alice
                .encrypt(DIST, black_box(&plaintext), &mut rng)
                .expect("own chain");
            let parsed = SenderKeyMessage::deserialize(message.serialized()).expect("valid");
            bob.decrypt(&parsed).expect("in order")
        })
    });
    let mut outbound =
        vodozemac::megolm::GroupSession::new(vodozemac::megolm::SessionConfig::version_1());
    let mut inbound = vodozemac::megolm::InboundGroupSession::new(
        &outbound.session_key(),
        vodozemac::megolm::SessionConfig::version_1(),
    );
    g.bench_function("encrypt+decrypt vodozemac megolm", |b| {
        b.iter(|| {
            let message = outbound.encrypt(black_box(&plaintext));
            inbound.decrypt(&message).expect("in order")
        })
    });
    g.bench_function("encrypt", |b| {
        b.iter(|| {
            alice
                .encrypt(DIST, black_box(&plaintext), &mut rng)
                .expect("own chain")
        })
    });
    // Decrypt only: fresh messages are made outside the timed part, in order.
    let mut sender = SenderKeyRecord::new();
    let skdm = sender.create_distribution(DIST, &mut rng);
    let mut receiver = SenderKeyRecord::new();
    receiver.process_distribution(&skdm);
    g.bench_function("decrypt", |b| {
        b.iter_batched(
            || {
                let message = sender
                    .encrypt(DIST, &plaintext, &mut rng)
                    .expect("own chain");
                message.serialized().to_vec()
            },
            |bytes| {
                let parsed = SenderKeyMessage::deserialize(&bytes).expect("valid");
                receiver.decrypt(&parsed).expect("in order")
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, group);
criterion_main!(benches);
