//! Delivery: the pump that pushes a connected device's mailbox (backlog first, oldest first,
//! then new mail as the bus wakes it) within a window of unacknowledged deliveries, and the
//! handling of acknowledgements (delete, then queue delivery receipts for the senders).
//!
//! The pump reads the mailbox only when there may be something new (its backlog at start, a
//! wake-up from the bus, or a read that filled its limit) **and** the window has room: an
//! acknowledgement that frees room in a drained mailbox costs no read.
//!
//! New mail for a device connected to this node comes **by hand**: the writer gives the
//! entries it just stored, with their delivery ids, to the device's [`Inbox`] (registered in
//! the writer's [`Handoff`] table), and the pump pushes them without reading the mailbox when
//! they follow on from what it pushed last (delivery ids of a device are consecutive). On a
//! gap, an overflowing inbox or a window too full to take them all, the pump reads the
//! mailbox instead, so a hand-off only ever saves a read: the mailbox stays the truth.
//!
//! Delivery receipts owed to a device connected to this node come by hand too, **from memory
//! only**: the writer does not store them ([`crate::store::WriteBatch::push_receipts`]), the
//! pump pushes them with ids above [`MEMORY_RECEIPT_IDS`] (the window keeps them until they are
//! acknowledged), and whatever of them is unacknowledged or not yet taken when the pump stops
//! goes back to the writer, which stores it for the device's next connection. A receipt the
//! inbox cannot take goes back to the writer the same way. A crash loses the receipts held in
//! memory: a sender misses a "delivered" mark, never a message.
//!
//! Acknowledgements are applied by the writer after the reader has moved on; a new connection's
//! pump waits for the writer's queue ([`super::writer::Writer::barrier`]) before its first read,
//! so what a device acknowledged on its previous connection to this node does not come again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use confianza_api::{Delivery, DeliveryItem, ErrorCode, Notice, ServerFrame};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::error::Failure;
use super::events::Registration;
use super::limits::{MAX_DELIVERIES_IN_FLIGHT, MAX_HANDED_OFF};
use super::session::{Delivering, InFlight, MEMORY_RECEIPT_IDS, Session, lock_window};
use super::state::Shared;
use crate::store::{DeviceAddress, MessageStore, NewReceipt, Queued, QueuedItem, StoredEntry};

/// Entries read from the mailbox per query.
const PENDING_BATCH: usize = 128;

/// Pause before retrying after the store failed to read a mailbox.
const RETRY_AFTER_STORE_ERROR: Duration = Duration::from_secs(1);

/// Entries handed to one connected device's pump, not taken yet.
#[derive(Debug, Default)]
struct Handed {
    entries: Vec<Queued>,
    /// Entries were left out (the inbox was full): the pump must read its mailbox.
    overflowed: bool,
    /// Delivery receipts to push from memory (stored nowhere).
    receipts: Vec<NewReceipt>,
    /// The pump has stopped: receipts offered now go back to the writer.
    closed: bool,
}

/// Where the writer hands a connected device's new entries (see the module docs).
#[derive(Debug, Default)]
pub struct Inbox {
    handed: Mutex<Handed>,
    /// Woken when entries (or an overflow) were handed over.
    ready: Notify,
}

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, Handed> {
        // Each update is one push or one take: a panicked holder leaves it consistent.
        self.handed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds `entries` (or, past [`MAX_HANDED_OFF`], marks the inbox overflowed) and wakes
    /// the pump.
    fn offer(&self, entries: impl ExactSizeIterator<Item = Queued>) {
        {
            let mut handed = self.lock();
            if handed.overflowed || handed.entries.len() + entries.len() > MAX_HANDED_OFF {
                handed.overflowed = true;
            } else {
                handed.entries.extend(entries);
            }
        }
        self.ready.notify_one();
    }

    /// Adds receipts to push from memory and wakes the pump; returns the ones it cannot take
    /// (the pump has stopped or holds [`MAX_HANDED_OFF`] already), to be stored instead.
    fn offer_receipts(&self, receipts: Vec<NewReceipt>) -> Vec<NewReceipt> {
        {
            let mut handed = self.lock();
            if handed.closed || handed.receipts.len() + receipts.len() > MAX_HANDED_OFF {
                return receipts;
            }
            handed.receipts.extend(receipts);
        }
        self.ready.notify_one();
        Vec::new()
    }

    /// Takes at most `room` of the receipts handed over; the rest wait for room.
    fn take_receipts(&self, room: usize) -> Vec<NewReceipt> {
        let mut handed = self.lock();
        let split = room.min(handed.receipts.len());
        let rest = handed.receipts.split_off(split);
        std::mem::replace(&mut handed.receipts, rest)
    }

    /// Marks the pump stopped and returns the receipts it never took.
    fn close(&self) -> Vec<NewReceipt> {
        let mut handed = self.lock();
        handed.closed = true;
        std::mem::take(&mut handed.receipts)
    }

    /// Takes what was handed over: the entries that follow on from `cursor` without a gap,
    /// at most `room` of them, and whether the mailbox must be read for the rest (a gap, an
    /// overflow, or more than `room`). Entries at or below `cursor` were pushed already (a
    /// mailbox read raced the hand-off) and are dropped.
    fn take(&self, cursor: u64, room: usize) -> (Vec<Queued>, bool) {
        let (mut entries, overflowed) = {
            let mut handed = self.lock();
            (
                std::mem::take(&mut handed.entries),
                std::mem::take(&mut handed.overflowed),
            )
        };
        entries.sort_unstable_by_key(|entry| entry.delivery_id);
        entries.retain(|entry| entry.delivery_id > cursor);
        let Some(next) = cursor.checked_add(1) else {
            return (Vec::new(), overflowed || !entries.is_empty());
        };
        let follow_on = entries
            .iter()
            .zip(next..)
            .take_while(|(entry, expected)| entry.delivery_id == *expected)
            .count();
        let usable = follow_on.min(room);
        let read_needed = overflowed || usable < entries.len();
        entries.truncate(usable);
        (entries, read_needed)
    }
}

/// The inboxes of the devices whose pumps run on this node, by device; the writer's side of
/// the hand-off. A newer connection of a device replaces the older one's inbox.
#[derive(Debug, Default)]
pub struct Handoff {
    inboxes: Mutex<HashMap<DeviceAddress, Arc<Inbox>>>,
}

impl Handoff {
    fn lock(&self) -> MutexGuard<'_, HashMap<DeviceAddress, Arc<Inbox>>> {
        // Each update is one insert or remove: a panicked holder leaves it consistent.
        self.inboxes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a pump for `device`; it is detached when the returned guard drops.
    fn attach(self: &Arc<Self>, device: &DeviceAddress) -> Attached {
        let inbox = Arc::new(Inbox::default());
        self.lock().insert(device.clone(), inbox.clone());
        Attached {
            handoff: self.clone(),
            device: device.clone(),
            inbox,
        }
    }

    /// Whether `device` has a pump here (and so takes its receipts from memory).
    pub fn is_attached(&self, device: &DeviceAddress) -> bool {
        self.lock().contains_key(device)
    }

    /// Hands receipts to the inboxes of their devices to push from memory; returns the ones
    /// no pump here took (the device went meanwhile, or its inbox is full), to be stored.
    pub fn deliver_receipts(&self, receipts: Vec<NewReceipt>) -> Vec<NewReceipt> {
        let mut by_device: HashMap<DeviceAddress, Vec<NewReceipt>> = HashMap::new();
        for receipt in receipts {
            by_device
                .entry(receipt.to.clone())
                .or_default()
                .push(receipt);
        }
        let mut left = Vec::new();
        let targets: Vec<(Vec<NewReceipt>, Option<Arc<Inbox>>)> = {
            let inboxes = self.lock();
            by_device
                .into_iter()
                .map(|(device, receipts)| (receipts, inboxes.get(&device).cloned()))
                .collect()
        };
        for (receipts, inbox) in targets {
            match inbox {
                Some(inbox) => left.extend(inbox.offer_receipts(receipts)),
                None => left.extend(receipts),
            }
        }
        left
    }

    /// Hands `entries` (just committed) to the inboxes of their recipients that have a pump
    /// here; returns those recipients, which need no other wake-up.
    pub fn deliver(&self, entries: Vec<StoredEntry>) -> Vec<DeviceAddress> {
        let mut by_recipient: HashMap<DeviceAddress, Vec<Queued>> = HashMap::new();
        for StoredEntry { recipient, entry } in entries {
            by_recipient.entry(recipient).or_default().push(entry);
        }
        let mut reached = Vec::with_capacity(by_recipient.len());
        let targets: Vec<(DeviceAddress, Vec<Queued>, Arc<Inbox>)> = {
            let inboxes = self.lock();
            by_recipient
                .into_iter()
                .filter_map(|(recipient, queued)| {
                    let inbox = inboxes.get(&recipient)?.clone();
                    Some((recipient, queued, inbox))
                })
                .collect()
        };
        for (recipient, queued, inbox) in targets {
            inbox.offer(queued.into_iter());
            reached.push(recipient);
        }
        reached
    }
}

/// A pump's registration in the [`Handoff`] table; removes it on drop unless a newer
/// connection of the device has replaced it.
struct Attached {
    handoff: Arc<Handoff>,
    device: DeviceAddress,
    inbox: Arc<Inbox>,
}

impl Drop for Attached {
    fn drop(&mut self) {
        let mut inboxes = self.handoff.lock();
        if inboxes
            .get(&self.device)
            .is_some_and(|current| Arc::ptr_eq(current, &self.inbox))
        {
            inboxes.remove(&self.device);
        }
    }
}

impl<S: MessageStore + Clone> Session<S> {
    /// Registers the device with the node and starts pushing its mailbox.
    pub(crate) fn start_delivery(&mut self) {
        let Some(device) = &self.device else {
            return;
        };
        if self.delivering.is_some() {
            return;
        }
        let registration = self.shared.registry.register(&device.address);
        let in_flight = InFlight::default();
        let stop = CancellationToken::new();
        let room = Arc::new(Notify::new());
        let displaced = registration.displaced.clone();
        let task = tokio::spawn(pump(
            self.shared.clone(),
            device.address.clone(),
            registration,
            in_flight.clone(),
            room.clone(),
            self.outbound.clone(),
            stop.clone(),
        ));
        self.delivering = Some(Delivering {
            in_flight,
            room,
            displaced,
            stop,
            task,
        });
    }

    /// Stops the pump and waits for it.
    pub(crate) async fn stop_delivery(&mut self) {
        if let Some(delivering) = self.delivering.take() {
            delivering.stop.cancel();
            if let Err(error) = delivering.task.await {
                tracing::error!(%error, "mailbox pump failed");
            }
        }
    }

    /// An `Ack` frame: the entries leave the window at once and the writer deletes them and
    /// queues the senders' receipts in its next batch. The reader does not wait for that
    /// commit: an entry whose deletion fails stays in the mailbox and comes again on the
    /// device's next connection (clients drop repeats).
    pub(crate) async fn acknowledge(&mut self, delivery_ids: Vec<u64>) -> Result<(), Failure> {
        let me = self.me()?;
        let Some(delivering) = &self.delivering else {
            return Err(Failure::close(
                ErrorCode::Unauthenticated,
                "no deliveries on this connection",
            ));
        };
        let (fresh, room_made): (Vec<u64>, bool) = {
            let mut window = lock_window(&delivering.in_flight);
            // The pump waits for room only with a full window (otherwise it reads or takes
            // what it needs at once), so only then is it worth waking.
            let was_full = window.in_flight() >= MAX_DELIVERIES_IN_FLIGHT;
            let never = delivery_ids.iter().find(|&&id| {
                if id > MEMORY_RECEIPT_IDS {
                    id > window.last_receipt_id
                } else {
                    id > window.highest_pushed
                }
            });
            if let Some(never) = never {
                return Err(Failure::close(
                    ErrorCode::Forbidden,
                    format!("delivery {never} was never pushed to this connection"),
                ));
            }
            // Ids pushed here but not in the window were acknowledged already: repeats are
            // harmless and ignored. A receipt pushed from memory is done with once
            // acknowledged: it was never stored.
            let before = window.in_flight();
            let fresh = delivery_ids
                .into_iter()
                .filter(|id| {
                    if *id > MEMORY_RECEIPT_IDS {
                        window.receipts.remove(id);
                        false
                    } else {
                        window.unacknowledged.remove(id)
                    }
                })
                .collect();
            (fresh, was_full && window.in_flight() < before)
        };
        if room_made {
            delivering.room.notify_one();
        }
        if fresh.is_empty() {
            return Ok(());
        }
        // Deleted and receipts queued by the writer, in its batch: nothing else takes the
        // database's write lock on the delivery path.
        self.shared
            .writer
            .acknowledge(me, fresh, self.shared.message_ttl)
            .await?;
        Ok(())
    }
}

/// Pushes `device`'s mailbox to the connection until `stop` (or the connection goes), then
/// hands the receipts from memory it could not deliver back to the writer to store.
async fn pump<S: MessageStore>(
    shared: Arc<Shared<S>>,
    device: DeviceAddress,
    registration: Registration,
    in_flight: InFlight,
    room: Arc<Notify>,
    outbound: mpsc::Sender<ServerFrame>,
    stop: CancellationToken,
) {
    // Attached before the backlog is read: whatever the writer commits from now on is handed
    // over, and whatever it committed before is in the backlog.
    let attached = shared.writer.handoff().attach(&device);
    let pump = Pump {
        shared,
        device,
        in_flight,
        inbox: attached.inbox.clone(),
        outbound,
        stop,
    };
    pump.run(registration, &room).await;
    // Closed before the window is emptied: a receipt offered from now on goes back to the
    // writer, and the window holds everything else pushed and not acknowledged.
    let mut left = pump.inbox.close();
    drop(attached);
    left.extend(
        lock_window(&pump.in_flight)
            .receipts
            .drain()
            .map(|(_, receipt)| receipt),
    );
    if !left.is_empty() && pump.shared.writer.store_receipts(left).await.is_err() {
        tracing::warn!(
            address = %pump.device.address,
            device = pump.device.device_id,
            "delivery receipts held in memory were lost: the server is stopping"
        );
    }
}

/// What a running pump works with.
struct Pump<S> {
    shared: Arc<Shared<S>>,
    device: DeviceAddress,
    in_flight: InFlight,
    inbox: Arc<Inbox>,
    outbound: mpsc::Sender<ServerFrame>,
    stop: CancellationToken,
}

impl<S: MessageStore> Pump<S> {
    /// Room left in the window, and the mailbox cursor.
    fn window(&self) -> (usize, u64) {
        let window = lock_window(&self.in_flight);
        (
            MAX_DELIVERIES_IN_FLIGHT.saturating_sub(window.in_flight()),
            window.highest_pushed,
        )
    }

    /// Returns when `stop` is cancelled or the connection has gone.
    async fn run(&self, mut registration: Registration, room: &Notify) {
        let Self {
            shared,
            device,
            in_flight,
            inbox,
            outbound,
            stop,
        } = self;
        let mailbox: Arc<Notify> = registration.mailbox.clone();
        // Acknowledgements from this device's earlier connection may still be queued in the
        // writer: apply them before reading the backlog, or their entries would come again.
        tokio::select! {
            () = stop.cancelled() => return,
            // `Closed`: the server is stopping; the reads below still serve what is stored.
            _ = shared.writer.barrier() => {}
        }
        let mut drained = false;
        // The backlog: anything may be waiting when the device connects.
        let mut unread = true;
        loop {
            let (free, cursor) = self.window();
            if unread && free > 0 {
                let limit = free.min(PENDING_BATCH);
                let limit_u32 = u32::try_from(limit).unwrap_or(u32::MAX);
                shared.metrics.mailbox_reads_total.inc();
                match shared.store.pending(device, cursor, limit_u32).await {
                    Ok(entries) => {
                        let fetched = entries.len();
                        if !push(in_flight, outbound, entries).await {
                            return;
                        }
                        shared.metrics.messages_out_total.inc_by(fetched as u64);
                        if fetched == limit {
                            // There may be more right behind (read once the window has room).
                            continue;
                        }
                        // Anything queued since this read wakes the mailbox again.
                        unread = false;
                        if !drained {
                            drained = true;
                            if outbound
                                .send(ServerFrame::Notice(Notice::MailboxDrained))
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                    }
                    Err(error) => {
                        tracing::error!(%error, address = %device.address, device = device.device_id, "reading a mailbox failed");
                        tokio::select! {
                            () = stop.cancelled() => return,
                            () = tokio::time::sleep(RETRY_AFTER_STORE_ERROR) => continue,
                        }
                    }
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = mailbox.notified() => unread = true,
                () = inbox.ready.notified() => {
                    // The window as it is now (a read above may have moved it).
                    let (space, cursor) = self.window();
                    let (entries, read_needed) = inbox.take(cursor, space);
                    unread |= read_needed;
                    let handed = entries.len();
                    if handed > 0 {
                        if !push(in_flight, outbound, entries).await {
                            return;
                        }
                        shared.metrics.messages_out_total.inc_by(handed as u64);
                        shared
                            .metrics
                            .deliveries_handed_off_total
                            .inc_by(handed as u64);
                    }
                    if !self.push_receipts().await {
                        return;
                    }
                }
                () = room.notified() => {
                    if !self.push_receipts().await {
                        return;
                    }
                }
                notice = registration.notices.recv() => {
                    if let Some(notice) = notice
                        && outbound.send(ServerFrame::Notice(notice)).await.is_err()
                    {
                        return;
                    }
                }
            }
        }
    }

    /// Pushes the receipts handed over from memory that fit in the window, each with the next
    /// id above [`MEMORY_RECEIPT_IDS`]. `false` once the connection has gone.
    async fn push_receipts(&self) -> bool {
        let (space, _) = self.window();
        let receipts = self.inbox.take_receipts(space);
        if receipts.is_empty() {
            return true;
        }
        let count = receipts.len() as u64;
        let frames: Vec<ServerFrame> = {
            let mut window = lock_window(&self.in_flight);
            receipts
                .into_iter()
                .map(|receipt| {
                    window.last_receipt_id += 1;
                    let id = window.last_receipt_id;
                    let item = DeliveryItem::Receipt(receipt.receipt.clone());
                    window.receipts.insert(id, receipt);
                    ServerFrame::Delivery(Delivery { id, item })
                })
                .collect()
        };
        for frame in frames {
            if self.outbound.send(frame).await.is_err() {
                return false;
            }
        }
        self.shared.metrics.messages_out_total.inc_by(count);
        self.shared.metrics.receipts_from_memory_total.inc_by(count);
        true
    }
}

/// Enters `entries` in the window, then queues them on the connection (in that order, so an
/// acknowledgement can never arrive for an id the window does not know). `false` once the
/// connection has gone.
async fn push(
    in_flight: &InFlight,
    outbound: &mpsc::Sender<ServerFrame>,
    entries: Vec<Queued>,
) -> bool {
    {
        let mut window = lock_window(in_flight);
        for entry in &entries {
            window.unacknowledged.insert(entry.delivery_id);
            window.highest_pushed = window.highest_pushed.max(entry.delivery_id);
        }
    }
    for entry in entries {
        let item = match entry.item {
            QueuedItem::Envelope(envelope) => DeliveryItem::Envelope(envelope),
            QueuedItem::Receipt(receipt) => DeliveryItem::Receipt(receipt),
        };
        let frame = ServerFrame::Delivery(Delivery {
            id: entry.delivery_id,
            item,
        });
        if outbound.send(frame).await.is_err() {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use confianza_api::DeliveryReceipt;

    use super::*;

    fn entry(delivery_id: u64) -> Queued {
        Queued {
            delivery_id,
            item: QueuedItem::Receipt(DeliveryReceipt {
                recipient: "bob@example.org".to_owned(),
                recipient_device_id: 1,
                client_message_ids: vec![[7; 16]],
                server_timestamp_ms: 1,
            }),
        }
    }

    fn ids(entries: &[Queued]) -> Vec<u64> {
        entries.iter().map(|entry| entry.delivery_id).collect()
    }

    #[test]
    fn entries_that_follow_on_are_taken_without_a_read() {
        let inbox = Inbox::default();
        inbox.offer([entry(12), entry(11)].into_iter());
        inbox.offer([entry(13)].into_iter());
        let (taken, read_needed) = inbox.take(10, MAX_DELIVERIES_IN_FLIGHT);
        assert_eq!(ids(&taken), [11, 12, 13]);
        assert!(!read_needed);
        // Taken once.
        let (again, read_needed) = inbox.take(13, MAX_DELIVERIES_IN_FLIGHT);
        assert!(again.is_empty());
        assert!(!read_needed);
    }

    #[test]
    fn a_gap_takes_the_entries_before_it_and_asks_for_a_read() {
        let inbox = Inbox::default();
        inbox.offer([entry(11), entry(13)].into_iter());
        let (taken, read_needed) = inbox.take(10, MAX_DELIVERIES_IN_FLIGHT);
        assert_eq!(ids(&taken), [11]);
        assert!(read_needed);

        // Nothing follows on from the cursor at all.
        inbox.offer([entry(15)].into_iter());
        let (taken, read_needed) = inbox.take(13, MAX_DELIVERIES_IN_FLIGHT);
        assert!(taken.is_empty());
        assert!(read_needed);
    }

    #[test]
    fn entries_a_read_pushed_already_are_dropped() {
        let inbox = Inbox::default();
        inbox.offer([entry(11), entry(12), entry(13)].into_iter());
        let (taken, read_needed) = inbox.take(12, MAX_DELIVERIES_IN_FLIGHT);
        assert_eq!(ids(&taken), [13]);
        assert!(!read_needed);
    }

    #[test]
    fn a_full_window_takes_what_fits_and_reads_the_rest_later() {
        let inbox = Inbox::default();
        inbox.offer([entry(1), entry(2), entry(3)].into_iter());
        let (taken, read_needed) = inbox.take(0, 2);
        assert_eq!(ids(&taken), [1, 2]);
        assert!(read_needed);
        let (taken, read_needed) = inbox.take(0, 0);
        assert!(taken.is_empty());
        assert!(
            !read_needed,
            "what did not fit was dropped: the mailbox has it"
        );
    }

    #[test]
    fn past_the_limit_the_inbox_overflows_into_a_read() {
        let inbox = Inbox::default();
        let limit = u64::try_from(MAX_HANDED_OFF).expect("small");
        inbox.offer((1..=limit).map(entry).collect::<Vec<_>>().into_iter());
        inbox.offer([entry(limit + 1)].into_iter());
        let (taken, read_needed) = inbox.take(0, MAX_HANDED_OFF);
        assert_eq!(taken.len(), MAX_HANDED_OFF);
        assert!(read_needed);
        // The overflow is reported once; later offers go by hand again.
        inbox.offer([entry(limit + 2)].into_iter());
        let (taken, read_needed) = inbox.take(limit + 1, MAX_HANDED_OFF);
        assert_eq!(ids(&taken), [limit + 2]);
        assert!(!read_needed);
    }

    fn receipt(to: &str, id: u8) -> NewReceipt {
        NewReceipt {
            to: DeviceAddress {
                address: to.to_owned(),
                device_id: 1,
            },
            receipt: DeliveryReceipt {
                recipient: "bob@example.org".to_owned(),
                recipient_device_id: 1,
                client_message_ids: vec![[id; 16]],
                server_timestamp_ms: 1,
            },
            expires_at_ms: 2,
        }
    }

    #[test]
    fn receipts_wait_for_room_and_come_back_once_the_pump_has_stopped() {
        let inbox = Inbox::default();
        assert!(
            inbox
                .offer_receipts(vec![receipt("alice", 1), receipt("alice", 2)])
                .is_empty()
        );
        assert_eq!(inbox.take_receipts(1), [receipt("alice", 1)]);
        assert!(inbox.take_receipts(0).is_empty());
        assert_eq!(inbox.close(), [receipt("alice", 2)]);
        // Offered after the pump stopped: handed back to be stored.
        assert_eq!(
            inbox.offer_receipts(vec![receipt("alice", 3)]),
            [receipt("alice", 3)]
        );
        assert!(inbox.take_receipts(MAX_HANDED_OFF).is_empty());
    }

    #[test]
    fn receipts_past_the_limit_or_without_a_pump_are_handed_back() {
        let handoff = Arc::new(Handoff::default());
        let alice = handoff.attach(&receipt("alice", 0).to);
        let full: Vec<NewReceipt> = (0..MAX_HANDED_OFF).map(|_| receipt("alice", 1)).collect();
        assert!(handoff.deliver_receipts(full).is_empty());
        assert!(handoff.is_attached(&receipt("alice", 0).to));
        assert!(!handoff.is_attached(&receipt("carol", 0).to));
        let left = handoff.deliver_receipts(vec![receipt("alice", 2), receipt("carol", 3)]);
        assert_eq!(left.len(), 2);
        assert!(left.contains(&receipt("alice", 2)) && left.contains(&receipt("carol", 3)));
        assert_eq!(alice.inbox.take_receipts(usize::MAX).len(), MAX_HANDED_OFF);
    }

    #[test]
    fn only_attached_devices_are_reached_and_a_newer_pump_keeps_its_inbox() {
        let handoff = Arc::new(Handoff::default());
        let bob = DeviceAddress {
            address: "bob@example.org".to_owned(),
            device_id: 1,
        };
        let carol = DeviceAddress {
            address: "carol@example.org".to_owned(),
            device_id: 1,
        };
        let old = handoff.attach(&bob);
        let new = handoff.attach(&bob);
        drop(old);
        let reached = handoff.deliver(vec![
            StoredEntry {
                recipient: bob.clone(),
                entry: entry(1),
            },
            StoredEntry {
                recipient: carol,
                entry: entry(1),
            },
        ]);
        assert_eq!(reached, [bob]);
        let (taken, _) = new.inbox.take(0, MAX_DELIVERIES_IN_FLIGHT);
        assert_eq!(ids(&taken), [1]);
        drop(new);
        assert!(handoff.lock().is_empty());
    }
}
