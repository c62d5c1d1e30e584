//! Every app and environment with what is live there: `/api/apps`, the dashboard's
//! home and environment pages, `stagehand status`.
//!
//! Three steps, so the store's gate is never held across file reads: which
//! environments exist (the config's and the store's temporary ones), what their
//! `current` links and `REVISION` files say (blocking pool, no gate), then everything
//! else the store knows about them in one call.

use super::{Ops, OpsError, blocking};
use crate::api_types::{AppOverview, DeployView, EnvironmentOverview, PendingPush, ProcessView};
use crate::config::Config;
use crate::core::deploy::{DeployStatus, ReasonCode, Trigger};
use crate::core::ids::{AppName, EnvironmentName};
use crate::core::routing::RefSource;
use crate::core::time::UnixMillis;
use crate::layout::{EnvironmentDir, LiveRelease};
use crate::store::{ProcessRecord, Store, StoreError};

/// One environment to show, before anything about it is read.
struct Listed {
    app: AppName,
    name: EnvironmentName,
    /// `branch develop`, `tag v*`, `branch feature/x`.
    fed_by: String,
    /// The configured environment a temporary one was made from.
    base: Option<EnvironmentName>,
    temporary: bool,
    dir: EnvironmentDir,
}

/// Every app and environment with its live release and last deploy.
pub async fn overview(ops: &Ops) -> Result<Vec<AppOverview>, OpsError> {
    let config = ops.config.get();
    let for_listing = config.clone();
    let listed = ops
        .store
        .run(move |store| list(store, &for_listing))
        .await?;
    let dirs: Vec<EnvironmentDir> = listed.iter().map(|l| l.dir.clone()).collect();
    let live = blocking(move || dirs.iter().map(EnvironmentDir::live).collect()).await?;
    Ok(ops
        .store
        .run(move |store| assemble(store, &config, listed, live))
        .await?)
}

/// The configured environments of each app (patterns left out), then its temporary
/// ones, in the config's order.
fn list(store: &Store, config: &Config) -> Result<Vec<Listed>, StoreError> {
    let mut listed = Vec::new();
    for app in config.apps.values() {
        let fixed = app
            .environments
            .values()
            .filter(|e| !e.source.is_temporary())
            .map(|e| (e.name.clone(), e.source.describe(), None, false));
        let temporary = store
            .temporary_environments(&app.name)?
            .into_iter()
            .map(|t| (t.name, format!("branch {}", t.branch), Some(t.base), true));
        for (name, fed_by, base, temporary) in fixed.chain(temporary) {
            listed.push(Listed {
                app: app.name.clone(),
                dir: EnvironmentDir::new(&app.root, &name),
                name,
                fed_by,
                base,
                temporary,
            });
        }
    }
    Ok(listed)
}

fn assemble(
    store: &Store,
    config: &Config,
    listed: Vec<Listed>,
    live: Vec<Option<LiveRelease>>,
) -> Result<Vec<AppOverview>, StoreError> {
    let mut apps: Vec<AppOverview> = config
        .apps
        .values()
        .map(|app| AppOverview {
            name: app.name.clone(),
            github: app.repository.clone(),
            environments: Vec::new(),
        })
        .collect();
    for (listed, live) in listed.into_iter().zip(live) {
        let Some(app) = config.apps.get(&listed.app) else {
            continue;
        };
        let Listed {
            name,
            fed_by,
            base,
            temporary: is_temporary,
            ..
        } = listed;
        let live_deploy = match &live {
            Some(l) => store.release_deploy(&app.name, &name, &l.release)?,
            None => None,
        };
        let live_commit = live.as_ref().and_then(|l| l.commit.clone());
        let last_deploy = store.last_deploy(&app.name, &name)?;
        // A push to a manual (auto_deploy = false) environment waits as the last
        // thing that happened there until a deploy or promote; a commit already
        // live (promoted before its push arrived) waits for nothing.
        let pending = last_deploy
            .as_ref()
            .filter(|d| {
                d.status == DeployStatus::Skipped
                    && d.trigger == Trigger::Push
                    && d.reason_code == Some(ReasonCode::AutoDeployOff)
                    && d.commit.is_some()
                    && d.commit != live_commit
            })
            .map(|d| PendingPush {
                commit: d.commit.clone(),
                git_ref: d.git_ref.clone(),
                deploy: d.id,
            });
        let config_env = app.environments.get(base.as_ref().unwrap_or(&name));
        let process = store
            .live_process(&app.name, &name)?
            .map(|p| process_view(&p));
        let configured = base.clone().unwrap_or_else(|| name.clone());
        let address = config_env
            .and_then(|e| e.url.as_ref())
            .map(|u| u.replace("{environment}", name.as_str()))
            .or_else(|| {
                crate::front_door::address::environment_address(
                    config,
                    &app.name,
                    &configured,
                    &name,
                )
            });
        let (pinned, expires_at) = match (&base, config_env.and_then(|e| e.expire_after)) {
            (Some(base), after) => {
                let preview = store
                    .previews(&app.name, base)?
                    .into_iter()
                    .find(|p| p.name == name);
                let pinned = preview.as_ref().is_some_and(|p| p.pinned);
                let expires = preview.zip(after).filter(|_| !pinned).map(|(p, after)| {
                    crate::core::lifecycle::expires_at(p.last_activity, after).rfc3339()
                });
                (pinned, expires)
            }
            (None, _) => (false, None),
        };
        let environment = EnvironmentOverview {
            address,
            pinned,
            expires_at,
            process,
            branch: fed_by.split_once(' ').map(|(_, b)| b.to_owned()),
            temporary: is_temporary,
            protected: config_env.is_some_and(|e| e.protected),
            auto_deploy: config_env.is_none_or(|e| e.auto_deploy),
            follows_tags: !is_temporary
                && config_env.is_some_and(|e| !matches!(e.source, RefSource::Branch(_))),
            live_release: live.map(|l| l.release),
            live_commit,
            live_deploy: live_deploy.map(DeployView::from),
            name,
            fed_by,
            base,
            last_deploy: last_deploy.map(DeployView::from),
            pending,
        };
        if let Some(overview) = apps.iter_mut().find(|a| a.name == app.name) {
            overview.environments.push(environment);
        }
    }
    Ok(apps)
}

/// `process` in `/api/apps`: what the store records of the live app process.
pub fn process_view(record: &ProcessRecord) -> ProcessView {
    ProcessView {
        state: record.state.to_string(),
        pid: record.pid,
        port: record.port,
        release: record.release.clone(),
        started_at: record.started_at.map(UnixMillis::rfc3339),
        restarts: record.restarts,
    }
}
