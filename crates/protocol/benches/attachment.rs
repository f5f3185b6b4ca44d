//! Attachment cipher throughput: encrypt (AES-256-CBC + HMAC-SHA256 + SHA-256 digest) and
//! receive (pass 1: HMAC + digest; pass 2: AES-256-CBC decrypt + HMAC re-check), in 64 KiB chunks.
//!
//! Sizes: 1 MiB in memory, and 256 MiB streamed: plaintext chunks are generated, ciphertext is discarded, and the blob for the
//! receiving passes is read back from a temporary file 64 KiB at a time, so nothing of that size
//! is held in memory. Compare with `openssl speed -evp aes-256-cbc`, `-evp sha256` and
//! `-hmac sha256` on the same machine.
//!
//! `cargo bench -p confianza-protocol --bench attachment`

use std::fs::File;
use std::hint::black_box;
use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use confianza_protocol::attachment::{
    AttachmentEncryptor, AttachmentKeys, AttachmentVerifier, EncryptedAttachment,
    MAX_ATTACHMENT_PLAINTEXT_LEN,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const CHUNK: usize = 64 * 1024;
const MIB: u64 = 1024 * 1024;

fn keys() -> AttachmentKeys {
    AttachmentKeys::from_bytes(&[7; 64])
}

/// Encrypts `len` bytes of generated plaintext in 64 KiB chunks, handing blob pieces to `sink`.
fn encrypt_stream(len: u64, mut sink: impl FnMut(&[u8])) -> EncryptedAttachment {
    let plaintext = vec![0x5a; CHUNK];
    let mut out = Vec::with_capacity(CHUNK + 64);
    let mut encryptor = AttachmentEncryptor::with_iv(&keys(), [1; 16]);
    let mut left = len;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        out.clear();
        encryptor
            .update(&plaintext[..n], &mut out)
            .expect("within the limit");
        sink(&out);
        left -= n as u64;
    }
    out.clear();
    let sent = encryptor.finish(&mut out);
    sink(&out);
    sent
}

/// Both receiving passes over chunks produced by `chunks` (called once per pass).
fn receive(sent: &EncryptedAttachment, mut chunks: impl FnMut(&mut dyn FnMut(&[u8]))) -> u64 {
    let mut verifier =
        AttachmentVerifier::new(keys(), sent.blob_len, sent.digest).expect("valid length");
    chunks(&mut |c| verifier.update(c).expect("within length"));
    let mut decryptor = verifier.finish().expect("authentic").into_decryptor();
    let mut plaintext = Vec::with_capacity(CHUNK + 16);
    chunks(&mut |c| {
        plaintext.clear();
        decryptor.update(c, &mut plaintext).expect("decrypts");
        black_box(&plaintext);
    });
    decryptor.finish().expect("same blob")
}

fn in_memory(c: &mut Criterion) {
    let len = MIB;
    let mut blob = Vec::new();
    let sent = encrypt_stream(len, |b| blob.extend_from_slice(b));
    let mut group = c.benchmark_group("attachment 1 MiB");
    group.throughput(Throughput::Bytes(len));
    group.bench_function("encrypt+mac+digest", |b| {
        b.iter(|| {
            encrypt_stream(len, |piece| {
                black_box(piece);
            })
        })
    });
    group.bench_function("verify+decrypt", |b| {
        b.iter(|| {
            receive(&sent, |feed| {
                for chunk in blob.chunks(CHUNK) {
                    feed(chunk);
                }
            })
        })
    });
    group.finish();
}

fn temp_blob_path() -> PathBuf {
    std::env::temp_dir().join(format!(
        "confianza-attachment-bench-{}.bin",
        std::process::id()
    ))
}

fn streamed(c: &mut Criterion) {
    let len = 256 * MIB;
    assert!(len <= MAX_ATTACHMENT_PLAINTEXT_LEN);
    let path = temp_blob_path();
    let sent = {
        let mut file = BufWriter::new(File::create(&path).expect("temp file"));
        let sent = encrypt_stream(len, |b| file.write_all(b).expect("write"));
        file.flush().expect("flush");
        sent
    };
    let read_chunks = |feed: &mut dyn FnMut(&[u8])| {
        let mut file = File::open(&path).expect("temp file");
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = file.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            feed(&buf[..n]);
        }
    };
    let mut group = c.benchmark_group("attachment 256 MiB streamed");
    group.throughput(Throughput::Bytes(len));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(15));
    group.bench_function("encrypt+mac+digest", |b| {
        b.iter(|| {
            encrypt_stream(len, |piece| {
                black_box(piece);
            })
        })
    });
    group.bench_function("verify+decrypt (file reads)", |b| {
        b.iter(|| receive(&sent, read_chunks))
    });
    group.finish();
    let _ = std::fs::remove_file(&path);
}

criterion_group!(benches, in_memory, streamed);
criterion_main!(benches);
