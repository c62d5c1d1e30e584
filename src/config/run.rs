//! The keys of an environment that runs: `run`, `stop_signal`, `stop_timeout`,
//! `drain_timeout`, the
//! two forms of `health_check`, and `[server] ports`. Validated here, beside the rest
//! of `config.rs`, so the run feature's rules sit in one place.

use std::time::Duration;

use crate::core::app_process::{PortRange, StopSignal};

use super::{RawHealthCheck, RawOverridable, Validator};

/// How an environment's app process is run (its `run` and what stops it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunConfig {
    /// Run by `sh -c` in the release directory, with `$PORT` set.
    pub command: String,
    pub stop_signal: StopSignal,
    /// After `stop_signal`, how long before SIGKILL.
    pub stop_timeout: Duration,
    /// After a switch, how long the old process is left to finish the requests the
    /// front door still has in flight to it before `stop_signal` (`front_door::in_flight`).
    pub drain_timeout: Duration,
}

/// Long enough for slow uploads and reports; a request still running after it is cut.
const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthTarget {
    /// `url = "http://…"`: checked after the switch (environments without `run`).
    Url(String),
    /// `path = "/healthz"`: checked on the new process's own port, before the switch.
    Path(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub target: HealthTarget,
    pub timeout: Duration,
}

impl Validator<'_> {
    pub(super) fn ports(&mut self, text: Option<&str>) -> PortRange {
        match text.map(PortRange::parse) {
            None => PortRange::default(),
            Some(Ok(range)) => range,
            Some(Err(e)) => {
                self.problem("server.ports", e);
                PortRange::default()
            }
        }
    }

    /// The environment's key wins over the app's; errors name the key that was set.
    pub(super) fn run_config(
        &mut self,
        key: &str,
        app_key: &str,
        app: &RawOverridable,
        env: &RawOverridable,
    ) -> Option<RunConfig> {
        let pick =
            |own: &Option<String>, inherited: &Option<String>, name: &str| match (own, inherited) {
                (Some(v), _) => Some((format!("{key}.{name}"), v.clone())),
                (None, Some(v)) => Some((format!("{app_key}.{name}"), v.clone())),
                (None, None) => None,
            };
        let run = pick(&env.run, &app.run, "run");
        let signal = pick(&env.stop_signal, &app.stop_signal, "stop_signal");
        let timeout = pick(&env.stop_timeout, &app.stop_timeout, "stop_timeout");
        let drain = pick(&env.drain_timeout, &app.drain_timeout, "drain_timeout");
        let Some((run_key, command)) = run else {
            // Only an environment's own stop keys are an error without `run`: app-level
            // ones are defaults for the environments that do run.
            for (name, own) in [
                ("stop_signal", &env.stop_signal),
                ("stop_timeout", &env.stop_timeout),
                ("drain_timeout", &env.drain_timeout),
            ] {
                if own.is_some() {
                    self.problem(&format!("{key}.{name}"), "has no effect without `run`");
                }
            }
            return None;
        };
        if command.trim().is_empty() {
            self.problem(&run_key, "is empty: give the command that starts the app, e.g. \"gunicorn -b 127.0.0.1:$PORT app:app\"");
        }
        let stop_signal = match signal {
            None => StopSignal::Term,
            Some((signal_key, text)) => StopSignal::parse(&text).unwrap_or_else(|e| {
                self.problem(&signal_key, e);
                StopSignal::Term
            }),
        };
        let stop_timeout = match timeout {
            None => Duration::from_secs(30),
            Some((timeout_key, text)) => {
                self.duration(&timeout_key, Some(&text), Duration::from_secs(30))
            }
        };
        let drain_timeout = match drain {
            None => DEFAULT_DRAIN_TIMEOUT,
            Some((drain_key, text)) => {
                self.duration(&drain_key, Some(&text), DEFAULT_DRAIN_TIMEOUT)
            }
        };
        Some(RunConfig {
            command,
            stop_signal,
            stop_timeout,
            drain_timeout,
        })
    }

    /// `url` is for environments without `run` (a URL someone else serves); `path` is
    /// for environments with `run` (stagehand knows the new process's port).
    pub(super) fn health_check(
        &mut self,
        key: &str,
        raw: Option<RawHealthCheck>,
        runs: bool,
    ) -> Option<HealthCheck> {
        let raw = raw?;
        let key = format!("{key}.health_check");
        let timeout = self.duration(
            &format!("{key}.timeout"),
            raw.timeout.as_deref(),
            Duration::from_secs(30),
        );
        let target = match (raw.url, raw.path) {
            (Some(_), Some(_)) => {
                self.problem(&key, "set url or path, not both");
                return None;
            }
            (None, None) => {
                self.problem(&key, "set path (with `run`) or url");
                return None;
            }
            (Some(url), None) if runs => {
                self.problem(
                    &format!("{key}.url"),
                    format!("{url:?}: with `run`, give a path (e.g. \"/healthz\"): it is checked on the new process's port before the switch"),
                );
                return None;
            }
            (Some(url), None) => {
                if !url.starts_with("http://") {
                    self.problem(
                        &format!("{key}.url"),
                        format!("{url:?} must be an http:// URL"),
                    );
                }
                HealthTarget::Url(url)
            }
            (None, Some(path)) if !runs => {
                self.problem(
                    &format!("{key}.path"),
                    format!("{path:?}: a path needs `run` (there is no process to ask); without it give a url"),
                );
                return None;
            }
            (None, Some(path)) => {
                let plain = path.starts_with('/')
                    && path.bytes().all(|b| b.is_ascii_graphic() && b != b'#');
                if !plain {
                    self.problem(
                        &format!("{key}.path"),
                        format!("{path:?} must start with / and hold no spaces"),
                    );
                }
                HealthTarget::Path(path)
            }
        };
        Some(HealthCheck { target, timeout })
    }
}
