//! Multi-staging workflows end to end: temporary environments seeded from staging,
//! teardown, tags, manual gates, promote, and runtime data downwards.

use std::path::Path;

use crate::support::*;
use serde_json::{Value, json};

fn toml(dir: &Path, repo: &Path) -> String {
    shop_toml(
        dir,
        repo,
        r#"shared = ["storage/", ".env"]
build = ["echo building $STAGEHAND_ENVIRONMENT with APP_ENV=$APP_ENV"]
sync = ["echo \"from=$STAGEHAND_FROM_ENVIRONMENT to=$STAGEHAND_TO_ENVIRONMENT $STAGEHAND_FROM_SHARED $STAGEHAND_TO_SHARED\" > \"$STAGEHAND_TO_SHARED/sync-ran\""]

[apps.shop.environments.production]
branch = "main"
protected = true
auto_deploy = false
env = { APP_ENV = "production" }

[apps.shop.environments.staging]
branch = "develop"
env = { APP_ENV = "staging" }

[apps.shop.environments.preview]
branch = "feature/*"
seed_from = "staging"
env = { APP_ENV = "preview" }

[apps.shop.environments.release]
tag = "v*"
env = { APP_ENV = "release" }
"#,
    )
}

async fn setup() -> Harness {
    Harness::builder().config(toml).start().await
}

async fn environment(s: &Harness, name: &str) -> Option<Value> {
    let (_, apps) = s.get("/api/apps").await;
    apps["apps"][0]["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .cloned()
}

#[actix_web::test]
async fn a_feature_branch_gets_a_preview_seeded_from_staging_and_loses_it_on_delete() {
    let s = setup().await;
    assert_eq!(s.push_and_wait("develop").await["status"], "succeeded");
    let staging_shared = s.root.join("staging/shared");
    std::fs::create_dir_all(staging_shared.join("storage/uploads")).unwrap();
    std::fs::write(staging_shared.join("storage/uploads/cat.jpg"), "meow").unwrap();
    std::fs::write(staging_shared.join(".env"), "DB_PASSWORD=staging-only").unwrap();

    git(&s.repo, &["checkout", "-q", "-b", "feature/New_Cart!"]);
    commit(&s.repo, "Cart", &[("cart.txt", "cart\n")]);
    let preview = s.push_and_wait("feature/New_Cart!").await;
    assert_eq!(preview["status"], "succeeded", "{preview}");
    assert_eq!(preview["environment"], "preview-feature-new-cart");
    let shared = s.root.join("preview-feature-new-cart/shared");
    assert_eq!(
        std::fs::read_to_string(shared.join("storage/uploads/cat.jpg")).unwrap(),
        "meow"
    );
    // The per-environment config file is not seeded: it starts empty.
    assert_eq!(std::fs::read_to_string(shared.join(".env")).unwrap(), "");
    let sync_ran = std::fs::read_to_string(shared.join("sync-ran")).unwrap();
    assert!(
        sync_ran.starts_with("from=staging to=preview-feature-new-cart "),
        "{sync_ran}"
    );
    let stages: Vec<&str> = preview["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(stages.contains(&"seed"), "{stages:?}");
    let listed = environment(&s, "preview-feature-new-cart").await.unwrap();
    assert_eq!(
        (listed["temporary"].clone(), listed["base"].clone()),
        (json!(true), json!("preview"))
    );

    // A second push does not seed again.
    commit(&s.repo, "More cart", &[("cart.txt", "more\n")]);
    let again = s.push_and_wait("feature/New_Cart!").await;
    assert!(
        !again["stages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|st| st["name"] == "seed"),
        "{again}"
    );

    // Deleting the branch removes the preview and nothing else.
    let (status, answer) = s.push(&sample("push-delete-branch.json")).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        s.wait(&answer["deploy"]["id"], 30).await["status"],
        "succeeded"
    );
    assert!(!s.root.join("preview-feature-new-cart").exists());
    assert!(s.root.join("staging/current/REVISION").exists());
    assert_eq!(
        std::fs::read_to_string(staging_shared.join("storage/uploads/cat.jpg")).unwrap(),
        "meow"
    );
    assert!(environment(&s, "preview-feature-new-cart").await.is_none());
    // The `delete` event for the same deletion finds nothing left to do.
    let (status, answer) = s
        .send(&Delivery::json("delete", &sample("delete-branch.json")))
        .await;
    assert_eq!(status, 200, "{answer}");
    s.stop().await;
}

#[actix_web::test]
async fn deleting_the_production_branch_leaves_production_alone() {
    let s = setup().await;
    assert_eq!(s.push_and_wait("develop").await["status"], "succeeded");
    let (status, _) = s
        .post(
            "/api/apps/shop/environments/production/promote",
            &json!({"from": "staging"}),
        )
        .await;
    assert_eq!(status, 202);
    let mut deleted = sample("push-delete-branch.json");
    deleted["ref"] = json!("refs/heads/main");
    let (status, answer) = s.push(&deleted).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["ignored"].is_string());
    // Wait for the promote to finish, then production is still there.
    let (_, list) = s.get("/api/deploys?environment=production").await;
    let promote = s.wait(&list["deploys"][0]["id"], 60).await;
    assert_eq!(promote["status"], "succeeded", "{promote}");
    assert!(s.revision("production").is_some());
    s.stop().await;
}

#[actix_web::test]
async fn an_annotated_tag_push_deploys_the_tag_environment() {
    let s = setup().await;
    let commit_sha = git(&s.repo, &["rev-parse", "main"]);
    git(
        &s.repo,
        &["tag", "-a", "v1.2.0", "-m", "Release 1.2.0", "main"],
    );
    let tag_object = git(&s.repo, &["rev-parse", "v1.2.0"]);
    assert_ne!(tag_object, commit_sha);
    let mut body = sample("push-tag.json");
    body["after"] = json!(tag_object);
    body["head_commit"]["id"] = json!(commit_sha);
    let (status, answer) = s.push(&body).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["deploy"]["commit"], commit_sha, "{answer}");
    let deploy = s.wait(&answer["deploy"]["id"], 60).await;
    assert_eq!(deploy["status"], "succeeded", "{deploy}");
    assert_eq!(deploy["environment"], "release");
    assert_eq!(
        deploy["commit"], commit_sha,
        "the tag is peeled to its commit"
    );
    assert_eq!(s.revision("release").as_deref(), Some(commit_sha.as_str()));
    let log = s.log(&deploy["id"]).await;
    assert!(
        log.contains("building release with APP_ENV=release"),
        "{log}"
    );
    // Deleting a tag does nothing.
    let mut deleted = sample("push-delete-branch.json");
    deleted["ref"] = json!("refs/tags/v1.2.0");
    let (status, _) = s.push(&deleted).await;
    assert_eq!(status, 200);
    assert!(s.revision("release").is_some());
    s.stop().await;
}

#[actix_web::test]
async fn a_manual_environment_waits_until_promoted() {
    let s = setup().await;
    git(&s.repo, &["checkout", "-q", "develop"]);
    let staged = commit(&s.repo, "Ready for prod", &[("VERSION", "2\n")]);
    // Nothing live in staging yet: promote is refused.
    let (status, answer) = s
        .post(
            "/api/apps/shop/environments/production/promote",
            &json!({"from": "staging"}),
        )
        .await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("nothing live"),
        "{answer}"
    );

    assert_eq!(s.push_and_wait("develop").await["status"], "succeeded");
    let skipped = s.push_and_wait("main").await;
    assert_eq!(skipped["status"], "skipped", "{skipped}");
    assert!(
        skipped["reason"]
            .as_str()
            .unwrap()
            .contains("auto_deploy is off"),
        "{skipped}"
    );
    assert_eq!(s.revision("production"), None);
    let production = environment(&s, "production").await.unwrap();
    assert_eq!(
        production["pending"]["commit"], skipped["commit"],
        "{production}"
    );
    assert_eq!(production["auto_deploy"], false);

    let (status, answer) = s
        .post(
            "/api/apps/shop/environments/production/promote",
            &json!({"from": "staging"}),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let promoted = s.wait(&answer["deploy"]["id"], 60).await;
    assert_eq!(promoted["status"], "succeeded", "{promoted}");
    assert_eq!(promoted["trigger"], "promote");
    assert_eq!(promoted["from"], "staging");
    assert_eq!(promoted["commit"], staged);
    assert_eq!(promoted["ref"], "refs/heads/develop");
    assert_eq!(s.revision("production").as_deref(), Some(staged.as_str()));
    let log = s.log(&promoted["id"]).await;
    assert!(
        log.contains("building production with APP_ENV=production"),
        "built with production's env: {log}"
    );
    assert_eq!(
        environment(&s, "production").await.unwrap()["pending"],
        Value::Null
    );
    // Issue 16 item 6: the history says what each deploy shipped.
    assert_eq!(promoted["message"], "Ready for prod", "{promoted}");
    assert_eq!(promoted["author"], "Ada", "{promoted}");

    // Issue 16 item 5: `main` catches up with the promoted commit; its push is recorded
    // but waits for nothing, because that commit is already live.
    git(&s.repo, &["branch", "-f", "main", "develop"]);
    let caught_up = s.push_and_wait("main").await;
    assert_eq!(caught_up["status"], "skipped", "{caught_up}");
    assert_eq!(caught_up["reason_code"], "auto_deploy_off", "{caught_up}");
    let production = environment(&s, "production").await.unwrap();
    assert_eq!(production["pending"], Value::Null, "{production}");
    assert_eq!(
        production["live_deploy"]["id"], promoted["id"],
        "{production}"
    );
    git(&s.repo, &["checkout", "-q", "main"]);
    let newer = commit(
        &s.repo,
        "Hotfix",
        &[(
            "VERSION", "3
",
        )],
    );
    s.push_and_wait("main").await;
    let production = environment(&s, "production").await.unwrap();
    assert_eq!(production["pending"]["commit"], newer, "{production}");
    s.stop().await;
}

#[actix_web::test]
async fn sync_copies_changed_data_downwards_and_guards_protected_targets() {
    let s = setup().await;
    assert_eq!(s.push_and_wait("develop").await["status"], "succeeded");
    let (_, answer) = s
        .post(
            "/api/apps/shop/environments/production/promote",
            &json!({"from": "staging"}),
        )
        .await;
    assert_eq!(
        s.wait(&answer["deploy"]["id"], 60).await["status"],
        "succeeded"
    );
    let prod = s.root.join("production/shared/storage");
    std::fs::create_dir_all(prod.join("uploads")).unwrap();
    std::fs::write(prod.join("uploads/a.jpg"), "a").unwrap();
    std::fs::write(prod.join("uploads/b.jpg"), "b").unwrap();

    let sync = |from: &str, to: &str, force: bool| json!({"from": from, "to": to, "force": force});
    let (status, answer) = s
        .post("/api/apps/shop/sync", &sync("production", "staging", false))
        .await;
    assert_eq!(status, 202, "{answer}");
    let first = s.wait(&answer["deploy"]["id"], 30).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(first["trigger"], "sync");
    assert_eq!(first["from"], "production");
    let staging = s.root.join("staging/shared");
    assert_eq!(
        std::fs::read_to_string(staging.join("storage/uploads/a.jpg")).unwrap(),
        "a"
    );
    let ran = std::fs::read_to_string(staging.join("sync-ran")).unwrap();
    assert_eq!(
        ran.trim(),
        format!(
            "from=production to=staging {} {}",
            s.root.join("production/shared").display(),
            staging.display()
        )
    );
    let log = s.log(&first["id"]).await;
    assert!(log.contains("storage/: 2 copied"), "{log}");

    std::fs::write(prod.join("uploads/b.jpg"), "b, edited").unwrap();
    let (_, answer) = s
        .post("/api/apps/shop/sync", &sync("production", "staging", false))
        .await;
    let second = s.wait(&answer["deploy"]["id"], 30).await;
    let log = s.log(&second["id"]).await;
    assert!(
        log.contains("storage/: 1 copied") && log.contains("1 unchanged"),
        "{log}"
    );

    let (status, answer) = s
        .post("/api/apps/shop/sync", &sync("staging", "production", false))
        .await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("--force"),
        "{answer}"
    );
    let (status, answer) = s
        .post("/api/apps/shop/sync", &sync("staging", "production", true))
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        s.wait(&answer["deploy"]["id"], 30).await["status"],
        "succeeded"
    );
    let (status, _) = s
        .post("/api/apps/shop/sync", &sync("staging", "staging", false))
        .await;
    assert_eq!(status, 400);
    let (status, _) = s
        .post("/api/apps/shop/sync", &json!({"from": "staging"}))
        .await;
    assert_eq!(status, 400);
    s.stop().await;
}
