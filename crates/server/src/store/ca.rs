//! The CA database: issued certificates, revocations, RA officers, enrollment codes (hashes
//! only), requests with their history, CRL numbers and the current CRLs.
//!
//! [`CaStore`] is the domain trait; [`SqlCaStore`] implements it on both backends of
//! [`Database`] (SQLite, PostgreSQL) with the same runtime SQL (`$n` parameters, `RETURNING`,
//! `ON CONFLICT`), and `tests/ca_store.rs` runs one conformance suite against each. Every
//! method is one transaction: issuance (code consumed + request + certificate) and revocation
//! happen entirely or not at all.
//!
//! Times are Unix seconds (UTC). Serials are lower-case hex of the 16 content octets, as
//! `openssl x509 -serial` prints them (lower-cased); key identifiers are lower-case hex.

use std::future::Future;

use sqlx::Row;

use super::{Database, StoreError};

/// At most this many enrollment codes are looked at for one address when a code is
/// presented: an officer issuing more outstanding codes than this for one person is a mistake,
/// and the bound keeps a redemption to a fixed amount of hashing.
pub const MAX_CODES_PER_ADDRESS: u32 = 16;

/// Upper bound on the rows one listing returns (`ca list`, `/certs?subject=`, `ra expiring`).
pub const MAX_LIST_ROWS: u32 = 10_000;

/// Longest subject search string accepted (the longest address, RFC 5321).
pub const MAX_SUBJECT_QUERY_LEN: usize = 254;

/// A revocation as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationRecord {
    /// When (Unix seconds).
    pub at: i64,
    /// RFC 5280 CRLReason code.
    pub reason: u8,
    /// Who asked (an actor description: `officer:NAME`, `holder:SERIAL`, `operator:NAME`).
    pub by: String,
}

/// One issued certificate with what the CA knows about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRecord {
    /// Serial, lower-case hex.
    pub serial: String,
    /// Key identifier (hex) of the CA that issued it.
    pub issuer_key_id: String,
    /// Certificate kind (profile) name, e.g. `identity`, `tls-server`.
    pub kind: String,
    /// The subject: commonName, or the first subjectAltName when the subject is empty.
    pub subject: String,
    /// subjectAltName values.
    pub sans: Vec<String>,
    /// SHA-256 (hex) of the SubjectPublicKeyInfo DER.
    pub key_sha256: String,
    /// notBefore, Unix seconds.
    pub not_before: i64,
    /// notAfter, Unix seconds.
    pub not_after: i64,
    /// Who approved it (the RA officer, the code's officer, the holder or the CA operator).
    pub approved_by: String,
    /// When it was approved.
    pub approved_at: i64,
    /// The certificate it renews or re-keys.
    pub previous_serial: Option<String>,
    /// The request it answered.
    pub request_id: Option<i64>,
    /// Set once revoked.
    pub revocation: Option<RevocationRecord>,
    /// The certificate, DER.
    pub der: Vec<u8>,
}

/// States of a request (the RA's state machine, see `confianza_pki::ra`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestState {
    /// Waiting for an officer.
    Pending,
    /// Approved, not yet issued.
    Approved,
    /// Rejected (final).
    Rejected,
    /// Issued (final).
    Issued,
}

impl RequestState {
    /// Stored name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Issued => "issued",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "pending" => Self::Pending,
            "approved" => Self::Approved,
            "rejected" => Self::Rejected,
            "issued" => Self::Issued,
            other => return Err(StoreError::Corrupt(format!("request state {other:?}"))),
        })
    }
}

/// One step of a request's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// `submitted`, `approved`, `rejected`, `issued`.
    pub action: String,
    /// Who.
    pub actor: String,
    /// When.
    pub at: i64,
    /// Optional comment.
    pub comment: Option<String>,
}

/// A request with its history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// Id from [`CaStore::next_request_id`].
    pub id: i64,
    /// Certificate kind name.
    pub kind: String,
    /// Subject asked for.
    pub subject: String,
    /// Current state.
    pub state: RequestState,
    /// Submission time.
    pub created_at: i64,
    /// Steps, in order.
    pub events: Vec<EventRecord>,
}

/// An enrollment code as stored: its hash, never the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentCodeRecord {
    /// Domain-separated SHA-256 of the normalised code.
    pub hash: [u8; 32],
    /// The address it is for.
    pub address: String,
    /// Certificate kind name.
    pub kind: String,
    /// Name of the officer who created it.
    pub created_by: String,
    /// Serial (hex) of that officer's credential.
    pub created_by_serial: String,
    /// Creation time.
    pub created_at: i64,
    /// Expiry.
    pub expires_at: i64,
    /// When it was used.
    pub used_at: Option<i64>,
}

/// An RA officer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfficerRecord {
    /// Name (the credential's address).
    pub name: String,
    /// Serial (hex) of the officer's credential certificate.
    pub credential_serial: String,
    /// Certificate kinds the officer handles.
    pub kinds: Vec<String>,
    /// Domains the officer handles (empty: any).
    pub domains: Vec<String>,
    /// When the officer was added.
    pub created_at: i64,
    /// When the officer was disabled.
    pub disabled_at: Option<i64>,
}

/// A CRL as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlRecord {
    /// Key identifier (hex) of the CA that signed it.
    pub issuer_key_id: String,
    /// cRLNumber.
    pub number: i64,
    /// thisUpdate.
    pub this_update: i64,
    /// nextUpdate.
    pub next_update: i64,
    /// The CRL, DER.
    pub der: Vec<u8>,
}

/// A revoked serial as the CRL builder needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedRow {
    /// Serial, hex.
    pub serial: String,
    /// Revocation time.
    pub at: i64,
    /// CRLReason code.
    pub reason: u8,
}

/// Status filter of [`CertificateQuery`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    /// Not revoked and not expired at `now`.
    Valid,
    /// Revoked.
    Revoked,
    /// Expired at `now` and not revoked.
    Expired,
}

/// What `ca list` and the repository's subject search ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateQuery {
    /// Status filter.
    pub status: Option<StatusFilter>,
    /// Case-insensitive substring of the subject or of a subjectAltName.
    pub subject: Option<String>,
    /// Only this certificate kind.
    pub kind: Option<String>,
    /// The time the status filter is evaluated at.
    pub now: i64,
    /// At most this many rows (capped at [`MAX_LIST_ROWS`]).
    pub limit: u32,
}

/// The stored status of one certificate, for OCSP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredStatus {
    /// Issued and not revoked.
    Good,
    /// Revoked.
    Revoked(RevocationRecord),
}

/// Everything recorded when a certificate is issued, in one transaction.
#[derive(Debug, Clone)]
pub struct Issuance {
    /// The certificate.
    pub certificate: CertificateRecord,
    /// The request it answers, with its history (state `issued`).
    pub request: Option<RequestRecord>,
    /// An enrollment code to mark used at this time: the issuance fails with
    /// [`StoreError::Conflict`] (and records nothing) if it was used meanwhile.
    pub consume_code: Option<([u8; 32], i64)>,
}

/// The CA database.
pub trait CaStore: Send + Sync + 'static {
    /// A fresh request id.
    fn next_request_id(&self) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// Records an issuance (see [`Issuance`]); a serial that exists is a
    /// [`StoreError::Conflict`].
    fn record_issuance(
        &self,
        issuance: Issuance,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records a request that did not (yet) lead to a certificate (pending or rejected).
    fn record_request(
        &self,
        request: RequestRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A request and its history.
    fn request(
        &self,
        id: i64,
    ) -> impl Future<Output = Result<Option<RequestRecord>, StoreError>> + Send;

    /// Records a request waiting for an RA officer (state pending) with its PKCS#10 request
    /// (DER); an existing id is a [`StoreError::Conflict`].
    fn submit_request(
        &self,
        request: RequestRecord,
        csr: Vec<u8>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Pending requests, oldest first (at most `limit`).
    fn pending_requests(
        &self,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<RequestRecord>, StoreError>> + Send;

    /// The PKCS#10 request (DER) of a pending request (`None`: unknown or not pending).
    fn pending_csr(
        &self,
        id: i64,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;

    /// Closes a pending request in one transaction: its new state (approved requests are
    /// recorded as issued together with their certificate), the events that led there, and
    /// the certificate. A request that is not pending is a [`StoreError::Conflict`] (two
    /// officers deciding at once: the first wins).
    fn finish_request(
        &self,
        id: i64,
        events: Vec<EventRecord>,
        outcome: RequestOutcome,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One certificate by serial (hex, any case).
    fn certificate(
        &self,
        serial: &str,
    ) -> impl Future<Output = Result<Option<CertificateRecord>, StoreError>> + Send;

    /// Certificates matching `query`, newest first.
    fn certificates(
        &self,
        query: &CertificateQuery,
    ) -> impl Future<Output = Result<Vec<CertificateRecord>, StoreError>> + Send;

    /// Certificates of `kind` that expire in `(now, horizon]`, are not revoked and were not
    /// renewed yet, soonest first.
    fn expiring(
        &self,
        kind: Option<&str>,
        now: i64,
        horizon: i64,
    ) -> impl Future<Output = Result<Vec<CertificateRecord>, StoreError>> + Send;

    /// Revokes a certificate. Unknown serial: [`StoreError::NotFound`]; already revoked:
    /// [`StoreError::Conflict`]. Returns the updated record.
    fn revoke(
        &self,
        serial: &str,
        revocation: RevocationRecord,
    ) -> impl Future<Output = Result<CertificateRecord, StoreError>> + Send;

    /// Every revoked certificate of one issuer, for its CRL.
    fn revoked(
        &self,
        issuer_key_id: &str,
    ) -> impl Future<Output = Result<Vec<RevokedRow>, StoreError>> + Send;

    /// The status of one certificate of one issuer (`None`: never issued by it).
    fn status(
        &self,
        issuer_key_id: &str,
        serial: &str,
    ) -> impl Future<Output = Result<Option<StoredStatus>, StoreError>> + Send;

    /// Stores a new enrollment code.
    fn add_enrollment_code(
        &self,
        code: EnrollmentCodeRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The newest [`MAX_CODES_PER_ADDRESS`] codes for an address (used or not).
    fn enrollment_codes(
        &self,
        address: &str,
    ) -> impl Future<Output = Result<Vec<EnrollmentCodeRecord>, StoreError>> + Send;

    /// Marks a code used if it is not; `false` when it was already used.
    fn consume_enrollment_code(
        &self,
        hash: &[u8; 32],
        at: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Adds an RA officer; an existing name is a [`StoreError::Conflict`].
    fn add_officer(
        &self,
        officer: OfficerRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every RA officer, by name.
    fn officers(&self) -> impl Future<Output = Result<Vec<OfficerRecord>, StoreError>> + Send;

    /// Points an officer at a renewed credential (unknown name: [`StoreError::NotFound`]).
    fn set_officer_credential(
        &self,
        name: &str,
        credential_serial: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Disables an officer (unknown name: [`StoreError::NotFound`]).
    fn disable_officer(
        &self,
        name: &str,
        at: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The next cRLNumber of an issuer (1, 2, …): strictly increasing, also across nodes.
    fn next_crl_number(
        &self,
        issuer_key_id: &str,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// Stores a CRL (the newest number of an issuer is its current CRL).
    fn publish_crl(&self, crl: CrlRecord) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The current CRL of an issuer.
    fn latest_crl(
        &self,
        issuer_key_id: &str,
    ) -> impl Future<Output = Result<Option<CrlRecord>, StoreError>> + Send;
}

/// How a pending request ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestOutcome {
    /// Approved and issued: the certificate.
    Issued(Box<CertificateRecord>),
    /// Rejected.
    Rejected,
}

/// [`CaStore`] on an open [`Database`] (SQLite or PostgreSQL).
#[derive(Debug, Clone)]
pub struct SqlCaStore {
    db: Database,
}

impl SqlCaStore {
    /// Wraps an open, migrated database.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// The database.
    pub fn database(&self) -> &Database {
        &self.db
    }
}

/// Runs `$body` with `$pool` bound to the pool of whichever backend `$db` is: the SQL is the
/// same on both, only the driver types differ.
macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            Database::Sqlite($pool) => $body,
            Database::Postgres($pool) => $body,
        }
    };
}

/// The certificate columns, in a macro so that queries stay `&'static str` literals.
macro_rules! cert_columns {
    () => {
        "serial, issuer_key_id, kind, subject, sans, key_sha256, not_before, not_after, \
         approved_by, approved_at, previous_serial, request_id, revoked_at, revocation_reason, \
         revoked_by, der"
    };
}

/// The statements issuance, requests and approvals share, as macros over an open transaction
/// `$tx` of either backend (the two pool types have no common trait object), so each
/// statement is written once. They use `?` and `return` of the enclosing function.
///
/// `insert_request!(tx, record)`: the request row, state and time from the record.
macro_rules! insert_request {
    ($tx:expr, $r:expr) => {
        sqlx::query(
            "INSERT INTO ca_requests (id, kind, subject, state, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind($r.id)
        .bind(&$r.kind)
        .bind(&$r.subject)
        .bind($r.state.name())
        .bind($r.created_at)
        .execute(&mut *$tx)
        .await?
    };
}

/// `insert_events!(tx, request_id, first_seq, events)`: the events, numbered from
/// `first_seq`.
macro_rules! insert_events {
    ($tx:expr, $id:expr, $first:expr, $events:expr) => {
        for (seq, e) in ($first..).zip($events) {
            sqlx::query(
                "INSERT INTO ca_request_events (request_id, seq, action, actor, at, comment) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind($id)
            .bind(seq)
            .bind(&e.action)
            .bind(&e.actor)
            .bind(e.at)
            .bind(&e.comment)
            .execute(&mut *$tx)
            .await?;
        }
    };
}

/// `insert_certificate!(tx, record, request_id)`: the certificate row; a serial already
/// recorded returns [`StoreError::Conflict`].
macro_rules! insert_certificate {
    ($tx:expr, $c:expr, $request_id:expr) => {{
        let c: &CertificateRecord = $c;
        let inserted = sqlx::query(
            "INSERT INTO certificates (serial, issuer_key_id, kind, subject, sans, key_sha256, \
             not_before, not_after, approved_by, approved_at, previous_serial, request_id, der) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(c.serial.to_ascii_lowercase())
        .bind(&c.issuer_key_id)
        .bind(&c.kind)
        .bind(&c.subject)
        .bind(join(&c.sans))
        .bind(&c.key_sha256)
        .bind(c.not_before)
        .bind(c.not_after)
        .bind(&c.approved_by)
        .bind(c.approved_at)
        .bind(c.previous_serial.as_ref().map(|s| s.to_ascii_lowercase()))
        .bind($request_id)
        .bind(&c.der)
        .execute(&mut *$tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!("serial {} exists", c.serial)));
            }
            Err(e) => return Err(e.into()),
        }
    }};
}

fn join(values: &[String]) -> String {
    values.join(",")
}

fn split(value: &str) -> Vec<String> {
    if value.is_empty() {
        Vec::new()
    } else {
        value.split(',').map(str::to_owned).collect()
    }
}

fn reason_from_db(v: i64) -> Result<u8, StoreError> {
    u8::try_from(v).map_err(|_| StoreError::Corrupt(format!("revocation reason {v}")))
}

fn cert_from_row<R: Row>(row: &R) -> Result<CertificateRecord, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i64>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Vec<u8>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let revoked_at: Option<i64> = row.try_get("revoked_at")?;
    let revocation = match revoked_at {
        Some(at) => {
            let reason: Option<i64> = row.try_get("revocation_reason")?;
            let by: Option<String> = row.try_get("revoked_by")?;
            Some(RevocationRecord {
                at,
                reason: reason_from_db(reason.unwrap_or_default())?,
                by: by.unwrap_or_default(),
            })
        }
        None => None,
    };
    let sans: String = row.try_get("sans")?;
    Ok(CertificateRecord {
        serial: row.try_get("serial")?,
        issuer_key_id: row.try_get("issuer_key_id")?,
        kind: row.try_get("kind")?,
        subject: row.try_get("subject")?,
        sans: split(&sans),
        key_sha256: row.try_get("key_sha256")?,
        not_before: row.try_get("not_before")?,
        not_after: row.try_get("not_after")?,
        approved_by: row.try_get("approved_by")?,
        approved_at: row.try_get("approved_at")?,
        previous_serial: row.try_get("previous_serial")?,
        request_id: row.try_get("request_id")?,
        revocation,
        der: row.try_get("der")?,
    })
}

fn code_from_row<R: Row>(row: &R) -> Result<EnrollmentCodeRecord, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i64>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Vec<u8>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let hash: Vec<u8> = row.try_get("hash")?;
    Ok(EnrollmentCodeRecord {
        hash: hash
            .try_into()
            .map_err(|_| StoreError::Corrupt("enrollment code hash length".into()))?,
        address: row.try_get("address")?,
        kind: row.try_get("kind")?,
        created_by: row.try_get("created_by")?,
        created_by_serial: row.try_get("created_by_serial")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        used_at: row.try_get("used_at")?,
    })
}

fn officer_from_row<R: Row>(row: &R) -> Result<OfficerRecord, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i64>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let kinds: String = row.try_get("kinds")?;
    let domains: String = row.try_get("domains")?;
    Ok(OfficerRecord {
        name: row.try_get("name")?,
        credential_serial: row.try_get("credential_serial")?,
        kinds: split(&kinds),
        domains: split(&domains),
        created_at: row.try_get("created_at")?,
        disabled_at: row.try_get("disabled_at")?,
    })
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
fn like_pattern(needle: &str) -> String {
    let mut out = String::with_capacity(needle.len() + 2);
    out.push('%');
    for c in needle.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Whether a database error is a unique/primary-key violation.
fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

impl CaStore for SqlCaStore {
    async fn next_request_id(&self) -> Result<i64, StoreError> {
        let sql = "UPDATE ca_counters SET value = value + 1 WHERE name = 'request' RETURNING value";
        with_pool!(&self.db, pool => {
            let row = sqlx::query(sql).fetch_one(pool).await?;
            Ok(row.try_get::<i64, _>("value")?)
        })
    }

    async fn record_issuance(&self, issuance: Issuance) -> Result<(), StoreError> {
        let Issuance {
            certificate: c,
            request,
            consume_code,
        } = issuance;
        with_pool!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            if let Some((hash, at)) = consume_code {
                let done = sqlx::query(
                    "UPDATE enrollment_codes SET used_at = $1 WHERE hash = $2 AND used_at IS NULL",
                )
                .bind(at)
                .bind(hash.to_vec())
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Err(StoreError::Conflict("enrollment code already used".into()));
                }
            }
            if let Some(r) = &request {
                insert_request!(tx, r);
                insert_events!(tx, r.id, 0_i64, &r.events);
            }
            insert_certificate!(tx, &c, request.as_ref().map(|r| r.id).or(c.request_id));
            tx.commit().await?;
            Ok(())
        })
    }

    async fn record_request(&self, r: RequestRecord) -> Result<(), StoreError> {
        with_pool!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            insert_request!(tx, r);
            insert_events!(tx, r.id, 0_i64, &r.events);
            tx.commit().await?;
            Ok(())
        })
    }

    async fn request(&self, id: i64) -> Result<Option<RequestRecord>, StoreError> {
        with_pool!(&self.db, pool => {
            let Some(row) = sqlx::query(
                "SELECT id, kind, subject, state, created_at FROM ca_requests WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
            else {
                return Ok(None);
            };
            let events = sqlx::query(
                "SELECT action, actor, at, comment FROM ca_request_events \
                 WHERE request_id = $1 ORDER BY seq",
            )
            .bind(id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|e| {
                Ok(EventRecord {
                    action: e.try_get("action")?,
                    actor: e.try_get("actor")?,
                    at: e.try_get("at")?,
                    comment: e.try_get("comment")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
            let state: String = row.try_get("state")?;
            Ok(Some(RequestRecord {
                id: row.try_get("id")?,
                kind: row.try_get("kind")?,
                subject: row.try_get("subject")?,
                state: RequestState::parse(&state)?,
                created_at: row.try_get("created_at")?,
                events,
            }))
        })
    }

    async fn submit_request(&self, r: RequestRecord, csr: Vec<u8>) -> Result<(), StoreError> {
        with_pool!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            let inserted = sqlx::query(
                "INSERT INTO ca_requests (id, kind, subject, state, created_at, csr) \
                 VALUES ($1, $2, $3, 'pending', $4, $5)",
            )
            .bind(r.id)
            .bind(&r.kind)
            .bind(&r.subject)
            .bind(r.created_at)
            .bind(&csr)
            .execute(&mut *tx)
            .await;
            match inserted {
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) => {
                    return Err(StoreError::Conflict(format!("request {} exists", r.id)));
                }
                Err(e) => return Err(e.into()),
            }
            insert_events!(tx, r.id, 0_i64, &r.events);
            tx.commit().await?;
            Ok(())
        })
    }

    async fn pending_requests(&self, limit: u32) -> Result<Vec<RequestRecord>, StoreError> {
        let ids: Vec<i64> = with_pool!(&self.db, pool => {
            sqlx::query_scalar(
                "SELECT id FROM ca_requests WHERE state = 'pending' ORDER BY id LIMIT $1",
            )
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        });
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(r) = self.request(id).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    async fn pending_csr(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        with_pool!(&self.db, pool => {
            let csr: Option<Option<Vec<u8>>> = sqlx::query_scalar(
                "SELECT csr FROM ca_requests WHERE id = $1 AND state = 'pending'",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?;
            Ok(csr.flatten())
        })
    }

    async fn finish_request(
        &self,
        id: i64,
        events: Vec<EventRecord>,
        outcome: RequestOutcome,
    ) -> Result<(), StoreError> {
        let state = match &outcome {
            RequestOutcome::Issued(_) => RequestState::Issued,
            RequestOutcome::Rejected => RequestState::Rejected,
        };
        with_pool!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(
                "UPDATE ca_requests SET state = $1, csr = NULL WHERE id = $2 AND state = 'pending'",
            )
            .bind(state.name())
            .bind(id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                return Err(StoreError::Conflict(format!("request {id} is not pending")));
            }
            let first: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM ca_request_events WHERE request_id = $1",
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            insert_events!(tx, id, first, &events);
            if let RequestOutcome::Issued(c) = &outcome {
                insert_certificate!(tx, c, id);
            }
            tx.commit().await?;
            Ok(())
        })
    }

    async fn certificate(&self, serial: &str) -> Result<Option<CertificateRecord>, StoreError> {
        let sql = concat!(
            "SELECT ",
            cert_columns!(),
            " FROM certificates WHERE serial = $1"
        );
        let serial = serial.to_ascii_lowercase();
        with_pool!(&self.db, pool => {
            match sqlx::query(sql).bind(&serial).fetch_optional(pool).await? {
                Some(row) => Ok(Some(cert_from_row(&row)?)),
                None => Ok(None),
            }
        })
    }

    async fn certificates(
        &self,
        query: &CertificateQuery,
    ) -> Result<Vec<CertificateRecord>, StoreError> {
        let sql = concat!(
            "SELECT ",
            cert_columns!(),
            " FROM certificates WHERE \
             ($5 = 0 OR ($5 = 1 AND revoked_at IS NULL AND not_after > $1) \
              OR ($5 = 2 AND revoked_at IS NOT NULL) \
              OR ($5 = 3 AND revoked_at IS NULL AND not_after <= $1)) \
             AND ($2 = '' OR lower(subject) LIKE $2 ESCAPE '\\' \
                  OR lower(sans) LIKE $2 ESCAPE '\\') \
             AND ($3 = '' OR kind = $3) \
             ORDER BY not_before DESC, serial LIMIT $4"
        );
        let status: i64 = match query.status {
            None => 0,
            Some(StatusFilter::Valid) => 1,
            Some(StatusFilter::Revoked) => 2,
            Some(StatusFilter::Expired) => 3,
        };
        let pattern = match &query.subject {
            Some(s) if !s.is_empty() => like_pattern(s),
            _ => String::new(),
        };
        let kind = query.kind.clone().unwrap_or_default();
        let limit = i64::from(query.limit.min(MAX_LIST_ROWS));
        with_pool!(&self.db, pool => {
            sqlx::query(sql)
                .bind(query.now)
                .bind(&pattern)
                .bind(&kind)
                .bind(limit)
                .bind(status)
                .fetch_all(pool)
                .await?
                .iter()
                .map(cert_from_row)
                .collect()
        })
    }

    async fn expiring(
        &self,
        kind: Option<&str>,
        now: i64,
        horizon: i64,
    ) -> Result<Vec<CertificateRecord>, StoreError> {
        let sql = concat!(
            "SELECT ",
            cert_columns!(),
            " FROM certificates c WHERE revoked_at IS NULL \
             AND not_after > $1 AND not_after <= $2 AND ($3 = '' OR kind = $3) \
             AND NOT EXISTS (SELECT 1 FROM certificates n WHERE n.previous_serial = c.serial) \
             ORDER BY not_after, serial LIMIT $4"
        );
        let kind = kind.unwrap_or_default().to_owned();
        with_pool!(&self.db, pool => {
            sqlx::query(sql)
                .bind(now)
                .bind(horizon)
                .bind(&kind)
                .bind(i64::from(MAX_LIST_ROWS))
                .fetch_all(pool)
                .await?
                .iter()
                .map(cert_from_row)
                .collect()
        })
    }

    async fn revoke(
        &self,
        serial: &str,
        revocation: RevocationRecord,
    ) -> Result<CertificateRecord, StoreError> {
        let serial = serial.to_ascii_lowercase();
        let select = concat!(
            "SELECT ",
            cert_columns!(),
            " FROM certificates WHERE serial = $1"
        );
        with_pool!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            // The conditional update is the decision: two concurrent revocations cannot both
            // succeed, whatever the isolation level.
            let done = sqlx::query(
                "UPDATE certificates SET revoked_at = $1, revocation_reason = $2, revoked_by = $3 \
                 WHERE serial = $4 AND revoked_at IS NULL",
            )
            .bind(revocation.at)
            .bind(i64::from(revocation.reason))
            .bind(&revocation.by)
            .bind(&serial)
            .execute(&mut *tx)
            .await?;
            let row = sqlx::query(select).bind(&serial).fetch_optional(&mut *tx).await?;
            let Some(row) = row else {
                return Err(StoreError::NotFound(format!("certificate {serial}")));
            };
            if done.rows_affected() != 1 {
                return Err(StoreError::Conflict(format!("certificate {serial} is already revoked")));
            }
            let record = cert_from_row(&row)?;
            tx.commit().await?;
            Ok(record)
        })
    }

    async fn revoked(&self, issuer_key_id: &str) -> Result<Vec<RevokedRow>, StoreError> {
        with_pool!(&self.db, pool => {
            sqlx::query(
                "SELECT serial, revoked_at, revocation_reason FROM certificates \
                 WHERE issuer_key_id = $1 AND revoked_at IS NOT NULL ORDER BY serial",
            )
            .bind(issuer_key_id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| {
                let reason: Option<i64> = row.try_get("revocation_reason")?;
                Ok(RevokedRow {
                    serial: row.try_get("serial")?,
                    at: row.try_get("revoked_at")?,
                    reason: reason_from_db(reason.unwrap_or_default())?,
                })
            })
            .collect()
        })
    }

    async fn status(
        &self,
        issuer_key_id: &str,
        serial: &str,
    ) -> Result<Option<StoredStatus>, StoreError> {
        let serial = serial.to_ascii_lowercase();
        with_pool!(&self.db, pool => {
            let Some(row) = sqlx::query(
                "SELECT revoked_at, revocation_reason, revoked_by FROM certificates \
                 WHERE issuer_key_id = $1 AND serial = $2",
            )
            .bind(issuer_key_id)
            .bind(&serial)
            .fetch_optional(pool)
            .await?
            else {
                return Ok(None);
            };
            let at: Option<i64> = row.try_get("revoked_at")?;
            Ok(Some(match at {
                None => StoredStatus::Good,
                Some(at) => {
                    let reason: Option<i64> = row.try_get("revocation_reason")?;
                    let by: Option<String> = row.try_get("revoked_by")?;
                    StoredStatus::Revoked(RevocationRecord {
                        at,
                        reason: reason_from_db(reason.unwrap_or_default())?,
                        by: by.unwrap_or_default(),
                    })
                }
            }))
        })
    }

    async fn add_enrollment_code(&self, code: EnrollmentCodeRecord) -> Result<(), StoreError> {
        with_pool!(&self.db, pool => {
            let result = sqlx::query(
                "INSERT INTO enrollment_codes (hash, address, kind, created_by, created_by_serial, \
                 created_at, expires_at, used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(code.hash.to_vec())
            .bind(&code.address)
            .bind(&code.kind)
            .bind(&code.created_by)
            .bind(&code.created_by_serial)
            .bind(code.created_at)
            .bind(code.expires_at)
            .bind(code.used_at)
            .execute(pool)
            .await;
            match result {
                Ok(_) => Ok(()),
                Err(e) if is_unique_violation(&e) => {
                    Err(StoreError::Conflict("enrollment code exists".into()))
                }
                Err(e) => Err(e.into()),
            }
        })
    }

    async fn enrollment_codes(
        &self,
        address: &str,
    ) -> Result<Vec<EnrollmentCodeRecord>, StoreError> {
        with_pool!(&self.db, pool => {
            sqlx::query(
                "SELECT hash, address, kind, created_by, created_by_serial, created_at, expires_at, \
                 used_at FROM enrollment_codes WHERE address = $1 \
                 ORDER BY created_at DESC LIMIT $2",
            )
            .bind(address)
            .bind(i64::from(MAX_CODES_PER_ADDRESS))
            .fetch_all(pool)
            .await?
            .iter()
            .map(code_from_row)
            .collect()
        })
    }

    async fn consume_enrollment_code(&self, hash: &[u8; 32], at: i64) -> Result<bool, StoreError> {
        with_pool!(&self.db, pool => {
            let done = sqlx::query(
                "UPDATE enrollment_codes SET used_at = $1 WHERE hash = $2 AND used_at IS NULL",
            )
            .bind(at)
            .bind(hash.to_vec())
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    async fn add_officer(&self, officer: OfficerRecord) -> Result<(), StoreError> {
        with_pool!(&self.db, pool => {
            let result = sqlx::query(
                "INSERT INTO ra_officers (name, credential_serial, kinds, domains, created_at, \
                 disabled_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&officer.name)
            .bind(officer.credential_serial.to_ascii_lowercase())
            .bind(join(&officer.kinds))
            .bind(join(&officer.domains))
            .bind(officer.created_at)
            .bind(officer.disabled_at)
            .execute(pool)
            .await;
            match result {
                Ok(_) => Ok(()),
                Err(e) if is_unique_violation(&e) => {
                    Err(StoreError::Conflict(format!("RA officer {} exists", officer.name)))
                }
                Err(e) => Err(e.into()),
            }
        })
    }

    async fn officers(&self) -> Result<Vec<OfficerRecord>, StoreError> {
        with_pool!(&self.db, pool => {
            sqlx::query(
                "SELECT name, credential_serial, kinds, domains, created_at, disabled_at \
                 FROM ra_officers ORDER BY name",
            )
            .fetch_all(pool)
            .await?
            .iter()
            .map(officer_from_row)
            .collect()
        })
    }

    async fn set_officer_credential(
        &self,
        name: &str,
        credential_serial: &str,
    ) -> Result<(), StoreError> {
        with_pool!(&self.db, pool => {
            let done = sqlx::query("UPDATE ra_officers SET credential_serial = $1 WHERE name = $2")
                .bind(credential_serial.to_ascii_lowercase())
                .bind(name)
                .execute(pool)
                .await?;
            if done.rows_affected() == 1 {
                Ok(())
            } else {
                Err(StoreError::NotFound(format!("RA officer {name}")))
            }
        })
    }

    async fn disable_officer(&self, name: &str, at: i64) -> Result<(), StoreError> {
        with_pool!(&self.db, pool => {
            let done = sqlx::query(
                "UPDATE ra_officers SET disabled_at = $1 WHERE name = $2 AND disabled_at IS NULL",
            )
            .bind(at)
            .bind(name)
            .execute(pool)
            .await?;
            if done.rows_affected() == 1 {
                Ok(())
            } else {
                Err(StoreError::NotFound(format!("active RA officer {name}")))
            }
        })
    }

    async fn next_crl_number(&self, issuer_key_id: &str) -> Result<i64, StoreError> {
        with_pool!(&self.db, pool => {
            let row = sqlx::query(
                "INSERT INTO crl_numbers (issuer_key_id, last_number) VALUES ($1, 1) \
                 ON CONFLICT (issuer_key_id) DO UPDATE SET last_number = crl_numbers.last_number + 1 \
                 RETURNING last_number",
            )
            .bind(issuer_key_id)
            .fetch_one(pool)
            .await?;
            Ok(row.try_get::<i64, _>("last_number")?)
        })
    }

    async fn publish_crl(&self, crl: CrlRecord) -> Result<(), StoreError> {
        with_pool!(&self.db, pool => {
            let result = sqlx::query(
                "INSERT INTO crls (issuer_key_id, number, this_update, next_update, der) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&crl.issuer_key_id)
            .bind(crl.number)
            .bind(crl.this_update)
            .bind(crl.next_update)
            .bind(&crl.der)
            .execute(pool)
            .await;
            match result {
                Ok(_) => Ok(()),
                Err(e) if is_unique_violation(&e) => {
                    Err(StoreError::Conflict(format!("CRL number {} exists", crl.number)))
                }
                Err(e) => Err(e.into()),
            }
        })
    }

    async fn latest_crl(&self, issuer_key_id: &str) -> Result<Option<CrlRecord>, StoreError> {
        with_pool!(&self.db, pool => {
            let Some(row) = sqlx::query(
                "SELECT issuer_key_id, number, this_update, next_update, der FROM crls \
                 WHERE issuer_key_id = $1 ORDER BY number DESC LIMIT 1",
            )
            .bind(issuer_key_id)
            .fetch_optional(pool)
            .await?
            else {
                return Ok(None);
            };
            Ok(Some(CrlRecord {
                issuer_key_id: row.try_get("issuer_key_id")?,
                number: row.try_get("number")?,
                this_update: row.try_get("this_update")?,
                next_update: row.try_get("next_update")?,
                der: row.try_get("der")?,
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(like_pattern("A_b%c\\"), "%a\\_b\\%c\\\\%");
    }

    #[test]
    fn split_and_join_round_trip() {
        let v = vec!["a.example.org".to_owned(), "b.example.org".to_owned()];
        assert_eq!(split(&join(&v)), v);
        assert!(split("").is_empty());
    }
}
