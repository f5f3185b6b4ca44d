//! The single writer: every connection's sends **and acknowledgements** go through one task
//! that commits them in batches (group commit). It takes everything queued and hands it to the
//! store as one [`MessageStore::commit_batch`]: the acknowledged entries of every device are
//! deleted, the delivery receipts they owe stored, then the sends stored (one transaction and
//! one fsync for all of it on SQLite), then it answers each send through its completion and
//! wakes the recipients. Under load a commit carries many sends, so durability costs one fsync
//! per batch instead of one per message; when idle a send is committed alone at once.
//!
//! What a commit stored comes back from the store with its delivery ids
//! ([`BatchOutcome::stored`](crate::store::BatchOutcome::stored)); the writer hands those entries straight to the pumps
//! of recipients connected to this node ([`Handoff`]), which then push them without reading
//! their mailbox; only recipients connected elsewhere (or when the store cannot tell the ids)
//! are woken through the bus.
//!
//! The delivery receipts a batch owes to senders connected to this node are not stored: they
//! go to the senders' pumps, which push them from memory (see [`super::mailbox`]); a receipt
//! no pump takes after all, or one its connection left unacknowledged, comes back to the
//! writer and is stored in its next batch.
//!
//! A one-to-one send whose recipients all have a pump here, caught up and reading, is not
//! stored at once: the writer routes it **live** ([`super::live`]) into their inboxes and
//! answers the sender once every recipient has acknowledged it (through the
//! acknowledgement's job), so it never reaches the store; a live message still
//! unacknowledged after its wait ([`super::live::LiveRoute::wait`]), or handed back by a pump
//! whose connection went, is stored by the next batch like any send and answered after it.
//!
//! Nobody waits on the writer's task for an answer: a send's completion runs on the writer
//! (it queues the `Sent` frame on the connection), and an acknowledgement needs no answer.
//!
//! Because nothing else on the delivery path writes, the writer never waits for the database's
//! write lock (SQLite has one, and its busy handler sleeps in millisecond steps).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::events::{Event, EventBus};
use super::inbox::{Handed, Handoff};
use super::limits::{MAX_WRITER_BATCH, WRITER_QUEUE_LEN};
use super::live::{Acked, Live, LiveMessage, LiveRoute, PendingSend, Settled};
use super::metrics::Metrics;
use super::state::unix_ms;
use crate::store::{
    AckRequest, Acknowledged, DeviceAddress, EnqueueOutcome, MessageStore, NewMessage, NewReceipt,
    ReceiptRoute, WriteBatch, receipts_owed,
};

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

/// What runs once a send is committed (or has failed): one outcome per message, in order.
/// It runs on the writer's task, so it must not block; it is dropped uncalled only when the
/// writer stops without committing (the server is going down).
pub type Completion = Box<dyn FnOnce(Result<Vec<EnqueueOutcome>, WriteError>) + Send>;

/// What one send asked the writer to store, and what to run when it is committed.
struct SendJob {
    messages: Vec<NewMessage>,
    completion: Completion,
    queued_at: Instant,
}

/// What one `Ack` frame asked the writer to do: delete entries, settle live messages.
struct AckJob {
    device: DeviceAddress,
    delivery_ids: Vec<u64>,
    live: Vec<Arc<Live>>,
    /// How long the delivery receipts owed for these deliveries wait unread before expiry.
    receipt_ttl: Duration,
}

/// One unit of work for the writer.
enum Job {
    Send(SendJob),
    Ack(AckJob),
    /// What a stopped pump held in memory and must be stored after all: receipts, and live
    /// messages (their senders are answered once they are stored), in the order pushed.
    HandBack {
        receipts: Vec<NewReceipt>,
        live: Vec<Arc<Live>>,
    },
    /// Answered once everything queued before it is committed.
    Barrier(oneshot::Sender<()>),
}

impl Job {
    /// How much this job weighs against [`MAX_WRITER_BATCH`].
    fn weight(&self) -> usize {
        match self {
            Self::Send(send) => send.messages.len(),
            Self::Ack(ack) => ack.delivery_ids.len() + ack.live.len(),
            Self::HandBack { receipts, live } => receipts.len() + live.len(),
            Self::Barrier(_) => 0,
        }
    }
}

/// A handle to submit sends to the writer. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
    metrics: Metrics,
    handoff: Arc<Handoff>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

/// Where the outcomes of a batch's sends go, in order.
enum Answer {
    /// A whole send: how many messages it had, its completion, when it queued.
    Whole(usize, Completion, Instant),
    /// One live message stored after all: its slot in its send.
    Slot(Arc<PendingSend>, usize),
}

impl Writer {
    /// Queues `messages` (stored in one transaction with the rest of their batch, in order);
    /// `completion` gets their outcomes once committed. Sends submitted one after another by
    /// the same task are committed, and completed, in that order. Waits while the queue is
    /// full; `Err(Closed)` (and `completion` dropped uncalled) once the writer has stopped.
    pub async fn submit(
        &self,
        messages: Vec<NewMessage>,
        completion: Completion,
    ) -> Result<(), WriteError> {
        self.queue(Job::Send(SendJob {
            messages,
            completion,
            queued_at: Instant::now(),
        }))
        .await
    }

    /// Queues the deletion of `device`'s acknowledged entries `delivery_ids` (ids it does not
    /// hold are ignored), the settling of the `live` messages it acknowledged (their senders
    /// are answered), and the delivery receipts owed to their senders, expiring after
    /// `receipt_ttl`, for the next batch. Returns once queued: nothing waits for the commit (an
    /// entry whose deletion fails stays queued and is delivered again on the next connection;
    /// clients drop repeats). A receipt that cannot be stored is logged and dropped: it costs
    /// a sender a "delivered" mark, never a message. Waits while the queue is full.
    pub async fn acknowledge(
        &self,
        device: DeviceAddress,
        delivery_ids: Vec<u64>,
        live: Vec<Arc<Live>>,
        receipt_ttl: Duration,
    ) -> Result<(), WriteError> {
        self.queue(Job::Ack(AckJob {
            device,
            delivery_ids,
            live,
            receipt_ttl,
        }))
        .await
    }

    /// Queues what a stopped pump held in memory, unacknowledged, to be stored in the next
    /// batch: delivery receipts, and live messages in the order they were pushed (the writer
    /// takes them there: one it stored meanwhile, to keep the mailbox in order, stays stored).
    pub async fn hand_back(
        &self,
        receipts: Vec<NewReceipt>,
        live: Vec<Arc<Live>>,
    ) -> Result<(), WriteError> {
        self.queue(Job::HandBack { receipts, live }).await
    }

    /// Returns once every job queued before this call (sends, acknowledgements) is committed
    /// or has failed. A new connection waits for it before reading its backlog, so that the
    /// acknowledgements its device sent on an earlier connection to this node are applied
    /// first and nothing acknowledged comes again.
    pub async fn barrier(&self) -> Result<(), WriteError> {
        let (done, committed) = oneshot::channel();
        self.queue(Job::Barrier(done)).await?;
        committed.await.map_err(|_| WriteError::Closed)
    }

    /// Where the writer hands what it stored to the pumps of devices connected to this node.
    pub(crate) fn handoff(&self) -> &Arc<Handoff> {
        &self.handoff
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
    let handoff = Arc::new(Handoff::default());
    let writer = Writer {
        jobs,
        metrics: metrics.clone(),
        handoff: handoff.clone(),
    };
    let connected = handoff.clone();
    let context = Context {
        bus,
        metrics,
        handoff,
        push_receipts: ReceiptRoute::new(move |device| connected.is_attached(device)),
        max_queue,
    };
    let task = tokio::spawn(run(store, context, receiver, stop));
    (writer, task)
}

/// What the writer's task works with besides its store and its queue.
struct Context {
    bus: Arc<dyn EventBus>,
    metrics: Metrics,
    handoff: Arc<Handoff>,
    /// The senders that take their receipts from memory: the ones with a pump here.
    push_receipts: ReceiptRoute,
    max_queue: u64,
}

/// Sleeps until `deadline` (forever without one).
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

async fn run<S: MessageStore>(
    store: S,
    context: Context,
    mut receiver: mpsc::Receiver<Job>,
    stop: CancellationToken,
) {
    let mut stopping = false;
    // Receipts no pump took: stored by the next batch, which then runs without waiting.
    let mut carried: Vec<NewReceipt> = Vec::new();
    let mut live = LiveRoute::default();
    loop {
        let mut batch = Vec::new();
        let due = live
            .next_deadline()
            .is_some_and(|deadline| deadline <= Instant::now());
        if carried.is_empty() && !due {
            let deadline = live.next_deadline();
            let first = tokio::select! {
                biased;
                job = receiver.recv() => match job {
                    Some(job) => Some(job),
                    None => break,
                },
                () = stop.cancelled(), if !stopping => {
                    // No new sends; the ones already queued are still committed below.
                    receiver.close();
                    stopping = true;
                    continue;
                }
                () = sleep_until(deadline), if deadline.is_some() => None,
            };
            batch.extend(first);
        }
        let mut count = carried.len() + batch.iter().map(Job::weight).sum::<usize>();
        while count < MAX_WRITER_BATCH {
            match receiver.try_recv() {
                Ok(job) => {
                    count += job.weight();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        carried = commit(
            &store,
            &context,
            batch,
            std::mem::take(&mut carried),
            &mut live,
        )
        .await;
    }
    tracing::debug!("writer stopped: every queued send is committed");
}

/// Commits `batch` with the `carried` receipts (routing what it can live, see
/// [`super::live`], and storing the live messages whose wait is over); returns the receipts
/// owed to connected senders whose pumps did not take them, for the next batch to store.
async fn commit<S: MessageStore>(
    store: &S,
    context: &Context,
    batch: Vec<Job>,
    mut receipts: Vec<NewReceipt>,
    live: &mut LiveRoute,
) -> Vec<NewReceipt> {
    let metrics = &context.metrics;
    metrics.writer_queue_depth.dec_by(batch.len() as i64);
    let now = SystemTime::now();
    let started = Instant::now();
    let mut acks = Acks::default();
    let mut messages = Vec::new();
    let mut answers: Vec<Answer> = Vec::new();
    let mut barriers = Vec::new();
    for job in batch {
        match job {
            Job::Send(send) => match live.inboxes(&context.handoff, &send.messages) {
                Some(inboxes) => {
                    let pending =
                        PendingSend::new(send.messages.len(), send.completion, send.queued_at);
                    let routed = live.route(send.messages, inboxes, &pending, started);
                    if let Some(settled) = routed.settled {
                        finish(metrics, settled);
                    }
                    for message in routed.refused {
                        // Its inbox closed.
                        store_earlier_live(live, &mut answers, &mut messages, &message.message);
                        to_store_live(&mut answers, &mut messages, message);
                    }
                }
                None => {
                    for message in &send.messages {
                        store_earlier_live(live, &mut answers, &mut messages, message);
                    }
                    answers.push(Answer::Whole(
                        send.messages.len(),
                        send.completion,
                        send.queued_at,
                    ));
                    messages.extend(send.messages);
                }
            },
            Job::Ack(ack) => {
                let expires_at_ms = unix_ms(now + ack.receipt_ttl);
                let mut delivery_ids = ack.delivery_ids;
                let mut settled = Vec::new();
                for message in ack.live {
                    live.observe(&message);
                    match message.acknowledged() {
                        Acked::Settle(message) => settled.push(message),
                        Acked::Delete(delivery_id, key) => {
                            live.forget(&key);
                            delivery_ids.extend(delivery_id);
                        }
                        Acked::Nothing => {}
                    }
                }
                if !settled.is_empty() {
                    receipts.extend(settle_delivered(
                        context,
                        live,
                        &ack.device,
                        settled,
                        expires_at_ms,
                        unix_ms(now),
                    ));
                }
                acks.add(ack.device, delivery_ids, expires_at_ms);
            }
            Job::HandBack {
                receipts: more,
                live: held,
            } => {
                receipts.extend(more);
                for message in live.hand_back(held) {
                    to_store_live(&mut answers, &mut messages, message);
                }
            }
            Job::Barrier(done) => barriers.push(done),
        }
    }
    for message in live.expired(Instant::now()) {
        to_store_live(&mut answers, &mut messages, message);
    }
    let count = messages.len();
    if count > 0 {
        metrics.writer_batch_size.observe(count as f64);
    }
    let mut woken = BTreeSet::new();
    let mut left = Vec::new();
    if !acks.requests.is_empty() || count > 0 || !receipts.is_empty() {
        let acked_ids = acks.ids;
        let batch = WriteBatch {
            acks: acks.requests,
            now_ms: unix_ms(now),
            sends: messages,
            max_queue: context.max_queue,
            receipts,
            push_receipts: Some(context.push_receipts.clone()),
        };
        match store.commit_batch(batch).await {
            Ok(outcome) if outcome.outcomes.len() == count => {
                if outcome.acknowledged {
                    metrics.messages_acknowledged_total.inc_by(acked_ids);
                }
                woken.extend(outcome.receipts_to);
                answer_all(metrics, answers, outcome.outcomes, &mut woken);
                if let Some(stored) = outcome.stored {
                    hand_off(&context.handoff, live.stored(stored), &mut woken);
                }
                if !outcome.pushed_receipts.is_empty() {
                    left = context.handoff.deliver_receipts(outcome.pushed_receipts);
                }
            }
            Ok(outcome) => {
                tracing::error!(
                    expected = count,
                    got = outcome.outcomes.len(),
                    "the store answered a batch with the wrong number of outcomes"
                );
                fail_all(answers, WriteError::Failed);
            }
            Err(error) => {
                // Nothing of the sends is stored; acknowledged entries that stay queued are
                // delivered again on the device's next connection (clients drop repeats).
                tracing::error!(%error, messages = count, "committing a writer batch failed");
                fail_all(answers, WriteError::Failed);
            }
        }
    }
    // Live messages stored by this batch that no entry accounts for (failed, duplicates).
    live.unstored();
    if !woken.is_empty() {
        context
            .bus
            .publish(woken.into_iter().map(Event::Mailbox).collect());
    }
    for done in barriers {
        // The waiter may have gone (its connection closed).
        let _ = done.send(());
    }
    left
}

/// The acknowledgements of a batch, one request per device (the receipts it owes a sender
/// then fold into one).
#[derive(Default)]
struct Acks {
    requests: Vec<AckRequest>,
    by_device: HashMap<DeviceAddress, usize>,
    ids: u64,
}

impl Acks {
    fn add(&mut self, device: DeviceAddress, delivery_ids: Vec<u64>, receipt_expires_at_ms: u64) {
        if delivery_ids.is_empty() {
            return;
        }
        self.ids += delivery_ids.len() as u64;
        match self.by_device.get(&device) {
            Some(&index) => self.requests[index].delivery_ids.extend(delivery_ids),
            None => {
                self.by_device.insert(device.clone(), self.requests.len());
                self.requests.push(AckRequest {
                    device,
                    delivery_ids,
                    receipt_expires_at_ms,
                });
            }
        }
    }
}

/// Adds to the batch's sends, ahead of `message`, what went live to its recipients before it
/// and is not stored yet, so that their mailboxes keep the sending order.
fn store_earlier_live(
    live: &mut LiveRoute,
    answers: &mut Vec<Answer>,
    messages: &mut Vec<NewMessage>,
    message: &NewMessage,
) {
    for recipient in &message.recipients {
        for earlier in live.flush(recipient) {
            to_store_live(answers, messages, earlier);
        }
    }
}

/// Adds a live message to the batch's sends: stored after all.
fn to_store_live(answers: &mut Vec<Answer>, messages: &mut Vec<NewMessage>, message: LiveMessage) {
    answers.push(Answer::Slot(message.send, message.slot));
    messages.push(message.message);
}

/// Settles the live messages `device` acknowledged (answering their senders once a whole send
/// is settled) and returns the delivery receipts owed to senders not connected here (the
/// others are pushed at once).
fn settle_delivered(
    context: &Context,
    live: &mut LiveRoute,
    device: &DeviceAddress,
    settled: Vec<LiveMessage>,
    receipt_expires_at_ms: u64,
    now_ms: u64,
) -> Vec<NewReceipt> {
    let metrics = &context.metrics;
    metrics.messages_live_total.inc_by(settled.len() as u64);
    let mut acknowledged = Vec::with_capacity(settled.len());
    for message in settled {
        live.forget(&message.key());
        let outcome = EnqueueOutcome::Stored {
            new: vec![device.clone()],
            duplicates: 0,
        };
        if let Some(done) = message.send.settle(message.slot, outcome) {
            finish(metrics, done);
        }
        acknowledged.push(Acknowledged {
            sender: message.message.sender,
            client_message_id: message.message.client_message_id,
        });
    }
    let owed = receipts_owed(device, acknowledged, receipt_expires_at_ms, now_ms);
    let (store, push) = WriteBatch::route_receipts(Some(&context.push_receipts), owed, Vec::new());
    let mut left = context.handoff.deliver_receipts(push);
    left.extend(store);
    left
}

/// Answers a send whose every outcome is known.
fn finish(metrics: &Metrics, (completion, outcomes, queued_at): Settled) {
    for outcome in &outcomes {
        if let EnqueueOutcome::Stored { new, .. } = outcome {
            metrics.messages_in_total.inc_by(new.len() as u64);
        }
    }
    metrics
        .send_commit_seconds
        .observe(queued_at.elapsed().as_secs_f64());
    // The sender may have gone (connection closed): the messages are accepted all the same.
    completion(Ok(outcomes));
}

/// Answers the sends of a committed batch, in order: whole sends through their completions,
/// live messages stored after all through their sends' slots.
fn answer_all(
    metrics: &Metrics,
    answers: Vec<Answer>,
    outcomes: Vec<EnqueueOutcome>,
    woken: &mut BTreeSet<DeviceAddress>,
) {
    let mut outcomes = outcomes.into_iter();
    for answer in answers {
        match answer {
            Answer::Whole(count, completion, queued_at) => {
                let mine: Vec<EnqueueOutcome> = outcomes.by_ref().take(count).collect();
                for outcome in &mine {
                    if let EnqueueOutcome::Stored { new, .. } = outcome {
                        woken.extend(new.iter().cloned());
                    }
                }
                finish(metrics, (completion, mine, queued_at));
            }
            Answer::Slot(send, slot) => {
                let Some(outcome) = outcomes.next() else {
                    continue;
                };
                if let EnqueueOutcome::Stored { new, .. } = &outcome {
                    woken.extend(new.iter().cloned());
                }
                if let Some(settled) = send.settle(slot, outcome) {
                    finish(metrics, settled);
                }
            }
        }
    }
}

/// Hands entries just committed to the pumps of their recipients connected to this node;
/// those need no wake-up through the bus (their pump reads the mailbox itself if the hand-off
/// does not follow on from what it pushed). Without the entries (`None`: the store cannot
/// tell), every recipient is woken and reads its mailbox.
fn hand_off(
    handoff: &Handoff,
    entries: Vec<(DeviceAddress, Handed)>,
    woken: &mut BTreeSet<DeviceAddress>,
) {
    if entries.is_empty() {
        return;
    }
    for reached in handoff.deliver(entries) {
        woken.remove(&reached);
    }
}

/// Answers every send of a failed batch with `error`; a live message stored after all fails
/// its whole send.
fn fail_all(answers: Vec<Answer>, error: WriteError) {
    for answer in answers {
        match answer {
            Answer::Whole(_, completion, _) => completion(Err(error)),
            Answer::Slot(send, _) => send.fail(error),
        }
    }
}
