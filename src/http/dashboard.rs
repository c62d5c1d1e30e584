//! The dashboard: server-rendered HTML pages over the same data and the same code
//! paths as `/api`, plus a few lines of inline JavaScript that follow a running
//! deploy's Server-Sent Events. It owns the pages, the login form and the dashboard's
//! form posts; authentication is [`super::auth`]'s, the overview and every request
//! are the same [`crate::ops`] operations the API calls, the event stream is
//! [`super::stream`]'s.
//!
//! | route                                    | what                                    |
//! |------------------------------------------|-----------------------------------------|
//! | `GET /`                                  | every app and environment; else login   |
//! | `GET /deploys/{id}`                      | one deploy: fields, stages, live log    |
//! | `GET /environments/{app}/{env}`          | that environment's last 50 deploys      |
//! | `POST /login`, `POST /logout`            | set or clear the session cookie         |
//! | `POST /environments/{app}/{env}/deploy`  | a manual deploy, then 303 to its page   |
//! | `POST /environments/{app}/{env}/rollback`| a rollback, then 303 to its page        |
//! | `POST /environments/{app}/{env}/promote` | promote `from`'s live commit, then 303  |
//! | `POST /environments/{app}/{env}/restart` | a blue/green restart (`run`), then 303  |
//! | `POST /environments/{app}/{env}/{pin,unpin}` | pin or unpin a preview, then 303 to `/` |
//!
//! Pages work with JavaScript off: the log known at render time is in the HTML; the
//! script only appends what comes after (`?after=N` on the event stream).
//!
//! # Security
//!
//! - **Cookie.** Logging in checks the API token in constant time (the API's own
//!   check) and sets `stagehand_session` = HMAC-SHA256(token, "stagehand-session-v1"):
//!   `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's request
//!   carries it), `Path=/`, and `Secure` when `public_url` is https. The value is fixed
//!   per token, so logging out clears this browser's cookie but a copied cookie stays
//!   valid until the API token is rotated.
//! - **CSRF.** SameSite=Strict is the first line; the second is that every dashboard
//!   POST (and every API write made with the cookie alone) must carry the CSRF token,
//!   HMAC-SHA256(token, "stagehand-csrf-v1"), compared in constant time, or gets 403.
//!   `/login` is the exception: there is no session to ride on yet.
//! - **Escaping.** maud escapes every interpolated value; branch names, refs, reasons
//!   and log lines are attacker-controlled (anyone who can push names a branch) and
//!   are never wrapped in `PreEscaped`. Only the constant CSS and script are. Data for
//!   the script travels in `data-` attributes, and the script inserts text nodes only.
//! - **Headers.** A Content-Security-Policy allows exactly the inline script and style
//!   (by hash), same-origin connections and form targets, and no framing, so even an
//!   escaping slip could not run injected script, and no other site can frame the
//!   Deploy and Rollback buttons to trick a click. Pages are `no-store`.

use std::fmt;
use std::sync::LazyLock;

use actix_web::cookie::Cookie;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use base64::prelude::{BASE64_STANDARD, Engine as _};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::AppState;
use super::auth;
use super::error::HttpError;
use crate::api_types::{AppOverview, EnvironmentOverview};
use crate::core::deploy::{Deploy, DeployStatus, Stage};
use crate::core::ids::{AppName, DeployId, EnvironmentName};
use crate::core::time::UnixMillis;
use crate::ops::{OpsError, deploys, lifecycle, overview::overview};
use crate::store::{DeployFilter, StoreError};

/// How many deploys an environment's page lists.
const HISTORY: usize = 50;
/// How many log lines a deploy page renders; the raw log link has them all.
const LOG_LINES: usize = 10_000;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/login", web::post().to(login))
        // Someone typing /login gets the login page (or the dashboard, if logged in).
        .route("/login", web::get().to(|| async { see_other("/") }))
        .route("/logout", web::post().to(logout))
        .route("/deploys/{id}", web::get().to(deploy_page))
        .route("/environments/{app}/{env}", web::get().to(environment_page))
        .route("/environments/{app}/{env}/deploy", web::post().to(deploy))
        .route(
            "/environments/{app}/{env}/rollback",
            web::post().to(rollback),
        )
        .route("/environments/{app}/{env}/promote", web::post().to(promote))
        .route("/environments/{app}/{env}/restart", web::post().to(restart))
        .route("/environments/{app}/{env}/pin", web::post().to(pin))
        .route("/environments/{app}/{env}/unpin", web::post().to(unpin));
}

// ---------------------------------------------------------------------------------
// Who is looking, and what a page answers when something is wrong.

/// A request that proved it holds the API token; pages put its CSRF token in forms.
struct Viewer {
    csrf: String,
}

fn viewer(req: &HttpRequest, state: &AppState) -> Result<Viewer, PageError> {
    auth::authenticate(req).map_err(|_| PageError::LogInFirst)?;
    let token = auth::api_token(state)?;
    Ok(Viewer {
        csrf: auth::csrf_value(&token),
    })
}

/// The fields every dashboard form may send.
#[derive(Deserialize, Default)]
struct ActionForm {
    csrf: Option<String>,
    /// For tag-following environments, which have no branch head to default to.
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    /// For a promote: the environment whose live commit to deploy.
    from: Option<String>,
}

/// A dashboard POST: logged in, and carrying the CSRF token.
fn checked_form(req: &HttpRequest, state: &AppState, body: &[u8]) -> Result<ActionForm, PageError> {
    viewer(req, state)?;
    let form: ActionForm = serde_urlencoded::from_bytes(body)
        .map_err(|e| HttpError::BadRequest(format!("not a form post: {e}")))?;
    check_csrf(state, &form)?;
    Ok(form)
}

fn check_csrf(state: &AppState, form: &ActionForm) -> Result<(), PageError> {
    if auth::csrf_matches(state, form.csrf.as_deref().unwrap_or_default())? {
        Ok(())
    } else {
        Err(HttpError::Forbidden(
            "this form came without a valid CSRF token: reload the page and try again".into(),
        )
        .into())
    }
}

/// What a page answers instead of itself.
#[derive(Debug)]
enum PageError {
    /// Not logged in: off to the login page.
    LogInFirst,
    /// Any other error, with the status the one table in `error.rs` gives it.
    Http(HttpError),
}

impl From<HttpError> for PageError {
    fn from(e: HttpError) -> PageError {
        PageError::Http(e)
    }
}

impl From<OpsError> for PageError {
    fn from(e: OpsError) -> PageError {
        PageError::Http(e.into())
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> PageError {
        PageError::Http(e.into())
    }
}

impl fmt::Display for PageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PageError::LogInFirst => f.write_str("log in first"),
            PageError::Http(e) => e.fmt(f),
        }
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            PageError::LogInFirst => StatusCode::SEE_OTHER,
            PageError::Http(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            PageError::LogInFirst => see_other("/"),
            PageError::Http(e) => {
                let status = e.status_code();
                if status == StatusCode::INTERNAL_SERVER_ERROR {
                    tracing::error!(error = %e, "dashboard request failed");
                }
                let title = status.canonical_reason().unwrap_or("Error");
                let body = html! {
                    h1 { (status.as_u16()) " " (title) }
                    p.error { (e) }
                    p { a href="/" { "Back to the dashboard" } }
                };
                page(status, title, None, body)
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Handlers.

async fn index(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let viewer = match viewer(&req, &state) {
        Ok(viewer) => viewer,
        Err(PageError::LogInFirst) => return Ok(login_page(&state, StatusCode::OK, None)),
        Err(e) => return Err(e),
    };
    let apps = overview(&state.ops()).await?;
    Ok(page(
        StatusCode::OK,
        "Environments",
        Some(&viewer),
        overview_body(&apps, &viewer),
    ))
}

#[derive(Deserialize)]
struct LoginForm {
    token: Option<String>,
}

async fn login(body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
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

async fn logout(body: web::Bytes, state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let form: ActionForm = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    check_csrf(&state, &form)?;
    Ok(with_cookie(see_other("/"), &session_cookie(&state, None)))
}

/// The session cookie (`None`: the one that clears it), `Secure` when the server is
/// reached over https.
fn session_cookie(state: &AppState, value: Option<String>) -> Cookie<'static> {
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
fn with_cookie(mut response: HttpResponse, cookie: &Cookie<'_>) -> HttpResponse {
    match response.add_cookie(cookie) {
        Ok(()) => response,
        Err(e) => {
            HttpError::Internal(format!("cannot set the session cookie: {e}")).error_response()
        }
    }
}

async fn deploy_page(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let viewer = viewer(&req, &state)?;
    let deploy = deploys::find_deploy(&state.ops(), &id).await?;
    let deploy_id = deploy.id;
    // Read after the deploy: the file is at least as new as the status we show, so a
    // deploy shown as ended has its whole log here.
    let path = state.logs.path(deploy_id);
    let bytes = web::block(move || std::fs::read(path).unwrap_or_default())
        .await
        .map_err(HttpError::from)?;
    let log = visible_log(
        &String::from_utf8_lossy(&bytes),
        deploy.status.is_terminal(),
        LOG_LINES,
    );
    let title = format!(
        "Deploy #{} · {}/{}",
        deploy.id, deploy.app, deploy.environment
    );
    Ok(page(
        StatusCode::OK,
        &title,
        Some(&viewer),
        deploy_body(&deploy, &log),
    ))
}

async fn environment_page(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let viewer = viewer(&req, &state)?;
    let (app, env) = path.into_inner();
    let missing = || HttpError::NotFound(format!("no environment {app:?}/{env:?}"));
    let app_name = AppName::parse(&app).map_err(|_| missing())?;
    let env_name = EnvironmentName::parse(&env).map_err(|_| missing())?;
    let apps = overview(&state.ops()).await?;
    let app_overview = apps
        .iter()
        .find(|a| a.name == app_name)
        .ok_or_else(missing)?;
    // A torn-down temporary environment is no longer listed, but its history is.
    let current = app_overview
        .environments
        .iter()
        .find(|e| e.name == env_name);
    let filter = DeployFilter {
        app: Some(app_name.to_string()),
        environment: Some(env_name.to_string()),
        limit: HISTORY,
    };
    let history = deploys::list(&state.ops(), filter).await?;
    if current.is_none() && history.is_empty() {
        return Err(missing().into());
    }
    let title = format!("{app_name}/{env_name}");
    let body = environment_body(
        &app_name,
        &env_name,
        current,
        &app_overview.environments,
        &history,
        &viewer,
    );
    Ok(page(StatusCode::OK, &title, Some(&viewer), body))
}

async fn deploy(
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

async fn rollback(
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

async fn restart(
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

async fn pin(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    set_pin(req, path, body, state, true).await
}

async fn unpin(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    set_pin(req, path, body, state, false).await
}

async fn set_pin(
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

async fn promote(
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

// ---------------------------------------------------------------------------------
// Pages.

fn login_page(state: &AppState, status: StatusCode, error: Option<&str>) -> HttpResponse {
    let disabled = state.config.get().server.api_token.is_none();
    let body = html! {
        section.login {
            h1 { "Log in" }
            p.muted {
                "Use the API token: the value of "
                code { (state.config.get().server.api_token_env) }
                " in stagehand's environment."
            }
            @if disabled {
                p.error {
                    "The dashboard is disabled until " (state.config.get().server.api_token_env)
                    " is set."
                }
            }
            @if let Some(error) = error {
                p.error role="alert" { (error) }
            }
            form method="post" action="/login" {
                label for="token" { "API token" }
                input #token type="password" name="token" autocomplete="current-password"
                    required autofocus;
                button type="submit" { "Log in" }
            }
        }
    };
    page(status, "Log in", None, body)
}

fn overview_body(apps: &[AppOverview], viewer: &Viewer) -> Markup {
    html! {
        h1 { "Environments" }
        @if apps.is_empty() {
            p.muted { "No apps are configured." }
        }
        @for app in apps {
            section.app {
                h2 { (app.name) " " span.muted { (app.github) } }
                table.environments {
                    thead { tr {
                        th { "Environment" } th { "Follows" } th { "Live release" }
                        th { "Commit" } th { "Last deploy" } th { "" }
                    } }
                    tbody {
                        @for env in &app.environments {
                            (environment_row(&app.name, env, &app.environments, viewer))
                        }
                    }
                }
            }
        }
    }
}

fn environment_row(
    app: &AppName,
    env: &EnvironmentOverview,
    siblings: &[EnvironmentOverview],
    viewer: &Viewer,
) -> Markup {
    html! {
        tr data-environment=(env.name) {
            td {
                a href=(environment_url(app, &env.name)) { (env.name) }
                (environment_tags(env))
                @if let Some(address) = &env.address {
                    br; a.mono.address href=(address) rel="noopener" { (address) }
                }
            }
            td.mono { (env.fed_by) }
            td.mono {
                (env.live_release.as_deref().unwrap_or("—"))
                @if let Some(process) = &env.process { " " (super::processes::badge(process)) }
            }
            td {
                span.mono { (short(env.live_commit.as_deref())) }
                @if let Some(live) = &env.live_deploy {
                    (commit_message(live.message.as_deref(), live.author.as_deref()))
                }
            }
            td.last-deploy {
                @if let Some(last) = &env.last_deploy {
                    (badge(last.status)) " "
                    a href=(deploy_url(last.id)) { "#" (last.id) }
                    " " span.muted { (last.trigger) ", " (when_text(&last.created_at)) }
                    // A failed attempt is not the environment's state: say what is live.
                    @if env.live_release.is_some()
                        && env.live_deploy.as_ref().is_none_or(|live| live.id != last.id)
                        && matches!(last.status, DeployStatus::Failed | DeployStatus::RolledBack | DeployStatus::Cancelled | DeployStatus::Interrupted)
                    {
                        " " span.tag.unchanged title="this attempt did not change the live release" {
                            "live release unchanged"
                        }
                    }
                    @if let Some(pending) = &env.pending {
                        " " span.tag.pending title="auto_deploy is off: Deploy releases it" {
                            "pending " (short(pending.commit.as_deref()))
                        }
                    }
                } @else {
                    span.muted { "never deployed" }
                }
            }
            td.actions { (actions(app, env, siblings, viewer)) }
        }
    }
}

/// A deploy's commit message (first line), its author on hover.
fn commit_message(message: Option<&str>, author: Option<&str>) -> Markup {
    html! {
        @if let Some(message) = message {
            " " span.message title=(author.map(|a| format!("by {a}")).unwrap_or_default()) {
                (message)
            }
        }
    }
}

fn environment_tags(env: &EnvironmentOverview) -> Markup {
    html! {
        @if env.temporary {
            " " span.tag.temporary title="made from a branch pattern; removed with its branch" {
                "temporary"
            }
        }
        @if env.protected { " " span.tag { "protected" } }
        @if !env.auto_deploy { " " span.tag { "manual" } }
        @if env.pinned {
            " " span.tag.pinned title="never expires: stagehand unpin APP ENV to let it" { "pinned" }
        }
        @if let Some(at) = &env.expires_at {
            " " span.tag.expires title="torn down then unless deployed or pinned" { "expires " (at) }
        }
    }
}

/// The Deploy, Rollback and Promote buttons: plain form posts, so they work without
/// script. Promote offers the app's other environments that have something live.
fn actions(
    app: &AppName,
    env: &EnvironmentOverview,
    siblings: &[EnvironmentOverview],
    viewer: &Viewer,
) -> Markup {
    let sources: Vec<&EnvironmentOverview> = siblings
        .iter()
        .filter(|s| s.name != env.name && s.live_commit.is_some())
        .collect();
    let base = environment_url(app, &env.name);
    let confirm = format!(
        "Roll {app}/{} back to the release before {}?",
        env.name,
        env.live_release.as_deref().unwrap_or("the live one")
    );
    html! {
        form.inline method="post" action={ (base) "/deploy" } {
            input type="hidden" name="csrf" value=(viewer.csrf);
            @if env.follows_tags {
                input type="text" name="ref" placeholder="tag, e.g. v1.2.3" required size="14";
            }
            @if env.follows_tags {
                button type="submit" title="Deploy this tag" { "Deploy" }
            } @else {
                button type="submit" title={ "Deploy the head of " (env.fed_by) } { "Deploy" }
            }
        }
        " "
        form.inline method="post" action={ (base) "/rollback" } data-confirm=(confirm) {
            input type="hidden" name="csrf" value=(viewer.csrf);
            button.secondary type="submit" disabled[env.live_release.is_none()]
                title="Switch back to the previous release" { "Rollback" }
        }
        @if env.process.is_some() {
            " " (super::processes::restart_form(&base, &viewer.csrf))
        }
        @if env.temporary {
            " " (super::lifecycle::pin_form(&base, &viewer.csrf, env.pinned))
        }
        @if !sources.is_empty() {
            " "
            form.inline method="post" action={ (base) "/promote" } {
                input type="hidden" name="csrf" value=(viewer.csrf);
                select name="from" title="Environment whose live commit to deploy here" {
                    @for source in &sources {
                        option value=(source.name) { (source.name) " (" (short(source.live_commit.as_deref())) ")" }
                    }
                }
                button.secondary type="submit" title="Deploy the commit live there into this environment" { "Promote" }
            }
        }
    }
}

fn environment_body(
    app: &AppName,
    env: &EnvironmentName,
    current: Option<&EnvironmentOverview>,
    siblings: &[EnvironmentOverview],
    history: &[Deploy],
    viewer: &Viewer,
) -> Markup {
    html! {
        p.crumbs { a href="/" { "Environments" } " / " (app) }
        h1 { (app) "/" (env) @if let Some(current) = current { (environment_tags(current)) } }
        @if let Some(current) = current {
            dl.fields {
                dt { "Follows" } dd.mono { (current.fed_by) }
                dt { "Live release" } dd.mono { (current.live_release.as_deref().unwrap_or("—")) }
                dt { "Live commit" } dd.mono { (current.live_commit.as_deref().unwrap_or("—")) }
                @if let Some(live) = &current.live_deploy {
                    // What is running, apart from whatever was attempted last.
                    dt { "Live since" }
                    dd {
                        a href=(deploy_url(live.id)) { "#" (live.id) } " "
                        (live.finished_at.as_deref().map_or_else(|| "—".into(), when_text))
                        (commit_message(live.message.as_deref(), live.author.as_deref()))
                        @if let Some(author) = &live.author { " " span.muted { "by " (author) } }
                    }
                }
            }
            p { (actions(app, current, siblings, viewer)) }
        } @else {
            p.muted { "This environment no longer exists; its history remains." }
        }
        h2 { "History" }
        @if history.is_empty() {
            p.muted { "No deploys yet." }
        } @else {
            table.history {
                thead { tr {
                    th { "Deploy" } th { "Status" } th { "Trigger" } th { "Ref" }
                    th { "Commit" } th { "Release" } th { "Created" } th { "Took" }
                } }
                tbody {
                    @for deploy in history {
                        tr {
                            td { a href=(deploy_url(deploy.id)) { "#" (deploy.id) } }
                            td { (badge(deploy.status)) }
                            td { (deploy.trigger) }
                            td.mono { (deploy.git_ref) }
                            td { span.mono { (short(deploy.commit.as_deref())) } (commit_message(deploy.message.as_deref(), deploy.author.as_deref())) }
                            td.mono { (deploy.release.as_deref().unwrap_or("—")) }
                            td { (when(deploy.created_at)) }
                            td { (took(deploy)) }
                        }
                    }
                }
            }
        }
    }
}

fn deploy_body(deploy: &Deploy, log: &VisibleLog) -> Markup {
    let env_url = environment_url(&deploy.app, &deploy.environment);
    html! {
        p.crumbs {
            a href="/" { "Environments" } " / "
            a href=(env_url) { (deploy.app) "/" (deploy.environment) }
        }
        h1 {
            "Deploy #" (deploy.id) " "
            span #status class={ "badge " (deploy.status) } { (deploy.status) }
        }
        p #reason .reason { (deploy.reason.as_deref().unwrap_or_default()) }
        div.summary {
            dl.fields {
                dt { "Environment" }
                dd {
                    a href=(env_url) { (deploy.app) "/" (deploy.environment) }
                    @if deploy.base_environment != deploy.environment {
                        " " span.muted { "(from " (deploy.base_environment) ")" }
                    }
                }
                dt { "Trigger" }
                dd { (deploy.trigger) @if deploy.forced { " (forced push)" } }
                @if let Some(from) = &deploy.from_environment {
                    dt { "From" } dd { (from) }
                }
                dt { "Ref" } dd.mono { (deploy.git_ref) }
                // `data-field`s are refreshed from `/api/deploys/{id}` as the deploy runs.
                dt { "Commit" }
                dd.mono data-field="commit" { (deploy.commit.as_deref().unwrap_or("—")) }
                dt { "Message" }
                dd data-field="message" { (deploy.message.as_deref().unwrap_or("—")) }
                dt { "Author" }
                dd data-field="author" { (deploy.author.as_deref().unwrap_or("—")) }
                dt { "Release" }
                dd.mono data-field="release" { (deploy.release.as_deref().unwrap_or("—")) }
                dt { "Created" } dd { (when(deploy.created_at)) }
                dt { "Started" }
                dd data-field="started_at" { (maybe_when(deploy.started_at)) }
                dt { "Finished" }
                dd data-field="finished_at" { (maybe_when(deploy.finished_at)) }
            }
            div {
                h2 { "Stages" }
                table #stages {
                    tbody {
                        @for stage in &deploy.stages { (stage_row(stage)) }
                    }
                }
            }
        }
        h2 { "Log " a.small href=(deploy.log_url()) { "raw" } }
        @if log.skipped > 0 {
            p.muted { (log.skipped) " earlier lines are not shown here; the raw log has them." }
        }
        // The script reads where to resume from these attributes; it never parses HTML.
        pre #log data-id=(deploy.id) data-after=(log.last)
            data-live=(if deploy.status.is_terminal() { "false" } else { "true" }) {
            @for line in &log.lines { (line) "\n" }
        }
    }
}

fn stage_row(stage: &Stage) -> Markup {
    html! {
        tr data-stage=(stage.name) {
            td { (stage.name) }
            td { (badge(stage.status)) }
            td.duration { (stage.duration_ms.map(duration).unwrap_or_default()) }
        }
    }
}

fn badge(status: DeployStatus) -> Markup {
    html! { span class={ "badge " (status) } { (status) } }
}

/// The frame of every page: its headers say no framing, no caching, and which inline
/// script and style may run.
fn page(status: StatusCode, title: &str, viewer: Option<&Viewer>, body: Markup) -> HttpResponse {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · stagehand" }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    a.brand href="/" { "stagehand" }
                    @if let Some(viewer) = viewer {
                        form.inline method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(viewer.csrf);
                            button.link type="submit" { "Log out" }
                        }
                    }
                }
                main { (body) }
                script { (PreEscaped(SCRIPT)) }
            }
        }
    };
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP.as_str()))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "same-origin"))
        .body(markup.into_string())
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

fn deploy_url(id: DeployId) -> String {
    format!("/deploys/{id}")
}

/// App and environment names are `[a-z0-9_-]`: safe in a path as they are.
fn environment_url(app: &AppName, env: &EnvironmentName) -> String {
    format!("/environments/{app}/{env}")
}

// ---------------------------------------------------------------------------------
// Pure helpers.

/// The part of a log a page renders.
#[derive(Debug, PartialEq, Eq)]
struct VisibleLog {
    lines: Vec<String>,
    /// Lines before `lines` left out to keep the page small.
    skipped: usize,
    /// The number of the last line shown (lines count from 1, as the event ids do).
    last: usize,
}

/// The last `cap` complete lines of `text`. While the deploy runs, a last line without
/// its newline may still be being written: it is left to the event stream, which
/// sends it whole.
fn visible_log(text: &str, ended: bool, cap: usize) -> VisibleLog {
    let complete = if ended {
        text
    } else {
        text.rfind('\n').map_or("", |end| &text[..=end])
    };
    let all: Vec<&str> = complete.lines().collect();
    let skipped = all.len().saturating_sub(cap);
    VisibleLog {
        lines: all[skipped..].iter().map(|l| (*l).to_owned()).collect(),
        skipped,
        last: all.len(),
    }
}

fn short(commit: Option<&str>) -> String {
    commit.map_or_else(|| "—".into(), |c| c.chars().take(7).collect())
}

/// `2026-11-27 18:43:12 UTC`
fn when(at: UnixMillis) -> String {
    when_text(&at.rfc3339())
}

/// [`when`] of an RFC 3339 time as the API writes it.
fn when_text(rfc3339: &str) -> String {
    format!(
        "{} UTC",
        rfc3339.get(..19).unwrap_or(rfc3339).replace('T', " ")
    )
}

fn maybe_when(at: Option<UnixMillis>) -> String {
    at.map_or_else(|| "—".into(), when)
}

fn took(deploy: &Deploy) -> String {
    match (deploy.started_at, deploy.finished_at) {
        (Some(start), Some(end)) => duration(end.0 - start.0),
        _ => String::new(),
    }
}

fn duration(ms: i64) -> String {
    match ms {
        ..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{}m {:02}s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

/// A CSP source for an inline script or style: its SHA-256 in standard base64.
fn csp_hash(source: &str) -> String {
    let digest = Sha256::digest(source.as_bytes());
    format!("'sha256-{}'", BASE64_STANDARD.encode(digest))
}

static CSP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        csp_hash(SCRIPT),
        csp_hash(CSS)
    )
});

/// The dashboard's only style sheet, inlined into each page (its hash is in the CSP).
const CSS: &str = include_str!("assets/dashboard.css");

/// Asks before a rollback, and follows a running deploy: appends `log` lines (as text
/// nodes), updates stage badges on `stage` and the status on `status`, and stops at a
/// terminal status (else `EventSource` would reconnect forever).
const SCRIPT: &str = include_str!("assets/dashboard.js");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, expected) in cases {
            assert_eq!(
                BASE64_STANDARD.encode(input.as_bytes()),
                expected,
                "{input:?}"
            );
        }
    }

    #[test]
    fn visible_log_keeps_complete_lines_and_numbers_them() {
        type Case = (
            &'static str,
            bool,
            usize,
            (&'static [&'static str], usize, usize),
        );
        let cases: &[Case] = &[
            ("", false, 10, (&[], 0, 0)),
            ("a\nb\n", false, 10, (&["a", "b"], 0, 2)),
            // A running deploy's half-written last line is left to the stream.
            ("a\nb\nhal", false, 10, (&["a", "b"], 0, 2)),
            ("a\nb\nend", true, 10, (&["a", "b", "end"], 0, 3)),
            ("1\n2\n3\n4\n", true, 2, (&["3", "4"], 2, 4)),
        ];
        for (text, ended, cap, (lines, skipped, last)) in cases {
            let got = visible_log(text, *ended, *cap);
            assert_eq!(
                got,
                VisibleLog {
                    lines: lines.iter().map(|l| l.to_string()).collect(),
                    skipped: *skipped,
                    last: *last,
                },
                "{text:?}"
            );
        }
    }

    #[test]
    fn durations_read_naturally() {
        let cases = [
            (0, "0 ms"),
            (999, "999 ms"),
            (1_000, "1.0 s"),
            (12_345, "12.3 s"),
            (60_000, "1m 00s"),
            (754_000, "12m 34s"),
        ];
        for (ms, expected) in cases {
            assert_eq!(duration(ms), expected, "{ms}");
        }
    }

    #[test]
    fn attacker_controlled_text_is_escaped() {
        let env = EnvironmentOverview {
            name: EnvironmentName::parse("preview-x").unwrap(),
            branch: Some("feature/<script>alert(1)</script>".into()),
            fed_by: "branch feature/<script>alert(1)</script>\"'".into(),
            temporary: true,
            base: None,
            protected: false,
            auto_deploy: true,
            follows_tags: false,
            live_release: None,
            live_commit: Some("<b>".into()),
            live_deploy: None,
            last_deploy: None,
            pending: None,
            process: None,
            address: Some("https://x.test/\"><script>alert(1)</script>".into()),
            pinned: false,
            expires_at: None,
        };
        let viewer = Viewer { csrf: "c".into() };
        let html =
            environment_row(&AppName::parse("shop").unwrap(), &env, &[], &viewer).into_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("feature/&lt;script&gt;alert(1)&lt;/script&gt;&quot;'"),
            "{html}"
        );
        assert!(html.contains("&lt;b&gt;"), "{html}");
    }

    #[test]
    fn the_policy_hashes_the_script_and_style_it_serves() {
        assert!(CSP.contains(&csp_hash(SCRIPT)));
        assert!(CSP.contains(&csp_hash(CSS)));
        assert!(CSP.contains("frame-ancestors 'none'"));
        assert!(!CSP.contains("unsafe-inline"));
    }
}
