//! The messaging half of the server's storage: accounts and devices, the prekey directory,
//! mailboxes (with delivery receipts), groups, and blob metadata.
//!
//! [`MessageStore`] is implemented by the SQLite backend (embedded default) and the PostgreSQL
//! backend (several nodes); `tests/store_conformance.rs` runs one suite against both. Every
//! method is one transaction: it happens entirely or not at all, and a crash never leaves half
//! of it behind.

use std::future::Future;
use std::sync::Arc;

use confianza_api::{
    BlobId, CiphertextType, ClientMessageId, DeliveryReceipt, EcPublicKey, Envelope, GroupId,
    GroupMember, GroupSummary, KyberPreKey, NoisePublicKey, OneTimePreKey, PreKeyCount,
    PreKeyUpload, SignedPreKey,
};

use super::StoreError;

/// One device of one account: `alice@example.org` device 1.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceAddress {
    pub address: String,
    pub device_id: u32,
}

/// What enrollment records for a new device; the store assigns the device id (1 for an
/// account's first device, then the next free one).
#[derive(Debug, Clone)]
pub struct NewDevice {
    pub address: String,
    pub registration_id: u32,
    pub noise_key: NoisePublicKey,
    pub identity_key: EcPublicKey,
    /// DER of the identity certificate the CA issued for `identity_key`.
    pub certificate: Vec<u8>,
    pub now_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub address: DeviceAddress,
    pub registration_id: u32,
    pub noise_key: NoisePublicKey,
    pub identity_key: EcPublicKey,
    pub certificate: Vec<u8>,
    pub created_at_ms: u64,
    pub last_seen_ms: u64,
}

/// The keys one bundle fetch hands out. The one-time prekey and a one-time Kyber prekey are
/// removed from the directory in the same transaction that reads them, so no key is ever
/// handed out twice (also under concurrent fetches on several nodes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedPreKeys {
    pub registration_id: u32,
    pub identity_key: EcPublicKey,
    pub certificate: Vec<u8>,
    pub signed_pre_key: SignedPreKey,
    /// `None` when the device has run out.
    pub one_time_pre_key: Option<OneTimePreKey>,
    pub kyber_pre_key: KyberPreKey,
    /// The one-time Kyber prekeys ran out and the last-resort key was served.
    pub kyber_is_last_resort: bool,
}

/// One ciphertext for one or more recipient devices. A group send is one `NewMessage` with every
/// member device as a recipient: the body is stored once and referenced per recipient.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub sender: DeviceAddress,
    pub ciphertext_type: CiphertextType,
    pub body: Vec<u8>,
    pub client_message_id: ClientMessageId,
    pub group_id: Option<GroupId>,
    pub server_timestamp_ms: u64,
    /// Deleted unread after this time (30 days after acceptance by default).
    pub expires_at_ms: u64,
    pub recipients: Vec<DeviceAddress>,
}

impl NewMessage {
    /// The envelope a recipient is pushed.
    pub fn envelope(&self) -> Envelope {
        Envelope {
            sender: self.sender.address.clone(),
            sender_device_id: self.sender.device_id,
            ciphertext_type: self.ciphertext_type,
            body: self.body.clone(),
            client_message_id: self.client_message_id,
            server_timestamp_ms: self.server_timestamp_ms,
            group_id: self.group_id,
        }
    }

    /// A one-byte message `id` (its body and client message id) from `alice` device 1: the
    /// fixture of the unit tests.
    #[cfg(test)]
    pub(crate) fn for_tests(id: u8, recipients: Vec<DeviceAddress>) -> Self {
        Self {
            sender: DeviceAddress {
                address: "alice@example.org".to_owned(),
                device_id: 1,
            },
            ciphertext_type: CiphertextType::Whisper,
            body: vec![id],
            client_message_id: [id; 16],
            group_id: None,
            server_timestamp_ms: 1,
            expires_at_ms: 2,
            recipients,
        }
    }
}

/// What happened to one [`NewMessage`] of an [`MessageStore::enqueue`] batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnqueueOutcome {
    /// Stored; `new` lists the recipients it was newly queued for (the ones to wake up), and
    /// `duplicates` counts the recipients that already had a message from this sender device
    /// with this client message id.
    Stored {
        new: Vec<DeviceAddress>,
        duplicates: u32,
    },
    /// Nothing was stored for any recipient: this one's queue holds the limit.
    MailboxFull(DeviceAddress),
    /// Nothing was stored: this recipient device does not exist.
    UnknownRecipient(DeviceAddress),
}

/// A delivery receipt for the sender of acknowledged messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReceipt {
    pub to: DeviceAddress,
    pub receipt: DeliveryReceipt,
    pub expires_at_ms: u64,
}

/// One entry of a device's mailbox, in the order it was queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// Strictly increasing per device; what the device acknowledges.
    pub delivery_id: u64,
    pub item: QueuedItem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueuedItem {
    Envelope(Envelope),
    Receipt(DeliveryReceipt),
}

/// An entry a batch just stored in `recipient`'s mailbox
/// ([`MessageStore::enqueue_returning`], [`MessageStore::enqueue_receipts_returning`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    pub recipient: DeviceAddress,
    pub entry: Queued,
}

/// An acknowledged envelope, for the delivery receipt owed to its sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledged {
    pub sender: DeviceAddress,
    pub client_message_id: ClientMessageId,
}

/// What one device acknowledged, in a [`WriteBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckRequest {
    pub device: DeviceAddress,
    pub delivery_ids: Vec<u64>,
    /// When the delivery receipts owed for these entries expire unread.
    pub receipt_expires_at_ms: u64,
}

/// Which devices take the delivery receipts a batch owes them straight from the server's
/// memory instead of from their mailbox: the ones connected to this node, which are pushed the
/// receipt at once and acknowledge it, so storing it would be a write and a delete for nothing.
/// A receipt pushed from memory is stored after all if its device goes before acknowledging
/// it; a crash loses it, which costs the sender a "delivered" mark, never a message.
#[derive(Clone)]
pub struct ReceiptRoute(Arc<dyn Fn(&DeviceAddress) -> bool + Send + Sync>);

impl ReceiptRoute {
    /// Receipts for the devices `connected` accepts are handed back unstored.
    pub fn new(connected: impl Fn(&DeviceAddress) -> bool + Send + Sync + 'static) -> Self {
        Self(Arc::new(connected))
    }
}

impl std::fmt::Debug for ReceiptRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiptRoute").finish_non_exhaustive()
    }
}

/// Everything the server's single writer commits at once ([`MessageStore::commit_batch`]):
/// acknowledgements first (they free queue room the sends may need), the delivery receipts
/// they owe, then the sends.
#[derive(Debug, Clone, Default)]
pub struct WriteBatch {
    pub acks: Vec<AckRequest>,
    /// The receipts' server timestamp.
    pub now_ms: u64,
    pub sends: Vec<NewMessage>,
    /// The per-device queue limit for the sends ([`MessageStore::enqueue`]).
    pub max_queue: u64,
    /// Receipts to store besides the ones the acknowledgements owe: receipts that were to be
    /// pushed from memory and could not be (their device went first).
    pub receipts: Vec<NewReceipt>,
    /// The devices whose owed receipts come back unstored in
    /// [`BatchOutcome::pushed_receipts`]; `None`: every receipt is stored.
    pub push_receipts: Option<ReceiptRoute>,
}

impl WriteBatch {
    /// Splits the receipts `owed` by the acknowledgements (see [`WriteBatch::push_receipts`])
    /// and adds [`WriteBatch::receipts`] to the ones to store: `(to store, to push)`.
    pub fn route_receipts(
        push_receipts: Option<&ReceiptRoute>,
        owed: Vec<NewReceipt>,
        carried: Vec<NewReceipt>,
    ) -> (Vec<NewReceipt>, Vec<NewReceipt>) {
        let (mut stored, pushed) = match push_receipts {
            Some(ReceiptRoute(connected)) => owed
                .into_iter()
                .partition(|receipt| !connected(&receipt.to)),
            None => (owed, Vec::new()),
        };
        stored.extend(carried);
        (stored, pushed)
    }
}

/// What [`MessageStore::commit_batch`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// The acknowledgements were applied. `false` when deleting them failed (the store logged
    /// why): the entries stay queued and come again on the device's next connection.
    pub acknowledged: bool,
    /// The devices sent a delivery receipt (empty if storing the receipts failed: a lost
    /// receipt costs a sender a "delivered" mark, never a message, so it is logged and the
    /// batch goes on).
    pub receipts_to: Vec<DeviceAddress>,
    /// One outcome per send, in order.
    pub outcomes: Vec<EnqueueOutcome>,
    /// The receipts and messages stored, as [`MessageStore::enqueue_returning`] returns them
    /// (receipts first; delivery ids consecutive per device); `None`: the backend cannot tell.
    pub stored: Option<Vec<StoredEntry>>,
    /// The receipts owed to devices [`WriteBatch::push_receipts`] accepts, not stored: the
    /// caller pushes them (or stores them in a later batch).
    pub pushed_receipts: Vec<NewReceipt>,
}

/// The delivery receipts `device` owes for the envelopes it acknowledged: one per sender
/// device (none for its own sends), at most [`confianza_api::limits::MAX_RECEIPT_IDS`] ids each,
/// senders in address order.
pub fn receipts_owed(
    device: &DeviceAddress,
    acknowledged: Vec<Acknowledged>,
    expires_at_ms: u64,
    now_ms: u64,
) -> Vec<NewReceipt> {
    let mut by_sender: std::collections::BTreeMap<DeviceAddress, Vec<ClientMessageId>> =
        std::collections::BTreeMap::new();
    for entry in acknowledged {
        if entry.sender != *device {
            by_sender
                .entry(entry.sender)
                .or_default()
                .push(entry.client_message_id);
        }
    }
    let mut receipts = Vec::with_capacity(by_sender.len());
    for (sender, ids) in by_sender {
        for chunk in ids.chunks(confianza_api::limits::MAX_RECEIPT_IDS) {
            receipts.push(NewReceipt {
                to: sender.clone(),
                receipt: DeliveryReceipt {
                    recipient: device.address.clone(),
                    recipient_device_id: device.device_id,
                    client_message_ids: chunk.to_vec(),
                    server_timestamp_ms: now_ms,
                },
                expires_at_ms,
            });
        }
    }
    receipts
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    pub id: GroupId,
    pub name: String,
    pub revision: u64,
    pub members: Vec<GroupMember>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRecord {
    pub id: BlobId,
    pub owner: String,
    pub size: u64,
    /// Bytes stored so far; an upload resumes here.
    pub received: u64,
    pub expires_at_ms: u64,
}

impl BlobRecord {
    pub fn complete(&self) -> bool {
        self.received == self.size
    }
}

/// What the unexpired blobs of one account hold, against its quota
/// ([`MessageStore::blob_usage`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlobUsage {
    /// How many blobs.
    pub count: u64,
    /// The sum of their declared sizes: an upload in progress counts in full, since its
    /// bytes may still come.
    pub bytes: u64,
}

/// What one account may hold in unexpired blobs: at most `count` blobs whose declared sizes
/// add up to at most `bytes` ([`MessageStore::create_blob_within_quota`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobQuota {
    /// Sum of the declared sizes.
    pub bytes: u64,
    /// Number of blobs.
    pub count: u64,
}

/// A new blob does not fit its owner's [`BlobQuota`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuotaExceeded {
    /// The bytes would pass the limit.
    #[error(
        "the account's unexpired blobs hold {used} of its {limit} bytes: {requested} more do not \
         fit until some expire"
    )]
    Bytes {
        used: u64,
        requested: u64,
        limit: u64,
    },
    /// The account holds as many blobs as allowed.
    #[error("the account holds {used} unexpired blobs, the most it may: wait until some expire")]
    Count { used: u64, limit: u64 },
}

impl BlobQuota {
    /// Whether a new blob of `size` bytes fits beside `usage`. Backends decide
    /// [`MessageStore::create_blob_within_quota`] with it, so every backend applies one rule.
    pub fn admit(&self, usage: BlobUsage, size: u64) -> Result<(), QuotaExceeded> {
        if usage.count >= self.count {
            return Err(QuotaExceeded::Count {
                used: usage.count,
                limit: self.count,
            });
        }
        if usage.bytes.saturating_add(size) > self.bytes {
            return Err(QuotaExceeded::Bytes {
                used: usage.bytes,
                requested: size,
                limit: self.bytes,
            });
        }
        Ok(())
    }
}

/// Storage for the messaging service. See the module docs.
pub trait MessageStore: Send + Sync + 'static {
    // ---- accounts and devices ----

    /// Records a new device. `Conflict` if the Noise key is already registered.
    fn enroll(&self, device: NewDevice) -> impl Future<Output = Result<Device, StoreError>> + Send;
    fn device_by_noise_key(
        &self,
        key: &NoisePublicKey,
    ) -> impl Future<Output = Result<Option<Device>, StoreError>> + Send;
    /// Every device of an account, by device id; empty when the account does not exist.
    fn devices(
        &self,
        address: &str,
    ) -> impl Future<Output = Result<Vec<Device>, StoreError>> + Send;
    /// Replaces a device's certificate (renewal). `NotFound` for an unknown device.
    fn set_certificate(
        &self,
        device: &DeviceAddress,
        certificate: Vec<u8>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Records that the device was seen at `now_ms`. `NotFound` for an unknown device.
    fn touch(
        &self,
        device: &DeviceAddress,
        now_ms: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    // ---- prekey directory ----

    /// Adds one-time keys (a key id already present is `Conflict`, nothing stored) and replaces
    /// the signed prekey and the Kyber last-resort key when given.
    fn upload_pre_keys(
        &self,
        device: &DeviceAddress,
        upload: &PreKeyUpload,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Claims a bundle's keys atomically (see [`ClaimedPreKeys`]). `None` if the device does
    /// not exist or has never uploaded a signed prekey and a Kyber last-resort key.
    fn claim_pre_keys(
        &self,
        device: &DeviceAddress,
    ) -> impl Future<Output = Result<Option<ClaimedPreKeys>, StoreError>> + Send;
    /// The device's remaining stock. `NotFound` for an unknown device.
    fn pre_key_count(
        &self,
        device: &DeviceAddress,
    ) -> impl Future<Output = Result<PreKeyCount, StoreError>> + Send;

    // ---- mailboxes ----

    /// Stores a batch durably in one commit (the caller batches concurrent sends so that
    /// durability stays fast), one outcome per message in order. A message is stored for all
    /// its recipients or for none. `max_queue` is the per-device queue limit: a recipient whose
    /// queue (messages and receipts) already holds `max_queue` entries refuses the message.
    /// Deduplication is against the entries still queued: once the recipient has acknowledged
    /// a message, the same client message id is a new message (the client's session drops
    /// the replay).
    fn enqueue(
        &self,
        messages: &[NewMessage],
        max_queue: u64,
    ) -> impl Future<Output = Result<Vec<EnqueueOutcome>, StoreError>> + Send;
    /// Queues delivery receipts in the same sequence as messages, not subject to the queue
    /// limit; a receipt for a device that no longer exists is dropped.
    fn enqueue_receipts(
        &self,
        receipts: &[NewReceipt],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// [`MessageStore::enqueue`], also returning every entry it stored with its delivery id
    /// (in delivery-id order per recipient), so the server can hand new mail straight to a
    /// connected recipient instead of reading the mailbox back. Taking the batch by value
    /// spares a backend that moves it to another thread a copy.
    ///
    /// `None` for the entries means the backend cannot tell (the default): recipients then
    /// read their mailboxes with [`MessageStore::pending`]. A backend returning them must
    /// give each device's entries consecutive delivery ids (one above the device's previous
    /// entry), which is how a reader tells that nothing was stored in between.
    fn enqueue_returning(
        &self,
        messages: Vec<NewMessage>,
        max_queue: u64,
    ) -> impl Future<Output = Result<(Vec<EnqueueOutcome>, Option<Vec<StoredEntry>>), StoreError>> + Send
    {
        async move { Ok((self.enqueue(&messages, max_queue).await?, None)) }
    }
    /// [`MessageStore::enqueue_receipts`], returning the receipts stored as
    /// [`MessageStore::enqueue_returning`] returns messages (`None`: the backend cannot tell).
    fn enqueue_receipts_returning(
        &self,
        receipts: Vec<NewReceipt>,
    ) -> impl Future<Output = Result<Option<Vec<StoredEntry>>, StoreError>> + Send {
        async move {
            self.enqueue_receipts(&receipts).await?;
            Ok(None)
        }
    }
    /// Up to `limit` entries with a delivery id above `after`, oldest first.
    fn pending(
        &self,
        device: &DeviceAddress,
        after: u64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Queued>, StoreError>> + Send;
    /// Deletes acknowledged entries (unknown ids are ignored: acks may repeat after a
    /// reconnect) and returns the envelopes among them in delivery order, for delivery receipts.
    /// Only `device`'s own entries go; a body goes with the last entry referencing it.
    fn acknowledge(
        &self,
        device: &DeviceAddress,
        delivery_ids: &[u64],
    ) -> impl Future<Output = Result<Vec<Acknowledged>, StoreError>> + Send;
    /// [`MessageStore::acknowledge`] for several devices at once (a writer batch): one result
    /// per item, in order. Backends override it to use one transaction for the whole batch;
    /// the default runs the items one after the other.
    fn acknowledge_batch(
        &self,
        acks: &[(DeviceAddress, Vec<u64>)],
    ) -> impl Future<Output = Result<Vec<Vec<Acknowledged>>, StoreError>> + Send {
        async move {
            let mut all = Vec::with_capacity(acks.len());
            for (device, delivery_ids) in acks {
                all.push(self.acknowledge(device, delivery_ids).await?);
            }
            Ok(all)
        }
    }
    /// Commits a writer batch: deletes the acknowledged entries, stores the delivery receipts
    /// they owe ([`receipts_owed`]) and the sends, returning what was stored as
    /// [`MessageStore::enqueue_returning`] does. A failure of the acknowledgements or of the
    /// receipts is logged and leaves the rest of the batch going (see [`BatchOutcome`]); a
    /// failure of the sends is the error, and then no send is stored.
    ///
    /// The default runs [`MessageStore::acknowledge_batch`],
    /// [`MessageStore::enqueue_receipts_returning`] and [`MessageStore::enqueue_returning`] one
    /// after the other (three transactions). A backend overrides it to commit once: every
    /// commit writes the pages it dirtied to the log again.
    fn commit_batch(
        &self,
        batch: WriteBatch,
    ) -> impl Future<Output = Result<BatchOutcome, StoreError>> + Send {
        async move {
            let WriteBatch {
                acks,
                now_ms,
                sends,
                max_queue,
                receipts: carried,
                push_receipts,
            } = batch;
            let mut outcome = BatchOutcome {
                acknowledged: acks.is_empty(),
                stored: Some(Vec::new()),
                ..BatchOutcome::default()
            };
            let mut owed = Vec::new();
            if !acks.is_empty() {
                let list: Vec<(DeviceAddress, Vec<u64>)> = acks
                    .iter()
                    .map(|ack| (ack.device.clone(), ack.delivery_ids.clone()))
                    .collect();
                match self.acknowledge_batch(&list).await {
                    Ok(all) if all.len() == acks.len() => {
                        outcome.acknowledged = true;
                        owed = acks
                            .iter()
                            .zip(all)
                            .flat_map(|(ack, acknowledged)| {
                                receipts_owed(
                                    &ack.device,
                                    acknowledged,
                                    ack.receipt_expires_at_ms,
                                    now_ms,
                                )
                            })
                            .collect();
                    }
                    Ok(all) => tracing::error!(
                        expected = acks.len(),
                        got = all.len(),
                        "the store answered an acknowledgement batch with the wrong number of \
                         results"
                    ),
                    Err(error) => tracing::error!(
                        %error,
                        devices = acks.len(),
                        "deleting acknowledged entries failed"
                    ),
                }
            }
            let (receipts, pushed) =
                WriteBatch::route_receipts(push_receipts.as_ref(), owed, carried);
            outcome.pushed_receipts = pushed;
            if !receipts.is_empty() {
                let to: Vec<DeviceAddress> = receipts
                    .iter()
                    .map(|r| r.to.clone())
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                match self.enqueue_receipts_returning(receipts).await {
                    Ok(stored) => {
                        outcome.receipts_to = to;
                        outcome.stored = stored;
                    }
                    Err(error) => {
                        tracing::error!(%error, "storing delivery receipts failed");
                    }
                }
            }
            if !sends.is_empty() {
                let (outcomes, stored) = self.enqueue_returning(sends, max_queue).await?;
                outcome.outcomes = outcomes;
                outcome.stored = match (outcome.stored, stored) {
                    (Some(mut receipts), Some(messages)) => {
                        receipts.extend(messages);
                        Some(receipts)
                    }
                    _ => None,
                };
            }
            Ok(outcome)
        }
    }
    fn queue_depth(
        &self,
        device: &DeviceAddress,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Deletes mailbox entries and receipts whose expiry is at or before `now_ms` (and bodies
    /// nobody references any more); returns how many entries went.
    fn expire_messages(&self, now_ms: u64) -> impl Future<Output = Result<u64, StoreError>> + Send;

    // ---- groups ----

    /// Creates a group with `creator` as its admin and `members` as plain members (revision 1).
    /// `NotFound` if a member account does not exist; `Conflict` if the id is taken or the group
    /// would exceed [`confianza_api::limits::MAX_GROUP_MEMBERS`].
    fn create_group(
        &self,
        id: GroupId,
        name: &str,
        creator: &str,
        members: &[String],
    ) -> impl Future<Output = Result<GroupRecord, StoreError>> + Send;
    /// `Forbidden` unless `actor` is an admin; `NotFound` for an unknown group or account;
    /// `Conflict` past [`confianza_api::limits::MAX_GROUP_MEMBERS`]. Present members are
    /// skipped; the revision is bumped when someone joined.
    fn add_members(
        &self,
        id: GroupId,
        actor: &str,
        members: &[String],
    ) -> impl Future<Output = Result<GroupRecord, StoreError>> + Send;
    /// `Forbidden` unless `actor` is an admin; non-members are skipped; the revision is bumped
    /// when someone left. When the last admin goes, the earliest remaining member becomes
    /// admin; when the last member goes, the group is deleted (the record returned has no
    /// members).
    fn remove_members(
        &self,
        id: GroupId,
        actor: &str,
        members: &[String],
    ) -> impl Future<Output = Result<GroupRecord, StoreError>> + Send;
    /// `Forbidden` if `member` is not in the group; bumps the revision. Admin succession and
    /// deletion as in [`MessageStore::remove_members`].
    fn leave_group(
        &self,
        id: GroupId,
        member: &str,
    ) -> impl Future<Output = Result<GroupRecord, StoreError>> + Send;
    fn group(
        &self,
        id: GroupId,
    ) -> impl Future<Output = Result<Option<GroupRecord>, StoreError>> + Send;
    /// The groups `address` is a member of, by group id, at most
    /// [`confianza_api::limits::MAX_GROUPS_PER_LIST`].
    fn groups_of(
        &self,
        address: &str,
    ) -> impl Future<Output = Result<Vec<GroupSummary>, StoreError>> + Send;

    // ---- blob metadata (the bytes live in object storage) ----

    /// Records a new upload. `Conflict` if the id is taken.
    fn create_blob(&self, blob: &BlobRecord)
    -> impl Future<Output = Result<(), StoreError>> + Send;
    fn blob(
        &self,
        id: BlobId,
    ) -> impl Future<Output = Result<Option<BlobRecord>, StoreError>> + Send;
    /// Moves `received` from `from` to `to` (compare-and-set): `Conflict` if it is not at
    /// `from`, so two racing uploads of the same chunk cannot both succeed, or if `to` is below
    /// `from` or above the size; `NotFound` for an unknown blob.
    fn advance_blob(
        &self,
        id: BlobId,
        from: u64,
        to: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Deletes blob records whose expiry is at or before `now_ms` and returns their ids (their
    /// objects are deleted next).
    fn expire_blobs(
        &self,
        now_ms: u64,
    ) -> impl Future<Output = Result<Vec<BlobId>, StoreError>> + Send;
    /// Records a new upload if its owner's blobs expiring after `now_ms`, with this one, stay
    /// within `quota` ([`BlobQuota::admit`]); otherwise records nothing and answers the
    /// refusal. The usage check and the insert are one atomic step, also against creations on
    /// other nodes sharing the database, so concurrent creations never take an account past
    /// its quota. `Conflict` if the id is taken.
    fn create_blob_within_quota(
        &self,
        blob: &BlobRecord,
        quota: BlobQuota,
        now_ms: u64,
    ) -> impl Future<Output = Result<Result<(), QuotaExceeded>, StoreError>> + Send;
    /// What the blobs of `owner` expiring after `now_ms` hold, for the per-account blob quota.
    /// Backends answer with one query. The default cannot count and says so: a backend that
    /// does not implement it refuses blob creation instead of ignoring the quota.
    fn blob_usage(
        &self,
        owner: &str,
        now_ms: u64,
    ) -> impl Future<Output = Result<BlobUsage, StoreError>> + Send {
        let _ = (owner, now_ms);
        std::future::ready(Err(StoreError::Database(sqlx::Error::Protocol(
            "this message store does not count blob usage".to_owned(),
        ))))
    }
}
