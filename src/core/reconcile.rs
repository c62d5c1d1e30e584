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
//! - A branch of a pattern environment gets its temporary environment only if it was
//!   pushed since the previous round (new, or its head moved): adding stagehand to a
//!   repository with forty old feature branches does not build forty previews.
//! - A temporary environment whose branch is gone is torn down, as a deletion would;
//!   a protected one never is.
//! - Tag environments are not reconciled: which tag is "newest" is a release decision
//!   (version order and history can disagree); `stagehand deploy APP ENV --ref TAG`.

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
    /// A temporary environment whose branch is gone from the remote.
    Teardown {
        environment: EnvironmentName,
        base: EnvironmentName,
        branch: String,
    },
    /// Nothing to do, and why (for the log).
    Leave { subject: String, why: String },
}

/// The refspecs one fetch needs to learn every head `rules` follow: per branch rule,
/// its pattern up to the first wildcard, then `*` (git refspecs take one `*`, and it
/// spans `/`). A literal branch becomes `main*` too, so a branch missing on the remote
/// is an empty match rather than a failed fetch. [`plan`] filters exactly afterwards.
pub fn fetch_refspecs(rules: &[Rule]) -> Vec<String> {
    let mut prefixes: Vec<String> = rules
        .iter()
        .filter_map(|rule| match &rule.source {
            RefSource::Branch(p) if rule.auto_deploy || !p.is_literal() => Some(literal_prefix(p)),
            _ => None,
        })
        .collect();
    prefixes.sort();
    prefixes.dedup();
    let covered = |p: &String| {
        prefixes
            .iter()
            .any(|other| other != p && p.starts_with(other.as_str()))
    };
    prefixes
        .iter()
        .filter(|p| !covered(p))
        .map(|p| format!("+refs/heads/{p}*:refs/heads/{p}*"))
        .collect()
}

fn literal_prefix(pattern: &RefPattern) -> String {
    pattern
        .as_str()
        .chars()
        .take_while(|c| !matches!(c, '*' | '?'))
        .collect()
}

/// Every step for one app. `heads`: branch → commit, as fetched this round.
/// `seen`: the pattern branches the previous round saw (`None` before the first).
pub fn plan(
    rules: &[Rule],
    heads: &BTreeMap<String, String>,
    temporaries: &[Temporary],
    seen: Option<&BTreeMap<String, String>>,
) -> Vec<Step> {
    let mut steps = Vec::new();
    for rule in rules {
        let env = &rule.environment;
        let leave = |why: String| Step::Leave {
            subject: env.to_string(),
            why,
        };
        match &rule.source {
            RefSource::Tag(_) => steps.push(leave(
                "tag environments are not reconciled: deploy a tag with `stagehand deploy`".into(),
            )),
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
            Some(seen) if seen.get(branch) == Some(head) => {
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

/// The branches of `rules`' pattern environments among `heads`: what the next round
/// compares against as `seen`.
pub fn pattern_branches(
    rules: &[Rule],
    heads: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    heads
        .iter()
        .filter(|(branch, _)| {
            rules.iter().any(|r| match &r.source {
                RefSource::Branch(p) => !p.is_literal() && p.matches(branch),
                RefSource::Tag(_) => false,
            })
        })
        .map(|(b, c)| (b.clone(), c.clone()))
        .collect()
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
mod tests {
    use super::*;

    fn env(name: &str) -> EnvironmentName {
        EnvironmentName::parse(name).unwrap()
    }

    fn rule(environment: &str, source: &str, auto_deploy: bool, protected: bool) -> Rule {
        let (kind, pattern) = source.split_once(':').unwrap();
        let pattern = RefPattern::parse(pattern).unwrap();
        Rule {
            environment: env(environment),
            source: if kind == "branch" {
                RefSource::Branch(pattern)
            } else {
                RefSource::Tag(pattern)
            },
            auto_deploy,
            protected,
        }
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn temporary(name: &str, base: &str, branch: &str) -> Temporary {
        Temporary {
            name: env(name),
            base: env(base),
            branch: branch.into(),
        }
    }

    /// One short line per step, so the tables read at a glance.
    fn summary(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .map(|s| match s {
                Step::Compare {
                    environment, head, ..
                } => format!("compare {environment} {head}"),
                Step::Create { base, branch, head } => format!("create {base}<{branch}> {head}"),
                Step::Teardown { environment, .. } => format!("teardown {environment}"),
                Step::Leave { subject, why } => format!("leave {subject}: {why}"),
            })
            .collect()
    }

    fn rules() -> Vec<Rule> {
        vec![
            rule("production", "branch:main", true, true),
            rule("staging", "branch:develop", false, false),
            rule("preview", "branch:feature/*", true, false),
            rule("releases", "tag:v*", true, false),
        ]
    }

    #[test]
    fn plans_compare_create_teardown_and_leave() {
        let heads = map(&[
            ("main", "m1"),
            ("develop", "d1"),
            ("feature/kept", "k2"),
            ("feature/new", "n1"),
            ("feature/moved", "o2"),
            ("feature/old", "o1"),
            ("feature/a/b", "x"),
        ]);
        let temporaries = [
            temporary("preview-feature-kept", "preview", "feature/kept"),
            temporary("preview-feature-gone", "preview", "feature/gone"),
        ];
        let seen = map(&[("feature/old", "o1"), ("feature/moved", "o1")]);
        let got = summary(&plan(&rules(), &heads, &temporaries, Some(&seen)));
        assert_eq!(
            got,
            [
                "compare production m1",
                "leave staging: auto_deploy is off",
                "compare preview-feature-kept k2",
                "teardown preview-feature-gone",
                "create preview<feature/moved> o2",
                "create preview<feature/new> n1",
                "leave branch `feature/old`: not pushed since the previous round",
                "leave releases: tag environments are not reconciled: deploy a tag with `stagehand deploy`",
            ]
        );
    }

    #[test]
    fn before_the_first_round_existing_branches_make_no_environments() {
        let heads = map(&[("feature/x", "x1")]);
        let got = summary(&plan(&rules(), &heads, &[], None));
        assert_eq!(
            got[2],
            "leave branch `feature/x`: was there before the first round: its first push makes its environment"
        );
        assert_eq!(
            got[0], "leave production: branch `main` is not on the remote",
            "a missing branch is a note, not an error"
        );
    }

    #[test]
    fn protected_and_manual_patterns() {
        let rules = [rule("preview", "branch:feature/*", false, true)];
        let heads = map(&[("feature/kept", "k"), ("feature/new", "n")]);
        let temporaries = [
            temporary("preview-feature-kept", "preview", "feature/kept"),
            temporary("preview-feature-gone", "preview", "feature/gone"),
        ];
        let got = summary(&plan(&rules, &heads, &temporaries, Some(&map(&[]))));
        assert_eq!(
            got,
            [
                "leave preview-feature-kept: auto_deploy is off",
                "leave preview-feature-gone: its branch is gone, but it is protected: never torn down",
            ]
        );
    }

    #[test]
    fn refspecs_cover_every_followed_branch_once() {
        type Case<'a> = (&'a [(&'a str, bool)], &'a [&'a str]);
        let cases: &[Case<'_>] = &[
            (&[("main", true)], &["+refs/heads/main*:refs/heads/main*"]),
            // A manual literal branch needs no head; a manual pattern still tears down.
            (
                &[("main", false), ("feature/*", false)],
                &["+refs/heads/feature/*:refs/heads/feature/*"],
            ),
            (
                &[("main", true), ("develop", true), ("feature/*", true)],
                &[
                    "+refs/heads/develop*:refs/heads/develop*",
                    "+refs/heads/feature/*:refs/heads/feature/*",
                    "+refs/heads/main*:refs/heads/main*",
                ],
            ),
            (
                &[("**", true), ("main", true)],
                &["+refs/heads/*:refs/heads/*"],
            ),
            (
                &[("rel-?/x", true), ("rel-*", true)],
                &["+refs/heads/rel-*:refs/heads/rel-*"],
            ),
        ];
        for (branches, expected) in cases {
            let rules: Vec<Rule> = branches
                .iter()
                .enumerate()
                .map(|(i, (b, auto))| rule(&format!("e{i}"), &format!("branch:{b}"), *auto, false))
                .collect();
            assert_eq!(fetch_refspecs(&rules), *expected, "{branches:?}");
        }
        assert!(fetch_refspecs(&[rule("t", "tag:v*", true, false)]).is_empty());
    }

    #[test]
    fn pattern_branches_are_what_the_next_round_compares() {
        let heads = map(&[("main", "m"), ("feature/x", "x"), ("other", "o")]);
        assert_eq!(
            pattern_branches(&rules(), &heads),
            map(&[("feature/x", "x")])
        );
    }

    #[test]
    fn decisions() {
        let head = "h";
        let facts = |busy, live: Option<&str>, tried, head_is_older, skip_marker| Facts {
            busy,
            live: live.map(str::to_owned),
            tried,
            head_is_older,
            skip_marker,
        };
        use DeployStatus::*;
        let cases: Vec<(Facts, Option<&str>)> = vec![
            (facts(false, Some("old"), None, false, false), None),
            // Never deployed: the first round deploys it.
            (facts(false, None, None, false, false), None),
            (
                facts(true, Some("old"), None, false, false),
                Some("queued or running"),
            ),
            (
                facts(false, Some("h"), None, false, false),
                Some("the head is live"),
            ),
            (
                facts(false, Some("old"), Some(Failed), false, false),
                Some("ended failed"),
            ),
            (
                facts(false, Some("old"), Some(Succeeded), false, false),
                Some("ended succeeded"),
            ),
            (
                facts(false, Some("old"), Some(RolledBack), false, false),
                Some("ended rolled_back"),
            ),
            (
                facts(false, Some("old"), Some(Skipped), false, false),
                Some("ended skipped"),
            ),
            // A deploy that never got to finish is tried again.
            (
                facts(false, Some("old"), Some(Interrupted), false, false),
                None,
            ),
            (
                facts(false, Some("old"), Some(Cancelled), false, false),
                None,
            ),
            (
                facts(false, Some("old"), Some(Superseded), false, false),
                None,
            ),
            (
                facts(false, Some("new"), None, true, false),
                Some("older than the live"),
            ),
            (
                facts(false, Some("old"), None, false, true),
                Some("[skip deploy]"),
            ),
        ];
        for (facts, expected) in cases {
            let got = decide(head, &facts);
            match (expected, &got) {
                (None, Decision::Deploy) => {}
                (Some(part), Decision::Leave(why)) if why.contains(part) => {}
                _ => panic!("{facts:?}: got {got:?}, want {expected:?}"),
            }
        }
    }
}
