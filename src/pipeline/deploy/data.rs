//! Runtime data downwards: `seed_from` (once, when a temporary environment is made)
//! and `sync` (by hand) copy another environment's shared directories into this one's,
//! around the source's `before_sync` and the app's `sync` commands.

use crate::command_env::{CommandEnv, DataCopyVars};
use crate::config::EnvironmentConfig;
use crate::core::ids::EnvironmentName;
use crate::core::stage::StageName;
use crate::layout::EnvironmentDir;
use crate::pipeline::sync;

use super::{Result, Run, Stop, blocking};

impl Run<'_> {
    /// A temporary environment on its first deploy starts with a copy of its
    /// `seed_from` environment's data: the environment it names, whose shared data is
    /// still missing here.
    pub(super) fn seed_source(&self) -> Option<EnvironmentName> {
        let seed = self.env_config.seed_from.clone()?;
        let is_new = self.deploy.environment != self.deploy.base_environment
            && !self.env_dir.shared().exists();
        is_new.then_some(seed)
    }

    /// Copies `from`'s shared directories into this environment's, then runs the app's
    /// `sync` commands. Shared *files* are skipped: by convention (`.env`) they hold an
    /// environment's own configuration, and production's credentials must not flow
    /// into staging.
    pub(super) async fn copy_data(&self, from: EnvironmentName, stage: StageName) -> Result<()> {
        let from_dir = EnvironmentDir::new(&self.app.root, &from);
        if !from_dir.shared().is_dir() && stage == StageName::Seed {
            // A preview made before its seed ever deployed starts empty rather than failing.
            self.info(
                stage,
                &format!("`{from}` has no shared data yet: starting empty"),
            );
            return Ok(());
        }
        if !from_dir.shared().is_dir() {
            return Err(Stop::failed(format!(
                "`{from}` has no shared data yet ({} is missing)",
                from_dir.shared().display()
            )));
        }
        let source_config = self.source_config(&from).await?;
        let copy = DataCopyVars {
            app: &self.app.name,
            deploy: self.deploy.id,
            from: &from,
            from_dir: &from_dir,
            to: &self.deploy.environment,
            to_dir: &self.env_dir,
        };
        let env =
            CommandEnv::new(&self.ctx.process_env, &self.env_config.env).with_data_copy(&copy);
        // The source's own commands first, in its directory with its variables: a
        // consistent dump of a live database into shared/, which is then what is copied.
        if let Some(source) = &source_config
            && !source.before_sync.is_empty()
        {
            let source_env =
                CommandEnv::new(&self.ctx.process_env, &source.env).with_data_copy(&copy);
            self.info(stage, &format!("before_sync in `{from}`"));
            self.commands(stage, &source.before_sync, &from_dir.dir, &source_env)
                .await?;
        }
        let exclude = match &source_config {
            Some(source) => source.sync_exclude.union(&self.env_config.sync_exclude),
            None => self.env_config.sync_exclude.clone(),
        };
        if !exclude.is_empty() {
            self.info(
                stage,
                &format!("left out: {}", exclude.patterns().join(", ")),
            );
        }
        let to_shared = self.env_dir.shared();
        for entry in &self.env_config.shared {
            if !entry.is_dir {
                self.info(
                    stage,
                    &format!(
                        "{}: a shared file (per-environment configuration), not copied",
                        entry.path
                    ),
                );
                continue;
            }
            let (source, target) = (
                from_dir.shared().join(&entry.path),
                to_shared.join(&entry.path),
            );
            if !source.is_dir() {
                self.info(
                    stage,
                    &format!("{}/: not in {from}, nothing to copy", entry.path),
                );
                continue;
            }
            let (rel, exclude) = (entry.path.clone(), exclude.clone());
            let stats = blocking(move || {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| Stop::failed(e.to_string()))?;
                }
                sync::copy_tree(&source, &target, &rel, &exclude)
                    .map_err(|e| Stop::failed(format!("copying data: {e}")))
            })
            .await?;
            self.info(
                stage,
                &format!(
                    "{}/: {} copied ({:.1} MB), {} unchanged, {} symlinks, {} left out",
                    entry.path,
                    stats.copied,
                    stats.bytes as f64 / 1e6,
                    stats.unchanged,
                    stats.symlinks,
                    stats.excluded
                ),
            );
        }
        let dir = self.env_dir.dir.clone();
        self.commands(stage, &self.app.sync, &dir, &env).await
    }

    /// The configuration of the environment data is copied from: a configured one, or
    /// the pattern environment a temporary one was made from.
    pub(super) async fn source_config(
        &self,
        from: &EnvironmentName,
    ) -> Result<Option<EnvironmentConfig>> {
        if let Some(config) = self.app.environments.get(from) {
            return Ok(Some(config.clone()));
        }
        let (app, name) = (self.app.name.clone(), from.clone());
        let temporary = self
            .ctx
            .store
            .run(move |s| s.temporary_environments(&app))
            .await?;
        Ok(temporary
            .into_iter()
            .find(|t| t.name == name)
            .and_then(|t| self.app.environments.get(&t.base).cloned()))
    }

    pub(super) async fn sync(&self) -> Result<()> {
        let from = self
            .deploy
            .from_environment
            .clone()
            .ok_or_else(|| Stop::failed("a sync needs the environment to copy from"))?;
        if self.env_config.protected && !self.deploy.forced {
            return Err(Stop::failed(format!(
                "`{}` is protected: data flows into it only with --force",
                self.deploy.environment
            )));
        }
        self.stage(StageName::Sync, self.copy_data(from, StageName::Sync))
            .await
    }
}
