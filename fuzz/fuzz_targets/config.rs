//! `stagehand.toml` from hostile text: any UTF-8 as TOML, with a fixed environment and a
//! `read_file` that always fails. `Config::from_sources` must answer Ok or Err (with a
//! message that names the file), never panic; an accepted config must hold what the
//! rest of stagehand relies on without re-checking.
#![no_main]

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use stagehand::config::{Config, ConfigError};

fn env() -> &'static HashMap<String, String> {
    static ENV: OnceLock<HashMap<String, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        [
            ("SHOP_WEBHOOK_SECRET", "It's a Secret to Everybody"),
            ("STAGEHAND_API_TOKEN", "token"),
            ("GITHUB_TOKEN", "ghp_x"),
            ("STAGEHAND__SERVER__MAX_PARALLEL_DEPLOYS", "3"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    })
}

fuzz_target!(|text: &str| {
    let file = Path::new("/etc/stagehand/stagehand.toml");
    let read_file = |path: &Path| -> std::io::Result<String> {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} (fuzzing: no files)", path.display()),
        ))
    };
    match Config::from_sources(file, text, env(), &read_file) {
        Ok(config) => {
            assert!(!config.apps.is_empty());
            assert!(config.server.max_parallel_deploys >= 1);
            for app in config.apps.values() {
                assert!(!app.secret.expose().is_empty(), "an app without a secret");
                assert!(!app.environments.is_empty());
                for env in app.environments.values() {
                    assert!(env.keep_releases >= 1);
                    assert!(env.name.as_str().len() <= 40);
                    for shared in &env.shared {
                        assert!(!shared.path.is_empty() && !shared.path.starts_with('/'));
                    }
                }
                let _ = config.describe();
            }
        }
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.starts_with("/etc/stagehand/stagehand.toml: "),
                "{message}"
            );
            if let ConfigError::Invalid { problems, .. } = &e {
                assert!(
                    !problems.is_empty(),
                    "an invalid config with no problem named"
                );
            }
        }
    }
});
