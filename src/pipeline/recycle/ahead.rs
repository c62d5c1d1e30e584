//! Spares written ahead: the live tree written once more after a deploy, for the next
//! checkout to recycle while the environment has not retired a release yet (see the
//! parent module's "Spares written ahead"). One writer per `releases` directory, and
//! every checkout there stops it first.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use super::super::checkout::{self, CheckoutError, Contents};
use super::super::reaper::REMOVING_PREFIX;
use super::{SPARE_PREFIX, record};

/// `releases/.preparing-<id>`: a spare being written ahead ([`prepare_spare`]).
pub const PREPARING_PREFIX: &str = ".preparing-";

/// One environment's spare writer: at most one runs, and a checkout stops it.
#[derive(Default)]
pub(super) struct Ahead {
    pub(super) cancel: AtomicBool,
    running: Mutex<()>,
    /// Checkouts started in this `releases`: a spare asked for before the latest one
    /// would be of a tree that is no longer live.
    checkouts: AtomicU64,
}

/// Stops a spare being written ahead in `releases` (within a file; its half goes to the
/// reaper) and makes every one asked for so far do nothing: called when a checkout
/// starts there, or the environment is torn down. Blocking.
pub fn stop_spare(releases: &Path) {
    let ahead = ahead_of(releases);
    ahead.checkouts.fetch_add(1, Ordering::SeqCst);
    ahead.cancel.store(true, Ordering::SeqCst);
    drop(ahead.running.lock().unwrap_or_else(|p| p.into_inner()));
    ahead.cancel.store(false, Ordering::SeqCst);
}

/// How many checkouts have started in `releases` (in this process): what
/// [`prepare_spare`] is given, so it does nothing once another checkout has begun.
pub fn checkouts_started(releases: &Path) -> u64 {
    ahead_of(releases).checkouts.load(Ordering::SeqCst)
}

pub(super) fn ahead_of(releases: &Path) -> Arc<Ahead> {
    static AHEAD: LazyLock<Mutex<HashMap<PathBuf, Arc<Ahead>>>> = LazyLock::new(Default::default);
    let mut all = AHEAD.lock().unwrap_or_else(|p| p.into_inner());
    all.entry(releases.to_owned()).or_default().clone()
}

/// Whether `releases` holds a spare for the next checkout.
pub fn has_spare(releases: &Path) -> bool {
    fs::read_dir(releases).is_ok_and(|dir| {
        dir.filter_map(Result::ok).any(|e| {
            e.file_name()
                .as_bytes()
                .starts_with(SPARE_PREFIX.as_bytes())
        })
    })
}

/// A spare a deploy asks for as it ends ([`prepare_spare`]'s arguments), written once
/// the deploy's end is stored.
#[derive(Debug)]
pub struct SpareAhead {
    pub repo: PathBuf,
    pub commit: String,
    pub releases: PathBuf,
    pub id: String,
    pub threads: usize,
    pub contents: Contents,
    /// [`checkouts_started`] when it was asked for.
    pub after_checkouts: u64,
}

impl SpareAhead {
    /// Writes it on the blocking pool; failures are only logged (the next checkout then
    /// writes in full).
    pub fn spawn(self) {
        tokio::task::spawn_blocking(move || {
            let SpareAhead {
                repo,
                commit,
                releases,
                id,
                threads,
                contents,
                after_checkouts,
            } = self;
            let (repo, releases) = (repo.as_path(), releases.as_path());
            match prepare_spare(
                repo,
                &commit,
                releases,
                &id,
                threads,
                contents,
                after_checkouts,
            ) {
                Ok(true) => {
                    tracing::info!(releases = %releases.display(), "spare tree {id} ready for the next checkout")
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(releases = %releases.display(), "writing a spare tree: {e}")
                }
            }
        });
    }
}

/// Writes `commit`'s tree as `releases/.spare-<id>` (with its manifest) when
/// `releases` holds no spare, so the next checkout recycles instead of writing in full:
/// until an environment has retired a release (its first `keep_releases` deploys) there
/// is nothing else to recycle. Runs after a deploy has ended, in the background; a
/// checkout in the same `releases` stops it between two files (its half goes to the
/// reaper as `.removing-<id>.unfinished`), and one that started since
/// `after_checkouts` ([`checkouts_started`]) means `commit` may no longer be live: then
/// nothing is written. Returns whether a spare was made.
///
/// The spare is written from the object database like any checkout and shares no inode
/// with any release. Blocking.
pub(super) fn prepare_spare(
    repo: &Path,
    commit: &str,
    releases: &Path,
    id: &str,
    threads: usize,
    contents: Contents,
    after_checkouts: u64,
) -> Result<bool, CheckoutError> {
    let ahead = ahead_of(releases);
    let _only_one = ahead.running.lock().unwrap_or_else(|p| p.into_inner());
    let stale = ahead.checkouts.load(Ordering::SeqCst) != after_checkouts;
    if stale || has_spare(releases) || ahead.cancel.load(Ordering::SeqCst) {
        return Ok(false);
    }
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| CheckoutError::Io { path, source }
    };
    // What a crash left half-written: no process writes it now (one server per state
    // dir, one writer per `releases` in it).
    for entry in fs::read_dir(releases).map_err(io(releases))?.flatten() {
        let name = entry.file_name();
        if let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PREPARING_PREFIX)) {
            let _ = fs::rename(
                entry.path(),
                releases.join(format!("{REMOVING_PREFIX}{rest}.unfinished")),
            );
        }
    }
    let preparing = releases.join(format!("{PREPARING_PREFIX}{id}"));
    let cancel = &ahead.cancel;
    match checkout::write_tree_cancellable(repo, commit, &preparing, threads, contents, cancel) {
        Ok(_) => {}
        Err(error) => {
            if preparing.exists() {
                fs::rename(
                    &preparing,
                    releases.join(format!("{REMOVING_PREFIX}{id}.unfinished")),
                )
                .map_err(io(&preparing))?;
            }
            return match error {
                CheckoutError::Cancelled => Ok(false),
                other => Err(other),
            };
        }
    }
    // The manifest after the last write (its ctime is the trust boundary) and before
    // the spare can be seen: a spare without a manifest would be thrown away.
    record(releases, OsStr::new(id), commit)?;
    let spare = releases.join(format!("{SPARE_PREFIX}{id}"));
    fs::rename(&preparing, &spare).map_err(io(&preparing))?;
    Ok(true)
}
