//! Live relay: a one-to-one message for a device whose pump runs on this node, caught up with
//! its mailbox, is pushed **from memory** at once, and stored only if the device has not
//! acknowledged it within a wait ([`LIVE_ACK_WAIT`] at least, four times the recent
//! acknowledgement latency under load, [`MAX_LIVE_ACK_WAIT`] at most). The sender is answered
//! when the device acknowledges it (the recipient then holds it durably: the promise "stored
//! durably before the sender gets its acknowledgement" is kept by the recipient instead of the
//! database, and the relay costs the store nothing), or else once the writer has stored it.
//!
//! A live message whose wait runs out is stored where it is: pushed already, or still in the
//! inbox's queue, where the pump pushes it in its place all the same (the entry's marker then
//! only moves the pump's cursor), so the order per sender holds; its acknowledgement, however
//! late, deletes the entry. One still unacknowledged and unstored when its connection goes is
//! handed back to the writer, which stores it like any send and answers the sender then; a
//! graceful shutdown does the same before the writer stops. A crash loses only live messages
//! whose senders were not answered: they send them again — and a recipient that had
//! acknowledged one just before the crash receives it twice, as it receives again anything it
//! had not acknowledged yet (clients drop repeats: a Signal session refuses a replay).
//!
//! The writer keeps the live messages in flight by sender, client message id and recipient
//! (until acknowledged, stored or not), so a repeat sent meanwhile is answered as a duplicate
//! and not pushed twice (as the mailbox does while an entry is queued).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use confianza_api::{ClientMessageId, Envelope};

use super::inbox::{Handed, Handoff, Inbox};
use super::writer::{Completion, WriteError};
use crate::store::{DeviceAddress, EnqueueOutcome, NewMessage, QueuedItem, StoredEntry};

/// One send's outcomes as its live messages are settled one by one (acknowledged, or stored
/// after all); the completion runs once the last one is.
pub struct PendingSend {
    state: Mutex<Settling>,
    queued_at: Instant,
}

struct Settling {
    outcomes: Vec<Option<EnqueueOutcome>>,
    left: usize,
    completion: Option<Completion>,
}

impl std::fmt::Debug for PendingSend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingSend").finish_non_exhaustive()
    }
}

/// The completion of a send whose every outcome is known, with them in order; what
/// [`PendingSend::settle`] returns when the last outcome came in.
pub type Settled = (Completion, Vec<EnqueueOutcome>, Instant);

impl PendingSend {
    /// A send of `count` messages whose outcomes are not known yet.
    pub fn new(count: usize, completion: Completion, queued_at: Instant) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(Settling {
                outcomes: vec![None; count],
                left: count,
                completion: Some(completion),
            }),
            queued_at,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Settling> {
        // Each update fills one slot: a panicked holder leaves it consistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records the outcome of message `slot`; returns the completion and every outcome once
    /// this was the last one. A slot settled twice keeps its first outcome.
    pub fn settle(&self, slot: usize, outcome: EnqueueOutcome) -> Option<Settled> {
        let mut state = self.lock();
        let entry = state.outcomes.get_mut(slot)?;
        if entry.is_some() {
            return None;
        }
        *entry = Some(outcome);
        state.left -= 1;
        if state.left > 0 {
            return None;
        }
        let completion = state.completion.take()?;
        let outcomes = state.outcomes.iter_mut().filter_map(Option::take).collect();
        Some((completion, outcomes, self.queued_at))
    }
}

impl PendingSend {
    /// Fails the whole send with `error` (a slot could not be stored), unless it was answered.
    pub fn fail(&self, error: WriteError) {
        let completion = self.lock().completion.take();
        if let Some(completion) = completion {
            completion(Err(error));
        }
    }
}

impl Drop for PendingSend {
    /// A send dropped unsettled (its live messages were lost with a stopping writer) is
    /// answered as refused: the sender sends it again.
    fn drop(&mut self) {
        let state = self
            .state
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(completion) = state.completion.take() {
            completion(Err(WriteError::Closed));
        }
    }
}

/// How long a live message waits at least for the device's acknowledgement before the writer
/// stores it (and answers its sender after that commit): long enough for a connected device
/// of a lightly loaded node to acknowledge, short enough to go unnoticed by a sender whose
/// recipient is connected but not reading; such a recipient then takes no live message until
/// it acknowledges something, so the wait is paid once. Under load the writer waits longer:
/// four times the recent acknowledgement latency (the load test's 100 clients acknowledge in
/// about 10 ms, its 1 000 clients in about 350 ms), up to [`MAX_LIVE_ACK_WAIT`].
pub const LIVE_ACK_WAIT: Duration = Duration::from_millis(100);

/// The longest a live message waits for its acknowledgement: what a sender whose recipient
/// stopped reading may wait for its `Sent`, once.
pub const MAX_LIVE_ACK_WAIT: Duration = Duration::from_secs(1);

/// Where a live message is: the pump, the writer and the acknowledging reader each move it on
/// under its lock, so exactly one of them settles it.
#[derive(Debug)]
enum LiveState {
    /// In an inbox's queue, not pushed yet.
    Queued(LiveMessage),
    /// Pushed from memory, not acknowledged yet.
    Pushed(LiveMessage),
    /// Stored in the mailbox after its wait, unacknowledged (under `delivery_id`, once the
    /// commit told it): still to be pushed from its place in the queue (`envelope`), or pushed
    /// already. An acknowledgement now deletes the entry. Its key stays in flight until then
    /// (or until the connection goes), so that a repeat is not pushed again.
    Stored {
        envelope: Option<Envelope>,
        delivery_id: Option<u64>,
        key: LiveKey,
    },
    /// Settled: acknowledged, handed back, or released.
    Done,
}

/// One live message on its way ([`LiveState`]): shared by the writer, the inbox and the
/// window of the recipient's connection.
#[derive(Debug)]
pub struct Live {
    state: Mutex<LiveState>,
    /// When the writer routed it: its acknowledgement's latency is measured from here.
    routed_at: Instant,
    /// The one device it is for.
    recipient: DeviceAddress,
}

/// What an acknowledgement of a live message comes to ([`Live::acknowledged`]).
#[derive(Debug)]
pub enum Acked {
    /// It was not stored: settle it (answer the sender, send the receipt).
    Settle(LiveMessage),
    /// It was stored (under this delivery id, if known): delete the entry like any
    /// acknowledged one, and the key is no longer in flight.
    Delete(Option<u64>, LiveKey),
    /// Nothing left to do.
    Nothing,
}

impl Live {
    pub fn new(message: LiveMessage) -> Arc<Self> {
        Arc::new(Self {
            recipient: message.message.recipients[0].clone(),
            state: Mutex::new(LiveState::Queued(message)),
            routed_at: Instant::now(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LiveState> {
        // Each update is one replacement: a panicked holder leaves it consistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The envelope to push when the pump reaches it in the queue (stored meanwhile or not);
    /// `None` if it was pushed or settled already.
    pub fn push(&self) -> Option<Envelope> {
        let mut state = self.lock();
        match &mut *state {
            LiveState::Stored { envelope, .. } => envelope.take(),
            LiveState::Queued(_) => {
                let LiveState::Queued(message) = std::mem::replace(&mut *state, LiveState::Done)
                else {
                    return None;
                };
                let envelope = message.message.envelope();
                *state = LiveState::Pushed(message);
                Some(envelope)
            }
            LiveState::Pushed(_) | LiveState::Done => None,
        }
    }

    /// Neither queued nor pushed any more: settled, handed back, or stored.
    fn is_settled(&self) -> bool {
        !matches!(*self.lock(), LiveState::Queued(_) | LiveState::Pushed(_))
    }

    /// The device acknowledged it.
    pub fn acknowledged(&self) -> Acked {
        let mut state = self.lock();
        match std::mem::replace(&mut *state, LiveState::Done) {
            LiveState::Queued(message) | LiveState::Pushed(message) => Acked::Settle(message),
            LiveState::Stored {
                delivery_id, key, ..
            } => Acked::Delete(delivery_id, key),
            LiveState::Done => Acked::Nothing,
        }
    }

    /// Its wait is over: the message, to store it; it stays where it is (in the queue, or
    /// pushed) and in flight until acknowledged. `None` once it is settled or stored.
    fn take_to_store(&self) -> Option<LiveMessage> {
        let mut state = self.lock();
        let (message, envelope) = match std::mem::replace(&mut *state, LiveState::Done) {
            LiveState::Queued(message) => {
                let envelope = message.message.envelope();
                (message, Some(envelope))
            }
            LiveState::Pushed(message) => (message, None),
            other => {
                *state = other;
                return None;
            }
        };
        *state = LiveState::Stored {
            envelope,
            delivery_id: None,
            key: message.key(),
        };
        Some(message)
    }

    /// Its connection went: the message, to store it, if it was neither settled nor stored.
    pub(super) fn hand_back(&self) -> Option<LiveMessage> {
        let mut state = self.lock();
        match std::mem::replace(&mut *state, LiveState::Done) {
            LiveState::Queued(message) | LiveState::Pushed(message) => Some(message),
            other => {
                *state = other;
                None
            }
        }
    }

    /// The writer's commit stored it under `delivery_id`.
    fn stored(&self, delivery_id: u64) {
        if let LiveState::Stored {
            delivery_id: stored,
            ..
        } = &mut *self.lock()
        {
            *stored = Some(delivery_id);
        }
    }

    /// Its connection went: the key of a stored message, which is no longer in flight.
    /// (Messages neither stored nor settled are handed back instead.)
    fn release(&self) -> Option<LiveKey> {
        let mut state = self.lock();
        match std::mem::replace(&mut *state, LiveState::Done) {
            LiveState::Stored { key, .. } => Some(key),
            other => {
                *state = other;
                None
            }
        }
    }
}

/// A message pushed from memory: one recipient, and the send it settles.
#[derive(Debug)]
pub struct LiveMessage {
    pub message: NewMessage,
    pub send: Arc<PendingSend>,
    pub slot: usize,
}

impl LiveMessage {
    pub fn key(&self) -> LiveKey {
        LiveKey::of(&self.message)
    }
}

/// What makes two sends the same message: sender device, client message id, recipient.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LiveKey {
    sender: DeviceAddress,
    client_message_id: ClientMessageId,
    recipient: DeviceAddress,
}

impl LiveKey {
    /// The key of a one-recipient message.
    pub fn of(message: &NewMessage) -> Self {
        Self {
            sender: message.sender.clone(),
            client_message_id: message.client_message_id,
            recipient: message.recipients[0].clone(),
        }
    }
}

/// A live message waiting for its acknowledgement, in the writer's list.
#[derive(Debug)]
struct Waiting {
    deadline: Instant,
    message: Arc<Live>,
    inbox: Arc<Inbox>,
}

/// The live messages routed to one device, oldest first, with their pumps' inboxes.
type RoutedTo = VecDeque<(Arc<Live>, Weak<Inbox>)>;

/// The writer's side of the live route: the messages in flight by key (the duplicate check),
/// the ones waiting for an acknowledgement in deadline order, and the ones a batch is storing.
#[derive(Debug, Default)]
pub struct LiveRoute {
    in_flight: HashMap<LiveKey, u32>,
    waiting: VecDeque<Waiting>,
    /// Moving average of the acknowledgement latency of live messages (1/16 per sample).
    ack_latency: Duration,
    /// The live messages routed to each device, oldest first (settled ones are dropped from
    /// the front as it goes): what must be stored before anything else is stored for it.
    by_device: HashMap<DeviceAddress, RoutedTo>,
    /// Pushed, and taken to be stored by the batch being committed, with the inbox of the
    /// pump that pushed them.
    storing: HashMap<LiveKey, (Arc<Live>, Weak<Inbox>)>,
}

/// What [`LiveRoute::route`] made of a send.
#[derive(Default)]
pub struct Routed {
    /// Messages an inbox refused after all (its pump stopped meanwhile): store them.
    pub refused: Vec<LiveMessage>,
    /// The send, when every message of it was a duplicate of one in flight.
    pub settled: Option<Settled>,
}

impl LiveRoute {
    /// The inboxes that take `messages` live: one per message, `None` for a repeat of a live
    /// message in flight. `None` when the send is to be stored: a message with several
    /// recipients (a group send), or a recipient without a caught-up pump here.
    pub fn inboxes(
        &self,
        handoff: &Handoff,
        messages: &[NewMessage],
    ) -> Option<Vec<Option<Arc<Inbox>>>> {
        let mut inboxes = Vec::with_capacity(messages.len());
        for message in messages {
            let [recipient] = message.recipients.as_slice() else {
                return None;
            };
            if self.in_flight.contains_key(&LiveKey::of(message)) {
                inboxes.push(None);
                continue;
            }
            let inbox = handoff.inbox(recipient)?;
            if !inbox.takes_live() {
                return None;
            }
            inboxes.push(Some(inbox));
        }
        Some(inboxes)
    }

    /// Routes `messages` live into `inboxes` (from [`LiveRoute::inboxes`]), to be settled
    /// through `send`.
    pub fn route(
        &mut self,
        messages: Vec<NewMessage>,
        inboxes: Vec<Option<Arc<Inbox>>>,
        send: &Arc<PendingSend>,
        now: Instant,
    ) -> Routed {
        let mut routed = Routed::default();
        for (slot, (message, inbox)) in messages.into_iter().zip(inboxes).enumerate() {
            let Some(inbox) = inbox else {
                // The same message is in flight already: accepted once, as the mailbox does.
                let duplicate = EnqueueOutcome::Stored {
                    new: Vec::new(),
                    duplicates: 1,
                };
                if let Some(settled) = send.settle(slot, duplicate) {
                    routed.settled = Some(settled);
                }
                continue;
            };
            let key = LiveKey::of(&message);
            let recipient = message.recipients[0].clone();
            // Never before the deadline ahead of it: the list stays in deadline order.
            let deadline = self
                .waiting
                .back()
                .map_or(now, |last| last.deadline.max(now))
                .max(now + self.wait());
            let live = Live::new(LiveMessage {
                message,
                send: send.clone(),
                slot,
            });
            match inbox.offer_live(live.clone()) {
                Ok(()) => {
                    *self.in_flight.entry(key).or_default() += 1;
                    let routed = self.by_device.entry(recipient).or_default();
                    while routed.front().is_some_and(|(live, _)| live.is_settled()) {
                        routed.pop_front();
                    }
                    routed.push_back((live.clone(), Arc::downgrade(&inbox)));
                    self.waiting.push_back(Waiting {
                        deadline,
                        message: live,
                        inbox,
                    });
                }
                Err(live) => routed.refused.extend(live.hand_back()),
            }
        }
        routed
    }

    /// How long a message routed now waits for its acknowledgement.
    pub fn wait(&self) -> Duration {
        (self.ack_latency * 4).clamp(LIVE_ACK_WAIT, MAX_LIVE_ACK_WAIT)
    }

    /// The device acknowledged `message` (in time or not): one latency sample.
    pub fn observe(&mut self, message: &Live) {
        let sample = message.routed_at.elapsed().min(MAX_LIVE_ACK_WAIT * 4);
        self.ack_latency = self.ack_latency - self.ack_latency / 16 + sample / 16;
    }

    /// A live message is settled, or stored and no longer pushed: it is no longer in flight.
    pub fn forget(&mut self, key: &LiveKey) {
        if let Some(count) = self.in_flight.get_mut(key) {
            *count -= 1;
            if *count == 0 {
                self.in_flight.remove(key);
            }
        }
    }

    /// When the first message waiting for its acknowledgement is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.waiting.front().map(|waiting| waiting.deadline)
    }

    /// Takes the messages whose wait is over at `now` to store them, in the order they were
    /// routed; each stays where it is (queued or pushed) and in flight until acknowledged, and
    /// its device takes no live message until it acknowledges something.
    pub fn expired(&mut self, now: Instant) -> Vec<LiveMessage> {
        let mut expired = Vec::new();
        while let Some(waiting) = self.waiting.front() {
            if waiting.deadline > now {
                break;
            }
            let Some(Waiting { message, inbox, .. }) = self.waiting.pop_front() else {
                break;
            };
            if message.is_settled() {
                continue;
            }
            // Its device is not reading: what comes next for it is stored at once, and so is
            // everything routed to it before this one.
            inbox.mark_slow();
            let recipient = message.recipient.clone();
            expired.extend(self.flush(&recipient));
        }
        expired
    }

    /// The pump of `held` stopped: takes back, in order, those neither settled nor stored (to
    /// store them plainly: no pump will push them), and lets them and the stored ones leave
    /// the in-flight keys.
    pub fn hand_back(&mut self, held: Vec<Arc<Live>>) -> Vec<LiveMessage> {
        let mut taken = Vec::new();
        for live in held {
            match live.hand_back() {
                Some(message) => {
                    self.forget(&message.key());
                    taken.push(message);
                }
                None => {
                    if let Some(key) = live.release() {
                        self.forget(&key);
                    }
                }
            }
            if let Some(routed) = self.by_device.get_mut(&live.recipient) {
                while routed.front().is_some_and(|(live, _)| live.is_settled()) {
                    routed.pop_front();
                }
                if routed.is_empty() {
                    self.by_device.remove(&live.recipient);
                }
            }
        }
        taken
    }

    /// Takes every live message routed to `recipient` and not yet settled or stored, oldest
    /// first, to store them in place (each stays queued or pushed, and in flight until
    /// acknowledged). Called before anything else is stored for `recipient`, so that its
    /// mailbox keeps the order the messages were sent in.
    pub fn flush(&mut self, recipient: &DeviceAddress) -> Vec<LiveMessage> {
        let Some(routed) = self.by_device.remove(recipient) else {
            return Vec::new();
        };
        let mut taken = Vec::new();
        for (live, inbox) in routed {
            if let Some(message) = live.take_to_store() {
                self.storing.insert(message.key(), (live, inbox));
                taken.push(message);
            }
        }
        taken
    }

    /// The batch storing the expired messages committed `entries`: records their delivery ids
    /// (an acknowledgement then deletes the entry) and returns the entries to hand to the
    /// pumps, theirs as [`Handed::Pushed`] (their pump pushes them from memory, or has).
    pub fn stored(&mut self, entries: Vec<StoredEntry>) -> Vec<(DeviceAddress, Handed)> {
        let handed = entries
            .into_iter()
            .map(|StoredEntry { recipient, entry }| {
                if !self.storing.is_empty()
                    && let QueuedItem::Envelope(envelope) = &entry.item
                {
                    let key = LiveKey {
                        sender: DeviceAddress {
                            address: envelope.sender.clone(),
                            device_id: envelope.sender_device_id,
                        },
                        client_message_id: envelope.client_message_id,
                        recipient: recipient.clone(),
                    };
                    if let Some((live, by)) = self.storing.remove(&key) {
                        live.stored(entry.delivery_id);
                        return (recipient, Handed::Pushed { entry, by });
                    }
                }
                (recipient, Handed::Stored(entry))
            })
            .collect();
        self.unstored();
        handed
    }

    /// The batch storing the expired messages is over: those no stored entry accounted for
    /// (duplicates, a failed commit) have nothing to delete when they are acknowledged.
    pub fn unstored(&mut self) {
        self.storing.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::super::inbox::Attached;
    use super::*;

    fn outcome(device_id: u32) -> EnqueueOutcome {
        EnqueueOutcome::Stored {
            new: vec![DeviceAddress {
                address: "bob@example.org".to_owned(),
                device_id,
            }],
            duplicates: 0,
        }
    }

    #[test]
    fn a_send_completes_once_every_slot_is_settled_in_slot_order() {
        let send = PendingSend::new(2, Box::new(|_| {}), Instant::now());
        assert!(send.settle(1, outcome(2)).is_none());
        assert!(send.settle(1, outcome(9)).is_none(), "settled twice");
        assert!(send.settle(5, outcome(9)).is_none(), "no such slot");
        let (_, outcomes, _) = send.settle(0, outcome(1)).expect("complete");
        assert_eq!(outcomes, [outcome(1), outcome(2)]);
    }

    #[test]
    fn a_send_dropped_unsettled_is_refused_once() {
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        let send = PendingSend::new(
            1,
            Box::new(move |result| {
                assert_eq!(result, Err(WriteError::Closed));
                seen.fetch_add(1, Ordering::SeqCst);
            }),
            Instant::now(),
        );
        drop(send);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    fn bob() -> DeviceAddress {
        DeviceAddress {
            address: "bob@example.org".to_owned(),
            device_id: 1,
        }
    }

    fn message(id: u8) -> NewMessage {
        NewMessage::for_tests(id, vec![bob()])
    }

    /// A route with message 1 routed live to Bob's caught-up pump: the route, the hand-off
    /// table, Bob's registration, and when it was routed.
    fn routed_to_bob() -> (LiveRoute, Arc<Handoff>, Attached, Instant) {
        let handoff = Arc::new(Handoff::default());
        let attached = handoff.attach(&bob());
        attached.inbox.caught_up();
        let mut route = LiveRoute::default();
        let now = Instant::now();
        let messages = vec![message(1)];
        let inboxes = route.inboxes(&handoff, &messages).expect("routed live");
        let send = PendingSend::new(1, Box::new(|_| {}), now);
        let routed = route.route(messages, inboxes, &send, now);
        assert!(routed.refused.is_empty());
        (route, handoff, attached, now)
    }

    /// As [`routed_to_bob`], then pushed by his pump and expired (taken to be stored): the
    /// route, the hand-off table, Bob's registration and the message.
    fn pushed_then_expired() -> (LiveRoute, Arc<Handoff>, Attached, Arc<Live>) {
        let (mut route, handoff, attached, now) = routed_to_bob();
        let taken = attached.inbox.take(0, 8);
        let Some(Handed::Live(live)) = taken.items.into_iter().next() else {
            panic!("not queued");
        };
        live.push().expect("pushed");
        assert!(route.inboxes(&handoff, &[message(1)]).expect("in flight")[0].is_none());
        let expired = route.expired(now + LIVE_ACK_WAIT);
        assert_eq!(expired.len(), 1);
        assert!(!attached.inbox.takes_live(), "waited in vain: not reading");
        (route, handoff, attached, live)
    }

    fn entry_of(message: &NewMessage, delivery_id: u64) -> StoredEntry {
        StoredEntry {
            recipient: bob(),
            entry: crate::store::Queued {
                delivery_id,
                item: QueuedItem::Envelope(message.envelope()),
            },
        }
    }

    #[test]
    fn a_stored_message_stays_in_flight_until_its_late_ack_deletes_it() {
        let (mut route, _handoff, attached, live) = pushed_then_expired();
        let handed = route.stored(vec![entry_of(&message(1), 7)]);
        assert!(
            matches!(handed[0].1, Handed::Pushed { .. }),
            "pushed already"
        );
        assert!(route.in_flight.contains_key(&LiveKey::of(&message(1))));
        let Acked::Delete(Some(7), key) = live.acknowledged() else {
            panic!("not a delete of entry 7");
        };
        route.forget(&key);
        assert!(route.in_flight.is_empty());
        drop(attached);
    }

    #[test]
    fn a_stored_message_is_released_once_by_its_stopping_pump() {
        let (mut route, _handoff, attached, live) = pushed_then_expired();
        // The pump stops while the batch commits: nothing to hand back, the key to release.
        let _ = attached.inbox.close();
        assert!(live.hand_back().is_none());
        route.forget(&live.release().expect("released by the pump"));
        route.stored(vec![entry_of(&message(1), 7)]);
        assert!(route.in_flight.is_empty());
        assert!(live.release().is_none(), "released once");
    }

    #[test]
    fn a_queued_message_stored_after_its_wait_is_still_pushed_in_its_place() {
        let (mut route, handoff, attached, now) = routed_to_bob();
        assert_eq!(route.expired(now + LIVE_ACK_WAIT).len(), 1);
        let handed = route.stored(vec![entry_of(&message(1), 3)]);
        handoff.deliver(handed);
        let taken = attached.inbox.take(2, 8);
        let [Handed::Live(live), Handed::Pushed { entry, .. }] = taken.items.as_slice() else {
            panic!("not the message then its marker: {:?}", taken.items);
        };
        assert_eq!(entry.delivery_id, 3);
        assert_eq!(live.push().expect("pushed in its place").body, [1]);
        assert!(live.push().is_none(), "once");
        assert!(matches!(live.acknowledged(), Acked::Delete(Some(3), _)));
    }

    #[test]
    fn the_wait_follows_the_acknowledgement_latency_within_its_bounds() {
        let mut route = LiveRoute::default();
        assert_eq!(route.wait(), LIVE_ACK_WAIT);
        let slow = Live::new(LiveMessage {
            message: message(1),
            send: PendingSend::new(1, Box::new(|_| {}), Instant::now()),
            slot: 0,
        });
        std::thread::sleep(Duration::from_millis(60));
        for _ in 0..64 {
            route.observe(&slow);
        }
        // About 60 ms four times over, within the bounds.
        assert!(
            route.wait() > Duration::from_millis(200),
            "{:?}",
            route.wait()
        );
        assert!(route.wait() <= MAX_LIVE_ACK_WAIT);
    }
}
