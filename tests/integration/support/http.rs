//! HTTP as the tests speak it: [`request`], the one place a request is made, and
//! [`Client`], one server's API with the token and its webhook with signed deliveries.

use std::time::{Duration, Instant};

use awc::http::Method;
use awc::http::header::HeaderMap;
use serde_json::Value;
use stagehand::core::forge::{self, Forge};
use stagehand::core::signature::hex_mac;

use super::config::{SECRET, TOKEN, sample};

/// An answer with everything a test looks at.
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    /// The body as text (lossy: the tests read text and JSON).
    pub text: String,
}

impl Answer {
    /// The body as JSON; `Null` when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// One header's value, empty when absent.
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }
}

/// One request with exactly `headers` and `body`. Redirects are not followed, so a test
/// sees the redirect itself; bodies up to 64 MiB are read (logs of long builds).
pub async fn request(
    method: Method,
    url: &str,
    headers: &[(&str, String)],
    body: Option<Vec<u8>>,
) -> Answer {
    try_request(method, url, headers, body)
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"))
}

/// [`request`] that returns a failure to connect or read instead of panicking (for
/// polling a server that is still starting).
pub async fn try_request(
    method: Method,
    url: &str,
    headers: &[(&str, String)],
    body: Option<Vec<u8>>,
) -> Result<Answer, String> {
    let client = awc::Client::builder()
        .disable_redirects()
        .timeout(Duration::from_secs(60))
        .finish();
    let mut req = client.request(method, url);
    for (name, value) in headers {
        req = req.insert_header((*name, value.as_str()));
    }
    let mut resp = match body {
        Some(body) => req.send_body(body).await,
        None => req.send().await,
    }
    .map_err(|e| e.to_string())?;
    let body = resp
        .body()
        .limit(64 << 20)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Answer {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        text: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A request as the dashboard's page makes it: redirects not followed, the session
/// cookie (`cookie`: its value) and a form body if given.
pub async fn dashboard_request(
    method: &str,
    url: &str,
    cookie: Option<&str>,
    headers: &[(&str, &str)],
    form: Option<&str>,
) -> Answer {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let mut all: Vec<(&str, String)> = headers.iter().map(|(n, v)| (*n, v.to_string())).collect();
    if let Some(cookie) = cookie {
        all.push(("Cookie", format!("stagehand_session={cookie}")));
    }
    if form.is_some() {
        all.push(("Content-Type", "application/x-www-form-urlencoded".into()));
    }
    request(method, url, &all, form.map(|f| f.as_bytes().to_vec())).await
}

/// The session cookie's value logging in with [`TOKEN`] sets.
pub fn session_value() -> String {
    hex_mac(TOKEN.as_bytes(), b"stagehand-session-v1")
}

/// The CSRF token the dashboard's forms carry for [`TOKEN`].
pub fn csrf_value() -> String {
    hex_mac(TOKEN.as_bytes(), b"stagehand-csrf-v1")
}

fn bearer(token: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {token}"))
}

/// One delivery, as its forge would send it: its headers from
/// `core::forge::delivery_headers` (what `hook send` sends too), signed with [`SECRET`],
/// then any header a test sets or removes with [`Delivery::header`].
pub struct Delivery {
    pub forge: Forge,
    pub event: String,
    pub body: Vec<u8>,
    pub delivery_id: String,
    pub app: String,
    /// What it is signed with (or, for GitLab, the token it carries).
    pub secret: String,
    /// Set (`Some`) or removed (`None`) after the forge's own headers.
    changed: Vec<(&'static str, Option<String>)>,
}

impl Delivery {
    pub fn json(event: &str, body: &Value) -> Delivery {
        Delivery::raw(event, serde_json::to_vec(body).unwrap())
    }

    /// A GitHub delivery of `body` as given.
    pub fn raw(event: &str, body: Vec<u8>) -> Delivery {
        Delivery::from_forge(Forge::Github, event, body)
    }

    /// A delivery with exactly the headers `forge` sends.
    pub fn from_forge(forge: Forge, event: &str, body: Vec<u8>) -> Delivery {
        Delivery {
            forge,
            event: event.into(),
            body,
            delivery_id: unique_id(),
            app: "shop".into(),
            secret: SECRET.into(),
            changed: Vec::new(),
        }
    }

    /// This delivery id instead of a fresh one (a redelivery of another delivery).
    pub fn id(mut self, id: &str) -> Delivery {
        self.delivery_id = id.into();
        self
    }

    /// Signed with `secret` instead of [`SECRET`].
    pub fn secret(mut self, secret: &str) -> Delivery {
        self.secret = secret.into();
        self
    }

    /// Header `name` set to `value`, or left out (`None`): a wrong signature, another
    /// hook id, a form's content type, a header an older forge did not send.
    pub fn header(mut self, name: &'static str, value: Option<&str>) -> Delivery {
        self.changed.push((name, value.map(str::to_owned)));
        self
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = forge::delivery_headers(
            self.forge,
            self.secret.as_bytes(),
            &self.event,
            &self.delivery_id,
            &self.body,
        );
        for (name, value) in &self.changed {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            headers.extend(value.clone().map(|v| (*name, v)));
        }
        headers
    }
}

/// A delivery id no other delivery of this test binary has.
pub fn unique_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "72d3162e-cc78-11e3-81ab-{:012}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A push delivery (from `webhook-samples/push.json`) of `sha` to `git_ref`.
pub fn push_body(git_ref: &str, sha: &str) -> Value {
    let mut body = sample("push.json");
    body["ref"] = Value::String(git_ref.into());
    body["after"] = Value::String(sha.into());
    body["forced"] = Value::Bool(false);
    body["head_commit"]["id"] = Value::String(sha.into());
    body
}

/// Talks to a running stagehand over HTTP only (works for a child process too).
#[derive(Clone)]
pub struct Client {
    pub url: String,
}

impl Client {
    /// POSTs `delivery` to its app's hook: (status, JSON answer or `Null`).
    pub async fn send(&self, delivery: &Delivery) -> (u16, Value) {
        let url = format!("{}/hooks/{}", self.url, delivery.app);
        let answer = request(
            Method::POST,
            &url,
            &delivery.headers(),
            Some(delivery.body.clone()),
        )
        .await;
        (answer.status, answer.json())
    }

    /// Sends a signed GitHub `push` of `body`.
    pub async fn push(&self, body: &Value) -> (u16, Value) {
        self.send(&Delivery::json("push", body)).await
    }

    /// GET `path` with the API token (or `token`, or none): status, JSON, text.
    pub async fn get_with(&self, path: &str, token: Option<&str>) -> (u16, Value, String) {
        let headers: Vec<_> = token.map(bearer).into_iter().collect();
        let answer = request(Method::GET, &format!("{}{path}", self.url), &headers, None).await;
        let json = answer.json();
        (answer.status, json, answer.text)
    }

    /// A GET of `path` with the API token, not yet sent: to read a body as it arrives
    /// (a followed log, an event stream), or with another `timeout` than [`request`]'s.
    pub fn get_request(&self, path: &str, timeout: Duration) -> awc::ClientRequest {
        let (name, value) = bearer(TOKEN);
        awc::Client::builder()
            .timeout(timeout)
            .finish()
            .get(format!("{}{path}", self.url))
            .insert_header((name, value))
    }

    /// GET `path` with the API token.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let (status, json, _) = self.get_with(path, Some(TOKEN)).await;
        (status, json)
    }

    /// POST `body` as JSON to `path` with the API token.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let headers = [
            bearer(TOKEN),
            ("Content-Type", "application/json".to_owned()),
        ];
        let body = serde_json::to_vec(body).unwrap();
        let answer = request(
            Method::POST,
            &format!("{}{path}", self.url),
            &headers,
            Some(body),
        )
        .await;
        (answer.status, answer.json())
    }

    /// Polls a deploy until it ends; panics after `secs`.
    pub async fn wait(&self, id: &Value, secs: u64) -> Value {
        let id = id.as_str().unwrap();
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let (status, deploy) = self.get(&format!("/api/deploys/{id}")).await;
            assert_eq!(status, 200, "{deploy}");
            let s = deploy["status"].as_str().unwrap_or_default().to_owned();
            if !["queued", "running"].contains(&s.as_str()) {
                return deploy;
            }
            assert!(
                Instant::now() < deadline,
                "deploy {id} still {s} after {secs}s"
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// [`Client::wait`] that also waits while the deploy is `waiting` for its checks.
    pub async fn wait_through_checks(&self, id: &Value, secs: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let deploy = self.wait(id, secs).await;
            if deploy["status"] != "waiting" {
                return deploy;
            }
            assert!(
                Instant::now() < deadline,
                "deploy {id} still waiting after {secs}s"
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A deploy's whole log as text.
    pub async fn log(&self, id: &Value) -> String {
        let id = id.as_str().unwrap();
        self.get_with(&format!("/api/deploys/{id}/log"), Some(TOKEN))
            .await
            .2
    }
}
