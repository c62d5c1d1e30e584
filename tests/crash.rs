//! The real binary killed with SIGKILL mid-build, then restarted.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::*;

fn spawn_server(config: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stagehand"))
        .args(["serve", "--config"])
        .arg(config)
        .env("SHOP_WEBHOOK_SECRET", SECRET)
        .env("STAGEHAND_API_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("stagehand listening on ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_owned();
    (child, url)
}

#[actix_web::test]
async fn sigkill_mid_build_leaves_the_old_release_live_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let repo = source_repo(dir.path());
    let root = dir.path().join("srv");
    let config = dir.path().join("stagehand.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
listen = "127.0.0.1:0"
state_dir = "{state}"
[apps.shop]
repo = "{repo}"
github = "acme/shop"
secret_env = "SHOP_WEBHOOK_SECRET"
root = "{root}"
build = ["if [ -f build.sh ]; then sh build.sh; fi"]
shared = ["storage/"]
[apps.shop.environments.staging]
branch = "develop"
"#,
            state = dir.path().join("state").display(),
            repo = repo.display(),
            root = root.display()
        ),
    )
    .unwrap();

    let (mut server, url) = spawn_server(&config);
    let client = Client { url };
    git(&repo, &["checkout", "-q", "develop"]);
    let first_sha = git(&repo, &["rev-parse", "HEAD"]);
    let (_, answer) = client
        .push(&push_body("refs/heads/develop", &first_sha))
        .await;
    let first = client.wait(&answer["deploy"]["id"], 60).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let live_before = std::fs::read_link(root.join("staging/current")).unwrap();

    let hanging = commit(
        &repo,
        "Slow build",
        &[(
            "build.sh",
            "echo $$ > \"$STAGEHAND_SHARED_DIR/build.pid\"\necho started\nsleep 30\n",
        )],
    );
    let (_, answer) = client
        .push(&push_body("refs/heads/develop", &hanging))
        .await;
    let id = answer["deploy"]["id"].clone();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !client.log(&id).await.contains("out  started") {
        assert!(
            std::time::Instant::now() < deadline,
            "the build never started"
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (_, running) = client
        .get(&format!("/api/deploys/{}", id.as_str().unwrap()))
        .await;
    let half_made = running["release"].as_str().unwrap().to_owned();
    assert!(root.join("staging/releases").join(&half_made).exists());
    server.kill().unwrap();
    server.wait().unwrap();

    let (mut server, url) = spawn_server(&config);
    let client = Client { url };
    let (_, interrupted) = client
        .get(&format!("/api/deploys/{}", id.as_str().unwrap()))
        .await;
    assert_eq!(interrupted["status"], "interrupted", "{interrupted}");
    assert!(
        !root.join("staging/releases").join(&half_made).exists(),
        "half-made release left behind"
    );
    assert_eq!(
        std::fs::read_link(root.join("staging/current")).unwrap(),
        live_before
    );
    // The build that lost its server was killed by the restart, not left running.
    let pid = std::fs::read_to_string(root.join("staging/shared/build.pid")).unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().next());
    assert!(
        matches!(state, None | Some("Z")),
        "the interrupted build survived: {stat}"
    );

    let fixed = commit(&repo, "Fast again", &[("build.sh", "echo fine\n")]);
    let (_, answer) = client.push(&push_body("refs/heads/develop", &fixed)).await;
    let next = client.wait(&answer["deploy"]["id"], 60).await;
    assert_eq!(next["status"], "succeeded", "{next}");
    let revision = std::fs::read_to_string(root.join("staging/current/REVISION")).unwrap();
    assert_eq!(revision.trim(), fixed);
    server.kill().unwrap();
    server.wait().unwrap();
}
