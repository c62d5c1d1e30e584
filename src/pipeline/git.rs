//! The app's bare mirror at `<state_dir>/mirrors/<app>.git`: fetching pushed refs into
//! it, and reading commits and ancestry out of it.
//!
//! Two fetchers share the mirror. By default (`fetch_with = "auto"`) libgit2, in
//! process, fetches `https://`, and the `git` CLI fetches the rest:
//! - SSH: libgit2's SSH ignores `~/.ssh/config` (aliases, ports, IdentityFile) and has
//!   looped on failing credentials before (cargo#2845), which is why cargo grew
//!   `net.git-fetch-with-cli`; this build does not even link libssh2.
//! - Local paths and `file://`: libgit2's local transport builds the pack itself,
//!   deltas and zlib over every object; measured here on a 5,000-file repository its
//!   first fetch took 4.2 s against 0.37 s for `git fetch` (bench/README.md).
//!
//! `fetch_with = "git2"` keeps everything but SSH in process; `"git"` uses the CLI for all.
//!
//! # The first fetch
//!
//! A big history's first fetch is seconds (symfony: 26–40 s for the full pack, 2–3 s for
//! the commits alone) that the first deploy does not need: nothing compares the pushed
//! commit with an older one while the environment has no live release. So a push's first
//! fetch into an empty mirror is `--depth=1` with every file ([`Mirror::fetch_tip`], what
//! `git clone --depth 1` fetches: 2.8–4.6 s), and the history follows in the background
//! once the deploy has ended (`partial::Deepen`). Until then the mirror is shallow, and
//! every fetch of a shallow mirror adds `--unshallow`: the next deploy, a reconciliation
//! round, or the background fetch, whichever takes the mirror's fetch lock first, makes
//! it whole, and nothing reads history without fetching first. Shallow mirrors are made
//! and deepened by the git CLI only, whatever `fetch_with` says; if that fails (no CLI,
//! a server without shallow support) the deploy fetches with history as before.
//!
//! A reconciliation round at start into an empty mirror fetches the heads it follows the
//! same way when no environment of the app has a live release and none follows tags
//! (choosing among tags reads history), and deploys that find the mirror shallow and
//! have nothing live fetch their tip by depth too, so a first start and a first push do
//! not wait for the history. The depth decision is taken again under the fetch lock: a
//! fetch that waited for one with history fetches as usual.
//!
//! All libgit2 calls block: callers run them on the blocking pool, one `Repository`
//! handle per call (it is `Send` but not `Sync`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use git2::{CredentialType, FetchOptions, RemoteCallbacks, Repository};

use crate::config::FetchWith;
use crate::core::duration::format_limit;
use crate::core::ids::{AppName, CommitSha};
use crate::core::reconcile::RemoteRefs;

use super::partial;

mod remote;
pub use remote::{Remote, is_local_url, is_ssh_url};

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot open or create the mirror {path}: {source}")]
    Mirror { path: PathBuf, source: git2::Error },
    #[error("fetching {refspecs} from {url}: {detail}")]
    Fetch {
        url: String,
        refspecs: String,
        detail: String,
    },
    #[error("{what} is not in the repository after fetching: {detail}")]
    Missing { what: String, detail: String },
    #[error("reading the repository: {0}")]
    Read(#[from] git2::Error),
}

fn unix_millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

#[derive(Debug, Clone)]
pub struct Mirror {
    pub path: PathBuf,
}

/// How many credential attempts before giving up (libgit2 asks again on each failure).
const MAX_CREDENTIAL_ATTEMPTS: usize = 3;
/// Packs pile up because libgit2 never repacks; past this many the mirror is repacked.
const REPACK_AFTER_PACKS: usize = 20;

impl Mirror {
    pub fn new(state_dir: &Path, app: &AppName) -> Mirror {
        Mirror {
            path: state_dir.join("mirrors").join(format!("{app}.git")),
        }
    }

    /// Opens the mirror, creating an empty bare repository on first use. Blocking.
    ///
    /// A directory that is not a repository (what a crash during creation left, before
    /// creation was atomic) is moved aside to `.<app>.git.broken-<ms>` and the mirror
    /// made again: a mirror holds nothing the remote does not, and keeping it would fail
    /// every deploy of the app.
    pub fn open(&self) -> Result<Repository, GitError> {
        let err = |source| GitError::Mirror {
            path: self.path.clone(),
            source,
        };
        match Repository::open_bare(&self.path) {
            Ok(repo) => return Ok(repo),
            Err(_) if !self.path.exists() => {}
            Err(e) if e.code() == git2::ErrorCode::NotFound => {
                let aside = self.sibling("broken", &format!("{}", unix_millis()));
                std::fs::rename(&self.path, &aside).map_err(|io| {
                    err(git2::Error::from_str(&format!(
                        "{} and moving it aside failed: {io}",
                        e.message()
                    )))
                })?;
                tracing::warn!(mirror = %self.path.display(), moved_to = %aside.display(),
                    "the mirror was not a repository (left half-made by a crash?): made again");
            }
            Err(e) => return Err(err(e)),
        }
        self.create().map_err(err)
    }

    /// Made under a temporary name and renamed into place, so a crash during creation
    /// never leaves a half-made mirror where the real one belongs. Two first deploys of
    /// one app may race here: the loser finds the winner's mirror and uses it.
    fn create(&self) -> Result<Repository, git2::Error> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tmp = self.sibling("tmp", &format!("{}-{n}", std::process::id()));
        if let Some(parent) = tmp.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                git2::Error::from_str(&format!("creating {}: {e}", parent.display()))
            })?;
        }
        drop(Repository::init_bare(&tmp)?);
        if let Err(e) = std::fs::rename(&tmp, &self.path) {
            let _ = std::fs::remove_dir_all(&tmp);
            if !self.path.exists() {
                return Err(git2::Error::from_str(&format!(
                    "moving the new mirror into {}: {e}",
                    self.path.display()
                )));
            }
        }
        Repository::open_bare(&self.path)
    }

    /// Deletes the `*.lock` files a killed process left in the mirror (top level and
    /// `refs/`): libgit2 never breaks a lock, so one left by a fetch killed while it
    /// updated a ref failed every later fetch of that ref. Only for start-up, before
    /// this process fetches anything: one stagehand owns a state_dir, so a lock then is
    /// a dead process's. Returns the files removed. Blocking.
    pub fn remove_stale_locks(&self) -> std::io::Result<Vec<PathBuf>> {
        fn walk(dir: &Path, deep: bool, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
            let entries = match std::fs::read_dir(dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                let kind = entry.file_type()?;
                let path = entry.path();
                if kind.is_dir() && deep {
                    walk(&path, true, found)?;
                } else if kind.is_file() && path.extension().is_some_and(|x| x == "lock") {
                    std::fs::remove_file(&path)?;
                    found.push(path);
                }
            }
            Ok(())
        }
        let mut found = Vec::new();
        walk(&self.path, false, &mut found)?;
        walk(&self.path.join("refs"), true, &mut found)?;
        Ok(found)
    }

    /// `<mirrors>/.<app>.git.<what>-<suffix>`: hidden beside the mirror.
    fn sibling(&self, what: &str, suffix: &str) -> PathBuf {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.path.with_file_name(format!(".{name}.{what}-{suffix}"))
    }

    /// Fetches `refspecs` (`+refs/heads/x:refs/heads/x`) from the remote into the mirror.
    pub async fn fetch(
        &self,
        remote: &Remote,
        refspecs: Vec<String>,
        timeout: Duration,
    ) -> Result<(), GitError> {
        self.fetch_with(remote, refspecs, timeout, Fetch::History)
            .await
    }

    /// A first fetch into a mirror without history (the module docs' "The first fetch"):
    /// the refspecs' commits only, with every tree and blob, no history; the mirror is
    /// shallow until a fetch with history deepens it ([`Mirror::is_shallow`]). When
    /// another fetch brought the history while this one waited for it, an ordinary fetch
    /// instead. True when the mirror was left shallow.
    pub async fn fetch_tip(
        &self,
        remote: &Remote,
        refspecs: Vec<String>,
        timeout: Duration,
    ) -> Result<bool, GitError> {
        self.fetch_with(remote, refspecs, timeout, Fetch::Tip)
            .await?;
        Ok(self.is_shallow())
    }

    /// [`Mirror::fetch`], and refs under the refspecs' destinations that the remote no
    /// longer has are deleted: afterwards the mirror's refs there are the remote's.
    pub async fn fetch_pruning(
        &self,
        remote: &Remote,
        refspecs: Vec<String>,
        timeout: Duration,
    ) -> Result<(), GitError> {
        self.fetch_with(remote, refspecs, timeout, Fetch::Pruning)
            .await
    }

    /// Whether the mirror lacks history: a first fetch ([`Mirror::fetch_tip`]) whose
    /// deepening has not run yet. Every fetch with history deepens it.
    pub fn is_shallow(&self) -> bool {
        self.path.join("shallow").exists()
    }

    /// Whether a fetch without history ([`Mirror::fetch_tip`]) is all this mirror has
    /// had: it is empty, or shallow (its history not fetched yet). Blocking.
    pub fn holds_no_history(&self) -> bool {
        self.is_shallow() || self.is_empty()
    }

    /// Whether the mirror has never been fetched into (no refs, not shallow). Blocking.
    pub fn is_empty(&self) -> bool {
        let no_refs = self
            .open()
            .and_then(|repo| Ok(repo.references()?.next().is_none()))
            .unwrap_or(false);
        no_refs && !self.is_shallow()
    }

    async fn fetch_with(
        &self,
        remote: &Remote,
        refspecs: Vec<String>,
        timeout: Duration,
        kind: Fetch,
    ) -> Result<(), GitError> {
        // Two fetches updating one ref at once make the loser fail on git's ref lock
        // (a deploy and a reconciliation round, or two environments of one app): one
        // fetch per mirror at a time. Waiting counts against neither's timeout.
        let lock = fetch_lock(&self.path);
        let _guard = lock.lock().await;
        let mirror = self.clone();
        // Decided before the lock was ours: a fetch that ran meanwhile (a reconciliation
        // round at start) may have brought the commit, and asked again for it by depth,
        // git would send nothing (it has the commit) and leave its files missing.
        let kind = match kind {
            Fetch::Tip => {
                let m = mirror.clone();
                match tokio::task::spawn_blocking(move || m.holds_no_history()).await {
                    Ok(true) => Fetch::Tip,
                    _ => Fetch::History,
                }
            }
            other => other,
        };
        let fetch_err = |detail: String| GitError::Fetch {
            url: remote.url.clone(),
            refspecs: refspecs.join(" "),
            detail,
        };
        // Shallow mirrors are made and deepened by the git CLI only: whether libgit2 can
        // follow a shallow boundary is not something a deploy should depend on.
        let with = match remote.with {
            _ if kind == Fetch::Tip || self.is_shallow() => FetchWith::GitCli,
            with => with,
        };
        let result = match with {
            FetchWith::Git2 | FetchWith::Auto => {
                let remote = remote.clone();
                let specs = refspecs.clone();
                let prune = kind == Fetch::Pruning;
                let work =
                    tokio::task::spawn_blocking(move || mirror.fetch_git2(&remote, &specs, prune));
                match tokio::time::timeout(timeout, work).await {
                    Ok(Ok(result)) => result,
                    Ok(Err(join)) => Err(fetch_err(join.to_string())),
                    Err(_) => Err(fetch_err(format!(
                        "timed out after {}",
                        format_limit(timeout)
                    ))),
                }
            }
            FetchWith::GitCli => {
                let mirror = self.clone();
                tokio::task::spawn_blocking(move || mirror.open().map(drop))
                    .await
                    .map_err(|e| fetch_err(e.to_string()))??;
                self.fetch_cli(remote, &refspecs, timeout, kind)
                    .await
                    .map_err(fetch_err)
            }
        };
        if result.is_ok() {
            let (mirror, remote) = (self.clone(), remote.clone());
            let _ = tokio::task::spawn_blocking(move || mirror.repack_if_needed(&remote)).await;
        }
        result
    }

    fn fetch_git2(
        &self,
        remote: &Remote,
        refspecs: &[String],
        prune: bool,
    ) -> Result<(), GitError> {
        let repo = self.open()?;
        let mut callbacks = RemoteCallbacks::new();
        let mut attempts = 0;
        let token = remote.token.clone();
        callbacks.credentials(move |_url, username, allowed| {
            attempts += 1;
            if attempts > MAX_CREDENTIAL_ATTEMPTS {
                return Err(git2::Error::from_str(
                    "authentication failed: check token_env",
                ));
            }
            if allowed.contains(CredentialType::USER_PASS_PLAINTEXT)
                && let Some(token) = &token
            {
                return git2::Cred::userpass_plaintext(
                    username.unwrap_or("x-access-token"),
                    token.expose(),
                );
            }
            if allowed.contains(CredentialType::DEFAULT) {
                return git2::Cred::default();
            }
            Err(git2::Error::from_str(
                "the repository needs credentials: set token_env",
            ))
        });
        let mut options = FetchOptions::new();
        options.remote_callbacks(callbacks);
        options.download_tags(git2::AutotagOption::None);
        if prune {
            options.prune(git2::FetchPrune::On);
        }
        // An anonymous remote: the URL comes from the config each time, so a changed
        // `repo` takes effect without editing the mirror's own config.
        let mut git_remote = repo.remote_anonymous(&remote.url)?;
        git_remote
            .fetch(refspecs, Some(&mut options), None)
            .map_err(|e| GitError::Fetch {
                url: remote.url.clone(),
                refspecs: refspecs.join(" "),
                detail: e.message().to_owned(),
            })
    }

    /// `git` on this mirror, with the remote's credentials in the environment and, for a
    /// treeless mirror, the promisor settings (`partial::promisor_args`).
    pub(crate) fn git_command(&self, remote: &Remote) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("git");
        if remote.treeless {
            cmd.args(partial::promisor_args(&remote.url));
        }
        cmd.arg("--git-dir")
            .arg(&self.path)
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        if let Some(key) = &remote.ssh_key {
            cmd.env(
                "GIT_SSH_COMMAND",
                format!(
                    "ssh -i '{}' -o IdentitiesOnly=yes -o BatchMode=yes",
                    key.display()
                ),
            );
        } else {
            cmd.env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
        }
        if let Some(token) = &remote.token {
            // The token travels in the environment, never in argv (visible in `ps`).
            cmd.env("STAGEHAND_GIT_TOKEN", token.expose())
                .env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", "credential.helper")
                .env(
                    "GIT_CONFIG_VALUE_0",
                    "!f() { echo username=x-access-token; echo \"password=$STAGEHAND_GIT_TOKEN\"; }; f",
                );
        }
        cmd
    }

    async fn fetch_cli(
        &self,
        remote: &Remote,
        refspecs: &[String],
        timeout: Duration,
        kind: Fetch,
    ) -> Result<(), String> {
        let mut cmd = self.git_command(remote);
        cmd.args(["fetch", "--quiet", "--no-tags", "--no-write-fetch-head"])
            .args((kind == Fetch::Pruning).then_some("--prune"));
        if kind == Fetch::Tip {
            // Everything of the tip in one pack, as `git clone --depth 1` gets it.
            cmd.arg("--depth=1");
        } else if self.is_shallow() {
            // The history a first fetch left out: whichever fetch comes next (the
            // deepening after that deploy, the next deploy's, a reconciliation round)
            // makes the mirror whole before anything reads it.
            cmd.arg("--unshallow");
        }
        if remote.treeless && kind == Fetch::Tip {
            cmd.args(["--no-filter", "origin"]);
        } else if remote.treeless {
            cmd.arg(format!("--filter={}", partial::FILTER))
                .arg("origin");
        } else {
            cmd.arg("--").arg(&remote.url);
        }
        cmd.args(refspecs);
        let output = tokio::time::timeout(timeout, cmd.output())
            .await
            .map_err(|_| format!("git fetch timed out after {}", format_limit(timeout)))?
            .map_err(|e| format!("cannot run git: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "git fetch failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }

    fn repack_if_needed(&self, remote: &Remote) {
        let packs = std::fs::read_dir(self.path.join("objects/pack"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.path().extension().is_some_and(|x| x == "pack"))
                    .count()
            })
            .unwrap_or(0);
        if packs > REPACK_AFTER_PACKS {
            let promisor = if remote.treeless {
                partial::promisor_args(&remote.url)
            } else {
                Vec::new()
            };
            let status = std::process::Command::new("git")
                .args(promisor)
                .arg("--git-dir")
                .arg(&self.path)
                .args(["repack", "-adq"])
                .status();
            if !status.is_ok_and(|s| s.success()) {
                tracing::warn!(mirror = %self.path.display(), "git repack failed; the mirror keeps {packs} packs");
            }
        }
    }

    /// The commit `spec` (a sha, a full ref, or a short branch/tag name) names, peeling
    /// annotated tags, and the full ref it was found under (`spec` itself for a sha).
    /// Blocking.
    pub fn resolve_commit(&self, spec: &str) -> Result<(CommitSha, String), GitError> {
        let repo = self.open()?;
        let candidates = [
            spec.to_owned(),
            format!("refs/heads/{spec}"),
            format!("refs/tags/{spec}"),
        ];
        let mut last = None;
        for candidate in &candidates {
            match repo
                .revparse_single(candidate)
                .and_then(|o| o.peel_to_commit())
            {
                Ok(commit) => {
                    // An object id is always a commit id's text; the error is for form.
                    let sha = CommitSha::parse(&commit.id().to_string()).map_err(|e| {
                        GitError::Missing {
                            what: format!("{spec:?}"),
                            detail: e.to_string(),
                        }
                    })?;
                    return Ok((sha, candidate.clone()));
                }
                Err(e) => last = Some(e),
            }
        }
        Err(GitError::Missing {
            what: format!("{spec:?}"),
            detail: last.map(|e| e.message().to_owned()).unwrap_or_default(),
        })
    }

    /// Whether `ancestor` is reachable from `descendant` (and differs from it). Blocking.
    pub fn is_ancestor(&self, ancestor: &str, descendant: &str) -> Result<bool, GitError> {
        let repo = self.open()?;
        let a = git2::Oid::from_str(ancestor)?;
        let d = git2::Oid::from_str(descendant)?;
        if repo.find_commit(d).is_err() {
            return Ok(false);
        }
        Ok(repo.graph_descendant_of(d, a)?)
    }

    /// Every branch and tag in the mirror and the commit it points at (annotated tags
    /// peeled). Names that are not UTF-8 are left out: no configured pattern can name
    /// them. Blocking.
    pub fn refs(&self) -> Result<RemoteRefs, GitError> {
        let repo = self.open()?;
        let mut refs = RemoteRefs::default();
        for reference in repo.references()? {
            let reference = reference?;
            let Ok(name) = reference.name() else {
                continue;
            };
            let (map, short) = if let Some(b) = name.strip_prefix("refs/heads/") {
                (&mut refs.branches, b)
            } else if let Some(t) = name.strip_prefix("refs/tags/") {
                (&mut refs.tags, t)
            } else {
                continue;
            };
            if let Ok(commit) = reference.peel_to_commit() {
                map.insert(short.to_owned(), commit.id().to_string());
            }
        }
        Ok(refs)
    }

    /// A commit's full message (lossy UTF-8). Blocking.
    pub fn message(&self, commit: &str) -> Result<String, GitError> {
        let repo = self.open()?;
        let c = repo.find_commit(git2::Oid::from_str(commit)?)?;
        Ok(String::from_utf8_lossy(c.message_bytes()).into_owned())
    }

    /// One line describing a commit, for the log: `3f2a1c9 Add cart totals (Ada)`.
    pub fn describe(&self, commit: &str) -> Result<String, GitError> {
        let (summary, author) = self.commit_details(commit)?;
        Ok(format!(
            "{} {summary} ({author})",
            &commit[..7.min(commit.len())]
        ))
    }

    /// A commit's message (first line) and author's name. Blocking.
    pub fn commit_details(&self, commit: &str) -> Result<(String, String), GitError> {
        let repo = self.open()?;
        let c = repo.find_commit(git2::Oid::from_str(commit)?)?;
        let summary = String::from_utf8_lossy(c.summary_bytes().unwrap_or_default()).into_owned();
        let author = String::from_utf8_lossy(c.author().name_bytes()).into_owned();
        Ok((summary, author))
    }
}

/// What a fetch asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fetch {
    /// The refspecs with their history (deepening a shallow mirror).
    History,
    /// The same, and refs the remote no longer has are deleted.
    Pruning,
    /// A first fetch: the tips only (`--depth=1`), with their files.
    Tip,
}

/// One async lock per mirror path, for [`Mirror::fetch_with`].
fn fetch_lock(path: &Path) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: LazyLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> =
        LazyLock::new(Default::default);
    let mut locks = LOCKS.lock().unwrap_or_else(|p| p.into_inner());
    locks.entry(path.to_owned()).or_default().clone()
}

#[cfg(test)]
mod tests;
