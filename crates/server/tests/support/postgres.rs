//! A fresh PostgreSQL schema per test in the database `DATABASE_URL` names, for the store
//! conformance suites (`store_conformance`, `ca_store`). A suite includes it on its own,
//! `#[path = "support/postgres.rs"] mod postgres_schema;`, without the service harness of
//! `support/mod.rs`.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use confianza_server::store::Database;
use sqlx::AssertSqlSafe;
use sqlx::postgres::PgPoolOptions;

/// A schema `t_<random>` created for one test; [`TestSchema::drop_schema`] removes it.
pub struct TestSchema {
    url: String,
    name: String,
}

impl TestSchema {
    /// Creates a fresh schema in the `DATABASE_URL` database; `None` (with a note naming
    /// `suite`) when the variable is not set.
    pub async fn create(suite: &str) -> Option<Self> {
        let Ok(url) = std::env::var("DATABASE_URL") else {
            eprintln!("DATABASE_URL is not set: PostgreSQL {suite} test skipped");
            return None;
        };
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut hasher = DefaultHasher::new();
        std::time::SystemTime::now().hash(&mut hasher);
        std::process::id().hash(&mut hasher);
        COUNTER.fetch_add(1, Ordering::Relaxed).hash(&mut hasher);
        let name = format!("t_{:016x}", hasher.finish());
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .expect("connect to DATABASE_URL");
        sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&admin)
            .await
            .expect("create the test schema");
        admin.close().await;
        Some(Self { url, name })
    }

    /// The database opened in the schema, migrated.
    pub async fn connect(&self) -> Database {
        Database::connect_postgres_in_schema(&self.url, &self.name)
            .await
            .expect("open PostgreSQL")
    }

    /// Drops the schema and everything in it (close the test's pool first).
    pub async fn drop_schema(self) {
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.url)
            .await
            .expect("connect to drop the schema");
        sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {} CASCADE", self.name)))
            .execute(&admin)
            .await
            .expect("drop the test schema");
        admin.close().await;
    }
}
