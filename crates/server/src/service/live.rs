//! Live relay: a one-to-one message for a device whose pump runs on this node, caught up with
//! its mailbox, is pushed **from memory** at once, and stored only if the device has not
//! acknowledged it within [`LIVE_ACK_WAIT`]. The sender is answered when the device
//! acknowledges it (the recipient then holds it durably: the promise "stored durably before
//! the sender gets its acknowledgement" is kept by the recipient instead of the database, and
//! the relay costs the store nothing), or else once the writer has stored it.
//!
//! A live message still unacknowledged when its connection goes (in the inbox, or pushed and
//! in the window) is handed back to the writer, which stores it like any send and answers
//! the sender then; a graceful shutdown does the same before the writer stops. A crash loses
//! only live messages whose senders were not answered: they send them again.
//!
//! The writer keeps the live messages in flight by sender, client message id and recipient,
//! so a repeat sent while the first is in flight is answered as a duplicate and not pushed
//! twice (as the mailbox does while an entry is queued).

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

/// How long a live message waits for the device's acknowledgement before the writer stores it
/// (and answers its sender after that commit). Long enough for a connected device under load
/// to acknowledge (the load test's p99 from send to delivery is about 50 ms), short enough to
/// go unnoticed by a sender whose recipient is connected but not reading; such a recipient
/// then takes no live message until it acknowledges something, so the wait is paid once.
pub const LIVE_ACK_WAIT: Duration = Duration::from_millis(100);

/// Where a live message is: the pump, the writer and the acknowledging reader each move it on
/// under its lock, so exactly one of them settles it.
#[derive(Debug)]
enum LiveState {
    /// In an inbox's queue, not pushed yet.
    Queued(LiveMessage),
    /// Pushed from memory, not acknowledged yet.
    Pushed(LiveMessage),
    /// Pushed, then stored in the mailbox (after its wait, unacknowledged) under this delivery
    /// id, if the store told it: an acknowledgement now deletes that entry. Its key stays in
    /// flight until then, so that a repeat is not pushed again.
    Stored(Option<u64>, LiveKey),
    /// Settled: acknowledged, handed back, or being stored by the writer.
    Done,
}

/// One live message on its way ([`LiveState`]): shared by the writer, the inbox and the
/// window of the recipient's connection.
#[derive(Debug)]
pub struct Live {
    state: Mutex<LiveState>,
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
            state: Mutex::new(LiveState::Queued(message)),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LiveState> {
        // Each update is one replacement: a panicked holder leaves it consistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The envelope to push, if it is still queued (the writer may have taken it to store
    /// meanwhile: then the mailbox delivers it); marks it pushed.
    pub fn push(&self) -> Option<Envelope> {
        let mut state = self.lock();
        if !matches!(*state, LiveState::Queued(_)) {
            return None;
        }
        let LiveState::Queued(message) = std::mem::replace(&mut *state, LiveState::Done) else {
            return None;
        };
        let envelope = message.envelope();
        *state = LiveState::Pushed(message);
        Some(envelope)
    }

    /// The device acknowledged it.
    pub fn acknowledged(&self) -> Acked {
        let mut state = self.lock();
        match std::mem::replace(&mut *state, LiveState::Done) {
            LiveState::Queued(message) | LiveState::Pushed(message) => Acked::Settle(message),
            LiveState::Stored(delivery_id, key) => Acked::Delete(delivery_id, key),
            LiveState::Done => Acked::Nothing,
        }
    }

    /// Takes the message to store it (its wait is over, or its connection went), with
    /// whether it was pushed already; `None` once it is settled or taken.
    pub fn take(&self) -> Option<(LiveMessage, bool)> {
        let mut state = self.lock();
        match std::mem::replace(&mut *state, LiveState::Done) {
            LiveState::Queued(message) => Some((message, false)),
            LiveState::Pushed(message) => Some((message, true)),
            other => {
                *state = other;
                None
            }
        }
    }

    /// The writer stored it, pushed already, under `delivery_id` (`None`: unknown, stored as
    /// a duplicate, or the commit failed).
    fn stored(&self, delivery_id: Option<u64>, key: LiveKey) {
        *self.lock() = LiveState::Stored(delivery_id, key);
    }

    /// Its connection went: the key of a message stored while it was pushed, which is no
    /// longer in flight. (Messages still pushed or queued are [`Live::take`]n instead.)
    pub fn release(&self) -> Option<LiveKey> {
        let mut state = self.lock();
        match std::mem::replace(&mut *state, LiveState::Done) {
            LiveState::Stored(_, key) => Some(key),
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
    /// The envelope pushed to the recipient.
    pub fn envelope(&self) -> Envelope {
        let message = &self.message;
        Envelope {
            sender: message.sender.address.clone(),
            sender_device_id: message.sender.device_id,
            ciphertext_type: message.ciphertext_type,
            body: message.body.clone(),
            client_message_id: message.client_message_id,
            server_timestamp_ms: message.server_timestamp_ms,
            group_id: message.group_id,
        }
    }

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

/// The writer's side of the live route: the messages in flight by key (the duplicate check),
/// the ones waiting for an acknowledgement in deadline order, and the ones a batch is storing.
#[derive(Debug, Default)]
pub struct LiveRoute {
    in_flight: HashMap<LiveKey, u32>,
    waiting: VecDeque<Waiting>,
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
            let live = Live::new(LiveMessage {
                message,
                send: send.clone(),
                slot,
            });
            match inbox.offer_live(live.clone()) {
                Ok(()) => {
                    *self.in_flight.entry(key).or_default() += 1;
                    self.waiting.push_back(Waiting {
                        deadline: now + LIVE_ACK_WAIT,
                        message: live,
                        inbox,
                    });
                }
                Err(live) => routed
                    .refused
                    .extend(live.take().map(|(message, _)| message)),
            }
        }
        routed
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

    /// Takes the messages whose wait is over at `now` to store them: each one pushed and
    /// unacknowledged, and for one still queued, every live message of its inbox's queue (in
    /// order; the inbox then takes none until its pump has read the mailbox again).
    pub fn expired(&mut self, now: Instant) -> Vec<LiveMessage> {
        let mut expired = Vec::new();
        while let Some(waiting) = self.waiting.front() {
            if waiting.deadline > now {
                break;
            }
            let Some(Waiting { message, inbox, .. }) = self.waiting.pop_front() else {
                break;
            };
            let Some((first, pushed)) = message.take() else {
                continue;
            };
            // Not reading: what comes next for it is stored at once.
            inbox.mark_slow();
            let mut taken = vec![(message, first, pushed)];
            if !pushed {
                for queued in inbox.reclaim() {
                    if let Some((later, pushed)) = queued.take() {
                        taken.push((queued, later, pushed));
                    }
                }
            }
            for (live, message, pushed) in taken {
                if pushed {
                    // Pushed: in flight until acknowledged ([`LiveState::Stored`]).
                    self.storing
                        .insert(message.key(), (live, Arc::downgrade(&inbox)));
                } else {
                    // Back in the mailbox's hands: the store's duplicate check covers it.
                    self.forget(&message.key());
                }
                expired.push(message);
            }
        }
        expired
    }

    /// The batch storing the expired messages committed `entries`: records the delivery ids
    /// of the ones pushed already (an acknowledgement then deletes the entry) and returns the
    /// entries to hand to the pumps, those as [`Handed::Pushed`].
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
                        live.stored(Some(entry.delivery_id), key);
                        return (recipient, Handed::Pushed { entry, by });
                    }
                }
                (recipient, Handed::Stored(entry))
            })
            .collect();
        self.unstored();
        handed
    }

    /// The pushed expired messages of the batch just committed (or failed) that no stored
    /// entry accounts for: nothing to delete when they are acknowledged.
    pub fn unstored(&mut self) {
        for (key, (live, _)) in self.storing.drain() {
            live.stored(None, key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

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
}
