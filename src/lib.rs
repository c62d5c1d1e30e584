//! stagehand: push-to-deploy for multi-stage environments.
//!
//! Code map, every module (see `ARCHITECTURE.md` for the invariants):
//!
//! - The pure heart, no I/O: [`core`] (each forge's authentication and event decoding,
//!   branch → environment routing, names, deploy statuses and stage names, skip rules,
//!   durations, masking, app process decisions) and [`intake`] (what a verified delivery means for the store).
//! - Configuration: [`config`] (`stagehand.toml` + `STAGEHAND__…` → a validated
//!   [`config::Config`], by phase: raw form, loading, validation, types) and [`reload`]
//!   (the live config, swapped on SIGHUP or `/api/reload`).
//! - State: [`store`] (SQLite; every SQL statement), [`logs`] (deploy logs, live
//!   followers), [`metrics`], [`state_lock`] (one server per state dir).
//! - Work: [`pipeline`] (the runner, the deploy and its kinds of work, git, checkout,
//!   commands, reconciliation) and [`supervisor`] (the app processes of environments
//!   that `run`), over three leaves both use: [`layout`] (an environment's directories),
//!   [`command_env`] (the one environment commands and app processes get) and
//!   [`health`] (HTTP health checks).
//! - Reporting back: [`report`] (GitHub Deployments, notify; commit statuses on the other
//!   forges; one comment per pull request).
//! - Operations: [`ops`] (deploy, rollback, promote, sync, overview, releases, pins;
//!   HTTP-free, the same for the API and the dashboard) and [`api_types`] (the API's
//!   JSON as types, shared by the server and the CLI client).
//! - Edges: [`http`] (the actix-web server: hooks, API, dashboard), [`server`] (wires it
//!   all for `stagehand serve`), [`front_door`] (`stagehand front-door`: routes by host
//!   to each environment's process or static files, as its own process).
//! - The command line: [`cli`] and [`app_cli`] (client commands' rendering), [`client`]
//!   (their HTTP client), [`hook_send`] and [`hook_forge`] (`hook send`), [`init`],
//!   [`demo`], [`stdout`] (output that ends quietly on a closed pipe).
#![forbid(unsafe_code)]

pub(crate) mod api_types;
pub mod app_cli;
pub mod cli;
pub mod client;
pub(crate) mod command_env;
pub mod config;
pub mod core;
pub mod demo;
pub mod front_door;
pub(crate) mod health;
pub mod hook_forge;
pub mod hook_send;
pub mod http;
pub mod init;
pub mod intake;
pub(crate) mod layout;
pub mod logs;
pub mod metrics;
pub(crate) mod ops;
pub mod pipeline;
pub mod reload;
pub(crate) mod report;
pub mod server;
pub(crate) mod state_lock;
pub mod stdout;
pub mod store;
pub mod supervisor;
