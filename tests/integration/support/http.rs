//! HTTP as the tests speak it: [`request`], the one place a request is made, and
//! [`Client`], one server's API with the token and its webhook with signed deliveries.

use std::time::{Duration, Instant};

use awc::http::Method;
use awc::http::header::HeaderMap;
use serde_json::Value;
use stagehand::core::forge::{self, Forge};

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

fn bearer(token: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {token}"))
}

/// One delivery, as its forge would send it: signed with [`SECRET`] unless told
/// otherwise.
pub struct Delivery {
    pub forge: Forge,
    pub event: String,
    pub body: Vec<u8>,
    pub content_type: String,
    pub delivery_id: String,
    /// GitHub's `X-GitHub-Hook-ID`; `None`: no such header.
    pub hook_id: Option<String>,
    /// GitHub's `X-Hub-Signature-256`. `None`: sign with [`SECRET`]; `Some(None)`: no
    /// signature header; `Some(Some(value))`: that value.
    pub signature: Option<Option<String>>,
    pub app: String,
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
            content_type: "application/json".into(),
            delivery_id: unique_id(),
            hook_id: Some("123456789".into()),
            signature: None,
            app: "shop".into(),
        }
    }

    /// The forge's own headers (`core::forge::delivery_headers`, what `hook send` sends
    /// too), then this delivery's content type, hook id and signature.
    fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = forge::delivery_headers(
            self.forge,
            SECRET.as_bytes(),
            &self.event,
            &self.delivery_id,
            &self.body,
        );
        let mut set = |name: &'static str, value: Option<String>| {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            headers.extend(value.map(|v| (name, v)));
        };
        set("Content-Type", Some(self.content_type.clone()));
        if self.forge == Forge::Github {
            set("X-GitHub-Hook-ID", self.hook_id.clone());
            if let Some(signature) = &self.signature {
                set("X-Hub-Signature-256", signature.clone());
            }
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
