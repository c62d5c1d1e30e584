//! Many deliveries at once through the group-committing store writer: each is recorded
//! exactly once whatever batch it lands in, and a `202` is only ever given for a row
//! that is in the database.

use futures_util::future::join_all;
use serde_json::Value;

use crate::support::*;

/// Deliveries that reached the database, by delivery id.
fn stored_delivery_ids(server: &Harness) -> Vec<String> {
    let db = rusqlite::Connection::open(server.database()).unwrap();
    let mut stmt = db
        .prepare("SELECT delivery_id FROM deliveries ORDER BY delivery_id")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn deploy_count(server: &Harness) -> i64 {
    let db = rusqlite::Connection::open(server.database()).unwrap();
    db.query_row("SELECT count(*) FROM deploys", [], |r| r.get(0))
        .unwrap()
}

/// Sends every delivery at once: (delivery id, status, answer) for each.
async fn send_all(server: &Harness, deliveries: &[Delivery]) -> Vec<(String, u16, Value)> {
    let answers = join_all(deliveries.iter().map(|d| server.send(d))).await;
    deliveries
        .iter()
        .zip(answers)
        .map(|(d, (status, answer))| (d.delivery_id.clone(), status, answer))
        .collect()
}

#[actix_web::test]
async fn concurrent_deliveries_and_redeliveries_are_each_recorded_once() {
    let server = Harness::builder().without_runner().start().await;
    let pushes: Vec<Delivery> = (0..60)
        .map(|_| Delivery::json("push", &sample("push.json")))
        .collect();
    // Each delivery twice, all 120 in flight together.
    let twice: Vec<Delivery> = pushes
        .iter()
        .chain(&pushes)
        .map(|d| Delivery::json("push", &sample("push.json")).id(&d.delivery_id))
        .collect();
    let answers = send_all(&server, &twice).await;
    for push in &pushes {
        let mut mine: Vec<_> = answers
            .iter()
            .filter(|(id, _, _)| *id == push.delivery_id)
            .collect();
        mine.sort_by_key(|(_, status, _)| *status);
        let [(_, 200, again), (_, 202, first)] = mine[..] else {
            panic!(
                "{}: one 202 and one duplicate expected: {mine:?}",
                push.delivery_id
            )
        };
        assert_eq!(again["duplicate"], true, "{again}");
        assert_eq!(again["deploy"]["id"], first["deploy"]["id"]);
    }
    assert_eq!(stored_delivery_ids(&server).len(), 60);
    assert_eq!(deploy_count(&server), 60);
    let (_, _, metrics) = server.get_with("/metrics", None).await;
    assert!(
        metrics.contains("stagehand_deliveries_total{result=\"accepted\"} 60\n")
            && metrics.contains("stagehand_deliveries_total{result=\"duplicate\"} 60\n"),
        "{metrics}"
    );
    server.stop().await;
}

/// SQLite checks a deferred foreign key only at COMMIT: a delivery matching `condition`
/// makes its transaction impossible to commit.
fn fail_commits_of(server: &Harness, condition: &str) {
    let db = rusqlite::Connection::open(server.database()).unwrap();
    db.execute_batch(&format!(
        "DROP TRIGGER IF EXISTS commit_trap; DROP TABLE IF EXISTS commit_trap;
         CREATE TABLE commit_trap (deploy INTEGER REFERENCES deploys (id) DEFERRABLE INITIALLY DEFERRED);
         CREATE TRIGGER commit_trap AFTER INSERT ON deliveries WHEN {condition}
         BEGIN INSERT INTO commit_trap VALUES (-1); END;"
    ))
    .unwrap();
}

#[actix_web::test]
async fn a_failed_commit_answers_5xx_and_only_what_was_answered_202_is_kept() {
    let server = Harness::builder().without_runner().start().await;
    // Every fourth delivery cannot be committed; the others go through whatever batch
    // they share with one.
    let deliveries: Vec<Delivery> = (0..40)
        .map(|i| {
            let push = Delivery::json("push", &sample("push.json"));
            let id = if i % 4 == 0 {
                format!("poison-{}", push.delivery_id)
            } else {
                push.delivery_id.clone()
            };
            push.id(&id)
        })
        .collect();
    fail_commits_of(&server, "NEW.delivery_id LIKE 'poison-%'");
    let answers = send_all(&server, &deliveries).await;
    let mut accepted: Vec<String> = Vec::new();
    for (id, status, answer) in &answers {
        if id.starts_with("poison-") {
            assert_eq!(*status, 500, "{id}: {answer}");
        } else {
            assert_eq!(*status, 202, "{id}: {answer}");
            accepted.push(id.clone());
        }
    }
    accepted.sort();
    assert_eq!(stored_delivery_ids(&server), accepted);
    assert_eq!(deploy_count(&server), 30);

    // Nothing can be committed: every delivery is refused and none is kept.
    fail_commits_of(&server, "1");
    let refused: Vec<Delivery> = (0..20)
        .map(|_| Delivery::json("push", &sample("push.json")))
        .collect();
    for (id, status, answer) in send_all(&server, &refused).await {
        assert_eq!(status, 500, "{id}: {answer}");
    }
    assert_eq!(stored_delivery_ids(&server), accepted);

    // Once the fault is gone, a refused delivery sent again is new, not a duplicate.
    fail_commits_of(&server, "0");
    let (status, answer) = server.send(&refused[0]).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer.get("duplicate"), None, "{answer}");
    server.stop().await;
}
