//! Treeless mirrors (`mirror = "treeless"`): every commit fetched, trees and blobs only
//! for what is checked out, and the rules that read history still right.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::*;
use serde_json::json;

use stagehand::pipeline::git::Mirror;

async fn treeless() -> Harness {
    Harness::builder()
        .config(|dir, repo| {
            // What a hosting server allows; a local repository must be told.
            git(repo, &["config", "uploadpack.allowFilter", "true"]);
            git(repo, &["config", "uploadpack.allowAnySHA1InWant", "true"]);
            shop_toml(
                dir,
                repo,
                r#"mirror = "treeless"
step_timeout = "60s"
[apps.shop.environments.staging]
branch = "develop"
"#,
            )
        })
        .start()
        .await
}

fn mirror_dir(s: &Harness) -> PathBuf {
    s.root.parent().unwrap().join("state/mirrors/shop.git")
}

/// Whether the mirror holds `object`, asked without the promisor settings (so git
/// cannot fetch it to answer).
fn holds(mirror: &Path, object: &str) -> bool {
    std::process::Command::new("git")
        .arg("--git-dir")
        .arg(mirror)
        .args(["cat-file", "-e", object])
        .status()
        .unwrap()
        .success()
}

#[actix_web::test]
async fn a_treeless_mirror_checks_out_exactly_the_commit_and_keeps_the_history() {
    let s = treeless().await;
    git(&s.repo, &["checkout", "-q", "develop"]);
    let with_old = commit(&s.repo, "Old file", &[("old.txt", "only in the past\n")]);
    let old_blob = git(&s.repo, &["rev-parse", "HEAD:old.txt"]);
    git(&s.repo, &["rm", "-q", "old.txt"]);
    let first = commit(&s.repo, "Old file gone", &[("index.html", "<h1>v2</h1>\n")]);

    let deploy = s.push_and_wait("develop").await;
    assert_eq!(deploy["status"], "succeeded", "{deploy}");
    let log = s.log(&deploy["id"]).await;
    assert!(log.contains("first fetch of this mirror"), "{log}");
    let mirror = mirror_dir(&s);
    wait_deepened(&mirror).await;
    assert!(stagehand::pipeline::partial::is_partial(&mirror));
    // Partial: a blob of a commit never checked out was not fetched...
    assert!(!holds(&mirror, &old_blob), "the mirror holds every blob");
    // ...but the whole history was: ancestry answers as with a full mirror.
    let m = Mirror {
        path: mirror.clone(),
    };
    assert!(m.is_ancestor(&with_old, &first).unwrap());
    assert!(!m.is_ancestor(&first, &with_old).unwrap());

    // The release is the commit's tree: contents, exec bit, symlink, deletions.
    let live = s.root.join("staging/current");
    assert_eq!(
        std::fs::read_to_string(live.join("index.html")).unwrap(),
        "<h1>v2</h1>\n"
    );
    let mode = std::fs::metadata(live.join("bin/hello"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111, "{mode:o}");
    assert_eq!(
        std::fs::read_link(live.join("home.html")).unwrap(),
        Path::new("index.html")
    );
    assert!(!live.join("old.txt").exists());

    // A one-file commit fetches that file only.
    let second = commit(&s.repo, "One file", &[("index.html", "<h1>v3</h1>\n")]);
    let deploy = s.push_and_wait("develop").await;
    assert_eq!(deploy["status"], "succeeded", "{deploy}");
    assert_eq!(s.revision("staging").as_deref(), Some(second.as_str()));
    let log = s.log(&deploy["id"]).await;
    assert!(log.contains("fetched 1 files"), "{log}");

    // A late delivery of an older commit is skipped: the rule reads history.
    let (status, answer) = s.push(&push_body("refs/heads/develop", &first)).await;
    assert_eq!(status, 202, "{answer}");
    let late = s.wait(&answer["deploy"]["id"], 60).await;
    assert_eq!(late["status"], "skipped", "{late}");

    // A sha by hand: its files are fetched on demand, including the one deleted later.
    let (status, answer) = s
        .post(
            "/api/apps/shop/environments/staging/deploy",
            &json!({"ref": with_old}),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let manual = s.wait(&answer["deploy"]["id"], 60).await;
    assert_eq!(manual["status"], "succeeded", "{manual}");
    assert_eq!(
        std::fs::read_to_string(live.join("old.txt")).unwrap(),
        "only in the past\n"
    );
    assert!(holds(&mirror, &old_blob));
    s.stop().await;
}

/// Waits for the history a shallow first fetch left out to arrive in the background.
async fn wait_deepened(mirror: &Path) {
    let m = Mirror {
        path: mirror.to_owned(),
    };
    for _ in 0..300 {
        if !m.is_shallow() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{} is still shallow after 30 s", mirror.display());
}

/// The first deploy of a treeless mirror fetches the pushed commit alone (`--depth=1`)
/// and its history after the deploy; whatever deploy comes next sees the whole history,
/// also when it comes before that background fetch (it deepens the mirror itself).
#[actix_web::test]
async fn after_a_shallow_first_deploy_the_rules_that_read_history_still_hold() {
    let s = treeless().await;
    git(&s.repo, &["checkout", "-q", "develop"]);
    let older = commit(&s.repo, "Older", &[("index.html", "<h1>older</h1>\n")]);
    let newer = commit(&s.repo, "Newer", &[("index.html", "<h1>newer</h1>\n")]);
    let deploy = s.push_and_wait("develop").await;
    assert_eq!(deploy["status"], "succeeded", "{deploy}");
    let log = s.log(&deploy["id"]).await;
    assert!(log.contains("first fetch of this mirror"), "{log}");
    assert_eq!(s.revision("staging").as_deref(), Some(newer.as_str()));

    // At once, without waiting for the background fetch: a late delivery of the older
    // commit must be recognised as older (its ancestry is read from the history).
    let (status, answer) = s.push(&push_body("refs/heads/develop", &older)).await;
    assert_eq!(status, 202, "{answer}");
    let late = s.wait(&answer["deploy"]["id"], 60).await;
    assert_eq!(late["status"], "skipped", "{late}");
    assert_eq!(s.revision("staging").as_deref(), Some(newer.as_str()));
    let mirror = Mirror {
        path: mirror_dir(&s),
    };
    assert!(
        !mirror.is_shallow(),
        "a deploy read history from a shallow mirror"
    );
    let root = git(&s.repo, &["rev-list", "--max-parents=0", "HEAD"]);
    assert!(mirror.is_ancestor(&root, &newer).unwrap());
    let late_log = s.log(&late["id"]).await;
    assert!(
        !late_log.contains("first fetch of this mirror"),
        "{late_log}"
    );

    // A later push is an ordinary treeless deploy.
    let next = commit(&s.repo, "Next", &[("index.html", "<h1>next</h1>\n")]);
    let deploy = s.push_and_wait("develop").await;
    assert_eq!(deploy["status"], "succeeded", "{deploy}");
    assert_eq!(s.revision("staging").as_deref(), Some(next.as_str()));
    s.stop().await;
}

#[actix_web::test]
async fn an_unknown_mirror_mode_is_a_config_error_naming_the_key() {
    let b = Harness::builder()
        .app("mirror = \"shallow\"\n[apps.shop.environments.staging]\nbranch = \"develop\"\n");
    let path = b.write_config();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_stagehand"))
        .args(["check", "--config"])
        .arg(&path)
        .env("SHOP_WEBHOOK_SECRET", "s3cret-s3cret")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("apps.shop.mirror"), "{stderr}");
}
