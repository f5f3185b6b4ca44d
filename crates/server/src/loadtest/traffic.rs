//! The message traffic of one load client: keep up to `window` sends in flight to the other
//! devices, acknowledge what is delivered (batched, as a real client does), and tally
//! acceptance (`Sent`, i.e. after the server's commit), delivery latency and receipts.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use confianza_api::limits::MAX_ACKS_PER_FRAME;
use confianza_api::{
    CiphertextType, ClientFrame, ClientMessageId, DeliveryItem, OutgoingEnvelope, Request,
    RequestBody, Response, ResponseBody, ServerFrame,
};
use tokio_util::sync::CancellationToken;

use super::client::{ClientError, Connection};
use super::stats::{ClientTally, micros_between};

/// Bytes at the start of every body: the send instant (µs since the run's epoch) and the
/// sender's sequence number, so the receiver measures latency without a shared table.
pub const BODY_HEADER_LEN: usize = 16;

/// A device messages can be sent to.
#[derive(Debug, Clone)]
pub struct Recipient {
    pub address: String,
    pub device_id: u32,
    pub registration_id: u32,
}

/// How much one client sends.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    /// This many messages.
    Messages(u64),
    /// Until this instant.
    Until(Instant),
}

/// Counters shared by every client of a run.
#[derive(Debug, Default)]
pub struct Progress {
    /// Envelopes newly stored (`Sent`, accepted).
    pub accepted: AtomicU64,
    /// Envelopes delivered to recipients.
    pub delivered: AtomicU64,
    /// Messages confirmed to their senders by delivery receipts (one receipt may name several).
    pub receipted: AtomicU64,
    /// Clients whose sending is over (budget spent and every send answered).
    pub senders_done: AtomicU64,
}

/// One client's part of the run.
#[derive(Debug)]
pub struct Plan {
    /// This client's index (in the client message ids).
    pub index: u32,
    /// The devices it sends to, in turn.
    pub recipients: Arc<Vec<Recipient>>,
    /// Skip this index in `recipients` (the client itself).
    pub skip: Option<usize>,
    pub budget: Budget,
    pub payload: usize,
    /// Sends in flight at most.
    pub window: usize,
    /// Random bytes of the run, in every client message id.
    pub run_salt: [u8; 4],
    /// The run's time origin, for the instants carried in bodies.
    pub epoch: Instant,
}

/// Runs one client until `stop`; returns its tally. Sending ends with the budget; receiving
/// (deliveries, receipts) goes on until `stop` is cancelled.
pub async fn drive(
    mut connection: Connection,
    plan: Plan,
    progress: Arc<Progress>,
    stop: CancellationToken,
) -> ClientTally {
    let mut tally = ClientTally::default();
    if let Budget::Messages(count) = plan.budget {
        let expected = usize::try_from(count)
            .unwrap_or(0)
            .min(MAX_RESERVED_SAMPLES);
        tally.accept_latency_us.reserve(expected);
        tally.delivery_latency_us.reserve(expected);
    }
    let mut in_flight = InFlight::with_capacity(plan.window);
    let mut sends = SendFrame::new(plan.payload);
    let mut sequence: u64 = 0;
    let mut cursor: usize = 0;
    let mut sending = true;
    let mut done_reported = false;
    let mut acks: Vec<u64> = Vec::with_capacity(MAX_ACKS_PER_FRAME);
    loop {
        if sending {
            while in_flight.len() < plan.window {
                let more = match plan.budget {
                    Budget::Messages(count) => sequence < count,
                    Budget::Until(deadline) => Instant::now() < deadline,
                };
                if !more {
                    sending = false;
                    break;
                }
                let Some(recipient) = next_recipient(&plan, &mut cursor) else {
                    sending = false;
                    break;
                };
                let now = Instant::now();
                let id = connection.next_request_id();
                // Queued: the whole window refill leaves in one write below.
                let queued = sends.queue(&mut connection, id, recipient, &plan, sequence, now);
                sequence += 1;
                if let Err(error) = queued {
                    tally.failure = Some(error.to_string());
                    return finish(tally, !done_reported, &progress);
                }
                in_flight.insert(id, now);
            }
        }
        if let Err(error) = connection.flush().await {
            tally.failure = Some(error.to_string());
            return finish(tally, !done_reported, &progress);
        }
        if !done_reported && !sending && in_flight.is_empty() {
            done_reported = true;
            progress.senders_done.fetch_add(1, Ordering::Relaxed);
        }
        let first = tokio::select! {
            biased;
            () = stop.cancelled() => return tally,
            frame = connection.next_frame() => frame,
        };
        let mut frame = match first {
            Ok(frame) => Some(frame),
            Err(error) => {
                tally.failure = Some(error.to_string());
                return finish(tally, !done_reported, &progress);
            }
        };
        // Take what has arrived already, then acknowledge it in one frame; the shared
        // counters are updated once per burst, not per frame.
        let mut counted = Counted::default();
        while let Some((frame_now, at)) = frame.take() {
            handle(
                frame_now,
                at,
                &plan,
                &mut in_flight,
                &mut tally,
                &mut acks,
                &mut counted,
            );
            if acks.len() >= MAX_ACKS_PER_FRAME {
                break;
            }
            frame = connection.try_next_frame();
        }
        counted.publish(&progress);
        // Queued: it leaves with the next window refill, in the same write.
        if !acks.is_empty()
            && let Err(error) = queue_acks(&mut connection, &mut acks)
        {
            tally.failure = Some(error.to_string());
            return finish(tally, !done_reported, &progress);
        }
    }
}

/// Latency samples reserved up front per client (more grow the vectors as needed).
const MAX_RESERVED_SAMPLES: usize = 1 << 16;

/// The parts of a client's `Send` requests, refilled in place for every message and lent to
/// each frame while it is encoded, so that the recipient, envelope and body keep their
/// allocations from one message to the next.
struct SendFrame {
    recipient: String,
    envelopes: Vec<OutgoingEnvelope>,
    payload: usize,
}

impl SendFrame {
    fn new(payload: usize) -> Self {
        Self {
            recipient: String::new(),
            envelopes: Vec::with_capacity(1),
            payload: payload.max(BODY_HEADER_LEN),
        }
    }

    /// Queues request `id` on `connection`: message `sequence` to `recipient`, stamped `now`.
    fn queue(
        &mut self,
        connection: &mut Connection,
        id: u64,
        recipient: &Recipient,
        plan: &Plan,
        sequence: u64,
        now: Instant,
    ) -> Result<(), ClientError> {
        self.recipient.clear();
        self.recipient.push_str(&recipient.address);
        if self.envelopes.is_empty() {
            self.envelopes.push(OutgoingEnvelope {
                device_id: 0,
                registration_id: 0,
                ciphertext_type: CiphertextType::Whisper,
                body: vec![0u8; self.payload],
                client_message_id: [0; 16],
            });
        }
        let since_epoch = now.saturating_duration_since(plan.epoch).as_micros();
        let stamp = u64::try_from(since_epoch).unwrap_or(u64::MAX);
        for envelope in &mut self.envelopes {
            envelope.device_id = recipient.device_id;
            envelope.registration_id = recipient.registration_id;
            envelope.client_message_id = message_id(plan.run_salt, plan.index, sequence);
            envelope.body[..8].copy_from_slice(&stamp.to_be_bytes());
            envelope.body[8..16].copy_from_slice(&sequence.to_be_bytes());
        }
        let frame = ClientFrame::request(
            id,
            RequestBody::Send {
                recipient: std::mem::take(&mut self.recipient),
                envelopes: std::mem::take(&mut self.envelopes),
            },
        );
        let queued = connection.queue_frame(&frame);
        if let ClientFrame::Request(Request {
            body:
                RequestBody::Send {
                    recipient,
                    envelopes,
                },
            ..
        }) = frame
        {
            self.recipient = recipient;
            self.envelopes = envelopes;
        }
        queued
    }
}

/// Queues one acknowledgement of `delivery_ids` (emptied, its allocation kept).
fn queue_acks(connection: &mut Connection, delivery_ids: &mut Vec<u64>) -> Result<(), ClientError> {
    let frame = ClientFrame::Ack {
        delivery_ids: std::mem::take(delivery_ids),
    };
    let queued = connection.queue_frame(&frame);
    if let ClientFrame::Ack {
        delivery_ids: mut returned,
    } = frame
    {
        returned.clear();
        *delivery_ids = returned;
    }
    queued
}

/// The sends of one client waiting for their answer, by request id. Ids are handed out in
/// increasing order, so the table is a queue starting at the oldest unanswered id: no hashing,
/// and answered slots at the front are dropped as the oldest ones are answered.
#[derive(Debug)]
struct InFlight {
    /// The request id of `slots[0]`.
    first: u64,
    slots: VecDeque<Option<Instant>>,
    len: usize,
}

impl InFlight {
    fn with_capacity(window: usize) -> Self {
        Self {
            first: 0,
            slots: VecDeque::with_capacity(window),
            len: 0,
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Records request `id`, sent at `at`; ids must grow (an older id is ignored).
    fn insert(&mut self, id: u64, at: Instant) {
        if self.slots.is_empty() {
            self.first = id;
        }
        let Some(offset) = id
            .checked_sub(self.first)
            .and_then(|offset| usize::try_from(offset).ok())
        else {
            return;
        };
        if offset < self.slots.len() {
            return;
        }
        // Ids not used for sends (none today) leave empty slots.
        self.slots.resize(offset, None);
        self.slots.push_back(Some(at));
        self.len += 1;
    }

    /// The send instant of request `id`, which is no longer in flight; `None` for an id that
    /// is not (a duplicate or unknown answer).
    fn remove(&mut self, id: u64) -> Option<Instant> {
        let offset = usize::try_from(id.checked_sub(self.first)?).ok()?;
        let sent = self.slots.get_mut(offset)?.take()?;
        self.len -= 1;
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.first += 1;
        }
        Some(sent)
    }
}

/// Ends a client early: it still counts as done sending, so the run does not wait for it.
fn finish(tally: ClientTally, not_reported: bool, progress: &Progress) -> ClientTally {
    if not_reported {
        progress.senders_done.fetch_add(1, Ordering::Relaxed);
    }
    tally
}

fn next_recipient<'a>(plan: &'a Plan, cursor: &mut usize) -> Option<&'a Recipient> {
    let count = plan.recipients.len();
    for _ in 0..count {
        let index = *cursor % count;
        *cursor = cursor.wrapping_add(1);
        if Some(index) != plan.skip {
            return plan.recipients.get(index);
        }
    }
    None
}

/// The client message id of message `sequence` of client `index`: unique in the run.
pub fn message_id(salt: [u8; 4], index: u32, sequence: u64) -> ClientMessageId {
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(&salt);
    id[4..8].copy_from_slice(&index.to_be_bytes());
    id[8..].copy_from_slice(&sequence.to_be_bytes());
    id
}

/// What one burst of frames adds to the run's shared [`Progress`].
#[derive(Debug, Default)]
struct Counted {
    accepted: u64,
    delivered: u64,
    receipted: u64,
}

impl Counted {
    fn publish(&self, progress: &Progress) {
        if self.accepted > 0 {
            progress
                .accepted
                .fetch_add(self.accepted, Ordering::Relaxed);
        }
        if self.delivered > 0 {
            progress
                .delivered
                .fetch_add(self.delivered, Ordering::Relaxed);
        }
        if self.receipted > 0 {
            progress
                .receipted
                .fetch_add(self.receipted, Ordering::Relaxed);
        }
    }
}

fn handle(
    frame: ServerFrame,
    at: Instant,
    plan: &Plan,
    in_flight: &mut InFlight,
    tally: &mut ClientTally,
    acks: &mut Vec<u64>,
    counted: &mut Counted,
) {
    match frame {
        ServerFrame::Response(Response { id, result }) => {
            let Some(sent_at) = in_flight.remove(id) else {
                return;
            };
            match result {
                Ok(ResponseBody::Sent {
                    accepted,
                    duplicates,
                    ..
                }) => {
                    tally.accepted += u64::from(accepted);
                    tally.duplicates += u64::from(duplicates);
                    tally.accept_latency_us.push(micros_between(sent_at, at));
                    tally.last_accepted = Some(at);
                    counted.accepted += u64::from(accepted);
                }
                Ok(_) => *tally.refused.entry("unexpected answer".into()).or_default() += 1,
                Err(error) => *tally.refused.entry(error.code.to_string()).or_default() += 1,
            }
        }
        ServerFrame::Delivery(delivery) => {
            acks.push(delivery.id);
            match delivery.item {
                DeliveryItem::Envelope(envelope) => {
                    tally.delivered += 1;
                    tally.last_delivered = Some(at);
                    counted.delivered += 1;
                    if let Some(stamp) = envelope.body.get(..8) {
                        let mut micros = [0u8; 8];
                        micros.copy_from_slice(stamp);
                        let sent = plan.epoch
                            + std::time::Duration::from_micros(u64::from_be_bytes(micros));
                        tally.delivery_latency_us.push(micros_between(sent, at));
                    }
                }
                DeliveryItem::Receipt(receipt) => {
                    let named = receipt.client_message_ids.len() as u64;
                    tally.receipts += named;
                    counted.receipted += named;
                }
            }
        }
        ServerFrame::Notice(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn answers_find_their_sends_in_any_order_and_once() {
        let at = Instant::now();
        let later = at + Duration::from_millis(1);
        let mut table = InFlight::with_capacity(4);
        for id in 1..=4 {
            table.insert(id, if id == 3 { later } else { at });
        }
        assert_eq!(table.len(), 4);
        assert_eq!(table.remove(3), Some(later));
        // Answered twice, or never sent.
        assert_eq!(table.remove(3), None);
        assert_eq!(table.remove(9), None);
        assert_eq!(table.remove(0), None);
        assert_eq!(table.remove(1), Some(at));
        table.insert(5, at);
        assert_eq!(table.len(), 3);
        for id in [2, 4, 5] {
            assert_eq!(table.remove(id), Some(at));
        }
        assert!(table.is_empty());
        // An id older than the oldest in flight is not taken.
        table.insert(6, at);
        table.insert(2, at);
        assert_eq!(table.len(), 1);
    }
}
