//! `/api`: the read API (apps, environments, deploys) and manual deploys and rollbacks,
//! behind the bearer token. Also owns the shared halves of `/api/apps` ([`overview`])
//! and of the deploy and rollback requests ([`request_deploy`], [`request_rollback`]),
//! which the dashboard reuses.
//!
//! # Security
//!
//! The token is compared in constant time, over SHA-256 digests of both sides so that
//! not even its length leaks. Without a configured token the API refuses everyone.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, HttpResponse, Scope, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::HttpError;
use crate::config::{AppConfig, Config};
use crate::core::deploy::{Deploy, DeployStatus, Trigger};
use crate::core::ids::{AppName, DeployId, EnvironmentName};
use crate::core::release::is_release_id;
use crate::core::routing::RefSource;
use crate::pipeline::layout::EnvironmentDir;
use crate::store::{DeployFilter, NewDeploy, Store, StoreError, Target};

pub fn scope() -> Scope {
    web::scope("/api")
        .route("/apps", web::get().to(apps))
        .route("/deploys", web::get().to(deploys))
        .route("/deploys/{id}", web::get().to(deploy))
        .route("/deploys/{id}/log", web::get().to(super::stream::log))
        .route("/deploys/{id}/events", web::get().to(super::stream::events))
        .route(
            "/apps/{app}/environments/{env}/deploy",
            web::post().to(manual_deploy),
        )
        .route(
            "/apps/{app}/environments/{env}/rollback",
            web::post().to(rollback),
        )
}

/// Proof that the request carried the API token.
pub struct Authorized;

impl FromRequest for Authorized {
    type Error = HttpError;
    type Future = Ready<Result<Authorized, HttpError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(check_token(req))
    }
}

fn check_token(req: &HttpRequest) -> Result<Authorized, HttpError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| HttpError::Unauthorized("server misconfigured: no state".into()))?;
    let server = &state.config.server;
    let Some(expected) = &server.api_token else {
        return Err(HttpError::Unauthorized(format!(
            "the API is disabled: set {} in stagehand's environment",
            server.api_token_env
        )));
    };
    let given = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            HttpError::Unauthorized("missing `Authorization: Bearer <token>` header".into())
        })?;
    let equal = Sha256::digest(given.trim().as_bytes())
        .ct_eq(&Sha256::digest(expected.expose().as_bytes()));
    if bool::from(equal) {
        Ok(Authorized)
    } else {
        Err(HttpError::Unauthorized("wrong API token".into()))
    }
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
    let missing = || HttpError::NotFound(format!("no deploy {:?}", id.as_str()));
    let deploy_id = DeployId::parse(&id).ok_or_else(missing)?;
    let deploy = state
        .store
        .run(move |s| s.deploy(deploy_id))
        .await?
        .ok_or_else(missing)?;
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
    pub last_deploy: Option<Deploy>,
}

/// Every app and environment with its live release and last deploy.
pub async fn overview(state: &AppState) -> Result<Vec<AppOverview>, HttpError> {
    let config = state.config.clone();
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
            let last_deploy = store.last_deploy(&app.name, &name)?;
            let config_env = app.environments.get(base.as_ref().unwrap_or(&name));
            environments.push(EnvironmentOverview {
                branch: fed_by.split_once(' ').map(|(_, b)| b.to_owned()),
                temporary: is_temporary,
                protected: config_env.is_some_and(|e| e.protected),
                auto_deploy: config_env.is_none_or(|e| e.auto_deploy),
                follows_tags: !is_temporary
                    && config_env.is_some_and(|e| !matches!(e.source, RefSource::Branch(_))),
                live_release: live.as_ref().map(|l| l.release.clone()),
                live_commit: live.and_then(|l| l.commit),
                name,
                fed_by,
                base,
                last_deploy,
            });
        }
        apps.push(AppOverview {
            name: app.name.clone(),
            github: app.github.clone(),
            environments,
        });
    }
    Ok(apps)
}

/// An environment named in a URL: a configured one, or an existing temporary one.
struct Addressed {
    app: AppConfig,
    target: Target,
    /// The configured environment it belongs to.
    base: EnvironmentName,
    /// The branch a temporary environment follows.
    temporary_branch: Option<String>,
}

fn addressed(
    store: &Store,
    state: &AppState,
    app: &str,
    env: &str,
) -> Result<Addressed, HttpError> {
    let app_config = AppName::parse(app)
        .ok()
        .and_then(|name| state.config.apps.get(&name))
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
}

/// Records a deploy asked for by hand (API or dashboard) and wakes the runner.
async fn create(
    state: &AppState,
    app: String,
    env: String,
    make: impl FnOnce(&Addressed) -> Result<NewDeploy, HttpError> + Send + 'static,
) -> Result<Deploy, HttpError> {
    let state2 = state.clone();
    let now = (state.clock)();
    let created = state
        .store
        .run(move |store| {
            let result = addressed(store, &state2, &app, &env).and_then(|a| {
                let new = make(&a)?;
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
    create(state, app, env, move |a| {
        let git_ref = match (git_ref, &a.temporary_branch) {
            (Some(r), _)
                if r.trim().is_empty() || r.chars().any(char::is_control) || r.len() > 255 =>
            {
                return Err(HttpError::BadRequest(format!("{r:?} is not a ref")));
            }
            (Some(r), _) => r,
            (None, Some(branch)) => format!("refs/heads/{branch}"),
            (None, None) => match a.app.environments.get(&a.base).map(|e| &e.source) {
                Some(RefSource::Branch(p)) => format!("refs/heads/{p}"),
                _ => {
                    return Err(HttpError::BadRequest(format!(
                        "`{}` follows tags: say which one with {{\"ref\": \"v1.2.3\"}}",
                        a.base
                    )));
                }
            },
        };
        Ok(NewDeploy {
            target: a.target.clone(),
            git_ref,
            commit: None,
            trigger: Trigger::Manual,
            forced: false,
            status: DeployStatus::Queued,
            reason: None,
            from_environment: None,
            release: None,
        })
    })
    .await
}

async fn rollback(
    _: Authorized,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let (app, env) = path.into_inner();
    let body: RollbackBody = optional_json(&body)?;
    let created = request_rollback(&state, app, env, body.release).await?;
    Ok(HttpResponse::Accepted().json(json!({ "deploy": created })))
}

/// A rollback to `release`, by default the release before the live one.
pub async fn request_rollback(
    state: &AppState,
    app: String,
    env: String,
    release: Option<String>,
) -> Result<Deploy, HttpError> {
    if let Some(release) = &release
        && !is_release_id(release)
    {
        return Err(HttpError::BadRequest(format!(
            "{release:?} is not a release id"
        )));
    }
    create(state, app, env, move |a| {
        Ok(NewDeploy {
            target: a.target.clone(),
            git_ref: String::new(),
            commit: None,
            trigger: Trigger::Rollback,
            forced: false,
            status: DeployStatus::Queued,
            reason: None,
            from_environment: None,
            release,
        })
    })
    .await
}
