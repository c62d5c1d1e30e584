//! A deploy always reaches a terminal status, and what followers see agrees with the
//! store, even when the store refuses the final write for a while. The failure is a
//! real one: another connection holds SQLite's write lock on the real database file,
//! so stagehand's writes fail with "database is locked" until it lets go.

use std::time::Duration;

use futures_util::StreamExt;

use crate::support::*;

/// Issue 11 item 5: a failed final status write was dropped, leaving the deploy
/// `running` until a restart (metrics counting it, `--follow` hanging), while
/// followers had already been told it ended.
#[actix_web::test]
async fn regression_a_final_status_the_store_refused_is_retried_and_followers_wait_for_it() {
    let b = Harness::builder();
    let repo = b.repo().to_owned();
    let shared = b.dir().join("srv/staging/shared");
    let db = b.dir().join("state/stagehand.db");
    let toml = shop_toml(
        b.dir(),
        &repo,
        r#"build = ["if [ -f build.sh ]; then sh build.sh; fi"]
shared = ["storage/"]
[apps.shop.environments.staging]
branch = "develop"
"#,
    );
    let full = b.toml(&toml).start().await;
    let c = full.client();
    git(&repo, &["checkout", "-q", "develop"]);
    let sha = commit(
        &repo,
        "Waits",
        &[(
            "build.sh",
            "touch \"$STAGEHAND_SHARED_DIR/building\"\nwhile [ ! -f \"$STAGEHAND_SHARED_DIR/go\" ]; do sleep 0.05; done\necho built\n",
        )],
    );
    let (_, answer) = c.push(&push_body("refs/heads/develop", &sha)).await;
    let id = answer["deploy"]["id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !shared.join("building").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the build never started"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }

    // A follower on the live events, from before the end.
    let events = c.get_request(
        &format!("/api/deploys/{id}/events"),
        Duration::from_secs(300),
    );
    let follower = actix_web::rt::spawn(async move {
        let mut resp = events.send().await.unwrap();
        let mut text = String::new();
        while let Some(chunk) = resp.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
        text
    });

    // Take SQLite's write lock; readers (WAL) still get through.
    let lock = rusqlite::Connection::open(&db).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    std::fs::write(shared.join("go"), "").unwrap();

    // The deploy has ended (its last log line is written) but the store refused it.
    let log_file = db.with_file_name(format!("logs/{id}.log"));
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let log = std::fs::read_to_string(&log_file).unwrap_or_default();
        if log.lines().any(|l| l.contains(" deploy  info failed: ")) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no end in the log:\n{log}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    // Slow, not stuck: a read waits while stagehand's one connection sits in SQLite's
    // busy timeout on a retry.
    let mut resp = c
        .get_request(&format!("/api/deploys/{id}"), Duration::from_secs(120))
        .send()
        .await
        .unwrap();
    let stored: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(stored["status"], "running", "{stored}");
    assert!(
        !follower.is_finished(),
        "the follower was told the deploy ended before the store was"
    );

    // Let go: the retried write lands and everyone agrees on it.
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    let stored = c.wait(&serde_json::Value::String(id.clone()), 120).await;
    assert_eq!(stored["status"], "failed", "{stored}");
    assert!(
        stored["reason"].as_str().unwrap().contains("database"),
        "{stored}"
    );
    let events = follower.await.unwrap();
    let last_status = events
        .split("\n\n")
        .filter_map(|frame| frame.strip_prefix("event: status\ndata: "))
        .last()
        .unwrap_or_else(|| panic!("no status event:\n{events}"));
    let last_status: serde_json::Value = serde_json::from_str(last_status).unwrap();
    assert_eq!(last_status["status"], stored["status"], "{events}");
    assert_eq!(last_status["reason"], stored["reason"], "{events}");

    // The environment is free again: the next push deploys.
    std::fs::remove_file(shared.join("building")).unwrap();
    let next = commit(&repo, "Next", &[("build.sh", "echo fine\n")]);
    let (_, answer) = c.push(&push_body("refs/heads/develop", &next)).await;
    let deploy = c.wait(&answer["deploy"]["id"], 60).await;
    assert_eq!(deploy["status"], "succeeded", "{deploy}");
    full.stop().await;
}
