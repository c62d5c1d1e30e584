//! `<state_dir>/routes.json`: which port each running environment's live process
//! listens on (stopped environments are left out), for the front door (`table.rs`
//! follows it), nginx templating and the zero-downtime benchmark. The supervisor
//! rewrites it after every switch from the store's live rows, atomically (temporary
//! file + rename), so a reader sees the old or the new file. It lives here, with the
//! front door's other file (`in_flight.rs`, the reports the supervisor's drain reads),
//! so the dependency runs one way: supervisor → front door's file formats.
//!
//! `{"apps": {"shop": {"staging": {"port": 20417, "release": "2026…-3f2a1c9", "pid": 4242}}}}`

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::core::app_process::{ProcessState, Role};
use crate::store::ProcessRecord;

#[derive(Serialize, Default)]
struct Routes {
    apps: BTreeMap<String, BTreeMap<String, Route>>,
}

#[derive(Serialize)]
struct Route {
    port: u16,
    release: String,
    pid: Option<i32>,
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("routes.json")
}

/// Blocking.
pub fn write(state_dir: &Path, processes: &[ProcessRecord]) -> std::io::Result<()> {
    let mut routes = Routes::default();
    // A stopped environment has no route: nothing listens on its port. One between a
    // crash and its restart keeps its route (it comes back on the same port if it can).
    let routed = processes
        .iter()
        .filter(|p| p.role == Role::Live && p.state != ProcessState::Stopped);
    for p in routed {
        routes.apps.entry(p.app.to_string()).or_default().insert(
            p.environment.to_string(),
            Route {
                port: p.port,
                release: p.release.clone(),
                pid: p.pid,
            },
        );
    }
    let text = serde_json::to_vec_pretty(&routes).map_err(std::io::Error::other)?;
    let target = path(state_dir);
    let temp = state_dir.join(".routes.json.tmp");
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(&text)?;
    file.sync_all()?;
    std::fs::rename(&temp, &target)
}
