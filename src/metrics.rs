//! What `/metrics` shows, in Prometheus text: delivery counters and stage-duration
//! histograms kept in memory (they restart at zero with the process, as Prometheus
//! counters may), and deploy counts read from the store at scrape time (a summary the
//! store keeps per app, base environment and status: see `store::counts`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::core::stage::StageName;

/// How a delivery ended; one counter each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryResult {
    Accepted,
    Duplicate,
    Ignored,
    Ping,
    Unauthorized,
    BadRequest,
    Forbidden,
    UnknownApp,
    TooLarge,
    /// Refused at an intake limit (`503`).
    Busy,
    /// The body did not arrive in time (`408`).
    TimedOut,
    Error,
}

impl DeliveryResult {
    const ALL: [DeliveryResult; 12] = [
        DeliveryResult::Accepted,
        DeliveryResult::Duplicate,
        DeliveryResult::Ignored,
        DeliveryResult::Ping,
        DeliveryResult::Unauthorized,
        DeliveryResult::BadRequest,
        DeliveryResult::Forbidden,
        DeliveryResult::UnknownApp,
        DeliveryResult::TooLarge,
        DeliveryResult::Busy,
        DeliveryResult::TimedOut,
        DeliveryResult::Error,
    ];

    fn label(self) -> &'static str {
        match self {
            DeliveryResult::Accepted => "accepted",
            DeliveryResult::Duplicate => "duplicate",
            DeliveryResult::Ignored => "ignored",
            DeliveryResult::Ping => "ping",
            DeliveryResult::Unauthorized => "unauthorized",
            DeliveryResult::BadRequest => "bad_request",
            DeliveryResult::Forbidden => "forbidden",
            DeliveryResult::UnknownApp => "unknown_app",
            DeliveryResult::TooLarge => "too_large",
            DeliveryResult::Busy => "busy",
            DeliveryResult::TimedOut => "timed_out",
            DeliveryResult::Error => "error",
        }
    }
}

/// Upper bounds of the stage-duration buckets, in seconds: from a symlink switch to a
/// long build.
const BUCKETS: [f64; 14] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Deploy counts by (app, base environment, status), from the store.
pub type DeployCounts = [(String, String, String, i64)];

#[derive(Debug, Default)]
pub struct Metrics {
    deliveries: [AtomicU64; DeliveryResult::ALL.len()],
    stages: Mutex<BTreeMap<String, Histogram>>,
    reconcile: ReconcileCounters,
    /// Supervisor restarts of app processes that exited, by (app, environment).
    app_restarts: Mutex<BTreeMap<(String, String), u64>>,
}

/// What reconciliation (`pipeline::reconcile`) did, since the process started.
#[derive(Debug, Default)]
struct ReconcileCounters {
    deploys: AtomicU64,
    teardowns: AtomicU64,
    rounds_ok: AtomicU64,
    rounds_failed: AtomicU64,
}

impl Metrics {
    pub fn delivery(&self, result: DeliveryResult) {
        self.deliveries[result as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn stage(&self, name: StageName, took: Duration) {
        let seconds = took.as_secs_f64();
        let mut stages = self.stages.lock().unwrap_or_else(|p| p.into_inner());
        let h = stages.entry(name.as_str().to_owned()).or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// Counted under the base environment (`preview` for `preview-feature-x`), as
    /// deploys are: `/metrics` needs no auth, so its labels must not grow with branches.
    pub fn app_restart(&self, app: &str, base_environment: &str) {
        let mut restarts = self.app_restarts.lock().unwrap_or_else(|p| p.into_inner());
        *restarts
            .entry((app.to_owned(), base_environment.to_owned()))
            .or_default() += 1;
    }

    /// A deploy (`teardown = false`) or teardown queued by reconciliation.
    pub fn reconcile_queued(&self, teardown: bool) {
        let c = &self.reconcile;
        let counter = if teardown { &c.teardowns } else { &c.deploys };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// One app's reconciliation round, which failed when its fetch or store work did.
    pub fn reconcile_round(&self, ok: bool) {
        let c = &self.reconcile;
        let counter = if ok { &c.rounds_ok } else { &c.rounds_failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn render_reconcile(&self, out: &mut String) {
        let c = &self.reconcile;
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        out.push_str("# HELP stagehand_reconcile_deploys_total Deploys and teardowns reconciliation queued for pushes no delivery announced.\n");
        out.push_str("# TYPE stagehand_reconcile_deploys_total counter\n");
        let _ = writeln!(
            out,
            "stagehand_reconcile_deploys_total{{action=\"deploy\"}} {}",
            load(&c.deploys)
        );
        let _ = writeln!(
            out,
            "stagehand_reconcile_deploys_total{{action=\"teardown\"}} {}",
            load(&c.teardowns)
        );
        out.push_str(
            "# HELP stagehand_reconcile_rounds_total Reconciliation rounds per app, by result.\n",
        );
        out.push_str("# TYPE stagehand_reconcile_rounds_total counter\n");
        let _ = writeln!(
            out,
            "stagehand_reconcile_rounds_total{{result=\"ok\"}} {}",
            load(&c.rounds_ok)
        );
        let _ = writeln!(
            out,
            "stagehand_reconcile_rounds_total{{result=\"failed\"}} {}",
            load(&c.rounds_failed)
        );
    }

    /// Prometheus text exposition.
    pub fn render(&self, deploys: &DeployCounts) -> String {
        let mut out = String::new();
        out.push_str("# HELP stagehand_deliveries_total Webhook deliveries by result.\n");
        out.push_str("# TYPE stagehand_deliveries_total counter\n");
        for result in DeliveryResult::ALL {
            let n = self.deliveries[result as usize].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "stagehand_deliveries_total{{result=\"{}\"}} {n}",
                result.label()
            );
        }
        out.push_str(
            "# HELP stagehand_deploys Deploys recorded, by app, environment (temporary ones under their base) and status.\n",
        );
        out.push_str("# TYPE stagehand_deploys gauge\n");
        let (mut queued, mut running) = (0, 0);
        for (app, env, status, n) in deploys {
            let _ = writeln!(
                out,
                "stagehand_deploys{{app=\"{app}\",environment=\"{env}\",status=\"{status}\"}} {n}"
            );
            match status.as_str() {
                "queued" => queued += n,
                "running" => running += n,
                _ => {}
            }
        }
        out.push_str("# HELP stagehand_queue_depth Deploys waiting to run.\n# TYPE stagehand_queue_depth gauge\n");
        let _ = writeln!(out, "stagehand_queue_depth {queued}");
        out.push_str("# HELP stagehand_running_deploys Deploys running now.\n# TYPE stagehand_running_deploys gauge\n");
        let _ = writeln!(out, "stagehand_running_deploys {running}");
        out.push_str("# HELP stagehand_stage_duration_seconds Pipeline stage durations.\n");
        out.push_str("# TYPE stagehand_stage_duration_seconds histogram\n");
        let stages = self
            .stages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for (name, h) in &stages {
            for (bound, n) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(
                    out,
                    "stagehand_stage_duration_seconds_bucket{{stage=\"{name}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "stagehand_stage_duration_seconds_bucket{{stage=\"{name}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "stagehand_stage_duration_seconds_sum{{stage=\"{name}\"}} {:.3}",
                h.sum
            );
            let _ = writeln!(
                out,
                "stagehand_stage_duration_seconds_count{{stage=\"{name}\"}} {}",
                h.count
            );
        }
        self.render_reconcile(&mut out);
        out.push_str("# HELP stagehand_app_restarts_total App processes restarted after exiting on their own.\n# TYPE stagehand_app_restarts_total counter\n");
        let restarts = self
            .app_restarts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for ((app, env), n) in &restarts {
            let _ = writeln!(
                out,
                "stagehand_app_restarts_total{{app=\"{app}\",environment=\"{env}\"}} {n}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_counter() {
        let metrics = Metrics::default();
        metrics.delivery(DeliveryResult::Accepted);
        metrics.delivery(DeliveryResult::Accepted);
        metrics.delivery(DeliveryResult::Unauthorized);
        metrics.stage(StageName::Build, Duration::from_millis(700));
        metrics.stage(StageName::Build, Duration::from_secs(20));
        metrics.reconcile_queued(false);
        metrics.reconcile_queued(true);
        metrics.reconcile_queued(true);
        metrics.reconcile_round(false);
        metrics.app_restart("shop", "staging");
        let text = metrics.render(&[("shop".into(), "staging".into(), "queued".into(), 2)]);
        assert!(
            text.contains("stagehand_deliveries_total{result=\"accepted\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("stagehand_deliveries_total{result=\"unauthorized\"} 1\n"));
        assert!(text.contains("stagehand_deliveries_total{result=\"too_large\"} 0\n"));
        assert!(text.contains(
            "stagehand_deploys{app=\"shop\",environment=\"staging\",status=\"queued\"} 2\n"
        ));
        assert!(text.contains("stagehand_queue_depth 2\n"), "{text}");
        assert!(text.contains("stagehand_reconcile_deploys_total{action=\"deploy\"} 1\n"));
        assert!(text.contains("stagehand_reconcile_deploys_total{action=\"teardown\"} 2\n"));
        assert!(text.contains("stagehand_reconcile_rounds_total{result=\"ok\"} 0\n"));
        assert!(text.contains("stagehand_reconcile_rounds_total{result=\"failed\"} 1\n"));
        assert!(
            text.contains("stagehand_stage_duration_seconds_bucket{stage=\"build\",le=\"1\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("stagehand_stage_duration_seconds_bucket{stage=\"build\",le=\"30\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("stagehand_stage_duration_seconds_count{stage=\"build\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("stagehand_app_restarts_total{app=\"shop\",environment=\"staging\"} 1\n"),
            "{text}"
        );
    }
}
