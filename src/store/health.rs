//! Is `stagehand.db` sound? At start, `PRAGMA quick_check` refuses a damaged file
//! before anything writes to it; while running, [`Store::health`] answers `/healthz`.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::{Store, StoreError, migrations};

/// `/healthz` waits this long for the check; a database that slow is not healthy.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// A SQLite error that means the file is not a sound database, as [`StoreError::Damaged`].
pub(super) fn damaged(path: &Path, e: rusqlite::Error) -> Result<StoreError, rusqlite::Error> {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => Ok(StoreError::Damaged {
            path: path.to_owned(),
            detail: e.to_string(),
        }),
        _ => Err(e),
    }
}

/// `PRAGMA quick_check`: every page and index entry readable and well-formed (it skips
/// the costlier cross-checks of `integrity_check`). Run once, at start.
pub(super) fn check_integrity(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let problems: Vec<String> = conn
        .prepare("PRAGMA quick_check(5)")
        .and_then(|mut stmt| {
            stmt.query_map([], |r| r.get::<_, String>("quick_check"))?
                .collect::<Result<_, _>>()
        })
        .map_err(|e| damaged(path, e).unwrap_or_else(StoreError::Sqlite))?;
    if problems == ["ok"] {
        return Ok(());
    }
    Err(StoreError::Damaged {
        path: path.to_owned(),
        detail: problems.join("; "),
    })
}

impl Store {
    /// For `/healthz`: opens the file anew, read-only, and reads its schema. The server's
    /// own connection is no proof: it keeps working on a deleted file (the inode lives on
    /// while it is open) and may answer from its page cache after the file was
    /// overwritten. A fresh connection sees what a restart would see. It does not wait
    /// for the store's gate: WAL readers never block the writer, nor wait for it.
    pub async fn health(&self) -> Result<(), StoreError> {
        let path = self.path.clone();
        let check = tokio::task::spawn_blocking(move || check_file(&path));
        match tokio::time::timeout(HEALTH_TIMEOUT, check).await {
            Ok(joined) => joined.map_err(|e| StoreError::Task(e.to_string()))?,
            Err(_) => Err(StoreError::Unhealthy {
                path: self.path.as_ref().clone(),
                detail: format!("no answer within {}s", HEALTH_TIMEOUT.as_secs()),
            }),
        }
    }
}

fn check_file(path: &Path) -> Result<(), StoreError> {
    let unhealthy = |detail: String| StoreError::Unhealthy {
        path: path.to_owned(),
        detail,
    };
    if !path.exists() {
        return Err(unhealthy("the file is gone".into()));
    }
    // Pages still in the WAL shadow the file's own, so a file overwritten under a
    // running server can read fine until the next checkpoint: its header cannot.
    let mut header = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut header))
        .map_err(|e| unhealthy(format!("cannot read its header: {e}")))?;
    if &header != b"SQLite format 3\0" {
        return Err(unhealthy("it is not an SQLite database any more".into()));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| unhealthy(e.to_string()))?;
    conn.busy_timeout(HEALTH_TIMEOUT)
        .map_err(|e| unhealthy(e.to_string()))?;
    let (version, tables): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT user_version FROM pragma_user_version) AS version,
                    (SELECT count(*) FROM sqlite_schema) AS tables",
            [],
            |r| Ok((r.get("version")?, r.get("tables")?)),
        )
        .map_err(|e| unhealthy(e.to_string()))?;
    let known = migrations::MIGRATIONS.len() as i64;
    if version != known || tables == 0 {
        return Err(unhealthy(format!(
            "schema version {version} with {tables} tables, expected version {known}: the file was replaced"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_page_is_refused_at_open_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stagehand.db");
        drop(Store::open(&path).unwrap());
        // Closing checkpointed the WAL into the file: page 2 onwards hold the tables.
        let mut bytes = std::fs::read(&path).unwrap();
        assert!(bytes.len() > 3 * 4096, "{}", bytes.len());
        bytes[4096..3 * 4096].fill(0xA5);
        std::fs::write(&path, bytes).unwrap();
        let message = match Store::open(&path) {
            Err(e @ StoreError::Damaged { .. }) => e.to_string(),
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("opened a damaged database"),
        };
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("restore it from a backup"), "{message}");
    }

    #[tokio::test]
    async fn health_fails_once_the_file_is_gone_or_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stagehand.db");
        let store = Store::open(&path).unwrap();
        store.health().await.unwrap();
        std::fs::write(&path, vec![0x5A; 8192]).unwrap();
        let garbage = store.health().await.unwrap_err().to_string();
        assert!(garbage.contains("cannot be read"), "{garbage}");
        std::fs::remove_file(&path).unwrap();
        let gone = store.health().await.unwrap_err().to_string();
        assert!(gone.contains("the file is gone"), "{gone}");
    }
}
