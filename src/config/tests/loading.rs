//! A good file becomes ready types; overrides, secret files, server defaults.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::*;
use crate::core::ids::{AppName, EnvironmentName};
use crate::core::secret::Secret;

use super::{GOOD, parse};

#[test]
fn a_good_file_becomes_ready_types() {
    let config = parse(
        GOOD,
        &[("SHOP_SECRET", "s3cret"), ("STAGEHAND_API_TOKEN", "tok")],
    )
    .unwrap();
    assert_eq!(config.server.listen.port(), 9100);
    assert_eq!(
        config.server.state_dir,
        PathBuf::from("/etc/stagehand/state")
    );
    assert_eq!(
        config.server.api_token.as_ref().map(Secret::expose),
        Some("tok")
    );
    let shop = &config.apps[&AppName::parse("shop").unwrap()];
    assert_eq!(shop.secret.expose(), "s3cret");
    let prod = &shop.environments[&EnvironmentName::parse("production").unwrap()];
    assert_eq!(prod.env["APP_ENV"], "production");
    assert_eq!(prod.env["APP_NAME"], "shop");
    assert_eq!(prod.build, ["make"]);
    assert!(prod.protected && prod.auto_deploy);
    assert_eq!(
        prod.shared[0],
        SharedPath {
            path: "storage".into(),
            is_dir: true
        }
    );
    assert_eq!(
        prod.shared[1],
        SharedPath {
            path: ".env".into(),
            is_dir: false
        }
    );
    let staging = &shop.environments[&EnvironmentName::parse("staging").unwrap()];
    assert_eq!(
        (staging.keep_releases, staging.build.as_slice()),
        (3, &["make staging".to_string()][..])
    );
    let preview = &shop.environments[&EnvironmentName::parse("preview").unwrap()];
    assert_eq!(preview.step_timeout, Duration::from_secs(90));
    assert_eq!(
        preview.seed_from.as_ref().map(|s| s.as_str()),
        Some("staging")
    );
    assert_eq!(staging.step_timeout, Duration::from_secs(900));
    let table = config.describe();
    assert!(table.contains("branches feature/*"), "{table}");
    assert!(table.contains("seeded from staging"), "{table}");
}

#[test]
fn env_vars_override_keys() {
    let config = parse(
        GOOD,
        &[
            ("SHOP_SECRET", "s"),
            ("STAGEHAND__SERVER__MAX_PARALLEL_DEPLOYS", "4"),
            ("STAGEHAND__SERVER__LISTEN", "127.0.0.1:9200"),
        ],
    )
    .unwrap();
    assert_eq!(config.server.max_parallel_deploys, 4);
    assert_eq!(config.server.listen.port(), 9200);
    assert!(config.server.api_token.is_none());
}

#[test]
fn reconcile_interval_defaults_to_five_minutes_and_zero_turns_it_off() {
    let interval = |value: Option<&str>| {
        let toml = match value {
            Some(v) => GOOD.replace("[server]", &format!("[server]\nreconcile_interval = {v:?}")),
            None => GOOD.to_string(),
        };
        parse(&toml, &[("SHOP_SECRET", "s")]).map(|c| c.server.reconcile_interval)
    };
    assert_eq!(interval(None).unwrap(), Some(Duration::from_secs(300)));
    assert_eq!(
        interval(Some("30s")).unwrap(),
        Some(Duration::from_secs(30))
    );
    assert_eq!(interval(Some("0")).unwrap(), None);
    assert_eq!(interval(Some("0s")).unwrap(), None);
    for (bad, says) in [("soon", "\"soon\""), ("500ms", "too short")] {
        let message = interval(Some(bad)).unwrap_err().to_string();
        assert!(
            message.contains("server.reconcile_interval") && message.contains(says),
            "{message}"
        );
    }
}

#[test]
fn max_log_size_defaults_to_50_mib_and_an_app_may_override_it() {
    let config = parse(GOOD, &[("SHOP_SECRET", "s")]).unwrap();
    assert_eq!(config.server.max_log_size, 50 << 20);
    assert_eq!(config.apps.values().next().unwrap().max_log_size, None);
    let toml = GOOD
        .replace("[server]", "[server]\nmax_log_size = \"10MiB\"")
        .replace(
            "build = [\"make\"]",
            "build = [\"make\"]\nmax_log_size = \"64KiB\"",
        );
    let config = parse(&toml, &[("SHOP_SECRET", "s")]).unwrap();
    assert_eq!(config.server.max_log_size, 10 << 20);
    assert_eq!(
        config.apps.values().next().unwrap().max_log_size,
        Some(64 << 10)
    );
}

#[test]
fn secret_file_is_read_and_trimmed() {
    let toml = GOOD.replace(
        r#"secret_env = "SHOP_SECRET""#,
        r#"secret_file = "shop.secret""#,
    );
    let config = parse(&toml, &[]).unwrap();
    assert_eq!(
        config.apps.values().next().unwrap().secret.expose(),
        "from-file"
    );
}
