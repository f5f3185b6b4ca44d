//! What the store suites (`store_conformance`, `store_guarantees`) share besides the
//! PostgreSQL schema of `postgres.rs`: a fresh SQLite message store, and running a test so that
//! its clean-up happens also when it panics. A suite includes it on its own,
//! `#[path = "support/store_fixture.rs"] mod store_fixture;`.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use confianza_server::store::{Database, SqliteStore};
use futures_util::FutureExt;

/// A migrated SQLite database in a fresh temporary directory, and its message store.
pub async fn sqlite_store() -> (tempfile::TempDir, Database, SqliteStore) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = Database::open_sqlite_file(&dir.path().join("server.db"))
        .await
        .expect("open SQLite");
    let Database::Sqlite(pool) = &db else {
        unreachable!("a SQLite file opens as SQLite")
    };
    let store = SqliteStore::open(pool).expect("message store");
    (dir, db, store)
}

/// Runs `test`, then `clean_up`, also when the test panics (the panic is resumed after).
pub async fn run_then<Fut, Clean, CleanFut>(test: Fut, clean_up: Clean)
where
    Fut: Future<Output = ()>,
    Clean: FnOnce() -> CleanFut,
    CleanFut: Future<Output = ()>,
{
    let outcome = AssertUnwindSafe(test).catch_unwind().await;
    clean_up().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
