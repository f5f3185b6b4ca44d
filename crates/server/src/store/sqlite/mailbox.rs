//! Mailboxes and delivery receipts, run on the connection thread.
//!
//! The schema (migration 0005) keeps the hot path short: messages and receipts share the
//! `mailbox` table, a one-to-one message carries its ciphertext in its entry row (only a body
//! queued for several devices is stored once, in `shared_bodies`, reference-counted), and each
//! device row counts its queued entries (`devices.queued`). A relayed message then costs, on
//! this thread: an insert (with its dedupe and expiry index entries) and a delete, plus one
//! device row read and update per device and writer batch; its receipt an insert and a delete.
//!
//! Bulk calls run one cached prepared statement per row inside their transaction: on an
//! embedded database a prepared statement costs about a microsecond, so a row needs no
//! multi-row SQL built per call.

use std::collections::{BTreeSet, HashMap, HashSet};

use confianza_api::Envelope;
use rusqlite::{Connection, OptionalExtension, Row};

use super::super::rows::{
    DedupeKey, Mailbox, col_array, col_ciphertext_type, col_group_id, col_u32, col_u64, db_int,
    plan_enqueue, receipt_from_columns,
};
use super::{blob, blob_or_null, device_row, write};
use crate::store::{
    AckRequest, Acknowledged, BatchOutcome, DeviceAddress, EnqueueOutcome, NewMessage, NewReceipt,
    Queued, QueuedItem, StoreError, StoredEntry, WriteBatch, receipts_owed,
};

/// `mailbox.kind` of a message.
const KIND_MESSAGE: i64 = 0;
/// `mailbox.kind` of a delivery receipt.
const KIND_RECEIPT: i64 = 1;

/// Expired entries deleted per transaction: expiry runs as a series of short jobs, so the
/// writer's batches interleave with it instead of waiting behind one long delete.
pub(super) const EXPIRY_CHUNK: u32 = 2_000;

/// [`crate::store::MessageStore::commit_batch`] in one transaction.
///
/// The acknowledgements and the receipts each run inside a savepoint: if one of them fails, it
/// is rolled back and logged and the sends still go, as they would with separate transactions
/// (what [`BatchOutcome`] promises). A failure of the sends fails the whole batch.
pub(super) fn commit_batch(
    connection: &mut Connection,
    batch: WriteBatch,
) -> Result<BatchOutcome, StoreError> {
    let WriteBatch {
        acks,
        now_ms,
        sends,
        max_queue,
    } = batch;
    let mut tx = write(connection)?;
    let mut stored = Vec::new();
    let mut outcome = BatchOutcome {
        acknowledged: acks.is_empty(),
        ..BatchOutcome::default()
    };
    let mut receipts = Vec::new();
    if !acks.is_empty() {
        let savepoint = tx.savepoint()?;
        match acknowledge_all(&savepoint, &acks) {
            Ok(all) => {
                savepoint.commit()?;
                outcome.acknowledged = true;
                for (ack, acknowledged) in acks.iter().zip(all) {
                    receipts.extend(receipts_owed(
                        &ack.device,
                        acknowledged,
                        ack.receipt_expires_at_ms,
                        now_ms,
                    ));
                }
            }
            Err(error) => {
                // Dropping the savepoint rolls it back.
                drop(savepoint);
                tracing::error!(%error, devices = acks.len(), "deleting acknowledged entries failed");
            }
        }
    }
    if !receipts.is_empty() {
        let savepoint = tx.savepoint()?;
        match enqueue_receipts_in(&savepoint, receipts, Some(&mut stored)) {
            Ok(to) => {
                savepoint.commit()?;
                outcome.receipts_to = to;
            }
            Err(error) => {
                drop(savepoint);
                stored.clear();
                tracing::error!(%error, "storing delivery receipts failed");
            }
        }
    }
    if !sends.is_empty() {
        outcome.outcomes = enqueue_in(&tx, sends, max_queue, Some(&mut stored))?;
    }
    tx.commit()?;
    outcome.stored = Some(stored);
    Ok(outcome)
}

/// [`crate::store::MessageStore::enqueue`] in its own transaction; with `stored`, also returns
/// every entry stored with its delivery id.
pub(super) fn enqueue(
    connection: &mut Connection,
    messages: Vec<NewMessage>,
    max_queue: u64,
    stored: Option<&mut Vec<StoredEntry>>,
) -> Result<Vec<EnqueueOutcome>, StoreError> {
    let tx = write(connection)?;
    let outcomes = enqueue_in(&tx, messages, max_queue, stored)?;
    tx.commit()?;
    Ok(outcomes)
}

/// Stores a batch of messages inside the caller's write transaction. The entries returned in
/// `stored` take the bodies out of `messages` (a body queued once is moved, not copied).
fn enqueue_in(
    tx: &Connection,
    mut messages: Vec<NewMessage>,
    max_queue: u64,
    stored: Option<&mut Vec<StoredEntry>>,
) -> Result<Vec<EnqueueOutcome>, StoreError> {
    // 1. The recipients' mailboxes: row id, last delivery id, depth.
    let mut mailboxes = HashMap::new();
    {
        let mut select = tx.prepare_cached(
            "SELECT id, last_delivery_id, queued FROM devices \
             WHERE address = ?1 AND device_id = ?2",
        )?;
        for recipient in messages.iter().flat_map(|m| &m.recipients) {
            if mailboxes.contains_key(recipient) {
                continue;
            }
            let found: Option<(i64, i64, i64)> = select
                .query_row((&recipient.address, recipient.device_id), |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
                .optional()?;
            if let Some((device, last_delivery_id, depth)) = found {
                mailboxes.insert(
                    recipient.clone(),
                    Mailbox {
                        device,
                        last_delivery_id,
                        depth: col_u64(depth, "queued")?,
                    },
                );
            }
        }
    }

    // 2. The dedupe keys of this batch already queued. An empty mailbox holds none, which
    //    spares the lookup for a recipient that keeps up.
    let mut queued = HashSet::new();
    {
        let mut select = tx.prepare_cached(
            "SELECT 1 FROM mailbox WHERE device = ?1 AND peer_address = ?2 \
             AND peer_device_id = ?3 AND client_message_ids = ?4 AND kind = 0",
        )?;
        for message in &messages {
            for mailbox in message.recipients.iter().filter_map(|r| mailboxes.get(r)) {
                if mailbox.depth == 0 {
                    continue;
                }
                let exists = select.exists((
                    mailbox.device,
                    &message.sender.address,
                    message.sender.device_id,
                    &message.client_message_id[..],
                ))?;
                if exists {
                    queued.insert(DedupeKey::new(mailbox.device, message));
                }
            }
        }
    }

    // 3. The outcomes, decided in memory.
    let plan = plan_enqueue(&messages, &mut mailboxes, &mut queued, max_queue);
    // The plan lists the messages it stores in batch order: exactly those stored for someone.
    let body_messages: Vec<usize> = plan
        .outcomes
        .iter()
        .enumerate()
        .filter(
            |(_, outcome)| matches!(outcome, EnqueueOutcome::Stored { new, .. } if !new.is_empty()),
        )
        .map(|(index, _)| index)
        .collect();
    if body_messages.len() != plan.bodies.len() {
        return Err(StoreError::Corrupt(
            "the enqueue plan does not match its outcomes".to_owned(),
        ));
    }
    if plan.entries.is_empty() {
        return Ok(plan.outcomes);
    }

    // 4. The writes: shared bodies, entries, counters.
    let mut copies = vec![0u32; body_messages.len()];
    for entry in &plan.entries {
        copies[entry.body] += 1;
    }
    {
        let mut insert_shared =
            tx.prepare_cached("INSERT INTO shared_bodies (refs, body) VALUES (?1, ?2)")?;
        let mut shared_ids = vec![None; body_messages.len()];
        for (body, &count) in copies.iter().enumerate() {
            if count > 1 {
                insert_shared.execute((count, messages[body_messages[body]].body.as_slice()))?;
                shared_ids[body] = Some(tx.last_insert_rowid());
            }
        }
        let mut insert_entry = tx.prepare_cached(
            "INSERT INTO mailbox (device, delivery_id, kind, peer_address, peer_device_id, \
                 client_message_ids, server_timestamp_ms, expires_at_ms, ciphertext_type, body, \
                 shared_body, group_id) \
             VALUES (?1, ?2, 0, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        for entry in &plan.entries {
            let message = &messages[body_messages[entry.body]];
            let shared = shared_ids[entry.body];
            insert_entry.execute((
                entry.device,
                entry.delivery_id,
                &message.sender.address,
                message.sender.device_id,
                &message.client_message_id[..],
                db_int(message.server_timestamp_ms),
                db_int(message.expires_at_ms),
                message.ciphertext_type.to_wire(),
                shared.is_none().then_some(message.body.as_slice()),
                shared,
                message.group_id.as_ref().map(|g| &g.0[..]),
            ))?;
        }
        let depths: HashMap<i64, u64> = mailboxes
            .values()
            .map(|mailbox| (mailbox.device, mailbox.depth))
            .collect();
        let mut counter = tx.prepare_cached(
            "UPDATE devices SET last_delivery_id = ?2, queued = ?3 WHERE id = ?1",
        )?;
        for (device, last) in &plan.counters {
            let depth = depths.get(device).copied().unwrap_or_default();
            counter.execute((device, last, db_int(depth)))?;
        }
    }
    let entries = plan.entries;
    let outcomes = plan.outcomes;
    let Some(stored) = stored else {
        return Ok(outcomes);
    };

    // 5. What was stored, for the hand-off. The last copy of a message takes its body and
    //    sender address; earlier copies (fan-out) clone them.
    let addresses: HashMap<i64, &DeviceAddress> = mailboxes
        .iter()
        .map(|(address, mailbox)| (mailbox.device, address))
        .collect();
    stored.reserve(entries.len());
    for entry in entries {
        let Some(recipient) = addresses.get(&entry.device) else {
            return Err(StoreError::Corrupt(
                "an entry planned for a mailbox that was not read".to_owned(),
            ));
        };
        let message = &mut messages[body_messages[entry.body]];
        copies[entry.body] -= 1;
        let (sender, body) = if copies[entry.body] == 0 {
            (
                std::mem::take(&mut message.sender.address),
                std::mem::take(&mut message.body),
            )
        } else {
            (message.sender.address.clone(), message.body.clone())
        };
        stored.push(StoredEntry {
            recipient: (*recipient).clone(),
            entry: Queued {
                delivery_id: col_u64(entry.delivery_id, "delivery_id")?,
                item: QueuedItem::Envelope(Envelope {
                    sender,
                    sender_device_id: message.sender.device_id,
                    ciphertext_type: message.ciphertext_type,
                    body,
                    client_message_id: message.client_message_id,
                    server_timestamp_ms: message.server_timestamp_ms,
                    group_id: message.group_id,
                }),
            },
        });
    }
    Ok(outcomes)
}

/// [`crate::store::MessageStore::enqueue_receipts`] in its own transaction; with `stored`,
/// also returns every receipt stored with its delivery id.
pub(super) fn enqueue_receipts(
    connection: &mut Connection,
    receipts: Vec<NewReceipt>,
    stored: Option<&mut Vec<StoredEntry>>,
) -> Result<(), StoreError> {
    let tx = write(connection)?;
    enqueue_receipts_in(&tx, receipts, stored)?;
    tx.commit()?;
    Ok(())
}

/// Stores receipts inside the caller's write transaction; returns the devices that got one,
/// in address order.
fn enqueue_receipts_in(
    tx: &Connection,
    receipts: Vec<NewReceipt>,
    mut stored: Option<&mut Vec<StoredEntry>>,
) -> Result<Vec<DeviceAddress>, StoreError> {
    let mut next = tx.prepare_cached(
        "UPDATE devices SET last_delivery_id = last_delivery_id + 1, queued = queued + 1 \
         WHERE address = ?1 AND device_id = ?2 RETURNING id, last_delivery_id",
    )?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO mailbox (device, delivery_id, kind, peer_address, peer_device_id, \
             client_message_ids, server_timestamp_ms, expires_at_ms) \
         VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let mut ids = Vec::new();
    let mut to = BTreeSet::new();
    for receipt in receipts {
        // Receipts for devices that no longer exist are dropped: nobody can fetch them.
        let Some((device, delivery_id)): Option<(i64, i64)> = next
            .query_row((&receipt.to.address, receipt.to.device_id), |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()?
        else {
            continue;
        };
        ids.clear();
        for id in &receipt.receipt.client_message_ids {
            ids.extend_from_slice(id);
        }
        insert.execute((
            device,
            delivery_id,
            &receipt.receipt.recipient,
            receipt.receipt.recipient_device_id,
            ids.as_slice(),
            db_int(receipt.receipt.server_timestamp_ms),
            db_int(receipt.expires_at_ms),
        ))?;
        if !to.contains(&receipt.to) {
            to.insert(receipt.to.clone());
        }
        if let Some(stored) = stored.as_deref_mut() {
            stored.push(StoredEntry {
                recipient: receipt.to,
                entry: Queued {
                    delivery_id: col_u64(delivery_id, "delivery_id")?,
                    item: QueuedItem::Receipt(receipt.receipt),
                },
            });
        }
    }
    Ok(to.into_iter().collect())
}

/// One row of the mailbox query: a message or a receipt.
fn queued_from_row(row: &Row<'_>) -> Result<Queued, StoreError> {
    let delivery_id = col_u64(row.get(0)?, "delivery_id")?;
    let kind: i64 = row.get(1)?;
    let address: String = row.get(2)?;
    let device_id: i64 = row.get(3)?;
    let ids = blob(row, 4, "client_message_ids")?;
    let timestamp: i64 = row.get(7)?;
    let item = match kind {
        KIND_MESSAGE => {
            let ciphertext_type: Option<i64> = row.get(5)?;
            let (Some(ciphertext_type), Some(body)) =
                (ciphertext_type, blob_or_null(row, 6, "body")?)
            else {
                return Err(StoreError::Corrupt("message without a body".to_owned()));
            };
            QueuedItem::Envelope(Envelope {
                sender: address,
                sender_device_id: col_u32(device_id, "peer_device_id")?,
                ciphertext_type: col_ciphertext_type(ciphertext_type)?,
                body: body.to_vec(),
                client_message_id: col_array(ids, "client_message_ids")?,
                server_timestamp_ms: col_u64(timestamp, "server_timestamp_ms")?,
                group_id: col_group_id(blob_or_null(row, 8, "group_id")?)?,
            })
        }
        KIND_RECEIPT => {
            QueuedItem::Receipt(receipt_from_columns(address, device_id, ids, timestamp)?)
        }
        other => {
            return Err(StoreError::Corrupt(format!(
                "mailbox entry of kind {other}"
            )));
        }
    };
    Ok(Queued { delivery_id, item })
}

pub(super) fn pending(
    connection: &mut Connection,
    device: &DeviceAddress,
    after: u64,
    limit: u32,
) -> Result<Vec<Queued>, StoreError> {
    // One statement over one table, so messages and receipts come from one snapshot, in
    // delivery order: a later entry is never returned while an earlier one is missed.
    let mut statement = connection.prepare_cached(
        "SELECT m.delivery_id, m.kind, m.peer_address, m.peer_device_id, m.client_message_ids, \
                m.ciphertext_type, COALESCE(m.body, s.body), m.server_timestamp_ms, m.group_id \
         FROM devices d \
         JOIN mailbox m ON m.device = d.id \
         LEFT JOIN shared_bodies s ON s.id = m.shared_body \
         WHERE d.address = ?1 AND d.device_id = ?2 AND m.delivery_id > ?3 \
         ORDER BY m.delivery_id LIMIT ?4",
    )?;
    let mut rows = statement.query((&device.address, device.device_id, db_int(after), limit))?;
    let mut queued = Vec::new();
    while let Some(row) = rows.next()? {
        queued.push(queued_from_row(row)?);
    }
    Ok(queued)
}

/// [`acknowledge`] for every request of a batch, in order.
pub(super) fn acknowledge_all(
    tx: &Connection,
    acks: &[AckRequest],
) -> Result<Vec<Vec<Acknowledged>>, StoreError> {
    acks.iter()
        .map(|ack| acknowledge(tx, &ack.device, &ack.delivery_ids))
        .collect()
}

/// Deletes one device's acknowledged entries inside the caller's write transaction and returns
/// the messages among them in delivery order. A shared body goes with its last entry.
pub(super) fn acknowledge(
    tx: &Connection,
    device: &DeviceAddress,
    delivery_ids: &[u64],
) -> Result<Vec<Acknowledged>, StoreError> {
    // Sorted and without repeats: the answer comes in delivery order.
    let mut ids: Vec<i64> = delivery_ids
        .iter()
        .filter_map(|id| i64::try_from(*id).ok())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let Some(row) = device_row(tx, device)? else {
        return Ok(Vec::new());
    };
    let mut delete = tx.prepare_cached(
        "DELETE FROM mailbox WHERE device = ?1 AND delivery_id = ?2 \
         RETURNING kind, peer_address, peer_device_id, client_message_ids, shared_body",
    )?;
    let mut acknowledged = Vec::with_capacity(ids.len());
    let mut shared = Vec::new();
    let mut deleted = 0i64;
    for id in ids {
        let mut rows = delete.query((row, id))?;
        let Some(entry) = rows.next()? else {
            // Acknowledged before (acks repeat after a reconnect).
            continue;
        };
        deleted += 1;
        if entry.get::<_, i64>(0)? == KIND_MESSAGE {
            acknowledged.push(Acknowledged {
                sender: DeviceAddress {
                    address: entry.get(1)?,
                    device_id: col_u32(entry.get(2)?, "peer_device_id")?,
                },
                client_message_id: col_array(
                    blob(entry, 3, "client_message_ids")?,
                    "client_message_ids",
                )?,
            });
            if let Some(body) = entry.get::<_, Option<i64>>(4)? {
                shared.push(body);
            }
        }
        // Runs the statement to its end (the delete is done once the row is returned).
        while rows.next()?.is_some() {}
    }
    if deleted > 0 {
        tx.prepare_cached("UPDATE devices SET queued = queued - ?2 WHERE id = ?1")?
            .execute((row, deleted))?;
    }
    release_shared_bodies(tx, shared)?;
    Ok(acknowledged)
}

/// Drops one reference to each given shared body (a body listed twice loses two), deleting a
/// body whose last reference went.
fn release_shared_bodies(
    tx: &Connection,
    bodies: impl IntoIterator<Item = i64>,
) -> Result<(), StoreError> {
    let mut release =
        tx.prepare_cached("UPDATE shared_bodies SET refs = refs - 1 WHERE id = ?1 RETURNING refs")?;
    let mut delete = tx.prepare_cached("DELETE FROM shared_bodies WHERE id = ?1")?;
    for body in bodies {
        let refs: Option<i64> = release.query_row([body], |row| row.get(0)).optional()?;
        if refs.is_some_and(|refs| refs <= 0) {
            delete.execute([body])?;
        }
    }
    Ok(())
}

pub(super) fn queue_depth(
    connection: &mut Connection,
    device: &DeviceAddress,
) -> Result<u64, StoreError> {
    let depth: Option<i64> = connection
        .prepare_cached("SELECT queued FROM devices WHERE address = ?1 AND device_id = ?2")?
        .query_row((&device.address, device.device_id), |row| row.get(0))
        .optional()?;
    col_u64(depth.unwrap_or(0), "queued")
}

/// Deletes up to `limit` entries whose expiry is at or before `now_ms` in one transaction
/// (oldest expiry first) and returns how many went; the caller repeats while a chunk is full.
pub(super) fn expire_chunk(
    connection: &mut Connection,
    now_ms: u64,
    limit: u32,
) -> Result<u64, StoreError> {
    let tx = write(connection)?;
    let expired: Vec<(i64, i64)> = {
        let mut select = tx.prepare_cached(
            "SELECT device, delivery_id FROM mailbox WHERE expires_at_ms <= ?1 \
             ORDER BY expires_at_ms LIMIT ?2",
        )?;
        select
            .query_map((db_int(now_ms), limit), |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?
            .collect::<Result<_, _>>()?
    };
    let mut per_device: HashMap<i64, i64> = HashMap::new();
    let mut shared = Vec::new();
    {
        let mut delete = tx.prepare_cached(
            "DELETE FROM mailbox WHERE device = ?1 AND delivery_id = ?2 RETURNING shared_body",
        )?;
        for (device, delivery_id) in &expired {
            let body: Option<Option<i64>> = delete
                .query_row((device, delivery_id), |row| row.get(0))
                .optional()?;
            if let Some(body) = body {
                *per_device.entry(*device).or_default() += 1;
                shared.extend(body);
            }
        }
        let mut counter =
            tx.prepare_cached("UPDATE devices SET queued = queued - ?2 WHERE id = ?1")?;
        for (device, count) in &per_device {
            counter.execute((device, count))?;
        }
    }
    release_shared_bodies(&tx, shared)?;
    tx.commit()?;
    Ok(per_device.values().map(|count| *count as u64).sum())
}
