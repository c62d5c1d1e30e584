//! `POST /hooks/<app>`: every row of the contract's table, against the real server.

use std::io::{Read, Write};

use crate::support::*;
use serde_json::{Value, json};

fn push_to(git_ref: &str) -> Value {
    let mut body = sample("push.json");
    body["ref"] = json!(git_ref);
    body
}

#[actix_web::test]
async fn push_to_a_mapped_branch_queues_a_deploy() {
    let server = Harness::builder().without_runner().start().await;
    let body = sample("push.json");
    let (status, answer) = server.send(&Delivery::json("push", &body)).await;
    assert_eq!(status, 202, "{answer}");
    let deploy = &answer["deploy"];
    assert_eq!(deploy["app"], "shop");
    assert_eq!(deploy["environment"], "staging");
    assert_eq!(deploy["ref"], "refs/heads/develop");
    assert_eq!(deploy["commit"], body["after"]);
    assert_eq!(deploy["trigger"], "push");
    assert_eq!(deploy["status"], "queued");
    assert_eq!(deploy["reason"], Value::Null);
    let id = deploy["id"].as_str().unwrap();
    assert_eq!(deploy["log_url"], format!("/api/deploys/{id}/log"));
    // The 202 came after the commit: the row is there for the API.
    let (status, stored) = server.get(&format!("/api/deploys/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(stored, *deploy);
    server.stop().await;
}

#[actix_web::test]
async fn form_encoded_push_is_accepted() {
    let server = Harness::builder().without_runner().start().await;
    let delivery = Delivery::raw("push", sample_bytes("push-form.txt"))
        .header("Content-Type", Some("application/x-www-form-urlencoded"));
    let (status, answer) = server.send(&delivery).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["deploy"]["environment"], "staging");
    assert_eq!(answer["deploy"]["commit"], sample("push.json")["after"]);
    server.stop().await;
}

#[actix_web::test]
async fn ping_records_the_hook() {
    let server = Harness::builder().without_runner().start().await;
    let (status, answer) = server
        .send(&Delivery::json("ping", &sample("ping.json")))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["hook_id"], 123456789);
    let app = stagehand::core::ids::AppName::parse("shop").unwrap();
    assert_eq!(server.store.hook_ids(&app).unwrap(), ["123456789"]);
    server.stop().await;
}

#[actix_web::test]
async fn new_branch_makes_a_temporary_environment() {
    let server = Harness::builder().without_runner().start().await;
    let (status, answer) = server
        .send(&Delivery::json("push", &sample("push-new-branch.json")))
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["deploy"]["environment"], "preview-feature-new-cart");
    let (_, apps) = server.get("/api/apps").await;
    let envs = apps["apps"][0]["environments"].as_array().unwrap();
    let preview = envs
        .iter()
        .find(|e| e["name"] == "preview-feature-new-cart")
        .unwrap();
    assert_eq!(preview["temporary"], true);
    assert_eq!(preview["branch"], "feature/New_Cart!");
    assert_eq!(preview["last_deploy"]["id"], answer["deploy"]["id"]);
    assert_eq!(preview["live_release"], Value::Null);
    // Fixed environments are listed too, the pattern itself is not.
    let names: Vec<&str> = envs.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "production",
            "releases",
            "staging",
            "preview-feature-new-cart"
        ]
    );

    // A branch whose readable name collides gets a distinct, hashed one.
    let mut other = sample("push-new-branch.json");
    other["ref"] = json!("refs/heads/feature/new-cart");
    let (status, answer) = server.send(&Delivery::json("push", &other)).await;
    assert_eq!(status, 202, "{answer}");
    let name = answer["deploy"]["environment"].as_str().unwrap();
    assert!(
        name.starts_with("preview-feature-new-cart-") && name.len() <= 63,
        "{name}"
    );
    server.stop().await;
}

#[actix_web::test]
async fn deleting_a_temporary_branch_tears_down_once() {
    let server = Harness::builder().without_runner().start().await;
    server
        .send(&Delivery::json("push", &sample("push-new-branch.json")))
        .await;
    let (status, push_delete) = server
        .send(&Delivery::json("push", &sample("push-delete-branch.json")))
        .await;
    assert_eq!(status, 202, "{push_delete}");
    assert_eq!(push_delete["deploy"]["trigger"], "teardown");
    assert_eq!(
        push_delete["deploy"]["environment"],
        "preview-feature-new-cart"
    );
    // GitHub also sends a `delete` event for the same deletion: same teardown.
    let (status, delete_event) = server
        .send(&Delivery::json("delete", &sample("delete-branch.json")))
        .await;
    assert_eq!(status, 202, "{delete_event}");
    assert_eq!(delete_event["deploy"]["id"], push_delete["deploy"]["id"]);
    server.stop().await;
}

#[actix_web::test]
async fn deleting_a_fixed_branch_or_a_tag_is_ignored() {
    let server = Harness::builder().without_runner().start().await;
    let mut delete_main = sample("push-delete-branch.json");
    delete_main["ref"] = json!("refs/heads/main");
    let (status, answer) = server.send(&Delivery::json("push", &delete_main)).await;
    assert_eq!(status, 200);
    assert!(
        answer["ignored"]
            .as_str()
            .unwrap()
            .contains("nothing is torn down"),
        "{answer}"
    );
    // A deleted branch that never deployed has nothing to tear down.
    let (status, answer) = server
        .send(&Delivery::json("delete", &sample("delete-branch.json")))
        .await;
    assert_eq!(status, 200);
    assert!(
        answer["ignored"]
            .as_str()
            .unwrap()
            .contains("no temporary environment"),
        "{answer}"
    );
    let (_, list) = server.get("/api/deploys").await;
    assert_eq!(list["deploys"], json!([]));
    server.stop().await;
}

#[actix_web::test]
async fn tag_push_feeds_the_tag_environment() {
    let server = Harness::builder().without_runner().start().await;
    let body = sample("push-tag.json");
    let (status, answer) = server.send(&Delivery::json("push", &body)).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["deploy"]["environment"], "releases");
    assert_eq!(answer["deploy"]["ref"], "refs/tags/v1.2.0");
    // Issue 16 item 9: the answer shows the commit the tag points at (the payload's
    // head commit), not the annotated tag object that `after` names.
    assert_ne!(body["after"], body["head_commit"]["id"]);
    assert_eq!(answer["deploy"]["commit"], body["head_commit"]["id"]);
    server.stop().await;
}

#[actix_web::test]
async fn skip_marker_records_a_skipped_deploy() {
    let server = Harness::builder().without_runner().start().await;
    let (status, answer) = server
        .send(&Delivery::json("push", &sample("push-skip.json")))
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["deploy"]["status"], "skipped");
    assert!(
        answer["deploy"]["reason"]
            .as_str()
            .unwrap()
            .contains("[skip deploy]")
    );
    assert!(answer["deploy"]["finished_at"].is_string());
    server.stop().await;
}

#[actix_web::test]
async fn forced_push_is_recorded_as_forced() {
    let server = Harness::builder().without_runner().start().await;
    let (status, answer) = server
        .send(&Delivery::json("push", &sample("push-forced.json")))
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["deploy"]["environment"], "production");
    assert_eq!(answer["deploy"]["forced"], true);
    server.stop().await;
}

#[actix_web::test]
async fn unmapped_branches_and_other_events_are_ignored() {
    let server = Harness::builder().without_runner().start().await;
    let (status, answer) = server
        .send(&Delivery::json("push", &push_to("refs/heads/wip")))
        .await;
    assert_eq!(
        (status, answer["ignored"].as_str().is_some()),
        (200, true),
        "{answer}"
    );
    assert!(answer["ignored"].as_str().unwrap().contains("branch `wip`"));
    let (status, answer) = server
        .send(&Delivery::json("issues", &sample("issues.json")))
        .await;
    assert_eq!(status, 200);
    assert!(
        answer["ignored"].as_str().unwrap().contains("`issues`"),
        "{answer}"
    );
    server.stop().await;
}

#[actix_web::test]
async fn redelivery_answers_the_first_deploy_and_runs_nothing_twice() {
    let server = Harness::builder().without_runner().start().await;
    let first = Delivery::json("push", &sample("push.json"));
    let (status, answer) = server.send(&first).await;
    assert_eq!(status, 202);
    let (status, again) = server.send(&first).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["deploy"]["id"], answer["deploy"]["id"]);
    // The same delivery id from another hook is another delivery.
    let mut other_hook =
        Delivery::json("push", &sample("push.json")).header("X-GitHub-Hook-ID", Some("987"));
    other_hook.delivery_id = first.delivery_id.clone();
    let (status, _) = server.send(&other_hook).await;
    assert_eq!(status, 202);
    let (_, list) = server.get("/api/deploys").await;
    assert_eq!(list["deploys"].as_array().unwrap().len(), 2);
    // An ignored delivery redelivered stays ignored, and says it is a duplicate.
    let ignored = Delivery::json("issues", &sample("issues.json"));
    server.send(&ignored).await;
    let (status, again) = server.send(&ignored).await;
    assert_eq!(
        (status, &again["duplicate"]),
        (200, &json!(true)),
        "{again}"
    );
    server.stop().await;
}

#[actix_web::test]
async fn bad_signatures_get_401_and_record_nothing() {
    let server = Harness::builder().without_runner().start().await;
    let body = serde_json::to_vec(&sample("push.json")).unwrap();
    let cases: Vec<(Option<String>, &str)> = vec![
        (None, "missing X-Hub-Signature-256"),
        (Some("sha256=00".into()), "malformed"),
        (
            Some(stagehand::core::signature::sign(b"wrong secret", &body)),
            "does not match",
        ),
        (
            Some(stagehand::core::signature::sign(
                SECRET.as_bytes(),
                b"other body",
            )),
            "does not match",
        ),
    ];
    for (signature, needle) in cases {
        let delivery =
            Delivery::raw("push", body.clone()).header("X-Hub-Signature-256", signature.as_deref());
        let (status, answer) = server.send(&delivery).await;
        assert_eq!(status, 401, "{answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(needle),
            "{answer}"
        );
    }
    let (_, list) = server.get("/api/deploys").await;
    assert_eq!(list["deploys"], json!([]));
    let (_, _, metrics) = server.get_with("/metrics", None).await;
    assert!(
        metrics.contains("stagehand_deliveries_total{result=\"unauthorized\"} 4"),
        "{metrics}"
    );
    server.stop().await;
}

#[actix_web::test]
async fn unknown_app_is_404() {
    let server = Harness::builder().without_runner().start().await;
    for app in ["blog", "..", "UPPER"] {
        let mut delivery = Delivery::json("push", &sample("push.json"));
        delivery.app = app.into();
        let (status, answer) = server.send(&delivery).await;
        assert_eq!(status, 404, "{app}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("unknown app"),
            "{answer}"
        );
    }
    server.stop().await;
}

#[actix_web::test]
async fn bad_bodies_are_400_with_a_reason() {
    let server = Harness::builder().without_runner().start().await;
    let mut missing_after = sample("push.json");
    missing_after.as_object_mut().unwrap().remove("after");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("push", b"{not json".to_vec(), "not valid JSON"),
        (
            "push",
            serde_json::to_vec(&missing_after).unwrap(),
            "missing field `after`",
        ),
        ("ping", b"[]".to_vec(), "not valid JSON"),
        ("push", Vec::new(), "not valid JSON"),
    ];
    for (event, body, needle) in cases {
        let (status, answer) = server.send(&Delivery::raw(event, body)).await;
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(needle),
            "{needle}: {answer}"
        );
    }
    let form = Delivery::raw("push", b"nopayload=1".to_vec())
        .header("Content-Type", Some("application/x-www-form-urlencoded"));
    let (status, answer) = server.send(&form).await;
    assert_eq!(status, 400, "{answer}");
    let mut no_event = Delivery::json("push", &sample("push.json"));
    no_event.event = String::new();
    let (status, _) = server.send(&no_event).await;
    assert_eq!(status, 400);
    let (_, list) = server.get("/api/deploys").await;
    assert_eq!(list["deploys"], json!([]));
    server.stop().await;
}

#[actix_web::test]
async fn wrong_repository_is_403() {
    let server = Harness::builder().without_runner().start().await;
    let mut body = sample("push.json");
    body["repository"]["full_name"] = json!("mallory/shop");
    let (status, answer) = server.send(&Delivery::json("push", &body)).await;
    assert_eq!(status, 403, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("mallory/shop"));
    server.stop().await;
}

/// Writes a raw HTTP request and returns the status line's code.
fn raw_request(url: &str, head: &str, body_chunks: impl Iterator<Item = Vec<u8>>) -> u16 {
    let addr = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    for chunk in body_chunks {
        // The server may answer and close before the body is all sent: that is the point.
        if stream.write_all(&chunk).is_err() {
            break;
        }
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[actix_web::test]
async fn oversized_bodies_are_413_before_reading_them() {
    let server = Harness::builder().without_runner().start().await;
    let url = server.url.clone();
    // Declared too large: refused without sending a byte of body.
    let declared = actix_web::rt::task::spawn_blocking(move || {
        let head = "POST /hooks/shop HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\nContent-Type: application/json\r\nContent-Length: 30000000\r\nConnection: close\r\n\r\n";
        raw_request(&url, head, std::iter::empty())
    })
    .await
    .unwrap();
    assert_eq!(declared, 413);
    // Chunked, no declared length: refused once past the cap while reading. (It needs a
    // well-formed signature header: one without is refused before the body is read.)
    let url = server.url.clone();
    let chunked = actix_web::rt::task::spawn_blocking(move || {
        let head = "POST /hooks/shop HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\nX-Hub-Signature-256: sha256=0000000000000000000000000000000000000000000000000000000000000000\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
        let chunk = vec![b'a'; 1 << 20];
        let frames = (0..27).map(move |_| {
            let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
            frame.extend_from_slice(&chunk);
            frame.extend_from_slice(b"\r\n");
            frame
        });
        raw_request(&url, head, frames.chain(std::iter::once(b"0\r\n\r\n".to_vec())))
    })
    .await
    .unwrap();
    assert_eq!(chunked, 413);
    server.stop().await;
}

#[actix_web::test]
async fn header_names_in_any_case() {
    let server = Harness::builder().without_runner().start().await;
    let body = serde_json::to_vec(&sample("push.json")).unwrap();
    let signature = stagehand::core::signature::sign(SECRET.as_bytes(), &body);
    let mut head = format!(
        "POST /hooks/shop HTTP/1.1\r\nHost: x\r\nx-github-event: push\r\nX-GITHUB-DELIVERY: {}\r\nx-hub-SIGNATURE-256: {signature}\r\ncontent-type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        unique_id(),
        body.len()
    );
    head.push_str(std::str::from_utf8(&body).unwrap());
    let url = server.url.clone();
    let status =
        actix_web::rt::task::spawn_blocking(move || raw_request(&url, &head, std::iter::empty()))
            .await
            .unwrap();
    assert_eq!(status, 202);
    server.stop().await;
}

#[actix_web::test]
async fn garbage_never_panics_the_server() {
    let server = Harness::builder().without_runner().start().await;
    let shapes: Vec<Vec<u8>> = vec![
        b"null".to_vec(),
        b"{}".to_vec(),
        br#"{"ref": 5, "before": [], "after": {}}"#.to_vec(),
        br#"{"ref":"refs/heads/main","before":"0","after":"1","repository":{"full_name":"acme/shop"}}"#.to_vec(),
        vec![0xff, 0xfe, 0x00, 0x01],
        "\u{0}".repeat(1000).into_bytes(),
        br#"{"ref":"refs/heads/x\u0000","before":"0000000000000000000000000000000000000000","after":"0000000000000000000000000000000000000000","repository":{"full_name":"acme/shop"}}"#.to_vec(),
    ];
    for event in ["push", "delete", "ping", "issues"] {
        for body in &shapes {
            let (status, answer) = server.send(&Delivery::raw(event, body.clone())).await;
            assert!(
                matches!(status, 200 | 400 | 403),
                "{event} {body:?}: {status} {answer}"
            );
        }
    }
    let (status, _) = server.get("/healthz").await;
    assert_eq!(status, 200);
    server.stop().await;
}
