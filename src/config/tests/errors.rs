//! Each broken file names its key; every problem is reported at once.

use super::{GOOD, errors};

/// Each broken file and a piece of the message it must give.
#[test]
fn errors_name_the_key() {
    let ok = [("SHOP_SECRET", "s")];
    type Vars<'a> = &'a [(&'a str, &'a str)];
    let cases: Vec<(String, Vars<'_>, &str)> = vec![
        (
            GOOD.replace("keep_releases = 3", "keep_release = 3"),
            &ok,
            "unknown field `keep_release`",
        ),
        (
            GOOD.replace("[server]", "[server]\nport = 1"),
            &ok,
            "unknown field `port`",
        ),
        (
            GOOD.to_string(),
            &[],
            "apps.shop.secret_env: environment variable SHOP_SECRET is not set",
        ),
        (
            GOOD.replace(r#"secret_env = "SHOP_SECRET""#, ""),
            &ok,
            "apps.shop: no webhook secret",
        ),
        (
            GOOD.replace(
                r#"secret_env = "SHOP_SECRET""#,
                r#"secret_file = "missing""#,
            ),
            &ok,
            "apps.shop.secret_file: cannot read /etc/stagehand/missing",
        ),
        (
            GOOD.replace(
                "build = [\"make\"]\n",
                "build = [\"make\"]\nnotify = [\"https://ok.example.com\", { url = \"https://x.example.com\", format = \"teams\" }]\n",
            ),
            &ok,
            "apps.shop.notify: format \"teams\" is not one of \"json\", \"slack\", \"discord\"",
        ),
        (
            GOOD.replace(r#""90s""#, r#""90 seconds""#),
            &ok,
            "apps.shop.environments.preview.step_timeout: \"90 seconds\" is not a duration",
        ),
        (
            GOOD.replace("[server]", "[server]\nmax_log_size = \"50 megs\""),
            &ok,
            "server.max_log_size: \"50 megs\" is not a size",
        ),
        (
            GOOD.replace(
                "build = [\"make\"]",
                "build = [\"make\"]\nmax_log_size = \"0MiB\"",
            ),
            &ok,
            "apps.shop.max_log_size: must be more than 0 bytes",
        ),
        (
            GOOD.replace(r#"seed_from = "staging""#, r#"seed_from = "stage""#),
            &ok,
            "apps.shop.environments.preview.seed_from: \"stage\" names no other environment",
        ),
        (
            GOOD.replace(r#"branch = "develop""#, r#"branch = "ma*""#),
            &ok,
            "environments `production` (branch main) and `staging` (branches ma*) both match \"main\"",
        ),
        (
            GOOD.split("[apps.shop.environments.production]")
                .next()
                .unwrap()
                .to_string(),
            &ok,
            "apps.shop.environments: the app has no environments",
        ),
        (
            GOOD.replace(r#"branch = "develop""#, ""),
            &ok,
            "apps.shop.environments.staging: nothing feeds this environment",
        ),
        (
            GOOD.replace(r#"listen = "127.0.0.1:9100""#, r#"listen = "nine""#),
            &ok,
            "server.listen: \"nine\" is not an address",
        ),
        (
            GOOD.replace(r#"["storage/", ".env"]"#, r#"["../etc"]"#),
            &ok,
            // The app's own key (issue 10): it was reported under each environment's.
            "apps.shop.shared: \"../etc\" must be a relative path",
        ),
        (
            GOOD.replace(
                "[apps.shop.environments.staging]",
                "[apps.shop.environments.Staging]",
            ),
            &ok,
            "apps.shop.environments.Staging: environment name \"Staging\" is not allowed",
        ),
        (
            GOOD.replace("keep_releases = 3", "keep_releases = 0"),
            &ok,
            "keep_releases: must be at least 1",
        ),
        (
            GOOD.replace(r#"APP_NAME = "shop""#, r#"STAGEHAND_APP = "x""#),
            &ok,
            "STAGEHAND_APP is set by stagehand itself",
        ),
        ("[server]\n".to_string(), &ok, "apps: no app is configured"),
        (
            "[apps.shop\n".to_string(),
            &ok,
            "/etc/stagehand/stagehand.toml: ",
        ),
    ];
    for (toml, vars, needle) in cases {
        let message = errors(&toml, vars);
        assert!(
            message.contains(needle),
            "expected {needle:?} in:\n{message}"
        );
        assert!(
            message.starts_with("/etc/stagehand/stagehand.toml: "),
            "{message}"
        );
    }
}

#[test]
fn all_problems_are_reported_at_once() {
    let toml = GOOD
        .replace(r#""90s""#, r#""soon""#)
        .replace("keep_releases = 3", "keep_releases = -1");
    let message = errors(&toml, &[]);
    assert!(
        message.contains("4 problem(s)") || message.contains("3 problem(s)"),
        "{message}"
    );
    assert!(
        message.contains("SHOP_SECRET") && message.contains("soon") && message.contains("-1"),
        "{message}"
    );
}
