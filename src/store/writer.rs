//! Group commit for webhook deliveries: one thread records every delivery that is
//! waiting in ONE transaction (one WAL append, one lock round), then answers each.
//!
//! Why: one transaction per delivery, each handed from an HTTP worker through the
//! store's gate to a blocking thread and back, one at a time, capped intake at 3,700-
//! 5,300 deliveries/s on 2 cores while the same server refused bad signatures (same
//! HTTP, body read and HMAC, no store) 25,000-38,000 times a second. The chain of
//! hand-offs set the pace, and each delivery paid its own BEGIN and COMMIT (locks, the
//! same few pages appended to the WAL again). bench/README.md, "Intake after round 2:
//! group commit", has the measurements.
//!
//! Batches form by themselves, with no timer: while the thread commits one batch, the
//! next deliveries queue in the channel, and the thread takes all of them (up to
//! [`MAX_BATCH`]) as its next one. A lone delivery is committed at once.
//!
//! The thread shares the store's one write connection (it takes the same mutex for each
//! batch), so the runner's and the API's writes stay as they were.
//!
//! Guarantees, each kept per delivery exactly as a transaction of its own would:
//!
//! - An answer is sent only after the COMMIT that holds its delivery returned: a `202`
//!   is never given for a row that is not in the database.
//! - Deliveries are recorded in the order they were queued, each seeing the ones before
//!   it (a redelivery in the same batch answers `duplicate`, the max_environments
//!   check counts an earlier delivery's new preview).
//! - Each delivery is written under its own savepoint: one that fails is rolled back
//!   alone and answered with its error; the rest of the batch commits.
//! - When the batch's COMMIT fails, nothing of it is kept and each delivery is retried
//!   in a transaction of its own, so one that cannot be committed costs the others
//!   nothing and each gets its own answer. When the transaction cannot even begin
//!   (SQLite's write lock held elsewhere past `busy_timeout`), every delivery of the
//!   batch is answered with that error at once: a retry would wait just as long.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::deliveries::{self, Intent, NewDelivery, Recorded};
use super::{StoreError, lock_connection};

/// Deliveries in one transaction at most. The queue itself is bounded by intake's
/// requests in flight (512); this bounds how long one batch holds the connection from
/// the runner's writes (a delivery takes tens of microseconds inside a batch).
const MAX_BATCH: usize = 128;

/// One delivery waiting for the writer, and where its answer goes.
struct Job {
    delivery: NewDelivery,
    intent: Intent,
    answer: oneshot::Sender<Result<Recorded, StoreError>>,
}

/// The writer thread's handle. Dropping it (with the last clone of the store) closes
/// the queue and waits for the thread to answer what was queued.
pub(super) struct Writer {
    queue: Option<mpsc::UnboundedSender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub(super) fn start(conn: Arc<Mutex<Connection>>) -> std::io::Result<Writer> {
        let (queue, jobs) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(&conn, jobs))?;
        Ok(Writer {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Queues a delivery and waits, without blocking the caller's thread, for the
    /// answer its committed batch gave.
    pub(super) async fn record(
        &self,
        delivery: NewDelivery,
        intent: Intent,
    ) -> Result<Recorded, StoreError> {
        let stopped = || StoreError::Task("the store's writer thread has stopped".into());
        let (answer, answered) = oneshot::channel();
        self.queue
            .as_ref()
            .ok_or_else(stopped)?
            .send(Job {
                delivery,
                intent,
                answer,
            })
            .map_err(|_| stopped())?;
        // Dropped unanswered only if the batch panicked: nothing of it was committed.
        answered.await.map_err(|_| {
            StoreError::Task("the store's writer failed while recording this delivery".into())
        })?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            // Its panics are caught per batch; a join error has nothing left to report.
            let _ = thread.join();
        }
    }
}

fn run(conn: &Mutex<Connection>, mut jobs: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = jobs.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let (work, answers): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .map(|job| ((job.delivery, job.intent), job.answer))
            .unzip();
        // A panic must not end the thread (every later delivery would fail): this
        // batch's answers are dropped, so its requests get an error, and the
        // transaction rolled back as it unwound.
        let recorded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            commit_group(&mut lock_connection(conn), &work)
        }));
        match recorded {
            Ok(recorded) => {
                for (answer, result) in answers.into_iter().zip(recorded) {
                    // The request may have gone (client disconnected): its row stays.
                    let _ = answer.send(result);
                }
            }
            Err(_) => tracing::error!(
                deliveries = work.len(),
                "the store's writer panicked while recording a batch; none of it was kept"
            ),
        }
    }
}

/// Records `batch` in one transaction and returns each delivery's answer, in order.
pub(super) fn commit_group(
    conn: &mut Connection,
    batch: &[(NewDelivery, Intent)],
) -> Vec<Result<Recorded, StoreError>> {
    // A transaction that cannot even begin (another process holds SQLite's write lock
    // past busy_timeout) would fail each retry the same way, after the same wait.
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(error) => {
            return batch.iter().map(|_| Err(copy_of(&error))).collect();
        }
    };
    match try_group(tx, batch) {
        Ok(answers) => answers,
        Err(error) => {
            tracing::warn!(
                deliveries = batch.len(),
                %error,
                "a batch of deliveries could not be committed; retrying each alone"
            );
            batch
                .iter()
                .map(|(delivery, intent)| deliveries::record_alone(conn, delivery, intent.clone()))
                .collect()
        }
    }
}

/// The batch in `tx`, each delivery under its own savepoint. `Err` when the
/// transaction itself failed: then none of it was kept (`tx` rolls back when dropped).
fn try_group(
    tx: Transaction<'_>,
    batch: &[(NewDelivery, Intent)],
) -> Result<Vec<Result<Recorded, StoreError>>, StoreError> {
    let mut answers = Vec::with_capacity(batch.len());
    for (delivery, intent) in batch {
        tx.prepare_cached("SAVEPOINT delivery")?.execute([])?;
        match deliveries::record(&tx, delivery, intent.clone()) {
            Ok(recorded) => {
                tx.prepare_cached("RELEASE delivery")?.execute([])?;
                answers.push(Ok(recorded));
            }
            Err(error) => {
                // Fails when SQLite already rolled the whole transaction back (a full
                // disk, an I/O error): then the batch as a whole is retried.
                tx.prepare_cached("ROLLBACK TO delivery")?.execute([])?;
                tx.prepare_cached("RELEASE delivery")?.execute([])?;
                answers.push(Err(error));
            }
        }
    }
    tx.commit()?;
    Ok(answers)
}

/// One error for each delivery of a batch (rusqlite's errors are not `Clone`): SQLite's
/// own code and message are kept, anything else becomes its text.
fn copy_of(error: &rusqlite::Error) -> StoreError {
    match error {
        rusqlite::Error::SqliteFailure(code, message) => {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(*code, message.clone()))
        }
        other => StoreError::Task(format!("database error: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{delivery, push, store};
    use super::*;
    use crate::store::Store;

    fn count(store: &Store, table: &str) -> i64 {
        store
            .lock()
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    fn delivery_ids(store: &Store) -> Vec<String> {
        let conn = store.lock();
        let mut stmt = conn
            .prepare("SELECT delivery_id FROM deliveries ORDER BY delivery_id")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn new_deploy(answer: &Result<Recorded, StoreError>) -> i64 {
        match answer {
            Ok(Recorded::Deploy {
                deploy,
                duplicate: false,
            }) => deploy.id.0,
            other => panic!("expected a new deploy, got {other:?}"),
        }
    }

    /// A deferred foreign key that a delivery matching `condition` breaks: SQLite checks it
    /// only at COMMIT, so the transaction holding that delivery cannot commit.
    fn fail_commits_of(store: &Store, condition: &str) {
        store
            .lock()
            .execute_batch(&format!(
                "CREATE TABLE commit_trap (deploy INTEGER REFERENCES deploys (id) DEFERRABLE INITIALLY DEFERRED);
                 CREATE TRIGGER commit_trap AFTER INSERT ON deliveries WHEN {condition}
                 BEGIN INSERT INTO commit_trap VALUES (-1); END;"
            ))
            .unwrap();
    }

    #[test]
    fn a_batch_is_recorded_in_order_each_delivery_seeing_the_ones_before() {
        let (_dir, store) = store();
        let batch = vec![
            (delivery("d1", 1), push("staging")),
            (delivery("d1", 2), push("staging")),
            (delivery("d2", 3), push("staging")),
            (delivery("d3", 4), Intent::Ping),
        ];
        let answers = commit_group(&mut store.lock(), &batch);
        let first = new_deploy(&answers[0]);
        assert!(
            matches!(&answers[1], Ok(Recorded::Deploy { deploy, duplicate: true }) if deploy.id.0 == first),
            "a redelivery in the same batch answers as the first: {:?}",
            answers[1]
        );
        assert_ne!(new_deploy(&answers[2]), first);
        assert!(matches!(
            answers[3],
            Ok(Recorded::Ping { duplicate: false })
        ));
        assert_eq!(count(&store, "deliveries"), 3);
        assert_eq!(count(&store, "deploys"), 2);
    }

    #[test]
    fn a_delivery_whose_statement_fails_is_rolled_back_alone_and_the_batch_commits() {
        let (_dir, store) = store();
        store
            .lock()
            .execute_batch(
                "CREATE TRIGGER refuse_bad BEFORE INSERT ON deliveries WHEN NEW.delivery_id = 'bad'
                 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
            )
            .unwrap();
        let batch = vec![
            (delivery("a", 1), push("staging")),
            (delivery("bad", 2), push("staging")),
            (delivery("c", 3), push("staging")),
        ];
        let answers = commit_group(&mut store.lock(), &batch);
        new_deploy(&answers[0]);
        assert!(
            matches!(answers[1], Err(StoreError::Sqlite(_))),
            "{:?}",
            answers[1]
        );
        new_deploy(&answers[2]);
        assert_eq!(delivery_ids(&store), ["a", "c"]);
        // The refused delivery's deploy row went with its savepoint.
        assert_eq!(count(&store, "deploys"), 2);
    }

    #[test]
    fn a_delivery_that_cannot_be_committed_costs_the_rest_of_its_batch_nothing() {
        let (_dir, store) = store();
        fail_commits_of(&store, "NEW.delivery_id = 'poison'");
        let batch = vec![
            (delivery("a", 1), push("staging")),
            (delivery("poison", 2), push("staging")),
            (delivery("c", 3), push("staging")),
            (delivery("a", 4), push("staging")),
        ];
        let answers = commit_group(&mut store.lock(), &batch);
        let a = new_deploy(&answers[0]);
        assert!(
            matches!(answers[1], Err(StoreError::Sqlite(_))),
            "{:?}",
            answers[1]
        );
        new_deploy(&answers[2]);
        assert!(
            matches!(&answers[3], Ok(Recorded::Deploy { deploy, duplicate: true }) if deploy.id.0 == a),
            "retried alone, the redelivery still finds the first: {:?}",
            answers[3]
        );
        assert_eq!(delivery_ids(&store), ["a", "c"]);
        assert_eq!(count(&store, "deploys"), 2);
    }

    #[test]
    fn when_nothing_can_be_committed_every_delivery_is_refused_and_none_is_kept() {
        let (_dir, store) = store();
        fail_commits_of(&store, "1");
        let batch: Vec<_> = (0..5)
            .map(|i| (delivery(&format!("d{i}"), i), push("staging")))
            .collect();
        let answers = commit_group(&mut store.lock(), &batch);
        assert!(answers.iter().all(Result::is_err), "{answers:?}");
        assert_eq!(count(&store, "deliveries"), 0);
        assert_eq!(count(&store, "deploys"), 0);
        assert_eq!(count(&store, "deploy_counts"), 0);
    }

    #[test]
    fn when_the_transaction_cannot_begin_every_delivery_gets_the_error_at_once() {
        let (dir, store) = store();
        // No wait for the lock, so the test does not sit through busy_timeout.
        store
            .lock()
            .execute_batch("PRAGMA busy_timeout = 0")
            .unwrap();
        let other = Connection::open(dir.path().join("stagehand.db")).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let batch: Vec<_> = (0..3)
            .map(|i| (delivery(&format!("d{i}"), i), push("staging")))
            .collect();
        let answers = commit_group(&mut store.lock(), &batch);
        assert!(
            answers.iter().all(|a| matches!(
                a,
                Err(StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy
            )),
            "{answers:?}"
        );
        other.execute_batch("ROLLBACK").unwrap();
        let answers = commit_group(&mut store.lock(), &batch);
        assert!(answers.iter().all(Result::is_ok), "{answers:?}");
        assert_eq!(count(&store, "deliveries"), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_deliveries_and_their_redeliveries_are_each_committed_exactly_once() {
        let (_dir, store) = store();
        let sends = (0..400).map(|i| {
            let store = store.clone();
            // Each id twice: d0-d99 side by side in the queue, d100-d199 100 apart.
            let id = if i < 200 {
                i / 2
            } else {
                100 + (i - 200) % 100
            };
            tokio::spawn(async move {
                let answer = store
                    .record_delivery_grouped(delivery(&format!("d{id}"), i), push("staging"))
                    .await;
                (id, answer)
            })
        });
        let mut by_id: std::collections::BTreeMap<i64, Vec<(i64, bool)>> = Default::default();
        for sent in futures_util::future::join_all(sends).await {
            let (id, answer) = sent.unwrap();
            let Ok(Recorded::Deploy { deploy, duplicate }) = answer else {
                panic!("d{id}: {answer:?}")
            };
            by_id.entry(id).or_default().push((deploy.id.0, duplicate));
        }
        assert_eq!(by_id.len(), 200);
        for (id, mut answers) in by_id {
            answers.sort_by_key(|(_, duplicate)| *duplicate);
            let [(first, false), (again, true)] = answers[..] else {
                panic!("d{id}: one new deploy and one duplicate expected, got {answers:?}")
            };
            assert_eq!(
                first, again,
                "d{id}: the duplicate answers with the first deploy"
            );
        }
        assert_eq!(count(&store, "deliveries"), 200);
        assert_eq!(count(&store, "deploys"), 200);
    }
}
