//! stagehand under test: [`Harness`], started in process over a temp dir by
//! [`Harness::builder`], and [`ServerProcess`], the real binary as a child process.

use std::collections::HashMap;
use std::net::TcpListener;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use serde_json::Value;
use stagehand::config::Config;
use stagehand::http::AppState;
pub use stagehand::http::intake_limits::{IntakeLimits, Limits};
use stagehand::metrics::Metrics;
use stagehand::server::Running;
use stagehand::store::Store;

use super::config::{SECRET, TOKEN, config_toml, env_map, shop_toml};
use super::git::{git, source_repo};
use super::http::Client;
use super::processes::KillOnDrop;

/// What a [`Harness`] will start: a temp dir holding a fresh [`source_repo`] (`repo/`),
/// the roots (`srv/`) and the state dir (`state/`), and the config and environment for
/// stagehand. The directory exists from [`Harness::builder`] on, so a test can prepare
/// the repository or state before [`Builder::start`]; [`Harness::stop`] gives the
/// builder back, to look at what stayed on disk or to start again over it.
pub struct Builder {
    /// First, so it drops first: app processes die before their directory goes.
    _processes: KillOnDrop,
    dir: tempfile::TempDir,
    repo: PathBuf,
    toml: String,
    env: Vec<(String, String)>,
    runner: bool,
    limits: Option<Limits>,
}

impl Builder {
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The source repository stagehand deploys from.
    pub fn repo(&self) -> &Path {
        &self.repo
    }

    /// Where the app's environments live (`root` in the config).
    pub fn root(&self) -> PathBuf {
        self.dir().join("srv")
    }

    /// The config `toml(dir, repo)` makes (called now, so it may also prepare the
    /// repository). Without one: [`config_toml`].
    pub fn config(mut self, toml: impl FnOnce(&Path, &Path) -> String) -> Builder {
        self.toml = toml(self.dir.path(), &self.repo);
        self
    }

    /// `toml` as the config.
    pub fn toml(mut self, toml: &str) -> Builder {
        self.toml = toml.to_owned();
        self
    }

    /// The config [`shop_toml`] makes with `rest` after the `[apps.shop]` keys.
    pub fn app(self, rest: &str) -> Builder {
        self.config(|dir, repo| shop_toml(dir, repo, rest))
    }

    /// One more variable in stagehand's process environment (beside the secret, the
    /// token and PATH).
    pub fn env(mut self, name: &str, value: &str) -> Builder {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Only the HTTP edge over the real store: no runner, recovery or supervisor, so a
    /// deploy stays `queued` and a test sees exactly what intake recorded.
    pub fn without_runner(mut self) -> Builder {
        self.runner = false;
        self
    }

    /// Webhook intake bounded by `limits` instead of the defaults; only with
    /// [`Builder::without_runner`] (`server::start` always uses the defaults).
    pub fn intake_limits(mut self, limits: Limits) -> Builder {
        self.limits = Some(limits);
        self
    }

    /// Writes the config for the real binary to `<dir>/stagehand.toml` and returns its
    /// path: `listen` is 127.0.0.1:0 unless the config names one. ([`Builder::start`]
    /// writes the config there as given: the in-process server binds its own socket.)
    pub fn write_config(&self) -> PathBuf {
        let names_listen = self
            .toml
            .lines()
            .any(|l| l.trim_start().starts_with("listen"));
        if names_listen {
            self.write(&self.toml)
        } else {
            self.write(
                &self
                    .toml
                    .replacen("[server]\n", "[server]\nlisten = \"127.0.0.1:0\"\n", 1),
            )
        }
    }

    fn write(&self, toml: &str) -> PathBuf {
        let config_file = self.dir.path().join("stagehand.toml");
        std::fs::write(&config_file, toml).unwrap();
        config_file
    }

    /// The real `stagehand serve` over the written config: the process (killed when
    /// dropped) and its client.
    pub fn spawn(&self) -> (ServerProcess, Client) {
        spawn_server(&self.write_config())
    }

    /// Writes the config to `<dir>/stagehand.toml` (for commands a test runs beside the
    /// harness) and starts stagehand in this process on 127.0.0.1:0.
    pub async fn start(self) -> Harness {
        let config_file = self.write(&self.toml);
        let toml = self.toml.clone();
        let extra: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let env = env_map(&extra);
        let config =
            Config::from_sources(&config_file, &toml, &env, &|p| std::fs::read_to_string(p))
                .unwrap_or_else(|e| panic!("{e}"));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (server, state) = if self.runner {
            assert!(self.limits.is_none(), "intake_limits is for without_runner");
            let running =
                stagehand::server::start(config, listener, env, stagehand::server::system_clock())
                    .await
                    .unwrap();
            let state = running.state.clone();
            (Server::Full(running), state)
        } else {
            let limits = self.limits.clone().unwrap_or_default();
            start_http_only(config, listener, env, self.dir.path(), limits)
        };
        Harness {
            client: Client { url },
            repo: self.repo.clone(),
            root: self.root(),
            store: state.store.clone(),
            intake: state.intake.clone(),
            server,
            builder: self,
        }
    }
}

/// The HTTP edge as `server::start` builds it, without the runner and its tasks.
fn start_http_only(
    config: Config,
    listener: TcpListener,
    env: HashMap<String, String>,
    dir: &Path,
    limits: Limits,
) -> (Server, AppState) {
    std::fs::create_dir_all(&config.server.state_dir).unwrap();
    let store = Store::open(&config.server.state_dir.join("stagehand.db")).unwrap();
    let state = AppState {
        config: stagehand::reload::LiveConfig::new(config, env),
        store,
        metrics: Arc::new(Metrics::default()),
        clock: stagehand::server::system_clock(),
        logs: Arc::new(stagehand::logs::LogHub::new(&dir.join("logs")).unwrap()),
        runner: None,
        intake: Arc::new(IntakeLimits::new(limits)),
        supervisor: None,
    };
    let server = stagehand::http::server(listener, state.clone(), 1).unwrap();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (Server::HttpOnly(handle), state)
}

enum Server {
    Full(Running),
    HttpOnly(ServerHandle),
}

/// stagehand running in this process over a temp dir, with its [`Client`] (which it
/// derefs to, so `harness.get(..)` and `harness.push(..)` talk to it).
pub struct Harness {
    client: Client,
    /// The source repository (`<dir>/repo`).
    pub repo: PathBuf,
    /// The app's root (`<dir>/srv`): environment E lives in `root/E`.
    pub root: PathBuf,
    /// The server's own store (the same SQLite file), to check what it recorded.
    pub store: Store,
    /// The server's webhook intake bounds, to watch the bytes it holds.
    pub intake: Arc<IntakeLimits>,
    server: Server,
    builder: Builder,
}

impl Deref for Harness {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Harness {
    /// A temp dir with a fresh source repository; see [`Builder`].
    pub fn builder() -> Builder {
        let dir = tempfile::tempdir().unwrap();
        let repo = source_repo(dir.path());
        Builder {
            _processes: KillOnDrop {
                state: dir.path().join("state"),
                root: dir.path().join("srv"),
            },
            toml: config_toml(dir.path()),
            dir,
            repo,
            env: Vec::new(),
            runner: true,
            limits: None,
        }
    }

    /// A client of this server, to move into a task.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The temp dir everything lives in.
    pub fn dir(&self) -> &Path {
        self.builder.dir()
    }

    /// `<dir>/stagehand.toml`, the config this server started with.
    pub fn config_file(&self) -> PathBuf {
        self.dir().join("stagehand.toml")
    }

    /// `<state_dir>/stagehand.db` of this server.
    pub fn database(&self) -> PathBuf {
        self.dir().join("state/stagehand.db")
    }

    /// Stops the server (waiting for the runner's work to end) and gives back the
    /// builder, whose temp dir is deleted only when it is dropped.
    pub async fn stop(self) -> Builder {
        match self.server {
            Server::Full(running) => running.stop().await.unwrap(),
            Server::HttpOnly(handle) => handle.stop(false).await,
        }
        self.builder
    }

    /// Pushes the head of `branch` and waits for the deploy to end.
    pub async fn push_and_wait(&self, branch: &str) -> Value {
        let sha = git(&self.repo, &["rev-parse", branch]);
        let (status, answer) = self
            .push(&super::http::push_body(
                &format!("refs/heads/{branch}"),
                &sha,
            ))
            .await;
        assert_eq!(status, 202, "{answer}");
        self.wait(&answer["deploy"]["id"], 60).await
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

/// Starts the real server and waits for its first line: the server and its client.
pub fn spawn_server(config: &Path) -> (ServerProcess, Client) {
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
    (server, Client { url })
}
