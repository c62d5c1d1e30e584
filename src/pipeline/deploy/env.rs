//! The command environment.

use std::path::Path;

use crate::core::event::GitRef;

use super::Run;
use crate::pipeline::commands;

impl Run<'_> {
    pub(super) fn command_env(
        &self,
        commit: &str,
        release: &str,
        release_dir: &Path,
    ) -> Vec<(String, String)> {
        let mut env = commands::base_env(&self.ctx.process_env);
        env.extend(
            self.env_config
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        let git_ref = GitRef::from_full(&self.git_ref());
        let (branch, tag) = match &git_ref {
            GitRef::Branch(b) => (b.clone(), String::new()),
            GitRef::Tag(t) => (String::new(), t.clone()),
            GitRef::Other(_) => (String::new(), String::new()),
        };
        let vars = [
            ("STAGEHAND_APP", self.app.name.to_string()),
            ("STAGEHAND_ENVIRONMENT", self.deploy.environment.to_string()),
            (
                "STAGEHAND_BASE_ENVIRONMENT",
                self.deploy.base_environment.to_string(),
            ),
            ("STAGEHAND_BRANCH", branch),
            ("STAGEHAND_TAG", tag),
            ("STAGEHAND_REF", self.git_ref()),
            ("STAGEHAND_COMMIT", commit.to_owned()),
            ("STAGEHAND_RELEASE", release.to_owned()),
            ("STAGEHAND_RELEASE_DIR", release_dir.display().to_string()),
            (
                "STAGEHAND_SHARED_DIR",
                self.env_dir.shared().display().to_string(),
            ),
            (
                "STAGEHAND_CACHE_DIR",
                self.env_dir.cache().display().to_string(),
            ),
            ("STAGEHAND_DEPLOY_ID", self.deploy.id.to_string()),
            ("STAGEHAND_TRIGGER", self.deploy.trigger.to_string()),
        ];
        env.extend(vars.into_iter().map(|(k, v)| (k.to_owned(), v)));
        env
    }
}
