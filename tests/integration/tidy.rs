//! Invariants that are tests, not conventions (rust-analyzer's `tidy.rs`): a rule stated
//! in ARCHITECTURE.md that a later change could quietly break fails here instead.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The part of a file before its `#[cfg(test)]` module: tests may use what they like.
fn non_test_part(text: &str) -> &str {
    text.split("#[cfg(test)]").next().unwrap_or(text)
}

/// ARCHITECTURE.md: "core/ does no I/O". Every path that reaches the outside world —
/// files, processes, sockets, clocks, the runtime, the database, git, HTTP — is banned
/// from `src/core/`, so its rules stay testable in tables and cannot fail on I/O.
#[test]
fn core_does_no_io() {
    const BANNED: &[&str] = &[
        "std::fs",
        "std::process",
        "std::net",
        "std::io",
        "std::env",
        "std::thread",
        "SystemTime",
        "Instant::now",
        "tokio",
        "actix",
        "awc",
        "rusqlite",
        "git2",
        "rustix",
    ];
    let core = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core");
    let mut found = Vec::new();
    for file in rust_files(&core) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in non_test_part(&text).lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for banned in BANNED {
                if code.contains(banned) {
                    found.push(format!("{}:{}: {banned}", file.display(), n + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "core/ must do no I/O:\n{}",
        found.join("\n")
    );
}

/// ARCHITECTURE.md: "Only store/ has SQL." Outside `src/store/`, no file names rusqlite.
#[test]
fn only_the_store_has_sql() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let store = src.join("store");
    let mut found = Vec::new();
    for file in rust_files(&src) {
        if file.starts_with(&store) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let names_rusqlite = non_test_part(&text)
            .lines()
            .any(|line| line.split("//").next().unwrap_or("").contains("rusqlite"));
        if names_rusqlite {
            found.push(file.display().to_string());
        }
    }
    assert!(found.is_empty(), "SQL outside store/: {found:?}");
}
