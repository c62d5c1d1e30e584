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

/// Issue 10: a source file over 600 lines does several jobs, unless it is one concept
/// and says so. Such a file's module doc (its first `//!` lines) carries "One concept:"
/// and names it; anything else is split (unit tests can live in a sibling `tests.rs`).
#[test]
fn big_files_are_one_concept() {
    const LIMIT: usize = 600;
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = Vec::new();
    for path in rust_files(&src) {
        let text = std::fs::read_to_string(&path).unwrap();
        let lines = text.lines().count();
        let declared = text
            .lines()
            .take_while(|l| l.starts_with("//!") || l.trim().is_empty())
            .any(|l| l.contains("One concept:"));
        if lines > LIMIT && !declared {
            offenders.push(format!("{} ({lines} lines)", path.display()));
        }
    }
    assert!(
        offenders.is_empty(),
        "over {LIMIT} lines without \"One concept:\" in the module doc: {offenders:#?}"
    );
}

/// Issue 10: no import cycle between the crate's top-level modules (`crate::x` from
/// inside `y` is an edge y → x; a module's own children may call each other). A cycle
/// means two modules each need the other to be understood; the fix is to move the
/// shared piece below both (as `layout`, `health`, `command_env` were).
#[test]
fn top_level_modules_form_no_cycle() {
    use std::collections::{BTreeMap, BTreeSet};
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in rust_files(&src) {
        let rel = path.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_owned();
        let is_tests = rel.file_name().is_some_and(|n| n == "tests.rs")
            || rel.components().any(|c| c.as_os_str() == "tests");
        if module == "lib" || module == "main" || is_tests {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = non_test_part(&text);
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() && name != module {
                edges.entry(module.clone()).or_default().insert(name);
            }
        }
    }
    // Depth-first search for a back edge, reporting the cycle it closes.
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for module in edges.keys() {
        if let Some(cycle) = visit(module, &edges, &mut Vec::new(), &mut done) {
            panic!("import cycle between modules: {}", cycle.join(" → "));
        }
    }
}
