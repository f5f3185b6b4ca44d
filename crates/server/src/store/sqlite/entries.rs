//! Rows of the `mailbox` table written and deleted several at a time.
//!
//! Each SQLite statement run costs a fixed part beside its rows: cursors opened and closed on
//! the table and its indexes, a statement journal, the parent check of the foreign key, and for
//! `DELETE … RETURNING` an ephemeral table to hold the returned rows. With one statement per
//! entry that fixed part was most of the store thread's work on a relayed message (its entry and
//! its receipt are each inserted and deleted once). Here entries are inserted with one
//! multi-row `INSERT` per [`CHUNK`] rows and acknowledged with one `SELECT` and one `DELETE`
//! per [`CHUNK`] delivery ids; the per-device counters of a batch (`mailbox_counters`) are
//! written [`CHUNK`] devices per statement as well. The statements of each size are prepared
//! once and cached.

use std::sync::OnceLock;

use rusqlite::types::ToSql;
use rusqlite::{Connection, OptionalExtension};

use crate::store::StoreError;

/// Rows (or ids) per statement.
pub(super) const CHUNK: usize = 16;

/// Columns of an entry row, in the order of [`EntryRow::params`].
const COLUMNS: &str = "seq, device, delivery_id, kind, peer_address, peer_device_id, \
                       client_message_ids, server_timestamp_ms, expires_at_ms, ciphertext_type, \
                       body, shared_body, group_id";
const COLUMN_COUNT: usize = 13;

/// One row of the `mailbox` table, borrowed from what it is made of.
#[derive(Debug)]
pub(super) struct EntryRow<'a> {
    pub seq: i64,
    pub device: i64,
    pub delivery_id: i64,
    pub kind: i64,
    pub peer_address: &'a str,
    pub peer_device_id: i64,
    pub client_message_ids: &'a [u8],
    pub server_timestamp_ms: i64,
    pub expires_at_ms: i64,
    pub ciphertext_type: Option<i64>,
    pub body: Option<&'a [u8]>,
    pub shared_body: Option<i64>,
    pub group_id: Option<&'a [u8]>,
}

impl EntryRow<'_> {
    fn params(&self) -> [&dyn ToSql; COLUMN_COUNT] {
        [
            &self.seq,
            &self.device,
            &self.delivery_id,
            &self.kind,
            &self.peer_address,
            &self.peer_device_id,
            &self.client_message_ids,
            &self.server_timestamp_ms,
            &self.expires_at_ms,
            &self.ciphertext_type,
            &self.body,
            &self.shared_body,
            &self.group_id,
        ]
    }
}

/// The row id the next entry takes: entries are numbered in arrival order by the store itself,
/// so that the rows of a multi-row insert have known ids (the dedupe index keeps them).
pub(super) fn next_seq(tx: &Connection) -> Result<i64, StoreError> {
    let last: Option<i64> = tx
        .prepare_cached("SELECT MAX(seq) FROM mailbox")?
        .query_row([], |row| row.get(0))
        .optional()?
        .flatten();
    Ok(last.unwrap_or(0) + 1)
}

/// Inserts `rows`, [`CHUNK`] per statement.
pub(super) fn insert(tx: &Connection, rows: &[EntryRow<'_>]) -> Result<(), StoreError> {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    let sql = SQL.get_or_init(|| {
        let row = format!("({})", vec!["?"; COLUMN_COUNT].join(", "));
        by_row_count(&format!("INSERT INTO mailbox ({COLUMNS}) VALUES"), &row, "")
    });
    execute_chunked(tx, sql, rows, EntryRow::params)
}

/// The statements `{head} {row}, {row}, … {tail}` for 1 ..= [`CHUNK`] rows.
fn by_row_count(head: &str, row: &str, tail: &str) -> Vec<String> {
    (1..=CHUNK)
        .map(|n| format!("{head} {} {tail}", vec![row; n].join(", ")))
        .collect()
}

/// Runs the statements of [`by_row_count`] over `rows`, [`CHUNK`] rows per statement. Each
/// statement is looked up once per call: the cache hashes and compares its long text.
fn execute_chunked<T, const N: usize>(
    tx: &Connection,
    sql: &[String],
    rows: &[T],
    params: for<'r> fn(&'r T) -> [&'r dyn ToSql; N],
) -> Result<(), StoreError> {
    let run = |statement: &mut rusqlite::CachedStatement<'_>, chunk: &[T]| {
        let values: Vec<&dyn ToSql> = chunk.iter().flat_map(params).collect();
        statement.execute(values.as_slice())
    };
    let chunks = rows.chunks_exact(CHUNK);
    let rest = chunks.remainder();
    if rows.len() >= CHUNK {
        let mut statement = tx.prepare_cached(&sql[CHUNK - 1])?;
        for chunk in chunks {
            run(&mut statement, chunk)?;
        }
    }
    if !rest.is_empty() {
        run(&mut tx.prepare_cached(&sql[rest.len() - 1])?, rest)?;
    }
    Ok(())
}

/// The columns an acknowledgement reads of each entry it deletes.
#[derive(Debug)]
pub(super) struct Acked {
    pub seq: i64,
    pub device: i64,
    pub delivery_id: i64,
    pub kind: i64,
    pub peer_address: String,
    pub peer_device_id: i64,
    pub client_message_ids: Vec<u8>,
    pub shared_body: Option<i64>,
}

/// Deletes the entries named by `(device row, delivery id)` pairs (without repeats), whatever
/// their devices, and returns them sorted by device and delivery id; pairs with no entry are
/// skipped.
pub(super) fn delete_acknowledged(
    tx: &Connection,
    pairs: &[(i64, i64)],
) -> Result<Vec<Acked>, StoreError> {
    static SQL: OnceLock<String> = OnceLock::new();
    let sql = SQL.get_or_init(|| {
        // Each term is one search of the (device, delivery_id) index (SQLite's OR optimisation);
        // RETURNING reads each row as it is deleted instead of in a search of its own.
        let terms: Vec<String> = (0..CHUNK)
            .map(|n| format!("(device = ?{} AND delivery_id = ?{})", 2 * n + 1, 2 * n + 2))
            .collect();
        format!(
            "DELETE FROM mailbox WHERE {} RETURNING seq, device, delivery_id, kind, \
             peer_address, peer_device_id, client_message_ids, shared_body",
            terms.join(" OR ")
        )
    });
    let mut acked = Vec::with_capacity(pairs.len());
    // Unused places of a chunk are NULL, which nothing equals.
    let mut params: Vec<Option<i64>> = Vec::with_capacity(2 * CHUNK);
    let mut delete = tx.prepare_cached(sql)?;
    for chunk in pairs.chunks(CHUNK) {
        params.clear();
        for &(device, delivery_id) in chunk {
            params.extend([Some(device), Some(delivery_id)]);
        }
        params.resize(2 * CHUNK, None);
        let mut rows = delete.query(rusqlite::params_from_iter(&params))?;
        while let Some(row) = rows.next()? {
            acked.push(Acked {
                seq: row.get(0)?,
                device: row.get(1)?,
                delivery_id: row.get(2)?,
                kind: row.get(3)?,
                peer_address: row.get(4)?,
                peer_device_id: row.get(5)?,
                client_message_ids: row.get(6)?,
                shared_body: row.get(7)?,
            });
        }
    }
    acked.sort_unstable_by_key(|entry| (entry.device, entry.delivery_id));
    Ok(acked)
}

/// Sets the counters of the given devices: `(device row, last delivery id, queued)`, [`CHUNK`]
/// devices per statement (a device's row is created by its first entry).
pub(super) fn write_counters(
    tx: &Connection,
    counters: &[(i64, i64, i64)],
) -> Result<(), StoreError> {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    let sql = SQL.get_or_init(|| {
        by_row_count(
            "INSERT INTO mailbox_counters (device, last_delivery_id, queued) VALUES",
            "(?, ?, ?)",
            "ON CONFLICT (device) DO UPDATE \
             SET last_delivery_id = excluded.last_delivery_id, queued = excluded.queued",
        )
    });
    execute_chunked(tx, sql, counters, |(device, last, queued)| {
        [device as &dyn ToSql, last, queued]
    })
}

/// Lowers the queued count of each given device (`(device row, entries deleted)`), [`CHUNK`]
/// devices per statement.
pub(super) fn decrement_queued(tx: &Connection, deleted: &[(i64, i64)]) -> Result<(), StoreError> {
    static SQL: OnceLock<String> = OnceLock::new();
    let sql = SQL.get_or_init(|| {
        let cases: Vec<String> = (0..CHUNK)
            .map(|n| format!("WHEN ?{} THEN ?{}", 2 * n + 1, 2 * n + 2))
            .collect();
        let devices: Vec<String> = (0..CHUNK).map(|n| format!("?{}", 2 * n + 1)).collect();
        format!(
            "UPDATE mailbox_counters SET queued = queued - CASE device {} ELSE 0 END \
             WHERE device IN ({})",
            cases.join(" "),
            devices.join(", ")
        )
    });
    if deleted.is_empty() {
        return Ok(());
    }
    let mut statement = tx.prepare_cached(sql)?;
    // Unused places of a chunk are NULL, which no device equals.
    let mut params: Vec<Option<i64>> = Vec::with_capacity(2 * CHUNK);
    for chunk in deleted.chunks(CHUNK) {
        params.clear();
        for &(device, count) in chunk {
            params.extend([Some(device), Some(count)]);
        }
        params.resize(2 * CHUNK, None);
        statement.execute(rusqlite::params_from_iter(&params))?;
    }
    Ok(())
}
