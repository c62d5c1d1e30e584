use super::ahead::{ahead_of, prepare_spare};
use super::*;
use crate::pipeline::checkout::tests::{Node, listing};
use std::collections::BTreeMap;
use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::Ordering;
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
        self.deploy_as(release, commit, Contents::Tree)
    }
    fn deploy_as(&self, release: &str, commit: &str, contents: Contents) -> Written {
        let dest = self.releases().join(release);
        let written = checkout(&self.repo(), commit, &dest, 2, contents).expect("checkout");
        self.settle_manifest(release);
        written
    }
    /// Re-records `id`'s manifest one clock tick after everything written so far, and
    /// lets the clock move on once more (see [`Fixture::deploy`]).
    fn settle_manifest(&self, id: &str) {
        let manifest = self.releases().join(MANIFESTS).join(id);
        next_tick(&manifest);
        let recorded = fs::read(&manifest).expect("manifest");
        fs::write(&manifest, recorded).expect("re-record");
        next_tick(&manifest);
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
        self.fresh_as(commit, Contents::Tree)
    }
    fn fresh_as(&self, commit: &str, contents: Contents) -> BTreeMap<Vec<u8>, Node> {
        let dest = self.dir.path().join(format!("fresh-{commit}"));
        let _ = fs::remove_dir_all(&dest);
        checkout::write_tree(&self.repo(), commit, &dest, 1, contents).expect("write_tree");
        listing(&dest)
    }
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
    fs::set_permissions(f.work().join("mode.sh"), Permissions::from_mode(0o755)).expect("chmod");
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
    fs::set_permissions(r1.join("vendor/pkg/ro"), Permissions::from_mode(0o555)).expect("chmod");
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
    assert!(trash.join("0/pkg/ro/lib.php").is_file() || trash.join("1/pkg/ro/lib.php").is_file());
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

#[test]
fn a_spare_written_ahead_is_recycled_by_the_next_checkout() {
    let f = Fixture::new();
    f.write("a.txt", b"a\n");
    f.write("dir/b.txt", b"b\n");
    let c1 = f.commit();
    f.write("a.txt", b"a, changed\n");
    let c2 = f.commit();
    f.deploy("r1", &c1);
    assert!(!has_spare(&f.releases()));

    assert!(
        prepare_spare(
            &f.repo(),
            &c1,
            &f.releases(),
            "r1.ahead",
            2,
            Contents::Tree,
            checkouts_started(&f.releases())
        )
        .expect("prepare")
    );
    let spare = f.releases().join(format!("{SPARE_PREFIX}r1.ahead"));
    assert_eq!(listing(&spare), f.fresh(&c1));
    assert!(f.releases().join(MANIFESTS).join("r1.ahead").is_file());
    // The live release is untouched and not shared: a different inode per file.
    let live = fs::metadata(f.releases().join("r1/a.txt")).expect("stat");
    let ahead = fs::metadata(spare.join("a.txt")).expect("stat");
    assert_ne!(live.ino(), ahead.ino());
    // One spare at a time.
    assert!(
        !prepare_spare(
            &f.repo(),
            &c1,
            &f.releases(),
            "r1.again",
            2,
            Contents::Tree,
            checkouts_started(&f.releases())
        )
        .expect("prepare")
    );

    // As in `Fixture::deploy`: files written in the manifest's clock tick are not
    // trusted; the test's whole tree was.
    f.settle_manifest("r1.ahead");
    let second = f.deploy("r2", &c2);
    let recycled = second.recycled.clone().expect("recycled");
    assert_eq!(recycled.from, "r1.ahead");
    assert_eq!(recycled.kept, 1, "{second:?}");
    assert_eq!(listing(&f.releases().join("r2")), f.fresh(&c2));
    assert!(!has_spare(&f.releases()));
}

#[test]
fn a_checkout_stops_a_spare_being_written_and_its_half_goes_to_the_reaper() {
    let f = Fixture::new();
    for i in 0..200 {
        f.write(&format!("f{i}.txt"), format!("{i}\n").as_bytes());
    }
    let c1 = f.commit();
    // A checkout is starting: the cancel flag is up when the writer looks.
    let ahead = ahead_of(&f.releases());
    ahead.cancel.store(true, Ordering::SeqCst);
    assert!(
        !prepare_spare(
            &f.repo(),
            &c1,
            &f.releases(),
            "r0.ahead",
            2,
            Contents::Tree,
            checkouts_started(&f.releases())
        )
        .expect("prepare")
    );
    ahead.cancel.store(false, Ordering::SeqCst);
    assert!(!has_spare(&f.releases()));

    // Stopped halfway: what it wrote is hidden for the reaper, and no spare appears.
    std::thread::scope(|scope| {
        let seen = checkouts_started(&f.releases());
        let (repo, releases, commit) = (f.repo(), f.releases(), c1.clone());
        let writer = scope.spawn(move || {
            prepare_spare(
                &repo,
                &commit,
                &releases,
                "r1.ahead",
                1,
                Contents::Tree,
                seen,
            )
        });
        let preparing = f.releases().join(format!("{PREPARING_PREFIX}r1.ahead"));
        while !preparing.exists() && !writer.is_finished() {
            std::thread::yield_now();
        }
        ahead.cancel.store(true, Ordering::SeqCst);
        let made = writer.join().expect("join").expect("prepare");
        ahead.cancel.store(false, Ordering::SeqCst);
        if !made {
            assert!(!preparing.exists());
            assert!(
                f.releases()
                    .join(format!("{REMOVING_PREFIX}r1.ahead.unfinished"))
                    .is_dir()
            );
            assert!(!has_spare(&f.releases()));
        }
    });
    // A checkout after it writes in full or recycles; either way the exact tree.
    let written = f.deploy("r1", &c1);
    assert_eq!(listing(&f.releases().join("r1")), f.fresh(&c1));
    assert_eq!(written.fallback, None);
}

#[test]
fn a_spare_a_crash_left_half_written_goes_to_the_reaper() {
    let f = Fixture::new();
    f.write("a.txt", b"a\n");
    let c1 = f.commit();
    let leftover = f.releases().join(format!("{PREPARING_PREFIX}r0.ahead"));
    fs::create_dir_all(leftover.join("half")).expect("mkdir");
    let seen = checkouts_started(&f.releases());
    assert!(
        prepare_spare(
            &f.repo(),
            &c1,
            &f.releases(),
            "r1.ahead",
            1,
            Contents::Tree,
            seen
        )
        .expect("prepare")
    );
    assert!(!leftover.exists());
    assert!(
        f.releases()
            .join(format!("{REMOVING_PREFIX}r0.ahead.unfinished"))
            .is_dir()
    );
    assert!(has_spare(&f.releases()));
}

#[test]
fn a_spare_asked_for_before_another_checkout_began_is_not_written() {
    let f = Fixture::new();
    f.write("a.txt", b"a\n");
    let c1 = f.commit();
    let seen = checkouts_started(&f.releases());
    f.deploy("r1", &c1);
    assert!(
        !prepare_spare(
            &f.repo(),
            &c1,
            &f.releases(),
            "r0.ahead",
            1,
            Contents::Tree,
            seen
        )
        .expect("prepare")
    );
    assert!(!has_spare(&f.releases()));
    let seen = checkouts_started(&f.releases());
    assert!(
        prepare_spare(
            &f.repo(),
            &c1,
            &f.releases(),
            "r1.ahead",
            1,
            Contents::Tree,
            seen
        )
        .expect("prepare")
    );
}

/// `export_ignore` turned on, changed and turned off between deploys: each recycled
/// release is exactly what a full checkout of the same contents writes, including a
/// directory that ends up holding only directories left out (not created, as in
/// `git archive`) and one whose every file is left out (kept, empty, as in `git archive`).
#[test]
fn recycling_follows_export_ignore_both_ways() {
    let f = Fixture::new();
    f.write(".gitattributes", b"*.md export-ignore\n");
    f.write("app.php", b"<?php\n");
    f.write("README.md", b"readme\n");
    f.write("lib/x/fixtures/a.json", b"{}\n");
    f.write("lib/code.php", b"<?php\n");
    f.write("docs/GUIDE.md", b"guide\n");
    let c1 = f.commit();
    f.write(
        ".gitattributes",
        b"*.md export-ignore\n/lib/**/fixtures export-ignore\n",
    );
    let c2 = f.commit();

    // Whole tree, then recycled into the archive contents of the next commit.
    f.deploy("r1", &c1);
    f.retire("r1");
    let second = f.deploy_as("r2", &c2, Contents::Archive);
    assert!(second.recycled.is_some(), "{second:?}");
    let expected = f.fresh_as(&c2, Contents::Archive);
    assert_eq!(listing(&f.releases().join("r2")), expected);
    assert!(
        !expected.contains_key(b"lib/x".as_slice()),
        "holds only a left-out directory"
    );
    assert!(
        expected.contains_key(b"docs".as_slice()),
        "its one file is left out"
    );
    assert!(!expected.contains_key(b"README.md".as_slice()));
    assert!(second.stats.export_ignored >= 3, "{second:?}");

    // And back to the whole tree.
    f.retire("r2");
    let third = f.deploy_as("r3", &c2, Contents::Tree);
    assert!(third.recycled.is_some(), "{third:?}");
    assert_eq!(listing(&f.releases().join("r3")), f.fresh(&c2));
}
