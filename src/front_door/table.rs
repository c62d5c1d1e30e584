//! The route table the front door follows: the config (hosts, what each environment
//! serves) and the ports `stagehand serve` publishes in `<state_dir>/routes.json`,
//! re-read when either file changes. A read that fails keeps the last good table, so
//! the front door goes on serving while `serve` is stopped, restarting or mid-write.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::config::{self, Config};
use crate::core::hosts::HostMatch;
use crate::core::ids::{AppName, EnvironmentName};
use crate::layout::EnvironmentDir;

use super::in_flight::Publisher;

/// How often the files are checked for a change.
const POLL: Duration = Duration::from_millis(200);

/// Where one environment's traffic goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Its live app process.
    Port(u16),
    /// Its live release's static directory (`current/<static>`).
    Dir(PathBuf),
}

/// One config and one reading of `routes.json`.
#[derive(Debug)]
pub struct Snapshot {
    pub config: Config,
    ports: HashMap<(String, String), u16>,
}

/// The reader's view of `routes.json` (written by `supervisor::routes`).
#[derive(Deserialize, Default)]
struct RoutesFile {
    #[serde(default)]
    apps: BTreeMap<String, BTreeMap<String, PortEntry>>,
}

#[derive(Deserialize)]
struct PortEntry {
    port: u16,
}

/// Blocking: reads one small file. A missing file is an empty table (nothing runs yet).
fn read_ports(state_dir: &Path) -> std::io::Result<HashMap<(String, String), u16>> {
    let text = match std::fs::read(crate::front_door::routes_file::path(state_dir)) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(e),
    };
    let file: RoutesFile = serde_json::from_slice(&text).map_err(std::io::Error::other)?;
    Ok(file
        .apps
        .into_iter()
        .flat_map(|(app, envs)| {
            envs.into_iter()
                .map(move |(env, entry)| ((app.clone(), env), entry.port))
        })
        .collect())
}

impl Snapshot {
    /// Blocking.
    pub fn read(config: Config) -> std::io::Result<Snapshot> {
        let ports = read_ports(&config.server.state_dir)?;
        Ok(Snapshot { config, ports })
    }

    /// Whether [`Snapshot::target`] looks at the disk for `found` (a static
    /// environment); an app process's port is in memory.
    pub fn target_touches_disk(&self, found: &HostMatch) -> bool {
        self.config
            .apps
            .get(&found.app)
            .and_then(|app| app.environment(&found.configured))
            .is_some_and(|env| env.run.is_none())
    }

    /// The live port of `found`, an environment that `run`s; `None` for any other.
    /// Never touches the disk.
    pub fn port_of(&self, found: &HostMatch) -> Option<u16> {
        let env = self
            .config
            .apps
            .get(&found.app)?
            .environment(&found.configured)?;
        env.run.as_ref()?;
        let key = (found.app.to_string(), found.environment.to_string());
        self.ports.get(&key).copied()
    }

    /// Every app port this table routes to (for the drain report).
    pub fn routed_ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self.ports.values().copied().collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    /// Where `found` goes now, or `None` when nothing of it is live. Blocking for a
    /// static environment (checks its directory exists).
    pub fn target(&self, found: &HostMatch) -> Option<Target> {
        let app = self.config.apps.get(&found.app)?;
        let env = app.environment(&found.configured)?;
        if env.run.is_some() {
            let key = (found.app.to_string(), found.environment.to_string());
            return self.ports.get(&key).copied().map(Target::Port);
        }
        let dir = env.static_dir.as_ref()?;
        let path = EnvironmentDir::new(&app.root, &found.environment)
            .current()
            .join(dir);
        path.is_dir().then_some(Target::Dir(path))
    }

    /// Every host with something behind it: fixed environments, and each temporary
    /// environment that exists now (a route, or a `current` on disk). Blocking.
    pub fn rows(&self) -> Vec<RouteRow> {
        let mut rows = Vec::new();
        for rule in self.config.hosts.rules() {
            let Some(app) = self.config.apps.get(&rule.app) else {
                continue;
            };
            let Some(env) = app.environment(&rule.environment) else {
                continue;
            };
            let names: Vec<EnvironmentName> = if env.source.is_temporary() {
                self.temporaries(&rule.app, &app.root)
            } else {
                vec![env.name.clone()]
            };
            for name in names {
                let found = HostMatch {
                    app: rule.app.clone(),
                    configured: rule.environment.clone(),
                    environment: name.clone(),
                };
                for host in self
                    .config
                    .hosts
                    .names_of(&rule.app, &rule.environment, &name)
                {
                    // A template lists every candidate; keep those it really answers.
                    if self.config.hosts.resolve(&host).as_ref() != Some(&found) {
                        continue;
                    }
                    rows.push(RouteRow {
                        host,
                        app: rule.app.clone(),
                        environment: name.clone(),
                        target: self.target(&found),
                    });
                }
            }
        }
        rows.sort_by(|a, b| a.host.cmp(&b.host));
        rows.dedup_by(|a, b| a.host == b.host);
        rows
    }

    /// Environment names of `app` that exist now: routed ones and directories in its root.
    fn temporaries(&self, app: &AppName, root: &Path) -> Vec<EnvironmentName> {
        let mut names: Vec<EnvironmentName> = self
            .ports
            .keys()
            .filter(|(a, _)| a == app.as_str())
            .filter_map(|(_, env)| EnvironmentName::parse(env).ok())
            .collect();
        if let Ok(entries) = std::fs::read_dir(root) {
            names.extend(
                entries
                    .flatten()
                    .filter(|e| e.path().join("current").exists())
                    .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                    .filter_map(|n| EnvironmentName::parse(&n).ok()),
            );
        }
        names.sort();
        names.dedup();
        names
    }
}

/// One line of `stagehand routes`.
#[derive(Debug, Clone, Serialize)]
pub struct RouteRow {
    pub host: String,
    pub app: AppName,
    pub environment: EnvironmentName,
    /// `None`: the host is known but nothing is live behind it.
    pub target: Option<Target>,
}

/// The current snapshot, swapped whole when a file changes.
#[derive(Clone)]
pub struct Shared(Arc<RwLock<Arc<Snapshot>>>);

impl Shared {
    pub fn new(snapshot: Snapshot) -> Shared {
        Shared(Arc::new(RwLock::new(Arc::new(snapshot))))
    }

    pub fn get(&self) -> Arc<Snapshot> {
        match self.0.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Runs `pick` on the current snapshot under the read lock: a request takes its
    /// route and counts itself in one step, so a drain report (taken under the write
    /// lock, [`Shared::exclusive`]) never misses it.
    pub fn route<R>(&self, pick: impl FnOnce(&Arc<Snapshot>) -> R) -> R {
        let guard = match self.0.read() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        pick(&guard)
    }

    /// Runs `look` on the current snapshot while no request is taking a route.
    pub fn exclusive<R>(&self, look: impl FnOnce(&Arc<Snapshot>) -> R) -> R {
        let guard = match self.0.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        look(&guard)
    }

    fn set(&self, snapshot: Snapshot) {
        let mut guard = match self.0.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = Arc::new(snapshot);
    }
}

/// Re-reads the config file and `routes.json` when either changes, and writes the
/// drain report (`in_flight.rs`) after each look, until dropped.
pub struct Follower {
    stop: Arc<AtomicBool>,
    report: Option<PathBuf>,
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Gone at once rather than stale in a few seconds: a drain need not wait for it.
        if let Some(path) = &self.report {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl Follower {
    /// `env`: the process environment the config is loaded with (its secrets); `None`
    /// follows `routes.json` only (the config is fixed).
    pub fn start(
        shared: Shared,
        env: Option<HashMap<String, String>>,
        mut publisher: Option<Publisher>,
    ) -> Follower {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let report = publisher.as_ref().map(|p| p.path().to_owned());
        // A plain thread: polling two small files needs no runtime, and a stuck disk
        // never stalls a request.
        std::thread::spawn(move || {
            let first = shared.get();
            let config_file = first.config.file.clone();
            let mut routes_file =
                crate::front_door::routes_file::path(&first.config.server.state_dir);
            let mut seen = (stamp(&config_file), stamp(&routes_file));
            drop(first);
            while !stopped.load(Ordering::Relaxed) {
                if let Some(publisher) = &mut publisher {
                    publisher.tick(&shared);
                }
                std::thread::sleep(POLL);
                let now = (stamp(&config_file), stamp(&routes_file));
                if now == seen {
                    continue;
                }
                let mut config = shared.get().config.clone();
                if now.0 != seen.0
                    && let Some(env) = &env
                {
                    match config::load(&config_file, env) {
                        Ok(fresh) => config = fresh,
                        Err(e) => {
                            tracing::warn!(error = %e, "config changed but does not load: keeping the last good one")
                        }
                    }
                }
                routes_file = crate::front_door::routes_file::path(&config.server.state_dir);
                match Snapshot::read(config) {
                    Ok(snapshot) => {
                        shared.set(snapshot);
                        seen = now;
                    }
                    // Read again next time: the writer renames a whole file in, so a
                    // failure is transient (or the file is broken and stays so: logged).
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read routes.json: keeping the last good routes")
                    }
                }
            }
        });
        Follower { stop, report }
    }
}

/// The table `stagehand routes` prints.
pub fn describe(rows: &[RouteRow]) -> String {
    if rows.is_empty() {
        return "no hosts: give environments `hosts = [...]` in the config\n".into();
    }
    let mut out = format!("{:<40} {:<32} {}\n", "HOST", "ENVIRONMENT", "SERVES");
    for row in rows {
        let target = match &row.target {
            Some(Target::Port(port)) => format!("127.0.0.1:{port}"),
            Some(Target::Dir(dir)) => dir.display().to_string(),
            None => "- (nothing live)".into(),
        };
        out.push_str(&format!(
            "{:<40} {:<32} {}\n",
            row.host,
            format!("{}/{}", row.app, row.environment),
            target
        ));
    }
    out
}
