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

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{self, FileType, Metadata, Permissions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use git2::{Oid, Repository};

use super::checkout::{
    self, CheckoutError, CheckoutStats, Contents, Filter, Job, Kind, MODE_BLOB,
    MODE_BLOB_EXECUTABLE, MODE_COMMIT, MODE_LINK, MODE_TREE,
};
use super::reaper::REMOVING_PREFIX;

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

fn repair(
    repo: &Path,
    commit: &str,
    dest: &Path,
    threads: usize,
    contents: Contents,
    spare: &Spare,
) -> Result<(CheckoutStats, Recycled), CheckoutError> {
    let repository = Repository::open(repo).map_err(|source| CheckoutError::Open {
        path: repo.to_path_buf(),
        source,
    })?;
    let new_tree = checkout::resolve_tree(&repository, repo, commit)?;
    let old_tree = checkout::resolve_tree(&repository, repo, &spare.commit)?;
    let trash = match (dest.parent(), dest.file_name()) {
        (Some(parent), Some(name)) => parent.join(format!(
            "{REMOVING_PREFIX}{}.recycled",
            name.to_string_lossy()
        )),
        _ => dest.with_extension("recycled"),
    };
    let mut walk = Walk {
        repo: &repository,
        root: dest,
        since: spare.since,
        trash,
        trash_entries: None,
        jobs: Vec::new(),
        stats: CheckoutStats::default(),
        recycled: Recycled {
            from: spare.id.clone(),
            ..Recycled::default()
        },
        visited: Vec::new(),
        needed: HashSet::new(),
    };
    walk.run(new_tree, old_tree, Filter::new(contents))?;
    let Walk {
        jobs,
        mut stats,
        recycled,
        ..
    } = walk;
    let counts = checkout::write_blobs(&repository, &jobs, threads, &AtomicBool::new(false))?;
    stats.files = counts.files;
    stats.symlinks = counts.symlinks;
    stats.bytes = counts.bytes;
    Ok((stats, recycled))
}

struct Walk<'a> {
    repo: &'a Repository,
    root: &'a Path,
    since: (i64, i64),
    trash: PathBuf,
    /// How many directories were moved into `trash` (`None`: it does not exist yet).
    trash_entries: Option<usize>,
    jobs: Vec<Job>,
    stats: CheckoutStats,
    recycled: Recycled,
    /// Directories the walk kept from the spare, parents before children.
    visited: Vec<PathBuf>,
    /// Those with an entry below that is not a directory: the ones `checkout::plan`
    /// would have created (the others hold only directories left out as export-ignore).
    needed: HashSet<PathBuf>,
}

impl<'a> Walk<'a> {
    /// Repairs `root` from the old tree into the new one, collecting the blobs to write.
    /// `above` is the `export-ignore` filter above the root.
    fn run(&mut self, new_tree: Oid, old_tree: Oid, above: Filter) -> Result<(), CheckoutError> {
        // An explicit stack, as in `checkout::plan`: trees can nest deeper than a stack.
        let mut pending = vec![(new_tree, old_tree, self.root.to_path_buf(), above)];
        while let Some((new_id, old_id, dir, above)) = pending.pop() {
            let new = self.tree(new_id, &dir)?;
            let filter = above.enter(self.repo, checkout::relative(&dir, self.root), &new)?;
            self.visited.push(dir.clone());
            if new.iter().any(|e| e.filemode() != MODE_TREE) {
                self.mark_needed(&dir);
            }
            // What the release holds of this directory: left-out entries are unwanted,
            // so whatever sits at their names is discarded below.
            let kept: Vec<git2::TreeEntry> = new
                .iter()
                .filter(|e| {
                    let path = dir.join(OsStr::from_bytes(e.name_bytes()));
                    let out = filter.ignores(
                        checkout::relative(&path, self.root),
                        e.filemode() == MODE_TREE,
                    );
                    self.stats.export_ignored += usize::from(out);
                    !out
                })
                .collect();
            let old: HashMap<Vec<u8>, (i32, Oid)> = self
                .tree(old_id, &dir)?
                .iter()
                .map(|e| (e.name_bytes().to_vec(), (e.filemode(), e.id())))
                .collect();
            // Every directory is made 0o755 (the build may have left it read-only, and
            // its extras must go) before anything in it is removed.
            self.make_dir_mode(&dir)?;
            let wanted: HashSet<Vec<u8>> = kept.iter().map(|e| e.name_bytes().to_vec()).collect();
            let listing = fs::read_dir(&dir).map_err(io_at(&dir))?;
            for entry in listing {
                let entry = entry.map_err(io_at(&dir))?;
                if !wanted.contains(entry.file_name().as_bytes()) {
                    let kind = entry.file_type().map_err(io_at(&entry.path()))?;
                    self.discard(&entry.path(), kind)?;
                }
            }
            for entry in kept {
                let name = entry.name_bytes();
                checkout::check_name(name)?;
                let path = dir.join(OsStr::from_bytes(name));
                let meta = match fs::symlink_metadata(&path) {
                    Ok(meta) => Some(meta),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                    Err(e) => return Err(io_at(&path)(e)),
                };
                let before = old.get(name).copied();
                let mode = entry.filemode();
                let kind = match mode {
                    MODE_TREE => {
                        match (&meta, before) {
                            (Some(m), Some((MODE_TREE, old_sub))) if m.file_type().is_dir() => {
                                pending.push((entry.id(), old_sub, path, filter.clone()));
                            }
                            _ => {
                                if let Some(m) = &meta {
                                    self.discard(&path, m.file_type())?;
                                }
                                let start = checkout::Start {
                                    tree: entry.id(),
                                    dest: &path,
                                    exists: false,
                                    above: &filter,
                                };
                                let planned =
                                    checkout::plan(self.repo, start, self.root, &mut self.stats)?;
                                if planned.created {
                                    self.mark_needed(&dir);
                                }
                                self.jobs.extend(planned.jobs);
                            }
                        }
                        continue;
                    }
                    MODE_BLOB => Kind::File,
                    MODE_BLOB_EXECUTABLE => Kind::Executable,
                    MODE_LINK => Kind::Symlink,
                    MODE_COMMIT => {
                        if let Some(m) = &meta {
                            self.discard(&path, m.file_type())?;
                        }
                        let relative = path.strip_prefix(self.root).unwrap_or(&path);
                        self.stats
                            .submodules_skipped
                            .push(relative.to_string_lossy().into_owned());
                        continue;
                    }
                    mode => {
                        return Err(CheckoutError::Git {
                            what: format!("tree entry {}", path.display()),
                            source: git2::Error::from_str(&format!(
                                "unsupported file mode {mode:o}"
                            )),
                        });
                    }
                };
                let same_blob = before == Some((mode, entry.id()));
                match &meta {
                    Some(m) if same_blob && self.untouched(m, kind) => {
                        self.recycled.kept += 1;
                        continue;
                    }
                    Some(m) => self.discard(&path, m.file_type())?,
                    None => {}
                }
                self.jobs.push(Job {
                    path,
                    oid: entry.id(),
                    kind,
                });
            }
        }
        // Children before parents, so a parent left empty by its children goes too.
        for dir in std::mem::take(&mut self.visited).iter().rev() {
            if dir != self.root && !self.needed.contains(dir) {
                self.discard(
                    dir,
                    fs::symlink_metadata(dir).map_err(io_at(dir))?.file_type(),
                )?;
            }
        }
        Ok(())
    }

    /// `dir` and every directory above it up to the root stay.
    fn mark_needed(&mut self, dir: &Path) {
        for above in dir.ancestors() {
            if !above.starts_with(self.root) || !self.needed.insert(above.to_path_buf()) {
                break;
            }
        }
    }

    fn tree(&self, id: Oid, dir: &Path) -> Result<git2::Tree<'a>, CheckoutError> {
        self.repo
            .find_tree(id)
            .map_err(|source| CheckoutError::Git {
                what: format!("tree {id} for {}", dir.display()),
                source,
            })
    }

    /// Whether the checkout that wrote `meta`'s file would still recognise it.
    fn untouched(&self, meta: &Metadata, kind: Kind) -> bool {
        let (kind_ok, mode_ok) = match kind {
            Kind::Symlink => (meta.file_type().is_symlink(), true),
            Kind::File => (meta.file_type().is_file(), meta.mode() & 0o7777 == 0o644),
            Kind::Executable => (meta.file_type().is_file(), meta.mode() & 0o7777 == 0o755),
        };
        kind_ok && mode_ok && meta.nlink() == 1 && (meta.ctime(), meta.ctime_nsec()) < self.since
    }

    fn make_dir_mode(&self, dir: &Path) -> Result<(), CheckoutError> {
        let meta = fs::symlink_metadata(dir).map_err(io_at(dir))?;
        if meta.mode() & 0o7777 != 0o755 {
            fs::set_permissions(dir, Permissions::from_mode(0o755)).map_err(io_at(dir))?;
        }
        Ok(())
    }

    /// Removes one entry: a file or symlink at once, a directory (of any size) by one
    /// rename into the trash directory the reaper deletes.
    fn discard(&mut self, path: &Path, kind: FileType) -> Result<(), CheckoutError> {
        self.recycled.discarded += 1;
        if !kind.is_dir() {
            return fs::remove_file(path).map_err(io_at(path));
        }
        let n = match self.trash_entries {
            Some(n) => n,
            None => {
                checkout::create_dir(&self.trash)?;
                0
            }
        };
        self.trash_entries = Some(n + 1);
        // Moving a directory to another parent rewrites its `..`: it must be writable.
        let meta = fs::symlink_metadata(path).map_err(io_at(path))?;
        if meta.mode() & 0o700 != 0o700 {
            fs::set_permissions(path, Permissions::from_mode(meta.mode() | 0o700))
                .map_err(io_at(path))?;
        }
        fs::rename(path, self.trash.join(n.to_string())).map_err(io_at(path))
    }
}

fn io_at(path: &Path) -> impl Fn(io::Error) -> CheckoutError + '_ {
    move |source| CheckoutError::Io {
        path: path.to_path_buf(),
        source,
    }
}

mod ahead;
pub use ahead::{PREPARING_PREFIX, SpareAhead, checkouts_started, has_spare, stop_spare};

#[cfg(test)]
mod tests;
