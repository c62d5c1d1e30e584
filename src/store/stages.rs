//! A deploy's stages: opened and ended as the run goes, and read for any number of
//! deploys at once (a page of the history is two queries, not one per deploy).

use std::collections::HashMap;

use rusqlite::{Connection, params};

use crate::core::deploy::{DeployStatus, Stage};
use crate::core::ids::DeployId;
use crate::core::stage::StageName;
use crate::core::time::UnixMillis;

use super::{Store, StoreError, deploys};

impl Store {
    /// Opens a stage row; returns its sequence number.
    pub fn begin_stage(
        &self,
        id: DeployId,
        name: StageName,
        now: UnixMillis,
    ) -> Result<i64, StoreError> {
        let conn = self.lock();
        let seq: i64 = conn.query_row(
            "SELECT COALESCE(MAX(seq), 0) + 1 AS next_seq FROM stages WHERE deploy_id = ?1",
            [id.0],
            |r| r.get("next_seq"),
        )?;
        conn.execute(
            "INSERT INTO stages (deploy_id, seq, name, status, started_at) VALUES (?1, ?2, ?3, 'running', ?4)",
            params![id.0, seq, name.as_str(), now.0],
        )?;
        Ok(seq)
    }

    pub fn end_stage(
        &self,
        id: DeployId,
        seq: i64,
        status: DeployStatus,
        duration_ms: i64,
    ) -> Result<(), StoreError> {
        self.lock().execute(
            "UPDATE stages SET status = ?3, duration_ms = ?4 WHERE deploy_id = ?1 AND seq = ?2",
            params![id.0, seq, status.as_str(), duration_ms],
        )?;
        Ok(())
    }
}

/// Ends the stages of `id` still marked running with its deploy's final `status`.
pub(super) fn end_open_stages(
    conn: &Connection,
    id: DeployId,
    status: DeployStatus,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE stages SET status = ?2 WHERE deploy_id = ?1 AND status = 'running'",
        params![id.0, status.as_str()],
    )?;
    Ok(())
}

/// The stages of each of `ids`, in order; a deploy without stages has no entry.
///
/// The ids go in as one JSON array parameter (`json_each`), so the statement text is
/// the same for any number of them (prepared once, cached) and no count of `?` can
/// exceed SQLite's limit. The lookup is by `stages`' primary key (deploy_id, seq).
pub(super) fn stages_of(
    conn: &Connection,
    ids: &[DeployId],
) -> Result<HashMap<DeployId, Vec<Stage>>, StoreError> {
    let mut stages: HashMap<DeployId, Vec<Stage>> = HashMap::new();
    if ids.is_empty() {
        return Ok(stages);
    }
    let mut stmt = conn.prepare_cached(
        "SELECT deploy_id, name, status, duration_ms FROM stages
         WHERE deploy_id IN (SELECT value FROM json_each(?1))
         ORDER BY deploy_id, seq",
    )?;
    let rows = stmt
        .query_map([deploys::json_ids(ids)], |r| {
            Ok((
                DeployId(r.get("deploy_id")?),
                r.get::<_, String>("name")?,
                r.get::<_, String>("status")?,
                r.get::<_, Option<i64>>("duration_ms")?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    for (id, name, status, duration_ms) in rows {
        let status = DeployStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("stage status {status:?}")))?;
        let name = StageName::parse(&name)
            .ok_or_else(|| StoreError::Corrupt(format!("stage name {name:?}")))?;
        stages.entry(id).or_default().push(Stage {
            name,
            status,
            duration_ms,
        });
    }
    Ok(stages)
}

/// At start-up, before their deploys are marked: the open stages of every deploy a
/// previous process left running become `interrupted`.
pub(super) fn interrupt_open_stages(conn: &Connection) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE stages SET status = 'interrupted' WHERE status = 'running'
           AND deploy_id IN (SELECT id FROM deploys WHERE status = 'running')",
    )?
    .execute([])?;
    Ok(())
}
