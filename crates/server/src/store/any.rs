//! [`AnyMessageStore`]: the message store of whichever backend the configuration opened.

use confianza_api::{BlobId, GroupId, GroupSummary, NoisePublicKey, PreKeyCount, PreKeyUpload};

use super::{
    Acknowledged, BatchOutcome, BlobRecord, ClaimedPreKeys, Database, Device, DeviceAddress,
    EnqueueOutcome, GroupRecord, MessageStore, NewDevice, NewMessage, NewReceipt, PgStore, Queued,
    SqliteStore, StoreError, StoredEntry, WriteBatch,
};

/// A [`MessageStore`] over either backend, chosen by the [`Database`] it is built from.
#[derive(Debug, Clone)]
pub enum AnyMessageStore {
    /// The embedded default.
    Sqlite(SqliteStore),
    /// Several nodes sharing one database.
    Postgres(PgStore),
}

impl AnyMessageStore {
    /// The message store of an open (migrated) database. On SQLite this opens the store's own
    /// connection on the database file and starts its thread (see [`SqliteStore::open`]).
    pub fn new(db: &Database) -> Result<Self, StoreError> {
        Ok(match db {
            Database::Sqlite(pool) => Self::Sqlite(SqliteStore::open(pool)?),
            Database::Postgres(pool) => Self::Postgres(PgStore::new(pool.clone())),
        })
    }
}

/// Calls the same method on whichever backend `self` holds.
macro_rules! delegate {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match $self {
            AnyMessageStore::Sqlite(store) => store.$method($($arg),*).await,
            AnyMessageStore::Postgres(store) => store.$method($($arg),*).await,
        }
    };
}

impl MessageStore for AnyMessageStore {
    async fn enroll(&self, device: NewDevice) -> Result<Device, StoreError> {
        delegate!(self.enroll(device))
    }

    async fn device_by_noise_key(
        &self,
        key: &NoisePublicKey,
    ) -> Result<Option<Device>, StoreError> {
        delegate!(self.device_by_noise_key(key))
    }

    async fn devices(&self, address: &str) -> Result<Vec<Device>, StoreError> {
        delegate!(self.devices(address))
    }

    async fn set_certificate(
        &self,
        device: &DeviceAddress,
        certificate: Vec<u8>,
    ) -> Result<(), StoreError> {
        delegate!(self.set_certificate(device, certificate))
    }

    async fn touch(&self, device: &DeviceAddress, now_ms: u64) -> Result<(), StoreError> {
        delegate!(self.touch(device, now_ms))
    }

    async fn upload_pre_keys(
        &self,
        device: &DeviceAddress,
        upload: &PreKeyUpload,
    ) -> Result<(), StoreError> {
        delegate!(self.upload_pre_keys(device, upload))
    }

    async fn claim_pre_keys(
        &self,
        device: &DeviceAddress,
    ) -> Result<Option<ClaimedPreKeys>, StoreError> {
        delegate!(self.claim_pre_keys(device))
    }

    async fn pre_key_count(&self, device: &DeviceAddress) -> Result<PreKeyCount, StoreError> {
        delegate!(self.pre_key_count(device))
    }

    async fn enqueue(
        &self,
        messages: &[NewMessage],
        max_queue: u64,
    ) -> Result<Vec<EnqueueOutcome>, StoreError> {
        delegate!(self.enqueue(messages, max_queue))
    }

    async fn enqueue_receipts(&self, receipts: &[NewReceipt]) -> Result<(), StoreError> {
        delegate!(self.enqueue_receipts(receipts))
    }

    async fn enqueue_returning(
        &self,
        messages: Vec<NewMessage>,
        max_queue: u64,
    ) -> Result<(Vec<EnqueueOutcome>, Option<Vec<StoredEntry>>), StoreError> {
        delegate!(self.enqueue_returning(messages, max_queue))
    }

    async fn enqueue_receipts_returning(
        &self,
        receipts: Vec<NewReceipt>,
    ) -> Result<Option<Vec<StoredEntry>>, StoreError> {
        delegate!(self.enqueue_receipts_returning(receipts))
    }

    async fn pending(
        &self,
        device: &DeviceAddress,
        after: u64,
        limit: u32,
    ) -> Result<Vec<Queued>, StoreError> {
        delegate!(self.pending(device, after, limit))
    }

    async fn acknowledge(
        &self,
        device: &DeviceAddress,
        delivery_ids: &[u64],
    ) -> Result<Vec<Acknowledged>, StoreError> {
        delegate!(self.acknowledge(device, delivery_ids))
    }

    async fn commit_batch(&self, batch: WriteBatch) -> Result<BatchOutcome, StoreError> {
        delegate!(self.commit_batch(batch))
    }

    async fn acknowledge_batch(
        &self,
        acks: &[(DeviceAddress, Vec<u64>)],
    ) -> Result<Vec<Vec<Acknowledged>>, StoreError> {
        delegate!(self.acknowledge_batch(acks))
    }

    async fn queue_depth(&self, device: &DeviceAddress) -> Result<u64, StoreError> {
        delegate!(self.queue_depth(device))
    }

    async fn expire_messages(&self, now_ms: u64) -> Result<u64, StoreError> {
        delegate!(self.expire_messages(now_ms))
    }

    async fn create_group(
        &self,
        id: GroupId,
        name: &str,
        creator: &str,
        members: &[String],
    ) -> Result<GroupRecord, StoreError> {
        delegate!(self.create_group(id, name, creator, members))
    }

    async fn add_members(
        &self,
        id: GroupId,
        actor: &str,
        members: &[String],
    ) -> Result<GroupRecord, StoreError> {
        delegate!(self.add_members(id, actor, members))
    }

    async fn remove_members(
        &self,
        id: GroupId,
        actor: &str,
        members: &[String],
    ) -> Result<GroupRecord, StoreError> {
        delegate!(self.remove_members(id, actor, members))
    }

    async fn leave_group(&self, id: GroupId, member: &str) -> Result<GroupRecord, StoreError> {
        delegate!(self.leave_group(id, member))
    }

    async fn group(&self, id: GroupId) -> Result<Option<GroupRecord>, StoreError> {
        delegate!(self.group(id))
    }

    async fn groups_of(&self, address: &str) -> Result<Vec<GroupSummary>, StoreError> {
        delegate!(self.groups_of(address))
    }

    async fn create_blob(&self, blob: &BlobRecord) -> Result<(), StoreError> {
        delegate!(self.create_blob(blob))
    }

    async fn create_blob_within_quota(
        &self,
        blob: &BlobRecord,
        quota: super::BlobQuota,
        now_ms: u64,
    ) -> Result<Result<(), super::QuotaExceeded>, StoreError> {
        delegate!(self.create_blob_within_quota(blob, quota, now_ms))
    }

    async fn blob(&self, id: BlobId) -> Result<Option<BlobRecord>, StoreError> {
        delegate!(self.blob(id))
    }

    async fn advance_blob(&self, id: BlobId, from: u64, to: u64) -> Result<(), StoreError> {
        delegate!(self.advance_blob(id, from, to))
    }

    async fn expire_blobs(&self, now_ms: u64) -> Result<Vec<BlobId>, StoreError> {
        delegate!(self.expire_blobs(now_ms))
    }

    async fn blob_usage(&self, owner: &str, now_ms: u64) -> Result<super::BlobUsage, StoreError> {
        delegate!(self.blob_usage(owner, now_ms))
    }
}
