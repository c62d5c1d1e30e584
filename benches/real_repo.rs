//! Times `checkout::write_tree` on a real repository, on the disk the product uses and on
//! tmpfs, against `git archive | tar -x` (the Capistrano-style peer) in the same run.
//!
//! ```sh
//! git clone --bare https://github.com/symfony/symfony /var/tmp/symfony.git   # once
//! STAGEHAND_BENCH_REPO=/var/tmp/symfony.git cargo bench --bench real_repo
//! ```
//!
//! `STAGEHAND_BENCH_DISK` picks the disk directory (default: `target/`, i.e. the disk the
//! checkout is on); tmpfs rows run only when `/dev/shm` exists. Without a repository the
//! benchmark prints how to get one and exits 0.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use stagehand::pipeline::checkout::{Contents, write_tree};

const RUNS: usize = 5;

type Method<'a> = Box<dyn Fn(&Path) + 'a>;

fn main() {
    let Some(repo) = std::env::var_os("STAGEHAND_BENCH_REPO").map(PathBuf::from) else {
        println!(
            "set STAGEHAND_BENCH_REPO to a bare clone of a big repository, e.g.\n  \
             git clone --bare https://github.com/symfony/symfony /var/tmp/symfony.git"
        );
        return;
    };
    let sha = git_output(&repo, &["rev-parse", "HEAD^{commit}"]);
    let files = git_output(&repo, &["ls-tree", "-r", "--name-only", &sha])
        .lines()
        .count();
    println!("repository {} at {sha}: {files} files", repo.display());

    let disk = std::env::var_os("STAGEHAND_BENCH_DISK")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let mut bases = vec![("disk", disk)];
    if Path::new("/dev/shm").is_dir() {
        bases.push(("tmpfs", PathBuf::from("/dev/shm")));
    }
    for (label, base) in bases {
        let scratch = tempfile::Builder::new()
            .prefix("stagehand-real-repo")
            .tempdir_in(&base)
            .expect("scratch dir");
        let dest = scratch.path().join("dest");
        let write = |threads: usize, contents: Contents| {
            let repo = &repo;
            let sha = &sha;
            move |d: &Path| {
                write_tree(repo, sha, d, threads, contents).expect("write_tree");
            }
        };
        // `git archive` leaves out what `.gitattributes` marks export-ignore (symfony:
        // 5,488 of 13,139 files); `Contents::Archive` is the same tree, like for like.
        let methods: Vec<(&str, Method)> = vec![
            ("write_tree, 1 thread", Box::new(write(1, Contents::Tree))),
            ("write_tree, 2 threads", Box::new(write(2, Contents::Tree))),
            (
                "write_tree, archive contents",
                Box::new(write(2, Contents::Archive)),
            ),
            (
                "git archive | tar -x",
                Box::new(|d: &Path| archive_extract(&repo, &sha, d)),
            ),
        ];
        let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); methods.len()];
        // Rounds, not blocks: outside load then costs each method one sample.
        for _ in 0..RUNS {
            for ((_, run), times) in methods.iter().zip(&mut samples) {
                times.push(time_once(&dest, run));
            }
        }
        let medians: Vec<f64> = samples
            .iter_mut()
            .map(|t| {
                t.sort();
                t[RUNS / 2].as_secs_f64()
            })
            .collect();
        let archive = medians[3];
        println!("\n{label}: {}", base.display());
        println!("{:<28} {:>10} {:>10}", "method", "median s", "/ archive");
        for ((name, _), s) in methods.iter().zip(&medians) {
            println!("{name:<28} {s:>10.3} {:>10.2}", s / archive);
        }
    }
}

fn time_once(dest: &Path, f: &dyn Fn(&Path)) -> Duration {
    let start = Instant::now();
    f(dest);
    let elapsed = start.elapsed();
    fs::remove_dir_all(dest).expect("remove dest");
    elapsed
}

fn archive_extract(repo: &Path, sha: &str, dest: &Path) {
    fs::create_dir(dest).expect("create dest");
    let mut archive = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["archive", sha])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("git archive");
    let status = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(dest)
        .stdin(archive.stdout.take().expect("archive stdout"))
        .status()
        .expect("tar");
    assert!(status.success());
    assert!(archive.wait().expect("git archive").success());
}

fn git_output(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .expect("git");
    assert!(out.status.success(), "git {args:?} failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
