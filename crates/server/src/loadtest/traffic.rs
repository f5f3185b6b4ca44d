//! The message traffic of one load client: keep up to `window` sends in flight to the other
//! devices, acknowledge what is delivered (batched, as a real client does), and tally
//! acceptance (`Sent`, i.e. after the server's commit), delivery latency and receipts.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use confianza_api::limits::MAX_ACKS_PER_FRAME;
use confianza_api::{
    CiphertextType, ClientMessageId, DeliveryItem, OutgoingEnvelope, RequestBody, Response,
    ResponseBody, ServerFrame,
};
use tokio_util::sync::CancellationToken;

use super::client::Connection;
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
    let mut in_flight: HashMap<u64, Instant> = HashMap::with_capacity(plan.window);
    let mut sequence: u64 = 0;
    let mut cursor: usize = 0;
    let mut sending = true;
    let mut done_reported = false;
    let mut acks: Vec<u64> = Vec::with_capacity(MAX_ACKS_PER_FRAME);
    let mut body = vec![0u8; plan.payload.max(BODY_HEADER_LEN)];
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
                let since_epoch = now.saturating_duration_since(plan.epoch).as_micros();
                body[..8]
                    .copy_from_slice(&u64::try_from(since_epoch).unwrap_or(u64::MAX).to_be_bytes());
                body[8..16].copy_from_slice(&sequence.to_be_bytes());
                let request = RequestBody::Send {
                    recipient: recipient.address.clone(),
                    envelopes: vec![OutgoingEnvelope {
                        device_id: recipient.device_id,
                        registration_id: recipient.registration_id,
                        ciphertext_type: CiphertextType::Whisper,
                        body: body.clone(),
                        client_message_id: message_id(plan.run_salt, plan.index, sequence),
                    }],
                };
                sequence += 1;
                // Queued: the whole window refill leaves in one write below.
                match connection.queue_request(request) {
                    Ok(id) => {
                        in_flight.insert(id, now);
                    }
                    Err(error) => {
                        tally.failure = Some(error.to_string());
                        return finish(tally, !done_reported, &progress);
                    }
                }
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
            && let Err(error) = connection.queue_ack(std::mem::take(&mut acks))
        {
            tally.failure = Some(error.to_string());
            return finish(tally, !done_reported, &progress);
        }
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
    in_flight: &mut HashMap<u64, Instant>,
    tally: &mut ClientTally,
    acks: &mut Vec<u64>,
    counted: &mut Counted,
) {
    match frame {
        ServerFrame::Response(Response { id, result }) => {
            let Some(sent_at) = in_flight.remove(&id) else {
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
