//! Handshakes and transport throughput: `cargo bench -p confianza-noise --bench noise`.

use std::hint::black_box;

use confianza_noise::{
    ClientConfig, ClientHandshake, PublicKey, ServerConfig, ServerHandshake, StaticKeyPair,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn accept_any(_: &PublicKey, _: &[u8]) -> Result<(), confianza_noise::ServerKeyRejected> {
    Ok(())
}

fn handshake(
    client: &ClientConfig,
    server: &ServerConfig,
    cached: Option<PublicKey>,
    rng: &mut StdRng,
) {
    let (handshake, hello) = ClientHandshake::start(client, cached, rng).expect("start");
    let (pending, response) = ServerHandshake::accept(server, &hello, rng).expect("accept");
    let established = handshake
        .read_response(&response)
        .expect("response")
        .authenticate(&accept_any, b"device")
        .expect("authenticate");
    black_box(pending.finish(&established.final_message).expect("finish"));
}

fn benches(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(7);
    let client = ClientConfig::new(StaticKeyPair::generate(&mut rng));
    let server =
        ServerConfig::new(StaticKeyPair::generate(&mut rng), vec![0x30; 600]).expect("fits");
    let stale = StaticKeyPair::generate(&mut rng).public_key();

    c.bench_function("xx_handshake", |b| {
        b.iter(|| handshake(&client, &server, None, &mut rng))
    });
    c.bench_function("ik_handshake", |b| {
        b.iter(|| handshake(&client, &server, Some(server.public_key()), &mut rng));
    });
    c.bench_function("ik_then_xxfallback_handshake", |b| {
        b.iter(|| handshake(&client, &server, Some(stale), &mut rng));
    });

    let (handshake, hello) = ClientHandshake::start(&client, None, &mut rng).expect("start");
    let (pending, response) = ServerHandshake::accept(&server, &hello, &mut rng).expect("accept");
    let mut client_end = handshake
        .read_response(&response)
        .expect("response")
        .authenticate(&accept_any, b"")
        .expect("ok");
    let mut server_end = pending.finish(&client_end.final_message).expect("finish");
    let message = vec![0x42u8; 1024];
    let mut group = c.benchmark_group("transport");
    group.throughput(Throughput::Bytes(1024));
    group.bench_function("encrypt_decrypt_1KiB", |b| {
        b.iter(|| {
            let ciphertext = client_end
                .transport
                .encrypt(black_box(&message))
                .expect("encrypt");
            black_box(server_end.transport.decrypt(&ciphertext).expect("decrypt"))
        });
    });
    group.finish();
}

criterion_group!(noise, benches);
criterion_main!(noise);
