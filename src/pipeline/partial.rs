//! Treeless mirrors (`mirror = "treeless"`): every commit of the history, and the trees
//! and blobs of only the commits a deploy checks out.
//!
//! # Why
//!
//! A full mirror's first fetch of a big history moves the whole pack: symfony/symfony
//! (72k commits, 385 MB) took 20–60 s here, while its commits alone (`--filter=tree:0`,
//! 27 MB) came in 3–5 s. History is what the deploy rules need (the out-of-order rule's
//! `is_ancestor`, replays, promote, rollback, tags), and commits are all they read; only
//! the checkout needs trees and blobs, and only of one commit.
//!
//! # How
//!
//! The git CLI fetches (libgit2 has no partial clone). The mirror's own config never
//! says it is partial: libgit2 refuses to open a repository with
//! `extensions.partialclone`. Instead every git command run on a treeless mirror gets
//! `-c remote.origin.url=<repo> -c remote.origin.promisor=true` ([`promisor_args`]),
//! which makes its missing objects fetchable from the app's repository.
//!
//! Before a checkout, [`prefetch`] makes the commit's tree complete. When neither the
//! commit's root tree nor its parent's is here (a first deploy), one fetch of the root
//! tree id with a filter that keeps every blob: the server walks the tree once.
//! Otherwise, in two batches:
//! 1. the commit's trees, if its root tree is missing (one fetch of the root tree id
//!    with `--filter=blob:none`);
//! 2. the blobs `git rev-list --objects --missing=print` lists as missing, by id in one
//!    fetch: after a deploy of the parent, only the files that changed.
//!
//! Then `checkout::write_tree` reads the object database as for a full mirror.
//!
//! # The first fetch
//!
//! Described in `git.rs` ("The first fetch"), as it applies to full mirrors too: a
//! push's first fetch into an empty mirror is `--depth=1` and the history follows after
//! the deploy ([`Deepen`]). For a treeless mirror the depth-1 fetch is `--no-filter`: it
//! brings the tip's files, and [`prefetch`] then finds nothing missing.
//!
//! # Limits
//!
//! The repository must serve filters and objects by id: GitHub, GitLab, Gitea and
//! Forgejo do; a local path or `git daemon` needs `uploadpack.allowFilter` and
//! `uploadpack.allowAnySHA1InWant` in the served repository's config. Turning an
//! existing mirror from treeless to full needs the mirror deleted (it is refetched).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::core::duration::format_limit;
use crate::core::ids::CommitSha;

use super::git::{GitError, Mirror, Remote};

/// The filter a treeless mirror fetches refs with: commits only.
pub const FILTER: &str = "tree:0";

#[derive(Debug, thiserror::Error)]
pub enum PartialError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("{what} in the treeless mirror: {detail}")]
    Command { what: String, detail: String },
}

/// The history a shallow first fetch left out ([`Mirror::fetch_tip`]), fetched in the
/// background once that deploy has ended. Whichever fetch of the mirror comes first,
/// this one or the next deploy's (they take turns on the mirror's fetch lock), deepens
/// it: nothing reads history from a shallow mirror.
#[derive(Debug)]
pub struct Deepen {
    pub mirror: Mirror,
    pub remote: Remote,
    pub refspecs: Vec<String>,
    pub timeout: Duration,
}

impl Deepen {
    pub fn spawn(self) {
        tokio::spawn(async move {
            let Deepen {
                mirror,
                remote,
                refspecs,
                timeout,
            } = self;
            if !mirror.is_shallow() {
                return;
            }
            match mirror.fetch(&remote, refspecs, timeout).await {
                Ok(()) => {
                    tracing::info!(mirror = %mirror.path.display(), "fetched the history a first deploy left out")
                }
                // The next fetch of the mirror tries again before anything reads it.
                Err(e) => {
                    tracing::warn!(mirror = %mirror.path.display(), "fetching the history after a first deploy: {e}")
                }
            }
        });
    }
}

/// What [`prefetch`] fetched.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Prefetched {
    /// Whether the commit's trees had to be fetched.
    pub trees: bool,
    /// Blobs fetched by id (0 when the commit's files were all there already).
    pub blobs: usize,
    /// Whether the whole tree came in one walk (nothing near it was here).
    pub walked: bool,
}

/// `-c` arguments (before the git subcommand) that make `url` the promisor remote
/// `origin` of a treeless mirror for that one command.
pub fn promisor_args(url: &str) -> Vec<String> {
    vec![
        "-c".into(),
        format!("remote.origin.url={url}"),
        "-c".into(),
        "remote.origin.promisor=true".into(),
    ]
}

/// Makes every tree and blob of `commit` present in the treeless mirror, in at most two
/// fetches. `commit` must already be in the mirror (fetched with its ref).
pub async fn prefetch(
    mirror: &Mirror,
    remote: &Remote,
    commit: &CommitSha,
    timeout: Duration,
) -> Result<Prefetched, PartialError> {
    let (m, c) = (mirror.clone(), commit.clone());
    let (tree, has_tree, near) = tokio::task::spawn_blocking(move || root_tree(&m, c.as_str()))
        .await
        .map_err(|e| PartialError::Command {
            what: "reading the commit".into(),
            detail: e.to_string(),
        })??;
    let mut done = Prefetched::default();
    if !has_tree && !near {
        // Nothing of this neighbourhood here (a first checkout, an old sha by hand):
        // asking for thousands of blobs by id costs the server a lookup each
        // (symfony's 11,900: 15 s), asking for the root tree with a filter that keeps
        // every blob makes it walk the tree once (5.5 s).
        fetch_walk(mirror, remote, &tree, timeout).await?;
        done.trees = true;
        done.walked = true;
        return Ok(done);
    }
    if !has_tree {
        fetch_ids(mirror, remote, std::slice::from_ref(&tree), timeout).await?;
        done.trees = true;
    }
    let listing = run(
        mirror,
        remote,
        &["rev-list", "--objects", "--missing=print", &tree],
        None,
        timeout,
        "listing the commit's objects",
    )
    .await?;
    let missing = missing_ids(&listing);
    if !missing.is_empty() {
        fetch_ids(mirror, remote, &missing, timeout).await?;
        done.blobs = missing.len();
    }
    Ok(done)
}

/// The ids `git rev-list --missing=print` marks as missing (`?<id>` lines).
fn missing_ids(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter_map(|line| line.strip_prefix('?'))
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect()
}

/// The commit's root tree, whether it is here, and whether its first parent's is (then
/// most of its files are likely here too).
fn root_tree(mirror: &Mirror, commit: &str) -> Result<(String, bool, bool), PartialError> {
    let repo = mirror.open()?;
    let oid = git2::Oid::from_str(commit).map_err(GitError::from)?;
    let commit = repo
        .find_object(oid, None)
        .and_then(|o| o.peel_to_commit())
        .map_err(GitError::from)?;
    let odb = repo.odb().map_err(GitError::from)?;
    let near = commit
        .parent(0)
        .is_ok_and(|parent| odb.exists(parent.tree_id()));
    let tree = commit.tree_id();
    Ok((tree.to_string(), odb.exists(tree), near))
}

/// One fetch of objects by id: trees come without their blobs (`blob:none`), blobs
/// asked for by id always come.
async fn fetch_ids(
    mirror: &Mirror,
    remote: &Remote,
    ids: &[String],
    timeout: Duration,
) -> Result<(), PartialError> {
    fetch_stdin(mirror, remote, ids, "blob:none", timeout).await
}

/// One fetch of a whole tree: every subtree and blob below it, in one server-side walk
/// (a filter that keeps every blob; without a filter the server sends the tree alone).
async fn fetch_walk(
    mirror: &Mirror,
    remote: &Remote,
    tree: &str,
    timeout: Duration,
) -> Result<(), PartialError> {
    let ids = [tree.to_owned()];
    fetch_stdin(mirror, remote, &ids, "blob:limit=1g", timeout).await
}

/// `noop` negotiation: the wants are loose objects, there is no history to offer.
async fn fetch_stdin(
    mirror: &Mirror,
    remote: &Remote,
    ids: &[String],
    filter: &str,
    timeout: Duration,
) -> Result<(), PartialError> {
    let mut input = ids.join("\n");
    input.push('\n');
    let filter = format!("--filter={filter}");
    run(
        mirror,
        remote,
        &[
            "-c",
            "fetch.negotiationAlgorithm=noop",
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            "--recurse-submodules=no",
            &filter,
            "--stdin",
            "origin",
        ],
        Some(input),
        timeout,
        &format!("fetching {} objects", ids.len()),
    )
    .await
    .map(drop)
}

async fn run(
    mirror: &Mirror,
    remote: &Remote,
    args: &[&str],
    stdin: Option<String>,
    timeout: Duration,
    what: &str,
) -> Result<String, PartialError> {
    let fail = |detail: String| PartialError::Command {
        what: what.to_owned(),
        detail,
    };
    let mut cmd = mirror.git_command(remote);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let work = async {
        let mut child = cmd
            .spawn()
            .map_err(|e| fail(format!("cannot run git: {e}")))?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes())
                .await
                .map_err(|e| fail(format!("writing to git: {e}")))?;
        }
        child
            .wait_with_output()
            .await
            .map_err(|e| fail(format!("waiting for git: {e}")))
    };
    let output = tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| fail(format!("timed out after {}", format_limit(timeout))))??;
    if !output.status.success() {
        return Err(fail(format!(
            "git failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Whether the mirror at `path` has fetched with a filter (a `.promisor` pack): for
/// tests and diagnostics.
pub fn is_partial(path: &Path) -> bool {
    std::fs::read_dir(path.join("objects/pack")).is_ok_and(|dir| {
        dir.filter_map(Result::ok)
            .any(|e| e.path().extension().is_some_and(|x| x == "promisor"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_ids_are_the_question_marked_lines_only() {
        let listing = "b732d2e6d254f7353b1235828a3850df599c8b50\n\
                       ?0123456789abcdef0123456789abcdef01234567\n\
                       89abcdef0123456789abcdef0123456789abcdef src/a.php\n\
                       ?fedcba9876543210fedcba9876543210fedcba98\n\
                       ?not-hex\n";
        assert_eq!(
            missing_ids(listing),
            vec![
                "0123456789abcdef0123456789abcdef01234567".to_owned(),
                "fedcba9876543210fedcba9876543210fedcba98".to_owned(),
            ]
        );
        assert!(missing_ids("").is_empty());
    }
}
