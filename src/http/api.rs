//! `/api`: the read API (apps, environments, deploys), behind the bearer token.
//!
//! # Security
//!
//! The token is compared in constant time, over SHA-256 digests of both sides so that
//! not even its length leaks. Without a configured token the API refuses everyone.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, HttpResponse, Scope, web};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::HttpError;
use crate::config::AppConfig;
use crate::core::deploy::{DeployStatus, Trigger};
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
        .route(
            "/apps/{app}/environments/{env}/promote",
            web::post().to(promote),
        )
        .route("/apps/{app}/sync", web::post().to(sync))
        .route(
            "/apps/{app}/environments/{env}/releases",
            web::get().to(releases),
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
    let config = state.config.clone();
    // The store and the `current` links are both read off the async workers.
    let apps = state
        .store
        .run(move |store| {
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
                    let last = store.last_deploy(&app.name, &name)?;
                    // A push to a manual (auto_deploy = false) environment waits as
                    // the last thing that happened there until a deploy or promote.
                    let pending = last
                        .as_ref()
                        .filter(|d| {
                            d.status == DeployStatus::Skipped
                                && d.trigger == Trigger::Push
                                && d.reason
                                    .as_deref()
                                    .is_some_and(|r| r.starts_with("auto_deploy is off"))
                        })
                        .map(|d| json!({ "commit": d.commit, "ref": d.git_ref, "deploy": d.id }));
                    let config_env = app.environments.get(base.as_ref().unwrap_or(&name));
                    environments.push(json!({
                        "name": name,
                        "branch": fed_by.split_once(' ').map(|(_, b)| b),
                        "fed_by": fed_by,
                        "temporary": is_temporary,
                        "base": base,
                        "protected": config_env.is_some_and(|e| e.protected),
                        "auto_deploy": config_env.is_none_or(|e| e.auto_deploy),
                        "live_release": live.as_ref().map(|l| &l.release),
                        "live_commit": live.as_ref().and_then(|l| l.commit.as_ref()),
                        "last_deploy": last,
                        "pending": pending,
                    }));
                }
                apps.push(
                    json!({ "name": app.name, "github": app.github, "environments": environments }),
                );
            }
            Ok(apps)
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "apps": apps })))
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

impl Addressed {
    fn name(&self) -> &EnvironmentName {
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

/// Records a deploy asked for through the API and wakes the runner.
async fn create(
    state: &AppState,
    app: String,
    env: String,
    make: impl FnOnce(&Store, &Addressed) -> Result<NewDeploy, HttpError> + Send + 'static,
) -> Result<HttpResponse, HttpError> {
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
    Ok(HttpResponse::Accepted().json(json!({ "deploy": created })))
}

async fn manual_deploy(
    _: Authorized,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let (app, env) = path.into_inner();
    let body: DeployBody = optional_json(&body)?;
    create(&state, app, env, move |_, a| {
        let git_ref = match (body.git_ref, &a.temporary_branch) {
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
    if let Some(release) = &body.release
        && !is_release_id(release)
    {
        return Err(HttpError::BadRequest(format!(
            "{release:?} is not a release id"
        )));
    }
    create(&state, app, env, move |_, a| {
        Ok(NewDeploy {
            target: a.target.clone(),
            git_ref: String::new(),
            commit: None,
            trigger: Trigger::Rollback,
            forced: false,
            status: DeployStatus::Queued,
            reason: None,
            from_environment: None,
            release: body.release,
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
    let state2 = state.get_ref().clone();
    let app2 = app.clone();
    create(&state, app, env, move |store, to| {
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
            target: to.target.clone(),
            git_ref,
            commit: Some(commit),
            trigger: Trigger::Promote,
            forced: false,
            status: DeployStatus::Queued,
            reason: None,
            from_environment: Some(source.name().clone()),
            release: None,
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
    create(&state, app, to, move |store, target| {
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
            target: target.target.clone(),
            git_ref: String::new(),
            commit: None,
            trigger: Trigger::Sync,
            forced: force,
            status: DeployStatus::Queued,
            reason: None,
            from_environment: Some(source.name().clone()),
            release: None,
        })
    })
    .await
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
                let releases: Vec<_> = names
                    .iter()
                    .rev()
                    .map(|name| {
                        let commit =
                            std::fs::read_to_string(dir.releases().join(name).join("REVISION"))
                                .map(|c| c.trim().to_owned())
                                .ok();
                        json!({
                            "release": name,
                            "commit": commit,
                            "live": live.as_deref() == Some(name.as_str()),
                            "previous": previous.as_deref() == Some(name.as_str()),
                        })
                    })
                    .collect();
                Ok(releases)
            });
            Ok::<_, StoreError>(result)
        })
        .await??;
    Ok(HttpResponse::Ok().json(json!({ "releases": list })))
}
