//! Delivery: the pump that pushes a connected device's mail (backlog first, oldest first,
//! then new mail as it comes) within a window of unacknowledged deliveries, and the handling
//! of acknowledgements.
//!
//! New mail for a device connected to this node comes **by hand** through its
//! [`Inbox`](super::inbox::Inbox): entries the writer just stored (with their delivery ids),
//! live messages the writer routes around the store ([`super::live`]), and delivery receipts,
//! all pushed from memory without reading the mailbox. The pump reads the mailbox only for its
//! backlog, for entries a hand-off does not cover (a gap in the delivery ids, an overflowing
//! inbox) and when the bus says another node stored something; a hand-off only ever saves a
//! read, the mailbox stays the truth for what is stored.
//!
//! What is pushed from memory gets an id above [`MEMORY_IDS`] and stays in the window until
//! the device acknowledges it; whatever of it is unacknowledged, unstored or not yet taken
//! when the pump stops goes back to the writer, which stores it for the device's next
//! connection (a live message's sender is answered then). A crash loses the receipts held in memory (a sender
//! misses a "delivered" mark) and the live messages (their senders were not answered yet and
//! send them again), never an acknowledged message.
//!
//! Acknowledgements are applied by the writer after the reader has moved on; a new connection's
//! pump waits for the writer's queue ([`super::writer::Writer::barrier`]) before its first read,
//! so what a device acknowledged on its previous connection to this node does not come again.

use std::sync::Arc;
use std::time::Duration;

use confianza_api::{Delivery, DeliveryItem, ErrorCode, Notice, ServerFrame};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::error::Failure;
use super::events::Registration;
use super::inbox::{Attached, Handed, Inbox};
use super::limits::MAX_DELIVERIES_IN_FLIGHT;
use super::live::Live;
use super::session::{Delivering, Held, InFlight, MEMORY_IDS, Session, lock_window};
use super::state::Shared;
use crate::store::{DeviceAddress, MessageStore, Queued, QueuedItem};

/// Entries read from the mailbox per query.
const PENDING_BATCH: usize = 128;

/// Pause before retrying after the store failed to read a mailbox.
const RETRY_AFTER_STORE_ERROR: Duration = Duration::from_secs(1);

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
        // Attached before the backlog is read: whatever the writer commits from now on is
        // handed over, and whatever it committed before is in the backlog.
        let attached = self.shared.writer.handoff().attach(&device.address);
        let inbox = attached.inbox.clone();
        let in_flight = InFlight::default();
        let stop = CancellationToken::new();
        let room = Arc::new(Notify::new());
        let displaced = registration.displaced.clone();
        let pump = Pump {
            shared: self.shared.clone(),
            device: device.address.clone(),
            in_flight: in_flight.clone(),
            inbox: inbox.clone(),
            outbound: self.outbound.clone(),
            stop: stop.clone(),
        };
        let task = tokio::spawn(run_pump(pump, attached, registration, room.clone()));
        self.delivering = Some(Delivering {
            in_flight,
            inbox,
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

    /// An `Ack` frame: the deliveries leave the window at once; the writer deletes the
    /// entries, settles the live messages (answering their senders) and sends the receipts
    /// owed, in its next batch. The reader does not wait for that commit: an entry whose
    /// deletion fails stays in the mailbox and comes again on the device's next connection
    /// (clients drop repeats).
    pub(crate) async fn acknowledge(&mut self, delivery_ids: Vec<u64>) -> Result<(), Failure> {
        let me = self.me()?;
        let Some(delivering) = &self.delivering else {
            return Err(Failure::close(
                ErrorCode::Unauthenticated,
                "no deliveries on this connection",
            ));
        };
        let mut live: Vec<Arc<Live>> = Vec::new();
        let (fresh, room_made): (Vec<u64>, bool) = {
            let mut window = lock_window(&delivering.in_flight);
            // The pump waits for room only with a full window (otherwise it reads or takes
            // what it needs at once), so only then is it worth waking.
            let was_full = window.in_flight() >= MAX_DELIVERIES_IN_FLIGHT;
            let never = delivery_ids.iter().find(|&&id| {
                if id > MEMORY_IDS {
                    id > window.last_memory_id
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
                    if *id > MEMORY_IDS {
                        if let Some(Held::Message(message)) = window.memory.remove(id) {
                            live.push(message);
                        }
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
        delivering.inbox.acknowledged(fresh.len());
        if fresh.is_empty() && live.is_empty() {
            return Ok(());
        }
        // Applied by the writer, in its batch: nothing else takes the database's write lock
        // on the delivery path.
        self.shared
            .writer
            .acknowledge(me, fresh, live, self.shared.message_ttl)
            .await?;
        Ok(())
    }
}

/// Pushes the device's mail to the connection until `stop` (or the connection goes), then
/// hands what it holds from memory and could not deliver back to the writer to store.
async fn run_pump<S: MessageStore>(
    pump: Pump<S>,
    attached: Attached,
    registration: Registration,
    room: Arc<Notify>,
) {
    let mut attached = attached;
    // The device's previous connection here may still hold live messages in memory: they are
    // stored (and come in the backlog, in their order) once it has handed them back. Waited
    // for even if this connection stops at once, so that the next one, which waits for this
    // one, finds them stored too.
    if let Some(predecessor) = attached.predecessor.take() {
        let finished = predecessor.finished.clone();
        if tokio::time::timeout(PREDECESSOR_PATIENCE, finished.cancelled())
            .await
            .is_err()
        {
            tracing::warn!(
                address = %pump.device.address,
                device = pump.device.device_id,
                "the previous connection did not hand back its deliveries in time"
            );
        }
    }
    pump.run(registration, &room).await;
    pump.hand_back_held().await;
    // A newer connection of the device may read the mailbox now. Detached only then: a newer
    // connection that attaches before finds this inbox and waits for it (what is offered to
    // it meanwhile is refused or left in the mailbox, its pump being closed).
    pump.inbox.finished.cancel();
    drop(attached);
}

/// How long a new connection waits for its device's previous connection on this node to hand
/// back what it held in memory (it is being displaced or has closed, so this is short; past
/// it the new connection goes on, and those messages may come after newer ones).
const PREDECESSOR_PATIENCE: Duration = Duration::from_secs(5);

impl<S: MessageStore> Pump<S> {
    /// Hands what the stopped pump held in memory and could not deliver back to the writer.
    async fn hand_back_held(&self) {
        // Closed before the window is emptied: what is offered from now on goes back to the
        // writer, and the window holds everything else pushed and not acknowledged.
        let (mut receipts, queued) = self.inbox.close();
        let mut held: Vec<(u64, Held)> = lock_window(&self.in_flight).memory.drain().collect();
        held.sort_unstable_by_key(|(id, _)| *id);
        // Pushed before anything still queued: stored in that order (unless the writer took them
        // to store already).
        let mut live = Vec::with_capacity(held.len() + queued.len());
        for (_, held) in held {
            match held {
                Held::Receipt(receipt) => receipts.push(receipt),
                Held::Message(message) => live.push(message),
            }
        }
        live.extend(queued);
        if receipts.is_empty() && live.is_empty() {
            return;
        }
        if self.shared.writer.hand_back(receipts, live).await.is_err() {
            tracing::warn!(
                address = %self.device.address,
                device = self.device.device_id,
                "deliveries held in memory were dropped: the server is stopping (live messages \
                 are refused to their senders, who send them again)"
            );
        }
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

/// What became of one mailbox read.
enum Read {
    /// `n` entries pushed.
    Pushed(usize),
    /// The connection has gone.
    Gone,
    /// The store failed (logged); try again later.
    Failed,
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
        let mailbox: Arc<Notify> = registration.mailbox.clone();
        // Acknowledgements from this device's earlier connection may still be queued in the
        // writer (and what it handed back): apply them before reading the backlog, or their
        // entries would come again.
        tokio::select! {
            () = self.stop.cancelled() => return,
            // `Closed`: the server is stopping; the reads below still serve what is stored.
            _ = self.shared.writer.barrier() => {}
        }
        let mut drained = false;
        // The backlog: anything may be waiting when the device connects.
        let mut unread = true;
        loop {
            // What was handed over, in order, as far as the window goes.
            let (free, cursor) = self.window();
            let taken = self.inbox.take(cursor, free);
            unread |= taken.overflowed;
            if !taken.items.is_empty() && !self.push_handed(taken.items).await {
                return;
            }
            if !self.push_receipts().await {
                return;
            }
            let (free, cursor) = self.window();
            let mut failed = false;
            if free > 0 {
                if let Some(gap) = taken.gap_before {
                    // The mailbox entries between the cursor and the next one handed over.
                    match self.bridge(cursor, gap, free).await {
                        Read::Pushed(_) => continue,
                        Read::Gone => return,
                        Read::Failed => failed = true,
                    }
                } else if unread && !taken.more {
                    // Nothing is queued ahead of what the mailbox may hold.
                    let limit = free.min(PENDING_BATCH);
                    match self.read(cursor, limit, None).await {
                        Read::Pushed(fetched) if fetched == limit => {
                            // There may be more right behind (read once the window has room).
                            continue;
                        }
                        Read::Pushed(_) => {
                            // Anything queued since this read wakes the mailbox again.
                            unread = false;
                            self.inbox.caught_up();
                            if !drained {
                                drained = true;
                                let notice = ServerFrame::Notice(Notice::MailboxDrained);
                                if self.outbound.send(notice).await.is_err() {
                                    return;
                                }
                            }
                            continue;
                        }
                        Read::Gone => return,
                        Read::Failed => failed = true,
                    }
                }
            }
            let retry = async {
                if failed {
                    tokio::time::sleep(RETRY_AFTER_STORE_ERROR).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                () = self.stop.cancelled() => return,
                () = mailbox.notified() => unread = true,
                () = self.inbox.ready.notified() => {}
                () = room.notified() => {}
                () = retry => {}
                notice = registration.notices.recv() => {
                    if let Some(notice) = notice
                        && self.outbound.send(ServerFrame::Notice(notice)).await.is_err()
                    {
                        return;
                    }
                }
            }
        }
    }

    /// Reads and pushes at most `limit` entries after `cursor`, only those below `below`.
    async fn read(&self, cursor: u64, limit: usize, below: Option<u64>) -> Read {
        let Self { shared, device, .. } = self;
        let limit_u32 = u32::try_from(limit).unwrap_or(u32::MAX);
        shared.metrics.mailbox_reads_total.inc();
        match shared.store.pending(device, cursor, limit_u32).await {
            Ok(mut entries) => {
                if let Some(below) = below {
                    entries.retain(|entry| entry.delivery_id < below);
                }
                let fetched = entries.len();
                self.inbox.pushed_from_mailbox(fetched);
                if !push(&self.in_flight, &self.outbound, entries).await {
                    return Read::Gone;
                }
                shared.metrics.messages_out_total.inc_by(fetched as u64);
                Read::Pushed(fetched)
            }
            Err(error) => {
                tracing::error!(%error, address = %device.address, device = device.device_id, "reading a mailbox failed");
                Read::Failed
            }
        }
    }

    /// Pushes the mailbox entries between `cursor` and `gap` (the delivery id of the next
    /// entry handed over), at most `free` of them; once none is left below `gap`, moves the
    /// cursor up to it, so the entries handed over follow on.
    async fn bridge(&self, cursor: u64, gap: u64, free: usize) -> Read {
        let between = usize::try_from(gap - cursor - 1).unwrap_or(usize::MAX);
        let limit = free.min(PENDING_BATCH).min(between);
        let read = self.read(cursor, limit, Some(gap)).await;
        if let Read::Pushed(fetched) = read
            && fetched < limit
        {
            // Fewer than asked below `gap`: nothing else is stored there.
            let mut window = lock_window(&self.in_flight);
            window.highest_pushed = window.highest_pushed.max(gap - 1);
        }
        read
    }

    /// Pushes what was taken from the inbox, in order. `false` once the connection has gone.
    async fn push_handed(&self, items: Vec<Handed>) -> bool {
        let mut handed = 0u64;
        let frames: Vec<ServerFrame> = {
            let mut window = lock_window(&self.in_flight);
            items
                .into_iter()
                .filter_map(|item| match item {
                    Handed::Stored(entry) => {
                        handed += 1;
                        window.unacknowledged.insert(entry.delivery_id);
                        window.highest_pushed = window.highest_pushed.max(entry.delivery_id);
                        Some(delivery_frame(entry))
                    }
                    Handed::Live(message) => {
                        // `None`: the writer took it to store it; the mailbox delivers it.
                        let item = DeliveryItem::Envelope(message.push()?);
                        let id = window.hold(Held::Message(message));
                        Some(ServerFrame::Delivery(Delivery { id, item }))
                    }
                    Handed::Pushed { entry, .. } => {
                        window.highest_pushed = window.highest_pushed.max(entry.delivery_id);
                        None
                    }
                })
                .collect()
        };
        let count = frames.len() as u64;
        for frame in frames {
            if self.outbound.send(frame).await.is_err() {
                return false;
            }
        }
        let metrics = &self.shared.metrics;
        metrics.messages_out_total.inc_by(count);
        metrics.deliveries_handed_off_total.inc_by(handed);
        true
    }

    /// Pushes the receipts handed over from memory that fit in the window, each with the next
    /// id above [`MEMORY_IDS`]. `false` once the connection has gone.
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
                    let item = DeliveryItem::Receipt(receipt.receipt.clone());
                    let id = window.hold(Held::Receipt(receipt));
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

/// The frame pushing a mailbox entry.
fn delivery_frame(entry: Queued) -> ServerFrame {
    let item = match entry.item {
        QueuedItem::Envelope(envelope) => DeliveryItem::Envelope(envelope),
        QueuedItem::Receipt(receipt) => DeliveryItem::Receipt(receipt),
    };
    ServerFrame::Delivery(Delivery {
        id: entry.delivery_id,
        item,
    })
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
        if outbound.send(delivery_frame(entry)).await.is_err() {
            return false;
        }
    }
    true
}
