//! [`MessageStore`] on PostgreSQL: several server nodes share one database.
//!
//! Transactions run at READ COMMITTED; what must not interleave takes row locks:
//! - a prekey claim deletes the key it selected `FOR UPDATE SKIP LOCKED`, so concurrent claims
//!   (on any node) take different keys and none is handed out twice;
//! - an enqueue locks the recipients' device rows (in row-id order, so two batches cannot
//!   deadlock) before reading their queue depth and last delivery id: batches for one device
//!   commit one after the other, and delivery ids become visible in increasing order;
//! - deleting a body locks it first, so two acknowledgements of one group message cannot both
//!   leave it behind;
//! - group changes lock the group row; enrollments of one account take an advisory lock;
//! - blob creations of one owner take an advisory lock of their own around the quota check
//!   and the insert, so creations racing on several nodes cannot both fit the last of a quota.
//!
//! Bulk statements bind one array per column (`UNNEST`), so a statement's text, and its
//! prepared form, is the same whatever the batch size; an enqueue writes its bodies, entries
//! and counters in one statement.

use std::collections::{BTreeSet, HashMap, HashSet};

use confianza_api::limits::{MAX_GROUP_MEMBERS, MAX_GROUPS_PER_LIST};
use confianza_api::{
    BlobId, GroupId, GroupMember, GroupSummary, KyberPreKey, NoisePublicKey, OneTimePreKey,
    PreKeyCount, PreKeyUpload, SignedPreKey,
};
use sqlx::{Acquire, PgConnection, PgPool, Postgres, QueryBuilder, Transaction};

use super::rows::{
    DedupeKey, Mailbox, col_array, col_ciphertext_type, col_group_id, col_kyber, col_u32, col_u64,
    db_int, encode_message_ids, plan_enqueue, planned_entries, receipt_from_columns,
    rows_per_statement,
};
use super::{
    Acknowledged, BatchOutcome, BlobQuota, BlobRecord, BlobUsage, ClaimedPreKeys, Device,
    DeviceAddress, EnqueueOutcome, GroupRecord, MessageStore, NewDevice, NewMessage, NewReceipt,
    Queued, QueuedItem, QuotaExceeded, StoreError, StoredEntry, WriteBatch, receipts_owed,
};

/// The PostgreSQL message store. Cheap to clone: it shares the pool.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

type DeviceRow = (String, i64, i64, Vec<u8>, Vec<u8>, Vec<u8>, i64, i64);

const DEVICE_COLUMNS: &str = "address, device_id, registration_id, noise_key, identity_key, \
                              certificate, created_at_ms, last_seen_ms";

fn device_from_row(row: DeviceRow) -> Result<Device, StoreError> {
    let (address, device_id, registration_id, noise_key, identity_key, certificate, created, seen) =
        row;
    Ok(Device {
        address: DeviceAddress {
            address,
            device_id: col_u32(device_id, "device_id")?,
        },
        registration_id: col_u32(registration_id, "registration_id")?,
        noise_key: col_array(&noise_key, "noise_key")?,
        identity_key: col_array(&identity_key, "identity_key")?,
        certificate,
        created_at_ms: col_u64(created, "created_at_ms")?,
        last_seen_ms: col_u64(seen, "last_seen_ms")?,
    })
}

/// A unique constraint failed: the caller's input collides with stored data.
fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_unique_violation())
}

impl PgStore {
    /// The store over a migrated pool (see [`super::Database::connect`]).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// A read-committed transaction; the methods take the row locks they need.
    async fn write(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        Ok(self.pool.begin().await?)
    }
}

/// The row id of a device, if it exists.
async fn device_row(
    conn: &mut PgConnection,
    device: &DeviceAddress,
) -> Result<Option<i64>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT id FROM devices WHERE address = $1 AND device_id = $2")
            .bind(&device.address)
            .bind(i64::from(device.device_id))
            .fetch_optional(conn)
            .await?,
    )
}

async fn account_exists(conn: &mut PgConnection, address: &str) -> Result<bool, StoreError> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT id FROM devices WHERE address = $1 LIMIT 1")
            .bind(address)
            .fetch_optional(conn)
            .await?;
    Ok(found.is_some())
}

/// Deletes the given bodies that no mailbox entry references any more.
async fn delete_orphan_bodies(
    conn: &mut PgConnection,
    bodies: &BTreeSet<i64>,
) -> Result<(), StoreError> {
    if bodies.is_empty() {
        return Ok(());
    }
    let bodies: Vec<i64> = bodies.iter().copied().collect();
    // Locked first (in id order), in a statement of its own: the check below then runs on a
    // snapshot taken after any concurrent acknowledgement of the same body has committed.
    sqlx::query("SELECT id FROM message_bodies WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind(&bodies)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "DELETE FROM message_bodies WHERE id = ANY($1) AND NOT EXISTS \
         (SELECT 1 FROM mailbox_entries e WHERE e.body = message_bodies.id)",
    )
    .bind(&bodies)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Locks the device rows of `recipients` (in row-id order, the one order every locker uses, so
/// two batches cannot deadlock) and reads their mailboxes. Unknown devices are absent.
async fn lock_mailboxes(
    conn: &mut PgConnection,
    recipients: &BTreeSet<&DeviceAddress>,
) -> Result<HashMap<DeviceAddress, Mailbox>, StoreError> {
    let (addresses, device_ids): (Vec<&str>, Vec<i64>) = recipients
        .iter()
        .map(|r| (r.address.as_str(), i64::from(r.device_id)))
        .unzip();
    let rows: Vec<(i64, String, i64, i64)> = sqlx::query_as(
        "SELECT d.id, d.address, d.device_id, d.last_delivery_id \
         FROM UNNEST($1::TEXT[], $2::BIGINT[]) AS k (address, device_id) \
         JOIN devices d ON d.address = k.address AND d.device_id = k.device_id \
         ORDER BY d.id FOR UPDATE OF d",
    )
    .bind(&addresses)
    .bind(&device_ids)
    .fetch_all(&mut *conn)
    .await?;
    // Counted after the locks are held, so every earlier batch for these devices is visible.
    let ids: Vec<i64> = rows.iter().map(|row| row.0).collect();
    let depths: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT d.id, (SELECT COUNT(*) FROM mailbox_entries e WHERE e.device = d.id) \
                      + (SELECT COUNT(*) FROM receipts r WHERE r.device = d.id) \
         FROM devices d WHERE d.id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let depths: HashMap<i64, i64> = depths.into_iter().collect();
    let mut mailboxes = HashMap::with_capacity(rows.len());
    for (device, address, device_id, last_delivery_id) in rows {
        let depth = depths.get(&device).copied().unwrap_or(0);
        mailboxes.insert(
            DeviceAddress {
                address,
                device_id: col_u32(device_id, "device_id")?,
            },
            Mailbox {
                device,
                last_delivery_id,
                depth: col_u64(depth, "depth")?,
            },
        );
    }
    Ok(mailboxes)
}

/// The dedupe keys among `keys` that are already queued.
async fn queued_keys(
    conn: &mut PgConnection,
    keys: &HashSet<DedupeKey>,
) -> Result<HashSet<DedupeKey>, StoreError> {
    let mut devices = Vec::with_capacity(keys.len());
    let mut senders = Vec::with_capacity(keys.len());
    let mut sender_devices = Vec::with_capacity(keys.len());
    let mut ids = Vec::with_capacity(keys.len());
    for key in keys {
        devices.push(key.device);
        senders.push(key.sender_address.as_str());
        sender_devices.push(i64::from(key.sender_device_id));
        ids.push(&key.client_message_id[..]);
    }
    // Arrays, not a VALUES list: one statement text whatever the batch size, so its prepared
    // form is reused.
    let rows: Vec<(i64, String, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT e.device, e.sender_address, e.sender_device_id, e.client_message_id \
         FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::BIGINT[], $4::BYTEA[]) \
             AS k (device, sender_address, sender_device_id, client_message_id) \
         JOIN mailbox_entries e ON e.device = k.device \
             AND e.sender_address = k.sender_address \
             AND e.sender_device_id = k.sender_device_id \
             AND e.client_message_id = k.client_message_id",
    )
    .bind(&devices)
    .bind(&senders)
    .bind(&sender_devices)
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(
            |(device, sender_address, sender_device_id, client_message_id)| {
                Ok(DedupeKey {
                    device,
                    sender_address,
                    sender_device_id: col_u32(sender_device_id, "sender_device_id")?,
                    client_message_id: col_array(&client_message_id, "client_message_id")?,
                })
            },
        )
        .collect()
}

/// Stores a batch of messages inside the caller's transaction (see [`MessageStore::enqueue`]);
/// with `stored`, also describes every entry stored (before the caller commits).
async fn enqueue_in(
    conn: &mut PgConnection,
    messages: &[NewMessage],
    max_queue: u64,
    stored: Option<&mut Vec<StoredEntry>>,
) -> Result<Vec<EnqueueOutcome>, StoreError> {
    let recipients: BTreeSet<&DeviceAddress> =
        messages.iter().flat_map(|m| &m.recipients).collect();
    let mut mailboxes = lock_mailboxes(conn, &recipients).await?;
    enqueue_locked(conn, messages, max_queue, &mut mailboxes, stored).await
}

/// [`enqueue_in`] once the recipients' mailboxes are locked and read (`mailboxes`, which
/// follows the counters it moves).
async fn enqueue_locked(
    conn: &mut PgConnection,
    messages: &[NewMessage],
    max_queue: u64,
    mailboxes: &mut HashMap<DeviceAddress, Mailbox>,
    stored: Option<&mut Vec<StoredEntry>>,
) -> Result<Vec<EnqueueOutcome>, StoreError> {
    // 2. The dedupe keys of this batch already queued.
    let known: &HashMap<DeviceAddress, Mailbox> = mailboxes;
    let keys: HashSet<DedupeKey> = messages
        .iter()
        .flat_map(|message| {
            message
                .recipients
                .iter()
                .filter_map(|r| known.get(r))
                .map(move |mailbox| DedupeKey::new(mailbox.device, message))
        })
        .collect();
    let mut queued = if keys.is_empty() {
        HashSet::new()
    } else {
        queued_keys(conn, &keys).await?
    };

    // 3. The outcomes, decided in memory.
    let plan = plan_enqueue(messages, mailboxes, &mut queued, max_queue);
    if plan.bodies.is_empty() {
        // Nothing to write (all duplicates, full or unknown).
        return Ok(plan.outcomes);
    }
    if let Some(stored) = stored {
        stored.extend(planned_entries(&plan, mailboxes)?);
    }

    // 4. The writes in one statement: bodies (numbered by their place in the batch), entries
    // pointing at them, counters. Its CTEs run as one statement, so the entries' foreign keys
    // are checked once the bodies are in.
    let mut ciphertext_types = Vec::with_capacity(plan.bodies.len());
    let mut body_bytes = Vec::with_capacity(plan.bodies.len());
    let mut timestamps = Vec::with_capacity(plan.bodies.len());
    let mut groups = Vec::with_capacity(plan.bodies.len());
    let mut senders = Vec::with_capacity(plan.bodies.len());
    let mut sender_devices = Vec::with_capacity(plan.bodies.len());
    let mut message_ids = Vec::with_capacity(plan.bodies.len());
    let mut expiries = Vec::with_capacity(plan.bodies.len());
    for message in &plan.bodies {
        ciphertext_types.push(i64::from(message.ciphertext_type.to_wire()));
        body_bytes.push(message.body.as_slice());
        timestamps.push(db_int(message.server_timestamp_ms));
        groups.push(message.group_id.as_ref().map(|g| &g.0[..]));
        senders.push(message.sender.address.as_str());
        sender_devices.push(i64::from(message.sender.device_id));
        message_ids.push(&message.client_message_id[..]);
        expiries.push(db_int(message.expires_at_ms));
    }
    let mut entry_devices = Vec::with_capacity(plan.entries.len());
    let mut delivery_ids = Vec::with_capacity(plan.entries.len());
    let mut entry_bodies = Vec::with_capacity(plan.entries.len());
    for entry in &plan.entries {
        entry_devices.push(entry.device);
        delivery_ids.push(entry.delivery_id);
        // `WITH ORDINALITY` numbers the bodies from 1.
        entry_bodies.push(db_int(entry.body as u64).saturating_add(1));
    }
    let (counter_devices, counter_lasts): (Vec<i64>, Vec<i64>) =
        plan.counters.iter().copied().unzip();
    sqlx::query(
        "WITH b AS MATERIALIZED ( \
             SELECT nextval(pg_get_serial_sequence('message_bodies', 'id')) AS id, t.* \
             FROM UNNEST($1::BIGINT[], $2::BYTEA[], $3::BIGINT[], $4::BYTEA[], $5::TEXT[], \
                         $6::BIGINT[], $7::BYTEA[], $8::BIGINT[]) WITH ORDINALITY \
                 AS t (ciphertext_type, body, server_timestamp_ms, group_id, sender_address, \
                       sender_device_id, client_message_id, expires_at_ms, n) \
         ), bodies AS ( \
             INSERT INTO message_bodies (id, ciphertext_type, body, server_timestamp_ms, group_id) \
             SELECT id, ciphertext_type, body, server_timestamp_ms, group_id FROM b \
         ), entries AS ( \
             INSERT INTO mailbox_entries (device, delivery_id, body, sender_address, \
                 sender_device_id, client_message_id, expires_at_ms) \
             SELECT e.device, e.delivery_id, b.id, b.sender_address, b.sender_device_id, \
                    b.client_message_id, b.expires_at_ms \
             FROM UNNEST($9::BIGINT[], $10::BIGINT[], $11::BIGINT[]) AS e (device, delivery_id, n) \
             JOIN b ON b.n = e.n \
         ) \
         UPDATE devices SET last_delivery_id = k.last \
         FROM UNNEST($12::BIGINT[], $13::BIGINT[]) AS k (id, last) WHERE devices.id = k.id",
    )
    .bind(&ciphertext_types)
    .bind(&body_bytes)
    .bind(&timestamps)
    .bind(&groups)
    .bind(&senders)
    .bind(&sender_devices)
    .bind(&message_ids)
    .bind(&expiries)
    .bind(&entry_devices)
    .bind(&delivery_ids)
    .bind(&entry_bodies)
    .bind(&counter_devices)
    .bind(&counter_lasts)
    .execute(&mut *conn)
    .await?;
    Ok(plan.outcomes)
}

/// Queues receipts inside the caller's transaction (see [`MessageStore::enqueue_receipts`]);
/// with `stored`, also describes every receipt stored.
async fn enqueue_receipts_in(
    conn: &mut PgConnection,
    receipts: &[NewReceipt],
    stored: Option<&mut Vec<StoredEntry>>,
) -> Result<(), StoreError> {
    let targets: BTreeSet<&DeviceAddress> = receipts.iter().map(|r| &r.to).collect();
    let mut mailboxes = lock_mailboxes(conn, &targets).await?;
    enqueue_receipts_locked(conn, receipts, &mut mailboxes, stored).await
}

/// [`enqueue_receipts_in`] once the targets' mailboxes are locked and read (`mailboxes`,
/// which follows the counters it moves).
async fn enqueue_receipts_locked(
    conn: &mut PgConnection,
    receipts: &[NewReceipt],
    mailboxes: &mut HashMap<DeviceAddress, Mailbox>,
    mut stored: Option<&mut Vec<StoredEntry>>,
) -> Result<(), StoreError> {
    let mut devices = Vec::with_capacity(receipts.len());
    let mut delivery_ids = Vec::with_capacity(receipts.len());
    let mut recipients = Vec::with_capacity(receipts.len());
    let mut recipient_devices = Vec::with_capacity(receipts.len());
    let mut message_ids = Vec::with_capacity(receipts.len());
    let mut timestamps = Vec::with_capacity(receipts.len());
    let mut expiries = Vec::with_capacity(receipts.len());
    for receipt in receipts {
        // Receipts for devices that no longer exist are dropped: nobody can fetch them.
        let Some(mailbox) = mailboxes.get_mut(&receipt.to) else {
            continue;
        };
        mailbox.last_delivery_id += 1;
        // Counted against the queue limit of sends later in the same transaction.
        mailbox.depth += 1;
        devices.push(mailbox.device);
        delivery_ids.push(mailbox.last_delivery_id);
        recipients.push(receipt.receipt.recipient.as_str());
        recipient_devices.push(i64::from(receipt.receipt.recipient_device_id));
        message_ids.push(encode_message_ids(&receipt.receipt.client_message_ids));
        timestamps.push(db_int(receipt.receipt.server_timestamp_ms));
        expiries.push(db_int(receipt.expires_at_ms));
        if let Some(stored) = stored.as_deref_mut() {
            stored.push(StoredEntry {
                recipient: receipt.to.clone(),
                entry: Queued {
                    delivery_id: col_u64(mailbox.last_delivery_id, "delivery_id")?,
                    item: QueuedItem::Receipt(receipt.receipt.clone()),
                },
            });
        }
    }
    if devices.is_empty() {
        return Ok(());
    }
    let (counter_devices, counter_lasts): (Vec<i64>, Vec<i64>) = receipts
        .iter()
        .filter_map(|receipt| mailboxes.get(&receipt.to))
        .map(|mailbox| (mailbox.device, mailbox.last_delivery_id))
        .collect::<HashMap<i64, i64>>()
        .into_iter()
        .unzip();
    sqlx::query(
        "WITH inserted AS ( \
             INSERT INTO receipts (device, delivery_id, recipient, recipient_device_id, \
                 client_message_ids, server_timestamp_ms, expires_at_ms) \
             SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::BIGINT[], \
                                  $5::BYTEA[], $6::BIGINT[], $7::BIGINT[]) \
         ) \
         UPDATE devices SET last_delivery_id = k.last \
         FROM UNNEST($8::BIGINT[], $9::BIGINT[]) AS k (id, last) WHERE devices.id = k.id",
    )
    .bind(&devices)
    .bind(&delivery_ids)
    .bind(&recipients)
    .bind(&recipient_devices)
    .bind(&message_ids)
    .bind(&timestamps)
    .bind(&expiries)
    .bind(&counter_devices)
    .bind(&counter_lasts)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Deletes acknowledged entries of several devices inside the caller's transaction, with one
/// statement for all of them, and returns each item's envelopes in delivery order (see
/// [`MessageStore::acknowledge`]). An id repeated for one device counts for its first item.
async fn acknowledge_in(
    conn: &mut PgConnection,
    acks: &[(DeviceAddress, Vec<u64>)],
) -> Result<Vec<Vec<Acknowledged>>, StoreError> {
    let mut items = Vec::new();
    let mut addresses = Vec::new();
    let mut device_ids = Vec::new();
    let mut delivery_ids = Vec::new();
    let mut seen = HashSet::new();
    for (item, (device, ids)) in acks.iter().enumerate() {
        for id in ids {
            // An id past i64 was never given out.
            let Ok(id) = i64::try_from(*id) else {
                continue;
            };
            if seen.insert((device, id)) {
                items.push(db_int(item as u64));
                addresses.push(device.address.as_str());
                device_ids.push(i64::from(device.device_id));
                delivery_ids.push(id);
            }
        }
    }
    let mut all = vec![Vec::new(); acks.len()];
    if items.is_empty() {
        return Ok(all);
    }
    // Messages and receipts share the sequence: an id may be either (or nothing, if it was
    // acknowledged before).
    let rows: Vec<(i64, i64, i64, String, i64, Vec<u8>)> = sqlx::query_as(
        "WITH k AS ( \
             SELECT d.id AS device, k.item, k.delivery_id \
             FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::BIGINT[], $4::BIGINT[]) \
                 AS k (item, address, device_id, delivery_id) \
             JOIN devices d ON d.address = k.address AND d.device_id = k.device_id \
         ), receipts_gone AS ( \
             DELETE FROM receipts r USING k \
             WHERE r.device = k.device AND r.delivery_id = k.delivery_id \
         ) \
         DELETE FROM mailbox_entries e USING k \
         WHERE e.device = k.device AND e.delivery_id = k.delivery_id \
         RETURNING k.item, e.delivery_id, e.body, e.sender_address, e.sender_device_id, \
                   e.client_message_id",
    )
    .bind(&items)
    .bind(&addresses)
    .bind(&device_ids)
    .bind(&delivery_ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut bodies = BTreeSet::new();
    let mut found: Vec<Vec<(i64, Acknowledged)>> = vec![Vec::new(); acks.len()];
    for (item, delivery_id, body, address, device_id, client_message_id) in rows {
        let slot = usize::try_from(item)
            .ok()
            .and_then(|item| found.get_mut(item))
            .ok_or_else(|| StoreError::Corrupt("acknowledgement of no item".to_owned()))?;
        bodies.insert(body);
        slot.push((
            delivery_id,
            Acknowledged {
                sender: DeviceAddress {
                    address,
                    device_id: col_u32(device_id, "sender_device_id")?,
                },
                client_message_id: col_array(&client_message_id, "client_message_id")?,
            },
        ));
    }
    delete_orphan_bodies(conn, &bodies).await?;
    for (slot, mut acknowledged) in all.iter_mut().zip(found) {
        acknowledged.sort_by_key(|(delivery_id, _)| *delivery_id);
        *slot = acknowledged.into_iter().map(|(_, ack)| ack).collect();
    }
    Ok(all)
}

/// Reads a group's record inside a transaction; `None` if it does not exist.
async fn load_group(
    conn: &mut PgConnection,
    id: GroupId,
) -> Result<Option<GroupRecord>, StoreError> {
    let group: Option<(String, i64)> =
        sqlx::query_as("SELECT name, revision FROM chat_groups WHERE id = $1")
            .bind(&id.0[..])
            .fetch_optional(&mut *conn)
            .await?;
    let Some((name, revision)) = group else {
        return Ok(None);
    };
    let members: Vec<(String, bool)> = sqlx::query_as(
        "SELECT address, admin FROM group_members WHERE group_id = $1 \
         ORDER BY joined_revision, address",
    )
    .bind(&id.0[..])
    .fetch_all(&mut *conn)
    .await?;
    Ok(Some(GroupRecord {
        id,
        name,
        revision: col_u64(revision, "revision")?,
        members: members
            .into_iter()
            .map(|(address, admin)| GroupMember { address, admin })
            .collect(),
    }))
}

/// Checks that every account in `addresses` exists: `NotFound` names the first that does not.
async fn require_accounts(conn: &mut PgConnection, addresses: &[String]) -> Result<(), StoreError> {
    for address in addresses {
        if !account_exists(conn, address).await? {
            return Err(StoreError::NotFound(format!("account {address}")));
        }
    }
    Ok(())
}

/// Inserts members joining at `revision`.
async fn insert_members(
    conn: &mut PgConnection,
    id: GroupId,
    members: &[(String, bool)],
    revision: i64,
) -> Result<(), StoreError> {
    for chunk in members.chunks(rows_per_statement(4)) {
        let mut query = QueryBuilder::<Postgres>::new(
            "INSERT INTO group_members (group_id, address, admin, joined_revision) ",
        );
        query.push_values(chunk, |mut row, (address, admin)| {
            row.push_bind(&id.0[..])
                .push_bind(address.as_str())
                .push_bind(*admin)
                .push_bind(revision);
        });
        query.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// After members went: deletes the group if it is empty, else makes sure an admin remains (the
/// earliest member is promoted), then sets the revision. Returns the record.
async fn settle_group(
    conn: &mut PgConnection,
    id: GroupId,
    name: String,
    revision: i64,
) -> Result<GroupRecord, StoreError> {
    let remaining: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM group_members WHERE group_id = $1")
            .bind(&id.0[..])
            .fetch_one(&mut *conn)
            .await?;
    if remaining == 0 {
        sqlx::query("DELETE FROM chat_groups WHERE id = $1")
            .bind(&id.0[..])
            .execute(&mut *conn)
            .await?;
        return Ok(GroupRecord {
            id,
            name,
            revision: col_u64(revision, "revision")?,
            members: Vec::new(),
        });
    }
    sqlx::query(
        "UPDATE group_members SET admin = TRUE WHERE group_id = $1 \
         AND NOT EXISTS (SELECT 1 FROM group_members WHERE group_id = $1 AND admin) \
         AND address = (SELECT address FROM group_members WHERE group_id = $1 \
                        ORDER BY joined_revision, address LIMIT 1)",
    )
    .bind(&id.0[..])
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE chat_groups SET revision = $2 WHERE id = $1")
        .bind(&id.0[..])
        .bind(revision)
        .execute(&mut *conn)
        .await?;
    load_group(conn, id)
        .await?
        .ok_or_else(|| StoreError::NotFound("group".to_owned()))
}

/// Removes `members` from a group (those not in it are ignored) and settles it. `None` when
/// nobody was removed.
async fn remove_from_group(
    conn: &mut PgConnection,
    id: GroupId,
    name: String,
    revision: i64,
    members: &[String],
) -> Result<Option<GroupRecord>, StoreError> {
    let mut removed = 0;
    for member in members.iter().collect::<BTreeSet<_>>() {
        removed += sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND address = $2")
            .bind(&id.0[..])
            .bind(member)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    if removed == 0 {
        return Ok(None);
    }
    settle_group(conn, id, name, revision.saturating_add(1))
        .await
        .map(Some)
}

/// The group's name and revision, and whether `address` is a member and an admin.
async fn group_and_role(
    conn: &mut PgConnection,
    id: GroupId,
    address: &str,
) -> Result<(String, i64, Option<bool>), StoreError> {
    let group: Option<(String, i64)> =
        sqlx::query_as("SELECT name, revision FROM chat_groups WHERE id = $1 FOR UPDATE")
            .bind(&id.0[..])
            .fetch_optional(&mut *conn)
            .await?;
    let Some((name, revision)) = group else {
        return Err(StoreError::NotFound("group".to_owned()));
    };
    let admin: Option<bool> =
        sqlx::query_scalar("SELECT admin FROM group_members WHERE group_id = $1 AND address = $2")
            .bind(&id.0[..])
            .bind(address)
            .fetch_optional(&mut *conn)
            .await?;
    Ok((name, revision, admin))
}

/// Seed of the advisory-lock key of an owner's blob creations (`hashtextextended(owner, seed)`),
/// apart from the enrollment lock's seed 0: an enrollment and a blob creation of one account
/// need not wait for each other. (A collision of two keys only serializes two operations.)
const BLOB_QUOTA_LOCK_SEED: i64 = 0x626c_6f62; // "blob"

async fn insert_blob(conn: &mut PgConnection, blob: &BlobRecord) -> Result<(), StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO blobs (id, owner, size, received, expires_at_ms) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&blob.id.0[..])
    .bind(&blob.owner)
    .bind(db_int(blob.size))
    .bind(db_int(blob.received))
    .bind(db_int(blob.expires_at_ms))
    .execute(conn)
    .await;
    match inserted {
        Err(e) if is_unique_violation(&e) => {
            Err(StoreError::Conflict("blob id already taken".to_owned()))
        }
        other => other.map(|_| ()).map_err(StoreError::from),
    }
}

/// What the blobs of `owner` expiring after `now_ms` hold.
async fn usage_of(
    conn: &mut PgConnection,
    owner: &str,
    now_ms: u64,
) -> Result<BlobUsage, StoreError> {
    let (count, bytes): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM blobs \
         WHERE owner = $1 AND expires_at_ms > $2",
    )
    .bind(owner)
    .bind(db_int(now_ms))
    .fetch_one(conn)
    .await?;
    Ok(BlobUsage {
        count: col_u64(count, "blob count")?,
        bytes: col_u64(bytes, "blob bytes")?,
    })
}

impl MessageStore for PgStore {
    async fn enroll(&self, device: NewDevice) -> Result<Device, StoreError> {
        let mut tx = self.write().await?;
        // Enrollments of one account serialize, so they draw distinct device ids.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(&device.address)
            .execute(&mut *tx)
            .await?;
        let taken: Option<i64> = sqlx::query_scalar("SELECT id FROM devices WHERE noise_key = $1")
            .bind(&device.noise_key[..])
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Err(StoreError::Conflict(
                "Noise key already registered".to_owned(),
            ));
        }
        let device_id: i64 = sqlx::query_scalar(
            "INSERT INTO devices (address, device_id, registration_id, noise_key, identity_key, \
                                  certificate, created_at_ms, last_seen_ms) \
             SELECT $1, COALESCE(MAX(device_id), 0) + 1, $2, $3, $4, $5, $6, $6 \
             FROM devices WHERE address = $1 \
             RETURNING device_id",
        )
        .bind(&device.address)
        .bind(i64::from(device.registration_id))
        .bind(&device.noise_key[..])
        .bind(&device.identity_key[..])
        .bind(&device.certificate)
        .bind(db_int(device.now_ms))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            // Another account enrolled the same Noise key since the check above.
            if is_unique_violation(&e) {
                StoreError::Conflict("Noise key already registered".to_owned())
            } else {
                e.into()
            }
        })?;
        let device_id = col_u32(device_id, "device_id")?;
        tx.commit().await?;
        Ok(Device {
            address: DeviceAddress {
                address: device.address,
                device_id,
            },
            registration_id: device.registration_id,
            noise_key: device.noise_key,
            identity_key: device.identity_key,
            certificate: device.certificate,
            created_at_ms: device.now_ms,
            last_seen_ms: device.now_ms,
        })
    }

    async fn device_by_noise_key(
        &self,
        key: &NoisePublicKey,
    ) -> Result<Option<Device>, StoreError> {
        let row: Option<DeviceRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE noise_key = $1"
        )))
        .bind(&key[..])
        .fetch_optional(&self.pool)
        .await?;
        row.map(device_from_row).transpose()
    }

    async fn devices(&self, address: &str) -> Result<Vec<Device>, StoreError> {
        let rows: Vec<DeviceRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE address = $1 ORDER BY device_id"
        )))
        .bind(address)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(device_from_row).collect()
    }

    async fn set_certificate(
        &self,
        device: &DeviceAddress,
        certificate: Vec<u8>,
    ) -> Result<(), StoreError> {
        let updated = sqlx::query(
            "UPDATE devices SET certificate = $3 WHERE address = $1 AND device_id = $2",
        )
        .bind(&device.address)
        .bind(i64::from(device.device_id))
        .bind(certificate)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(StoreError::NotFound(format!("device {device:?}")));
        }
        Ok(())
    }

    async fn touch(&self, device: &DeviceAddress, now_ms: u64) -> Result<(), StoreError> {
        let updated = sqlx::query(
            "UPDATE devices SET last_seen_ms = $3 WHERE address = $1 AND device_id = $2",
        )
        .bind(&device.address)
        .bind(i64::from(device.device_id))
        .bind(db_int(now_ms))
        .execute(&self.pool)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(StoreError::NotFound(format!("device {device:?}")));
        }
        Ok(())
    }

    async fn upload_pre_keys(
        &self,
        device: &DeviceAddress,
        upload: &PreKeyUpload,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let row = device_row(&mut tx, device)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("device {device:?}")))?;
        if let Some(key) = &upload.signed_pre_key {
            sqlx::query(
                "INSERT INTO signed_pre_keys (device, key_id, public_key, signature) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (device) DO UPDATE SET key_id = excluded.key_id, \
                 public_key = excluded.public_key, signature = excluded.signature",
            )
            .bind(row)
            .bind(i64::from(key.id))
            .bind(&key.public_key[..])
            .bind(&key.signature[..])
            .execute(&mut *tx)
            .await?;
        }
        for chunk in upload.one_time_pre_keys.chunks(rows_per_statement(3)) {
            let mut query = QueryBuilder::<Postgres>::new(
                "INSERT INTO one_time_pre_keys (device, key_id, public_key) ",
            );
            query.push_values(chunk, |mut values, key| {
                values
                    .push_bind(row)
                    .push_bind(i64::from(key.id))
                    .push_bind(&key.public_key[..]);
            });
            match query.build().execute(&mut *tx).await {
                Err(e) if is_unique_violation(&e) => {
                    return Err(StoreError::Conflict(
                        "one-time prekey id already present".into(),
                    ));
                }
                other => other?,
            };
        }
        for chunk in upload.kyber_pre_keys.chunks(rows_per_statement(4)) {
            let mut query = QueryBuilder::<Postgres>::new(
                "INSERT INTO kyber_pre_keys (device, key_id, public_key, signature) ",
            );
            query.push_values(chunk, |mut values, key| {
                values
                    .push_bind(row)
                    .push_bind(i64::from(key.id))
                    .push_bind(&key.public_key.as_bytes()[..])
                    .push_bind(&key.signature[..]);
            });
            match query.build().execute(&mut *tx).await {
                Err(e) if is_unique_violation(&e) => {
                    return Err(StoreError::Conflict(
                        "Kyber prekey id already present".into(),
                    ));
                }
                other => other?,
            };
        }
        if let Some(key) = &upload.kyber_last_resort {
            sqlx::query(
                "INSERT INTO kyber_last_resort_keys \
                     (device, key_id, public_key, signature, last_resort_used) \
                 VALUES ($1, $2, $3, $4, FALSE) \
                 ON CONFLICT (device) DO UPDATE SET key_id = excluded.key_id, \
                 public_key = excluded.public_key, signature = excluded.signature, \
                 last_resort_used = FALSE",
            )
            .bind(row)
            .bind(i64::from(key.id))
            .bind(&key.public_key.as_bytes()[..])
            .bind(&key.signature[..])
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn claim_pre_keys(
        &self,
        device: &DeviceAddress,
    ) -> Result<Option<ClaimedPreKeys>, StoreError> {
        type BundleRow = (
            i64,
            i64,
            Vec<u8>,
            Vec<u8>,
            i64,
            Vec<u8>,
            Vec<u8>,
            i64,
            Vec<u8>,
            Vec<u8>,
        );
        let mut tx = self.write().await?;
        let row: Option<BundleRow> = sqlx::query_as(
            "SELECT d.id, d.registration_id, d.identity_key, d.certificate, \
                    s.key_id, s.public_key, s.signature, k.key_id, k.public_key, k.signature \
             FROM devices d \
             JOIN signed_pre_keys s ON s.device = d.id \
             JOIN kyber_last_resort_keys k ON k.device = d.id \
             WHERE d.address = $1 AND d.device_id = $2",
        )
        .bind(&device.address)
        .bind(i64::from(device.device_id))
        .fetch_optional(&mut *tx)
        .await?;
        let Some((
            row,
            registration_id,
            identity_key,
            certificate,
            spk_id,
            spk,
            spk_sig,
            lr_id,
            lr,
            lr_sig,
        )) = row
        else {
            return Ok(None);
        };
        let one_time: Option<(i64, Vec<u8>)> = sqlx::query_as(
            "DELETE FROM one_time_pre_keys WHERE id = \
                 (SELECT id FROM one_time_pre_keys WHERE device = $1 \
                  ORDER BY key_id LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING key_id, public_key",
        )
        .bind(row)
        .fetch_optional(&mut *tx)
        .await?;
        let kyber: Option<(i64, Vec<u8>, Vec<u8>)> = sqlx::query_as(
            "DELETE FROM kyber_pre_keys WHERE id = \
                 (SELECT id FROM kyber_pre_keys WHERE device = $1 \
                  ORDER BY key_id LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING key_id, public_key, signature",
        )
        .bind(row)
        .fetch_optional(&mut *tx)
        .await?;
        let kyber_is_last_resort = kyber.is_none();
        let (kyber_id, kyber_key, kyber_sig) = match kyber {
            Some(key) => key,
            None => {
                sqlx::query(
                    "UPDATE kyber_last_resort_keys SET last_resort_used = TRUE WHERE device = $1",
                )
                .bind(row)
                .execute(&mut *tx)
                .await?;
                (lr_id, lr, lr_sig)
            }
        };
        // Everything is decoded before the commit: a corrupt row rolls the claim back.
        let claimed = ClaimedPreKeys {
            registration_id: col_u32(registration_id, "registration_id")?,
            identity_key: col_array(&identity_key, "identity_key")?,
            certificate,
            signed_pre_key: SignedPreKey {
                id: col_u32(spk_id, "key_id")?,
                public_key: col_array(&spk, "public_key")?,
                signature: col_array(&spk_sig, "signature")?,
            },
            one_time_pre_key: one_time
                .map(|(id, key)| {
                    Ok::<_, StoreError>(OneTimePreKey {
                        id: col_u32(id, "key_id")?,
                        public_key: col_array(&key, "public_key")?,
                    })
                })
                .transpose()?,
            kyber_pre_key: KyberPreKey {
                id: col_u32(kyber_id, "key_id")?,
                public_key: col_kyber(&kyber_key, "public_key")?,
                signature: col_array(&kyber_sig, "signature")?,
            },
            kyber_is_last_resort,
        };
        tx.commit().await?;
        Ok(Some(claimed))
    }

    async fn pre_key_count(&self, device: &DeviceAddress) -> Result<PreKeyCount, StoreError> {
        let row: Option<(i64, i64, bool)> = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM one_time_pre_keys WHERE device = d.id), \
                    (SELECT COUNT(*) FROM kyber_pre_keys WHERE device = d.id), \
                    COALESCE((SELECT last_resort_used FROM kyber_last_resort_keys \
                              WHERE device = d.id), FALSE) \
             FROM devices d WHERE d.address = $1 AND d.device_id = $2",
        )
        .bind(&device.address)
        .bind(i64::from(device.device_id))
        .fetch_optional(&self.pool)
        .await?;
        let (one_time, kyber_one_time, kyber_last_resort_used) =
            row.ok_or_else(|| StoreError::NotFound(format!("device {device:?}")))?;
        Ok(PreKeyCount {
            one_time: col_u32(one_time, "count")?,
            kyber_one_time: col_u32(kyber_one_time, "count")?,
            kyber_last_resort_used,
        })
    }

    async fn enqueue(
        &self,
        messages: &[NewMessage],
        max_queue: u64,
    ) -> Result<Vec<EnqueueOutcome>, StoreError> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.write().await?;
        let outcomes = enqueue_in(&mut tx, messages, max_queue, None).await?;
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn enqueue_returning(
        &self,
        messages: Vec<NewMessage>,
        max_queue: u64,
    ) -> Result<(Vec<EnqueueOutcome>, Option<Vec<StoredEntry>>), StoreError> {
        if messages.is_empty() {
            return Ok((Vec::new(), Some(Vec::new())));
        }
        let mut stored = Vec::new();
        let mut tx = self.write().await?;
        let outcomes = enqueue_in(&mut tx, &messages, max_queue, Some(&mut stored)).await?;
        tx.commit().await?;
        Ok((outcomes, Some(stored)))
    }

    async fn enqueue_receipts(&self, receipts: &[NewReceipt]) -> Result<(), StoreError> {
        if receipts.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        enqueue_receipts_in(&mut tx, receipts, None).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn enqueue_receipts_returning(
        &self,
        receipts: Vec<NewReceipt>,
    ) -> Result<Option<Vec<StoredEntry>>, StoreError> {
        if receipts.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let mut stored = Vec::with_capacity(receipts.len());
        let mut tx = self.write().await?;
        enqueue_receipts_in(&mut tx, &receipts, Some(&mut stored)).await?;
        tx.commit().await?;
        Ok(Some(stored))
    }

    async fn commit_batch(&self, batch: WriteBatch) -> Result<BatchOutcome, StoreError> {
        let WriteBatch {
            acks,
            now_ms,
            sends,
            max_queue,
            receipts: carried,
            push_receipts,
        } = batch;
        let mut tx = self.write().await?;
        let mut outcome = BatchOutcome {
            acknowledged: acks.is_empty(),
            ..BatchOutcome::default()
        };
        let mut stored = Vec::new();
        let mut owed = Vec::new();
        if !acks.is_empty() {
            let list: Vec<(DeviceAddress, Vec<u64>)> = acks
                .iter()
                .map(|ack| (ack.device.clone(), ack.delivery_ids.clone()))
                .collect();
            // A savepoint, so that a failure here rolls back only the acknowledgements and
            // the sends still go, as `BatchOutcome` promises.
            let mut savepoint = tx.begin().await?;
            match acknowledge_in(&mut savepoint, &list).await {
                Ok(all) => {
                    savepoint.commit().await?;
                    outcome.acknowledged = true;
                    for (ack, acknowledged) in acks.iter().zip(all) {
                        owed.extend(receipts_owed(
                            &ack.device,
                            acknowledged,
                            ack.receipt_expires_at_ms,
                            now_ms,
                        ));
                    }
                }
                Err(error) => {
                    savepoint.rollback().await?;
                    tracing::error!(%error, devices = acks.len(), "deleting acknowledged entries failed");
                }
            }
        }
        let (receipts, pushed) = WriteBatch::route_receipts(push_receipts.as_ref(), owed, carried);
        outcome.pushed_receipts = pushed;
        // The receipts' targets and the sends' recipients are locked together, in one
        // statement and one order, so two nodes' batches cannot deadlock on each other.
        let devices: BTreeSet<&DeviceAddress> = receipts
            .iter()
            .map(|receipt| &receipt.to)
            .chain(sends.iter().flat_map(|message| &message.recipients))
            .collect();
        let mut mailboxes = if devices.is_empty() {
            HashMap::new()
        } else {
            lock_mailboxes(&mut tx, &devices).await?
        };
        if !receipts.is_empty() {
            let before = mailboxes.clone();
            let mut savepoint = tx.begin().await?;
            match enqueue_receipts_locked(
                &mut savepoint,
                &receipts,
                &mut mailboxes,
                Some(&mut stored),
            )
            .await
            {
                Ok(()) => {
                    savepoint.commit().await?;
                    outcome.receipts_to = receipts
                        .iter()
                        .map(|receipt| receipt.to.clone())
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect();
                }
                Err(error) => {
                    savepoint.rollback().await?;
                    mailboxes = before;
                    stored.clear();
                    tracing::error!(%error, "storing delivery receipts failed");
                }
            }
        }
        if !sends.is_empty() {
            outcome.outcomes = enqueue_locked(
                &mut tx,
                &sends,
                max_queue,
                &mut mailboxes,
                Some(&mut stored),
            )
            .await?;
        }
        tx.commit().await?;
        outcome.stored = Some(stored);
        Ok(outcome)
    }

    async fn pending(
        &self,
        device: &DeviceAddress,
        after: u64,
        limit: u32,
    ) -> Result<Vec<Queued>, StoreError> {
        // One statement, so messages and receipts come from one snapshot: a later entry is
        // never returned while an earlier one is missed.
        type PendingRow = (
            i64,
            i64,
            String,
            i64,
            Vec<u8>,
            Option<i64>,
            Option<Vec<u8>>,
            i64,
            Option<Vec<u8>>,
        );
        let rows: Vec<PendingRow> = sqlx::query_as(
            "SELECT e.delivery_id, 0::BIGINT, e.sender_address, e.sender_device_id, e.client_message_id, \
                    b.ciphertext_type, b.body, b.server_timestamp_ms, b.group_id \
             FROM devices d \
             JOIN mailbox_entries e ON e.device = d.id \
             JOIN message_bodies b ON b.id = e.body \
             WHERE d.address = $1 AND d.device_id = $2 AND e.delivery_id > $3 \
             UNION ALL \
             SELECT r.delivery_id, 1::BIGINT, r.recipient, r.recipient_device_id, r.client_message_ids, \
                    NULL, NULL, r.server_timestamp_ms, NULL \
             FROM devices d \
             JOIN receipts r ON r.device = d.id \
             WHERE d.address = $1 AND d.device_id = $2 AND r.delivery_id > $3 \
             ORDER BY 1 LIMIT $4",
        )
        .bind(&device.address)
        .bind(i64::from(device.device_id))
        .bind(db_int(after))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(
                |(
                    delivery_id,
                    kind,
                    address,
                    device_id,
                    ids,
                    ciphertext_type,
                    body,
                    timestamp,
                    group,
                )| {
                    let item = if kind == 0 {
                        let (Some(ciphertext_type), Some(body)) = (ciphertext_type, body) else {
                            return Err(StoreError::Corrupt("message without a body".to_owned()));
                        };
                        QueuedItem::Envelope(confianza_api::Envelope {
                            sender: address,
                            sender_device_id: col_u32(device_id, "sender_device_id")?,
                            ciphertext_type: col_ciphertext_type(ciphertext_type)?,
                            body,
                            client_message_id: col_array(&ids, "client_message_id")?,
                            server_timestamp_ms: col_u64(timestamp, "server_timestamp_ms")?,
                            group_id: col_group_id(group.as_deref())?,
                        })
                    } else {
                        QueuedItem::Receipt(receipt_from_columns(
                            address, device_id, &ids, timestamp,
                        )?)
                    };
                    Ok(Queued {
                        delivery_id: col_u64(delivery_id, "delivery_id")?,
                        item,
                    })
                },
            )
            .collect()
    }

    async fn acknowledge(
        &self,
        device: &DeviceAddress,
        delivery_ids: &[u64],
    ) -> Result<Vec<Acknowledged>, StoreError> {
        if delivery_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.write().await?;
        let mut all = acknowledge_in(&mut tx, &[(device.clone(), delivery_ids.to_vec())]).await?;
        tx.commit().await?;
        Ok(all.pop().unwrap_or_default())
    }

    async fn acknowledge_batch(
        &self,
        acks: &[(DeviceAddress, Vec<u64>)],
    ) -> Result<Vec<Vec<Acknowledged>>, StoreError> {
        if acks.iter().all(|(_, ids)| ids.is_empty()) {
            return Ok(vec![Vec::new(); acks.len()]);
        }
        // One transaction and one delete for every device of the batch.
        let mut tx = self.write().await?;
        let all = acknowledge_in(&mut tx, acks).await?;
        tx.commit().await?;
        Ok(all)
    }

    async fn queue_depth(&self, device: &DeviceAddress) -> Result<u64, StoreError> {
        let depth: Option<i64> = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM mailbox_entries e WHERE e.device = d.id) \
                    + (SELECT COUNT(*) FROM receipts r WHERE r.device = d.id) \
             FROM devices d WHERE d.address = $1 AND d.device_id = $2",
        )
        .bind(&device.address)
        .bind(i64::from(device.device_id))
        .fetch_optional(&self.pool)
        .await?;
        col_u64(depth.unwrap_or(0), "depth")
    }

    async fn expire_messages(&self, now_ms: u64) -> Result<u64, StoreError> {
        let mut tx = self.write().await?;
        let bodies: Vec<i64> = sqlx::query_scalar(
            "DELETE FROM mailbox_entries WHERE expires_at_ms <= $1 RETURNING body",
        )
        .bind(db_int(now_ms))
        .fetch_all(&mut *tx)
        .await?;
        let receipts = sqlx::query("DELETE FROM receipts WHERE expires_at_ms <= $1")
            .bind(db_int(now_ms))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let expired = bodies.len() as u64 + receipts;
        delete_orphan_bodies(&mut tx, &bodies.into_iter().collect()).await?;
        tx.commit().await?;
        Ok(expired)
    }

    async fn create_group(
        &self,
        id: GroupId,
        name: &str,
        creator: &str,
        members: &[String],
    ) -> Result<GroupRecord, StoreError> {
        let others: Vec<String> = members
            .iter()
            .filter(|m| *m != creator)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .cloned()
            .collect();
        if others.len() + 1 > MAX_GROUP_MEMBERS {
            return Err(StoreError::Conflict(format!(
                "a group has at most {MAX_GROUP_MEMBERS} members"
            )));
        }
        let mut tx = self.write().await?;
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT 1::BIGINT FROM chat_groups WHERE id = $1")
                .bind(&id.0[..])
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_some() {
            return Err(StoreError::Conflict("group id already taken".to_owned()));
        }
        let rows: Vec<(String, bool)> = std::iter::once((creator.to_owned(), true))
            .chain(others.into_iter().map(|m| (m, false)))
            .collect();
        let addresses: Vec<String> = rows.iter().map(|(m, _)| m.clone()).collect();
        require_accounts(&mut tx, &addresses).await?;
        sqlx::query("INSERT INTO chat_groups (id, name, revision) VALUES ($1, $2, 1)")
            .bind(&id.0[..])
            .bind(name)
            .execute(&mut *tx)
            .await?;
        insert_members(&mut tx, id, &rows, 1).await?;
        let record = load_group(&mut tx, id)
            .await?
            .ok_or_else(|| StoreError::NotFound("group".to_owned()))?;
        tx.commit().await?;
        Ok(record)
    }

    async fn add_members(
        &self,
        id: GroupId,
        actor: &str,
        members: &[String],
    ) -> Result<GroupRecord, StoreError> {
        let mut tx = self.write().await?;
        let (_, revision, role) = group_and_role(&mut tx, id, actor).await?;
        if role != Some(true) {
            return Err(StoreError::Forbidden(
                "only a group admin adds members".to_owned(),
            ));
        }
        let current: Vec<String> =
            sqlx::query_scalar("SELECT address FROM group_members WHERE group_id = $1")
                .bind(&id.0[..])
                .fetch_all(&mut *tx)
                .await?;
        let current: HashSet<String> = current.into_iter().collect();
        let new: Vec<String> = members
            .iter()
            .filter(|m| !current.contains(*m))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .cloned()
            .collect();
        if !new.is_empty() {
            if current.len() + new.len() > MAX_GROUP_MEMBERS {
                return Err(StoreError::Conflict(format!(
                    "a group has at most {MAX_GROUP_MEMBERS} members"
                )));
            }
            require_accounts(&mut tx, &new).await?;
            let revision = revision.saturating_add(1);
            let rows: Vec<(String, bool)> = new.into_iter().map(|m| (m, false)).collect();
            insert_members(&mut tx, id, &rows, revision).await?;
            sqlx::query("UPDATE chat_groups SET revision = $2 WHERE id = $1")
                .bind(&id.0[..])
                .bind(revision)
                .execute(&mut *tx)
                .await?;
        }
        let record = load_group(&mut tx, id)
            .await?
            .ok_or_else(|| StoreError::NotFound("group".to_owned()))?;
        tx.commit().await?;
        Ok(record)
    }

    async fn remove_members(
        &self,
        id: GroupId,
        actor: &str,
        members: &[String],
    ) -> Result<GroupRecord, StoreError> {
        let mut tx = self.write().await?;
        let (name, revision, role) = group_and_role(&mut tx, id, actor).await?;
        if role != Some(true) {
            return Err(StoreError::Forbidden(
                "only a group admin removes members".to_owned(),
            ));
        }
        let record = match remove_from_group(&mut tx, id, name, revision, members).await? {
            Some(record) => record,
            None => load_group(&mut tx, id)
                .await?
                .ok_or_else(|| StoreError::NotFound("group".to_owned()))?,
        };
        tx.commit().await?;
        Ok(record)
    }

    async fn leave_group(&self, id: GroupId, member: &str) -> Result<GroupRecord, StoreError> {
        let mut tx = self.write().await?;
        let (name, revision, role) = group_and_role(&mut tx, id, member).await?;
        if role.is_none() {
            return Err(StoreError::Forbidden(
                "not a member of the group".to_owned(),
            ));
        }
        let record = remove_from_group(&mut tx, id, name, revision, &[member.to_owned()])
            .await?
            .ok_or_else(|| StoreError::Forbidden("not a member of the group".to_owned()))?;
        tx.commit().await?;
        Ok(record)
    }

    async fn group(&self, id: GroupId) -> Result<Option<GroupRecord>, StoreError> {
        // Two reads: run them in one transaction so they see one snapshot.
        let mut tx = self.pool.begin().await?;
        let record = load_group(&mut tx, id).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn groups_of(&self, address: &str) -> Result<Vec<GroupSummary>, StoreError> {
        let rows: Vec<(Vec<u8>, String, i64, i64)> = sqlx::query_as(
            "SELECT g.id, g.name, g.revision, \
                    (SELECT COUNT(*) FROM group_members c WHERE c.group_id = g.id) \
             FROM group_members m JOIN chat_groups g ON g.id = m.group_id \
             WHERE m.address = $1 ORDER BY g.id LIMIT $2",
        )
        .bind(address)
        .bind(db_int(MAX_GROUPS_PER_LIST as u64))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, name, revision, members)| {
                Ok(GroupSummary {
                    id: GroupId(col_array(&id, "group id")?),
                    name,
                    revision: col_u64(revision, "revision")?,
                    member_count: col_u32(members, "member count")?,
                })
            })
            .collect()
    }

    async fn create_blob(&self, blob: &BlobRecord) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        insert_blob(&mut conn, blob).await
    }

    async fn create_blob_within_quota(
        &self,
        blob: &BlobRecord,
        quota: BlobQuota,
        now_ms: u64,
    ) -> Result<Result<(), QuotaExceeded>, StoreError> {
        let mut tx = self.write().await?;
        // Creations for one owner serialize on every node: the lock is held until the commit,
        // so the next creation's usage query sees this blob.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, $2))")
            .bind(&blob.owner)
            .bind(BLOB_QUOTA_LOCK_SEED)
            .execute(&mut *tx)
            .await?;
        let usage = usage_of(&mut tx, &blob.owner, now_ms).await?;
        if let Err(exceeded) = quota.admit(usage, blob.size) {
            return Ok(Err(exceeded));
        }
        insert_blob(&mut tx, blob).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    async fn blob(&self, id: BlobId) -> Result<Option<BlobRecord>, StoreError> {
        let row: Option<(String, i64, i64, i64)> =
            sqlx::query_as("SELECT owner, size, received, expires_at_ms FROM blobs WHERE id = $1")
                .bind(&id.0[..])
                .fetch_optional(&self.pool)
                .await?;
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

    async fn advance_blob(&self, id: BlobId, from: u64, to: u64) -> Result<(), StoreError> {
        let updated = sqlx::query(
            "UPDATE blobs SET received = $3 \
             WHERE id = $1 AND received = $2 AND $3 >= $2 AND $3 <= size",
        )
        .bind(&id.0[..])
        .bind(db_int(from))
        .bind(db_int(to))
        .execute(&self.pool)
        .await?
        .rows_affected();
        if updated == 1 {
            return Ok(());
        }
        match self.blob(id).await? {
            None => Err(StoreError::NotFound("blob".to_owned())),
            Some(blob) if blob.received != from => Err(StoreError::Conflict(format!(
                "blob upload is at {}, not {from}",
                blob.received
            ))),
            Some(blob) => Err(StoreError::Conflict(format!(
                "cannot move a blob of {} bytes from {from} to {to}",
                blob.size
            ))),
        }
    }

    async fn expire_blobs(&self, now_ms: u64) -> Result<Vec<BlobId>, StoreError> {
        let ids: Vec<Vec<u8>> =
            sqlx::query_scalar("DELETE FROM blobs WHERE expires_at_ms <= $1 RETURNING id")
                .bind(db_int(now_ms))
                .fetch_all(&self.pool)
                .await?;
        ids.iter()
            .map(|id| col_array(id, "blob id").map(BlobId))
            .collect()
    }

    async fn blob_usage(&self, owner: &str, now_ms: u64) -> Result<BlobUsage, StoreError> {
        let mut conn = self.pool.acquire().await?;
        usage_of(&mut conn, owner, now_ms).await
    }
}
