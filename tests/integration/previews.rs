//! Pull/merge-request previews from GitHub, GitLab, Gitea, Forgejo and Bitbucket deliveries (their own
//! samples, rewritten to a real repository): a temporary environment per request,
//! deployed on open and on new commits, torn down on close; forks refused unless allowed.

use std::path::Path;

use serde_json::{Value, json};
use stagehand::core::forge::Forge;

use crate::support::*;

fn toml(forge: Forge, allow_forks: bool) -> impl FnOnce(&Path, &Path) -> String {
    move |dir, repo| {
        shop_toml(
            dir,
            repo,
            &format!(
                r#"forge = "{forge}"
[apps.shop.environments.staging]
branch = "develop"

[apps.shop.environments.review]
pull_requests = "main"
allow_forks = {allow_forks}
"#
            ),
        )
    }
}

/// The head ref the forge keeps for request `number` in the target repository.
fn head_ref(forge: Forge, number: u64) -> String {
    match forge {
        Forge::Gitlab => format!("refs/merge-requests/{number}/head"),
        // Bitbucket keeps no request refs: the source branch itself.
        Forge::Bitbucket => format!("refs/heads/topic-{number}"),
        _ => format!("refs/pull/{number}/head"),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Act {
    Open,
    NewCommits,
    EditTitle,
    Close,
}

/// The forge's event name and body for request `number`, from its sample.
fn request(forge: Forge, number: u64, act: Act, head: &str, fork: bool) -> (String, Value) {
    match forge {
        Forge::Gitlab => {
            let mut body = sample("gitlab/merge-request.json");
            body["project"]["path_with_namespace"] = json!("acme/shop");
            let mr = &mut body["object_attributes"];
            mr["iid"] = json!(number);
            mr["target_branch"] = json!("main");
            mr["last_commit"]["id"] = json!(head);
            mr["action"] = json!(match act {
                Act::Open => "open",
                Act::NewCommits | Act::EditTitle => "update",
                Act::Close => "close",
            });
            if act == Act::NewCommits {
                mr["oldrev"] = json!("da1560886d4f094c3e6c9ef40349f7d38b5d27d7");
            }
            if fork {
                mr["source_project_id"] = json!(99);
                mr["source"]["path_with_namespace"] = json!("mallory/shop");
            }
            ("Merge Request Hook".into(), body)
        }
        Forge::Bitbucket => {
            let mut body = sample("bitbucket/pullrequest-created.json");
            body["repository"]["full_name"] = json!("acme/shop");
            let pr = &mut body["pullrequest"];
            pr["id"] = json!(number);
            pr["destination"]["branch"]["name"] = json!("main");
            pr["source"]["branch"]["name"] = json!(format!("topic-{number}"));
            // Bitbucket names the head by a 12-digit abbreviation.
            pr["source"]["commit"]["hash"] = json!(&head[..12]);
            pr["source"]["repository"]["full_name"] =
                json!(if fork { "mallory/shop" } else { "acme/shop" });
            let event = match act {
                Act::Open => "pullrequest:created",
                Act::NewCommits | Act::EditTitle => "pullrequest:updated",
                Act::Close => "pullrequest:fulfilled",
            };
            (event.into(), body)
        }
        Forge::Github => {
            let mut body = sample("pull-request.json");
            body["repository"]["full_name"] = json!("acme/shop");
            body["number"] = json!(number);
            body["action"] = json!(match act {
                Act::Open => "opened",
                Act::NewCommits => "synchronize",
                Act::EditTitle => "edited",
                Act::Close => "closed",
            });
            let pr = &mut body["pull_request"];
            pr["number"] = json!(number);
            pr["base"]["ref"] = json!("main");
            pr["head"]["sha"] = json!(head);
            pr["head"]["repo"]["full_name"] =
                json!(if fork { "mallory/shop" } else { "acme/shop" });
            ("pull_request".into(), body)
        }
        _ => {
            let mut body = sample(&format!("{forge}/pull-request.json"));
            body["repository"]["full_name"] = json!("acme/shop");
            body["number"] = json!(number);
            body["action"] = json!(match act {
                Act::Open => "opened",
                Act::NewCommits => "synchronized",
                Act::EditTitle => "edited",
                Act::Close => "closed",
            });
            let pr = &mut body["pull_request"];
            pr["number"] = json!(number);
            pr["base"]["ref"] = json!("main");
            pr["head"]["sha"] = json!(head);
            pr["head"]["repo"]["full_name"] =
                json!(if fork { "mallory/shop" } else { "acme/shop" });
            ("pull_request".into(), body)
        }
    }
}

/// `request` by the name of its action (`open`, `update`, `close`), for other modules.
pub(crate) fn request_body(forge: Forge, number: u64, act: &str, head: &str) -> (String, Value) {
    let act = match act {
        "open" => Act::Open,
        "update" => Act::NewCommits,
        _ => Act::Close,
    };
    request(forge, number, act, head, false)
}

async fn send(
    s: &Harness,
    forge: Forge,
    number: u64,
    act: Act,
    head: &str,
    fork: bool,
) -> (u16, Value) {
    let (event, body) = request(forge, number, act, head, fork);
    let bytes = serde_json::to_vec(&body).unwrap();
    s.send(&Delivery::from_forge(forge, &event, bytes.clone()))
        .await
}

async fn previews(forge: Forge) {
    let s = Harness::builder().config(toml(forge, false)).start().await;
    // Commits only the request's head ref reaches, as a fork's are.
    git(&s.repo, &["checkout", "-q", "--detach", "main"]);
    let first = commit(&s.repo, "Topic", &[("topic.txt", "one\n")]);
    git(&s.repo, &["update-ref", &head_ref(forge, 7), &first]);

    // Opened: the request gets its own environment, built from its head ref.
    let (status, answer) = send(&s, forge, 7, Act::Open, &first, false).await;
    assert_eq!(status, 202, "{forge}: {answer}");
    let opened = s.wait(&answer["deploy"]["id"], 60).await;
    assert_eq!(opened["status"], "succeeded", "{forge}: {opened}");
    assert_eq!(opened["environment"], "review-pr-7");
    assert_eq!(opened["base_environment"], "review");
    assert_eq!(s.revision("review-pr-7").as_deref(), Some(first.as_str()));

    // New commits deploy the new head; an edit without commits does nothing.
    let second = commit(&s.repo, "More topic", &[("topic.txt", "two\n")]);
    git(&s.repo, &["update-ref", &head_ref(forge, 7), &second]);
    let (status, answer) = send(&s, forge, 7, Act::NewCommits, &second, false).await;
    assert_eq!(status, 202, "{forge}: {answer}");
    let updated = s.wait(&answer["deploy"]["id"], 60).await;
    assert_eq!(updated["status"], "succeeded", "{forge}: {updated}");
    assert_eq!(updated["environment"], "review-pr-7");
    assert_eq!(s.revision("review-pr-7").as_deref(), Some(second.as_str()));
    if forge != Forge::Bitbucket {
        // Bitbucket says `updated` for an edit too; the others say what changed.
        let (status, answer) = send(&s, forge, 7, Act::EditTitle, &second, false).await;
        assert_eq!(status, 200, "{forge}: {answer}");
        assert!(answer["ignored"].is_string(), "{forge}: {answer}");
    }

    // A fork's request is not built here (allow_forks is off), and says why.
    git(&s.repo, &["update-ref", &head_ref(forge, 8), &second]);
    let (status, answer) = send(&s, forge, 8, Act::Open, &second, true).await;
    assert_eq!(status, 200, "{forge}: {answer}");
    let why = answer["ignored"].as_str().unwrap_or_default();
    // Bitbucket keeps no ref for a fork's request: never fetchable, whatever allow_forks.
    let gate = if forge == Forge::Bitbucket {
        "keeps no ref"
    } else {
        "allow_forks"
    };
    assert!(
        why.contains("mallory/shop") && why.contains(gate),
        "{forge}: {answer}"
    );
    assert!(!s.root.join("review-pr-8").exists());

    // Closed (or merged): the preview goes, nothing else does.
    let (status, answer) = send(&s, forge, 7, Act::Close, &second, false).await;
    assert_eq!(status, 202, "{forge}: {answer}");
    let closed = s.wait(&answer["deploy"]["id"], 60).await;
    assert_eq!(closed["status"], "succeeded", "{forge}: {closed}");
    assert_eq!(closed["trigger"], "teardown");
    assert!(!s.root.join("review-pr-7").exists());
    s.stop().await;
}

#[actix_web::test]
async fn gitlab_merge_request_previews() {
    previews(Forge::Gitlab).await;
}

#[actix_web::test]
async fn bitbucket_pull_request_previews() {
    previews(Forge::Bitbucket).await;
}

#[actix_web::test]
async fn github_pull_request_previews() {
    previews(Forge::Github).await;
}

#[actix_web::test]
async fn gitea_pull_request_previews() {
    previews(Forge::Gitea).await;
}

#[actix_web::test]
async fn forgejo_pull_request_previews() {
    previews(Forge::Forgejo).await;
}

/// With `allow_forks = true` a fork's request is built like any other: from the head
/// ref the forge keeps in the target repository.
#[actix_web::test]
async fn forks_are_built_where_allowed() {
    let s = Harness::builder()
        .config(toml(Forge::Gitea, true))
        .start()
        .await;
    // A first preview makes the mirror; the fork's commit arrives after it, reachable
    // only from the request's head ref, so the deploy must fetch exactly that ref.
    let main = git(&s.repo, &["rev-parse", "main"]);
    git(&s.repo, &["update-ref", "refs/pull/1/head", &main]);
    let (status, answer) = send(&s, Forge::Gitea, 1, Act::Open, &main, false).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        s.wait(&answer["deploy"]["id"], 60).await["status"],
        "succeeded"
    );
    git(&s.repo, &["checkout", "-q", "--detach", "main"]);
    let fork_head = commit(&s.repo, "From a fork", &[("fork.txt", "hi\n")]);
    git(&s.repo, &["checkout", "-q", "main"]);
    git(&s.repo, &["update-ref", "refs/pull/9/head", &fork_head]);
    let (status, answer) = send(&s, Forge::Gitea, 9, Act::Open, &fork_head, true).await;
    assert_eq!(status, 202, "{answer}");
    let done = s.wait(&answer["deploy"]["id"], 60).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        s.revision("review-pr-9").as_deref(),
        Some(fork_head.as_str())
    );
    s.stop().await;
}

/// A maintainer vouches for a fork's request by labelling it: the label event builds
/// it, later commits too; without the label it stays refused.
async fn label_approves_a_fork(forge: Forge) {
    let s = Harness::builder()
        .config(move |dir, repo| {
            toml(forge, false)(dir, repo).replace(
                "allow_forks = false",
                "allow_forks = false\nfork_label = \"preview ok\"",
            )
        })
        .start()
        .await;
    git(&s.repo, &["checkout", "-q", "--detach", "main"]);
    let head = commit(&s.repo, "From a fork", &[("fork.txt", "hi\n")]);
    git(&s.repo, &["update-ref", &head_ref(forge, 5), &head]);

    let (status, answer) = send(&s, forge, 5, Act::Open, &head, true).await;
    assert_eq!(status, 200, "{forge}: {answer}");
    let why = answer["ignored"].as_str().unwrap_or_default();
    assert!(why.contains("\"preview ok\""), "{forge}: {answer}");

    let (event, mut body) = request(forge, 5, Act::EditTitle, &head, true);
    match forge {
        Forge::Gitlab => {
            body["object_attributes"]["labels"] = json!([{"id": 206, "title": "preview ok"}]);
            body["changes"] =
                json!({"labels": {"previous": [], "current": [{"title": "preview ok"}]}});
        }
        _ => {
            body["action"] = json!(if forge == Forge::Github {
                "labeled"
            } else {
                "label_updated"
            });
            body["pull_request"]["labels"] = json!([{"id": 1, "name": "preview ok"}]);
        }
    }
    let bytes = serde_json::to_vec(&body).unwrap();
    let (status, answer) = s
        .send(&Delivery::from_forge(forge, &event, bytes.clone()))
        .await;
    assert_eq!(status, 202, "{forge}: {answer}");
    let done = s.wait(&answer["deploy"]["id"], 60).await;
    assert_eq!(done["status"], "succeeded", "{forge}: {done}");
    assert_eq!(s.revision("review-pr-5").as_deref(), Some(head.as_str()));
    s.stop().await;
}

#[actix_web::test]
async fn a_label_approves_a_fork_on_gitlab() {
    label_approves_a_fork(Forge::Gitlab).await;
}

#[actix_web::test]
async fn a_label_approves_a_fork_on_gitea() {
    label_approves_a_fork(Forge::Gitea).await;
}

#[actix_web::test]
async fn a_label_approves_a_fork_on_github() {
    label_approves_a_fork(Forge::Github).await;
}
