//! The one door for the API token: `Authorization: Bearer`, the dashboard's session
//! cookie, and the CSRF token a write by cookie must carry. A leaf: it knows the
//! request and the configured token, nothing of routes, pages or operations.
//!
//! # Security
//!
//! A request proves it holds the API token in one of two ways:
//!
//! - `Authorization: Bearer <token>` (scripts, the CLI). The token is compared in
//!   constant time, over SHA-256 digests of both sides so that not even its length
//!   leaks. A browser never adds this header on its own, so it needs no CSRF token.
//! - the dashboard's `stagehand_session` cookie, whose value is
//!   HMAC-SHA256(API token, `"stagehand-session-v1"`): the token itself never sits in
//!   the browser. A browser attaches cookies by itself, so a write (any method but
//!   GET/HEAD/OPTIONS) authenticated only by the cookie must also carry the CSRF token
//!   (HMAC-SHA256(API token, `"stagehand-csrf-v1"`)) in `X-CSRF-Token` (a form field
//!   on dashboard posts), or gets 403.
//!
//! Both derived values are fixed for a given token: rotating the API token logs every
//! browser out. Without a configured token the API refuses everyone.
//!
//! The cookie is `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's
//! request carries it), `Path=/`, and `Secure` when `public_url` is https. Cookies are
//! parsed and built by the `cookie` crate (through actix-web), not by hand.

use std::future::{Ready, ready};

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieAge};
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::HttpError;
use crate::core::secret::Secret;
use crate::core::signature::hex_mac;

/// The dashboard's session cookie.
pub const SESSION_COOKIE: &str = "stagehand_session";
/// Where an API write authenticated by the cookie alone carries the CSRF token.
pub const CSRF_HEADER: &str = "X-CSRF-Token";

/// How a request proved that it holds the API token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// The dashboard's session cookie.
    Session,
}

/// Proof that the request carried the API token or the session cookie (and, for a
/// write by cookie, the CSRF token). Handlers take it as proof only: none needs to
/// know which credential it was, the CSRF rule having used that already.
pub struct Authorized;

impl FromRequest for Authorized {
    type Error = HttpError;
    type Future = Ready<Result<Authorized, HttpError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authorize(req))
    }
}

fn authorize(req: &HttpRequest) -> Result<Authorized, HttpError> {
    let credential = authenticate(req)?;
    if credential == Credential::Session && !req.method().is_safe() {
        let given = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !csrf_matches(state_of(req)?.get_ref(), given)? {
            return Err(HttpError::Forbidden(format!(
                "a write authenticated by the session cookie needs the {CSRF_HEADER} header \
                 (or use `Authorization: Bearer <token>`)"
            )));
        }
    }
    Ok(Authorized)
}

/// The server's own state: its absence is the server's fault, not the client's.
fn state_of(req: &HttpRequest) -> Result<web::Data<AppState>, HttpError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| HttpError::Internal("server misconfigured: no state".into()))
}

/// The configured API token; without one, nobody gets in.
pub fn api_token(state: &AppState) -> Result<Secret, HttpError> {
    let config = state.config.get();
    let server = &config.server;
    server.api_token.clone().ok_or_else(|| {
        HttpError::Unauthorized(format!(
            "the API and the dashboard are disabled: set {} in stagehand's environment",
            server.api_token_env
        ))
    })
}

/// Whether the request holds the token: a bearer header is checked first (and, when
/// present, alone), else the session cookie. CSRF is the caller's business.
pub fn authenticate(req: &HttpRequest) -> Result<Credential, HttpError> {
    let state = state_of(req)?;
    let expected = api_token(&state)?;
    if let Some(header) = req.headers().get(header::AUTHORIZATION) {
        let given = header
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                HttpError::Unauthorized("missing `Authorization: Bearer <token>` header".into())
            })?;
        return if same_secret(given.trim(), expected.expose()) {
            Ok(Credential::Bearer)
        } else {
            Err(HttpError::Unauthorized("wrong API token".into()))
        };
    }
    // `HttpRequest::cookie` reads every `Cookie` header (HTTP/2 may split them) and
    // skips pairs that do not parse.
    match req.cookie(SESSION_COOKIE) {
        Some(given) if same_secret(given.value(), &session_value(&expected)) => {
            Ok(Credential::Session)
        }
        Some(_) => Err(HttpError::Unauthorized(
            "the session cookie is stale (the API token changed?): log in again".into(),
        )),
        None => Err(HttpError::Unauthorized(
            "missing `Authorization: Bearer <token>` header (or the dashboard's session cookie)"
                .into(),
        )),
    }
}

/// Whether `given` is the API token: what the dashboard's login checks.
pub fn token_matches(state: &AppState, given: &str) -> Result<bool, HttpError> {
    Ok(same_secret(given.trim(), api_token(state)?.expose()))
}

/// Whether `given` is the CSRF token.
pub fn csrf_matches(state: &AppState, given: &str) -> Result<bool, HttpError> {
    Ok(same_secret(given, &csrf_value(&api_token(state)?)))
}

/// Constant time, over SHA-256 digests of both sides, so that not even the length of
/// the expected value leaks through timing.
fn same_secret(given: &str, expected: &str) -> bool {
    bool::from(Sha256::digest(given.as_bytes()).ct_eq(&Sha256::digest(expected.as_bytes())))
}

/// The session cookie's value: derived, so the token itself never sits in a browser.
pub fn session_value(token: &Secret) -> String {
    hex_mac(token.expose().as_bytes(), b"stagehand-session-v1")
}

/// The CSRF token every dashboard form (and every API write by cookie) carries.
pub fn csrf_value(token: &Secret) -> String {
    hex_mac(token.expose().as_bytes(), b"stagehand-csrf-v1")
}

/// The session cookie to set after a login; `None` for the one that clears it at
/// logout. `secure`: the server is reached over https (`public_url`).
pub fn session_cookie(value: Option<String>, secure: bool) -> Cookie<'static> {
    let clear = value.is_none();
    let mut cookie = Cookie::build(SESSION_COOKIE, value.unwrap_or_default())
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .finish();
    if clear {
        cookie.set_max_age(CookieAge::ZERO);
    }
    if secure {
        cookie.set_secure(true);
    }
    cookie
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn the_session_cookie_has_its_attributes() {
        let set = session_cookie(Some("abc".into()), false).to_string();
        assert_eq!(
            set,
            "stagehand_session=abc; HttpOnly; SameSite=Strict; Path=/"
        );
        let secure = session_cookie(Some("abc".into()), true).to_string();
        assert!(secure.split("; ").any(|a| a == "Secure"), "{secure}");
        let clear = session_cookie(None, false).to_string();
        assert!(clear.starts_with("stagehand_session=;"), "{clear}");
        assert!(clear.contains("Max-Age=0"), "{clear}");
    }

    /// Quoted values, several pairs and several headers: what the hand-written parser
    /// handled, now the `cookie` crate's job.
    #[test]
    fn the_session_cookie_is_found_among_others() {
        let cases: &[(&[&str], Option<&str>)] = &[
            (&["stagehand_session=ab12"], Some("ab12")),
            (&["a=1; stagehand_session=ab12; b=2"], Some("ab12")),
            (&["stagehand_session=\"ab12\""], Some("ab12")),
            (&["a=1", "stagehand_session=ab12"], Some("ab12")),
            (&["a=1; broken; b=2"], None),
            (&[], None),
        ];
        for (headers, expected) in cases {
            let mut req = TestRequest::default();
            for h in *headers {
                req = req.append_header((header::COOKIE, *h));
            }
            let req = req.to_http_request();
            let found = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned());
            assert_eq!(found.as_deref(), *expected, "{headers:?}");
        }
    }
}
