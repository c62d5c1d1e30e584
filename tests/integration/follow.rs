//! Watching a deploy live: lines reach followers as they are written, not when the
//! deploy ends.

use std::path::Path;
use std::time::Duration;

use crate::support::*;
use futures_util::StreamExt;

fn toml(dir: &Path, repo: &Path) -> String {
    shop_toml(dir, repo, FIRST_THEN_SECOND)
}

async fn start() -> (Harness, String, std::path::PathBuf) {
    let b = Harness::builder();
    let repo = b.repo().to_owned();
    let marker = b.dir().join("srv/staging/shared/second-written");
    let toml = toml(b.dir(), &repo);
    let sha = git(&repo, &["rev-parse", "develop"]);
    (b.toml(&toml).start().await, sha, marker)
}

#[actix_web::test]
async fn follow_gets_the_first_line_before_the_second_is_written() {
    let (full, sha, marker) = start().await;
    let c = full.client();
    let (_, answer) = c.push(&push_body("refs/heads/develop", &sha)).await;
    let id = answer["deploy"]["id"].as_str().unwrap().to_owned();
    // Subscribe right away: the deploy may still be queued.
    let mut resp = c
        .get_request(
            &format!("/api/deploys/{id}/log?follow=1"),
            Duration::from_secs(60),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut text = String::new();
    let mut saw_first_early = false;
    while let Some(chunk) = resp.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        if text.contains("out  first") && !text.contains("out  second") && !saw_first_early {
            saw_first_early = !marker.exists();
        }
    }
    assert!(
        saw_first_early,
        "the first line only arrived after the second was written:\n{text}"
    );
    assert!(text.contains("out  second"), "{text}");
    assert!(
        text.trim_end().ends_with("succeeded"),
        "the stream ends with the outcome:\n{text}"
    );
    // The whole log again, after the end: the same lines as the file.
    assert_eq!(c.log(&answer["deploy"]["id"]).await, text);
    full.stop().await;
}

#[actix_web::test]
async fn server_sent_events_stream_live_and_resume() {
    let (full, sha, marker) = start().await;
    let c = full.client();
    let (_, answer) = c.push(&push_body("refs/heads/develop", &sha)).await;
    let id = answer["deploy"]["id"].as_str().unwrap().to_owned();
    let mut resp = c
        .get_request(
            &format!("/api/deploys/{id}/events"),
            Duration::from_secs(60),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        "text/event-stream"
    );
    let mut text = String::new();
    let mut saw_first_early = false;
    while let Some(chunk) = resp.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        if text.contains("out  first") && !saw_first_early && !text.contains("out  second") {
            saw_first_early = !marker.exists();
        }
    }
    assert!(saw_first_early, "{text}");
    assert!(
        text.contains(
            "event: stage\ndata: {\"duration_ms\":null,\"name\":\"build\",\"status\":\"running\"}"
        ),
        "{text}"
    );
    assert!(
        text.contains("event: status\ndata: {\"reason\":null,\"status\":\"succeeded\"}"),
        "{text}"
    );
    let ids: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(
        ids,
        (1..=ids.len() as u64).collect::<Vec<_>>(),
        "every line once, in order"
    );

    // Resuming after line 3 replays from line 4 only.
    let mut resp = c
        .get_request(
            &format!("/api/deploys/{id}/events"),
            Duration::from_secs(60),
        )
        .insert_header(("Last-Event-ID", "3"))
        .send()
        .await
        .unwrap();
    let body = resp.body().await.unwrap();
    let resumed = String::from_utf8_lossy(&body);
    let first_id = resumed
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap();
    assert_eq!(first_id, "4");
    assert!(resumed.contains("event: status"), "{resumed}");
    full.stop().await;
}

#[actix_web::test]
async fn following_needs_the_token_and_an_existing_deploy() {
    let (full, _, _) = start().await;
    let c = full.client();
    let (status, _) = c.get("/api/deploys/42/log?follow=1").await;
    assert_eq!(status, 404);
    let (status, _, _) = c.get_with("/api/deploys/1/events", None).await;
    assert_eq!(status, 401);
    full.stop().await;
}

/// A follower joining after more lines than the server keeps in memory still gets
/// every line once, in order (the older ones from the file).
#[actix_web::test]
async fn a_late_follower_of_a_chatty_build_misses_nothing() {
    let b = Harness::builder();
    let repo = b.repo().to_owned();
    let marker = b.dir().join("srv/staging/shared/printed");
    let toml = shop_toml(
        b.dir(),
        &repo,
        r#"shared = ["storage/"]
build = ["seq 1 6000; touch \"$STAGEHAND_SHARED_DIR/printed\"; sleep 2; echo end"]
[apps.shop.environments.staging]
branch = "develop"
"#,
    );
    let sha = git(&repo, &["rev-parse", "develop"]);
    let full = b.toml(&toml).start().await;
    let c = full.client();
    let (_, answer) = c.push(&push_body("refs/heads/develop", &sha)).await;
    let id = answer["deploy"]["id"].as_str().unwrap().to_owned();
    while !marker.exists() {
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    let mut resp = c
        .get_request(
            &format!("/api/deploys/{id}/log?follow=1"),
            Duration::from_secs(60),
        )
        .send()
        .await
        .unwrap();
    let body = resp.body().limit(64 << 20).await.unwrap();
    let followed = String::from_utf8_lossy(&body).into_owned();
    assert!(followed.contains("out  6000\n") && followed.contains("out  end\n"));
    assert_eq!(followed, c.log(&answer["deploy"]["id"]).await);
    full.stop().await;
}
