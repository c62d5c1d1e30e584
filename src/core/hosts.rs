//! Host name → environment: the `hosts` an environment answers to at the front door,
//! the check that no two environments could claim one host, and the lookup of a
//! request's `Host` header. Knows names only; where an environment's traffic goes
//! (a port, a directory) is the front door's business.

use super::ids::{AppName, EnvironmentName};
use super::ref_pattern::base_slug;

const PLACEHOLDER: &str = "{environment}";

/// One entry of an environment's `hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// `shop.example.com`
    Exact(String),
    /// `{environment}.preview.example.com`: one name per temporary environment.
    Template { prefix: String, suffix: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("{0:?} is not a host name (letters, digits, '-' and '.' only)")]
    BadName(String),
    #[error("{0:?}: use {{environment}} once, and only in a branch-pattern environment's hosts")]
    BadTemplate(String),
    #[error("{0:?} names one host, but this environment makes one per branch: use {{environment}}")]
    NeedsTemplate(String),
}

fn is_host_text(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

impl HostPattern {
    /// `temporary`: the environment is a branch pattern, so each of its names must
    /// carry `{environment}` (else every preview would claim the same host).
    pub fn parse(text: &str, temporary: bool) -> Result<HostPattern, HostError> {
        let lower = text.to_ascii_lowercase();
        match lower.split(PLACEHOLDER).collect::<Vec<_>>().as_slice() {
            [exact] => {
                if !is_host_text(exact) {
                    Err(HostError::BadName(text.to_owned()))
                } else if temporary {
                    Err(HostError::NeedsTemplate(text.to_owned()))
                } else {
                    Ok(HostPattern::Exact((*exact).to_owned()))
                }
            }
            [prefix, suffix] if temporary => {
                let ok = |part: &str| part.is_empty() || is_host_text(part);
                if ok(prefix) && ok(suffix) && !(prefix.is_empty() && suffix.is_empty()) {
                    Ok(HostPattern::Template {
                        prefix: (*prefix).to_owned(),
                        suffix: (*suffix).to_owned(),
                    })
                } else {
                    Err(HostError::BadName(text.to_owned()))
                }
            }
            _ => Err(HostError::BadTemplate(text.to_owned())),
        }
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostPattern::Exact(host) => f.write_str(host),
            HostPattern::Template { prefix, suffix } => write!(f, "{prefix}{PLACEHOLDER}{suffix}"),
        }
    }
}

/// The host of a `Host` header: port and trailing dot stripped, lower case.
/// `None` for anything that is not a plain name (IPv6 literals included: nothing routes by them).
pub fn normalize_host(header: &str) -> Option<String> {
    let name = match header.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        Some(_) => return None,
        None => header,
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    is_host_text(&name).then_some(name)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRule {
    pub app: AppName,
    /// The configured environment (for a template: the branch-pattern environment).
    pub environment: EnvironmentName,
    pub pattern: HostPattern,
}

impl HostRule {
    /// The text a template's `{environment}` must start with: temporary environments
    /// are named `<slug(base)>-…`, so `preview`'s template never matches `staging`.
    fn label_prefix(&self) -> String {
        format!("{}-", base_slug(self.environment.as_str()))
    }

    fn matches(&self, host: &str) -> Option<EnvironmentName> {
        match &self.pattern {
            HostPattern::Exact(exact) => (exact == host).then(|| self.environment.clone()),
            HostPattern::Template { prefix, suffix } => {
                let label = host.strip_prefix(prefix.as_str())?;
                let label = label.strip_suffix(suffix.as_str())?;
                if !label.starts_with(&self.label_prefix()) {
                    return None;
                }
                EnvironmentName::parse(label).ok()
            }
        }
    }

    /// A host both rules would answer, if there is one.
    fn overlap(&self, other: &HostRule) -> Option<String> {
        match (&self.pattern, &other.pattern) {
            (HostPattern::Exact(a), HostPattern::Exact(b)) => (a == b).then(|| a.clone()),
            (HostPattern::Exact(a), HostPattern::Template { .. }) => {
                other.matches(a).map(|_| a.clone())
            }
            (HostPattern::Template { .. }, HostPattern::Exact(_)) => other.overlap(self),
            (
                HostPattern::Template {
                    prefix: p1,
                    suffix: s1,
                },
                HostPattern::Template {
                    prefix: p2,
                    suffix: s2,
                },
            ) => {
                // Each template matches `<fixed prefix><label chars>…<suffix>`; two such
                // sets meet when one fixed prefix extends the other and one suffix ends
                // the other (the free middle then covers the rest).
                let f1 = format!("{p1}{}", self.label_prefix());
                let f2 = format!("{p2}{}", other.label_prefix());
                let prefix = longer_if_compatible(&f1, &f2, |a, b| a.starts_with(b))?;
                let suffix = longer_if_compatible(s1, s2, |a, b| a.ends_with(b))?;
                Some(format!("{prefix}x{suffix}"))
            }
        }
    }
}

fn longer_if_compatible<'a>(
    a: &'a str,
    b: &'a str,
    extends: impl Fn(&str, &str) -> bool,
) -> Option<&'a str> {
    if extends(a, b) {
        Some(a)
    } else if extends(b, a) {
        Some(b)
    } else {
        None
    }
}

/// Two environments that could claim one host: a config error, because the front door
/// must never depend on rule order to pick where a request goes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{first_app}.{first} ({first_host}) and {second_app}.{second} ({second_host}) both claim {example:?}"
)]
pub struct HostConflict {
    pub first_app: AppName,
    pub first: EnvironmentName,
    pub first_host: String,
    pub second_app: AppName,
    pub second: EnvironmentName,
    pub second_host: String,
    pub example: String,
}

/// Where a host goes: the app, the environment that configures it, and the environment
/// itself (a temporary one's own name for a template).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostMatch {
    pub app: AppName,
    pub configured: EnvironmentName,
    pub environment: EnvironmentName,
}

/// Every `hosts` entry of every app, checked to be unambiguous.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostTable {
    rules: Vec<HostRule>,
}

impl HostTable {
    pub fn new(rules: Vec<HostRule>) -> Result<HostTable, Box<HostConflict>> {
        for (i, first) in rules.iter().enumerate() {
            for second in &rules[i + 1..] {
                if let Some(example) = first.overlap(second) {
                    return Err(Box::new(HostConflict {
                        first_app: first.app.clone(),
                        first: first.environment.clone(),
                        first_host: first.pattern.to_string(),
                        second_app: second.app.clone(),
                        second: second.environment.clone(),
                        second_host: second.pattern.to_string(),
                        example,
                    }));
                }
            }
        }
        Ok(HostTable { rules })
    }

    pub fn rules(&self) -> &[HostRule] {
        &self.rules
    }

    /// `header`: the request's `Host`, as sent.
    pub fn resolve(&self, header: &str) -> Option<HostMatch> {
        let host = normalize_host(header)?;
        self.rules.iter().find_map(|rule| {
            rule.matches(&host).map(|environment| HostMatch {
                app: rule.app.clone(),
                configured: rule.environment.clone(),
                environment,
            })
        })
    }

    /// The names `environment` (of `configured`) answers to, for links and `routes`.
    pub fn names_of(
        &self,
        app: &AppName,
        configured: &EnvironmentName,
        environment: &EnvironmentName,
    ) -> Vec<String> {
        self.rules
            .iter()
            .filter(|r| &r.app == app && &r.environment == configured)
            .map(|r| match &r.pattern {
                HostPattern::Exact(host) => host.clone(),
                HostPattern::Template { prefix, suffix } => {
                    format!("{prefix}{environment}{suffix}")
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(app: &str, env: &str, host: &str) -> HostRule {
        let temporary = host.contains(PLACEHOLDER);
        HostRule {
            app: AppName::parse(app).unwrap(),
            environment: EnvironmentName::parse(env).unwrap(),
            pattern: HostPattern::parse(host, temporary).unwrap(),
        }
    }

    #[test]
    fn parse_table() {
        fn check(text: &str, temporary: bool, expected: Result<HostPattern, HostError>) {
            assert_eq!(HostPattern::parse(text, temporary), expected, "{text}");
        }
        let exact = |s: &str| Ok(HostPattern::Exact(s.into()));
        let template = |p: &str, s: &str| {
            Ok(HostPattern::Template {
                prefix: p.into(),
                suffix: s.into(),
            })
        };
        check("Shop.Example.com", false, exact("shop.example.com"));
        check(
            "{environment}.preview.example.com",
            true,
            template("", ".preview.example.com"),
        );
        check(
            "pr-{environment}.example.com",
            true,
            template("pr-", ".example.com"),
        );
        check("{Environment}.x", true, template("", ".x"));
        check(
            "shop example",
            false,
            Err(HostError::BadName("shop example".into())),
        );
        check("a/b", false, Err(HostError::BadName("a/b".into())));
        check("", false, Err(HostError::BadName("".into())));
        check(
            "shop.example.com",
            true,
            Err(HostError::NeedsTemplate("shop.example.com".into())),
        );
        check(
            "{environment}.x",
            false,
            Err(HostError::BadTemplate("{environment}.x".into())),
        );
        check(
            "{environment}{environment}.x",
            true,
            Err(HostError::BadTemplate(
                "{environment}{environment}.x".into(),
            )),
        );
        check(
            "{environment}",
            true,
            Err(HostError::BadName("{environment}".into())),
        );
        check(
            "{environment}.a_b",
            true,
            Err(HostError::BadName("{environment}.a_b".into())),
        );
    }

    #[test]
    fn normalize_table() {
        fn check(header: &str, expected: Option<&str>) {
            assert_eq!(normalize_host(header).as_deref(), expected, "{header}");
        }
        check("shop.example.com", Some("shop.example.com"));
        check("SHOP.Example.COM:8080", Some("shop.example.com"));
        check("shop.example.com.", Some("shop.example.com"));
        check("localhost:80", Some("localhost"));
        check("[::1]:8080", None);
        check("a:b", None);
        check("", None);
        check("evil/../x", None);
    }

    #[test]
    fn resolve_table() {
        let table = HostTable::new(vec![
            rule("shop", "production", "shop.example.com"),
            rule("shop", "staging", "staging.shop.example.com"),
            rule("shop", "preview", "{environment}.preview.example.com"),
            rule("blog", "production", "blog.example.com"),
        ])
        .unwrap();
        fn check(table: &HostTable, header: &str, expected: Option<(&str, &str, &str)>) {
            let got = table.resolve(header);
            let got = got.as_ref().map(|m| {
                (
                    m.app.as_str(),
                    m.configured.as_str(),
                    m.environment.as_str(),
                )
            });
            assert_eq!(got, expected, "{header}");
        }
        check(
            &table,
            "shop.example.com",
            Some(("shop", "production", "production")),
        );
        check(
            &table,
            "Shop.Example.com:8080",
            Some(("shop", "production", "production")),
        );
        check(
            &table,
            "staging.shop.example.com",
            Some(("shop", "staging", "staging")),
        );
        check(
            &table,
            "blog.example.com",
            Some(("blog", "production", "production")),
        );
        check(
            &table,
            "preview-login.preview.example.com",
            Some(("shop", "preview", "preview-login")),
        );
        // Only the pattern's own temporary environments: never another environment's name.
        check(&table, "staging.preview.example.com", None);
        check(
            &table,
            "preview-.preview.example.com",
            Some(("shop", "preview", "preview-")),
        );
        check(&table, "a.b.preview.example.com", None);
        check(&table, "other.example.com", None);
        check(&table, "example.com", None);
        check(&table, "", None);
    }

    #[test]
    fn conflicts_table() {
        fn check(rules: &[(&str, &str, &str)], conflict: Option<&str>) {
            let rules = rules.iter().map(|(a, e, h)| rule(a, e, h)).collect();
            let got = HostTable::new(rules).err().map(|c| c.example);
            assert_eq!(
                got.as_deref(),
                conflict,
                "{rules_text}",
                rules_text = conflict.unwrap_or("-")
            );
        }
        check(
            &[
                ("shop", "production", "a.com"),
                ("shop", "staging", "b.com"),
            ],
            None,
        );
        check(
            &[
                ("shop", "production", "a.com"),
                ("blog", "production", "A.com"),
            ],
            Some("a.com"),
        );
        check(
            &[
                ("shop", "preview", "{environment}.p.com"),
                ("shop", "staging", "preview-x.p.com"),
            ],
            Some("preview-x.p.com"),
        );
        // The exact name is not one of preview's (no `preview-` prefix): no conflict.
        check(
            &[
                ("shop", "preview", "{environment}.p.com"),
                ("shop", "staging", "staging.p.com"),
            ],
            None,
        );
        check(
            &[
                ("shop", "preview", "{environment}.p.com"),
                ("blog", "preview", "{environment}.p.com"),
            ],
            Some("preview-x.p.com"),
        );
        check(
            &[
                ("shop", "preview", "{environment}.p.com"),
                ("shop", "review", "{environment}.p.com"),
            ],
            None,
        );
        check(
            &[
                ("shop", "preview", "{environment}.p.com"),
                ("blog", "preview", "{environment}.com"),
            ],
            Some("preview-x.p.com"),
        );
        check(
            &[
                ("shop", "preview", "{environment}.p.com"),
                ("blog", "preview", "x{environment}.p.com"),
            ],
            None,
        );
    }
}
