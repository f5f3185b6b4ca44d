//! What the SQL backends share: conversions between rows and the API's types (a row that does
//! not convert is [`StoreError::Corrupt`], never a panic), and the enqueue planner, which decides
//! in memory what a batch stores once the backend has read the recipients' state.

use std::collections::{HashMap, HashSet};

use confianza_api::limits::len;
use confianza_api::{CiphertextType, ClientMessageId, DeliveryReceipt, GroupId, KyberPublicKey};

use super::{
    DeviceAddress, EnqueueOutcome, NewMessage, Queued, QueuedItem, StoreError, StoredEntry,
};

/// Most bind parameters one statement carries. SQLite's limit is 32 766, PostgreSQL's 65 535;
/// bulk statements are split to stay below both.
pub(crate) const MAX_BINDS_PER_STATEMENT: usize = 30_000;

/// Rows of a bulk statement with `columns` binds per row, so it stays within
/// [`MAX_BINDS_PER_STATEMENT`].
pub(crate) fn rows_per_statement(columns: usize) -> usize {
    (MAX_BINDS_PER_STATEMENT / columns.max(1)).max(1)
}

/// A `u64` of the API as a database integer. Values above `i64::MAX` (timestamps in the year
/// 292 million, limits meaning "no limit") saturate; the store never stores such values from
/// its own counters.
pub(crate) fn db_int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A stored non-negative integer.
pub(crate) fn col_u64(value: i64, column: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column} is negative")))
}

/// A stored 32-bit unsigned integer (device ids, registration ids, key ids).
pub(crate) fn col_u32(value: i64, column: &str) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column} out of range")))
}

/// A stored fixed-size byte string (keys, signatures, ids).
pub(crate) fn col_array<const N: usize>(value: &[u8], column: &str) -> Result<[u8; N], StoreError> {
    value.try_into().map_err(|_| {
        StoreError::Corrupt(format!("{column} has {} bytes, expected {N}", value.len()))
    })
}

pub(crate) fn col_kyber(value: &[u8], column: &str) -> Result<KyberPublicKey, StoreError> {
    KyberPublicKey::from_slice(value).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "{column} has {} bytes, expected {}",
            value.len(),
            len::KYBER_PUBLIC_KEY
        ))
    })
}

pub(crate) fn col_ciphertext_type(value: i64) -> Result<CiphertextType, StoreError> {
    u32::try_from(value)
        .ok()
        .and_then(CiphertextType::from_wire)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown ciphertext type {value}")))
}

pub(crate) fn col_group_id(value: Option<&[u8]>) -> Result<Option<GroupId>, StoreError> {
    value
        .map(|bytes| col_array(bytes, "group_id").map(GroupId))
        .transpose()
}

/// A receipt's client message ids as one column: the 16-byte ids, concatenated.
pub(crate) fn encode_message_ids(ids: &[ClientMessageId]) -> Vec<u8> {
    ids.concat()
}

pub(crate) fn decode_message_ids(value: &[u8]) -> Result<Vec<ClientMessageId>, StoreError> {
    let chunks = value.chunks_exact(len::CLIENT_MESSAGE_ID);
    if !chunks.remainder().is_empty() {
        return Err(StoreError::Corrupt(format!(
            "client_message_ids has {} bytes, not a multiple of {}",
            value.len(),
            len::CLIENT_MESSAGE_ID
        )));
    }
    chunks
        .map(|chunk| col_array(chunk, "client_message_ids"))
        .collect()
}

/// A receipt as the mailbox query returns it.
pub(crate) fn receipt_from_columns(
    recipient: String,
    recipient_device_id: i64,
    client_message_ids: &[u8],
    server_timestamp_ms: i64,
) -> Result<DeliveryReceipt, StoreError> {
    Ok(DeliveryReceipt {
        recipient,
        recipient_device_id: col_u32(recipient_device_id, "recipient_device_id")?,
        client_message_ids: decode_message_ids(client_message_ids)?,
        server_timestamp_ms: col_u64(server_timestamp_ms, "server_timestamp_ms")?,
    })
}

/// A recipient device's mailbox as the enqueue transaction found it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mailbox {
    /// The device's row id.
    pub device: i64,
    pub last_delivery_id: i64,
    /// Entries (messages and receipts) queued now.
    pub depth: u64,
}

/// The dedupe key of a mailbox entry: recipient device row, sender device, client message id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct DedupeKey {
    pub device: i64,
    pub sender_address: String,
    pub sender_device_id: u32,
    pub client_message_id: ClientMessageId,
}

impl DedupeKey {
    pub(crate) fn new(device: i64, message: &NewMessage) -> Self {
        Self {
            device,
            sender_address: message.sender.address.clone(),
            sender_device_id: message.sender.device_id,
            client_message_id: message.client_message_id,
        }
    }
}

/// One mailbox entry to insert.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlannedEntry {
    /// Index into [`EnqueuePlan::bodies`].
    pub body: usize,
    pub device: i64,
    pub delivery_id: i64,
}

/// What an enqueue batch writes.
#[derive(Debug)]
pub(crate) struct EnqueuePlan<'a> {
    pub outcomes: Vec<EnqueueOutcome>,
    /// The messages whose body is stored (queued for at least one new recipient).
    pub bodies: Vec<&'a NewMessage>,
    pub entries: Vec<PlannedEntry>,
    /// `(device row, new last delivery id)` for every mailbox that grew.
    pub counters: Vec<(i64, i64)>,
}

/// Decides each message's outcome in order, given the recipients' mailboxes (absent: unknown
/// device) and the dedupe keys already queued. Messages earlier in the batch count: a later
/// message sees their entries in the queue depth and the dedupe keys.
pub(crate) fn plan_enqueue<'a>(
    messages: &'a [NewMessage],
    mailboxes: &mut HashMap<DeviceAddress, Mailbox>,
    queued: &mut HashSet<DedupeKey>,
    max_queue: u64,
) -> EnqueuePlan<'a> {
    let mut plan = EnqueuePlan {
        outcomes: Vec::with_capacity(messages.len()),
        bodies: Vec::new(),
        entries: Vec::new(),
        counters: Vec::new(),
    };
    let mut grown: Vec<DeviceAddress> = Vec::new();
    'messages: for message in messages {
        let mut fresh: Vec<(&DeviceAddress, DedupeKey)> = Vec::new();
        let mut duplicates = 0u32;
        for recipient in &message.recipients {
            let Some(mailbox) = mailboxes.get(recipient) else {
                plan.outcomes
                    .push(EnqueueOutcome::UnknownRecipient(recipient.clone()));
                continue 'messages;
            };
            let key = DedupeKey::new(mailbox.device, message);
            // A recipient listed twice in one message is one copy.
            if queued.contains(&key) || fresh.iter().any(|(_, k)| *k == key) {
                duplicates = duplicates.saturating_add(1);
            } else {
                fresh.push((recipient, key));
            }
        }
        if let Some((full, _)) = fresh.iter().find(|(recipient, _)| {
            mailboxes
                .get(*recipient)
                .is_some_and(|mailbox| mailbox.depth >= max_queue)
        }) {
            plan.outcomes
                .push(EnqueueOutcome::MailboxFull((*full).clone()));
            continue;
        }
        let body = plan.bodies.len();
        if !fresh.is_empty() {
            plan.bodies.push(message);
        }
        let mut new = Vec::with_capacity(fresh.len());
        for (recipient, key) in fresh {
            let Some(mailbox) = mailboxes.get_mut(recipient) else {
                continue;
            };
            mailbox.depth += 1;
            mailbox.last_delivery_id += 1;
            plan.entries.push(PlannedEntry {
                body,
                device: mailbox.device,
                delivery_id: mailbox.last_delivery_id,
            });
            if !grown.contains(recipient) {
                grown.push(recipient.clone());
            }
            queued.insert(key);
            new.push(recipient.clone());
        }
        plan.outcomes
            .push(EnqueueOutcome::Stored { new, duplicates });
    }
    plan.counters = grown
        .iter()
        .filter_map(|address| mailboxes.get(address))
        .map(|mailbox| (mailbox.device, mailbox.last_delivery_id))
        .collect();
    plan
}

/// The entries a plan stores, described for the hand-off to connected recipients
/// (`MessageStore::enqueue_returning`), in plan order, which is delivery-id order per device.
/// Built before the commit: if an entry cannot be described, the caller stores nothing.
pub(crate) fn planned_entries(
    plan: &EnqueuePlan<'_>,
    mailboxes: &HashMap<DeviceAddress, Mailbox>,
) -> Result<Vec<StoredEntry>, StoreError> {
    let addresses: HashMap<i64, &DeviceAddress> = mailboxes
        .iter()
        .map(|(address, mailbox)| (mailbox.device, address))
        .collect();
    plan.entries
        .iter()
        .map(|entry| {
            let message = plan.bodies[entry.body];
            let recipient = addresses.get(&entry.device).ok_or_else(|| {
                StoreError::Corrupt("an entry planned for a mailbox that was not read".to_owned())
            })?;
            Ok(StoredEntry {
                recipient: (*recipient).clone(),
                entry: Queued {
                    delivery_id: col_u64(entry.delivery_id, "delivery_id")?,
                    item: QueuedItem::Envelope(message.envelope()),
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(name: &str, device_id: u32) -> DeviceAddress {
        DeviceAddress {
            address: name.to_owned(),
            device_id,
        }
    }

    fn message(id: u8, recipients: Vec<DeviceAddress>) -> NewMessage {
        NewMessage::for_tests(id, recipients)
    }

    fn mailboxes(depths: &[(&str, u64)]) -> HashMap<DeviceAddress, Mailbox> {
        depths
            .iter()
            .zip(1..)
            .map(|((name, depth), row)| {
                (
                    address(name, 1),
                    Mailbox {
                        device: row,
                        last_delivery_id: 10,
                        depth: *depth,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn a_message_is_stored_for_all_recipients_or_none() {
        let mut boxes = mailboxes(&[("bob", 0), ("carol", 2)]);
        let batch = [
            message(1, vec![address("bob", 1), address("carol", 1)]),
            message(2, vec![address("bob", 1)]),
            message(3, vec![address("bob", 1), address("dave", 1)]),
        ];
        let plan = plan_enqueue(&batch, &mut boxes, &mut HashSet::new(), 2);
        assert_eq!(
            plan.outcomes,
            vec![
                EnqueueOutcome::MailboxFull(address("carol", 1)),
                EnqueueOutcome::Stored {
                    new: vec![address("bob", 1)],
                    duplicates: 0
                },
                EnqueueOutcome::UnknownRecipient(address("dave", 1)),
            ]
        );
        assert_eq!(plan.bodies.len(), 1);
        assert_eq!(plan.entries.len(), 1);
        assert_eq!(plan.entries[0].delivery_id, 11);
        assert_eq!(plan.counters, vec![(1, 11)]);
    }

    #[test]
    fn duplicates_within_a_batch_and_within_a_message_are_counted_once() {
        let mut boxes = mailboxes(&[("bob", 0)]);
        let batch = [
            message(1, vec![address("bob", 1), address("bob", 1)]),
            message(1, vec![address("bob", 1)]),
        ];
        let plan = plan_enqueue(&batch, &mut boxes, &mut HashSet::new(), 10);
        assert_eq!(
            plan.outcomes,
            vec![
                EnqueueOutcome::Stored {
                    new: vec![address("bob", 1)],
                    duplicates: 1
                },
                EnqueueOutcome::Stored {
                    new: vec![],
                    duplicates: 1
                },
            ]
        );
        assert_eq!(plan.bodies.len(), 1);
    }

    #[test]
    fn corrupt_columns_are_errors() {
        assert!(matches!(col_u32(-1, "x"), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            col_u32(i64::from(u32::MAX) + 1, "x"),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(col_u64(-1, "x"), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            col_array::<33>(&[5; 32], "x"),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            col_kyber(&[8; 100], "x"),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            col_ciphertext_type(4),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            decode_message_ids(&[0; 17]),
            Err(StoreError::Corrupt(_))
        ));
        let ids = [[1; 16], [2; 16]];
        assert_eq!(
            decode_message_ids(&encode_message_ids(&ids)).ok(),
            Some(ids.to_vec())
        );
        assert_eq!(db_int(u64::MAX), i64::MAX);
    }
}
