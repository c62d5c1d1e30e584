//! stagehand: push-to-deploy for multi-stage environments.
//!
//! Code map (see `ARCHITECTURE.md` for the invariants):
//!
//! - [`core`]: the pure heart. Signature checks, GitHub event decoding, branch →
//!   environment routing, environment and release naming, deploy statuses. No I/O.
//! - [`config`]: `stagehand.toml` + `STAGEHAND__…` overrides → a validated [`config::Config`].
//! - [`store`]: the embedded SQLite database; every SQL statement lives there.
//! - [`intake`]: what a verified delivery means for the store (the hook's decisions,
//!   independent of HTTP).
//! - [`http`]: the actix-web edge: `/hooks`, `/api`, the dashboard, `/healthz`, `/metrics`.
//! - [`supervisor`]: the app processes of environments that `run`: started detached,
//!   health-checked, switched to, restarted with backoff, re-adopted after a restart.
//! - [`server`]: wires config, store and HTTP together for `stagehand serve`.
#![forbid(unsafe_code)]

pub mod app_cli;
pub mod cli;
pub mod client;
pub mod config;
pub mod core;
pub mod demo;
pub mod front_door;
pub mod hook_send;
pub mod http;
pub mod intake;
pub mod logs;
pub mod metrics;
pub mod pipeline;
pub mod report;
pub mod server;
pub mod store;
pub mod supervisor;
