//! Attachment cipher throughput: encrypt (AES-256-CBC + HMAC-SHA256 + SHA-256 digest) and
//! receive (pass 1: HMAC + digest; pass 2: AES-256-CBC decrypt + HMAC re-check), in 64 KiB chunks.
//!
//! Sizes: 1 MiB in memory, and 256 MiB streamed: plaintext chunks are generated, ciphertext is
//! discarded, and the blob for the receiving passes is read back from a temporary file 64 KiB at
//! a time, so nothing of that size is held in memory.
//!
//! Time is the benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not wall-clock time:
//! the build machine has two cores shared with compilers, and wall time counts the moments the
//! thread was not running. `openssl speed`, the reference, divides by user CPU time too, so the
//! two are compared on the same footing: `openssl speed -bytes 1048576 -evp aes-256-cbc`,
//! `-hmac sha256` and `-evp sha256` on the same machine (BENCHMARKS.md).
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
use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rustix::time::{ClockId, clock_gettime};

/// CPU time consumed by the calling thread (user and system), with nanosecond resolution.
struct ThreadCpuTime;

fn thread_cpu_now() -> Duration {
    let now = clock_gettime(ClockId::ThreadCPUTime);
    // The clock counts up from zero, so both fields are non-negative.
    Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    )
}

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu_now()
    }
    fn end(&self, start: Duration) -> Duration {
        thread_cpu_now().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuTimeFormatter
    }
}

/// Prints CPU nanoseconds as times and byte throughputs as MB/s (10^6 bytes, the unit of
/// `openssl speed`).
struct CpuTimeFormatter;

impl ValueFormatter for CpuTimeFormatter {
    fn scale_values(&self, typical_ns: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if typical_ns < 1e3 {
            (1.0, "ns (cpu)")
        } else if typical_ns < 1e6 {
            (1e-3, "µs (cpu)")
        } else if typical_ns < 1e9 {
            (1e-6, "ms (cpu)")
        } else {
            (1e-9, "s (cpu)")
        };
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }

    fn scale_throughputs(
        &self,
        _typical_ns: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let (units, unit) = match *throughput {
            Throughput::Bytes(bytes) | Throughput::BytesDecimal(bytes) => {
                (bytes as f64 / 1e6, "MB/s (cpu)")
            }
            Throughput::Bits(bits) => (bits as f64 / 1e6, "Mbit/s (cpu)"),
            Throughput::Elements(n) | Throughput::ElementsAndBytes { elements: n, .. } => {
                (n as f64, "elem/s (cpu)")
            }
        };
        values.iter_mut().for_each(|ns| *ns = units / (*ns * 1e-9));
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

const CHUNK: usize = 64 * 1024;
const MIB: u64 = 1024 * 1024;

fn keys() -> AttachmentKeys {
    AttachmentKeys::from_bytes(&[7; 64])
}

/// Buffers a streaming sender allocates once and reuses for every chunk and every file.
struct Buffers {
    plaintext: Vec<u8>,
    out: Vec<u8>,
}

impl Buffers {
    fn new() -> Self {
        Self {
            plaintext: vec![0x5a; CHUNK],
            out: Vec::with_capacity(CHUNK + 64),
        }
    }
}

/// Encrypts `len` bytes of generated plaintext in 64 KiB chunks, handing blob pieces to `sink`.
fn encrypt_stream(
    len: u64,
    buffers: &mut Buffers,
    mut sink: impl FnMut(&[u8]),
) -> EncryptedAttachment {
    let Buffers { plaintext, out } = buffers;
    let mut encryptor = AttachmentEncryptor::with_iv(&keys(), [1; 16]);
    let mut left = len;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        out.clear();
        encryptor
            .update(&plaintext[..n], out)
            .expect("within the limit");
        sink(out);
        left -= n as u64;
    }
    out.clear();
    let sent = encryptor.finish(out);
    sink(out);
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

fn in_memory(c: &mut Criterion<ThreadCpuTime>) {
    let len = MIB;
    let mut buffers = Buffers::new();
    let mut blob = Vec::new();
    let sent = encrypt_stream(len, &mut buffers, |b| blob.extend_from_slice(b));
    let mut group = c.benchmark_group("attachment 1 MiB");
    group.throughput(Throughput::Bytes(len));
    group.bench_function("encrypt+mac+digest", |b| {
        b.iter(|| {
            encrypt_stream(len, &mut buffers, |piece| {
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

fn streamed(c: &mut Criterion<ThreadCpuTime>) {
    let len = 256 * MIB;
    assert!(len <= MAX_ATTACHMENT_PLAINTEXT_LEN);
    let path = temp_blob_path();
    let mut buffers = Buffers::new();
    let sent = {
        let mut file = BufWriter::new(File::create(&path).expect("temp file"));
        let sent = encrypt_stream(len, &mut buffers, |b| file.write_all(b).expect("write"));
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
            encrypt_stream(len, &mut buffers, |piece| {
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

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = in_memory, streamed
}
criterion_main!(benches);
