//! The message store on SQLite (a temporary file, WAL, as the server runs it): how many offline
//! messages per second `enqueue` stores durably in batches of 1, 64 and 512 (issue 3's goal is
//! at least 50 000 messages/s), and how fast a reconnecting device drains its mailbox with
//! `pending` + `acknowledge`, and what acknowledging a writer batch of 64 devices costs as one
//! `acknowledge_batch` against 64 `acknowledge` calls, and what the relay's writer commits per
//! batch (`commit_batch`: the acknowledgements of the previous batch's messages and receipts,
//! the receipts they owe, 256 new messages), per message.
//!
//! Each message is a 512-byte one-to-one ciphertext (about a padded text message) to one of 64
//! recipient devices, each of which already holds a backlog of 100 messages, so the queue depth
//! checks and dedupe lookups run against real indices.
//!
//! `cargo bench -p confianza-server --bench store`

use std::time::{Duration, Instant};

use confianza_api::CiphertextType;
use confianza_server::store::{
    AckRequest, Database, DeviceAddress, MessageStore, NewDevice, NewMessage, SqliteStore,
    WriteBatch,
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;

const BODY_LEN: usize = 512;
const RECIPIENTS: usize = 64;
const BACKLOG_PER_RECIPIENT: usize = 100;
/// What `pending` + `acknowledge` drain per round: a device's whole in-flight window.
const DRAIN_WINDOW: u32 = 256;
/// Benchmark messages expire at this time, the backlog never: after each timed batch, an
/// untimed `expire_messages(BENCH_EXPIRY)` removes the batch and leaves the backlog.
const BENCH_EXPIRY: u64 = 1;

struct Setup {
    store: SqliteStore,
    sender: DeviceAddress,
    recipients: Vec<DeviceAddress>,
    next_message: u64,
    _dir: tempfile::TempDir,
}

impl Setup {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let db = Database::open_sqlite_file(&dir.path().join("bench.db"))
            .await
            .expect("open SQLite");
        let Database::Sqlite(pool) = db else {
            unreachable!("a SQLite file opens as SQLite")
        };
        let store = SqliteStore::open(&pool).expect("message store");
        let enroll = async |address: String, n: u8| {
            let mut noise_key = [n; 32];
            noise_key[..8]
                .copy_from_slice(&(address.len() as u64 * 1_000 + u64::from(n)).to_be_bytes());
            store
                .enroll(NewDevice {
                    address,
                    registration_id: 1,
                    noise_key,
                    identity_key: [5; 33],
                    certificate: vec![0x30; 600],
                    now_ms: 0,
                })
                .await
                .expect("enroll")
                .address
        };
        let sender = enroll("sender@example.org".to_owned(), 0).await;
        let mut recipients = Vec::with_capacity(RECIPIENTS);
        for n in 0..RECIPIENTS {
            recipients.push(enroll(format!("recipient{n:02}@example.org"), n as u8).await);
        }
        let mut setup = Self {
            store,
            sender,
            recipients,
            next_message: 0,
            _dir: dir,
        };
        let backlog = setup.batch(RECIPIENTS * BACKLOG_PER_RECIPIENT, u64::MAX);
        setup
            .store
            .enqueue(&backlog, u64::MAX)
            .await
            .expect("backlog");
        setup
    }

    /// `count` fresh messages, spread over the recipients.
    fn batch(&mut self, count: usize, expires_at_ms: u64) -> Vec<NewMessage> {
        (0..count)
            .map(|_| {
                let n = self.next_message;
                self.next_message += 1;
                let mut client_message_id = [0; 16];
                client_message_id[..8].copy_from_slice(&n.to_be_bytes());
                NewMessage {
                    sender: self.sender.clone(),
                    ciphertext_type: CiphertextType::Whisper,
                    body: vec![0xAB; BODY_LEN],
                    client_message_id,
                    group_id: None,
                    server_timestamp_ms: 1_790_000_000_000,
                    expires_at_ms,
                    recipients: vec![self.recipients[n as usize % RECIPIENTS].clone()],
                }
            })
            .collect()
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn enqueue(c: &mut Criterion) {
    let rt = runtime();
    let mut setup = rt.block_on(Setup::new());
    let mut group = c.benchmark_group("sqlite_enqueue");
    group.sample_size(20);
    for size in [1usize, 64, 512] {
        group.throughput(Throughput::Elements(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, &size| {
            b.iter_custom(|iterations| {
                let mut timed = Duration::ZERO;
                for _ in 0..iterations {
                    let batch = setup.batch(size, BENCH_EXPIRY);
                    rt.block_on(async {
                        let start = Instant::now();
                        let outcomes = setup
                            .store
                            .enqueue(&batch, u64::MAX)
                            .await
                            .expect("enqueue");
                        timed += start.elapsed();
                        assert_eq!(outcomes.len(), size);
                        setup
                            .store
                            .expire_messages(BENCH_EXPIRY)
                            .await
                            .expect("clean up");
                    });
                }
                timed
            });
        });
    }
    group.finish();
}

fn drain(c: &mut Criterion) {
    let rt = runtime();
    let mut setup = rt.block_on(Setup::new());
    let device = setup.recipients[0].clone();
    let mut group = c.benchmark_group("sqlite_pending_acknowledge");
    group.sample_size(20);
    group.throughput(Throughput::Elements(u64::from(DRAIN_WINDOW)));
    group.bench_function(BenchmarkId::from_parameter(DRAIN_WINDOW), |b| {
        b.iter_custom(|iterations| {
            let mut timed = Duration::ZERO;
            for _ in 0..iterations {
                let mut batch = setup.batch(DRAIN_WINDOW as usize, u64::MAX);
                for message in &mut batch {
                    message.recipients = vec![device.clone()];
                }
                rt.block_on(async {
                    setup.store.enqueue(&batch, u64::MAX).await.expect("fill");
                    let start = Instant::now();
                    let pending = setup
                        .store
                        .pending(&device, 0, DRAIN_WINDOW)
                        .await
                        .expect("pending");
                    let ids: Vec<u64> = pending.iter().map(|q| q.delivery_id).collect();
                    let acknowledged = setup
                        .store
                        .acknowledge(&device, &ids)
                        .await
                        .expect("acknowledge");
                    timed += start.elapsed();
                    assert_eq!(acknowledged.len(), ids.len());
                });
            }
            timed
        });
    });
    group.finish();
}

/// A writer batch of acknowledgements: every recipient acknowledges the 4 messages just queued
/// for it (256 in all), as 64 `acknowledge` calls one after the other or as one
/// `acknowledge_batch` (one transaction).
fn acknowledge_batch(c: &mut Criterion) {
    const PER_DEVICE: usize = 4;
    let rt = runtime();
    let mut setup = rt.block_on(Setup::new());
    let mut group = c.benchmark_group("sqlite_acknowledge_64_devices");
    group.sample_size(20);
    group.throughput(Throughput::Elements((RECIPIENTS * PER_DEVICE) as u64));
    for batched in [false, true] {
        let name = if batched { "batch" } else { "one_by_one" };
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                let mut timed = Duration::ZERO;
                for _ in 0..iterations {
                    let batch = setup.batch(RECIPIENTS * PER_DEVICE, u64::MAX);
                    rt.block_on(async {
                        setup.store.enqueue(&batch, u64::MAX).await.expect("fill");
                        // The ids just queued: the last entries of each mailbox (the backlog
                        // stays).
                        let mut acks = Vec::with_capacity(RECIPIENTS);
                        for device in &setup.recipients {
                            let pending = setup
                                .store
                                .pending(device, 0, u32::MAX)
                                .await
                                .expect("pending");
                            let ids: Vec<u64> = pending[pending.len() - PER_DEVICE..]
                                .iter()
                                .map(|q| q.delivery_id)
                                .collect();
                            acks.push((device.clone(), ids));
                        }
                        let start = Instant::now();
                        let acknowledged = if batched {
                            setup
                                .store
                                .acknowledge_batch(&acks)
                                .await
                                .expect("acknowledge batch")
                        } else {
                            let mut all = Vec::with_capacity(acks.len());
                            for (device, ids) in &acks {
                                all.push(
                                    setup
                                        .store
                                        .acknowledge(device, ids)
                                        .await
                                        .expect("acknowledge"),
                                );
                            }
                            all
                        };
                        timed += start.elapsed();
                        assert!(acknowledged.iter().all(|a| a.len() == PER_DEVICE));
                    });
                }
                timed
            });
        });
    }
    group.finish();
}

/// The relay's steady state as the writer commits it: each batch carries 256 new messages (4 per
/// recipient), the acknowledgements of the previous batch's messages (one per recipient) and of
/// the receipts the sender got for the batch before (one ack by the sender), and stores the
/// receipts the acknowledgements owe. Throughput counts the new messages.
fn writer_batch(c: &mut Criterion) {
    const SENDS: usize = 256;
    let rt = runtime();
    let mut setup = rt.block_on(Setup::new());
    let mut group = c.benchmark_group("sqlite_writer_batch");
    group.sample_size(20);
    group.throughput(Throughput::Elements(SENDS as u64));
    // What the next batch acknowledges: per device, the ids handed to it by the last one.
    let mut to_ack: Vec<(DeviceAddress, Vec<u64>)> = Vec::new();
    group.bench_function(BenchmarkId::from_parameter(SENDS), |b| {
        b.iter_custom(|iterations| {
            let mut timed = Duration::ZERO;
            for _ in 0..iterations {
                let sends = setup.batch(SENDS, u64::MAX);
                let batch = WriteBatch {
                    acks: to_ack
                        .drain(..)
                        .map(|(device, delivery_ids)| AckRequest {
                            device,
                            delivery_ids,
                            receipt_expires_at_ms: u64::MAX,
                        })
                        .collect(),
                    now_ms: 1_790_000_000_000,
                    sends,
                    max_queue: u64::MAX,
                    ..WriteBatch::default()
                };
                let outcome = rt.block_on(async {
                    let start = Instant::now();
                    let outcome = setup.store.commit_batch(batch).await.expect("commit");
                    timed += start.elapsed();
                    outcome
                });
                let mut next: Vec<(DeviceAddress, Vec<u64>)> = Vec::new();
                // Receipts went to the sender; it acknowledges them like messages.
                for stored in outcome
                    .stored
                    .expect("the SQLite store returns what it stored")
                {
                    match next
                        .iter_mut()
                        .find(|(device, _)| *device == stored.recipient)
                    {
                        Some((_, ids)) => ids.push(stored.entry.delivery_id),
                        None => next.push((stored.recipient, vec![stored.entry.delivery_id])),
                    }
                }
                to_ack = next;
            }
            timed
        });
    });
    group.finish();
}

criterion_group!(benches, enqueue, drain, acknowledge_batch, writer_batch);
criterion_main!(benches);
