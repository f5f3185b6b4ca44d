//! The `MessageStore` conformance suite: one set of test functions, generic over the store, run
//! against SQLite (a temporary file) and against PostgreSQL when `DATABASE_URL` is set (each
//! test in a fresh schema, dropped afterwards).
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo test -p confianza-server --test store_conformance
//! ```

use std::collections::{BTreeSet, HashSet};
use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use confianza_api::limits::{MAX_GROUP_MEMBERS, MAX_ONE_TIME_PREKEYS_PER_UPLOAD};
use confianza_api::{
    BlobId, CiphertextType, ClientMessageId, DeliveryReceipt, EcPublicKey, Envelope, GroupId,
    GroupMember, KyberPreKey, KyberPublicKey, OneTimePreKey, PreKeyCount, PreKeyUpload,
    SignedPreKey,
};
use confianza_server::store::{
    AckRequest, Acknowledged, AnyMessageStore, BlobRecord, Database, DeviceAddress, EnqueueOutcome,
    MessageStore, NewDevice, NewMessage, NewReceipt, PgStore, Queued, QueuedItem, ReceiptRoute,
    SqliteStore, StoreError, StoredEntry, WriteBatch,
};
use postgres_schema::TestSchema;

#[path = "support/postgres.rs"]
mod postgres_schema;
#[path = "support/store_fixture.rs"]
mod store_fixture;

// ---------------------------------------------------------------------------------------------
// Fixtures

/// A store under test, the database behind it (for direct inspection) and what to clean up.
struct Fixture<S> {
    store: S,
    db: Database,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres(TestSchema),
}

impl<S> Fixture<S> {
    /// Runs a statement of the test's own on the database (to corrupt a row, for instance).
    async fn execute(&self, sql: &'static str) {
        match &self.db {
            Database::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
            Database::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
        }
        .expect("test statement");
    }

    /// Sets a byte column with a statement of the test's own (`$1` is the value).
    async fn set_bytes(&self, sql: &'static str, value: &[u8]) {
        match &self.db {
            Database::Sqlite(pool) => sqlx::query(sql).bind(value).execute(pool).await.map(|_| ()),
            Database::Postgres(pool) => {
                sqlx::query(sql).bind(value).execute(pool).await.map(|_| ())
            }
        }
        .expect("test statement");
    }

    /// What the mailboxes hold, counted in the backend's own tables (their layouts differ).
    async fn count(&self, what: Held) -> i64 {
        let sql = match (&self.db, what) {
            // A one-to-one body lives in its entry row, a shared one in `shared_bodies`.
            (Database::Sqlite(_), Held::Bodies) => {
                "SELECT (SELECT COUNT(*) FROM shared_bodies) \
                     + (SELECT COUNT(*) FROM mailbox WHERE body IS NOT NULL)"
            }
            (Database::Sqlite(_), Held::Messages) => "SELECT COUNT(*) FROM mailbox WHERE kind = 0",
            (Database::Sqlite(_), Held::Receipts) => "SELECT COUNT(*) FROM mailbox WHERE kind = 1",
            (Database::Postgres(_), Held::Bodies) => "SELECT COUNT(*) FROM message_bodies",
            (Database::Postgres(_), Held::Messages) => "SELECT COUNT(*) FROM mailbox_entries",
            (Database::Postgres(_), Held::Receipts) => "SELECT COUNT(*) FROM receipts",
        };
        self.scalar(sql).await
    }

    /// Runs the statement written for the fixture's backend.
    async fn execute_per_backend(&self, sqlite: &'static str, postgres: &'static str) {
        match &self.db {
            Database::Sqlite(_) => self.execute(sqlite).await,
            Database::Postgres(_) => self.execute(postgres).await,
        }
    }

    /// [`Fixture::set_bytes`] with the statement written for the fixture's backend.
    async fn set_bytes_per_backend(
        &self,
        sqlite: &'static str,
        postgres: &'static str,
        value: &[u8],
    ) {
        match &self.db {
            Database::Sqlite(_) => self.set_bytes(sqlite, value).await,
            Database::Postgres(_) => self.set_bytes(postgres, value).await,
        }
    }

    /// The single integer a test query returns (`SELECT COUNT(*) …`).
    async fn scalar(&self, sql: &'static str) -> i64 {
        match &self.db {
            Database::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
            Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        }
        .expect("test query")
    }

    async fn finish(self) {
        let Self { db, cleanup, .. } = self;
        match db {
            Database::Sqlite(pool) => pool.close().await,
            Database::Postgres(pool) => pool.close().await,
        }
        if let Cleanup::Postgres(schema) = cleanup {
            schema.drop_schema().await;
        }
    }
}

/// What [`Fixture::count`] counts.
#[derive(Debug, Clone, Copy)]
enum Held {
    /// Stored ciphertexts (one per message, however many devices it is queued for).
    Bodies,
    /// Queued message entries (one per recipient device).
    Messages,
    /// Queued delivery receipts.
    Receipts,
}

async fn sqlite_fixture() -> Fixture<SqliteStore> {
    let (dir, db, store) = store_fixture::sqlite_store().await;
    Fixture {
        store,
        db,
        cleanup: Cleanup::Sqlite(dir),
    }
}

/// A fresh schema in the `DATABASE_URL` database; `None` (with a note) when it is not set.
async fn postgres_fixture() -> Option<Fixture<PgStore>> {
    let schema = TestSchema::create("conformance").await?;
    let db = schema.connect().await;
    let Database::Postgres(pool) = &db else {
        unreachable!("a PostgreSQL URL opens as PostgreSQL")
    };
    Some(Fixture {
        store: PgStore::new(pool.clone()),
        db,
        cleanup: Cleanup::Postgres(schema),
    })
}

/// Runs `test` and then cleans up, also when the test panics (the panic is resumed after).
async fn run<S, F, Fut>(fixture: Fixture<S>, test: F)
where
    F: FnOnce(Arc<Fixture<S>>) -> Fut,
    Fut: Future<Output = ()>,
{
    let fixture = Arc::new(fixture);
    store_fixture::run_then(test(fixture.clone()), || async move {
        match Arc::try_unwrap(fixture) {
            Ok(fixture) => fixture.finish().await,
            Err(_) => eprintln!("a task still holds the fixture: schema left behind"),
        }
    })
    .await;
}

/// Declares every test once per backend: `sqlite::NAME` and `postgres::NAME`.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let fixture = super::sqlite_fixture().await;
                    super::run(fixture, |f| async move { super::$name(&f).await }).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(fixture) = super::postgres_fixture().await else { return };
                    super::run(fixture, |f| async move { super::$name(&f).await }).await;
                }
            )*
        }
    };
}

conformance!(
    enrollment_and_devices,
    certificates_and_last_seen,
    prekeys_upload_claim_and_count,
    prekey_upload_conflicts_store_nothing,
    concurrent_claims_of_100_one_time_prekeys,
    concurrent_claims_fall_back_to_last_resort,
    mailbox_order_cursor_and_limit,
    acknowledge_deletes_only_that_devices_entries,
    acknowledge_batch_answers_per_device,
    batches_across_many_devices_keep_every_counter,
    delivery_ids_are_never_reused,
    queue_limit_at_n_and_n_plus_1,
    a_message_is_stored_for_all_recipients_or_none,
    duplicates_are_counted_not_stored,
    duplicates_are_detected_while_the_first_copy_is_queued,
    group_fan_out_stores_one_body,
    receipts_share_the_mailbox,
    returned_entries_are_what_the_mailbox_holds,
    expiry_of_messages_and_receipts,
    expiry_of_many_entries,
    commit_batch_acknowledges_then_stores_receipts_and_sends,
    commit_batch_hands_back_the_receipts_to_push_and_stores_carried_ones,
    commit_batch_acknowledgements_free_room_for_its_sends,
    concurrent_enqueues_keep_delivery_ids_increasing,
    groups_membership_and_admins,
    group_member_limit_at_n_and_n_plus_1,
    last_admin_leaving_promotes_the_earliest_member,
    blobs_compare_and_set,
    corrupt_rows_are_errors,
    any_store_delegates,
);

// ---------------------------------------------------------------------------------------------
// Test data

fn device(address: &str, device_id: u32) -> DeviceAddress {
    DeviceAddress {
        address: address.to_owned(),
        device_id,
    }
}

fn new_device(address: &str, n: u8) -> NewDevice {
    let mut hasher = DefaultHasher::new();
    address.hash(&mut hasher);
    let mut noise_key = [n; 32];
    noise_key[..8].copy_from_slice(&hasher.finish().to_be_bytes());
    let mut identity_key = [0x05; 33];
    identity_key[1..9].copy_from_slice(&hasher.finish().to_le_bytes());
    NewDevice {
        address: address.to_owned(),
        registration_id: 1000 + u32::from(n),
        noise_key,
        identity_key,
        certificate: format!("certificate of {address}/{n}").into_bytes(),
        now_ms: 1_000,
    }
}

/// Enrolls `address` (its next device) and returns the device address.
async fn enroll<S: MessageStore>(store: &S, address: &str, n: u8) -> DeviceAddress {
    store
        .enroll(new_device(address, n))
        .await
        .expect("enroll")
        .address
}

fn ec_key(tag: u8, id: u32) -> EcPublicKey {
    let mut key = [0x05; 33];
    key[1] = tag;
    key[2..6].copy_from_slice(&id.to_be_bytes());
    key
}

fn kyber_key(id: u32, tag: u8) -> KyberPreKey {
    let mut bytes = vec![tag; 1569];
    bytes[0] = 0x08;
    bytes[1..5].copy_from_slice(&id.to_be_bytes());
    KyberPreKey {
        id,
        public_key: KyberPublicKey::from_slice(&bytes).expect("1569 bytes"),
        signature: [tag; 64],
    }
}

fn signed_pre_key(id: u32) -> SignedPreKey {
    SignedPreKey {
        id,
        public_key: ec_key(0xAA, id),
        signature: [0x11; 64],
    }
}

fn one_time(ids: std::ops::Range<u32>) -> Vec<OneTimePreKey> {
    ids.map(|id| OneTimePreKey {
        id,
        public_key: ec_key(0x01, id),
    })
    .collect()
}

fn full_upload(
    one_time_ids: std::ops::Range<u32>,
    kyber_ids: std::ops::Range<u32>,
) -> PreKeyUpload {
    PreKeyUpload {
        signed_pre_key: Some(signed_pre_key(1)),
        one_time_pre_keys: one_time(one_time_ids),
        kyber_pre_keys: kyber_ids.map(|id| kyber_key(id, 0x33)).collect(),
        kyber_last_resort: Some(kyber_key(9_999, 0x44)),
    }
}

fn message_id(n: u32) -> ClientMessageId {
    let mut id = [0x77; 16];
    id[..4].copy_from_slice(&n.to_be_bytes());
    id
}

fn message(sender: &DeviceAddress, n: u32, recipients: &[&DeviceAddress]) -> NewMessage {
    NewMessage {
        sender: sender.clone(),
        ciphertext_type: CiphertextType::Whisper,
        body: format!("body {n}").into_bytes(),
        client_message_id: message_id(n),
        group_id: None,
        server_timestamp_ms: 5_000 + u64::from(n),
        expires_at_ms: 1_000_000,
        recipients: recipients.iter().map(|r| (*r).clone()).collect(),
    }
}

fn stored(new: &[&DeviceAddress], duplicates: u32) -> EnqueueOutcome {
    EnqueueOutcome::Stored {
        new: new.iter().map(|r| (*r).clone()).collect(),
        duplicates,
    }
}

/// The bodies of the envelopes in a mailbox listing, as text.
fn bodies(queued: &[Queued]) -> Vec<String> {
    queued
        .iter()
        .filter_map(|q| match &q.item {
            QueuedItem::Envelope(envelope) => Some(String::from_utf8_lossy(&envelope.body).into()),
            QueuedItem::Receipt(_) => None,
        })
        .collect()
}

fn ids(queued: &[Queued]) -> Vec<u64> {
    queued.iter().map(|q| q.delivery_id).collect()
}

const NO_LIMIT: u64 = u64::MAX;

// ---------------------------------------------------------------------------------------------
// Accounts and devices

async fn enrollment_and_devices<S: MessageStore>(f: &Fixture<S>) {
    let s = &f.store;
    let alice1 = s.enroll(new_device("alice", 1)).await.expect("enroll");
    assert_eq!(alice1.address, device("alice", 1));
    assert_eq!(alice1.registration_id, 1001);
    assert_eq!((alice1.created_at_ms, alice1.last_seen_ms), (1_000, 1_000));
    let alice2 = s.enroll(new_device("alice", 2)).await.expect("enroll");
    assert_eq!(alice2.address, device("alice", 2));
    let bob1 = s.enroll(new_device("bob", 1)).await.expect("enroll");
    assert_eq!(bob1.address, device("bob", 1), "device ids are per account");

    // The same Noise key again, even for another account, is a conflict.
    let mut again = new_device("carol", 1);
    again.noise_key = alice1.noise_key;
    assert!(matches!(
        s.enroll(again).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(s.devices("carol").await.expect("devices").is_empty());

    assert_eq!(
        s.device_by_noise_key(&alice2.noise_key)
            .await
            .expect("lookup"),
        Some(alice2.clone())
    );
    assert_eq!(s.device_by_noise_key(&[0; 32]).await.expect("lookup"), None);
    assert_eq!(
        s.devices("alice").await.expect("devices"),
        vec![alice1, alice2]
    );
    assert_eq!(s.devices("bob").await.expect("devices"), vec![bob1]);
    assert!(s.devices("nobody").await.expect("devices").is_empty());
}

async fn certificates_and_last_seen<S: MessageStore>(f: &Fixture<S>) {
    let s = &f.store;
    let alice = enroll(s, "alice", 1).await;
    s.set_certificate(&alice, b"renewed".to_vec())
        .await
        .expect("renew");
    s.touch(&alice, 7_000).await.expect("touch");
    let devices = s.devices("alice").await.expect("devices");
    assert_eq!(devices[0].certificate, b"renewed");
    assert_eq!(devices[0].last_seen_ms, 7_000);
    assert_eq!(devices[0].created_at_ms, 1_000);
    let ghost = device("alice", 9);
    assert!(matches!(
        s.set_certificate(&ghost, vec![1]).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.touch(&ghost, 1).await,
        Err(StoreError::NotFound(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// Prekey directory

async fn prekeys_upload_claim_and_count<S: MessageStore>(f: &Fixture<S>) {
    let s = &f.store;
    let bob = enroll(s, "bob", 1).await;
    assert_eq!(
        s.claim_pre_keys(&bob).await.expect("claim"),
        None,
        "nothing uploaded"
    );
    assert_eq!(
        s.claim_pre_keys(&device("nobody", 1)).await.expect("claim"),
        None
    );
    assert!(matches!(
        s.pre_key_count(&device("nobody", 1)).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.upload_pre_keys(&device("nobody", 1), &full_upload(1..2, 1..2))
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        s.pre_key_count(&bob).await.expect("count"),
        PreKeyCount::default()
    );

    // Without a last-resort key there is no bundle, and no one-time key is consumed.
    let partial = PreKeyUpload {
        signed_pre_key: Some(signed_pre_key(1)),
        one_time_pre_keys: one_time(10..12),
        ..PreKeyUpload::default()
    };
    s.upload_pre_keys(&bob, &partial).await.expect("upload");
    assert_eq!(s.claim_pre_keys(&bob).await.expect("claim"), None);
    assert_eq!(s.pre_key_count(&bob).await.expect("count").one_time, 2);

    let upload = PreKeyUpload {
        signed_pre_key: Some(signed_pre_key(2)),
        one_time_pre_keys: one_time(5..6),
        kyber_pre_keys: vec![kyber_key(21, 1), kyber_key(20, 2)],
        kyber_last_resort: Some(kyber_key(9_999, 3)),
    };
    s.upload_pre_keys(&bob, &upload).await.expect("upload");
    assert_eq!(
        s.pre_key_count(&bob).await.expect("count"),
        PreKeyCount {
            one_time: 3,
            kyber_one_time: 2,
            kyber_last_resort_used: false
        }
    );

    // Lowest key ids first; the signed prekey is the latest one uploaded.
    let first = s
        .claim_pre_keys(&bob)
        .await
        .expect("claim")
        .expect("bundle");
    assert_eq!(first.registration_id, 1001);
    assert_eq!(first.identity_key, new_device("bob", 1).identity_key);
    assert_eq!(first.certificate, b"certificate of bob/1");
    assert_eq!(first.signed_pre_key, signed_pre_key(2));
    assert_eq!(first.one_time_pre_key, Some(one_time(5..6)[0].clone()));
    assert_eq!(first.kyber_pre_key, kyber_key(20, 2));
    assert!(!first.kyber_is_last_resort);

    let second = s
        .claim_pre_keys(&bob)
        .await
        .expect("claim")
        .expect("bundle");
    assert_eq!(second.one_time_pre_key.map(|k| k.id), Some(10));
    assert_eq!(second.kyber_pre_key, kyber_key(21, 1));
    let third = s
        .claim_pre_keys(&bob)
        .await
        .expect("claim")
        .expect("bundle");
    assert_eq!(third.one_time_pre_key.map(|k| k.id), Some(11));
    assert_eq!(third.kyber_pre_key, kyber_key(9_999, 3));
    assert!(third.kyber_is_last_resort);
    let fourth = s
        .claim_pre_keys(&bob)
        .await
        .expect("claim")
        .expect("bundle");
    assert_eq!(fourth.one_time_pre_key, None);
    assert!(fourth.kyber_is_last_resort);
    assert_eq!(
        s.pre_key_count(&bob).await.expect("count"),
        PreKeyCount {
            one_time: 0,
            kyber_one_time: 0,
            kyber_last_resort_used: true
        }
    );

    // A new last-resort key clears the flag; a claimed key id may be uploaded again.
    let refill = PreKeyUpload {
        one_time_pre_keys: one_time(5..6),
        kyber_last_resort: Some(kyber_key(10_000, 4)),
        ..PreKeyUpload::default()
    };
    s.upload_pre_keys(&bob, &refill).await.expect("upload");
    assert_eq!(
        s.pre_key_count(&bob).await.expect("count"),
        PreKeyCount {
            one_time: 1,
            kyber_one_time: 0,
            kyber_last_resort_used: false
        }
    );
    let fifth = s
        .claim_pre_keys(&bob)
        .await
        .expect("claim")
        .expect("bundle");
    assert_eq!(fifth.kyber_pre_key, kyber_key(10_000, 4));
    assert_eq!(fifth.signed_pre_key, signed_pre_key(2));
}

async fn prekey_upload_conflicts_store_nothing<S: MessageStore>(f: &Fixture<S>) {
    let s = &f.store;
    let bob = enroll(s, "bob", 1).await;
    s.upload_pre_keys(&bob, &full_upload(1..4, 1..3))
        .await
        .expect("upload");
    let before = s.pre_key_count(&bob).await.expect("count");

    // One present id among new ones: nothing of the upload is stored, not even the new
    // signed prekey.
    let clash = PreKeyUpload {
        signed_pre_key: Some(signed_pre_key(7)),
        one_time_pre_keys: one_time(3..6),
        ..PreKeyUpload::default()
    };
    assert!(matches!(
        s.upload_pre_keys(&bob, &clash).await,
        Err(StoreError::Conflict(_))
    ));
    let kyber_clash = PreKeyUpload {
        kyber_pre_keys: vec![kyber_key(5, 1), kyber_key(2, 1)],
        ..PreKeyUpload::default()
    };
    assert!(matches!(
        s.upload_pre_keys(&bob, &kyber_clash).await,
        Err(StoreError::Conflict(_))
    ));
    let twice = PreKeyUpload {
        one_time_pre_keys: [one_time(8..9), one_time(8..9)].concat(),
        ..PreKeyUpload::default()
    };
    assert!(matches!(
        s.upload_pre_keys(&bob, &twice).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.pre_key_count(&bob).await.expect("count"), before);
    let bundle = s
        .claim_pre_keys(&bob)
        .await
        .expect("claim")
        .expect("bundle");
    assert_eq!(bundle.signed_pre_key, signed_pre_key(1));

    // A full upload (the API's per-upload limit) is accepted at once.
    let many = PreKeyUpload {
        one_time_pre_keys: one_time(100..100 + MAX_ONE_TIME_PREKEYS_PER_UPLOAD as u32),
        ..PreKeyUpload::default()
    };
    s.upload_pre_keys(&bob, &many).await.expect("upload");
    assert_eq!(
        s.pre_key_count(&bob).await.expect("count").one_time,
        before.one_time - 1 + MAX_ONE_TIME_PREKEYS_PER_UPLOAD as u32
    );
}

/// Claims a bundle of `device` `claims` times concurrently; returns the one-time EC key ids and
/// one-time Kyber key ids handed out, and how many got the last-resort key.
async fn claim_concurrently<S: MessageStore>(
    store: &S,
    device: &DeviceAddress,
    claims: usize,
) -> (Vec<u32>, Vec<u32>, usize) {
    let results = futures_util::future::join_all(
        (0..claims).map(|_| async move { store.claim_pre_keys(device).await }),
    )
    .await;
    let mut one_time = Vec::new();
    let mut kyber = Vec::new();
    let mut last_resort = 0;
    for result in results {
        let bundle = result.expect("claim").expect("bundle");
        one_time.extend(bundle.one_time_pre_key.map(|k| k.id));
        if bundle.kyber_is_last_resort {
            assert_eq!(bundle.kyber_pre_key, kyber_key(9_999, 0x44));
            last_resort += 1;
        } else {
            kyber.push(bundle.kyber_pre_key.id);
        }
    }
    (one_time, kyber, last_resort)
}

fn assert_distinct(ids: &[u32]) {
    let set: HashSet<&u32> = ids.iter().collect();
    assert_eq!(set.len(), ids.len(), "a key was handed out twice: {ids:?}");
}

async fn concurrent_claims_of_100_one_time_prekeys<S: MessageStore>(f: &Fixture<S>) {
    let s = &f.store;
    let bob = enroll(s, "bob", 1).await;
    s.upload_pre_keys(&bob, &full_upload(1..101, 0..0))
        .await
        .expect("upload");
    let (one_time, kyber, last_resort) = claim_concurrently(s, &bob, 64).await;
    assert_eq!(one_time.len(), 64, "100 keys are enough for 64 claims");
    assert_distinct(&one_time);
    assert!(kyber.is_empty());
    assert_eq!(last_resort, 64);
    assert_eq!(s.pre_key_count(&bob).await.expect("count").one_time, 36);
    // The remaining keys are exactly the ones not handed out.
    let (rest, _, _) = claim_concurrently(s, &bob, 40).await;
    assert_eq!(rest.len(), 36);
    let all: BTreeSet<u32> = one_time.iter().chain(&rest).copied().collect();
    assert_eq!(all, (1..101).collect());
}

async fn concurrent_claims_fall_back_to_last_resort<S: MessageStore>(f: &Fixture<S>) {
    let s = &f.store;
    let bob = enroll(s, "bob", 1).await;
    s.upload_pre_keys(&bob, &full_upload(1..41, 1..31))
        .await
        .expect("upload");
    let (one_time, kyber, last_resort) = claim_concurrently(s, &bob, 64).await;
    assert_eq!(
        one_time.len(),
        40,
        "every one-time key is handed out, then none"
    );
    assert_distinct(&one_time);
    assert_eq!(kyber.len(), 30);
    assert_distinct(&kyber);
    assert_eq!(last_resort, 34, "the rest get the last-resort Kyber key");
    assert_eq!(
        s.pre_key_count(&bob).await.expect("count"),
        PreKeyCount {
            one_time: 0,
            kyber_one_time: 0,
            kyber_last_resort_used: true
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Mailboxes

async fn mailbox_order_cursor_and_limit<S: MessageStore>(f: &Fixture<S>) {
    let s = &f.store;
    let alice = enroll(s, "alice", 1).await;
    let bob = enroll(s, "bob", 1).await;
    assert!(s.pending(&bob, 0, 10).await.expect("pending").is_empty());
    let batch: Vec<NewMessage> = (0..5).map(|n| message(&alice, n, &[&bob])).collect();
    let outcomes = s.enqueue(&batch, NO_LIMIT).await.expect("enqueue");
    assert_eq!(outcomes, vec![stored(&[&bob], 0); 5]);
    s.enqueue(&[message(&alice, 5, &[&bob])], NO_LIMIT)
        .await
        .expect("enqueue");
    assert_eq!(s.queue_depth(&bob).await.expect("depth"), 6);
    assert_eq!(s.queue_depth(&alice).await.expect("depth"), 0);
    assert_eq!(s.queue_depth(&device("nobody", 1)).await.expect("depth"), 0);

    let all = s.pending(&bob, 0, 100).await.expect("pending");
    assert_eq!(
        bodies(&all),
        (0..6).map(|n| format!("body {n}")).collect::<Vec<_>>()
    );
    assert!(ids(&all).windows(2).all(|w| w[0] < w[1]), "increasing ids");
    let QueuedItem::Envelope(first) = &all[0].item else {
        panic!("an envelope")
    };
    assert_eq!(
        *first,
        Envelope {
            sender: "alice".to_owned(),
            sender_device_id: 1,
            ciphertext_type: CiphertextType::Whisper,
            body: b"body 0".to_vec(),
            client_message_id: message_id(0),
            server_timestamp_ms: 5_000,
            group_id: None,
        }
    );

    // The cursor and the limit.
    let page = s
        .pending(&bob, all[1].delivery_id, 3)
        .await
        .expect("pending");
    assert_eq!(ids(&page), ids(&all[2..5]));
    let last = all[5].delivery_id;
    assert!(s.pending(&bob, last, 10).await.expect("pending").is_empty());
    assert!(s.pending(&bob, 0, 0).await.expect("pending").is_empty());
    assert!(
        s.pending(&bob, u64::MAX, 10)
            .await
            .expect("pending")
            .is_empty()
    );
    assert!(
        s.pending(&device("nobody", 1), 0, 10)
            .await
            .expect("pending")
            .is_empty()
    );
}

async fn acknowledge_deletes_only_that_devices_entries<S: MessageStore>(f: &Fixture<S>) {
    let s = &f.store;
    let alice = enroll(s, "alice", 1).await;
    let bob = enroll(s, "bob", 1).await;
    let carol = enroll(s, "carol", 1).await;
    let batch: Vec<NewMessage> = (0..4).map(|n| message(&alice, n, &[&bob])).collect();
    s.enqueue(&batch, NO_LIMIT).await.expect("enqueue");
    s.enqueue(&[message(&alice, 9, &[&carol])], NO_LIMIT)
        .await
        .expect("enqueue");
    let bobs = ids(&s.pending(&bob, 0, 10).await.expect("pending"));
    let carols = ids(&s.pending(&carol, 0, 10).await.expect("pending"));

    // Delivery ids are per device: Carol acknowledging ids of Bob's that she does not have
    // deletes nothing of his.
    let only_bobs: Vec<u64> = bobs
        .iter()
        .filter(|id| !carols.contains(id))
        .copied()
        .collect();
    assert!(!only_bobs.is_empty());
    assert!(
        s.acknowledge(&carol, &only_bobs)
            .await
            .expect("ack")
            .is_empty()
    );
    assert_eq!(s.queue_depth(&bob).await.expect("depth"), 4);
    assert_eq!(s.queue_depth(&carol).await.expect("depth"), 1);

    // Out of order, repeated, and unknown ids: the known ones go, in delivery order.
    let acked = s
        .acknowledge(&bob, &[bobs[2], bobs[0], bobs[2], 999_999, u64::MAX])
        .await
        .expect("ack");
    assert_eq!(
        acked,
        vec![
            Acknowledged {
                sender: alice.clone(),
                client_message_id: message_id(0)
            },
            Acknowledged {
                sender: alice.clone(),
                client_message_id: message_id(2)
            },
        ]
    );
    assert_eq!(
        bodies(&s.pending(&bob, 0, 10).await.expect("pending")),
        ["body 1", "body 3"]
    );
    // Acknowledging again (after a reconnect) is harmless.
    assert!(
        s.acknowledge(&bob, &[bobs[0]])
            .await
            .expect("ack")
            .is_empty()
    );
    assert!(s.acknowledge(&bob, &[]).await.expect("ack").is_empty());
    assert!(
        s.acknowledge(&device("nobody", 1), &[1])
            .await
            .expect("ack")
            .is_empty()
    );
    assert_eq!(s.queue_depth(&carol).await.expect("depth"), 1);
    s.acknowledge(&bob, &bobs).await.expect("ack");
    s.acknowledge(&carol, &carols).await.expect("ack");
    assert_eq!(f.count(Held::Bodies).await, 0);
    assert_eq!(f.count(Held::Messages).await, 0);
}

/// Forty devices in one batch (more than a statement of the SQLite store takes at once): every
/// device's delivery ids and depth are kept, through sends, receipts and acknowledgements.
async fn batches_across_many_devices_keep_every_counter<S: MessageStore>(f: &Fixture<S>) {
    let s = &f.store;
    let alice = enroll(s, "alice", 1).await;
    let mut devices = Vec::new();
    for n in 0..40u8 {
        devices.push(enroll(s, &format!("member-{n:02}"), n + 1).await);
    }
    // Two messages for each device, in one batch, then one more.
    let sends: Vec<NewMessage> = (0..80u32)
        .map(|n| message(&alice, n, &[&devices[n as usize % 40]]))
        .collect();
    let outcomes = s.enqueue(&sends, NO_LIMIT).await.expect("enqueue");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, EnqueueOutcome::Stored { new, .. } if new.len() == 1))
    );
    for device in &devices {
        assert_eq!(
            ids(&s.pending(device, 0, 10).await.expect("pending")),
            [1, 2]
        );
        assert_eq!(s.queue_depth(device).await.expect("depth"), 2);
    }
    // Every device acknowledges its first entry, in one batch: forty receipts for Alice.
    let batch = WriteBatch {
        acks: devices
            .iter()
            .map(|device| AckRequest {
                device: device.clone(),
                delivery_ids: vec![1],
                receipt_expires_at_ms: 2_000_000,
            })
            .collect(),
        now_ms: 1,
        sends: vec![message(&alice, 100, &[&devices[39]])],
        max_queue: NO_LIMIT,
        ..WriteBatch::default()
    };
    let outcome = s.commit_batch(batch).await.expect("commit");
    assert!(outcome.acknowledged);
    for (n, device) in devices.iter().enumerate() {
        let expected: &[u64] = if n == 39 { &[2, 3] } else { &[2] };
        assert_eq!(
            ids(&s.pending(device, 0, 10).await.expect("pending")),
            expected
        );
        assert_eq!(
            s.queue_depth(device).await.expect("depth"),
            expected.len() as u64
        );
    }
    let receipts = s.pending(&alice, 0, 100).await.expect("pending");
    assert_eq!(receipts.len(), 40);
    assert_eq!(s.queue_depth(&alice).await.expect("depth"), 40);
    // Everything acknowledged across all devices at once.
    let acks: Vec<(DeviceAddress, Vec<u64>)> = devices
        .iter()
        .map(|device| (device.clone(), vec![2, 3]))
        .chain([(alice.clone(), ids(&receipts))])
        .collect();
    let answers = s.acknowledge_batch(&acks).await.expect("acknowledge");
    assert_eq!(answers.iter().map(Vec::len).sum::<usize>(), 41);
    for device in devices.iter().chain([&alice]) {
        assert_eq!(s.queue_depth(device).await.expect("depth"), 0);
        assert!(s.pending(device, 0, 10).await.expect("pending").is_empty());
    }
    // The sequences go on after the mailboxes emptied.
    s.enqueue(&[message(&alice, 200, &[&devices[0]])], NO_LIMIT)
        .await
        .expect("enqueue");
    assert_eq!(
        ids(&s.pending(&devices[0], 0, 10).await.expect("pending")),
        [3]
    );
}

async fn acknowledge_batch_answers_per_device<S: MessageStore>(f: &Fixture<S>) {
    let s = &f.store;
    let alice = enroll(s, "alice", 1).await;
    let bob = enroll(s, "bob", 1).await;
    let carol = enroll(s, "carol", 1).await;
    // One body shared by Bob and Carol, one message for Bob alone, and a receipt for Bob.
    s.enqueue(
        &[
            message(&alice, 1, &[&bob, &carol]),
            message(&alice, 2, &[&bob]),
        ],
        NO_LIMIT,
    )
    .await
    .expect("enqueue");
    s.enqueue_receipts(&[receipt_for(&bob, "carol", 7)])
        .await
        .expect("receipt");
    let bobs = ids(&s.pending(&bob, 0, 10).await.expect("pending"));
    let carols = ids(&s.pending(&carol, 0, 10).await.expect("pending"));
    assert_eq!((bobs.len(), carols.len()), (3, 1));

    let answers = s
        .acknowledge_batch(&[
            (bob.clone(), vec![bobs[2], bobs[1], bobs[0]]),
            (device("nobody", 1), vec![1]),
            (carol.clone(), carols.clone()),
            (bob.clone(), Vec::new()),
            (carol.clone(), carols.clone()),
        ])
        .await
        .expect("acknowledge batch");
    let from_alice = |n| Acknowledged {
        sender: alice.clone(),
        client_message_id: message_id(n),
    };
    assert_eq!(
        answers,
        vec![
            // The receipt is deleted too but is no envelope.
            vec![from_alice(1), from_alice(2)],
            vec![],
            vec![from_alice(1)],
            vec![],
            // Already acknowledged by the item before, in the same batch.
            vec![],
        ]
    );
    assert_eq!(s.queue_depth(&bob).await.expect("depth"), 0);
    assert_eq!(s.queue_depth(&carol).await.expect("depth"), 0);
    // The shared body went with the last entry referencing it, within the batch.
    assert_eq!(f.count(Held::Bodies).await, 0);
    assert_eq!(f.count(Held::Receipts).await, 0);
    assert!(
        s.acknowledge_batch(&[])
            .await
            .expect("empty batch")
            .is_empty()
    );
}

async fn delivery_ids_are_never_reused<S: MessageStore>(f: &Fixture<S>) {
    let s = &f.store;
    let alice = enroll(s, "alice", 1).await;
    let bob = enroll(s, "bob", 1).await;
    s.enqueue(&[message(&alice, 1, &[&bob])], NO_LIMIT)
        .await
        .expect("enqueue");
    let first = ids(&s.pending(&bob, 0, 10).await.expect("pending"));
    s.acknowledge(&bob, &first).await.expect("ack");
    s.enqueue(&[message(&alice, 2, &[&bob])], NO_LIMIT)
        .await
        .expect("enqueue");
    let second = ids(&s.pending(&bob, 0, 10).await.expect("pending"));
    assert_eq!(second.len(), 1);
    assert!(
        second[0] > first[0],
        "an emptied mailbox does not restart its ids"
    );
}

async fn queue_limit_at_n_and_n_plus_1<S: MessageStore>(f: &Fixture<S>) {
    const LIMIT: u64 = 3;
    let s = &f.store;
    let alice = enroll(s, "alice", 1).await;
    let bob = enroll(s, "bob", 1).await;
    // N messages fit, in one batch; the N+1th is refused, in the same batch or later.
    let batch: Vec<NewMessage> = (0..LIMIT as u32 + 1)
        .map(|n| message(&alice, n, &[&bob]))
        .collect();
    let outcomes = s.enqueue(&batch, LIMIT).await.expect("enqueue");
    assert_eq!(
        &outcomes[..LIMIT as usize],
        &vec![stored(&[&bob], 0); LIMIT as usize][..]
    );
    assert_eq!(
        outcomes[LIMIT as usize],
        EnqueueOutcome::MailboxFull(bob.clone())
    );
    assert_eq!(s.queue_depth(&bob).await.expect("depth"), LIMIT);
    assert_eq!(
        s.enqueue(&[message(&alice, 10, &[&bob])], LIMIT)
            .await
            .expect("enqueue"),
        vec![EnqueueOutcome::MailboxFull(bob.clone())]
    );
    // A duplicate of a queued message is still a duplicate when the queue is full.
    assert_eq!(
        s.enqueue(&[message(&alice, 0, &[&bob])], LIMIT)
            .await
            .expect("enqueue"),
        vec![stored(&[], 1)]
    );
    // Receipts take room in the queue too.
    let first = ids(&s.pending(&bob, 0, 1).await.expect("pending"));
    s.acknowledge(&bob, &first).await.expect("ack");
    s.enqueue_receipts(&[receipt_for(&bob, "carol", 1)])
        .await
        .expect("receipts");
    assert_eq!(
        s.enqueue(&[message(&alice, 11, &[&bob])], LIMIT)
            .await
            .expect("enqueue"),
        vec![EnqueueOutcome::MailboxFull(bob.clone())]
    );
    assert_eq!(s.queue_depth(&bob).await.expect("depth"), LIMIT);
}

async fn a_message_is_stored_for_all_recipients_or_none<S: MessageStore>(f: &Fixture<S>) {
    let s = &f.store;
    let alice = enroll(s, "alice", 1).await;
    let bob1 = enroll(s, "bob", 1).await;
    let bob2 = enroll(s, "bob", 2).await;
    let ghost = device("bob", 3);
    s.enqueue(&[message(&alice, 1, &[&bob2])], NO_LIMIT)
        .await
        .expect("enqueue");
    let outcomes = s
        .enqueue(
            &[
                message(&alice, 2, &[&bob1, &bob2]),
                message(&alice, 3, &[&bob1, &ghost]),
                message(&alice, 4, &[&bob1]),
            ],
            1,
        )
        .await
        .expect("enqueue");
    assert_eq!(
        outcomes,
        vec![
            EnqueueOutcome::MailboxFull(bob2.clone()),
            EnqueueOutcome::UnknownRecipient(ghost),
            stored(&[&bob1], 0),
        ]
    );
    assert_eq!(
        bodies(&s.pending(&bob1, 0, 10).await.expect("pending")),
        ["body 4"]
    );
    assert_eq!(
        bodies(&s.pending(&bob2, 0, 10).await.expect("pending")),
        ["body 1"]
    );
    assert_eq!(f.count(Held::Bodies).await, 2);
    assert!(s.enqueue(&[], 1).await.expect("enqueue").is_empty());
}

async fn duplicates_are_counted_not_stored<S: MessageStore>(f: &Fixture<S>) {
    let s = &f.store;
    let alice1 = enroll(s, "alice", 1).await;
    let alice2 = enroll(s, "alice", 2).await;
    let bob1 = enroll(s, "bob", 1).await;
    let bob2 = enroll(s, "bob", 2).await;
    assert_eq!(
        s.enqueue(&[message(&alice1, 1, &[&bob1])], NO_LIMIT)
            .await
            .expect("enqueue"),
        vec![stored(&[&bob1], 0)]
    );
    // A retry for both of Bob's devices: one is new, one a duplicate. The same id from
    // another sender device is another message.
    let outcomes = s
        .enqueue(
            &[
                message(&alice1, 1, &[&bob1, &bob2]),
                message(&alice2, 1, &[&bob1]),
                message(&alice1, 1, &[&bob1, &bob2]),
            ],
            NO_LIMIT,
        )
        .await
        .expect("enqueue");
    assert_eq!(
        outcomes,
        vec![stored(&[&bob2], 1), stored(&[&bob1], 0), stored(&[], 2)]
    );
    assert_eq!(s.queue_depth(&bob1).await.expect("depth"), 2);
    assert_eq!(s.queue_depth(&bob2).await.expect("depth"), 1);
    assert_eq!(f.count(Held::Bodies).await, 3);
}

/// A retry is a duplicate while the first copy waits in the mailbox, through commit batches and
/// acknowledgements of other entries; once the copy is acknowledged or expired, the same id is
/// a new message.
async fn duplicates_are_detected_while_the_first_copy_is_queued<S: MessageStore>(f: &Fixture<S>) {
    let s = &f.store;
    let alice = enroll(s, "alice", 1).await;
    let bob = enroll(s, "bob", 1).await;
    let first = message(&alice, 1, &[&bob]);
    let other = message(&alice, 2, &[&bob]);
    assert_eq!(
        s.enqueue(&[first.clone(), other.clone()], NO_LIMIT)
            .await
            .expect("enqueue"),
        [stored(&[&bob], 0), stored(&[&bob], 0)]
    );
    // The other entry goes; the first stays a duplicate, also inside a writer batch.
    s.acknowledge(&bob, &[2]).await.expect("ack");
    let batch = WriteBatch {
        acks: Vec::new(),
        now_ms: 1,
        sends: vec![first.clone(), other.clone()],
        max_queue: NO_LIMIT,
        ..WriteBatch::default()
    };
    let outcome = s.commit_batch(batch).await.expect("commit");
    assert_eq!(outcome.outcomes, [stored(&[], 1), stored(&[&bob], 0)]);
    assert_eq!(ids(&s.pending(&bob, 0, 10).await.expect("pending")), [1, 3]);

    // Acknowledged: the same id is new again (a delivered message the client sends anew).
    s.acknowledge(&bob, &[1]).await.expect("ack");
    assert_eq!(
        s.enqueue(std::slice::from_ref(&first), NO_LIMIT)
            .await
            .expect("enqueue"),
        [stored(&[&bob], 0)]
    );
    assert_eq!(
        s.enqueue(std::slice::from_ref(&first), NO_LIMIT)
            .await
            .expect("enqueue"),
        [stored(&[], 1)]
    );
    // Expired: new again.
    assert_eq!(
        s.expire_messages(first.expires_at_ms)
            .await
            .expect("expire"),
        2
    );
    assert_eq!(
        s.enqueue(&[first], NO_LIMIT).await.expect("enqueue"),
        [stored(&[&bob], 0)]
    );
    assert_eq!(ids(&s.pending(&bob, 0, 10).await.expect("pending")), [5]);
}

async fn group_fan_out_stores_one_body<S: MessageStore>(f: &Fixture<S>) {
    let s = &f.store;
    let alice = enroll(s, "alice", 1).await;
    let members = [
        enroll(s, "bob", 1).await,
        enroll(s, "bob", 2).await,
        enroll(s, "carol", 1).await,
    ];
    let group = GroupId([9; 16]);
    let mut fan_out = message(&alice, 1, &members.iter().collect::<Vec<_>>());
    fan_out.ciphertext_type = CiphertextType::SenderKey;
    fan_out.group_id = Some(group);
    fan_out.body = vec![0xAB; 60_000];
    let outcome = s.enqueue(&[fan_out], NO_LIMIT).await.expect("enqueue");
    assert_eq!(
        outcome,
        vec![stored(&members.iter().collect::<Vec<_>>(), 0)]
    );
    assert_eq!(f.count(Held::Bodies).await, 1);
    assert_eq!(f.count(Held::Messages).await, 3);

    for (i, member) in members.iter().enumerate() {
        let pending = s.pending(member, 0, 10).await.expect("pending");
        let QueuedItem::Envelope(envelope) = &pending[0].item else {
            panic!("an envelope")
        };
        assert_eq!(envelope.group_id, Some(group));
        assert_eq!(envelope.ciphertext_type, CiphertextType::SenderKey);
        assert_eq!(envelope.body.len(), 60_000);
        s.acknowledge(member, &ids(&pending)).await.expect("ack");
        let remaining = if i + 1 < members.len() { 1 } else { 0 };
        assert_eq!(
            f.count(Held::Bodies).await,
            remaining,
            "the body stays while a member has not acknowledged it"
        );
    }
}

fn receipt_for(to: &DeviceAddress, recipient: &str, n: u32) -> NewReceipt {
    NewReceipt {
        to: to.clone(),
        receipt: DeliveryReceipt {
            recipient: recipient.to_owned(),
            recipient_device_id: 1,
            client_message_ids: vec![message_id(n), message_id(n + 1)],
            server_timestamp_ms: 8_000,
        },
        expires_at_ms: 500,
    }
}

async fn receipts_share_the_mailbox<S: MessageStore>(f: &Fixture<S>) {
    let s = &f.store;
    let alice = enroll(s, "alice", 1).await;
    let bob = enroll(s, "bob", 1).await;
    s.enqueue(&[message(&bob, 1, &[&alice])], NO_LIMIT)
        .await
        .expect("enqueue");
    s.enqueue_receipts(&[
        receipt_for(&alice, "bob", 1),
        receipt_for(&device("ghost", 1), "bob", 1),
    ])
    .await
    .expect("receipts");
    s.enqueue(&[message(&bob, 2, &[&alice])], NO_LIMIT)
        .await
        .expect("enqueue");
    s.enqueue_receipts(&[]).await.expect("no receipts");

    let pending = s.pending(&alice, 0, 10).await.expect("pending");
    assert_eq!(pending.len(), 3);
    assert!(ids(&pending).windows(2).all(|w| w[0] < w[1]));
    assert!(matches!(pending[0].item, QueuedItem::Envelope(_)));
    assert_eq!(
        pending[1].item,
        QueuedItem::Receipt(receipt_for(&alice, "bob", 1).receipt)
    );
    assert!(matches!(pending[2].item, QueuedItem::Envelope(_)));
    // The limit counts receipts and messages together.
    assert_eq!(
        ids(&s.pending(&alice, 0, 2).await.expect("pending")),
        ids(&pending[..2])
    );
    assert_eq!(s.queue_depth(&alice).await.expect("depth"), 3);

    // Acknowledging a receipt deletes it and owes nobody a receipt.
    let acked = s
        .acknowledge(&alice, &[pending[1].delivery_id])
        .await
        .expect("ack");
    assert!(acked.is_empty());
    assert_eq!(s.queue_depth(&alice).await.expect("depth"), 2);
}

/// The entries of `device` among `returned`, in order.
fn entries_of(returned: &[StoredEntry], device: &DeviceAddress) -> Vec<Queued> {
    returned
        .iter()
        .filter(|entry| entry.recipient == *device)
        .map(|entry| entry.entry.clone())
        .collect()
}

/// `enqueue_returning` / `enqueue_receipts_returning` store what `enqueue` /
/// `enqueue_receipts` store; a backend that returns the entries returns exactly what the
/// mailboxes then hold, with consecutive delivery ids per device (the server hands them to
/// connected devices instead of reading the mailbox, so they must be identical).
async fn returned_entries_are_what_the_mailbox_holds<S: MessageStore>(f: &Fixture<S>) {
    let s = &f.store;
    let alice = enroll(s, "alice", 1).await;
    let bob = enroll(s, "bob", 1).await;
    let carol = enroll(s, "carol", 1).await;
    let ghost = device("ghost", 1);
    // Carol's mailbox already holds something: her new ids follow on from it.
    s.enqueue(&[message(&bob, 1, &[&carol])], NO_LIMIT)
        .await
        .expect("enqueue");
    let before = s.pending(&carol, 0, 10).await.expect("pending");

    let mut group = message(&bob, 3, &[&alice, &carol]);
    group.group_id = Some(GroupId([9; 16]));
    group.ciphertext_type = CiphertextType::SenderKey;
    let (outcomes, returned) = s
        .enqueue_returning(
            vec![
                message(&bob, 2, &[&alice]),
                group,
                // Already queued for carol: counted, not stored again.
                message(&bob, 1, &[&carol]),
                message(&bob, 4, &[&ghost]),
            ],
            NO_LIMIT,
        )
        .await
        .expect("enqueue");
    assert_eq!(
        outcomes,
        [
            stored(&[&alice], 0),
            stored(&[&alice, &carol], 0),
            stored(&[], 1),
            EnqueueOutcome::UnknownRecipient(ghost.clone()),
        ]
    );
    let alice_pending = s.pending(&alice, 0, 10).await.expect("pending");
    assert_eq!(bodies(&alice_pending), ["body 2", "body 3"]);
    let carol_pending = s.pending(&carol, 0, 10).await.expect("pending");
    if let Some(returned) = &returned {
        assert_eq!(returned.len(), 3);
        assert_eq!(entries_of(returned, &alice), alice_pending);
        assert_eq!(entries_of(returned, &carol), carol_pending[before.len()..]);
        assert_eq!(
            ids(&carol_pending[before.len() - 1..]),
            [before[0].delivery_id, before[0].delivery_id + 1],
            "consecutive ids per device"
        );
    }

    let receipts = vec![
        receipt_for(&alice, "bob", 1),
        receipt_for(&ghost, "bob", 1),
        receipt_for(&alice, "carol", 2),
    ];
    let returned = s
        .enqueue_receipts_returning(receipts)
        .await
        .expect("receipts");
    let last = alice_pending.last().map_or(0, |entry| entry.delivery_id);
    let receipts_pending = s.pending(&alice, last, 10).await.expect("pending");
    assert_eq!(receipts_pending.len(), 2);
    if let Some(returned) = &returned {
        assert_eq!(
            returned.len(),
            2,
            "the receipt for a device that does not exist is dropped"
        );
        assert_eq!(entries_of(returned, &alice), receipts_pending);
        assert_eq!(ids(&receipts_pending), [last + 1, last + 2]);
    }
    assert!(
        s.enqueue_receipts_returning(Vec::new())
            .await
            .expect("no receipts")
            .is_none_or(|returned| returned.is_empty())
    );
}

async fn expiry_of_messages_and_receipts<S: MessageStore>(f: &Fixture<S>) {
    let s = &f.store;
    let alice = enroll(s, "alice", 1).await;
    let bob = enroll(s, "bob", 1).await;
    let carol = enroll(s, "carol", 1).await;
    let mut early = message(&alice, 1, &[&bob, &carol]);
    early.expires_at_ms = 100;
    let mut late = message(&alice, 2, &[&bob]);
    late.expires_at_ms = 200;
    s.enqueue(&[early, late], NO_LIMIT).await.expect("enqueue");
    s.enqueue_receipts(&[receipt_for(&bob, "carol", 1)]) // expires at 500
        .await
        .expect("receipts");

    assert_eq!(s.expire_messages(99).await.expect("expire"), 0);
    assert_eq!(
        s.expire_messages(100).await.expect("expire"),
        2,
        "expired at its time"
    );
    assert_eq!(f.count(Held::Bodies).await, 1);
    assert_eq!(
        bodies(&s.pending(&bob, 0, 10).await.expect("pending")),
        ["body 2"]
    );
    assert!(s.pending(&carol, 0, 10).await.expect("pending").is_empty());
    assert_eq!(s.expire_messages(1_000).await.expect("expire"), 2);
    assert_eq!(s.queue_depth(&bob).await.expect("depth"), 0);
    assert_eq!(f.count(Held::Bodies).await, 0);
    assert_eq!(s.expire_messages(u64::MAX).await.expect("expire"), 0);
}

/// Expiry of more entries than one expiry step takes (the SQLite backend deletes in chunks).
async fn expiry_of_many_entries<S: MessageStore>(f: &Fixture<S>) {
    const MANY: u32 = 4_500;
    let s = &f.store;
    let alice = enroll(s, "alice", 1).await;
    let bob = enroll(s, "bob", 1).await;
    let mut batch: Vec<NewMessage> = (0..MANY)
        .map(|n| {
            let mut m = message(&alice, n, &[&bob]);
            m.expires_at_ms = 10 + u64::from(n % 3);
            m
        })
        .collect();
    batch.push(message(&alice, MANY, &[&bob]));
    s.enqueue(&batch, NO_LIMIT).await.expect("enqueue");
    assert_eq!(
        s.expire_messages(12).await.expect("expire"),
        u64::from(MANY)
    );
    assert_eq!(s.queue_depth(&bob).await.expect("depth"), 1);
    assert_eq!(
        bodies(&s.pending(&bob, 0, 10).await.expect("pending")),
        [format!("body {MANY}")]
    );
    assert_eq!(f.count(Held::Bodies).await, 1);
}

/// A writer batch: acknowledgements first, then the receipts they owe, then the sends, with
/// what was stored returned in that order (receipts before messages, ids consecutive).
async fn commit_batch_acknowledges_then_stores_receipts_and_sends<S: MessageStore>(f: &Fixture<S>) {
    let s = &f.store;
    let alice = enroll(s, "alice", 1).await;
    let bob = enroll(s, "bob", 1).await;
    let carol = enroll(s, "carol", 1).await;
    let ghost = device("ghost", 1);
    s.enqueue(
        &[
            message(&alice, 1, &[&bob]),
            message(&alice, 2, &[&bob, &carol]),
            // Bob's note to himself owes no receipt.
            message(&bob, 3, &[&bob]),
        ],
        NO_LIMIT,
    )
    .await
    .expect("enqueue");
    let bobs = ids(&s.pending(&bob, 0, 10).await.expect("pending"));
    let carols = ids(&s.pending(&carol, 0, 10).await.expect("pending"));

    let outcome = s
        .commit_batch(WriteBatch {
            acks: vec![
                AckRequest {
                    device: bob.clone(),
                    delivery_ids: bobs.clone(),
                    receipt_expires_at_ms: 90_000,
                },
                AckRequest {
                    device: ghost.clone(),
                    delivery_ids: vec![1],
                    receipt_expires_at_ms: 90_000,
                },
            ],
            now_ms: 7_000,
            sends: vec![message(&carol, 4, &[&alice]), message(&carol, 5, &[&ghost])],
            max_queue: NO_LIMIT,
            ..WriteBatch::default()
        })
        .await
        .expect("commit batch");
    assert!(outcome.acknowledged);
    assert_eq!(outcome.receipts_to, std::slice::from_ref(&alice));
    assert_eq!(
        outcome.outcomes,
        [
            stored(&[&alice], 0),
            EnqueueOutcome::UnknownRecipient(ghost.clone()),
        ]
    );
    assert_eq!(s.queue_depth(&bob).await.expect("depth"), 0);
    // Carol's copy of the shared message is hers to acknowledge.
    assert_eq!(
        ids(&s.pending(&carol, 0, 10).await.expect("pending")),
        carols
    );
    let alices = s.pending(&alice, 0, 10).await.expect("pending");
    assert_eq!(alices.len(), 2);
    assert_eq!(
        alices[0].item,
        QueuedItem::Receipt(DeliveryReceipt {
            recipient: "bob".to_owned(),
            recipient_device_id: 1,
            client_message_ids: vec![message_id(1), message_id(2)],
            server_timestamp_ms: 7_000,
        })
    );
    assert_eq!(bodies(&alices), ["body 4"]);
    assert_eq!(alices[1].delivery_id, alices[0].delivery_id + 1);
    if let Some(returned) = &outcome.stored {
        assert_eq!(returned.len(), 2);
        assert_eq!(entries_of(returned, &alice), alices);
    }
    assert_eq!(f.count(Held::Receipts).await, 1);

    // The receipt expires at the time asked for.
    assert_eq!(s.expire_messages(89_999).await.expect("expire"), 0);
    s.acknowledge(&alice, &[alices[1].delivery_id])
        .await
        .expect("ack");
    assert_eq!(s.expire_messages(90_000).await.expect("expire"), 1);
    assert_eq!(s.queue_depth(&alice).await.expect("depth"), 0);

    // An empty batch does nothing.
    let empty = s
        .commit_batch(WriteBatch::default())
        .await
        .expect("empty batch");
    assert!(empty.acknowledged && empty.outcomes.is_empty() && empty.receipts_to.is_empty());
}

/// The receipts owed to devices the route accepts come back unstored; receipts carried over
/// from an earlier batch are stored whatever the route says.
async fn commit_batch_hands_back_the_receipts_to_push_and_stores_carried_ones<S: MessageStore>(
    f: &Fixture<S>,
) {
    let s = &f.store;
    let alice = enroll(s, "alice", 1).await;
    let bob = enroll(s, "bob", 1).await;
    let carol = enroll(s, "carol", 1).await;
    s.enqueue(
        &[message(&alice, 1, &[&carol]), message(&bob, 2, &[&carol])],
        NO_LIMIT,
    )
    .await
    .expect("enqueue");
    let carols = ids(&s.pending(&carol, 0, 10).await.expect("pending"));
    let carried = NewReceipt {
        to: alice.clone(),
        receipt: DeliveryReceipt {
            recipient: "dave".to_owned(),
            recipient_device_id: 3,
            client_message_ids: vec![message_id(9)],
            server_timestamp_ms: 5_000,
        },
        expires_at_ms: 80_000,
    };
    let connected = alice.clone();
    let outcome = s
        .commit_batch(WriteBatch {
            acks: vec![AckRequest {
                device: carol.clone(),
                delivery_ids: carols,
                receipt_expires_at_ms: 90_000,
            }],
            now_ms: 7_000,
            receipts: vec![carried.clone()],
            push_receipts: Some(ReceiptRoute::new(move |device| *device == connected)),
            ..WriteBatch::default()
        })
        .await
        .expect("commit batch");
    assert!(outcome.acknowledged);
    // Alice's receipt for message 1 is to be pushed; Bob's is stored.
    assert_eq!(
        outcome.pushed_receipts,
        [NewReceipt {
            to: alice.clone(),
            receipt: DeliveryReceipt {
                recipient: "carol".to_owned(),
                recipient_device_id: 1,
                client_message_ids: vec![message_id(1)],
                server_timestamp_ms: 7_000,
            },
            expires_at_ms: 90_000,
        }]
    );
    assert_eq!(outcome.receipts_to, [alice.clone(), bob.clone()]);
    assert_eq!(s.queue_depth(&carol).await.expect("depth"), 0);
    let alices = s.pending(&alice, 0, 10).await.expect("pending");
    assert_eq!(
        alices.iter().map(|entry| &entry.item).collect::<Vec<_>>(),
        [&QueuedItem::Receipt(carried.receipt.clone())]
    );
    let bobs = s.pending(&bob, 0, 10).await.expect("pending");
    assert_eq!(bobs.len(), 1);
    assert!(
        matches!(&bobs[0].item, QueuedItem::Receipt(r) if r.client_message_ids == [message_id(2)])
    );
    assert_eq!(f.count(Held::Receipts).await, 2);
    // The carried receipt keeps its own expiry.
    assert_eq!(s.expire_messages(80_000).await.expect("expire"), 1);
    assert_eq!(s.queue_depth(&alice).await.expect("depth"), 0);

    // A batch of carried receipts alone stores them.
    let outcome = s
        .commit_batch(WriteBatch {
            receipts: vec![carried.clone()],
            ..WriteBatch::default()
        })
        .await
        .expect("commit batch");
    assert_eq!(outcome.receipts_to, std::slice::from_ref(&alice));
    assert_eq!(s.queue_depth(&alice).await.expect("depth"), 1);
}

/// Acknowledgements come first in a batch: the room they free is there for its sends.
async fn commit_batch_acknowledgements_free_room_for_its_sends<S: MessageStore>(f: &Fixture<S>) {
    let s = &f.store;
    let alice = enroll(s, "alice", 1).await;
    let bob = enroll(s, "bob", 1).await;
    s.enqueue(
        &[message(&alice, 1, &[&bob]), message(&alice, 2, &[&bob])],
        NO_LIMIT,
    )
    .await
    .expect("enqueue");
    let bobs = ids(&s.pending(&bob, 0, 10).await.expect("pending"));
    let full = s
        .commit_batch(WriteBatch {
            acks: Vec::new(),
            now_ms: 1,
            sends: vec![message(&alice, 3, &[&bob])],
            max_queue: 2,
            ..WriteBatch::default()
        })
        .await
        .expect("commit batch");
    assert_eq!(full.outcomes, [EnqueueOutcome::MailboxFull(bob.clone())]);
    let outcome = s
        .commit_batch(WriteBatch {
            acks: vec![AckRequest {
                device: bob.clone(),
                delivery_ids: vec![bobs[0]],
                receipt_expires_at_ms: 1_000,
            }],
            now_ms: 1,
            sends: vec![message(&alice, 3, &[&bob])],
            // Bob holds 2 and gets 1 acknowledged; Alice gets a receipt (not limited).
            max_queue: 2,
            ..WriteBatch::default()
        })
        .await
        .expect("commit batch");
    assert_eq!(outcome.outcomes, [stored(&[&bob], 0)]);
    assert_eq!(
        bodies(&s.pending(&bob, 0, 10).await.expect("pending")),
        ["body 2", "body 3"]
    );
    assert_eq!(s.queue_depth(&bob).await.expect("depth"), 2);
    assert_eq!(s.queue_depth(&alice).await.expect("depth"), 1);
}

async fn concurrent_enqueues_keep_delivery_ids_increasing<S: MessageStore>(f: &Fixture<S>) {
    const SENDERS: u32 = 16;
    const PER_SENDER: u32 = 10;
    let s = &f.store;
    let bob = enroll(s, "bob", 1).await;
    let mut senders = Vec::new();
    for n in 0..SENDERS {
        senders.push(enroll(s, &format!("sender{n}"), 1).await);
    }
    let bob_ref = &bob;
    futures_util::future::join_all(senders.iter().map(|sender| async move {
        for n in 0..PER_SENDER {
            let outcome = s
                .enqueue(&[message(sender, n, &[bob_ref])], NO_LIMIT)
                .await
                .expect("enqueue");
            assert_eq!(outcome, vec![stored(&[bob_ref], 0)]);
        }
    }))
    .await;
    let pending = s.pending(&bob, 0, 1_000).await.expect("pending");
    assert_eq!(pending.len(), (SENDERS * PER_SENDER) as usize);
    assert!(ids(&pending).windows(2).all(|w| w[0] < w[1]));
    // Per sender, in the order sent.
    for sender in &senders {
        let mine: Vec<String> = pending
            .iter()
            .filter_map(|q| match &q.item {
                QueuedItem::Envelope(e) if e.sender == sender.address => {
                    Some(String::from_utf8_lossy(&e.body).into_owned())
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            mine,
            (0..PER_SENDER)
                .map(|n| format!("body {n}"))
                .collect::<Vec<_>>()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Groups

fn member(address: &str, admin: bool) -> GroupMember {
    GroupMember {
        address: address.to_owned(),
        admin,
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

async fn groups_membership_and_admins<S: MessageStore>(f: &Fixture<S>) {
    let s = &f.store;
    for name in ["alice", "bob", "carol", "dave"] {
        enroll(s, name, 1).await;
    }
    let id = GroupId([1; 16]);
    assert_eq!(s.group(id).await.expect("group"), None);
    assert!(matches!(
        s.create_group(id, "team", "alice", &names(&["bob", "zed"]))
            .await,
        Err(StoreError::NotFound(_))
    ));
    let created = s
        .create_group(id, "team", "alice", &names(&["bob", "alice", "bob"]))
        .await
        .expect("create");
    assert_eq!(created.revision, 1);
    assert_eq!(created.name, "team");
    assert_eq!(
        created.members,
        vec![member("alice", true), member("bob", false)]
    );
    assert_eq!(s.group(id).await.expect("group"), Some(created.clone()));
    assert!(matches!(
        s.create_group(id, "again", "carol", &[]).await,
        Err(StoreError::Conflict(_))
    ));

    // Only admins change membership; every change bumps the revision.
    assert!(matches!(
        s.add_members(id, "bob", &names(&["carol"])).await,
        Err(StoreError::Forbidden(_))
    ));
    assert!(matches!(
        s.add_members(id, "carol", &names(&["carol"])).await,
        Err(StoreError::Forbidden(_))
    ));
    assert!(matches!(
        s.add_members(GroupId([2; 16]), "alice", &names(&["carol"]))
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.add_members(id, "alice", &names(&["zed"])).await,
        Err(StoreError::NotFound(_))
    ));
    let added = s
        .add_members(id, "alice", &names(&["carol", "dave", "bob"]))
        .await
        .expect("add");
    assert_eq!(added.revision, 2);
    assert_eq!(
        added.members,
        vec![
            member("alice", true),
            member("bob", false),
            member("carol", false),
            member("dave", false)
        ]
    );
    let unchanged = s
        .add_members(id, "alice", &names(&["bob"]))
        .await
        .expect("add");
    assert_eq!(unchanged.revision, 2, "no change, no new revision");

    assert!(matches!(
        s.remove_members(id, "bob", &names(&["carol"])).await,
        Err(StoreError::Forbidden(_))
    ));
    let removed = s
        .remove_members(id, "alice", &names(&["carol", "zed"]))
        .await
        .expect("remove");
    assert_eq!(removed.revision, 3);
    assert_eq!(removed.members.len(), 3);

    assert!(matches!(
        s.leave_group(id, "carol").await,
        Err(StoreError::Forbidden(_))
    ));
    let left = s.leave_group(id, "dave").await.expect("leave");
    assert_eq!(left.revision, 4);
    assert_eq!(
        left.members,
        vec![member("alice", true), member("bob", false)]
    );

    // Listings.
    let other = GroupId([0; 16]);
    s.create_group(other, "pair", "bob", &names(&["alice"]))
        .await
        .expect("create");
    let listed = s.groups_of("alice").await.expect("groups");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].id, other);
    assert_eq!(
        (listed[1].id, listed[1].revision, listed[1].member_count),
        (id, 4, 2)
    );
    assert_eq!(listed[1].name, "team");
    assert!(s.groups_of("dave").await.expect("groups").is_empty());
}

async fn group_member_limit_at_n_and_n_plus_1<S: MessageStore>(f: &Fixture<S>) {
    let s = &f.store;
    let everyone: Vec<String> = (0..=MAX_GROUP_MEMBERS)
        .map(|n| format!("m{n:03}"))
        .collect();
    for name in &everyone {
        enroll(s, name, 1).await;
    }
    let creator = &everyone[0];
    // N members (creator included) at creation; N + 1 refused.
    let full = s
        .create_group(
            GroupId([1; 16]),
            "full",
            creator,
            &everyone[1..MAX_GROUP_MEMBERS],
        )
        .await
        .expect("N members");
    assert_eq!(full.members.len(), MAX_GROUP_MEMBERS);
    assert!(matches!(
        s.create_group(GroupId([2; 16]), "over", creator, &everyone[1..])
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.add_members(GroupId([1; 16]), creator, &everyone[MAX_GROUP_MEMBERS..])
            .await,
        Err(StoreError::Conflict(_))
    ));
    // Growing to N by adding works too.
    let small = s
        .create_group(
            GroupId([3; 16]),
            "grow",
            creator,
            &everyone[1..MAX_GROUP_MEMBERS - 1],
        )
        .await
        .expect("create");
    assert_eq!(small.members.len(), MAX_GROUP_MEMBERS - 1);
    let grown = s
        .add_members(
            GroupId([3; 16]),
            creator,
            &everyone[MAX_GROUP_MEMBERS - 1..MAX_GROUP_MEMBERS],
        )
        .await
        .expect("add to N");
    assert_eq!(grown.members.len(), MAX_GROUP_MEMBERS);
}

async fn last_admin_leaving_promotes_the_earliest_member<S: MessageStore>(f: &Fixture<S>) {
    let s = &f.store;
    for name in ["alice", "bob", "carol"] {
        enroll(s, name, 1).await;
    }
    let id = GroupId([5; 16]);
    s.create_group(id, "g", "alice", &names(&["carol", "bob"]))
        .await
        .expect("create");
    let after = s.leave_group(id, "alice").await.expect("leave");
    assert_eq!(after.revision, 2);
    assert_eq!(
        after.members,
        vec![member("bob", true), member("carol", false)]
    );
    // An admin may remove everyone, itself included: the group is gone.
    let emptied = s
        .remove_members(id, "bob", &names(&["bob", "carol"]))
        .await
        .expect("remove");
    assert_eq!(emptied.revision, 3);
    assert!(emptied.members.is_empty());
    assert_eq!(s.group(id).await.expect("group"), None);
    assert!(s.groups_of("bob").await.expect("groups").is_empty());
}

// ---------------------------------------------------------------------------------------------
// Blobs

async fn blobs_compare_and_set<S: MessageStore>(f: &Fixture<S>) {
    let s = &f.store;
    let record = BlobRecord {
        id: BlobId([4; 16]),
        owner: "alice".to_owned(),
        size: 100,
        received: 0,
        expires_at_ms: 300,
    };
    s.create_blob(&record).await.expect("create");
    assert!(matches!(
        s.create_blob(&record).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.blob(record.id).await.expect("blob"), Some(record.clone()));
    assert_eq!(s.blob(BlobId([0; 16])).await.expect("blob"), None);

    s.advance_blob(record.id, 0, 60).await.expect("advance");
    // The same chunk again (a racing upload) loses.
    assert!(matches!(
        s.advance_blob(record.id, 0, 60).await,
        Err(StoreError::Conflict(_))
    ));
    // Past the size: refused at size + 1, accepted at size.
    assert!(matches!(
        s.advance_blob(record.id, 60, 101).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.advance_blob(record.id, 60, 59).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.advance_blob(BlobId([0; 16]), 0, 1).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        !s.blob(record.id)
            .await
            .expect("blob")
            .expect("present")
            .complete()
    );
    s.advance_blob(record.id, 60, 100).await.expect("advance");
    assert!(
        s.blob(record.id)
            .await
            .expect("blob")
            .expect("present")
            .complete()
    );

    let later = BlobRecord {
        id: BlobId([5; 16]),
        expires_at_ms: 301,
        ..record.clone()
    };
    s.create_blob(&later).await.expect("create");
    assert!(s.expire_blobs(299).await.expect("expire").is_empty());
    assert_eq!(s.expire_blobs(300).await.expect("expire"), vec![record.id]);
    assert_eq!(s.blob(record.id).await.expect("blob"), None);
    assert_eq!(s.expire_blobs(301).await.expect("expire"), vec![later.id]);
}

// ---------------------------------------------------------------------------------------------
// Robustness and the configured store

async fn corrupt_rows_are_errors<S: MessageStore>(f: &Fixture<S>) {
    let s = &f.store;
    let alice = enroll(s, "alice", 1).await;
    let bob = enroll(s, "bob", 1).await;
    s.upload_pre_keys(&bob, &full_upload(1..3, 1..2))
        .await
        .expect("upload");
    s.enqueue(&[message(&alice, 1, &[&bob])], NO_LIMIT)
        .await
        .expect("enqueue");
    s.enqueue_receipts(&[receipt_for(&alice, "bob", 1)])
        .await
        .expect("receipts");

    f.execute_per_backend(
        "UPDATE mailbox SET ciphertext_type = 99 WHERE kind = 0",
        "UPDATE message_bodies SET ciphertext_type = 99",
    )
    .await;
    assert!(matches!(
        s.pending(&bob, 0, 10).await,
        Err(StoreError::Corrupt(_))
    ));
    f.set_bytes_per_backend(
        "UPDATE mailbox SET client_message_ids = $1 WHERE kind = 1",
        "UPDATE receipts SET client_message_ids = $1",
        &[0; 17],
    )
    .await;
    assert!(matches!(
        s.pending(&alice, 0, 10).await,
        Err(StoreError::Corrupt(_))
    ));

    // A corrupt key fails the claim and consumes nothing.
    f.set_bytes("UPDATE kyber_pre_keys SET public_key = $1", &[0x08, 1])
        .await;
    assert!(matches!(
        s.claim_pre_keys(&bob).await,
        Err(StoreError::Corrupt(_))
    ));
    assert_eq!(s.pre_key_count(&bob).await.expect("count").one_time, 2);

    f.set_bytes(
        "UPDATE devices SET identity_key = $1 WHERE address = 'bob'",
        &[0x05],
    )
    .await;
    assert!(matches!(
        s.devices("bob").await,
        Err(StoreError::Corrupt(_))
    ));
    f.execute("UPDATE devices SET registration_id = -1").await;
    assert!(matches!(
        s.devices("alice").await,
        Err(StoreError::Corrupt(_))
    ));
}

async fn any_store_delegates<S: MessageStore>(f: &Fixture<S>) {
    let store = AnyMessageStore::new(&f.db).expect("message store");
    match (&store, &f.db) {
        (AnyMessageStore::Sqlite(_), Database::Sqlite(_))
        | (AnyMessageStore::Postgres(_), Database::Postgres(_)) => {}
        _ => panic!("the configured backend"),
    }
    let alice = enroll(&store, "alice", 1).await;
    let bob = enroll(&store, "bob", 1).await;
    store
        .enqueue(&[message(&alice, 1, &[&bob])], NO_LIMIT)
        .await
        .expect("enqueue");
    // The generic store sees what the configured one wrote.
    assert_eq!(f.store.queue_depth(&bob).await.expect("depth"), 1);
    assert_eq!(store.devices("bob").await.expect("devices").len(), 1);
}

// ---------------------------------------------------------------------------------------------
// SQLite only: what the store's own connection accepts

#[tokio::test]
async fn sqlite_store_refuses_a_database_that_is_not_migrated() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("bare.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("open SQLite");
    sqlx::query("PRAGMA journal_mode = WAL")
        .execute(&pool)
        .await
        .expect("WAL");
    let refused = SqliteStore::open(&pool);
    assert!(
        matches!(refused, Err(StoreError::NotFound(_))),
        "{refused:?}"
    );
    pool.close().await;
}

#[tokio::test]
async fn sqlite_store_refuses_an_in_memory_database() {
    let pool = sqlx::SqlitePool::connect("sqlite::memory:")
        .await
        .expect("open SQLite");
    let refused = SqliteStore::open(&pool);
    assert!(
        matches!(refused, Err(StoreError::NotFound(_))),
        "{refused:?}"
    );
    pool.close().await;
}

#[tokio::test]
async fn sqlite_store_outlives_its_pool_and_sees_other_writers() {
    let f = sqlite_fixture().await;
    let alice = enroll(&f.store, "alice", 1).await;
    // A second store on the same file (another node's view, or the store of a restarted
    // service) sees what the first committed.
    let Database::Sqlite(pool) = &f.db else {
        unreachable!("a SQLite fixture")
    };
    let second = SqliteStore::open(pool).expect("second store");
    assert_eq!(second.devices("alice").await.expect("devices").len(), 1);
    second
        .enqueue(&[message(&alice, 1, &[&alice])], NO_LIMIT)
        .await
        .expect("enqueue");
    assert_eq!(f.store.queue_depth(&alice).await.expect("depth"), 1);
    // Each store keeps its dedupe index in memory: what the other stored is still found, both
    // ways, and so is what a store stored itself after the other wrote.
    for (store, n) in [(&f.store, 2), (&second, 3), (&f.store, 4)] {
        assert_eq!(
            store
                .enqueue(&[message(&alice, 1, &[&alice])], NO_LIMIT)
                .await
                .expect("enqueue"),
            [stored(&[], 1)]
        );
        assert_eq!(
            store
                .enqueue(&[message(&alice, n, &[&alice])], NO_LIMIT)
                .await
                .expect("enqueue"),
            [stored(&[&alice], 0)]
        );
    }
    for store in [&f.store, &second] {
        for n in 1..=4 {
            assert_eq!(
                store
                    .enqueue(&[message(&alice, n, &[&alice])], NO_LIMIT)
                    .await
                    .expect("enqueue"),
                [stored(&[], 1)],
                "message {n}"
            );
        }
    }
    // Acknowledged through one store, new for both.
    second.acknowledge(&alice, &[1]).await.expect("ack");
    assert_eq!(
        f.store
            .enqueue(&[message(&alice, 1, &[&alice])], NO_LIMIT)
            .await
            .expect("enqueue"),
        [stored(&[&alice], 0)]
    );
    assert_eq!(f.store.queue_depth(&alice).await.expect("depth"), 4);
    // The pool closes; the stores keep their own connections.
    let Fixture { store, db, cleanup } = f;
    if let Database::Sqlite(pool) = db {
        pool.close().await;
    }
    assert_eq!(store.queue_depth(&alice).await.expect("depth"), 4);
    assert_eq!(second.queue_depth(&alice).await.expect("depth"), 4);
    drop(cleanup);
}

/// A SQLite database at `path` migrated by the migrations whose names sort before `before`
/// only, as an older server left it.
async fn sqlite_migrated_before(path: &std::path::Path, before: &str) -> sqlx::SqlitePool {
    let older = path.with_extension("migrations");
    std::fs::create_dir(&older).expect("directory");
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    for entry in std::fs::read_dir(&source).expect("migrations") {
        let entry = entry.expect("migration");
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".sql") && name.as_str() < before {
            std::fs::copy(entry.path(), older.join(&name)).expect("copy");
        }
    }
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("open SQLite");
    sqlx::migrate::Migrator::new(older.as_path())
        .await
        .expect("older migrations")
        .run(&pool)
        .await
        .expect("migrate the older schema");
    pool
}

/// A SQLite database at `path` left by the migrations before `before` with `old_mail` written
/// into it, then opened (and so migrated to the current schema) with its message store.
async fn sqlite_migrated_with(
    path: &std::path::Path,
    before: &str,
    old_mail: &'static str,
) -> (Database, SqliteStore) {
    let pool = sqlite_migrated_before(path, before).await;
    sqlx::raw_sql(old_mail)
        .execute(&pool)
        .await
        .expect("mail queued in the old schema");
    pool.close().await;
    let db = Database::open_sqlite_file(path)
        .await
        .expect("migrate to the current schema");
    let Database::Sqlite(pool) = &db else {
        unreachable!("a SQLite file opens as SQLite")
    };
    let store = SqliteStore::open(pool).expect("message store");
    (db, store)
}

/// Migration 0005 (the lean mailbox) carries the queued mail of a database made by the
/// migrations before it: messages (one-to-one and shared), receipts, the queue depths and the
/// delivery-id counters; bodies nobody references are dropped.
#[tokio::test]
async fn sqlite_migration_to_the_lean_mailbox_keeps_queued_mail() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("server.db");
    let (db, store) = sqlite_migrated_with(
        &path,
        "0005",
        "INSERT INTO devices (id, address, device_id, registration_id, noise_key, identity_key, \
             certificate, created_at_ms, last_seen_ms, last_delivery_id) VALUES \
         (1, 'alice', 1, 1, x'01', x'05', x'30', 0, 0, 7), \
         (2, 'bob', 1, 1, x'02', x'05', x'30', 0, 0, 12), \
         (3, 'carol', 1, 1, x'03', x'05', x'30', 0, 0, 3); \
         INSERT INTO message_bodies (id, ciphertext_type, body, server_timestamp_ms, group_id) \
         VALUES (10, 7, x'AA', 100, x'09090909090909090909090909090909'), \
                (11, 2, x'BB', 101, NULL), \
                (12, 2, x'CC', 102, NULL); \
         INSERT INTO mailbox_entries (device, delivery_id, body, sender_address, \
             sender_device_id, client_message_id, expires_at_ms) VALUES \
         (2, 11, 10, 'alice', 1, x'0A0A0A0A0A0A0A0A0A0A0A0A0A0A0A0A', 5000), \
         (3, 3, 10, 'alice', 1, x'0A0A0A0A0A0A0A0A0A0A0A0A0A0A0A0A', 5000), \
         (2, 12, 11, 'alice', 1, x'0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B', 5000); \
         INSERT INTO receipts (device, delivery_id, recipient, recipient_device_id, \
             client_message_ids, server_timestamp_ms, expires_at_ms) VALUES \
         (1, 7, 'bob', 1, x'0C0C0C0C0C0C0C0C0C0C0C0C0C0C0C0C', 103, 6000);",
    )
    .await;
    let Database::Sqlite(pool) = &db else {
        unreachable!("a SQLite file opens as SQLite")
    };
    let (alice, bob, carol) = (device("alice", 1), device("bob", 1), device("carol", 1));
    let envelope = |id: u8, kind, body: u8, at, group| {
        QueuedItem::Envelope(Envelope {
            sender: "alice".to_owned(),
            sender_device_id: 1,
            ciphertext_type: kind,
            body: vec![body],
            client_message_id: [id; 16],
            server_timestamp_ms: at,
            group_id: group,
        })
    };
    let group = Some(GroupId([9; 16]));
    let shared = envelope(0x0A, CiphertextType::SenderKey, 0xAA, 100, group);
    let bobs = store.pending(&bob, 0, 10).await.expect("pending");
    assert_eq!(
        bobs,
        [
            Queued {
                delivery_id: 11,
                item: shared.clone()
            },
            Queued {
                delivery_id: 12,
                item: envelope(0x0B, CiphertextType::Whisper, 0xBB, 101, None)
            },
        ]
    );
    assert_eq!(
        store.pending(&carol, 0, 10).await.expect("pending"),
        [Queued {
            delivery_id: 3,
            item: shared
        }]
    );
    assert_eq!(
        store.pending(&alice, 0, 10).await.expect("pending"),
        [Queued {
            delivery_id: 7,
            item: QueuedItem::Receipt(DeliveryReceipt {
                recipient: "bob".to_owned(),
                recipient_device_id: 1,
                client_message_ids: vec![[0x0C; 16]],
                server_timestamp_ms: 103,
            })
        }]
    );
    for (who, depth) in [(&alice, 1), (&bob, 2), (&carol, 1)] {
        assert_eq!(store.queue_depth(who).await.expect("depth"), depth);
    }
    let count = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql).fetch_one(pool);
    // The orphan body went; the shared one is stored once.
    assert_eq!(
        count("SELECT COUNT(*) FROM shared_bodies")
            .await
            .expect("count"),
        1
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM mailbox WHERE body IS NOT NULL")
            .await
            .expect("count"),
        1
    );

    // Deduplication still holds against the carried-over entries, and the delivery ids
    // continue from the old counters.
    let mut retry = message(&alice, 0, &[&bob]);
    retry.client_message_id = [0x0B; 16];
    let fresh = message(&alice, 1, &[&bob]);
    assert_eq!(
        store
            .enqueue(&[retry, fresh], NO_LIMIT)
            .await
            .expect("enqueue"),
        [stored(&[], 1), stored(&[&bob], 0)]
    );
    assert_eq!(
        ids(&store.pending(&bob, 12, 10).await.expect("pending")),
        [13]
    );
    // The shared body goes with its last entry.
    store.acknowledge(&bob, &[11, 12, 13]).await.expect("ack");
    assert_eq!(
        count("SELECT COUNT(*) FROM shared_bodies")
            .await
            .expect("count"),
        1
    );
    store.acknowledge(&carol, &[3]).await.expect("ack");
    assert_eq!(
        count("SELECT COUNT(*) FROM shared_bodies")
            .await
            .expect("count"),
        0
    );
    drop(store);
    pool.close().await;
}

/// Migration 0006 (the mailbox clustered by arrival) carries queued entries with their delivery
/// ids, the shared bodies, and each device's counters — also the delivery-id counter of a device
/// whose mailbox is empty, so no id is given out twice.
#[tokio::test]
async fn sqlite_migration_to_the_arrival_ordered_mailbox_keeps_ids_and_counters() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("server.db");
    let (db, store) = sqlite_migrated_with(
        &path,
        "0006",
        "INSERT INTO devices (id, address, device_id, registration_id, noise_key, identity_key, \
             certificate, created_at_ms, last_seen_ms, last_delivery_id, queued) VALUES \
         (1, 'alice', 1, 1, x'01', x'05', x'30', 0, 0, 7, 1), \
         (2, 'bob', 1, 1, x'02', x'05', x'30', 0, 0, 12, 2), \
         (3, 'carol', 1, 1, x'03', x'05', x'30', 0, 0, 3, 1), \
         (4, 'dave', 1, 1, x'04', x'05', x'30', 0, 0, 5, 0); \
         INSERT INTO shared_bodies (id, refs, body) VALUES (20, 2, x'AA'); \
         INSERT INTO mailbox (device, delivery_id, kind, peer_address, peer_device_id, \
             client_message_ids, server_timestamp_ms, expires_at_ms, ciphertext_type, body, \
             shared_body, group_id) VALUES \
         (2, 12, 0, 'alice', 1, x'0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B', 101, 5000, 2, x'BB', \
             NULL, NULL), \
         (2, 11, 0, 'alice', 1, x'0A0A0A0A0A0A0A0A0A0A0A0A0A0A0A0A', 100, 5000, 7, NULL, 20, \
             x'09090909090909090909090909090909'), \
         (3, 3, 0, 'alice', 1, x'0A0A0A0A0A0A0A0A0A0A0A0A0A0A0A0A', 100, 5000, 7, NULL, 20, \
             x'09090909090909090909090909090909'), \
         (1, 7, 1, 'bob', 1, x'0C0C0C0C0C0C0C0C0C0C0C0C0C0C0C0C', 103, 6000, NULL, NULL, \
             NULL, NULL);",
    )
    .await;
    let Database::Sqlite(pool) = &db else {
        unreachable!("a SQLite file opens as SQLite")
    };
    let (alice, bob, carol, dave) = (
        device("alice", 1),
        device("bob", 1),
        device("carol", 1),
        device("dave", 1),
    );
    let shared = QueuedItem::Envelope(Envelope {
        sender: "alice".to_owned(),
        sender_device_id: 1,
        ciphertext_type: CiphertextType::SenderKey,
        body: vec![0xAA],
        client_message_id: [0x0A; 16],
        server_timestamp_ms: 100,
        group_id: Some(GroupId([9; 16])),
    });
    let bobs = store.pending(&bob, 0, 10).await.expect("pending");
    assert_eq!(ids(&bobs), [11, 12]);
    assert_eq!(bobs[0].item, shared);
    assert_eq!(
        store.pending(&carol, 0, 10).await.expect("pending"),
        [Queued {
            delivery_id: 3,
            item: shared
        }]
    );
    assert_eq!(
        ids(&store.pending(&alice, 0, 10).await.expect("pending")),
        [7]
    );
    for (who, depth) in [(&alice, 1), (&bob, 2), (&carol, 1), (&dave, 0)] {
        assert_eq!(store.queue_depth(who).await.expect("depth"), depth);
    }

    // A retry of a carried-over message is a duplicate; new entries continue each device's
    // sequence, also dave's, whose mailbox was empty.
    let mut retry = message(&alice, 0, &[&bob]);
    retry.client_message_id = [0x0B; 16];
    assert_eq!(
        store
            .enqueue(
                &[
                    retry,
                    message(&alice, 1, &[&bob]),
                    message(&alice, 2, &[&dave])
                ],
                NO_LIMIT
            )
            .await
            .expect("enqueue"),
        [stored(&[], 1), stored(&[&bob], 0), stored(&[&dave], 0)]
    );
    assert_eq!(
        ids(&store.pending(&bob, 12, 10).await.expect("pending")),
        [13]
    );
    assert_eq!(
        ids(&store.pending(&dave, 0, 10).await.expect("pending")),
        [6]
    );

    // Expiry finds the carried-over entries, and the shared body goes with its last entry.
    assert_eq!(store.expire_messages(5_000).await.expect("expire"), 3);
    let count = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql).fetch_one(pool);
    assert_eq!(
        count("SELECT COUNT(*) FROM shared_bodies")
            .await
            .expect("count"),
        0
    );
    for (who, depth) in [(&alice, 1), (&bob, 1), (&carol, 0), (&dave, 1)] {
        assert_eq!(store.queue_depth(who).await.expect("depth"), depth);
    }
    drop(store);
    pool.close().await;
}

/// A new SQLite database gets 16 KiB pages, and still the WAL journal (`Database::connect`).
#[tokio::test]
async fn a_new_sqlite_database_has_16_kib_pages_and_a_wal() {
    let f = sqlite_fixture().await;
    let Database::Sqlite(pool) = &f.db else {
        unreachable!("a SQLite fixture")
    };
    let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
        .fetch_one(pool)
        .await
        .expect("page size");
    assert_eq!(page_size, 16 * 1024);
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(pool)
        .await
        .expect("journal mode");
    assert_eq!(journal, "wal");
    f.finish().await;
}

/// SQLite is compiled with the flags of the workspace's `.cargo/config.toml` (a build without
/// them still works, with a slower store: this says so).
#[tokio::test]
async fn sqlite_is_built_with_the_workspace_flags() {
    let pool = sqlx::SqlitePool::connect("sqlite::memory:")
        .await
        .expect("open SQLite");
    let options: Vec<String> = sqlx::query_scalar("PRAGMA compile_options")
        .fetch_all(&pool)
        .await
        .expect("compile options");
    for wanted in [
        "DEFAULT_MEMSTATUS=0",
        "DEFAULT_WAL_SYNCHRONOUS=1",
        "LIKE_DOESNT_MATCH_BLOBS",
        "USE_ALLOCA",
    ] {
        assert!(
            options.iter().any(|option| option == wanted),
            "SQLite built without {wanted}: {options:?}"
        );
    }
    pool.close().await;
}
