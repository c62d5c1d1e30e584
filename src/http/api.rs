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
use crate::core::ids::DeployId;
use crate::pipeline::layout::EnvironmentDir;
use crate::store::DeployFilter;

pub fn scope() -> Scope {
    web::scope("/api")
        .route("/apps", web::get().to(apps))
        .route("/deploys", web::get().to(deploys))
        .route("/deploys/{id}", web::get().to(deploy))
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
