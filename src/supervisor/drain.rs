//! After a switch: how long the old process is left to finish what the front doors
//! still have in flight to it (their reports, `front_door::in_flight`), at most its
//! `drain_timeout`, before the deploy stops it.

use super::*;

impl Supervisor {
    /// The drain, after a switch away from `record`: waits until every front door has
    /// taken the new route and has no requests in flight to `record`'s port
    /// (`front_door::in_flight`), or until the environment's `drain_timeout` since
    /// `switched_at`. Without a front door configured (`[server] front_door` unset:
    /// nothing, or something else, reads `routes.json`), a fixed short grace. With one
    /// configured but none reporting (down, restarting, or unable to write its report),
    /// the whole `drain_timeout`: nothing says the old process is idle. `progress` gets
    /// a line when the wait starts to be for something.
    pub async fn drain(
        &self,
        record: &ProcessRecord,
        switched_at: Instant,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Drained {
        let limit = self
            .configured(&record.app, &record.base_environment)
            .map_or(Duration::from_secs(30), |(_, _, run)| run.drain_timeout);
        let config = self.inner.config.get();
        let front_door = config.server.front_door.is_some();
        let state_dir = config.server.state_dir.clone();
        drop(config);
        let port = record.port;
        let mut told = false;
        loop {
            let dir = state_dir.clone();
            let reports = tokio::task::spawn_blocking(move || {
                in_flight::read_fresh(&dir, std::time::SystemTime::now())
            })
            .await
            .unwrap_or_default();
            let state = in_flight::drain_state(&reports, port);
            let waited = switched_at.elapsed();
            match state {
                DrainState::Drained => return Drained::Idle(waited),
                DrainState::NoFrontDoor if !front_door => {
                    if waited < GRACE_WITHOUT_FRONT_DOOR {
                        tokio::time::sleep(GRACE_WITHOUT_FRONT_DOOR - waited).await;
                    }
                    return Drained::Grace;
                }
                _ => {}
            }
            let requests = match state {
                DrainState::Waiting { requests, .. } => Some(requests),
                _ => None,
            };
            if waited >= limit {
                return Drained::Limit { limit, requests };
            }
            if !told && requests != Some(0) {
                told = true;
                progress(&match requests {
                    Some(n) => format!(
                        "{n} request(s) in flight to port {port}: waiting for them to finish (drain_timeout {})",
                        seconds(limit)
                    ),
                    None => format!(
                        "no front door reports its requests (is `stagehand front-door` running?): waiting drain_timeout {}",
                        seconds(limit)
                    ),
                });
            }
            tokio::time::sleep(DRAIN_POLL).await;
        }
    }
}

/// How a drain ended, for the deploy log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// Nothing in flight any more, this long after the switch.
    Idle(Duration),
    /// No front door configured: the fixed grace passed.
    Grace,
    /// `drain_timeout` passed with requests still in flight (`None`: no front door
    /// reported at all).
    Limit {
        limit: Duration,
        requests: Option<usize>,
    },
}

fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

impl std::fmt::Display for Drained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Drained::Idle(after) => write!(
                f,
                "drained: nothing in flight to it {} after the switch",
                seconds(*after)
            ),
            Drained::Grace => write!(
                f,
                "no front door configured: stopping {} after the switch",
                seconds(GRACE_WITHOUT_FRONT_DOOR)
            ),
            Drained::Limit {
                limit,
                requests: Some(n),
            } => write!(
                f,
                "drain_timeout {} passed with {n} request(s) still in flight: they are cut",
                seconds(*limit)
            ),
            Drained::Limit {
                limit,
                requests: None,
            } => write!(
                f,
                "drain_timeout {} passed without a report from any front door",
                seconds(*limit)
            ),
        }
    }
}
