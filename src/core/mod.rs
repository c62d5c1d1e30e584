//! The pure core: every decision stagehand makes that can be made without touching
//! the world. Nothing here imports actix, tokio, rusqlite, git2, `std::fs`,
//! `std::net` or `std::process`, and nothing here reads a clock: callers pass the time in.

pub mod app_process;
pub(crate) mod checks;
pub(crate) mod deploy;
pub mod duration;
pub mod event;
pub(crate) mod export_ignore;
pub mod forge;
pub(crate) mod hosts;
pub mod ids;
pub(crate) mod lifecycle;
pub(crate) mod line_split;
pub(crate) mod log_text;
pub(crate) mod mask;
pub(crate) mod notify;
pub(crate) mod reconcile;
pub mod ref_pattern;
pub(crate) mod release;
pub mod routing;
pub(crate) mod secret;
pub mod signature;
pub(crate) mod size;
pub(crate) mod stage;
pub(crate) mod static_path;
pub(crate) mod sync_exclude;
pub(crate) mod time;
pub(crate) mod wildmatch;
