//! Durable state behind traits, with two backends: SQLite (embedded default, WAL) and
//! PostgreSQL (several nodes). Both run the migrations in `migrations/{sqlite,postgres}` and pass
//! the same conformance suites (`tests/store_conformance.rs`, `tests/ca_store.rs`).

pub mod any;
pub mod ca;
pub mod messages;
pub mod postgres;
mod rows;
pub mod sqlite;

pub use any::AnyMessageStore;
pub use messages::*;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// What a store operation can fail with. Each variant maps to one API error code.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The SQLite message store's own connection failed.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The SQLite message store's connection thread is gone: no call runs any more.
    #[error("the SQLite message store stopped: {0}")]
    Stopped(String),
    /// A store call panicked; its transaction was rolled back and the store goes on.
    #[error("store call panicked: {0}")]
    Panicked(String),
}

/// How long a SQLite connection waits for another connection's write lock.
pub(crate) const SQLITE_BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The page size of a new SQLite database (see [`Database::connect`]).
pub(crate) const SQLITE_PAGE_SIZE: u32 = 16 * 1024;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::str::FromStr;

/// An open database: the connection pool of one backend, migrated to the current schema.
/// Each store (messages, CA) wraps a clone of it.
#[derive(Debug, Clone)]
pub enum Database {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Database {
    /// Opens `url` (`sqlite://PATH` — created if missing — or `postgres://…`) and runs the
    /// migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let db = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)?;
            Self::Postgres(
                PgPoolOptions::new()
                    .max_connections(16)
                    .connect_with(options)
                    .await?,
            )
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                // A new database only (an existing file keeps its page size). The writer's
                // batches dirty runs of neighbouring pages (mailbox rows are stored in arrival
                // order) and SQLite writes each dirty page to the WAL with two system calls:
                // 16 KiB pages write the same bytes in a quarter of the calls.
                .page_size(SQLITE_PAGE_SIZE)
                .journal_mode(SqliteJournalMode::Wal)
                // WAL + NORMAL: a commit is durable against process crashes (kill -9); a power
                // loss may lose the last commits but never corrupts the file.
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(SQLITE_BUSY_TIMEOUT);
            Self::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(8)
                    .connect_with(options)
                    .await?,
            )
        } else {
            return Err(StoreError::NotFound(format!(
                "database URL {url:?}: expected sqlite://PATH or postgres://…"
            )));
        };
        db.migrate().await?;
        Ok(db)
    }

    /// Opens PostgreSQL at `url` with `search_path` set to `schema` on every connection, and
    /// runs the migrations in that schema, which must exist. Tests use it to give each test a
    /// fresh schema of one shared database.
    pub async fn connect_postgres_in_schema(url: &str, schema: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?.options([("search_path", schema)]);
        let db = Self::Postgres(
            PgPoolOptions::new()
                .max_connections(16)
                .connect_with(options)
                .await?,
        );
        db.migrate().await?;
        Ok(db)
    }

    /// Opens the embedded SQLite database of a data directory.
    pub async fn open_sqlite_file(path: &std::path::Path) -> Result<Self, StoreError> {
        Self::connect(&format!("sqlite://{}", path.display())).await
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(pool) => sqlx::migrate!("migrations/sqlite").run(pool).await?,
            Self::Postgres(pool) => sqlx::migrate!("migrations/postgres").run(pool).await?,
        }
        Ok(())
    }
}
