//! The dashboard's posts: logging in and out (the session cookie) and the Deploy,
//! Rollback, Promote, Restart and Pin buttons. Each post is checked for the session
//! and its CSRF token, then calls the same `ops` operation the API does and answers
//! with a redirect (303) to what it made.

use actix_web::cookie::Cookie;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Deserialize;

use super::views::login_page;
use super::{AppState, PageError, auth, deploy_url, see_other, viewer};
use crate::http::error::HttpError;
use crate::ops::{deploys, lifecycle};

/// The fields every dashboard form may send.
#[derive(Deserialize, Default)]
pub(super) struct ActionForm {
    csrf: Option<String>,
    /// For tag-following environments, which have no branch head to default to.
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    /// For a promote: the environment whose live commit to deploy.
    from: Option<String>,
}

/// A dashboard POST: logged in, and carrying the CSRF token.
pub(super) fn checked_form(
    req: &HttpRequest,
    state: &AppState,
    body: &[u8],
) -> Result<ActionForm, PageError> {
    viewer(req, state)?;
    let form: ActionForm = serde_urlencoded::from_bytes(body)
        .map_err(|e| HttpError::BadRequest(format!("not a form post: {e}")))?;
    check_csrf(state, &form)?;
    Ok(form)
}

pub(super) fn check_csrf(state: &AppState, form: &ActionForm) -> Result<(), PageError> {
    if auth::csrf_matches(state, form.csrf.as_deref().unwrap_or_default())? {
        Ok(())
    } else {
        Err(HttpError::Forbidden(
            "this form came without a valid CSRF token: reload the page and try again".into(),
        )
        .into())
    }
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    token: Option<String>,
}

pub(super) async fn login(body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    let given = serde_urlencoded::from_bytes::<LoginForm>(&body)
        .ok()
        .and_then(|f| f.token)
        .unwrap_or_default();
    let token = match auth::api_token(&state) {
        Ok(token) => token,
        Err(e) => return login_page(&state, StatusCode::UNAUTHORIZED, Some(&e.to_string())),
    };
    match auth::token_matches(&state, &given) {
        Ok(true) => {
            let cookie = session_cookie(&state, Some(auth::session_value(&token)));
            with_cookie(see_other("/"), &cookie)
        }
        Ok(false) => login_page(
            &state,
            StatusCode::UNAUTHORIZED,
            Some("That is not the API token."),
        ),
        Err(e) => login_page(&state, StatusCode::UNAUTHORIZED, Some(&e.to_string())),
    }
}

pub(super) async fn logout(
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let form: ActionForm = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    check_csrf(&state, &form)?;
    Ok(with_cookie(see_other("/"), &session_cookie(&state, None)))
}

/// The session cookie (`None`: the one that clears it), `Secure` when the server is
/// reached over https.
pub(super) fn session_cookie(state: &AppState, value: Option<String>) -> Cookie<'static> {
    let secure = state
        .config
        .get()
        .server
        .public_url
        .as_deref()
        .is_some_and(|url| url.starts_with("https"));
    auth::session_cookie(value, secure)
}

/// `response` with `Set-Cookie`. The cookie holds hex digits and fixed words only, so
/// it is always a valid header; were it not, the answer is a 500, never a login that
/// silently sets nothing.
pub(super) fn with_cookie(mut response: HttpResponse, cookie: &Cookie<'_>) -> HttpResponse {
    match response.add_cookie(cookie) {
        Ok(()) => response,
        Err(e) => {
            HttpError::Internal(format!("cannot set the session cookie: {e}")).error_response()
        }
    }
}

pub(super) async fn deploy(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let form = checked_form(&req, &state, &body)?;
    let (app, env) = path.into_inner();
    let git_ref = form.git_ref.filter(|r| !r.trim().is_empty());
    let created = deploys::request_deploy(&state.ops(), app, env, git_ref).await?;
    Ok(see_other(&deploy_url(created.id)))
}

pub(super) async fn rollback(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    checked_form(&req, &state, &body)?;
    let (app, env) = path.into_inner();
    let created = deploys::request_rollback(&state.ops(), app, env, None, false).await?;
    Ok(see_other(&deploy_url(created.id)))
}

pub(super) async fn restart(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    checked_form(&req, &state, &body)?;
    let (app, env) = path.into_inner();
    let created = deploys::request_restart(&state.ops(), app, env).await?;
    Ok(see_other(&deploy_url(created.id)))
}

pub(super) async fn pin(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    set_pin(req, path, body, state, true).await
}

pub(super) async fn unpin(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    set_pin(req, path, body, state, false).await
}

pub(super) async fn set_pin(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<AppState>,
    pinned: bool,
) -> Result<HttpResponse, PageError> {
    checked_form(&req, &state, &body)?;
    let (app, env) = path.into_inner();
    lifecycle::set_pin(&state.ops(), app, env, pinned).await?;
    Ok(see_other("/"))
}

pub(super) async fn promote(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let form = checked_form(&req, &state, &body)?;
    let (app, env) = path.into_inner();
    let from = form
        .from
        .filter(|f| !f.trim().is_empty())
        .ok_or_else(|| HttpError::BadRequest("choose the environment to promote from".into()))?;
    let created = deploys::request_promote(&state.ops(), app, env, from).await?;
    Ok(see_other(&deploy_url(created.id)))
}
