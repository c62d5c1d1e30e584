//! Processes that outlive stagehand or exit on their own: adopted or restarted at
//! start-up ([`Supervisor::recover`]), watched and restarted with backoff
//! ([`Supervisor::watch`]).

use super::*;

impl Supervisor {
    /// At start-up: adopts the live processes an earlier stagehand left running,
    /// schedules restarts of those that died meanwhile, stops what interrupted
    /// operations left (candidates, retiring ones). Never stops a live process.
    pub async fn recover(&self) -> Result<(), SupervisorError> {
        let this = self.clone();
        blocking(move || {
            for record in this.inner.store.processes()? {
                let alive = match (record.pid, record.start_ticks) {
                    (Some(pid), Some(ticks)) => liveness(ticks, procfs::stat(pid)),
                    _ => Liveness::Gone,
                };
                let runs = this
                    .configured(&record.app, &record.base_environment)
                    .is_some();
                let log = this.app_log(&record.app, &record.environment);
                match at_start(record.role, record.state, alive, runs) {
                    AtStart::Adopt => {
                        tracing::info!(app = %record.app, environment = %record.environment, pid = ?record.pid, "adopted a running app process");
                        app_log::note(
                            &log,
                            &format!("adopted pid {} after a restart of stagehand", record.pid.unwrap_or(0)),
                        );
                    }
                    AtStart::Restart => {
                        tracing::warn!(app = %record.app, environment = %record.environment, "an app process died while stagehand was away: restarting it");
                        app_log::note(&log, "the process died while stagehand was away");
                        this.inner
                            .store
                            .clear_process_pid(record.id, ProcessState::Restarting)?;
                    }
                    AtStart::StopAndForget => {
                        this.stop_blocking(&record, "an interrupted operation left");
                        this.inner.store.delete_process(record.id)?;
                    }
                    AtStart::Forget => this.inner.store.delete_process(record.id)?,
                    AtStart::Keep => {}
                }
            }
            this.write_routes();
            Ok(())
        })
        .await
    }

    /// Watches the live processes until `shutdown` turns true: one that exited on its
    /// own is restarted after its backoff; app logs are rotated. Adopted processes are
    /// not our children, so exits are seen by polling `/proc` (pid + start time) for
    /// all. A stopping stagehand stops watching but leaves every process running.
    pub async fn watch(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut round: u64 = 0;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(WATCH_EVERY) => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                return;
            }
            round += 1;
            let this = self.clone();
            let rotate = round.is_multiple_of(ROTATE_EVERY_ROUNDS);
            let result = tokio::task::spawn_blocking(move || this.watch_once(rotate)).await;
            match result {
                Ok(Err(e)) => tracing::warn!(error = %e, "supervising app processes"),
                Err(e) => tracing::error!(error = %e, "the supervisor's round panicked"),
                Ok(Ok(())) => {}
            }
        }
    }

    fn watch_once(&self, rotate: bool) -> Result<(), SupervisorError> {
        let store = &self.inner.store;
        let now = Instant::now();
        for record in store.processes()? {
            let log = self.app_log(&record.app, &record.environment);
            if rotate {
                let _ = app_log::rotate_if_big(&log, app_log::MAX_BYTES);
            }
            if record.role != Role::Live || !record.state.wants_running() {
                continue;
            }
            match (record.pid, record.start_ticks) {
                (Some(pid), Some(ticks)) => {
                    if procfs::is_same(pid, ticks) || !store.mark_exited(record.id, pid)? {
                        continue;
                    }
                    let uptime = record
                        .started_at
                        .map(
                            |s| Duration::from_millis(((self.inner.clock)().0 - s.0).max(0) as u64),
                        )
                        .unwrap_or_default();
                    let mut backoff = self.backoff();
                    let before = backoff.get(&record.id).map(|b| b.0).unwrap_or(0);
                    let in_a_row = if uptime >= crate::core::app_process::BACKOFF_RESET_AFTER {
                        0
                    } else {
                        before
                    };
                    let delay = restart_delay(in_a_row);
                    backoff.insert(record.id, (restarts_in_a_row(before, uptime), now + delay));
                    drop(backoff);
                    app_log::note(
                        &log,
                        &format!(
                            "pid {pid} exited on its own after {}s; restarting in {}s",
                            uptime.as_secs(),
                            delay.as_secs()
                        ),
                    );
                    tracing::warn!(app = %record.app, environment = %record.environment, pid, "app process exited; restarting");
                }
                _ => {
                    let due = self.backoff().get(&record.id).map(|b| b.1);
                    if due.is_some_and(|due| due > now) {
                        continue;
                    }
                    self.restart_blocking(&record)?;
                }
            }
        }
        Ok(())
    }

    fn backoff(&self) -> std::sync::MutexGuard<'_, HashMap<i64, (u32, Instant)>> {
        self.inner.backoff.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a live record's release again, on its old port when that is free (the
    /// route stays), else on a new one (the route follows).
    fn restart_blocking(&self, record: &ProcessRecord) -> Result<(), SupervisorError> {
        let port = if ports::is_free(record.port) {
            Some(record.port)
        } else {
            let taken = self.taken_ports()?;
            ports::pick_free(
                self.inner.config.get().server.ports,
                (self.inner.clock)().0 as u32,
                &taken,
            )
        };
        let spawned = port.ok_or(SupervisorError::NoPort {
            first: self.inner.config.get().server.ports.first,
            last: self.inner.config.get().server.ports.last,
        });
        let spawned = spawned.and_then(|port| {
            self.spawn_blocking(
                &record.app,
                &record.environment,
                &record.base_environment,
                &record.release,
                port,
            )
            .map(|s| (s, port))
        });
        let (spawned, port) = match spawned {
            Ok(ok) => ok,
            Err(e) => {
                let log = self.app_log(&record.app, &record.environment);
                let mut backoff = self.backoff();
                let before = backoff.get(&record.id).map(|b| b.0).unwrap_or(0);
                let delay = restart_delay(before);
                backoff.insert(
                    record.id,
                    (before.saturating_add(1), Instant::now() + delay),
                );
                app_log::note(
                    &log,
                    &format!("cannot start: {e}; trying again in {}s", delay.as_secs()),
                );
                self.inner
                    .store
                    .set_process_state(record.id, ProcessState::Crashed)?;
                return Ok(());
            }
        };
        let again = Respawned {
            pid: spawned.pid,
            start_ticks: spawned.start_ticks,
            port,
            restarts: record.restarts.saturating_add(1),
            at: (self.inner.clock)(),
        };
        if self.inner.store.replace_process(record.id, None, &again)? {
            self.inner
                .metrics
                .app_restart(record.app.as_str(), record.base_environment.as_str());
            self.write_routes();
        } else {
            // The record changed meanwhile (stopped, switched away from): not wanted.
            procfs::signal_group(spawned.pid, spawned.start_ticks, StopSignal::Kill);
        }
        Ok(())
    }
}
