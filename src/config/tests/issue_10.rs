//! Issue 10 item 2: what a reader found while the config was split. Each case lists the
//! whole problem list a file gives: every problem once, under the key that was written.

use crate::config::{AppConfig, ConfigError, FetchWith, MirrorMode, StopSignal};
use crate::core::forge::Forge;
use crate::core::notify::NotifyFormat;

use super::{GOOD, parse};

/// Every problem `toml` gives (empty: it is valid).
fn problems(toml: &str) -> Vec<String> {
    match parse(toml, &[("SHOP_SECRET", "s")]) {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid { problems, .. }) => problems,
        Err(e) => vec![format!("not validated: {e}")],
    }
}

/// `toml`'s problems are exactly `expected`, each given as a prefix, in any order.
fn check(toml: &str, expected: &[&str]) {
    let mut left = problems(toml);
    for prefix in expected {
        match left.iter().position(|p| p.starts_with(prefix)) {
            Some(i) => drop(left.remove(i)),
            None => panic!("no {prefix:?} in {:#?}\n{toml}", problems(toml)),
        }
    }
    assert!(left.is_empty(), "unexpected: {left:#?}\n{toml}");
}

fn app_keys(keys: &str) -> String {
    GOOD.replace(
        "build = [\"make\"]\n",
        &format!("build = [\"make\"]\n{keys}\n"),
    )
}

fn only_app(toml: &str) -> AppConfig {
    match parse(toml, &[("SHOP_SECRET", "s")]) {
        Ok(config) => config.apps.into_values().next().expect("GOOD has one app"),
        Err(e) => panic!("{toml}\n{e}"),
    }
}

/// App-level defaults were checked once per environment, some under a bare key
/// (`step_timeout`), some under each environment's key.
#[test]
fn app_defaults_are_checked_once_under_the_apps_key() {
    let cases: [(&str, &[&str]); 6] = [
        (
            "step_timeout = \"soon\"",
            &["apps.shop.step_timeout: \"soon\" is not a duration"],
        ),
        (
            "cache = [\"/vendor\"]",
            &["apps.shop.cache: \"/vendor\" must be a relative path"],
        ),
        (
            "keep_releases = 0",
            &["apps.shop.keep_releases: must be at least 1, got 0"],
        ),
        (
            "checks_timeout = \"later\"",
            &["apps.shop.checks_timeout: \"later\" is not a duration"],
        ),
        (
            "require_checks = []",
            &["apps.shop.require_checks: list the check names"],
        ),
        (
            "run = \"./serve\"\nstop_signal = \"STOP\"",
            &["apps.shop.stop_signal: \"STOP\" is not a stop signal"],
        ),
    ];
    for (keys, expected) in cases {
        check(&app_keys(keys), expected);
    }
    check(
        &GOOD.replace("[\"storage/\", \".env\"]", "[\"../etc\"]"),
        &["apps.shop.shared: \"../etc\" must be a relative path"],
    );
    check(
        &GOOD.replace("APP_NAME = \"shop\"", "\"APP-NAME\" = \"shop\""),
        &["apps.shop.env: \"APP-NAME\" is not a valid variable name"],
    );
    // An environment's own wrong value stays under the environment's key, and a wrong
    // app value is still one problem when an environment also sets the key.
    check(
        &app_keys("step_timeout = \"soon\"")
            .replace("step_timeout = \"90s\"", "step_timeout = \"later\""),
        &[
            "apps.shop.step_timeout: \"soon\"",
            "apps.shop.environments.preview.step_timeout: \"later\"",
        ],
    );
}

/// Fixed-list words are serde enums: a wrong one names its key and the allowed words,
/// and does not hide the file's other problems.
#[test]
fn enumerated_values_name_the_allowed_words_beside_other_problems() {
    let keep_zero = |toml: String| toml.replace("keep_releases = 3", "keep_releases = 0");
    let cases: [(&str, &str); 4] = [
        // A wrong forge ended the parse: the other problem went unreported.
        (
            "forge = \"sourcehut\"",
            "apps.shop.forge: \"sourcehut\" is not a forge: use one of \"github\", \"gitlab\", \"gitea\", \"forgejo\", \"bitbucket\"",
        ),
        (
            "fetch_with = \"svn\"",
            "apps.shop.fetch_with: \"svn\" is not a way to fetch: use one of \"auto\", \"git2\", \"git\"",
        ),
        (
            "mirror = \"shallow\"",
            "apps.shop.mirror: \"shallow\" is not a kind of mirror: use one of \"full\", \"treeless\"",
        ),
        (
            "notify = [{ url = \"https://x.example.com\", format = \"teams\" }]",
            "apps.shop.notify: format \"teams\" is not one of \"json\", \"slack\", \"discord\"",
        ),
    ];
    for (keys, problem) in cases {
        check(
            &keep_zero(app_keys(keys)),
            &[
                problem,
                "apps.shop.environments.staging.keep_releases: must be at least 1",
            ],
        );
    }
    let app = only_app(&app_keys(
        "fetch_with = \"git\"\nmirror = \"treeless\"\nforge = \"github\"\nrun = \"./serve\"\nstop_signal = \" sigint \"\nnotify = [{ url = \"https://x.example.com\", format = \"slack\" }]",
    ));
    assert_eq!(
        (app.fetch_with, app.mirror, app.forge, app.notify[0].format),
        (
            FetchWith::GitCli,
            MirrorMode::Treeless,
            Forge::Github,
            NotifyFormat::Slack
        )
    );
    let run = app.environments.values().filter_map(|e| e.run.as_ref());
    assert!(run.clone().count() == 3 && run.clone().all(|r| r.stop_signal == StopSignal::Int));
    let plain = only_app(GOOD);
    assert_eq!(
        (plain.fetch_with, plain.mirror),
        (FetchWith::Auto, MirrorMode::Full)
    );
}

/// URLs are parsed: `starts_with("http")` let `https://` without a host, spaces in a
/// host and (for `url`, which becomes a dashboard link) any scheme through.
#[test]
fn urls_are_parsed() {
    let env_url = |url: &str| {
        GOOD.replace(
            "protected = true\n",
            &format!("protected = true\nurl = \"{url}\"\n"),
        )
    };
    let cases: Vec<(String, &[&str])> = vec![
        (
            GOOD.replace("[server]\n", "[server]\npublic_url = \"https://\"\n"),
            &["server.public_url: \"https://\" is not an http(s) URL"],
        ),
        (
            app_keys("notify = [\"https://exa mple.com/hook\"]"),
            &["apps.shop.notify: \"https://exa mple.com/hook\" is not an http(s) URL"],
        ),
        (
            GOOD.replace(
                "github = \"acme/shop\"",
                "github = { repo = \"acme/shop\", token_env = \"SHOP_SECRET\", api_url = \"ftp://api\" }",
            ),
            &["apps.shop.github.api_url: \"ftp://api\" is not an http(s) URL"],
        ),
        (
            env_url("javascript:alert(1)"),
            &["apps.shop.environments.production.url: \"javascript:alert(1)\" is not an http(s) URL"],
        ),
        (env_url("https://{environment}.example.com/"), &[]),
        (
            env_url("https://{environment}.exa mple.com/"),
            &["apps.shop.environments.production.url: \"https://{environment}.exa mple.com/\""],
        ),
        (
            GOOD.replace(
                "keep_releases = 3\n",
                "health_check = { url = \"https://127.0.0.1/up\" }\n",
            ),
            &["apps.shop.environments.staging.health_check.url: \"https://127.0.0.1/up\" is not an http:// URL"],
        ),
    ];
    for (toml, expected) in cases {
        check(&toml, expected);
    }
}

/// An unknown key ended the parse, so the file's other problems were not reported.
#[test]
fn unknown_keys_are_reported_with_every_other_problem() {
    let toml = GOOD
        .replace("keep_releases = 3", "keep_release = 3")
        .replace("[server]\n", "[server]\nport = 1\nmax_parallel_deploys = 0\n")
        .replace("step_timeout = \"90s\"", "step_timeout = \"soon\"\nprotect = true")
        .replace(
            "build = [\"make\"]\n",
            "build = [\"make\"]\nnotify = [{ url = \"https://x.example.com\", fromat = \"slack\" }]\nstatuses = { token_env = \"T\", api = \"x\" }\n",
        )
        + "[deploys]\nparallel = 2\n";
    check(
        &toml,
        &[
            "deploys: unknown field `deploys`",
            "server.port: unknown field `port`",
            "server.max_parallel_deploys: must be at least 1",
            "apps.shop.notify.fromat: unknown field `fromat`",
            "apps.shop.statuses.api: unknown field `api`",
            "apps.shop.statuses: GitHub reports as Deployments",
            "apps.shop.environments.staging.keep_release: unknown field `keep_release`",
            "apps.shop.environments.preview.protect: unknown field `protect`",
            "apps.shop.environments.preview.step_timeout: \"soon\" is not a duration",
        ],
    );
    let health = GOOD.replace(
        "keep_releases = 3\n",
        "health_check = { url = \"http://127.0.0.1:1/\", timout = \"5s\" }\n",
    );
    check(
        &health,
        &["apps.shop.environments.staging.health_check.timout: unknown field `timout`"],
    );
    // An override from the environment is a key like any other.
    let message = parse(
        GOOD,
        &[("SHOP_SECRET", "s"), ("STAGEHAND__SERVER__LISTEN_ON", "x")],
    )
    .map(|_| ())
    .unwrap_err()
    .to_string();
    assert!(
        message.contains("server.listen_on: unknown field `listen_on`"),
        "{message}"
    );
}
