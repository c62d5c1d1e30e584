//! The deploy pipeline's edges: git (mirror, fetch), the release tree on disk
//! (checkout, shared links, switch, cleanup), build commands, health checks, and the
//! runner that drives deploys through them, and reconciliation, which queues what
//! missed deliveries would have.

pub mod checkout;
pub mod checks_gate;
pub mod commands;
pub mod deploy;
pub mod expiry;
pub mod final_status;
pub mod git;
pub mod health;
pub mod layout;
pub mod leftovers;
pub mod partial;
pub mod preflight;
pub mod reaper;
pub mod reconcile;
pub mod recycle;
pub mod releases;
pub mod runner;
pub mod sync;
