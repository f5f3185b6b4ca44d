//! WAL checkpoints off the store's thread.
//!
//! A checkpoint copies the write-ahead log back into the database file and syncs that file to
//! disk, which takes milliseconds. By default SQLite runs it inside the commit that takes the log
//! past 1 000 pages, so every few batches one store call would stall for it (the mailbox writes
//! of one batch touch a few hundred pages). The store's connection leaves checkpoints to a
//! second thread with its own connection instead: after a burst of jobs the store nudges it, and
//! it runs a passive checkpoint, which never blocks the writer, at most once per [`INTERVAL`].
//! The store's own automatic checkpoint stays on as a safety net at a larger log size
//! ([`FALLBACK_PAGES`]), should the checkpointer fall behind.
//!
//! A passive checkpoint copies only the frames committed before it started, and SQLite starts
//! the log over from its beginning only when a write begins with every frame copied. Under a
//! steady write load the store commits during each background checkpoint, so that never
//! happened: the log grew by tens of megabytes a second, every frame landed in fresh file pages
//! (which the kernel zeroes first) and the WAL index grew with it. So once the log passes
//! [`RESTART_PAGES`] the checkpointer asks the store thread to run one checkpoint itself between
//! two jobs: with no write in flight it copies the few frames left and the next commit starts
//! the log over.
//!
//! Durability does not depend on checkpoints: a commit is in the log when the store call returns.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use rusqlite::Connection;

use super::super::StoreError;

/// The shortest time between two checkpoints under a steady write load.
pub(super) const INTERVAL: Duration = Duration::from_millis(100);

/// The log size (pages) at which the store's own connection checkpoints anyway.
/// (Pages are 16 KiB in a database created since the page size was raised, 4 KiB in older ones.)
pub(super) const FALLBACK_PAGES: i64 = 4_096;

/// The log size (pages) past which the store thread finishes a checkpoint itself, so that the
/// log starts over (see the module documentation).
const RESTART_PAGES: i64 = 1_024;

/// The store's handle on its checkpoint thread, which ends when the handle is dropped.
#[derive(Debug)]
pub(super) struct Checkpointer {
    nudges: mpsc::SyncSender<()>,
    /// Set by the checkpoint thread when the log should start over.
    restart: Arc<AtomicBool>,
}

impl Checkpointer {
    /// Starts a thread named `name` that checkpoints through `connection` when nudged.
    pub(super) fn spawn(connection: Connection, name: &str) -> Result<Self, StoreError> {
        // One slot: nudges that arrive while a checkpoint is due anyway are merged into it.
        let (nudges, received) = mpsc::sync_channel(1);
        let restart = Arc::new(AtomicBool::new(false));
        let asks = restart.clone();
        thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || serve(&connection, &received, &asks))
            .map_err(|error| {
                StoreError::Stopped(format!("cannot start its checkpoint thread: {error}"))
            })?;
        Ok(Self { nudges, restart })
    }

    /// Asks for a checkpoint soon. Never blocks.
    pub(super) fn nudge(&self) {
        // Full: a checkpoint is already due. Disconnected: the thread ended (logged there).
        let _ = self.nudges.try_send(());
    }

    /// Runs the checkpoint that lets the log start over, if the checkpoint thread asked for it,
    /// on `connection`, the store's own (called by the store thread between jobs).
    pub(super) fn restart_if_asked(&self, connection: &Connection) {
        if !self.restart.swap(false, Ordering::Relaxed) {
            return;
        }
        match checkpoint(connection) {
            // Busy: the checkpoint thread is copying right now; ask again after the next job.
            Ok((busy, _, _)) if busy != 0 => self.restart.store(true, Ordering::Relaxed),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "SQLite message store: WAL checkpoint failed"),
        }
    }
}

/// A passive checkpoint: (busy, pages in the log, pages copied), as SQLite reports them.
fn checkpoint(connection: &Connection) -> rusqlite::Result<(i64, i64, i64)> {
    connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
    })
}

fn serve(connection: &Connection, nudges: &mpsc::Receiver<()>, restart: &AtomicBool) {
    while nudges.recv().is_ok() {
        match checkpoint(connection) {
            Ok((_, log, _)) if log >= RESTART_PAGES => restart.store(true, Ordering::Relaxed),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "SQLite message store: WAL checkpoint failed"),
        }
        // Writes made meanwhile nudge again and are taken by the next checkpoint.
        thread::sleep(INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_nudge_copies_the_log_into_the_database_file() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("wal.db");
        let writer = Connection::open(&path).expect("open");
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; \
                 CREATE TABLE t (b BLOB NOT NULL);",
            )
            .expect("set up");
        let checkpointer =
            Checkpointer::spawn(Connection::open(&path).expect("open"), "test-checkpoint")
                .expect("thread");
        let size = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let before = size();
        writer
            .execute(
                "INSERT INTO t (b) SELECT zeroblob(1024) FROM \
                 (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) \
                  SELECT i FROM n)",
                [],
            )
            .expect("insert");
        // Without a checkpoint the rows live in the log only.
        assert_eq!(size(), before);
        checkpointer.nudge();
        checkpointer.nudge();
        let deadline = Instant::now() + Duration::from_secs(10);
        while size() < before + 1_000_000 {
            assert!(Instant::now() < deadline, "no checkpoint within 10 s");
            thread::sleep(Duration::from_millis(10));
        }
    }
}
