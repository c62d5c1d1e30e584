//! The schema, one step per `PRAGMA user_version`. Steps are append-only: a released
//! step is never edited, a change is a new step.

pub const MIGRATIONS: &[&str] = &[
    // 1: deliveries, deploys and their stages, pinged hooks, temporary environments.
    r#"
    CREATE TABLE deploys (
        id               INTEGER PRIMARY KEY,
        app              TEXT NOT NULL,
        environment      TEXT NOT NULL,
        base_environment TEXT NOT NULL,
        ref              TEXT NOT NULL,
        commit_sha       TEXT,
        trigger          TEXT NOT NULL,
        status           TEXT NOT NULL,
        reason           TEXT,
        release          TEXT,
        forced           INTEGER NOT NULL DEFAULT 0,
        from_environment TEXT,
        created_at       INTEGER NOT NULL,
        started_at       INTEGER,
        finished_at      INTEGER
    );
    CREATE INDEX deploys_by_environment ON deploys (app, environment, id);
    CREATE INDEX deploys_by_status ON deploys (status);

    CREATE TABLE stages (
        deploy_id   INTEGER NOT NULL REFERENCES deploys (id),
        seq         INTEGER NOT NULL,
        name        TEXT NOT NULL,
        status      TEXT NOT NULL,
        started_at  INTEGER NOT NULL,
        duration_ms INTEGER,
        PRIMARY KEY (deploy_id, seq)
    );

    CREATE TABLE deliveries (
        id          INTEGER PRIMARY KEY,
        app         TEXT NOT NULL,
        delivery_id TEXT NOT NULL,
        hook_id     TEXT NOT NULL,
        event       TEXT NOT NULL,
        outcome     TEXT NOT NULL,
        detail      TEXT,
        deploy_id   INTEGER REFERENCES deploys (id),
        received_at INTEGER NOT NULL,
        UNIQUE (app, hook_id, delivery_id)
    );

    CREATE TABLE hooks (
        app          TEXT NOT NULL,
        hook_id      TEXT NOT NULL,
        last_ping_at INTEGER NOT NULL,
        PRIMARY KEY (app, hook_id)
    );

    CREATE TABLE temporary_environments (
        app        TEXT NOT NULL,
        name       TEXT NOT NULL,
        base       TEXT NOT NULL,
        branch     TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (app, name),
        UNIQUE (app, branch)
    );
    "#,
    // 2: deploy counts by app, base environment and status for /metrics, kept by
    // triggers inside the transaction of every insert, status change and delete, so a
    // scrape reads a few rows instead of grouping the whole history. Temporary
    // environments count under their base environment: one label per configured
    // environment, however many branches come and go.
    r#"
    CREATE TABLE deploy_counts (
        app              TEXT NOT NULL,
        base_environment TEXT NOT NULL,
        status           TEXT NOT NULL,
        n                INTEGER NOT NULL,
        PRIMARY KEY (app, base_environment, status)
    ) WITHOUT ROWID;

    INSERT INTO deploy_counts (app, base_environment, status, n)
        SELECT app, base_environment, status, count(*) FROM deploys
        GROUP BY app, base_environment, status;

    CREATE TRIGGER deploy_counts_on_insert AFTER INSERT ON deploys BEGIN
        INSERT INTO deploy_counts (app, base_environment, status, n)
            VALUES (NEW.app, NEW.base_environment, NEW.status, 1)
            ON CONFLICT (app, base_environment, status) DO UPDATE SET n = n + 1;
    END;

    CREATE TRIGGER deploy_counts_on_update AFTER UPDATE OF status, app, base_environment ON deploys
    WHEN OLD.status IS NOT NEW.status OR OLD.app IS NOT NEW.app
      OR OLD.base_environment IS NOT NEW.base_environment
    BEGIN
        UPDATE deploy_counts SET n = n - 1
            WHERE app = OLD.app AND base_environment = OLD.base_environment AND status = OLD.status;
        INSERT INTO deploy_counts (app, base_environment, status, n)
            VALUES (NEW.app, NEW.base_environment, NEW.status, 1)
            ON CONFLICT (app, base_environment, status) DO UPDATE SET n = n + 1;
    END;

    CREATE TRIGGER deploy_counts_on_delete AFTER DELETE ON deploys BEGIN
        UPDATE deploy_counts SET n = n - 1
            WHERE app = OLD.app AND base_environment = OLD.base_environment AND status = OLD.status;
    END;
    "#,
    // 3: the process groups that deploy steps started and that may still run, so crash
    // recovery kills exactly those (a leader's start time tells a reused pid apart).
    r#"
    CREATE TABLE process_groups (
        pgid       INTEGER NOT NULL,
        start_time INTEGER NOT NULL,
        deploy_id  INTEGER NOT NULL,
        PRIMARY KEY (pgid, start_time)
    );
    "#,
    // 4: reconciliation (pipeline::reconcile): the refs of pattern and tag environments as
    // the last round saw them, so a branch or tag pushed while stagehand was not
    // listening is deployed, but the ones that predate stagehand are not all deployed.
    // One row in `reconcile_rounds` per app marks that a first round has run (and when
    // the remembered refs last changed: idle rounds write nothing).
    r#"
    CREATE TABLE reconcile_rounds (
        app         TEXT PRIMARY KEY,
        recorded_at INTEGER NOT NULL
    );

    CREATE TABLE reconcile_refs (
        app        TEXT NOT NULL,
        ref        TEXT NOT NULL,
        commit_sha TEXT NOT NULL,
        PRIMARY KEY (app, ref)
    );
    "#,
    // 5 (issue 16): each deploy's commit message (first line) and author, and a code for
    // why it was skipped at intake (a push waiting for a manual environment).
    r#"
    ALTER TABLE deploys ADD COLUMN message TEXT;
    ALTER TABLE deploys ADD COLUMN author TEXT;
    ALTER TABLE deploys ADD COLUMN reason_code TEXT;
    "#,
    // 6 (issue 12): app processes of environments that `run`, one row per process:
    // the live one of an environment, a deploy's candidate, a retiring one. pid +
    // start_ticks (field 22 of /proc/<pid>/stat) name the process even after pid reuse.
    r#"
    CREATE TABLE processes (
        id               INTEGER PRIMARY KEY,
        app              TEXT NOT NULL,
        environment      TEXT NOT NULL,
        base_environment TEXT NOT NULL,
        role             TEXT NOT NULL,
        state            TEXT NOT NULL,
        release          TEXT NOT NULL,
        pid              INTEGER,
        start_ticks      INTEGER,
        port             INTEGER NOT NULL,
        restarts         INTEGER NOT NULL DEFAULT 0,
        started_at       INTEGER
    );
    CREATE UNIQUE INDEX processes_one_live ON processes (app, environment) WHERE role = 'live';
    "#,
    // 7 (issue 15, `require_checks`): whether a deploy's commit passed its required
    // checks (a waiting deploy goes back to `queued` with this set, so the runner starts
    // it instead of holding it again), and the check results the forges reported, the
    // latest per name.
    r#"
    ALTER TABLE deploys ADD COLUMN checks_passed INTEGER NOT NULL DEFAULT 0;

    CREATE TABLE check_results (
        app        TEXT NOT NULL,
        commit_sha TEXT NOT NULL,
        name       TEXT NOT NULL,
        state      TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (app, commit_sha, name)
    );
    "#,
    // 8 (issue 13): pinned temporary environments, never expired. Its own table, so
    // unpinning is a delete and a torn-down environment's pin is dropped with it.
    r#"
    CREATE TABLE pinned_environments (
        app         TEXT NOT NULL,
        environment TEXT NOT NULL,
        pinned_at   INTEGER NOT NULL,
        PRIMARY KEY (app, environment)
    );
    "#,
];
