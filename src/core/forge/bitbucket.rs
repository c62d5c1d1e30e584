//! Bitbucket Cloud: `X-Hub-Signature: sha256=<hex HMAC-SHA256 of the body>`, the event
//! in `X-Event-Key` (`repo:push`, `pullrequest:*`). One `repo:push` lists every ref it
//! changed in `push.changes[]`: each becomes its own event (`new: null` is a deletion,
//! `new.type` is `branch` or `tag`). Field names from Atlassian's "Event payloads" page.

use serde::Deserialize;

use super::{AuthError, Headers};
use crate::core::event::{
    Event, EventError, GitRef, PullRequest, PullRequestAction, Push, checked_ref, sha,
};

const SIGNATURE: &str = "X-Hub-Signature";

pub fn authenticate(
    secret: &[u8],
    headers: &(impl Headers + ?Sized),
    body: &[u8],
) -> Result<(), AuthError> {
    super::verify_hex_mac(
        secret,
        SIGNATURE,
        headers.get(SIGNATURE),
        b"sha256=",
        "sha256=<64 hex digits>",
        body,
    )
}

pub fn precheck(headers: &(impl Headers + ?Sized)) -> Result<(), AuthError> {
    let value = headers.get(SIGNATURE);
    super::parse_hex_mac(SIGNATURE, value, b"sha256=", "sha256=<64 hex digits>").map(|_| ())
}

pub fn decode(event: &str, body: &[u8]) -> Result<Vec<Event>, EventError> {
    let action = match event {
        "repo:push" => None,
        "pullrequest:created" => Some(PullRequestAction::Opened),
        // Bitbucket says `updated` for new commits and for a title edit alike; a
        // redeploy of an unchanged head ends `skipped` (already live).
        "pullrequest:updated" => Some(PullRequestAction::Updated),
        "pullrequest:fulfilled" | "pullrequest:rejected" => Some(PullRequestAction::Closed),
        _ => {
            return Ok(vec![Event::Ignored {
                reason: format!(
                    "Bitbucket event `{event}` is not handled: stagehand acts on repo:push and pullrequest:created/updated/fulfilled/rejected"
                ),
            }]);
        }
    };
    if let Some(action) = action {
        return pull_request(event, action, body).map(|e| vec![e]);
    }
    let raw: RawPush = serde_json::from_slice(body).map_err(|e| EventError::Json {
        event: event.to_owned(),
        detail: e.to_string(),
    })?;
    if raw.push.changes.is_empty() {
        return Ok(vec![Event::Ignored {
            reason: "the push lists no ref changes".into(),
        }]);
    }
    let zero = "0".repeat(40);
    raw.push
        .changes
        .into_iter()
        .map(|change| {
            let deleted = change.new.is_none();
            let Some(named) = change.new.as_ref().or(change.old.as_ref()) else {
                return Err(EventError::Field {
                    field: "push.changes[].new",
                    detail: "both `new` and `old` are null".into(),
                });
            };
            let name = checked_ref("push.changes[].new.name", named.name.clone())?;
            let git_ref = match named.kind.as_str() {
                "branch" => GitRef::Branch(name),
                "tag" => GitRef::Tag(name),
                other => GitRef::Other(format!("{other}:{name}")),
            };
            let hash =
                |r: &Option<RawRef>| r.as_ref().map_or(zero.clone(), |r| r.target.hash.clone());
            Ok(Event::Push {
                repository: raw.repository.full_name.clone(),
                push: Push {
                    git_ref,
                    before: sha("push.changes[].old.target.hash", &hash(&change.old))?,
                    after: sha("push.changes[].new.target.hash", &hash(&change.new))?,
                    created: change.old.is_none(),
                    deleted,
                    forced: change.forced,
                    head_commit_message: change.new.and_then(|n| n.target.message),
                    // Filled from the mirror once fetched.
                    head_commit_id: None,
                    head_commit_author: None,
                    pusher: raw.actor.as_ref().and_then(|a| a.display_name.clone()),
                },
            })
        })
        .collect()
}

/// A pull request from this repository's own branch. Bitbucket keeps no ref for a
/// fork's request in the target repository, so those cannot be fetched at all.
fn pull_request(event: &str, action: PullRequestAction, body: &[u8]) -> Result<Event, EventError> {
    let raw: RawPullRequestEvent = serde_json::from_slice(body).map_err(|e| EventError::Json {
        event: event.to_owned(),
        detail: e.to_string(),
    })?;
    let pr = raw.pullrequest;
    if !pr
        .source
        .repository
        .full_name
        .eq_ignore_ascii_case(&raw.repository.full_name)
    {
        return Ok(Event::Ignored {
            reason: format!(
                "pull request #{} comes from the fork {:?}: Bitbucket keeps no ref for it in this repository, so it cannot be previewed",
                pr.id, pr.source.repository.full_name
            ),
        });
    }
    let hash = pr.source.commit.hash;
    if !(7..=40).contains(&hash.len()) || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(EventError::Field {
            field: "pullrequest.source.commit.hash",
            detail: format!("{hash:?} is not a commit hash"),
        });
    }
    let branch = checked_ref("pullrequest.source.branch.name", pr.source.branch.name)?;
    Ok(Event::PullRequest {
        repository: raw.repository.full_name,
        pr: PullRequest {
            number: pr.id,
            action,
            head: hash.to_ascii_lowercase(),
            base_branch: checked_ref(
                "pullrequest.destination.branch.name",
                pr.destination.branch.name,
            )?,
            fork: None,
            head_ref: format!("refs/heads/{branch}"),
            // Bitbucket pull requests have no labels.
            labels: Vec::new(),
        },
    })
}

#[derive(Deserialize)]
struct RawPullRequestEvent {
    pullrequest: RawPullRequest,
    repository: RawRepository,
}

#[derive(Deserialize)]
struct RawPullRequest {
    id: u64,
    source: RawPullRequestEnd,
    destination: RawPullRequestEnd,
}

#[derive(Deserialize)]
struct RawPullRequestEnd {
    branch: RawBranchName,
    commit: RawCommitHash,
    repository: RawRepository,
}

#[derive(Deserialize)]
struct RawBranchName {
    name: String,
}

#[derive(Deserialize)]
struct RawCommitHash {
    hash: String,
}

#[derive(Deserialize)]
struct RawPush {
    actor: Option<RawActor>,
    repository: RawRepository,
    push: RawChanges,
}

#[derive(Deserialize)]
struct RawActor {
    display_name: Option<String>,
}

#[derive(Deserialize)]
struct RawRepository {
    full_name: String,
}

#[derive(Deserialize)]
struct RawChanges {
    changes: Vec<RawChange>,
}

#[derive(Deserialize)]
struct RawChange {
    new: Option<RawRef>,
    old: Option<RawRef>,
    #[serde(default)]
    forced: bool,
}

#[derive(Deserialize)]
struct RawRef {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    target: RawTarget,
}

#[derive(Deserialize)]
struct RawTarget {
    hash: String,
    message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str) -> serde_json::Value {
        let path = format!(
            "{}/webhook-samples/bitbucket/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    fn push_of(events: &[Event], i: usize) -> (&str, &Push) {
        match &events[i] {
            Event::Push { repository, push } => (repository, push),
            other => panic!("not a push: {other:?}"),
        }
    }

    #[test]
    fn samples_decode() {
        let body = serde_json::to_vec(&sample("push.json")).unwrap();
        let events = decode("repo:push", &body).unwrap();
        let (repository, push) = push_of(&events, 0);
        assert_eq!(repository, "team_name/repo_name");
        assert_eq!(push.git_ref, GitRef::Branch("name-of-branch".into()));
        assert_eq!(
            push.after.as_str(),
            "709d658dc5b6d6afcd46049c2f332ee3f515a67d"
        );
        assert_eq!(
            push.head_commit_message.as_deref(),
            Some("new commit message\n")
        );
        assert!(!push.deleted && !push.created && !push.forced);

        let body = serde_json::to_vec(&sample("push-delete-branch.json")).unwrap();
        let events = decode("repo:push", &body).unwrap();
        let (_, push) = push_of(&events, 0);
        assert!(push.deleted && push.after.is_zero());
        assert_eq!(push.git_ref, GitRef::Branch("name-of-branch".into()));

        let body = serde_json::to_vec(&sample("push-tag.json")).unwrap();
        let events = decode("repo:push", &body).unwrap();
        let (_, push) = push_of(&events, 0);
        assert_eq!(push.git_ref, GitRef::Tag("v1.0.0".into()));
        assert!(push.created);
    }

    #[test]
    fn each_change_is_its_own_event_in_order() {
        let mut body = sample("push.json");
        let first = body["push"]["changes"][0].clone();
        let mut second = sample("push-delete-branch.json")["push"]["changes"][0].clone();
        second["old"]["name"] = "gone".into();
        second["forced"] = true.into();
        body["push"]["changes"] = serde_json::json!([first, second]);
        let events = decode("repo:push", &serde_json::to_vec(&body).unwrap()).unwrap();
        assert_eq!(events.len(), 2);
        assert!(!push_of(&events, 0).1.deleted);
        let (_, gone) = push_of(&events, 1);
        assert!(gone.deleted && gone.forced);
        assert_eq!(gone.git_ref, GitRef::Branch("gone".into()));
    }

    #[test]
    fn unusable_changes_and_other_events() {
        let mut body = sample("push.json");
        body["push"]["changes"][0]["new"] = serde_json::Value::Null;
        body["push"]["changes"][0]["old"] = serde_json::Value::Null;
        let err = decode("repo:push", &serde_json::to_vec(&body).unwrap()).unwrap_err();
        assert!(err.to_string().contains("both `new` and `old` are null"));
        body["push"]["changes"] = serde_json::json!([]);
        let events = decode("repo:push", &serde_json::to_vec(&body).unwrap()).unwrap();
        assert!(matches!(&events[..], [Event::Ignored { .. }]));
        let events = decode("pullrequest:approved", b"{}").unwrap();
        assert!(
            matches!(&events[..], [Event::Ignored { reason }] if reason.contains("pullrequest:approved"))
        );
    }

    #[test]
    fn pull_requests_keep_the_short_hash_and_refuse_forks() {
        let body = serde_json::to_vec(&sample("pullrequest-created.json")).unwrap();
        let events = decode("pullrequest:created", &body).unwrap();
        let [Event::PullRequest { repository, pr }] = &events[..] else {
            panic!("not a pull request: {events:?}")
        };
        assert_eq!(repository, "team_name/repo_name");
        assert_eq!((pr.number, pr.action), (1, PullRequestAction::Opened));
        assert_eq!(pr.head, "d3022fc0ca3d");
        assert_eq!(pr.base_branch, "master");
        assert_eq!(pr.head_ref, "refs/heads/branch2");
        let closed = decode("pullrequest:rejected", &body).unwrap();
        assert!(
            matches!(&closed[..], [Event::PullRequest { pr, .. }] if pr.action == PullRequestAction::Closed)
        );
        let mut fork = sample("pullrequest-created.json");
        fork["pullrequest"]["source"]["repository"]["full_name"] = "mallory/repo_name".into();
        let events = decode("pullrequest:created", &serde_json::to_vec(&fork).unwrap()).unwrap();
        assert!(
            matches!(&events[..], [Event::Ignored { reason }] if reason.contains("mallory/repo_name")),
            "{events:?}"
        );
    }
}
