//! Commit statuses on GitLab, Gitea, Forgejo and Bitbucket, checked against a fake forge
//! API on 127.0.0.1 that records every request (method, path, headers, JSON body).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use stagehand::core::forge::Forge;

use crate::forges::{Change, ZERO, delivery};
use crate::support::*;

/// Answers every request `201 {}` and records it.
fn fake_forge_api() -> (String, Seen) {
    fake_api(|_| (201, json!({})))
}

struct Expected {
    path: &'static str,
    auth: (&'static str, &'static str),
    /// The states a succeeding then a failing deploy leave, in order.
    states: [&'static str; 4],
    state_field: &'static str,
    context_field: &'static str,
    link_field: &'static str,
}

fn expected(forge: Forge) -> Expected {
    match forge {
        Forge::Gitlab => Expected {
            path: "/api/v4/projects/acme%2Fshop/statuses/",
            auth: ("private-token", "forge-token"),
            states: ["running", "success", "running", "failed"],
            state_field: "state",
            context_field: "name",
            link_field: "target_url",
        },
        Forge::Gitea | Forge::Forgejo => Expected {
            path: "/api/v1/repos/acme/shop/statuses/",
            auth: ("authorization", "token forge-token"),
            states: ["pending", "success", "pending", "failure"],
            state_field: "state",
            context_field: "context",
            link_field: "target_url",
        },
        Forge::Bitbucket => Expected {
            path: "/2.0/repositories/acme/shop/commit/",
            auth: ("authorization", "Bearer forge-token"),
            states: ["INPROGRESS", "SUCCESSFUL", "INPROGRESS", "FAILED"],
            state_field: "state",
            context_field: "key",
            link_field: "url",
        },
        Forge::Github => unreachable!("GitHub reports Deployments: report.rs"),
    }
}

async fn statuses_for(forge: Forge) {
    let (api, seen) = fake_forge_api();
    let api_base = match forge {
        Forge::Gitlab => format!("{api}/api/v4"),
        Forge::Gitea | Forge::Forgejo => format!("{api}/api/v1/"),
        _ => format!("{api}/2.0"),
    };
    let b = Harness::builder();
    let repo = b.repo().to_owned();
    let toml = shop_toml_with(
        b.dir(),
        &repo,
        "public_url = \"https://deploy.example.com\"",
        &format!(
            r#"forge = "{forge}"
statuses = {{ token_env = "FORGE_TOKEN", api_url = "{api_base}" }}
build = ["if [ -f fail ]; then exit 1; fi"]
[apps.shop.environments.staging]
branch = "develop"
"#
        ),
    );
    let full = b
        .toml(&toml)
        .env("FORGE_TOKEN", "forge-token")
        .start()
        .await;
    let client = full.client();

    git(&repo, &["checkout", "-q", "develop"]);
    let good = git(&repo, &["rev-parse", "HEAD"]);
    let mut ids = Vec::new();
    let mut shas = Vec::new();
    for step in 0..2 {
        // The breaking commit is made only after the good one deployed: a push deploys
        // only while its commit is its branch's head.
        let (before, sha, want) = if step == 0 {
            (ZERO.to_owned(), good.clone(), "succeeded")
        } else {
            let bad = commit(&repo, "Break", &[("fail", "")]);
            (good.clone(), bad, "failed")
        };
        let (event, body) = delivery(
            forge,
            &Change {
                git_ref: "refs/heads/develop",
                before: &before,
                after: &sha,
                commit: &sha,
                message: "x",
            },
        );
        shas.push(sha.clone());
        let bytes = serde_json::to_vec(&body).unwrap();
        let (status, answer) = client
            .send(&Delivery::from_forge(forge, &event, bytes.clone()))
            .await;
        assert_eq!(status, 202, "{forge}: {answer}");
        let done = client.wait(&answer["deploy"]["id"], 60).await;
        assert_eq!(done["status"], want, "{forge}: {done}");
        ids.push(done["id"].as_str().unwrap().to_owned());
    }

    // Reporting runs beside the deploys: wait (bounded) for the four statuses.
    let deadline = Instant::now() + Duration::from_secs(20);
    let requests = loop {
        let requests = seen.lock().unwrap().clone();
        if requests.len() >= 4 || Instant::now() > deadline {
            break requests;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    };
    let want = expected(forge);
    assert_eq!(requests.len(), 4, "{forge}: {requests:#?}");
    for (i, r) in requests.iter().enumerate() {
        let sha = &shas[i / 2];
        let mut path = format!("{}{sha}", want.path);
        if forge == Forge::Bitbucket {
            path.push_str("/statuses/build");
        }
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("POST", path.as_str()),
            "{forge}"
        );
        assert_eq!(
            r.header(want.auth.0),
            want.auth.1,
            "{forge}: {:?}",
            r.headers
        );
        assert_eq!(
            r.body[want.state_field], want.states[i],
            "{forge}: {}",
            r.body
        );
        assert_eq!(r.body[want.context_field], "stagehand/staging", "{forge}");
        assert_eq!(
            r.body[want.link_field],
            json!(format!(
                "https://deploy.example.com/api/deploys/{}/log",
                ids[i / 2]
            )),
            "{forge}"
        );
    }
    full.stop().await;
}

#[actix_web::test]
async fn gitlab_commit_statuses() {
    statuses_for(Forge::Gitlab).await;
}

#[actix_web::test]
async fn gitea_commit_statuses() {
    statuses_for(Forge::Gitea).await;
}

#[actix_web::test]
async fn forgejo_commit_statuses() {
    statuses_for(Forge::Forgejo).await;
}

#[actix_web::test]
async fn bitbucket_commit_statuses() {
    statuses_for(Forge::Bitbucket).await;
}

/// A forge API that keeps comments: lists them, creates them with increasing ids and
/// edits them in place; anything else (statuses) is answered `201 {}`.
/// Comments the fake forge keeps: (id, body).
type Kept = Arc<Mutex<Vec<(u64, String)>>>;

fn fake_comment_api() -> (String, Seen, Kept) {
    let comments: Kept = Arc::new(Mutex::new(Vec::new()));
    let kept = comments.clone();
    let (url, seen) = fake_api(move |r| {
        let is_list = r.path.contains("/notes") || r.path.contains("/comments");
        let id_in_path = r
            .path
            .rsplit('/')
            .next()
            .and_then(|last| last.parse::<u64>().ok());
        let mut kept = kept.lock().unwrap();
        let answer = match (r.method.as_str(), is_list, id_in_path) {
            ("GET", true, _) => json!(
                kept.iter()
                    .map(|(id, text)| json!({"id": id, "body": text}))
                    .collect::<Vec<_>>()
            ),
            ("POST", true, _) => {
                let id = 500 + kept.len() as u64;
                kept.push((id, r.body["body"].as_str().unwrap_or_default().to_owned()));
                json!({ "id": id })
            }
            ("PUT" | "PATCH", true, Some(id)) => {
                if let Some(entry) = kept.iter_mut().find(|(i, _)| *i == id) {
                    entry.1 = r.body["body"].as_str().unwrap_or_default().to_owned();
                }
                json!({ "id": id })
            }
            _ => json!({}),
        };
        (201, answer)
    });
    (url, seen, comments)
}

/// A request's preview keeps one comment: created on the first deploy, edited by the
/// next and by the teardown, never posted twice.
async fn one_comment_per_request(forge: Forge) {
    let (api, seen, comments) = fake_comment_api();
    let b = Harness::builder();
    let repo = b.repo().to_owned();
    let api_keys = if forge == Forge::Github {
        String::new()
    } else {
        format!(
            "forge = \"{forge}\"\nstatuses = {{ token_env = \"FORGE_TOKEN\", api_url = \"{api}/api\" }}"
        )
    };
    let mut toml = shop_toml_with(
        b.dir(),
        &repo,
        "public_url = \"https://deploy.example.com\"",
        &format!(
            r#"{api_keys}
[apps.shop.environments.review]
pull_requests = true
url = "https://{{environment}}.review.example.com"
"#
        ),
    );
    if forge == Forge::Github {
        // GitHub's token and API come with its Deployments reporting.
        toml = toml.replace(
            "github = \"acme/shop\"",
            &format!(
                "github = {{ repo = \"acme/shop\", token_env = \"FORGE_TOKEN\", api_url = \"{api}/api\" }}"
            ),
        );
    }
    let full = b
        .toml(&toml)
        .env("FORGE_TOKEN", "forge-token")
        .start()
        .await;
    let client = full.client();
    let head_ref = match forge {
        Forge::Gitlab => "refs/merge-requests/7/head",
        _ => "refs/pull/7/head",
    };
    git(&repo, &["checkout", "-q", "--detach", "main"]);
    let first = commit(&repo, "One", &[("one.txt", "1\n")]);
    git(&repo, &["update-ref", head_ref, &first]);
    let second = commit(&repo, "Two", &[("two.txt", "2\n")]);

    for (act, sha) in [("open", &first), ("update", &second), ("close", &second)] {
        git(&repo, &["update-ref", head_ref, sha]);
        let (event, body) = crate::previews::request_body(forge, 7, act, sha);
        let bytes = serde_json::to_vec(&body).unwrap();
        let (status, answer) = client
            .send(&Delivery::from_forge(forge, &event, bytes.clone()))
            .await;
        assert_eq!(status, 202, "{forge} {act}: {answer}");
        client.wait(&answer["deploy"]["id"], 60).await;
        // Each deploy's report ends with editing the comment: wait for it before the
        // next, so the comment's history is the deploys' order.
        let deadline = Instant::now() + Duration::from_secs(20);
        let want = if act == "close" {
            "torn down"
        } else {
            "deployed"
        };
        loop {
            let done = comments
                .lock()
                .unwrap()
                .iter()
                .any(|(_, b)| b.contains(want) && (act == "close" || b.contains(&sha[..12])));
            if done || Instant::now() > deadline {
                break;
            }
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let kept = comments.lock().unwrap().clone();
    assert_eq!(kept.len(), 1, "{forge}: one comment per request: {kept:?}");
    let text = &kept[0].1;
    assert!(
        text.contains("<!-- stagehand preview review-pr-7 -->"),
        "{text}"
    );
    assert!(text.contains("torn down"), "{forge}: {text}");
    let requests = seen.lock().unwrap().clone();
    let posts = requests
        .iter()
        .filter(|r| {
            r.method == "POST" && (r.path.ends_with("/notes") || r.path.ends_with("/comments"))
        })
        .count();
    assert_eq!(posts, 1, "{forge}: {requests:#?}");
    let edits: Vec<&Received> = requests
        .iter()
        .filter(|r| r.method == "PUT" || r.method == "PATCH")
        .collect();
    assert!(edits.len() >= 3, "{forge}: {requests:#?}");
    let deployed = edits
        .iter()
        .map(|r| r.body["body"].as_str().unwrap_or_default())
        .find(|b| b.contains("deployed") && b.contains(&second[..12]))
        .unwrap_or_else(|| panic!("{forge}: no edit shows the second commit deployed"));
    assert!(
        deployed.contains("https://review-pr-7.review.example.com"),
        "{deployed}"
    );
    assert!(
        deployed.contains("https://deploy.example.com/api/deploys/"),
        "{deployed}"
    );
    let (edit_method, edit_path) = match forge {
        Forge::Gitlab => (
            "PUT",
            "/api/projects/acme%2Fshop/merge_requests/7/notes/500",
        ),
        _ => ("PATCH", "/api/repos/acme/shop/issues/comments/500"),
    };
    assert!(
        edits
            .iter()
            .all(|r| r.method == edit_method && r.path == edit_path),
        "{forge}: {edits:#?}"
    );
    full.stop().await;
}

#[actix_web::test]
async fn gitlab_merge_request_comment() {
    one_comment_per_request(Forge::Gitlab).await;
}

#[actix_web::test]
async fn github_pull_request_comment() {
    one_comment_per_request(Forge::Github).await;
}

#[actix_web::test]
async fn gitea_pull_request_comment() {
    one_comment_per_request(Forge::Gitea).await;
}
