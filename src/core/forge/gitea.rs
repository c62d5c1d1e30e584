//! Gitea and Forgejo (a fork of Gitea: the same payloads, its own header names):
//! `X-Gitea-Signature` / `X-Forgejo-Signature` carry the bare hex HMAC-SHA256 of the
//! body; `X-Gitea-Event` / `X-Forgejo-Event` name the event. A branch deletion comes
//! as a `delete` event only (no push); a tag deletion as both. Gitea's `delete` names
//! the ref short (`feature/x`: its `services/webhook/notifier.go` `DeleteRef` sends
//! `refFullName.ShortName()`), Forgejo's in full (`refs/heads/feature/x`: its `DeleteRef`
//! sends `refFullName.String()`); either form is read from either forge, so a forge that
//! changes its mind breaks nothing. Field names from Gitea's `modules/structs/hook.go`.

use serde::Deserialize;

use super::{AuthError, Forge, Headers};
use crate::core::event::{
    Event, EventError, GitRef, PullRequest, PullRequestAction, Push, RawLabel, checked_ref,
    json_body, sha,
};

pub struct Flavour {
    signature: &'static str,
}

pub const GITEA: Flavour = Flavour {
    signature: "X-Gitea-Signature",
};
pub const FORGEJO: Flavour = Flavour {
    signature: "X-Forgejo-Signature",
};

pub fn authenticate(
    flavour: Flavour,
    secret: &[u8],
    headers: &(impl Headers + ?Sized),
    body: &[u8],
) -> Result<(), AuthError> {
    super::verify_hex_mac(
        secret,
        flavour.signature,
        headers.get(flavour.signature),
        b"",
        "64 hex digits",
        body,
    )
}

pub fn precheck(flavour: Flavour, headers: &(impl Headers + ?Sized)) -> Result<(), AuthError> {
    let value = headers.get(flavour.signature);
    super::parse_hex_mac(flavour.signature, value, b"", "64 hex digits").map(|_| ())
}

pub fn decode(
    forge: Forge,
    event: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Event, EventError> {
    let json_err = |e: serde_json::Error| EventError::Json {
        event: event.to_owned(),
        detail: e.to_string(),
    };
    match event {
        "push" => {
            let raw: RawPush =
                serde_json::from_slice(&json_body(content_type, body)?).map_err(json_err)?;
            let before = sha("before", &raw.before)?;
            let after = sha("after", &raw.after)?;
            Ok(Event::Push {
                repository: raw.repository.full_name,
                push: Push {
                    git_ref: GitRef::from_full(&checked_ref("ref", raw.git_ref)?),
                    created: before.is_zero(),
                    deleted: after.is_zero(),
                    // Gitea computes force-pushes but does not put them in the payload.
                    forced: false,
                    before,
                    after,
                    head_commit_message: raw.head_commit.map(|c| c.message),
                    // Filled from the mirror once fetched.
                    head_commit_id: None,
                    head_commit_author: None,
                    pusher: raw.pusher.and_then(|p| p.login),
                },
            })
        }
        "delete" => {
            let raw: RawDelete =
                serde_json::from_slice(&json_body(content_type, body)?).map_err(json_err)?;
            let name = checked_ref("ref", raw.git_ref)?;
            let git_ref = match raw.ref_type.as_str() {
                "branch" => GitRef::Branch(strip(&name, "refs/heads/")),
                "tag" => GitRef::Tag(strip(&name, "refs/tags/")),
                _ => GitRef::Other(name),
            };
            Ok(Event::Delete {
                repository: raw.repository.full_name,
                git_ref,
            })
        }
        "pull_request" => {
            let raw: RawPullRequest =
                serde_json::from_slice(&json_body(content_type, body)?).map_err(json_err)?;
            let action = match raw.action.as_str() {
                "opened" | "reopened" => PullRequestAction::Opened,
                "synchronized" => PullRequestAction::Updated,
                "closed" => PullRequestAction::Closed,
                "label_updated" => PullRequestAction::Relabeled,
                other => {
                    return Ok(Event::Ignored {
                        reason: format!(
                            "pull request #{} was `{other}`: only opened, reopened, synchronized and closed matter",
                            raw.number
                        ),
                    });
                }
            };
            let head_repo = raw.pull_request.head.repo.map(|r| r.full_name);
            let fork = match head_repo {
                Some(name) if name.eq_ignore_ascii_case(&raw.repository.full_name) => None,
                // A deleted fork has no repository left: still not ours.
                other => Some(other.unwrap_or_else(|| "(deleted fork)".into())),
            };
            Ok(Event::PullRequest {
                repository: raw.repository.full_name,
                pr: PullRequest {
                    number: raw.number,
                    action,
                    head: sha("pull_request.head.sha", &raw.pull_request.head.sha)?.to_string(),
                    base_branch: checked_ref(
                        "pull_request.base.ref",
                        raw.pull_request.base.git_ref,
                    )?,
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
        "create" => Ok(Event::Ignored {
            reason: format!(
                "{forge} `create` is not acted on: the `push` {forge} sends with it deploys"
            ),
        }),
        other => Ok(Event::Ignored {
            reason: format!(
                "{forge} event `{other}` is not handled: stagehand acts on push, delete and pull_request"
            ),
        }),
    }
}

fn strip(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_owned()
}

#[derive(Deserialize)]
struct RawRepository {
    full_name: String,
}

#[derive(Deserialize)]
struct RawCommit {
    message: String,
}

#[derive(Deserialize)]
struct RawUser {
    login: Option<String>,
}

#[derive(Deserialize)]
struct RawPush {
    #[serde(rename = "ref")]
    git_ref: String,
    before: String,
    after: String,
    head_commit: Option<RawCommit>,
    pusher: Option<RawUser>,
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
    head: RawBranch,
    base: RawBranch,
    #[serde(default)]
    labels: Vec<RawLabel>,
}

#[derive(Deserialize)]
struct RawBranch {
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

    fn sample(forge: &str, name: &str) -> Vec<u8> {
        let path = format!(
            "{}/webhook-samples/{forge}/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(path).unwrap()
    }

    #[test]
    fn samples_decode_for_both_flavours() {
        for forge in [Forge::Gitea, Forge::Forgejo] {
            let name = forge.as_str();
            let Event::Push { repository, push } =
                decode(forge, "push", None, &sample(name, "push.json")).unwrap()
            else {
                panic!("not a push")
            };
            assert_eq!(repository, "example/example");
            assert_eq!(push.git_ref, GitRef::Branch("master".into()));
            assert_eq!(push.head_commit_message.as_deref(), Some("example\n"));
            assert!(push.created && !push.deleted);

            let Event::Push { push, .. } =
                decode(forge, "push", None, &sample(name, "push-tag.json")).unwrap()
            else {
                panic!("not a push")
            };
            assert_eq!(push.git_ref, GitRef::Tag("v1.0.0".into()));

            // Gitea's short ref and Forgejo's full ref name the same branch.
            let deleted = decode(forge, "delete", None, &sample(name, "delete-branch.json"));
            assert_eq!(
                deleted.unwrap(),
                Event::Delete {
                    repository: "example/example".into(),
                    git_ref: GitRef::Branch("example3".into()),
                },
                "{forge}"
            );
        }
    }

    /// A deletion names the same ref whether the forge sent it short or full, and the
    /// `ref_type` says which kind, for either forge.
    #[test]
    fn deleted_refs_short_or_full() {
        let cases = [
            ("feature/x", "branch", GitRef::Branch("feature/x".into())),
            (
                "refs/heads/feature/x",
                "branch",
                GitRef::Branch("feature/x".into()),
            ),
            ("v1.2.0", "tag", GitRef::Tag("v1.2.0".into())),
            ("refs/tags/v1.2.0", "tag", GitRef::Tag("v1.2.0".into())),
        ];
        for forge in [Forge::Gitea, Forge::Forgejo] {
            for (git_ref, ref_type, want) in &cases {
                let mut body: serde_json::Value =
                    serde_json::from_slice(&sample(forge.as_str(), "delete-branch.json")).unwrap();
                body["ref"] = (*git_ref).into();
                body["ref_type"] = (*ref_type).into();
                let got = decode(forge, "delete", None, &serde_json::to_vec(&body).unwrap());
                assert_eq!(
                    got.unwrap(),
                    Event::Delete {
                        repository: "example/example".into(),
                        git_ref: want.clone(),
                    },
                    "{forge} {git_ref}"
                );
            }
        }
    }

    #[test]
    fn fork_pull_requests_decode() {
        for forge in [Forge::Gitea, Forge::Forgejo] {
            let body = sample(forge.as_str(), "pull-request.json");
            let Event::PullRequest { repository, pr } =
                decode(forge, "pull_request", None, &body).unwrap()
            else {
                panic!("not a pull request")
            };
            assert_eq!(repository, "example/example");
            assert_eq!((pr.number, pr.action), (2, PullRequestAction::Opened));
            assert_eq!(pr.head, "48e773f892a831faa47c0a160d1b7f0cd369ae2a");
            assert_eq!(pr.base_branch, "master");
            assert_eq!(pr.fork.as_deref(), Some("example2/example"));
            assert_eq!(pr.head_ref, "refs/pull/2/head");
        }
    }

    #[test]
    fn create_and_others_are_ignored() {
        for (event, needle) in [
            ("create", "`create` is not acted on"),
            ("issues", "`issues` is not handled"),
        ] {
            let got = decode(Forge::Gitea, event, None, b"{}").unwrap();
            assert!(
                matches!(&got, Event::Ignored { reason } if reason.contains(needle)),
                "{got:?}"
            );
        }
    }
}
