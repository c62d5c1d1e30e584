//! The CLI client commands against a real server, as an operator runs them.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::*;

fn stagehand(url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stagehand"));
    cmd.env("STAGEHAND_API_TOKEN", TOKEN)
        .env("STAGEHAND_SERVER", url)
        .env("NO_COLOR", "1");
    cmd
}

fn toml(dir: &Path, repo: &Path) -> String {
    let rest = r#"shared = ["storage/"]
build = ["echo first", "if [ -f slow ]; then sleep 3; fi; touch \"$STAGEHAND_SHARED_DIR/second-written\"; echo second", "if [ -f fail ]; then exit 7; fi"]
[apps.shop.environments.staging]
branch = "develop"
"#;
    shop_toml(dir, repo, rest)
}

async fn run(cmd: Command) -> std::process::Output {
    let mut cmd = cmd;
    actix_web::rt::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

#[actix_web::test]
async fn deploy_follow_status_releases_rollback_and_logs() {
    let b = Harness::builder();
    let repo = b.repo().to_owned();
    let root = b.root();
    let full = b.config(toml).start().await;
    let url = full.url.clone();

    let mut deploy = stagehand(&url);
    deploy.args(["deploy", "shop", "staging", "--follow"]);
    let out = run(deploy).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("out  first") && stdout.trim_end().ends_with("succeeded"),
        "{stdout}"
    );

    git(&repo, &["checkout", "-q", "develop"]);
    commit(&repo, "Break", &[("fail", "")]);
    let mut failing = stagehand(&url);
    failing.args(["deploy", "shop", "staging", "--follow"]);
    let out = run(failing).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed deploy exits non-zero: {stdout}"
    );
    assert!(stdout.contains("exit code 7"), "{stdout}");

    git(&repo, &["rm", "-q", "fail"]);
    git(&repo, &["commit", "-q", "-m", "Fix"]);
    let mut again = stagehand(&url);
    again.args(["deploy", "shop", "staging", "--follow"]);
    assert!(run(again).await.status.success());

    let mut status = stagehand(&url);
    status.args(["status"]);
    let out = run(status).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("staging") && stdout.contains("succeeded"),
        "{stdout}"
    );

    let mut releases = stagehand(&url);
    releases.args(["releases", "shop", "staging", "--json"]);
    let out = run(releases).await;
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<String> = list["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["release"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names.len(), 2, "{list}");
    assert_eq!(list["releases"][0]["live"], true);
    assert_eq!(list["releases"][1]["previous"], true);

    let mut rollback = stagehand(&url);
    rollback.args(["rollback", "shop", "staging", "--follow"]);
    let out = run(rollback).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let live = std::fs::read_link(root.join("staging/current")).unwrap();
    assert!(live.ends_with(&names[1]), "{live:?} should be {}", names[1]);

    let mut logs = stagehand(&url);
    logs.args(["logs", "shop/staging"]);
    let out = run(logs).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("switch") && stdout.contains(&names[1]),
        "{stdout}"
    );
    full.stop().await;
}

#[actix_web::test]
async fn logs_follow_prints_lines_as_they_are_written() {
    let b = Harness::builder();
    let repo = b.repo().to_owned();
    let marker = b.dir().join("srv/staging/shared/second-written");
    git(&repo, &["checkout", "-q", "develop"]);
    let sha = commit(&repo, "Slow", &[("slow", "")]);
    let full = b.config(toml).start().await;
    let client = full.client();
    let (_, answer) = client.push(&push_body("refs/heads/develop", &sha)).await;
    let id = answer["deploy"]["id"].as_str().unwrap().to_owned();
    let mut cmd = stagehand(&client.url);
    cmd.args(["logs", &id, "--follow"]).stdout(Stdio::piped());
    let (first_early, code, all) = actix_web::rt::task::spawn_blocking(move || {
        let mut child = cmd.spawn().unwrap();
        let mut first_early = false;
        let mut all = String::new();
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            if line.contains("out  first") {
                first_early = !marker.exists();
            }
            all.push_str(&line);
            all.push('\n');
        }
        (first_early, child.wait().unwrap().code(), all)
    })
    .await
    .unwrap();
    assert!(
        first_early,
        "the first line came only after the second was written:\n{all}"
    );
    assert_eq!(code, Some(0), "{all}");
    assert!(all.contains("out  second"), "{all}");
    full.stop().await;
}

#[actix_web::test]
async fn clear_errors_for_a_missing_server_a_bad_token_and_hook_send() {
    let out = run({
        let mut c = stagehand("http://127.0.0.1:9");
        c.args(["status"]);
        c
    })
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("cannot reach stagehand at http://127.0.0.1:9"),
        "{stderr}"
    );

    let b = Harness::builder();
    let repo = b.repo().to_owned();
    let full = b.config(toml).start().await;
    let config = full.config_file();
    let url = full.url.clone();
    let out = run({
        let mut c = stagehand(&url);
        c.args(["status"]).env("STAGEHAND_API_TOKEN", "wrong");
        c
    })
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the server refused the API token"),
        "{stderr}"
    );

    let out = run({
        let mut c = stagehand(&url);
        c.args(["hook", "send", "shop", "--branch", "develop", "--config"])
            .arg(&config)
            .env("SHOP_WEBHOOK_SECRET", SECRET);
        c
    })
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("202"), "{stdout}");
    let head = git(&repo, &["rev-parse", "develop"]);
    assert!(stdout.contains(&head), "the real head was sent: {stdout}");
    let out = run({
        let mut c = stagehand(&url);
        c.args(["hook", "send", "shop", "--event", "ping", "--config"])
            .arg(&config)
            .env("SHOP_WEBHOOK_SECRET", SECRET);
        c
    })
    .await;
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("200"));
    full.stop().await;
}

fn stdout_json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Issue 16 items 11, 13, 14: `--json` prints JSON for every client command and for
/// `hook send`; a closed stdout ends a command quietly; a rollback's log names no empty
/// ref; a tag environment's error says how to name the tag on the command line.
#[actix_web::test]
async fn json_everywhere_quiet_on_a_closed_pipe_and_clear_wording() {
    let b = Harness::builder();
    let repo = b.repo().to_owned();
    let toml = shop_toml(
        b.dir(),
        &repo,
        "[apps.shop.environments.staging]\nbranch = \"develop\"\n\
         [apps.shop.environments.releases]\ntag = \"v*\"\n",
    );
    let full = b.toml(&toml).start().await;
    let config = full.config_file();
    let url = full.url.clone();
    let cli = |args: &[&str]| {
        let mut c = stagehand(&url);
        c.args(args)
            .arg("--config")
            .arg(&config)
            .env("SHOP_WEBHOOK_SECRET", SECRET);
        c
    };

    let sent = stdout_json(
        &run(cli(&[
            "hook", "send", "shop", "--branch", "develop", "--json",
        ]))
        .await,
    );
    let first = sent["deploy"]["id"].as_str().unwrap().to_owned();
    let done = stdout_json(&run(cli(&["logs", &first, "--follow", "--json"])).await);
    assert_eq!(done["status"], "succeeded", "{done}");
    git(&repo, &["checkout", "-q", "develop"]);
    commit(&repo, "Second", &[("second", "")]);
    let second = stdout_json(&run(cli(&["deploy", "shop", "staging", "--follow", "--json"])).await);
    assert_eq!(second["status"], "succeeded", "{second}");
    let status = stdout_json(&run(cli(&["status", "--json"])).await);
    assert_eq!(status["apps"][0]["name"], "shop", "{status}");
    let releases = stdout_json(&run(cli(&["releases", "shop", "staging", "--json"])).await);
    assert_eq!(releases["releases"].as_array().map(Vec::len), Some(2));
    let rollback = stdout_json(&run(cli(&["rollback", "shop", "staging", "--json"])).await);
    let rollback_id = rollback["id"].as_str().unwrap().to_owned();
    let rolled = stdout_json(&run(cli(&["logs", &rollback_id, "--follow", "--json"])).await);
    assert_eq!(rolled["status"], "succeeded", "{rolled}");
    let log = stdout_json(&run(cli(&["logs", &rollback_id, "--json"])).await);
    let text = log["log"].as_str().unwrap();
    assert!(text.contains("(rollback trigger)"), "{text}");
    assert!(!text.contains("trigger, )"), "{text}");

    for args in [&["status"][..], &["logs", first.as_str()]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut c = cli(args);
        c.stdout(writer);
        let out = run(c).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }

    let out = run(cli(&["deploy", "shop", "releases"])).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--ref v1.2.3"), "{stderr}");
    full.stop().await;
}

/// Issue 16 item 10: `hook send` sends tag pushes, branch deletions and a chosen
/// commit message, so tag environments, teardowns and `[skip deploy]` can be tried.
#[actix_web::test]
async fn hook_send_tags_deletions_and_messages() {
    let b = Harness::builder();
    let repo = b.repo().to_owned();
    let toml = shop_toml(
        b.dir(),
        &repo,
        "[apps.shop.environments.staging]\nbranch = \"develop\"\n\
         [apps.shop.environments.preview]\nbranch = \"feature/*\"\n\
         [apps.shop.environments.releases]\ntag = \"v*\"\n",
    );
    let full = b.toml(&toml).start().await;
    let config = full.config_file();
    let client = full.client();
    let send = |args: &[&str]| {
        let mut c = stagehand(&client.url);
        c.args(["hook", "send", "shop", "--json"])
            .args(args)
            .arg("--config")
            .arg(&config)
            .env("SHOP_WEBHOOK_SECRET", SECRET);
        c
    };

    git(&repo, &["branch", "feature/x"]);
    let pushed = stdout_json(&run(send(&["--branch", "feature/x"])).await);
    let done = client.wait(&pushed["deploy"]["id"], 60).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    git(&repo, &["branch", "-D", "feature/x"]);
    let deleted = stdout_json(&run(send(&["--branch", "feature/x", "--delete"])).await);
    assert_eq!(deleted["deploy"]["trigger"], "teardown", "{deleted}");
    let done = client.wait(&deleted["deploy"]["id"], 60).await;
    assert_eq!(done["status"], "succeeded", "{done}");

    git(&repo, &["tag", "-a", "v1.0", "-m", "Release 1.0"]);
    let tagged = stdout_json(&run(send(&["--tag", "v1.0"])).await);
    assert_eq!(tagged["deploy"]["ref"], "refs/tags/v1.0", "{tagged}");
    assert_eq!(tagged["deploy"]["environment"], "releases", "{tagged}");
    let done = client.wait(&tagged["deploy"]["id"], 60).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["commit"], git(&repo, &["rev-parse", "v1.0^{commit}"]));

    let skipped = stdout_json(
        &run(send(&[
            "--branch",
            "develop",
            "--message",
            "[skip deploy] docs",
        ]))
        .await,
    );
    assert_eq!(skipped["deploy"]["status"], "skipped", "{skipped}");
    assert!(
        skipped["deploy"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("[skip deploy]")),
        "{skipped}"
    );

    let out = run(send(&["--delete"])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--delete needs the --branch or --tag"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    full.stop().await;
}

/// Issue 16 item 7: a ref that does not exist is refused at once (404 with the reason)
/// and records nothing; a ref that does is pinned in the answer; a failed attempt is
/// told apart from the live release, which stays what it was.
#[actix_web::test]
async fn a_bogus_ref_is_refused_and_a_failed_attempt_is_not_the_live_state() {
    let b = Harness::builder();
    let repo = b.repo().to_owned();
    let full = b.config(toml).start().await;
    let client = full.client();
    let url = client.url.clone();
    let cli = |args: &[&str]| {
        let mut c = stagehand(&url);
        c.args(args);
        c
    };
    let first = stdout_json(&run(cli(&["deploy", "shop", "staging", "--follow", "--json"])).await);
    assert_eq!(first["status"], "succeeded", "{first}");

    let out = run(cli(&[
        "deploy",
        "shop",
        "staging",
        "--ref",
        "no-such-branch",
    ]))
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("404") && stderr.contains("no branch, tag or commit \"no-such-branch\""),
        "{stderr}"
    );
    let (_, list) = client.get("/api/deploys").await;
    assert_eq!(list["deploys"].as_array().map(Vec::len), Some(1), "{list}");

    git(&repo, &["checkout", "-q", "develop"]);
    let broken = commit(&repo, "Break the build", &[("fail", "")]);
    let pinned = stdout_json(
        &run(cli(&[
            "deploy", "shop", "staging", "--ref", "develop", "--json",
        ]))
        .await,
    );
    assert_eq!(pinned["commit"], broken, "{pinned}");
    assert_eq!(pinned["ref"], "refs/heads/develop", "{pinned}");
    let failed = client.wait(&pinned["id"], 60).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["message"], "Break the build", "{failed}");

    let (_, apps) = client.get("/api/apps").await;
    let staging = &apps["apps"][0]["environments"][0];
    assert_eq!(staging["last_deploy"]["status"], "failed", "{staging}");
    assert_eq!(staging["live_deploy"]["id"], first["id"], "{staging}");
    assert_eq!(staging["live_deploy"]["status"], "succeeded", "{staging}");
    let status = run(cli(&["status"])).await;
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(stdout.contains("(live release unchanged)"), "{stdout}");
    assert!(stdout.contains("Executable and symlink (Ada)"), "{stdout}");
    full.stop().await;
}

/// Issue 16 item 6: `releases` says what each release is and marks one whose own
/// deploy was rolled back; `rollback --to` it needs `--force`.
#[actix_web::test]
async fn releases_mark_a_rolled_back_release_and_rollback_to_it_needs_force() {
    let b = Harness::builder();
    let repo = b.repo().to_owned();
    let toml = shop_toml(
        b.dir(),
        &repo,
        "after_release = [\"if [ -f bad ]; then exit 3; fi\"]\n\
         [apps.shop.environments.staging]\nbranch = \"develop\"\n",
    );
    let full = b.toml(&toml).start().await;
    let url = full.url.clone();
    let cli = |args: &[&str]| {
        let mut c = stagehand(&url);
        c.args(args);
        c
    };
    let good = stdout_json(&run(cli(&["deploy", "shop", "staging", "--follow", "--json"])).await);
    assert_eq!(good["status"], "succeeded", "{good}");
    git(&repo, &["checkout", "-q", "develop"]);
    commit(&repo, "Ship the bad one", &[("bad", "")]);
    let bad = stdout_json(&run(cli(&["deploy", "shop", "staging", "--follow", "--json"])).await);
    assert_eq!(bad["status"], "rolled_back", "{bad}");
    let bad_release = bad["release"].as_str().unwrap().to_owned();

    let list = stdout_json(&run(cli(&["releases", "shop", "staging", "--json"])).await);
    let row = |name: &str| {
        list["releases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["release"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not listed: {list}"))
    };
    assert_eq!(row(&bad_release)["failed"], true, "{list}");
    assert_eq!(row(&bad_release)["message"], "Ship the bad one", "{list}");
    let good_release = good["release"].as_str().unwrap();
    assert_eq!(row(good_release)["failed"], false, "{list}");
    assert_eq!(row(good_release)["live"], true, "{list}");
    let table = run(cli(&["releases", "shop", "staging"])).await;
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.lines().any(|l| l.starts_with(&bad_release)
            && l.contains("rolled_back")
            && l.contains("Ship the bad one (Ada)")),
        "{table}"
    );

    let refused = run(cli(&["rollback", "shop", "staging", "--to", &bad_release])).await;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("409") && stderr.contains("--force"),
        "{stderr}"
    );
    let forced = run(cli(&[
        "rollback",
        "shop",
        "staging",
        "--to",
        &bad_release,
        "--force",
        "--json",
    ]))
    .await;
    let forced = stdout_json(&forced);
    assert_eq!(forced["trigger"], "rollback", "{forced}");
    full.stop().await;
}
