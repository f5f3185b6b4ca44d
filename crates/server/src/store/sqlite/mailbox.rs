//! Mailboxes and delivery receipts, run on the connection thread.
//!
//! The schema (migrations 0005 and 0006) keeps the hot path short: messages and receipts share
//! the `mailbox` table, whose rows are stored in arrival order (`seq`), so a writer batch appends
//! to a few pages at the table's end and the acknowledgements of recent entries delete from the
//! same pages; a narrow index (device, delivery_id) finds a device's entries. A one-to-one
//! message carries its ciphertext in its entry row (only a body queued for several devices is
//! stored once, in `shared_bodies`, reference-counted), and each device's counters (last
//! delivery id, queued entries) are a few bytes in `mailbox_counters`. A relayed message then
//! costs, on this thread: an insert (with its index entries) and a delete, plus one counter read
//! and write per device and writer batch; its receipt an insert and a delete.
//!
//! Bulk calls run one cached prepared statement per row inside their transaction: on an
//! embedded database a prepared statement costs about a microsecond, so a row needs no
//! multi-row SQL built per call.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::OnceLock;

use confianza_api::Envelope;
use rusqlite::types::ToSql;
use rusqlite::{Connection, OptionalExtension, Row};

use super::super::rows::{
    DedupeKey, Mailbox, col_array, col_ciphertext_type, col_group_id, col_u32, col_u64, db_int,
    plan_enqueue, receipt_from_columns,
};
use super::dedupe::{Changes, Dedupe};
use super::entries::{self, EntryRow};
use super::{blob, blob_or_null, write};
use crate::store::{
    Acknowledged, BatchOutcome, DeviceAddress, EnqueueOutcome, NewMessage, NewReceipt, Queued,
    QueuedItem, StoreError, StoredEntry, WriteBatch, receipts_owed,
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
    dedupe: &mut Dedupe,
    batch: WriteBatch,
) -> Result<BatchOutcome, StoreError> {
    let WriteBatch {
        acks,
        now_ms,
        sends,
        max_queue,
        receipts: carried,
        push_receipts,
    } = batch;
    let mut tx = write(connection)?;
    let mut stored = Vec::new();
    let mut outcome = BatchOutcome {
        acknowledged: acks.is_empty(),
        ..BatchOutcome::default()
    };
    let mut owed = Vec::new();
    let mut changes = Changes::default();
    if !acks.is_empty() {
        let savepoint = tx.savepoint()?;
        let mut acked = Changes::default();
        let requests = acks
            .iter()
            .map(|ack| (&ack.device, ack.delivery_ids.as_slice()));
        match acknowledge(&savepoint, dedupe, &mut acked, requests) {
            Ok(all) => {
                savepoint.commit()?;
                changes = acked;
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
                // Dropping the savepoint rolls it back.
                drop(savepoint);
                tracing::error!(%error, devices = acks.len(), "deleting acknowledged entries failed");
            }
        }
    }
    let (receipts, pushed) = WriteBatch::route_receipts(push_receipts.as_ref(), owed, carried);
    outcome.pushed_receipts = pushed;
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
        dedupe.sync(&tx)?;
        outcome.outcomes = enqueue_in(
            &tx,
            dedupe,
            &mut changes,
            sends,
            max_queue,
            Some(&mut stored),
        )?;
    }
    tx.commit()?;
    dedupe.apply(changes);
    outcome.stored = Some(stored);
    Ok(outcome)
}

/// [`crate::store::MessageStore::enqueue`] in its own transaction; with `stored`, also returns
/// every entry stored with its delivery id.
pub(super) fn enqueue(
    connection: &mut Connection,
    dedupe: &mut Dedupe,
    messages: Vec<NewMessage>,
    max_queue: u64,
    stored: Option<&mut Vec<StoredEntry>>,
) -> Result<Vec<EnqueueOutcome>, StoreError> {
    let tx = write(connection)?;
    dedupe.sync(&tx)?;
    let mut changes = Changes::default();
    let outcomes = enqueue_in(&tx, dedupe, &mut changes, messages, max_queue, stored)?;
    tx.commit()?;
    dedupe.apply(changes);
    Ok(outcomes)
}

/// Stores a batch of messages inside the caller's write transaction, `dedupe` synced with it;
/// what it stores goes into `changes`. The entries returned in `stored` take the bodies out of
/// `messages` (a body queued once is moved, not copied).
fn enqueue_in(
    tx: &Connection,
    dedupe: &Dedupe,
    changes: &mut Changes,
    mut messages: Vec<NewMessage>,
    max_queue: u64,
    stored: Option<&mut Vec<StoredEntry>>,
) -> Result<Vec<EnqueueOutcome>, StoreError> {
    // 1. The recipients' mailboxes: row id, last delivery id, depth.
    let mut mailboxes = read_mailboxes(tx, messages.iter().flat_map(|m| &m.recipients))?;

    // 2. The dedupe keys of this batch already queued: a candidate of the in-memory index,
    //    confirmed on its row. An empty mailbox holds none, which spares the lookup for a
    //    recipient that keeps up.
    let mut queued = HashSet::new();
    {
        let mut select = tx.prepare_cached(
            "SELECT 1 FROM mailbox WHERE seq = ?1 AND device = ?2 AND kind = 0 \
             AND peer_address = ?3 AND peer_device_id = ?4 AND client_message_ids = ?5",
        )?;
        for message in &messages {
            for mailbox in message.recipients.iter().filter_map(|r| mailboxes.get(r)) {
                if mailbox.depth == 0 {
                    continue;
                }
                let key = dedupe_key(dedupe, mailbox.device, message);
                let Some(seq) = dedupe.candidate(key) else {
                    continue;
                };
                let exists = select.exists((
                    seq,
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
        let first_seq = entries::next_seq(tx)?;
        let mut rows = Vec::with_capacity(plan.entries.len());
        for (seq, entry) in (first_seq..).zip(&plan.entries) {
            let message = &messages[body_messages[entry.body]];
            let shared = shared_ids[entry.body];
            changes.added(dedupe_key(dedupe, entry.device, message), seq);
            rows.push(EntryRow {
                seq,
                device: entry.device,
                delivery_id: entry.delivery_id,
                kind: KIND_MESSAGE,
                peer_address: &message.sender.address,
                peer_device_id: i64::from(message.sender.device_id),
                client_message_ids: &message.client_message_id,
                server_timestamp_ms: db_int(message.server_timestamp_ms),
                expires_at_ms: db_int(message.expires_at_ms),
                ciphertext_type: Some(i64::from(message.ciphertext_type.to_wire())),
                body: shared.is_none().then_some(message.body.as_slice()),
                shared_body: shared,
                group_id: message.group_id.as_ref().map(|g| &g.0[..]),
            });
        }
        entries::insert(tx, &rows)?;
        let depths: HashMap<i64, u64> = mailboxes
            .values()
            .map(|mailbox| (mailbox.device, mailbox.depth))
            .collect();
        write_counters(
            tx,
            plan.counters.iter().map(|&(device, last)| Mailbox {
                device,
                last_delivery_id: last,
                depth: depths.get(&device).copied().unwrap_or_default(),
            }),
        )?;
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
/// in address order. Each recipient device's counters are read and written once.
fn enqueue_receipts_in(
    tx: &Connection,
    receipts: Vec<NewReceipt>,
    mut stored: Option<&mut Vec<StoredEntry>>,
) -> Result<Vec<DeviceAddress>, StoreError> {
    let mut mailboxes = read_mailboxes(tx, receipts.iter().map(|receipt| &receipt.to))?;
    // Receipts for devices that no longer exist are dropped: nobody can fetch them.
    let receipts: Vec<(NewReceipt, i64, i64, Vec<u8>)> = receipts
        .into_iter()
        .filter_map(|receipt| {
            let mailbox = mailboxes.get_mut(&receipt.to)?;
            mailbox.last_delivery_id += 1;
            mailbox.depth += 1;
            let ids = receipt.receipt.client_message_ids.concat();
            Some((receipt, mailbox.device, mailbox.last_delivery_id, ids))
        })
        .collect();
    let first_seq = entries::next_seq(tx)?;
    let mut rows = Vec::with_capacity(receipts.len());
    for (seq, (receipt, device, delivery_id, ids)) in (first_seq..).zip(&receipts) {
        rows.push(EntryRow {
            seq,
            device: *device,
            delivery_id: *delivery_id,
            kind: KIND_RECEIPT,
            peer_address: &receipt.receipt.recipient,
            peer_device_id: i64::from(receipt.receipt.recipient_device_id),
            client_message_ids: ids,
            server_timestamp_ms: db_int(receipt.receipt.server_timestamp_ms),
            expires_at_ms: db_int(receipt.expires_at_ms),
            ciphertext_type: None,
            body: None,
            shared_body: None,
            group_id: None,
        });
    }
    entries::insert(tx, &rows)?;
    drop(rows);
    let mut to = BTreeSet::new();
    for (receipt, _, delivery_id, _) in receipts {
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
    write_counters(
        tx,
        to.iter()
            .filter_map(|device| mailboxes.get(device))
            .copied(),
    )?;
    Ok(to.into_iter().collect())
}

/// The mailboxes of `devices` (each read once, [`entries::CHUNK`] devices per statement): row
/// id, last delivery id, depth. Devices that do not exist are left out.
fn read_mailboxes<'a>(
    tx: &Connection,
    devices: impl IntoIterator<Item = &'a DeviceAddress>,
) -> Result<HashMap<DeviceAddress, Mailbox>, StoreError> {
    static SQL: OnceLock<String> = OnceLock::new();
    let select = SQL.get_or_init(|| {
        // Each term is one search of the devices' (address, device_id) index.
        let terms: Vec<String> = (0..entries::CHUNK)
            .map(|n| {
                format!(
                    "(d.address = ?{} AND d.device_id = ?{})",
                    2 * n + 1,
                    2 * n + 2
                )
            })
            .collect();
        format!(
            "SELECT d.id, d.address, d.device_id, COALESCE(c.last_delivery_id, 0), \
                    COALESCE(c.queued, 0) \
             FROM devices d LEFT JOIN mailbox_counters c ON c.device = d.id WHERE {}",
            terms.join(" OR ")
        )
    });
    let mut distinct: Vec<&DeviceAddress> = devices.into_iter().collect();
    distinct.sort_unstable();
    distinct.dedup();
    let mut mailboxes = HashMap::with_capacity(distinct.len());
    // Unused places of a chunk are NULL, which nothing equals.
    let mut params: Vec<Option<&dyn ToSql>> = Vec::with_capacity(2 * entries::CHUNK);
    let mut statement = tx.prepare_cached(select)?;
    for chunk in distinct.chunks(entries::CHUNK) {
        params.clear();
        for device in chunk {
            params.extend([
                Some(&device.address as &dyn ToSql),
                Some(&device.device_id as &dyn ToSql),
            ]);
        }
        params.resize(2 * entries::CHUNK, None);
        let mut rows = statement.query(rusqlite::params_from_iter(&params))?;
        while let Some(row) = rows.next()? {
            let address = DeviceAddress {
                address: row.get(1)?,
                device_id: col_u32(row.get(2)?, "device_id")?,
            };
            mailboxes.insert(
                address,
                Mailbox {
                    device: row.get(0)?,
                    last_delivery_id: row.get(3)?,
                    depth: col_u64(row.get(4)?, "queued")?,
                },
            );
        }
    }
    Ok(mailboxes)
}

/// Writes the counters of mailboxes that grew.
fn write_counters(
    tx: &Connection,
    mailboxes: impl IntoIterator<Item = Mailbox>,
) -> Result<(), StoreError> {
    let counters: Vec<(i64, i64, i64)> = mailboxes
        .into_iter()
        .map(|mailbox| {
            (
                mailbox.device,
                mailbox.last_delivery_id,
                db_int(mailbox.depth),
            )
        })
        .collect();
    entries::write_counters(tx, &counters)
}

/// The dedupe key of `message` queued for the device whose row is `device`.
fn dedupe_key(dedupe: &Dedupe, device: i64, message: &NewMessage) -> u64 {
    dedupe.key(
        device,
        &message.sender.address,
        i64::from(message.sender.device_id),
        &message.client_message_id,
    )
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

/// Deletes acknowledged entries inside the caller's write transaction: per request, one
/// device and the delivery ids it acknowledged. Returns, per request in order, the messages among
/// the entries it deleted, in delivery order; the messages deleted go into `changes`. An id
/// acknowledged twice counts for the first request naming it; a shared body goes with its last
/// entry. Every request of the batch is served by the same few chunked statements.
pub(super) fn acknowledge<'a>(
    tx: &Connection,
    dedupe: &Dedupe,
    changes: &mut Changes,
    requests: impl IntoIterator<Item = (&'a DeviceAddress, &'a [u64])>,
) -> Result<Vec<Vec<Acknowledged>>, StoreError> {
    let requests: Vec<(&DeviceAddress, &[u64])> = requests.into_iter().collect();
    let mut answers = vec![Vec::new(); requests.len()];
    let mailboxes = read_mailboxes(
        tx,
        requests
            .iter()
            .filter(|(_, ids)| !ids.is_empty())
            .map(|(device, _)| *device),
    )?;
    // (device row, delivery id, request), sorted; the first request naming an entry keeps it.
    let mut wanted: Vec<(i64, i64, usize)> = Vec::new();
    for (request, (device, ids)) in requests.iter().enumerate() {
        let Some(mailbox) = mailboxes.get(*device) else {
            continue;
        };
        wanted.extend(
            ids.iter()
                .filter_map(|id| i64::try_from(*id).ok())
                .map(|id| (mailbox.device, id, request)),
        );
    }
    wanted.sort_unstable();
    wanted.dedup_by_key(|(device, id, _)| (*device, *id));
    if wanted.is_empty() {
        return Ok(answers);
    }
    let pairs: Vec<(i64, i64)> = wanted.iter().map(|&(device, id, _)| (device, id)).collect();
    let deleted = entries::delete_acknowledged(tx, &pairs)?;

    let mut per_device: Vec<(i64, i64)> = Vec::new();
    let mut shared = Vec::new();
    for entry in deleted {
        match per_device.last_mut() {
            Some((device, count)) if *device == entry.device => *count += 1,
            _ => per_device.push((entry.device, 1)),
        }
        if entry.kind != KIND_MESSAGE {
            continue;
        }
        let Ok(at) = pairs.binary_search(&(entry.device, entry.delivery_id)) else {
            return Err(StoreError::Corrupt(
                "an acknowledgement deleted an entry it did not name".to_owned(),
            ));
        };
        changes.removed(
            dedupe.key(
                entry.device,
                &entry.peer_address,
                entry.peer_device_id,
                &entry.client_message_ids,
            ),
            entry.seq,
        );
        shared.extend(entry.shared_body);
        answers[wanted[at].2].push(Acknowledged {
            client_message_id: col_array(&entry.client_message_ids, "client_message_ids")?,
            sender: DeviceAddress {
                address: entry.peer_address,
                device_id: col_u32(entry.peer_device_id, "peer_device_id")?,
            },
        });
    }
    entries::decrement_queued(tx, &per_device)?;
    release_shared_bodies(tx, shared)?;
    Ok(answers)
}

/// Drops one reference to each given shared body (a body listed twice loses two), deleting a
/// body whose last reference went.
fn release_shared_bodies(tx: &Connection, bodies: Vec<i64>) -> Result<(), StoreError> {
    if bodies.is_empty() {
        return Ok(());
    }
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
        .prepare_cached(
            "SELECT c.queued FROM devices d JOIN mailbox_counters c ON c.device = d.id \
             WHERE d.address = ?1 AND d.device_id = ?2",
        )?
        .query_row((&device.address, device.device_id), |row| row.get(0))
        .optional()?;
    col_u64(depth.unwrap_or(0), "queued")
}

/// Deletes up to `limit` entries whose expiry is at or before `now_ms` in one transaction
/// (oldest expiry first) and returns how many went; the caller repeats while a chunk is full.
pub(super) fn expire_chunk(
    connection: &mut Connection,
    dedupe: &mut Dedupe,
    now_ms: u64,
    limit: u32,
) -> Result<u64, StoreError> {
    let tx = write(connection)?;
    let expired: Vec<i64> = {
        let mut select = tx.prepare_cached(
            "SELECT seq FROM mailbox WHERE expires_at_ms <= ?1 ORDER BY expires_at_ms LIMIT ?2",
        )?;
        select
            .query_map((db_int(now_ms), limit), |row| row.get(0))?
            .collect::<Result<_, _>>()?
    };
    let mut per_device: HashMap<i64, i64> = HashMap::new();
    let mut shared = Vec::new();
    let mut changes = Changes::default();
    {
        let mut delete = tx.prepare_cached(
            "DELETE FROM mailbox WHERE seq = ?1 \
             RETURNING device, shared_body, kind, peer_address, peer_device_id, client_message_ids",
        )?;
        for seq in &expired {
            let mut rows = delete.query([seq])?;
            let Some(row) = rows.next()? else {
                continue;
            };
            let device: i64 = row.get(0)?;
            *per_device.entry(device).or_default() += 1;
            shared.extend(row.get::<_, Option<i64>>(1)?);
            if row.get::<_, i64>(2)? == KIND_MESSAGE {
                let sender: String = row.get(3)?;
                let key = dedupe.key(
                    device,
                    &sender,
                    row.get(4)?,
                    blob(row, 5, "client_message_ids")?,
                );
                changes.removed(key, *seq);
            }
            while rows.next()?.is_some() {}
        }
        let deleted: Vec<(i64, i64)> = per_device.iter().map(|(d, n)| (*d, *n)).collect();
        entries::decrement_queued(&tx, &deleted)?;
    }
    release_shared_bodies(&tx, shared)?;
    tx.commit()?;
    dedupe.apply(changes);
    Ok(per_device.values().map(|count| *count as u64).sum())
}
