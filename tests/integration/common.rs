//! Shared end-to-end harness: a real server on 127.0.0.1:0 over a real SQLite file in a
//! temp dir, and a client that signs deliveries built from `webhook-samples/`.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use serde_json::Value;
use stagehand::config::Config;
use stagehand::core::signature;
use stagehand::http::AppState;
pub use stagehand::http::intake_limits::{IntakeLimits, Limits};
use stagehand::metrics::Metrics;
use stagehand::store::Store;

pub const SECRET: &str = "It's a Secret to Everybody";
pub const TOKEN: &str = "test-api-token";

pub fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("webhook-samples")
}

pub fn sample_bytes(name: &str) -> Vec<u8> {
    let path = samples_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

pub fn sample(name: &str) -> Value {
    serde_json::from_slice(&sample_bytes(name)).unwrap()
}

/// The config every hook test starts from; `root` and `state_dir` go in the temp dir.
pub fn config_toml(dir: &Path) -> String {
    shop_toml(
        dir,
        &dir.join("repo"),
        r#"
[apps.shop.environments.production]
branch = "main"
protected = true

[apps.shop.environments.staging]
branch = "develop"

[apps.shop.environments.preview]
branch = "feature/*"
seed_from = "staging"

[apps.shop.environments.releases]
tag = "v*"
"#,
    )
}

pub struct TestServer {
    pub url: String,
    /// Holds the state dir and roots until the server is dropped.
    _dir: tempfile::TempDir,
    pub store: Store,
    pub intake: Arc<IntakeLimits>,
    handle: ServerHandle,
}

pub async fn start() -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let toml = config_toml(dir.path());
    start_with(dir, &toml).await
}

pub async fn start_with(dir: tempfile::TempDir, toml: &str) -> TestServer {
    start_with_limits(dir, toml, Limits::default()).await
}

/// [`start`] with webhook intake bounded by `limits` instead of the defaults.
pub async fn start_limited(limits: Limits) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let toml = config_toml(dir.path());
    start_with_limits(dir, &toml, limits).await
}

pub async fn start_with_limits(dir: tempfile::TempDir, toml: &str, limits: Limits) -> TestServer {
    let env: HashMap<String, String> = [
        ("SHOP_WEBHOOK_SECRET", SECRET),
        ("STAGEHAND_API_TOKEN", TOKEN),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let config = Config::from_sources(&dir.path().join("stagehand.toml"), toml, &env, &|p| {
        std::fs::read_to_string(p)
    })
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(&config.server.state_dir).unwrap();
    let store = Store::open(&config.server.state_dir.join("stagehand.db")).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let intake = Arc::new(IntakeLimits::new(limits));
    let state = AppState {
        config: stagehand::reload::LiveConfig::new(config, env),
        store: store.clone(),
        metrics: Arc::new(Metrics::default()),
        clock: stagehand::server::system_clock(),
        logs: Arc::new(stagehand::logs::LogHub::new(&dir.path().join("logs")).unwrap()),
        runner: None,
        intake: intake.clone(),
        supervisor: None,
    };
    let server = stagehand::http::server(listener, state, 1).unwrap();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    TestServer {
        url,
        _dir: dir,
        store,
        intake,
        handle,
    }
}

/// One delivery, as GitHub would send it.
pub struct Delivery {
    pub event: String,
    pub body: Vec<u8>,
    pub content_type: String,
    pub delivery_id: String,
    pub hook_id: Option<String>,
    /// `None`: sign with [`SECRET`]; `Some(None)`: no signature header.
    pub signature: Option<Option<String>>,
    pub app: String,
}

impl Delivery {
    pub fn json(event: &str, body: &Value) -> Delivery {
        Delivery::raw(event, serde_json::to_vec(body).unwrap())
    }

    pub fn raw(event: &str, body: Vec<u8>) -> Delivery {
        Delivery {
            event: event.into(),
            body,
            content_type: "application/json".into(),
            delivery_id: unique_id(),
            hook_id: Some("123456789".into()),
            signature: None,
            app: "shop".into(),
        }
    }
}

pub fn unique_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "72d3162e-cc78-11e3-81ab-{:012}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl TestServer {
    pub async fn send(&self, delivery: &Delivery) -> (u16, Value) {
        let mut req = awc::Client::default()
            .post(format!("{}/hooks/{}", self.url, delivery.app))
            .insert_header(("Content-Type", delivery.content_type.as_str()))
            .insert_header(("X-GitHub-Event", delivery.event.as_str()))
            .insert_header(("X-GitHub-Delivery", delivery.delivery_id.as_str()));
        if let Some(hook) = &delivery.hook_id {
            req = req.insert_header(("X-GitHub-Hook-ID", hook.as_str()));
        }
        let signature = match &delivery.signature {
            None => Some(signature::sign(SECRET.as_bytes(), &delivery.body)),
            Some(explicit) => explicit.clone(),
        };
        if let Some(sig) = signature {
            req = req.insert_header(("X-Hub-Signature-256", sig));
        }
        let mut resp = req.send_body(delivery.body.clone()).await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.body().await.unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// GET with the API token (or `token`).
    pub async fn get_with(&self, path: &str, token: Option<&str>) -> (u16, Value, String) {
        let mut req = awc::Client::default().get(format!("{}{}", self.url, path));
        if let Some(t) = token {
            req = req.insert_header(("Authorization", format!("Bearer {t}")));
        }
        let mut resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.body().await.unwrap();
        let text = String::from_utf8_lossy(&body).into_owned();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        )
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let (status, json, _) = self.get_with(path, Some(TOKEN)).await;
        (status, json)
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }

    /// `<state_dir>/stagehand.db` of this server.
    pub fn database(&self) -> PathBuf {
        self._dir.path().join("state/stagehand.db")
    }
}

/// Runs the git CLI in `dir`, panicking with its stderr on failure; returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=Ada",
            "-c",
            "user.email=ada@example.com",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Writes `files` (path, content), commits them on the current branch, returns the sha.
pub fn commit(repo: &Path, message: &str, files: &[(&str, &str)]) -> String {
    for (path, content) in files {
        let full = repo.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, content).unwrap();
        git(repo, &["add", path]);
    }
    git(repo, &["commit", "-q", "--allow-empty", "-m", message]);
    git(repo, &["rev-parse", "HEAD"])
}

/// A source repository with `main` and `develop`: an executable script, a symlink, and
/// a `storage/` directory that the shared link replaces.
pub fn source_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    commit(
        &repo,
        "Initial",
        &[
            ("index.html", "<h1>shop</h1>\n"),
            ("bin/hello", "#!/bin/sh\necho hello from the release\n"),
            ("storage/.gitkeep", ""),
        ],
    );
    git(&repo, &["update-index", "--chmod=+x", "bin/hello"]);
    std::os::unix::fs::symlink("index.html", repo.join("home.html")).unwrap();
    git(&repo, &["add", "home.html"]);
    git(&repo, &["commit", "-q", "-m", "Executable and symlink"]);
    git(&repo, &["branch", "develop"]);
    repo
}

/// The full stagehand (HTTP + runner) over `toml`, in `dir`.
pub struct Full {
    pub running: stagehand::server::Running,
    pub dir: tempfile::TempDir,
}

pub fn env_map(extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = [
        ("SHOP_WEBHOOK_SECRET", SECRET),
        ("STAGEHAND_API_TOKEN", TOKEN),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    if let Ok(path) = std::env::var("PATH") {
        env.insert("PATH".into(), path);
    }
    env
}

pub async fn start_full(dir: tempfile::TempDir, toml: &str) -> Full {
    start_full_env(dir, toml, &[]).await
}

pub async fn start_full_env(
    dir: tempfile::TempDir,
    toml: &str,
    extra_env: &[(&str, &str)],
) -> Full {
    let env = env_map(extra_env);
    let config = Config::from_sources(&dir.path().join("stagehand.toml"), toml, &env, &|p| {
        std::fs::read_to_string(p)
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let running =
        stagehand::server::start(config, listener, env, stagehand::server::system_clock())
            .await
            .unwrap();
    Full { running, dir }
}

impl Full {
    pub fn client(&self) -> Client {
        Client {
            url: self.running.url.clone(),
        }
    }

    pub async fn stop(self) -> tempfile::TempDir {
        self.running.stop().await.unwrap();
        self.dir
    }
}

/// Talks to a running stagehand over HTTP only (works for a child process too).
#[derive(Clone)]
pub struct Client {
    pub url: String,
}

impl Client {
    pub async fn push(&self, body: &Value) -> (u16, Value) {
        let delivery = Delivery::json("push", body);
        deliver(&self.url, &delivery).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let mut resp = awc::Client::default()
            .get(format!("{}{}", self.url, path))
            .insert_header(("Authorization", format!("Bearer {TOKEN}")))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body = resp.body().limit(64 << 20).await.unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let mut resp = awc::Client::default()
            .post(format!("{}{}", self.url, path))
            .insert_header(("Authorization", format!("Bearer {TOKEN}")))
            .send_json(body)
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body = resp.body().await.unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// Polls a deploy until it ends; panics after `secs`.
    pub async fn wait(&self, id: &Value, secs: u64) -> Value {
        let id = id.as_str().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let (status, deploy) = self.get(&format!("/api/deploys/{id}")).await;
            assert_eq!(status, 200, "{deploy}");
            let s = deploy["status"].as_str().unwrap_or_default().to_owned();
            if !["queued", "running"].contains(&s.as_str()) {
                return deploy;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "deploy {id} still {s} after {secs}s"
            );
            actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// [`Client::wait`] that also waits while the deploy is `waiting` for its checks.
    pub async fn wait_through_checks(&self, id: &Value, secs: u64) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let deploy = self.wait(id, secs).await;
            if deploy["status"] != "waiting" {
                return deploy;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "deploy {id} still waiting after {secs}s"
            );
            actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    pub async fn log(&self, id: &Value) -> String {
        let id = id.as_str().unwrap();
        let mut resp = awc::Client::default()
            .get(format!("{}/api/deploys/{id}/log", self.url))
            .insert_header(("Authorization", format!("Bearer {TOKEN}")))
            .send()
            .await
            .unwrap();
        let body = resp.body().limit(64 << 20).await.unwrap();
        String::from_utf8_lossy(&body).into_owned()
    }
}

pub async fn deliver(url: &str, delivery: &Delivery) -> (u16, Value) {
    let sig = signature::sign(SECRET.as_bytes(), &delivery.body);
    let mut resp = awc::Client::default()
        .post(format!("{url}/hooks/{}", delivery.app))
        .insert_header(("Content-Type", delivery.content_type.as_str()))
        .insert_header(("X-GitHub-Event", delivery.event.as_str()))
        .insert_header(("X-GitHub-Delivery", delivery.delivery_id.as_str()))
        .insert_header(("X-GitHub-Hook-ID", "123456789"))
        .insert_header(("X-Hub-Signature-256", sig))
        .send_body(delivery.body.clone())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.body().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// A push delivery (from `webhook-samples/push.json`) of `sha` to `git_ref`.
pub fn push_body(git_ref: &str, sha: &str) -> Value {
    let mut body = sample("push.json");
    body["ref"] = Value::String(git_ref.into());
    body["after"] = Value::String(sha.into());
    body["forced"] = Value::Bool(false);
    body["head_commit"]["id"] = Value::String(sha.into());
    body
}

/// A full stagehand over a fresh `source_repo`, with the config `toml(dir, repo)` makes.
pub struct Setup {
    pub full: Full,
    pub client: Client,
    pub repo: PathBuf,
    pub root: PathBuf,
}

impl Setup {
    pub async fn start(toml: impl FnOnce(&Path, &Path) -> String) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let repo = source_repo(dir.path());
        let root = dir.path().join("srv");
        let toml = toml(dir.path(), &repo);
        let full = start_full(dir, &toml).await;
        let client = full.client();
        Setup {
            full,
            client,
            repo,
            root,
        }
    }

    /// Pushes the head of `branch` and waits for the deploy to end.
    pub async fn push_and_wait(&self, branch: &str) -> Value {
        let sha = git(&self.repo, &["rev-parse", branch]);
        let (status, answer) = self
            .client
            .push(&push_body(&format!("refs/heads/{branch}"), &sha))
            .await;
        assert_eq!(status, 202, "{answer}");
        self.client.wait(&answer["deploy"]["id"], 60).await
    }

    /// The release `current` points at in `env`.
    pub fn live(&self, env: &str) -> Option<String> {
        std::fs::read_link(self.root.join(env).join("current"))
            .ok()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
    }

    /// The live release's commit in `env`.
    pub fn revision(&self, env: &str) -> Option<String> {
        std::fs::read_to_string(self.root.join(env).join("current/REVISION"))
            .ok()
            .map(|s| s.trim().to_owned())
    }

    /// Release directories of `env`, sorted. Removed ones (`.removing-*`, deleted in the
    /// background after their deploy) are not releases and are left out.
    pub fn releases(&self, env: &str) -> Vec<String> {
        let mut list: Vec<String> = std::fs::read_dir(self.root.join(env).join("releases"))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|name| !name.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        list.sort();
        list
    }
}

/// A config with one app, `shop`, whose state and root live in `dir` and whose repo is
/// `repo`; `rest` adds app keys and `[apps.shop.environments.*]` tables.
pub fn shop_toml(dir: &Path, repo: &Path, rest: &str) -> String {
    shop_toml_with(dir, repo, "", rest)
}

/// [`shop_toml`] with more `[server]` keys. Reconciliation is off unless `server`
/// sets `reconcile_interval`: its round at start would deploy every mapped branch
/// beside the deliveries a test sends.
pub fn shop_toml_with(dir: &Path, repo: &Path, server: &str, rest: &str) -> String {
    let reconcile = if server.contains("reconcile_interval") {
        ""
    } else {
        "reconcile_interval = \"0\"\n"
    };
    format!(
        "[server]\nstate_dir = \"{state}\"\n{reconcile}{server}\n\n[apps.shop]\nrepo = \"{repo}\"\n\
         github = \"acme/shop\"\nsecret_env = \"SHOP_WEBHOOK_SECRET\"\nroot = \"{root}\"\n{rest}\n",
        state = dir.join("state").display(),
        repo = repo.display(),
        root = dir.join("srv").display(),
    )
}

/// The build that tests of live log following use: a line, three seconds, a marker
/// file, another line.
pub const FIRST_THEN_SECOND: &str = r#"shared = ["storage/"]
build = ["echo first", "sleep 3; touch \"$STAGEHAND_SHARED_DIR/second-written\"; echo second"]
[apps.shop.environments.staging]
branch = "develop"
"#;

/// The real binary as a child process, SIGKILLed when dropped too, so a failing
/// assertion never leaves a server running after the test.
pub struct ServerProcess(pub std::process::Child);

impl ServerProcess {
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `stagehand serve --config CONFIG` with the harness's webhook secret and API token.
pub fn serve_command(config: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_stagehand"));
    command
        .args(["serve", "--config"])
        .arg(config)
        .env("SHOP_WEBHOOK_SECRET", SECRET)
        .env("STAGEHAND_API_TOKEN", TOKEN)
        .env("NO_COLOR", "1");
    command
}

/// Starts the real server and waits for its first line: the server and its URL.
pub fn spawn_server(config: &Path) -> (ServerProcess, String) {
    use std::io::BufRead;
    let mut server = ServerProcess(
        serve_command(config)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = server.0.stdout.take().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("stagehand listening on ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_owned();
    (server, url)
}
