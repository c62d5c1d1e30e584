//! What a verified delivery means: the decision between deploying, tearing down,
//! recording a ping and ignoring, with the reason an operator will read. Pure: it
//! sees the app's config and the decoded event, and returns an [`Intent`] for the
//! store. The HTTP edge does the reading and the answering.

use crate::config::AppConfig;
use crate::core::deploy::{DeployStatus, ReasonCode, Trigger};
use crate::core::event::{Event, GitRef, PullRequest, PullRequestAction, Push};
use crate::store::{Intent, NewDeploy, Target};

pub use crate::core::event::SKIP_MARKER;

pub fn decide(app: &AppConfig, event: &Event) -> Intent {
    match event {
        Event::Ping { .. } => Intent::Ping,
        Event::Other { name } => ignore(format!(
            "event `{name}` is not handled: stagehand acts on push, delete and ping"
        )),
        Event::Ignored { reason } => ignore(reason.clone()),
        Event::PullRequest { pr, .. } => pull_request(app, pr),
        Event::Push { push, .. } if push.deleted => deleted(app, &push.git_ref),
        Event::Push { push, .. } => pushed(app, push),
        Event::Delete { git_ref, .. } => deleted(app, git_ref),
    }
}

fn ignore(reason: String) -> Intent {
    Intent::Ignore { reason }
}

fn describe(git_ref: &GitRef) -> String {
    match git_ref {
        GitRef::Branch(b) => format!("branch `{b}`"),
        GitRef::Tag(t) => format!("tag `{t}`"),
        GitRef::Other(r) => format!("ref `{r}`"),
    }
}

fn pushed(app: &AppConfig, push: &Push) -> Intent {
    let Some(route) = app.routing.route(&push.git_ref) else {
        return ignore(format!(
            "no environment of `{}` is fed by {}",
            app.name,
            describe(&push.git_ref)
        ));
    };
    let Some(env) = app.environment(&route.configured) else {
        return ignore(format!(
            "environment `{}` is not configured",
            route.configured
        ));
    };
    let skip_reason = if !env.auto_deploy {
        Some((
            ReasonCode::AutoDeployOff,
            format!(
                "auto_deploy is off for `{}`: release it with `stagehand deploy` or `stagehand promote`",
                env.name
            ),
        ))
    } else if push
        .head_commit_message
        .as_deref()
        .is_some_and(|m| m.contains(SKIP_MARKER))
    {
        Some((
            ReasonCode::SkipMarker,
            format!("the head commit message contains {SKIP_MARKER}"),
        ))
    } else {
        None
    };
    let target = match route.temporary_branch {
        Some(branch) => Target::Temporary {
            branch,
            reserved: app.environments.keys().map(|n| n.to_string()).collect(),
            limit: app
                .environment(&route.configured)
                .and_then(|e| e.max_environments),
            base: route.configured,
        },
        None => Target::Fixed(route.configured),
    };
    // A tag push's `after` is the tag object for an annotated tag; its head commit is
    // what gets deployed, so that is what the answer and the history show.
    let commit = match (&push.git_ref, &push.head_commit_id) {
        (GitRef::Tag(_), Some(head)) => head.to_string(),
        _ => push.after.to_string(),
    };
    let (reason_code, reason) = skip_reason.unzip();
    Intent::Deploy(NewDeploy {
        commit: Some(commit),
        forced: push.forced,
        status: if reason.is_some() {
            DeployStatus::Skipped
        } else {
            DeployStatus::Queued
        },
        reason,
        reason_code,
        message: push
            .head_commit_message
            .as_deref()
            .and_then(|m| m.lines().next())
            .map(str::to_owned),
        author: push.head_commit_author.clone(),
        ..NewDeploy::queued(target, Trigger::Push, push.git_ref.full())
    })
}

/// A pull/merge request: its preview is deployed on open and on new commits, torn down
/// on close or merge. Commits from a fork are someone else's code running on this
/// machine, so they are built only where `allow_forks` says so.
fn pull_request(app: &AppConfig, pr: &PullRequest) -> Intent {
    let key = pr.environment_key();
    let Some(route) = app.routing.route_pull_request(&pr.base_branch, key.clone()) else {
        return ignore(format!(
            "no environment of `{}` previews pull requests into `{}`",
            app.name, pr.base_branch
        ));
    };
    let Some(env) = app.environment(&route.configured) else {
        return ignore(format!(
            "environment `{}` is not configured",
            route.configured
        ));
    };
    if pr.action == PullRequestAction::Closed {
        return Intent::Teardown {
            base: route.configured,
            branch: key,
            git_ref: pr.head_ref.clone(),
        };
    }
    // A maintainer vouches for a fork's request by giving it the environment's label.
    let approved_by_label = pr.fork.is_some()
        && env
            .fork_label
            .as_ref()
            .is_some_and(|label| pr.labels.iter().any(|l| l == label));
    if pr.action == PullRequestAction::Relabeled && !approved_by_label {
        return ignore(format!(
            "the labels of pull request #{} changed: nothing to deploy",
            pr.number
        ));
    }
    if let Some(fork) = pr.fork.as_deref()
        && !env.allow_forks
        && !approved_by_label
    {
        let label_hint = env
            .fork_label
            .as_ref()
            .map(|l| format!(" or a maintainer gives the request the label {l:?}"))
            .unwrap_or_default();
        return ignore(format!(
            "pull request #{} comes from the fork {fork:?}: forks run untrusted code, so \
             they are not built unless `allow_forks = true` is set on `{}`{label_hint}",
            pr.number, env.name
        ));
    }
    let skip_reason = (!env.auto_deploy).then(|| {
        format!(
            "auto_deploy is off for `{}`: release it with `stagehand deploy`",
            env.name
        )
    });
    Intent::Deploy(NewDeploy {
        commit: Some(pr.head.clone()),
        status: if skip_reason.is_some() {
            DeployStatus::Skipped
        } else {
            DeployStatus::Queued
        },
        reason: skip_reason,
        ..NewDeploy::queued(
            Target::Temporary {
                branch: key,
                reserved: app.environments.keys().map(|n| n.to_string()).collect(),
                limit: app
                    .environment(&route.configured)
                    .and_then(|e| e.max_environments),
                base: route.configured,
            },
            Trigger::Push,
            pr.head_ref.clone(),
        )
    })
}

fn deleted(app: &AppConfig, git_ref: &GitRef) -> Intent {
    let GitRef::Branch(branch) = git_ref else {
        return ignore(format!(
            "{} was deleted: deletions only tear down branch environments",
            describe(git_ref)
        ));
    };
    let route = app.routing.route(git_ref);
    let Some(route) = route.filter(|r| r.temporary_branch.is_some()) else {
        return ignore(format!(
            "{} was deleted; it feeds no temporary environment, so nothing is torn down",
            describe(git_ref)
        ));
    };
    if app
        .environment(&route.configured)
        .is_some_and(|e| e.protected)
    {
        return ignore(format!(
            "`{}` is protected: never torn down",
            route.configured
        ));
    }
    Intent::Teardown {
        base: route.configured,
        branch: branch.clone(),
        git_ref: git_ref.full(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use super::*;
    use crate::config::Config;
    use crate::core::ids::CommitSha;

    fn app() -> AppConfig {
        let toml = r#"
            [apps.shop]
            repo = "/r"
            github = "acme/shop"
            secret_env = "S"
            root = "/srv/shop"
            [apps.shop.environments.production]
            branch = "main"
            [apps.shop.environments.staging]
            branch = "develop"
            auto_deploy = false
            [apps.shop.environments.preview]
            branch = "feature/*"
            [apps.shop.environments.releases]
            tag = "v*"
            [apps.shop.environments.review]
            pull_requests = "main"
            fork_label = "preview ok"
        "#;
        let env = HashMap::from([("S".to_string(), "x".to_string())]);
        let config =
            Config::from_sources(Path::new("t.toml"), toml, &env, &|_| Ok(String::new())).unwrap();
        config.apps.into_values().next().unwrap()
    }

    fn push(full_ref: &str, deleted: bool, message: &str) -> Event {
        let sha = CommitSha::parse(&"a".repeat(40)).unwrap();
        Event::Push {
            repository: "acme/shop".into(),
            push: Push {
                git_ref: GitRef::from_full(full_ref),
                before: sha.clone(),
                after: sha,
                created: false,
                deleted,
                forced: false,
                head_commit_message: Some(message.into()),
                head_commit_id: None,
                head_commit_author: None,
                pusher: None,
            },
        }
    }

    fn pr(number: u64, action: PullRequestAction, base: &str, fork: Option<&str>) -> Event {
        labelled(number, action, base, fork, &[])
    }

    fn labelled(
        number: u64,
        action: PullRequestAction,
        base: &str,
        fork: Option<&str>,
        labels: &[&str],
    ) -> Event {
        Event::PullRequest {
            repository: "acme/shop".into(),
            pr: PullRequest {
                number,
                action,
                head: "b".repeat(40),
                base_branch: base.into(),
                fork: fork.map(str::to_owned),
                head_ref: format!("refs/pull/{number}/head"),
                labels: labels.iter().map(|l| l.to_string()).collect(),
            },
        }
    }

    /// A short word for each intent, so the table reads at a glance.
    fn summary(intent: &Intent) -> String {
        match intent {
            Intent::Ping => "ping".into(),
            Intent::Ignore { reason } => format!("ignore: {reason}"),
            Intent::Teardown { base, branch, .. } => format!("teardown {base} {branch}"),
            Intent::Deploy(d) => {
                let target = match &d.target {
                    Target::Fixed(e) => e.to_string(),
                    Target::Instance { name, .. } => name.to_string(),
                    Target::Temporary { base, branch, .. } => format!("{base}<{branch}>"),
                };
                format!(
                    "{} {target}{}",
                    d.status,
                    d.reason
                        .as_ref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                )
            }
        }
    }

    #[test]
    fn table() {
        let app = app();
        let cases: Vec<(Event, &str)> = vec![
            (push("refs/heads/main", false, "x"), "queued production"),
            (
                push("refs/heads/feature/a", false, "x"),
                "queued preview<feature/a>",
            ),
            (push("refs/tags/v1.0", false, "x"), "queued releases"),
            (
                push("refs/heads/develop", false, "x"),
                "skipped staging: auto_deploy is off",
            ),
            (
                push("refs/heads/main", false, "Fix [skip deploy]"),
                "skipped production: the head commit message contains [skip deploy]",
            ),
            (
                push("refs/heads/other", false, "x"),
                "ignore: no environment of `shop` is fed by branch `other`",
            ),
            (
                push("refs/pull/1/head", false, "x"),
                "ignore: no environment of `shop` is fed by ref",
            ),
            (
                push("refs/heads/feature/a", true, ""),
                "teardown preview feature/a",
            ),
            (
                push("refs/heads/main", true, ""),
                "ignore: branch `main` was deleted; it feeds no temporary environment",
            ),
            (
                push("refs/tags/v1.0", true, ""),
                "ignore: tag `v1.0` was deleted",
            ),
            (
                Event::Delete {
                    repository: "acme/shop".into(),
                    git_ref: GitRef::Branch("feature/a".into()),
                },
                "teardown preview feature/a",
            ),
            (
                Event::Ping {
                    hook_id: Some(1),
                    repository: None,
                },
                "ping",
            ),
            (
                Event::Other {
                    name: "issues".into(),
                },
                "ignore: event `issues` is not handled",
            ),
            (
                pr(7, PullRequestAction::Opened, "main", None),
                "queued review<pr:7>",
            ),
            (
                pr(7, PullRequestAction::Updated, "main", None),
                "queued review<pr:7>",
            ),
            (
                pr(7, PullRequestAction::Closed, "main", Some("mallory/shop")),
                "teardown review pr:7",
            ),
            (
                pr(8, PullRequestAction::Opened, "main", Some("mallory/shop")),
                "ignore: pull request #8 comes from the fork \"mallory/shop\"",
            ),
            (
                pr(8, PullRequestAction::Opened, "main", Some("mallory/shop")),
                "ignore: pull request #8 comes from the fork \"mallory/shop\": forks run untrusted code, so they are not built unless `allow_forks = true` is set on `review` or a maintainer gives the request the label \"preview ok\"",
            ),
            (
                labelled(
                    8,
                    PullRequestAction::Relabeled,
                    "main",
                    Some("mallory/shop"),
                    &["bug", "preview ok"],
                ),
                "queued review<pr:8>",
            ),
            (
                labelled(
                    8,
                    PullRequestAction::Updated,
                    "main",
                    Some("mallory/shop"),
                    &["preview ok"],
                ),
                "queued review<pr:8>",
            ),
            (
                labelled(
                    8,
                    PullRequestAction::Relabeled,
                    "main",
                    Some("mallory/shop"),
                    &["bug"],
                ),
                "ignore: the labels of pull request #8 changed: nothing to deploy",
            ),
            (
                labelled(
                    7,
                    PullRequestAction::Relabeled,
                    "main",
                    None,
                    &["preview ok"],
                ),
                "ignore: the labels of pull request #7 changed",
            ),
            (
                pr(9, PullRequestAction::Opened, "develop", None),
                "ignore: no environment of `shop` previews pull requests into `develop`",
            ),
            (
                Event::Ignored {
                    reason: "GitLab event `Pipeline Hook` is not handled".into(),
                },
                "ignore: GitLab event `Pipeline Hook` is not handled",
            ),
        ];
        for (event, expected) in cases {
            let got = summary(&decide(&app, &event));
            assert!(
                got.starts_with(expected),
                "{event:?}\n got: {got}\nwant: {expected}"
            );
        }
    }
}
