//! Replayed deliveries: the delivery id is not signed, so a captured push can be sent
//! again with a fresh one. A push deploys only while its commit is the head of its ref.

use serde_json::Value;

use crate::support::*;

/// `webhook-samples/push-forced.json`, rewritten to a forced push of `sha` to `develop`.
fn forced_push(sha: &str) -> Vec<u8> {
    let mut body = sample("push-forced.json");
    body["ref"] = Value::String("refs/heads/develop".into());
    body["after"] = Value::String(sha.into());
    body["head_commit"]["id"] = Value::String(sha.into());
    assert_eq!(body["forced"], true);
    serde_json::to_vec(&body).unwrap()
}

/// Issue 11 item 4: re-sending an old signed forced push after the branch moved on
/// rolled the environment back to the old commit.
#[actix_web::test]
async fn regression_a_replayed_forced_push_is_skipped_and_the_live_commit_stays() {
    let s = Harness::builder()
        .app(
            r#"[apps.shop.environments.staging]
branch = "develop"
"#,
        )
        .start()
        .await;
    git(&s.repo, &["checkout", "-q", "develop"]);
    let a = commit(&s.repo, "A", &[("VERSION", "a\n")]);
    let captured = forced_push(&a);
    let (status, answer) = s.send(&Delivery::raw("push", captured.clone())).await;
    assert_eq!(status, 202, "{answer}");
    let first = s.wait(&answer["deploy"]["id"], 60).await;
    assert_eq!(first["status"], "succeeded", "{first}");

    let b = commit(&s.repo, "B", &[("VERSION", "b\n")]);
    let second = s.push_and_wait("develop").await;
    assert_eq!(second["status"], "succeeded", "{second}");
    assert_eq!(s.revision("staging").as_deref(), Some(b.as_str()));

    // The same signed bytes; `Delivery::raw` gives it a fresh delivery id.
    let (status, answer) = s.send(&Delivery::raw("push", captured)).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["deploy"]["forced"], true);
    let replay = s.wait(&answer["deploy"]["id"], 60).await;
    assert_eq!(replay["status"], "skipped", "{replay}");
    assert_eq!(
        replay["reason"], "no longer the head of `develop`",
        "{replay}"
    );
    assert_eq!(s.revision("staging").as_deref(), Some(b.as_str()));

    // A person asking for the old commit still gets it.
    let (status, answer) = s
        .post(
            "/api/apps/shop/environments/staging/deploy",
            &serde_json::json!({ "ref": a }),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let manual = s.wait(&answer["deploy"]["id"], 60).await;
    assert_eq!(manual["status"], "succeeded", "{manual}");
    assert_eq!(s.revision("staging").as_deref(), Some(a.as_str()));
    s.stop().await;
}
