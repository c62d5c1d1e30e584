//! What a test server is configured with: the webhook secret and API token, the
//! deliveries in `webhook-samples/`, and the TOML the tests start from.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

pub const SECRET: &str = "It's a Secret to Everybody";
pub const TOKEN: &str = "test-api-token";

pub fn sample_bytes(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("webhook-samples")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

pub fn sample(name: &str) -> Value {
    serde_json::from_slice(&sample_bytes(name)).unwrap()
}

/// The config a harness starts with unless told otherwise: production, staging, a
/// preview pattern and a tag pattern, so every row of the hook table has a target.
pub fn config_toml(dir: &Path) -> String {
    shop_toml(
        dir,
        &dir.join("repo"),
        r#"
[apps.shop.environments.production]
branch = "main"
protected = true

[apps.shop.environments.staging]
branch = "develop"

[apps.shop.environments.preview]
branch = "feature/*"
seed_from = "staging"

[apps.shop.environments.releases]
tag = "v*"
"#,
    )
}

/// A config with one app, `shop`, whose state and root live in `dir` and whose repo is
/// `repo`; `rest` adds app keys and `[apps.shop.environments.*]` tables.
pub fn shop_toml(dir: &Path, repo: &Path, rest: &str) -> String {
    shop_toml_with(dir, repo, "", rest)
}

/// [`shop_toml`] with more `[server]` keys. Reconciliation is off unless `server`
/// sets `reconcile_interval`: its round at start would deploy every mapped branch
/// beside the deliveries a test sends.
pub fn shop_toml_with(dir: &Path, repo: &Path, server: &str, rest: &str) -> String {
    let reconcile = if server.contains("reconcile_interval") {
        ""
    } else {
        "reconcile_interval = \"0\"\n"
    };
    format!(
        "[server]\nstate_dir = \"{state}\"\n{reconcile}{server}\n\n[apps.shop]\nrepo = \"{repo}\"\n\
         github = \"acme/shop\"\nsecret_env = \"SHOP_WEBHOOK_SECRET\"\nroot = \"{root}\"\n{rest}\n",
        state = dir.join("state").display(),
        repo = repo.display(),
        root = dir.join("srv").display(),
    )
}

/// The build that tests of live log following use: a line, three seconds, a marker
/// file, another line.
pub const FIRST_THEN_SECOND: &str = r#"shared = ["storage/"]
build = ["echo first", "sleep 3; touch \"$STAGEHAND_SHARED_DIR/second-written\"; echo second"]
[apps.shop.environments.staging]
branch = "develop"
"#;

/// The process environment a harness's stagehand sees: the secret, the token, PATH
/// (builds run `sh`), and `extra`.
pub fn env_map(extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = [
        ("SHOP_WEBHOOK_SECRET", SECRET),
        ("STAGEHAND_API_TOKEN", TOKEN),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    if let Ok(path) = std::env::var("PATH") {
        env.insert("PATH".into(), path);
    }
    env
}
