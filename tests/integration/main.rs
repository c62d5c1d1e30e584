//! stagehand's end-to-end tests, as one binary: one link step on a 2-core machine
//! instead of one per file. Each module drives the real thing (git repositories in temp
//! dirs, the server on 127.0.0.1:0, real processes, real SQLite files).

/// The harness: a real server over a real store, signed deliveries from `webhook-samples/`.
mod common;

/// `/api`, `/healthz` and `/metrics`.
mod api;
/// The `stagehand` binary as an operator runs it (no server).
mod cli;
/// The CLI client commands against a running server.
mod client;
/// The real binary killed with SIGKILL mid-build, then restarted.
mod crash;
/// The dashboard: auth over plain HTTP and a headless Chromium.
mod dashboard;
/// Following a deploy's log live.
mod follow;
/// The front door: routing by host to static files and app processes, previews' addresses.
mod front_door;
/// `POST /hooks/<app>`: the contract's table row by row.
mod hooks;
/// Previews' lifecycle: teardown commands.
mod lifecycle;
/// Temporary environments, tags, manual gates, promote, runtime data downwards.
mod multistage;
/// The deploy pipeline: fetch, checkout, link, build, switch, health, cleanup.
mod pipeline;
/// Reporting back to a fake GitHub API and notify URLs.
mod report;
/// Environments that `run`: an app process started, health-checked, switched to,
/// supervised, re-adopted and stopped.
mod run;
/// Architecture invariants checked on the source tree (core purity, SQL only in store/).
mod tidy;
