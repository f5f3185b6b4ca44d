//! The single writer: every connection's sends **and acknowledgements** go through one task
//! that commits them in batches (group commit). It takes everything queued, deletes the
//! acknowledged entries, stores the sends with **one** [`MessageStore::enqueue`] call (one
//! transaction, one fsync) and the delivery receipts the acknowledgements owe with one
//! [`MessageStore::enqueue_receipts`] call, then answers each connection and wakes the
//! recipients. Under load a commit carries many sends, so durability costs one fsync per batch
//! instead of one per message; when idle a send is committed alone at once.
//!
//! Because nothing else on the delivery path writes, the writer never waits for the database's
//! write lock (SQLite has one, and its busy handler sleeps in millisecond steps).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use confianza_api::limits::MAX_RECEIPT_IDS;
use confianza_api::{ClientMessageId, DeliveryReceipt};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::events::{Event, EventBus};
use super::limits::{MAX_WRITER_BATCH, WRITER_QUEUE_LEN};
use super::metrics::Metrics;
use super::state::unix_ms;
use crate::store::{DeviceAddress, EnqueueOutcome, MessageStore, NewMessage, NewReceipt};

/// The writer could not store a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The commit failed (details are in the server log); nothing of the batch is stored.
    #[error("the messages could not be stored")]
    Failed,
    /// The writer has stopped: the server is shutting down.
    #[error("the server is shutting down")]
    Closed,
}

/// What one send asked the writer to store, and where to answer.
struct SendJob {
    messages: Vec<NewMessage>,
    reply: oneshot::Sender<Result<Vec<EnqueueOutcome>, WriteError>>,
    queued_at: Instant,
}

/// What one `Ack` frame asked the writer to delete, and where to answer.
struct AckJob {
    device: DeviceAddress,
    delivery_ids: Vec<u64>,
    /// How long the delivery receipts owed for these entries wait unread before expiry.
    receipt_ttl: Duration,
    reply: oneshot::Sender<Result<(), WriteError>>,
}

/// One unit of work for the writer.
enum Job {
    Send(SendJob),
    Ack(AckJob),
}

impl Job {
    /// How much this job weighs against [`MAX_WRITER_BATCH`].
    fn weight(&self) -> usize {
        match self {
            Self::Send(send) => send.messages.len(),
            Self::Ack(ack) => ack.delivery_ids.len(),
        }
    }
}

/// A handle to submit sends to the writer. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
    metrics: Metrics,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

/// The answer to a submitted send, once committed.
pub type Committed = oneshot::Receiver<Result<Vec<EnqueueOutcome>, WriteError>>;

/// Where a job's outcomes go: how many messages it had, its reply channel, when it queued.
type Answer = (
    usize,
    oneshot::Sender<Result<Vec<EnqueueOutcome>, WriteError>>,
    Instant,
);

impl Writer {
    /// Queues `messages` (stored in one transaction with the rest of their batch, in order)
    /// and returns where their outcomes will arrive. Sends submitted one after another by the
    /// same task are committed in that order. Waits while the queue is full.
    pub async fn submit(&self, messages: Vec<NewMessage>) -> Result<Committed, WriteError> {
        let (reply, committed) = oneshot::channel();
        self.queue(Job::Send(SendJob {
            messages,
            reply,
            queued_at: Instant::now(),
        }))
        .await?;
        Ok(committed)
    }

    /// Deletes `device`'s acknowledged entries `delivery_ids` in the next batch (ids it does not
    /// hold are ignored) and queues the delivery receipts owed to their senders, expiring after
    /// `receipt_ttl`. Returns once the deletion is committed. A receipt that cannot be stored
    /// is logged and dropped: it costs a sender a "delivered" mark, never a message.
    pub async fn acknowledge(
        &self,
        device: DeviceAddress,
        delivery_ids: Vec<u64>,
        receipt_ttl: Duration,
    ) -> Result<(), WriteError> {
        let (reply, done) = oneshot::channel();
        self.queue(Job::Ack(AckJob {
            device,
            delivery_ids,
            receipt_ttl,
            reply,
        }))
        .await?;
        done.await.map_err(|_| WriteError::Closed)?
    }

    async fn queue(&self, job: Job) -> Result<(), WriteError> {
        self.metrics.writer_queue_depth.inc();
        if self.jobs.send(job).await.is_err() {
            self.metrics.writer_queue_depth.dec();
            return Err(WriteError::Closed);
        }
        Ok(())
    }
}

/// Starts the writer. It runs until `stop` is cancelled **and** every send queued by then is
/// committed and answered.
pub fn spawn<S: MessageStore + Clone>(
    store: S,
    bus: Arc<dyn EventBus>,
    metrics: Metrics,
    max_queue: u64,
    stop: CancellationToken,
) -> (Writer, JoinHandle<()>) {
    let (jobs, receiver) = mpsc::channel(WRITER_QUEUE_LEN);
    let writer = Writer {
        jobs,
        metrics: metrics.clone(),
    };
    let task = tokio::spawn(run(store, bus, metrics, max_queue, receiver, stop));
    (writer, task)
}

async fn run<S: MessageStore>(
    store: S,
    bus: Arc<dyn EventBus>,
    metrics: Metrics,
    max_queue: u64,
    mut receiver: mpsc::Receiver<Job>,
    stop: CancellationToken,
) {
    let mut stopping = false;
    loop {
        let first = tokio::select! {
            biased;
            job = receiver.recv() => job,
            () = stop.cancelled(), if !stopping => {
                // No new sends; the ones already queued are still committed below.
                receiver.close();
                stopping = true;
                continue;
            }
        };
        let Some(first) = first else {
            break;
        };
        let mut count = first.weight();
        let mut batch = vec![first];
        while count < MAX_WRITER_BATCH {
            match receiver.try_recv() {
                Ok(job) => {
                    count += job.weight();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        commit(&store, bus.as_ref(), &metrics, max_queue, batch).await;
    }
    tracing::debug!("writer stopped: every queued send is committed");
}

async fn commit<S: MessageStore>(
    store: &S,
    bus: &dyn EventBus,
    metrics: &Metrics,
    max_queue: u64,
    batch: Vec<Job>,
) {
    metrics.writer_queue_depth.dec_by(batch.len() as i64);
    let mut sends = Vec::with_capacity(batch.len());
    let mut acks = Vec::new();
    for job in batch {
        match job {
            Job::Send(send) => sends.push(send),
            Job::Ack(ack) => acks.push(ack),
        }
    }
    let mut woken = BTreeSet::new();
    // Acknowledgements first: they free queue room the sends of the same batch may need.
    if !acks.is_empty() {
        acknowledge(store, metrics, acks, &mut woken).await;
    }
    if !sends.is_empty() {
        store_sends(store, metrics, max_queue, sends, &mut woken).await;
    }
    if !woken.is_empty() {
        bus.publish(woken.into_iter().map(Event::Mailbox).collect());
    }
}

/// Deletes the acknowledged entries, then stores every receipt they owe with one call.
async fn acknowledge<S: MessageStore>(
    store: &S,
    metrics: &Metrics,
    acks: Vec<AckJob>,
    woken: &mut BTreeSet<DeviceAddress>,
) {
    let now = SystemTime::now();
    let timestamp = unix_ms(now);
    let mut receipts = Vec::new();
    let mut receipt_senders = BTreeSet::new();
    let mut replies = Vec::with_capacity(acks.len());
    for ack in acks {
        let acknowledged = match store.acknowledge(&ack.device, &ack.delivery_ids).await {
            Ok(acknowledged) => acknowledged,
            Err(error) => {
                tracing::error!(%error, address = %ack.device.address, device = ack.device.device_id, "deleting acknowledged entries failed");
                let _ = ack.reply.send(Err(WriteError::Failed));
                continue;
            }
        };
        metrics
            .messages_acknowledged_total
            .inc_by(ack.delivery_ids.len() as u64);
        let mut by_sender: BTreeMap<DeviceAddress, Vec<ClientMessageId>> = BTreeMap::new();
        for entry in acknowledged {
            if entry.sender != ack.device {
                by_sender
                    .entry(entry.sender)
                    .or_default()
                    .push(entry.client_message_id);
            }
        }
        let expires = unix_ms(now + ack.receipt_ttl);
        for (sender, ids) in by_sender {
            for chunk in ids.chunks(MAX_RECEIPT_IDS) {
                receipts.push(NewReceipt {
                    to: sender.clone(),
                    receipt: DeliveryReceipt {
                        recipient: ack.device.address.clone(),
                        recipient_device_id: ack.device.device_id,
                        client_message_ids: chunk.to_vec(),
                        server_timestamp_ms: timestamp,
                    },
                    expires_at_ms: expires,
                });
            }
            receipt_senders.insert(sender);
        }
        replies.push(ack.reply);
    }
    if !receipts.is_empty() {
        // The messages are delivered and deleted; a lost receipt costs the sender a
        // "delivered" mark, not a message, so a failure here is logged and the batch goes on.
        match store.enqueue_receipts(&receipts).await {
            Ok(()) => woken.extend(receipt_senders),
            Err(error) => tracing::error!(%error, "storing delivery receipts failed"),
        }
    }
    for reply in replies {
        // The connection may have gone: the entries are deleted all the same.
        let _ = reply.send(Ok(()));
    }
}

/// Stores the sends of a batch with one [`MessageStore::enqueue`] call and answers them.
async fn store_sends<S: MessageStore>(
    store: &S,
    metrics: &Metrics,
    max_queue: u64,
    sends: Vec<SendJob>,
    woken: &mut BTreeSet<DeviceAddress>,
) {
    let mut messages = Vec::with_capacity(sends.iter().map(|job| job.messages.len()).sum());
    let mut answers = Vec::with_capacity(sends.len());
    for job in sends {
        let count = job.messages.len();
        messages.extend(job.messages);
        answers.push((count, job.reply, job.queued_at));
    }
    metrics.writer_batch_size.observe(messages.len() as f64);
    let result = if messages.is_empty() {
        Ok(Vec::new())
    } else {
        store.enqueue(&messages, max_queue).await
    };
    let mut outcomes = match result {
        Ok(outcomes) if outcomes.len() == messages.len() => outcomes.into_iter(),
        Ok(outcomes) => {
            tracing::error!(
                expected = messages.len(),
                got = outcomes.len(),
                "the store answered a batch with the wrong number of outcomes"
            );
            fail_all(answers, WriteError::Failed);
            return;
        }
        Err(error) => {
            tracing::error!(%error, messages = messages.len(), "committing a batch of sends failed");
            fail_all(answers, WriteError::Failed);
            return;
        }
    };
    for (count, reply, queued_at) in answers {
        let mine: Vec<EnqueueOutcome> = outcomes.by_ref().take(count).collect();
        for outcome in &mine {
            if let EnqueueOutcome::Stored { new, .. } = outcome {
                metrics.messages_in_total.inc_by(new.len() as u64);
                woken.extend(new.iter().cloned());
            }
        }
        metrics
            .send_commit_seconds
            .observe(queued_at.elapsed().as_secs_f64());
        // The sender may have gone (connection closed): the messages are stored all the same.
        let _ = reply.send(Ok(mine));
    }
}

fn fail_all(answers: Vec<Answer>, error: WriteError) {
    for (_, reply, _) in answers {
        let _ = reply.send(Err(error));
    }
}
