//! The process groups deploy steps started and that may still run: written when a
//! step's shell starts, deleted when its group is gone, read by crash recovery so it
//! kills exactly these and nothing else. It knows nothing of `/proc` or signals
//! (`pipeline/leftovers.rs` does).

use rusqlite::params;

use crate::core::ids::DeployId;

use super::{Store, StoreError};

/// A process group a deploy step started. `start_time` is its leader's start time
/// (field 22 of `/proc/<pid>/stat`, clock ticks since boot): a pid reused since has
/// another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordedGroup {
    pub pgid: i32,
    pub start_time: u64,
    pub deploy: DeployId,
}

impl Store {
    pub fn record_process_group(&self, group: RecordedGroup) -> Result<(), StoreError> {
        self.lock().execute(
            "INSERT OR REPLACE INTO process_groups (pgid, start_time, deploy_id) VALUES (?1, ?2, ?3)",
            params![group.pgid, group.start_time as i64, group.deploy.0],
        )?;
        Ok(())
    }

    pub fn forget_process_group(&self, pgid: i32, start_time: u64) -> Result<(), StoreError> {
        self.lock().execute(
            "DELETE FROM process_groups WHERE pgid = ?1 AND start_time = ?2",
            params![pgid, start_time as i64],
        )?;
        Ok(())
    }

    /// Forgets every group recorded up to now (after recovery has dealt with them).
    pub fn forget_process_groups(&self, groups: &[RecordedGroup]) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        for group in groups {
            tx.prepare_cached("DELETE FROM process_groups WHERE pgid = ?1 AND start_time = ?2")?
                .execute(params![group.pgid, group.start_time as i64])?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn process_groups(&self) -> Result<Vec<RecordedGroup>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT pgid, start_time, deploy_id FROM process_groups ORDER BY deploy_id, pgid",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(RecordedGroup {
                    pgid: r.get("pgid")?,
                    start_time: r.get::<_, i64>("start_time")? as u64,
                    deploy: DeployId(r.get("deploy_id")?),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_groups_are_listed_until_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("stagehand.db")).unwrap();
        let a = RecordedGroup {
            pgid: 4242,
            start_time: 1_000,
            deploy: DeployId(7),
        };
        let b = RecordedGroup {
            pgid: 4243,
            start_time: u64::from(u32::MAX) + 5,
            deploy: DeployId(7),
        };
        store.record_process_group(a).unwrap();
        store.record_process_group(b).unwrap();
        assert_eq!(store.process_groups().unwrap(), [a, b]);
        // Another start time is another group (a reused pid): not forgotten with it.
        store.forget_process_group(4242, 999).unwrap();
        store.forget_process_group(4243, b.start_time).unwrap();
        assert_eq!(store.process_groups().unwrap(), [a]);
        store.forget_process_groups(&[a]).unwrap();
        assert_eq!(store.process_groups().unwrap(), []);
    }
}
