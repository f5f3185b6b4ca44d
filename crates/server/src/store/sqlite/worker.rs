//! The thread that owns the store's SQLite connection.
//!
//! Every call of the store becomes a job: a closure that runs on the connection and answers
//! through a one-shot channel. The thread takes jobs in arrival order and runs each to the end
//! (its own transaction), so the connection needs no lock and its prepared statements stay
//! cached. A job that arrives while another runs waits in the queue; when the thread finishes a
//! job it takes the next one without sleeping, so a burst of calls costs one wake-up of the
//! thread, not one per call.
//!
//! The thread never dies of a job: a panic is caught, the job's transaction is rolled back, and
//! the caller gets [`StoreError::Panicked`]. If the thread is gone all the same (it could not be
//! started, or the process is tearing down), every call returns [`StoreError::Stopped`] at once:
//! a call never waits forever.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::thread;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::super::StoreError;
use super::checkpoint::Checkpointer;
use super::dedupe::Dedupe;

/// A unit of work for the connection thread: it gets the connection and the mailbox's dedupe
/// index, which lives on the thread beside it.
type Job = Box<dyn FnOnce(&mut Connection, &mut Dedupe) + Send>;

/// The sending side of the connection thread's queue. Cheap to clone; the thread ends (and
/// closes its connection) when the last clone is dropped and the queue is empty.
#[derive(Debug, Clone)]
pub(super) struct Worker {
    jobs: mpsc::Sender<Job>,
}

impl Worker {
    /// Starts a thread named `name` that owns `connection` and nudges `checkpointer`, if
    /// given, after each burst of jobs.
    pub(super) fn spawn(
        connection: Connection,
        name: &str,
        checkpointer: Option<Checkpointer>,
    ) -> Result<Self, StoreError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || serve(connection, &queue, checkpointer.as_ref()))
            .map_err(|error| StoreError::Stopped(format!("cannot start its thread: {error}")))?;
        Ok(Self { jobs })
    }

    /// Runs `call` on the connection thread and returns its result.
    ///
    /// If the caller stops waiting (the future is dropped) before the thread reaches the job,
    /// the job is skipped; once it has started it runs to the end, commit included.
    pub(super) async fn run<T, F>(&self, call: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.run_with_dedupe(move |connection, _| call(connection))
            .await
    }

    /// [`Worker::run`] for a call that also uses the mailbox's dedupe index.
    pub(super) async fn run_with_dedupe<T, F>(&self, call: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &mut Dedupe) -> Result<T, StoreError> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |connection, dedupe| {
            if answer.is_closed() {
                return;
            }
            let result = panic::catch_unwind(AssertUnwindSafe(|| call(connection, dedupe)))
                .unwrap_or_else(|payload| {
                    let message = panic_message(payload.as_ref());
                    tracing::error!(%message, "a SQLite store call panicked; rolled back");
                    Err(StoreError::Panicked(message))
                });
            // The caller may have stopped waiting meanwhile: then nobody needs the answer.
            let _ = answer.send(result);
        });
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Stopped("its thread has ended".to_owned()))?;
        answered.await.unwrap_or_else(|_| {
            Err(StoreError::Stopped(
                "its thread ended before answering".to_owned(),
            ))
        })
    }
}

/// The thread's loop: one job after the other until every sender is gone.
///
/// The thread sleeps only when the queue is empty: after a wake-up it runs every job queued
/// meanwhile before it waits again (and nudges the checkpointer once per such burst).
fn serve(
    mut connection: Connection,
    queue: &mpsc::Receiver<Job>,
    checkpointer: Option<&Checkpointer>,
) {
    let mut dedupe = Dedupe::default();
    while let Ok(first) = queue.recv() {
        run_job(&mut connection, &mut dedupe, first);
        while let Ok(next) = queue.try_recv() {
            run_job(&mut connection, &mut dedupe, next);
        }
        if let Some(checkpointer) = checkpointer {
            checkpointer.restart_if_asked(&connection);
            checkpointer.nudge();
        }
    }
}

fn run_job(connection: &mut Connection, dedupe: &mut Dedupe, job: Job) {
    job(connection, dedupe);
    // A job that panicked inside its transaction has already rolled it back (the transaction's
    // drop ran during the unwinding); make sure nothing stays open anyway.
    if !connection.is_autocommit()
        && let Err(error) = connection.execute_batch("ROLLBACK")
    {
        tracing::error!(%error, "SQLite store: rolling back a transaction left open failed");
    }
}

/// The text of a panic, for the error returned to the caller.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker() -> Worker {
        let connection = Connection::open_in_memory().expect("in-memory SQLite");
        connection
            .execute_batch("CREATE TABLE t (n INTEGER NOT NULL)")
            .expect("table");
        Worker::spawn(connection, "test-sqlite", None).expect("thread")
    }

    fn count(connection: &mut Connection) -> Result<i64, StoreError> {
        Ok(connection.query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0))?)
    }

    #[tokio::test]
    async fn a_panicking_call_is_an_error_and_rolls_back_and_the_thread_goes_on() {
        let worker = worker();
        let result: Result<(), StoreError> = worker
            .run(|connection| {
                let tx = connection.transaction()?;
                tx.execute("INSERT INTO t (n) VALUES (1)", [])?;
                panic!("boom in the middle of a transaction");
            })
            .await;
        match result {
            Err(StoreError::Panicked(message)) => assert!(message.contains("boom"), "{message}"),
            other => panic!("expected Panicked, got {other:?}"),
        }
        assert_eq!(worker.run(count).await.expect("count"), 0);
        worker
            .run(|connection| Ok(connection.execute("INSERT INTO t (n) VALUES (2)", [])?))
            .await
            .expect("insert after the panic");
        assert_eq!(worker.run(count).await.expect("count"), 1);
    }

    #[tokio::test]
    async fn a_panic_outside_a_transaction_object_leaves_no_transaction_open() {
        let worker = worker();
        let result: Result<(), StoreError> = worker
            .run(|connection| {
                connection.execute_batch("BEGIN; INSERT INTO t (n) VALUES (1);")?;
                panic!("{}", String::from("a formatted panic"));
            })
            .await;
        assert!(matches!(result, Err(StoreError::Panicked(m)) if m == "a formatted panic"));
        assert!(
            worker
                .run(|connection| Ok(connection.is_autocommit()))
                .await
                .expect("autocommit")
        );
        assert_eq!(worker.run(count).await.expect("count"), 0);
    }

    #[tokio::test]
    async fn calls_to_a_thread_that_is_gone_fail_at_once() {
        // The thread's side of the queue is gone: exactly what a call sees after the thread
        // ended.
        let (jobs, queue) = mpsc::channel::<Job>();
        drop(queue);
        let worker = Worker { jobs };
        assert!(matches!(
            worker.run(count).await,
            Err(StoreError::Stopped(_))
        ));
    }

    #[tokio::test]
    async fn a_job_dropped_unanswered_is_an_error_not_a_hang() {
        // A thread that takes one job and ends without running it.
        let (jobs, queue) = mpsc::channel::<Job>();
        let thread = thread::spawn(move || drop(queue.recv()));
        let worker = Worker { jobs };
        assert!(matches!(
            worker.run(count).await,
            Err(StoreError::Stopped(_))
        ));
        thread.join().expect("the test thread");
        assert!(matches!(
            worker.run(count).await,
            Err(StoreError::Stopped(_))
        ));
    }

    #[tokio::test]
    async fn a_burst_of_calls_runs_in_order() {
        let worker = worker();
        let calls: Vec<_> = (0..100i64)
            .map(|n| {
                let worker = worker.clone();
                async move {
                    worker
                        .run(move |connection| {
                            connection.execute("INSERT INTO t (n) VALUES (?1)", [n])?;
                            Ok(connection.last_insert_rowid())
                        })
                        .await
                }
            })
            .collect();
        let rowids: Vec<i64> = futures_util::future::join_all(calls)
            .await
            .into_iter()
            .collect::<Result<_, _>>()
            .expect("inserts");
        // join_all polls in order, so the jobs were queued in order and run in order.
        assert_eq!(rowids, (1..=100).collect::<Vec<_>>());
        assert_eq!(worker.run(count).await.expect("count"), 100);
    }

    /// Under a steady write load the log starts over from its beginning (the store thread
    /// finishes a checkpoint when the checkpoint thread asks), instead of growing as long as
    /// the load lasts.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_starts_over_under_a_steady_write_load() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("steady.db");
        let open = || {
            let connection = Connection::open(&path).expect("open");
            connection
                .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
                .expect("WAL");
            connection
        };
        let store = open();
        store
            .execute_batch("CREATE TABLE t (b BLOB NOT NULL)")
            .expect("table");
        store
            .pragma_update(None, "wal_autocheckpoint", 0)
            .expect("no automatic checkpoint");
        let checkpointer = Checkpointer::spawn(open(), "test-checkpoint").expect("thread");
        let worker = Worker::spawn(store, "test-sqlite", Some(checkpointer)).expect("thread");
        // 64 MiB of rows in 4 KiB transactions, bursts of 256 jobs, with no pause for the
        // checkpoints: the log of each burst is the size of one checkpoint's threshold.
        for _ in 0..64 {
            let jobs: Vec<_> = (0..256)
                .map(|_| {
                    worker.run(|connection| {
                        connection.execute("INSERT INTO t (b) VALUES (randomblob(4096))", [])?;
                        Ok(())
                    })
                })
                .collect();
            for result in futures_util::future::join_all(jobs).await {
                result.expect("insert");
            }
        }
        let log = std::fs::metadata(dir.path().join("steady.db-wal"))
            .expect("the log")
            .len();
        // Without the restart the log holds every frame written (over 200 MiB here); with it,
        // about what is written between two checkpoints of the checkpoint thread.
        assert!(log < 128 << 20, "the log grew to {log} bytes");
    }
}
