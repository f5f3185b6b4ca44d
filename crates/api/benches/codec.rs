//! Codec cost on the server's hot path: decoding a one-to-one send, encoding the delivery the
//! recipient gets, and decoding a batch of acknowledgements. The body is 512 bytes, about a
//! padded text message in a Signal ciphertext.
//!
//! `cargo bench -p confianza-api --bench codec`

use std::hint::black_box;

use confianza_api::*;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const BODY_LEN: usize = 512;

fn send() -> ClientFrame {
    ClientFrame::request(
        42,
        RequestBody::Send {
            recipient: "bob@example.org".into(),
            envelopes: vec![OutgoingEnvelope {
                device_id: 1,
                registration_id: 4711,
                ciphertext_type: CiphertextType::Whisper,
                body: vec![0xAB; BODY_LEN],
                client_message_id: [7; 16],
            }],
        },
    )
}

fn delivery() -> ServerFrame {
    ServerFrame::Delivery(Delivery {
        id: 1_000_000,
        item: DeliveryItem::Envelope(Envelope {
            sender: "alice@example.org".into(),
            sender_device_id: 1,
            ciphertext_type: CiphertextType::Whisper,
            body: vec![0xAB; BODY_LEN],
            client_message_id: [7; 16],
            server_timestamp_ms: 1_790_000_000_000,
            group_id: None,
        }),
    })
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("api");
    group.throughput(Throughput::Elements(1));

    let send_bytes = send().encode().expect("valid");
    group.bench_function("decode send (512 B body)", |b| {
        b.iter(|| ClientFrame::decode(black_box(&send_bytes)))
    });
    let send_frame = send();
    group.bench_function("encode send (512 B body)", |b| {
        b.iter(|| black_box(&send_frame).encode())
    });

    let delivery_frame = delivery();
    group.bench_function("encode delivery (512 B body)", |b| {
        b.iter(|| black_box(&delivery_frame).encode())
    });
    let delivery_bytes = delivery_frame.encode().expect("valid");
    group.bench_function("decode delivery (512 B body)", |b| {
        b.iter(|| ServerFrame::decode(black_box(&delivery_bytes)))
    });

    let acks = ClientFrame::Ack {
        delivery_ids: (1_000_000..1_000_256).collect(),
    }
    .encode()
    .expect("valid");
    group.throughput(Throughput::Elements(256));
    group.bench_function("decode ack of 256 deliveries", |b| {
        b.iter(|| ClientFrame::decode(black_box(&acks)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
