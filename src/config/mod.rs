//! `stagehand.toml` + `STAGEHAND__SECTION__KEY` overrides → a validated [`Config`].
//!
//! Split by phase, like vector's `src/config/`; each phase knows only the one before:
//!
//! - `raw.rs`: the file's shape as serde reads it; unknown keys and words outside a
//!   fixed list are kept, not fatal, so they are reported with everything else;
//! - `load.rs`: all I/O: the file, the environment overrides (the `config` crate), the
//!   secret files; [`load`], [`default_path`], [`listen_address`], [`Config::from_sources`];
//! - `validate/`: raw + what was read → the types below, or every problem at once, each
//!   naming its key, so an operator fixes a file in one pass. The run and front-door
//!   features keep their checks in their own files there (`validate/run.rs`,
//!   `validate/front_door.rs`): each feature's rules read in one place, while their
//!   types live with the others in `types.rs`, which is all the rest of stagehand sees;
//! - `types.rs`: the validated config; handlers never see raw TOML: durations, names,
//!   patterns, URLs and paths arrive as ready-to-use, checked values.
//!
//! The tests (`tests/`) drive [`Config::from_sources`] with strings.

mod load;
mod raw;
mod types;
mod validate;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use crate::core::app_process::{PortRange, StopSignal};
pub use load::{ReadFile, default_path, listen_address, load};
pub use types::{
    AppConfig, Config, DEFAULT_MAX_LOG_SIZE, EnvironmentConfig, FetchWith, GithubReport,
    HealthCheck, HealthTarget, MirrorMode, NotifyTarget, RunConfig, ServerConfig, SharedPath,
    StatusReport,
};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read the config file: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Parse { file: PathBuf, message: String },
    #[error("{file}: {} problem(s):\n  - {}", problems.len(), problems.join("\n  - "))]
    Invalid {
        file: PathBuf,
        problems: Vec<String>,
    },
}
