//! Blob metadata, run on the connection thread.

use confianza_api::BlobId;
use rusqlite::{Connection, OptionalExtension};

use super::super::rows::{col_array, col_u64, db_int};
use super::{blob, is_unique_violation, write};
use crate::store::{BlobQuota, BlobRecord, BlobUsage, QuotaExceeded, StoreError};

pub(super) fn create_blob(
    connection: &mut Connection,
    record: &BlobRecord,
) -> Result<(), StoreError> {
    insert_blob(connection, record)
}

/// Checks the owner's usage and inserts the record in one write transaction: `BEGIN IMMEDIATE`
/// holds SQLite's write lock from the usage query to the commit, so no other creation (on this
/// connection or another process's) can come between the check and the insert.
pub(super) fn create_blob_within_quota(
    connection: &mut Connection,
    record: &BlobRecord,
    quota: BlobQuota,
    now_ms: u64,
) -> Result<Result<(), QuotaExceeded>, StoreError> {
    let tx = write(connection)?;
    let usage = usage_of(&tx, &record.owner, now_ms)?;
    if let Err(exceeded) = quota.admit(usage, record.size) {
        return Ok(Err(exceeded));
    }
    insert_blob(&tx, record)?;
    tx.commit()?;
    Ok(Ok(()))
}

fn insert_blob(connection: &Connection, record: &BlobRecord) -> Result<(), StoreError> {
    let inserted = connection
        .prepare_cached(
            "INSERT INTO blobs (id, owner, size, received, expires_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute((
            &record.id.0[..],
            &record.owner,
            db_int(record.size),
            db_int(record.received),
            db_int(record.expires_at_ms),
        ));
    match inserted {
        Err(e) if is_unique_violation(&e) => {
            Err(StoreError::Conflict("blob id already taken".to_owned()))
        }
        other => other.map(|_| ()).map_err(StoreError::from),
    }
}

fn read_blob(connection: &Connection, id: BlobId) -> Result<Option<BlobRecord>, StoreError> {
    let row: Option<(String, i64, i64, i64)> = connection
        .prepare_cached("SELECT owner, size, received, expires_at_ms FROM blobs WHERE id = ?1")?
        .query_row([&id.0[..]], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .optional()?;
    row.map(|(owner, size, received, expires)| {
        Ok(BlobRecord {
            id,
            owner,
            size: col_u64(size, "size")?,
            received: col_u64(received, "received")?,
            expires_at_ms: col_u64(expires, "expires_at_ms")?,
        })
    })
    .transpose()
}

pub(super) fn blob_record(
    connection: &mut Connection,
    id: BlobId,
) -> Result<Option<BlobRecord>, StoreError> {
    read_blob(connection, id)
}

pub(super) fn advance_blob(
    connection: &mut Connection,
    id: BlobId,
    from: u64,
    to: u64,
) -> Result<(), StoreError> {
    // The refusal reads the record again: one transaction, so it explains the state that
    // refused the move.
    let tx = write(connection)?;
    let updated = tx
        .prepare_cached(
            "UPDATE blobs SET received = ?3 \
             WHERE id = ?1 AND received = ?2 AND ?3 >= ?2 AND ?3 <= size",
        )?
        .execute((&id.0[..], db_int(from), db_int(to)))?;
    if updated == 1 {
        tx.commit()?;
        return Ok(());
    }
    match read_blob(&tx, id)? {
        None => Err(StoreError::NotFound("blob".to_owned())),
        Some(record) if record.received != from => Err(StoreError::Conflict(format!(
            "blob upload is at {}, not {from}",
            record.received
        ))),
        Some(record) => Err(StoreError::Conflict(format!(
            "cannot move a blob of {} bytes from {from} to {to}",
            record.size
        ))),
    }
}

pub(super) fn expire_blobs(
    connection: &mut Connection,
    now_ms: u64,
) -> Result<Vec<BlobId>, StoreError> {
    // In a transaction: an id that does not decode rolls the deletion back.
    let tx = write(connection)?;
    let mut ids = Vec::new();
    {
        let mut statement =
            tx.prepare_cached("DELETE FROM blobs WHERE expires_at_ms <= ?1 RETURNING id")?;
        let mut rows = statement.query([db_int(now_ms)])?;
        while let Some(row) = rows.next()? {
            ids.push(BlobId(col_array(blob(row, 0, "blob id")?, "blob id")?));
        }
    }
    tx.commit()?;
    Ok(ids)
}

pub(super) fn blob_usage(
    connection: &mut Connection,
    owner: &str,
    now_ms: u64,
) -> Result<BlobUsage, StoreError> {
    usage_of(connection, owner, now_ms)
}

fn usage_of(connection: &Connection, owner: &str, now_ms: u64) -> Result<BlobUsage, StoreError> {
    let (count, bytes): (i64, i64) = connection
        .prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM blobs \
             WHERE owner = ?1 AND expires_at_ms > ?2",
        )?
        .query_row((owner, db_int(now_ms)), |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    Ok(BlobUsage {
        count: col_u64(count, "blob count")?,
        bytes: col_u64(bytes, "blob bytes")?,
    })
}
