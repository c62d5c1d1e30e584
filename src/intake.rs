//! What a verified delivery means: the decision between deploying, tearing down,
//! recording a ping and ignoring, with the reason an operator will read. Pure: it
//! sees the app's config and the decoded event, and returns an [`Intent`] for the
//! store. The HTTP edge does the reading and the answering.

use crate::config::AppConfig;
use crate::core::deploy::{DeployStatus, Trigger};
use crate::core::event::{Event, GitRef, Push};
use crate::store::{Intent, NewDeploy, Target};

/// The marker that makes a push record without deploying, as CI systems' `[skip ci]`.
pub const SKIP_MARKER: &str = "[skip deploy]";

pub fn decide(app: &AppConfig, event: &Event) -> Intent {
    match event {
        Event::Ping { .. } => Intent::Ping,
        Event::Other { name } => ignore(format!(
            "event `{name}` is not handled: stagehand acts on push, delete and ping"
        )),
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
        Some(format!(
            "auto_deploy is off for `{}`: release it with `stagehand deploy` or `stagehand promote`",
            env.name
        ))
    } else if push
        .head_commit_message
        .as_deref()
        .is_some_and(|m| m.contains(SKIP_MARKER))
    {
        Some(format!("the head commit message contains {SKIP_MARKER}"))
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
    Intent::Deploy(NewDeploy {
        commit: Some(push.after.to_string()),
        forced: push.forced,
        status: if skip_reason.is_some() {
            DeployStatus::Skipped
        } else {
            DeployStatus::Queued
        },
        reason: skip_reason,
        ..NewDeploy::queued(target, Trigger::Push, push.git_ref.full())
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
                pusher: None,
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
