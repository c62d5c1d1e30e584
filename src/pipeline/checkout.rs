//! Writes the tree of one commit into a fresh release directory: the hot path of every deploy.
//!
//! # What this module owns
//!
//! Turning `(repository, commit)` into files on disk under a directory that did not exist
//! before the call: directories (0o755), regular files (0o644, or 0o755 when git records
//! them as executable), and symlinks (the blob's bytes are the link target). Submodule
//! entries (gitlinks) are skipped and reported so the caller can log them.
//!
//! # Why not `git2::build::CheckoutBuilder` / `checkout_tree`
//!
//! `checkout_tree` is built for a work tree that has an index: it diffs against the index,
//! tracks conflicts, and on a bare mirror writes `<mirror>/index` unless told
//! `update_index(false)`, which turns the shared mirror into shared mutable state between
//! concurrent deploys. A release directory is always empty, so none of that bookkeeping
//! buys anything, and it writes on one thread. This module only reads the object database:
//! no index, no lock files, nothing in the mirror changes.
//!
//! # Numbers
//!
//! `benches/checkout.rs`, 2-core build machine, 5,000 files / 54 MB / 100 directories on
//! tmpfs, median of 7 runs (the ratio to `git archive | tar -x` is what carries over):
//!
//! | method                                   | seconds | vs archive |
//! |------------------------------------------|---------|------------|
//! | `cp -a` of a checked-out copy (floor)    | 0.11    | 0.55       |
//! | this module, 2 threads                   | 0.16    | 0.78       |
//! | this module, 2 threads, no hash check    | 0.11    | 0.56       |
//! | this module, 1 thread                    | 0.30    | 1.49       |
//! | `git archive \| tar -x`                  | 0.20    | 1.00       |
//! | `checkout_tree`, `update_index(false)`   | 0.31    | 1.54       |
//!
//! On a real disk the table turns around: on ext4 creating the 13k inodes of a big tree
//! dominates (symfony: 300 µs per `open(O_CREAT)` under load, see bench/README.md), which
//! is why repeat deploys go through `recycle.rs` and rarely come here.
//!
//! More threads than cores buys nothing (4 threads = 2 threads on 2 cores). About a third
//! of the CPU time is libgit2 re-hashing every object it reads (SHA-1 with collision
//! detection: `git2::opts::strict_hash_verification`, on by default); the rest is zlib
//! inflate and the kernel's writes. That switch is process-global, so this module never
//! flips it: turning it off is a startup decision for the whole service (git itself does
//! not re-hash objects on read, and fetching still hashes every object it indexes).
//!
//! # How
//!
//! The calling thread walks the tree once, refuses unsafe names, creates every directory
//! (parents before children) and collects the blobs to write. Then `threads` writers (the
//! calling thread and `threads - 1` scoped threads), each with its own `git2::Repository`
//! (it is `Send` but not `Sync`), pull entries from a shared counter, so one large blob does
//! not leave a thread idle the way fixed chunks would. Objects are read with `Odb::read`,
//! not `find_blob`, so blobs never enter the object cache (measured: same speed).
//!
//! A crafted tree must never write outside `dest`: names `""`, `"."`, `".."`, or containing
//! `/` or NUL are refused, every directory exists before any symlink is created, and files
//! are opened with `O_CREAT | O_EXCL`, which never follows a symlink. A tree listing the
//! same name twice therefore fails instead of writing through a link it just created.
//!
//! # What it leaves to others
//!
//! - `.gitattributes` filters (`eol`, `ident`, `filter=`, `export-subst`) are **not**
//!   applied, unlike `git checkout` and `git archive`: files are written byte for byte as
//!   stored in the repository. Projects that rely on checkout-time conversion must not.
//!   The one attribute honoured is `export-ignore`, and only with [`Contents::Archive`]
//!   (`export_ignore = true`): its paths are left out as `git archive` leaves them out
//!   (`checkout/attributes.rs`, rules in `core::export_ignore`).
//! - Submodules: gitlinks are skipped without creating the empty directory `git checkout`
//!   and `git archive` leave; their paths are returned for the caller to log.
//! - Durability: nothing is fsynced. A release only becomes visible through the atomic
//!   `current` symlink switch, which is where the caller makes things durable; a crash
//!   before that leaves a half-written directory nobody points at.
//! - Fetching the commit into the mirror, cleaning up old releases, choosing `dest`, and
//!   choosing `threads` (the number of cores is the useful maximum).
//! - Timestamps: every file gets the time it was written (git records none).
//!
//! On error, `dest` (which this call created) is removed again, best effort.
//!
//! Everything here blocks: call it from a blocking thread (`spawn_blocking`).

use std::ffi::OsStr;
use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use git2::{ObjectType, Oid, Repository};

mod attributes;
pub use attributes::Contents;
pub(super) use attributes::Filter;

/// What [`write_tree`] wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CheckoutStats {
    /// Regular files (executable or not).
    pub files: usize,
    pub symlinks: usize,
    /// Directories created below `dest`; `dest` itself is not counted.
    pub directories: usize,
    /// Bytes of regular file content (symlink targets not included).
    pub bytes: u64,
    /// Paths of submodule entries (gitlinks), relative to `dest`, `/`-separated, in tree
    /// order; non-UTF-8 bytes are replaced lossily.
    pub submodules_skipped: Vec<String>,
    /// Entries left out as `export-ignore` ([`Contents::Archive`]); a directory counts
    /// once, whatever it holds.
    pub export_ignored: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error("cannot open repository {path}: {source}")]
    Open { path: PathBuf, source: git2::Error },
    #[error("commit {commit} not found in {path}: {source}")]
    Commit {
        commit: String,
        path: PathBuf,
        source: git2::Error,
    },
    #[error("reading {what} from the repository: {source}")]
    Git { what: String, source: git2::Error },
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("tree entry {name:?} is not a safe file name")]
    UnsafeName { name: String },
    #[error("stopped: a deploy needs the directory")]
    Cancelled,
}

// Git's tree entry modes, as normalized by libgit2's `TreeEntry::filemode()` (which maps
// historical variants such as 0o100664 to 0o100644).
pub(super) const MODE_TREE: i32 = 0o040000;
pub(super) const MODE_BLOB: i32 = 0o100644;
pub(super) const MODE_BLOB_EXECUTABLE: i32 = 0o100755;
pub(super) const MODE_LINK: i32 = 0o120000;
pub(super) const MODE_COMMIT: i32 = 0o160000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    File,
    Executable,
    Symlink,
}

pub(super) struct Job {
    pub(super) path: PathBuf,
    pub(super) oid: Oid,
    pub(super) kind: Kind,
}

#[derive(Default)]
pub(super) struct Counts {
    pub(super) files: usize,
    pub(super) symlinks: usize,
    pub(super) bytes: u64,
}

/// Writes `commit`'s tree from the repository at `repo` into `dest`.
///
/// `commit` is a full hex object id of a commit or of anything that peels to one (an
/// annotated tag). `repo` may be a bare repository or a work tree's top directory; only its
/// object database is read. `dest` must not exist (its parent must): it is created, filled,
/// and on error removed again. `threads` is the number of writer threads, each with its own
/// `Repository`; 0 is treated as 1. `contents` says whether `export-ignore` paths are left
/// out.
///
/// `.gitattributes` filters are not applied and nothing is fsynced: see the module docs.
///
/// Blocking: call from a blocking thread.
pub fn write_tree(
    repo: &Path,
    commit: &str,
    dest: &Path,
    threads: usize,
    contents: Contents,
) -> Result<CheckoutStats, CheckoutError> {
    let never = AtomicBool::new(false);
    write_fresh(repo, commit, dest, threads, contents, &never, true)
}

/// [`write_tree`] that stops between two files once `cancel` is set (then
/// [`CheckoutError::Cancelled`]), and leaves `dest` to the caller on any error: deleting
/// a half-written tree is the reaper's job, not the caller's thread's.
pub(super) fn write_tree_cancellable(
    repo: &Path,
    commit: &str,
    dest: &Path,
    threads: usize,
    contents: Contents,
    cancel: &AtomicBool,
) -> Result<CheckoutStats, CheckoutError> {
    write_fresh(repo, commit, dest, threads, contents, cancel, false)
}

/// [`write_tree`]'s work; `remove_on_error` removes `dest` again once it was created.
fn write_fresh(
    repo: &Path,
    commit: &str,
    dest: &Path,
    threads: usize,
    contents: Contents,
    cancel: &AtomicBool,
    remove_on_error: bool,
) -> Result<CheckoutStats, CheckoutError> {
    let repository = Repository::open(repo).map_err(|source| CheckoutError::Open {
        path: repo.to_path_buf(),
        source,
    })?;
    // Resolve before creating `dest`, so a bad commit leaves nothing behind.
    let tree_id = resolve_tree(&repository, repo, commit)?;
    create_dir(dest)?;
    let mut stats = CheckoutStats::default();
    let start = Start {
        tree: tree_id,
        dest,
        exists: true,
        above: &Filter::new(contents),
    };
    let result = plan(&repository, start, dest, &mut stats)
        .and_then(|planned| write_blobs(&repository, &planned.jobs, threads.max(1), cancel))
        .map(|counts| {
            stats.files = counts.files;
            stats.symlinks = counts.symlinks;
            stats.bytes = counts.bytes;
            stats
        });
    if result.is_err() && remove_on_error {
        // `remove_dir_all` does not follow symlinks, so this stays inside `dest`.
        let _ = fs::remove_dir_all(dest);
    }
    result
}

pub(super) fn resolve_tree(
    repo: &Repository,
    path: &Path,
    commit: &str,
) -> Result<Oid, CheckoutError> {
    let not_found = |source| CheckoutError::Commit {
        commit: commit.to_string(),
        path: path.to_path_buf(),
        source,
    };
    // `Oid::from_str` zero-pads short input, which would turn an abbreviation into a
    // different (missing) id with a confusing error: require a full id.
    let full_length = commit.len() == 40 || commit.len() == 64;
    if !full_length || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(not_found(git2::Error::from_str(
            "expected a full hexadecimal object id",
        )));
    }
    let oid = Oid::from_str(commit).map_err(not_found)?;
    let object = repo.find_object(oid, None).map_err(not_found)?;
    let commit = object.peel_to_commit().map_err(not_found)?;
    Ok(commit.tree_id())
}

/// Where [`plan`] starts: a tree, the directory it goes to (empty, or not there yet), and
/// the `export-ignore` filter of that directory's parent.
pub(super) struct Start<'a> {
    pub(super) tree: Oid,
    pub(super) dest: &'a Path,
    pub(super) exists: bool,
    pub(super) above: &'a Filter,
}

/// What [`plan`] leaves to write.
pub(super) struct Planned {
    pub(super) jobs: Vec<Job>,
    /// Whether the start directory exists now (it was there, or the walk created it).
    pub(super) created: bool,
}

struct PlannedDir {
    path: PathBuf,
    created: bool,
    parent: Option<usize>,
}

/// Walks the tree into `start.dest`, creates its directories, and returns the blobs still
/// to be written. `root` is the release directory submodule and `.gitattributes` paths are
/// relative to (`dest` itself or one of its ancestors).
///
/// A directory is created when the walk meets the first entry below it that is not a
/// directory, whether that entry is left out or not: `git archive` does the same, so a
/// directory holding only directories left out as `export-ignore` is not there (in a
/// whole tree every directory holds some file, and all are created).
pub(super) fn plan(
    repo: &Repository,
    start: Start,
    root: &Path,
    stats: &mut CheckoutStats,
) -> Result<Planned, CheckoutError> {
    let mut jobs = Vec::new();
    let mut dirs = vec![PlannedDir {
        path: start.dest.to_path_buf(),
        created: start.exists,
        parent: None,
    }];
    // An explicit stack rather than recursion: a crafted tree can nest deeper than the
    // thread's stack could follow.
    let mut pending = vec![(start.tree, 0, start.above.clone())];
    while let Some((tree_id, index, above)) = pending.pop() {
        let dir = dirs[index].path.clone();
        let tree = repo
            .find_tree(tree_id)
            .map_err(|source| CheckoutError::Git {
                what: format!("tree {tree_id} for {}", dir.display()),
                source,
            })?;
        let dir_relative = relative(&dir, root);
        let filter = above.enter(repo, dir_relative, &tree)?;
        for entry in tree.iter() {
            let name = entry.name_bytes();
            check_name(name)?;
            let path = dir.join(OsStr::from_bytes(name));
            let is_tree = entry.filemode() == MODE_TREE;
            if !is_tree {
                create_dirs_to(&mut dirs, index, stats)?;
            }
            if filter.ignores(dir_relative, name, is_tree) {
                stats.export_ignored += 1;
                continue;
            }
            match entry.filemode() {
                MODE_TREE => {
                    dirs.push(PlannedDir {
                        path,
                        created: false,
                        parent: Some(index),
                    });
                    pending.push((entry.id(), dirs.len() - 1, filter.clone()));
                }
                MODE_BLOB => jobs.push(Job {
                    path,
                    oid: entry.id(),
                    kind: Kind::File,
                }),
                MODE_BLOB_EXECUTABLE => jobs.push(Job {
                    path,
                    oid: entry.id(),
                    kind: Kind::Executable,
                }),
                MODE_LINK => jobs.push(Job {
                    path,
                    oid: entry.id(),
                    kind: Kind::Symlink,
                }),
                MODE_COMMIT => {
                    let relative = path.strip_prefix(root).unwrap_or(&path);
                    stats
                        .submodules_skipped
                        .push(relative.to_string_lossy().into_owned());
                }
                mode => {
                    return Err(CheckoutError::Git {
                        what: format!("tree entry {}", path.display()),
                        source: git2::Error::from_str(&format!("unsupported file mode {mode:o}")),
                    });
                }
            }
        }
    }
    Ok(Planned {
        jobs,
        created: dirs[0].created,
    })
}

/// Creates directory `index` of the walk and those above it that are not there yet,
/// parents first.
fn create_dirs_to(
    dirs: &mut [PlannedDir],
    index: usize,
    stats: &mut CheckoutStats,
) -> Result<(), CheckoutError> {
    let mut missing = Vec::new();
    let mut next = Some(index);
    while let Some(i) = next.filter(|&i| !dirs[i].created) {
        missing.push(i);
        next = dirs[i].parent;
    }
    for i in missing.into_iter().rev() {
        create_dir(&dirs[i].path)?;
        dirs[i].created = true;
        stats.directories += 1;
    }
    Ok(())
}

/// `path` relative to the release's `root`, as the bytes `.gitattributes` patterns match.
pub(super) fn relative<'p>(path: &'p Path, root: &Path) -> &'p [u8] {
    path.strip_prefix(root)
        .unwrap_or(path)
        .as_os_str()
        .as_bytes()
}

pub(super) fn check_name(name: &[u8]) -> Result<(), CheckoutError> {
    // `.git` too, as git itself refuses it: a tree must not plant a repository (and
    // its hooks) inside a release.
    if name.is_empty()
        || name == b"."
        || name == b".."
        || name.eq_ignore_ascii_case(b".git")
        || name.contains(&b'/')
        || name.contains(&0)
    {
        return Err(CheckoutError::UnsafeName {
            name: String::from_utf8_lossy(name).into_owned(),
        });
    }
    Ok(())
}

pub(super) fn create_dir(path: &Path) -> Result<(), CheckoutError> {
    let io = |source| CheckoutError::Io {
        path: path.to_path_buf(),
        source,
    };
    // Not `create_dir_all`: an existing directory (or anything else) at this path means
    // `dest` was not fresh or the tree lists a name twice, and both must fail.
    DirBuilder::new().create(path).map_err(io)?;
    // The mode passed to mkdir is masked by the umask; the release must not depend on it.
    fs::set_permissions(path, Permissions::from_mode(0o755)).map_err(io)
}

pub(super) fn write_blobs(
    repo: &Repository,
    jobs: &[Job],
    threads: usize,
    cancel: &AtomicBool,
) -> Result<Counts, CheckoutError> {
    let threads = threads.min(jobs.len()).max(1);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let first_error: Mutex<Option<CheckoutError>> = Mutex::new(None);
    let git_dir = repo.path();

    let run = |repo: &Repository| -> Counts {
        let result = write_some(repo, jobs, &next, &stop, cancel);
        match result {
            Ok(counts) => counts,
            Err(error) => {
                stop.store(true, Ordering::Relaxed);
                // A poisoned lock only means another worker panicked; keep the first error.
                let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                slot.get_or_insert(error);
                Counts::default()
            }
        }
    };

    let mut total = Counts::default();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (1..threads)
            .map(|_| {
                scope.spawn(|| match Repository::open_bare(git_dir) {
                    Ok(own) => run(&own),
                    Err(source) => {
                        stop.store(true, Ordering::Relaxed);
                        let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                        slot.get_or_insert(CheckoutError::Open {
                            path: git_dir.to_path_buf(),
                            source,
                        });
                        Counts::default()
                    }
                })
            })
            .collect();
        // The calling thread is one of the writers: its repository is already open and
        // warm, and that saves a thread for `threads == 1`.
        let mine = run(repo);
        total.add(&mine);
        for worker in workers {
            match worker.join() {
                Ok(counts) => total.add(&counts),
                // Re-raise on the caller's thread: a panic in a worker is a bug, not an
                // I/O condition to report.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });

    let error = first_error.into_inner().unwrap_or_else(|p| p.into_inner());
    match error {
        Some(error) => Err(error),
        None if cancel.load(Ordering::Relaxed) => Err(CheckoutError::Cancelled),
        None => Ok(total),
    }
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.files += other.files;
        self.symlinks += other.symlinks;
        self.bytes += other.bytes;
    }
}

fn write_some(
    repo: &Repository,
    jobs: &[Job],
    next: &AtomicUsize,
    stop: &AtomicBool,
    cancel: &AtomicBool,
) -> Result<Counts, CheckoutError> {
    let odb = repo.odb().map_err(|source| CheckoutError::Git {
        what: "the object database".to_string(),
        source,
    })?;
    let mut counts = Counts::default();
    while !stop.load(Ordering::Relaxed) && !cancel.load(Ordering::Relaxed) {
        let Some(job) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) else {
            break;
        };
        let git = |source| CheckoutError::Git {
            what: format!("blob {} for {}", job.oid, job.path.display()),
            source,
        };
        let object = odb.read(job.oid).map_err(git)?;
        if object.kind() != ObjectType::Blob {
            return Err(git(git2::Error::from_str(&format!(
                "expected a blob, found a {}",
                object.kind()
            ))));
        }
        let data = object.data();
        let io = |source| CheckoutError::Io {
            path: job.path.clone(),
            source,
        };
        match job.kind {
            Kind::Symlink => {
                std::os::unix::fs::symlink(OsStr::from_bytes(data), &job.path).map_err(io)?;
                counts.symlinks += 1;
            }
            Kind::File | Kind::Executable => {
                let mode = if job.kind == Kind::Executable {
                    0o755
                } else {
                    0o644
                };
                // `create_new` is O_CREAT|O_EXCL: it never follows a symlink planted by
                // an earlier entry of the same (crafted) tree.
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(mode)
                    .open(&job.path)
                    .map_err(io)?;
                file.write_all(data).map_err(io)?;
                // The open mode was masked by the umask; fchmod is not.
                file.set_permissions(Permissions::from_mode(mode))
                    .map_err(io)?;
                counts.files += 1;
                counts.bytes += data.len() as u64;
            }
        }
    }
    Ok(counts)
}

#[cfg(test)]
pub(crate) mod tests;
