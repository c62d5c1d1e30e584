//! stagehand's end-to-end tests, as one binary: one link step on a 2-core machine
//! instead of one per file. Each module drives the real thing (git repositories in temp
//! dirs, the server on 127.0.0.1:0, real processes, real SQLite files).

/// The one harness: stagehand in process over a temp dir, signed deliveries, git, a browser.
mod support;

/// `/api`, `/healthz` and `/metrics`.
mod api;
/// `require_checks`: automatic deploys wait for the commit's checks (events, API polling).
mod checks;
/// The `stagehand` binary as an operator runs it (no server).
mod cli;
/// The CLI client commands against a running server.
mod client;
/// The real binary killed with SIGKILL mid-build, then restarted.
mod crash;
/// The dashboard: auth over plain HTTP and a headless Chromium.
mod dashboard;
/// Runtime data and build caches: sync_exclude, before_sync, the cache dir, link_after_build.
mod data;
/// `export_ignore = true`: releases as `git archive` writes them, recycled alike.
mod export_ignore;
/// A deploy always ends in the store, even when the final write fails for a while.
mod final_status;
/// Following a deploy's log live.
mod follow;
/// Commit statuses on GitLab, Gitea, Forgejo and Bitbucket, against a fake forge API.
mod forge_report;
/// GitLab, Gitea, Forgejo and Bitbucket deliveries from their own samples, end to end.
mod forges;
/// The front door: routing by host to static files and app processes, previews' addresses.
mod front_door;
/// `POST /hooks/<app>`: the contract's table row by row.
mod hooks;
/// Webhook bodies read within bounds: bytes held at once, requests in flight, a deadline.
mod intake;
/// Many deliveries at once through the store's group commit: each recorded once, a
/// `202` only for a committed row, a failed commit answered `500`.
mod intake_concurrency;
/// Previews' lifecycle: teardown commands, expiry, pinning, the cap.
mod lifecycle;
/// Build output into the log: masking across splits and encodings, control
/// characters, the per-deploy cap, partial lines and `\r` redraws.
mod log_output;
/// Temporary environments, tags, manual gates, promote, runtime data downwards.
mod multistage;
/// Treeless mirrors: commits only, files fetched for what is checked out; history rules hold.
mod partial_mirror;
/// The deploy pipeline: fetch, checkout, link, build, switch, health, cleanup.
mod pipeline;
/// Pull/merge-request previews from GitLab, Gitea and Forgejo.
mod previews;
/// Reconciliation: pushes no delivery announced still deploy; gone branches tear down.
mod reconcile;
/// Config reload: `stagehand reload`, `POST /api/reload`, SIGHUP.
mod reload;
/// Replayed deliveries: a push deploys only while its commit is its ref's head.
mod replay;
/// Reporting back to a fake GitHub API and notify URLs.
mod report;
/// Environments that `run`: an app process started, health-checked, switched to,
/// supervised, re-adopted and stopped.
mod run;
/// What `serve` refuses at start: a state dir another server holds, a damaged database.
mod startup;
/// Architecture invariants checked on the source tree (core purity, SQL only in store/).
mod tidy;
