//! The keys of environments that run: inherited, overridden, and their errors.

use std::time::Duration;

use crate::config::*;
use crate::core::ids::EnvironmentName;

use super::{GOOD, errors, parse};

#[test]
fn run_keys_are_inherited_and_overridden() {
    let toml = GOOD
        .replace(
            "build = [\"make\"]\n",
            "build = [\"make\"]\nrun = \"python3 app.py\"\nstop_timeout = \"5s\"\ndrain_timeout = \"2m\"\n",
        )
        .replace(
            "keep_releases = 3\n",
            "keep_releases = 3\nstop_signal = \"INT\"\nhealth_check = { path = \"/healthz\", timeout = \"10s\" }\n",
        )
        .replace("[server]\n", "[server]\nports = \"21000-21099\"\n");
    let config = parse(&toml, &[("SHOP_SECRET", "s")]).unwrap();
    assert_eq!(
        config.server.ports,
        PortRange {
            first: 21000,
            last: 21099
        }
    );
    let shop = config.apps.values().next().unwrap();
    let staging = &shop.environments[&EnvironmentName::parse("staging").unwrap()];
    assert_eq!(
        staging.run,
        Some(RunConfig {
            command: "python3 app.py".into(),
            stop_signal: StopSignal::Int,
            stop_timeout: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(120),
        })
    );
    assert_eq!(
        staging.health_check,
        Some(HealthCheck {
            target: HealthTarget::Path("/healthz".into()),
            timeout: Duration::from_secs(10),
        })
    );
    let prod = &shop.environments[&EnvironmentName::parse("production").unwrap()];
    assert_eq!(
        prod.run.as_ref().map(|r| r.stop_signal),
        Some(StopSignal::Term)
    );
    assert!(config.describe().contains("runs `python3 app.py`"));
    // Without `run` nothing changes: the default range, no process.
    let plain = parse(GOOD, &[("SHOP_SECRET", "s")]).unwrap();
    assert_eq!(plain.server.ports, PortRange::default());
    assert!(
        plain
            .apps
            .values()
            .all(|a| a.environments.values().all(|e| e.run.is_none()))
    );
}

#[test]

fn run_errors_name_the_key() {
    let ok = [("SHOP_SECRET", "s")];
    let with_run = GOOD.replace(
        "build = [\"make\"]\n",
        "build = [\"make\"]\nrun = \"./serve\"\n",
    );
    let cases = [
        (
            GOOD.replace("[server]\n", "[server]\nports = \"80-90\"\n"),
            "server.ports: \"80-90\": ports below 1024",
        ),
        (
            with_run.replace("keep_releases = 3\n", "stop_signal = \"STOP\"\n"),
            "apps.shop.environments.staging.stop_signal: \"STOP\" is not a stop signal",
        ),
        (
            with_run.replace(
                "build = [\"make\"]\n",
                "build = [\"make\"]\nstop_timeout = \"long\"\n",
            ),
            "apps.shop.stop_timeout: \"long\" is not a duration",
        ),
        (
            GOOD.replace("keep_releases = 3\n", "stop_timeout = \"5s\"\n"),
            "apps.shop.environments.staging.stop_timeout: has no effect without `run`",
        ),
        (
            with_run.replace("keep_releases = 3\n", "run = \"\"\n"),
            "apps.shop.environments.staging.run: is empty",
        ),
        (
            with_run.replace(
                "keep_releases = 3\n",
                "health_check = { url = \"http://127.0.0.1:1/\" }\n",
            ),
            "apps.shop.environments.staging.health_check.url: \"http://127.0.0.1:1/\": with `run`, give a path",
        ),
        (
            GOOD.replace("keep_releases = 3\n", "health_check = { path = \"/up\" }\n"),
            "apps.shop.environments.staging.health_check.path: \"/up\": a path needs `run`",
        ),
        (
            with_run.replace(
                "keep_releases = 3\n",
                "health_check = { path = \"up now\" }\n",
            ),
            "apps.shop.environments.staging.health_check.path: \"up now\" must start with /",
        ),
    ];
    for (toml, needle) in cases {
        let message = errors(&toml, &ok);
        assert!(
            message.contains(needle),
            "expected {needle:?} in:\n{message}"
        );
    }
}
