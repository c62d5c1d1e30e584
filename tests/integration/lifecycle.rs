//! Previews' lifecycle: teardown commands on the way out.

use crate::support::*;

#[actix_web::test]
async fn teardown_commands_run_in_the_live_release_and_a_failing_one_does_not_stop_the_teardown() {
    let marks = tempfile::tempdir().unwrap();
    let marks_path = marks.path().display().to_string();
    let s = Harness::builder().app(&format!(
                r#"teardown = ["echo dropping the database of $STAGEHAND_ENVIRONMENT from $(cat REVISION)", "echo no DNS API >&2; exit 3", "touch \"$MARKS/$STAGEHAND_ENVIRONMENT-torn-down\""]
[apps.shop.environments.production]
branch = "main"
[apps.shop.environments.preview]
branch = "feature/*"
env = {{ MARKS = "{marks_path}" }}
"#
            )).start()
    .await;
    git(&s.repo, &["checkout", "-q", "-b", "feature/New_Cart!"]);
    let sha = commit(&s.repo, "preview", &[("cart.txt", "cart")]);
    assert_eq!(
        s.push_and_wait("feature/New_Cart!").await["status"],
        "succeeded"
    );
    let env = "preview-feature-new-cart";
    assert!(s.root.join(env).exists());

    let (status, answer) = s.push(&sample("push-delete-branch.json")).await;
    assert_eq!(status, 202, "{answer}");
    let teardown = s.wait(&answer["deploy"]["id"], 30).await;
    assert_eq!(teardown["status"], "succeeded", "{teardown}");
    let log = s.log(&answer["deploy"]["id"]).await;
    assert!(
        log.contains(&format!("dropping the database of {env} from {sha}")),
        "{log}"
    );
    assert!(log.contains("no DNS API"), "{log}");
    assert!(log.contains("the teardown goes on"), "{log}");
    // The command after the failing one ran, and the directory went afterwards.
    assert!(marks.path().join(format!("{env}-torn-down")).exists());
    assert!(!s.root.join(env).exists());
    s.stop().await;
}

/// The previews of `s` that exist now, by the API.
async fn previews(s: &Harness) -> Vec<String> {
    let (_, apps) = s.get("/api/apps").await;
    apps["apps"][0]["environments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["temporary"] == true)
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The CLI against the in-process server, off the runtime that serves it.
async fn cli(url: &str, args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_stagehand"));
    command
        .args(args)
        .args(["--server", url])
        .env("STAGEHAND_API_TOKEN", TOKEN);
    actix_web::rt::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

#[actix_web::test]
async fn an_idle_preview_expires_unless_pinned_and_a_pinned_one_expires_once_unpinned() {
    let s = Harness::builder()
        .app(
            r#"teardown = ["echo expiring $STAGEHAND_ENVIRONMENT"]
[apps.shop.environments.production]
branch = "main"
[apps.shop.environments.preview]
branch = "feature/*"
expire_after = "1s"
"#,
        )
        .start()
        .await;
    // Pinned before it is even deployed: the pin cannot lose a race with the expiry.
    git(&s.repo, &["checkout", "-q", "-b", "feature/kept"]);
    let sha = commit(&s.repo, "kept", &[("kept.txt", "1")]);
    let (status, answer) = s.push(&push_body("refs/heads/feature/kept", &sha)).await;
    assert_eq!(status, 202, "{answer}");
    let pinned = cli(&s.url, &["pin", "shop", "preview-feature-kept"]).await;
    assert!(
        pinned.status.success(),
        "{}",
        String::from_utf8_lossy(&pinned.stderr)
    );
    assert!(String::from_utf8_lossy(&pinned.stdout).contains("pinned"));
    s.wait(&answer["deploy"]["id"], 60).await;

    git(&s.repo, &["checkout", "-q", "-b", "feature/idle"]);
    commit(&s.repo, "idle", &[("idle.txt", "1")]);
    assert_eq!(s.push_and_wait("feature/idle").await["status"], "succeeded");

    // The idle one goes by itself, as a teardown with trigger `expire`.
    let mut expired = None;
    for _ in 0..300 {
        let (_, deploys) = s.get("/api/deploys?environment=preview-feature-idle").await;
        expired = deploys["deploys"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["trigger"] == "expire" && d["status"] == "succeeded")
            .cloned();
        if expired.is_some() {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let expired = expired.expect("the idle preview expired");
    assert!(
        s.log(&expired["id"])
            .await
            .contains("expiring preview-feature-idle")
    );
    assert!(!s.root.join("preview-feature-idle").exists());
    // The pinned one was due earlier (deployed first) and was passed over by the same check.
    assert_eq!(previews(&s).await, ["preview-feature-kept"]);
    assert!(s.root.join("preview-feature-kept").exists());

    // A fixed environment is not pinned.
    let refused = cli(&s.url, &["pin", "shop", "production"]).await;
    assert!(!refused.status.success());

    let unpinned = cli(&s.url, &["unpin", "shop", "preview-feature-kept"]).await;
    assert!(
        unpinned.status.success(),
        "{}",
        String::from_utf8_lossy(&unpinned.stderr)
    );
    for _ in 0..300 {
        if previews(&s).await.is_empty() {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(previews(&s).await.is_empty());
    assert!(!s.root.join("preview-feature-kept").exists());
    s.stop().await;
}

#[actix_web::test]
async fn a_push_that_would_pass_max_environments_is_ignored_and_recorded() {
    let s = Harness::builder()
        .app(
            r#"[apps.shop.environments.preview]
branch = "feature/*"
max_environments = 1
expire_after = "7d"
"#,
        )
        .start()
        .await;
    git(&s.repo, &["checkout", "-q", "-b", "feature/first"]);
    commit(&s.repo, "first", &[("first.txt", "1")]);
    assert_eq!(
        s.push_and_wait("feature/first").await["status"],
        "succeeded"
    );

    git(&s.repo, &["checkout", "-q", "-b", "feature/second"]);
    let sha = commit(&s.repo, "second", &[("second.txt", "1")]);
    let (status, answer) = s.push(&push_body("refs/heads/feature/second", &sha)).await;
    assert_eq!(status, 200, "{answer}");
    let reason = answer["ignored"].as_str().unwrap_or_default();
    assert!(reason.contains("limit of 1 previews reached"), "{answer}");
    assert_eq!(previews(&s).await, ["preview-feature-first"]);

    // Its expiry is shown (API and dashboard), and a pin hides it.
    let first = || async {
        let (_, apps) = s.get("/api/apps").await;
        apps["apps"][0]["environments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "preview-feature-first")
            .unwrap()
            .clone()
    };
    let shown = first().await;
    assert_eq!(shown["pinned"], false, "{shown}");
    let expires = shown["expires_at"]
        .as_str()
        .unwrap_or_else(|| panic!("{shown}"))
        .to_owned();
    let page = async |s: &Harness| s.get_with("/", Some(TOKEN)).await.2;
    assert!(page(&s).await.contains(&format!("expires {expires}")));
    let (status, answer) = s
        .post(
            "/api/apps/shop/environments/preview-feature-first/pin",
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(
        (status, answer["pinned"].clone()),
        (200, serde_json::json!(true))
    );
    let shown = first().await;
    assert_eq!(
        (shown["pinned"].clone(), shown["expires_at"].clone()),
        (serde_json::json!(true), serde_json::Value::Null)
    );
    let html = page(&s).await;
    assert!(
        html.contains(">pinned<") && !html.contains("expires 2"),
        "{html}"
    );

    // The preview that has its place keeps deploying.
    git(&s.repo, &["checkout", "-q", "feature/first"]);
    commit(&s.repo, "first again", &[("first.txt", "2")]);
    assert_eq!(
        s.push_and_wait("feature/first").await["status"],
        "succeeded"
    );
    s.stop().await;
}
