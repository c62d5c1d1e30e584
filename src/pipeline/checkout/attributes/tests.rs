//! `Contents::Archive` against `git archive` itself: the same repositories, the same
//! paths left out.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

use super::super::tests::{git, listing};
use super::super::{Contents, write_tree};

/// Commits `files` (path, content) in a new repository under `dir`; returns the
/// repository and the commit.
fn repository(dir: &Path, files: &[(&str, &str)]) -> (std::path::PathBuf, String) {
    let work = dir.join("work");
    fs::create_dir(&work).expect("mkdir");
    git(&work, &["init", "-q"]);
    for (path, content) in files {
        let path = work.join(path);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, content).expect("write");
    }
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "c"]);
    let commit = git(&work, &["rev-parse", "HEAD"]);
    (work, commit)
}

/// The paths `git archive` writes (directories without their trailing `/`).
fn archived(work: &Path, commit: &str) -> BTreeSet<String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg("git -C \"$0\" archive \"$1\" | tar -t")
        .arg(work)
        .arg(commit)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git archive");
    assert!(out.status.success(), "git archive | tar -t failed");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| l.trim_end_matches('/').to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

fn written(work: &Path, commit: &str, dest: &Path, contents: Contents) -> BTreeSet<String> {
    write_tree(work, commit, dest, 2, contents).expect("write_tree");
    listing(dest)
        .into_keys()
        .map(|k| String::from_utf8(k).expect("utf-8"))
        .collect()
}

#[test]
fn an_archive_release_holds_exactly_what_git_archive_writes() {
    let dir = TempDir::new().expect("tempdir");
    let (work, commit) = repository(
        dir.path(),
        &[
            (
                ".gitattributes",
                "# what a framework's top level says\n\
                 /docs export-ignore\n\
                 *.md export-ignore\n\
                 /KEEP.md -export-ignore\n\
                 build/ export-ignore\n\
                 /lib/**/fixtures export-ignore\n\
                 /src/*/Tests export-ignore\n\
                 [attr]dev-only export-ignore\n\
                 *.dev dev-only\n\
                 \"with space.txt\" export-ignore\n\
                 valued export-ignore=no\n\
                 *.php diff=php\n",
            ),
            ("README.md", "r\n"),
            ("KEEP.md", "k\n"),
            ("docs/index.html", "d\n"),
            ("src/docs/kept.txt", "not anchored at the top\n"),
            ("src/Console/Tests/ATest.php", "t\n"),
            ("src/Console/Command.php", "c\n"),
            ("src/Console/NOTES.md", "n\n"),
            ("src/A/B/Tests/deep.php", "a/b/Tests is not */Tests\n"),
            (
                "build",
                "a file named build: only directories match build/\n",
            ),
            ("web/build/out.js", "o\n"),
            ("lib/x/y/fixtures/f.json", "{}\n"),
            ("lib/fixtures/top.json", "{}\n"),
            ("lib/code.rs", "fn f() {}\n"),
            ("tool.dev", "d\n"),
            ("with space.txt", "s\n"),
            ("valued", "v\n"),
            // A component's own file: anchored to its directory, `.git*` included.
            (
                "src/Console/.gitattributes",
                "/Tests export-ignore\n/.git* export-ignore\n/phpunit.xml.dist export-ignore\nNOTES.md -export-ignore\n[attr]sub export-ignore\n*.sub sub\n",
            ),
            ("src/Console/.gitignore", "vendor/\n"),
            ("src/Console/.github/workflows/ci.yml", "on: push\n"),
            ("src/Console/phpunit.xml.dist", "<phpunit/>\n"),
            (
                "src/Console/x.sub",
                "a macro defined below the top is not one\n",
            ),
            ("only/ignored.md", "the directory stays, empty\n"),
        ],
    );
    let expected = archived(&work, &commit);
    let ours = written(
        &work,
        &commit,
        &dir.path().join("release"),
        Contents::Archive,
    );
    assert_eq!(ours, expected);
    // The fixture exercises every rule: each of these is left out...
    for gone in [
        "README.md",
        "docs",
        "src/Console/Tests",
        "web/build",
        "lib/x/y/fixtures",
        "lib/fixtures",
        "tool.dev",
        "with space.txt",
        "src/Console/.gitattributes",
        "src/Console/.github",
        "src/Console/phpunit.xml.dist",
        "only/ignored.md",
    ] {
        assert!(!ours.contains(gone), "{gone} must be left out");
    }
    // ...and each of these kept.
    for kept in [
        "KEEP.md",
        "src/docs/kept.txt",
        "src/Console/NOTES.md",
        "src/A/B/Tests/deep.php",
        "build",
        "valued",
        "src/Console/x.sub",
        "only",
    ] {
        assert!(ours.contains(kept), "{kept} must be kept");
    }
}

#[test]
fn a_tree_release_ignores_export_ignore() {
    let dir = TempDir::new().expect("tempdir");
    let (work, commit) = repository(
        dir.path(),
        &[
            (".gitattributes", "*.md export-ignore\n"),
            ("README.md", "r\n"),
        ],
    );
    let ours = written(&work, &commit, &dir.path().join("release"), Contents::Tree);
    assert!(ours.contains("README.md") && ours.contains(".gitattributes"));
}

/// The glob port (`core::wildmatch`) against git itself: every row of its table as an
/// anchored `.gitattributes` pattern, answered by one `git check-attr --stdin`.
#[test]
fn the_glob_agrees_with_git_check_attr() {
    use crate::core::wildmatch::{tests::CASES, wildmatch};
    let dir = TempDir::new().expect("tempdir");
    let work = dir.path();
    git(work, &["init", "-q"]);
    // Rows git cannot be asked about as a path: empty, a directory, the root.
    let rows: Vec<(usize, &(bool, &str, &str))> = CASES
        .iter()
        .enumerate()
        .filter(|(_, (_, text, _))| !text.is_empty() && !text.ends_with('/') && *text != ".")
        .collect();
    let lines: String = rows
        .iter()
        .map(|(i, (_, _, pattern))| format!("/{pattern} a{i}\n"))
        .collect();
    fs::write(work.join(".gitattributes"), lines).expect("write");
    let mut set = BTreeSet::new();
    for (i, (_, text, _)) in &rows {
        let out = Command::new("git")
            .arg("-C")
            .arg(work)
            .args(["check-attr", &format!("a{i}"), "--", text])
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .expect("git check-attr");
        assert!(out.status.success());
        if String::from_utf8_lossy(&out.stdout)
            .trim_end()
            .ends_with(": set")
        {
            set.insert(*i);
        }
    }
    for (i, (expected, text, pattern)) in rows {
        let by_git = set.contains(&i);
        assert_eq!(
            by_git, *expected,
            "the table is wrong about {pattern:?} against {text:?}"
        );
        assert_eq!(
            wildmatch(pattern.as_bytes(), text.as_bytes(), true),
            by_git,
            "{pattern:?} against {text:?}"
        );
    }
}
