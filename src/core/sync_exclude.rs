//! Which paths a copy of runtime data (`stagehand sync`, a temporary environment's
//! seeding) leaves out: the `sync_exclude` patterns. Pure: the copy in
//! `pipeline::sync` asks [`SyncExclude::excludes`] for each path it meets.
//!
//! Paths are relative to the environment's `shared/` directory, `/`-separated
//! (`instance/config.py`). Patterns use the branch-pattern glob (`*` within one path
//! segment, `**` across segments, `?` one character), like `.gitignore`:
//!
//! - a pattern without `/` matches a file or directory name at any depth (`*.key`);
//! - a pattern with `/` matches the whole path from `shared/` (`instance/config.py`,
//!   `storage/**/*.tmp`); a leading `/` is allowed and means the same;
//! - a trailing `/` is ignored: a matching directory is left out with all it holds.

use super::ref_pattern::{PatternError, RefPattern};

#[derive(Debug, Clone)]
struct Rule {
    pattern: RefPattern,
    /// Matches the last path segment only (no `/` in the pattern).
    by_name: bool,
}

/// A set of `sync_exclude` patterns.
#[derive(Debug, Clone, Default)]
pub struct SyncExclude {
    rules: Vec<Rule>,
}

impl SyncExclude {
    /// Parses `patterns`; the error names the pattern that failed.
    pub fn parse(patterns: &[String]) -> Result<SyncExclude, (String, PatternError)> {
        let rules = patterns
            .iter()
            .map(|source| {
                let trimmed = source.trim_start_matches('/').trim_end_matches('/');
                RefPattern::parse(trimmed)
                    .map(|pattern| Rule {
                        pattern,
                        by_name: !trimmed.contains('/'),
                    })
                    .map_err(|e| (source.clone(), e))
            })
            .collect::<Result<_, _>>()?;
        Ok(SyncExclude { rules })
    }

    /// Both sets' patterns: a path either leaves out is left out.
    pub fn union(&self, other: &SyncExclude) -> SyncExclude {
        SyncExclude {
            rules: self.rules.iter().chain(&other.rules).cloned().collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The patterns as written (without leading or trailing `/`), for the log.
    pub fn patterns(&self) -> Vec<&str> {
        self.rules.iter().map(|r| r.pattern.as_str()).collect()
    }

    /// Whether `path` (relative to `shared/`, `/`-separated) is left out.
    pub fn excludes(&self, path: &str) -> bool {
        let name = path.rsplit('/').next().unwrap_or(path);
        self.rules.iter().any(|rule| {
            if rule.by_name {
                rule.pattern.matches(name)
            } else {
                rule.pattern.matches(path)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(patterns: &[&str], path: &str, excluded: bool) {
        let set = SyncExclude::parse(&patterns.iter().map(|p| p.to_string()).collect::<Vec<_>>())
            .unwrap();
        assert_eq!(set.excludes(path), excluded, "{patterns:?} on {path:?}");
    }

    #[test]
    fn names_anywhere_paths_from_the_root() {
        check(&["instance/config.py"], "instance/config.py", true);
        check(&["/instance/config.py"], "instance/config.py", true);
        check(&["instance/config.py"], "other/instance/config.py", false);
        check(&["instance/config.py"], "instance/config.pyc", false);
        check(&["*.key"], "tls/server.key", true);
        check(&["*.key"], "server.key", true);
        check(&["*.key"], "keys/readme", false);
        check(&["config.py"], "instance/config.py", true);
        check(&["cache/"], "storage/cache", true);
        check(&["storage/*.tmp"], "storage/a.tmp", true);
        check(&["storage/*.tmp"], "storage/x/a.tmp", false);
        check(&["storage/**.tmp"], "storage/x/a.tmp", true);
        check(&["?.db"], "a.db", true);
        check(&["?.db"], "ab.db", false);
        check(&[], "anything", false);
    }

    #[test]
    fn a_union_excludes_what_either_does_and_bad_patterns_are_named() {
        let app = SyncExclude::parse(&["*.key".into()]).unwrap();
        let env = SyncExclude::parse(&["instance/config.py".into()]).unwrap();
        let both = app.union(&env);
        assert!(both.excludes("a.key") && both.excludes("instance/config.py"));
        assert_eq!(both.patterns(), ["*.key", "instance/config.py"]);
        let (pattern, _) = SyncExclude::parse(&["ok".into(), "[ab].db".into()]).unwrap_err();
        assert_eq!(pattern, "[ab].db");
    }
}
