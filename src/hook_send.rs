//! `stagehand hook send`: a signed delivery, as GitHub would send it, to check a setup
//! without pushing. The body comes from a `webhook-samples/` file (built in, or
//! `--sample FILE`); with `--branch` or `--tag` its `ref` is rewritten and `after` set to
//! what that ref really points at in the app's repository, so the deploy it starts is
//! real; `--delete` sends the ref's deletion and `--message` sets the head commit's
//! message.

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
    #[error("finding {git_ref} in {repo}: {detail}")]
    Head {
        git_ref: String,
        repo: String,
        detail: String,
    },
    #[error("{0}")]
    Usage(&'static str),
    #[error("cannot read random bytes from /dev/urandom: {0}")]
    Random(String),
    #[error("sending to {url}: {detail} (is `stagehand serve` running? pass --server URL)")]
    Send { url: String, detail: String },
}

pub struct Delivery {
    pub event: String,
    pub body: Vec<u8>,
}

/// What to change in a push sample: which ref it pushes (or deletes), and the head
/// commit's message.
#[derive(Debug, Default, Clone)]
pub struct PushEdit {
    /// Push this branch's real head.
    pub branch: Option<String>,
    /// Push this tag: `after` is what the tag ref points at (for an annotated tag, the
    /// tag object, as GitHub sends it).
    pub tag: Option<String>,
    /// Send the branch's or tag's deletion instead; it need not exist any more.
    pub delete: bool,
    /// The head commit's message (to try `[skip deploy]`).
    pub message: Option<String>,
}

impl PushEdit {
    pub fn branch(branch: &str) -> PushEdit {
        PushEdit {
            branch: Some(branch.to_owned()),
            ..PushEdit::default()
        }
    }
}

/// The `after` of a deletion: GitHub's all-zero sha.
const NO_COMMIT: &str = "0000000000000000000000000000000000000000";

/// Builds the delivery: `sample` (JSON text) with `edit` applied.
pub fn build(
    app: &AppConfig,
    event: &str,
    sample: &str,
    edit: &PushEdit,
) -> Result<Delivery, HookSendError> {
    let mut body: Value = serde_json::from_str(sample).map_err(|e| HookSendError::Sample {
        path: "(sample)".into(),
        detail: e.to_string(),
    })?;
    if body.get("repository").is_some() {
        body["repository"]["full_name"] = Value::String(app.repository.clone());
    }
    let pushed = match (&edit.branch, &edit.tag) {
        (Some(_), Some(_)) => return Err(HookSendError::Usage("--branch or --tag, not both")),
        (Some(branch), None) => Some(format!("refs/heads/{branch}")),
        (None, Some(tag)) => Some(format!("refs/tags/{tag}")),
        (None, None) if edit.delete => {
            return Err(HookSendError::Usage(
                "--delete needs the --branch or --tag to delete",
            ));
        }
        (None, None) => None,
    };
    if let Some(full_ref) = pushed {
        body["ref"] = Value::String(full_ref.clone());
        body["base_ref"] = Value::Null;
        if edit.delete {
            // The old head is only informational in a deletion, and the ref may be gone.
            let before = ref_target(&app.repo, &full_ref)
                .map(|(target, _)| target)
                .unwrap_or_else(|_| NO_COMMIT.into());
            body["before"] = Value::String(before);
            body["after"] = Value::String(NO_COMMIT.into());
            body["deleted"] = Value::Bool(true);
            body["created"] = Value::Bool(false);
            body["head_commit"] = Value::Null;
            body["commits"] = Value::Array(Vec::new());
        } else {
            let (target, commit) = ref_target(&app.repo, &full_ref)?;
            body["after"] = Value::String(target);
            body["deleted"] = Value::Bool(false);
            if body.get("head_commit").is_some_and(|c| !c.is_null()) {
                body["head_commit"]["id"] = Value::String(commit);
            }
        }
    }
    if let Some(message) = &edit.message {
        if body.get("head_commit").is_none_or(Value::is_null) {
            return Err(HookSendError::Usage(
                "--message needs a push with a head commit (not --delete)",
            ));
        }
        body["head_commit"]["message"] = Value::String(message.clone());
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

/// What `full_ref` (`refs/heads/…` or `refs/tags/…`) points at in `repo`, and the
/// commit under it: for an annotated tag, the tag object and its peeled commit (GitHub
/// sends the first as `after` and the second as `head_commit.id`). Blocking.
pub fn ref_target(repo: &str, full_ref: &str) -> Result<(String, String), HookSendError> {
    let err = |detail: String| HookSendError::Head {
        git_ref: full_ref.to_owned(),
        repo: repo.to_owned(),
        detail,
    };
    let peeled_name = format!("{full_ref}^{{}}");
    let listed: Vec<(String, String)> = if crate::pipeline::git::is_ssh_url(repo) {
        let out = std::process::Command::new("git")
            .args(["ls-remote", "--", repo, full_ref, &peeled_name])
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()
            .map_err(|e| err(format!("cannot run git: {e}")))?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .map(|(oid, name)| (name.to_owned(), oid.to_owned()))
            .collect()
    } else {
        let mut remote =
            git2::Remote::create_detached(repo).map_err(|e| err(e.message().to_owned()))?;
        remote
            .connect(git2::Direction::Fetch)
            .map_err(|e| err(e.message().to_owned()))?;
        let heads = remote.list().map_err(|e| err(e.message().to_owned()))?;
        heads
            .iter()
            .map(|h| (h.name().to_owned(), h.oid().to_string()))
            .collect()
    };
    let find = |name: &str| {
        listed
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, oid)| oid.clone())
    };
    let target = find(full_ref).ok_or_else(|| {
        err(if full_ref.starts_with("refs/tags/") {
            "no such tag".into()
        } else {
            "no such branch".into()
        })
    })?;
    let commit = find(&peeled_name).unwrap_or_else(|| target.clone());
    Ok((target, commit))
}

/// Signs and posts the delivery; returns the HTTP status and the JSON answer.
pub async fn send(
    server: &str,
    app: &AppConfig,
    delivery: &Delivery,
) -> Result<(u16, Value), HookSendError> {
    let url = format!("{}/hooks/{}", server.trim_end_matches('/'), app.name);
    let signature = signature::sign(app.secret.expose().as_bytes(), &delivery.body);
    let delivery_id = format!("stagehand-{}", random_hex(16)?);
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
/// Without `/dev/urandom` this fails: a secret derived from the clock and the pid
/// could be guessed, and nothing here may silently be weaker than it says.
pub fn random_hex(n: usize) -> Result<String, HookSendError> {
    use std::io::Read;
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| HookSendError::Random(e.to_string()))?;
    Ok(hex::encode(bytes))
}
