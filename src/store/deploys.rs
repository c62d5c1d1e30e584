//! Deploy rows: inserting one (into a fixed or temporary environment), reading them
//! (by id, a page of the history, an environment's newest, the one that built a
//! release), what a run records on the way (commit, release, message) and its end.
//! Their stages are `stages.rs`; moving them through the queue is `queue.rs`.
//!
//! Every read of whole deploys goes through [`load_deploys`] or [`load_deploy`], which
//! attach the stages of all the deploys read with one more query, however many there are.

use std::sync::LazyLock;

use rusqlite::{Connection, Row, Transaction, TransactionBehavior, params};

use crate::core::deploy::{Deploy, DeployStatus, ReasonCode, Trigger};
use crate::core::ids::{AppName, DeployId, EnvironmentName};
use crate::core::time::UnixMillis;

use super::{Store, StoreError, stages, temporary_environments};

/// Which environment a new deploy goes to.
#[derive(Debug, Clone)]
pub enum Target {
    Fixed(EnvironmentName),
    /// An existing temporary environment (`name`) made from pattern environment `base`.
    Instance {
        name: EnvironmentName,
        base: EnvironmentName,
    },
    /// A branch of a pattern environment: its temporary environment is found, or made.
    Temporary {
        base: EnvironmentName,
        branch: String,
        /// Configured environment names the new temporary name must not take.
        reserved: Vec<String>,
        /// `max_environments`: a branch that would make one more is ignored.
        limit: Option<usize>,
    },
}

#[derive(Debug, Clone)]
pub struct NewDeploy {
    pub target: Target,
    pub git_ref: String,
    pub commit: Option<String>,
    pub trigger: Trigger,
    pub forced: bool,
    /// `Queued`, or `Skipped` with a reason when the delivery says not to deploy.
    pub status: DeployStatus,
    pub reason: Option<String>,
    pub reason_code: Option<ReasonCode>,
    pub from_environment: Option<EnvironmentName>,
    /// For a rollback: the release asked for (else the one before the live one).
    pub release: Option<String>,
    /// The commit's message (first line) and author, when the delivery says.
    pub message: Option<String>,
    pub author: Option<String>,
}

impl NewDeploy {
    /// A queued deploy with nothing special about it; callers set what differs.
    pub fn queued(target: Target, trigger: Trigger, git_ref: String) -> NewDeploy {
        NewDeploy {
            target,
            git_ref,
            commit: None,
            trigger,
            forced: false,
            status: DeployStatus::Queued,
            reason: None,
            reason_code: None,
            from_environment: None,
            release: None,
            message: None,
            author: None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct DeployFilter {
    pub app: Option<String>,
    pub environment: Option<String>,
    pub limit: usize,
}

/// The columns [`deploy_row`] reads (by name), for `SELECT {DEPLOY_COLUMNS} FROM deploys`.
const DEPLOY_COLUMNS: &str = "id, app, environment, ref, commit_sha, trigger, status, reason, release, forced, created_at, started_at, finished_at, base_environment, from_environment, message, author, reason_code";

/// Triggers as an SQL list of quoted names, written from `core::deploy::Trigger` so
/// a trigger added there cannot be missing from a list copied into SQL by hand.
fn sql_list(triggers: impl Iterator<Item = Trigger>) -> String {
    triggers
        .map(|t| format!("'{}'", t.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The deploys of a commit ([`Trigger::deploys_a_commit`]): push, manual, promote,
/// reconcile.
pub(super) static COMMIT_TRIGGERS: LazyLock<String> = LazyLock::new(|| {
    sql_list(
        Trigger::ALL
            .iter()
            .copied()
            .filter(|t| t.deploys_a_commit()),
    )
});

impl Store {
    /// A deploy not tied to a delivery (manual, rollback, promote, sync).
    pub fn create_deploy(
        &self,
        app: &AppName,
        new: NewDeploy,
        now: UnixMillis,
    ) -> Result<Deploy, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let deploy = insert_deploy(&tx, app, new, now)?;
        tx.commit()?;
        Ok(deploy)
    }

    pub fn deploy(&self, id: DeployId) -> Result<Option<Deploy>, StoreError> {
        load_deploy(&self.lock(), id)
    }

    /// Newest first.
    pub fn deploys(&self, filter: &DeployFilter) -> Result<Vec<Deploy>, StoreError> {
        let conn = self.lock();
        // One statement per filter shape: `(?1 IS NULL OR app = ?1)` can use no index and
        // walked the history newest first until LIMIT rows matched (all of it for an
        // environment deployed long ago); an exact `app = ?1 AND environment = ?2` is a
        // range of `deploys_by_environment`.
        let filter_sql = match (&filter.app, &filter.environment) {
            (Some(_), Some(_)) => "app = ?1 AND environment = ?2",
            (Some(_), None) => "app = ?1 AND ?2 IS NULL",
            (None, Some(_)) => "?1 IS NULL AND environment = ?2",
            (None, None) => "?1 IS NULL AND ?2 IS NULL",
        };
        load_deploys(
            &conn,
            &format!("WHERE {filter_sql} ORDER BY id DESC LIMIT ?3"),
            params![filter.app, filter.environment, filter.limit as i64],
        )
    }

    /// The environment's newest deploy. Its own query, not [`Store::deploys`] with a
    /// filter: the `(?1 IS NULL OR app = ?1)` form cannot use an index, and walked the
    /// history newest first until it met the environment (all of it, for one deployed
    /// long ago); this one is a lookup in `deploys_by_environment`.
    pub fn last_deploy(
        &self,
        app: &AppName,
        environment: &EnvironmentName,
    ) -> Result<Option<Deploy>, StoreError> {
        let conn = self.lock();
        let mut found = load_deploys(
            &conn,
            "WHERE app = ?1 AND environment = ?2 ORDER BY id DESC LIMIT 1",
            params![app.as_str(), environment.as_str()],
        )?;
        Ok(found.pop())
    }

    /// The deploy that built `release` of an environment: the newest deploy of a
    /// commit (push, manual, promote, reconcile) that recorded it, whatever its outcome.
    pub fn release_deploy(
        &self,
        app: &AppName,
        environment: &EnvironmentName,
        release: &str,
    ) -> Result<Option<Deploy>, StoreError> {
        self.newest_with_release(app, environment, release, "")
    }

    /// The newest deploy that put `release` live in an environment.
    pub fn deploy_with_release(
        &self,
        app: &AppName,
        environment: &EnvironmentName,
        release: &str,
    ) -> Result<Option<Deploy>, StoreError> {
        self.newest_with_release(app, environment, release, "AND status = 'succeeded'")
    }

    /// The newest deploy of a commit that recorded `release`, narrowed by `and`.
    fn newest_with_release(
        &self,
        app: &AppName,
        environment: &EnvironmentName,
        release: &str,
        and: &str,
    ) -> Result<Option<Deploy>, StoreError> {
        let conn = self.lock();
        let mut found = load_deploys(
            &conn,
            &format!(
                "WHERE app = ?1 AND environment = ?2 AND release = ?3
                   AND trigger IN ({}) {and}
                 ORDER BY id DESC LIMIT 1",
                *COMMIT_TRIGGERS
            ),
            params![app.as_str(), environment.as_str(), release],
        )?;
        Ok(found.pop())
    }

    /// Records the release (and the resolved commit) before its directory is made, so a
    /// crash leaves a record of what to clean up.
    pub fn set_release(
        &self,
        id: DeployId,
        release: &str,
        commit: Option<&str>,
    ) -> Result<(), StoreError> {
        self.lock().execute(
            "UPDATE deploys SET release = ?2, commit_sha = COALESCE(?3, commit_sha) WHERE id = ?1",
            params![id.0, release, commit],
        )?;
        Ok(())
    }

    /// The message (first line) and author of the commit a deploy resolved to.
    pub fn set_commit_details(
        &self,
        id: DeployId,
        message: &str,
        author: &str,
    ) -> Result<(), StoreError> {
        self.lock().execute(
            "UPDATE deploys SET message = ?2, author = ?3 WHERE id = ?1",
            params![id.0, message, author],
        )?;
        Ok(())
    }

    /// The commit a deploy resolved to, and the full ref it was found under.
    pub fn set_commit(&self, id: DeployId, commit: &str, git_ref: &str) -> Result<(), StoreError> {
        self.lock().execute(
            "UPDATE deploys SET commit_sha = ?2, ref = ?3 WHERE id = ?1",
            params![id.0, commit, git_ref],
        )?;
        Ok(())
    }

    /// Ends a running deploy. Returns the deploy as stored.
    pub fn finish(
        &self,
        id: DeployId,
        status: DeployStatus,
        reason: Option<&str>,
        now: UnixMillis,
    ) -> Result<Option<Deploy>, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let ended = tx.execute(
            "UPDATE deploys SET status = ?2, reason = ?3, finished_at = ?4 WHERE id = ?1 AND status IN ('queued', 'running')",
            params![id.0, status.as_str(), reason, now.0],
        )?;
        // A stage whose own end was not stored (its write failed) ends with its deploy:
        // a finished deploy never lists a stage as still running.
        if ended > 0 {
            stages::end_open_stages(&tx, id, status)?;
        }
        let deploy = load_deploy(&tx, id)?;
        tx.commit()?;
        Ok(deploy)
    }
}

/// Inserts a deploy in the caller's transaction (a delivery's, a reconciliation's, an
/// expiry's), making its temporary environment first when the target needs one.
pub(super) fn insert_deploy(
    tx: &Transaction<'_>,
    app: &AppName,
    new: NewDeploy,
    now: UnixMillis,
) -> Result<Deploy, StoreError> {
    let (environment, base) = match new.target {
        Target::Fixed(env) => (env.clone(), env),
        Target::Instance { name, base } => (name, base),
        Target::Temporary {
            base,
            branch,
            reserved,
            ..
        } => (
            temporary_environments::find_or_make(tx, app, &base, &branch, &reserved, now)?,
            base,
        ),
    };
    tx.prepare_cached("INSERT INTO deploys (app, environment, base_environment, ref, commit_sha, trigger, status, reason, forced,
                              from_environment, created_at, finished_at, release, message, author, reason_code)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)")?.execute(params![
            app.as_str(),
            environment.as_str(),
            base.as_str(),
            new.git_ref,
            new.commit,
            new.trigger.as_str(),
            new.status.as_str(),
            new.reason,
            new.forced,
            new.from_environment.as_ref().map(EnvironmentName::as_str),
            now.0,
            new.status.is_terminal().then_some(now.0),
            new.release,
            new.message,
            new.author,
            new.reason_code.map(ReasonCode::as_str),
        ],
    )?;
    let id = DeployId(tx.last_insert_rowid());
    load_deploy(tx, id)?
        .ok_or_else(|| StoreError::Corrupt(format!("deploy {id} vanished after insert")))
}

pub(super) fn load_deploy(conn: &Connection, id: DeployId) -> Result<Option<Deploy>, StoreError> {
    Ok(load_deploys(conn, "WHERE id = ?1", [id.0])?.pop())
}

/// The deploys `SELECT … FROM deploys {rest}` finds, in its order, each with its
/// stages: two statements, whatever the number of deploys (the stages of a page used to
/// be read one query per deploy).
pub(super) fn load_deploys(
    conn: &Connection,
    rest: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Deploy>, StoreError> {
    let mut deploys = conn
        .prepare_cached(&format!("SELECT {DEPLOY_COLUMNS} FROM deploys {rest}"))?
        .query_map(params, deploy_row)?
        .collect::<Result<Vec<_>, _>>()?;
    let ids: Vec<DeployId> = deploys.iter().map(|d| d.id).collect();
    let mut stages = stages::stages_of(conn, &ids)?;
    for deploy in &mut deploys {
        deploy.stages = stages.remove(&deploy.id).unwrap_or_default();
    }
    Ok(deploys)
}

/// `ids` as a JSON array, one parameter for `IN (SELECT value FROM json_each(?))`: the
/// statement text stays the same for any number of ids.
pub(super) fn json_ids(ids: &[DeployId]) -> String {
    let list: Vec<String> = ids.iter().map(|id| id.0.to_string()).collect();
    format!("[{}]", list.join(","))
}

/// A deploy row; its stages are attached by [`load_deploys`].
fn deploy_row(r: &Row<'_>) -> rusqlite::Result<Deploy> {
    Ok(Deploy {
        id: DeployId(r.get("id")?),
        app: parsed(r, "app", |t| AppName::parse(t).ok())?,
        environment: parsed(r, "environment", |t| EnvironmentName::parse(t).ok())?,
        base_environment: parsed(r, "base_environment", |t| EnvironmentName::parse(t).ok())?,
        from_environment: parsed_if_set(r, "from_environment", |t| EnvironmentName::parse(t).ok())?,
        git_ref: r.get("ref")?,
        commit: r.get("commit_sha")?,
        trigger: parsed(r, "trigger", Trigger::parse)?,
        status: parsed(r, "status", DeployStatus::parse)?,
        reason: r.get("reason")?,
        // An unknown code (from a newer binary) only loses what depends on it.
        reason_code: r
            .get::<_, Option<String>>("reason_code")?
            .and_then(|c| ReasonCode::parse(&c)),
        release: r.get("release")?,
        forced: r.get("forced")?,
        message: r.get("message")?,
        author: r.get("author")?,
        created_at: UnixMillis(r.get("created_at")?),
        started_at: r.get::<_, Option<i64>>("started_at")?.map(UnixMillis),
        finished_at: r.get::<_, Option<i64>>("finished_at")?.map(UnixMillis),
        stages: Vec::new(),
    })
}

/// A text column read as a type; text the type refuses fails the read, naming the column.
fn parsed<T>(
    r: &Row<'_>,
    column: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> rusqlite::Result<T> {
    let text: String = r.get(column)?;
    parse(&text).ok_or_else(|| refused(r, column, &text))
}

/// As [`parsed`], for a column that may be NULL.
fn parsed_if_set<T>(
    r: &Row<'_>,
    column: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> rusqlite::Result<Option<T>> {
    let Some(text) = r.get::<_, Option<String>>(column)? else {
        return Ok(None);
    };
    parse(&text)
        .map(Some)
        .ok_or_else(|| refused(r, column, &text))
}

fn refused(r: &Row<'_>, column: &str, text: &str) -> rusqlite::Error {
    match r.as_ref().column_index(column) {
        Ok(index) => rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            format!("bad {column} {text:?}").into(),
        ),
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::super::test_support::{pushed, store};
    use super::*;
    use crate::core::deploy::Stage;
    use crate::core::stage::StageName;

    #[test]
    fn finishing_a_deploy_closes_a_stage_whose_end_was_not_stored() {
        let (_dir, store) = store();
        let id = pushed(&store, "d", 1, "staging");
        store.start(id, &[], UnixMillis(2)).unwrap().unwrap();
        store
            .begin_stage(id, StageName::Build, UnixMillis(3))
            .unwrap();
        let done = store
            .finish(id, DeployStatus::Failed, Some("disk full"), UnixMillis(4))
            .unwrap()
            .unwrap();
        assert_eq!(done.status, DeployStatus::Failed);
        assert_eq!(done.stages.len(), 1);
        assert_eq!(done.stages[0].status, DeployStatus::Failed);
    }

    /// Listing loads every deploy's stages together; each deploy still gets exactly
    /// its own, in order, as loading it alone does.
    #[test]
    fn a_listed_page_carries_each_deploys_own_stages_in_order() {
        let (_dir, store) = store();
        let ids: Vec<DeployId> = (0..4)
            .map(|i| {
                let env = if i % 2 == 0 { "staging" } else { "production" };
                pushed(&store, &format!("d{i}"), i, env)
            })
            .collect();
        // Stages interleaved across deploys, so row order in the table is not deploy order.
        // (deploy, stage, its end if it ended)
        let plan = [
            (0, StageName::Fetch, Some((DeployStatus::Succeeded, 5))),
            (2, StageName::Fetch, Some((DeployStatus::Succeeded, 7))),
            (0, StageName::Build, Some((DeployStatus::Failed, 11))),
            (3, StageName::Fetch, None),
            (2, StageName::Build, Some((DeployStatus::Succeeded, 13))),
            (2, StageName::Switch, None),
        ];
        for (i, name, end) in plan {
            let seq = store.begin_stage(ids[i], name, UnixMillis(1)).unwrap();
            if let Some((status, ms)) = end {
                store.end_stage(ids[i], seq, status, ms).unwrap();
            }
        }
        let stage = |name: StageName, status, duration_ms| Stage {
            name,
            status,
            duration_ms,
        };
        let expected: [Vec<Stage>; 4] = [
            vec![
                stage(StageName::Fetch, DeployStatus::Succeeded, Some(5)),
                stage(StageName::Build, DeployStatus::Failed, Some(11)),
            ],
            vec![],
            vec![
                stage(StageName::Fetch, DeployStatus::Succeeded, Some(7)),
                stage(StageName::Build, DeployStatus::Succeeded, Some(13)),
                stage(StageName::Switch, DeployStatus::Running, None),
            ],
            vec![stage(StageName::Fetch, DeployStatus::Running, None)],
        ];
        let all = DeployFilter {
            limit: 10,
            ..DeployFilter::default()
        };
        let listed = store.deploys(&all).unwrap();
        assert_eq!(
            listed.iter().map(|d| d.id).collect::<Vec<_>>(),
            ids.iter().rev().copied().collect::<Vec<_>>(),
            "newest first"
        );
        for (id, stages) in ids.iter().zip(&expected) {
            let alone = store.deploy(*id).unwrap().unwrap();
            let in_list = listed.iter().find(|d| d.id == *id).unwrap();
            assert_eq!(&alone.stages, stages, "deploy {id} alone");
            assert_eq!(in_list, &alone, "deploy {id} listed");
        }
        let staging = DeployFilter {
            app: Some("shop".into()),
            environment: Some("staging".into()),
            limit: 1,
        };
        let page = store.deploys(&staging).unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].stages, expected[2]);
    }

    #[test]
    fn the_sql_trigger_lists_are_the_enums() {
        let names = |list: &str| -> BTreeSet<String> {
            list.split(", ")
                .map(|quoted| quoted.trim_matches('\'').to_owned())
                .collect()
        };
        let commit: BTreeSet<String> = Trigger::ALL
            .iter()
            .filter(|t| t.deploys_a_commit())
            .map(|t| t.to_string())
            .collect();
        assert_eq!(names(&COMMIT_TRIGGERS), commit);
        assert!(names(&COMMIT_TRIGGERS).contains("reconcile"));
    }

    /// A release built by reconciliation (a push whose delivery was lost) has its deploy:
    /// the overview's live deploy, the releases list's status and the rollback guard
    /// find it (the hand-written list left `reconcile` out).
    #[test]
    fn a_release_reconciliation_built_has_its_deploy() {
        let (_dir, store) = store();
        let app = AppName::parse("shop").unwrap();
        let env = EnvironmentName::parse("staging").unwrap();
        let new = NewDeploy::queued(
            Target::Fixed(env.clone()),
            Trigger::Reconcile,
            "refs/heads/develop".into(),
        );
        let deploy = store.create_deploy(&app, new, UnixMillis(1)).unwrap();
        store
            .set_release(deploy.id, "20261202T120000Z", Some(&"a".repeat(40)))
            .unwrap();
        let found = store
            .release_deploy(&app, &env, "20261202T120000Z")
            .unwrap()
            .expect("the reconcile deploy that built the release");
        assert_eq!(found.id, deploy.id);
    }

    /// No trigger name is written into the store's SQL by hand: lists come from the
    /// enum ([`COMMIT_TRIGGERS`]), single triggers are bound as parameters.
    #[test]
    fn no_trigger_name_is_copied_into_the_stores_sql() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store");
        let mut found = Vec::new();
        // Every file below src/store, subdirectories (a module's tests.rs) included.
        let mut files = Vec::new();
        let mut dirs = vec![dir];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text
                .split("#[cfg(test)]\nmod tests")
                .next()
                .unwrap_or(&text);
            for trigger in Trigger::ALL {
                if code.contains(&format!("'{trigger}'")) {
                    found.push(format!("{}: '{trigger}'", path.display()));
                }
            }
        }
        assert!(found.is_empty(), "{found:?}");
    }
}
