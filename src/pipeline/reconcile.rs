//! Reconciliation, the edge: every `reconcile_interval` (and once at start, after
//! crash recovery) each app's mirror fetches the branches its environments follow,
//! and a deploy with trigger `reconcile` is queued wherever a push went unannounced —
//! GitHub does not retry a failed delivery, and a server that was down never hears of
//! a push. The decisions are `core::reconcile`'s; this module gathers their facts
//! (one pruning fetch per app, the store, the `current` links) and queues the result.
//!
//! It never fights other work: an environment with anything queued or running is left
//! alone (checked in the same transaction that queues), fetches into a mirror take
//! turns with deploys' fetches, and the queued deploy goes through the runner like a
//! push, skip rules included. A failing fetch is logged and tried again next round.

use std::collections::HashSet;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::AppConfig;
use crate::core::deploy::{DeployStatus, Trigger};
use crate::core::event::SKIP_MARKER;
use crate::core::ids::EnvironmentName;
use crate::core::reconcile::{
    Decision, Facts, Rule, Step, Temporary, decide, fetch_refspecs, newest_tag, plan, remembered,
};
use crate::store::{NewDeploy, StoreError, Target};

use super::deploy::Context;
use super::git::{GitError, Mirror, Remote};
use super::partial;
use super::runner::Runner;
use crate::core::routing::RefSource;
use crate::layout::EnvironmentDir;

/// The first words of a `reconcile` deploy's log, after the line naming its trigger.
pub const WHY: &str = "reconciliation found this commit at the head of the branch on the \
     remote, not live, and announced by no delivery (GitHub does not retry a failed one, \
     and none arrives while stagehand is down)";

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("{0}")]
    Git(#[from] GitError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("a blocking task failed: {0}")]
    Task(String),
}

/// What one app's round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RoundSummary {
    pub deploys: usize,
    pub teardowns: usize,
    /// Environments and branches looked at and left as they are.
    pub left: usize,
}

/// Runs a round now and then every `interval` until `shutdown` turns true (a round in
/// progress is dropped then: what it queued is committed, the rest waits for the next
/// start).
pub async fn run(
    ctx: Context,
    runner: Runner,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = round(&ctx, &runner) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One round over every app.
pub async fn round(ctx: &Context, runner: &Runner) {
    // The config as of this round: a reload takes effect from the next one.
    let config = ctx.config.get();
    for app in config.apps.values() {
        let started = std::time::Instant::now();
        match app_round(ctx, app).await {
            Ok(summary) => {
                ctx.metrics.reconcile_round(true);
                let took_ms = started.elapsed().as_millis() as u64;
                if summary.deploys + summary.teardowns > 0 {
                    runner.wake();
                    tracing::info!(app = %app.name, deploys = summary.deploys,
                        teardowns = summary.teardowns, left = summary.left, took_ms,
                        "reconcile round: queued work for pushes no delivery announced");
                } else {
                    tracing::debug!(app = %app.name, left = summary.left, took_ms,
                        "reconcile round: nothing to do");
                }
            }
            Err(e) => {
                // Steps before the failing one may have queued deploys.
                runner.wake();
                ctx.metrics.reconcile_round(false);
                tracing::warn!(app = %app.name, error = %e,
                    "reconcile round failed; trying again next round");
            }
        }
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ReconcileError> + Send + 'static,
) -> Result<T, ReconcileError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ReconcileError::Task(e.to_string()))?
}

fn rules(app: &AppConfig) -> Vec<Rule> {
    app.environments
        .values()
        .map(|e| Rule {
            environment: e.name.clone(),
            source: e.source.clone(),
            auto_deploy: e.auto_deploy,
            protected: e.protected,
        })
        .collect()
}

/// One app: fetch, plan, queue, remember the refs for the next round.
pub async fn app_round(ctx: &Context, app: &AppConfig) -> Result<RoundSummary, ReconcileError> {
    let rules = rules(app);
    let refspecs = fetch_refspecs(&rules);
    let mut summary = RoundSummary::default();
    if refspecs.is_empty() {
        return Ok(summary);
    }
    let mirror = Mirror::new(&ctx.config.get().server.state_dir, &app.name);
    // The longest a deploy of this app may spend on one step bounds the fetch too.
    let timeout = app
        .environments
        .values()
        .map(|e| e.step_timeout)
        .max()
        .unwrap_or(Duration::from_secs(15 * 60));
    let remote_of_app = Remote::of(app);
    let shallow = if first_fetch_is_shallow(app, &rules, &mirror).await {
        match mirror
            .fetch_tip(&remote_of_app, refspecs.clone(), timeout)
            .await
        {
            Ok(shallow) => shallow,
            // As for a deploy: no git CLI, or a server without shallow fetches.
            Err(e) => {
                tracing::info!(app = %app.name, "a shallow first fetch failed, fetching the history: {e}");
                mirror
                    .fetch_pruning(&remote_of_app, refspecs.clone(), timeout)
                    .await?;
                false
            }
        }
    } else {
        mirror
            .fetch_pruning(&remote_of_app, refspecs.clone(), timeout)
            .await?;
        false
    };
    // The history a depth-1 fetch left out: after the deploys this round queues (each
    // fetches it once it has ended), or now when it queues none.
    let deepen = shallow.then(|| partial::Deepen {
        mirror: mirror.clone(),
        remote: remote_of_app.clone(),
        refspecs,
        timeout,
    });
    let m = mirror.clone();
    let remote = blocking(move || Ok(m.refs()?)).await?;
    let name = app.name.clone();
    let (temporaries, seen, busy) = ctx
        .store
        .run(move |s| {
            Ok((
                s.temporary_environments(&name)?,
                s.seen_refs(&name)?,
                s.busy_environments(&name)?,
            ))
        })
        .await?;
    let temporaries: Vec<Temporary> = temporaries
        .into_iter()
        .map(|t| Temporary {
            name: t.name,
            base: t.base,
            branch: t.branch,
        })
        .collect();
    let edge = Edge {
        ctx,
        app,
        mirror: &mirror,
        busy: &busy,
    };
    let mut step_failed = None;
    let steps = plan(&rules, &remote, &temporaries, seen.as_ref());
    for step in steps {
        let subject = step_subject(&step);
        match edge.step(step).await {
            Ok(Some(Done::Deploy)) => summary.deploys += 1,
            Ok(Some(Done::Teardown)) => summary.teardowns += 1,
            Ok(None) => summary.left += 1,
            // One environment's trouble does not hold up the others'.
            Err(e) => {
                tracing::warn!(app = %app.name, %subject, error = %e, "reconcile: this step failed");
                step_failed = Some(e);
            }
        }
    }
    if summary.deploys == 0
        && let Some(deepen) = deepen
    {
        deepen.spawn();
    }
    // Not remembered after a failed step: a branch whose environment could not be
    // made this round must still look new to the next.
    if let Some(e) = step_failed {
        return Err(e);
    }
    let seen_now = remembered(&rules, &remote);
    // An idle round writes nothing.
    if seen.as_ref() != Some(&seen_now) {
        let (name, now) = (app.name.clone(), (ctx.clock)());
        ctx.store
            .run(move |s| s.record_round(&name, &seen_now, now))
            .await?;
    }
    Ok(summary)
}

/// Whether this round's fetch can leave the history out (`git.rs`, "The first fetch"):
/// the mirror holds none yet, nothing of the app is live (no out-of-order question), and
/// no environment follows tags (the newest tag is found by history).
async fn first_fetch_is_shallow(app: &AppConfig, rules: &[Rule], mirror: &Mirror) -> bool {
    if rules.iter().any(|r| matches!(r.source, RefSource::Tag(_))) {
        return false;
    }
    let (root, m) = (app.root.clone(), mirror.clone());
    let nothing_live = move || {
        let live = std::fs::read_dir(&root).is_ok_and(|dirs| {
            dirs.filter_map(Result::ok)
                .any(|d| std::fs::symlink_metadata(d.path().join("current")).is_ok())
        });
        !live && m.is_empty()
    };
    tokio::task::spawn_blocking(nothing_live)
        .await
        .unwrap_or(false)
}

enum Done {
    Deploy,
    Teardown,
}

fn step_subject(step: &Step) -> String {
    match step {
        Step::Compare { environment, .. }
        | Step::CompareTags { environment, .. }
        | Step::Teardown { environment, .. } => environment.to_string(),
        Step::Create { branch, .. } => format!("new environment for `{branch}`"),
        Step::Leave { subject, .. } => subject.clone(),
    }
}

/// What the steps of one app's round share.
struct Edge<'a> {
    ctx: &'a Context,
    app: &'a AppConfig,
    mirror: &'a Mirror,
    busy: &'a HashSet<EnvironmentName>,
}

impl Edge<'_> {
    /// Does one step; what it queued, if anything.
    async fn step(&self, step: Step) -> Result<Option<Done>, ReconcileError> {
        let app = &self.app.name;
        let queued = match step {
            Step::Leave { subject, why } => {
                tracing::debug!(app = %app, %subject, %why, "reconcile: left as it is");
                return Ok(None);
            }
            Step::Teardown {
                environment,
                base,
                branch,
            } => {
                let queued = self.teardown(&environment, base, branch).await?;
                return Ok(queued.then_some(Done::Teardown));
            }
            Step::Compare {
                environment,
                base,
                branch,
                head,
                temporary,
            } => {
                let target = if temporary {
                    Target::Instance {
                        name: environment.clone(),
                        base,
                    }
                } else {
                    Target::Fixed(environment.clone())
                };
                let git_ref = format!("refs/heads/{branch}");
                self.deploy(Some(environment), target, git_ref, head)
                    .await?
            }
            Step::CompareTags { environment, tags } => self.deploy_tag(environment, tags).await?,
            Step::Create { base, branch, head } => {
                // The same cap as a first push: `max_environments`.
                let limit = self.app.environment(&base).and_then(|e| e.max_environments);
                let target = Target::Temporary {
                    base,
                    branch: branch.clone(),
                    reserved: self
                        .app
                        .environments
                        .keys()
                        .map(|n| n.to_string())
                        .collect(),
                    limit,
                };
                let git_ref = format!("refs/heads/{branch}");
                self.deploy(None, target, git_ref, head).await?
            }
        };
        Ok(queued.then_some(Done::Deploy))
    }

    async fn live(&self, environment: &EnvironmentName) -> Result<Option<String>, ReconcileError> {
        let dir = EnvironmentDir::new(&self.app.root, environment);
        blocking(move || Ok(dir.live().and_then(|l| l.commit))).await
    }

    /// Queues a `reconcile` deploy of `head` (found at `git_ref`) if [`decide`] says so;
    /// `environment` is `None` for a temporary environment not made yet. True when one
    /// was queued.
    async fn deploy(
        &self,
        environment: Option<EnvironmentName>,
        target: Target,
        git_ref: String,
        head: String,
    ) -> Result<bool, ReconcileError> {
        let app = &self.app.name;
        let subject = environment.as_ref().map_or_else(
            || format!("new environment for {git_ref}"),
            |e| e.to_string(),
        );
        let mut facts = Facts {
            busy: environment.as_ref().is_some_and(|e| self.busy.contains(e)),
            live: match &environment {
                Some(e) => self.live(e).await?,
                None => None,
            },
            ..Facts::default()
        };
        // The store and the mirror are read only for an environment that looks behind.
        if decide(&head, &facts) == Decision::Deploy {
            facts = self.more_facts(facts, environment.as_ref(), &head).await?;
        }
        if let Decision::Leave(why) = decide(&head, &facts) {
            tracing::debug!(app = %app, %subject, %git_ref, commit = %head, %why, "reconcile: left as it is");
            return Ok(false);
        }
        let new = NewDeploy {
            commit: Some(head.clone()),
            ..NewDeploy::queued(target, Trigger::Reconcile, git_ref.clone())
        };
        let (app_name, now) = (app.clone(), (self.ctx.clock)());
        let queued = self
            .ctx
            .store
            .run(move |s| s.queue_unless_busy(&app_name, new, now))
            .await?;
        let Some(deploy) = queued else {
            tracing::debug!(app = %app, %subject, "reconcile: a deploy was queued there meanwhile");
            return Ok(false);
        };
        self.ctx.metrics.reconcile_queued(false);
        tracing::info!(app = %app, environment = %deploy.environment, %git_ref, commit = %head,
            live = ?facts.live, deploy = %deploy.id,
            "reconcile: the head is not live and no delivery announced it: deploy queued");
        Ok(true)
    }

    /// Picks the newest of `tags` pushed since the previous round ([`newest_tag`], by
    /// history in the mirror) and deploys it as [`Edge::deploy`] would.
    async fn deploy_tag(
        &self,
        environment: EnvironmentName,
        tags: Vec<(String, String)>,
    ) -> Result<bool, ReconcileError> {
        if self.busy.contains(&environment) {
            tracing::debug!(app = %self.app.name, %environment, "reconcile: a deploy is queued or running there");
            return Ok(false);
        }
        let live = self.live(&environment).await?;
        let mirror = self.mirror.clone();
        let picked = blocking(move || {
            let repo_answer = |a: &str, b: &str| mirror.is_ancestor(a, b).unwrap_or(false);
            Ok(newest_tag(&tags, live.as_deref(), repo_answer).cloned())
        })
        .await?;
        match picked {
            Ok((tag, commit)) => {
                let target = Target::Fixed(environment.clone());
                self.deploy(
                    Some(environment),
                    target,
                    format!("refs/tags/{tag}"),
                    commit,
                )
                .await
            }
            Err(why) => {
                tracing::debug!(app = %self.app.name, %environment, %why, "reconcile: left as it is");
                Ok(false)
            }
        }
    }

    async fn more_facts(
        &self,
        mut facts: Facts,
        environment: Option<&EnvironmentName>,
        head: &str,
    ) -> Result<Facts, ReconcileError> {
        if let Some(environment) = environment {
            let (app, env, commit) = (self.app.name.clone(), environment.clone(), head.to_owned());
            facts.tried = self
                .ctx
                .store
                .run(move |s| s.last_outcome_of_commit(&app, &env, &commit))
                .await?
                .filter(|s| {
                    !matches!(
                        s,
                        DeployStatus::Queued | DeployStatus::Waiting | DeployStatus::Running
                    )
                });
        }
        let (mirror, head, live) = (self.mirror.clone(), head.to_owned(), facts.live.clone());
        let (older, skip) = blocking(move || {
            let older = match &live {
                Some(live) => mirror.is_ancestor(&head, live)?,
                None => false,
            };
            let skip = mirror.message(&head)?.contains(SKIP_MARKER);
            Ok((older, skip))
        })
        .await?;
        facts.head_is_older = older;
        facts.skip_marker = skip;
        Ok(facts)
    }

    /// Queues the teardown of a temporary environment whose branch is gone. True when
    /// one was queued.
    async fn teardown(
        &self,
        environment: &EnvironmentName,
        base: EnvironmentName,
        branch: String,
    ) -> Result<bool, ReconcileError> {
        let (app, now, b) = (self.app.name.clone(), (self.ctx.clock)(), branch.clone());
        let queued = self
            .ctx
            .store
            .run(move |s| s.queue_teardown_unless_busy(&app, &base, &b, now))
            .await?;
        let Some(deploy) = queued else {
            tracing::debug!(app = %self.app.name, %environment, "reconcile: its branch is gone, but work is queued there");
            return Ok(false);
        };
        self.ctx.metrics.reconcile_queued(true);
        tracing::info!(app = %self.app.name, %environment, %branch, deploy = %deploy.id,
            "reconcile: the branch is gone and no delivery announced it: teardown queued");
        Ok(true)
    }
}
