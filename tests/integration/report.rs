//! Reporting back to a fake GitHub API (a small HTTP server on 127.0.0.1 that records
//! what it is sent) and to `notify` URLs.

use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::{Value, json};

/// Answers like GitHub: deployments get increasing ids. The first notify POST fails
/// with 503, so the retry is exercised.
fn fake_github() -> (String, Seen) {
    let mut next_id = 100;
    let mut notify_failed = false;
    fake_api(move |r| {
        if r.path == "/notify" && !notify_failed {
            notify_failed = true;
            (503, json!({}))
        } else if r.path.ends_with("/deployments") {
            next_id += 1;
            (201, json!({ "id": next_id }))
        } else {
            (201, json!({}))
        }
    })
}

#[actix_web::test]
async fn deploys_are_mirrored_as_github_deployments_and_notified() {
    let (api, seen) = fake_github();
    let b = Harness::builder();
    let repo = b.repo().to_owned();
    let toml = format!(
        r#"
[server]
state_dir = "{state}"
reconcile_interval = "0"
public_url = "https://deploy.example.com"
[apps.shop]
repo = "{repo}"
github = {{ repo = "acme/shop", token_env = "GITHUB_TOKEN", api_url = "{api}" }}
secret_env = "SHOP_WEBHOOK_SECRET"
root = "{root}"
build = ["if [ -f fail ]; then exit 1; fi"]
notify = ["{api}/notify", {{ url = "{api}/slack", format = "slack" }}, {{ url = "{api}/discord", format = "discord" }}]
[apps.shop.environments.staging]
branch = "develop"
url = "https://{{environment}}.shop.example.com"
"#,
        state = b.dir().join("state").display(),
        repo = repo.display(),
        root = b.root().display(),
    );
    let full = b.toml(&toml).env("GITHUB_TOKEN", "gh-token").start().await;
    let client = full.client();

    git(&repo, &["checkout", "-q", "develop"]);
    let good = git(&repo, &["rev-parse", "HEAD"]);
    let (_, answer) = client.push(&push_body("refs/heads/develop", &good)).await;
    let first = client.wait(&answer["deploy"]["id"], 60).await;
    assert_eq!(first["status"], "succeeded");
    let bad = commit(&repo, "Break", &[("fail", "")]);
    let (_, answer) = client.push(&push_body("refs/heads/develop", &bad)).await;
    let second = client.wait(&answer["deploy"]["id"], 60).await;
    assert_eq!(second["status"], "failed");

    // Reporting is asynchronous: wait (bounded) for all twelve requests.
    let deadline = Instant::now() + Duration::from_secs(20);
    let requests = loop {
        let requests = seen.lock().unwrap().clone();
        if requests.len() >= 12 || Instant::now() > deadline {
            break requests;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    };
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    let mut github: Vec<&str> = paths
        .iter()
        .copied()
        .filter(|p| p.starts_with("/repos"))
        .collect();
    github.sort();
    assert_eq!(
        github,
        [
            "/repos/acme/shop/deployments",
            "/repos/acme/shop/deployments",
            "/repos/acme/shop/deployments/101/statuses",
            "/repos/acme/shop/deployments/101/statuses",
            "/repos/acme/shop/deployments/102/statuses",
            "/repos/acme/shop/deployments/102/statuses",
        ],
        "{paths:?}"
    );
    for r in &requests {
        if r.path.starts_with("/repos") {
            assert_eq!(r.header("authorization"), "Bearer gh-token");
        }
    }
    let deployments: Vec<&Received> = requests
        .iter()
        .filter(|r| r.path.ends_with("/deployments"))
        .collect();
    assert_eq!(deployments[0].body["ref"], good);
    assert_eq!(deployments[0].body["environment"], "staging");
    assert_eq!(deployments[0].body["transient_environment"], false);
    assert_eq!(deployments[1].body["ref"], bad);
    let states = |id: &str| -> Vec<Value> {
        requests
            .iter()
            .filter(|r| r.path == format!("/repos/acme/shop/deployments/{id}/statuses"))
            .map(|r| r.body["state"].clone())
            .collect()
    };
    assert_eq!(states("101"), [json!("in_progress"), json!("success")]);
    assert_eq!(states("102"), [json!("in_progress"), json!("failure")]);
    let status = requests
        .iter()
        .find(|r| r.path.ends_with("/101/statuses"))
        .unwrap();
    assert_eq!(
        status.body["log_url"],
        format!(
            "https://deploy.example.com/api/deploys/{}/log",
            first["id"].as_str().unwrap()
        )
    );
    assert_eq!(
        status.body["environment_url"],
        "https://staging.shop.example.com"
    );

    let notified: Vec<&Received> = requests.iter().filter(|r| r.path == "/notify").collect();
    assert_eq!(
        notified.len(),
        2,
        "one notify per deploy, the first after a retry: {paths:?}"
    );
    assert_eq!(notified[0].body["status"], "succeeded");
    assert_eq!(notified[1].body["status"], "failed");
    assert_eq!(notified[1].body["deploy"]["id"], second["id"]);
    // Issue 16 item 8: links go to the dashboard's deploy page, and Slack and Discord
    // get messages in their own shapes.
    let second_id = second["id"].as_str().unwrap();
    let page = format!("https://deploy.example.com/deploys/{second_id}");
    assert_eq!(notified[1].body["url"], page);
    assert_eq!(notified[1].body["message"], "Break");
    let slack: Vec<&Received> = requests.iter().filter(|r| r.path == "/slack").collect();
    assert_eq!(slack.len(), 2, "{paths:?}");
    let text = slack[1].body["text"].as_str().unwrap();
    assert!(
        text.starts_with(&format!("shop/staging: deploy #{second_id} failed"))
            && text.contains("Break (Ada)")
            && text.ends_with(&format!("<{page}|details>")),
        "{text}"
    );
    let discord: Vec<&Received> = requests.iter().filter(|r| r.path == "/discord").collect();
    assert_eq!(discord.len(), 2, "{paths:?}");
    let content = discord[1].body["content"].as_str().unwrap();
    assert!(
        content.contains(&format!("deploy \\#{second_id} failed"))
            && content.ends_with(&format!("[details]({page})")),
        "{content}"
    );
    full.stop().await;
}
