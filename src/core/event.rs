//! Decoding GitHub deliveries (other forges: `core::forge`), and the forge-neutral [`Event`]: the body's two encodings (JSON, or form-encoded with the
//! JSON in `payload`) and the events stagehand acts on. Only bytes whose signature was
//! already verified reach this module.

use std::borrow::Cow;

use serde::Deserialize;

use super::ids::CommitSha;

/// The marker in a head commit's message that makes a push record without deploying
/// (as CI systems' `[skip ci]`); reconciliation honours it too.
pub const SKIP_MARKER: &str = "[skip deploy]";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("form-encoded body has no `payload` field: {0}")]
    Form(String),
    #[error("body is not valid JSON for a `{event}` event: {detail}")]
    Json { event: String, detail: String },
    #[error("`{field}` is not valid: {detail}")]
    Field { field: &'static str, detail: String },
}

/// A ref as GitHub names it in a push (`refs/heads/x`, `refs/tags/v1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitRef {
    Branch(String),
    Tag(String),
    /// Anything else (`refs/notes/…`, `refs/pull/…`): recorded, never deployed.
    Other(String),
}

impl GitRef {
    pub fn from_full(full: &str) -> GitRef {
        if let Some(branch) = full.strip_prefix("refs/heads/") {
            GitRef::Branch(branch.to_owned())
        } else if let Some(tag) = full.strip_prefix("refs/tags/") {
            GitRef::Tag(tag.to_owned())
        } else {
            GitRef::Other(full.to_owned())
        }
    }

    pub fn full(&self) -> String {
        match self {
            GitRef::Branch(name) => format!("refs/heads/{name}"),
            GitRef::Tag(name) => format!("refs/tags/{name}"),
            GitRef::Other(full) => full.clone(),
        }
    }

    /// The short name: `develop`, `v1.2.0`.
    pub fn short(&self) -> &str {
        match self {
            GitRef::Branch(name) | GitRef::Tag(name) | GitRef::Other(name) => name,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub git_ref: GitRef,
    pub before: CommitSha,
    /// What the ref points at now: a commit, or the tag object of an annotated tag
    /// (the pipeline peels it). All zeros when the ref was deleted.
    pub after: CommitSha,
    pub created: bool,
    pub deleted: bool,
    pub forced: bool,
    pub head_commit_message: Option<String>,
    /// The head commit: for a tag push, the commit the tag points at (`after` may be
    /// the tag object).
    pub head_commit_id: Option<CommitSha>,
    pub head_commit_author: Option<String>,
    pub pusher: Option<String>,
}

/// What happened to a pull/merge request, as far as a preview cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullRequestAction {
    /// Opened or reopened: deploy its head.
    Opened,
    /// New commits on its source branch: deploy the new head.
    Updated,
    /// Closed or merged: tear its preview down.
    Closed,
    /// Its labels changed: matters only when a maintainer's label approves a fork.
    Relabeled,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// The number people know it by (GitLab's `iid`).
    pub number: u64,
    pub action: PullRequestAction,
    /// The head commit: 40 hex digits, or the 12-digit abbreviation Bitbucket sends,
    /// which the pipeline resolves in the mirror after fetching `head_ref`.
    pub head: String,
    /// The branch it merges into.
    pub base_branch: String,
    /// The repository its commits come from, when that is not the target repository.
    pub fork: Option<String>,
    /// The ref in the target repository that holds its head (`refs/pull/7/head`,
    /// GitLab's `refs/merge-requests/7/head`): fetchable even when the commits live in a
    /// fork.
    pub head_ref: String,
    /// Its labels' names, as the delivery lists them.
    pub labels: Vec<String>,
}

impl PullRequest {
    /// The key its temporary environment is stored under: `pr:7`. A `:` can never be in
    /// a branch name, so a preview never collides with a branch's temporary environment;
    /// the environment's name is the slug (`review-pr-7`).
    pub fn environment_key(&self) -> String {
        format!("pr:{}", self.number)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Ping {
        hook_id: Option<i64>,
        repository: Option<String>,
    },
    Push {
        repository: String,
        push: Push,
    },
    /// The `delete` event: a branch or tag was deleted.
    Delete {
        repository: String,
        git_ref: GitRef,
    },
    /// Any event stagehand does not act on, by its `X-GitHub-Event` name.
    Other {
        name: String,
    },
    /// A pull/merge request opened, updated with new commits, or closed.
    PullRequest {
        repository: String,
        pr: PullRequest,
    },
    /// A delivery another forge decoded to nothing to act on, with the reason an
    /// operator reads in the answer (a Gitea `create`, a GitLab `Merge Request Hook`).
    Ignored {
        reason: String,
    },
}

impl Event {
    pub fn repository(&self) -> Option<&str> {
        match self {
            Event::Ping { repository, .. } => repository.as_deref(),
            Event::Push { repository, .. }
            | Event::Delete { repository, .. }
            | Event::PullRequest { repository, .. } => Some(repository),
            Event::Other { .. } | Event::Ignored { .. } => None,
        }
    }
}

/// The JSON document of a delivery: the body itself, or the `payload` field of a
/// form-encoded body (GitHub's "application/x-www-form-urlencoded" content type).
pub fn json_body<'a>(
    content_type: Option<&str>,
    body: &'a [u8],
) -> Result<Cow<'a, [u8]>, EventError> {
    let is_form = content_type
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|mime| {
            mime.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Ok(Cow::Borrowed(body));
    }
    #[derive(Deserialize)]
    struct Form {
        payload: String,
    }
    serde_urlencoded::from_bytes::<Form>(body)
        .map(|form| Cow::Owned(form.payload.into_bytes()))
        .map_err(|e| EventError::Form(e.to_string()))
}

/// Parses the JSON of event `name` (the `X-GitHub-Event` header).
pub fn parse_event(name: &str, json: &[u8]) -> Result<Event, EventError> {
    let json_err = |e: serde_json::Error| EventError::Json {
        event: name.to_owned(),
        detail: e.to_string(),
    };
    match name {
        "ping" => {
            let raw: RawPing = serde_json::from_slice(json).map_err(json_err)?;
            Ok(Event::Ping {
                hook_id: raw.hook_id,
                repository: raw.repository.map(|r| r.full_name),
            })
        }
        "push" => {
            let raw: RawPush = serde_json::from_slice(json).map_err(json_err)?;
            let push = Push {
                git_ref: GitRef::from_full(&checked_ref("ref", raw.git_ref)?),
                before: sha("before", &raw.before)?,
                after: sha("after", &raw.after)?,
                created: raw.created,
                deleted: raw.deleted,
                forced: raw.forced,
                head_commit_id: raw
                    .head_commit
                    .as_ref()
                    .and_then(|c| c.id.as_deref())
                    .and_then(|id| CommitSha::parse(id).ok()),
                head_commit_author: raw
                    .head_commit
                    .as_ref()
                    .and_then(|c| c.author.as_ref())
                    .and_then(|a| a.name.clone()),
                head_commit_message: raw.head_commit.map(|c| c.message),
                pusher: raw.pusher.and_then(|p| p.name),
            };
            Ok(Event::Push {
                repository: raw.repository.full_name,
                push,
            })
        }
        "pull_request" => pull_request(name, json),
        "delete" => {
            let raw: RawDelete = serde_json::from_slice(json).map_err(json_err)?;
            let name = checked_ref("ref", raw.git_ref)?;
            let git_ref = match raw.ref_type.as_str() {
                "branch" => GitRef::Branch(name),
                "tag" => GitRef::Tag(name),
                _ => GitRef::Other(name),
            };
            Ok(Event::Delete {
                repository: raw.repository.full_name,
                git_ref,
            })
        }
        other => Ok(Event::Other {
            name: other.to_owned(),
        }),
    }
}

/// GitHub's `pull_request`: `opened`/`reopened` deploy, `synchronize` (new commits)
/// redeploys, `closed` (merged or not) tears down; other actions change no code.
fn pull_request(name: &str, json: &[u8]) -> Result<Event, EventError> {
    let raw: RawPullRequest = serde_json::from_slice(json).map_err(|e| EventError::Json {
        event: name.to_owned(),
        detail: e.to_string(),
    })?;
    let action = match raw.action.as_str() {
        "opened" | "reopened" => PullRequestAction::Opened,
        "synchronize" => PullRequestAction::Updated,
        "closed" => PullRequestAction::Closed,
        "labeled" => PullRequestAction::Relabeled,
        other => {
            return Ok(Event::Ignored {
                reason: format!(
                    "pull request #{} was `{other}`: only opened, reopened, synchronize and closed matter",
                    raw.number
                ),
            });
        }
    };
    let fork = match raw.pull_request.head.repo.map(|r| r.full_name) {
        Some(name) if name.eq_ignore_ascii_case(&raw.repository.full_name) => None,
        other => Some(other.unwrap_or_else(|| "(deleted fork)".into())),
    };
    Ok(Event::PullRequest {
        repository: raw.repository.full_name,
        pr: PullRequest {
            number: raw.number,
            action,
            head: sha("pull_request.head.sha", &raw.pull_request.head.sha)?.to_string(),
            base_branch: checked_ref("pull_request.base.ref", raw.pull_request.base.git_ref)?,
            fork,
            head_ref: format!("refs/pull/{}/head", raw.number),
            labels: raw
                .pull_request
                .labels
                .into_iter()
                .map(|l| l.name)
                .collect(),
        },
    })
}

/// A label as GitHub, Gitea and Forgejo (`name`) or GitLab (`title`) list it.
#[derive(Deserialize)]
pub(crate) struct RawLabel {
    #[serde(alias = "title")]
    pub(crate) name: String,
}

pub(crate) fn sha(field: &'static str, value: &str) -> Result<CommitSha, EventError> {
    CommitSha::parse(value).map_err(|e| EventError::Field {
        field,
        detail: e.to_string(),
    })
}

/// Ref names travel into environment variables and slugs: refuse what git itself
/// refuses in a ref and what an environment variable cannot carry.
pub(crate) fn checked_ref(field: &'static str, value: String) -> Result<String, EventError> {
    if value.is_empty() || value.len() > 1024 || value.chars().any(char::is_control) {
        return Err(EventError::Field {
            field,
            detail: "empty, longer than 1024 bytes, or containing control characters".into(),
        });
    }
    Ok(value)
}

#[derive(Deserialize)]
struct RawRepository {
    full_name: String,
}

#[derive(Deserialize)]
struct RawPing {
    hook_id: Option<i64>,
    repository: Option<RawRepository>,
}

#[derive(Deserialize)]
struct RawCommit {
    id: Option<String>,
    message: String,
    author: Option<RawAuthor>,
}

#[derive(Deserialize)]
struct RawAuthor {
    name: Option<String>,
}

#[derive(Deserialize)]
struct RawPusher {
    name: Option<String>,
}

#[derive(Deserialize)]
struct RawPush {
    #[serde(rename = "ref")]
    git_ref: String,
    before: String,
    after: String,
    #[serde(default)]
    created: bool,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    forced: bool,
    head_commit: Option<RawCommit>,
    pusher: Option<RawPusher>,
    repository: RawRepository,
}

#[derive(Deserialize)]
struct RawPullRequest {
    action: String,
    number: u64,
    pull_request: RawPullRequestBody,
    repository: RawRepository,
}

#[derive(Deserialize)]
struct RawPullRequestBody {
    head: RawPullRequestEnd,
    base: RawPullRequestEnd,
    #[serde(default)]
    labels: Vec<RawLabel>,
}

#[derive(Deserialize)]
struct RawPullRequestEnd {
    #[serde(rename = "ref")]
    git_ref: String,
    sha: String,
    repo: Option<RawRepository>,
}

#[derive(Deserialize)]
struct RawDelete {
    #[serde(rename = "ref")]
    git_ref: String,
    ref_type: String,
    repository: RawRepository,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA_A: &str = "1111111111111111111111111111111111111111";
    const SHA_B: &str = "2222222222222222222222222222222222222222";

    fn push_json(git_ref: &str) -> String {
        format!(
            r#"{{"ref":"{git_ref}","before":"{SHA_A}","after":"{SHA_B}","created":false,"deleted":false,"forced":true,
                "head_commit":{{"message":"Add cart"}},"pusher":{{"name":"ada"}},"repository":{{"full_name":"acme/shop"}}}}"#
        )
    }

    #[test]
    fn refs() {
        let cases = [
            ("refs/heads/main", GitRef::Branch("main".into())),
            ("refs/heads/feature/x", GitRef::Branch("feature/x".into())),
            ("refs/tags/v1.2.0", GitRef::Tag("v1.2.0".into())),
            ("refs/pull/1/head", GitRef::Other("refs/pull/1/head".into())),
        ];
        for (full, expected) in cases {
            let parsed = GitRef::from_full(full);
            assert_eq!(parsed, expected);
            assert_eq!(parsed.full(), full);
        }
    }

    #[test]
    fn push_fields() {
        let event = parse_event("push", push_json("refs/heads/develop").as_bytes()).unwrap();
        let Event::Push { repository, push } = event else {
            panic!("not a push: {event:?}")
        };
        assert_eq!(repository, "acme/shop");
        assert_eq!(push.git_ref, GitRef::Branch("develop".into()));
        assert_eq!(push.after.as_str(), SHA_B);
        assert!(push.forced && !push.created && !push.deleted);
        assert_eq!(push.head_commit_message.as_deref(), Some("Add cart"));
        assert_eq!(push.pusher.as_deref(), Some("ada"));
    }

    #[test]
    fn bad_bodies_say_what_is_wrong() {
        let cases: [(&str, &str, &str); 5] = [
            ("push", "not json", "not valid JSON"),
            (
                "push",
                r#"{"ref":"refs/heads/x"}"#,
                "missing field `before`",
            ),
            (
                "push",
                &push_json("refs/heads/a\u{7}b").replace('\u{7}', "\\u0007"),
                "`ref` is not valid",
            ),
            (
                "push",
                &push_json("refs/heads/x").replace(SHA_B, "nope"),
                "`after` is not valid",
            ),
            ("delete", r#"{"ref":"x"}"#, "missing field `ref_type`"),
        ];
        for (name, body, needle) in cases {
            let err = parse_event(name, body.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(needle), "{body}: {err}");
        }
    }

    #[test]
    fn pull_requests() {
        let path = format!(
            "{}/webhook-samples/pull-request.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let sample = std::fs::read(path).unwrap();
        let Event::PullRequest { repository, pr } = parse_event("pull_request", &sample).unwrap()
        else {
            panic!("not a pull request")
        };
        assert_eq!(repository, "Codertocat/Hello-World");
        assert_eq!((pr.number, pr.action), (2, PullRequestAction::Opened));
        assert_eq!(pr.head, "ec26c3e57ca3a959ca5aad62de7213c562f8c821");
        assert_eq!(pr.base_branch, "master");
        assert_eq!(pr.fork, None);
        assert_eq!(pr.head_ref, "refs/pull/2/head");
        let mut edited: serde_json::Value = serde_json::from_slice(&sample).unwrap();
        edited["action"] = "assigned".into();
        let event = parse_event("pull_request", &serde_json::to_vec(&edited).unwrap()).unwrap();
        assert!(matches!(event, Event::Ignored { .. }), "{event:?}");
    }

    #[test]
    fn other_events_are_not_parsed() {
        assert_eq!(
            parse_event("issues", b"anything").unwrap(),
            Event::Other {
                name: "issues".into()
            }
        );
    }

    #[test]
    fn form_bodies_carry_json_in_payload() {
        let form = b"payload=%7B%22zen%22%3A%22hi%22%7D";
        let json = json_body(
            Some("application/x-www-form-urlencoded; charset=utf-8"),
            form,
        )
        .unwrap();
        assert_eq!(&*json, br#"{"zen":"hi"}"#);
        assert_eq!(&*json_body(Some("application/json"), b"{}").unwrap(), b"{}");
        assert_eq!(&*json_body(None, b"{}").unwrap(), b"{}");
        assert!(json_body(Some("application/x-www-form-urlencoded"), b"other=1").is_err());
    }
}
