//! Writing how a deploy ended, retried until the store takes it.
//!
//! A deploy that ran is `running` in the store until this write lands, and the store
//! is what `/api/deploys/<id>`, metrics, the queue and followers go by. If the write
//! failed once and was dropped (a full disk, SQLite busy or an I/O error), the deploy
//! stayed `running` until a restart, its environment blocked and `--follow` hanging.
//! So the write is retried with backoff, each failure logged, for as long as it takes;
//! the caller keeps the deploy's live log open meanwhile and tells followers the end
//! only once it is stored, so what they see never differs from what is stored. Only
//! when stagehand is shutting down and the grace period is over does it give up: the
//! next start then marks the deploy `interrupted`.

use std::time::Duration;

use crate::core::deploy::{Deploy, DeployStatus};
use crate::core::ids::DeployId;

use super::deploy::Context;

/// The wait before retry number `attempt` (from 1): doubling from 100 ms, at most 10 s.
pub fn retry_delay(attempt: u32) -> Duration {
    let ms = 100u64.saturating_mul(1 << attempt.saturating_sub(1).min(7));
    Duration::from_millis(ms.min(10_000))
}

/// Stores the end of deploy `id` and returns the deploy as stored; `None` only when
/// stagehand shut down before the store took it.
pub async fn store_final_status(
    ctx: &Context,
    id: DeployId,
    status: DeployStatus,
    reason: Option<String>,
) -> Option<Deploy> {
    let mut attempt = 0u32;
    loop {
        let now = (ctx.clock)();
        let reason_now = reason.clone();
        let error = match ctx
            .store
            .run(move |s| s.finish(id, status, reason_now.as_deref(), now))
            .await
        {
            Ok(Some(deploy)) => {
                if attempt > 0 {
                    tracing::info!(deploy = %id, %status, attempts = attempt + 1, "the deploy's end is stored at last");
                }
                return Some(deploy);
            }
            Ok(None) => format!("deploy {id} is missing from the store"),
            Err(e) => e.to_string(),
        };
        attempt += 1;
        if *ctx.cancel.borrow() {
            tracing::error!(deploy = %id, %status, error, "cannot store the deploy's end and stagehand is stopping: the next start marks it interrupted");
            return None;
        }
        let delay = retry_delay(attempt);
        tracing::error!(deploy = %id, %status, attempt, retry_in_ms = delay.as_millis() as u64, error, "cannot store the deploy's end: retrying");
        let mut cancel = ctx.cancel.clone();
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = cancel.wait_for(|c| *c) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_ten_seconds() {
        let delays: Vec<u64> = (1..=10)
            .map(|a| retry_delay(a).as_millis() as u64)
            .collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]
        );
        assert_eq!(retry_delay(u32::MAX), Duration::from_secs(10));
    }
}
