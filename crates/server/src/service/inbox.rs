//! The hand-off between the writer and the pumps of devices connected to this node: each pump
//! has an [`Inbox`] registered in the writer's [`Handoff`] table, where the writer puts what it
//! just stored for the device (with delivery ids), the live messages it routes around the
//! store ([`super::live`]), and the delivery receipts owed to the device (pushed from memory).
//!
//! Entries and live messages share **one queue, in the writer's order**, and the pump pushes
//! it in that order, so a live message never overtakes an entry stored before it and the
//! other way round. A stored entry that does not follow on from the pump's cursor (delivery
//! ids of a device are consecutive) means the mailbox holds entries the queue does not: the
//! pump reads those (and only those) before going on. Past [`MAX_HANDED_OFF`] queued items
//! new entries are left in the mailbox (the inbox is marked overflowed) and the pump reads
//! them once the queue is empty.
//!
//! A live message joins the queue only while the pump is caught up with the mailbox (it has
//! read its backlog to the end, and has not overflowed since), no stored entry is queued or
//! pushed and unacknowledged (then a repeat of a stored message is never pushed live, as the
//! mailbox's duplicate check would have it), and the device is reading (no live message
//! waited in vain since its last acknowledgement). Otherwise the writer stores it.
//! A live message whose wait runs out is stored where it is (pushed, or still in the queue:
//! the pump then pushes it in its place all the same, and its entry's marker only moves the
//! cursor), so the order holds whichever way each message went.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::limits::MAX_HANDED_OFF;
use super::live::Live;
use crate::store::{DeviceAddress, NewReceipt, Queued};

/// One item of an inbox's queue.
#[derive(Debug)]
pub enum Handed {
    /// An entry of the device's mailbox, just stored.
    Stored(Queued),
    /// A message pushed from memory.
    Live(Arc<Live>),
    /// An entry holding a live message pushed already by the pump of inbox `by` (and stored
    /// since, unacknowledged): to that pump it only moves the cursor; to any other (a newer
    /// connection of the device) it is an entry like [`Handed::Stored`].
    Pushed { entry: Queued, by: Weak<Inbox> },
}

impl Handed {
    /// The mailbox delivery id, for stored entries.
    fn delivery_id(&self) -> Option<u64> {
        match self {
            Self::Stored(entry) => Some(entry.delivery_id),
            Self::Pushed { entry, .. } => Some(entry.delivery_id),
            Self::Live(_) => None,
        }
    }
}

/// What a pump takes from its inbox at once ([`Inbox::take`]).
#[derive(Debug, Default)]
pub struct Taken {
    /// To push, in this order.
    pub items: Vec<Handed>,
    /// The queue goes on with the entry of this delivery id, which does not follow on from the
    /// last one taken: the mailbox entries between come first.
    pub gap_before: Option<u64>,
    /// Items are left because the window is full.
    pub more: bool,
    /// Entries were left in the mailbox: read it once the queue is empty.
    pub overflowed: bool,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Handed>,
    overflowed: bool,
    /// The pump has read its mailbox to the end since it started (and since it last
    /// overflowed): live messages may join the queue.
    caught_up: bool,
    /// [`Handed::Stored`] items in the queue.
    stored_queued: usize,
    /// Mailbox entries pushed and not yet acknowledged.
    stored_unacknowledged: usize,
    /// A live message waited for its acknowledgement in vain, and the device has
    /// acknowledged nothing since: it is not reading, so live messages would only wait.
    slow: bool,
    /// Delivery receipts to push from memory (stored nowhere); their order does not matter.
    receipts: Vec<NewReceipt>,
    /// The pump has stopped: receipts and live messages offered now go back to the writer.
    closed: bool,
}

/// Where the writer hands a connected device's new mail (see the module docs).
#[derive(Debug, Default)]
pub struct Inbox {
    state: Mutex<State>,
    /// Woken when something was handed over.
    pub ready: Notify,
    /// Cancelled once the pump has stopped and queued what it held in memory with the writer:
    /// a newer connection of the device waits for it before reading the mailbox, so that what
    /// this one leaves unacknowledged is stored and read first, in its order.
    pub finished: CancellationToken,
}

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Each update is one push or one take: a panicked holder leaves it consistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues entries just stored ([`Handed::Stored`]; past [`MAX_HANDED_OFF`] queued they are
    /// left to a mailbox read instead) and markers ([`Handed::Pushed`]: always queued, there
    /// are at most a window of them, and a mailbox read would push their messages again), and
    /// wakes the pump.
    pub fn offer(&self, entries: Vec<Handed>) {
        {
            let mut state = self.lock();
            let stored = entries
                .iter()
                .filter(|entry| matches!(entry, Handed::Stored(_)))
                .count();
            if state.overflowed || state.stored_queued + stored > MAX_HANDED_OFF {
                state.overflowed = true;
                state.caught_up = false;
                state.queue.extend(
                    entries
                        .into_iter()
                        .filter(|entry| matches!(entry, Handed::Pushed { .. })),
                );
            } else {
                state.stored_queued += stored;
                state.queue.extend(entries);
            }
        }
        self.ready.notify_one();
    }

    /// The pump pushed `count` entries it read from the mailbox.
    pub fn pushed_from_mailbox(&self, count: usize) {
        self.lock().stored_unacknowledged += count;
    }

    /// The device acknowledged deliveries, `count` of them mailbox entries pushed on this
    /// connection: it is reading.
    pub fn acknowledged(&self, count: usize) {
        let mut state = self.lock();
        state.stored_unacknowledged = state.stored_unacknowledged.saturating_sub(count);
        state.slow = false;
    }

    /// A live message for this pump waited for its acknowledgement in vain: none is offered
    /// until the device acknowledges something.
    pub fn mark_slow(&self) {
        self.lock().slow = true;
    }

    /// Whether a live message would be queued now ([`Inbox::offer_live`]).
    pub fn takes_live(&self) -> bool {
        let state = self.lock();
        Self::live_room(&state)
    }

    fn live_room(state: &State) -> bool {
        state.caught_up
            && !state.overflowed
            && !state.closed
            && !state.slow
            && state.stored_queued == 0
            && state.stored_unacknowledged == 0
            && state.queue.len() < MAX_HANDED_OFF
    }

    /// Queues a live message and wakes the pump, or hands it back when the inbox does not take
    /// live messages now (see [`Inbox::takes_live`]): the writer stores it instead.
    pub fn offer_live(&self, message: Arc<Live>) -> Result<(), Arc<Live>> {
        {
            let mut state = self.lock();
            if !Self::live_room(&state) {
                return Err(message);
            }
            state.queue.push_back(Handed::Live(message));
        }
        self.ready.notify_one();
        Ok(())
    }

    /// Adds receipts to push from memory and wakes the pump; returns the ones it cannot take
    /// (the pump has stopped or holds [`MAX_HANDED_OFF`] already), to be stored instead.
    pub fn offer_receipts(&self, receipts: Vec<NewReceipt>) -> Vec<NewReceipt> {
        {
            let mut state = self.lock();
            if state.closed || state.receipts.len() + receipts.len() > MAX_HANDED_OFF {
                return receipts;
            }
            state.receipts.extend(receipts);
        }
        self.ready.notify_one();
        Vec::new()
    }

    /// Takes at most `room` of the receipts handed over; the rest wait for room.
    pub fn take_receipts(&self, room: usize) -> Vec<NewReceipt> {
        let mut state = self.lock();
        let split = room.min(state.receipts.len());
        let rest = state.receipts.split_off(split);
        std::mem::replace(&mut state.receipts, rest)
    }

    /// The pump read its mailbox to the end: unless entries overflowed meanwhile, live
    /// messages may come from now on.
    pub fn caught_up(&self) {
        let mut state = self.lock();
        if !state.overflowed {
            state.caught_up = true;
        }
    }

    /// Marks the pump stopped and returns what it never took: receipts, and live messages in
    /// their order (entries stay in the mailbox).
    pub fn close(&self) -> (Vec<NewReceipt>, Vec<Arc<Live>>) {
        let mut state = self.lock();
        state.closed = true;
        state.stored_queued = 0;
        let live = Self::live_of(std::mem::take(&mut state.queue));
        (std::mem::take(&mut state.receipts), live)
    }

    fn live_of(queue: VecDeque<Handed>) -> Vec<Arc<Live>> {
        queue
            .into_iter()
            .filter_map(|handed| match handed {
                Handed::Live(message) => Some(message),
                Handed::Stored(_) | Handed::Pushed { .. } => None,
            })
            .collect()
    }

    /// Takes, in order, at most `room` deliveries of the queue: live messages, and entries
    /// that follow on from `cursor` (entries at or below it were pushed by a mailbox read
    /// already and are dropped). Stops before an entry that does not follow on
    /// ([`Taken::gap_before`]). [`Handed::Pushed`] markers come along without taking room.
    pub fn take(&self, mut cursor: u64, room: usize) -> Taken {
        let mut state = self.lock();
        let mut taken = Taken {
            overflowed: std::mem::take(&mut state.overflowed),
            ..Taken::default()
        };
        let mut used = 0;
        while let Some(front) = state.queue.front() {
            if let Some(delivery_id) = front.delivery_id() {
                if delivery_id <= cursor {
                    if let Some(Handed::Stored(_)) = state.queue.pop_front() {
                        state.stored_queued -= 1;
                    }
                    continue;
                }
                if Some(delivery_id) != cursor.checked_add(1) {
                    taken.gap_before = Some(delivery_id);
                    break;
                }
            }
            let marker = matches!(front, Handed::Pushed { .. });
            if !marker && used == room {
                taken.more = true;
                break;
            }
            let Some(item) = state.queue.pop_front() else {
                break;
            };
            if let Some(delivery_id) = item.delivery_id() {
                cursor = delivery_id;
            }
            if !marker {
                used += 1;
            }
            if matches!(item, Handed::Stored(_)) {
                // Pushed from here on: unacknowledged until the device says so.
                state.stored_queued -= 1;
                state.stored_unacknowledged += 1;
            }
            taken.items.push(item);
        }
        taken
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
    pub fn attach(self: &Arc<Self>, device: &DeviceAddress) -> Attached {
        let inbox = Arc::new(Inbox::default());
        let predecessor = self.lock().insert(device.clone(), inbox.clone());
        Attached {
            handoff: self.clone(),
            device: device.clone(),
            inbox,
            predecessor,
        }
    }

    /// Whether `device` has a pump here (and so takes its receipts from memory).
    pub fn is_attached(&self, device: &DeviceAddress) -> bool {
        self.lock().contains_key(device)
    }

    /// The inbox of `device`'s pump here, if it has one.
    pub fn inbox(&self, device: &DeviceAddress) -> Option<Arc<Inbox>> {
        self.lock().get(device).cloned()
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

    /// Hands entries just committed ([`Handed::Stored`], [`Handed::Pushed`]) to the inboxes
    /// of their recipients that have a pump here; returns those recipients, which need no
    /// other wake-up.
    pub fn deliver(&self, entries: Vec<(DeviceAddress, Handed)>) -> Vec<DeviceAddress> {
        let mut by_recipient: HashMap<DeviceAddress, Vec<Handed>> = HashMap::new();
        for (recipient, entry) in entries {
            by_recipient.entry(recipient).or_default().push(entry);
        }
        let mut reached = Vec::with_capacity(by_recipient.len());
        let targets: Vec<(DeviceAddress, Vec<Handed>, Arc<Inbox>)> = {
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
            // A marker for another connection's pump is an entry to push for this one.
            let queued = queued
                .into_iter()
                .map(|handed| match handed {
                    Handed::Pushed { entry, by } if !Weak::ptr_eq(&by, &Arc::downgrade(&inbox)) => {
                        Handed::Stored(entry)
                    }
                    other => other,
                })
                .collect();
            inbox.offer(queued);
            reached.push(recipient);
        }
        reached
    }
}

/// A pump's registration in the [`Handoff`] table; removes it on drop unless a newer
/// connection of the device has replaced it.
pub struct Attached {
    handoff: Arc<Handoff>,
    device: DeviceAddress,
    pub inbox: Arc<Inbox>,
    /// The inbox of the device's connection this one replaced, if its pump was still
    /// attached: see [`Inbox::finished`].
    pub predecessor: Option<Arc<Inbox>>,
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use confianza_api::DeliveryReceipt;

    use super::*;
    use crate::service::limits::MAX_DELIVERIES_IN_FLIGHT;
    use crate::service::live::{LiveMessage, PendingSend};
    use crate::store::{NewMessage, QueuedItem};

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

    fn device(address: &str) -> DeviceAddress {
        DeviceAddress {
            address: address.to_owned(),
            device_id: 1,
        }
    }

    fn stored(ids: &[u64]) -> Vec<Handed> {
        ids.iter().map(|&id| Handed::Stored(entry(id))).collect()
    }

    fn live(id: u8) -> Arc<Live> {
        Live::new(LiveMessage {
            message: NewMessage::for_tests(id, vec![device("bob@example.org")]),
            send: PendingSend::new(1, Box::new(|_| {}), Instant::now()),
            slot: 0,
        })
    }

    fn body(message: &Live) -> u8 {
        match message.hand_back() {
            Some(message) => message.message.body[0],
            None => 0,
        }
    }

    /// Delivery ids of stored items, and `1000 + body` for live ones.
    fn ids(items: &[Handed]) -> Vec<u64> {
        items
            .iter()
            .map(|item| match item {
                Handed::Stored(entry) => entry.delivery_id,
                Handed::Live(message) => 1000 + u64::from(body(message)),
                Handed::Pushed { entry, .. } => 2000 + entry.delivery_id,
            })
            .collect()
    }

    fn caught_up_inbox() -> Inbox {
        let inbox = Inbox::default();
        inbox.caught_up();
        inbox
    }

    #[test]
    fn entries_that_follow_on_are_taken_in_order() {
        let inbox = Inbox::default();
        inbox.offer(stored(&[11, 12]));
        inbox.offer(stored(&[13]));
        let taken = inbox.take(10, MAX_DELIVERIES_IN_FLIGHT);
        assert_eq!(ids(&taken.items), [11, 12, 13]);
        assert!(taken.gap_before.is_none() && !taken.more && !taken.overflowed);
        // Taken once.
        assert!(inbox.take(13, MAX_DELIVERIES_IN_FLIGHT).items.is_empty());
    }

    #[test]
    fn a_gap_stops_the_take_and_keeps_what_follows() {
        let inbox = caught_up_inbox();
        inbox.offer_live(live(1)).expect("caught up");
        inbox.offer(stored(&[11, 13, 14]));
        let taken = inbox.take(10, MAX_DELIVERIES_IN_FLIGHT);
        assert_eq!(ids(&taken.items), [1001, 11]);
        assert_eq!(taken.gap_before, Some(13));
        // Once the mailbox read bridged the gap, the rest comes in order.
        let taken = inbox.take(12, MAX_DELIVERIES_IN_FLIGHT);
        assert_eq!(ids(&taken.items), [13, 14]);
        assert!(taken.gap_before.is_none());
    }

    #[test]
    fn entries_a_read_pushed_already_are_dropped() {
        let inbox = Inbox::default();
        inbox.offer(stored(&[11, 12, 13]));
        let taken = inbox.take(12, MAX_DELIVERIES_IN_FLIGHT);
        assert_eq!(ids(&taken.items), [13]);
    }

    #[test]
    fn a_full_window_keeps_the_rest_queued() {
        let inbox = caught_up_inbox();
        inbox.offer_live(live(1)).expect("caught up");
        inbox.offer(stored(&[1, 2]));
        let taken = inbox.take(0, 2);
        assert_eq!(ids(&taken.items), [1001, 1]);
        assert!(taken.more);
        assert!(inbox.take(1, 0).more);
        let taken = inbox.take(1, 2);
        assert_eq!(ids(&taken.items), [2]);
        assert!(!taken.more);
    }

    #[test]
    fn live_messages_wait_until_the_pump_is_caught_up_and_stop_at_an_overflow() {
        let inbox = Inbox::default();
        assert!(!inbox.takes_live());
        assert!(inbox.offer_live(live(1)).is_err(), "backlog not read yet");
        inbox.caught_up();
        assert!(inbox.takes_live());
        inbox.offer_live(live(2)).expect("caught up");

        let limit = u64::try_from(MAX_HANDED_OFF).expect("small");
        let mut entries: Vec<Handed> = (1..=limit + 1)
            .map(|id| Handed::Stored(entry(id)))
            .collect();
        // A marker is kept through the overflow: a mailbox read would push its message again.
        entries.push(Handed::Pushed {
            entry: entry(limit + 2),
            by: Weak::new(),
        });
        inbox.offer(entries);
        assert!(!inbox.takes_live(), "overflowed");
        let taken = inbox.take(0, MAX_HANDED_OFF);
        assert!(taken.overflowed);
        assert_eq!(ids(&taken.items), [1002]);
        assert_eq!(
            taken.gap_before,
            Some(limit + 2),
            "the marker waits for the read"
        );
        // Still not caught up: the pump has not read the mailbox since the overflow.
        assert!(inbox.offer_live(live(3)).is_err());
        inbox.caught_up();
        inbox.offer_live(live(4)).expect("caught up again");
    }

    #[test]
    fn a_closed_inbox_hands_back_its_live_messages_and_receipts() {
        let inbox = caught_up_inbox();
        inbox.offer_live(live(1)).expect("caught up");
        inbox.offer_live(live(2)).expect("caught up");
        inbox.offer(stored(&[1]));
        assert!(inbox.offer_receipts(vec![receipt("bob", 1)]).is_empty());
        let (receipts, messages) = inbox.close();
        assert_eq!(receipts, [receipt("bob", 1)]);
        let bodies: Vec<u8> = messages.iter().map(|m| body(m)).collect();
        assert_eq!(bodies, [1, 2]);
        assert!(inbox.offer_live(live(3)).is_err());
    }

    #[test]
    fn no_live_message_while_a_stored_entry_is_queued_or_unacknowledged() {
        let inbox = caught_up_inbox();
        inbox.offer(stored(&[1]));
        assert!(!inbox.takes_live(), "an entry is queued");
        assert_eq!(ids(&inbox.take(0, 4).items), [1]);
        assert!(!inbox.takes_live(), "pushed, not acknowledged");
        inbox.acknowledged(1);
        assert!(inbox.takes_live());
        inbox.pushed_from_mailbox(2);
        assert!(
            !inbox.takes_live(),
            "read from the mailbox, not acknowledged"
        );
        inbox.acknowledged(2);
        assert!(inbox.takes_live());
        inbox.mark_slow();
        assert!(!inbox.takes_live(), "not reading");
        inbox.acknowledged(0);
        assert!(inbox.takes_live(), "reading again");
    }

    #[test]
    fn markers_move_the_cursor_without_taking_room() {
        let inbox = caught_up_inbox();
        inbox.offer_live(live(1)).expect("caught up");
        inbox.offer(vec![Handed::Pushed {
            entry: entry(5),
            by: Weak::new(),
        }]);
        inbox.offer_live(live(2)).expect("caught up");
        inbox.offer(stored(&[6]));
        let taken = inbox.take(4, 1);
        assert_eq!(ids(&taken.items), [1001, 2005]);
        assert!(taken.more);
        assert_eq!(ids(&inbox.take(5, 4).items), [1002, 6]);
    }

    fn receipt(to: &str, id: u8) -> NewReceipt {
        NewReceipt {
            to: device(to),
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
        assert_eq!(inbox.close().0, [receipt("alice", 2)]);
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
        let alice = handoff.attach(&device("alice"));
        let full: Vec<NewReceipt> = (0..MAX_HANDED_OFF).map(|_| receipt("alice", 1)).collect();
        assert!(handoff.deliver_receipts(full).is_empty());
        assert!(handoff.is_attached(&device("alice")));
        assert!(!handoff.is_attached(&device("carol")));
        let left = handoff.deliver_receipts(vec![receipt("alice", 2), receipt("carol", 3)]);
        assert_eq!(left.len(), 2);
        assert!(left.contains(&receipt("alice", 2)) && left.contains(&receipt("carol", 3)));
        assert_eq!(alice.inbox.take_receipts(usize::MAX).len(), MAX_HANDED_OFF);
    }

    #[test]
    fn only_attached_devices_are_reached_and_a_newer_pump_keeps_its_inbox() {
        let handoff = Arc::new(Handoff::default());
        let bob = device("bob@example.org");
        let old = handoff.attach(&bob);
        let old_inbox = old.inbox.clone();
        let new = handoff.attach(&bob);
        drop(old);
        let reached = handoff.deliver(vec![
            (bob.clone(), Handed::Stored(entry(1))),
            (device("carol@example.org"), Handed::Stored(entry(1))),
        ]);
        assert_eq!(reached, std::slice::from_ref(&bob));
        assert_eq!(ids(&new.inbox.take(0, MAX_DELIVERIES_IN_FLIGHT).items), [1]);
        // A marker of the old connection's pump is an entry to push for the new one; the
        // new one's own marker stays a marker.
        handoff.deliver(vec![
            (
                bob.clone(),
                Handed::Pushed {
                    entry: entry(2),
                    by: Arc::downgrade(&old_inbox),
                },
            ),
            (
                bob.clone(),
                Handed::Pushed {
                    entry: entry(3),
                    by: Arc::downgrade(&new.inbox),
                },
            ),
        ]);
        assert_eq!(
            ids(&new.inbox.take(1, MAX_DELIVERIES_IN_FLIGHT).items),
            [2, 2003]
        );
        assert!(Arc::ptr_eq(
            &handoff.inbox(&bob).expect("attached"),
            &new.inbox
        ));
        drop(new);
        assert!(handoff.lock().is_empty());
    }
}
