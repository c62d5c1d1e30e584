//! Deploys asked for by a person (deploy, rollback, promote, sync, restart), cancelling
//! one that has not started, and finding deploys. Each request is checked, recorded in
//! one store call and handed to the runner; none runs anything itself.

use super::{Ops, OpsError, addressed, blocking, create};
use crate::config::AppConfig;
use crate::core::deploy::{Deploy, DeployStatus, ReasonCode, Trigger};
use crate::core::ids::{AppName, DeployId};
use crate::core::release::is_release_id;
use crate::core::routing::RefSource;
use crate::layout::LiveRelease;
use crate::pipeline::preflight::{self, PreflightError};
use crate::store::{DeployFilter, NewDeploy, StoreError};

/// A manual deploy of `git_ref` (a branch, tag or sha), by default the head of the
/// branch the environment follows. Tag-following environments need `git_ref`.
pub async fn request_deploy(
    ops: &Ops,
    app: String,
    env: String,
    git_ref: Option<String>,
) -> Result<Deploy, OpsError> {
    if let Some(r) = &git_ref
        && (r.trim().is_empty() || r.chars().any(char::is_control) || r.len() > 255)
    {
        return Err(OpsError::Invalid(format!("{r:?} is not a ref")));
    }
    // A ref typed by hand is checked against the repository before anything is queued.
    let resolved = match (&git_ref, configured_app(ops, &app)) {
        (Some(r), Some(app_config)) => Some(
            preflight::resolve(&app_config, &ops.config.get().server.state_dir, r)
                .await
                .map_err(|e| match e {
                    PreflightError::Missing { .. } => OpsError::NotFound(e.to_string()),
                    PreflightError::Fetch { .. } => OpsError::Conflict(e.to_string()),
                })?,
        ),
        _ => None,
    };
    create(ops, app, env, move |_, _, a| {
        let pinned = resolved.clone();
        let git_ref = match (git_ref, &a.temporary_branch) {
            (Some(_), _) if let Some(found) = &pinned => found.full_ref.clone(),
            (Some(r), _) => r,
            (None, Some(branch)) => format!("refs/heads/{branch}"),
            (None, None) => match a.app.environments.get(&a.base).map(|e| &e.source) {
                Some(RefSource::Branch(p)) => format!("refs/heads/{p}"),
                _ => {
                    return Err(OpsError::Invalid(format!(
                        "`{}` follows tags: say which one (`stagehand deploy --ref v1.2.3`, or {{\"ref\": \"v1.2.3\"}} in the API)",
                        a.base
                    )));
                }
            },
        };
        Ok(NewDeploy {
            commit: pinned.map(|found| found.commit),
            ..NewDeploy::queued(a.target.clone(), Trigger::Manual, git_ref)
        })
    })
    .await
}

/// The app a request names, if configured (the 404 for one that is not comes later).
fn configured_app(ops: &Ops, app: &str) -> Option<AppConfig> {
    let config = ops.config.get();
    AppName::parse(app)
        .ok()
        .and_then(|name| config.apps.get(&name).cloned())
}

/// A rollback to `release`, by default the release before the live one. A release whose
/// own deploy failed or was rolled back (its after_release or health check failed) is
/// a known-bad target: going back to it needs `force`.
pub async fn request_rollback(
    ops: &Ops,
    app: String,
    env: String,
    release: Option<String>,
    force: bool,
) -> Result<Deploy, OpsError> {
    if let Some(release) = &release
        && !is_release_id(release)
    {
        return Err(OpsError::Invalid(format!(
            "{release:?} is not a release id"
        )));
    }
    create(ops, app, env, move |store, _, a| {
        if let Some(wanted) = &release
            && !force
            && let Some(built) = store.release_deploy(&a.app.name, a.name(), wanted)?
            && matches!(built.status, DeployStatus::Failed | DeployStatus::RolledBack)
        {
            return Err(OpsError::Conflict(format!(
                "release {wanted} was made by deploy {} which ended {}: pass --force (\"force\": true) to roll back to it anyway",
                built.id, built.status
            )));
        }
        Ok(NewDeploy {
            release,
            ..NewDeploy::queued(a.target.clone(), Trigger::Rollback, String::new())
        })
    })
    .await
}

/// A deploy of exactly the commit live in `from` into `env`, built with `env`'s own
/// settings.
pub async fn request_promote(
    ops: &Ops,
    app: String,
    env: String,
    from: String,
) -> Result<Deploy, OpsError> {
    // Both environments are addressed first (the target's problems first, as before),
    // then `from`'s live release is read with the store's gate let go.
    let config = ops.config.get();
    let (app2, env2, from2) = (app.clone(), env.clone(), from.clone());
    let (source_name, source_dir) = ops
        .store
        .run(move |store| {
            Ok::<_, StoreError>(addressed(store, &config, &app2, &env2).and_then(|to| {
                let source = addressed(store, &config, &app2, &from2)?;
                if source.name() == to.name() {
                    return Err(OpsError::Invalid(format!(
                        "cannot promote `{from2}` into itself"
                    )));
                }
                Ok((source.name().clone(), source.dir()))
            }))
        })
        .await??;
    let (release, commit) = match blocking(move || source_dir.live()).await? {
        Some(LiveRelease {
            release,
            commit: Some(commit),
        }) => (release, commit),
        _ => {
            return Err(OpsError::Conflict(format!(
                "`{source_name}` has nothing live to promote"
            )));
        }
    };
    let app2 = app.clone();
    create(ops, app, env, move |store, config, to| {
        let source = addressed(store, config, &app2, &from)?;
        let git_ref = store
            .deploy_with_release(&source.app.name, source.name(), &release)?
            .map(|d| d.git_ref)
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| commit.clone());
        Ok(NewDeploy {
            commit: Some(commit),
            from_environment: Some(source.name().clone()),
            ..NewDeploy::queued(to.target.clone(), Trigger::Promote, git_ref)
        })
    })
    .await
}

/// Copies runtime data downwards: `from`'s shared directories into `to`'s, then the
/// app's `sync` commands. A protected target needs `force`.
pub async fn request_sync(
    ops: &Ops,
    app: String,
    from: String,
    to: String,
    force: bool,
) -> Result<Deploy, OpsError> {
    let app2 = app.clone();
    create(ops, app, to, move |store, config, target| {
        let source = addressed(store, config, &app2, &from)?;
        if source.name() == target.name() {
            return Err(OpsError::Invalid(format!(
                "cannot sync `{from}` into itself"
            )));
        }
        if target.protected() && !force {
            return Err(OpsError::Refused(format!(
                "`{}` is protected: syncing data into it needs --force (\"force\": true)",
                target.name()
            )));
        }
        Ok(NewDeploy {
            forced: force,
            from_environment: Some(source.name().clone()),
            ..NewDeploy::queued(target.target.clone(), Trigger::Sync, String::new())
        })
    })
    .await
}

/// Queues a blue/green restart of the environment's live release (a conflict without
/// `run`).
pub async fn request_restart(ops: &Ops, app: String, env: String) -> Result<Deploy, OpsError> {
    create(ops, app, env, move |_, _, a| {
        let runs = a
            .app
            .environments
            .get(&a.base)
            .is_some_and(|e| e.run.is_some());
        if !runs {
            return Err(OpsError::Conflict(format!(
                "`{}` has no `run`: there is no process to restart",
                a.base
            )));
        }
        Ok(NewDeploy::queued(
            a.target.clone(),
            Trigger::Restart,
            String::new(),
        ))
    })
    .await
}

/// Ends a deploy that has not started (`queued`, or `waiting` for its checks) as
/// `cancelled`. Cancelling one this way twice is harmless; a running one is not
/// stopped from here (its steps are killed only on shutdown, so nothing is left half
/// switched), and one that ended otherwise stays as it ended.
pub async fn cancel(ops: &Ops, id: &str) -> Result<Deploy, OpsError> {
    let deploy = find_deploy(ops, id).await?;
    let id = deploy.id;
    let now = (ops.clock)();
    let after = ops
        .store
        .run(move |s| {
            s.end_unstarted(
                id,
                DeployStatus::Cancelled,
                "cancelled by request",
                Some(ReasonCode::CancelledByRequest),
                now,
            )
        })
        .await?
        .unwrap_or(deploy);
    match after.status {
        DeployStatus::Cancelled if after.reason_code == Some(ReasonCode::CancelledByRequest) => {
            Ok(after)
        }
        DeployStatus::Running => Err(OpsError::Conflict(format!(
            "deploy {id} is running: only a queued or waiting deploy can be cancelled"
        ))),
        status => Err(OpsError::Conflict(format!(
            "deploy {id} already ended ({status})"
        ))),
    }
}

/// The deploy a request names, or a not-found that says so.
pub async fn find_deploy(ops: &Ops, id: &str) -> Result<Deploy, OpsError> {
    let missing = || OpsError::NotFound(format!("no deploy {id:?}"));
    let deploy_id = DeployId::parse(id).ok_or_else(missing)?;
    ops.store
        .run(move |s| s.deploy(deploy_id))
        .await?
        .ok_or_else(missing)
}

/// Deploys matching `filter`, newest first.
pub async fn list(ops: &Ops, filter: DeployFilter) -> Result<Vec<Deploy>, OpsError> {
    Ok(ops.store.run(move |s| s.deploys(&filter)).await?)
}
