//! The dashboard's pages: every environment (`/`), one environment's history, one
//! deploy with its log; and the pure helpers that shape what they show (log tail,
//! times, durations). Markup only: maud escapes every value.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};

use super::{
    AppState, HISTORY, LOG_LINES, PageError, Viewer, deploy_url, environment_url, page, viewer,
};
use crate::api_types::{AppOverview, EnvironmentOverview};
use crate::core::deploy::{Deploy, DeployStatus, Stage};
use crate::core::duration::format_elapsed;
use crate::core::ids::{AppName, EnvironmentName};
use crate::core::time::UnixMillis;
use crate::http::error::HttpError;
use crate::ops::{deploys, overview::overview};
use crate::store::DeployFilter;

pub(super) async fn index(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
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

pub(super) async fn deploy_page(
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

pub(super) async fn environment_page(
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

pub(super) fn login_page(
    state: &AppState,
    status: StatusCode,
    error: Option<&str>,
) -> HttpResponse {
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

pub(super) fn overview_body(apps: &[AppOverview], viewer: &Viewer) -> Markup {
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

pub(super) fn environment_row(
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
                @if let Some(process) = &env.process { " " (crate::http::processes::badge(process)) }
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
pub(super) fn commit_message(message: Option<&str>, author: Option<&str>) -> Markup {
    html! {
        @if let Some(message) = message {
            " " span.message title=(author.map(|a| format!("by {a}")).unwrap_or_default()) {
                (message)
            }
        }
    }
}

pub(super) fn environment_tags(env: &EnvironmentOverview) -> Markup {
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
pub(super) fn actions(
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
            " " (crate::http::processes::restart_form(&base, &viewer.csrf))
        }
        @if env.temporary {
            " " (crate::http::lifecycle::pin_form(&base, &viewer.csrf, env.pinned))
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

pub(super) fn environment_body(
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

pub(super) fn deploy_body(deploy: &Deploy, log: &VisibleLog) -> Markup {
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

pub(super) fn stage_row(stage: &Stage) -> Markup {
    html! {
        tr data-stage=(stage.name) {
            td { (stage.name) }
            td { (badge(stage.status)) }
            td.duration { (stage.duration_ms.map(format_elapsed).unwrap_or_default()) }
        }
    }
}

pub(super) fn badge(status: DeployStatus) -> Markup {
    html! { span class={ "badge " (status) } { (status) } }
}

/// The part of a log a page renders.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct VisibleLog {
    pub(super) lines: Vec<String>,
    /// Lines before `lines` left out to keep the page small.
    pub(super) skipped: usize,
    /// The number of the last line shown (lines count from 1, as the event ids do).
    pub(super) last: usize,
}

/// The last `cap` complete lines of `text`. While the deploy runs, a last line without
/// its newline may still be being written: it is left to the event stream, which
/// sends it whole.
pub(super) fn visible_log(text: &str, ended: bool, cap: usize) -> VisibleLog {
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

pub(super) fn short(commit: Option<&str>) -> String {
    commit.map_or_else(|| "—".into(), |c| c.chars().take(7).collect())
}

/// `2026-11-27 18:43:12 UTC`
pub(super) fn when(at: UnixMillis) -> String {
    when_text(&at.rfc3339())
}

/// [`when`] of an RFC 3339 time as the API writes it.
pub(super) fn when_text(rfc3339: &str) -> String {
    format!(
        "{} UTC",
        rfc3339.get(..19).unwrap_or(rfc3339).replace('T', " ")
    )
}

pub(super) fn maybe_when(at: Option<UnixMillis>) -> String {
    at.map_or_else(|| "—".into(), when)
}

pub(super) fn took(deploy: &Deploy) -> String {
    match (deploy.started_at, deploy.finished_at) {
        (Some(start), Some(end)) => format_elapsed(end.0 - start.0),
        _ => String::new(),
    }
}
