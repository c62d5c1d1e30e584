//! `/api`: the read API (apps, environments, deploys) and manual deploys and rollbacks,
//! behind the API token. Also owns
//! the shared halves of `/api/apps` ([`overview`]) and of the deploy and rollback
//! requests ([`request_deploy`], [`request_rollback`]), which the dashboard reuses.
//!
//! Authentication is [`super::auth`]'s.

use actix_web::{HttpResponse, Scope, web};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::AppState;
use super::auth::Authorized;
use super::error::HttpError;
use crate::config::{AppConfig, Config};
use crate::core::deploy::{Deploy, DeployStatus, ReasonCode, Trigger};
use crate::core::ids::{AppName, DeployId, EnvironmentName};
use crate::core::release::is_release_id;
use crate::core::routing::RefSource;
use crate::pipeline::layout::EnvironmentDir;
use crate::pipeline::preflight::{self, PreflightError};
use crate::store::{DeployFilter, NewDeploy, Store, StoreError, Target};

pub fn scope() -> Scope {
    web::scope("/api")
        .route("/apps", web::get().to(apps))
        .route("/deploys", web::get().to(deploys))
        .route("/deploys/{id}", web::get().to(deploy))
        .route("/deploys/{id}/log", web::get().to(super::stream::log))
        .route("/deploys/{id}/events", web::get().to(super::stream::events))
        .route(
            "/deploys/{id}/cancel",
            web::post().to(super::cancel::cancel),
        )
        .route(
            "/apps/{app}/environments/{env}/deploy",
            web::post().to(manual_deploy),
        )
        .route(
            "/apps/{app}/environments/{env}/rollback",
            web::post().to(rollback),
        )
        .route(
            "/apps/{app}/environments/{env}/promote",
            web::post().to(promote),
        )
        .route("/apps/{app}/sync", web::post().to(sync))
        .route("/reload", web::post().to(reload))
        .route(
            "/apps/{app}/environments/{env}/releases",
            web::get().to(releases),
        )
        .configure(super::processes::routes)
        .configure(super::lifecycle::routes)
}

#[derive(Deserialize)]
struct DeployQuery {
    app: Option<String>,
    environment: Option<String>,
    limit: Option<usize>,
}

async fn deploys(
    _: Authorized,
    query: web::Query<DeployQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let query = query.into_inner();
    let filter = DeployFilter {
        app: query.app,
        environment: query.environment,
        limit: query.limit.unwrap_or(50).clamp(1, 500),
    };
    let deploys = state.store.run(move |s| s.deploys(&filter)).await?;
    Ok(HttpResponse::Ok().json(json!({ "deploys": deploys })))
}

async fn deploy(
    _: Authorized,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let deploy = find_deploy(&state, &id).await?;
    Ok(HttpResponse::Ok().json(deploy))
}

async fn apps(_: Authorized, state: web::Data<AppState>) -> Result<HttpResponse, HttpError> {
    let apps = overview(&state).await?;
    Ok(HttpResponse::Ok().json(json!({ "apps": apps })))
}

/// One app as `/api/apps` and the dashboard show it.
#[derive(Debug, Serialize)]
pub struct AppOverview {
    pub name: AppName,
    pub github: String,
    pub environments: Vec<EnvironmentOverview>,
}

/// One environment (a configured one, or a live temporary one) and what is live there.
#[derive(Debug, Serialize)]
pub struct EnvironmentOverview {
    pub name: EnvironmentName,
    /// The branch or tag pattern after `fed_by`'s first word.
    pub branch: Option<String>,
    /// `branch develop`, `tag v*`, `branch feature/x`.
    pub fed_by: String,
    pub temporary: bool,
    /// The configured environment a temporary one was made from.
    pub base: Option<EnvironmentName>,
    pub protected: bool,
    pub auto_deploy: bool,
    /// Deploys take a tag: there is no branch head to deploy by default.
    pub follows_tags: bool,
    pub live_release: Option<String>,
    pub live_commit: Option<String>,
    /// The deploy that built the live release: what is running, apart from whatever
    /// was attempted last.
    pub live_deploy: Option<Deploy>,
    pub last_deploy: Option<Deploy>,
    /// The push a manual environment has not deployed yet.
    pub pending: Option<PendingPush>,
    /// The live app process of an environment that `run`s.
    pub process: Option<super::processes::ProcessView>,
    /// Its address at the front door (or its `url`), for a link.
    pub address: Option<String>,
    /// A pinned preview never expires.
    pub pinned: bool,
    /// When an idle preview expires (`expire_after` after its last deploy), RFC 3339.
    pub expires_at: Option<String>,
}

/// A push recorded but not deployed, because its environment has `auto_deploy = false`.
#[derive(Debug, Serialize)]
pub struct PendingPush {
    pub commit: Option<String>,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub deploy: DeployId,
}

/// Every app and environment with its live release and last deploy.
pub async fn overview(state: &AppState) -> Result<Vec<AppOverview>, HttpError> {
    let config = state.config.get();
    // The store and the `current` links are both read off the async workers.
    Ok(state
        .store
        .run(move |store| overview_blocking(store, &config))
        .await?)
}

fn overview_blocking(store: &Store, config: &Config) -> Result<Vec<AppOverview>, StoreError> {
    let mut apps = Vec::new();
    for app in config.apps.values() {
        let temporary = store.temporary_environments(&app.name)?;
        let mut environments = Vec::new();
        let fixed = app
            .environments
            .values()
            .filter(|e| !e.source.is_temporary());
        let listed = fixed
            .map(|e| (e.name.clone(), e.source.describe(), None, false))
            .chain(temporary.into_iter().map(|t| {
                let describe = format!("branch {}", t.branch);
                (t.name, describe, Some(t.base), true)
            }));
        for (name, fed_by, base, is_temporary) in listed {
            let live = EnvironmentDir::new(&app.root, &name).live();
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
                .map(|p| super::processes::ProcessView::of(&p));
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
            environments.push(EnvironmentOverview {
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
                live_deploy,
                name,
                fed_by,
                base,
                last_deploy,
                pending,
            });
        }
        apps.push(AppOverview {
            name: app.name.clone(),
            github: app.repository.clone(),
            environments,
        });
    }
    Ok(apps)
}

/// An environment named in a URL: a configured one, or an existing temporary one.
pub(super) struct Addressed {
    pub(super) app: AppConfig,
    pub(super) target: Target,
    /// The configured environment it belongs to.
    pub(super) base: EnvironmentName,
    /// The branch a temporary environment follows.
    temporary_branch: Option<String>,
}

impl Addressed {
    pub(super) fn name(&self) -> &EnvironmentName {
        match &self.target {
            Target::Fixed(name) | Target::Instance { name, .. } => name,
            Target::Temporary { base, .. } => base,
        }
    }

    fn dir(&self) -> EnvironmentDir {
        EnvironmentDir::new(&self.app.root, self.name())
    }

    fn protected(&self) -> bool {
        self.app
            .environments
            .get(&self.base)
            .is_some_and(|e| e.protected)
    }
}

pub(super) fn addressed(
    store: &Store,
    state: &AppState,
    app: &str,
    env: &str,
) -> Result<Addressed, HttpError> {
    let config = state.config.get();
    let app_config = AppName::parse(app)
        .ok()
        .and_then(|name| config.apps.get(&name))
        .ok_or_else(|| HttpError::NotFound(format!("no app {app:?}")))?;
    let missing = || {
        HttpError::NotFound(format!(
            "app `{}` has no environment {env:?}",
            app_config.name
        ))
    };
    let name = EnvironmentName::parse(env).map_err(|_| missing())?;
    if let Some(configured) = app_config.environments.get(&name) {
        if configured.source.is_temporary() {
            return Err(HttpError::BadRequest(format!(
                "`{name}` is a pattern ({}): address one of its temporary environments instead",
                configured.source.describe()
            )));
        }
        return Ok(Addressed {
            app: app_config.clone(),
            target: Target::Fixed(name.clone()),
            base: name,
            temporary_branch: None,
        });
    }
    let temporary = store
        .temporary_environments(&app_config.name)?
        .into_iter()
        .find(|t| t.name == name)
        .ok_or_else(missing)?;
    Ok(Addressed {
        app: app_config.clone(),
        base: temporary.base.clone(),
        temporary_branch: Some(temporary.branch.clone()),
        target: Target::Instance {
            name: temporary.name,
            base: temporary.base,
        },
    })
}

/// An optional JSON body: empty means `{}`.
fn optional_json<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, HttpError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| HttpError::BadRequest(format!("body is not the expected JSON: {e}")))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DeployBody {
    #[serde(rename = "ref")]
    git_ref: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    release: Option<String>,
    /// Roll back to a release whose own deploy failed or was rolled back.
    #[serde(default)]
    force: bool,
}

/// Records a deploy asked for by hand (API or dashboard) and wakes the runner.
pub(super) async fn create(
    state: &AppState,
    app: String,
    env: String,
    make: impl FnOnce(&Store, &Addressed) -> Result<NewDeploy, HttpError> + Send + 'static,
) -> Result<Deploy, HttpError> {
    let state2 = state.clone();
    let now = (state.clock)();
    let created = state
        .store
        .run(move |store| {
            let result = addressed(store, &state2, &app, &env).and_then(|a| {
                let new = make(store, &a)?;
                store
                    .create_deploy(&a.app.name, new, now)
                    .map_err(HttpError::from)
            });
            Ok::<_, StoreError>(result)
        })
        .await??;
    state.wake_runner();
    Ok(created)
}

async fn manual_deploy(
    _: Authorized,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let (app, env) = path.into_inner();
    let body: DeployBody = optional_json(&body)?;
    let created = request_deploy(&state, app, env, body.git_ref).await?;
    Ok(HttpResponse::Accepted().json(json!({ "deploy": created })))
}

/// A manual deploy of `git_ref` (a branch, tag or sha), by default the head of the
/// branch the environment follows. Tag-following environments need `git_ref`.
pub async fn request_deploy(
    state: &AppState,
    app: String,
    env: String,
    git_ref: Option<String>,
) -> Result<Deploy, HttpError> {
    if let Some(r) = &git_ref
        && (r.trim().is_empty() || r.chars().any(char::is_control) || r.len() > 255)
    {
        return Err(HttpError::BadRequest(format!("{r:?} is not a ref")));
    }
    // A ref typed by hand is checked against the repository before anything is queued.
    let resolved = match (&git_ref, addressed_app(state, &app)) {
        (Some(r), Some(app_config)) => Some(
            preflight::resolve(&app_config, &state.config.get().server.state_dir, r)
                .await
                .map_err(|e| match e {
                    PreflightError::Missing { .. } => HttpError::NotFound(e.to_string()),
                    PreflightError::Fetch { .. } => HttpError::Conflict(e.to_string()),
                })?,
        ),
        _ => None,
    };
    create(state, app, env, move |_, a| {
        let pinned = resolved.clone();
        let git_ref = match (git_ref, &a.temporary_branch) {
            (Some(_), _) if let Some(found) = &pinned => found.full_ref.clone(),
            (Some(r), _) => r,
            (None, Some(branch)) => format!("refs/heads/{branch}"),
            (None, None) => match a.app.environments.get(&a.base).map(|e| &e.source) {
                Some(RefSource::Branch(p)) => format!("refs/heads/{p}"),
                _ => {
                    return Err(HttpError::BadRequest(format!(
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

/// The app an URL names, if configured (the 404 for one that is not comes later).
fn addressed_app(state: &AppState, app: &str) -> Option<AppConfig> {
    let config = state.config.get();
    AppName::parse(app)
        .ok()
        .and_then(|name| config.apps.get(&name).cloned())
}

async fn rollback(
    _: Authorized,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let (app, env) = path.into_inner();
    let body: RollbackBody = optional_json(&body)?;
    let created = request_rollback(&state, app, env, body.release, body.force).await?;
    Ok(HttpResponse::Accepted().json(json!({ "deploy": created })))
}

/// A rollback to `release`, by default the release before the live one. A release whose
/// own deploy failed or was rolled back (its after_release or health check failed) is
/// a known-bad target: going back to it needs `force`.
pub async fn request_rollback(
    state: &AppState,
    app: String,
    env: String,
    release: Option<String>,
    force: bool,
) -> Result<Deploy, HttpError> {
    if let Some(release) = &release
        && !is_release_id(release)
    {
        return Err(HttpError::BadRequest(format!(
            "{release:?} is not a release id"
        )));
    }
    create(state, app, env, move |store, a| {
        if let Some(wanted) = &release
            && !force
            && let Some(built) = store.release_deploy(&a.app.name, a.name(), wanted)?
            && matches!(built.status, DeployStatus::Failed | DeployStatus::RolledBack)
        {
            return Err(HttpError::Conflict(format!(
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PromoteBody {
    from: Option<String>,
}

/// Deploys exactly the commit live in `from` into this environment, built with this
/// environment's own settings.
async fn promote(
    _: Authorized,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let (app, env) = path.into_inner();
    let body: PromoteBody = optional_json(&body)?;
    let from = body.from.ok_or_else(|| {
        HttpError::BadRequest("say where to promote from: {\"from\": \"staging\"}".into())
    })?;
    let created = request_promote(&state, app, env, from).await?;
    Ok(HttpResponse::Accepted().json(json!({ "deploy": created })))
}

/// A deploy of exactly the commit live in `from` into `env`.
pub async fn request_promote(
    state: &AppState,
    app: String,
    env: String,
    from: String,
) -> Result<Deploy, HttpError> {
    let state2 = state.clone();
    let app2 = app.clone();
    create(state, app, env, move |store, to| {
        let source = addressed(store, &state2, &app2, &from)?;
        if source.name() == to.name() {
            return Err(HttpError::BadRequest(format!(
                "cannot promote `{from}` into itself"
            )));
        }
        let live = source.dir().live();
        let (release, commit) = match live {
            Some(crate::pipeline::layout::LiveRelease {
                release,
                commit: Some(commit),
            }) => (release, commit),
            _ => {
                return Err(HttpError::Conflict(format!(
                    "`{}` has nothing live to promote",
                    source.name()
                )));
            }
        };
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SyncBody {
    from: Option<String>,
    to: Option<String>,
    #[serde(default)]
    force: bool,
}

/// Copies runtime data downwards: `from`'s shared directories into `to`'s, then the
/// app's `sync` commands. A protected target needs `force`.
async fn sync(
    _: Authorized,
    app: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let body: SyncBody = optional_json(&body)?;
    let (Some(from), Some(to)) = (body.from, body.to) else {
        return Err(HttpError::BadRequest(
            "say what to copy: {\"from\": \"production\", \"to\": \"staging\"}".into(),
        ));
    };
    let state2 = state.get_ref().clone();
    let app = app.into_inner();
    let app2 = app.clone();
    let force = body.force;
    let created = create(&state, app, to, move |store, target| {
        let source = addressed(store, &state2, &app2, &from)?;
        if source.name() == target.name() {
            return Err(HttpError::BadRequest(format!(
                "cannot sync `{from}` into itself"
            )));
        }
        if target.protected() && !force {
            return Err(HttpError::Forbidden(format!(
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
    .await?;
    Ok(HttpResponse::Accepted().json(json!({ "deploy": created })))
}

/// The releases on disk, newest first, with the live one and the rollback target marked.
async fn releases(
    _: Authorized,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let (app, env) = path.into_inner();
    let state2 = state.get_ref().clone();
    let list = state
        .store
        .run(move |store| {
            let result = addressed(store, &state2, &app, &env).and_then(|a| {
                let dir = a.dir();
                let mut names = crate::pipeline::releases::list(&dir)
                    .map_err(|e| HttpError::NotFound(format!("cannot list releases: {e}")))?;
                names.sort();
                let live = dir.live().map(|l| l.release);
                let previous = live
                    .as_deref()
                    .and_then(|l| crate::core::release::previous_release(&names, l))
                    .map(str::to_owned);
                let mut releases = Vec::new();
                for name in names.iter().rev() {
                    let commit =
                        std::fs::read_to_string(dir.releases().join(name).join("REVISION"))
                            .map(|c| c.trim().to_owned())
                            .ok();
                    let built = store.release_deploy(&a.app.name, a.name(), name)?;
                    let status = built.as_ref().map(|d| d.status);
                    releases.push(json!({
                        "release": name,
                        "commit": commit,
                        "live": live.as_deref() == Some(name.as_str()),
                        "previous": previous.as_deref() == Some(name.as_str()),
                        "deploy": built.as_ref().map(|d| d.id),
                        "status": status,
                        // Its own deploy failed after the switch or was rolled back.
                        "failed": matches!(status, Some(DeployStatus::Failed | DeployStatus::RolledBack)),
                        "message": built.as_ref().and_then(|d| d.message.clone()),
                        "author": built.as_ref().and_then(|d| d.author.clone()),
                    }));
                }
                Ok(releases)
            });
            Ok::<_, StoreError>(result)
        })
        .await??;
    Ok(HttpResponse::Ok().json(json!({ "releases": list })))
}

/// Reads the config file again: `200 {"changes": […]}`, or `409` with every problem
/// (the running config stays). See `reload.rs`.
async fn reload(_: Authorized, state: web::Data<AppState>) -> Result<HttpResponse, HttpError> {
    let changes = crate::reload::reload_and_log(&state.config)
        .await
        .map_err(|e| HttpError::Conflict(e.to_string()))?;
    Ok(HttpResponse::Ok().json(json!({ "reloaded": true, "changes": changes })))
}

/// The deploy an URL names, or a 404 that says so.
pub async fn find_deploy(state: &AppState, id: &str) -> Result<Deploy, HttpError> {
    let missing = || HttpError::NotFound(format!("no deploy {id:?}"));
    let deploy_id = DeployId::parse(id).ok_or_else(missing)?;
    state
        .store
        .run(move |s| s.deploy(deploy_id))
        .await?
        .ok_or_else(missing)
}
