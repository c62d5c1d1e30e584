//! How the mirror reaches the app's repository: its URL, credentials, and which fetcher
//! (libgit2 or the git CLI) takes which kind of URL (see the parent module's docs).

use std::path::PathBuf;

use crate::config::{AppConfig, FetchWith, MirrorMode};
use crate::core::secret::Secret;

/// How to reach the app's repository.
#[derive(Debug, Clone)]
pub struct Remote {
    pub url: String,
    pub ssh_key: Option<PathBuf>,
    /// Prints as `***` in `Debug`, like every other secret.
    pub token: Option<Secret>,
    pub with: FetchWith,
    /// A treeless mirror (`pipeline::partial`): fetched by the git CLI with a filter.
    pub treeless: bool,
}

impl Remote {
    pub fn of(app: &AppConfig) -> Remote {
        let treeless = app.mirror == MirrorMode::Treeless;
        let with = match app.fetch_with {
            // libgit2 has no partial clone.
            _ if treeless || is_ssh_url(&app.repo) => FetchWith::GitCli,
            FetchWith::Auto if is_local_url(&app.repo) => FetchWith::GitCli,
            FetchWith::Auto => FetchWith::Git2,
            chosen => chosen,
        };
        Remote {
            url: app.repo.clone(),
            ssh_key: app.ssh_key.clone(),
            token: app.repo_token.clone(),
            with,
            treeless,
        }
    }
}

/// `ssh://…` and scp-like `user@host:path`.
pub fn is_ssh_url(url: &str) -> bool {
    if url.starts_with("ssh://") || url.starts_with("git+ssh://") {
        return true;
    }
    match url.split_once(':') {
        Some((host, _)) => !host.contains('/') && host.contains('@'),
        None => false,
    }
}

/// A path or `file://`: a repository on this machine.
pub fn is_local_url(url: &str) -> bool {
    url.starts_with("file://") || (!url.contains("://") && !is_ssh_url(url))
}
