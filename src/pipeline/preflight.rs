//! Checks a hand-typed ref before its deploy is queued: the app's mirror fetches the
//! repository's branches and tags, then the ref must name a commit there. A typo
//! (`stagehand deploy shop staging --ref v1.2.4`) is refused at once with the reason,
//! instead of being accepted and failing later, which would also leave a red "failed"
//! on an environment whose live release is fine.
//!
//! The answer pins what was found: the deploy records the commit and the full ref, so
//! the 202 shows exactly what will be deployed.

use std::path::Path;
use std::time::Duration;

use crate::config::AppConfig;
use crate::core::ids::CommitSha;
use crate::pipeline::git::{GitError, Mirror, Remote};

/// How long the fetch before queueing may take: the caller is waiting for an answer.
const FETCH_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// The repository was fetched and has no such branch, tag or commit.
    #[error("no branch, tag or commit {spec:?} in {repo}")]
    Missing { spec: String, repo: String },
    /// The repository could not be fetched and the mirror does not know the ref either.
    #[error("cannot check ref {spec:?}: {source}")]
    Fetch { spec: String, source: GitError },
}

/// A resolved ref: the commit and the full ref it was found under (`spec` itself for a
/// sha).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub commit: String,
    pub full_ref: String,
}

/// Fetches the app's branches and tags into its mirror and resolves `spec` there.
pub async fn resolve(
    app: &AppConfig,
    state_dir: &Path,
    spec: &str,
) -> Result<Resolved, PreflightError> {
    let mirror = Mirror::new(state_dir, &app.name);
    let fetched = mirror
        .fetch(
            &Remote::of(app),
            vec![
                "+refs/heads/*:refs/heads/*".into(),
                "+refs/tags/*:refs/tags/*".into(),
            ],
            FETCH_TIMEOUT,
        )
        .await;
    let (m, s) = (mirror.clone(), spec.to_owned());
    let found = tokio::task::spawn_blocking(move || resolve_named(&m, &s))
        .await
        .map_err(|e| PreflightError::Fetch {
            spec: spec.to_owned(),
            source: GitError::Read(git2::Error::from_str(&e.to_string())),
        })?;
    match (found, fetched) {
        (Ok((commit, full_ref)), _) => Ok(Resolved {
            commit: commit.to_string(),
            full_ref,
        }),
        // Only a successful fetch proves the ref is not there.
        (Err(_), Ok(())) => Err(PreflightError::Missing {
            spec: spec.to_owned(),
            repo: app.repo.clone(),
        }),
        (Err(_), Err(source)) => Err(PreflightError::Fetch {
            spec: spec.to_owned(),
            source,
        }),
    }
}

/// Like [`Mirror::resolve_commit`], but a short name is recorded as the full ref it
/// names (`develop` → `refs/heads/develop`), so the build sees `STAGEHAND_BRANCH`.
fn resolve_named(mirror: &Mirror, spec: &str) -> Result<(CommitSha, String), GitError> {
    if !spec.starts_with("refs/") {
        for full in [format!("refs/heads/{spec}"), format!("refs/tags/{spec}")] {
            if let Ok(found) = mirror.resolve_commit(&full) {
                return Ok(found);
            }
        }
    }
    mirror.resolve_commit(spec)
}
