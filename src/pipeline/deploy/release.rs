//! A commit's deploy: fetch → checkout → (seed) → link → build → switch →
//! after_release → health → cleanup, and going back to the previous release when a
//! stage after the switch fails. Environments that `run` leave this path after the
//! build for `blue_green.rs`.

use std::path::Path;

use crate::config::{HealthCheck, HealthTarget, MirrorMode};
use crate::core::deploy::{DeployStatus, Trigger};
use crate::core::event::GitRef;
use crate::core::ids::CommitSha;
use crate::core::release::{
    SkipFacts, new_release_id, releases_to_remove, replay_reason, skip_reason,
};
use crate::core::stage::StageName;
use crate::health;
use crate::pipeline::checkout::Contents;
use crate::pipeline::git::{Mirror, Remote};
use crate::pipeline::{partial, reaper, recycle, releases};

use super::{AfterEnd, Outcome2, Result, Run, Stop, blocking, locked};

impl Run<'_> {
    pub(super) async fn release_commit(&self) -> Outcome2 {
        let mirror = Mirror::new(&self.ctx.config.get().server.state_dir, &self.app.name);
        let commit = self.stage(StageName::Fetch, self.fetch(&mirror)).await?;
        self.skip_if_stale(&mirror, &commit).await?;
        self.report_started(&commit);
        let release = self
            .stage(StageName::Checkout, self.checkout(&mirror, &commit))
            .await?;
        let release_dir = self.env_dir.releases().join(&release);
        if let Some(seed) = self.seed_source() {
            self.stage(StageName::Seed, self.copy_data(seed, StageName::Seed))
                .await?;
        }
        // Shared data is linked before the build by default (builds often need `.env`);
        // `link_after_build` keeps live data out of builds (tests reading live config).
        let link_after_build = self.env_config.link_after_build;
        if !link_after_build {
            self.stage(StageName::Link, self.link(&release_dir)).await?;
        }
        let env = self.command_env(Some(&commit), &release);
        let cache = self.env_dir.cache();
        blocking(move || {
            std::fs::create_dir_all(&cache).map_err(|e| {
                Stop::failed(format!("creating the cache dir {}: {e}", cache.display()))
            })
        })
        .await?;
        self.stage(
            StageName::Build,
            self.commands(StageName::Build, &self.env_config.build, &release_dir, &env),
        )
        .await?;
        if link_after_build {
            self.stage(StageName::Link, self.link(&release_dir)).await?;
        }
        let previous = self.env_dir.live().map(|l| l.release);
        let after_env = env.clone().with_previous_release(previous.as_deref());
        if self.env_config.run.is_some() {
            return self.go_live_running(&release, Some(after_env)).await;
        }
        self.stage(StageName::Switch, self.switch(&release)).await?;
        // From here on the new release is live: it is no longer half-made.
        locked(&self.new_release).take();
        let after = self
            .stage(
                StageName::AfterRelease,
                self.commands(
                    StageName::AfterRelease,
                    &self.env_config.after_release,
                    &release_dir,
                    &after_env,
                ),
            )
            .await;
        if let Err(stop) = after {
            return self.switch_back(previous, stop).await;
        }
        if let Some(HealthCheck {
            target: HealthTarget::Url(url),
            timeout,
        }) = &self.env_config.health_check
        {
            let (url, timeout) = (url.clone(), *timeout);
            let healthy = self
                .stage(StageName::Health, async move {
                    blocking(move || {
                        health::wait_healthy(&url, timeout)
                            .map_err(|e| Stop::failed(format!("health check failed: {e}")))
                    })
                    .await
                })
                .await;
            match healthy {
                Ok(code) => self.info(StageName::Health, &format!("healthy (HTTP {code})")),
                Err(stop) => return self.switch_back(previous, stop).await,
            }
        }
        self.stage(StageName::Cleanup, self.cleanup()).await.ok();
        Ok(None)
    }

    pub(super) async fn fetch(&self, mirror: &Mirror) -> Result<CommitSha> {
        let remote = Remote::of(self.app);
        // A push names the ref to fetch: a branch, a tag, or a pull request's head ref
        // (`refs/pull/7/head`), which holds a fork's commits too.
        let pushed = self.deploy.trigger.is_push_like() && self.deploy.git_ref.starts_with("refs/");
        let refspecs = if pushed {
            vec![format!("+{0}:{0}", self.deploy.git_ref)]
        } else {
            vec![
                "+refs/heads/*:refs/heads/*".into(),
                "+refs/tags/*:refs/tags/*".into(),
            ]
        };
        self.info(
            StageName::Fetch,
            &format!("fetching {} from {}", refspecs.join(" "), remote.url),
        );
        // A push names its commit (for a tag, possibly the tag object); a manual deploy
        // names a ref or a sha; a promote, the commit live in its source.
        let spec = match (&self.deploy.commit, self.deploy.trigger) {
            (Some(commit), _) => commit.clone(),
            (None, _) => self.deploy.git_ref.clone(),
        };
        let timeout = self.env_config.step_timeout;
        let mut fetched = false;
        if self.first_fetch_is_shallow(mirror, pushed).await {
            // Any trouble (no git CLI for an https app, a server that cannot serve a
            // shallow fetch) leaves the ordinary fetch below to do it.
            let shallow = match mirror.fetch_tip(&remote, refspecs.clone(), timeout).await {
                Ok(shallow) => {
                    fetched = true;
                    shallow
                }
                Err(e) => {
                    self.info(
                        StageName::Fetch,
                        &format!("a shallow first fetch failed, fetching the history: {e}"),
                    );
                    false
                }
            };
            if shallow {
                self.info(
                    StageName::Fetch,
                    "first fetch of this mirror: the pushed commit and its files only; \
                     its history follows once this deploy ends",
                );
                locked(&self.after_end).push(AfterEnd::Deepen(partial::Deepen {
                    mirror: mirror.clone(),
                    remote: remote.clone(),
                    refspecs: refspecs.clone(),
                    timeout,
                }));
                // The ref may have moved on since the push: then only its history holds
                // the pushed commit, and the fetch below (which deepens) brings it.
                let (m, s) = (mirror.clone(), spec.clone());
                fetched = blocking(move || Ok(m.resolve_commit(&s).is_ok())).await?;
            }
        }
        if !fetched {
            mirror
                .fetch(&remote, refspecs, timeout)
                .await
                .map_err(|e| Stop::failed(e.to_string()))?;
        }
        let m = mirror.clone();
        let hint = missing_commit_hint(self.deploy.trigger, &self.deploy.git_ref);
        let (commit, found_as) = blocking(move || {
            m.resolve_commit(&spec)
                .map_err(|e| Stop::failed(format!("{e} ({hint})")))
        })
        .await?;
        // A manual `--ref develop` is recorded as the ref it named, so the build sees
        // STAGEHAND_BRANCH=develop; a push keeps the ref it was pushed to.
        if !self.deploy.trigger.is_push_like() && found_as.starts_with("refs/") {
            *locked(&self.git_ref) = found_as;
        }
        let (id, c, r) = (self.deploy.id, commit.clone(), self.git_ref());
        self.ctx
            .store
            .run(move |s| s.set_commit(id, c.as_str(), &r))
            .await?;
        let (m, c) = (mirror.clone(), commit.clone());
        let details = blocking(move || {
            m.commit_details(c.as_str())
                .map_err(|e| Stop::failed(e.to_string()))
        })
        .await;
        // The message is for people reading the history: a commit libgit2 cannot
        // describe still deploys.
        if let Ok((message, author)) = details {
            self.info(
                StageName::Fetch,
                &format!("commit {} {message} ({author})", commit.short()),
            );
            self.ctx
                .store
                .run(move |s| s.set_commit_details(id, &message, &author))
                .await?;
        }
        Ok(commit)
    }

    /// Whether this deploy's fetch may leave history out (`git.rs`, "The first
    /// fetch"): a push to a mirror that holds nothing yet, into an environment with no
    /// live release (so no rule compares against an older commit).
    async fn first_fetch_is_shallow(&self, mirror: &Mirror, pushed: bool) -> bool {
        if !pushed || self.deploy.commit.is_none() || self.env_dir.live().is_some() {
            return false;
        }
        let m = mirror.clone();
        blocking(move || Ok(m.holds_no_history()))
            .await
            .unwrap_or(false)
    }

    pub(super) async fn skip_if_stale(&self, mirror: &Mirror, commit: &CommitSha) -> Result<()> {
        if let Some(live_commit) = self.env_dir.live().and_then(|l| l.commit) {
            let is_live = live_commit == commit.as_str();
            let (m, c, l) = (mirror.clone(), commit.clone(), live_commit.clone());
            let is_ancestor_of_live = !is_live
                && blocking(move || {
                    m.is_ancestor(c.as_str(), &l)
                        .map_err(|e| Stop::failed(e.to_string()))
                })
                .await
                .unwrap_or(false);
            let facts = SkipFacts {
                is_live,
                is_ancestor_of_live,
                forced: self.deploy.forced,
                by_hand: !self.deploy.trigger.is_push_like(),
            };
            if let Some(reason) = skip_reason(facts) {
                return Err(Stop {
                    status: DeployStatus::Skipped,
                    reason: format!("{reason} ({})", &live_commit[..7.min(live_commit.len())]),
                });
            }
        }
        // Forced pushes pass the checks above, so a replayed one is caught only here.
        let git_ref = GitRef::from_full(&self.deploy.git_ref);
        let pushed = self.deploy.trigger.is_push_like() && !matches!(git_ref, GitRef::Other(_));
        if !pushed {
            return Ok(());
        }
        let (m, r) = (mirror.clone(), self.deploy.git_ref.clone());
        let head = blocking(move || {
            m.resolve_commit(&r)
                .map(|(head, _)| head)
                .map_err(|e| Stop::failed(e.to_string()))
        })
        .await
        .ok();
        match replay_reason(
            pushed,
            head.as_ref().map(CommitSha::as_str),
            commit.as_str(),
            git_ref.short(),
        ) {
            Some(reason) => Err(Stop {
                status: DeployStatus::Skipped,
                reason,
            }),
            None => Ok(()),
        }
    }

    pub(super) async fn checkout(&self, mirror: &Mirror, commit: &CommitSha) -> Result<String> {
        if self.app.mirror == MirrorMode::Treeless {
            let timeout = self.env_config.step_timeout;
            let got = partial::prefetch(mirror, &Remote::of(self.app), commit, timeout)
                .await
                .map_err(|e| Stop::failed(format!("checkout: {e}")))?;
            let fetched = match (got.walked, got.trees) {
                (true, _) => "fetched the commit's files and trees in one walk".to_owned(),
                (false, true) => format!("fetched {} files and the commit's trees", got.blobs),
                (false, false) => format!("fetched {} files", got.blobs),
            };
            self.info(StageName::Checkout, &fetched);
        }
        let releases_dir = self.env_dir.releases();
        let dir = releases_dir.clone();
        let (now, sha) = (self.now(), commit.clone());
        let release = blocking(move || {
            std::fs::create_dir_all(&dir)
                .map_err(|e| Stop::failed(format!("creating {}: {e}", dir.display())))?;
            let existing = releases::list_in(&dir)
                .map_err(|e| Stop::failed(format!("listing releases: {e}")))?;
            Ok(new_release_id(now, &sha, &existing))
        })
        .await?;
        let (id, r, c) = (self.deploy.id, release.clone(), commit.to_string());
        self.ctx
            .store
            .run(move |s| s.set_release(id, &r, Some(&c)))
            .await?;
        *locked(&self.new_release) = Some(release.clone());
        let release_dir = releases_dir.join(&release);
        self.info(
            StageName::Checkout,
            &format!("writing {} into releases/{release}", commit.short()),
        );
        let (repo, dest, c, threads) = (
            mirror.path.clone(),
            release_dir.clone(),
            commit.to_string(),
            self.ctx.checkout_threads,
        );
        let contents = self.contents();
        let written = blocking(move || {
            let _writing = reaper::busy();
            let written = recycle::checkout(&repo, &c, &dest, threads, contents)
                .map_err(|e| Stop::failed(format!("checkout: {e}")))?;
            std::fs::write(dest.join("REVISION"), format!("{c}\n"))
                .map_err(|e| Stop::failed(format!("writing REVISION: {e}")))?;
            Ok(written)
        })
        .await?;
        for note in recycle::notes(&written) {
            self.info(StageName::Checkout, &note);
        }
        let stats = written.stats;
        self.info(
            StageName::Checkout,
            &format!(
                "{} files, {} symlinks, {:.1} MB",
                stats.files,
                stats.symlinks,
                stats.bytes as f64 / 1e6
            ),
        );
        if stats.export_ignored > 0 {
            self.info(
                StageName::Checkout,
                &format!(
                    "{} paths left out: .gitattributes marks them export-ignore (export_ignore = true)",
                    stats.export_ignored
                ),
            );
        }
        for path in &stats.submodules_skipped {
            self.info(
                StageName::Checkout,
                &format!("submodule {path} skipped: submodules are not checked out"),
            );
        }
        if !self.env_config.cache.is_empty()
            && let Some(live) = self.env_dir.live()
        {
            let live_dir = self.env_dir.releases().join(&live.release);
            let (paths, dest) = (self.env_config.cache.clone(), release_dir.clone());
            let notes = blocking(move || {
                releases::copy_cache(&live_dir, &dest, &paths)
                    .map_err(|e| Stop::failed(format!("cache: {e}")))
            })
            .await?;
            for note in notes {
                self.info(StageName::Checkout, &note);
            }
        }
        Ok(release)
    }

    pub(super) async fn link(&self, release_dir: &Path) -> Result<()> {
        let (env, dir, shared) = (
            self.env_dir.clone(),
            release_dir.to_owned(),
            self.env_config.shared.clone(),
        );
        let notes = blocking(move || {
            releases::link_shared(&env, &dir, &shared)
                .map_err(|e| Stop::failed(format!("linking shared data: {e}")))
        })
        .await?;
        for note in notes {
            self.info(StageName::Link, &note);
        }
        Ok(())
    }

    pub(super) async fn switch(&self, release: &str) -> Result<()> {
        let (env, r) = (self.env_dir.clone(), release.to_owned());
        blocking(move || {
            releases::switch(&env, &r).map_err(|e| Stop::failed(format!("switching current: {e}")))
        })
        .await?;
        self.info(StageName::Switch, &format!("current → releases/{release}"));
        Ok(())
    }

    /// After a failure past the switch: back to `previous` and `rolled_back`, or, with
    /// nothing to go back to, `failed` with the new release left live. `after_release`
    /// runs again for `previous`, exactly as a manual rollback runs it: whatever it
    /// does (reloading a server) must happen for the release that is live again.
    pub(super) async fn switch_back(&self, previous: Option<String>, stop: Stop) -> Outcome2 {
        if stop.status == DeployStatus::Cancelled {
            return Err(stop);
        }
        let Some(previous) = previous else {
            return Err(Stop::failed(format!(
                "{}; there is no previous release to go back to, so the new one stays live",
                stop.reason
            )));
        };
        let failed_release = self.env_dir.live().map(|l| l.release);
        self.stage(StageName::Switch, self.switch(&previous))
            .await?;
        let previous_dir = self.env_dir.releases().join(&previous);
        let commit = self.env_dir.revision(&previous);
        let env = self
            .command_env(commit.as_ref(), &previous)
            .with_previous_release(failed_release.as_deref());
        let again = self
            .stage(
                StageName::AfterRelease,
                self.commands(
                    StageName::AfterRelease,
                    &self.env_config.after_release,
                    &previous_dir,
                    &env,
                ),
            )
            .await;
        let also = match again {
            Ok(()) => String::new(),
            Err(e) => format!("; after_release for {previous} failed too: {}", e.reason),
        };
        Ok(Some(Stop {
            status: DeployStatus::RolledBack,
            reason: format!("{}; switched back to {previous}{also}", stop.reason),
        }))
    }

    pub(super) async fn cleanup(&self) -> Result<()> {
        let env = self.env_dir.clone();
        let keep = self.env_config.keep_releases;
        // A release a recorded process runs from is never removed under it.
        let (app, name) = (self.app.name.clone(), self.deploy.environment.clone());
        let in_use = self
            .ctx
            .store
            .run(move |s| {
                Ok(s.processes_of(&app, &name)?
                    .into_iter()
                    .map(|p| p.release)
                    .collect::<Vec<_>>())
            })
            .await?;
        let removed = blocking(move || {
            let all = releases::list(&env).map_err(|e| Stop::failed(e.to_string()))?;
            let live = env.live().map(|l| l.release);
            let mut doomed = releases_to_remove(&all, live.as_deref(), keep);
            doomed.retain(|r| !in_use.contains(r));
            for release in &doomed {
                releases::retire_release(&env, release)
                    .map_err(|e| Stop::failed(format!("removing {release}: {e}")))?;
            }
            // Their files (and any a crash left) go in the background: see reaper.rs.
            reaper::sweep(&env.releases())
                .map_err(|e| Stop::failed(format!("queueing removed releases: {e}")))?;
            Ok(doomed)
        })
        .await;
        self.spare_ahead();
        match &removed {
            Ok(list) if list.is_empty() => self.info(
                StageName::Cleanup,
                &format!("keeping every release (keep_releases = {keep})"),
            ),
            Ok(list) => self.info(StageName::Cleanup, &format!("removed {}", list.join(", "))),
            Err(stop) => self.info(
                StageName::Cleanup,
                &format!("cleanup failed (the deploy stands): {}", stop.reason),
            ),
        }
        removed.map(drop)
    }
}

impl Run<'_> {
    /// Leaves a spare of the live release's tree to be written after the deploy when
    /// cleanup retired nothing to recycle (`recycle::prepare_spare`).
    fn spare_ahead(&self) {
        let releases = self.env_dir.releases();
        let Some(live) = self.env_dir.live() else {
            return;
        };
        let Some(commit) = live.commit.clone() else {
            return;
        };
        if recycle::has_spare(&releases) {
            return;
        }
        let mirror = Mirror::new(&self.ctx.config.get().server.state_dir, &self.app.name);
        let after_checkouts = recycle::checkouts_started(&releases);
        locked(&self.after_end).push(AfterEnd::Spare(recycle::SpareAhead {
            repo: mirror.path,
            commit,
            releases,
            id: format!("{}.ahead", live.release),
            threads: self.ctx.checkout_threads,
            contents: self.contents(),
            after_checkouts,
        }));
    }

    /// What a release of this environment holds of its commit's tree.
    fn contents(&self) -> Contents {
        if self.env_config.export_ignore {
            Contents::Archive
        } else {
            Contents::Tree
        }
    }
}

/// Why a commit the deploy names may be missing from the freshly fetched mirror, worded
/// for what named it: a pushed branch may have been rewritten, a pushed tag moved, a
/// hand-typed ref mistyped.
fn missing_commit_hint(trigger: Trigger, git_ref: &str) -> &'static str {
    match (trigger, git_ref) {
        (Trigger::Push, r) if r.starts_with("refs/tags/") => {
            "was the tag deleted or moved before the deploy started?"
        }
        (Trigger::Push, _) => "was the branch force-pushed or deleted before the deploy started?",
        (Trigger::Promote, _) => "the source environment's commit is no longer in the repository",
        _ => "no branch, tag or commit of that name is in the repository",
    }
}
