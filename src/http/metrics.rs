//! Counters kept in memory and the Prometheus text format of `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

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
    Error,
}

impl DeliveryResult {
    const ALL: [DeliveryResult; 10] = [
        DeliveryResult::Accepted,
        DeliveryResult::Duplicate,
        DeliveryResult::Ignored,
        DeliveryResult::Ping,
        DeliveryResult::Unauthorized,
        DeliveryResult::BadRequest,
        DeliveryResult::Forbidden,
        DeliveryResult::UnknownApp,
        DeliveryResult::TooLarge,
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
            DeliveryResult::Error => "error",
        }
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    deliveries: [AtomicU64; DeliveryResult::ALL.len()],
}

impl Metrics {
    pub fn delivery(&self, result: DeliveryResult) {
        self.deliveries[result as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Prometheus text exposition; `deploys` are (status, count) from the store.
    pub fn render(&self, deploys: &[(String, i64)]) -> String {
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
        out.push_str("# HELP stagehand_deploys Deploys recorded, by status.\n");
        out.push_str("# TYPE stagehand_deploys gauge\n");
        for (status, n) in deploys {
            let _ = writeln!(out, "stagehand_deploys{{status=\"{status}\"}} {n}");
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
        let text = metrics.render(&[("queued".into(), 2)]);
        assert!(
            text.contains("stagehand_deliveries_total{result=\"accepted\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("stagehand_deliveries_total{result=\"unauthorized\"} 1\n"));
        assert!(text.contains("stagehand_deliveries_total{result=\"too_large\"} 0\n"));
        assert!(text.contains("stagehand_deploys{status=\"queued\"} 2\n"));
    }
}
