//! Copying runtime data between environments' `shared/` directories: `stagehand sync`
//! and the seeding of a new temporary environment. Blocking.
//!
//! Like `rsync -a` without `--delete`: a file whose size and modification time match
//! is left alone, others are copied (through a temporary file and a rename, so a reader
//! never sees half a file), modes and mtimes are kept, and files only the target has
//! are kept too: a sync adds and updates, it never loses data. Paths the
//! `sync_exclude` patterns match (see `core::sync_exclude`) are not copied, and a
//! matching directory is skipped with all it holds.
//!
//! # Security
//!
//! Symlinks in the data are copied as symlinks and never followed, so a link in the
//! source cannot make the copy read outside it; and nothing is written through a
//! symlink on the target side either: where the target has a link and the source a
//! directory, the link is replaced. All writes stay under the target directory.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::core::sync_exclude::SyncExclude;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CopyStats {
    pub copied: usize,
    pub unchanged: usize,
    pub symlinks: usize,
    pub directories: usize,
    pub bytes: u64,
    /// Files and directories left out by `sync_exclude`.
    pub excluded: usize,
}

/// Copies the tree at `from` into `to` (created if missing), leaving out what `exclude`
/// matches; `rel` is `from`'s path relative to `shared/` (what patterns see).
pub fn copy_tree(
    from: &Path,
    to: &Path,
    rel: &str,
    exclude: &SyncExclude,
) -> io::Result<CopyStats> {
    let mut stats = CopyStats::default();
    let meta = fs::symlink_metadata(from)?;
    if !meta.is_dir() {
        return Err(io::Error::other(format!(
            "{} is not a directory",
            from.display()
        )));
    }
    let walk = Walk { exclude };
    walk.copy_dir(from, to, rel, meta.permissions().mode(), &mut stats)?;
    Ok(stats)
}

struct Walk<'a> {
    exclude: &'a SyncExclude,
}

impl Walk<'_> {
    fn copy_dir(
        &self,
        from: &Path,
        to: &Path,
        rel: &str,
        mode: u32,
        stats: &mut CopyStats,
    ) -> io::Result<()> {
        match fs::symlink_metadata(to) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                fs::remove_file(to)?;
                fs::create_dir(to)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(to)?,
            Err(e) => return Err(e),
        }
        fs::set_permissions(to, fs::Permissions::from_mode(mode & 0o7777))?;
        stats.directories += 1;
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            let source = entry.path();
            let target = to.join(entry.file_name());
            let child_rel = format!("{rel}/{}", entry.file_name().to_string_lossy());
            if self.exclude.excludes(&child_rel) {
                stats.excluded += 1;
                continue;
            }
            let meta = fs::symlink_metadata(&source)?;
            let kind = meta.file_type();
            if kind.is_dir() {
                self.copy_dir(
                    &source,
                    &target,
                    &child_rel,
                    meta.permissions().mode(),
                    stats,
                )?;
            } else if kind.is_symlink() {
                let link = fs::read_link(&source)?;
                if fs::read_link(&target).is_ok_and(|existing| existing == link) {
                    stats.unchanged += 1;
                    continue;
                }
                remove_any(&target)?;
                std::os::unix::fs::symlink(&link, &target)?;
                stats.symlinks += 1;
            } else if kind.is_file() {
                copy_file(&source, &target, &meta, stats)?;
            }
            // Sockets, fifos and devices are not data to copy.
        }
        Ok(())
    }
}

fn copy_file(
    source: &Path,
    target: &Path,
    meta: &fs::Metadata,
    stats: &mut CopyStats,
) -> io::Result<()> {
    if let Ok(existing) = fs::symlink_metadata(target)
        && existing.is_file()
        && existing.len() == meta.len()
        && existing.modified().ok() == meta.modified().ok()
    {
        stats.unchanged += 1;
        return Ok(());
    }
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = target.with_file_name(format!(".{name}.stagehand-sync"));
    let _ = fs::remove_file(&tmp);
    stats.bytes += fs::copy(source, &tmp)?;
    let file = fs::File::options().write(true).open(&tmp)?;
    if let Ok(modified) = meta.modified() {
        file.set_modified(modified)?;
    }
    fs::set_permissions(
        &tmp,
        fs::Permissions::from_mode(meta.permissions().mode() & 0o7777),
    )?;
    drop(file);
    if fs::symlink_metadata(target).is_ok_and(|m| m.is_dir()) {
        super::releases::remove_tree(target)?;
    }
    fs::rename(&tmp, target)?;
    stats.copied += 1;
    Ok(())
}

fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => super::releases::remove_tree(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_only_what_changed_and_keeps_modes_links_and_extra_files() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("from"), dir.path().join("to"));
        fs::create_dir_all(from.join("uploads/2026")).unwrap();
        fs::write(from.join("uploads/2026/a.jpg"), "aaaa").unwrap();
        fs::write(from.join("uploads/run.sh"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(
            from.join("uploads/run.sh"),
            fs::Permissions::from_mode(0o750),
        )
        .unwrap();
        std::os::unix::fs::symlink("/etc/passwd", from.join("uploads/escape")).unwrap();
        fs::create_dir_all(&to).unwrap();
        fs::write(to.join("only-in-target"), "keep me").unwrap();

        let first = copy_tree(&from, &to, "data", &SyncExclude::default()).unwrap();
        assert_eq!((first.copied, first.symlinks, first.unchanged), (2, 1, 0));
        assert_eq!(
            fs::read_to_string(to.join("uploads/2026/a.jpg")).unwrap(),
            "aaaa"
        );
        assert_eq!(
            fs::metadata(to.join("uploads/run.sh"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o750
        );
        assert_eq!(
            fs::read_link(to.join("uploads/escape")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert_eq!(
            fs::read_to_string(to.join("only-in-target")).unwrap(),
            "keep me"
        );

        let again = copy_tree(&from, &to, "data", &SyncExclude::default()).unwrap();
        assert_eq!((again.copied, again.unchanged), (0, 3));
        fs::write(from.join("uploads/2026/a.jpg"), "changed!").unwrap();
        let third = copy_tree(&from, &to, "data", &SyncExclude::default()).unwrap();
        assert_eq!((third.copied, third.unchanged), (1, 2));
        assert_eq!(
            fs::read_to_string(to.join("uploads/2026/a.jpg")).unwrap(),
            "changed!"
        );
    }

    #[test]
    fn never_writes_through_a_symlink_in_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to, outside) = (
            dir.path().join("from"),
            dir.path().join("to"),
            dir.path().join("outside"),
        );
        fs::create_dir_all(from.join("uploads")).unwrap();
        fs::write(from.join("uploads/a"), "a").unwrap();
        fs::create_dir_all(&to).unwrap();
        fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, to.join("uploads")).unwrap();
        copy_tree(&from, &to, "data", &SyncExclude::default()).unwrap();
        assert!(fs::symlink_metadata(to.join("uploads")).unwrap().is_dir());
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    }
}
