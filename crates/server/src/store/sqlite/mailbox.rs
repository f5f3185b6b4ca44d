//! Mailboxes and delivery receipts, run on the connection thread.
//!
//! Bulk calls run one cached prepared statement per row inside their transaction: on an
//! embedded database a prepared statement costs about a microsecond, so a row needs no
//! multi-row SQL built per call.

use std::collections::{BTreeSet, HashMap, HashSet};

use confianza_api::Envelope;
use rusqlite::{Connection, OptionalExtension, Row};

use super::super::rows::{
    DedupeKey, Mailbox, col_array, col_ciphertext_type, col_group_id, col_u32, col_u64, db_int,
    encode_message_ids, plan_enqueue, receipt_from_columns,
};
use super::{blob, blob_or_null, device_row, write};
use crate::store::{
    Acknowledged, DeviceAddress, EnqueueOutcome, NewMessage, NewReceipt, Queued, QueuedItem,
    StoreError, StoredEntry,
};

/// A device's queue depth: its messages and receipts (`d` is the device's row).
const DEPTH: &str = "(SELECT COUNT(*) FROM mailbox_entries e WHERE e.device = d.id) \
                     + (SELECT COUNT(*) FROM receipts r WHERE r.device = d.id)";

pub(super) fn enqueue(
    connection: &mut Connection,
    messages: &[NewMessage],
    max_queue: u64,
) -> Result<Vec<EnqueueOutcome>, StoreError> {
    enqueue_collecting(connection, messages, max_queue, None)
}

/// [`enqueue`], also returning every entry stored with its delivery id (for the hand-off to
/// connected recipients, see `MessageStore::enqueue_returning`).
pub(super) fn enqueue_returning(
    connection: &mut Connection,
    messages: &[NewMessage],
    max_queue: u64,
) -> Result<(Vec<EnqueueOutcome>, Vec<StoredEntry>), StoreError> {
    let mut stored = Vec::new();
    let outcomes = enqueue_collecting(connection, messages, max_queue, Some(&mut stored))?;
    Ok((outcomes, stored))
}

fn enqueue_collecting(
    connection: &mut Connection,
    messages: &[NewMessage],
    max_queue: u64,
    stored: Option<&mut Vec<StoredEntry>>,
) -> Result<Vec<EnqueueOutcome>, StoreError> {
    let tx = write(connection)?;

    // 1. The recipients' mailboxes: row id, last delivery id, depth.
    let recipients: BTreeSet<&DeviceAddress> =
        messages.iter().flat_map(|m| &m.recipients).collect();
    let mut mailboxes = HashMap::with_capacity(recipients.len());
    {
        let mut select = tx.prepare_cached(&format!(
            "SELECT d.id, d.last_delivery_id, {DEPTH} FROM devices d \
             WHERE d.address = ?1 AND d.device_id = ?2"
        ))?;
        for recipient in recipients {
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
                        depth: col_u64(depth, "depth")?,
                    },
                );
            }
        }
    }

    // 2. The dedupe keys of this batch already queued.
    let mut queued = HashSet::new();
    {
        let mut select = tx.prepare_cached(
            "SELECT 1 FROM mailbox_entries WHERE device = ?1 AND sender_address = ?2 \
             AND sender_device_id = ?3 AND client_message_id = ?4",
        )?;
        for message in messages {
            for mailbox in message.recipients.iter().filter_map(|r| mailboxes.get(r)) {
                let key = DedupeKey::new(mailbox.device, message);
                if queued.contains(&key) {
                    continue;
                }
                let exists = select.exists((
                    key.device,
                    &key.sender_address,
                    key.sender_device_id,
                    &key.client_message_id[..],
                ))?;
                if exists {
                    queued.insert(key);
                }
            }
        }
    }

    // 3. The outcomes, decided in memory.
    let plan = plan_enqueue(messages, &mut mailboxes, &mut queued, max_queue);
    if plan.bodies.is_empty() {
        // Nothing to write (all duplicates, full or unknown); the rollback is free.
        return Ok(plan.outcomes);
    }

    // 4. The writes: bodies, entries, counters.
    {
        let mut insert_body = tx.prepare_cached(
            "INSERT INTO message_bodies (ciphertext_type, body, server_timestamp_ms, group_id) \
             VALUES (?1, ?2, ?3, ?4)",
        )?;
        let mut body_ids = Vec::with_capacity(plan.bodies.len());
        for message in &plan.bodies {
            insert_body.execute((
                message.ciphertext_type.to_wire(),
                message.body.as_slice(),
                db_int(message.server_timestamp_ms),
                message.group_id.as_ref().map(|g| &g.0[..]),
            ))?;
            body_ids.push(tx.last_insert_rowid());
        }
        let mut insert_entry = tx.prepare_cached(
            "INSERT INTO mailbox_entries (device, delivery_id, body, sender_address, \
                 sender_device_id, client_message_id, expires_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for entry in &plan.entries {
            let message = plan.bodies[entry.body];
            insert_entry.execute((
                entry.device,
                entry.delivery_id,
                body_ids[entry.body],
                &message.sender.address,
                message.sender.device_id,
                &message.client_message_id[..],
                db_int(message.expires_at_ms),
            ))?;
        }
        let mut counter =
            tx.prepare_cached("UPDATE devices SET last_delivery_id = ?2 WHERE id = ?1")?;
        for (device, last) in &plan.counters {
            counter.execute((device, last))?;
        }
    }
    if let Some(stored) = stored {
        // Built before the commit: if an entry cannot be described, nothing is stored.
        let addresses: HashMap<i64, &DeviceAddress> = mailboxes
            .iter()
            .map(|(address, mailbox)| (mailbox.device, address))
            .collect();
        stored.reserve(plan.entries.len());
        for entry in &plan.entries {
            let message = plan.bodies[entry.body];
            let Some(recipient) = addresses.get(&entry.device) else {
                return Err(StoreError::Corrupt(
                    "an entry planned for a mailbox that was not read".to_owned(),
                ));
            };
            stored.push(StoredEntry {
                recipient: (*recipient).clone(),
                entry: Queued {
                    delivery_id: col_u64(entry.delivery_id, "delivery_id")?,
                    item: QueuedItem::Envelope(Envelope {
                        sender: message.sender.address.clone(),
                        sender_device_id: message.sender.device_id,
                        ciphertext_type: message.ciphertext_type,
                        body: message.body.clone(),
                        client_message_id: message.client_message_id,
                        server_timestamp_ms: message.server_timestamp_ms,
                        group_id: message.group_id,
                    }),
                },
            });
        }
    }
    tx.commit()?;
    Ok(plan.outcomes)
}

pub(super) fn enqueue_receipts(
    connection: &mut Connection,
    receipts: &[NewReceipt],
) -> Result<(), StoreError> {
    enqueue_receipts_collecting(connection, receipts, None)
}

/// [`enqueue_receipts`], also returning every receipt stored with its delivery id.
pub(super) fn enqueue_receipts_returning(
    connection: &mut Connection,
    receipts: &[NewReceipt],
) -> Result<Vec<StoredEntry>, StoreError> {
    let mut stored = Vec::with_capacity(receipts.len());
    enqueue_receipts_collecting(connection, receipts, Some(&mut stored))?;
    Ok(stored)
}

fn enqueue_receipts_collecting(
    connection: &mut Connection,
    receipts: &[NewReceipt],
    mut stored: Option<&mut Vec<StoredEntry>>,
) -> Result<(), StoreError> {
    let tx = write(connection)?;
    {
        let mut next = tx.prepare_cached(
            "UPDATE devices SET last_delivery_id = last_delivery_id + 1 \
             WHERE address = ?1 AND device_id = ?2 RETURNING id, last_delivery_id",
        )?;
        let mut insert = tx.prepare_cached(
            "INSERT INTO receipts (device, delivery_id, recipient, recipient_device_id, \
                 client_message_ids, server_timestamp_ms, expires_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
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
            insert.execute((
                device,
                delivery_id,
                &receipt.receipt.recipient,
                receipt.receipt.recipient_device_id,
                encode_message_ids(&receipt.receipt.client_message_ids),
                db_int(receipt.receipt.server_timestamp_ms),
                db_int(receipt.expires_at_ms),
            ))?;
            if let Some(stored) = stored.as_deref_mut() {
                stored.push(StoredEntry {
                    recipient: receipt.to.clone(),
                    entry: Queued {
                        delivery_id: col_u64(delivery_id, "delivery_id")?,
                        item: QueuedItem::Receipt(receipt.receipt.clone()),
                    },
                });
            }
        }
    }
    tx.commit()?;
    Ok(())
}

/// One row of the mailbox query: an envelope (kind 0) or a receipt (kind 1).
fn queued_from_row(row: &Row<'_>) -> Result<Queued, StoreError> {
    let delivery_id = col_u64(row.get(0)?, "delivery_id")?;
    let kind: i64 = row.get(1)?;
    let address: String = row.get(2)?;
    let device_id: i64 = row.get(3)?;
    let ids = blob(row, 4, "client_message_id")?;
    let timestamp: i64 = row.get(7)?;
    let item = if kind == 0 {
        let ciphertext_type: Option<i64> = row.get(5)?;
        let (Some(ciphertext_type), Some(body)) = (ciphertext_type, blob_or_null(row, 6, "body")?)
        else {
            return Err(StoreError::Corrupt("message without a body".to_owned()));
        };
        QueuedItem::Envelope(Envelope {
            sender: address,
            sender_device_id: col_u32(device_id, "sender_device_id")?,
            ciphertext_type: col_ciphertext_type(ciphertext_type)?,
            body: body.to_vec(),
            client_message_id: col_array(ids, "client_message_id")?,
            server_timestamp_ms: col_u64(timestamp, "server_timestamp_ms")?,
            group_id: col_group_id(blob_or_null(row, 8, "group_id")?)?,
        })
    } else {
        QueuedItem::Receipt(receipt_from_columns(address, device_id, ids, timestamp)?)
    };
    Ok(Queued { delivery_id, item })
}

pub(super) fn pending(
    connection: &mut Connection,
    device: &DeviceAddress,
    after: u64,
    limit: u32,
) -> Result<Vec<Queued>, StoreError> {
    // One statement, so messages and receipts come from one snapshot: a later entry is never
    // returned while an earlier one is missed.
    let mut statement = connection.prepare_cached(
        "SELECT e.delivery_id, 0, e.sender_address, e.sender_device_id, e.client_message_id, \
                b.ciphertext_type, b.body, b.server_timestamp_ms, b.group_id \
         FROM devices d \
         JOIN mailbox_entries e ON e.device = d.id \
         JOIN message_bodies b ON b.id = e.body \
         WHERE d.address = ?1 AND d.device_id = ?2 AND e.delivery_id > ?3 \
         UNION ALL \
         SELECT r.delivery_id, 1, r.recipient, r.recipient_device_id, r.client_message_ids, \
                NULL, NULL, r.server_timestamp_ms, NULL \
         FROM devices d \
         JOIN receipts r ON r.device = d.id \
         WHERE d.address = ?1 AND d.device_id = ?2 AND r.delivery_id > ?3 \
         ORDER BY 1 LIMIT ?4",
    )?;
    let mut rows = statement.query((&device.address, device.device_id, db_int(after), limit))?;
    let mut queued = Vec::new();
    while let Some(row) = rows.next()? {
        queued.push(queued_from_row(row)?);
    }
    Ok(queued)
}

/// Deletes one device's acknowledged entries inside the caller's write transaction and returns
/// the envelopes among them in delivery order. A body goes with the last entry referencing it.
pub(super) fn acknowledge(
    tx: &Connection,
    device: &DeviceAddress,
    delivery_ids: &[u64],
) -> Result<Vec<Acknowledged>, StoreError> {
    // Sorted and without repeats: the answer comes in delivery order.
    let ids: BTreeSet<i64> = delivery_ids
        .iter()
        .filter_map(|id| i64::try_from(*id).ok())
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let Some(row) = device_row(tx, device)? else {
        return Ok(Vec::new());
    };
    let mut delete_entry = tx.prepare_cached(
        "DELETE FROM mailbox_entries WHERE device = ?1 AND delivery_id = ?2 \
         RETURNING body, sender_address, sender_device_id, client_message_id",
    )?;
    let mut delete_receipt =
        tx.prepare_cached("DELETE FROM receipts WHERE device = ?1 AND delivery_id = ?2")?;
    let mut acknowledged = Vec::new();
    let mut bodies = BTreeSet::new();
    for id in ids {
        let mut rows = delete_entry.query((row, id))?;
        if let Some(entry) = rows.next()? {
            bodies.insert(entry.get::<_, i64>(0)?);
            acknowledged.push(Acknowledged {
                sender: DeviceAddress {
                    address: entry.get(1)?,
                    device_id: col_u32(entry.get(2)?, "sender_device_id")?,
                },
                client_message_id: col_array(
                    blob(entry, 3, "client_message_id")?,
                    "client_message_id",
                )?,
            });
            // Runs the statement to its end (the delete is done once the row is returned).
            while rows.next()?.is_some() {}
        } else {
            // Messages and receipts share the sequence: an id that is no message may be a
            // receipt (or nothing, if it was acknowledged before).
            drop(rows);
            delete_receipt.execute((row, id))?;
        }
    }
    delete_orphan_bodies(tx, bodies)?;
    Ok(acknowledged)
}

/// Deletes the given bodies that no mailbox entry references any more.
fn delete_orphan_bodies(
    tx: &Connection,
    bodies: impl IntoIterator<Item = i64>,
) -> Result<(), StoreError> {
    let mut delete = tx.prepare_cached(
        "DELETE FROM message_bodies WHERE id = ?1 \
         AND NOT EXISTS (SELECT 1 FROM mailbox_entries e WHERE e.body = ?1)",
    )?;
    for body in bodies {
        delete.execute([body])?;
    }
    Ok(())
}

pub(super) fn queue_depth(
    connection: &mut Connection,
    device: &DeviceAddress,
) -> Result<u64, StoreError> {
    let depth: Option<i64> = connection
        .prepare_cached(&format!(
            "SELECT {DEPTH} FROM devices d WHERE d.address = ?1 AND d.device_id = ?2"
        ))?
        .query_row((&device.address, device.device_id), |row| row.get(0))
        .optional()?;
    col_u64(depth.unwrap_or(0), "depth")
}

pub(super) fn expire_messages(connection: &mut Connection, now_ms: u64) -> Result<u64, StoreError> {
    let tx = write(connection)?;
    let mut bodies = BTreeSet::new();
    let mut expired = 0u64;
    {
        let mut delete = tx.prepare_cached(
            "DELETE FROM mailbox_entries WHERE expires_at_ms <= ?1 RETURNING body",
        )?;
        let mut rows = delete.query([db_int(now_ms)])?;
        while let Some(row) = rows.next()? {
            bodies.insert(row.get::<_, i64>(0)?);
            expired += 1;
        }
    }
    let receipts = tx
        .prepare_cached("DELETE FROM receipts WHERE expires_at_ms <= ?1")?
        .execute([db_int(now_ms)])?;
    expired += receipts as u64;
    delete_orphan_bodies(&tx, bodies)?;
    tx.commit()?;
    Ok(expired)
}
