//! The deploy pipeline's edges: git (mirror, fetch), the release tree on disk
//! (checkout, shared links, switch, cleanup), build commands, health checks, and the
//! runner that drives deploys through them, and reconciliation, which queues what
//! missed deliveries would have.

pub mod checkout;
pub(crate) mod checks_gate;
pub(crate) mod commands;
pub(crate) mod deploy;
pub(crate) mod expiry;
pub(crate) mod final_status;
pub mod git;
pub(crate) mod leftovers;
pub mod partial;
pub(crate) mod preflight;
pub(crate) mod reaper;
pub(crate) mod reconcile;
pub(crate) mod recycle;
pub(crate) mod releases;
pub(crate) mod runner;
pub(crate) mod sync;
