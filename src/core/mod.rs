//! The pure core: every decision stagehand makes that can be made without touching
//! the world. Nothing here imports actix, tokio, rusqlite, git2, `std::fs`,
//! `std::net` or `std::process`, and nothing here reads a clock: callers pass the time in.

pub mod app_process;
pub mod checks;
pub mod deploy;
pub mod duration;
pub mod event;
pub mod forge;
pub mod hosts;
pub mod ids;
pub mod lifecycle;
pub mod line_split;
pub mod log_text;
pub mod mask;
pub mod notify;
pub mod reconcile;
pub mod ref_pattern;
pub mod release;
pub mod routing;
pub mod secret;
pub mod signature;
pub mod size;
pub mod stage;
pub mod static_path;
pub mod sync_exclude;
pub mod time;
