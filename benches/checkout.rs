//! Times `checkout::write_tree` against its peers on a 5,000-file / ~52 MB repository.
//!
//! `cargo bench --bench checkout`. Works on tmpfs (/dev/shm) when available, so the numbers
//! measure git and syscalls rather than the disk.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use stagehand::pipeline::checkout::{Contents, write_tree};

const FILES: usize = 5_000;
const DIRECTORIES: usize = 100;
const LARGE_FILES: usize = 20;
/// A way of writing the tree into the given (absent) directory.
type Method<'a> = Box<dyn Fn(&Path) + 'a>;

/// Samples per method, median reported.
const RUNS: usize = 7;

fn main() {
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    println!("working in {} (tmpfs if /dev/shm)", base.display());
    let scratch = tempfile::Builder::new()
        .prefix("stagehand-checkout-bench")
        .tempdir_in(&base)
        .expect("scratch dir");
    let root = scratch.path();

    let work = root.join("work");
    let (files, bytes) = build_work_tree(&work);
    git(&work, &["init", "-q"]);
    git(&work, &["add", "-A"]);
    git(
        &work,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "-m",
            "bench",
        ],
    );
    let sha = git_output(&work, &["rev-parse", "HEAD"]);
    // `--no-local` packs the objects, like a mirror filled by fetches; a local clone would
    // hardlink 5,000 loose objects instead.
    let mirror = root.join("mirror.git");
    git(
        root,
        &[
            "clone",
            "-q",
            "--bare",
            "--no-local",
            work.to_str().expect("utf-8 path"),
            mirror.to_str().expect("utf-8 path"),
        ],
    );
    println!(
        "repository: {files} files, {:.1} MB, {DIRECTORIES} directories, commit {sha}",
        bytes as f64 / 1e6
    );

    let copy = root.join("copy");
    archive_extract(&mirror, &sha, &copy);

    let dest = root.join("dest");
    let write = |threads: usize, verify: bool| {
        let mirror = &mirror;
        let sha = &sha;
        move |d: &Path| {
            // Informational row: libgit2 re-hashes every object it reads (SHA-1 with
            // collision detection). The switch is process-global, so `write_tree` never
            // touches it; this shows what turning it off at startup would buy.
            git2::opts::strict_hash_verification(verify);
            let stats = write_tree(mirror, sha, d, threads, Contents::Tree).expect("write_tree");
            git2::opts::strict_hash_verification(true);
            assert_eq!(stats.files + stats.symlinks, files);
        }
    };
    let methods: Vec<(&str, Method)> = vec![
        ("write_tree, 1 thread", Box::new(write(1, true))),
        ("write_tree, 2 threads", Box::new(write(2, true))),
        ("write_tree, 4 threads", Box::new(write(4, true))),
        (
            "git archive | tar -x",
            Box::new(|d: &Path| archive_extract(&mirror, &sha, d)),
        ),
        (
            "cp -a (floor)",
            Box::new(|d: &Path| {
                let status = Command::new("cp")
                    .arg("-a")
                    .arg(&copy)
                    .arg(d)
                    .status()
                    .expect("cp");
                assert!(status.success());
            }),
        ),
        (
            "git2 checkout_tree",
            Box::new(|d: &Path| checkout_tree(&mirror, &sha, d)),
        ),
        (
            "write_tree, 2 threads, no hash check",
            Box::new(write(2, false)),
        ),
    ];

    // Rounds rather than one block per method: on a shared 2-core machine a burst of
    // outside load then costs every method one sample instead of one method all of them.
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(RUNS); methods.len()];
    for _ in 0..RUNS {
        for ((_, run), times) in methods.iter().zip(&mut samples) {
            times.push(time_once(&dest, run));
        }
    }
    let medians: Vec<f64> = samples
        .iter_mut()
        .map(|times| {
            times.sort();
            times[RUNS / 2].as_secs_f64()
        })
        .collect();

    let archive = medians[3];
    let cp = medians[4];
    println!();
    println!(
        "{:<40} {:>10} {:>12} {:>8}",
        "method", "median s", "/ archive", "/ cp -a"
    );
    for ((name, _), s) in methods.iter().zip(&medians) {
        println!("{name:<40} {s:>10.3} {:>12.2} {:>8.2}", s / archive, s / cp);
    }
}

/// One timed run of `f(dest)`; `dest` is removed after, outside the timing.
fn time_once(dest: &Path, f: &dyn Fn(&Path)) -> Duration {
    let start = Instant::now();
    f(dest);
    let elapsed = start.elapsed();
    fs::remove_dir_all(dest).expect("remove dest");
    elapsed
}

fn archive_extract(repo: &Path, sha: &str, dest: &Path) {
    fs::create_dir(dest).expect("create dest");
    let script = format!(
        "git -C '{}' archive {sha} | tar -x -C '{}'",
        repo.display(),
        dest.display()
    );
    let status = Command::new("sh")
        .arg("-c")
        .arg(script)
        .status()
        .expect("sh");
    assert!(status.success());
}

fn checkout_tree(repo: &Path, sha: &str, dest: &Path) {
    fs::create_dir(dest).expect("create dest");
    let repo = git2::Repository::open_bare(repo).expect("open");
    let commit = repo
        .find_commit(git2::Oid::from_str(sha).expect("oid"))
        .expect("commit");
    let mut builder = git2::build::CheckoutBuilder::new();
    builder.force().target_dir(dest).update_index(false);
    repo.checkout_tree(commit.as_object(), Some(&mut builder))
        .expect("checkout_tree");
}

/// Deterministic text-like content (it compresses like source code does), mixed sizes:
/// most files 1–12 KB, `LARGE_FILES` of 1 MB, some executables, a few symlinks.
fn build_work_tree(work: &Path) -> (usize, u64) {
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let words = [
        "fn", "let", "match", "deploy", "release", "commit", "tree", "blob", "return", "self",
        "struct", "impl", "pub", "use", "if", "else", "for", "while", "Ok", "Err", "path",
    ];
    let dirs: Vec<PathBuf> = (0..DIRECTORIES)
        .map(|i| {
            if i < 10 {
                work.join(format!("d{i}"))
            } else {
                work.join(format!("d{}/sub{i}", i % 10))
            }
        })
        .collect();
    for dir in &dirs {
        fs::create_dir_all(dir).expect("mkdir");
    }
    let symlinks = 10;
    let mut bytes = 0u64;
    for i in 0..FILES - symlinks {
        let size = if i % (FILES / LARGE_FILES) == 7 {
            1 << 20
        } else {
            1024 + (next() % (11 * 1024)) as usize
        };
        let mut content = String::with_capacity(size + 16);
        while content.len() < size {
            let r = next();
            content.push_str(words[(r % words.len() as u64) as usize]);
            content.push(if r % 9 == 0 { '\n' } else { ' ' });
            if r % 5 == 0 {
                content.push_str(&(r % 10_000).to_string());
                content.push(' ');
            }
        }
        content.truncate(size);
        let path = dirs[i % DIRECTORIES].join(format!("file{i}.txt"));
        fs::write(&path, &content).expect("write");
        if i % 50 == 0 {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        bytes += size as u64;
    }
    // file{i} lives in dirs[i] for i < DIRECTORIES, so each link resolves.
    for (i, dir) in dirs.iter().enumerate().take(symlinks) {
        let link = dir.join(format!("link{i}"));
        std::os::unix::fs::symlink(format!("file{i}.txt"), link).expect("symlink");
    }
    (FILES, bytes)
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .status()
        .expect("git");
    assert!(status.success(), "git {args:?} failed");
}

fn git_output(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("git");
    assert!(out.status.success(), "git {args:?} failed");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}
