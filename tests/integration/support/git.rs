//! The git CLI as a test uses it: run a command, commit files, make the source repo.

use std::path::{Path, PathBuf};

/// Runs the git CLI in `dir`, panicking with its stderr on failure; returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=Ada",
            "-c",
            "user.email=ada@example.com",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Writes `files` (path, content), commits them on the current branch, returns the sha.
pub fn commit(repo: &Path, message: &str, files: &[(&str, &str)]) -> String {
    for (path, content) in files {
        let full = repo.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, content).unwrap();
        git(repo, &["add", path]);
    }
    git(repo, &["commit", "-q", "--allow-empty", "-m", message]);
    git(repo, &["rev-parse", "HEAD"])
}

/// A source repository `<dir>/repo` with `main` and `develop`: an executable script, a
/// symlink, and a `storage/` directory that the shared link replaces.
pub fn source_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    commit(
        &repo,
        "Initial",
        &[
            ("index.html", "<h1>shop</h1>\n"),
            ("bin/hello", "#!/bin/sh\necho hello from the release\n"),
            ("storage/.gitkeep", ""),
        ],
    );
    git(&repo, &["update-index", "--chmod=+x", "bin/hello"]);
    std::os::unix::fs::symlink("index.html", repo.join("home.html")).unwrap();
    git(&repo, &["add", "home.html"]);
    git(&repo, &["commit", "-q", "-m", "Executable and symlink"]);
    git(&repo, &["branch", "develop"]);
    repo
}
