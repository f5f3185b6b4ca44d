//! The local store of one profile: one SQLite database (WAL) with its secrets sealed under the
//! store key ([`crate::sealing`]).
//!
//! Opening checks the key **before** anything is written: a wrong passphrase or key file is a
//! typed error and leaves the files as they were; so does a file that is not a Confianza store.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use confianza_pki::seal::SealParams;
use confianza_protocol::keys::IdentityKeyPair;
use confianza_protocol::prekeys::{KyberPreKeyRecord, PreKeyRecord, SignedPreKeyRecord};
use confianza_protocol::sender_keys::SenderKeyRecord;
use confianza_protocol::state::SessionRecord;
use rand_core::CryptoRng;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
};
use sqlx::{Row, Sqlite, Transaction};
use zeroize::Zeroizing;

use crate::sealing::{Passphrase, SealingError, StoreKey};

/// The database file in a profile directory.
pub const DATABASE_FILE: &str = "store.db";
/// The key file of a profile that has no passphrase.
pub const KEY_FILE: &str = "store.key";
/// The store format this build writes.
const FORMAT_VERSION: &[u8] = b"1";

/// A statement with its parameters bound (the sealed column's, for a write, still to come).
type Statement<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments>;

/// How the store key is protected.
pub enum Protection {
    /// Wrapped under a passphrase with Argon2id at these costs.
    Passphrase(Passphrase, SealParams),
    /// Kept in a 0600 key file beside the database.
    KeyFile,
}

impl std::fmt::Debug for Protection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Passphrase(..) => f.write_str("Passphrase(..)"),
            Self::KeyFile => f.write_str("KeyFile"),
        }
    }
}

/// What can go wrong with the local store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No store in this profile directory: run `init` first.
    #[error("no Confianza profile at {0}")]
    NotFound(PathBuf),
    /// A store already exists here.
    #[error("a Confianza profile already exists at {0}")]
    AlreadyExists(PathBuf),
    /// The store is passphrase-protected and no passphrase was given.
    #[error("this profile needs a passphrase (set CONFIANZA_PASSPHRASE)")]
    PassphraseRequired,
    /// Wrong passphrase or key file, or a sealed row failed authentication.
    #[error(transparent)]
    Sealing(#[from] SealingError),
    /// The files are not a Confianza store, or a row does not decode.
    #[error("the local store is corrupted: {0}")]
    Corrupt(String),
    /// The database failed.
    #[error("local database: {0}")]
    Database(#[from] sqlx::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// SQLite's result codes for "file is not a database" and "database disk image is malformed".
fn is_corruption(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("26" | "11")),
        _ => false,
    }
}

fn classify(error: sqlx::Error) -> StoreError {
    if is_corruption(&error) {
        StoreError::Corrupt(error.to_string())
    } else {
        StoreError::Database(error)
    }
}

/// The enrolled account, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    pub address: String,
    pub device_id: u32,
    pub registration_id: u32,
    /// `HOST:PORT` of the Noise service.
    pub server: String,
    /// The DNS name the server's certificate must carry.
    pub server_name: String,
    /// The server's Noise static key, once known.
    pub server_key: Option<[u8; 32]>,
    /// DER of this device's identity certificate.
    pub certificate: Vec<u8>,
    pub enrolled_at_ms: u64,
}

/// What the user knows of a contact's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactRecord {
    pub address: String,
    /// Serialized (33 bytes).
    pub identity_key: Vec<u8>,
    /// The key came with a certificate valid to the pinned root.
    pub certified: bool,
    /// The user compared safety numbers.
    pub verified: bool,
    /// A different key seen since, refused until accepted.
    pub pending_identity_key: Option<Vec<u8>>,
}

/// One message of the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub id: i64,
    pub conversation: String,
    pub outgoing: bool,
    pub peer: String,
    pub peer_device_id: u32,
    pub client_message_id: Vec<u8>,
    pub kind: String,
    pub body: String,
    pub sent_at_ms: u64,
    pub server_at_ms: Option<u64>,
    pub verification: String,
    pub delivered: bool,
    /// Outgoing: a recipient's read receipt arrived. Incoming: this user has seen it.
    pub read: bool,
    /// An outgoing group message: how many of the members it was sent to it reached and have
    /// read it. `None` otherwise, and for group messages sent before per-member state was kept
    /// (their `read` means "read by at least one member").
    pub group_receipts: Option<GroupReceipts>,
}

/// How many of the members an outgoing group message was sent to it reached and have read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupReceipts {
    /// Members it was sent to (the others in the group when it was sent).
    pub recipients: u32,
    /// Members the server delivered it to (to at least one of their devices).
    pub delivered: u32,
    /// Members whose read receipt for it arrived.
    pub read: u32,
}

/// The columns [`message_from_row`] decodes, for a query whose `messages` rows are `m`.
const MESSAGE_COLUMNS: &str = "m.id, m.conversation, m.outgoing, m.peer, m.peer_device_id, \
     m.client_message_id, m.kind, m.body, m.sent_at_ms, m.server_at_ms, m.verification, \
     m.delivered, m.read_at_ms IS NOT NULL, \
     (SELECT COUNT(r.read_at_ms) FROM message_recipients r WHERE r.message_id = m.id), \
     (SELECT COUNT(*) FROM message_recipients r WHERE r.message_id = m.id), \
     (SELECT COUNT(r.delivered_at_ms) FROM message_recipients r WHERE r.message_id = m.id)";

/// A message to add to the history.
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    pub conversation: &'a str,
    pub outgoing: bool,
    pub peer: &'a str,
    pub peer_device_id: u32,
    pub client_message_id: &'a [u8],
    pub kind: &'a str,
    pub body: &'a str,
    pub sent_at_ms: u64,
    pub server_at_ms: Option<u64>,
    pub stored_at_ms: u64,
    pub verification: &'a str,
}

/// An envelope held back (its sender's identity changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldEnvelope {
    pub id: i64,
    pub sender: String,
    pub sender_device_id: u32,
    pub ciphertext_type: u32,
    pub body: Vec<u8>,
    pub client_message_id: Vec<u8>,
    pub server_at_ms: u64,
}

/// The local store of one profile.
pub struct Store {
    pool: SqlitePool,
    key: StoreKey,
    dir: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).finish()
    }
}

async fn connect(path: &Path, create: bool) -> Result<SqlitePool, StoreError> {
    let url = format!("sqlite://{}", path.display());
    let options = SqliteConnectOptions::from_str(&url)?
        .create_if_missing(create)
        .journal_mode(SqliteJournalMode::Wal)
        .foreign_keys(true)
        .busy_timeout(std::time::Duration::from_secs(10));
    SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .map_err(classify)
}

/// A connection that only reads, creating no file: SQLite's `immutable` mode takes no locks and
/// keeps no `-wal` or `-shm` file beside the database. Valid only while there is no `-wal` file,
/// that is while every committed change is in the database file itself.
async fn connect_immutable(path: &Path) -> Result<SqlitePool, StoreError> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .immutable(true);
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(classify)
}

fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(io_error(dir))
}

fn write_key_file(path: &Path, key: &StoreKey) -> Result<(), StoreError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io_error(path))?;
    file.write_all(key.key_file_bytes().as_ref())
        .and_then(|()| file.sync_all())
        .map_err(io_error(path))
}

/// Reads the store's key protection and unlocks the store key, writing nothing.
async fn unlock(
    pool: &SqlitePool,
    dir: &Path,
    passphrase: impl FnOnce() -> Option<Passphrase>,
) -> Result<StoreKey, StoreError> {
    let meta = |name: &'static str| {
        let pool = pool.clone();
        async move {
            let row = sqlx::query("SELECT value FROM meta WHERE key = ?")
                .bind(name)
                .fetch_optional(&pool)
                .await
                .map_err(|error| match error {
                    sqlx::Error::Database(ref db) if db.message().contains("no such table") => {
                        StoreError::Corrupt("not a Confianza store".into())
                    }
                    other => classify(other),
                })?;
            row.map(|row| row.try_get::<Vec<u8>, _>(0))
                .transpose()
                .map_err(classify)?
                .ok_or_else(|| StoreError::Corrupt(format!("missing {name}")))
        }
    };
    let format = meta("format").await?;
    if format != FORMAT_VERSION {
        return Err(StoreError::Corrupt(format!(
            "unknown store format {:?}",
            String::from_utf8_lossy(&format)
        )));
    }
    let mode = meta("protection").await?;
    let wrapped = meta("wrapped_key").await?;
    let key = match mode.as_slice() {
        b"passphrase" => {
            let passphrase = passphrase().ok_or(StoreError::PassphraseRequired)?;
            StoreKey::unwrap_with(&passphrase, &wrapped)?
        }
        b"key-file" => {
            let key_path = dir.join(KEY_FILE);
            let bytes = Zeroizing::new(std::fs::read(&key_path).map_err(io_error(&key_path))?);
            let key = StoreKey::from_key_file_bytes(&bytes)?;
            if !key.matches_key_check(&wrapped) {
                return Err(SealingError::WrongKeyFile.into());
            }
            key
        }
        _ => return Err(StoreError::Corrupt("unknown key protection".into())),
    };
    Ok(key)
}

impl Store {
    /// Creates a new store in `dir` (created 0700 if missing), protected as asked.
    pub async fn create(
        dir: &Path,
        protection: &Protection,
        rng: &mut impl CryptoRng,
    ) -> Result<Self, StoreError> {
        let db_path = dir.join(DATABASE_FILE);
        if db_path.exists() {
            return Err(StoreError::AlreadyExists(dir.to_owned()));
        }
        create_private_dir(dir)?;
        let key = StoreKey::generate(rng);
        let (mode, wrapped) = match protection {
            Protection::Passphrase(passphrase, params) => {
                (&b"passphrase"[..], key.wrap(passphrase, *params, rng)?)
            }
            Protection::KeyFile => {
                let key_path = dir.join(KEY_FILE);
                write_key_file(&key_path, &key)?;
                (&b"key-file"[..], key.key_check(rng)?)
            }
        };
        let pool = connect(&db_path, true).await?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut tx = pool.begin().await?;
        for (name, value) in [
            ("format", FORMAT_VERSION),
            ("protection", mode),
            ("wrapped_key", wrapped.as_slice()),
        ] {
            sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?)")
                .bind(name)
                .bind(value)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Self {
            pool,
            key,
            dir: dir.to_owned(),
        })
    }

    /// Opens the store in `dir`. `passphrase` is asked only when the store has one.
    pub async fn open(
        dir: &Path,
        passphrase: impl FnOnce() -> Option<Passphrase>,
    ) -> Result<Self, StoreError> {
        let db_path = dir.join(DATABASE_FILE);
        if !db_path.exists() {
            return Err(StoreError::NotFound(dir.to_owned()));
        }
        // The key is checked through a connection that creates nothing, so a wrong passphrase
        // or a file that is not a store leaves the directory exactly as it was. A `-wal` file
        // (a process that holds the store open, or one that ended without closing it) may hold
        // committed rows the database file lacks: then the check reads through it.
        let wal = dir.join(format!("{DATABASE_FILE}-wal"));
        let probe = if wal.exists() {
            connect(&db_path, false).await?
        } else {
            connect_immutable(&db_path).await?
        };
        let unlocked = unlock(&probe, dir, passphrase).await;
        probe.close().await;
        let key = unlocked?;
        let pool = connect(&db_path, false).await?;
        // Only now, with the right key, may the schema be brought up to date.
        if let Err(error) = sqlx::migrate!("./migrations").run(&pool).await {
            pool.close().await;
            return Err(StoreError::Corrupt(error.to_string()));
        }
        Ok(Self {
            pool,
            key,
            dir: dir.to_owned(),
        })
    }

    /// The profile directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Closes the database (checkpoints the WAL).
    pub async fn close(self) {
        self.pool.close().await;
    }

    // ---- sealed secrets ------------------------------------------------------------------

    // Every secret row is sealed for its table and its row key (see [`crate::sealing`]): a
    // sealed value copied into another row or table no longer opens. The two helpers below are
    // the only places that seal or open a row.

    /// Seals `plaintext` for (`table`, `row_key`) and runs `insert` with the sealed value bound
    /// as its last parameter.
    async fn write_sealed(
        &self,
        tx: &mut Transaction<'_, Sqlite>,
        insert: Statement<'_>,
        table: &'static str,
        row_key: &str,
        plaintext: &[u8],
    ) -> Result<(), StoreError> {
        let sealed = self.key.seal(table, row_key, plaintext, &mut rand::rng())?;
        insert.bind(sealed).execute(&mut **tx).await?;
        Ok(())
    }

    /// Runs `select`, whose first column is the sealed value of (`table`, `row_key`), and opens
    /// it; `None` when there is no such row.
    async fn read_sealed(
        &self,
        select: Statement<'_>,
        table: &'static str,
        row_key: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let Some(row) = select.fetch_optional(&self.pool).await? else {
            return Ok(None);
        };
        let sealed: Vec<u8> = row.try_get(0)?;
        Ok(Some(self.key.open(table, row_key, &sealed)?))
    }

    /// Stores the identity key pair and the device's Noise static secret.
    pub async fn save_device_secrets(
        &self,
        identity: &IdentityKeyPair,
        noise_secret: &[u8; 32],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let insert = || sqlx::query("INSERT OR REPLACE INTO secrets (name, sealed) VALUES (?, ?)");
        let identity_snapshot = identity.snapshot();
        for (name, plaintext) in [
            ("identity", identity_snapshot.as_slice()),
            ("noise", noise_secret.as_slice()),
        ] {
            self.write_sealed(&mut tx, insert().bind(name), "secrets", name, plaintext)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn secret(&self, name: &'static str) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let select = sqlx::query("SELECT sealed FROM secrets WHERE name = ?").bind(name);
        self.read_sealed(select, "secrets", name)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("missing secret {name}")))
    }

    /// The identity key pair.
    pub async fn identity(&self) -> Result<IdentityKeyPair, StoreError> {
        let bytes = self.secret("identity").await?;
        IdentityKeyPair::from_snapshot(&bytes)
            .map_err(|e| StoreError::Corrupt(format!("identity key: {e}")))
    }

    /// The device's Noise static secret.
    pub async fn noise_secret(&self) -> Result<Zeroizing<[u8; 32]>, StoreError> {
        let bytes = self.secret("noise").await?;
        let secret: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::Corrupt("noise key length".into()))?;
        Ok(Zeroizing::new(secret))
    }

    // ---- account and CA ------------------------------------------------------------------

    /// Records the enrolled account and the pinned CA (root first, then the chain).
    pub async fn save_account(
        &self,
        account: &AccountRecord,
        root: &[u8],
        chain: &[Vec<u8>],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT OR REPLACE INTO account (id, address, device_id, registration_id, server, \
             server_name, server_key, certificate, enrolled_at_ms) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&account.address)
        .bind(i64::from(account.device_id))
        .bind(i64::from(account.registration_id))
        .bind(&account.server)
        .bind(&account.server_name)
        .bind(account.server_key.map(|k| k.to_vec()))
        .bind(&account.certificate)
        .bind(to_i64(account.enrolled_at_ms))
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM ca_certificates")
            .execute(&mut *tx)
            .await?;
        for (position, der) in std::iter::once(root)
            .chain(chain.iter().map(Vec::as_slice))
            .enumerate()
        {
            sqlx::query("INSERT INTO ca_certificates (position, der) VALUES (?, ?)")
                .bind(position as i64)
                .bind(der)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The enrolled account, if any.
    pub async fn account(&self) -> Result<Option<AccountRecord>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT address, device_id, registration_id, server, server_name, server_key, \
             certificate, enrolled_at_ms FROM account WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let server_key: Option<Vec<u8>> = row.try_get(5)?;
        let server_key = server_key
            .map(|k| <[u8; 32]>::try_from(k.as_slice()))
            .transpose()
            .map_err(|_| StoreError::Corrupt("server key length".into()))?;
        Ok(Some(AccountRecord {
            address: row.try_get(0)?,
            device_id: to_u32(row.try_get(1)?)?,
            registration_id: to_u32(row.try_get(2)?)?,
            server: row.try_get(3)?,
            server_name: row.try_get(4)?,
            server_key,
            certificate: row.try_get(6)?,
            enrolled_at_ms: to_u64(row.try_get(7)?)?,
        }))
    }

    /// Caches the server's Noise static key (for IK next time).
    pub async fn set_server_key(&self, key: &[u8; 32]) -> Result<(), StoreError> {
        sqlx::query("UPDATE account SET server_key = ? WHERE id = 1")
            .bind(key.to_vec())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Replaces the identity certificate (renewal).
    pub async fn set_certificate(&self, der: &[u8], chain: &[Vec<u8>]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE account SET certificate = ? WHERE id = 1")
            .bind(der)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM ca_certificates WHERE position > 0")
            .execute(&mut *tx)
            .await?;
        for (index, der) in chain.iter().enumerate() {
            sqlx::query("INSERT INTO ca_certificates (position, der) VALUES (?, ?)")
                .bind(index as i64 + 1)
                .bind(der)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The pinned root (first) and the CA chain stored with it.
    pub async fn ca_certificates(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let rows = sqlx::query("SELECT der FROM ca_certificates ORDER BY position")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| row.try_get(0).map_err(StoreError::from))
            .collect()
    }

    // ---- prekeys ---------------------------------------------------------------------------

    /// Takes `count` fresh ids from counter `name` (ids start at 1 and are never reused).
    pub async fn allocate_ids(&self, name: &str, count: u32) -> Result<u32, StoreError> {
        let mut tx = self.pool.begin().await?;
        let current: Option<i64> = sqlx::query("SELECT value FROM counters WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| row.try_get(0))
            .transpose()?;
        let first = current.unwrap_or(1);
        let next = first + i64::from(count);
        // Prekey ids are 24-bit in Signal's format (the medium is 0xFFFFFF); wrap before that.
        let (first, next) = if next > 0xFF_FFFF {
            (1, 1 + i64::from(count))
        } else {
            (first, next)
        };
        sqlx::query("INSERT OR REPLACE INTO counters (name, value) VALUES (?, ?)")
            .bind(name)
            .bind(next)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        to_u32(first)
    }

    /// Stores a signed prekey.
    pub async fn save_signed_pre_key(&self, record: &SignedPreKeyRecord) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let insert =
            sqlx::query("INSERT OR REPLACE INTO signed_pre_keys (id, sealed) VALUES (?, ?)")
                .bind(i64::from(record.id));
        self.write_sealed(
            &mut tx,
            insert,
            "signed_pre_keys",
            &record.id.to_string(),
            &record.snapshot(),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores one-time prekeys.
    pub async fn save_one_time_pre_keys(&self, records: &[PreKeyRecord]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for record in records {
            let insert =
                sqlx::query("INSERT OR REPLACE INTO one_time_pre_keys (id, sealed) VALUES (?, ?)")
                    .bind(i64::from(record.id));
            self.write_sealed(
                &mut tx,
                insert,
                "one_time_pre_keys",
                &record.id.to_string(),
                &record.snapshot(),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stores Kyber prekeys (one-time, or the last-resort key).
    pub async fn save_kyber_pre_keys(
        &self,
        records: &[KyberPreKeyRecord],
        last_resort: bool,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for record in records {
            let insert = sqlx::query(
                "INSERT OR REPLACE INTO kyber_pre_keys (id, last_resort, sealed) VALUES (?, ?, ?)",
            )
            .bind(i64::from(record.id))
            .bind(last_resort);
            self.write_sealed(
                &mut tx,
                insert,
                "kyber_pre_keys",
                &record.id.to_string(),
                &record.snapshot(),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Reads and decodes prekey `id` of `table` (`what` in errors); `select` is `SELECT sealed
    /// FROM {table} WHERE id = ?`.
    async fn pre_key<T, E: std::fmt::Display>(
        &self,
        select: &'static str,
        (table, what): (&'static str, &'static str),
        id: u32,
        decode: impl FnOnce(&[u8]) -> Result<T, E>,
    ) -> Result<Option<T>, StoreError> {
        let row_key = id.to_string();
        let bytes = self
            .read_sealed(sqlx::query(select).bind(i64::from(id)), table, &row_key)
            .await?;
        decode_snapshot(bytes, decode, || format!("{what} {id}"))
    }

    /// A signed prekey by id.
    pub async fn signed_pre_key(&self, id: u32) -> Result<Option<SignedPreKeyRecord>, StoreError> {
        self.pre_key(
            "SELECT sealed FROM signed_pre_keys WHERE id = ?",
            ("signed_pre_keys", "signed prekey"),
            id,
            SignedPreKeyRecord::from_snapshot,
        )
        .await
    }

    /// A one-time prekey by id.
    pub async fn one_time_pre_key(&self, id: u32) -> Result<Option<PreKeyRecord>, StoreError> {
        self.pre_key(
            "SELECT sealed FROM one_time_pre_keys WHERE id = ?",
            ("one_time_pre_keys", "prekey"),
            id,
            PreKeyRecord::from_snapshot,
        )
        .await
    }

    /// A Kyber prekey by id, and whether it is the last-resort key.
    pub async fn kyber_pre_key(
        &self,
        id: u32,
    ) -> Result<Option<(KyberPreKeyRecord, bool)>, StoreError> {
        let last_resort: Option<bool> =
            sqlx::query("SELECT last_resort FROM kyber_pre_keys WHERE id = ?")
                .bind(i64::from(id))
                .fetch_optional(&self.pool)
                .await?
                .map(|row| row.try_get(0))
                .transpose()?;
        let Some(last_resort) = last_resort else {
            return Ok(None);
        };
        let record = self
            .pre_key(
                "SELECT sealed FROM kyber_pre_keys WHERE id = ?",
                ("kyber_pre_keys", "Kyber prekey"),
                id,
                KyberPreKeyRecord::from_snapshot,
            )
            .await?;
        Ok(record.map(|record| (record, last_resort)))
    }

    /// How many one-time EC prekeys this device still holds.
    pub async fn one_time_pre_key_count(&self) -> Result<u32, StoreError> {
        let count: i64 = sqlx::query("SELECT COUNT(*) FROM one_time_pre_keys")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        to_u32(count)
    }

    // ---- sessions ------------------------------------------------------------------------

    fn session_key(address: &str, device_id: u32) -> String {
        format!("{address}\u{0}{device_id}")
    }

    /// The session with one device of `address`.
    pub async fn session(
        &self,
        address: &str,
        device_id: u32,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let select = sqlx::query("SELECT sealed FROM sessions WHERE address = ? AND device_id = ?")
            .bind(address)
            .bind(i64::from(device_id));
        let bytes = self
            .read_sealed(select, "sessions", &Self::session_key(address, device_id))
            .await?;
        decode_snapshot(bytes, SessionRecord::from_snapshot, || {
            format!("session with {address}.{device_id}")
        })
    }

    /// The devices of `address` this client has sessions with.
    pub async fn session_devices(&self, address: &str) -> Result<Vec<u32>, StoreError> {
        let rows =
            sqlx::query("SELECT device_id FROM sessions WHERE address = ? ORDER BY device_id")
                .bind(address)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(|row| to_u32(row.try_get(0)?)).collect()
    }

    /// Saves a session.
    pub async fn save_session(
        &self,
        address: &str,
        device_id: u32,
        record: &SessionRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        self.save_session_in(&mut tx, address, device_id, record)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn save_session_in(
        &self,
        tx: &mut Transaction<'_, Sqlite>,
        address: &str,
        device_id: u32,
        record: &SessionRecord,
    ) -> Result<(), StoreError> {
        let insert = sqlx::query(
            "INSERT OR REPLACE INTO sessions (address, device_id, sealed) VALUES (?, ?, ?)",
        )
        .bind(address)
        .bind(i64::from(device_id));
        self.write_sealed(
            tx,
            insert,
            "sessions",
            &Self::session_key(address, device_id),
            &record.snapshot(),
        )
        .await
    }

    /// Drops the session with one device (it was re-enrolled or removed).
    pub async fn delete_session(&self, address: &str, device_id: u32) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE address = ? AND device_id = ?")
            .bind(address)
            .bind(i64::from(device_id))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- contacts --------------------------------------------------------------------------

    /// What is known of `address`.
    pub async fn contact(&self, address: &str) -> Result<Option<ContactRecord>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT identity_key, certified, verified, pending_identity_key FROM contacts \
             WHERE address = ?",
        )
        .bind(address)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        Ok(Some(ContactRecord {
            address: address.to_owned(),
            identity_key: row.try_get(0)?,
            certified: row.try_get(1)?,
            verified: row.try_get(2)?,
            pending_identity_key: row.try_get(3)?,
        }))
    }

    /// Records a contact's identity key the first time it is seen (or after acceptance).
    /// `verified` is reset when the key changes, and so is the stored certificate.
    pub async fn save_contact(
        &self,
        address: &str,
        identity_key: &[u8],
        certified: bool,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.upsert_contact(address, identity_key, certified, None, now_ms)
            .await
    }

    /// Like [`Store::save_contact`] for a key that came with `certificate` (DER), which the
    /// caller verified to the pinned root for `address` and `identity_key` (a
    /// [`crate::trust::CertifiedBundle`], a checked sender certificate): the certificate is
    /// kept with the key ([`Store::contact_certificate`]).
    pub async fn save_certified_contact(
        &self,
        address: &str,
        identity_key: &[u8],
        certificate: &[u8],
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.upsert_contact(address, identity_key, true, Some(certificate), now_ms)
            .await
    }

    async fn upsert_contact(
        &self,
        address: &str,
        identity_key: &[u8],
        certified: bool,
        certificate: Option<&[u8]>,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO contacts (address, identity_key, certified, verified, \
             pending_identity_key, certificate, updated_at_ms) VALUES (?, ?, ?, 0, NULL, ?, ?) \
             ON CONFLICT (address) DO UPDATE SET \
               verified = CASE WHEN contacts.identity_key = excluded.identity_key \
                               THEN contacts.verified ELSE 0 END, \
               certified = CASE WHEN contacts.identity_key = excluded.identity_key \
                               THEN max(contacts.certified, excluded.certified) \
                               ELSE excluded.certified END, \
               certificate = CASE WHEN contacts.identity_key = excluded.identity_key \
                               THEN coalesce(excluded.certificate, contacts.certificate) \
                               ELSE excluded.certificate END, \
               identity_key = excluded.identity_key, pending_identity_key = NULL, \
               updated_at_ms = excluded.updated_at_ms",
        )
        .bind(address)
        .bind(identity_key)
        .bind(certified)
        .bind(certificate)
        .bind(to_i64(now_ms))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The identity certificate (DER) kept for `address`'s current identity key: `None` for an
    /// unknown contact or a key known without a certificate.
    pub async fn contact_certificate(&self, address: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let certificate: Option<Option<Vec<u8>>> =
            sqlx::query("SELECT certificate FROM contacts WHERE address = ?")
                .bind(address)
                .fetch_optional(&self.pool)
                .await?
                .map(|row| row.try_get(0))
                .transpose()?;
        Ok(certificate.flatten())
    }

    /// Records a changed identity key, refused until [`Store::save_contact`] accepts it.
    pub async fn set_pending_identity(
        &self,
        address: &str,
        identity_key: &[u8],
        now_ms: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE contacts SET pending_identity_key = ?, updated_at_ms = ? WHERE address = ?",
        )
        .bind(identity_key)
        .bind(to_i64(now_ms))
        .bind(address)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks a contact verified (safety numbers compared) or not.
    pub async fn set_verified(&self, address: &str, verified: bool) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE contacts SET verified = ? WHERE address = ?")
            .bind(verified)
            .bind(address)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    // ---- groups ----------------------------------------------------------------------------

    fn sender_key_row(sender: &str, device_id: u32, group_id: &[u8]) -> String {
        format!("{sender}\u{0}{device_id}\u{0}{}", hex::encode(group_id))
    }

    /// The sender key of (`sender`, `device_id`) in a group.
    pub async fn sender_key(
        &self,
        sender: &str,
        device_id: u32,
        group_id: &[u8],
    ) -> Result<Option<SenderKeyRecord>, StoreError> {
        let select = sqlx::query(
            "SELECT sealed FROM sender_keys WHERE sender = ? AND device_id = ? AND group_id = ?",
        )
        .bind(sender)
        .bind(i64::from(device_id))
        .bind(group_id);
        let row_key = Self::sender_key_row(sender, device_id, group_id);
        let bytes = self.read_sealed(select, "sender_keys", &row_key).await?;
        decode_snapshot(bytes, SenderKeyRecord::from_snapshot, || {
            format!("sender key of {sender}.{device_id}")
        })
    }

    async fn save_sender_key_in(
        &self,
        tx: &mut Transaction<'_, Sqlite>,
        sender: &str,
        device_id: u32,
        group_id: &[u8],
        record: &SenderKeyRecord,
    ) -> Result<(), StoreError> {
        let insert = sqlx::query(
            "INSERT OR REPLACE INTO sender_keys (sender, device_id, group_id, sealed) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(sender)
        .bind(i64::from(device_id))
        .bind(group_id);
        let row_key = Self::sender_key_row(sender, device_id, group_id);
        self.write_sealed(tx, insert, "sender_keys", &row_key, &record.to_snapshot())
            .await
    }

    /// Saves a sender key.
    pub async fn save_sender_key(
        &self,
        sender: &str,
        device_id: u32,
        group_id: &[u8],
        record: &SenderKeyRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        self.save_sender_key_in(&mut tx, sender, device_id, group_id, record)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets this device's own sender key for a group (membership changed: the next send
    /// distributes a fresh one).
    pub async fn reset_own_sender_key(
        &self,
        own_address: &str,
        own_device_id: u32,
        group_id: &[u8],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM sender_keys WHERE sender = ? AND device_id = ? AND group_id = ?")
            .bind(own_address)
            .bind(i64::from(own_device_id))
            .bind(group_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM group_state WHERE group_id = ?")
            .bind(group_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The revision this device last distributed its sender key for.
    pub async fn distributed_revision(&self, group_id: &[u8]) -> Result<Option<u64>, StoreError> {
        let value: Option<i64> =
            sqlx::query("SELECT distributed_revision FROM group_state WHERE group_id = ?")
                .bind(group_id)
                .fetch_optional(&self.pool)
                .await?
                .map(|row| row.try_get(0))
                .transpose()?;
        value.map(to_u64).transpose()
    }

    /// Records that the sender key was distributed for `revision`.
    pub async fn set_distributed_revision(
        &self,
        group_id: &[u8],
        revision: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT OR REPLACE INTO group_state (group_id, distributed_revision) VALUES (?, ?)",
        )
        .bind(group_id)
        .bind(to_i64(revision))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Commits a decrypted group message with the sender key as it is after decryption;
    /// `false` (nothing changed) when already stored.
    pub async fn commit_group_incoming(
        &self,
        sender_key: (&str, u32, &[u8], &SenderKeyRecord),
        message: &NewMessage<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        if is_stored(&mut tx, message).await? {
            return Ok(false);
        }
        let (sender, device_id, group_id, record) = sender_key;
        self.save_sender_key_in(&mut tx, sender, device_id, group_id, record)
            .await?;
        insert_message(&mut tx, message).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Held envelopes of one ciphertext type from `sender`, oldest first.
    pub async fn held_envelopes_of_type(
        &self,
        sender: &str,
        ciphertext_type: u32,
    ) -> Result<Vec<HeldEnvelope>, StoreError> {
        Ok(self
            .held_envelopes(sender)
            .await?
            .into_iter()
            .filter(|held| held.ciphertext_type == ciphertext_type)
            .collect())
    }

    // ---- messages --------------------------------------------------------------------------

    /// Whether an incoming message with this id from `sender` is already stored.
    pub async fn has_incoming(
        &self,
        sender: &str,
        client_message_id: &[u8],
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT 1 FROM messages WHERE outgoing = 0 AND peer = ? AND client_message_id = ? \
             UNION ALL SELECT 1 FROM held_envelopes WHERE sender = ? AND client_message_id = ?",
        )
        .bind(sender)
        .bind(client_message_id)
        .bind(sender)
        .bind(client_message_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Adds an outgoing message to the history.
    pub async fn insert_outgoing(&self, message: &NewMessage<'_>) -> Result<i64, StoreError> {
        self.insert_outgoing_group(message, &[]).await
    }

    /// Adds an outgoing group message to the history with the members it was sent to, whose
    /// delivery and read receipts [`Store::mark_delivered`] and [`Store::mark_read`] then count
    /// one by one.
    pub async fn insert_outgoing_group(
        &self,
        message: &NewMessage<'_>,
        recipients: &[String],
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let id = insert_message(&mut tx, message).await?;
        for recipient in recipients {
            sqlx::query(
                "INSERT OR IGNORE INTO message_recipients (message_id, recipient) VALUES (?, ?)",
            )
            .bind(id)
            .bind(recipient)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Commits a decrypted incoming message atomically: the session as it is after decryption,
    /// the history row, and the removal of the one-time prekeys the new session used. Returns
    /// `false` (and changes nothing) when the message was already stored.
    pub async fn commit_incoming(
        &self,
        session: (&str, u32, &SessionRecord),
        message: &NewMessage<'_>,
        consumed_pre_key: Option<u32>,
        consumed_kyber_pre_key: Option<u32>,
    ) -> Result<bool, StoreError> {
        self.commit_incoming_with(
            session,
            message,
            consumed_pre_key,
            consumed_kyber_pre_key,
            None,
        )
        .await
    }

    async fn commit_incoming_with(
        &self,
        session: (&str, u32, &SessionRecord),
        message: &NewMessage<'_>,
        consumed_pre_key: Option<u32>,
        consumed_kyber_pre_key: Option<u32>,
        attachment_pointer: Option<&[u8]>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        if is_stored(&mut tx, message).await? {
            return Ok(false);
        }
        let (address, device_id, record) = session;
        self.save_session_in(&mut tx, address, device_id, record)
            .await?;
        if let Some(id) = consumed_pre_key {
            sqlx::query("DELETE FROM one_time_pre_keys WHERE id = ?")
                .bind(i64::from(id))
                .execute(&mut *tx)
                .await?;
        }
        if let Some(id) = consumed_kyber_pre_key {
            sqlx::query("DELETE FROM kyber_pre_keys WHERE id = ? AND last_resort = 0")
                .bind(i64::from(id))
                .execute(&mut *tx)
                .await?;
        }
        let message_id = insert_message(&mut tx, message).await?;
        if let Some(pointer) = attachment_pointer {
            self.insert_attachment_pointer_in(&mut tx, message_id, pointer)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Records an incoming message that was refused (undecryptable, forged sender) so the user
    /// sees it and it is not processed again; `false` when already recorded.
    pub async fn commit_refused(&self, message: &NewMessage<'_>) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        if is_stored(&mut tx, message).await? {
            return Ok(false);
        }
        insert_message(&mut tx, message).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Marks outgoing messages delivered after the server's delivery receipt saying they
    /// reached a device of `recipient`: a one-to-one message to `recipient`, or a group message
    /// sent to `recipient` (recorded per member, once whichever of its devices comes first; a
    /// receipt from anyone it was not sent to changes nothing). The group message itself is
    /// delivered once it reached one member. Unknown ids are ignored.
    pub async fn mark_delivered(
        &self,
        recipient: &str,
        client_message_ids: &[Vec<u8>],
        at_ms: u64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for id in client_message_ids {
            sqlx::query(
                "UPDATE messages SET delivered = 1 WHERE outgoing = 1 AND peer = ? \
                 AND client_message_id = ? AND conversation NOT LIKE 'group:%'",
            )
            .bind(recipient)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            let member =
                mark_member(&mut tx, MemberMark::Delivered, recipient, id, to_i64(at_ms)).await?;
            if member > 0 {
                sqlx::query(
                    "UPDATE messages SET delivered = 1 WHERE outgoing = 1 \
                     AND client_message_id = ? AND conversation LIKE 'group:%' \
                     AND EXISTS (SELECT 1 FROM message_recipients r \
                     WHERE r.message_id = messages.id AND r.recipient = ?)",
                )
                .bind(id)
                .bind(recipient)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Marks outgoing messages read after `reader`'s read receipt naming their client message
    /// ids: a one-to-one message to `reader`, or a group message sent to `reader` (recorded
    /// per member; a receipt from someone it was not sent to changes nothing). A group message
    /// sent before per-member state was kept is marked read by any member's receipt. The
    /// first receipt's time is kept. Returns how many messages `reader` newly read.
    pub async fn mark_read(
        &self,
        reader: &str,
        client_message_ids: &[Vec<u8>],
        at_ms: u64,
    ) -> Result<u64, StoreError> {
        let at_ms = to_i64(at_ms);
        let mut tx = self.pool.begin().await?;
        let mut changed = 0;
        for id in client_message_ids {
            let direct = sqlx::query(
                "UPDATE messages SET read_at_ms = ? WHERE outgoing = 1 AND read_at_ms IS NULL \
                 AND client_message_id = ? AND peer = ? AND conversation NOT LIKE 'group:%'",
            )
            .bind(at_ms)
            .bind(id)
            .bind(reader)
            .execute(&mut *tx)
            .await?;
            let member = mark_member(&mut tx, MemberMark::Read, reader, id, at_ms).await?;
            // The message's own read time: the first member's, or for a message without
            // per-member rows, the first receipt's.
            let group = sqlx::query(
                "UPDATE messages SET read_at_ms = ? WHERE outgoing = 1 AND read_at_ms IS NULL \
                 AND client_message_id = ? AND conversation LIKE 'group:%' AND (\
                 NOT EXISTS (SELECT 1 FROM message_recipients r WHERE r.message_id = messages.id) \
                 OR EXISTS (SELECT 1 FROM message_recipients r WHERE r.message_id = messages.id \
                 AND r.recipient = ? AND r.read_at_ms IS NOT NULL))",
            )
            .bind(at_ms)
            .bind(id)
            .bind(reader)
            .execute(&mut *tx)
            .await?;
            // One per message: a member's first receipt changes both the member's row and
            // the message's.
            changed += direct.rows_affected() + member.max(group.rows_affected());
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Marks the incoming history rows `ids` seen by the user; rows already seen, outgoing or
    /// unknown are left alone. Returns the ids that changed.
    pub async fn mark_seen(&self, ids: &[i64], at_ms: u64) -> Result<Vec<i64>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut changed = Vec::new();
        for id in ids {
            let done = sqlx::query(
                "UPDATE messages SET read_at_ms = ? WHERE id = ? AND outgoing = 0 \
                 AND read_at_ms IS NULL",
            )
            .bind(to_i64(at_ms))
            .bind(id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 1 {
                changed.push(*id);
            }
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Like [`Store::history`] without the rows of the kinds in `hidden` (control messages
    /// such as receipts): the last `limit` of the others, oldest first.
    pub async fn visible_history(
        &self,
        conversation: &str,
        limit: u32,
        hidden: &[&str],
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let placeholders = vec!["?"; hidden.len()].join(", ");
        let filter = if hidden.is_empty() {
            String::new()
        } else {
            format!(" AND kind NOT IN ({placeholders})")
        };
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM (SELECT * FROM messages WHERE conversation = ?{filter} \
             ORDER BY id DESC LIMIT ?) AS m ORDER BY m.id"
        );
        // Only `?` placeholders are spliced in; every value is bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(conversation);
        for kind in hidden {
            query = query.bind(*kind);
        }
        let rows = query.bind(i64::from(limit)).fetch_all(&self.pool).await?;
        rows.iter().map(message_from_row).collect()
    }

    /// The last `limit` messages of a conversation, oldest first.
    pub async fn history(
        &self,
        conversation: &str,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM (SELECT * FROM messages WHERE conversation = ? \
             ORDER BY id DESC LIMIT ?) AS m ORDER BY m.id"
        );
        // The columns are a constant; every value is bound.
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(conversation)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(message_from_row).collect()
    }

    /// Holds an envelope whose sender's identity changed; `false` when already held.
    pub async fn hold_envelope(&self, envelope: &HeldEnvelope) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT OR IGNORE INTO held_envelopes (sender, sender_device_id, ciphertext_type, body, \
             client_message_id, server_at_ms) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&envelope.sender)
        .bind(i64::from(envelope.sender_device_id))
        .bind(i64::from(envelope.ciphertext_type))
        .bind(&envelope.body)
        .bind(&envelope.client_message_id)
        .bind(to_i64(envelope.server_at_ms))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Envelopes held for `sender`, oldest first.
    pub async fn held_envelopes(&self, sender: &str) -> Result<Vec<HeldEnvelope>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, sender, sender_device_id, ciphertext_type, body, client_message_id, \
             server_at_ms FROM held_envelopes WHERE sender = ? ORDER BY id",
        )
        .bind(sender)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(HeldEnvelope {
                    id: row.try_get(0)?,
                    sender: row.try_get(1)?,
                    sender_device_id: to_u32(row.try_get(2)?)?,
                    ciphertext_type: to_u32(row.try_get(3)?)?,
                    body: row.try_get(4)?,
                    client_message_id: row.try_get(5)?,
                    server_at_ms: to_u64(row.try_get(6)?)?,
                })
            })
            .collect()
    }

    /// Forgets a held envelope (processed).
    pub async fn release_envelope(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM held_envelopes WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- attachments ---------------------------------------------------------------------

    /// Records (sealed) the state of an upload of the file at `source`, replacing any earlier.
    pub async fn save_upload(&self, source: &str, state: &[u8]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let insert =
            sqlx::query("INSERT OR REPLACE INTO attachment_uploads (source, sealed) VALUES (?, ?)")
                .bind(source);
        self.write_sealed(&mut tx, insert, "attachment_uploads", source, state)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The recorded state of an upload of the file at `source`, if one is in progress.
    pub async fn upload(&self, source: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let select =
            sqlx::query("SELECT sealed FROM attachment_uploads WHERE source = ?").bind(source);
        self.read_sealed(select, "attachment_uploads", source).await
    }

    /// Forgets the upload of the file at `source` (finished or abandoned).
    pub async fn delete_upload(&self, source: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM attachment_uploads WHERE source = ?")
            .bind(source)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Like [`Store::commit_incoming`] for a message that carries an attachment: the pointer
    /// (with its keys) is sealed and stored with the history row, in the same transaction.
    pub async fn commit_incoming_attachment(
        &self,
        session: (&str, u32, &SessionRecord),
        message: &NewMessage<'_>,
        consumed_pre_key: Option<u32>,
        consumed_kyber_pre_key: Option<u32>,
        pointer: &[u8],
    ) -> Result<bool, StoreError> {
        self.commit_incoming_with(
            session,
            message,
            consumed_pre_key,
            consumed_kyber_pre_key,
            Some(pointer),
        )
        .await
    }

    /// Like [`Store::commit_group_incoming`] for a group message that carries an attachment:
    /// the sender key, the history row and the sealed pointer in one transaction.
    pub async fn commit_group_incoming_attachment(
        &self,
        sender_key: (&str, u32, &[u8], &SenderKeyRecord),
        message: &NewMessage<'_>,
        pointer: &[u8],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        if is_stored(&mut tx, message).await? {
            return Ok(false);
        }
        let (sender, device_id, group_id, record) = sender_key;
        self.save_sender_key_in(&mut tx, sender, device_id, group_id, record)
            .await?;
        let message_id = insert_message(&mut tx, message).await?;
        self.insert_attachment_pointer_in(&mut tx, message_id, pointer)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Seals and stores the attachment pointer of history row `message_id`.
    async fn insert_attachment_pointer_in(
        &self,
        tx: &mut Transaction<'_, Sqlite>,
        message_id: i64,
        pointer: &[u8],
    ) -> Result<(), StoreError> {
        let insert =
            sqlx::query("INSERT INTO attachment_pointers (message_id, sealed) VALUES (?, ?)")
                .bind(message_id);
        let row_key = message_id.to_string();
        self.write_sealed(tx, insert, "attachment_pointers", &row_key, pointer)
            .await
    }

    /// The sealed attachment pointer of history message `message_id`, if it carries one.
    pub async fn attachment_pointer(
        &self,
        message_id: i64,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let select = sqlx::query("SELECT sealed FROM attachment_pointers WHERE message_id = ?")
            .bind(message_id);
        self.read_sealed(select, "attachment_pointers", &message_id.to_string())
            .await
    }
}

/// Whether the incoming `message` (same sender, same client message id) is already in the
/// history: the check every commit of an incoming message makes first, in its transaction.
async fn is_stored(
    tx: &mut Transaction<'_, Sqlite>,
    message: &NewMessage<'_>,
) -> Result<bool, StoreError> {
    let row = sqlx::query(
        "SELECT 1 FROM messages WHERE outgoing = 0 AND peer = ? AND client_message_id = ?",
    )
    .bind(message.peer)
    .bind(message.client_message_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.is_some())
}

async fn insert_message(
    tx: &mut Transaction<'_, Sqlite>,
    message: &NewMessage<'_>,
) -> Result<i64, StoreError> {
    let done = sqlx::query(
        "INSERT INTO messages (conversation, outgoing, peer, peer_device_id, client_message_id, \
         kind, body, sent_at_ms, server_at_ms, stored_at_ms, verification) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(message.conversation)
    .bind(message.outgoing)
    .bind(message.peer)
    .bind(i64::from(message.peer_device_id))
    .bind(message.client_message_id)
    .bind(message.kind)
    .bind(message.body)
    .bind(to_i64(message.sent_at_ms))
    .bind(message.server_at_ms.map(to_i64))
    .bind(to_i64(message.stored_at_ms))
    .bind(message.verification)
    .execute(&mut **tx)
    .await?;
    Ok(done.last_insert_rowid())
}

fn message_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<StoredMessage, StoreError> {
    let server_at: Option<i64> = row.try_get(9)?;
    Ok(StoredMessage {
        id: row.try_get(0)?,
        conversation: row.try_get(1)?,
        outgoing: row.try_get(2)?,
        peer: row.try_get(3)?,
        peer_device_id: to_u32(row.try_get(4)?)?,
        client_message_id: row.try_get(5)?,
        kind: row.try_get(6)?,
        body: row.try_get(7)?,
        sent_at_ms: to_u64(row.try_get(8)?)?,
        server_at_ms: server_at.map(to_u64).transpose()?,
        verification: row.try_get(10)?,
        delivered: row.try_get(11)?,
        read: row.try_get(12)?,
        group_receipts: match to_u32(row.try_get(14)?)? {
            0 => None,
            recipients => Some(GroupReceipts {
                recipients,
                delivered: to_u32(row.try_get(15)?)?,
                read: to_u32(row.try_get(13)?)?,
            }),
        },
    })
}

/// Decodes a snapshot read by [`Store::read_sealed`]; `what` names it in the error.
fn decode_snapshot<T, E: std::fmt::Display>(
    bytes: Option<Zeroizing<Vec<u8>>>,
    decode: impl FnOnce(&[u8]) -> Result<T, E>,
    what: impl FnOnce() -> String,
) -> Result<Option<T>, StoreError> {
    bytes
        .map(|bytes| decode(&bytes).map_err(|e| StoreError::Corrupt(format!("{}: {e}", what()))))
        .transpose()
}

/// Milliseconds fit an `i64` until the year 292 million; saturate rather than wrap.
fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn to_u64(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative value {value}")))
}

fn to_u32(value: i64) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("value {value} out of range")))
}

/// Which per-member time a receipt records.
#[derive(Clone, Copy)]
enum MemberMark {
    Delivered,
    Read,
}

/// Records `member`'s receipt for the outgoing group message `client_message_id` (the first
/// one only); returns how many member rows changed (0 if it was not sent to `member`).
async fn mark_member(
    connection: &mut sqlx::SqliteConnection,
    mark: MemberMark,
    member: &str,
    client_message_id: &[u8],
    at_ms: i64,
) -> Result<u64, StoreError> {
    let sql = match mark {
        MemberMark::Delivered => {
            "UPDATE message_recipients SET delivered_at_ms = ? WHERE recipient = ? \
             AND delivered_at_ms IS NULL AND message_id IN (SELECT id FROM messages \
             WHERE outgoing = 1 AND client_message_id = ? AND conversation LIKE 'group:%')"
        }
        MemberMark::Read => {
            "UPDATE message_recipients SET read_at_ms = ? WHERE recipient = ? \
             AND read_at_ms IS NULL AND message_id IN (SELECT id FROM messages \
             WHERE outgoing = 1 AND client_message_id = ? AND conversation LIKE 'group:%')"
        }
    };
    let done = sqlx::query(sql)
        .bind(at_ms)
        .bind(member)
        .bind(client_message_id)
        .execute(connection)
        .await?;
    Ok(done.rows_affected())
}
