//! An app's keys: forge and repository, reporting back, checks, sync exclusions.

use std::time::Duration;

use crate::core::checks::RequiredChecks;
use crate::core::forge::Forge;
use crate::core::ids::AppName;

use super::{GOOD, errors, parse};

#[test]
fn require_checks_is_true_or_names_per_environment_with_the_app_default() {
    let toml = GOOD.replace(
        "[apps.shop.environments.production]",
        "require_checks = true\nchecks_timeout = \"10m\"\n[apps.shop.environments.production]\nrequire_checks = [\"ci\"]",
    );
    let config = parse(&toml, &[("SHOP_SECRET", "s")]).unwrap_or_else(|e| panic!("{e}"));
    let shop = &config.apps[&AppName::parse("shop").unwrap()];
    for (name, env) in &shop.environments {
        let expected = if name.as_str() == "production" {
            RequiredChecks::Named(vec!["ci".into()])
        } else {
            RequiredChecks::All
        };
        assert_eq!(env.require_checks.as_ref(), Some(&expected), "{name}");
        assert_eq!(env.checks_timeout, Duration::from_secs(600), "{name}");
    }
    let empty = GOOD.replace(
        "[apps.shop.environments.production]",
        "[apps.shop.environments.production]\nrequire_checks = []",
    );
    let message = parse(&empty, &[("SHOP_SECRET", "s")])
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("apps.shop.environments.production.require_checks: list the check names"),
        "{message}"
    );
}

#[test]
fn forge_and_repository_keys() {
    let with = |keys: &str| GOOD.replace("github = \"acme/shop\"\n", keys);
    let ok = |keys: &str| {
        let config =
            parse(&with(keys), &[("SHOP_SECRET", "s")]).unwrap_or_else(|e| panic!("{keys}: {e}"));
        let app = config.apps.into_values().next().unwrap();
        (app.forge, app.repository)
    };
    assert_eq!(
        ok("github = \"acme/shop\"\n"),
        (Forge::Github, "acme/shop".into())
    );
    assert_eq!(
        ok("repository = \"acme/shop\"\n"),
        (Forge::Github, "acme/shop".into())
    );
    assert_eq!(
        ok("forge = \"gitlab\"\nrepository = \"acme/web/shop\"\n"),
        (Forge::Gitlab, "acme/web/shop".into())
    );
    let statuses = parse(
        &with("forge = \"gitlab\"\nrepository = \"a/b\"\nstatuses = { token_env = \"GL\" }\n"),
        &[("SHOP_SECRET", "s"), ("GL", "glpat")],
    )
    .unwrap();
    let report = statuses
        .apps
        .values()
        .next()
        .unwrap()
        .status_report
        .clone()
        .unwrap();
    assert_eq!(report.api_url, "https://gitlab.com/api/v4");
    assert_eq!(report.token.expose(), "glpat");
    assert_eq!(
        ok("forge = \"bitbucket\"\nrepository = \"Acme/Shop\"\ngithub = \"acme/shop\"\n"),
        (Forge::Bitbucket, "Acme/Shop".into())
    );
    let cases = [
        ("", "apps.shop.repository: is required"),
        (
            "repository = \"acme/shop\"\ngithub = \"acme/other\"\n",
            "apps.shop.repository: \"acme/shop\" disagrees with apps.shop.github",
        ),
        (
            "forge = \"gitea\"\nrepository = \"a/b/c\"\n",
            "\"a/b/c\" is not owner/name",
        ),
        (
            "forge = \"sourcehut\"\nrepository = \"a/b\"\n",
            "apps.shop.forge",
        ),
        (
            "repository = \"a/b\"\nstatuses = { token_env = \"GH\" }\n",
            "apps.shop.statuses: GitHub reports as Deployments",
        ),
        (
            "forge = \"gitea\"\nrepository = \"a/b\"\nstatuses = { token_env = \"GH\" }\n",
            "apps.shop.statuses.api_url: is required for gitea",
        ),
        (
            "forge = \"gitlab\"\nrepository = \"a/b\"\nstatuses = { token_env = \"NOPE\" }\n",
            "apps.shop.statuses.token_env: environment variable NOPE is not set",
        ),
        (
            "forge = \"gitlab\"\ngithub = { repo = \"a/b\", token_env = \"GH\" }\n",
            "apps.shop.github.token_env: reports deploys to GitHub's API, but the app's forge is gitlab",
        ),
        (
            "forge = \"bitbucket\"\nrepository = \"a/b\"\nrequire_checks = true\n",
            "apps.shop.require_checks: stagehand reads no check results from Bitbucket",
        ),
        (
            "forge = \"forgejo\"\nrepository = \"a/b\"\nrequire_checks = true\n",
            "apps.shop.require_checks: Forgejo sends no commit-status events",
        ),
    ];
    for (keys, needle) in cases {
        let err = parse(&with(keys), &[("SHOP_SECRET", "s"), ("GH", "t")])
            .err()
            .unwrap_or_else(|| panic!("{keys} was accepted"))
            .to_string();
        assert!(err.contains(needle), "{keys}: {err}");
    }
    // With its API to ask, a Forgejo app may wait for checks.
    let forgejo = "forge = \"forgejo\"\nrepository = \"a/b\"\nrequire_checks = true\nstatuses = { token_env = \"GH\", api_url = \"http://forgejo/api/v1\" }\n";
    parse(&with(forgejo), &[("SHOP_SECRET", "s"), ("GH", "t")])
        .unwrap_or_else(|e| panic!("{forgejo}: {e}"));
}

#[test]
fn github_table_enables_reporting() {
    let table =
        r#"github = { repo = "acme/shop", token_env = "GH", api_url = "http://127.0.0.1:1/" }"#;
    let toml = GOOD.replace(r#"github = "acme/shop""#, table);
    let config = parse(&toml, &[("SHOP_SECRET", "s"), ("GH", "gh-token")]).unwrap();
    let app = config.apps.values().next().unwrap();
    assert_eq!(app.repository, "acme/shop");
    let report = app.github_report.as_ref().unwrap();
    assert_eq!(
        (report.token.expose(), report.api_url.as_str()),
        ("gh-token", "http://127.0.0.1:1")
    );
    let message = errors(&toml, &[("SHOP_SECRET", "s")]);
    assert!(
        message.contains("apps.shop.github.token_env: environment variable GH is not set"),
        "{message}"
    );
    let plain = parse(GOOD, &[("SHOP_SECRET", "s")]).unwrap();
    assert!(plain.apps.values().next().unwrap().github_report.is_none());
}

/// Issue 16 items 1 and 3: exclusions merge app and environment patterns; a bad
/// one is named with its key, once.
#[test]
fn sync_exclude_before_sync_and_link_after_build() {
    let toml = GOOD
        .replace(
            "build = [\"make\"]\n",
            "build = [\"make\"]\nsync_exclude = [\"*.key\"]\nbefore_sync = [\"dump\"]\nlink_after_build = true\n",
        )
        .replace(
            "[apps.shop.environments.preview]",
            "[apps.shop.environments.preview]\nsync_exclude = [\"instance/config.py\"]",
        );
    let config = parse(&toml, &[("SHOP_SECRET", "s")]).unwrap_or_else(|e| panic!("{e}"));
    let app = config.apps.values().next().unwrap();
    let preview = app
        .environments
        .values()
        .find(|e| e.name.as_str() == "preview")
        .unwrap();
    assert!(preview.sync_exclude.excludes("tls/a.key"));
    assert!(preview.sync_exclude.excludes("instance/config.py"));
    assert_eq!(preview.before_sync, ["dump"]);
    assert!(preview.link_after_build);
    let plain = parse(GOOD, &[("SHOP_SECRET", "s")]).unwrap();
    let env = plain
        .apps
        .values()
        .next()
        .unwrap()
        .environments
        .values()
        .next()
        .unwrap();
    assert!(env.sync_exclude.is_empty() && !env.link_after_build);

    let bad = toml.replace(r#"["*.key"]"#, r#"["[ab].key"]"#);
    let message = errors(&bad, &[("SHOP_SECRET", "s")]);
    assert_eq!(
        message
            .matches("apps.shop.sync_exclude: \"[ab].key\"")
            .count(),
        1,
        "{message}"
    );
}

/// `export_ignore`: off unless set; an environment's value overrides its app's; a value
/// that is not a boolean names the key.
#[test]
fn export_ignore_is_an_overridable_switch() {
    let env_of = |config: &crate::config::Config, name: &str| {
        let app = config.apps.values().next().unwrap();
        app.environments
            .values()
            .find(|e| e.name.as_str() == name)
            .unwrap()
            .export_ignore
    };
    let plain = parse(GOOD, &[("SHOP_SECRET", "s")]).unwrap();
    assert!(!env_of(&plain, "preview"));
    let toml = GOOD
        .replace(
            "build = [\"make\"]\n",
            "build = [\"make\"]\nexport_ignore = true\n",
        )
        .replace(
            "[apps.shop.environments.preview]",
            "[apps.shop.environments.preview]\nexport_ignore = false",
        );
    let config = parse(&toml, &[("SHOP_SECRET", "s")]).unwrap_or_else(|e| panic!("{e}"));
    assert!(!env_of(&config, "preview"));
    // `stagehand check` says so beside each environment it applies to.
    let table = config.describe();
    let noted = |env: &str| {
        table.lines().any(|l| {
            l.trim_start().starts_with(env) && l.contains("releases without export-ignore paths")
        })
    };
    assert!(noted("production") && !noted("preview"), "{table}");
    let others: Vec<bool> = config
        .apps
        .values()
        .next()
        .unwrap()
        .environments
        .values()
        .filter(|e| e.name.as_str() != "preview")
        .map(|e| e.export_ignore)
        .collect();
    assert!(!others.is_empty() && others.iter().all(|&on| on));

    // Named by key, both of them (a flattened table's booleans used to name only the
    // table: "for key `apps.shop`").
    let bad = GOOD
        .replace(
            "build = [\"make\"]\n",
            "build = [\"make\"]\nexport_ignore = \"yes\"\n",
        )
        .replace(
            "keep_releases = 3\n",
            "keep_releases = 3\nlink_after_build = 1\n",
        );
    let message = errors(&bad, &[("SHOP_SECRET", "s")]);
    assert!(
        message.contains("apps.shop.export_ignore: \"yes\" is not a boolean: use true or false"),
        "{message}"
    );
    assert!(
        message.contains("apps.shop.environments.staging.link_after_build: 1 is not a boolean"),
        "{message}"
    );
}
