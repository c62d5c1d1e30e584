//! `stagehand hook send`: a signed delivery, as GitHub would send it, to check a setup
//! without pushing. The body comes from a `webhook-samples/` file (built in, or
//! `--sample FILE`); with `--branch` its `ref` is rewritten and `after` set to that
//! branch's real head, read from the app's repository, so the deploy it starts is real.

use serde_json::Value;

use crate::config::AppConfig;
use crate::core::signature;

/// The samples the binary carries, so `hook send` and `demo` work from anywhere.
pub const PUSH_SAMPLE: &str = include_str!("../webhook-samples/push.json");
pub const PING_SAMPLE: &str = include_str!("../webhook-samples/ping.json");

#[derive(Debug, thiserror::Error)]
pub enum HookSendError {
    #[error("reading the sample {path}: {detail}")]
    Sample { path: String, detail: String },
    #[error("finding the head of branch {branch:?} in {repo}: {detail}")]
    Head {
        branch: String,
        repo: String,
        detail: String,
    },
    #[error("sending to {url}: {detail} (is `stagehand serve` running? pass --server URL)")]
    Send { url: String, detail: String },
}

pub struct Delivery {
    pub event: String,
    pub body: Vec<u8>,
}

/// Builds the delivery: `sample` (JSON text), with `branch` rewritten if given.
pub fn build(
    app: &AppConfig,
    event: &str,
    sample: &str,
    branch: Option<&str>,
) -> Result<Delivery, HookSendError> {
    let mut body: Value = serde_json::from_str(sample).map_err(|e| HookSendError::Sample {
        path: "(sample)".into(),
        detail: e.to_string(),
    })?;
    if body.get("repository").is_some() {
        body["repository"]["full_name"] = Value::String(app.repository.clone());
    }
    if let Some(branch) = branch {
        let head = branch_head(&app.repo, branch)?;
        body["ref"] = Value::String(format!("refs/heads/{branch}"));
        body["after"] = Value::String(head.clone());
        body["deleted"] = Value::Bool(false);
        if body.get("head_commit").is_some_and(|c| !c.is_null()) {
            body["head_commit"]["id"] = Value::String(head);
        }
    }
    let body = serde_json::to_vec(&body).map_err(|e| HookSendError::Sample {
        path: "(sample)".into(),
        detail: e.to_string(),
    })?;
    Ok(Delivery {
        event: event.to_owned(),
        body,
    })
}

/// The commit `refs/heads/<branch>` points at in `repo`. Blocking.
pub fn branch_head(repo: &str, branch: &str) -> Result<String, HookSendError> {
    let err = |detail: String| HookSendError::Head {
        branch: branch.to_owned(),
        repo: repo.to_owned(),
        detail,
    };
    let wanted = format!("refs/heads/{branch}");
    if crate::pipeline::git::is_ssh_url(repo) {
        let out = std::process::Command::new("git")
            .args(["ls-remote", "--", repo, &wanted])
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()
            .map_err(|e| err(format!("cannot run git: {e}")))?;
        let text = String::from_utf8_lossy(&out.stdout);
        return text
            .split_whitespace()
            .next()
            .map(str::to_owned)
            .ok_or_else(|| err("no such branch".into()));
    }
    let mut remote =
        git2::Remote::create_detached(repo).map_err(|e| err(e.message().to_owned()))?;
    remote
        .connect(git2::Direction::Fetch)
        .map_err(|e| err(e.message().to_owned()))?;
    let heads = remote.list().map_err(|e| err(e.message().to_owned()))?;
    heads
        .iter()
        .find(|h| h.name() == wanted)
        .map(|h| h.oid().to_string())
        .ok_or_else(|| err("no such branch".into()))
}

/// Signs and posts the delivery; returns the HTTP status and the JSON answer.
pub async fn send(
    server: &str,
    app: &AppConfig,
    delivery: &Delivery,
) -> Result<(u16, Value), HookSendError> {
    let url = format!("{}/hooks/{}", server.trim_end_matches('/'), app.name);
    let signature = signature::sign(app.secret.expose().as_bytes(), &delivery.body);
    let delivery_id = format!("stagehand-{}", random_hex(16));
    let mut resp = awc::Client::default()
        .post(&url)
        .insert_header(("Content-Type", "application/json"))
        .insert_header(("X-GitHub-Event", delivery.event.as_str()))
        .insert_header(("X-GitHub-Delivery", delivery_id))
        .insert_header(("X-Hub-Signature-256", signature))
        .send_body(delivery.body.clone())
        .await
        .map_err(|e| HookSendError::Send {
            url: url.clone(),
            detail: e.to_string(),
        })?;
    let status = resp.status().as_u16();
    let body = resp.body().await.map_err(|e| HookSendError::Send {
        url: url.clone(),
        detail: e.to_string(),
    })?;
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

/// `n` random bytes from the kernel, as hex (for secrets, tokens and delivery ids).
pub fn random_hex(n: usize) -> String {
    use std::io::Read;
    let mut bytes = vec![0u8; n];
    let filled = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if filled.is_err() {
        // No /dev/urandom: fall back to the clock and the pid, never to a constant.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            ^ u128::from(std::process::id());
        let digest = <sha2::Sha256 as sha2::Digest>::digest(seed.to_le_bytes());
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = digest[i % digest.len()];
        }
    }
    hex::encode(bytes)
}
