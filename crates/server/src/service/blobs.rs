//! The blob store for attachments: the bytes in object storage (`object_store`: a local
//! folder by default, S3-compatible storage with the `s3` feature), each blob's size and
//! upload progress in the [`MessageStore`] ([`crate::store::BlobRecord`]).
//!
//! # Layout and the upload protocol
//!
//! A blob of `size` bytes is uploaded in chunks of [`BLOB_CHUNK_SIZE`] bytes (the last one
//! shorter), in order, each stored as its own object `blobs/<hex id>/<chunk index>`. A chunk
//! is accepted only at the blob's resume point (`received`) and only with its exact length,
//! so the chunk holding any offset is found by division, and a download of at most one
//! chunk's length reads at most two objects.
//!
//! Accepting a chunk is two steps, object then record:
//!
//! 1. the object is created with `PutMode::Create` (put-if-absent): of two racing uploads of
//!    one chunk, one creates it; the other finds it, and goes on only if its bytes are the
//!    same (a retry), otherwise it is refused with `Conflict`;
//! 2. `received` is moved past the chunk with a compare-and-set
//!    ([`MessageStore::advance_blob`]).
//!
//! A crash between the two leaves an object for bytes not yet counted: the client asks
//! `BlobStatus` and uploads the chunk again, which step 1 accepts as a retry. So the bytes
//! behind `received` are always the ones that were acknowledged, and never change after.
//!
//! # Expiry
//!
//! A blob lives [`BLOB_TTL`] from its creation, long enough for the messages that point to
//! it. [`run_expiry`] deletes expired records, then their objects; objects whose record is
//! gone (a crash between the two, an upload racing the expiry) are swept when it starts.
//!
//! # Quota
//!
//! An account may hold at most [`BlobQuota::bytes`] bytes in at most [`BlobQuota::count`]
//! unexpired blobs (defaults: [`DEFAULT_BLOB_QUOTA_BYTES`], [`DEFAULT_BLOB_QUOTA_COUNT`]). A
//! blob counts with its declared size from its creation (an unfinished upload reserves its
//! bytes) until it expires, so an expired blob frees its share at once, before the expiry
//! task deletes it. The message store checks the usage and records the new blob in one atomic
//! step ([`MessageStore::create_blob_within_quota`]: SQLite's write transaction, a per-owner
//! advisory lock on PostgreSQL), so creations racing on one node or on several never take an
//! account past its quota.

use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use confianza_api::BlobId;
use confianza_api::limits::{MAX_BLOB_CHUNK_LEN, MAX_BLOB_SIZE};
use futures_util::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use tokio_util::sync::CancellationToken;

use super::state::unix_ms;
use crate::store::MessageStore;
pub use crate::store::{BlobQuota, QuotaExceeded};

/// Size of every uploaded chunk but a blob's last one: the largest chunk a frame may carry
/// (`MAX_BLOB_CHUNK_LEN`, 32 KiB). Stored objects are laid out by it, so changing it needs the
/// blobs in storage to expire first.
pub const BLOB_CHUNK_SIZE: u32 = MAX_BLOB_CHUNK_LEN as u32;

/// The largest blob a server accepts unless configured lower: the protocol's limit.
pub const DEFAULT_MAX_BLOB_SIZE: u64 = MAX_BLOB_SIZE;

/// How long a blob is kept after its creation: as long as an undelivered message that points
/// to it (30 days), so a recipient who reads the message can fetch the attachment.
pub const BLOB_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// Bytes an account may hold in unexpired blobs unless configured otherwise: 1 GiB.
pub const DEFAULT_BLOB_QUOTA_BYTES: u64 = 1 << 30;

/// Unexpired blobs an account may hold unless configured otherwise. Bounds the records (and
/// objects) one account can create with tiny blobs: with the 30-day lifetime, about 330 new
/// attachments a day.
pub const DEFAULT_BLOB_QUOTA_COUNT: u64 = 10_000;

/// How often the expiry task deletes expired blobs.
pub const BLOB_EXPIRY_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// Top folder of the blob objects.
const BLOBS_PREFIX: &str = "blobs";

/// The configuration of the blob store is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobConfigError {
    #[error("the blob size limit must be 1 ..= {MAX_BLOB_SIZE} bytes, not {0}")]
    MaxSize(u64),
    #[error("blob folder {path}: {source}")]
    Folder {
        path: String,
        source: std::io::Error,
    },
    #[error("blob URL {0:?}: expected file:///absolute/path or s3://bucket[/prefix]")]
    Url(String),
    #[error("blob URL {0:?}: this build has no S3 support (build with the `s3` feature)")]
    NoS3(String),
    #[error("blob storage: {0}")]
    Storage(#[from] object_store::Error),
}

impl Default for BlobQuota {
    fn default() -> Self {
        Self {
            bytes: DEFAULT_BLOB_QUOTA_BYTES,
            count: DEFAULT_BLOB_QUOTA_COUNT,
        }
    }
}

/// An operation on the blob objects failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// A chunk with other bytes is already stored at this offset.
    #[error("another chunk is already stored at this offset")]
    ChunkMismatch,
    /// An object that a complete blob needs is missing or shorter than the layout says.
    #[error("blob object {0} is missing or truncated")]
    Missing(String),
    /// The object store failed.
    #[error("blob storage: {0}")]
    Storage(#[from] object_store::Error),
}

/// The blob objects and the limits they are kept under. Cheap to clone.
#[derive(Clone)]
pub struct BlobStore {
    objects: Arc<dyn ObjectStore>,
    max_size: u64,
    ttl: Duration,
    quota: BlobQuota,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStore")
            .field("objects", &self.objects.to_string())
            .field("max_size", &self.max_size)
            .field("ttl", &self.ttl)
            .field("quota", &self.quota)
            .finish_non_exhaustive()
    }
}

impl BlobStore {
    /// Blobs in `objects`, with the default size limit and time to live.
    pub fn new(objects: Arc<dyn ObjectStore>) -> Self {
        Self {
            objects,
            max_size: DEFAULT_MAX_BLOB_SIZE,
            ttl: BLOB_TTL,
            quota: BlobQuota::default(),
        }
    }

    /// Blobs in a local folder (created if absent), each write synced to disk before it is
    /// acknowledged.
    pub fn local(folder: &FsPath) -> Result<Self, BlobConfigError> {
        std::fs::create_dir_all(folder).map_err(|source| BlobConfigError::Folder {
            path: folder.display().to_string(),
            source,
        })?;
        let objects = object_store::local::LocalFileSystem::new_with_prefix(folder)?
            .with_fsync(true)
            .with_automatic_cleanup(true);
        Ok(Self::new(Arc::new(objects)))
    }

    /// Blobs where `url` says: `file:///absolute/folder`, or `s3://bucket[/prefix]` with the
    /// `s3` feature (credentials, region and endpoint from the `AWS_*` environment variables,
    /// so any S3-compatible store works).
    pub fn from_url(url: &str) -> Result<Self, BlobConfigError> {
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(BlobConfigError::Url(url.to_owned()));
            }
            return Self::local(FsPath::new(path));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(BlobConfigError::Url(url.to_owned()));
            }
            return Self::s3(url, bucket, prefix.trim_matches('/'));
        }
        Err(BlobConfigError::Url(url.to_owned()))
    }

    #[cfg(feature = "s3")]
    fn s3(_url: &str, bucket: &str, prefix: &str) -> Result<Self, BlobConfigError> {
        let store = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .build()?;
        Ok(if prefix.is_empty() {
            Self::new(Arc::new(store))
        } else {
            Self::new(Arc::new(object_store::prefix::PrefixStore::new(
                store, prefix,
            )))
        })
    }

    #[cfg(not(feature = "s3"))]
    fn s3(url: &str, _bucket: &str, _prefix: &str) -> Result<Self, BlobConfigError> {
        Err(BlobConfigError::NoS3(url.to_owned()))
    }

    /// Sets the largest accepted blob (1 ..= the protocol's `MAX_BLOB_SIZE`).
    pub fn with_max_size(mut self, max_size: u64) -> Result<Self, BlobConfigError> {
        if max_size == 0 || max_size > MAX_BLOB_SIZE {
            return Err(BlobConfigError::MaxSize(max_size));
        }
        self.max_size = max_size;
        Ok(self)
    }

    /// Sets how long a blob is kept after its creation.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets what one account may hold in unexpired blobs.
    pub fn with_quota(mut self, quota: BlobQuota) -> Self {
        self.quota = quota;
        self
    }

    /// The largest accepted blob.
    pub fn max_size(&self) -> u64 {
        self.max_size
    }

    /// What one account may hold in unexpired blobs.
    pub fn quota(&self) -> BlobQuota {
        self.quota
    }

    /// How long a blob is kept after its creation.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The length a chunk at `offset` of a blob of `size` bytes must have.
    pub fn chunk_len(offset: u64, size: u64) -> u64 {
        size.saturating_sub(offset).min(u64::from(BLOB_CHUNK_SIZE))
    }

    /// Stores the chunk at `offset` (a multiple of [`BLOB_CHUNK_SIZE`]) unless the same
    /// bytes are stored there already. See the module docs.
    pub async fn put_chunk(&self, id: BlobId, offset: u64, chunk: &[u8]) -> Result<(), BlobError> {
        let location = chunk_path(id, offset / u64::from(BLOB_CHUNK_SIZE));
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let payload = PutPayload::from(Bytes::copy_from_slice(chunk));
        match self.objects.put_opts(&location, payload, options).await {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => {
                let stored = self.objects.get(&location).await?.bytes().await?;
                if stored.as_ref() == chunk {
                    Ok(())
                } else {
                    Err(BlobError::ChunkMismatch)
                }
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Reads `length` bytes at `offset` of a complete blob of `size` bytes
    /// (`offset + length <= size`, `length <= BLOB_CHUNK_SIZE`).
    pub async fn read(
        &self,
        id: BlobId,
        offset: u64,
        length: u64,
        size: u64,
    ) -> Result<Vec<u8>, BlobError> {
        let chunk_size = u64::from(BLOB_CHUNK_SIZE);
        let mut data = Vec::with_capacity(usize::try_from(length).unwrap_or(0));
        let mut position = offset;
        let end = offset.saturating_add(length).min(size);
        while position < end {
            let index = position / chunk_size;
            let chunk_start = index * chunk_size;
            let chunk_end = (chunk_start + chunk_size).min(end);
            let location = chunk_path(id, index);
            let range = (position - chunk_start)..(chunk_end - chunk_start);
            let wanted = range.end - range.start;
            let bytes = match self.objects.get_range(&location, range).await {
                Ok(bytes) => bytes,
                Err(object_store::Error::NotFound { .. }) => {
                    return Err(BlobError::Missing(location.to_string()));
                }
                Err(error) => return Err(error.into()),
            };
            if bytes.len() as u64 != wanted {
                return Err(BlobError::Missing(location.to_string()));
            }
            data.extend_from_slice(&bytes);
            position = chunk_end;
        }
        Ok(data)
    }

    /// Deletes every object of a blob (none is fine).
    pub async fn delete(&self, id: BlobId) -> Result<(), BlobError> {
        let prefix = blob_prefix(id);
        let locations = self
            .objects
            .list(Some(&prefix))
            .map(|meta| meta.map(|meta| meta.location))
            .boxed();
        let mut deleted = self.objects.delete_stream(locations);
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    /// The ids of the blobs that have objects, for the orphan sweep.
    async fn stored_ids(&self) -> Result<Vec<BlobId>, BlobError> {
        let listing = self
            .objects
            .list_with_delimiter(Some(&Path::from(BLOBS_PREFIX)))
            .await?;
        Ok(listing
            .common_prefixes
            .iter()
            .filter_map(|prefix| prefix.filename().and_then(parse_id))
            .collect())
    }
}

fn blob_prefix(id: BlobId) -> Path {
    Path::from_iter([BLOBS_PREFIX, &hex::encode(id.0)])
}

fn chunk_path(id: BlobId, index: u64) -> Path {
    // Zero-padded so listings sort in upload order.
    Path::from_iter([BLOBS_PREFIX, &hex::encode(id.0), &format!("{index:010}")])
}

fn parse_id(text: &str) -> Option<BlobId> {
    let bytes = hex::decode(text).ok()?;
    Some(BlobId(bytes.try_into().ok()?))
}

/// Deletes expired blobs every `interval` until `stop` is cancelled; sweeps objects without
/// a record once at start.
pub async fn run_expiry<S: MessageStore>(
    store: S,
    blobs: BlobStore,
    interval: Duration,
    stop: CancellationToken,
) {
    tokio::select! {
        () = stop.cancelled() => return,
        () = sweep_orphans(&store, &blobs) => {}
    }
    super::schedule::every(interval, stop, || async {
        expire_once(&store, &blobs, SystemTime::now()).await;
    })
    .await;
}

/// Deletes the blobs expired at `now`: records first (so no new download starts), then
/// objects. Returns how many records went.
pub async fn expire_once<S: MessageStore>(store: &S, blobs: &BlobStore, now: SystemTime) -> usize {
    let expired = match store.expire_blobs(unix_ms(now)).await {
        Ok(expired) => expired,
        Err(error) => {
            tracing::error!(%error, "expiring blobs failed");
            return 0;
        }
    };
    for id in &expired {
        if let Err(error) = blobs.delete(*id).await {
            // The record is gone: the next start's sweep deletes these objects.
            tracing::warn!(%error, blob = %hex::encode(id.0), "deleting an expired blob's objects failed");
        }
    }
    if !expired.is_empty() {
        tracing::info!(expired = expired.len(), "expired blobs");
    }
    expired.len()
}

/// Deletes the objects of blobs that have no record.
async fn sweep_orphans<S: MessageStore>(store: &S, blobs: &BlobStore) {
    let ids = match blobs.stored_ids().await {
        Ok(ids) => ids,
        Err(error) => {
            tracing::warn!(%error, "listing blob objects failed; orphans stay until next start");
            return;
        }
    };
    for id in ids {
        match store.blob(id).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                if let Err(error) = blobs.delete(id).await {
                    tracing::warn!(%error, blob = %hex::encode(id.0), "deleting orphan blob objects failed");
                }
            }
            Err(error) => {
                tracing::warn!(%error, "looking up a blob record failed; sweep stopped");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;
    use crate::store::BlobUsage;

    fn store() -> BlobStore {
        BlobStore::new(Arc::new(InMemory::new()))
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn the_size_limit_is_checked() {
        assert!(store().with_max_size(MAX_BLOB_SIZE).is_ok());
        assert!(matches!(
            store().with_max_size(MAX_BLOB_SIZE + 1),
            Err(BlobConfigError::MaxSize(_))
        ));
        assert!(matches!(
            store().with_max_size(0),
            Err(BlobConfigError::MaxSize(0))
        ));
    }

    #[test]
    fn the_quota_admits_up_to_its_limits_and_not_one_past() {
        let quota = BlobQuota {
            bytes: 100,
            count: 3,
        };
        let usage = |count, bytes| BlobUsage { count, bytes };
        assert_eq!(quota.admit(usage(0, 0), 100), Ok(()));
        assert_eq!(quota.admit(usage(2, 60), 40), Ok(()));
        assert_eq!(
            quota.admit(usage(2, 60), 41),
            Err(QuotaExceeded::Bytes {
                used: 60,
                requested: 41,
                limit: 100
            })
        );
        assert_eq!(
            quota.admit(usage(3, 0), 1),
            Err(QuotaExceeded::Count { used: 3, limit: 3 })
        );
        // No overflow near the top of the range.
        let huge = BlobQuota {
            bytes: u64::MAX,
            count: u64::MAX,
        };
        assert!(huge.admit(usage(1, u64::MAX), 1).is_ok());
        assert!(quota.admit(usage(0, u64::MAX), u64::MAX).is_err());
        assert_eq!(BlobQuota::default().bytes, 1 << 30);
    }

    #[test]
    fn chunk_lengths_follow_the_layout() {
        let chunk = u64::from(BLOB_CHUNK_SIZE);
        assert_eq!(BlobStore::chunk_len(0, 1), 1);
        assert_eq!(BlobStore::chunk_len(0, chunk), chunk);
        assert_eq!(BlobStore::chunk_len(0, chunk + 1), chunk);
        assert_eq!(BlobStore::chunk_len(chunk, chunk + 1), 1);
        assert_eq!(BlobStore::chunk_len(chunk + 1, chunk + 1), 0);
    }

    #[test]
    fn urls_are_checked() {
        assert!(matches!(
            BlobStore::from_url("ftp://x"),
            Err(BlobConfigError::Url(_))
        ));
        assert!(matches!(
            BlobStore::from_url("file://relative"),
            Err(BlobConfigError::Url(_))
        ));
        assert!(matches!(
            BlobStore::from_url("s3:///prefix"),
            Err(BlobConfigError::Url(_))
        ));
        let folder = tempfile::tempdir().expect("tempdir");
        let url = format!("file://{}", folder.path().join("blobs").display());
        assert!(BlobStore::from_url(&url).is_ok());
        assert!(folder.path().join("blobs").is_dir());
    }

    #[tokio::test]
    async fn reads_span_chunks_and_retries_of_the_same_bytes_are_accepted() {
        let blobs = store();
        let id = BlobId([1; 16]);
        let chunk = usize::try_from(BLOB_CHUNK_SIZE).expect("fits");
        let data = pattern(2 * chunk + 100, 5);
        for (index, piece) in data.chunks(chunk).enumerate() {
            let offset = (index * chunk) as u64;
            blobs.put_chunk(id, offset, piece).await.expect("stored");
            // A retry with the same bytes is fine; other bytes are refused.
            blobs.put_chunk(id, offset, piece).await.expect("retry");
            let mut other = piece.to_vec();
            other[0] ^= 1;
            assert!(matches!(
                blobs.put_chunk(id, offset, &other).await,
                Err(BlobError::ChunkMismatch)
            ));
        }
        let size = data.len() as u64;
        for (offset, length) in [(0, 10), (chunk as u64 - 5, chunk as u64), (size - 3, 3)] {
            let read = blobs.read(id, offset, length, size).await.expect("read");
            let start = usize::try_from(offset).expect("fits");
            let end = start + usize::try_from(length).expect("fits");
            assert_eq!(read, data[start..end]);
        }
        blobs.delete(id).await.expect("deleted");
        assert!(matches!(
            blobs.read(id, 0, 10, size).await,
            Err(BlobError::Missing(_))
        ));
        blobs.delete(id).await.expect("deleting nothing is fine");
    }

    #[tokio::test]
    async fn stored_ids_lists_blobs_with_objects() {
        let blobs = store();
        blobs
            .put_chunk(BlobId([2; 16]), 0, b"x")
            .await
            .expect("stored");
        blobs
            .put_chunk(BlobId([3; 16]), 0, b"y")
            .await
            .expect("stored");
        let mut ids = blobs.stored_ids().await.expect("listed");
        ids.sort();
        assert_eq!(ids, vec![BlobId([2; 16]), BlobId([3; 16])]);
    }
}
