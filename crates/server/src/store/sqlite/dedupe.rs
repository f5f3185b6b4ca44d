//! Which messages are queued, by recipient device, sender device and client message id: the
//! dedupe index of the SQLite mailbox, kept in the store thread's memory instead of in the
//! database.
//!
//! A client message id is random, so an index on it takes every new entry at a random place:
//! with many messages queued (recipients offline) a writer batch dirtied a page of that index per
//! message, and SQLite writes each dirtied page to the WAL at every commit — it was most of what
//! the store thread wrote. Here the index is a hash map from a keyed hash of the dedupe key to
//! the entry's row (`mailbox.seq`), about 20 bytes per queued message (20 MB per million). A hit
//! is confirmed on the row itself, so a hash collision or an entry that is no longer there can
//! never drop a message; the map is only ever missing entries if another process wrote the
//! mailbox, which is detected:
//!
//! * The map is built from the mailbox by the first write of the store thread, which also writes
//!   a random token into `mailbox_owner`.
//! * Before each write the thread reads SQLite's `data_version`, which changes when another
//!   connection has committed. Then it reads the token: another message store on the same file
//!   writes its own, and this store rebuilds its map (inside its write transaction, so nobody
//!   writes between the rebuild and its use). Other writers of the file (the CA's pool) leave the
//!   token alone and cost one read.
//! * Changes of a transaction reach the map only after its commit; a rolled-back transaction
//!   leaves the map as it was.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

use rusqlite::{Connection, OptionalExtension};

use crate::store::StoreError;

/// The dedupe index of the SQLite mailbox (see the module documentation).
#[derive(Debug, Default)]
pub(super) struct Dedupe {
    /// Keyed with per-process random keys, so a client cannot make its ids collide on purpose.
    hasher: RandomState,
    /// Dedupe key hash → the row of the queued message (`mailbox.seq`).
    rows: HashMap<u64, i64>,
    /// The token this store wrote into `mailbox_owner` when it built the map; `None` before the
    /// first build.
    token: Option<[u8; 16]>,
    /// The connection's `data_version` when the map was last known to be complete.
    data_version: i64,
}

/// What a transaction did to the mailbox's messages, applied to the map after its commit.
#[derive(Debug, Default)]
pub(super) struct Changes {
    added: Vec<(u64, i64)>,
    removed: Vec<(u64, i64)>,
}

impl Changes {
    /// A message was stored in row `seq`.
    pub(super) fn added(&mut self, key: u64, seq: i64) {
        self.added.push((key, seq));
    }

    /// The message in row `seq` was deleted.
    pub(super) fn removed(&mut self, key: u64, seq: i64) {
        self.removed.push((key, seq));
    }
}

impl Dedupe {
    /// The hash of a message's dedupe key: recipient device row, sender, client message id.
    pub(super) fn key(&self, device: i64, sender: &str, sender_device: i64, id: &[u8]) -> u64 {
        self.hasher.hash_one((device, sender, sender_device, id))
    }

    /// The row that may hold a queued message with this key (to be confirmed on the row).
    pub(super) fn candidate(&self, key: u64) -> Option<i64> {
        self.rows.get(&key).copied()
    }

    /// Makes the map complete for the transaction `tx` is in (a write transaction: no other
    /// connection commits until it ends).
    pub(super) fn sync(&mut self, tx: &Connection) -> Result<(), StoreError> {
        let version: i64 = tx.query_row("PRAGMA data_version", [], |row| row.get(0))?;
        if let Some(token) = self.token {
            if version == self.data_version {
                return Ok(());
            }
            let owner: Option<Vec<u8>> = tx
                .prepare_cached("SELECT token FROM mailbox_owner WHERE id = 1")?
                .query_row([], |row| row.get(0))
                .optional()?;
            if owner.as_deref() == Some(&token[..]) {
                self.data_version = version;
                return Ok(());
            }
            tracing::info!(
                "another message store wrote this SQLite file: rebuilding the dedupe index"
            );
        }
        self.rebuild(tx)?;
        self.data_version = version;
        Ok(())
    }

    fn rebuild(&mut self, tx: &Connection) -> Result<(), StoreError> {
        // Incomplete until the end (a failure half-way makes the next write start over).
        self.token = None;
        let token: [u8; 16] = rand::random();
        tx.prepare_cached(
            "INSERT INTO mailbox_owner (id, token) VALUES (1, ?1) \
             ON CONFLICT (id) DO UPDATE SET token = excluded.token",
        )?
        .execute([&token[..]])?;
        self.rows.clear();
        let mut select = tx.prepare_cached(
            "SELECT seq, device, peer_address, peer_device_id, client_message_ids \
             FROM mailbox WHERE kind = 0",
        )?;
        let mut rows = select.query([])?;
        while let Some(row) = rows.next()? {
            let address: String = row.get(2)?;
            let id: Vec<u8> = row.get(4)?;
            let key = self.key(row.get(1)?, &address, row.get(3)?, &id);
            self.rows.insert(key, row.get(0)?);
        }
        self.token = Some(token);
        Ok(())
    }

    /// Applies what a committed transaction did. A removal whose key now names another row
    /// (stored again since) leaves that row.
    pub(super) fn apply(&mut self, changes: Changes) {
        for (key, seq) in changes.removed {
            if self.rows.get(&key) == Some(&seq) {
                self.rows.remove(&key);
            }
        }
        for (key, seq) in changes.added {
            self.rows.insert(key, seq);
        }
    }
}
