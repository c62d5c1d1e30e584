//! `require_checks`: automatic deploys wait for their commit's checks on the forge.
//!
//! The runner hands a push or reconcile deploy of such an environment to [`hold`]
//! instead of starting it (it becomes `waiting`); [`run`] then looks at every waiting
//! deploy each second and whenever nudged (a check event arrived: `http/hooks.rs`
//! records it through [`record_event`]), asks the forge's API now and then
//! (`server.checks_poll_interval`, with the token the app reports with), and applies
//! `core::checks::decide`: back to the queue (marked passed, so the runner starts it),
//! or `skipped` with the failed check's name or the time limit.
//!
//! It never starts a deploy itself and never touches a release: a skipped deploy
//! leaves the live one as it was. Manual deploys, promotes and rollbacks never come
//! here; people asked for those.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::{AppConfig, Config};
use crate::core::checks::{self, Verdict};
use crate::core::deploy::{Deploy, DeployStatus, Trigger};
use crate::core::forge::{Forge, status::auth};
use crate::core::ids::{AppName, DeployId};
use crate::core::time::UnixMillis;
use crate::store::StoreError;

use super::deploy::Context;
use super::runner::Runner;

/// How often waiting deploys are looked at without a nudge: time limits end on time.
const TICK: Duration = Duration::from_secs(1);

/// Called by the runner for the deploy it would start next: when it must wait for its
/// checks, moves it to `waiting` (superseding `superseded` and older waiting ones of
/// its environment) and answers true: the runner then leaves it alone.
pub async fn hold(
    ctx: &Context,
    app: &AppName,
    id: DeployId,
    trigger: Option<Trigger>,
    superseded: &[DeployId],
) -> Result<bool, StoreError> {
    if !trigger.is_some_and(Trigger::is_push_like) {
        return Ok(false);
    }
    // Most apps require no checks: spare them a read per deploy started.
    let config = ctx.config.get();
    let Some(app_config) = config.apps.get(app) else {
        return Ok(false);
    };
    if app_config
        .environments
        .values()
        .all(|e| e.require_checks.is_none())
    {
        return Ok(false);
    }
    let Some((base, passed)) = ctx.store.run(move |s| s.checks_facts(id)).await? else {
        return Ok(false);
    };
    let required = app_config
        .environment(&base)
        .is_some_and(|e| e.require_checks.is_some());
    if passed || !required {
        return Ok(false);
    }
    let now = (ctx.clock)();
    let superseded = superseded.to_vec();
    let held = ctx
        .store
        .run(move |s| s.hold_for_checks(id, &superseded, now))
        .await?;
    if let Some(deploy) = &held {
        tracing::info!(deploy = %id, app = %app, environment = %deploy.environment,
            commit = ?deploy.commit, "waiting for the commit's checks");
    }
    Ok(true)
}

/// A verified check event (GitHub `check_run`/`check_suite`/`status`, GitLab `Pipeline
/// Hook`, Gitea/Forgejo `status`): its results, stored; how many it carried. One naming
/// another repository than the app's is refused, as a push would be.
pub async fn record_event(
    ctx_store: &crate::store::Store,
    app: &AppName,
    repository: &str,
    forge: Forge,
    event: &str,
    body: &[u8],
    now: UnixMillis,
) -> Result<usize, RecordError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| RecordError::Body(e.to_string()))?;
    if let Some(named) = checks::event_repository(forge, &value)
        && !named.eq_ignore_ascii_case(repository)
    {
        return Err(RecordError::OtherRepository {
            named: named.to_owned(),
            expected: repository.to_owned(),
        });
    }
    let results = checks::from_event(forge, event, &value);
    let count = results.len();
    if count > 0 {
        let app = app.clone();
        ctx_store
            .run(move |s| s.record_check_results(&app, &results, now))
            .await?;
    }
    Ok(count)
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("the check event's body is not JSON: {0}")]
    Body(String),
    #[error("check event is from repository {named:?}, but the app deploys {expected:?}")]
    OtherRepository { named: String, expected: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Looks at waiting deploys until `shutdown` turns true.
pub async fn run(ctx: Context, runner: Runner, mut shutdown: watch::Receiver<bool>) {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    let mut polled: HashMap<DeployId, UnixMillis> = HashMap::new();
    loop {
        if *shutdown.borrow() {
            return;
        }
        if let Err(e) = pass(&ctx, &runner, &client, &mut polled).await {
            tracing::error!(error = %e, "cannot read the deploys waiting for checks");
        }
        tokio::select! {
            _ = runner.checks_nudged() => {}
            _ = tokio::time::sleep(TICK) => {}
            _ = shutdown.changed() => {}
        }
    }
}

async fn pass(
    ctx: &Context,
    runner: &Runner,
    client: &awc::Client,
    polled: &mut HashMap<DeployId, UnixMillis>,
) -> Result<(), StoreError> {
    let waiting = ctx.store.run(|s| s.waiting()).await?;
    polled.retain(|id, _| waiting.iter().any(|d| d.id == *id));
    let config = ctx.config.get();
    for deploy in waiting {
        let verdict = verdict(ctx, client, &config, &deploy, polled).await?;
        let id = deploy.id;
        let now = (ctx.clock)();
        match verdict {
            Verdict::Wait => {}
            Verdict::Go => {
                let status = ctx.store.run(move |s| s.release_checked(id, now)).await?;
                tracing::info!(deploy = %id, app = %deploy.app, environment = %deploy.environment,
                    ?status, "the commit's checks passed");
                if status == Some(DeployStatus::Queued) {
                    runner.wake();
                }
            }
            Verdict::Skip(reason) => {
                tracing::info!(deploy = %id, app = %deploy.app, environment = %deploy.environment,
                    %reason, "not deployed: checks");
                ctx.store
                    .run(move |s| s.end_unstarted(id, DeployStatus::Skipped, &reason, None, now))
                    .await?;
            }
        }
    }
    Ok(())
}

async fn verdict(
    ctx: &Context,
    client: &awc::Client,
    config: &Config,
    deploy: &Deploy,
    polled: &mut HashMap<DeployId, UnixMillis>,
) -> Result<Verdict, StoreError> {
    let app = config.apps.get(&deploy.app);
    let env = app.and_then(|a| a.environment(&deploy.base_environment));
    // A reload that dropped the requirement (or the environment) lets it go: the
    // runner applies its own rules to what is gone.
    let (Some(app), Some(env)) = (app, env) else {
        return Ok(Verdict::Go);
    };
    let Some(required) = &env.require_checks else {
        return Ok(Verdict::Go);
    };
    let Some(commit) = deploy.commit.clone() else {
        return Ok(Verdict::Skip(
            "the delivery named no commit whose checks to wait for".into(),
        ));
    };
    let now = (ctx.clock)();
    let due = polled
        .get(&deploy.id)
        .is_none_or(|last| now.0 - last.0 >= config.server.checks_poll_interval.as_millis() as i64);
    if due {
        polled.insert(deploy.id, now);
        let results = poll(client, app, &commit).await;
        if !results.is_empty() {
            let name = deploy.app.clone();
            ctx.store
                .run(move |s| s.record_check_results(&name, &results, now))
                .await?;
        }
    }
    let (name, sha) = (deploy.app.clone(), commit);
    let results = ctx.store.run(move |s| s.check_results(&name, &sha)).await?;
    Ok(checks::decide(
        required,
        &results,
        now.0 - deploy.created_at.0,
        env.checks_timeout.as_millis() as i64,
    ))
}

/// The forge API's word on `commit`'s checks, with the token the app reports with;
/// nothing without one, or when the forge does not answer (the next poll tries again).
async fn poll(client: &awc::Client, app: &AppConfig, commit: &str) -> Vec<checks::CheckResult> {
    let (token, api) = match (&app.github_report, &app.status_report) {
        (Some(github), _) if app.forge == Forge::Github => (&github.token, &github.api_url),
        (_, Some(statuses)) => (&statuses.token, &statuses.api_url),
        _ => return Vec::new(),
    };
    let (header, value) = auth(app.forge, token);
    let mut out = Vec::new();
    for url in checks::poll_urls(app.forge, api, &app.repository, commit) {
        let sent = client
            .get(&url)
            .insert_header(("User-Agent", "stagehand"))
            .insert_header(("Accept", "application/json"))
            .insert_header((header, value.expose()))
            .send()
            .await;
        match sent {
            Ok(mut resp) if resp.status().is_success() => {
                let body = resp.body().limit(4 << 20).await.unwrap_or_default();
                match serde_json::from_slice(&body) {
                    Ok(value) => out.extend(checks::from_api(app.forge, commit, &value)),
                    Err(e) => {
                        tracing::warn!(url, error = %e, "the forge's check answer is not JSON")
                    }
                }
            }
            Ok(resp) => {
                tracing::warn!(url, status = %resp.status(), "asking the forge for checks failed")
            }
            Err(e) => tracing::warn!(url, error = %e, "asking the forge for checks failed"),
        }
    }
    out
}
