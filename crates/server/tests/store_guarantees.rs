//! What the server relies on from every `MessageStore` backend beyond the conformance suite,
//! run against SQLite (a temporary file) and PostgreSQL when `DATABASE_URL` is set (a fresh
//! schema per test, dropped afterwards):
//!
//! - `enqueue_returning` / `enqueue_receipts_returning` return the entries they stored (the
//!   writer hands them to connected recipients instead of reading the mailbox back), exactly
//!   as the mailbox then holds them, with consecutive delivery ids per device, also when
//!   batches race;
//! - `create_blob_within_quota` checks the quota and creates the record in one atomic step:
//!   of many concurrent creations against a quota of N, exactly N succeed (on PostgreSQL also
//!   when they come through two pools, as from two nodes).
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo test -p confianza-server --test store_guarantees
//! ```

use std::collections::{BTreeMap, HashSet};
use std::future::Future;

use confianza_api::{BlobId, CiphertextType, DeliveryReceipt, EcPublicKey, GroupId};
use confianza_server::store::{
    BlobQuota, BlobRecord, BlobUsage, Database, DeviceAddress, EnqueueOutcome, MessageStore,
    NewDevice, NewMessage, NewReceipt, PgStore, Queued, QueuedItem, QuotaExceeded, SqliteStore,
    StoredEntry,
};
use postgres_schema::TestSchema;

#[path = "support/postgres.rs"]
mod postgres_schema;
#[path = "support/store_fixture.rs"]
mod store_fixture;

// ---------------------------------------------------------------------------------------------
// Fixtures

/// The stores under test: on PostgreSQL two stores on two pools of one schema (two nodes); on
/// SQLite the one store twice (clones share its connection thread, as every node does).
struct Stores<S> {
    first: S,
    second: S,
}

enum Cleanup {
    Sqlite(Database, #[allow(dead_code)] tempfile::TempDir),
    Postgres(Vec<Database>, TestSchema),
}

async fn finish(cleanup: Cleanup) {
    match cleanup {
        Cleanup::Sqlite(Database::Sqlite(pool), _dir) => pool.close().await,
        Cleanup::Sqlite(_, _) => {}
        Cleanup::Postgres(databases, schema) => {
            for database in databases {
                if let Database::Postgres(pool) = database {
                    pool.close().await;
                }
            }
            schema.drop_schema().await;
        }
    }
}

async fn sqlite_stores() -> (Stores<SqliteStore>, Cleanup) {
    let (dir, db, store) = store_fixture::sqlite_store().await;
    (
        Stores {
            first: store.clone(),
            second: store,
        },
        Cleanup::Sqlite(db, dir),
    )
}

async fn postgres_stores() -> Option<(Stores<PgStore>, Cleanup)> {
    let schema = TestSchema::create("store guarantees").await?;
    let first = schema.connect().await;
    let second = schema.connect().await;
    let (Database::Postgres(first_pool), Database::Postgres(second_pool)) = (&first, &second)
    else {
        unreachable!("a PostgreSQL URL opens as PostgreSQL")
    };
    let stores = Stores {
        first: PgStore::new(first_pool.clone()),
        second: PgStore::new(second_pool.clone()),
    };
    Some((stores, Cleanup::Postgres(vec![first, second], schema)))
}

/// Runs `test`, then cleans up, also when the test panics (the panic is resumed after).
async fn run<S, F, Fut>(stores: Stores<S>, cleanup: Cleanup, test: F)
where
    F: FnOnce(Stores<S>) -> Fut,
    Fut: Future<Output = ()>,
{
    store_fixture::run_then(test(stores), || finish(cleanup)).await;
}

/// Declares every test once per backend: `sqlite::NAME` and `postgres::NAME`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let (stores, cleanup) = super::sqlite_stores().await;
                    super::run(stores, cleanup, super::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some((stores, cleanup)) = super::postgres_stores().await else { return };
                    super::run(stores, cleanup, super::$name).await;
                }
            )*
        }
    };
}

on_both_backends!(
    returned_entries_are_the_mailbox,
    racing_batches_return_consecutive_ids_without_gaps,
    concurrent_creations_stop_at_the_count_quota,
    concurrent_creations_stop_at_the_byte_quota,
    the_quota_counts_unexpired_blobs_of_the_owner_only,
);

// ---------------------------------------------------------------------------------------------
// Test data

const NO_LIMIT: u64 = 1_000_000;

fn device(address: &str, device_id: u32) -> DeviceAddress {
    DeviceAddress {
        address: address.to_owned(),
        device_id,
    }
}

async fn enroll<S: MessageStore>(store: &S, address: &str, n: u8) -> DeviceAddress {
    let mut identity_key: EcPublicKey = [n; 33];
    identity_key[0] = 0x05;
    store
        .enroll(NewDevice {
            address: address.to_owned(),
            registration_id: u32::from(n),
            noise_key: [n; 32],
            identity_key,
            certificate: vec![n; 8],
            now_ms: 1,
        })
        .await
        .expect("enroll")
        .address
}

fn message(sender: &DeviceAddress, n: u32, recipients: &[&DeviceAddress]) -> NewMessage {
    let mut client_message_id = [0u8; 16];
    client_message_id[..4].copy_from_slice(&n.to_be_bytes());
    NewMessage {
        sender: sender.clone(),
        ciphertext_type: CiphertextType::Whisper,
        body: format!("body {n}").into_bytes(),
        client_message_id,
        group_id: None,
        server_timestamp_ms: 1_000 + u64::from(n),
        expires_at_ms: u64::MAX / 2,
        recipients: recipients.iter().map(|r| (*r).clone()).collect(),
    }
}

fn receipt(to: &DeviceAddress, from: &str, n: u32) -> NewReceipt {
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(&n.to_be_bytes());
    NewReceipt {
        to: to.clone(),
        receipt: DeliveryReceipt {
            recipient: from.to_owned(),
            recipient_device_id: 1,
            client_message_ids: vec![id, [7; 16]],
            server_timestamp_ms: 5_000 + u64::from(n),
        },
        expires_at_ms: u64::MAX / 2,
    }
}

/// The entries of `device` among `returned`, in order.
fn entries_of(returned: &[StoredEntry], device: &DeviceAddress) -> Vec<Queued> {
    returned
        .iter()
        .filter(|entry| entry.recipient == *device)
        .map(|entry| entry.entry.clone())
        .collect()
}

fn ids(entries: &[Queued]) -> Vec<u64> {
    entries.iter().map(|entry| entry.delivery_id).collect()
}

fn blob(id: u32, owner: &str, size: u64, expires_at_ms: u64) -> BlobRecord {
    let mut bytes = [0u8; 16];
    bytes[..4].copy_from_slice(&id.to_be_bytes());
    BlobRecord {
        id: BlobId(bytes),
        owner: owner.to_owned(),
        size,
        received: 0,
        expires_at_ms,
    }
}

// ---------------------------------------------------------------------------------------------
// Returned entries

/// Both backends return what they stored (never `None`), equal to what the mailbox then
/// holds: envelopes of a direct and a group message, nothing for a duplicate, an unknown
/// recipient or a full mailbox, then receipts; delivery ids follow on from what was queued.
async fn returned_entries_are_the_mailbox<S: MessageStore>(stores: Stores<S>) {
    let s = &stores.first;
    let alice = enroll(s, "alice", 1).await;
    let bob = enroll(s, "bob", 2).await;
    let carol = enroll(s, "carol", 3).await;
    let dave = enroll(s, "dave", 4).await;
    s.enqueue(&[message(&bob, 1, &[&carol])], 2)
        .await
        .expect("enqueue");
    s.enqueue(
        &[message(&bob, 9, &[&dave]), message(&bob, 10, &[&dave])],
        2,
    )
    .await
    .expect("dave's mailbox is full");
    let carol_before = s.pending(&carol, 0, 10).await.expect("pending");
    assert_eq!(carol_before.len(), 1);

    let mut group = message(&bob, 3, &[&alice, &carol]);
    group.group_id = Some(GroupId([9; 16]));
    group.ciphertext_type = CiphertextType::SenderKey;
    let (outcomes, returned) = s
        .enqueue_returning(
            vec![
                message(&bob, 2, &[&alice]),
                group,
                message(&bob, 1, &[&carol]),
                message(&bob, 4, &[&device("ghost", 1)]),
                // Dave's mailbox is full: nothing for alice either.
                message(&bob, 5, &[&dave, &alice]),
            ],
            2,
        )
        .await
        .expect("enqueue");
    assert_eq!(
        outcomes,
        [
            EnqueueOutcome::Stored {
                new: vec![alice.clone()],
                duplicates: 0
            },
            EnqueueOutcome::Stored {
                new: vec![alice.clone(), carol.clone()],
                duplicates: 0
            },
            EnqueueOutcome::Stored {
                new: vec![],
                duplicates: 1
            },
            EnqueueOutcome::UnknownRecipient(device("ghost", 1)),
            EnqueueOutcome::MailboxFull(dave.clone()),
        ]
    );
    let returned = returned.expect("this backend returns what it stores");
    assert_eq!(returned.len(), 3, "{returned:?}");
    let alice_pending = s.pending(&alice, 0, 10).await.expect("pending");
    let carol_pending = s.pending(&carol, 0, 10).await.expect("pending");
    assert_eq!(entries_of(&returned, &alice), alice_pending);
    assert_eq!(entries_of(&returned, &carol), carol_pending[1..]);
    assert_eq!(
        ids(&carol_pending),
        [carol_before[0].delivery_id, carol_before[0].delivery_id + 1]
    );
    assert!(entries_of(&returned, &dave).is_empty());
    let QueuedItem::Envelope(envelope) = &alice_pending[1].item else {
        panic!("an envelope: {:?}", alice_pending[1]);
    };
    assert_eq!(envelope.group_id, Some(GroupId([9; 16])));
    assert_eq!(envelope.ciphertext_type, CiphertextType::SenderKey);
    assert_eq!(envelope.body, b"body 3");

    // A batch that stores nothing returns no entries (and not `None`).
    let (_, nothing) = s
        .enqueue_returning(vec![message(&bob, 2, &[&alice])], NO_LIMIT)
        .await
        .expect("duplicate");
    assert_eq!(nothing, Some(Vec::new()));

    // Receipts share the sequence; the one for a device that does not exist is dropped.
    let last = alice_pending.last().map_or(0, |entry| entry.delivery_id);
    let returned = s
        .enqueue_receipts_returning(vec![
            receipt(&alice, "bob", 1),
            receipt(&device("ghost", 1), "bob", 2),
            receipt(&alice, "carol", 3),
            receipt(&dave, "carol", 4),
        ])
        .await
        .expect("receipts")
        .expect("this backend returns what it stores");
    assert_eq!(returned.len(), 3);
    let alice_receipts = s.pending(&alice, last, 10).await.expect("pending");
    assert_eq!(entries_of(&returned, &alice), alice_receipts);
    assert_eq!(ids(&alice_receipts), [last + 1, last + 2]);
    let dave_pending = s.pending(&dave, 0, 10).await.expect("pending");
    assert_eq!(entries_of(&returned, &dave), dave_pending[2..]);
    assert_eq!(
        s.enqueue_receipts_returning(Vec::new())
            .await
            .expect("no receipts"),
        Some(Vec::new())
    );
}

/// Batches racing for one recipient (through both stores) each get consecutive delivery ids,
/// and together exactly the mailbox: no id twice, none missing, each entry as returned.
async fn racing_batches_return_consecutive_ids_without_gaps<S: MessageStore + Clone>(
    stores: Stores<S>,
) {
    const TASKS: u32 = 8;
    const BATCHES: u32 = 10;
    const PER_BATCH: u32 = 3;
    let s = &stores.first;
    let bob = enroll(s, "bob", 1).await;
    let mut senders = Vec::new();
    for task in 0..TASKS {
        senders.push(enroll(s, &format!("sender{task}"), 10 + task as u8).await);
    }
    let mut handles = Vec::new();
    for (task, sender) in senders.into_iter().enumerate() {
        let store = if task % 2 == 0 {
            stores.first.clone()
        } else {
            stores.second.clone()
        };
        let bob = bob.clone();
        handles.push(tokio::spawn(async move {
            let mut returned = Vec::new();
            for batch in 0..BATCHES {
                let messages = (0..PER_BATCH)
                    .map(|n| message(&sender, batch * PER_BATCH + n, &[&bob]))
                    .collect();
                if batch % 3 == 2 {
                    let receipts = (0..PER_BATCH).map(|n| receipt(&bob, "x", n)).collect();
                    let entries = store
                        .enqueue_receipts_returning(receipts)
                        .await
                        .expect("receipts")
                        .expect("returned");
                    returned.push(entries);
                }
                let (_, entries) = store
                    .enqueue_returning(messages, NO_LIMIT)
                    .await
                    .expect("enqueue");
                returned.push(entries.expect("returned"));
            }
            returned
        }));
    }
    let mut all = BTreeMap::new();
    for handle in handles {
        for batch in handle.await.expect("task") {
            let batch_ids = ids(&entries_of(&batch, &bob));
            assert_eq!(batch_ids.len(), batch.len());
            assert!(
                batch_ids.windows(2).all(|pair| pair[1] == pair[0] + 1),
                "consecutive within a batch: {batch_ids:?}"
            );
            for entry in batch {
                assert!(
                    all.insert(entry.entry.delivery_id, entry.entry).is_none(),
                    "an id returned twice"
                );
            }
        }
    }
    let expected = (TASKS * BATCHES * PER_BATCH + TASKS * (BATCHES / 3) * PER_BATCH) as usize;
    assert_eq!(all.len(), expected);
    let pending = s
        .pending(&bob, 0, expected as u32 + 10)
        .await
        .expect("pending");
    assert_eq!(pending, all.into_values().collect::<Vec<_>>());
    assert_eq!(
        ids(&pending),
        (1..=expected as u64).collect::<Vec<_>>(),
        "no gaps"
    );
}

// ---------------------------------------------------------------------------------------------
// Blob quota

/// Starts `creations` concurrent creations for `owner` through both stores; returns how many
/// were created and the refusals.
async fn race_creations<S: MessageStore + Clone>(
    stores: &Stores<S>,
    owner: &str,
    creations: u32,
    size: u64,
    quota: BlobQuota,
    now_ms: u64,
) -> (u64, Vec<QuotaExceeded>) {
    let handles: Vec<_> = (0..creations)
        .map(|n| {
            let store = if n % 2 == 0 {
                stores.first.clone()
            } else {
                stores.second.clone()
            };
            let record = blob(n, owner, size, now_ms + 1_000);
            tokio::spawn(async move {
                store
                    .create_blob_within_quota(&record, quota, now_ms)
                    .await
                    .expect("no store error")
            })
        })
        .collect();
    let mut created = 0;
    let mut refused = Vec::new();
    for handle in handles {
        match handle.await.expect("task") {
            Ok(()) => created += 1,
            Err(exceeded) => refused.push(exceeded),
        }
    }
    (created, refused)
}

async fn concurrent_creations_stop_at_the_count_quota<S: MessageStore + Clone>(stores: Stores<S>) {
    const ALLOWED: u64 = 7;
    const CREATIONS: u32 = 40;
    let quota = BlobQuota {
        bytes: u64::MAX,
        count: ALLOWED,
    };
    let now_ms = 1_000_000;
    let (created, refused) = race_creations(&stores, "alice", CREATIONS, 10, quota, now_ms).await;
    assert_eq!(created, ALLOWED);
    assert_eq!(refused.len() as u64, u64::from(CREATIONS) - ALLOWED);
    for exceeded in &refused {
        assert_eq!(
            *exceeded,
            QuotaExceeded::Count {
                used: ALLOWED,
                limit: ALLOWED
            }
        );
    }
    for store in [&stores.first, &stores.second] {
        assert_eq!(
            store.blob_usage("alice", now_ms).await.expect("usage"),
            BlobUsage {
                count: ALLOWED,
                bytes: ALLOWED * 10
            }
        );
    }
}

async fn concurrent_creations_stop_at_the_byte_quota<S: MessageStore + Clone>(stores: Stores<S>) {
    const SIZE: u64 = 1_000;
    const CREATIONS: u32 = 30;
    // Room for 9 and a half blobs: the tenth does not fit.
    let quota = BlobQuota {
        bytes: 9 * SIZE + SIZE / 2,
        count: u64::MAX,
    };
    let now_ms = 1_000_000;
    let (created, refused) = race_creations(&stores, "alice", CREATIONS, SIZE, quota, now_ms).await;
    assert_eq!(created, 9);
    assert_eq!(refused.len(), CREATIONS as usize - 9);
    assert!(refused.iter().all(|exceeded| matches!(
        exceeded,
        QuotaExceeded::Bytes {
            used: 9_000,
            requested: SIZE,
            ..
        }
    )));
    // What is left still fits exactly: N fits, N + 1 does not.
    let store = &stores.second;
    assert_eq!(
        store
            .create_blob_within_quota(&blob(100, "alice", SIZE / 2 + 1, now_ms + 1), quota, now_ms)
            .await
            .expect("no store error"),
        Err(QuotaExceeded::Bytes {
            used: 9 * SIZE,
            requested: SIZE / 2 + 1,
            limit: quota.bytes
        })
    );
    assert_eq!(
        store
            .create_blob_within_quota(&blob(101, "alice", SIZE / 2, now_ms + 1), quota, now_ms)
            .await
            .expect("no store error"),
        Ok(())
    );
}

async fn the_quota_counts_unexpired_blobs_of_the_owner_only<S: MessageStore + Clone>(
    stores: Stores<S>,
) {
    let now_ms = 1_000_000;
    let quota = BlobQuota {
        bytes: 100,
        count: 2,
    };
    let s = &stores.first;
    let create = |record: BlobRecord| async move {
        s.create_blob_within_quota(&record, quota, now_ms)
            .await
            .expect("no store error")
    };
    assert_eq!(create(blob(1, "alice", 60, now_ms + 1)).await, Ok(()));
    // Expires at `now_ms`: counted when created, not any more once its time has come.
    s.create_blob(&blob(2, "alice", 40, now_ms))
        .await
        .expect("created");
    // Bob's blobs are his own.
    assert_eq!(create(blob(3, "bob", 100, now_ms + 1)).await, Ok(()));
    assert_eq!(create(blob(4, "alice", 40, now_ms + 1)).await, Ok(()));
    assert_eq!(
        create(blob(5, "alice", 0, now_ms + 1)).await,
        Err(QuotaExceeded::Count { used: 2, limit: 2 })
    );
    // A refused creation stores nothing; a taken id is `Conflict` and stores nothing either.
    assert_eq!(s.blob(blob(5, "alice", 0, 0).id).await.expect("read"), None);
    assert!(matches!(
        stores
            .second
            .create_blob_within_quota(&blob(3, "carol", 1, now_ms + 1), quota, now_ms)
            .await,
        Err(confianza_server::store::StoreError::Conflict(_))
    ));
    assert_eq!(
        s.blob_usage("carol", now_ms).await.expect("usage"),
        BlobUsage::default()
    );
    let ids: HashSet<BlobId> = [1, 2, 3, 4]
        .into_iter()
        .map(|n| blob(n, "", 0, 0).id)
        .collect();
    for id in ids {
        assert!(s.blob(id).await.expect("read").is_some());
    }
}
