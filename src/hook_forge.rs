//! `stagehand hook send` for an app whose forge is not GitHub (or with `--forge`): a
//! delivery exactly as GitLab, Gitea, Forgejo or Bitbucket would send it — that forge's
//! own sample from `webhook-samples/<forge>/`, its event name, its delivery id and its
//! authentication header (`core::forge::delivery_headers`). `--branch` / `--tag` rewrite
//! the sample to push that ref's real head, `--delete` to delete it, `--message` sets
//! the head commit's message, each in the shape that forge uses (a Gitea or Forgejo
//! branch deletion is a `delete` event, GitLab's tag push a `Tag Push Hook`, Bitbucket's
//! a change in `push.changes[]`), so `[skip deploy]`, tags and teardown can be tried.
//! GitHub deliveries stay in `hook_send`.

use serde_json::{Value, json};

use crate::config::AppConfig;
use crate::core::forge::{self, Forge};
use crate::hook_send::{HookSendError, PushEdit, random_hex, ref_target};

/// A deleted ref's new value, and every forge's "no commit".
const NO_COMMIT: &str = "0000000000000000000000000000000000000000";

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

/// The ref a delivery pushes or deletes, as found in the app's repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefChange {
    /// `refs/heads/…` or `refs/tags/…`.
    pub full_ref: String,
    /// What the ref pointed at before (a deletion: its current value, or zeros when it
    /// is already gone).
    pub before: Option<String>,
    /// What the ref points at now: for an annotated tag the tag object; zeros when deleted.
    pub after: String,
    /// The commit under `after` (the peeled tag); zeros when deleted.
    pub commit: String,
    pub deleted: bool,
}

impl RefChange {
    fn is_tag(&self) -> bool {
        self.full_ref.starts_with("refs/tags/")
    }

    fn short(&self) -> &str {
        self.full_ref
            .strip_prefix("refs/heads/")
            .or_else(|| self.full_ref.strip_prefix("refs/tags/"))
            .unwrap_or(&self.full_ref)
    }
}

/// Finds `edit`'s ref in the app's repository (blocking: it asks the repository).
/// `None`: the sample is sent as it is.
pub fn resolve(app: &AppConfig, edit: &PushEdit) -> Result<Option<RefChange>, HookSendError> {
    let full_ref = match (&edit.branch, &edit.tag) {
        (Some(_), Some(_)) => return Err(HookSendError::Usage("--branch or --tag, not both")),
        (Some(branch), None) => format!("refs/heads/{branch}"),
        (None, Some(tag)) => format!("refs/tags/{tag}"),
        (None, None) if edit.delete => {
            return Err(HookSendError::Usage(
                "--delete needs the --branch or --tag to delete",
            ));
        }
        (None, None) => return Ok(None),
    };
    if edit.delete {
        // The ref may be gone already; its old value is only informational.
        let before = ref_target(&app.repo, &full_ref)
            .map(|(target, _)| target)
            .unwrap_or_else(|_| NO_COMMIT.into());
        return Ok(Some(RefChange {
            full_ref,
            before: Some(before),
            after: NO_COMMIT.into(),
            commit: NO_COMMIT.into(),
            deleted: true,
        }));
    }
    let (after, commit) = ref_target(&app.repo, &full_ref)?;
    Ok(Some(RefChange {
        full_ref,
        before: None,
        after,
        commit,
        deleted: false,
    }))
}

/// The event and built-in sample the forge uses for `change`.
pub fn sample_for(forge: Forge, change: Option<&RefChange>) -> (&'static str, &'static str) {
    let (tag, deleted) = change.map_or((false, false), |c| (c.is_tag(), c.deleted));
    match (forge, tag, deleted) {
        (Forge::Gitea, false, true) => (
            "delete",
            include_str!("../webhook-samples/gitea/delete-branch.json"),
        ),
        (Forge::Forgejo, false, true) => (
            "delete",
            include_str!("../webhook-samples/forgejo/delete-branch.json"),
        ),
        (Forge::Gitea, true, _) => (
            "push",
            include_str!("../webhook-samples/gitea/push-tag.json"),
        ),
        (Forge::Forgejo, true, _) => (
            "push",
            include_str!("../webhook-samples/forgejo/push-tag.json"),
        ),
        (Forge::Gitlab, true, _) => (
            "Tag Push Hook",
            include_str!("../webhook-samples/gitlab/tag-push.json"),
        ),
        (Forge::Gitlab, false, true) => (
            "Push Hook",
            include_str!("../webhook-samples/gitlab/push-delete-branch.json"),
        ),
        (Forge::Bitbucket, true, _) => (
            "repo:push",
            include_str!("../webhook-samples/bitbucket/push-tag.json"),
        ),
        (Forge::Bitbucket, false, true) => (
            "repo:push",
            include_str!("../webhook-samples/bitbucket/push-delete-branch.json"),
        ),
        (forge, _, _) => (push_event(forge), push_sample(forge)),
    }
}

pub struct ForgeDelivery {
    pub forge: Forge,
    pub event: String,
    pub body: Vec<u8>,
}

/// Builds the delivery from `sample` (JSON text): the repository set to `repository`
/// (the app's), the push rewritten to `change` and the head commit's message set to
/// `message`.
pub fn build(
    forge: Forge,
    repository: &str,
    event: &str,
    sample: &str,
    change: Option<&RefChange>,
    message: Option<&str>,
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
    set_repository(forge, &mut body, repository);
    if let Some(change) = change {
        if event == "delete" {
            set_delete_event(forge, &mut body, change);
        } else {
            set_push(forge, &mut body, change).map_err(bad)?;
        }
    }
    if let Some(message) = message {
        set_message(forge, &mut body, message)?;
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

/// Gitea's and Forgejo's `delete` event: Gitea names the ref short, Forgejo in full
/// (their `services/webhook/notifier.go` `DeleteRef`).
fn set_delete_event(forge: Forge, body: &mut Value, change: &RefChange) {
    body["ref"] = json!(if forge == Forge::Gitea {
        change.short()
    } else {
        change.full_ref.as_str()
    });
    body["ref_type"] = json!(if change.is_tag() { "tag" } else { "branch" });
}

fn set_push(forge: Forge, body: &mut Value, change: &RefChange) -> Result<(), String> {
    match forge {
        Forge::Github | Forge::Gitea | Forge::Forgejo => {
            body["ref"] = json!(change.full_ref);
            body["after"] = json!(change.after);
            if let Some(before) = &change.before {
                body["before"] = json!(before);
            }
            if change.deleted {
                // A deleted tag's push carries no commits (Gitea's
                // `services/repository/push.go` sends it with `NewPushCommits()`).
                body["head_commit"] = Value::Null;
                body["commits"] = json!([]);
            } else if body.get("head_commit").is_some_and(|c| !c.is_null()) {
                body["head_commit"]["id"] = json!(change.commit);
            }
        }
        Forge::Gitlab => {
            body["ref"] = json!(change.full_ref);
            body["after"] = json!(change.after);
            if let Some(before) = &change.before {
                body["before"] = json!(before);
            }
            if change.deleted {
                // "Checkout sha is nil when we remove branch or tag"
                // (`lib/gitlab/data_builder/push.rb`).
                body["checkout_sha"] = Value::Null;
                body["commits"] = json!([]);
                body["total_commits_count"] = json!(0);
            } else {
                body["checkout_sha"] = json!(change.commit);
                if let Some(last) = body["commits"].as_array_mut().and_then(|c| c.last_mut()) {
                    last["id"] = json!(change.commit);
                }
            }
        }
        Forge::Bitbucket => {
            let c = &mut body["push"]["changes"][0];
            if !c.is_object() {
                return Err("the sample has no `push.changes[0]` to rewrite".into());
            }
            let kind = if change.is_tag() { "tag" } else { "branch" };
            if change.deleted {
                // The change turned around where the sample created the ref.
                if c["old"].is_null() {
                    c["old"] = c["new"].take();
                }
                c["new"] = Value::Null;
                c["created"] = json!(false);
                c["closed"] = json!(true);
                c["commits"] = json!([]);
                let old = &mut c["old"];
                if !old.is_object() {
                    return Err("the sample's first change has no ref to delete".into());
                }
                old["type"] = json!(kind);
                old["name"] = json!(change.short());
                if let Some(before) = &change.before {
                    old["target"]["hash"] = json!(before);
                }
            } else {
                let new = &mut c["new"];
                if !new.is_object() {
                    return Err("the sample's first change has no `new` ref to rewrite".into());
                }
                new["type"] = json!(kind);
                new["name"] = json!(change.short());
                // Bitbucket names the commit a tag points at, never the tag object.
                new["target"]["hash"] = json!(change.commit);
            }
        }
    }
    Ok(())
}

/// Sets the head commit's message where each forge's decoder reads it.
fn set_message(forge: Forge, body: &mut Value, message: &str) -> Result<(), HookSendError> {
    let head = match forge {
        Forge::Github | Forge::Gitea | Forge::Forgejo => {
            let head = &mut body["head_commit"];
            head.is_object().then_some(head)
        }
        // The head is the commit `checkout_sha` names; rewritten pushes make it the last.
        Forge::Gitlab => body["commits"].as_array_mut().and_then(|c| c.last_mut()),
        Forge::Bitbucket => {
            let target = &mut body["push"]["changes"][0]["new"]["target"];
            target.is_object().then_some(target)
        }
    };
    let Some(head) = head else {
        return Err(HookSendError::Usage(
            "--message needs a push with a head commit (not --delete; on GitLab, not a tag)",
        ));
    };
    head["message"] = json!(message);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::event::{Event, GitRef};

    const HEAD: &str = "1111111111111111111111111111111111111111";
    const TAG_OBJECT: &str = "2222222222222222222222222222222222222222";
    const OLD: &str = "3333333333333333333333333333333333333333";

    fn change(full_ref: &str, deleted: bool) -> RefChange {
        let tag = full_ref.starts_with("refs/tags/");
        RefChange {
            full_ref: full_ref.into(),
            before: deleted.then(|| OLD.to_owned()),
            after: match (deleted, tag) {
                (true, _) => NO_COMMIT.into(),
                (false, true) => TAG_OBJECT.into(),
                (false, false) => HEAD.into(),
            },
            commit: if deleted { NO_COMMIT } else { HEAD }.into(),
            deleted,
        }
    }

    /// What the forge's own decoder reads from the built delivery: the ref, whether it
    /// was deleted, the commit to deploy (as far as the delivery names it), the message.
    fn sent(
        forge: Forge,
        change: &RefChange,
        message: Option<&str>,
    ) -> (GitRef, bool, Option<String>, Option<String>) {
        let (event, sample) = sample_for(forge, Some(change));
        let delivery = build(forge, "acme/shop", event, sample, Some(change), message).unwrap();
        let events = forge::decode(forge, &delivery.event, None, &delivery.body).unwrap();
        match &events[..] {
            [Event::Push { repository, push }] => {
                assert_eq!(repository, "acme/shop", "{forge}");
                let commit = push
                    .head_commit_id
                    .as_ref()
                    .map(|c| c.as_str().to_owned())
                    .or_else(|| (!push.after.is_zero()).then(|| push.after.as_str().to_owned()));
                (
                    push.git_ref.clone(),
                    push.deleted,
                    commit,
                    push.head_commit_message.clone(),
                )
            }
            [
                Event::Delete {
                    repository,
                    git_ref,
                },
            ] => {
                assert_eq!(repository, "acme/shop", "{forge}");
                (git_ref.clone(), true, None, None)
            }
            other => panic!("{forge}: {other:?}"),
        }
    }

    #[test]
    fn each_forge_pushes_tags_and_deletes_in_its_own_shape() {
        for forge in [
            Forge::Gitlab,
            Forge::Gitea,
            Forge::Forgejo,
            Forge::Bitbucket,
        ] {
            let branch = GitRef::Branch("feature/x".into());
            let tag = GitRef::Tag("v1.2.0".into());
            let (git_ref, deleted, commit, message) = sent(
                forge,
                &change("refs/heads/feature/x", false),
                Some("Fix typo [skip deploy]"),
            );
            assert_eq!(
                (git_ref, deleted, commit.as_deref()),
                (branch.clone(), false, Some(HEAD)),
                "{forge}"
            );
            assert_eq!(
                message.as_deref(),
                Some("Fix typo [skip deploy]"),
                "{forge}"
            );

            let (git_ref, deleted, commit, _) =
                sent(forge, &change("refs/tags/v1.2.0", false), None);
            assert_eq!((git_ref, deleted), (tag.clone(), false), "{forge}");
            // GitLab and Bitbucket name the tagged commit; Gitea and Forgejo only the tag
            // object in `after`, as they send it (the pipeline peels it in the mirror).
            let named = if matches!(forge, Forge::Gitea | Forge::Forgejo) {
                TAG_OBJECT
            } else {
                HEAD
            };
            assert_eq!(commit.as_deref(), Some(named), "{forge}");

            let (git_ref, deleted, _, _) = sent(forge, &change("refs/heads/feature/x", true), None);
            assert_eq!((git_ref, deleted), (branch, true), "{forge}");

            let (git_ref, deleted, _, _) = sent(forge, &change("refs/tags/v1.2.0", true), None);
            assert_eq!((git_ref, deleted), (tag, true), "{forge}");
        }
        assert_eq!(
            sample_for(Forge::Forgejo, Some(&change("refs/heads/x", true))).0,
            "delete"
        );
        assert_eq!(
            sample_for(Forge::Gitlab, Some(&change("refs/tags/v1", false))).0,
            "Tag Push Hook"
        );
    }

    #[test]
    fn a_message_needs_a_head_commit() {
        let gone = change("refs/heads/x", true);
        for forge in [Forge::Gitea, Forge::Bitbucket] {
            let (event, sample) = sample_for(forge, Some(&gone));
            let got = build(forge, "acme/shop", event, sample, Some(&gone), Some("m"));
            assert!(
                matches!(got, Err(HookSendError::Usage(m)) if m.contains("--message")),
                "{forge}"
            );
        }
    }
}
