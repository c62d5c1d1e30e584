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
//! pipeline; it still does for an environment's 2nd and 3rd deploy, when nothing has
//! been retired yet.
//!
//! # Fallbacks
//!
//! A full checkout runs when there is no spare, its manifest is missing or unreadable,
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

use git2::{Oid, Repository};

use super::checkout::{
    self, CheckoutError, CheckoutStats, Job, Kind, MODE_BLOB, MODE_BLOB_EXECUTABLE, MODE_COMMIT,
    MODE_LINK, MODE_TREE,
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
) -> Result<Written, CheckoutError> {
    let (Some(releases), Some(release)) = (dest.parent(), dest.file_name()) else {
        return Err(io_at(dest)(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a release directory needs a parent and a name",
        )));
    };
    let mut written = Written::default();
    match take_spare(repo, commit, releases, dest) {
        Ok(None) => {}
        Ok(Some(spare)) => match repair(repo, commit, dest, threads, &spare) {
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
        written.stats = checkout::write_tree(repo, commit, dest, threads)?;
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
        notes.push(format!(
            "recycled retired release {}: {} files kept, {} entries removed, {} written",
            r.from,
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
    };
    walk.run(new_tree, old_tree)?;
    let Walk {
        jobs,
        mut stats,
        recycled,
        ..
    } = walk;
    let counts = checkout::write_blobs(&repository, &jobs, threads)?;
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
}

impl<'a> Walk<'a> {
    /// Repairs `root` from the old tree into the new one, collecting the blobs to write.
    fn run(&mut self, new_tree: Oid, old_tree: Oid) -> Result<(), CheckoutError> {
        // An explicit stack, as in `checkout::plan`: trees can nest deeper than a stack.
        let mut pending = vec![(new_tree, old_tree, self.root.to_path_buf())];
        while let Some((new_id, old_id, dir)) = pending.pop() {
            let new = self.tree(new_id, &dir)?;
            let old: HashMap<Vec<u8>, (i32, Oid)> = self
                .tree(old_id, &dir)?
                .iter()
                .map(|e| (e.name_bytes().to_vec(), (e.filemode(), e.id())))
                .collect();
            // Every directory is made 0o755 (the build may have left it read-only, and
            // its extras must go) before anything in it is removed.
            self.make_dir_mode(&dir)?;
            let wanted: HashSet<Vec<u8>> = new.iter().map(|e| e.name_bytes().to_vec()).collect();
            let listing = fs::read_dir(&dir).map_err(io_at(&dir))?;
            for entry in listing {
                let entry = entry.map_err(io_at(&dir))?;
                if !wanted.contains(entry.file_name().as_bytes()) {
                    let kind = entry.file_type().map_err(io_at(&entry.path()))?;
                    self.discard(&entry.path(), kind)?;
                }
            }
            for entry in new.iter() {
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
                                pending.push((entry.id(), old_sub, path));
                            }
                            _ => {
                                if let Some(m) = &meta {
                                    self.discard(&path, m.file_type())?;
                                }
                                checkout::create_dir(&path)?;
                                self.stats.directories += 1;
                                let jobs = checkout::plan(
                                    self.repo,
                                    entry.id(),
                                    &path,
                                    self.root,
                                    &mut self.stats,
                                )?;
                                self.jobs.extend(jobs);
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
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::os::unix::fs::symlink;
    use std::process::Command;
    use tempfile::TempDir;

    /// Runs git in `dir`, isolated from the user's and system's configuration.
    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .expect("spawn git");
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_owned()
    }

    /// A work tree whose commits the tests make, and a `releases/` directory.
    struct Fixture {
        dir: TempDir,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = TempDir::new().expect("tempdir");
            fs::create_dir(dir.path().join("work")).expect("mkdir");
            fs::create_dir(dir.path().join("releases")).expect("mkdir");
            git(&dir.path().join("work"), &["init", "-q"]);
            Fixture { dir }
        }
        fn work(&self) -> PathBuf {
            self.dir.path().join("work")
        }
        fn repo(&self) -> PathBuf {
            self.work()
        }
        fn releases(&self) -> PathBuf {
            self.dir.path().join("releases")
        }
        fn write(&self, rel: &str, content: &[u8]) {
            let path = self.work().join(rel);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs::write(&path, content).expect("write");
        }
        fn commit(&self) -> String {
            git(&self.work(), &["add", "-A"]);
            git(&self.work(), &["commit", "-q", "--allow-empty", "-m", "c"]);
            git(&self.work(), &["rev-parse", "HEAD"])
        }
        /// Checks out `commit` as `release`, then re-records its manifest one clock tick
        /// later, so that every file the checkout wrote is strictly older (a real build
        /// starts that much later anyway), and lets the clock move on once more, so that
        /// what the test changes next (as a build would) is strictly newer.
        fn deploy(&self, release: &str, commit: &str) -> Written {
            let written = checkout(&self.repo(), commit, &self.releases().join(release), 2)
                .expect("checkout");
            let manifest = self.releases().join(MANIFESTS).join(release);
            next_tick(&manifest);
            let recorded = fs::read(&manifest).expect("manifest");
            fs::write(&manifest, recorded).expect("re-record");
            next_tick(&manifest);
            written
        }
        /// What cleanup + `reaper::sweep` do to a release leaving: it becomes the spare.
        fn retire(&self, release: &str) {
            fs::rename(
                self.releases().join(release),
                self.releases().join(format!("{SPARE_PREFIX}{release}")),
            )
            .expect("retire");
        }
        /// The tree a full checkout writes, for comparison.
        fn fresh(&self, commit: &str) -> BTreeMap<Vec<u8>, Node> {
            let dest = self.dir.path().join(format!("fresh-{commit}"));
            let _ = fs::remove_dir_all(&dest);
            checkout::write_tree(&self.repo(), commit, &dest, 1).expect("write_tree");
            listing(&dest)
        }
    }

    #[derive(Debug, PartialEq, Eq)]
    enum Node {
        Dir { mode: u32 },
        File { mode: u32, content: Vec<u8> },
        Link { target: Vec<u8> },
    }

    fn listing(root: &Path) -> BTreeMap<Vec<u8>, Node> {
        let mut out = BTreeMap::new();
        let mut pending = vec![root.to_path_buf()];
        while let Some(dir) = pending.pop() {
            for entry in fs::read_dir(&dir).expect("read_dir") {
                let path = entry.expect("entry").path();
                let rel = path.strip_prefix(root).expect("below");
                let rel = rel.as_os_str().as_bytes().to_vec();
                let meta = fs::symlink_metadata(&path).expect("lstat");
                let mode = meta.permissions().mode() & 0o7777;
                let node = if meta.file_type().is_symlink() {
                    let target = fs::read_link(&path).expect("read_link");
                    Node::Link {
                        target: target.as_os_str().as_bytes().to_vec(),
                    }
                } else if meta.is_dir() {
                    pending.push(path.clone());
                    Node::Dir { mode }
                } else {
                    Node::File {
                        mode,
                        content: fs::read(&path).expect("read"),
                    }
                };
                out.insert(rel, node);
            }
        }
        out
    }

    /// Makes the next change to any file get a later ctime than everything written so
    /// far: the kernel's timestamps move in clock ticks. Waits on the clock itself (no
    /// fixed sleep): writes probes until one's ctime is later than `than`'s.
    fn next_tick(than: &Path) {
        let probe = than.with_extension("probe");
        let old = fs::symlink_metadata(than).expect("lstat");
        loop {
            fs::write(&probe, b"").expect("probe");
            let new = fs::symlink_metadata(&probe).expect("lstat");
            if (new.ctime(), new.ctime_nsec()) > (old.ctime(), old.ctime_nsec()) {
                let _ = fs::remove_file(&probe);
                return;
            }
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_recycled_release_is_exactly_the_new_commits_tree() {
        let f = Fixture::new();
        f.write("same.txt", b"unchanged\n");
        f.write("modified.txt", b"before\n");
        f.write("removed.txt", b"gone soon\n");
        f.write("mode.sh", b"#!/bin/sh\n");
        f.write("becomes-dir", b"a file first\n");
        f.write("becomes-file/inner.txt", b"in a dir first\n");
        f.write("becomes-link/inner.txt", b"in a dir first\n");
        f.write("deep/a/b/c.txt", b"deep\n");
        f.write("deep/a/b/d.txt", b"deep, changes\n");
        symlink("same.txt", f.work().join("link")).expect("symlink");
        let c1 = f.commit();
        f.write("modified.txt", b"after, longer\n");
        fs::remove_file(f.work().join("removed.txt")).expect("rm");
        fs::set_permissions(f.work().join("mode.sh"), Permissions::from_mode(0o755))
            .expect("chmod");
        fs::remove_file(f.work().join("becomes-dir")).expect("rm");
        f.write("becomes-dir/x.txt", b"now a dir\n");
        fs::remove_dir_all(f.work().join("becomes-file")).expect("rm");
        f.write("becomes-file", b"now a file\n");
        fs::remove_dir_all(f.work().join("becomes-link")).expect("rm");
        symlink("deep", f.work().join("becomes-link")).expect("symlink");
        fs::remove_file(f.work().join("link")).expect("rm");
        symlink("modified.txt", f.work().join("link")).expect("symlink");
        f.write("deep/a/b/d.txt", b"deep, changed\n");
        f.write("added/new.txt", b"new\n");
        let c2 = f.commit();

        let first = f.deploy("r1", &c1);
        assert!(first.recycled.is_none());
        assert!(f.releases().join(MANIFESTS).join("r1").is_file());
        f.retire("r1");
        let second = f.deploy("r2", &c2);
        let recycled = second.recycled.clone().expect("recycled");
        assert_eq!(recycled.from, "r1");
        assert_eq!(second.fallback, None);
        assert_eq!(listing(&f.releases().join("r2")), f.fresh(&c2));
        assert!(!f.releases().join(format!("{SPARE_PREFIX}r1")).exists());
        assert!(!f.releases().join(MANIFESTS).join("r1").exists());
        assert!(f.releases().join(MANIFESTS).join("r2").is_file());
        // Only what changed was written: same.txt and deep/a/b/c.txt are the same blob,
        // mode and path in both commits (mode.sh's mode changed: rewritten).
        assert_eq!(recycled.kept, 2, "{second:?}");
        assert_eq!(second.stats.files + second.stats.symlinks, 8, "{second:?}");

        // And back: the file turned into a directory turns into a file again.
        f.retire("r2");
        let third = f.deploy("r3", &c1);
        assert!(third.recycled.is_some());
        assert_eq!(listing(&f.releases().join("r3")), f.fresh(&c1));
    }

    #[test]
    fn what_a_build_changed_in_the_retired_release_never_reaches_the_next_one() {
        let f = Fixture::new();
        f.write("config.php", b"return 'clean';\n");
        f.write("chmodded.txt", b"plain\n");
        f.write("linked.txt", b"linked\n");
        f.write("was-file.txt", b"file\n");
        f.write("src/app.php", b"app\n");
        let c1 = f.commit();
        f.write("README.md", b"one more file\n");
        let c2 = f.commit();
        let outside = f.dir.path().join("outside");
        fs::create_dir(&outside).expect("mkdir");
        fs::write(outside.join("secret"), b"keep me\n").expect("write");

        f.deploy("r1", &c1);
        let r1 = f.releases().join("r1");
        // The build: an in-place write of the same length with the mtime put back (only
        // ctime tells), a chmod, a hard link out, a file swapped for a symlink out, build
        // output (a read-only tree), a shared link, REVISION.
        let config = r1.join("config.php");
        let mtime = fs::metadata(&config)
            .expect("stat")
            .modified()
            .expect("mtime");
        fs::write(&config, b"return 'dirty';\n").expect("tamper");
        fs::File::options()
            .write(true)
            .open(&config)
            .and_then(|file| file.set_modified(mtime))
            .expect("restore mtime");
        fs::set_permissions(r1.join("chmodded.txt"), Permissions::from_mode(0o600)).expect("chmod");
        fs::hard_link(r1.join("linked.txt"), outside.join("hard")).expect("link");
        fs::remove_file(r1.join("was-file.txt")).expect("rm");
        symlink(outside.join("secret"), r1.join("was-file.txt")).expect("symlink");
        f.write("../releases/r1/vendor/pkg/ro/lib.php", b"vendor\n");
        fs::set_permissions(r1.join("vendor/pkg/ro"), Permissions::from_mode(0o555))
            .expect("chmod");
        fs::set_permissions(r1.join("src"), Permissions::from_mode(0o555)).expect("chmod");
        symlink(&outside, r1.join("storage")).expect("symlink");
        fs::write(r1.join("REVISION"), &c1).expect("revision");

        f.retire("r1");
        let written = f.deploy("r2", &c2);
        assert!(written.recycled.is_some(), "{written:?}");
        let r2 = f.releases().join("r2");
        assert_eq!(listing(&r2), f.fresh(&c2));
        assert_eq!(
            fs::read(r2.join("config.php")).expect("read"),
            b"return 'clean';\n"
        );
        // Nothing outside was followed or changed, and the new release's file is not
        // the hard-linked inode.
        assert_eq!(
            fs::read(outside.join("secret")).expect("read"),
            b"keep me\n"
        );
        fs::write(r2.join("linked.txt"), b"written by the next build\n").expect("write");
        assert_eq!(fs::read(outside.join("hard")).expect("read"), b"linked\n");
        // The build output went in one rename, for the reaper.
        let trash = f.releases().join(format!("{REMOVING_PREFIX}r2.recycled"));
        assert!(
            trash.join("0/pkg/ro/lib.php").is_file() || trash.join("1/pkg/ro/lib.php").is_file()
        );
    }

    #[test]
    fn a_spare_without_a_usable_manifest_is_retired_and_the_checkout_writes_in_full() {
        let f = Fixture::new();
        f.write("a.txt", b"a\n");
        let c1 = f.commit();
        f.write("b.txt", b"b\n");
        let c2 = f.commit();
        for (case, manifest) in [
            ("missing", None),
            (
                "unknown commit",
                Some("0123456789abcdef0123456789abcdef01234567\n"),
            ),
            ("garbage", Some("not a commit\n")),
        ] {
            let (old, new) = (format!("old-{case}"), format!("new-{case}"));
            f.deploy(&old, &c1);
            let path = f.releases().join(MANIFESTS).join(&old);
            match manifest {
                None => fs::remove_file(&path).expect("rm"),
                Some(text) => fs::write(&path, text).expect("write"),
            }
            f.retire(&old);
            let written = f.deploy(&new, &c2);
            assert!(written.recycled.is_none(), "{case}: {written:?}");
            let why = written.fallback.expect("a reason");
            assert!(why.contains(&old), "{case}: {why}");
            assert_eq!(listing(&f.releases().join(&new)), f.fresh(&c2), "{case}");
            assert!(!f.releases().join(format!("{SPARE_PREFIX}{old}")).exists());
            assert!(
                f.releases()
                    .join(format!("{REMOVING_PREFIX}{old}.spare"))
                    .is_dir(),
                "{case}: handed to the reaper"
            );
            fs::remove_dir_all(f.releases().join(&new)).expect("rm");
        }
    }

    #[test]
    fn without_a_spare_the_checkout_writes_in_full_and_records_a_manifest() {
        let f = Fixture::new();
        f.write("a.txt", b"a\n");
        let c1 = f.commit();
        let written = f.deploy("r1", &c1);
        assert_eq!(written.recycled, None);
        assert_eq!(written.fallback, None);
        assert_eq!(written.stats.files, 1);
        assert_eq!(
            fs::read_to_string(f.releases().join(MANIFESTS).join("r1")).expect("manifest"),
            format!("{c1}\n")
        );
        assert_eq!(notes(&written), Vec::<String>::new());
    }
}
