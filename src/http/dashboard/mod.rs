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
//!
//! | file       | what                                                              |
//! |------------|-------------------------------------------------------------------|
//! | `mod.rs`   | routes, who is looking, error pages, the page frame and its CSP   |
//! | `views.rs` | the pages (GET): markup from `ops`' overview and the store's deploys |
//! | `forms.rs` | login, logout and the form posts, each one `ops` operation         |

mod forms;
mod views;

use std::fmt;
use std::sync::LazyLock;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use base64::prelude::{BASE64_STANDARD, Engine as _};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use sha2::{Digest, Sha256};

use super::AppState;
use super::auth;
use super::error::HttpError;
use crate::core::ids::{AppName, DeployId, EnvironmentName};
use crate::ops::OpsError;
use crate::store::StoreError;
use forms::{deploy, login, logout, pin, promote, restart, rollback, unpin};
use views::{deploy_page, environment_page, index};

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
const CSS: &str = include_str!("../assets/dashboard.css");

/// Asks before a rollback, and follows a running deploy: appends `log` lines (as text
/// nodes), updates stage badges on `stage` and the status on `status`, and stops at a
/// terminal status (else `EventSource` would reconnect forever).
const SCRIPT: &str = include_str!("../assets/dashboard.js");

#[cfg(test)]
mod tests;
