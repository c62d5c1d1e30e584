//! Reconciliation end to end: pushes to the origin repository that no delivery
//! announces (GitHub gave up, or stagehand was down) still reach their environments.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Client, Harness, ServerProcess, commit, git, serve_command, shop_toml_with};

/// `/metrics`, as text.
async fn metrics(client: &Client) -> String {
    client.get_with("/metrics", None).await.2
}

/// The value of one metric line (`name{labels}`).
async fn metric(client: &Client, line: &str) -> u64 {
    let text = metrics(client).await;
    text.lines()
        .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line} in\n{text}"))
}

const ROUNDS_OK: &str = "stagehand_reconcile_rounds_total{result=\"ok\"} ";

/// Waits until `n` more rounds have ended, so at least one whole round started after
/// whatever the caller changed.
async fn wait_rounds(client: &Client, n: u64) {
    let target = metric(client, ROUNDS_OK).await + n;
    wait_until("reconcile rounds", || async {
        metric(client, ROUNDS_OK).await >= target
    })
    .await;
}

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(90);
    while !check().await {
        assert!(Instant::now() < deadline, "still waiting for {what}");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

fn revision(root: &Path, env: &str) -> Option<String> {
    std::fs::read_to_string(root.join(env).join("current/REVISION"))
        .ok()
        .map(|s| s.trim().to_owned())
}

async fn wait_live(root: &Path, env: &str, sha: &str) {
    wait_until(&format!("{env} to run {sha}"), || async {
        revision(root, env).as_deref() == Some(sha)
    })
    .await;
}

/// Every deploy of `app` (newest first), optionally of one environment.
async fn deploys(client: &Client, environment: Option<&str>) -> Vec<Value> {
    let filter = environment
        .map(|e| format!("&environment={e}"))
        .unwrap_or_default();
    let (status, body) = client
        .get(&format!("/api/deploys?app=shop&limit=500{filter}"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["deploys"].as_array().unwrap().clone()
}

/// Waits for the newest deploy of `environment` to end, and returns it.
async fn last_finished(client: &Client, environment: &str) -> Value {
    let newest = deploys(client, Some(environment)).await;
    let id = newest
        .first()
        .unwrap_or_else(|| panic!("no deploy of {environment}"))["id"]
        .clone();
    client.wait(&id, 90).await
}

const ENVIRONMENTS: &str = r#"
build = ["if [ -f fail ]; then exit 1; fi"]
[apps.shop.environments.production]
branch = "main"
[apps.shop.environments.staging]
branch = "develop"
[apps.shop.environments.gated]
branch = "release"
auto_deploy = false
"#;

#[actix_web::test]
async fn a_push_no_delivery_announced_is_deployed_and_nothing_is_repeated() {
    let setup = Harness::builder()
        .config(|dir, repo| {
            git(repo, &["branch", "release"]);
            shop_toml_with(dir, repo, "reconcile_interval = \"1s\"", ENVIRONMENTS)
        })
        .start()
        .await;
    let (client, repo, root) = (&setup, &setup.repo, &setup.root);

    // Never deployed: the first round deploys each mapped branch's head.
    let main = git(repo, &["rev-parse", "main"]);
    wait_live(root, "production", &main).await;
    wait_live(root, "staging", &main).await;

    // A push to the origin, and no delivery.
    git(repo, &["checkout", "-q", "develop"]);
    let pushed = commit(repo, "Cart totals", &[("cart.txt", "totals\n")]);
    wait_live(root, "staging", &pushed).await;
    let deploy = last_finished(client, "staging").await;
    assert_eq!(deploy["trigger"], "reconcile", "{deploy}");
    assert_eq!(deploy["status"], "succeeded", "{deploy}");
    assert_eq!(deploy["commit"], pushed.as_str());
    assert_eq!(deploy["ref"], "refs/heads/develop");
    let log = client.log(&deploy["id"]).await;
    assert!(log.contains("reconcile trigger"), "{log}");
    assert!(
        log.contains("announced by no delivery"),
        "the log says why it deployed: {log}"
    );
    assert_eq!(revision(root, "production").as_deref(), Some(main.as_str()));

    // The manual environment is not deployed, ever.
    assert!(revision(root, "gated").is_none());
    assert!(deploys(client, Some("gated")).await.is_empty());

    // Everything live: rounds queue nothing.
    let before = deploys(client, None).await.len();
    wait_rounds(client, 2).await;
    assert_eq!(
        deploys(client, None).await.len(),
        before,
        "an idle round queued a deploy"
    );

    // `[skip deploy]` in the head's message holds, as it does for a push.
    let skipped = commit(repo, "Docs only [skip deploy]", &[("docs.txt", "x\n")]);
    wait_rounds(client, 2).await;
    assert_eq!(
        deploys(client, None).await.len(),
        before,
        "{skipped} was deployed"
    );
    assert_eq!(revision(root, "staging").as_deref(), Some(pushed.as_str()));

    // An operator's rollback stays: the head it left was deployed once already.
    let (status, answer) = client
        .post(
            "/api/apps/shop/environments/staging/rollback",
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let rollback = client.wait(&answer["deploy"]["id"], 90).await;
    assert_eq!(rollback["status"], "succeeded", "{rollback}");
    assert_eq!(revision(root, "staging").as_deref(), Some(main.as_str()));
    wait_rounds(client, 2).await;
    assert_eq!(
        revision(root, "staging").as_deref(),
        Some(main.as_str()),
        "reconciliation undid a rollback"
    );

    // A head whose deploy failed is not retried every round.
    let broken = commit(repo, "Broken build", &[("fail", "")]);
    wait_until("the broken head's deploy", || async {
        deploys(client, Some("staging")).await[0]["commit"] == broken.as_str()
    })
    .await;
    let failed = last_finished(client, "staging").await;
    assert_eq!(
        (failed["trigger"].as_str(), failed["status"].as_str()),
        (Some("reconcile"), Some("failed")),
        "{failed}"
    );
    let before = deploys(client, None).await.len();
    wait_rounds(client, 2).await;
    assert_eq!(
        deploys(client, None).await.len(),
        before,
        "a failed head was retried"
    );
    assert_eq!(revision(root, "staging").as_deref(), Some(main.as_str()));

    assert!(
        metric(
            client,
            "stagehand_reconcile_deploys_total{action=\"deploy\"} "
        )
        .await
            >= 4,
        "{}",
        metrics(client).await
    );
    setup.stop().await;
}

#[actix_web::test]
async fn a_push_while_stopped_is_deployed_at_start() {
    let b = Harness::builder();
    let repo = b.repo().to_owned();
    let root = b.root();
    // Rounds only at start within this test: an hour apart.
    let toml = shop_toml_with(b.dir(), &repo, "reconcile_interval = \"1h\"", ENVIRONMENTS);
    let full = b.toml(&toml).start().await;
    let develop = git(&repo, &["rev-parse", "develop"]);
    wait_live(&root, "staging", &develop).await;
    last_finished(&full.client(), "staging").await;
    let b = full.stop().await;

    git(&repo, &["checkout", "-q", "develop"]);
    let pushed = commit(
        &repo,
        "Pushed while stagehand was down",
        &[("down.txt", "x\n")],
    );
    let full = b.start().await;
    let client = full.client();
    wait_live(&root, "staging", &pushed).await;
    let deploy = last_finished(&client, "staging").await;
    assert_eq!(
        (deploy["trigger"].as_str(), deploy["status"].as_str()),
        (Some("reconcile"), Some("succeeded")),
        "{deploy}"
    );
    full.stop().await;
}

#[actix_web::test]
async fn preview_branches_appear_and_go_without_deliveries() {
    let setup = Harness::builder()
        .config(|dir, repo| {
            // There before stagehand's first round: no preview of its own.
            git(repo, &["branch", "feature/old"]);
            let envs = r#"
shared = ["storage/"]
[apps.shop.environments.staging]
branch = "develop"
[apps.shop.environments.preview]
branch = "feature/*"
seed_from = "staging"
"#;
            shop_toml_with(dir, repo, "reconcile_interval = \"1s\"", envs)
        })
        .start()
        .await;
    let (client, repo, root) = (&setup, &setup.repo, &setup.root);
    let develop = git(repo, &["rev-parse", "develop"]);
    wait_live(root, "staging", &develop).await;
    std::fs::write(root.join("staging/shared/storage/seed.txt"), "from staging").unwrap();

    git(
        repo,
        &["checkout", "-q", "-b", "feature/new-cart", "develop"],
    );
    let pushed = commit(repo, "New cart", &[("cart.txt", "new\n")]);
    git(repo, &["checkout", "-q", "develop"]);
    wait_live(root, "preview-feature-new-cart", &pushed).await;
    let deploy = last_finished(client, "preview-feature-new-cart").await;
    assert_eq!(deploy["trigger"], "reconcile", "{deploy}");
    assert_eq!(deploy["base_environment"], "preview");
    assert_eq!(
        std::fs::read_to_string(root.join("preview-feature-new-cart/shared/storage/seed.txt"))
            .unwrap(),
        "from staging",
        "a preview made by reconciliation is seeded as on a first push"
    );
    assert!(!root.join("preview-feature-old").exists());
    assert!(
        deploys(client, Some("preview-feature-old"))
            .await
            .is_empty()
    );

    // The branch is deleted and no delivery says so: the preview goes.
    git(repo, &["branch", "-q", "-D", "feature/new-cart"]);
    wait_until("the preview to be torn down", || async {
        !root.join("preview-feature-new-cart").exists()
    })
    .await;
    let teardown = last_finished(client, "preview-feature-new-cart").await;
    assert_eq!(
        (teardown["trigger"].as_str(), teardown["status"].as_str()),
        (Some("teardown"), Some("succeeded")),
        "{teardown}"
    );
    let (_, apps) = client.get("/api/apps").await;
    let names: Vec<&str> = apps["apps"][0]["environments"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(names, ["staging"], "{apps}");
    assert_eq!(
        metric(
            client,
            "stagehand_reconcile_deploys_total{action=\"teardown\"} "
        )
        .await,
        1
    );
    setup.stop().await;
}

#[actix_web::test]
async fn a_tag_no_delivery_announced_is_deployed_when_it_is_newer() {
    let setup = Harness::builder()
        .config(|dir, repo| {
            // There before the first round: not deployed by reconciliation.
            git(repo, &["tag", "v0", "main"]);
            // libgit2 fetches here (the CLI elsewhere): both paths learn the remote's refs.
            let envs = r#"
fetch_with = "git2"
[apps.shop.environments.releases]
tag = "v*"
"#;
            shop_toml_with(dir, repo, "reconcile_interval = \"1s\"", envs)
        })
        .start()
        .await;
    let (client, repo, root) = (&setup, &setup.repo, &setup.root);
    wait_rounds(client, 2).await;
    assert!(revision(root, "releases").is_none());
    assert!(deploys(client, None).await.is_empty());

    git(repo, &["checkout", "-q", "develop"]);
    let first = commit(repo, "Release candidate", &[("rc.txt", "1\n")]);
    git(repo, &["tag", "-a", "-m", "First", "v1", &first]);
    wait_live(root, "releases", &first).await;
    let deploy = last_finished(client, "releases").await;
    assert_eq!(deploy["trigger"], "reconcile", "{deploy}");
    assert_eq!(deploy["ref"], "refs/tags/v1");

    // A newer tag on an older commit is not newer.
    let older = git(repo, &["rev-parse", "main"]);
    git(repo, &["tag", "v2", &older]);
    wait_rounds(client, 2).await;
    assert_eq!(deploys(client, None).await.len(), 1);
    assert_eq!(revision(root, "releases").as_deref(), Some(first.as_str()));

    // Tags pushed close together: the one ahead in history ends up live, whatever
    // their names say (core::reconcile's table covers one round seeing both).
    let second = commit(repo, "Second", &[("rc.txt", "2\n")]);
    let third = commit(repo, "Third", &[("rc.txt", "3\n")]);
    git(repo, &["tag", "v3", &third]);
    git(repo, &["tag", "v10", &second]);
    wait_live(root, "releases", &third).await;
    assert_eq!(
        last_finished(client, "releases").await["ref"],
        "refs/tags/v3"
    );
    setup.stop().await;
}

#[actix_web::test]
async fn a_failing_fetch_waits_for_the_next_round() {
    // The origin is away at start: every fetch fails.
    let setup = Harness::builder()
        .config(|dir, repo| {
            std::fs::rename(repo, repo.with_extension("away")).unwrap();
            let envs = "[apps.shop.environments.staging]\nbranch = \"develop\"\n";
            shop_toml_with(dir, repo, "reconcile_interval = \"1s\"", envs)
        })
        .start()
        .await;
    let (client, repo, root) = (&setup, &setup.repo, &setup.root);
    let failed = "stagehand_reconcile_rounds_total{result=\"failed\"} ";
    wait_until("a failed round", || async {
        metric(client, failed).await >= 2
    })
    .await;
    assert!(deploys(client, None).await.is_empty());

    // The repository is back: the next round deploys.
    std::fs::rename(repo.with_extension("away"), repo).unwrap();
    let develop = git(repo, &["rev-parse", "develop"]);
    wait_live(root, "staging", &develop).await;
    assert_eq!(
        last_finished(client, "staging").await["trigger"],
        "reconcile"
    );
    setup.stop().await;
}

#[actix_web::test]
async fn the_server_log_says_what_a_round_queued() {
    use std::io::{BufRead, BufReader};
    let envs = "[apps.shop.environments.staging]\nbranch = \"develop\"\n";
    let server = "listen = \"127.0.0.1:0\"\nreconcile_interval = \"1h\"";
    let b = Harness::builder().config(|dir, repo| shop_toml_with(dir, repo, server, envs));
    let (repo, root, config) = (b.repo().to_owned(), b.root(), b.write_config());
    let log_path = b.dir().join("stagehand.log");
    let mut child = ServerProcess(
        serve_command(&config)
            .args(["--log-format", "json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("stagehand listening on "), "{line:?}");

    let develop = git(&repo, &["rev-parse", "develop"]);
    wait_live(&root, "staging", &develop).await;
    // The summary ends the round, which the deploy need not wait for.
    wait_until("the round's summary line", || async {
        std::fs::read_to_string(&log_path)
            .unwrap()
            .contains("reconcile round: queued work")
    })
    .await;
    let log = std::fs::read_to_string(&log_path).unwrap();
    let fields: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|l| l["fields"].clone())
        .collect();
    let said = |start: &str| {
        fields
            .iter()
            .find(|f| f["message"].as_str().is_some_and(|m| m.starts_with(start)))
            .unwrap_or_else(|| panic!("no line starting {start:?} in\n{log}"))
            .clone()
    };
    let queued = said("reconcile: the head is not live");
    assert_eq!(
        (
            &queued["environment"],
            &queued["git_ref"],
            &queued["commit"]
        ),
        (
            &Value::from("staging"),
            &Value::from("refs/heads/develop"),
            &Value::from(develop.as_str())
        ),
        "{queued}"
    );
    let summary = said("reconcile round: queued work");
    assert_eq!(summary["deploys"], 1, "{summary}");
    drop(child);
}

/// The first round at start into an empty mirror, with nothing live and no tag
/// environment, fetches the heads by depth (git.rs, "The first fetch"): the deploys it
/// queues fetch their tips the same way instead of the whole history, which follows in
/// the background; afterwards the mirror holds it all.
#[actix_web::test]
async fn the_first_round_leaves_the_history_for_after_its_deploys() {
    let setup = Harness::builder()
        .config(|dir, repo| {
            git(repo, &["branch", "release"]);
            commit(repo, "More history", &[("more.txt", "more\n")]);
            shop_toml_with(dir, repo, "reconcile_interval = \"1h\"", ENVIRONMENTS)
        })
        .start()
        .await;
    let (client, repo, root) = (&setup, &setup.repo, &setup.root);
    let main = git(repo, &["rev-parse", "main"]);
    wait_live(root, "production", &main).await;
    let deploy = last_finished(client, "production").await;
    assert_eq!(deploy["trigger"], "reconcile", "{deploy}");
    let log = client.log(&deploy["id"]).await;
    assert!(log.contains("first fetch of this mirror"), "{log}");

    let mirror = stagehand::pipeline::git::Mirror {
        path: root.parent().unwrap().join("state/mirrors/shop.git"),
    };
    wait_until("the history after the first deploys", || async {
        !mirror.is_shallow()
    })
    .await;
    let first = git(repo, &["rev-list", "--max-parents=0", "main"]);
    assert_ne!(first, main);
    assert!(mirror.is_ancestor(&first, &main).unwrap());
}
