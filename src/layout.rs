//! Where an environment's files live: `<root>/<environment>/{current, releases/, shared/, cache/}`,
//! and reading what is live. Names come from validated [`EnvironmentName`]s, so a
//! joined path never leaves `root`.

use std::path::{Path, PathBuf};

use crate::core::ids::{CommitSha, EnvironmentName};

#[derive(Debug, Clone)]
pub struct EnvironmentDir {
    pub dir: PathBuf,
}

/// The release `current` points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRelease {
    pub release: String,
    /// The content of its `REVISION` file, if readable.
    pub commit: Option<String>,
}

impl EnvironmentDir {
    pub fn new(root: &Path, environment: &EnvironmentName) -> EnvironmentDir {
        EnvironmentDir {
            dir: root.join(environment.as_str()),
        }
    }

    pub fn current(&self) -> PathBuf {
        self.dir.join("current")
    }

    pub fn releases(&self) -> PathBuf {
        self.dir.join("releases")
    }

    pub fn shared(&self) -> PathBuf {
        self.dir.join("shared")
    }

    /// A build cache that outlives releases, at a stable path (`STAGEHAND_CACHE_DIR`):
    /// for tools that write absolute paths into what they cache.
    pub fn cache(&self) -> PathBuf {
        self.dir.join("cache")
    }

    /// The commit `release` was built from, from its `REVISION` file; `None` when that
    /// cannot be read or holds no commit id. Blocking: reads a small file.
    pub fn revision(&self, release: &str) -> Option<CommitSha> {
        let text = std::fs::read_to_string(self.releases().join(release).join("REVISION")).ok()?;
        CommitSha::parse(text.trim()).ok()
    }

    /// Blocking: reads a symlink and a small file.
    pub fn live(&self) -> Option<LiveRelease> {
        let target = std::fs::read_link(self.current()).ok()?;
        let release = target.file_name()?.to_str()?.to_owned();
        let commit = std::fs::read_to_string(self.releases().join(&release).join("REVISION"))
            .ok()
            .map(|s| s.trim().to_owned());
        Some(LiveRelease { release, commit })
    }
}
