//! Loading: every read the config needs happens here, and only here. The file, the
//! `STAGEHAND__SECTION__KEY` overrides laid over it (with the `config` crate), and the
//! webhook secrets kept in files. Validation then works on what was read, without
//! touching the machine; environment variables arrive as a map for the same reason.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::ConfigError;
use super::raw::RawConfig;
use super::types::Config;
use super::validate::{self, Inputs};

/// Reads a secret file; [`load`] passes `std::fs`, tests a table.
pub type ReadFile<'a> = &'a dyn Fn(&Path) -> std::io::Result<String>;

/// Reads `file` and the `STAGEHAND__…` variables in `env`, then validates.
/// `env` is passed in (not read from the process) so tests control it.
pub fn load(file: &Path, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
        file: file.to_owned(),
        source,
    })?;
    Config::from_sources(file, &text, env, &|path: &Path| {
        std::fs::read_to_string(path)
    })
}

/// Where `--config` defaults from: `$STAGEHAND_CONFIG`, else `./stagehand.toml`.
pub fn default_path(env: &HashMap<String, String>) -> PathBuf {
    env.get("STAGEHAND_CONFIG")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("stagehand.toml"))
}

/// Just `server.listen` from a config text, for client commands that need the
/// address but not the secrets a full load would insist on.
pub fn listen_address(toml_text: &str) -> Option<String> {
    let parsed = config::Config::builder()
        .add_source(config::File::from_str(toml_text, config::FileFormat::Toml))
        .build()
        .ok()?;
    parsed.get_string("server.listen").ok()
}

impl Config {
    /// The file's text with the overrides in `env` laid over it, its secret files read
    /// through `read_file`, then validated: every problem at once, or the config.
    pub fn from_sources(
        file: &Path,
        toml_text: &str,
        env: &HashMap<String, String>,
        read_file: ReadFile<'_>,
    ) -> Result<Config, ConfigError> {
        let raw = parse(toml_text, env).map_err(|e| ConfigError::Parse {
            file: file.to_owned(),
            message: e.to_string(),
        })?;
        let base_dir = file.parent().unwrap_or(Path::new("."));
        let secret_files = read_secret_files(&raw, base_dir, read_file);
        let inputs = Inputs {
            env,
            secret_files: &secret_files,
            base_dir,
        };
        validate::config(file, raw, &inputs).map_err(|problems| ConfigError::Invalid {
            file: file.to_owned(),
            problems,
        })
    }
}

fn parse(toml_text: &str, env: &HashMap<String, String>) -> Result<RawConfig, config::ConfigError> {
    let overrides: HashMap<String, String> = env
        .iter()
        .filter(|(k, _)| k.starts_with("STAGEHAND__"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    config::Config::builder()
        .add_source(config::File::from_str(toml_text, config::FileFormat::Toml))
        .add_source(
            config::Environment::with_prefix("STAGEHAND")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(overrides)),
        )
        .build()
        .and_then(config::Config::try_deserialize)
}

/// Every app's `secret_file`, read once: the text, or why it could not be read.
fn read_secret_files(
    raw: &RawConfig,
    base_dir: &Path,
    read_file: ReadFile<'_>,
) -> BTreeMap<PathBuf, Result<String, String>> {
    raw.apps
        .values()
        .filter_map(|app| app.secret_file.clone())
        .map(|path| {
            let path = validate::resolve(base_dir, path);
            let text = read_file(&path).map_err(|e| e.to_string());
            (path, text)
        })
        .collect()
}
