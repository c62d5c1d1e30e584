//! Environments that `run`: a tiny Python HTTP app committed in the test's repository
//! (serves its `REVISION` at `/`, `/healthz` fails when the commit has a `BROKEN`
//! file) started, health-checked, switched to, supervised and stopped by stagehand.
//! Every test asserts on what an HTTP client of the app sees.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;

pub const APP_PY: &str = r#"import http.server, os
REV = open("REVISION").read().strip()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            code = 500 if os.path.exists("BROKEN") else 200
            body = b"ok" if code == 200 else b"broken"
        else:
            code, body = 200, REV.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
print("app listening on", os.environ["PORT"], flush=True)
server.serve_forever()
"#;

/// The app keys every test here uses; `extra` adds environment tables.
fn run_toml(dir: &Path, repo: &Path, extra: &str) -> String {
    shop_toml(
        dir,
        repo,
        &format!(
            r#"after_release = ["test ! -f FAIL_AFTER"]
[apps.shop.environments.staging]
branch = "develop"
run = "exec python3 app.py"
stop_timeout = "5s"
health_check = {{ path = "/healthz", timeout = "5s" }}
[apps.shop.environments.production]
branch = "main"
{extra}"#
        ),
    )
}

/// A stagehand with the app committed on `develop` (its harness kills every app
/// process when dropped).
pub struct RunSetup {
    pub s: Harness,
    pub state: PathBuf,
}

impl RunSetup {
    async fn start(extra: &str) -> RunSetup {
        let extra = extra.to_owned();
        let s = Harness::builder()
            .config(|dir, repo| {
                git(repo, &["checkout", "-q", "develop"]);
                commit(repo, "The app", &[("app.py", APP_PY)]);
                run_toml(dir, repo, &extra)
            })
            .start()
            .await;
        let state = s.dir().join("state");
        RunSetup { s, state }
    }

    /// `routes.json`'s entry for `env`: (port, pid, release).
    fn route(&self, env: &str) -> Option<(u16, i32, String)> {
        route_in(&self.state, env)
    }

    fn port(&self, env: &str) -> u16 {
        self.route(env)
            .unwrap_or_else(|| panic!("no route for {env}"))
            .0
    }

    fn pid(&self, env: &str) -> i32 {
        self.route(env)
            .unwrap_or_else(|| panic!("no route for {env}"))
            .1
    }

    fn commit(&self, message: &str, files: &[(&str, &str)]) -> String {
        commit(&self.s.repo, message, files)
    }

    async fn stop(self) {
        self.s.stop().await;
    }

    async fn post(&self, path: &str) -> Value {
        let (status, answer) = self.s.post(path, &json!({})).await;
        assert_eq!(status, 202, "{answer}");
        self.s.wait(&answer["deploy"]["id"], 60).await
    }
}

/// `GET path` on the app's port, as any HTTP client: (status, body), or `None` when
/// nothing answers.
pub fn fetch(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let status = answer.split_whitespace().nth(1)?.parse().ok()?;
    let body = answer.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

/// What the app on `port` serves at `/`: its commit.
fn serves(port: u16) -> Option<String> {
    fetch(port, "/").map(|(_, body)| body)
}

fn alive(pid: i32) -> bool {
    stagehand::supervisor::procfs::stat(pid).is_some_and(|s| s.is_alive())
}

/// Polls `check` until it holds; panics with `what` after `secs`.
async fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not after {secs}s");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

fn stage_names(deploy: &Value) -> Vec<String> {
    deploy["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

#[actix_web::test]
async fn a_deploy_starts_the_new_process_beside_the_old_and_switches_when_it_answers() {
    let r = RunSetup::start("").await;
    let first = r.s.push_and_wait("develop").await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(
        stage_names(&first),
        [
            "fetch",
            "checkout",
            "link",
            "build",
            "start",
            "health",
            "switch",
            "after_release",
            "cleanup"
        ]
    );
    let (port1, pid1, release1) = r.route("staging").unwrap();
    assert_eq!(release1, r.s.live("staging").unwrap());
    // Detached: the leader of its own session and process group, not stagehand's.
    let stat = stagehand::supervisor::procfs::stat(pid1).unwrap();
    assert_eq!((stat.session, stat.pgrp), (pid1, pid1));
    assert_eq!(serves(port1), r.s.revision("staging"));
    assert_eq!(fetch(port1, "/healthz"), Some((200, "ok".into())));

    let sha2 = r.commit("Second", &[("second.txt", "2\n")]);
    let second = r.s.push_and_wait("develop").await;
    assert_eq!(second["status"], "succeeded", "{second}");
    assert!(
        stage_names(&second).contains(&"retire".to_string()),
        "{second}"
    );
    let (port2, pid2, _) = r.route("staging").unwrap();
    assert_ne!((port1, pid1), (port2, pid2));
    assert_eq!(serves(port2), Some(sha2));
    // The old process was retired: nothing answers on its port any more.
    assert!(!alive(pid1));
    assert_eq!(serves(port1), None);
    // The app's own output went to its log.
    let log = std::fs::read_to_string(r.state.join("app-logs/shop/staging.log")).unwrap();
    assert!(log.contains(&format!("app listening on {port2}")), "{log}");
    r.stop().await;
}

#[actix_web::test]
async fn a_release_that_fails_its_health_check_never_serves_and_the_old_one_keeps_serving() {
    let r = RunSetup::start("").await;
    let sha1 = r.s.push_and_wait("develop").await["commit"]
        .as_str()
        .unwrap()
        .to_owned();
    let (port, pid, release) = r.route("staging").unwrap();
    r.commit("Broken health", &[("BROKEN", "yes\n")]);
    let broken = r.s.push_and_wait("develop").await;
    assert_eq!(broken["status"], "failed", "{broken}");
    assert!(
        broken["reason"]
            .as_str()
            .unwrap()
            .contains("health check failed"),
        "{broken}"
    );
    // The old process never stopped serving and is still the route.
    assert_eq!(r.route("staging"), Some((port, pid, release.clone())));
    assert_eq!(serves(port), Some(sha1));
    assert_eq!(r.s.live("staging"), Some(release.clone()));
    // The new process is gone, and so is its half-made release.
    let log = r.s.log(&broken["id"]).await;
    let new_pid: i32 = log
        .split("pid ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{log}"));
    assert!(!alive(new_pid), "{log}");
    assert_eq!(r.s.releases("staging"), [release]);
    r.stop().await;
}

#[actix_web::test]
async fn a_failed_after_release_switches_back_to_the_old_process_still_running() {
    let r = RunSetup::start("").await;
    let sha1 = r.s.push_and_wait("develop").await["commit"]
        .as_str()
        .unwrap()
        .to_owned();
    let (port, pid, release) = r.route("staging").unwrap();
    r.commit("Fails after release", &[("FAIL_AFTER", "yes\n")]);
    let failed = r.s.push_and_wait("develop").await;
    assert_eq!(failed["status"], "rolled_back", "{failed}");
    assert_eq!(r.route("staging"), Some((port, pid, release.clone())));
    assert_eq!(serves(port), Some(sha1));
    assert_eq!(r.s.live("staging"), Some(release));
    let stages = stage_names(&failed);
    assert_eq!(
        stages.iter().filter(|s| *s == "switch").count(),
        2,
        "{failed}"
    );
    assert!(stages.contains(&"retire".to_string()), "{failed}");
    r.stop().await;
}

#[actix_web::test]
async fn rollback_and_restart_start_a_new_process_before_retiring_the_old() {
    let r = RunSetup::start("").await;
    let sha1 = r.s.push_and_wait("develop").await["commit"]
        .as_str()
        .unwrap()
        .to_owned();
    let sha2 = r.commit("Second", &[("second.txt", "2\n")]);
    assert_eq!(r.s.push_and_wait("develop").await["status"], "succeeded");
    let pid2 = r.pid("staging");
    assert_eq!(serves(r.port("staging")), Some(sha2.clone()));

    let rollback = r.post("/api/apps/shop/environments/staging/rollback").await;
    assert_eq!(rollback["status"], "succeeded", "{rollback}");
    assert_eq!(
        stage_names(&rollback),
        [
            "start",
            "health",
            "switch",
            "after_release",
            "retire",
            "cleanup"
        ]
    );
    assert_eq!(serves(r.port("staging")), Some(sha1.clone()));
    assert!(!alive(pid2));

    let pid_before = r.pid("staging");
    let restart = r.post("/api/apps/shop/environments/staging/restart").await;
    assert_eq!(restart["status"], "succeeded", "{restart}");
    assert_eq!(restart["trigger"], "restart");
    assert_eq!(
        stage_names(&restart),
        ["start", "health", "switch", "retire", "cleanup"]
    );
    let pid_after = r.pid("staging");
    assert_ne!(pid_before, pid_after);
    assert!(!alive(pid_before));
    assert_eq!(serves(r.port("staging")), Some(sha1));
    r.stop().await;
}

#[actix_web::test]
async fn an_app_that_dies_is_restarted_and_the_restart_is_counted() {
    let r = RunSetup::start("").await;
    let sha = r.s.push_and_wait("develop").await["commit"]
        .as_str()
        .unwrap()
        .to_owned();
    let pid = r.pid("staging");
    std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    eventually(20, "the app answers again from a new process", || {
        r.route("staging")
            .is_some_and(|(port, new_pid, _)| new_pid != pid && serves(port) == Some(sha.clone()))
    })
    .await;
    let (status, apps) = r.s.get("/api/apps").await;
    assert_eq!(status, 200);
    let process = &staging(&apps)["process"];
    assert_eq!(process["restarts"], 1, "{apps}");
    assert_eq!(process["state"], "running", "{apps}");
    let log = std::fs::read_to_string(r.state.join("app-logs/shop/staging.log")).unwrap();
    assert!(log.contains("exited on its own"), "{log}");
    let (_, _, text) = r.s.get_with("/metrics", None).await;
    assert!(
        text.contains("stagehand_app_restarts_total{app=\"shop\",environment=\"staging\"} 1\n"),
        "{text}"
    );
    r.stop().await;
}

#[actix_web::test]
async fn teardown_stops_the_preview_process_before_its_directory_goes() {
    let r = RunSetup::start(
        r#"[apps.shop.environments.preview]
branch = "feature/*"
run = "exec python3 app.py"
health_check = { path = "/healthz", timeout = "5s" }
"#,
    )
    .await;
    git(&r.s.repo, &["checkout", "-q", "-b", "feature/New_Cart!"]);
    let preview = r.s.push_and_wait("feature/New_Cart!").await;
    assert_eq!(preview["status"], "succeeded", "{preview}");
    let env = "preview-feature-new-cart";
    let (port, pid, _) = r.route(env).unwrap();
    assert!(serves(port).is_some());
    let (status, answer) = r.s.push(&sample("push-delete-branch.json")).await;
    assert_eq!(status, 202, "{answer}");
    let teardown = r.s.wait(&answer["deploy"]["id"], 30).await;
    assert_eq!(teardown["status"], "succeeded", "{teardown}");
    assert!(!alive(pid));
    assert_eq!(serves(port), None);
    assert_eq!(r.route(env), None);
    assert!(!r.s.root.join(env).exists());
    r.stop().await;
}

/// systemd's default (and `mixed`) would kill every app process in the unit's cgroup
/// on `systemctl stop/restart stagehand`.
#[test]
fn the_systemd_unit_leaves_app_processes_running_when_stagehand_stops() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/stagehand.service"
    ))
    .unwrap();
    let kill_modes: Vec<&str> = unit
        .lines()
        .filter(|l| l.trim_start().starts_with("KillMode="))
        .collect();
    assert_eq!(kill_modes, ["KillMode=process"]);
}

async fn live_process(client: &Client) -> Value {
    let (status, apps) = client.get("/api/apps").await;
    assert_eq!(status, 200, "{apps}");
    staging(&apps)["process"].clone()
}

fn staging(apps: &Value) -> &Value {
    apps["apps"][0]["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "staging")
        .unwrap()
}

/// For the tests that run (and SIGKILL) the real binary: `develop` carries the app and
/// the config is `edit`ed; the builder kills every app process when dropped. Returns
/// (builder, app commit, state dir).
fn for_the_real_binary(edit: impl FnOnce(String) -> String) -> (Builder, String, PathBuf) {
    let b = Harness::builder().config(|dir, repo| {
        git(repo, &["checkout", "-q", "develop"]);
        edit(run_toml(dir, repo, ""))
    });
    let sha = commit(b.repo(), "The app", &[("app.py", APP_PY)]);
    let state = b.dir().join("state");
    (b, sha, state)
}

#[actix_web::test]
async fn the_app_outlives_a_sigkilled_stagehand_and_is_adopted_not_restarted() {
    let (b, sha, state) = for_the_real_binary(|toml| toml);

    let (mut server, client) = b.spawn();
    let (_, answer) = client.push(&push_body("refs/heads/develop", &sha)).await;
    let deploy = client.wait(&answer["deploy"]["id"], 60).await;
    assert_eq!(deploy["status"], "succeeded", "{deploy}");
    let (port, pid, _) = route_in(&state, "staging").unwrap();
    assert_eq!(serves(port), Some(sha.clone()));

    // SIGKILL: no shutdown code runs at all. The app does not notice.
    let _ = server.0.kill();
    let _ = server.0.wait();
    assert_eq!(serves(port), Some(sha.clone()));
    assert!(alive(pid));

    // A new stagehand adopts the very same process.
    let (mut server, client) = b.spawn();
    let process = live_process(&client).await;
    assert_eq!(process["pid"], pid, "{process}");
    assert_eq!(process["state"], "running", "{process}");
    assert_eq!(process["restarts"], 0, "{process}");
    assert_eq!(serves(port), Some(sha.clone()));
    // …and supervises it: its death is now noticed and repaired.
    std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    eventually(20, "the adopted app restarted after dying", || {
        route_in(&state, "staging")
            .is_some_and(|(port, new_pid, _)| new_pid != pid && serves(port) == Some(sha.clone()))
    })
    .await;

    // An app that dies while stagehand is away is started again by the next one.
    let _ = server.0.kill();
    let _ = server.0.wait();
    let (_, away_pid, _) = route_in(&state, "staging").unwrap();
    std::process::Command::new("kill")
        .args(["-KILL", &away_pid.to_string()])
        .status()
        .unwrap();
    eventually(5, "the app is gone", || !alive(away_pid)).await;
    let (_server, client) = b.spawn();
    eventually(
        20,
        "the app died while stagehand was away and is back",
        || {
            route_in(&state, "staging").is_some_and(|(port, new_pid, _)| {
                new_pid != away_pid && serves(port) == Some(sha.clone())
            })
        },
    )
    .await;
    assert_eq!(live_process(&client).await["state"], "running");
}

/// Runs the real `stagehand` binary against `url` (blocking work off the test's runtime).
async fn cli(url: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_stagehand"));
    cmd.env("STAGEHAND_API_TOKEN", TOKEN)
        .env("STAGEHAND_SERVER", url)
        .env("NO_COLOR", "1")
        .args(args);
    actix_web::rt::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

#[actix_web::test]
async fn stop_start_restart_and_the_app_log_from_the_command_line() {
    let r = RunSetup::start("").await;
    let sha = r.s.push_and_wait("develop").await["commit"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = r.s.url.clone();
    let (port, pid, _) = r.route("staging").unwrap();

    let out = cli(&url, &["stop", "shop", "staging"]).await;
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("stopped"),
        "{out:?}"
    );
    assert!(!alive(pid));
    assert_eq!(serves(port), None);
    assert_eq!(live_process(&r.s).await["state"], "stopped");
    assert_eq!(
        r.route("staging"),
        None,
        "a stopped environment has no route"
    );
    // Stopped on purpose: the supervisor leaves it down (a restart would come after 1 s).
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(serves(port), None);
    assert_eq!(live_process(&r.s).await["restarts"], 0);

    let out = cli(&url, &["start", "shop", "staging", "--follow"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let process = live_process(&r.s).await;
    assert_eq!(process["state"], "running", "{process}");
    let port = process["port"].as_u64().unwrap() as u16;
    assert_eq!(serves(port), Some(sha.clone()));

    let before = r.pid("staging");
    let out = cli(&url, &["restart", "shop", "staging", "--follow"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("retire"), "{stdout}");
    assert_ne!(r.pid("staging"), before);
    assert_eq!(serves(r.port("staging")), Some(sha));

    let out = cli(&url, &["logs", "shop/staging", "--app"]).await;
    let log = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains(&format!("app listening on {}", r.port("staging"))),
        "{log}"
    );
    assert!(log.contains("stopping on request"), "{log}");

    // A restart of an environment without `run` is refused, not queued.
    let (status, answer) =
        r.s.post("/api/apps/shop/environments/production/restart", &json!({}))
            .await;
    assert_eq!(status, 409, "{answer}");
    r.stop().await;
}

#[actix_web::test]
async fn following_the_app_log_shows_new_output_as_it_is_written() {
    let r = RunSetup::start("").await;
    assert_eq!(r.s.push_and_wait("develop").await["status"], "succeeded");
    let mut resp =
        r.s.get_request(
            "/api/apps/shop/environments/staging/app-log?follow=1",
            Duration::from_secs(30),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    // A restart writes new lines into the log while we follow it.
    let (status, _) =
        r.s.post("/api/apps/shop/environments/staging/restart", &json!({}))
            .await;
    assert_eq!(status, 202);
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    use futures_util::StreamExt;
    while !seen.contains("stopping pid") {
        assert!(Instant::now() < deadline, "{seen}");
        let chunk = resp.next().await.unwrap().unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert_eq!(seen.matches("app listening on").count(), 2, "{seen}");
    r.stop().await;
}

#[actix_web::test]
async fn the_dashboard_shows_the_process_and_its_restart_button_restarts_it() {
    let r = RunSetup::start("").await;
    let sha = r.s.push_and_wait("develop").await["commit"]
        .as_str()
        .unwrap()
        .to_owned();
    let page = dashboard_request(
        "GET",
        &format!("{}/", r.s.url),
        Some(&session_value()),
        &[],
        None,
    )
    .await;
    let html = page.text;
    assert!(html.contains(r#"data-process-state="running""#), "{html}");
    assert!(
        html.contains(&format!("running :{}", r.port("staging"))),
        "{html}"
    );
    assert!(
        html.contains(r#"action="/environments/shop/staging/restart""#),
        "{html}"
    );
    // An environment without `run` has no process and no Restart button.
    assert!(
        !html.contains(r#"action="/environments/shop/production/restart""#),
        "{html}"
    );

    let before = r.pid("staging");
    let answer = dashboard_request(
        "POST",
        &format!("{}/environments/shop/staging/restart", r.s.url),
        Some(&session_value()),
        &[],
        Some(&format!("csrf={}", csrf_value())),
    )
    .await;
    assert_eq!(answer.status, 303);
    let location = answer.header("location");
    let id = location.strip_prefix("/deploys/").unwrap().to_owned();
    let restart = r.s.wait(&json!(id), 60).await;
    assert_eq!(restart["status"], "succeeded", "{restart}");
    assert_ne!(r.pid("staging"), before);
    assert_eq!(serves(r.port("staging")), Some(sha));
    r.stop().await;
}

/// Crash recovery kills the build processes an interrupted deploy left in its release;
/// the app process working in that same (now live) release must survive it.
#[actix_web::test]
async fn a_sigkill_during_after_release_leaves_the_new_live_process_serving_and_adopted() {
    let (b, sha1, state) = for_the_real_binary(|toml| {
        toml.replace(
            r#"after_release = ["test ! -f FAIL_AFTER"]"#,
            r#"after_release = ["if [ -f SLOW_AFTER ]; then touch ../../after-started; sleep 30; fi"]"#,
        )
    });
    let (mut server, client) = b.spawn();
    let (_, answer) = client.push(&push_body("refs/heads/develop", &sha1)).await;
    assert_eq!(
        client.wait(&answer["deploy"]["id"], 60).await["status"],
        "succeeded"
    );
    let (_, old_pid, _) = route_in(&state, "staging").unwrap();

    let sha2 = commit(b.repo(), "Slow after_release", &[("SLOW_AFTER", "")]);
    client.push(&push_body("refs/heads/develop", &sha2)).await;
    let marker = b.dir().join("srv/staging/after-started");
    eventually(60, "after_release started", || marker.exists()).await;
    // Switched: the new process is live, the old one not yet retired.
    let (port, new_pid, _) = route_in(&state, "staging").unwrap();
    assert_ne!(new_pid, old_pid);
    let _ = server.0.kill();
    let _ = server.0.wait();

    let (_server, client) = b.spawn();
    let process = live_process(&client).await;
    assert_eq!(process["pid"], new_pid, "{process}");
    assert_eq!(process["restarts"], 0, "{process}");
    assert_eq!(serves(port), Some(sha2));
    // What the interrupted deploy left half done is finished: the old process is gone.
    eventually(20, "the retiring process was stopped", || !alive(old_pid)).await;
}

#[actix_web::test]
async fn a_new_process_that_exits_fails_the_deploy_without_waiting_out_the_health_timeout() {
    let r = RunSetup::start("").await;
    let sha1 = r.s.push_and_wait("develop").await["commit"]
        .as_str()
        .unwrap()
        .to_owned();
    let (port, pid, _) = r.route("staging").unwrap();
    r.commit(
        "Crashes at start",
        &[(
            "app.py",
            "import sys\nprint('no config', file=sys.stderr)\nsys.exit(3)\n",
        )],
    );
    let crashed = r.s.push_and_wait("develop").await;
    assert_eq!(crashed["status"], "failed", "{crashed}");
    assert!(
        crashed["reason"]
            .as_str()
            .unwrap()
            .contains("exited before it answered"),
        "{crashed}"
    );
    assert_eq!(r.route("staging").map(|r| (r.0, r.1)), Some((port, pid)));
    assert_eq!(serves(port), Some(sha1));
    let log = std::fs::read_to_string(r.state.join("app-logs/shop/staging.log")).unwrap();
    assert!(
        log.contains("no config"),
        "the app's stderr is in its log: {log}"
    );
    r.stop().await;
}
