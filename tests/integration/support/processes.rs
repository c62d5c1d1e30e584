//! App processes a test's stagehand started (environments that `run`): where
//! `routes.json` says they are, and a guard that kills them when the test ends.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Kills every app process recorded in a state dir's store, and anything still working
/// in a root, when dropped: a failing test never leaves a process behind (they run in
/// their own session, so nothing else ends them).
pub struct KillOnDrop {
    pub state: PathBuf,
    pub root: PathBuf,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        kill_recorded(&self.state);
        kill_groups_working_in(&self.root);
    }
}

/// Kills the process group of every process recorded in the state dir's store.
fn kill_recorded(state: &Path) {
    let Ok(store) = stagehand::store::Store::open(&state.join("stagehand.db")) else {
        return;
    };
    for p in store.processes().unwrap_or_default() {
        if let (Some(pid), Some(ticks)) = (p.pid, p.start_ticks) {
            stagehand::supervisor::procfs::signal_group(
                pid,
                ticks,
                stagehand::core::app_process::StopSignal::Kill,
            );
        }
    }
}

/// Belt and braces for a test that failed between a spawn and its record: the process
/// group of anything whose working directory is inside `root`.
fn kill_groups_working_in(root: &Path) {
    use stagehand::supervisor::procfs;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let inside = std::fs::read_link(entry.path().join("cwd")).is_ok_and(|cwd| {
            let text = cwd.to_string_lossy();
            Path::new(text.trim_end_matches(" (deleted)")).starts_with(root)
        });
        if let Some(leader) = procfs::stat(pid).filter(|_| inside).map(|s| s.pgrp)
            && let Some(stat) = procfs::stat(leader)
        {
            procfs::signal_group(
                leader,
                stat.start_ticks,
                stagehand::core::app_process::StopSignal::Kill,
            );
        }
    }
}

/// `<state>/routes.json`'s entry for `env` of `shop`: (port, pid, release).
pub fn route_in(state: &Path, env: &str) -> Option<(u16, i32, String)> {
    let text = std::fs::read_to_string(state.join("routes.json")).ok()?;
    let routes: Value = serde_json::from_str(&text).ok()?;
    let route = &routes["apps"]["shop"][env];
    Some((
        route["port"].as_u64()? as u16,
        route["pid"].as_i64()? as i32,
        route["release"].as_str()?.to_owned(),
    ))
}
