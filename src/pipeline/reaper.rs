//! Deletes removed releases (`releases/.removing-<id>`) in the background, off every
//! deploy's critical path.
//!
//! # Why
//!
//! Measured on this project's ext4 disk (mounted with `discard`, as many cloud disks
//! are): deleting a 13,000-file release took ~16 s of wall time for 0.3 s of CPU, and a
//! checkout written right after (or during) it ran 4–6× slower than on a quiet disk,
//! because the unlinks and their discards hold up the journal the new files go through
//! (figures in bench/README.md). Deleting old releases inside `cleanup` therefore made
//! the deploy itself slower, and the next deploy's checkout slower again.
//!
//! # What this module owns
//!
//! - One process-wide deleter thread, started on first use, fed by [`sweep`]: every
//!   `.removing-*` directory of a releases directory is queued (once) and deleted.
//! - [`busy`]: a guard a checkout holds while it writes; the deleter waits while any is
//!   held, and between batches of [`BATCH`] unlinks it checks again and sleeps [`PAUSE`],
//!   so a deploy that starts mid-deletion finds the disk to itself within one batch.
//!
//! Renaming a release to `.removing-<id>` (which takes it out of every listing) stays
//! with `releases.rs`; a crash mid-deletion leaves such a directory, which the next
//! [`sweep`] (every cleanup, and recovery at start) queues again.
//!
//! Read-only directories (left by builds: composer, go modules) are made writable
//! before their entries go. Symlinks are removed, never followed.

use std::collections::{HashSet, VecDeque};
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, LazyLock, Mutex};
use std::time::Duration;

use super::recycle::{MANIFESTS, PREPARING_PREFIX, SPARE_PREFIX};

/// Unlinks between two checks for a running checkout.
pub const BATCH: usize = 256;
/// Sleep after each batch: leaves the journal room for whatever else writes.
pub const PAUSE: Duration = Duration::from_millis(5);
/// How often a deleter waiting for checkouts to end looks again.
const WAIT: Duration = Duration::from_millis(50);

/// The name prefix `releases.rs` gives a release it removes.
pub const REMOVING_PREFIX: &str = ".removing-";

static ACTIVE_CHECKOUTS: AtomicUsize = AtomicUsize::new(0);

struct Queue {
    pending: VecDeque<PathBuf>,
    /// Queued or being deleted: a sweep never queues a path twice.
    known: HashSet<PathBuf>,
    started: bool,
}

static QUEUE: LazyLock<(Mutex<Queue>, Condvar)> = LazyLock::new(|| {
    (
        Mutex::new(Queue {
            pending: VecDeque::new(),
            known: HashSet::new(),
            started: false,
        }),
        Condvar::new(),
    )
});

/// Held by a checkout while it writes a release: the deleter waits until none is held.
#[must_use = "the deleter waits only while the guard lives"]
pub struct Busy(());

/// Marks a checkout as running until the returned guard is dropped.
pub fn busy() -> Busy {
    ACTIVE_CHECKOUTS.fetch_add(1, Ordering::SeqCst);
    Busy(())
}

impl Drop for Busy {
    fn drop(&mut self) {
        ACTIVE_CHECKOUTS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Queues every `.removing-*` directory in `releases` for deletion and returns how
/// many were new to the queue. Cheap (a `read_dir` or two); the deletion happens later
/// on the deleter thread.
///
/// One of them is kept instead: when `releases` holds no `.spare-*` directory, the
/// newest `.removing-<id>` that is not already being deleted and has a checkout manifest
/// (`.trees/<id>`) is renamed `.spare-<id>`, for the next checkout to recycle (see
/// `recycle.rs`: on ext4 that saves creating, and deleting, every file of a release).
/// Manifests whose release is gone are deleted.
pub fn sweep(releases: &Path) -> io::Result<usize> {
    let dir = match fs::read_dir(releases) {
        Ok(dir) => dir,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    let mut names = HashSet::new();
    let mut has_spare = false;
    for entry in dir {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if name.starts_with(REMOVING_PREFIX) {
            found.push(entry.path());
        }
        has_spare |= name.starts_with(SPARE_PREFIX);
        names.insert(name);
    }
    found.sort();
    let manifests = releases.join(MANIFESTS);
    let (lock, wake) = &*QUEUE;
    let mut queue = lock.lock().unwrap_or_else(|p| p.into_inner());
    if !has_spare {
        let candidate = found.iter().rposition(|path| {
            !queue.known.contains(path)
                && released_id(path).is_some_and(|id| manifests.join(id).is_file())
        });
        if let Some(at) = candidate {
            let path = found.remove(at);
            if let Some(id) = released_id(&path) {
                let spare = releases.join(format!("{SPARE_PREFIX}{id}"));
                // Not fatal: without a spare the next checkout writes in full.
                if fs::rename(&path, &spare).is_err() {
                    found.push(path);
                }
            }
        }
    }
    if let Ok(listed) = fs::read_dir(&manifests) {
        for entry in listed.filter_map(Result::ok) {
            let Some(id) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let alive = [
                id.clone(),
                format!("{REMOVING_PREFIX}{id}"),
                format!("{SPARE_PREFIX}{id}"),
                format!("{PREPARING_PREFIX}{id}"),
            ];
            if !alive.iter().any(|name| names.contains(name)) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    let mut added = 0;
    for path in found {
        if queue.known.insert(path.clone()) {
            queue.pending.push_back(path);
            added += 1;
        }
    }
    if added > 0 && !queue.started {
        queue.started = true;
        let spawned = std::thread::Builder::new()
            .name("stagehand-reaper".into())
            .spawn(run);
        if let Err(error) = spawned {
            // Nothing is lost: the directories stay hidden and the next sweep retries.
            queue.started = false;
            queue.known.clear();
            queue.pending.clear();
            return Err(error);
        }
    }
    wake.notify_one();
    Ok(added)
}

/// `<id>` of `releases/.removing-<id>`.
fn released_id(path: &Path) -> Option<&str> {
    path.file_name()?.to_str()?.strip_prefix(REMOVING_PREFIX)
}

/// Whether `path` is queued or being deleted.
#[cfg(test)]
fn is_pending(path: &Path) -> bool {
    let queue = QUEUE.0.lock().unwrap_or_else(|p| p.into_inner());
    queue.known.contains(path)
}

fn run() {
    let (lock, wake) = &*QUEUE;
    loop {
        let path = {
            let mut queue = lock.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(path) = queue.pending.pop_front() {
                    break path;
                }
                queue = wake.wait(queue).unwrap_or_else(|p| p.into_inner());
            }
        };
        let mut since_pause = 0;
        match delete(&path, &mut since_pause) {
            Ok(()) => {
                // Its checkout manifest (`recycle.rs`) goes with it.
                if let (Some(id), Some(releases)) = (released_id(&path), path.parent()) {
                    let _ = fs::remove_file(releases.join(MANIFESTS).join(id));
                }
            }
            Err(error) => tracing::warn!(path = %path.display(), %error,
                "could not delete a removed release; the next cleanup tries again"),
        }
        let mut queue = lock.lock().unwrap_or_else(|p| p.into_inner());
        queue.known.remove(&path);
    }
}

fn yield_to_checkouts(since_pause: &mut usize) {
    *since_pause += 1;
    if *since_pause < BATCH && ACTIVE_CHECKOUTS.load(Ordering::SeqCst) == 0 {
        return;
    }
    *since_pause = 0;
    std::thread::sleep(PAUSE);
    while ACTIVE_CHECKOUTS.load(Ordering::SeqCst) > 0 {
        std::thread::sleep(WAIT);
    }
}

/// Deletes `path` and everything below it, depth first, pausing as [`yield_to_checkouts`]
/// says. An explicit stack: a build can nest directories deeper than a thread's stack.
fn delete(path: &Path, since_pause: &mut usize) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
        Ok(meta) if !meta.is_dir() => return fs::remove_file(path),
        Ok(_) => {}
    }
    // (directory, its entries already listed and pushed)
    let mut stack: Vec<(PathBuf, bool)> = vec![(path.to_path_buf(), false)];
    while let Some((dir, listed)) = stack.pop() {
        if listed {
            remove_dir(&dir)?;
            yield_to_checkouts(since_pause);
            continue;
        }
        ensure_writable(&dir)?;
        stack.push((dir.clone(), true));
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                stack.push((entry.path(), false));
            } else {
                match fs::remove_file(entry.path()) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
                yield_to_checkouts(since_pause);
            }
        }
    }
    Ok(())
}

fn remove_dir(dir: &Path) -> io::Result<()> {
    match fs::remove_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// A build may leave a directory without write or search permission for its owner;
/// its entries cannot be listed or unlinked until that is given back.
fn ensure_writable(dir: &Path) -> io::Result<()> {
    let mut perms = fs::symlink_metadata(dir)?.permissions();
    if perms.mode() & 0o700 != 0o700 {
        perms.set_mode(perms.mode() | 0o700);
        fs::set_permissions(dir, perms)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_until_gone(path: &Path) {
        // A deadline for a failure message, not a speed threshold.
        for _ in 0..600 {
            if !path.exists() && !is_pending(path) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} was not deleted", path.display());
    }

    #[test]
    fn sweep_deletes_removed_releases_including_read_only_trees_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let releases = dir.path().join("releases");
        let doomed = releases.join(".removing-20260101T000000Z-aaaaaaa");
        let locked = doomed.join("vendor/pkg");
        fs::create_dir_all(&locked).unwrap();
        for i in 0..(BATCH * 2 + 3) {
            fs::write(doomed.join(format!("f{i}")), "x").unwrap();
        }
        fs::write(locked.join("lib.php"), "<?php").unwrap();
        // A link to a file outside: removed, never followed.
        let outside = dir.path().join("outside.txt");
        fs::write(&outside, "keep").unwrap();
        std::os::unix::fs::symlink(&outside, doomed.join("link")).unwrap();
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o555)).unwrap();
        fs::set_permissions(doomed.join("vendor"), fs::Permissions::from_mode(0o500)).unwrap();
        let live = releases.join("20260102T000000Z-bbbbbbb");
        fs::create_dir_all(&live).unwrap();
        fs::write(live.join("index.php"), "live").unwrap();

        assert_eq!(sweep(&releases).unwrap(), 1);
        wait_until_gone(&doomed);
        assert_eq!(fs::read_to_string(live.join("index.php")).unwrap(), "live");
        assert_eq!(fs::read_to_string(&outside).unwrap(), "keep");
        assert_eq!(sweep(&releases).unwrap(), 0, "nothing left to queue");
    }

    #[test]
    fn nothing_is_deleted_while_a_checkout_runs() {
        let dir = tempfile::tempdir().unwrap();
        let releases = dir.path().join("releases");
        let doomed = releases.join(".removing-20260101T000000Z-ccccccc");
        fs::create_dir_all(&doomed).unwrap();
        for i in 0..BATCH {
            fs::write(doomed.join(format!("f{i}")), "x").unwrap();
        }
        let guard = busy();
        sweep(&releases).unwrap();
        // The deleter may take at most the one unlink it checks after; give it time
        // to have gone further if it ignored the guard.
        std::thread::sleep(Duration::from_millis(300));
        let left = fs::read_dir(&doomed).map(|d| d.count()).unwrap_or(0);
        assert!(
            left >= BATCH - 1,
            "deleted while a checkout ran: {left} left"
        );
        drop(guard);
        wait_until_gone(&doomed);
    }

    #[test]
    fn sweep_keeps_the_newest_recyclable_release_as_the_spare_and_drops_stale_manifests() {
        let dir = tempfile::tempdir().unwrap();
        let releases = dir.path().join("releases");
        let manifests = releases.join(MANIFESTS);
        fs::create_dir_all(&manifests).unwrap();
        let older = "20260101T000000Z-aaaaaaa";
        let newer = "20260102T000000Z-bbbbbbb";
        let unrecorded = "20260103T000000Z-ccccccc";
        for id in [older, newer, unrecorded] {
            fs::create_dir_all(releases.join(format!("{REMOVING_PREFIX}{id}/src"))).unwrap();
        }
        for id in [older, newer, "20251231T000000Z-fffffff"] {
            fs::write(manifests.join(id), "sha\n").unwrap();
        }
        let live = "20260104T000000Z-ddddddd";
        fs::create_dir(releases.join(live)).unwrap();
        fs::write(manifests.join(live), "sha\n").unwrap();

        assert_eq!(sweep(&releases).unwrap(), 2);
        let spare = releases.join(format!("{SPARE_PREFIX}{newer}"));
        assert!(
            spare.join("src").is_dir(),
            "the newest with a manifest is kept"
        );
        wait_until_gone(&releases.join(format!("{REMOVING_PREFIX}{older}")));
        wait_until_gone(&releases.join(format!("{REMOVING_PREFIX}{unrecorded}")));
        assert!(!manifests.join(older).exists(), "deleted with its release");
        assert!(
            !manifests.join("20251231T000000Z-fffffff").exists(),
            "stale"
        );
        assert!(manifests.join(newer).is_file());
        assert!(manifests.join(live).is_file());

        // A second retired release while a spare exists goes to the deleter.
        let next = "20260105T000000Z-eeeeeee";
        fs::create_dir(releases.join(format!("{REMOVING_PREFIX}{next}"))).unwrap();
        fs::write(manifests.join(next), "sha\n").unwrap();
        assert_eq!(sweep(&releases).unwrap(), 1);
        wait_until_gone(&releases.join(format!("{REMOVING_PREFIX}{next}")));
        assert!(spare.is_dir());
    }
}
