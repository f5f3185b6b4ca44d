//! [`MessageStore`] on SQLite: the embedded default, one file in WAL mode.
//!
//! The store runs on rusqlite with one connection owned by one dedicated thread (see
//! `worker.rs`): every trait call is a job for that thread and runs as one transaction on it, with
//! prepared statements cached on the connection. Compared with a pool whose driver hands each
//! statement to a worker thread, a call costs one hand-off to the thread and back however many
//! statements it runs, and a burst of calls is taken in one wake-up.
//!
//! The schema is created and migrated by sqlx (`Database::connect`); the store opens its own
//! connection on the same file afterwards, with the same settings (WAL, `synchronous=NORMAL`,
//! foreign keys, busy timeout). Methods that write open their transaction with
//! `BEGIN IMMEDIATE`, which takes the write lock up front: the CA store, which writes the same
//! file through the sqlx pool, waits on the busy timeout instead of failing, and a
//! read-then-write such as a prekey claim cannot interleave with another writer. WAL checkpoints
//! run on a second thread with its own connection (`checkpoint.rs`), so that no store call waits
//! for one.

mod blobs;
mod checkpoint;
mod dedupe;
mod directory;
mod entries;
mod groups;
mod mailbox;
mod worker;

use std::path::Path;

use confianza_api::{BlobId, GroupId, GroupSummary, NoisePublicKey, PreKeyCount, PreKeyUpload};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior};
use sqlx::SqlitePool;

use super::{
    Acknowledged, BatchOutcome, BlobQuota, BlobRecord, BlobUsage, ClaimedPreKeys, Device,
    DeviceAddress, EnqueueOutcome, GroupRecord, MessageStore, NewDevice, NewMessage, NewReceipt,
    Queued, QuotaExceeded, SQLITE_BUSY_TIMEOUT, StoreError, StoredEntry, WriteBatch,
};
use checkpoint::Checkpointer;
use dedupe::Changes;
use worker::Worker;

/// The store connection's page cache, in KiB (SQLite's default is 2 000).
const PAGE_CACHE_KIB: i64 = 32 * 1024;

/// Prepared statements kept per connection: every statement the store runs, with room to spare.
const STATEMENT_CACHE_CAPACITY: usize = 128;

/// The SQLite message store. Cheap to clone: clones share the connection thread, which ends
/// (with the checkpoint thread) when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    worker: Worker,
}

impl SqliteStore {
    /// Opens the store on the database file behind `pool`, which [`super::Database::connect`]
    /// has created and migrated, and starts its connection thread and its checkpoint thread.
    ///
    /// In-memory databases (`sqlite::memory:`) are refused: the store's connection would not
    /// see the pool's database.
    pub fn open(pool: &SqlitePool) -> Result<Self, StoreError> {
        let options = pool.connect_options();
        let path = options.get_filename();
        let connection = open_connection(path)?;
        // Checkpoints run on their own thread (see `checkpoint`); the store's connection only
        // checkpoints if the log grows far past SQLite's default.
        connection.pragma_update(None, "wal_autocheckpoint", checkpoint::FALLBACK_PAGES)?;
        // Negative: KiB. The mailbox's hot pages (recent entries, the device rows, the index
        // ends) stay in the connection's cache instead of being read back from the OS.
        connection.pragma_update(None, "cache_size", -PAGE_CACHE_KIB)?;
        // Statement journals (a savepoint of the writer's batch, a statement that may fail
        // half-way) in memory: on disk each was a temporary file created and deleted per
        // transaction (open, write, close, evict showed in the store thread's profile).
        connection.pragma_update(None, "temp_store", "MEMORY")?;
        let checkpointer = Checkpointer::spawn(open_connection(path)?, "confianza-sqlite-wal")?;
        Ok(Self {
            worker: Worker::spawn(connection, "confianza-sqlite", Some(checkpointer))?,
        })
    }
}

/// Opens a connection on an existing, migrated database file with the server's settings.
fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    // No CREATE flag: the file must be the one sqlx created and migrated. (An in-memory database
    // of the pool has a name that is no file, so it fails here instead of creating a stray
    // file.) No URI flag: the name is a path, as sqlx passed it.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags).map_err(|error| {
        StoreError::NotFound(format!(
            "SQLite database {} for the message store: {error}",
            path.display()
        ))
    })?;
    connection.busy_timeout(SQLITE_BUSY_TIMEOUT)?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    // WAL + NORMAL as `Database::connect` sets them: a commit is durable against process
    // crashes (kill -9); a power loss may lose the last commits but never corrupts the file.
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    let journal: String = connection.pragma_query_value(None, "journal_mode", |row| row.get(0))?;
    if !journal.eq_ignore_ascii_case("wal") {
        return Err(StoreError::NotFound(format!(
            "SQLite database {}: journal mode {journal}, expected WAL (open it through \
             Database::connect)",
            path.display()
        )));
    }
    let migrated: Option<i64> = connection
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'mailbox'",
            [],
            |row| row.get(0),
        )
        .optional()?;
    if migrated.is_none() {
        return Err(StoreError::NotFound(format!(
            "SQLite database {} has no message tables (open it through Database::connect, \
             which migrates it)",
            path.display()
        )));
    }
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    Ok(connection)
}

/// A write transaction holding SQLite's write lock from its start.
fn write(connection: &mut Connection) -> Result<Transaction<'_>, StoreError> {
    Ok(connection.transaction_with_behavior(TransactionBehavior::Immediate)?)
}

/// A read transaction: several statements see one snapshot.
fn read(connection: &mut Connection) -> Result<Transaction<'_>, StoreError> {
    Ok(connection.transaction_with_behavior(TransactionBehavior::Deferred)?)
}

/// A unique or primary-key constraint failed: the caller's input collides with stored data.
fn is_unique_violation(error: &rusqlite::Error) -> bool {
    error.sqlite_error().is_some_and(|e| {
        e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    })
}

/// A blob column, borrowed from the row (`Corrupt` if the column holds something else).
fn blob<'row>(row: &'row Row<'_>, index: usize, column: &str) -> Result<&'row [u8], StoreError> {
    row.get_ref(index)?
        .as_blob()
        .map_err(|_| StoreError::Corrupt(format!("{column} is not a blob")))
}

/// A nullable blob column, borrowed from the row.
fn blob_or_null<'row>(
    row: &'row Row<'_>,
    index: usize,
    column: &str,
) -> Result<Option<&'row [u8]>, StoreError> {
    row.get_ref(index)?
        .as_blob_or_null()
        .map_err(|_| StoreError::Corrupt(format!("{column} is not a blob")))
}

/// The row id of a device, if it exists.
fn device_row(connection: &Connection, device: &DeviceAddress) -> Result<Option<i64>, StoreError> {
    Ok(connection
        .prepare_cached("SELECT id FROM devices WHERE address = ?1 AND device_id = ?2")?
        .query_row((&device.address, device.device_id), |row| row.get(0))
        .optional()?)
}

impl MessageStore for SqliteStore {
    async fn enroll(&self, device: NewDevice) -> Result<Device, StoreError> {
        self.worker.run(move |c| directory::enroll(c, device)).await
    }

    async fn device_by_noise_key(
        &self,
        key: &NoisePublicKey,
    ) -> Result<Option<Device>, StoreError> {
        let key = *key;
        self.worker
            .run(move |c| directory::device_by_noise_key(c, &key))
            .await
    }

    async fn devices(&self, address: &str) -> Result<Vec<Device>, StoreError> {
        let address = address.to_owned();
        self.worker
            .run(move |c| directory::devices(c, &address))
            .await
    }

    async fn set_certificate(
        &self,
        device: &DeviceAddress,
        certificate: Vec<u8>,
    ) -> Result<(), StoreError> {
        let device = device.clone();
        self.worker
            .run(move |c| directory::set_certificate(c, &device, &certificate))
            .await
    }

    async fn touch(&self, device: &DeviceAddress, now_ms: u64) -> Result<(), StoreError> {
        let device = device.clone();
        self.worker
            .run(move |c| directory::touch(c, &device, now_ms))
            .await
    }

    async fn upload_pre_keys(
        &self,
        device: &DeviceAddress,
        upload: &PreKeyUpload,
    ) -> Result<(), StoreError> {
        let device = device.clone();
        let upload = upload.clone();
        self.worker
            .run(move |c| directory::upload_pre_keys(c, &device, &upload))
            .await
    }

    async fn claim_pre_keys(
        &self,
        device: &DeviceAddress,
    ) -> Result<Option<ClaimedPreKeys>, StoreError> {
        let device = device.clone();
        self.worker
            .run(move |c| directory::claim_pre_keys(c, &device))
            .await
    }

    async fn pre_key_count(&self, device: &DeviceAddress) -> Result<PreKeyCount, StoreError> {
        let device = device.clone();
        self.worker
            .run(move |c| directory::pre_key_count(c, &device))
            .await
    }

    async fn enqueue(
        &self,
        messages: &[NewMessage],
        max_queue: u64,
    ) -> Result<Vec<EnqueueOutcome>, StoreError> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let messages = messages.to_vec();
        self.worker
            .run_with_dedupe(move |c, d| mailbox::enqueue(c, d, messages, max_queue, None))
            .await
    }

    async fn enqueue_receipts(&self, receipts: &[NewReceipt]) -> Result<(), StoreError> {
        if receipts.is_empty() {
            return Ok(());
        }
        let receipts = receipts.to_vec();
        self.worker
            .run(move |c| mailbox::enqueue_receipts(c, receipts, None))
            .await
    }

    async fn enqueue_returning(
        &self,
        messages: Vec<NewMessage>,
        max_queue: u64,
    ) -> Result<(Vec<EnqueueOutcome>, Option<Vec<StoredEntry>>), StoreError> {
        if messages.is_empty() {
            return Ok((Vec::new(), Some(Vec::new())));
        }
        let (outcomes, stored) = self
            .worker
            .run_with_dedupe(move |c, d| {
                let mut stored = Vec::new();
                let outcomes = mailbox::enqueue(c, d, messages, max_queue, Some(&mut stored))?;
                Ok((outcomes, stored))
            })
            .await?;
        Ok((outcomes, Some(stored)))
    }

    async fn enqueue_receipts_returning(
        &self,
        receipts: Vec<NewReceipt>,
    ) -> Result<Option<Vec<StoredEntry>>, StoreError> {
        if receipts.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let stored = self
            .worker
            .run(move |c| {
                let mut stored = Vec::with_capacity(receipts.len());
                mailbox::enqueue_receipts(c, receipts, Some(&mut stored))?;
                Ok(stored)
            })
            .await?;
        Ok(Some(stored))
    }

    async fn commit_batch(&self, batch: WriteBatch) -> Result<BatchOutcome, StoreError> {
        if batch.acks.is_empty() && batch.sends.is_empty() && batch.receipts.is_empty() {
            return Ok(BatchOutcome {
                acknowledged: true,
                stored: Some(Vec::new()),
                ..BatchOutcome::default()
            });
        }
        self.worker
            .run_with_dedupe(move |c, d| mailbox::commit_batch(c, d, batch))
            .await
    }

    async fn pending(
        &self,
        device: &DeviceAddress,
        after: u64,
        limit: u32,
    ) -> Result<Vec<Queued>, StoreError> {
        let device = device.clone();
        self.worker
            .run(move |c| mailbox::pending(c, &device, after, limit))
            .await
    }

    async fn acknowledge(
        &self,
        device: &DeviceAddress,
        delivery_ids: &[u64],
    ) -> Result<Vec<Acknowledged>, StoreError> {
        if delivery_ids.is_empty() {
            return Ok(Vec::new());
        }
        let device = device.clone();
        let delivery_ids = delivery_ids.to_vec();
        self.worker
            .run_with_dedupe(move |c, dedupe| {
                let tx = write(c)?;
                let mut changes = Changes::default();
                let requests = [(&device, delivery_ids.as_slice())];
                let mut acknowledged = mailbox::acknowledge(&tx, dedupe, &mut changes, requests)?;
                tx.commit()?;
                dedupe.apply(changes);
                Ok(acknowledged.pop().unwrap_or_default())
            })
            .await
    }

    async fn acknowledge_batch(
        &self,
        acks: &[(DeviceAddress, Vec<u64>)],
    ) -> Result<Vec<Vec<Acknowledged>>, StoreError> {
        if acks.iter().all(|(_, ids)| ids.is_empty()) {
            return Ok(vec![Vec::new(); acks.len()]);
        }
        let acks = acks.to_vec();
        self.worker
            .run_with_dedupe(move |c, dedupe| {
                // One transaction (one commit) for the whole batch.
                let tx = write(c)?;
                let mut changes = Changes::default();
                let requests = acks.iter().map(|(device, ids)| (device, ids.as_slice()));
                let all = mailbox::acknowledge(&tx, dedupe, &mut changes, requests)?;
                tx.commit()?;
                dedupe.apply(changes);
                Ok(all)
            })
            .await
    }

    async fn queue_depth(&self, device: &DeviceAddress) -> Result<u64, StoreError> {
        let device = device.clone();
        self.worker
            .run(move |c| mailbox::queue_depth(c, &device))
            .await
    }

    async fn expire_messages(&self, now_ms: u64) -> Result<u64, StoreError> {
        // In chunks, one job each, so the writer's batches go on in between.
        let mut expired = 0;
        loop {
            let chunk = self
                .worker
                .run_with_dedupe(move |c, d| {
                    mailbox::expire_chunk(c, d, now_ms, mailbox::EXPIRY_CHUNK)
                })
                .await?;
            expired += chunk;
            if chunk < u64::from(mailbox::EXPIRY_CHUNK) {
                return Ok(expired);
            }
        }
    }

    async fn create_group(
        &self,
        id: GroupId,
        name: &str,
        creator: &str,
        members: &[String],
    ) -> Result<GroupRecord, StoreError> {
        let (name, creator, members) = (name.to_owned(), creator.to_owned(), members.to_vec());
        self.worker
            .run(move |c| groups::create_group(c, id, &name, &creator, &members))
            .await
    }

    async fn add_members(
        &self,
        id: GroupId,
        actor: &str,
        members: &[String],
    ) -> Result<GroupRecord, StoreError> {
        let (actor, members) = (actor.to_owned(), members.to_vec());
        self.worker
            .run(move |c| groups::add_members(c, id, &actor, &members))
            .await
    }

    async fn remove_members(
        &self,
        id: GroupId,
        actor: &str,
        members: &[String],
    ) -> Result<GroupRecord, StoreError> {
        let (actor, members) = (actor.to_owned(), members.to_vec());
        self.worker
            .run(move |c| groups::remove_members(c, id, &actor, &members))
            .await
    }

    async fn leave_group(&self, id: GroupId, member: &str) -> Result<GroupRecord, StoreError> {
        let member = member.to_owned();
        self.worker
            .run(move |c| groups::leave_group(c, id, &member))
            .await
    }

    async fn group(&self, id: GroupId) -> Result<Option<GroupRecord>, StoreError> {
        self.worker.run(move |c| groups::group(c, id)).await
    }

    async fn groups_of(&self, address: &str) -> Result<Vec<GroupSummary>, StoreError> {
        let address = address.to_owned();
        self.worker
            .run(move |c| groups::groups_of(c, &address))
            .await
    }

    async fn create_blob(&self, blob: &BlobRecord) -> Result<(), StoreError> {
        let blob = blob.clone();
        self.worker.run(move |c| blobs::create_blob(c, &blob)).await
    }

    async fn create_blob_within_quota(
        &self,
        blob: &BlobRecord,
        quota: BlobQuota,
        now_ms: u64,
    ) -> Result<Result<(), QuotaExceeded>, StoreError> {
        let blob = blob.clone();
        self.worker
            .run(move |c| blobs::create_blob_within_quota(c, &blob, quota, now_ms))
            .await
    }

    async fn blob(&self, id: BlobId) -> Result<Option<BlobRecord>, StoreError> {
        self.worker.run(move |c| blobs::blob_record(c, id)).await
    }

    async fn advance_blob(&self, id: BlobId, from: u64, to: u64) -> Result<(), StoreError> {
        self.worker
            .run(move |c| blobs::advance_blob(c, id, from, to))
            .await
    }

    async fn expire_blobs(&self, now_ms: u64) -> Result<Vec<BlobId>, StoreError> {
        self.worker
            .run(move |c| blobs::expire_blobs(c, now_ms))
            .await
    }

    async fn blob_usage(&self, owner: &str, now_ms: u64) -> Result<BlobUsage, StoreError> {
        let owner = owner.to_owned();
        self.worker
            .run(move |c| blobs::blob_usage(c, &owner, now_ms))
            .await
    }
}
