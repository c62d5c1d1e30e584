//! The runner: picks queued deploys out of SQLite and runs them, one at a time per
//! environment and at most `max_parallel_deploys` at once; recovers after a crash;
//! winds down on shutdown.
//!
//! Work is always taken from the store, never from memory: the HTTP side commits a
//! deploy row and then only nudges the runner ([`Runner::wake`]), so nothing accepted
//! is lost if the process dies in between. A periodic poll is the safety net for a
//! lost nudge.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::core::deploy::next_to_run;
use crate::core::ids::{AppName, EnvironmentName};
use crate::store::StoreError;

use super::checks_gate;
use super::deploy::{Context, execute};
use super::git::Mirror;
use super::{leftovers, reaper, releases};
use crate::layout::EnvironmentDir;

type EnvKey = (AppName, EnvironmentName);

#[derive(Clone)]
pub struct Runner {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: Context,
    cancel: watch::Sender<bool>,
    wake: Notify,
    /// Nudges `checks_gate`: a deploy started waiting, or a check result arrived.
    checks: Notify,
    running: Mutex<HashSet<EnvKey>>,
}

const POLL: Duration = Duration::from_secs(2);

impl Runner {
    /// `ctx.cancel` must be a receiver of the sender passed here.
    pub fn new(ctx: Context, cancel: watch::Sender<bool>) -> Runner {
        Runner {
            inner: Arc::new(Inner {
                ctx,
                cancel,
                wake: Notify::new(),
                checks: Notify::new(),
                running: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// Tells the runner the store has new work.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Tells the checks gate a deploy waits or a check result came in.
    pub fn wake_checks(&self) {
        self.inner.checks.notify_one();
    }

    pub(crate) async fn checks_nudged(&self) {
        self.inner.checks.notified().await;
    }

    /// After a crash: the process groups deploy steps left running are killed (only
    /// those: see `leftovers`), `running` deploys become `interrupted` and their half-made releases
    /// are removed (unless `current` already points at one: then it is live and stays);
    /// lock files a killed fetch left in the mirrors are removed.
    pub async fn recover(&self) -> Result<usize, StoreError> {
        let ctx = &self.inner.ctx;
        let config = ctx.config.get();
        // Before anything fetches: ref locks in a mirror are a killed process's.
        for app in config.apps.keys() {
            let mirror = Mirror::new(&config.server.state_dir, app);
            let path = mirror.path.clone();
            match tokio::task::spawn_blocking(move || mirror.remove_stale_locks()).await {
                Ok(Ok(locks)) if !locks.is_empty() => {
                    tracing::warn!(mirror = %path.display(), ?locks, "removed lock files left by the last stop");
                }
                Ok(Err(e)) => {
                    tracing::warn!(mirror = %path.display(), error = %e, "cannot clear stale lock files");
                }
                _ => {}
            }
        }
        // Before an interrupted release is removed: its steps must stop writing into it.
        // Only groups a step started are recorded, so an app an operator runs from a
        // live release is never among them.
        let groups = ctx.store.run(|s| s.process_groups()).await?;
        if !groups.is_empty() {
            let list = groups.clone();
            let killed = tokio::task::spawn_blocking(move || leftovers::kill_recorded(&list))
                .await
                .unwrap_or(0);
            if killed > 0 {
                tracing::warn!(
                    groups = killed,
                    "killed build processes left by the last stop"
                );
            }
            ctx.store
                .run(move |s| s.forget_process_groups(&groups))
                .await?;
        }
        let now = (ctx.clock)();
        let interrupted = ctx.store.run(move |s| s.interrupt_running(now)).await?;
        let count = interrupted.len();
        for deploy in interrupted {
            let Some(app) = config.apps.get(&deploy.app) else {
                continue;
            };
            let env = EnvironmentDir::new(&app.root, &deploy.environment);
            let Some(release) = deploy.release.clone() else {
                continue;
            };
            let removed = tokio::task::spawn_blocking(move || {
                // A kill during cleanup leaves a release half removed, out of the listing.
                let half_removed = reaper::sweep(&env.releases())?;
                if half_removed > 0 {
                    tracing::warn!(half_removed, environment = %env.dir.display(), "queued what the last stop left of removed releases for deletion");
                }
                if env.live().is_some_and(|l| l.release == release) {
                    return Ok(false);
                }
                releases::remove_release(&env, &release).map(|()| true)
            })
            .await;
            tracing::warn!(deploy = %deploy.id, app = %deploy.app, environment = %deploy.environment,
                release = ?deploy.release, removed = ?removed.map(|r| r.map_err(|e| e.to_string())),
                "deploy interrupted by a restart");
        }
        Ok(count)
    }

    /// Runs deploys until `shutdown` turns true; then lets running ones finish for
    /// `shutdown_grace`, cancels what is left (their groups are killed, half-made
    /// releases removed, status `cancelled`) and returns.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        let mut tasks: JoinSet<EnvKey> = JoinSet::new();
        let limit = self.inner.ctx.config.get().server.max_parallel_deploys;
        loop {
            if *shutdown.borrow() {
                break;
            }
            while tasks.len() < limit {
                match self.start_next().await {
                    Ok(Some((key, deploy))) => {
                        let ctx = self.inner.ctx.clone();
                        tasks.spawn(async move {
                            execute(&ctx, deploy).await;
                            key
                        });
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read the deploy queue");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = self.inner.wake.notified() => {}
                Some(done) = tasks.join_next(), if !tasks.is_empty() => self.done(done),
                _ = shutdown.changed() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
        let grace = self.inner.ctx.config.get().server.shutdown_grace;
        if !tasks.is_empty() {
            tracing::info!(
                running = tasks.len(),
                grace_s = grace.as_secs(),
                "waiting for running deploys"
            );
        }
        let deadline = tokio::time::sleep(grace);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                done = tasks.join_next() => match done {
                    Some(done) => self.done(done),
                    None => break,
                },
                _ = &mut deadline, if !*self.inner.cancel.borrow() => {
                    tracing::warn!("grace period over: cancelling running deploys");
                    let _ = self.inner.cancel.send(true);
                }
            }
        }
    }

    fn done(&self, joined: Result<EnvKey, tokio::task::JoinError>) {
        match joined {
            Ok(key) => {
                self.running().remove(&key);
            }
            Err(e) => {
                // A panicking deploy task: its environment key stays reserved until
                // restart, which then marks the deploy interrupted. Loud, because it is a bug.
                tracing::error!(error = %e, "a deploy task panicked");
            }
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashSet<EnvKey>> {
        self.inner.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the next deploy of an environment that is not busy, coalescing that
    /// environment's queue.
    async fn start_next(
        &self,
    ) -> Result<Option<(EnvKey, crate::core::deploy::Deploy)>, StoreError> {
        let ctx = &self.inner.ctx;
        let queued = ctx.store.run(|s| s.queued()).await?;
        let busy: HashSet<EnvKey> = self.running().clone();
        let mut seen: HashSet<EnvKey> = HashSet::new();
        for q in &queued {
            let key = (q.app.clone(), q.environment.clone());
            if busy.contains(&key) || !seen.insert(key.clone()) {
                continue;
            }
            let of_env: Vec<_> = queued
                .iter()
                .filter(|o| o.app == q.app && o.environment == q.environment)
                .map(|o| (o.id, o.trigger))
                .collect();
            let Some((id, superseded)) = next_to_run(&of_env) else {
                continue;
            };
            let trigger = of_env.iter().find(|(i, _)| *i == id).map(|(_, t)| *t);
            if checks_gate::hold(ctx, &q.app, id, trigger, &superseded).await? {
                self.wake_checks();
                continue;
            }
            let now = (ctx.clock)();
            if let Some(deploy) = ctx
                .store
                .run(move |s| s.start(id, &superseded, now))
                .await?
            {
                self.running().insert(key.clone());
                return Ok(Some((key, deploy)));
            }
        }
        Ok(None)
    }
}
