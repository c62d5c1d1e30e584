//! Runtime data and build caches (issue 16 items 1-3): `sync_exclude`, `before_sync`,
//! the per-environment cache dir, `link_after_build`.

use std::path::Path;

use crate::support::*;
use serde_json::json;

fn toml(dir: &Path, repo: &Path) -> String {
    shop_toml(
        dir,
        repo,
        r#"shared = ["instance/", ".env"]
sync_exclude = ["*.key"]
build = ["n=$(cat \"$STAGEHAND_CACHE_DIR/count\" 2>/dev/null || echo 0); echo $((n+1)) > \"$STAGEHAND_CACHE_DIR/count\"; echo cache at $STAGEHAND_CACHE_DIR", "if [ -e instance ]; then echo build sees instance; else echo build sees no instance; fi"]

[apps.shop.environments.production]
branch = "main"
sync_exclude = ["instance/config.py"]
before_sync = ["echo dumped > shared/instance/dump.sql"]
link_after_build = true

[apps.shop.environments.staging]
branch = "develop"
"#,
    )
}

#[actix_web::test]
async fn sync_leaves_out_excluded_paths_runs_before_sync_and_builds_get_a_cache() {
    let s = Harness::builder().config(toml).start().await;
    let production = s.push_and_wait("main").await;
    assert_eq!(production["status"], "succeeded", "{production}");
    let log = s.log(&production["id"]).await;
    assert!(log.contains("build sees no instance"), "{log}");
    let live = s.root.join("production/current/instance");
    assert!(
        std::fs::symlink_metadata(&live).is_ok_and(|m| m.file_type().is_symlink()),
        "linked after the build: {log}"
    );
    let staging = s.push_and_wait("develop").await;
    assert_eq!(staging["status"], "succeeded", "{staging}");
    let log = s.log(&staging["id"]).await;
    assert!(log.contains("build sees instance"), "{log}");

    let data = s.root.join("production/shared/instance");
    std::fs::create_dir_all(data.join("tls")).unwrap();
    std::fs::write(data.join("config.py"), "SECRET_KEY = 'production-only'\n").unwrap();
    std::fs::write(data.join("tls/server.key"), "private").unwrap();
    std::fs::write(data.join("app.db"), "rows").unwrap();
    let (status, answer) = s
        .post(
            "/api/apps/shop/sync",
            &json!({"from": "production", "to": "staging"}),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let synced = s.wait(&answer["deploy"]["id"], 60).await;
    assert_eq!(synced["status"], "succeeded", "{synced}");
    let log = s.log(&synced["id"]).await;
    let copied = s.root.join("staging/shared/instance");
    assert_eq!(
        std::fs::read_to_string(copied.join("app.db")).unwrap(),
        "rows"
    );
    assert_eq!(
        std::fs::read_to_string(copied.join("dump.sql")).unwrap(),
        "dumped\n",
        "before_sync ran in production first: {log}"
    );
    assert!(!copied.join("config.py").exists(), "{log}");
    assert!(!copied.join("tls/server.key").exists(), "{log}");
    assert!(log.contains("before_sync in `production`"), "{log}");
    assert!(log.contains("2 left out"), "{log}");

    let (status, answer) = s
        .post("/api/apps/shop/environments/staging/deploy", &json!({}))
        .await;
    assert_eq!(status, 202, "{answer}");
    let again = s.wait(&answer["deploy"]["id"], 60).await;
    assert_eq!(again["status"], "succeeded", "{again}");
    let cache = s.root.join("staging/cache");
    assert_eq!(
        std::fs::read_to_string(cache.join("count")).unwrap().trim(),
        "2",
        "the cache outlives releases"
    );
    let log = s.log(&again["id"]).await;
    assert!(
        log.contains(&format!("cache at {}", cache.display())),
        "{log}"
    );
    s.stop().await;
}
