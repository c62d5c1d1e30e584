//! Commit statuses on GitLab, Gitea, Forgejo and Bitbucket, checked against a fake forge
//! API on 127.0.0.1 that records every request (method, path, headers, JSON body).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
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

/// A comment the fake forge keeps.
#[derive(Debug, Clone)]
struct KeptComment {
    id: u64,
    body: String,
    /// Bitbucket lists deleted comments too, flagged.
    deleted: bool,
}

type Kept = Arc<Mutex<Vec<KeptComment>>>;

/// Bitbucket's comments a page in the fake (its real default is 10): small, so that
/// stagehand's comment lies past the first page and `next` must be followed.
const BITBUCKET_PAGE: usize = 2;

/// The text of a comment request's body: `body` (GitHub, GitLab, Gitea, Forgejo) or
/// Bitbucket's `content.raw`.
fn comment_text(body: &Value) -> &str {
    body["body"]
        .as_str()
        .or_else(|| body["content"]["raw"].as_str())
        .unwrap_or_default()
}

/// A forge API that keeps comments: lists them (an array; for Bitbucket, paginated
/// `{values, next}` pages with deleted comments flagged), creates them with ids from 500
/// and edits them in place; anything else (statuses) is answered `201 {}`. It starts
/// with `seeded` comments already on the request.
fn fake_comment_api(seeded: Vec<KeptComment>) -> (String, Seen, Kept) {
    let comments: Kept = Arc::new(Mutex::new(seeded));
    let kept = comments.clone();
    // The fake's own address, for Bitbucket's `next` links: known once it listens.
    let base: Arc<Mutex<String>> = Arc::default();
    let base_in = base.clone();
    let (url, seen) = fake_api(move |r| {
        let (route, query) = r.path.split_once('?').unwrap_or((&r.path, ""));
        let is_list = route.contains("/notes") || route.contains("/comments");
        let bitbucket = route.contains("/pullrequests/");
        let id_in_path = route
            .rsplit('/')
            .next()
            .and_then(|last| last.parse::<u64>().ok());
        let mut kept = kept.lock().unwrap();
        let answer = match (r.method.as_str(), is_list, id_in_path) {
            ("GET", true, _) if bitbucket => {
                let page: usize = query
                    .strip_prefix("page=")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(1);
                let values: Vec<Value> = kept
                    .iter()
                    .skip((page - 1) * BITBUCKET_PAGE)
                    .take(BITBUCKET_PAGE)
                    .map(|c| {
                        json!({
                            "id": c.id,
                            "type": "pullrequest_comment",
                            "deleted": c.deleted,
                            "content": {"raw": c.body, "markup": "markdown", "html": "", "type": "rendered"},
                        })
                    })
                    .collect();
                let mut answer = json!({
                    "pagelen": BITBUCKET_PAGE,
                    "size": kept.len(),
                    "page": page,
                    "values": values,
                });
                if page * BITBUCKET_PAGE < kept.len() {
                    let base = base_in.lock().unwrap().clone();
                    answer["next"] = json!(format!("{base}{route}?page={}", page + 1));
                }
                answer
            }
            ("GET", true, _) => json!(
                kept.iter()
                    .map(|c| json!({"id": c.id, "body": c.body}))
                    .collect::<Vec<_>>()
            ),
            ("POST", true, _) => {
                let id = 500 + kept.iter().filter(|c| c.id >= 500).count() as u64;
                kept.push(KeptComment {
                    id,
                    body: comment_text(&r.body).to_owned(),
                    deleted: false,
                });
                json!({ "id": id })
            }
            ("PUT" | "PATCH", true, Some(id)) => {
                if let Some(entry) = kept.iter_mut().find(|c| c.id == id) {
                    entry.body = comment_text(&r.body).to_owned();
                }
                json!({ "id": id })
            }
            _ => json!({}),
        };
        (201, answer)
    });
    *base.lock().unwrap() = url.clone();
    (url, seen, comments)
}

/// A request's preview keeps one comment: created on the first deploy, edited by the
/// next and by the teardown, never posted twice. The request already has reviewers'
/// comments (and on Bitbucket a deleted comment of stagehand's, still listed), so
/// stagehand's own is found among others and, on Bitbucket, past the first page.
async fn one_comment_per_request(forge: Forge) {
    let human = |id: u64| KeptComment {
        id,
        body: format!("Looks good ({id})"),
        deleted: false,
    };
    let mut seeded = vec![human(1), human(2), human(3)];
    if forge == Forge::Bitbucket {
        seeded.push(KeptComment {
            id: 4,
            body: "[//]: # (stagehand preview review-pr-7)\nan old comment, deleted".into(),
            deleted: true,
        });
    }
    let (api, seen, comments) = fake_comment_api(seeded);
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
        // Bitbucket keeps no request refs: its previews deploy the source branch.
        Forge::Bitbucket => "refs/heads/topic-7",
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
            let done =
                comments.lock().unwrap().iter().any(|c| {
                    c.body.contains(want) && (act == "close" || c.body.contains(&sha[..12]))
                });
            if done || Instant::now() > deadline {
                break;
            }
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let marker = if forge == Forge::Bitbucket {
        "[//]: # (stagehand preview review-pr-7)"
    } else {
        "<!-- stagehand preview review-pr-7 -->"
    };
    let kept = comments.lock().unwrap().clone();
    let ours: Vec<&KeptComment> = kept
        .iter()
        .filter(|c| c.body.contains(marker) && !c.deleted)
        .collect();
    assert_eq!(ours.len(), 1, "{forge}: one comment per request: {kept:#?}");
    assert_eq!(ours[0].id, 500, "{forge}: {kept:#?}");
    let text = &ours[0].body;
    assert!(text.starts_with(marker), "{text}");
    assert!(text.contains("torn down"), "{forge}: {text}");
    assert!(
        kept.iter()
            .all(|c| c.id >= 500 || c.body.starts_with("Looks good") || c.deleted),
        "{forge}: others' comments untouched: {kept:#?}"
    );
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
        .map(|r| comment_text(&r.body))
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
        Forge::Bitbucket => (
            "PUT",
            "/api/repositories/acme/shop/pullrequests/7/comments/500",
        ),
        _ => ("PATCH", "/api/repos/acme/shop/issues/comments/500"),
    };
    assert!(
        edits
            .iter()
            .all(|r| r.method == edit_method && r.path == edit_path),
        "{forge}: {edits:#?}"
    );
    let (auth_header, auth_value) = match forge {
        Forge::Gitlab => ("private-token", "forge-token"),
        Forge::Gitea | Forge::Forgejo => ("authorization", "token forge-token"),
        Forge::Github | Forge::Bitbucket => ("authorization", "Bearer forge-token"),
    };
    assert!(
        requests
            .iter()
            .all(|r| r.headers.get(auth_header).map(String::as_str) == Some(auth_value)),
        "{forge}: {requests:#?}"
    );
    if forge == Forge::Bitbucket {
        // The first deploy read every page (its comment was not there yet); the later
        // ones followed `next` to the page that holds it.
        let pages: Vec<&str> = requests
            .iter()
            .filter(|r| r.method == "GET")
            .map(|r| r.path.as_str())
            .collect();
        assert!(
            pages.contains(&"/api/repositories/acme/shop/pullrequests/7/comments")
                && pages.contains(&"/api/repositories/acme/shop/pullrequests/7/comments?page=3"),
            "{pages:#?}"
        );
        let created = requests
            .iter()
            .find(|r| r.method == "POST" && r.path.ends_with("/comments"))
            .map(|r| r.body.clone())
            .unwrap_or_default();
        assert!(created["content"]["raw"].is_string(), "{created}");
    }
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

#[actix_web::test]
async fn forgejo_pull_request_comment() {
    one_comment_per_request(Forge::Forgejo).await;
}

#[actix_web::test]
async fn bitbucket_pull_request_comment() {
    one_comment_per_request(Forge::Bitbucket).await;
}
