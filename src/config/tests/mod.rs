//! The config's tests, driven through [`Config::from_sources`] with strings: each file
//! one concern, sharing the file below and its helpers.

use std::collections::HashMap;
use std::path::Path;

use crate::config::{Config, ConfigError};

mod apps;
mod errors;
mod front_door;
mod issue_10;
mod loading;
mod run;

pub(super) const GOOD: &str = r#"
[server]
listen = "127.0.0.1:9100"
state_dir = "state"

[apps.shop]
repo = "/srv/git/shop.git"
github = "acme/shop"
secret_env = "SHOP_SECRET"
root = "/srv/shop"
shared = ["storage/", ".env"]
build = ["make"]
env = { APP_NAME = "shop", APP_ENV = "unset" }

[apps.shop.environments.production]
branch = "main"
protected = true
env = { APP_ENV = "production" }

[apps.shop.environments.staging]
branch = "develop"
keep_releases = 3
build = ["make staging"]

[apps.shop.environments.preview]
branch = "feature/*"
seed_from = "staging"
step_timeout = "90s"
"#;

pub(super) fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(super) fn parse(toml: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let read = |p: &Path| -> std::io::Result<String> {
        if p.ends_with("shop.secret") {
            Ok("from-file\n".into())
        } else {
            Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such file",
            ))
        }
    };
    Config::from_sources(
        Path::new("/etc/stagehand/stagehand.toml"),
        toml,
        &env(vars),
        &read,
    )
}

pub(super) fn errors(toml: &str, vars: &[(&str, &str)]) -> String {
    match parse(toml, vars) {
        Ok(_) => panic!("config was accepted:\n{toml}"),
        Err(e) => e.to_string(),
    }
}

/// Validation works on what `load.rs` read: none of its files reaches for the machine.
#[test]
fn validation_reads_nothing() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config/validate");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut checked = 0;
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        for reach in [
            "std::fs",
            "std::env",
            "std::process",
            "std::io",
            "TcpStream",
            "tokio",
        ] {
            assert!(!text.contains(reach), "{} uses {reach}", path.display());
        }
        checked += 1;
    }
    assert!(checked >= 6, "only {checked} files in {}", dir.display());
}
