//! The checkout stage's entry point: writes a commit's tree into a new release directory,
//! by recycling a retired release's files when one is at hand, else in full
//! ([`super::checkout::write_tree`]).
//!
//! # Why recycle, not copy
//!
//! Measured on this project's ext4 disk (`discard`, shared with builds; bench/README.md):
//! writing symfony's 13,139 files is almost all file *creation*. `strace -c -f -w` of
//! `tar -x` of that tree: `openat` (`O_CREAT`) 296 µs a call and `mkdirat` 377 µs, 78 %
//! of the wall time; the `write`s of 84 MB 7 %, `fchmod`/`utimensat`/`close` ~14 µs
//! each. Creating 13k *empty* files took 1.1–30 s across three runs minutes apart (load
//! 3–8, other sessions compiling): the cost is the journal, shared with every other
//! writer and with the discards of deletions, not inflating or copying bytes. Copying the
//! live release's files (`std::fs::copy`, `cp -a`) creates as many inodes as writing them
//! from git, so on ext4 it gains nothing; `rename(2)` of a whole 13k-file tree took 5 ms.
//!
//! So a repeat deploy does not create the tree: cleanup hands one retired release to
//! this module instead of to the reaper (`reaper::sweep` renames it `.spare-<id>`), and
//! the next checkout renames that directory to the new release's name and repairs it into
//! the new commit's tree: files whose content it can trust stay, everything else is
//! removed and written from the object database. The deletion the reaper would have done
//! and the creation the checkout would have done both disappear; what is written is what
//! changed between the two commits, plus whatever the old release's build touched.
//!
//! # Which files are trusted
//!
//! A retired release was built, run and maybe written to in place: its files cannot be
//! trusted by name. After every checkout this module records, outside the release, a
//! manifest `releases/.trees/<release>` holding the commit it wrote; the manifest's ctime
//! is the moment the checkout finished. A file of the recycled tree is kept only when
//! - the old commit had the same blob id and mode at that path as the new commit, and
//! - it is still the same kind (regular file / symlink), with the exact permission bits
//!   stagehand gives, one link (`nlink == 1`), and
//! - its ctime is strictly before the manifest's.
//!
//! ctime is set by the kernel on every change to a file's content, mode, owner or links
//! (also on `utime`/`touch`, so restoring an mtime does not hide a write) and cannot be
//! set from user space; it is what git's index trusts as well. Its limits: a clock set
//! backwards between the checkout and the write could make a build's write look older;
//! a process of the retired release still writing into it while it is recycled (a
//! release is retired two deploys after it stopped being live, and releases a `run`
//! process uses are never retired). Directories are never trusted: every one is listed,
//! and whatever the new tree does not name (build outputs, `vendor/`, shared links,
//! `REVISION`) is removed: files at once, directories moved in one `rename` to
//! `releases/.removing-<release>.recycled`, which the reaper deletes after the deploy.
//!
//! A recycled release shares nothing with any other release: it was retired (no longer
//! listed, no longer a rollback target), kept files are its own inodes, and rewritten
//! files are new inodes (`O_EXCL`), never written in place.
//!
//! With `export_ignore` (`checkout::Contents::Archive`) the new tree is read through the
//! same `.gitattributes` rules as a full checkout: a left-out path is unwanted like any
//! extra, and a directory holding only left-out directories goes, so a recycled release
//! is what a full checkout of the same contents writes, whichever contents the spare had.
//! The walk itself is `recycle/repair.rs`.
//!
//! # Numbers
//!
//! `bench/real_repo.sh` on symfony, ext4, one run, medians (bench/README.md): a repeat
//! deploy that recycles took 212 ms (checkout 144 ms) against 3,881 ms for the
//! Capistrano-style shell pipeline (`git archive | tar -x`, `rm -rf` of the old release):
//! 0.05×. Before this module the same deploy wrote the whole tree: 5.0 s, 2.2× the shell
//! pipeline.
//!
//! # Spares written ahead
//!
//! Until an environment retires a release (its first `keep_releases` + 1 deploys) there
//! is nothing to recycle. Then, after a deploy has ended, [`prepare_spare`] writes the
//! live commit's tree once more, in the background, as `.spare-<live>.ahead`: the next
//! deploy recycles that. The write costs what a full checkout costs, but off any
//! deploy's clock; a deploy that starts meanwhile stops it within a file
//! ([`stop_spare`]) and writes in full, as it would have anyway.
//!
//! # Fallbacks
//!
//! A full checkout runs when there is no spare (or the one being written ahead was not finished), its manifest is missing or unreadable,
//! its commit is not in the mirror, the rename fails, or the repair fails (the half
//! repaired tree is moved aside for the reaper and `dest` written afresh).
//!
//! Blocking: call from a blocking thread.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use git2::Repository;

use super::checkout::{self, CheckoutError, CheckoutStats, Contents};
use super::reaper::REMOVING_PREFIX;
use repair::repair;

/// The name prefix `reaper::sweep` gives the retired release it keeps for recycling.
pub const SPARE_PREFIX: &str = ".spare-";
/// `releases/.trees/<release>`: the commit a checkout wrote; its ctime is when it ended.
pub const MANIFESTS: &str = ".trees";

/// What [`checkout`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Written {
    /// What was written from the object database (all of it without a spare).
    pub stats: CheckoutStats,
    /// Set when a retired release was recycled.
    pub recycled: Option<Recycled>,
    /// Why a spare was there but not used (the deploy logs it).
    pub fallback: Option<String>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recycled {
    /// The retired release whose directory became the new release.
    pub from: String,
    /// Files and symlinks kept as they were.
    pub kept: usize,
    /// Entries removed: changed, touched by a build, or not in the new tree.
    pub discarded: usize,
}

/// Writes `commit`'s tree into `dest` (`releases/<release>`, which must not exist), from
/// a spare retired release when `releases/` holds one, and records the manifest that lets
/// a later checkout recycle `dest` in turn. See the module docs.
pub fn checkout(
    repo: &Path,
    commit: &str,
    dest: &Path,
    threads: usize,
    contents: Contents,
) -> Result<Written, CheckoutError> {
    let (Some(releases), Some(release)) = (dest.parent(), dest.file_name()) else {
        return Err(io_at(dest)(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a release directory needs a parent and a name",
        )));
    };
    stop_spare(releases);
    let mut written = Written::default();
    match take_spare(repo, commit, releases, dest) {
        Ok(None) => {}
        Ok(Some(spare)) => match repair(repo, commit, dest, threads, contents, &spare) {
            Ok((stats, recycled)) => {
                written.stats = stats;
                written.recycled = Some(recycled);
            }
            Err(error) => {
                // Moved aside (one rename), not deleted here: the reaper takes it.
                let aside = releases.join(format!(
                    "{REMOVING_PREFIX}{}.failed",
                    release.to_string_lossy()
                ));
                fs::rename(dest, &aside).map_err(io_at(dest))?;
                written.fallback = Some(format!(
                    "recycling {} failed, writing in full: {error}",
                    spare.id
                ));
            }
        },
        Err(reason) => written.fallback = Some(reason),
    }
    if written.recycled.is_none() {
        written.stats = checkout::write_tree(repo, commit, dest, threads, contents)?;
    }
    record(releases, release, commit)?;
    Ok(written)
}

/// Lines for the deploy log: what was recycled, or why a spare was not.
pub fn notes(written: &Written) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(why) = &written.fallback {
        notes.push(why.clone());
    }
    if let Some(r) = &written.recycled {
        let from = match r.from.strip_suffix(".ahead") {
            Some(release) => format!("the spare tree of {release} written after its deploy"),
            None => format!("retired release {}", r.from),
        };
        notes.push(format!(
            "recycled {from}: {} files kept, {} entries removed, {} written",
            r.kept,
            r.discarded,
            written.stats.files + written.stats.symlinks
        ));
    }
    notes
}

struct Spare {
    id: String,
    /// The commit the spare's checkout wrote (from its manifest, not its `REVISION`).
    commit: String,
    /// Its manifest's ctime: files changed at or after it are not trusted.
    since: (i64, i64),
}

/// Claims the newest `.spare-*` of `releases` by renaming it to `dest`. `Ok(None)`: there
/// is none; `Err(reason)`: there was one but it cannot be used (it goes to the reaper).
fn take_spare(
    repo: &Path,
    commit: &str,
    releases: &Path,
    dest: &Path,
) -> Result<Option<Spare>, String> {
    let Ok(dir) = fs::read_dir(releases) else {
        return Ok(None);
    };
    let mut spares: Vec<String> = dir
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter_map(|name| name.strip_prefix(SPARE_PREFIX).map(str::to_owned))
        .collect();
    spares.sort();
    let Some(id) = spares.pop() else {
        return Ok(None);
    };
    let spare_dir = releases.join(format!("{SPARE_PREFIX}{id}"));
    let manifest = releases.join(MANIFESTS).join(&id);
    let unusable = |why: String| {
        // Whatever is wrong with it, it must not be offered again: retire it.
        let _ = fs::rename(
            &spare_dir,
            releases.join(format!("{REMOVING_PREFIX}{id}.spare")),
        );
        let _ = fs::remove_file(&manifest);
        Err(format!("spare release {id} not recycled: {why}"))
    };
    let (old_commit, since) = match read_manifest(&manifest) {
        Ok(found) => found,
        Err(e) => return unusable(format!("its manifest: {e}")),
    };
    // Both commits must resolve before anything moves: a treeless mirror may have lost
    // nothing, but a mirror re-created since may not hold the old commit's trees.
    let resolves = Repository::open(repo).is_ok_and(|r| {
        checkout::resolve_tree(&r, repo, &old_commit).is_ok()
            && checkout::resolve_tree(&r, repo, commit).is_ok()
    });
    if !resolves {
        return unusable(format!("commit {old_commit} is not in the mirror"));
    }
    match fs::symlink_metadata(&spare_dir) {
        Ok(meta) if meta.is_dir() => {}
        _ => return unusable("not a directory".into()),
    }
    if let Err(e) = fs::rename(&spare_dir, dest) {
        return unusable(format!("renaming it: {e}"));
    }
    let _ = fs::remove_file(&manifest);
    Ok(Some(Spare {
        id,
        commit: old_commit,
        since,
    }))
}

fn read_manifest(path: &Path) -> io::Result<(String, (i64, i64))> {
    let meta = fs::symlink_metadata(path)?;
    let commit = fs::read_to_string(path)?.trim().to_owned();
    Ok((commit, (meta.ctime(), meta.ctime_nsec())))
}

/// Writes `releases/.trees/<release>` after the checkout's last write (see module docs).
fn record(releases: &Path, release: &OsStr, commit: &str) -> Result<(), CheckoutError> {
    let dir = releases.join(MANIFESTS);
    let path = dir.join(release);
    let io = |source| CheckoutError::Io {
        path: path.clone(),
        source,
    };
    fs::create_dir_all(&dir).map_err(io)?;
    fs::write(&path, format!("{commit}\n")).map_err(io)
}

fn io_at(path: &Path) -> impl Fn(io::Error) -> CheckoutError + '_ {
    move |source| CheckoutError::Io {
        path: path.to_path_buf(),
        source,
    }
}

mod ahead;
mod repair;
pub use ahead::{PREPARING_PREFIX, SpareAhead, checkouts_started, has_spare, stop_spare};

#[cfg(test)]
mod tests;
