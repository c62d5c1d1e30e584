//! GitLab: the secret travels as-is in `X-Gitlab-Token` (no HMAC), events are named in
//! `X-Gitlab-Event` (`Push Hook`, `Tag Push Hook`, …), and the repository is
//! `project.path_with_namespace`. Field names from GitLab's `webhook_events.md` and
//! `lib/gitlab/data_builder/push.rb`.

use crate::core::ids::CommitSha;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AuthError, Headers};
use crate::core::event::{
    Event, EventError, GitRef, PullRequest, PullRequestAction, Push, RawLabel, checked_ref, sha,
};

const TOKEN: &str = "X-Gitlab-Token";

/// Compares digests, not the strings, so neither the token's bytes nor its length leak
/// through timing.
pub fn authenticate(secret: &[u8], headers: &(impl Headers + ?Sized)) -> Result<(), AuthError> {
    let token = headers
        .get(TOKEN)
        .ok_or(AuthError::Missing { header: TOKEN })?;
    let given = Sha256::digest(token.trim_ascii());
    let wanted = Sha256::digest(secret);
    if bool::from(given.as_slice().ct_eq(wanted.as_slice())) {
        Ok(())
    } else {
        Err(AuthError::Mismatch { header: TOKEN })
    }
}

pub fn precheck(headers: &(impl Headers + ?Sized)) -> Result<(), AuthError> {
    headers
        .get(TOKEN)
        .map(|_| ())
        .ok_or(AuthError::Missing { header: TOKEN })
}

pub fn decode(event: &str, body: &[u8]) -> Result<Event, EventError> {
    if event == "Merge Request Hook" {
        return merge_request(event, body);
    }
    if !matches!(event, "Push Hook" | "Tag Push Hook") {
        return Ok(Event::Ignored {
            reason: format!(
                "GitLab event `{event}` is not handled: stagehand acts on Push Hook, Tag Push Hook and Merge Request Hook"
            ),
        });
    }
    let raw: RawPush = serde_json::from_slice(body).map_err(|e| EventError::Json {
        event: event.to_owned(),
        detail: e.to_string(),
    })?;
    let before = sha("before", &raw.before)?;
    let after = sha("after", &raw.after)?;
    // Commits come oldest first; the head is the one the ref now points at (for a tag,
    // `checkout_sha` is the tagged commit and `commits` is empty).
    let head = raw.checkout_sha.as_deref().unwrap_or(&raw.after);
    let head_commit_message = raw
        .commits
        .iter()
        .find(|c| c.id == head)
        .or(raw.commits.last())
        .map(|c| c.message.clone());
    Ok(Event::Push {
        repository: raw.project.path_with_namespace,
        push: Push {
            git_ref: GitRef::from_full(&checked_ref("ref", raw.git_ref)?),
            created: before.is_zero(),
            deleted: after.is_zero(),
            // GitLab does not say whether a push was forced.
            forced: false,
            before,
            after,
            head_commit_message,
            // For a tag, `checkout_sha` is the tagged commit (`after` is the tag object).
            head_commit_id: CommitSha::parse(head).ok(),
            // Filled from the mirror once fetched.
            head_commit_author: None,
            pusher: raw.user_username.or(raw.user_name),
        },
    })
}

/// `object_attributes.action`: `open`/`reopen` deploy, `update` deploys only when it
/// carries `oldrev` (new commits, not a title edit), `close`/`merge` tear down.
fn merge_request(event: &str, body: &[u8]) -> Result<Event, EventError> {
    let raw: RawMergeRequest = serde_json::from_slice(body).map_err(|e| EventError::Json {
        event: event.to_owned(),
        detail: e.to_string(),
    })?;
    let mr = raw.object_attributes;
    let action = match (mr.action.as_deref().unwrap_or_default(), &mr.oldrev) {
        ("open" | "reopen", _) => PullRequestAction::Opened,
        ("update", Some(_)) => PullRequestAction::Updated,
        ("update", None) if raw.changes.labels.is_some() => PullRequestAction::Relabeled,
        ("close" | "merge", _) => PullRequestAction::Closed,
        (other, _) => {
            return Ok(Event::Ignored {
                reason: format!(
                    "merge request !{} was `{other}` without new commits: nothing to deploy",
                    mr.iid
                ),
            });
        }
    };
    let fork = (mr.source_project_id != mr.target_project_id)
        .then(|| mr.source.map(|p| p.path_with_namespace).unwrap_or_default());
    Ok(Event::PullRequest {
        repository: raw.project.path_with_namespace,
        pr: PullRequest {
            number: mr.iid,
            action,
            head: sha("object_attributes.last_commit.id", &mr.last_commit.id)?.to_string(),
            base_branch: checked_ref("object_attributes.target_branch", mr.target_branch)?,
            fork,
            head_ref: format!("refs/merge-requests/{}/head", mr.iid),
            labels: mr.labels.into_iter().map(|l| l.name).collect(),
        },
    })
}

#[derive(Deserialize)]
struct RawMergeRequest {
    project: RawProject,
    object_attributes: RawMergeRequestAttributes,
    #[serde(default)]
    changes: RawChanges,
}

#[derive(Deserialize, Default)]
struct RawChanges {
    labels: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawMergeRequestAttributes {
    iid: u64,
    action: Option<String>,
    oldrev: Option<String>,
    target_branch: String,
    source_project_id: u64,
    target_project_id: u64,
    source: Option<RawProject>,
    last_commit: RawLastCommit,
    #[serde(default)]
    labels: Vec<RawLabel>,
}

#[derive(Deserialize)]
struct RawLastCommit {
    id: String,
}

#[derive(Deserialize)]
struct RawPush {
    #[serde(rename = "ref")]
    git_ref: String,
    before: String,
    after: String,
    checkout_sha: Option<String>,
    #[serde(default)]
    commits: Vec<RawCommit>,
    user_username: Option<String>,
    user_name: Option<String>,
    project: RawProject,
}

#[derive(Deserialize)]
struct RawCommit {
    id: String,
    message: String,
}

#[derive(Deserialize)]
struct RawProject {
    path_with_namespace: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/webhook-samples/gitlab/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(path).unwrap()
    }

    #[test]
    fn samples_decode() {
        let Event::Push { repository, push } = decode("Push Hook", &sample("push.json")).unwrap()
        else {
            panic!("not a push")
        };
        assert_eq!(repository, "mike/diaspora");
        assert_eq!(push.git_ref, GitRef::Branch("master".into()));
        assert_eq!(push.head_commit_message.as_deref(), Some("fixed readme"));
        assert!(!push.deleted && !push.created && !push.forced);
        assert_eq!(push.pusher.as_deref(), Some("jsmith"));

        let Event::Push { push, .. } = decode("Tag Push Hook", &sample("tag-push.json")).unwrap()
        else {
            panic!("not a push")
        };
        assert_eq!(push.git_ref, GitRef::Tag("v1.0.0".into()));
        assert!(push.created && !push.deleted);
        assert_eq!(push.head_commit_message, None);

        let Event::Push { push, .. } =
            decode("Push Hook", &sample("push-delete-branch.json")).unwrap()
        else {
            panic!("not a push")
        };
        assert!(push.deleted);
        assert_eq!(push.git_ref, GitRef::Branch("feature/New_Cart!".into()));
    }

    #[test]
    fn merge_requests_decode() {
        let Event::PullRequest { repository, pr } =
            decode("Merge Request Hook", &sample("merge-request.json")).unwrap()
        else {
            panic!("not a merge request")
        };
        assert_eq!(repository, "gitlabhq/gitlab-test");
        assert_eq!(pr.number, 1);
        assert_eq!(pr.action, PullRequestAction::Opened);
        assert_eq!(pr.head, "da1560886d4f094c3e6c9ef40349f7d38b5d27d7");
        assert_eq!(pr.base_branch, "master");
        assert_eq!(pr.fork, None);
        assert_eq!(pr.head_ref, "refs/merge-requests/1/head");
        let mut body: serde_json::Value =
            serde_json::from_slice(&sample("merge-request.json")).unwrap();
        body["object_attributes"]["action"] = "approved".into();
        let event = decode("Merge Request Hook", &serde_json::to_vec(&body).unwrap()).unwrap();
        assert!(matches!(event, Event::Ignored { .. }), "{event:?}");
    }

    #[test]
    fn other_events_are_ignored_with_a_reason() {
        let event = decode("Pipeline Hook", b"{}").unwrap();
        assert!(
            matches!(&event, Event::Ignored { reason } if reason.contains("Pipeline Hook")),
            "{event:?}"
        );
        let err = decode("Push Hook", b"{\"ref\":1}").unwrap_err().to_string();
        assert!(err.contains("not valid JSON for a `Push Hook`"), "{err}");
    }
}
