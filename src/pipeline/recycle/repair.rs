//! Repairing a spare into the new commit's tree (the parent module's "Which files are
//! trusted"): one walk over both trees and the spare's directories, keeping what it can
//! trust, discarding the rest, and collecting what must be written.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{self, Permissions};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use git2::{Oid, Repository};
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use super::super::checkout::{
    self, CheckoutError, CheckoutStats, Contents, Filter, Job, Kind, MODE_BLOB,
    MODE_BLOB_EXECUTABLE, MODE_COMMIT, MODE_LINK, MODE_TREE,
};
use super::super::reaper::REMOVING_PREFIX;
use super::{Recycled, Spare, io_at};

pub(super) fn repair(
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
        dirs: Vec::new(),
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
    /// The directories the walk kept from the spare, parents before children.
    dirs: Vec<KeptDir>,
}

struct KeptDir {
    path: PathBuf,
    parent: Option<usize>,
    /// An entry below it is not a directory: `checkout::plan` would have created it.
    /// The others hold only directories left out as export-ignore, and go.
    needed: bool,
}

/// What `lstat` says of one entry of a recycled directory.
struct OnDisk {
    mode: u32,
    nlink: u64,
    ctime: (i64, i64),
}

impl OnDisk {
    fn is(&self, kind: u32) -> bool {
        self.mode & S_IFMT == kind
    }
}

const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

impl<'a> Walk<'a> {
    /// Repairs `root` from the old tree into the new one, collecting the blobs to write.
    /// `above` is the `export-ignore` filter above the root.
    ///
    /// Per directory: one `open`, one `getdents` listing, one `fstatat` per entry by name
    /// (not by path: a full path walk per file was a third of the time on symfony), and
    /// the names compared as borrowed bytes. A path is only built for what changes.
    fn run(&mut self, new_tree: Oid, old_tree: Oid, above: Filter) -> Result<(), CheckoutError> {
        self.dirs.push(KeptDir {
            path: self.root.to_path_buf(),
            parent: None,
            needed: true,
        });
        // An explicit stack, as in `checkout::plan`: trees can nest deeper than a stack.
        let mut pending = vec![(new_tree, old_tree, 0, above)];
        while let Some((new_id, old_id, index, above)) = pending.pop() {
            let dir = self.dirs[index].path.clone();
            let relative = checkout::relative(&dir, self.root);
            let new = self.tree(new_id, &dir)?;
            let filter = above.enter(self.repo, relative, &new)?;
            let entries: Vec<git2::TreeEntry> = new.iter().collect();
            if entries.iter().any(|e| e.filemode() != MODE_TREE) {
                self.mark_needed(index);
            }
            // What the release holds of this directory: left-out entries are unwanted,
            // so whatever sits at their names is discarded below.
            let kept: Vec<&git2::TreeEntry> = entries
                .iter()
                .filter(|e| {
                    let out = filter.ignores(relative, e.name_bytes(), e.filemode() == MODE_TREE);
                    self.stats.export_ignored += usize::from(out);
                    !out
                })
                .collect();
            // Most directories did not change between the two commits: then every entry's
            // blob is the same, and the old tree need not be read.
            let old_tree = match old_id == new_id {
                true => None,
                false => Some(self.tree(old_id, &dir)?),
            };
            let old_entries: Vec<git2::TreeEntry> =
                old_tree.iter().flat_map(|t| t.iter()).collect();
            let old: HashMap<&[u8], (i32, Oid)> = old_entries
                .iter()
                .map(|e| (e.name_bytes(), (e.filemode(), e.id())))
                .collect();
            let fd = open_dir(&dir)?;
            // Every directory is made 0o755 (the build may have left it read-only, and
            // its extras must go) before anything in it is removed.
            make_dir_mode(&fd, &dir)?;
            let wanted: HashSet<&[u8]> = kept.iter().map(|e| e.name_bytes()).collect();
            let mut listing = rustix::fs::Dir::read_from(&fd).map_err(|e| io_at(&dir)(e.into()))?;
            while let Some(entry) = listing.read() {
                let entry = entry.map_err(|e| io_at(&dir)(e.into()))?;
                let name = entry.file_name().to_bytes();
                if name != b"." && name != b".." && !wanted.contains(name) {
                    let is_dir = match entry.file_type() {
                        rustix::fs::FileType::Directory => true,
                        // A filesystem that does not say (d_type unknown): ask.
                        rustix::fs::FileType::Unknown => {
                            lstat_at(&fd, &dir, name)?.is_some_and(|m| m.is(S_IFDIR))
                        }
                        _ => false,
                    };
                    self.discard(&dir.join(OsStr::from_bytes(name)), is_dir)?;
                }
            }
            for entry in kept {
                let name = entry.name_bytes();
                checkout::check_name(name)?;
                let on_disk = lstat_at(&fd, &dir, name)?;
                let before = if old_id == new_id {
                    Some((entry.filemode(), entry.id()))
                } else {
                    old.get(name).copied()
                };
                let mode = entry.filemode();
                let path = || dir.join(OsStr::from_bytes(name));
                let kind = match mode {
                    MODE_TREE => {
                        match (&on_disk, before) {
                            (Some(m), Some((MODE_TREE, old_sub))) if m.is(S_IFDIR) => {
                                self.dirs.push(KeptDir {
                                    path: path(),
                                    parent: Some(index),
                                    needed: false,
                                });
                                let sub = self.dirs.len() - 1;
                                pending.push((entry.id(), old_sub, sub, filter.clone()));
                            }
                            _ => {
                                if let Some(m) = &on_disk {
                                    self.discard(&path(), m.is(S_IFDIR))?;
                                }
                                let path = path();
                                let start = checkout::Start {
                                    tree: entry.id(),
                                    dest: &path,
                                    exists: false,
                                    above: &filter,
                                };
                                let planned =
                                    checkout::plan(self.repo, start, self.root, &mut self.stats)?;
                                if planned.created {
                                    self.mark_needed(index);
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
                        let path = path();
                        if let Some(m) = &on_disk {
                            self.discard(&path, m.is(S_IFDIR))?;
                        }
                        let relative = path.strip_prefix(self.root).unwrap_or(&path);
                        self.stats
                            .submodules_skipped
                            .push(relative.to_string_lossy().into_owned());
                        continue;
                    }
                    mode => {
                        return Err(CheckoutError::Git {
                            what: format!("tree entry {}", path().display()),
                            source: git2::Error::from_str(&format!(
                                "unsupported file mode {mode:o}"
                            )),
                        });
                    }
                };
                let same_blob = before == Some((mode, entry.id()));
                match &on_disk {
                    Some(m) if same_blob && self.untouched(m, kind) => {
                        self.recycled.kept += 1;
                        continue;
                    }
                    Some(m) => self.discard(&path(), m.is(S_IFDIR))?,
                    None => {}
                }
                self.jobs.push(Job {
                    path: path(),
                    oid: entry.id(),
                    kind,
                });
            }
        }
        // Children before parents, so a parent left empty by its children goes too.
        for dir in std::mem::take(&mut self.dirs).into_iter().rev() {
            if !dir.needed {
                self.discard(&dir.path, true)?;
            }
        }
        Ok(())
    }

    /// Directory `index` and every one above it stay.
    fn mark_needed(&mut self, index: usize) {
        let mut next = Some(index);
        while let Some(i) = next.filter(|&i| !self.dirs[i].needed) {
            self.dirs[i].needed = true;
            next = self.dirs[i].parent;
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

    /// Whether the checkout that wrote this file would still recognise it.
    fn untouched(&self, on_disk: &OnDisk, kind: Kind) -> bool {
        let (kind_ok, mode_ok) = match kind {
            Kind::Symlink => (on_disk.is(S_IFLNK), true),
            Kind::File => (on_disk.is(S_IFREG), on_disk.mode & 0o7777 == 0o644),
            Kind::Executable => (on_disk.is(S_IFREG), on_disk.mode & 0o7777 == 0o755),
        };
        kind_ok && mode_ok && on_disk.nlink == 1 && on_disk.ctime < self.since
    }

    /// Removes one entry: a file or symlink at once, a directory (of any size) by one
    /// rename into the trash directory the reaper deletes.
    fn discard(&mut self, path: &Path, is_dir: bool) -> Result<(), CheckoutError> {
        self.recycled.discarded += 1;
        if !is_dir {
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

/// A directory of the recycled tree, opened for the `fstatat`s of its entries. Not
/// following a link: the walk only enters what it saw as a directory.
fn open_dir(dir: &Path) -> Result<OwnedFd, CheckoutError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::open(dir, flags, Mode::empty()).map_err(|e| io_at(dir)(e.into()))
}

/// `lstat` of `name` in the open directory; `None` when nothing is there.
fn lstat_at(fd: &OwnedFd, dir: &Path, name: &[u8]) -> Result<Option<OnDisk>, CheckoutError> {
    match rustix::fs::statat(fd, OsStr::from_bytes(name), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(OnDisk {
            mode: st.st_mode,
            nlink: st.st_nlink,
            ctime: (st.st_ctime, st.st_ctime_nsec as i64),
        })),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(io_at(&dir.join(OsStr::from_bytes(name)))(e.into())),
    }
}

fn make_dir_mode(fd: &OwnedFd, dir: &Path) -> Result<(), CheckoutError> {
    let st = rustix::fs::fstat(fd).map_err(|e| io_at(dir)(e.into()))?;
    if st.st_mode & 0o7777 != 0o755 {
        rustix::fs::fchmod(fd, Mode::from_raw_mode(0o755)).map_err(|e| io_at(dir)(e.into()))?;
    }
    Ok(())
}
