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
    // 2 (issue 12): app processes of environments that `run`, one row per process:
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
    // (issue 13): pinned temporary environments, never expired. Its own table, so
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
