use super::*;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use tempfile::TempDir;

const NON_UTF8_NAME: &[u8] = b"caf\xe9.txt";
const SUBMODULE_TARGET: &str = "1234567890abcdef1234567890abcdef12345678";
const UMASK_CHILD_ENV: &str = "CHECKOUT_TEST_UMASK_CHILD";

/// Runs git isolated from the user's and system's configuration (autocrlf, hooks…).
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    git_stdin(dir, args, None)
}

fn git_stdin(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> String {
    let mut child = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(["-c", "core.safecrlf=false"])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn git");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write stdin");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("git");
    assert!(out.status.success(), "git {args:?} failed");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

struct Fixture {
    dir: TempDir,
    commit: String,
    tag: String,
}

impl Fixture {
    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }
    fn bare(&self) -> PathBuf {
        self.dir.path().join("mirror.git")
    }
    fn dest(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn fixture() -> Fixture {
    let dir = TempDir::new().expect("tempdir");
    let work = dir.path().join("work");
    fs::create_dir(&work).expect("mkdir");
    git(&work, &["init", "-q"]);
    let write = |rel: &str, content: &[u8]| {
        let path = work.join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, content).expect("write");
    };
    write("README.md", b"hello\n");
    write("src/main.rs", b"fn main() {}\n");
    write("src/lib/util.rs", b"pub fn util() {}\n");
    write("empty.txt", b"");
    write("a/b/c/d/e/f/g/h/deep.txt", b"deep down\n");
    write("bin/run.sh", b"#!/bin/sh\necho ran-$1\n");
    fs::set_permissions(work.join("bin/run.sh"), Permissions::from_mode(0o755)).expect("chmod");
    // Line endings and `ident` must come out byte for byte, filters or not.
    write(".gitattributes", b"*.txt text eol=crlf ident\n");
    write("crlf.txt", b"$Id$\nline\n");
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    write("data/big.bin", &big);
    std::os::unix::fs::symlink("src/main.rs", work.join("link-to-main")).expect("symlink");
    std::os::unix::fs::symlink("../../README.md", work.join("src/lib/up")).expect("symlink");
    fs::write(
        work.join(OsStr::from_bytes(NON_UTF8_NAME)),
        b"latin-1 name\n",
    )
    .expect("write");
    git(&work, &["add", "-A"]);
    git(
        &work,
        &[
            "update-index",
            "--add",
            "--cacheinfo",
            &format!("160000,{SUBMODULE_TARGET},vendor/sub"),
        ],
    );
    git(&work, &["commit", "-q", "-m", "fixture"]);
    git(&work, &["tag", "-a", "v1", "-m", "release v1"]);
    let commit = git(&work, &["rev-parse", "HEAD"]);
    let tag = git(&work, &["rev-parse", "v1"]);
    assert_ne!(commit, tag, "an annotated tag is its own object");
    git(
        dir.path(),
        &["clone", "-q", "--bare", "--no-local", "work", "mirror.git"],
    );
    Fixture { dir, commit, tag }
}

/// A path's kind, permission bits and content (also recycle.rs's tests' yardstick).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Node {
    Dir { mode: u32 },
    File { mode: u32, content: Vec<u8> },
    Link { target: Vec<u8> },
}

/// Every path below `root` with its kind, permission bits and content.
pub(crate) fn listing(root: &Path) -> BTreeMap<Vec<u8>, Node> {
    let mut out = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            let rel = path
                .strip_prefix(root)
                .expect("below root")
                .as_os_str()
                .as_bytes()
                .to_vec();
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

fn assert_fixture_written(dest: &Path, stats: &CheckoutStats) {
    assert_eq!(fs::read(dest.join("README.md")).expect("read"), b"hello\n");
    assert_eq!(
        fs::read(dest.join("src/lib/util.rs")).expect("read"),
        b"pub fn util() {}\n"
    );
    assert_eq!(
        fs::read(dest.join("a/b/c/d/e/f/g/h/deep.txt")).expect("read"),
        b"deep down\n"
    );
    assert_eq!(fs::metadata(dest.join("empty.txt")).expect("stat").len(), 0);
    assert_eq!(
        fs::read(dest.join("crlf.txt")).expect("read"),
        b"$Id$\nline\n",
        "filters must not be applied"
    );
    assert_eq!(
        fs::read(dest.join(OsStr::from_bytes(NON_UTF8_NAME))).expect("read"),
        b"latin-1 name\n"
    );
    let mode = |rel: &str| {
        fs::symlink_metadata(dest.join(rel))
            .expect("lstat")
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("bin/run.sh"), 0o755);
    assert_eq!(mode("README.md"), 0o644);
    assert_eq!(mode("src"), 0o755);
    assert_eq!(mode("a/b/c/d/e/f/g/h"), 0o755);
    let out = Command::new(dest.join("bin/run.sh"))
        .arg("ok")
        .output()
        .expect("run script");
    assert_eq!(out.stdout, b"ran-ok\n");
    assert_eq!(
        fs::read_link(dest.join("link-to-main")).expect("read_link"),
        Path::new("src/main.rs")
    );
    assert_eq!(
        fs::read_link(dest.join("src/lib/up")).expect("read_link"),
        Path::new("../../README.md")
    );
    assert_eq!(
        fs::read(dest.join("src/lib/up")).expect("follow link"),
        b"hello\n"
    );
    assert!(!dest.join("vendor/sub").exists());
    assert_eq!(
        *stats,
        CheckoutStats {
            // README, main.rs, util.rs, empty, deep, run.sh, .gitattributes, crlf,
            // big.bin, the non-UTF-8 one.
            files: 10,
            symlinks: 2,
            // src, src/lib, a..h (8), bin, data, vendor.
            directories: 13,
            bytes: (6 + 13 + 17 + 10 + 21 + 27 + 10 + 300_000 + 13) as u64,
            submodules_skipped: vec!["vendor/sub".to_string()],
            export_ignored: 0,
        }
    );
}

#[test]
fn writes_contents_modes_symlinks_and_odd_names_from_a_bare_mirror() {
    let f = fixture();
    let dest = f.dest("release");
    let stats = write_tree(&f.bare(), &f.commit, &dest, 2, Contents::Tree).expect("write_tree");
    assert_fixture_written(&dest, &stats);
    assert!(
        !f.bare().join("index").exists(),
        "the mirror must stay untouched"
    );
}

#[test]
fn works_from_a_non_bare_repository() {
    let f = fixture();
    let from_bare = f.dest("from-bare");
    let from_work = f.dest("from-work");
    write_tree(&f.bare(), &f.commit, &from_bare, 2, Contents::Tree).expect("bare");
    let stats = write_tree(&f.work(), &f.commit, &from_work, 2, Contents::Tree).expect("work tree");
    assert_fixture_written(&from_work, &stats);
    assert_eq!(listing(&from_bare), listing(&from_work));
}

#[test]
fn annotated_tag_writes_the_tagged_commits_tree() {
    let f = fixture();
    let by_commit = f.dest("by-commit");
    let by_tag = f.dest("by-tag");
    let a = write_tree(&f.bare(), &f.commit, &by_commit, 1, Contents::Tree).expect("commit");
    let b = write_tree(&f.bare(), &f.tag, &by_tag, 1, Contents::Tree).expect("tag");
    assert_eq!(a, b);
    assert_eq!(listing(&by_commit), listing(&by_tag));
}

#[test]
fn one_and_four_threads_write_identical_trees() {
    let f = fixture();
    let one = f.dest("one");
    let four = f.dest("four");
    let a = write_tree(&f.bare(), &f.commit, &one, 1, Contents::Tree).expect("1 thread");
    let b = write_tree(&f.bare(), &f.commit, &four, 4, Contents::Tree).expect("4 threads");
    assert_eq!(a, b);
    let listed = listing(&one);
    assert_eq!(listed.len(), 10 + 2 + 13);
    assert_eq!(listed, listing(&four));
}

#[test]
fn matches_git_archive() {
    let f = fixture();
    let ours = f.dest("ours");
    let theirs = f.dest("theirs");
    write_tree(&f.bare(), &f.commit, &ours, 2, Contents::Tree).expect("write_tree");
    // `git archive` applies the fixture's eol/ident attributes and we (by design) do
    // not; the repository's own attributes file outranks the tree's and turns them off,
    // so what remains to compare is the tree itself.
    fs::create_dir_all(f.bare().join("info")).expect("mkdir");
    fs::write(f.bare().join("info/attributes"), "* -text -ident\n").expect("write");
    fs::create_dir(&theirs).expect("mkdir");
    let script = "git -C \"$1\" archive \"$2\" | tar -x -C \"$3\"";
    let status = Command::new("sh")
        .args(["-c", script, "sh"])
        .arg(f.bare())
        .arg(&f.commit)
        .arg(&theirs)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .status()
        .expect("sh");
    assert!(status.success());
    let mut expected = listing(&theirs);
    // `git archive` writes an empty directory for a submodule; we skip it entirely.
    assert!(matches!(
        expected.remove(b"vendor/sub".as_slice()),
        Some(Node::Dir { .. })
    ));
    // git archive applies `tar.umask` (0002) and tar may apply the process umask, we
    // apply neither: compare the exec bit, which is all git records.
    let normalize = |listing: BTreeMap<Vec<u8>, Node>| -> BTreeMap<Vec<u8>, Node> {
        listing
            .into_iter()
            .map(|(path, node)| {
                let node = match node {
                    Node::Dir { .. } => Node::Dir { mode: 0 },
                    Node::File { mode, content } => Node::File {
                        mode: mode & 0o100,
                        content,
                    },
                    link => link,
                };
                (path, node)
            })
            .collect()
    };
    assert_eq!(normalize(listing(&ours)), normalize(expected));
}

#[test]
fn existing_dest_is_refused_and_left_alone() {
    let f = fixture();
    let dest = f.dest("taken");
    fs::create_dir(&dest).expect("mkdir");
    fs::write(dest.join("keep"), b"mine").expect("write");
    let err = write_tree(&f.bare(), &f.commit, &dest, 2, Contents::Tree).expect_err("must refuse");
    assert!(
        matches!(&err, CheckoutError::Io { path, source }
            if path == &dest && source.kind() == std::io::ErrorKind::AlreadyExists),
        "{err:?}"
    );
    let names: Vec<_> = fs::read_dir(&dest)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, vec![OsStr::new("keep").to_os_string()]);
    assert_eq!(fs::read(dest.join("keep")).expect("read"), b"mine");
}

#[test]
fn missing_parent_is_an_io_error() {
    let f = fixture();
    let dest = f.dest("no/such/parent");
    let err = write_tree(&f.bare(), &f.commit, &dest, 2, Contents::Tree).expect_err("must fail");
    assert!(matches!(err, CheckoutError::Io { .. }), "{err:?}");
}

#[test]
fn unknown_or_malformed_commit_is_a_commit_error_and_creates_nothing() {
    let f = fixture();
    let dest = f.dest("release");
    let blob = git(&f.work(), &["rev-parse", "HEAD:README.md"]);
    let short = &f.commit[..12];
    for commit in [
        "0123456789abcdef0123456789abcdef01234567",
        short,
        "not hex at all",
        blob.as_str(),
    ] {
        let err = write_tree(&f.bare(), commit, &dest, 2, Contents::Tree).expect_err("must fail");
        assert!(
            matches!(&err, CheckoutError::Commit { commit: c, .. } if c == commit),
            "{commit}: {err:?}"
        );
        assert!(!dest.exists());
    }
}

#[test]
fn missing_repository_is_an_open_error() {
    let f = fixture();
    let err = write_tree(
        &f.dest("no-repo-here"),
        &f.commit,
        &f.dest("release"),
        2,
        Contents::Tree,
    )
    .expect_err("must fail");
    assert!(matches!(err, CheckoutError::Open { .. }), "{err:?}");
}

/// Writes a tree object byte for byte, bypassing git's own name checks.
fn raw_tree(repo: &Path, entries: &[(&str, &[u8], &str)]) -> String {
    let mut bytes = Vec::new();
    for (mode, name, oid) in entries {
        bytes.extend_from_slice(mode.as_bytes());
        bytes.push(b' ');
        bytes.extend_from_slice(name);
        bytes.push(0);
        let oid = Oid::from_str(oid).expect("oid");
        bytes.extend_from_slice(oid.as_bytes());
    }
    git_stdin(
        repo,
        &["hash-object", "-t", "tree", "-w", "--literally", "--stdin"],
        Some(&bytes),
    )
}

fn raw_commit(repo: &Path, tree: &str) -> String {
    git(repo, &["commit-tree", tree, "-m", "crafted"])
}

#[test]
fn unsafe_names_are_refused_and_nothing_escapes() {
    let f = fixture();
    let repo = f.bare();
    let blob = git_stdin(
        &repo,
        &["hash-object", "-w", "--stdin"],
        Some(b"pwned\n".as_slice()),
    );
    // "" and NUL cannot reach `check_name` through a tree object (libgit2's parser
    // rejects the first, the format ends names at NUL): see `check_name_refuses`.
    for name in [b"..".as_slice(), b".", b"a/../../escape", b"../escape"] {
        // One level down, so a `..` would land next to `dest`, not in it.
        let inner = raw_tree(&repo, &[("100644", name, &blob)]);
        let outer = raw_tree(&repo, &[("40000", b"sub", &inner)]);
        let commit = raw_commit(&repo, &outer);
        let dest = f.dest("release");
        let err = write_tree(&repo, &commit, &dest, 1, Contents::Tree).expect_err("must refuse");
        assert!(
            matches!(err, CheckoutError::UnsafeName { .. }),
            "{name:?}: {err:?}"
        );
        assert!(!dest.exists(), "a failed write removes what it created");
        assert!(!f.dest("escape").exists());
    }
}

#[test]
fn check_name_refuses() {
    for bad in [
        b"".as_slice(),
        b".",
        b"..",
        b".git",
        b".GIT",
        b"a/b",
        b"/",
        b"nul\0",
        b"../x",
    ] {
        assert!(
            matches!(check_name(bad), Err(CheckoutError::UnsafeName { .. })),
            "{bad:?}"
        );
    }
    for good in [
        b"a".as_slice(),
        b"...",
        b".gitignore",
        b".env",
        b"caf\xe9",
        b"a b",
    ] {
        assert!(check_name(good).is_ok(), "{good:?}");
    }
}

#[test]
fn a_duplicate_name_cannot_write_through_a_planted_symlink() {
    let f = fixture();
    let repo = f.bare();
    let victim = f.dest("victim");
    fs::write(&victim, b"original\n").expect("write");
    let target = git_stdin(
        &repo,
        &["hash-object", "-w", "--stdin"],
        Some(victim.as_os_str().as_bytes()),
    );
    let payload = git_stdin(
        &repo,
        &["hash-object", "-w", "--stdin"],
        Some(b"pwned\n".as_slice()),
    );
    let tree = raw_tree(
        &repo,
        &[("120000", b"x", &target), ("100644", b"x", &payload)],
    );
    let commit = raw_commit(&repo, &tree);
    for threads in [1, 2] {
        let dest = f.dest("release");
        let err =
            write_tree(&repo, &commit, &dest, threads, Contents::Tree).expect_err("must fail");
        assert!(matches!(err, CheckoutError::Io { .. }), "{err:?}");
        assert_eq!(fs::read(&victim).expect("read"), b"original\n");
        assert!(!dest.exists());
    }
}

/// umask is per process: run the real check in a child whose umask is 077, so the test
/// harness's other threads are unaffected.
#[test]
fn modes_do_not_depend_on_the_umask() {
    let f = fixture();
    let exe = std::env::current_exe().expect("current_exe");
    let status = Command::new("sh")
        .args([
            "-c",
            "umask 077 && exec \"$0\" --exact --quiet \
             pipeline::checkout::tests::umask_child",
        ])
        .arg(&exe)
        .env(UMASK_CHILD_ENV, f.dir.path())
        .env("CHECKOUT_TEST_COMMIT", &f.commit)
        .status()
        .expect("spawn child");
    assert!(status.success());
    assert!(f.dest("umask-release").join("README.md").exists());
}

#[test]
fn umask_child() {
    let (Some(root), Some(commit)) = (
        std::env::var_os(UMASK_CHILD_ENV),
        std::env::var_os("CHECKOUT_TEST_COMMIT"),
    ) else {
        return;
    };
    let root = PathBuf::from(root);
    let commit = commit.to_str().expect("utf-8");
    let dest = root.join("umask-release");
    let stats =
        write_tree(&root.join("mirror.git"), commit, &dest, 2, Contents::Tree).expect("write_tree");
    assert_fixture_written(&dest, &stats);
}
