//! Deploy counts for `/metrics`: read from `deploy_counts`, a table of a few rows that
//! triggers keep in step with `deploys` (see the migration step that creates it), on
//! the read-only connection. A scrape costs the same at 100 and at 100,000 stored
//! deploys, and never queues for the writer's gate that webhook intake waits on.

use super::{Store, StoreError};

/// (app, base environment, status, count); temporary environments count under their
/// base environment.
pub type DeployCount = (String, String, String, i64);

impl Store {
    pub async fn deploy_counts(&self) -> Result<Vec<DeployCount>, StoreError> {
        let reader = self.reader.clone().lock_owned().await;
        tokio::task::spawn_blocking(move || {
            let mut stmt = reader.prepare_cached(
                "SELECT app, base_environment, status, n FROM deploy_counts ORDER BY 1, 2, 3",
            )?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get("app")?,
                        r.get("base_environment")?,
                        r.get("status")?,
                        r.get("n")?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;
    use crate::core::deploy::{DeployStatus, Trigger};
    use crate::core::ids::{AppName, DeployId, EnvironmentName};
    use crate::core::time::UnixMillis;
    use crate::store::{NewDeploy, Target};

    fn env(name: &str) -> EnvironmentName {
        EnvironmentName::parse(name).unwrap()
    }

    fn deploy(store: &Store, target: Target) -> DeployId {
        let new = NewDeploy::queued(target, Trigger::Push, "refs/heads/x".into());
        store
            .create_deploy(&AppName::parse("shop").unwrap(), new, UnixMillis(1))
            .unwrap()
            .id
    }

    fn preview(branch: &str) -> Target {
        Target::Temporary {
            base: env("preview"),
            branch: branch.into(),
            reserved: Vec::new(),
            limit: None,
        }
    }

    /// What a GROUP BY over the history says, to check the kept counts against.
    fn truth(path: &std::path::Path) -> Vec<DeployCount> {
        let conn = Connection::open(path).unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT app, base_environment, status, count(*) AS n FROM deploys
                 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            )
            .unwrap();
        stmt.query_map([], |r| {
            Ok((
                r.get("app")?,
                r.get("base_environment")?,
                r.get("status")?,
                r.get("n")?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    async fn nonzero(store: &Store) -> Vec<DeployCount> {
        let mut counts = store.deploy_counts().await.unwrap();
        counts.retain(|c| c.3 != 0);
        counts
    }

    fn row(env: &str, status: &str, n: i64) -> DeployCount {
        ("shop".into(), env.into(), status.into(), n)
    }

    #[tokio::test]
    async fn counts_follow_every_status_change_under_the_base_environment_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stagehand.db");
        let store = Store::open(&path).unwrap();
        let a = deploy(&store, preview("feature/a"));
        let b = deploy(&store, preview("feature/b"));
        let staging = [0; 3].map(|_| deploy(&store, Target::Fixed(env("staging"))));
        assert_eq!(
            nonzero(&store).await,
            [row("preview", "queued", 2), row("staging", "queued", 3)]
        );
        store
            .start(staging[2], &staging[..2], UnixMillis(2))
            .unwrap();
        store.start(a, &[], UnixMillis(2)).unwrap();
        store
            .finish(a, DeployStatus::Succeeded, None, UnixMillis(3))
            .unwrap();
        store.start(b, &[], UnixMillis(2)).unwrap();
        store.interrupt_running(UnixMillis(4)).unwrap();
        let expected = [
            row("preview", "interrupted", 1),
            row("preview", "succeeded", 1),
            row("staging", "interrupted", 1),
            row("staging", "superseded", 2),
        ];
        assert_eq!(nonzero(&store).await, expected);
        assert_eq!(nonzero(&store).await, truth(&path));
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(nonzero(&store).await, expected);
    }

    #[tokio::test]
    async fn the_migration_counts_the_history_it_finds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stagehand.db");
        let store = Store::open(&path).unwrap();
        deploy(&store, preview("feature/a"));
        deploy(&store, Target::Fixed(env("staging")));
        drop(store);
        // Undo the counts' step (and only that step), history kept, then run that step
        // again as an upgrade would. Later steps stay applied: rolling `user_version` back
        // would re-run them too, and they need not be repeatable.
        let step = crate::store::migrations::MIGRATIONS
            .iter()
            .find(|s| s.contains("CREATE TABLE deploy_counts"))
            .unwrap();
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "DROP TRIGGER deploy_counts_on_insert; DROP TRIGGER deploy_counts_on_update;
             DROP TRIGGER deploy_counts_on_delete; DROP TABLE deploy_counts;",
        )
        .unwrap();
        conn.execute_batch(step).unwrap();
        drop(conn);
        let store = Store::open(&path).unwrap();
        assert_eq!(
            nonzero(&store).await,
            [row("preview", "queued", 1), row("staging", "queued", 1)]
        );
    }
}
