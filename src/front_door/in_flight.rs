//! The drain: how `serve` learns that nothing is in flight any more to a process it
//! switched away from, so that it stops the process then, and not while a request
//! is still being answered.
//!
//! The front door is another process (it must outlive `serve`), so it publishes what
//! `serve` needs in a small file of its own, `<state_dir>/front-door/<pid>-<port>.json`:
//! the app ports its current table routes to, and how many requests are in flight to
//! each port. It rewrites the file (temporary name + rename) every 200 ms while
//! something changed, and at least every second otherwise, so the file's age says
//! whether that front door is alive. `supervisor::Supervisor::drain` reads every fresh
//! file after a switch and waits until each front door has taken the new route and has
//! nothing in flight to the old port, or until the environment's `drain_timeout`.
//!
//! Why a file and not a question to the front door: `serve` need not know where front
//! doors listen (nor reach one of several), a front door that is down or stuck simply
//! stops reporting, and the state dir is where the two already meet (`routes.json`).
//!
//! Exactness: a request takes its route and is counted in one step, under the route
//! table's read lock; the report is taken under its write lock. So a report never
//! shows the new routes while a request that took the old route is not yet counted.
//! A request counts from its route until its response body has been sent (or the
//! client went away). A WebSocket tunnel is not counted: it lasts until the old
//! process is retired (see `websocket.rs`).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::table::Shared;

/// A report older than this is from a front door that is gone (or stuck): ignored.
pub const FRESH: Duration = Duration::from_secs(3);
/// An unchanged report is rewritten this often, to show the front door is alive.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// `<state_dir>/front-door/`: one report per running front door.
pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("front-door")
}

/// What one front door publishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Report {
    /// The app ports its current table routes to.
    pub routes: Vec<u16>,
    /// Requests in flight per app port (ports with none are left out).
    pub in_flight: BTreeMap<u16, usize>,
}

/// Requests in flight per app port, counted by [`Ticket`]s.
#[derive(Default)]
pub struct Counts(Mutex<HashMap<u16, usize>>);

impl Counts {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u16, usize>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one request to `port` until the ticket is dropped.
    pub fn enter(self: &Arc<Self>, port: u16) -> Ticket {
        *self.lock().entry(port).or_insert(0) += 1;
        Ticket {
            counts: self.clone(),
            port,
        }
    }

    fn now(&self) -> BTreeMap<u16, usize> {
        self.lock()
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(p, n)| (*p, *n))
            .collect()
    }
}

/// One request in flight; dropping it (the response sent, or the client gone) ends it.
pub struct Ticket {
    counts: Arc<Counts>,
    port: u16,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut counts = self.counts.lock();
        if let Some(n) = counts.get_mut(&self.port) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.port);
            }
        }
    }
}

/// The front door's side: writes its report when it changed, or as a heartbeat.
pub struct Publisher {
    path: PathBuf,
    counts: Arc<Counts>,
    last: Option<(Report, Instant)>,
    warned: bool,
}

impl Publisher {
    /// `listen_port`: the front door's own port, so two front doors of one process
    /// (tests) or of one host never share a file. Blocking: first removes the reports
    /// that front doors which died without cleaning up left long ago.
    pub fn new(state_dir: &Path, listen_port: u16, counts: Arc<Counts>) -> Publisher {
        remove_stale(&dir(state_dir), SystemTime::now());
        let name = format!("{}-{listen_port}.json", std::process::id());
        Publisher {
            path: dir(state_dir).join(name),
            counts,
            last: None,
            warned: false,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Blocking (one small file). Takes the report under the table's write lock.
    pub fn tick(&mut self, shared: &Shared) {
        let report = shared.exclusive(|snapshot| Report {
            routes: snapshot.routed_ports(),
            in_flight: self.counts.now(),
        });
        let due = match &self.last {
            Some((last, at)) => *last != report || at.elapsed() >= HEARTBEAT,
            None => true,
        };
        if !due {
            return;
        }
        match write(&self.path, &report) {
            Ok(()) => {
                self.last = Some((report, Instant::now()));
                self.warned = false;
            }
            Err(e) if !self.warned => {
                self.warned = true;
                tracing::warn!(error = %e, path = %self.path.display(),
                    "cannot write the front door's report: `serve` waits each retired process's whole drain_timeout");
            }
            Err(_) => {}
        }
    }
}

/// Blocking: the report written under a temporary name and renamed in (no fsync: it
/// describes this moment only, and a crash leaves a file that goes stale).
fn write(path: &Path, report: &Report) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let text = serde_json::to_vec(report).map_err(std::io::Error::other)?;
    let temp = path.with_extension("json.tmp");
    std::fs::File::create(&temp)?.write_all(&text)?;
    std::fs::rename(&temp, path)
}

/// A report this old is from a front door that died (a stopping one removes its own).
const LEFT_BEHIND: Duration = Duration::from_secs(60);

/// Blocking: removes reports (and temporary files) untouched for [`LEFT_BEHIND`].
fn remove_stale(dir: &Path, now: SystemTime) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|at| now.duration_since(at).unwrap_or_default() > LEFT_BEHIND);
        if old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Blocking: the reports of the front doors alive now (written within [`FRESH`] of
/// `now`). Unreadable or stale files are skipped.
pub fn read_fresh(state_dir: &Path, now: SystemTime) -> Vec<Report> {
    let Ok(entries) = std::fs::read_dir(dir(state_dir)) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter(|e| {
            e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|at| now.duration_since(at).unwrap_or_default() < FRESH)
        })
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|text| serde_json::from_slice(&text).ok())
        .collect()
}

/// Where the drain of `port` stands, from the fresh reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainState {
    /// No front door reports: nothing is known about requests in flight.
    NoFrontDoor,
    /// Some front door still routes to the port (it has not read the switch yet) or
    /// has requests in flight to it.
    Waiting { requests: usize, still_routed: bool },
    /// Every front door routes elsewhere and has nothing in flight to the port.
    Drained,
}

pub fn drain_state(reports: &[Report], port: u16) -> DrainState {
    if reports.is_empty() {
        return DrainState::NoFrontDoor;
    }
    let requests = reports
        .iter()
        .map(|r| r.in_flight.get(&port).copied().unwrap_or(0))
        .sum();
    let still_routed = reports.iter().any(|r| r.routes.contains(&port));
    if requests == 0 && !still_routed {
        DrainState::Drained
    } else {
        DrainState::Waiting {
            requests,
            still_routed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(routes: &[u16], in_flight: &[(u16, usize)]) -> Report {
        Report {
            routes: routes.to_vec(),
            in_flight: in_flight.iter().copied().collect(),
        }
    }

    #[test]
    fn drain_state_table() {
        fn check(reports: &[Report], expected: DrainState) {
            assert_eq!(drain_state(reports, 7000), expected, "{reports:?}");
        }
        check(&[], DrainState::NoFrontDoor);
        check(&[report(&[7001], &[])], DrainState::Drained);
        // Requests to other ports do not hold this one.
        check(&[report(&[7001], &[(7001, 5)])], DrainState::Drained);
        check(
            &[report(&[7001], &[(7000, 2)])],
            DrainState::Waiting {
                requests: 2,
                still_routed: false,
            },
        );
        // Not switched yet in that front door: new requests may still come.
        check(
            &[report(&[7000], &[])],
            DrainState::Waiting {
                requests: 0,
                still_routed: true,
            },
        );
        // Every front door counts.
        check(
            &[
                report(&[7001], &[]),
                report(&[7001], &[(7000, 1)]),
                report(&[7001], &[(7000, 2)]),
            ],
            DrainState::Waiting {
                requests: 3,
                still_routed: false,
            },
        );
    }

    #[test]
    fn tickets_count_until_dropped() {
        let counts = Arc::new(Counts::default());
        let a = counts.enter(7000);
        let b = counts.enter(7000);
        let c = counts.enter(7001);
        assert_eq!(counts.now(), [(7000, 2), (7001, 1)].into());
        drop(a);
        drop(c);
        assert_eq!(counts.now(), [(7000, 1)].into());
        drop(b);
        assert!(counts.now().is_empty());
    }

    #[test]
    fn only_fresh_reports_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = super::dir(dir.path()).join("1-80.json");
        write(&path, &report(&[7001], &[(7000, 1)])).unwrap();
        std::fs::write(super::dir(dir.path()).join("junk.json"), "{").unwrap();
        let now = SystemTime::now();
        assert_eq!(
            read_fresh(dir.path(), now),
            vec![report(&[7001], &[(7000, 1)])]
        );
        assert!(read_fresh(dir.path(), now + FRESH + Duration::from_secs(1)).is_empty());
        assert!(read_fresh(&dir.path().join("missing"), now).is_empty());

        // Left behind long ago: removed when a front door starts.
        remove_stale(&super::dir(dir.path()), now);
        assert!(path.exists());
        remove_stale(&super::dir(dir.path()), now + LEFT_BEHIND * 2);
        assert!(!path.exists());
    }
}
