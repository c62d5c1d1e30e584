//! GitLab: the secret travels as-is in `X-Gitlab-Token` (no HMAC), events are named in
//! `X-Gitlab-Event` (`Push Hook`, `Tag Push Hook`, …), and the repository is
//! `project.path_with_namespace`. Field names from GitLab's `webhook_events.md` and
//! `lib/gitlab/data_builder/push.rb`.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AuthError, Headers};
use crate::core::event::{Event, EventError, GitRef, Push, checked_ref, sha};

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

pub fn decode(event: &str, body: &[u8]) -> Result<Event, EventError> {
    if !matches!(event, "Push Hook" | "Tag Push Hook") {
        return Ok(Event::Ignored {
            reason: format!(
                "GitLab event `{event}` is not handled: stagehand acts on Push Hook and Tag Push Hook"
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
            pusher: raw.user_username.or(raw.user_name),
        },
    })
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
    fn other_events_are_ignored_with_a_reason() {
        let event = decode("Merge Request Hook", b"{}").unwrap();
        assert!(
            matches!(&event, Event::Ignored { reason } if reason.contains("Merge Request Hook")),
            "{event:?}"
        );
        let err = decode("Push Hook", b"{\"ref\":1}").unwrap_err().to_string();
        assert!(err.contains("not valid JSON for a `Push Hook`"), "{err}");
    }
}
