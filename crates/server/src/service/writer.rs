//! The single writer: every connection's sends go through one task that commits them in
//! batches (group commit). It takes everything queued, stores it with **one**
//! [`MessageStore::enqueue`] call (one transaction, one fsync), then answers each sender and
//! wakes the recipients. Under load a commit carries many sends, so durability costs one fsync
//! per batch instead of one per message; when idle a send is committed alone at once.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::events::{Event, EventBus};
use super::limits::{MAX_WRITER_BATCH, WRITER_QUEUE_LEN};
use super::metrics::Metrics;
use crate::store::{EnqueueOutcome, MessageStore, NewMessage};

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
struct Job {
    messages: Vec<NewMessage>,
    reply: oneshot::Sender<Result<Vec<EnqueueOutcome>, WriteError>>,
    queued_at: Instant,
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
        self.metrics.writer_queue_depth.inc();
        let job = Job {
            messages,
            reply,
            queued_at: Instant::now(),
        };
        if self.jobs.send(job).await.is_err() {
            self.metrics.writer_queue_depth.dec();
            return Err(WriteError::Closed);
        }
        Ok(committed)
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
        let mut batch = vec![first];
        let mut count = batch[0].messages.len();
        while count < MAX_WRITER_BATCH {
            match receiver.try_recv() {
                Ok(job) => {
                    count += job.messages.len();
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
    let mut messages = Vec::with_capacity(batch.iter().map(|job| job.messages.len()).sum());
    let mut answers = Vec::with_capacity(batch.len());
    for job in batch {
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
    let mut woken = BTreeSet::new();
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
    if !woken.is_empty() {
        bus.publish(woken.into_iter().map(Event::Mailbox).collect());
    }
}

fn fail_all(answers: Vec<Answer>, error: WriteError) {
    for (_, reply, _) in answers {
        let _ = reply.send(Err(error));
    }
}
