//! GitLab, Gitea, Forgejo and Bitbucket deliveries end to end: each forge's own samples
//! (`webhook-samples/<forge>/`), rewritten to a real repository's refs and commits, sent
//! with the headers that forge sends, deploy and tear down through the real pipeline.

use std::path::Path;

use serde_json::{Value, json};
use stagehand::core::forge::Forge;

use crate::support::*;

pub(crate) const ZERO: &str = "0000000000000000000000000000000000000000";

fn toml(forge: Forge) -> impl FnOnce(&Path, &Path) -> String {
    move |dir, repo| {
        shop_toml(
            dir,
            repo,
            &format!(
                r#"forge = "{forge}"
repository = "acme/shop"
shared = ["storage/"]

[apps.shop.environments.staging]
branch = "develop"

[apps.shop.environments.preview]
branch = "feature/*"

[apps.shop.environments.releases]
tag = "v*"
"#
            ),
        )
    }
}

fn forge_sample(forge: Forge, name: &str) -> Value {
    sample(&format!("{forge}/{name}"))
}

/// What a delivery is about, in forge-neutral terms.
pub(crate) struct Change<'a> {
    pub(crate) git_ref: &'a str,
    pub(crate) before: &'a str,
    /// The new value of the ref (a tag object for an annotated tag); zeros for a deletion.
    pub(crate) after: &'a str,
    /// The commit the ref now names (the peeled tag).
    pub(crate) commit: &'a str,
    pub(crate) message: &'a str,
}

/// The forge's event name and body for `change`, built from its samples.
pub(crate) fn delivery(forge: Forge, change: &Change<'_>) -> (String, Value) {
    let deleted = change.after == ZERO;
    let tag = change.git_ref.starts_with("refs/tags/");
    match forge {
        Forge::Gitlab => {
            let (event, file) = match (tag, deleted) {
                (true, _) => ("Tag Push Hook", "tag-push.json"),
                (false, true) => ("Push Hook", "push-delete-branch.json"),
                (false, false) => ("Push Hook", "push.json"),
            };
            let mut body = forge_sample(forge, file);
            body["ref"] = json!(change.git_ref);
            body["before"] = json!(change.before);
            body["after"] = json!(change.after);
            body["project"]["path_with_namespace"] = json!("acme/shop");
            // "Checkout sha is nil when we remove branch or tag" (GitLab's
            // `lib/gitlab/data_builder/push.rb`).
            body["checkout_sha"] = if deleted {
                Value::Null
            } else {
                json!(change.commit)
            };
            if deleted {
                body["commits"] = json!([]);
            }
            if let Some(last) = body["commits"].as_array_mut().and_then(|c| c.last_mut()) {
                last["id"] = json!(change.commit);
                last["message"] = json!(change.message);
            }
            (event.into(), body)
        }
        Forge::Gitea | Forge::Forgejo => {
            if deleted && !tag {
                // A branch deletion is announced by `delete` only.
                return ("delete".into(), delete_event(forge, change.git_ref));
            }
            let mut body = forge_sample(forge, if tag { "push-tag.json" } else { "push.json" });
            body["ref"] = json!(change.git_ref);
            body["before"] = json!(change.before);
            body["after"] = json!(change.after);
            if deleted {
                // A deleted tag's push carries no commits (`services/repository/push.go`
                // sends it with `NewPushCommits()`), so no head commit either.
                body["head_commit"] = Value::Null;
                body["commits"] = json!([]);
            } else {
                body["head_commit"]["id"] = json!(change.commit);
                body["head_commit"]["message"] = json!(change.message);
            }
            body["repository"]["full_name"] = json!("acme/shop");
            ("push".into(), body)
        }
        Forge::Bitbucket => {
            let file = match (tag, deleted) {
                (true, _) => "push-tag.json",
                (false, true) => "push-delete-branch.json",
                (false, false) => "push.json",
            };
            let mut body = forge_sample(forge, file);
            if tag && deleted {
                // The tag sample's change turned around: the tag was, and is no more.
                let c = &mut body["push"]["changes"][0];
                c["old"] = c["new"].take();
                c["created"] = json!(false);
                c["closed"] = json!(true);
            }
            body["repository"]["full_name"] = json!("acme/shop");
            let short = change
                .git_ref
                .trim_start_matches("refs/heads/")
                .trim_start_matches("refs/tags/");
            let c = &mut body["push"]["changes"][0];
            if !c["old"].is_null() {
                c["old"]["name"] = json!(short);
                c["old"]["target"]["hash"] = json!(change.before);
            }
            if !c["new"].is_null() {
                c["new"]["name"] = json!(short);
                // Bitbucket names the commit a tag points at, never the tag object.
                c["new"]["target"]["hash"] = json!(change.commit);
                c["new"]["target"]["message"] = json!(change.message);
            }
            ("repo:push".into(), body)
        }
        Forge::Github => unreachable!("GitHub has its own tests"),
    }
}

/// Gitea's or Forgejo's `delete` event for `git_ref`, from the forge's sample. Gitea names
/// the ref short (`services/webhook/notifier.go` `DeleteRef`: `refFullName.ShortName()`),
/// Forgejo in full (its `DeleteRef`: `refFullName.String()`).
pub(crate) fn delete_event(forge: Forge, git_ref: &str) -> Value {
    let mut body = forge_sample(forge, "delete-branch.json");
    let (short, kind) = match git_ref.strip_prefix("refs/tags/") {
        Some(tag) => (tag, "tag"),
        None => (git_ref.trim_start_matches("refs/heads/"), "branch"),
    };
    body["ref"] = json!(if forge == Forge::Gitea {
        short
    } else {
        git_ref
    });
    body["ref_type"] = json!(kind);
    body["repository"]["full_name"] = json!("acme/shop");
    body
}

async fn send(s: &Harness, forge: Forge, change: &Change<'_>) -> (u16, Value, String) {
    let (event, body) = delivery(forge, change);
    let delivery = Delivery::from_forge(forge, &event, serde_json::to_vec(&body).unwrap());
    let (status, answer) = s.send(&delivery).await;
    (status, answer, delivery.delivery_id)
}

/// Sends `change` and waits for the deploy it must start.
async fn deploy(s: &Harness, forge: Forge, change: &Change<'_>) -> Value {
    let (status, answer, _) = send(s, forge, change).await;
    assert_eq!(status, 202, "{forge}: {answer}");
    s.wait(&answer["deploy"]["id"], 60).await
}

/// Push, redelivery, tag, temporary environment and its teardown, `[skip deploy]`, and
/// out-of-order, for one forge.
async fn lifecycle(forge: Forge) {
    let s = Harness::builder().config(toml(forge)).start().await;
    let old = git(&s.repo, &["rev-parse", "develop"]);
    git(&s.repo, &["checkout", "-q", "develop"]);
    let new = commit(&s.repo, "Add cart totals", &[("cart.txt", "totals\n")]);
    let push = Change {
        git_ref: "refs/heads/develop",
        before: &old,
        after: &new,
        commit: &new,
        message: "Add cart totals",
    };

    // A push deploys; the same delivery again answers with the first deploy.
    let (event, body) = delivery(forge, &push);
    let bytes = serde_json::to_vec(&body).unwrap();
    let first_delivery = Delivery::from_forge(forge, &event, bytes);
    let (status, first) = s.send(&first_delivery).await;
    assert_eq!(status, 202, "{forge}: {first}");
    let done = s.wait(&first["deploy"]["id"], 60).await;
    assert_eq!(done["status"], "succeeded", "{forge}: {done}");
    assert_eq!(done["environment"], "staging");
    assert_eq!(s.revision("staging").as_deref(), Some(new.as_str()));
    let (status, again) = s.send(&first_delivery).await;
    assert_eq!(status, 200, "{forge}: {again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["deploy"]["id"], first["deploy"]["id"]);

    // An older commit arriving late does not replace the live one.
    let late = Change {
        before: ZERO,
        after: &old,
        commit: &old,
        message: "Executable and symlink",
        ..push
    };
    let skipped = deploy(&s, forge, &late).await;
    assert_eq!(skipped["status"], "skipped", "{forge}: {skipped}");
    assert_eq!(s.revision("staging").as_deref(), Some(new.as_str()));

    // [skip deploy] in the head commit's message records without deploying.
    let skip_sha = commit(&s.repo, "Fix typo [skip deploy]", &[("typo.txt", "x\n")]);
    let skip = Change {
        before: &new,
        after: &skip_sha,
        commit: &skip_sha,
        message: "Fix typo [skip deploy]",
        ..push
    };
    let (status, answer, _) = send(&s, forge, &skip).await;
    assert_eq!(status, 202, "{forge}: {answer}");
    assert_eq!(answer["deploy"]["status"], "skipped", "{forge}: {answer}");
    assert!(
        answer["deploy"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("[skip deploy]"),
        "{forge}: {answer}"
    );

    // An annotated tag deploys the commit it names.
    git(
        &s.repo,
        &["tag", "-a", "v1.2.0", "-m", "Release 1.2.0", &new],
    );
    let tag_object = git(&s.repo, &["rev-parse", "v1.2.0"]);
    let tag = Change {
        git_ref: "refs/tags/v1.2.0",
        before: ZERO,
        after: &tag_object,
        commit: &new,
        message: "Add cart totals",
    };
    let released = deploy(&s, forge, &tag).await;
    assert_eq!(released["status"], "succeeded", "{forge}: {released}");
    assert_eq!(released["environment"], "releases");
    assert_eq!(s.revision("releases").as_deref(), Some(new.as_str()));

    // Deleting the tag tears nothing down: only a branch's environment goes with it.
    // Gitea and Forgejo say it twice, a push to zeros and a `delete`.
    let tag_gone = Change {
        before: &tag_object,
        after: ZERO,
        commit: ZERO,
        message: "",
        ..tag
    };
    let mut announced = vec![delivery(forge, &tag_gone)];
    if matches!(forge, Forge::Gitea | Forge::Forgejo) {
        announced.push(("delete".into(), delete_event(forge, tag_gone.git_ref)));
    }
    for (event, body) in announced {
        let bytes = serde_json::to_vec(&body).unwrap();
        let (status, answer) = s.send(&Delivery::from_forge(forge, &event, bytes)).await;
        assert_eq!(status, 200, "{forge} {event}: {answer}");
        assert!(
            answer["ignored"]
                .as_str()
                .unwrap_or_default()
                .contains("v1.2.0"),
            "{forge} {event}: {answer}"
        );
    }
    assert_eq!(s.revision("releases").as_deref(), Some(new.as_str()));

    // A feature branch gets a temporary environment; deleting the branch tears it down.
    git(&s.repo, &["checkout", "-q", "-b", "feature/New_Cart!"]);
    let feature = commit(&s.repo, "Cart", &[("new-cart.txt", "new\n")]);
    let branch = Change {
        git_ref: "refs/heads/feature/New_Cart!",
        before: ZERO,
        after: &feature,
        commit: &feature,
        message: "Cart",
    };
    let preview = deploy(&s, forge, &branch).await;
    assert_eq!(preview["status"], "succeeded", "{forge}: {preview}");
    assert_eq!(preview["environment"], "preview-feature-new-cart");
    assert!(s.root.join("preview-feature-new-cart/current").exists());
    let deletion = Change {
        before: &feature,
        after: ZERO,
        commit: ZERO,
        message: "",
        ..branch
    };
    let teardown = deploy(&s, forge, &deletion).await;
    assert_eq!(teardown["status"], "succeeded", "{forge}: {teardown}");
    assert_eq!(teardown["trigger"], "teardown", "{forge}: {teardown}");
    assert!(!s.root.join("preview-feature-new-cart").exists());
    assert!(s.root.join("staging/current/REVISION").exists());

    // The wrong secret is 401 and another repository 403; neither is recorded.
    let (event, body) = delivery(forge, &push);
    let bytes = serde_json::to_vec(&body).unwrap();
    let (status, answer) = s
        .send(&Delivery::from_forge(forge, &event, bytes.clone()).secret("not the secret"))
        .await;
    assert_eq!(status, 401, "{forge}: {answer}");
    let mut other = body.clone();
    match forge {
        Forge::Gitlab => other["project"]["path_with_namespace"] = json!("evil/shop"),
        _ => other["repository"]["full_name"] = json!("evil/shop"),
    }
    let bytes = serde_json::to_vec(&other).unwrap();
    let (status, answer) = s
        .send(&Delivery::from_forge(forge, &event, bytes.clone()))
        .await;
    assert_eq!(status, 403, "{forge}: {answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or_default()
            .contains("evil/shop"),
        "{forge}: {answer}"
    );
    let (_, deploys) = s.get("/api/deploys?limit=50").await;
    assert_eq!(
        deploys["deploys"].as_array().unwrap().len(),
        6,
        "{forge}: {deploys}"
    );
    s.stop().await;
}

#[actix_web::test]
async fn gitlab_push_tag_teardown_redelivery_and_refusals() {
    lifecycle(Forge::Gitlab).await;
}

#[actix_web::test]
async fn gitea_push_tag_teardown_redelivery_and_refusals() {
    lifecycle(Forge::Gitea).await;
}

#[actix_web::test]
async fn forgejo_push_tag_teardown_redelivery_and_refusals() {
    lifecycle(Forge::Forgejo).await;
}

#[actix_web::test]
async fn bitbucket_push_tag_teardown_redelivery_and_refusals() {
    lifecycle(Forge::Bitbucket).await;
}

/// GitLab retries with the same `Idempotency-Key` but a new `X-Gitlab-Webhook-UUID`:
/// the key, not the per-attempt UUID, is what makes a redelivery.
#[actix_web::test]
async fn gitlab_retries_are_known_by_their_idempotency_key() {
    let b = Harness::builder();
    let toml = config_toml(b.dir()).replace(
        "github = \"acme/shop\"",
        "forge = \"gitlab\"\ngithub = \"acme/shop\"",
    );
    let server = b.toml(&toml).without_runner().start().await;
    let (_, body) = delivery(
        Forge::Gitlab,
        &Change {
            git_ref: "refs/heads/develop",
            before: ZERO,
            after: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
            commit: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
            message: "fixed readme",
        },
    );
    let bytes = serde_json::to_vec(&body).unwrap();
    let attempt = |webhook_uuid: &str| {
        let mut delivery = Delivery::from_forge(Forge::Gitlab, "Push Hook", bytes.clone())
            .header("X-Gitlab-Webhook-UUID", Some(webhook_uuid))
            .header(
                "X-Gitlab-Event-UUID",
                Some("13792a34-cac6-4fda-95a8-c58e00a3954e"),
            );
        delivery.delivery_id = "908a6d9e-45fd-46c8-97e6-c4f350f219dd".into();
        delivery
    };
    let (status, first) = server
        .send(&attempt("2ffc8d7a-0f2b-4c1c-8a3e-6d6b8c0e1a01"))
        .await;
    assert_eq!(status, 202, "{first}");
    assert!(!first["deploy"]["id"].is_null(), "{first}");
    let (status, retry) = server
        .send(&attempt("7b1e6f3c-5a9d-4e2f-b8c7-1d0a9e8f7c02"))
        .await;
    assert_eq!(status, 200, "{retry}");
    assert_eq!(retry["duplicate"], true);
    assert_eq!(retry["deploy"]["id"], first["deploy"]["id"]);

    // A GitLab too old to send any delivery id: the same bytes again are a retry.
    let mut other = body.clone();
    other["ref"] = json!("refs/heads/feature/old-gitlab");
    let old_bytes = serde_json::to_vec(&other).unwrap();
    let old_gitlab =
        Delivery::from_forge(Forge::Gitlab, "Push Hook", old_bytes).header("Idempotency-Key", None);
    let (status, first) = server.send(&old_gitlab).await;
    assert_eq!(status, 202, "{first}");
    assert!(!first["deploy"]["id"].is_null(), "{first}");
    let (status, again) = server.send(&old_gitlab).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["duplicate"], true, "{again}");
    assert_eq!(again["deploy"]["id"], first["deploy"]["id"]);
    server.stop().await;
}

/// One Bitbucket push of several refs: each change is routed on its own, the answer
/// lists them all, and a redelivery finds every one.
#[actix_web::test]
async fn a_bitbucket_push_of_several_refs_routes_each_change() {
    let s = Harness::builder()
        .config(toml(Forge::Bitbucket))
        .start()
        .await;
    let develop = git(&s.repo, &["rev-parse", "develop"]);
    let main = git(&s.repo, &["rev-parse", "main"]);
    git(&s.repo, &["branch", "feature/two", "main"]);
    let (_, mut body) = delivery(
        Forge::Bitbucket,
        &Change {
            git_ref: "refs/heads/develop",
            before: ZERO,
            after: &develop,
            commit: &develop,
            message: "Executable and symlink",
        },
    );
    let (_, second) = delivery(
        Forge::Bitbucket,
        &Change {
            git_ref: "refs/heads/feature/two",
            before: ZERO,
            after: &main,
            commit: &main,
            message: "Executable and symlink",
        },
    );
    let (_, unmapped) = delivery(
        Forge::Bitbucket,
        &Change {
            git_ref: "refs/heads/elsewhere",
            before: ZERO,
            after: &main,
            commit: &main,
            message: "x",
        },
    );
    body["push"]["changes"] = json!([
        body["push"]["changes"][0],
        unmapped["push"]["changes"][0],
        second["push"]["changes"][0]
    ]);
    let bytes = serde_json::to_vec(&body).unwrap();
    let several = Delivery::from_forge(Forge::Bitbucket, "repo:push", bytes).id("req-1");
    let (status, answer) = s.send(&several).await;
    assert_eq!(status, 202, "{answer}");
    let deploys = answer["deploys"].as_array().unwrap().clone();
    assert_eq!(deploys.len(), 2, "{answer}");
    assert_eq!(answer["deploy"], deploys[0]);
    assert_eq!(deploys[0]["environment"], "staging");
    assert_eq!(deploys[1]["environment"], "preview-feature-two");
    assert!(
        answer["ignored"][0]
            .as_str()
            .unwrap_or_default()
            .contains("elsewhere"),
        "{answer}"
    );
    for d in &deploys {
        assert_eq!(s.wait(&d["id"], 60).await["status"], "succeeded");
    }
    let (status, again) = s.send(&several).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["duplicate"], true);
    let ids = |v: &Value| -> Vec<Value> {
        v["deploys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].clone())
            .collect()
    };
    assert_eq!(ids(&again), ids(&answer));
    s.stop().await;
}

/// A forge's other events are answered 200 with the reason, never deployed.
#[actix_web::test]
async fn events_a_forge_sends_but_stagehand_does_not_act_on() {
    let cases = [
        (Forge::Gitlab, "Pipeline Hook", "Pipeline Hook"),
        (Forge::Gitea, "create", "`create` is not acted on"),
        (Forge::Forgejo, "issues", "`issues` is not handled"),
        (
            Forge::Bitbucket,
            "pullrequest:approved",
            "pullrequest:approved",
        ),
    ];
    for (forge, event, needle) in cases {
        let b = Harness::builder();
        let toml = config_toml(b.dir()).replace(
            "github = \"acme/shop\"",
            &format!("forge = \"{forge}\"\ngithub = \"acme/shop\""),
        );
        let server = b.toml(&toml).without_runner().start().await;
        let (status, answer) = server
            .send(&Delivery::from_forge(forge, event, b"{}".to_vec()))
            .await;
        assert_eq!(status, 200, "{forge}: {answer}");
        assert!(
            answer["ignored"]
                .as_str()
                .unwrap_or_default()
                .contains(needle),
            "{forge}: {answer}"
        );
        server.stop().await;
    }
}

async fn hook_send(url: &str, config: &Path, extra: &[&str]) -> (bool, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_stagehand"));
    cmd.args(["hook", "send", "shop", "--config"])
        .arg(config)
        .args(extra)
        .env("STAGEHAND_SERVER", url)
        .env("SHOP_WEBHOOK_SECRET", SECRET)
        .env("NO_COLOR", "1");
    let out = actix_web::rt::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `stagehand hook send` speaks the app's forge: its sample, its event name, its
/// authentication header, and the branch's real head; `--message`, `--tag` and
/// `--delete` in that forge's shape deploy, release and tear down for real. `--forge`
/// overrides it.
#[actix_web::test]
async fn hook_send_sends_as_each_forge() {
    for forge in [
        Forge::Gitlab,
        Forge::Gitea,
        Forge::Forgejo,
        Forge::Bitbucket,
    ] {
        let s = Harness::builder().config(toml(forge)).start().await;
        let config = s.config_file();
        let head = git(&s.repo, &["rev-parse", "develop"]);
        let (ok, out) = hook_send(&s.url, &config, &["--branch", "develop"]).await;
        assert!(ok, "{forge}: {out}");
        assert!(out.starts_with("202"), "{forge}: {out}");
        assert!(
            out.contains(&head),
            "{forge}: the real head was sent: {out}"
        );
        assert!(
            out.contains("\"environment\": \"staging\""),
            "{forge}: {out}"
        );

        // A chosen message, a tag and a branch's deletion, each in this forge's shape.
        let (ok, out) = hook_send(
            &s.url,
            &config,
            &["--branch", "develop", "--message", "Docs [skip deploy]"],
        )
        .await;
        assert!(ok && out.contains("[skip deploy]"), "{forge}: {out}");
        git(
            &s.repo,
            &["tag", "-a", "v9.9.9", "-m", "Release", "develop"],
        );
        let sent = |out: String| -> Value {
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{forge}: {e}: {out}"))
        };
        let (ok, out) = hook_send(&s.url, &config, &["--tag", "v9.9.9", "--json"]).await;
        assert!(ok, "{forge}: {out}");
        let released = s.wait(&sent(out)["deploy"]["id"], 60).await;
        assert_eq!(released["status"], "succeeded", "{forge}: {released}");
        assert_eq!(released["environment"], "releases", "{forge}: {released}");
        assert_eq!(s.revision("releases").as_deref(), Some(head.as_str()));
        git(&s.repo, &["branch", "feature/hs", "develop"]);
        let (ok, out) = hook_send(&s.url, &config, &["--branch", "feature/hs", "--json"]).await;
        assert!(ok, "{forge}: {out}");
        let preview = s.wait(&sent(out)["deploy"]["id"], 60).await;
        assert_eq!(preview["environment"], "preview-feature-hs", "{forge}");
        assert!(s.root.join("preview-feature-hs/current").exists());
        let (ok, out) = hook_send(
            &s.url,
            &config,
            &["--branch", "feature/hs", "--delete", "--json"],
        )
        .await;
        assert!(ok, "{forge}: {out}");
        let teardown = s.wait(&sent(out)["deploy"]["id"], 60).await;
        assert_eq!(teardown["trigger"], "teardown", "{forge}: {teardown}");
        assert_eq!(teardown["status"], "succeeded", "{forge}: {teardown}");
        assert!(!s.root.join("preview-feature-hs").exists());

        // Sent as another forge, the delivery lacks this forge's header: refused.
        let other = if forge == Forge::Gitlab {
            "gitea"
        } else {
            "gitlab"
        };
        let (ok, out) =
            hook_send(&s.url, &config, &["--branch", "develop", "--forge", other]).await;
        assert!(!ok, "{forge} as {other}: {out}");
        assert!(out.starts_with("401"), "{forge} as {other}: {out}");
        s.stop().await;
    }
}
