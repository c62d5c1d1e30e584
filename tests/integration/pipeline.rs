//! The deploy pipeline end to end: real git repositories, the real server on
//! 127.0.0.1:0, signed deliveries from webhook-samples/, real build processes.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::*;
use serde_json::json;

fn toml(dir: &Path, repo: &Path, extra_app: &str, staging: &str) -> String {
    shop_toml_with(
        dir,
        repo,
        r#"max_parallel_deploys = 2
shutdown_grace = "2s""#,
        &format!(
            r#"shared = ["storage/", ".env"]
keep_releases = 3
step_timeout = "60s"
build = [
  "printf 'APP_ENV=%s branch=%s commit=%s release=%s\n' \"$APP_ENV\" \"$STAGEHAND_BRANCH\" \"$STAGEHAND_COMMIT\" \"$STAGEHAND_RELEASE\"",
  "echo \"db password: $DB_PASSWORD\"",
  "./bin/hello",
  "if [ -f build.sh ]; then sh build.sh; fi",
]
env = {{ APP_NAME = "shop", DB_PASSWORD = "hunter2hunter2" }}
{extra_app}

[apps.shop.environments.production]
branch = "main"
env = {{ APP_ENV = "production" }}

[apps.shop.environments.staging]
branch = "develop"
env = {{ APP_ENV = "staging" }}
{staging}

[apps.shop.environments.preview]
branch = "feature/*"
env = {{ APP_ENV = "preview" }}
"#
        ),
    )
}

async fn setup(extra_app: &str, staging: &str) -> Harness {
    Harness::builder()
        .config(|dir, repo| toml(dir, repo, extra_app, staging))
        .start()
        .await
}

fn checkout(repo: &Path, branch: &str) {
    git(repo, &["checkout", "-q", branch]);
}

#[actix_web::test]
async fn a_push_goes_live() {
    let s = setup("", "").await;
    let sha = git(&s.repo, &["rev-parse", "develop"]);
    let deploy = s.push_and_wait("develop").await;
    assert_eq!(deploy["status"], "succeeded", "{deploy}");
    assert_eq!(deploy["commit"], sha);
    let release = deploy["release"].as_str().unwrap();
    assert!(release.ends_with(&sha[..7]), "{release}");

    let env = s.root.join("staging");
    assert_eq!(s.live("staging").as_deref(), Some(release));
    let dir = env.join("releases").join(release);
    assert_eq!(
        std::fs::read_to_string(dir.join("REVISION"))
            .unwrap()
            .trim(),
        sha
    );
    // Exec bit and symlink from the tree.
    let mode = std::fs::metadata(dir.join("bin/hello"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111, "{mode:o}");
    assert_eq!(
        std::fs::read_link(dir.join("home.html")).unwrap(),
        Path::new("index.html")
    );
    // Shared links replace the tree's storage/ and create .env.
    assert_eq!(
        std::fs::read_link(dir.join("storage")).unwrap(),
        Path::new("../../shared/storage")
    );
    assert!(env.join("shared/storage").is_dir());
    assert!(env.join("shared/.env").is_file());

    let stages: Vec<&str> = deploy["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        [
            "fetch",
            "checkout",
            "link",
            "build",
            "switch",
            "after_release",
            "cleanup"
        ]
    );
    for stage in deploy["stages"].as_array().unwrap() {
        assert_eq!(stage["status"], "succeeded", "{stage}");
        assert!(stage["duration_ms"].is_i64(), "{stage}");
    }

    let log = s.log(&deploy["id"]).await;
    assert!(
        log.contains(&format!(
            "APP_ENV=staging branch=develop commit={sha} release={release}"
        )),
        "{log}"
    );
    assert!(log.contains("hello from the release"), "{log}");
    assert!(
        log.contains("db password: ***") && !log.contains("hunter2hunter2"),
        "{log}"
    );
    assert!(
        log.contains("storage/ from the repository replaced by the link"),
        "{log}"
    );
    s.stop().await;
}

#[actix_web::test]
async fn a_failing_build_leaves_everything_as_it_was() {
    let s = setup("", "").await;
    let first = s.push_and_wait("develop").await;
    assert_eq!(first["status"], "succeeded");
    let before = (s.live("staging"), s.releases("staging"));

    checkout(&s.repo, "develop");
    commit(
        &s.repo,
        "Break the build",
        &[("build.sh", "echo about to fail >&2; exit 3\n")],
    );
    let failed = s.push_and_wait("develop").await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let reason = failed["reason"].as_str().unwrap();
    assert!(
        reason.contains(
            "build command `if [ -f build.sh ]; then sh build.sh; fi` failed: exit code 3"
        ),
        "{reason}"
    );
    assert_eq!((s.live("staging"), s.releases("staging")), before);
    let log = s.log(&failed["id"]).await;
    assert!(log.contains("err  about to fail"), "{log}");
    assert!(log.contains("removed the half-made release"), "{log}");
    s.stop().await;
}

#[actix_web::test]
async fn a_build_past_step_timeout_is_killed_with_its_children() {
    let s = setup("", "step_timeout = \"2s\"").await;
    checkout(&s.repo, "develop");
    commit(
        &s.repo,
        "Hang",
        &[(
            "build.sh",
            "sleep 1000 &\necho $! > \"$STAGEHAND_SHARED_DIR/child.pid\"\nsleep 1000\n",
        )],
    );
    let deploy = s.push_and_wait("develop").await;
    assert_eq!(deploy["status"], "failed", "{deploy}");
    assert!(
        deploy["reason"].as_str().unwrap().contains("timed out"),
        "{deploy}"
    );
    let pid = std::fs::read_to_string(s.root.join("staging/shared/child.pid")).unwrap();
    let proc_dir = PathBuf::from(format!("/proc/{}", pid.trim()));
    // The orphan is reaped by whoever adopted it; either way it must not be running.
    let mut gone = false;
    for _ in 0..50 {
        let state = std::fs::read_to_string(proc_dir.join("stat")).unwrap_or_default();
        if state.is_empty() || state.split_whitespace().nth(2) == Some("Z") {
            gone = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(gone, "the build's child {} survived", pid.trim());
    assert_eq!(s.live("staging"), None);
    assert_eq!(s.releases("staging"), Vec::<String>::new());
    s.stop().await;
}

/// Found by bench/faults.sh: two pushed deploys were still `queued` 753 ms after their
/// 202, because `/hooks` recorded the deploy but never nudged the runner, which then
/// only saw it at its next 2-second poll. The runner polls once at start and then
/// sleeps: a push 300 ms in must start long before that sleep ends.
#[actix_web::test]
async fn regression_a_push_wakes_the_runner_instead_of_waiting_for_its_poll() {
    let s = setup("", "").await;
    actix_web::rt::time::sleep(std::time::Duration::from_millis(300)).await;
    let sha = git(&s.repo, &["rev-parse", "develop"]);
    let pushed = std::time::Instant::now();
    let (status, answer) = s.push(&push_body("refs/heads/develop", &sha)).await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["deploy"]["id"].as_str().unwrap().to_owned();
    loop {
        let (_, deploy) = s.get(&format!("/api/deploys/{id}")).await;
        if deploy["status"] != "queued" {
            break;
        }
        assert!(
            pushed.elapsed() < std::time::Duration::from_millis(1000),
            "deploy {id} still queued {:?} after its push",
            pushed.elapsed()
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    s.wait(&answer["deploy"]["id"], 60).await;
    s.stop().await;
}

#[actix_web::test]
async fn quick_pushes_coalesce_and_the_newest_goes_live() {
    let s = setup("", "").await;
    checkout(&s.repo, "develop");
    let mut shas = Vec::new();
    for i in 0..5 {
        let script = format!("sleep 1\necho {i} >> \"$STAGEHAND_SHARED_DIR/builds.log\"\n");
        shas.push(commit(
            &s.repo,
            &format!("Change {i}"),
            &[("build.sh", &script)],
        ));
    }
    let mut ids = Vec::new();
    for sha in &shas {
        let (status, answer) = s.push(&push_body("refs/heads/develop", sha)).await;
        assert_eq!(status, 202);
        ids.push(answer["deploy"]["id"].clone());
    }
    let mut statuses = Vec::new();
    for id in &ids {
        statuses.push(s.wait(id, 60).await["status"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        statuses.last().map(String::as_str),
        Some("succeeded"),
        "{statuses:?}"
    );
    for status in &statuses {
        assert!(
            ["succeeded", "superseded", "skipped"].contains(&status.as_str()),
            "{statuses:?}"
        );
    }
    let builds = std::fs::read_to_string(s.root.join("staging/shared/builds.log")).unwrap();
    assert!(
        builds.lines().count() <= 2,
        "builds ran: {builds:?} ({statuses:?})"
    );
    let live_release = s.live("staging").unwrap();
    let revision = std::fs::read_to_string(
        s.root
            .join("staging/releases")
            .join(live_release)
            .join("REVISION"),
    )
    .unwrap();
    assert_eq!(revision.trim(), shas[4]);
    s.stop().await;
}

#[actix_web::test]
async fn keep_releases_is_honoured_and_rollback_goes_back_one() {
    let s = setup("", "keep_releases = 2").await;
    checkout(&s.repo, "develop");
    let mut deployed = Vec::new();
    for i in 0..3 {
        commit(
            &s.repo,
            &format!("Release {i}"),
            &[("VERSION", &format!("{i}\n"))],
        );
        let deploy = s.push_and_wait("develop").await;
        assert_eq!(deploy["status"], "succeeded", "{deploy}");
        deployed.push(deploy["release"].as_str().unwrap().to_owned());
    }
    assert_eq!(s.releases("staging"), deployed[1..].to_vec());

    let (status, answer) = s
        .post("/api/apps/shop/environments/staging/rollback", &json!({}))
        .await;
    assert_eq!(status, 202, "{answer}");
    let rollback = s.wait(&answer["deploy"]["id"], 30).await;
    assert_eq!(rollback["status"], "succeeded", "{rollback}");
    assert_eq!(rollback["trigger"], "rollback");
    assert_eq!(rollback["release"], deployed[1]);
    assert_eq!(s.live("staging").as_deref(), Some(deployed[1].as_str()));

    // Asking for a release that is not there fails without touching `current`.
    let (status, answer) = s
        .post(
            "/api/apps/shop/environments/staging/rollback",
            &json!({"release": "20000101T000000Z-0000000"}),
        )
        .await;
    assert_eq!(status, 202);
    let missing = s.wait(&answer["deploy"]["id"], 30).await;
    assert_eq!(missing["status"], "failed");
    assert!(
        missing["reason"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{missing}"
    );
    assert_eq!(s.live("staging").as_deref(), Some(deployed[1].as_str()));
    let (status, _) = s
        .post(
            "/api/apps/shop/environments/staging/rollback",
            &json!({"release": "../etc"}),
        )
        .await;
    assert_eq!(status, 400);
    s.stop().await;
}

#[actix_web::test]
async fn an_out_of_order_delivery_is_skipped_but_a_manual_deploy_is_not() {
    let s = setup("", "").await;
    checkout(&s.repo, "develop");
    let old = commit(&s.repo, "Old", &[("VERSION", "1\n")]);
    commit(&s.repo, "New", &[("VERSION", "2\n")]);
    assert_eq!(s.push_and_wait("develop").await["status"], "succeeded");
    let (_, answer) = s.push(&push_body("refs/heads/develop", &old)).await;
    let late = s.wait(&answer["deploy"]["id"], 30).await;
    assert_eq!(late["status"], "skipped", "{late}");
    assert!(
        late["reason"]
            .as_str()
            .unwrap()
            .contains("older than the live one"),
        "{late}"
    );

    let (status, answer) = s
        .post(
            "/api/apps/shop/environments/staging/deploy",
            &json!({"ref": old}),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let manual = s.wait(&answer["deploy"]["id"], 60).await;
    assert_eq!(manual["status"], "succeeded", "{manual}");
    assert_eq!(manual["trigger"], "manual");
    assert_eq!(manual["commit"], old);
    // A manual deploy by branch name records the full ref.
    let (_, answer) = s
        .post("/api/apps/shop/environments/staging/deploy", &json!({}))
        .await;
    let by_branch = s.wait(&answer["deploy"]["id"], 60).await;
    assert_eq!(by_branch["status"], "succeeded", "{by_branch}");
    assert_eq!(by_branch["ref"], "refs/heads/develop");
    let (status, _) = s
        .post("/api/apps/shop/environments/preview/deploy", &json!({}))
        .await;
    assert_eq!(status, 400);
    let (status, _) = s
        .post("/api/apps/shop/environments/nope/deploy", &json!({}))
        .await;
    assert_eq!(status, 404);
    s.stop().await;
}

#[actix_web::test]
async fn a_branch_named_like_a_shell_command_runs_nothing() {
    let s = setup("", "").await;
    let branch = "feature/x$(touch${IFS}pwned)`touch${IFS}pwned2`";
    git(&s.repo, &["checkout", "-q", "-b", branch]);
    commit(&s.repo, "Sneaky", &[("VERSION", "x\n")]);
    let deploy = s.push_and_wait(branch).await;
    assert_eq!(deploy["status"], "succeeded", "{deploy}");
    let env = deploy["environment"].as_str().unwrap();
    assert!(
        env.starts_with("preview-feature-x-touch-ifs-pwned"),
        "{env}"
    );
    let release = s
        .root
        .join(env)
        .join("releases")
        .join(deploy["release"].as_str().unwrap());
    for name in ["pwned", "pwned2"] {
        assert!(!release.join(name).exists(), "{name} was created");
    }
    let log = s.log(&deploy["id"]).await;
    assert!(log.contains(&format!("branch={branch} ")), "{log}");
    s.stop().await;
}

#[actix_web::test]
async fn deleting_a_preview_branch_tears_its_environment_down() {
    let s = setup("", "").await;
    git(&s.repo, &["checkout", "-q", "-b", "feature/cart"]);
    commit(&s.repo, "Cart", &[("VERSION", "cart\n")]);
    let deploy = s.push_and_wait("feature/cart").await;
    assert_eq!(deploy["status"], "succeeded", "{deploy}");
    assert!(s.root.join("preview-feature-cart/current").exists());
    let mut deleted = sample("push-delete-branch.json");
    deleted["ref"] = json!("refs/heads/feature/cart");
    let (status, answer) = s.push(&deleted).await;
    assert_eq!(status, 202, "{answer}");
    let teardown = s.wait(&answer["deploy"]["id"], 30).await;
    assert_eq!(teardown["status"], "succeeded", "{teardown}");
    assert!(!s.root.join("preview-feature-cart").exists());
    let (_, apps) = s.get("/api/apps").await;
    let names: Vec<&str> = apps["apps"][0]["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"preview-feature-cart"), "{names:?}");
    s.stop().await;
}

/// A health endpoint whose answer the test flips.
fn health_server(healthy: std::sync::Arc<std::sync::atomic::AtomicBool>) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/health", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let status = if healthy.load(std::sync::atomic::Ordering::SeqCst) {
                "200 OK"
            } else {
                "500 Oops"
            };
            let _ = stream.write_all(
                format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
        }
    });
    url
}

#[actix_web::test]
async fn a_failing_health_check_switches_back() {
    let healthy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let url = health_server(healthy.clone());
    let s = setup(
        r#"after_release = ["echo \"$STAGEHAND_RELEASE\" >> \"$STAGEHAND_SHARED_DIR/after_release.log\""]"#,
        &format!("health_check = {{ url = \"{url}\", timeout = \"2s\" }}"),
    )
    .await;
    let first = s.push_and_wait("develop").await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let stages: Vec<&str> = first["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(stages.contains(&"health"), "{stages:?}");
    let good = s.live("staging");

    healthy.store(false, std::sync::atomic::Ordering::SeqCst);
    checkout(&s.repo, "develop");
    commit(&s.repo, "Broken at runtime", &[("VERSION", "2\n")]);
    let second = s.push_and_wait("develop").await;
    assert_eq!(second["status"], "rolled_back", "{second}");
    let reason = second["reason"].as_str().unwrap();
    assert!(
        reason.contains("health check failed") && reason.contains("switched back"),
        "{reason}"
    );
    assert_eq!(s.live("staging"), good);
    // An automatic rollback runs after_release again for the release that is live
    // again, as a manual rollback does (issue 12): whatever it reloads, reloads the
    // old code.
    let after = std::fs::read_to_string(s.root.join("staging/shared/after_release.log")).unwrap();
    let ran_for: Vec<&str> = after.lines().collect();
    let good = good.unwrap();
    let bad = second["release"].as_str().unwrap();
    assert_eq!(ran_for, [good.as_str(), bad, good.as_str()], "{second}");
    s.stop().await;
}

#[actix_web::test]
async fn shutdown_cancels_a_build_past_the_grace_period() {
    let s = setup("", "").await;
    checkout(&s.repo, "develop");
    commit(
        &s.repo,
        "Slow",
        &[("build.sh", "echo started\nsleep 1000\n")],
    );
    let sha = git(&s.repo, &["rev-parse", "develop"]);
    let (_, answer) = s.push(&push_body("refs/heads/develop", &sha)).await;
    let id = answer["deploy"]["id"].clone();
    while !s.log(&id).await.contains("out  started") {
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let root = s.root.clone();
    let stopped = s.stop().await;
    let store = stagehand::store::Store::open(&stopped.dir().join("state/stagehand.db")).unwrap();
    let deploy = store
        .deploy(stagehand::core::ids::DeployId(
            id.as_str().unwrap().parse().unwrap(),
        ))
        .unwrap()
        .unwrap();
    assert_eq!(deploy.status.as_str(), "cancelled", "{:?}", deploy.reason);
    assert!(std::fs::symlink_metadata(root.join("staging/current")).is_err());
    // `.trees/` holds checkout manifests (recycle.rs); a stale one goes at the next sweep.
    let left = std::fs::read_dir(root.join("staging/releases"))
        .map(|d| {
            d.filter(|e| e.as_ref().unwrap().file_name() != ".trees")
                .count()
        })
        .unwrap_or(0);
    assert_eq!(left, 0, "the cancelled release was not removed");
}

#[actix_web::test]
async fn the_git_cli_fetcher_and_warm_caches() {
    let build = r#"fetch_with = "git"
cache = ["vendor"]"#;
    let s = setup(build, "").await;
    checkout(&s.repo, "develop");
    commit(
        &s.repo,
        "Vendor",
        &[(
            "build.sh",
            "if [ -d vendor ]; then echo warm; else mkdir vendor && echo cold; fi\n",
        )],
    );
    let first = s.push_and_wait("develop").await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert!(s.log(&first["id"]).await.contains("out  cold"));
    commit(&s.repo, "Again", &[("VERSION", "2\n")]);
    let second = s.push_and_wait("develop").await;
    assert_eq!(second["status"], "succeeded", "{second}");
    let log = s.log(&second["id"]).await;
    assert!(
        log.contains("cache vendor: copied from the live release") && log.contains("out  warm"),
        "{log}"
    );
    s.stop().await;
}

#[actix_web::test]
async fn a_vanished_repository_fails_clearly() {
    let s = setup("", "").await;
    let sha = git(&s.repo, &["rev-parse", "develop"]);
    std::fs::rename(&s.repo, s.repo.with_file_name("moved")).unwrap();
    let (_, answer) = s.push(&push_body("refs/heads/develop", &sha)).await;
    let deploy = s.wait(&answer["deploy"]["id"], 60).await;
    assert_eq!(deploy["status"], "failed", "{deploy}");
    let reason = deploy["reason"].as_str().unwrap();
    assert!(
        reason.contains("fetching +refs/heads/develop:refs/heads/develop from"),
        "{reason}"
    );
    assert_eq!(deploy["stages"][0]["name"], "fetch");
    assert_eq!(deploy["stages"][0]["status"], "failed");
    assert_eq!(s.live("staging"), None);
    s.stop().await;
}

#[actix_web::test]
async fn the_in_process_libgit2_fetcher_deploys_too() {
    let s = setup(r#"fetch_with = "git2""#, "").await;
    let first = s.push_and_wait("develop").await;
    assert_eq!(first["status"], "succeeded", "{first}");
    checkout(&s.repo, "develop");
    let sha = commit(&s.repo, "Incremental", &[("VERSION", "2\n")]);
    let second = s.push_and_wait("develop").await;
    assert_eq!(second["status"], "succeeded", "{second}");
    assert_eq!(s.revision("staging"), Some(sha));
    s.stop().await;
}

/// Every regular file and symlink below `root` (not following links), `/`-separated.
fn files_below(root: &Path) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                pending.push(entry.path());
            } else {
                let rel = entry.path().strip_prefix(root).unwrap().to_owned();
                out.insert(rel.to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// The files a release of `sha` holds under this setup: the commit's, REVISION, the
/// shared links (`storage` replaces the tracked `storage/`, `.env`), and `built` (what
/// the build made).
fn release_files(repo: &Path, sha: &str, built: &[&str]) -> std::collections::BTreeSet<String> {
    let mut expected: std::collections::BTreeSet<String> =
        git(repo, &["ls-tree", "-r", "--name-only", sha])
            .lines()
            .map(str::to_owned)
            .collect();
    expected.remove("storage/.gitkeep");
    expected.extend(["REVISION", "storage", ".env"].map(str::to_owned));
    expected.extend(built.iter().map(|p| p.to_string()));
    expected
}

/// Issue 14: a repeat deploy turns the release cleanup retired into the new one
/// (src/pipeline/recycle.rs), and nothing the old release's build did comes along: the
/// build appends to a tracked file in place and leaves output behind, the shared links
/// replace a tracked directory, and the next commits turn a file into a directory and
/// change a mode.
#[actix_web::test]
async fn a_repeat_deploy_recycles_a_retired_release_and_nothing_its_build_did_leaks() {
    let s = setup("", "keep_releases = 1").await;
    checkout(&s.repo, "develop");
    commit(
        &s.repo,
        "A build that edits a tracked file",
        &[
            (
                "build.sh",
                "echo built >> tracked.txt\nmkdir -p out && echo artifact > out/a\n",
            ),
            ("tracked.txt", "v0\n"),
            ("gone.txt", "a file for now\n"),
            ("dir/keep.txt", "kept\n"),
        ],
    );
    let first = s.push_and_wait("develop").await;
    assert_eq!(first["status"], "succeeded", "{first}");
    commit(&s.repo, "Second", &[("VERSION", "2\n")]);
    let second = s.push_and_wait("develop").await;
    assert_eq!(second["status"], "succeeded", "{second}");
    commit(&s.repo, "Third", &[("VERSION", "3\n")]);
    let third = s.push_and_wait("develop").await;
    assert_eq!(third["status"], "succeeded", "{third}");
    // Cleanup keeps the live release and the one before: the first is retired now: kept as the spare rather than deleted.
    let releases = s.root.join("staging/releases");
    let spare = releases.join(format!(".spare-{}", first["release"].as_str().unwrap()));
    assert!(spare.is_dir(), "{spare:?}");

    git(&s.repo, &["rm", "-q", "gone.txt"]);
    git(&s.repo, &["update-index", "--chmod=+x", "dir/keep.txt"]);
    commit(
        &s.repo,
        "A file becomes a directory",
        &[("gone.txt/inner.txt", "a directory now\n")],
    );
    let fourth = s.push_and_wait("develop").await;
    assert_eq!(fourth["status"], "succeeded", "{fourth}");
    let log = s.log(&fourth["id"]).await;
    assert!(
        log.contains(&format!(
            "recycled retired release {}",
            first["release"].as_str().unwrap()
        )),
        "{log}"
    );
    let release = releases.join(fourth["release"].as_str().unwrap());
    // The build ran once on a clean tracked.txt: the first build's line did not come along.
    assert_eq!(
        std::fs::read_to_string(release.join("tracked.txt")).unwrap(),
        "v0\nbuilt\n"
    );
    let sha = git(&s.repo, &["rev-parse", "HEAD"]);
    // What the deploy adds: REVISION, the build's output, the shared links.
    let expected = release_files(&s.repo, &sha, &["out/a"]);
    let found = files_below(&release);
    assert_eq!(found, expected);
    for path in [
        "gone.txt/inner.txt",
        "dir/keep.txt",
        "index.html",
        "VERSION",
    ] {
        let want = git(&s.repo, &["show", &format!("{sha}:{path}")]);
        let got = std::fs::read_to_string(release.join(path)).unwrap();
        assert_eq!(got.trim_end(), want, "{path}");
    }
    let mode = |p: &str| {
        std::fs::metadata(release.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("dir/keep.txt"), 0o755);
    assert_eq!(mode("index.html"), 0o644);
    assert_eq!(
        std::fs::read_link(release.join("home.html")).unwrap(),
        Path::new("index.html")
    );

    // The fallback: a spare (now the second release) whose manifest is gone is not trusted; the checkout writes
    // the whole tree and the deploy says why.
    let spare = releases.join(format!(".spare-{}", second["release"].as_str().unwrap()));
    assert!(spare.is_dir(), "{spare:?}");
    std::fs::remove_file(
        releases
            .join(".trees")
            .join(second["release"].as_str().unwrap()),
    )
    .unwrap();
    commit(&s.repo, "Fifth", &[("VERSION", "5\n")]);
    let fifth = s.push_and_wait("develop").await;
    assert_eq!(fifth["status"], "succeeded", "{fifth}");
    let log = s.log(&fifth["id"]).await;
    assert!(log.contains("not recycled"), "{log}");
    let release = releases.join(fifth["release"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(release.join("tracked.txt")).unwrap(),
        "v0\nbuilt\n"
    );
    assert_eq!(
        std::fs::read_to_string(release.join("VERSION")).unwrap(),
        "5\n"
    );
    s.stop().await;
}

/// Issue 14: until an environment has retired a release there is nothing to recycle, so
/// a spare of the live tree is written after a deploy ends (recycle::prepare_spare) and
/// the environment's second deploy recycles it instead of writing every file.
#[actix_web::test]
async fn a_second_deploy_recycles_the_spare_tree_written_after_the_first() {
    let s = setup("", "").await;
    checkout(&s.repo, "develop");
    commit(
        &s.repo,
        "First",
        &[("VERSION", "1\n"), ("dir/kept.txt", "kept\n")],
    );
    let first = s.push_and_wait("develop").await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let first_release = first["release"].as_str().unwrap().to_owned();
    let releases = s.root.join("staging/releases");
    let spare = releases.join(format!(".spare-{first_release}.ahead"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !spare.is_dir() {
        assert!(std::time::Instant::now() < deadline, "no spare written");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    commit(&s.repo, "Second", &[("VERSION", "2\n")]);
    let second = s.push_and_wait("develop").await;
    assert_eq!(second["status"], "succeeded", "{second}");
    let log = s.log(&second["id"]).await;
    assert!(
        log.contains(&format!(
            "recycled the spare tree of {first_release} written after its deploy"
        )),
        "{log}"
    );
    assert!(!spare.exists());
    let sha = git(&s.repo, &["rev-parse", "HEAD"]);
    let expected = release_files(&s.repo, &sha, &[]);
    let release = releases.join(second["release"].as_str().unwrap());
    assert_eq!(files_below(&release), expected);
    assert_eq!(
        std::fs::read_to_string(release.join("VERSION")).unwrap(),
        "2\n"
    );
    // The first release, the rollback target, is whole and shares no file.
    let old = releases.join(&first_release);
    assert_eq!(std::fs::read_to_string(old.join("VERSION")).unwrap(), "1\n");
    let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    assert_ne!(
        inode(&old.join("dir/kept.txt")),
        inode(&release.join("dir/kept.txt"))
    );
    s.stop().await;
}
