//! The HTTP client the CLI commands use to talk to a running `stagehand serve`: every
//! call goes through the same `/api` the dashboard and scripts use, with the bearer
//! token. Errors say what to check (is the server up? is the token right?). Answers
//! come back as JSON values (what `--json` prints as it came) and are read into
//! [`crate::api_types`] with [`read`], the types the server answers with.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach stagehand at {url}: {detail} (is `stagehand serve` running? pass --server URL)"
    )]
    Unreachable { url: String, detail: String },
    #[error(
        "the server refused the API token: {0} (set STAGEHAND_API_TOKEN to the server's token)"
    )]
    Unauthorized(String),
    #[error("{status}: {message}")]
    Api { status: u16, message: String },
    #[error("unexpected answer from {url}: {detail}")]
    Protocol { url: String, detail: String },
}

#[derive(Clone)]
pub struct Client {
    pub base: String,
    token: Option<String>,
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Client {
        Client {
            base: base.trim_end_matches('/').to_owned(),
            token,
        }
    }

    pub(crate) fn http(&self, timeout: Duration) -> awc::Client {
        awc::Client::builder().timeout(timeout).finish()
    }

    pub(crate) fn authorize(&self, req: awc::ClientRequest) -> awc::ClientRequest {
        match &self.token {
            Some(token) => req.insert_header(("Authorization", format!("Bearer {token}"))),
            None => req,
        }
    }

    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let req = self.authorize(self.http(Duration::from_secs(30)).get(&url));
        let resp = req.send().await.map_err(|e| unreachable(&url, e))?;
        json_answer(&url, resp).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let req = self.authorize(self.http(Duration::from_secs(30)).post(&url));
        let resp = req
            .send_json(body)
            .await
            .map_err(|e| unreachable(&url, e))?;
        json_answer(&url, resp).await
    }

    /// The log written so far, without waiting for the deploy to end.
    pub async fn log_text(&self, id: &str) -> Result<String, ClientError> {
        let url = format!("{}/api/deploys/{id}/log", self.base);
        let req = self.authorize(self.http(Duration::from_secs(60)).get(&url));
        let mut resp = req.send().await.map_err(|e| unreachable(&url, e))?;
        if !resp.status().is_success() {
            return Err(json_answer(&url, resp)
                .await
                .err()
                .unwrap_or(ClientError::Protocol {
                    url,
                    detail: "log refused".into(),
                }));
        }
        let body = resp
            .body()
            .limit(256 << 20)
            .await
            .map_err(|e| ClientError::Protocol {
                url: url.clone(),
                detail: e.to_string(),
            })?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// Streams a deploy's log (`?follow=1`), calling `on_line` per line, until it ends.
    pub async fn follow_log(
        &self,
        id: &str,
        mut on_line: impl FnMut(&str),
    ) -> Result<(), ClientError> {
        let url = format!("{}/api/deploys/{id}/log?follow=1", self.base);
        // No overall timeout: a build may run for as long as its step_timeout allows.
        let req = self.authorize(self.http(Duration::from_secs(24 * 3600)).get(&url));
        let mut resp = req.send().await.map_err(|e| unreachable(&url, e))?;
        if !resp.status().is_success() {
            return Err(json_answer(&url, resp)
                .await
                .err()
                .unwrap_or(ClientError::Protocol {
                    url,
                    detail: "log stream refused".into(),
                }));
        }
        let mut pending = Vec::new();
        while let Some(chunk) = resp.next().await {
            let chunk = chunk.map_err(|e| ClientError::Protocol {
                url: url.clone(),
                detail: e.to_string(),
            })?;
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                on_line(String::from_utf8_lossy(&line[..line.len() - 1]).as_ref());
            }
        }
        if !pending.is_empty() {
            on_line(String::from_utf8_lossy(&pending).as_ref());
        }
        Ok(())
    }
}

/// `value` (an answer from `path`) read as the API type `T`.
pub fn read<T: serde::de::DeserializeOwned>(path: &str, value: &Value) -> Result<T, ClientError> {
    T::deserialize(value).map_err(|e| ClientError::Protocol {
        url: path.to_owned(),
        detail: format!(
            "the answer is not what this stagehand expects ({e}): is the server the same version?"
        ),
    })
}

fn unreachable(url: &str, e: awc::error::SendRequestError) -> ClientError {
    ClientError::Unreachable {
        url: url.to_owned(),
        detail: e.to_string(),
    }
}

async fn json_answer(
    url: &str,
    mut resp: awc::ClientResponse<
        impl futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>>
        + Unpin,
    >,
) -> Result<Value, ClientError> {
    let status = resp.status().as_u16();
    let body = resp
        .body()
        .limit(64 << 20)
        .await
        .map_err(|e| ClientError::Protocol {
            url: url.to_owned(),
            detail: e.to_string(),
        })?;
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let message = value["error"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
    match status {
        200..=299 => Ok(value),
        401 => Err(ClientError::Unauthorized(message)),
        _ => Err(ClientError::Api { status, message }),
    }
}
