//! The pure core: every decision stagehand makes that can be made without touching
//! the world. Nothing here imports actix, tokio, rusqlite, git2, `std::fs`,
//! `std::net` or `std::process`, and nothing here reads a clock: callers pass the time in.

pub mod app_process;
pub mod deploy;
pub mod duration;
pub mod event;
pub mod hosts;
pub mod ids;
pub mod lifecycle;
pub mod mask;
pub mod ref_pattern;
pub mod release;
pub mod routing;
pub mod secret;
pub mod signature;
pub mod static_path;
pub mod time;
