//! The application's operations, the same for the API and the dashboard: addressing an
//! environment named in a request, recording deploys asked for by hand (deploy,
//! rollback, promote, sync, restart, cancel), the overview of every environment, the
//! release listing and pins. It knows no HTTP: requests come in as plain values,
//! answers go out as store/core types or [`crate::api_types`] views, and failures as
//! [`OpsError`], which `http/error.rs` maps to statuses in its one table.
//!
//! | file           | operations                                                   |
//! |----------------|--------------------------------------------------------------|
//! | `mod.rs`       | [`Ops`], [`OpsError`], [`addressed`], recording a deploy       |
//! | [`deploys`]    | deploy, rollback, promote, sync, restart, cancel, find, list |
//! | [`overview`]   | every app and environment with what is live (`/api/apps`)    |
//! | [`releases`]   | the releases on disk of one environment                      |
//! | [`lifecycle`]  | pin and unpin a preview                                      |
//!
//! # The store's gate
//!
//! Every store call queues for one permit ([`Store::run`]), which webhook intake
//! waits on too. So nothing here reads the filesystem (the `current` link, `REVISION`
//! files, `releases/`) inside a store call: it reads the store, lets the permit go,
//! reads the files on the blocking pool, and comes back to the store if it must.

pub(crate) mod deploys;
pub(crate) mod lifecycle;
pub(crate) mod overview;
pub(crate) mod releases;

use crate::config::{AppConfig, Config};
use crate::core::deploy::Deploy;
use crate::core::ids::{AppName, EnvironmentName};
use crate::core::time::Clock;
use crate::layout::EnvironmentDir;
use crate::pipeline::runner::Runner;
use crate::reload::LiveConfig;
use crate::store::{NewDeploy, Store, StoreError, Target};

/// What the operations work with: the live config, the store, the clock and the
/// runner to wake. Cheap to clone (every field is shared).
#[derive(Clone)]
pub struct Ops {
    /// Read with `config.get()`: a snapshot, so a reload never changes work halfway.
    pub config: LiveConfig,
    pub store: Store,
    pub clock: Clock,
    /// Nudged after a deploy is recorded; `None` when no runner runs (tests).
    pub runner: Option<Runner>,
}

impl Ops {
    fn wake_runner(&self) {
        if let Some(runner) = &self.runner {
            runner.wake();
        }
    }
}

/// Why an operation was refused or failed. Each variant is a kind of answer, not a
/// status: `http/error.rs` alone decides the status.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// No such app, environment, deploy or ref.
    #[error("{0}")]
    NotFound(String),
    /// The request itself is wrong (not a ref, a pattern environment, into itself).
    #[error("{0}")]
    Invalid(String),
    /// Not allowed without saying so explicitly (`force` into a protected environment).
    #[error("{0}")]
    Refused(String),
    /// Valid, but the state does not allow it now (nothing live, already ended).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The server's own fault: a lost blocking task, a directory it cannot read.
    #[error("{0}")]
    Internal(String),
}

/// Runs file work on the blocking pool, outside the store's gate.
async fn blocking<T, F>(work: F) -> Result<T, OpsError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| OpsError::Internal(format!("a blocking task failed: {e}")))
}

/// An environment named in a request: a configured one, or an existing temporary one.
pub struct Addressed {
    pub app: AppConfig,
    pub target: Target,
    /// The configured environment it belongs to.
    pub base: EnvironmentName,
    /// The branch a temporary environment follows.
    temporary_branch: Option<String>,
}

impl Addressed {
    pub fn name(&self) -> &EnvironmentName {
        match &self.target {
            Target::Fixed(name) | Target::Instance { name, .. } => name,
            Target::Temporary { base, .. } => base,
        }
    }

    pub fn dir(&self) -> EnvironmentDir {
        EnvironmentDir::new(&self.app.root, self.name())
    }

    fn protected(&self) -> bool {
        self.app
            .environments
            .get(&self.base)
            .is_some_and(|e| e.protected)
    }
}

/// The environment `app`/`env` of a request (404 for none, 400 for a pattern).
pub fn addressed(
    store: &Store,
    config: &Config,
    app: &str,
    env: &str,
) -> Result<Addressed, OpsError> {
    let app_config = AppName::parse(app)
        .ok()
        .and_then(|name| config.apps.get(&name))
        .ok_or_else(|| OpsError::NotFound(format!("no app {app:?}")))?;
    let missing = || {
        OpsError::NotFound(format!(
            "app `{}` has no environment {env:?}",
            app_config.name
        ))
    };
    let name = EnvironmentName::parse(env).map_err(|_| missing())?;
    if let Some(configured) = app_config.environments.get(&name) {
        if configured.source.is_temporary() {
            return Err(OpsError::Invalid(format!(
                "`{name}` is a pattern ({}): address one of its temporary environments instead",
                configured.source.describe()
            )));
        }
        return Ok(Addressed {
            app: app_config.clone(),
            target: Target::Fixed(name.clone()),
            base: name,
            temporary_branch: None,
        });
    }
    let temporary = store
        .temporary_environments(&app_config.name)?
        .into_iter()
        .find(|t| t.name == name)
        .ok_or_else(missing)?;
    Ok(Addressed {
        app: app_config.clone(),
        base: temporary.base.clone(),
        temporary_branch: Some(temporary.branch.clone()),
        target: Target::Instance {
            name: temporary.name,
            base: temporary.base,
        },
    })
}

/// [`addressed`] as one store call: the app and environment a request names.
pub async fn environment(
    ops: &Ops,
    app: String,
    env: String,
) -> Result<(AppName, EnvironmentName), OpsError> {
    let config = ops.config.get();
    ops.store
        .run(move |store| {
            Ok(addressed(store, &config, &app, &env)
                .map(|a| (a.app.name.clone(), a.name().clone())))
        })
        .await?
}

/// Records a deploy asked for by hand (API or dashboard) and wakes the runner. `make`
/// runs inside the store call: it may read the store, never files.
async fn create(
    ops: &Ops,
    app: String,
    env: String,
    make: impl FnOnce(&Store, &Config, &Addressed) -> Result<NewDeploy, OpsError> + Send + 'static,
) -> Result<Deploy, OpsError> {
    let config = ops.config.get();
    let now = (ops.clock)();
    let created = ops
        .store
        .run(move |store| {
            let result = addressed(store, &config, &app, &env).and_then(|a| {
                let new = make(store, &config, &a)?;
                Ok(store.create_deploy(&a.app.name, new, now)?)
            });
            Ok::<_, StoreError>(result)
        })
        .await??;
    ops.wake_runner();
    Ok(created)
}
