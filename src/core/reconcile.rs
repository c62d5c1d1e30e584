//! Reconciliation's decisions: from the heads of an app's branches on the remote, its
//! environments and what is live in them, which deploys and teardowns to queue so a
//! push stagehand never heard of (GitHub does not retry a failed delivery) still
//! deploys. Pure: `pipeline::reconcile` fetches, reads the store and the `current`
//! links, and passes the facts in.
//!
//! The rules, and why:
//! - Only environments that deploy on push (`auto_deploy`, the default) are touched; a
//!   manual environment waits for a person, as it does for a push.
//! - A head that is already live, that a deploy here already tried (succeeded, failed,
//!   rolled back or skipped), that is older than the live commit, or whose message says
//!   `[skip deploy]`, is left alone: reconciliation replays a missed push, it never
//!   retries a broken build every round or undoes an operator's rollback.
//! - An environment with a deploy queued or running is left alone: that deploy (or the
//!   push behind it) wins.
//! - A branch environment never deployed gets its branch's head: adding stagehand to an
//!   existing repository deploys each mapped branch once, as its operator expects.
//! - A branch of a pattern environment gets its temporary environment only if it was
//!   pushed since the previous round (new, or its head moved): adding stagehand to a
//!   repository with forty old feature branches does not build forty previews.
//! - A temporary environment whose branch is gone is torn down, as a deletion would;
//!   a protected one never is.
//! - A tag environment gets a matching tag pushed since the previous round, if its
//!   commit descends from the live one (history decides "newer", not version-like
//!   names, which can disagree with it) and every other such tag is behind it; tags
//!   that diverge are left to a person. Tags there before the first round are not
//!   deployed, as with pattern branches.

use std::collections::BTreeMap;

use super::deploy::DeployStatus;
use super::ids::EnvironmentName;
use super::ref_pattern::RefPattern;
use super::routing::RefSource;

/// A configured environment, as reconciliation sees it.
#[derive(Debug, Clone)]
pub struct Rule {
    pub environment: EnvironmentName,
    pub source: RefSource,
    pub auto_deploy: bool,
    pub protected: bool,
}

/// A temporary environment that exists (from the store).
#[derive(Debug, Clone)]
pub struct Temporary {
    pub name: EnvironmentName,
    pub base: EnvironmentName,
    pub branch: String,
}

/// The remote's refs as one round fetched them: short name → commit (tags peeled).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteRefs {
    pub branches: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
}

/// What one round does about one environment or branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `environment` follows `branch`, whose head is `head`: deploy it unless [`decide`]
    /// finds a reason not to.
    Compare {
        environment: EnvironmentName,
        base: EnvironmentName,
        branch: String,
        head: String,
        temporary: bool,
    },
    /// A branch of pattern environment `base` pushed since the previous round, without
    /// a temporary environment: make one and deploy, unless [`decide`] says not to.
    Create {
        base: EnvironmentName,
        branch: String,
        head: String,
    },
    /// A tag environment and the matching tags (tag, commit) pushed since the previous
    /// round: [`newest_tag`] picks one, then [`decide`].
    CompareTags {
        environment: EnvironmentName,
        tags: Vec<(String, String)>,
    },
    /// A temporary environment whose branch is gone from the remote.
    Teardown {
        environment: EnvironmentName,
        base: EnvironmentName,
        branch: String,
    },
    /// Nothing to do, and why (for the log).
    Leave { subject: String, why: String },
}

/// The refspecs one fetch needs to learn every head `rules` follow: per rule, its
/// pattern up to the first wildcard, then `*` (git refspecs take one `*`, and it spans
/// `/`). A literal branch becomes `main*` too, so a branch missing on the remote is an
/// empty match rather than a failed fetch. [`plan`] filters exactly afterwards.
pub fn fetch_refspecs(rules: &[Rule]) -> Vec<String> {
    let mut prefixes: Vec<(&str, String)> = rules
        .iter()
        .filter_map(|rule| match &rule.source {
            RefSource::Branch(p) if rule.auto_deploy || !p.is_literal() => {
                Some(("heads", literal_prefix(p)))
            }
            RefSource::Tag(p) if rule.auto_deploy => Some(("tags", literal_prefix(p))),
            _ => None,
        })
        .collect();
    prefixes.sort();
    prefixes.dedup();
    let covered = |(kind, p): &(&str, String)| {
        prefixes
            .iter()
            .any(|(k, other)| k == kind && other != p && p.starts_with(other.as_str()))
    };
    prefixes
        .iter()
        .filter(|p| !covered(p))
        .map(|(kind, p)| format!("+refs/{kind}/{p}*:refs/{kind}/{p}*"))
        .collect()
}

fn literal_prefix(pattern: &RefPattern) -> String {
    pattern
        .as_str()
        .chars()
        .take_while(|c| !matches!(c, '*' | '?'))
        .collect()
}

/// Every step for one app. `seen`: what [`remembered`] returned in the previous round
/// (`None` before the first).
pub fn plan(
    rules: &[Rule],
    remote: &RemoteRefs,
    temporaries: &[Temporary],
    seen: Option<&BTreeMap<String, String>>,
) -> Vec<Step> {
    let heads = &remote.branches;
    let mut steps = Vec::new();
    for rule in rules {
        let env = &rule.environment;
        let leave = |why: String| Step::Leave {
            subject: env.to_string(),
            why,
        };
        match &rule.source {
            RefSource::PullRequests(_) => {
                steps.push(leave(
                    "pull-request previews follow the forge's events, not branch heads".into(),
                ));
            }
            RefSource::Tag(_) if !rule.auto_deploy => {
                steps.push(leave("auto_deploy is off".into()));
            }
            RefSource::Tag(p) => {
                let Some(seen) = seen else {
                    steps.push(leave(
                        "first round: tags already there are not deployed by reconciliation".into(),
                    ));
                    continue;
                };
                let pushed: Vec<(String, String)> = remote
                    .tags
                    .iter()
                    .filter(|(tag, commit)| {
                        p.matches(tag) && seen.get(&format!("refs/tags/{tag}")) != Some(*commit)
                    })
                    .map(|(t, c)| (t.clone(), c.clone()))
                    .collect();
                if pushed.is_empty() {
                    steps.push(leave(format!(
                        "no tag matching `{p}` was pushed since the previous round"
                    )));
                } else {
                    steps.push(Step::CompareTags {
                        environment: env.clone(),
                        tags: pushed,
                    });
                }
            }
            RefSource::Branch(p) if p.is_literal() => {
                if !rule.auto_deploy {
                    steps.push(leave("auto_deploy is off".into()));
                    continue;
                }
                match heads.get(p.as_str()) {
                    Some(head) => steps.push(Step::Compare {
                        environment: env.clone(),
                        base: env.clone(),
                        branch: p.as_str().to_owned(),
                        head: head.clone(),
                        temporary: false,
                    }),
                    None => steps.push(leave(format!("branch `{p}` is not on the remote"))),
                }
            }
            RefSource::Branch(p) => {
                plan_pattern(rule, p, heads, temporaries, seen, &mut steps);
            }
        }
    }
    steps
}

fn plan_pattern(
    rule: &Rule,
    pattern: &RefPattern,
    heads: &BTreeMap<String, String>,
    temporaries: &[Temporary],
    seen: Option<&BTreeMap<String, String>>,
    steps: &mut Vec<Step>,
) {
    let base = &rule.environment;
    let mine = temporaries
        .iter()
        .filter(|t| &t.base == base && pattern.matches(&t.branch));
    for t in mine {
        let leave = |why: &str| Step::Leave {
            subject: t.name.to_string(),
            why: why.to_owned(),
        };
        match heads.get(&t.branch) {
            None if rule.protected => steps.push(leave(
                "its branch is gone, but it is protected: never torn down",
            )),
            None => steps.push(Step::Teardown {
                environment: t.name.clone(),
                base: base.clone(),
                branch: t.branch.clone(),
            }),
            Some(_) if !rule.auto_deploy => steps.push(leave("auto_deploy is off")),
            Some(head) => steps.push(Step::Compare {
                environment: t.name.clone(),
                base: base.clone(),
                branch: t.branch.clone(),
                head: head.clone(),
                temporary: true,
            }),
        }
    }
    if !rule.auto_deploy {
        return;
    }
    let without_environment = heads.iter().filter(|(branch, _)| {
        pattern.matches(branch) && !temporaries.iter().any(|t| &t.branch == *branch)
    });
    for (branch, head) in without_environment {
        let leave = |why: &str| Step::Leave {
            subject: format!("branch `{branch}`"),
            why: why.to_owned(),
        };
        match seen {
            None => steps.push(leave(
                "was there before the first round: its first push makes its environment",
            )),
            Some(seen) if seen.get(&format!("refs/heads/{branch}")) == Some(head) => {
                steps.push(leave("not pushed since the previous round"));
            }
            Some(_) => steps.push(Step::Create {
                base: base.clone(),
                branch: branch.clone(),
                head: head.clone(),
            }),
        }
    }
}

/// What the next round compares against as `seen`: full ref → commit of the branches
/// of pattern environments and the tags of tag environments.
pub fn remembered(rules: &[Rule], remote: &RemoteRefs) -> BTreeMap<String, String> {
    let of_pattern = |name: &String, tag: bool| {
        rules.iter().any(|r| match &r.source {
            RefSource::Branch(p) => !tag && !p.is_literal() && p.matches(name),
            RefSource::Tag(p) => tag && p.matches(name),
            RefSource::PullRequests(_) => false,
        })
    };
    let branches = remote
        .branches
        .iter()
        .filter(|(b, _)| of_pattern(b, false))
        .map(|(b, c)| (format!("refs/heads/{b}"), c.clone()));
    let tags = remote
        .tags
        .iter()
        .filter(|(t, _)| of_pattern(t, true))
        .map(|(t, c)| (format!("refs/tags/{t}"), c.clone()));
    branches.chain(tags).collect()
}

/// Which of `tags` (tag, commit) a tag environment should run: among those whose commit
/// is not live and descends from the live one, the one every other is behind (on two
/// tags of one commit, the later name). `Err` says why none. `is_ancestor(a, b)`: commit
/// `a` is a strict ancestor of `b` (the caller's repository answers; false when unknown).
pub fn newest_tag<'a>(
    tags: &'a [(String, String)],
    live: Option<&str>,
    mut is_ancestor: impl FnMut(&str, &str) -> bool,
) -> Result<&'a (String, String), String> {
    let newer: Vec<&(String, String)> = tags
        .iter()
        .filter(|(_, commit)| match live {
            Some(live) => commit != live && is_ancestor(live, commit),
            None => true,
        })
        .collect();
    let Some(mut best) = newer.first().copied() else {
        return Err("no tag pushed since the previous round is newer than the live commit".into());
    };
    for &candidate in &newer[1..] {
        if candidate.1 == best.1 {
            best = candidate.max(best);
        } else if is_ancestor(&best.1, &candidate.1) {
            best = candidate;
        }
    }
    let diverged: Vec<&str> = newer
        .iter()
        .filter(|(_, c)| *c != best.1 && !is_ancestor(c, &best.1))
        .map(|(t, _)| t.as_str())
        .collect();
    if !diverged.is_empty() {
        return Err(format!(
            "tags {} and {} diverge: deploy one with `stagehand deploy`",
            best.0,
            diverged.join(", ")
        ));
    }
    Ok(best)
}

/// What is known about an environment when its branch's head may need deploying.
/// [`decide`] looks at the fields in order, so the edge may decide on `busy` and `live`
/// alone and read the rest (store, mirror) only when that says deploy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// A deploy is queued or running there.
    pub busy: bool,
    /// The commit in `current/REVISION`, if anything is live.
    pub live: Option<String>,
    /// How the newest deploy of the head commit into this environment ended.
    pub tried: Option<DeployStatus>,
    /// The head is an ancestor of the live commit (the branch moved back).
    pub head_is_older: bool,
    /// The head commit's message contains `[skip deploy]`.
    pub skip_marker: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Deploy,
    Leave(String),
}

/// Whether to queue a `reconcile` deploy of `head`.
pub fn decide(head: &str, facts: &Facts) -> Decision {
    let leave = |why: String| Decision::Leave(why);
    if facts.busy {
        return leave("a deploy is queued or running there".into());
    }
    if facts.live.as_deref() == Some(head) {
        return leave("the head is live".into());
    }
    if let Some(status) = facts.tried.filter(|s| {
        matches!(
            s,
            DeployStatus::Succeeded
                | DeployStatus::Failed
                | DeployStatus::RolledBack
                | DeployStatus::Skipped
        )
    }) {
        return leave(format!(
            "a deploy of the head already ended {status} there: not repeated"
        ));
    }
    if facts.head_is_older {
        return leave("the head is older than the live commit".into());
    }
    if facts.skip_marker {
        return leave(format!(
            "the head commit message contains {}",
            super::event::SKIP_MARKER
        ));
    }
    Decision::Deploy
}

#[cfg(test)]
mod tests;
