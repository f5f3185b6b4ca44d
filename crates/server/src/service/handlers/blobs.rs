//! Blob requests: create, upload a chunk, status (resume), download a range. The storage
//! layout and the upload protocol are in `service::blobs`.
//!
//! An upload and its status belong to the account that created the blob; a download is open
//! to every registered device that knows the (random, 16-byte) id, which travels inside an
//! end-to-end encrypted message with the keys that decrypt the blob. A creation that would
//! take the account past its quota (`service::blobs`, "Quota") is refused with
//! `QuotaExceeded`.

use confianza_api::{BlobId, BlobStatus, ErrorCode, ResponseBody};
use rand::Rng;

use crate::service::blobs::{BLOB_CHUNK_SIZE, BlobError, BlobStore};
use crate::service::error::Failure;
use crate::service::session::Session;
use crate::service::state::unix_ms;
use crate::store::{BlobRecord, MessageStore, StoreError};

/// Attempts at drawing a fresh blob id; a collision of 128 random bits never happens, a
/// second one even less.
const BLOB_ID_ATTEMPTS: usize = 2;

fn status(record: &BlobRecord) -> BlobStatus {
    BlobStatus {
        blob_id: record.id,
        size: record.size,
        received: record.received,
        complete: record.complete(),
        expires_at_ms: record.expires_at_ms,
    }
}

fn storage_failure(error: BlobError) -> Failure {
    match error {
        BlobError::ChunkMismatch => Failure::refuse(
            ErrorCode::Conflict,
            "different bytes were already uploaded at this offset; upload them again or \
             create a new blob",
        ),
        other => {
            tracing::error!(error = %other, "blob storage failure");
            Failure::refuse(ErrorCode::Internal, "internal server error")
        }
    }
}

impl<S: MessageStore + Clone> Session<S> {
    /// The blob store, or `Unsupported` when this server has none (after authentication).
    fn blob_store(&self) -> Result<BlobStore, Failure> {
        self.authenticated()?;
        self.shared
            .blobs
            .clone()
            .ok_or_else(|| Failure::refuse(ErrorCode::Unsupported, "this server has no blob store"))
    }

    /// The record of `id`, refused when unknown or expired.
    async fn live_blob(&self, id: BlobId) -> Result<BlobRecord, Failure> {
        let record = self
            .shared
            .store
            .blob(id)
            .await?
            .ok_or_else(|| Failure::refuse(ErrorCode::NotFound, "no such blob"))?;
        if record.expires_at_ms <= unix_ms(self.now()) {
            return Err(Failure::refuse(ErrorCode::Expired, "the blob has expired"));
        }
        Ok(record)
    }

    /// The record of `id` if the caller's account owns it.
    async fn own_blob(&self, id: BlobId) -> Result<BlobRecord, Failure> {
        let me = self.me()?;
        let record = self.live_blob(id).await?;
        if record.owner != me.address {
            return Err(Failure::refuse(
                ErrorCode::Forbidden,
                "this blob belongs to another account",
            ));
        }
        Ok(record)
    }

    pub(crate) async fn blob_create(&mut self, size: u64) -> Result<ResponseBody, Failure> {
        let me = self.me()?;
        let blobs = self.blob_store()?;
        if size > blobs.max_size() {
            return Err(Failure::refuse(
                ErrorCode::TooLarge,
                format!(
                    "blobs on this server are at most {} bytes",
                    blobs.max_size()
                ),
            ));
        }
        let now_ms = unix_ms(self.now());
        let expires_at_ms =
            now_ms.saturating_add(u64::try_from(blobs.ttl().as_millis()).unwrap_or(u64::MAX));
        for _ in 0..BLOB_ID_ATTEMPTS {
            let mut id = [0u8; confianza_api::limits::len::BLOB_ID];
            rand::rng().fill_bytes(&mut id);
            let record = BlobRecord {
                id: BlobId(id),
                owner: me.address.clone(),
                size,
                received: 0,
                expires_at_ms,
            };
            // The store checks the quota and records the blob in one atomic step, so creations
            // racing on this node or on others cannot both fit the same remaining quota.
            let created = self
                .shared
                .store
                .create_blob_within_quota(&record, blobs.quota(), now_ms)
                .await;
            match created {
                Ok(Ok(())) => {
                    return Ok(ResponseBody::BlobCreated {
                        blob_id: record.id,
                        chunk_size: BLOB_CHUNK_SIZE,
                        expires_at_ms,
                    });
                }
                Ok(Err(exceeded)) => {
                    return Err(Failure::refuse(
                        ErrorCode::QuotaExceeded,
                        exceeded.to_string(),
                    ));
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        tracing::error!("blob id collisions on every attempt");
        Err(Failure::refuse(
            ErrorCode::Internal,
            "internal server error",
        ))
    }

    pub(crate) async fn blob_upload(
        &mut self,
        blob_id: BlobId,
        offset: u64,
        chunk: Vec<u8>,
    ) -> Result<ResponseBody, Failure> {
        let blobs = self.blob_store()?;
        let record = self.own_blob(blob_id).await?;
        if record.complete() {
            return Err(Failure::refuse(
                ErrorCode::Conflict,
                "the blob is already complete",
            ));
        }
        if offset != record.received {
            return Err(Failure::refuse(
                ErrorCode::BadRequest,
                format!(
                    "the upload resumes at offset {}, not {offset}",
                    record.received
                ),
            ));
        }
        let expected = BlobStore::chunk_len(offset, record.size);
        if chunk.len() as u64 != expected {
            return Err(Failure::refuse(
                ErrorCode::BadRequest,
                format!(
                    "the chunk at offset {offset} must be {expected} bytes, not {}",
                    chunk.len()
                ),
            ));
        }
        blobs
            .put_chunk(blob_id, offset, &chunk)
            .await
            .map_err(storage_failure)?;
        let received = offset + expected;
        match self
            .shared
            .store
            .advance_blob(blob_id, offset, received)
            .await
        {
            Ok(()) => {}
            // Another upload of the same chunk won the race: its bytes are these bytes.
            Err(StoreError::Conflict(_)) => {
                return Err(Failure::refuse(
                    ErrorCode::BadRequest,
                    "the upload moved on meanwhile; ask BlobStatus where to resume",
                ));
            }
            Err(error) => return Err(error.into()),
        }
        Ok(ResponseBody::BlobStatus(status(&BlobRecord {
            received,
            ..record
        })))
    }

    pub(crate) async fn blob_status(&mut self, blob_id: BlobId) -> Result<ResponseBody, Failure> {
        self.blob_store()?;
        let record = self.own_blob(blob_id).await?;
        Ok(ResponseBody::BlobStatus(status(&record)))
    }

    pub(crate) async fn blob_download(
        &mut self,
        blob_id: BlobId,
        offset: u64,
        length: u32,
    ) -> Result<ResponseBody, Failure> {
        let blobs = self.blob_store()?;
        let record = self.live_blob(blob_id).await?;
        if !record.complete() {
            return Err(Failure::refuse(
                ErrorCode::NotFound,
                "the blob's upload is not complete",
            ));
        }
        if offset >= record.size {
            return Err(Failure::refuse(
                ErrorCode::BadRequest,
                format!("offset {offset} is past the blob's {} bytes", record.size),
            ));
        }
        let length = u64::from(length).min(record.size - offset);
        let data = blobs
            .read(blob_id, offset, length, record.size)
            .await
            .map_err(storage_failure)?;
        Ok(ResponseBody::BlobChunk {
            blob_id,
            offset,
            size: record.size,
            data,
        })
    }
}
