//! Config reload (issue 16 item 4): `stagehand reload` / `POST /api/reload` and SIGHUP.

use std::process::Command;

use crate::support::*;

const STAGING: &str = r#"build = ["if [ -f slow ]; then sleep 2; fi", "echo built with the old config"]
[apps.shop.environments.staging]
branch = "develop"
"#;

const WITH_PRODUCTION: &str = r#"build = ["echo built with the new config"]
[apps.shop.environments.staging]
branch = "develop"
[apps.shop.environments.production]
branch = "main"
"#;

fn stagehand(url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stagehand"));
    cmd.env("STAGEHAND_API_TOKEN", TOKEN)
        .env("STAGEHAND_SERVER", url)
        .env("NO_COLOR", "1");
    cmd
}

async fn run(mut cmd: Command) -> std::process::Output {
    actix_web::rt::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

async fn environments(client: &Client) -> Vec<String> {
    let (_, apps) = client.get("/api/apps").await;
    apps["apps"][0]["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect()
}

#[actix_web::test]
async fn reload_applies_a_good_file_keeps_running_deploys_and_refuses_a_bad_one() {
    let b = Harness::builder();
    let repo = b.repo().to_owned();
    let full = b.app(STAGING).start().await;
    let file = full.config_file();
    let client = full.client();

    git(&repo, &["checkout", "-q", "develop"]);
    let sha = commit(&repo, "Slow", &[("slow", "")]);
    let (_, answer) = client.push(&push_body("refs/heads/develop", &sha)).await;
    let id = answer["deploy"]["id"].clone();
    loop {
        let (_, deploy) = client
            .get(&format!("/api/deploys/{}", id.as_str().unwrap()))
            .await;
        if deploy["status"] != "queued" {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let new = shop_toml(full.dir(), &repo, WITH_PRODUCTION);
    std::fs::write(&file, &new).unwrap();
    let out = run({
        let mut c = stagehand(&client.url);
        c.arg("reload");
        c
    })
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("reloaded: shop/staging changed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("reloaded: shop/production added"),
        "{stdout}"
    );
    assert!(
        environments(&client)
            .await
            .contains(&"production".to_string())
    );

    // The deploy running during the reload finishes with the config it started with.
    let done = client.wait(&id, 60).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let log = client.log(&id).await;
    assert!(log.contains("built with the old config"), "{log}");
    let (_, answer) = client
        .post(
            "/api/apps/shop/environments/staging/deploy",
            &serde_json::json!({}),
        )
        .await;
    let next = client.wait(&answer["deploy"]["id"], 60).await;
    assert!(
        client
            .log(&next["id"])
            .await
            .contains("built with the new config")
    );

    // A bad file: every problem is reported and the running config stays.
    let bad = new
        .replace(
            "[apps.shop.environments.production]",
            "[apps.shop.environments.production]\nbranches = \"x\"",
        )
        .replace("SHOP_WEBHOOK_SECRET", "NOT_SET_SECRET");
    std::fs::write(&file, bad).unwrap();
    let out = run({
        let mut c = stagehand(&client.url);
        c.arg("reload");
        c
    })
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("409"), "{stderr}");
    assert!(
        stderr.contains("the running config is unchanged"),
        "{stderr}"
    );
    assert!(
        stderr.contains("branches"),
        "the problem is named: {stderr}"
    );
    assert!(
        environments(&client)
            .await
            .contains(&"production".to_string())
    );
    full.stop().await;
}

/// SIGHUP to the real binary reloads, and the log says what changed.
#[test]
fn sighup_reloads_the_config() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let repo = source_repo(dir.path());
    let file = dir.path().join("stagehand.toml");
    let listen = "[server]\nlisten = \"127.0.0.1:0\"\n";
    let config = |rest: &str| {
        format!(
            "{listen}{}",
            shop_toml(dir.path(), &repo, rest).replacen("[server]\n", "", 1)
        )
    };
    std::fs::write(&file, config(STAGING)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stagehand"))
        .args(["serve", "--config"])
        .arg(&file)
        .env("SHOP_WEBHOOK_SECRET", SECRET)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("listening on"), "{first}");
    std::fs::write(&file, config(WITH_PRODUCTION)).unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let mut seen = String::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("config reloaded") && line.contains("shop/production added") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(seen.contains("shop/production added"), "{seen}");
}
