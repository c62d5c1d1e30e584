//! Branch → environment routing: which configured environment a pushed ref feeds,
//! and the name of the temporary environment a branch pattern makes.

use super::event::GitRef;
use super::ids::{EnvironmentName, IdError};
use super::ref_pattern::{
    RefPattern, temporary_environment_name, temporary_environment_name_hashed,
};

/// What feeds an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefSource {
    Branch(RefPattern),
    Tag(RefPattern),
    /// Pull/merge requests into base branches matching the pattern: one temporary
    /// environment per open request.
    PullRequests(RefPattern),
}

impl RefSource {
    fn matches(&self, git_ref: &GitRef) -> bool {
        match (self, git_ref) {
            (RefSource::Branch(p), GitRef::Branch(name))
            | (RefSource::Tag(p), GitRef::Tag(name)) => p.matches(name),
            _ => false,
        }
    }

    /// A branch pattern with wildcards makes one temporary environment per branch;
    /// a tag pattern feeds one environment with each new matching tag.
    pub fn is_temporary(&self) -> bool {
        match self {
            RefSource::Branch(p) => !p.is_literal(),
            RefSource::Tag(_) => false,
            RefSource::PullRequests(_) => true,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            RefSource::Branch(p) if p.is_literal() => format!("branch {p}"),
            RefSource::Branch(p) => format!("branches {p}"),
            RefSource::Tag(p) => format!("tags {p}"),
            RefSource::PullRequests(p) => format!("pull requests into {p}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRule {
    pub environment: EnvironmentName,
    pub source: RefSource,
}

/// Two environments that one ref could feed: a config error, because a push must
/// never deploy to two places or depend on rule order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "environments `{first}` ({first_source}) and `{second}` ({second_source}) both match {example:?}"
)]
pub struct RouteConflict {
    pub first: EnvironmentName,
    pub first_source: String,
    pub second: EnvironmentName,
    pub second_source: String,
    pub example: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingTable {
    rules: Vec<RouteRule>,
}

/// Where a ref goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The configured environment whose rule matched (`preview` for `feature/*`).
    pub configured: EnvironmentName,
    /// For a branch pattern: the branch that makes (or made) a temporary environment.
    pub temporary_branch: Option<String>,
}

impl RoutingTable {
    pub fn new(rules: Vec<RouteRule>) -> Result<RoutingTable, RouteConflict> {
        for (i, a) in rules.iter().enumerate() {
            for b in &rules[i + 1..] {
                let example = match (&a.source, &b.source) {
                    (RefSource::Branch(x), RefSource::Branch(y))
                    | (RefSource::Tag(x), RefSource::Tag(y))
                    | (RefSource::PullRequests(x), RefSource::PullRequests(y)) => {
                        x.overlap_example(y)
                    }
                    _ => None,
                };
                if let Some(example) = example {
                    return Err(RouteConflict {
                        first: a.environment.clone(),
                        first_source: a.source.describe(),
                        second: b.environment.clone(),
                        second_source: b.source.describe(),
                        example,
                    });
                }
            }
        }
        Ok(RoutingTable { rules })
    }

    pub fn rules(&self) -> &[RouteRule] {
        &self.rules
    }

    /// At most one rule matches: `new` refused overlapping ones.
    pub fn route(&self, git_ref: &GitRef) -> Option<Route> {
        let rule = self.rules.iter().find(|r| r.source.matches(git_ref))?;
        Some(Route {
            configured: rule.environment.clone(),
            temporary_branch: rule
                .source
                .is_temporary()
                .then(|| git_ref.short().to_owned()),
        })
    }
}

impl RoutingTable {
    /// The environment previewing a pull request into `base_branch`, if any; its
    /// temporary environment is keyed by [`crate::core::event::PullRequest::environment_key`].
    pub fn route_pull_request(&self, base_branch: &str, key: String) -> Option<Route> {
        let rule = self
            .rules
            .iter()
            .find(|r| matches!(&r.source, RefSource::PullRequests(p) if p.matches(base_branch)))?;
        Some(Route {
            configured: rule.environment.clone(),
            temporary_branch: Some(key),
        })
    }
}

/// Names the temporary environment for a branch that has none yet. The readable name
/// (`preview-feature-new-cart`) is used unless another branch already holds it or it is
/// a configured environment's name; then the hashed form keeps distinct branches apart.
pub fn new_temporary_name(
    base: &EnvironmentName,
    branch: &str,
    mut is_taken: impl FnMut(&str) -> bool,
) -> Result<EnvironmentName, IdError> {
    let plain = temporary_environment_name(base.as_str(), branch);
    let name = if is_taken(&plain) {
        temporary_environment_name_hashed(base.as_str(), branch)
    } else {
        plain
    };
    EnvironmentName::parse(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> EnvironmentName {
        EnvironmentName::parse(name).unwrap()
    }

    fn rule(environment: &str, source: &str) -> RouteRule {
        let (kind, pattern) = source.split_once(':').unwrap();
        let pattern = RefPattern::parse(pattern).unwrap();
        RouteRule {
            environment: env(environment),
            source: if kind == "branch" {
                RefSource::Branch(pattern)
            } else {
                RefSource::Tag(pattern)
            },
        }
    }

    fn table(rules: &[(&str, &str)]) -> Result<RoutingTable, RouteConflict> {
        RoutingTable::new(rules.iter().map(|(e, s)| rule(e, s)).collect())
    }

    /// `expected`: (configured environment, temporary branch) or None.
    fn check(table: &RoutingTable, full_ref: &str, expected: Option<(&str, Option<&str>)>) {
        let got = table.route(&GitRef::from_full(full_ref));
        let got = got
            .as_ref()
            .map(|r| (r.configured.as_str(), r.temporary_branch.as_deref()));
        assert_eq!(got, expected, "{full_ref}");
    }

    #[test]
    fn routes_branches_patterns_and_tags() {
        let t = table(&[
            ("production", "branch:main"),
            ("staging", "branch:develop"),
            ("preview", "branch:feature/*"),
            ("release", "branch:release/**"),
            ("tagged", "tag:v*"),
        ])
        .unwrap();
        check(&t, "refs/heads/main", Some(("production", None)));
        check(&t, "refs/heads/develop", Some(("staging", None)));
        check(
            &t,
            "refs/heads/feature/New_Cart!",
            Some(("preview", Some("feature/New_Cart!"))),
        );
        check(&t, "refs/heads/feature/a/b", None);
        check(
            &t,
            "refs/heads/release/1/2",
            Some(("release", Some("release/1/2"))),
        );
        check(&t, "refs/tags/v1.2.0", Some(("tagged", None)));
        check(&t, "refs/heads/v1.2.0", None);
        check(&t, "refs/tags/main", None);
        check(&t, "refs/heads/mainline", None);
        check(&t, "refs/pull/1/head", None);
    }

    #[test]
    fn overlapping_rules_are_refused_with_an_example() {
        type Rules<'a> = &'a [(&'a str, &'a str)];
        let cases: &[(Rules<'_>, Option<&str>)] = &[
            (&[("a", "branch:main"), ("b", "branch:main")], Some("main")),
            (&[("a", "branch:main"), ("b", "branch:ma*")], Some("main")),
            (
                &[("a", "branch:feature/*"), ("b", "branch:feature/**")],
                Some("feature/"),
            ),
            (&[("a", "branch:feature/*"), ("b", "branch:fix/*")], None),
            // Branches and tags live in different namespaces.
            (&[("a", "branch:v*"), ("b", "tag:v*")], None),
            (&[("a", "tag:v1*"), ("b", "tag:v*")], Some("v1")),
        ];
        for (rules, conflict) in cases {
            let got = table(rules).err().map(|c| c.example);
            assert_eq!(got.as_deref(), *conflict, "{rules:?}");
        }
        let message = table(&[("production", "branch:main"), ("hotfix", "branch:ma*")])
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "environments `production` (branch main) and `hotfix` (branches ma*) both match \"main\""
        );
    }

    #[test]
    fn temporary_names_stay_distinct() {
        let base = env("preview");
        let free = new_temporary_name(&base, "feature/New_Cart!", |_| false).unwrap();
        assert_eq!(free.as_str(), "preview-feature-new-cart");
        let taken = new_temporary_name(&base, "feature/new-cart", |n| {
            n == "preview-feature-new-cart"
        })
        .unwrap();
        assert_ne!(taken, free);
        assert!(taken.as_str().starts_with("preview-feature-new-cart-"));
    }
}
