//! `require_checks`: automatic deploys wait for their commit's checks, from the forges'
//! own check events (`webhook-samples/`) or, as a fallback, a fake forge API on
//! 127.0.0.1; failures and the time limit skip them, a newer push supersedes them,
//! manual deploys never wait, and a waiting deploy can be cancelled.

use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::{Value, json};
use stagehand::core::forge::Forge;

/// Staging follows `develop` and requires GitHub's sample check run by name.
fn named_check(dir: &std::path::Path, repo: &std::path::Path) -> String {
    shop_toml(
        dir,
        repo,
        r#"[apps.shop.environments.staging]
branch = "develop"
require_checks = ["Octocoders-linter"]
"#,
    )
}

/// Polls a deploy until its status is `want` (or any end, then it must be `want`).
async fn wait_for(client: &Client, id: &Value, want: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (status, deploy) = client
            .get(&format!("/api/deploys/{}", id.as_str().unwrap()))
            .await;
        assert_eq!(status, 200, "{deploy}");
        let now = deploy["status"].as_str().unwrap_or_default().to_owned();
        if now == want {
            return deploy;
        }
        let open = ["queued", "waiting", "running"].contains(&now.as_str());
        assert!(open, "deploy ended {now}, not {want}: {deploy}");
        assert!(
            Instant::now() < deadline,
            "deploy still {now} after {secs}s, not {want}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// GitHub's `check_run` sample for `sha`, with `conclusion`.
fn check_run(sha: &str, conclusion: &str) -> Delivery {
    let mut body = sample("check-run.json");
    body["check_run"]["head_sha"] = json!(sha);
    body["check_run"]["conclusion"] = json!(conclusion);
    body["repository"]["full_name"] = json!("acme/shop");
    Delivery::json("check_run", &body)
}

async fn push_develop(s: &Harness) -> (String, Value) {
    let sha = git(&s.repo, &["rev-parse", "develop"]);
    let (status, answer) = s.push(&push_body("refs/heads/develop", &sha)).await;
    assert_eq!(status, 202, "{answer}");
    (sha, answer["deploy"]["id"].clone())
}

#[actix_web::test]
async fn a_push_waits_until_its_check_run_succeeds() {
    let s = Harness::builder().config(named_check).start().await;
    let (sha, id) = push_develop(&s).await;
    let waiting = wait_for(&s, &id, "waiting", 30).await;
    assert_eq!(waiting["commit"], json!(sha));
    assert_eq!(s.live("staging"), None, "deployed before its checks passed");
    // Visible in the overview too (the CLI's `status` and the dashboard read it).
    let (_, apps) = s.get("/api/apps").await;
    assert!(apps.to_string().contains("\"waiting\""), "{apps}");

    // Results for another repository are refused, as its pushes are.
    let mut foreign = sample("check-run.json");
    foreign["check_run"]["head_sha"] = json!(sha);
    let (status, answer) = s.send(&Delivery::json("check_run", &foreign)).await;
    assert_eq!(status, 403, "{answer}");
    // A check run for another commit changes nothing.
    let (status, answer) = s.send(&check_run(&"0".repeat(40), "success")).await;
    assert_eq!((status, &answer["checks"]), (200, &json!(1)), "{answer}");
    let (status, answer) = s.send(&check_run(&sha, "success")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["checks"], 1, "{answer}");
    let done = s.wait_through_checks(&id, 60).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(s.revision("staging").as_deref(), Some(sha.as_str()));
    s.stop().await;
}

#[actix_web::test]
async fn a_failed_required_check_skips_the_deploy_with_its_name() {
    let s = Harness::builder().config(named_check).start().await;
    let (sha, id) = push_develop(&s).await;
    wait_for(&s, &id, "waiting", 30).await;
    let (status, answer) = s.send(&check_run(&sha, "failure")).await;
    assert_eq!(status, 200, "{answer}");
    let skipped = wait_for(&s, &id, "skipped", 30).await;
    assert_eq!(
        skipped["reason"], "required check `Octocoders-linter` failed",
        "{skipped}"
    );
    assert_eq!(s.live("staging"), None);
    assert!(
        s.releases("staging").is_empty(),
        "{:?}",
        s.releases("staging")
    );
    s.stop().await;
}

#[actix_web::test]
async fn checks_that_never_report_skip_the_deploy_after_checks_timeout() {
    let s = Harness::builder()
        .app(
            r#"require_checks = true
checks_timeout = "1s"
[apps.shop.environments.staging]
branch = "develop"
"#,
        )
        .start()
        .await;
    let (_, id) = push_develop(&s).await;
    let skipped = wait_for(&s, &id, "skipped", 30).await;
    assert_eq!(
        skipped["reason"], "checks did not pass within 1s: still waiting for `any check`",
        "{skipped}"
    );
    assert_eq!(s.live("staging"), None);
    s.stop().await;
}

#[actix_web::test]
async fn a_newer_push_supersedes_a_waiting_one_and_manual_deploys_never_wait() {
    let s = Harness::builder().config(named_check).start().await;
    let (first, first_id) = push_develop(&s).await;
    wait_for(&s, &first_id, "waiting", 30).await;
    git(&s.repo, &["checkout", "-q", "develop"]);
    let second = commit(&s.repo, "Second", &[("second.txt", "2\n")]);
    let (status, answer) = s.push(&push_body("refs/heads/develop", &second)).await;
    assert_eq!(status, 202, "{answer}");
    let second_id = answer["deploy"]["id"].clone();
    wait_for(&s, &second_id, "waiting", 30).await;
    let older = wait_for(&s, &first_id, "superseded", 30).await;
    assert!(
        older["reason"].as_str().unwrap().contains("newer push"),
        "{older}"
    );
    // The first commit's checks passing now deploys nothing.
    s.send(&check_run(&first, "success")).await;
    s.send(&check_run(&second, "success")).await;
    let done = s.wait_through_checks(&second_id, 60).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(s.revision("staging").as_deref(), Some(second.as_str()));

    // A person's deploy goes at once, checks or not.
    let (status, answer) = s
        .post("/api/apps/shop/environments/staging/deploy", &json!({}))
        .await;
    assert_eq!(status, 202, "{answer}");
    let manual = s.wait(&answer["deploy"]["id"], 60).await;
    assert_eq!(manual["status"], "succeeded", "{manual}");
    s.stop().await;
}

#[actix_web::test]
async fn a_waiting_deploy_can_be_cancelled() {
    let s = Harness::builder().config(named_check).start().await;
    let (sha, id) = push_develop(&s).await;
    wait_for(&s, &id, "waiting", 30).await;
    let cli = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_stagehand"));
        cmd.args(args)
            .env("STAGEHAND_API_TOKEN", TOKEN)
            .env("STAGEHAND_SERVER", &s.url)
            .env("NO_COLOR", "1");
        actix_web::rt::task::spawn_blocking(move || cmd.output().unwrap())
    };
    let status = cli(&["status"]).await.unwrap();
    let text = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(text.contains("waiting"), "{text}");
    let bogus = cli(&["cancel", "../reload"]).await.unwrap();
    assert_eq!(bogus.status.code(), Some(2), "{bogus:?}");
    let number = id.as_str().unwrap();
    let cancelled = cli(&["cancel", number]).await.unwrap();
    let text = String::from_utf8_lossy(&cancelled.stdout).into_owned();
    assert!(cancelled.status.success(), "{cancelled:?}");
    assert!(
        text.contains(&format!("deploy {number} cancelled")),
        "{text}"
    );
    let path = format!("/api/deploys/{number}/cancel");
    // Its checks passing later starts nothing.
    s.send(&check_run(&sha, "success")).await;
    let (status, answer) = s.post(&path, &json!({})).await;
    assert_eq!(status, 200, "cancelling twice is harmless: {answer}");
    let (status, answer) = s.post("/api/deploys/999/cancel", &json!({})).await;
    assert_eq!(status, 404, "{answer}");
    let (_, deploy) = s
        .get(&format!("/api/deploys/{}", id.as_str().unwrap()))
        .await;
    assert_eq!(deploy["status"], "cancelled", "{deploy}");
    assert_eq!(s.live("staging"), None);
    s.stop().await;
}

/// Answers a combined status for any commit with `ci/jenkins` succeeded (GitHub's
/// shape, each entry also carrying Gitea's and Forgejo's `status` field), check runs
/// with none, and anything else (Deployments, commit statuses) with `201 {"id": 1}`.
fn fake_forge() -> (String, Seen) {
    fake_api(|r| {
        if r.path.ends_with("/status") {
            (
                200,
                json!({"state": "success", "statuses": [{"context": "ci/jenkins", "state": "success", "status": "success"}]}),
            )
        } else if r.path.ends_with("/check-runs") {
            (200, json!({"total_count": 0, "check_runs": []}))
        } else {
            (201, json!({"id": 1}))
        }
    })
}

#[actix_web::test]
async fn without_events_the_forge_api_is_polled() {
    let (api, asked) = fake_forge();
    let b = Harness::builder();
    let repo = b.repo().to_owned();
    let toml = shop_toml_with(
        b.dir(),
        &repo,
        "checks_poll_interval = \"1s\"",
        r#"[apps.shop.environments.staging]
branch = "develop"
require_checks = ["ci/jenkins"]
"#,
    )
    .replace(
        "github = \"acme/shop\"",
        &format!(
            "github = {{ repo = \"acme/shop\", token_env = \"GH_TOKEN\", api_url = \"{api}\" }}"
        ),
    );
    let full = b
        .toml(&toml)
        .env("GH_TOKEN", "gh-secret-token")
        .start()
        .await;
    let client = full.client();
    let sha = git(&repo, &["rev-parse", "develop"]);
    let (status, answer) = client.push(&push_body("refs/heads/develop", &sha)).await;
    assert_eq!(status, 202, "{answer}");
    let done = client
        .wait_through_checks(&answer["deploy"]["id"], 60)
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let asked = asked.lock().unwrap().clone();
    let status_path = format!("/repos/acme/shop/commits/{sha}/status");
    let polled = asked
        .iter()
        .find(|r| r.path == status_path)
        .unwrap_or_else(|| panic!("never asked for {status_path}: {asked:?}"));
    assert_eq!(polled.header("authorization"), "Bearer gh-secret-token");
    assert!(
        asked
            .iter()
            .any(|r| r.path == format!("/repos/acme/shop/commits/{sha}/check-runs")),
        "{asked:?}"
    );
    full.stop().await;
}

/// `forge`'s push of `develop`'s head (from its sample), answered 202: the head and the
/// deploy's id.
async fn forge_push_develop(s: &Harness, forge: Forge) -> (String, Value) {
    let sha = git(&s.repo, &["rev-parse", "develop"]);
    let before = git(&s.repo, &["rev-parse", "develop~1"]);
    let (event, body) = crate::forges::delivery(
        forge,
        &crate::forges::Change {
            git_ref: "refs/heads/develop",
            before: &before,
            after: &sha,
            commit: &sha,
            message: "Add cart totals",
        },
    );
    let bytes = serde_json::to_vec(&body).unwrap();
    let (status, answer) = s.send(&Delivery::from_forge(forge, &event, bytes)).await;
    assert_eq!(status, 202, "{forge}: {answer}");
    (sha, answer["deploy"]["id"].clone())
}

/// A forge's push of `develop` for `forge`, then its check event from the samples.
async fn forge_push_then_check(forge: Forge, required: &str, event: &str, check: Value) {
    let s = Harness::builder().config(|dir, repo| {
        shop_toml(
            dir,
            repo,
            &format!(
                "forge = \"{forge}\"\nrepository = \"acme/shop\"\n\
                 [apps.shop.environments.staging]\nbranch = \"develop\"\nrequire_checks = {required}\n"
            ),
        )
    }).start()
    .await;
    let (sha, id) = forge_push_develop(&s, forge).await;
    wait_for(&s, &id, "waiting", 30).await;
    let text = check.to_string().replace("SHA", &sha);
    let (status, answer) = s
        .send(&Delivery::from_forge(
            forge,
            event,
            text.as_bytes().to_vec(),
        ))
        .await;
    assert_eq!(status, 200, "{forge}: {answer}");
    assert!(answer["checks"].as_u64() > Some(0), "{forge}: {answer}");
    let done = s.wait_through_checks(&id, 60).await;
    assert_eq!(done["status"], "succeeded", "{forge}: {done}");
    s.stop().await;
}

#[actix_web::test]
async fn a_gitlab_pipeline_hook_releases_the_deploy() {
    let mut pipeline = sample("gitlab/pipeline.json");
    pipeline["object_attributes"]["sha"] = json!("SHA");
    pipeline["project"]["path_with_namespace"] = json!("acme/shop");
    // The sample's pipeline passed with a manual `staging` job never run: it does not hold
    // the deploy back, and a named job counts by itself.
    forge_push_then_check(
        Forge::Gitlab,
        "[\"pipeline\", \"test-build\"]",
        "Pipeline Hook",
        pipeline,
    )
    .await;
}

#[actix_web::test]
async fn a_gitea_status_event_releases_the_deploy() {
    let mut status = sample("gitea/status.json");
    status["sha"] = json!("SHA");
    status["repository"]["full_name"] = json!("acme/shop");
    forge_push_then_check(Forge::Gitea, "true", "status", status).await;
}

/// Forgejo sends no commit-status event (its `modules/webhook/type.go` has none), so a
/// Forgejo app learns results from its API: the combined status of the commit, asked
/// with the app's `statuses` token.
#[actix_web::test]
async fn forgejo_checks_come_from_its_api() {
    let (api, asked) = fake_forge();
    let b = Harness::builder();
    let repo = b.repo().to_owned();
    let toml = shop_toml_with(
        b.dir(),
        &repo,
        "checks_poll_interval = \"1s\"",
        &format!(
            r#"forge = "forgejo"
repository = "acme/shop"
statuses = {{ token_env = "FJ_TOKEN", api_url = "{api}/api/v1" }}
[apps.shop.environments.staging]
branch = "develop"
require_checks = ["ci/jenkins"]
"#
        ),
    );
    let s = b
        .toml(&toml)
        .env("FJ_TOKEN", "fj-secret-token")
        .start()
        .await;
    let (sha, id) = forge_push_develop(&s, Forge::Forgejo).await;
    let done = s.wait_through_checks(&id, 60).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let asked = asked.lock().unwrap().clone();
    let status_path = format!("/api/v1/repos/acme/shop/commits/{sha}/status");
    let polled = asked
        .iter()
        .find(|r| r.path == status_path)
        .unwrap_or_else(|| panic!("never asked for {status_path}: {asked:?}"));
    assert_eq!(polled.header("authorization"), "token fj-secret-token");
    s.stop().await;
}
