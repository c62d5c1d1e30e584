//! `stagehand hook send` for an app whose forge is not GitHub (or with `--forge`): a
//! delivery exactly as GitLab, Gitea, Forgejo or Bitbucket would send it — that forge's
//! own sample from `webhook-samples/<forge>/`, its event name, its delivery id and its
//! authentication header (`core::forge::delivery_headers`). With `--branch` the sample
//! is rewritten to push that branch's real head, so the deploy it starts is real.
//! GitHub deliveries stay in `hook_send`.

use serde_json::{Value, json};

use crate::config::AppConfig;
use crate::core::forge::{self, Forge};
use crate::hook_send::{HookSendError, random_hex, ref_target};

/// The push sample each forge's `hook send` starts from, carried in the binary.
pub fn push_sample(forge: Forge) -> &'static str {
    match forge {
        Forge::Github => crate::hook_send::PUSH_SAMPLE,
        Forge::Gitlab => include_str!("../webhook-samples/gitlab/push.json"),
        Forge::Gitea => include_str!("../webhook-samples/gitea/push.json"),
        Forge::Forgejo => include_str!("../webhook-samples/forgejo/push.json"),
        Forge::Bitbucket => include_str!("../webhook-samples/bitbucket/push.json"),
    }
}

/// The forge's name for a push: what `--event push` means there.
pub fn push_event(forge: Forge) -> &'static str {
    match forge {
        Forge::Github | Forge::Gitea | Forge::Forgejo => "push",
        Forge::Gitlab => "Push Hook",
        Forge::Bitbucket => "repo:push",
    }
}

pub struct ForgeDelivery {
    pub forge: Forge,
    pub event: String,
    pub body: Vec<u8>,
}

/// Builds the delivery from `sample` (JSON text): the repository set to the app's and,
/// with `head`, the push rewritten to `refs/heads/<branch>` at commit `head`.
pub fn build(
    forge: Forge,
    app: &AppConfig,
    event: &str,
    sample: &str,
    push: Option<(&str, &str)>,
) -> Result<ForgeDelivery, HookSendError> {
    let bad = |detail: String| HookSendError::Sample {
        path: "(sample)".into(),
        detail,
    };
    if event == "ping" && forge != Forge::Github {
        return Err(bad(format!(
            "{forge} has no ping event: send a push (the default) instead"
        )));
    }
    let event = if event == "push" {
        push_event(forge)
    } else {
        event
    };
    let mut body: Value = serde_json::from_str(sample).map_err(|e| bad(e.to_string()))?;
    set_repository(forge, &mut body, &app.repository);
    if let Some((branch, head)) = push {
        set_push(forge, &mut body, branch, head).map_err(bad)?;
    }
    Ok(ForgeDelivery {
        forge,
        event: event.to_owned(),
        body: serde_json::to_vec(&body).map_err(|e| bad(e.to_string()))?,
    })
}

fn set_repository(forge: Forge, body: &mut Value, repository: &str) {
    match forge {
        Forge::Gitlab => {
            if body.get("project").is_some() {
                body["project"]["path_with_namespace"] = json!(repository);
            }
        }
        _ => {
            if body.get("repository").is_some() {
                body["repository"]["full_name"] = json!(repository);
            }
        }
    }
}

fn set_push(forge: Forge, body: &mut Value, branch: &str, head: &str) -> Result<(), String> {
    let full = format!("refs/heads/{branch}");
    match forge {
        Forge::Github | Forge::Gitea | Forge::Forgejo => {
            body["ref"] = json!(full);
            body["after"] = json!(head);
            if body.get("head_commit").is_some_and(|c| !c.is_null()) {
                body["head_commit"]["id"] = json!(head);
            }
        }
        Forge::Gitlab => {
            body["ref"] = json!(full);
            body["after"] = json!(head);
            body["checkout_sha"] = json!(head);
            if let Some(last) = body["commits"].as_array_mut().and_then(|c| c.last_mut()) {
                last["id"] = json!(head);
            }
        }
        Forge::Bitbucket => {
            let new = &mut body["push"]["changes"][0]["new"];
            if !new.is_object() {
                return Err("the sample's first change has no `new` ref to rewrite".into());
            }
            new["type"] = json!("branch");
            new["name"] = json!(branch);
            new["target"]["hash"] = json!(head);
        }
    }
    Ok(())
}

/// Signs and posts the delivery with the forge's own headers; returns the HTTP status
/// and the JSON answer.
pub async fn send(
    server: &str,
    app: &AppConfig,
    delivery: &ForgeDelivery,
) -> Result<(u16, Value), HookSendError> {
    let url = format!("{}/hooks/{}", server.trim_end_matches('/'), app.name);
    let delivery_id = format!("stagehand-{}", random_hex(16)?);
    let headers = forge::delivery_headers(
        delivery.forge,
        app.secret.expose().as_bytes(),
        &delivery.event,
        &delivery_id,
        &delivery.body,
    );
    let mut request = awc::Client::default().post(&url);
    for header in headers {
        request = request.insert_header(header);
    }
    let send_err = |detail: String| HookSendError::Send {
        url: url.clone(),
        detail,
    };
    let mut resp = request
        .send_body(delivery.body.clone())
        .await
        .map_err(|e| send_err(e.to_string()))?;
    let status = resp.status().as_u16();
    let body = resp.body().await.map_err(|e| send_err(e.to_string()))?;
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

/// The branch's head in the app's repository, for `--branch`. Blocking.
pub fn head(app: &AppConfig, branch: &str) -> Result<String, HookSendError> {
    ref_target(&app.repo, &format!("refs/heads/{branch}")).map(|(_, commit)| commit)
}
