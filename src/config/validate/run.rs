//! The keys of an environment that runs: `run`, `stop_signal`, `stop_timeout`,
//! `drain_timeout`, the two forms of `health_check`, and `[server] ports`. Kept together (their types are in
//! `types.rs`) so the run feature's rules sit in one place.

use std::time::Duration;

use crate::core::app_process::{PortRange, StopSignal};

use super::super::raw::{RawHealthCheck, RawOverridable};
use super::super::types::{HealthCheck, HealthTarget, RunConfig};
use super::Validator;
use super::layer::Layer;

/// Long enough for slow uploads and reports; a request still running after it is cut.
const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

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

    /// The environment's `run` and stop keys win over the app's (both checked where
    /// they were written: see `layer.rs`).
    pub(super) fn run_config(
        &mut self,
        key: &str,
        app: &Layer,
        own: &Layer,
        raw_own: &RawOverridable,
    ) -> Option<RunConfig> {
        let Some(command) = own.run.clone().or_else(|| app.run.clone()) else {
            // Only an environment's own stop keys are an error without `run`: app-level
            // ones are defaults for the environments that do run.
            for (name, set) in [
                ("stop_signal", raw_own.stop_signal.is_some()),
                ("stop_timeout", raw_own.stop_timeout.is_some()),
                ("drain_timeout", raw_own.drain_timeout.is_some()),
            ] {
                if set {
                    self.problem(&format!("{key}.{name}"), "has no effect without `run`");
                }
            }
            return None;
        };
        Some(RunConfig {
            command,
            stop_signal: own
                .stop_signal
                .or(app.stop_signal)
                .unwrap_or(StopSignal::Term),
            stop_timeout: own
                .stop_timeout
                .or(app.stop_timeout)
                .unwrap_or(Duration::from_secs(30)),
            drain_timeout: own
                .drain_timeout
                .or(app.drain_timeout)
                .unwrap_or(DEFAULT_DRAIN_TIMEOUT),
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
        self.unknown_keys(&key, &raw.unknown);
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
                // Checked with std::net, without TLS: plain http only.
                self.http_url(&format!("{key}.url"), &url, false);
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
